//! A device's own erase, as ironic-python-agent's `erase_devices` tries it
//! before it overwrites: an NVMe namespace is formatted with the secure
//! erase setting (`nvme format --ses=2`, a cryptographic erase, where the
//! controller's Format NVM Attributes offer it, else `--ses=1`, a user data
//! erase), an ATA drive erases itself with the security feature set
//! (`hdparm --security-erase[-enhanced]` under a temporary password).
//! Both through the tools the deploy ramdisk carries (nvme-cli, hdparm).
//!
//! Invariants: only block devices are ever given to a tool; the decisions ([`nvme_plan`], [`ata_security`]) are pure;
//! a device whose erase would reach beyond itself (an NVMe format that
//! applies to every namespace of a controller with several) or that cannot
//! (frozen, unsupported, no tool) is left to the caller (`Ok(None)`), never
//! half-done; an ATA password this module set is removed again when the
//! erase fails, so a drive is never left locked.

use std::process::Command;

use serde_json::Value;

/// The temporary ATA user password (IPA's).
const ATA_PASSWORD: &str = "NULL";

/// How an NVMe namespace is formatted, from `nvme id-ctrl -o json`.
#[derive(Debug, PartialEq, Eq)]
pub enum NvmePlan {
    /// `--ses=<n>`: 2 cryptographic erase, 1 user data erase.
    Format { ses: u8 },
    /// Not formatted, and why.
    Skip(String),
}

/// What `nvme id-ctrl` tells about formatting one namespace.
pub fn nvme_plan(id_ctrl: &Value) -> NvmePlan {
    let Some(fna) = id_ctrl["fna"].as_u64() else {
        return NvmePlan::Skip("the controller reports no Format NVM Attributes".into());
    };
    let namespaces = id_ctrl["nn"].as_u64().unwrap_or(0);
    // Bit 0: a format applies to every namespace; bit 1: so does a secure
    // erase. Harmless only where there is one namespace.
    if fna & 0b11 != 0 && namespaces > 1 {
        return NvmePlan::Skip(format!(
            "a format would erase all {namespaces} namespaces of the controller"
        ));
    }
    NvmePlan::Format {
        ses: if fna & 0b100 != 0 { 2 } else { 1 },
    }
}

/// The ATA security state `hdparm -I` reports.
#[derive(Debug, PartialEq, Eq)]
pub enum AtaSecurity {
    /// No security feature set (or no `Security:` section at all).
    Unsupported,
    /// Frozen by the firmware until a power cycle: no erase now.
    Frozen,
    /// Ready to erase; `enhanced`: the enhanced erase is offered;
    /// `enabled`: a password is set already (IPA's `NULL` is tried).
    Ready { enhanced: bool, enabled: bool },
}

/// Reads the `Security:` section of `hdparm -I`.
pub fn ata_security(hdparm_i: &str) -> AtaSecurity {
    let mut lines = hdparm_i.lines().skip_while(|l| !l.starts_with("Security:"));
    if lines.next().is_none() {
        return AtaSecurity::Unsupported;
    }
    // Its lines are indented; "not" comes before a flag that is off.
    let flags: Vec<String> = lines
        .take_while(|l| l.starts_with('\t') || l.starts_with(' '))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    if !has("supported") {
        return AtaSecurity::Unsupported;
    }
    if has("frozen") {
        return AtaSecurity::Frozen;
    }
    AtaSecurity::Ready {
        enhanced: has("supported: enhanced erase"),
        enabled: has("enabled"),
    }
}

/// Runs `tool args… device`; its stdout, or why it failed.
fn run(tool: &str, args: &[&str], device: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .arg(device)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{tool} {} {device} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether `tool` can be run here.
fn available(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Erases `device` with its own erase where it has one: `Ok(Some(how))`
/// when done, `Ok(None)` when the caller must erase it (not NVMe or ATA,
/// no tool, unsupported, frozen, or a format that would reach other
/// namespaces — logged).
///
/// # Errors
/// The device's erase was started and failed.
pub fn erase(device: &str) -> Result<Option<String>, String> {
    use std::os::unix::fs::FileTypeExt as _;
    let is_block = std::fs::metadata(device).is_ok_and(|m| m.file_type().is_block_device());
    if !is_block {
        return Ok(None);
    }
    let name = device.rsplit('/').next().unwrap_or(device);
    if name.starts_with("nvme") {
        return nvme_erase(device);
    }
    if name.starts_with("sd") {
        return ata_erase(device);
    }
    Ok(None)
}

fn nvme_erase(device: &str) -> Result<Option<String>, String> {
    if !available("nvme") {
        tracing::info!(device, "nvme-cli is not in this ramdisk; no NVMe format");
        return Ok(None);
    }
    let id = run("nvme", &["id-ctrl", "-o", "json"], device)
        .and_then(|text| serde_json::from_str(&text).map_err(|e| format!("nvme id-ctrl: {e}")));
    let id: Value = match id {
        Ok(id) => id,
        Err(why) => {
            tracing::info!(device, why, "no NVMe format");
            return Ok(None);
        }
    };
    match nvme_plan(&id) {
        NvmePlan::Skip(why) => {
            tracing::info!(device, why, "no NVMe format");
            Ok(None)
        }
        NvmePlan::Format { ses } => {
            run(
                "nvme",
                &["format", &format!("--ses={ses}"), "--force"],
                device,
            )?;
            let how = if ses == 2 {
                "nvme format (cryptographic erase)"
            } else {
                "nvme format (user data erase)"
            };
            Ok(Some(how.into()))
        }
    }
}

fn ata_erase(device: &str) -> Result<Option<String>, String> {
    if !available("hdparm") {
        tracing::info!(device, "hdparm is not in this ramdisk; no ATA secure erase");
        return Ok(None);
    }
    // SAS, USB and virtual disks are `sd` too and answer no ATA identify.
    let Ok(identify) = run("hdparm", &["-I"], device) else {
        return Ok(None);
    };
    let (enhanced, enabled) = match ata_security(&identify) {
        AtaSecurity::Unsupported => return Ok(None),
        AtaSecurity::Frozen => {
            tracing::info!(
                device,
                "ATA security is frozen until a power cycle; no secure erase"
            );
            return Ok(None);
        }
        AtaSecurity::Ready { enhanced, enabled } => (enhanced, enabled),
    };
    let user = ["--user-master", "u"];
    if enabled {
        // A drive left locked by an earlier erase: IPA's password opens it.
        run(
            "hdparm",
            &[&user[..], &["--security-unlock", ATA_PASSWORD]].concat(),
            device,
        )?;
    } else {
        run(
            "hdparm",
            &[&user[..], &["--security-set-pass", ATA_PASSWORD]].concat(),
            device,
        )?;
    }
    let verb = if enhanced {
        "--security-erase-enhanced"
    } else {
        "--security-erase"
    };
    if let Err(e) = run(
        "hdparm",
        &[&user[..], &[verb, ATA_PASSWORD]].concat(),
        device,
    ) {
        // Never leave the drive locked with a password.
        let _ = run(
            "hdparm",
            &[&user[..], &["--security-disable", ATA_PASSWORD]].concat(),
            device,
        );
        return Err(e);
    }
    let after = run("hdparm", &["-I"], device)?;
    if matches!(
        ata_security(&after),
        AtaSecurity::Ready { enabled: true, .. }
    ) {
        return Err(format!(
            "{device} still has ATA security enabled after its secure erase"
        ));
    }
    Ok(Some(if enhanced {
        "ATA enhanced secure erase".into()
    } else {
        "ATA secure erase".into()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_format_is_a_crypto_erase_where_offered_and_never_reaches_other_namespaces() {
        assert_eq!(
            nvme_plan(&json!({"fna": 4, "nn": 1})),
            NvmePlan::Format { ses: 2 }
        );
        assert_eq!(
            nvme_plan(&json!({"fna": 0, "nn": 256})),
            NvmePlan::Format { ses: 1 }
        );
        // Scope "all namespaces" is fine with one namespace…
        assert_eq!(
            nvme_plan(&json!({"fna": 7, "nn": 1})),
            NvmePlan::Format { ses: 2 }
        );
        // …and never with several.
        assert!(matches!(
            nvme_plan(&json!({"fna": 1, "nn": 4})),
            NvmePlan::Skip(why) if why.contains("all 4 namespaces")
        ));
        assert!(matches!(nvme_plan(&json!({})), NvmePlan::Skip(_)));
    }

    /// `hdparm -I`'s security section as the tool prints it.
    fn identify(flags: &str) -> String {
        format!(
            "/dev/sda:\n\nATA device, with non-removable media\n\tModel Number:       DISK\n\
             Security: \n\tMaster password revision code = 65534\n{flags}\
             \t2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.\n\
             Logical Unit WWN Device Identifier: 5000000000000000\n"
        )
    }

    #[test]
    fn the_security_section_of_hdparm_is_read_as_ipa_reads_it() {
        let ready = identify(
            "\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\tnot\tfrozen\n\tnot\texpired: security count\n\t\tsupported: enhanced erase\n",
        );
        assert_eq!(
            ata_security(&ready),
            AtaSecurity::Ready {
                enhanced: true,
                enabled: false
            }
        );
        let frozen = identify(
            "\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\t\tfrozen\n\tnot\texpired: security count\n",
        );
        assert_eq!(ata_security(&frozen), AtaSecurity::Frozen);
        let locked = identify("\t\tsupported\n\t\tenabled\n\t\tlocked\n\tnot\tfrozen\n");
        assert_eq!(
            ata_security(&locked),
            AtaSecurity::Ready {
                enhanced: false,
                enabled: true
            }
        );
        assert_eq!(
            ata_security(&identify("\tnot\tsupported\n")),
            AtaSecurity::Unsupported
        );
        assert_eq!(
            ata_security("/dev/vda:\n SG_IO: bad/missing sense data\n"),
            AtaSecurity::Unsupported
        );
    }
}
