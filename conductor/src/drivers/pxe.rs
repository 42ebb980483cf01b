//! The `ipxe` and `pxe` boot interfaces' files, where Ironic puts them
//! (`pxe_utils.py`, `ipxe_config.template`, `pxe_config.template`,
//! `pxe_grub_config.template`, `boot.ipxe`).
//!
//! `ipxe`, under `http_root`: the master script `boot.ipxe` (chains
//! `pxelinux.cfg/<mac-with-hyphens>`), the node's `<uuid>/config` and images
//! `<uuid>/{kernel,ramdisk,boot_iso}`, and one relative symlink
//! `pxelinux.cfg/<mac>` → `../<uuid>/config` per PXE-enabled port.
//!
//! `pxe`, under `tftp_root`: `<uuid>/config` (pxelinux for BIOS, grub for
//! UEFI) and `<uuid>/{kernel,ramdisk}`, linked from `pxelinux.cfg/01-<mac>`,
//! `grub.cfg-01-<mac>` and `<mac>.conf` per PXE-enabled port.
//!
//! Invariants: every file is written to a temporary name and renamed, so a
//! machine never reads half a script; [`clean_up`] removes everything
//! [`prepare_ramdisk`] wrote for a node (and only that).

use std::io::Write;
use std::path::{Path, PathBuf};

use ferric_common::config::BootConfig;
use ferric_common::kernel_args::KernelArgs;

/// Which boot interface the files are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKind {
    Ipxe,
    Pxe { uefi: bool },
}

/// What the node boots: a kernel and ramdisk, or an ISO.
pub enum RamdiskImages {
    KernelRamdisk { kernel: PathBuf, ramdisk: PathBuf },
    Iso(PathBuf),
}

/// Writes `contents` to `path` atomically (temporary file + rename).
///
/// # Errors
/// When the directory or file cannot be written.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4().simple()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn root(boot: &BootConfig, kind: BootKind) -> &Path {
    match kind {
        BootKind::Ipxe => &boot.http_root,
        BootKind::Pxe { .. } => &boot.tftp_root,
    }
}

/// The per-MAC links of a port and where each points.
fn mac_links(
    boot: &BootConfig,
    kind: BootKind,
    node_uuid: &str,
    mac: &str,
) -> Vec<(PathBuf, PathBuf)> {
    let hyphens = mac.replace(':', "-").to_lowercase();
    let up = Path::new("..").join(node_uuid).join("config");
    match kind {
        BootKind::Ipxe => vec![(
            boot.http_root.join(&boot.pxe_config_subdir).join(hyphens),
            up,
        )],
        BootKind::Pxe { .. } => {
            let config = Path::new(node_uuid).join("config");
            vec![
                (
                    boot.tftp_root
                        .join(&boot.pxe_config_subdir)
                        .join(format!("01-{hyphens}")),
                    up,
                ),
                (
                    boot.tftp_root.join(format!("grub.cfg-01-{hyphens}")),
                    config.clone(),
                ),
                (
                    boot.tftp_root.join(format!("{}.conf", mac.to_lowercase())),
                    config,
                ),
            ]
        }
    }
}

/// The master script: every NIC tries its own per-MAC script.
pub fn boot_script(boot: &BootConfig) -> String {
    let for_mac = format!("{}/", boot.pxe_config_subdir);
    format!(
        "#!ipxe\n\n\
         set netid:int32 -1\n\
         :loop\n\
         inc netid || chain {for_mac}${{mac:hexhyp}} || goto old_rom\n\
         isset ${{net${{netid}}/mac}} || goto loop_done\n\
         echo Attempting to boot from MAC ${{net${{netid}}/mac:hexhyp}}\n\
         chain {for_mac}${{net${{netid}}/mac:hexhyp}} || goto loop\n\n\
         echo Exiting pxe config to allow boot to continue on next device\n\
         exit 0\n\n\
         :loop_done\n\
         echo PXE boot failed! No configuration found for any of the present NICs.\n\
         echo Press any key to reboot...\n\
         prompt --timeout 180\n\
         reboot\n\n\
         :old_rom\n\
         echo PXE boot failed! No configuration found for NIC ${{mac:hexhyp}}.\n\
         echo Please update your iPXE ROM and retry.\n\
         echo Press any key to reboot...\n\
         prompt --timeout 180\n\
         reboot\n"
    )
}

/// A deploy ramdisk's kernel arguments: `root=/dev/ram0 text`, then
/// `[pxe] pxe_append_params` (checked when the settings were loaded; left
/// out should it not parse), then the node's.
fn append_line(boot: &BootConfig, node_args: &KernelArgs) -> KernelArgs {
    let base = KernelArgs::parse("root=/dev/ram0 text").unwrap_or_default();
    let configured = KernelArgs::parse(&boot.pxe_append_params).unwrap_or_default();
    base.and(&configured).and(node_args)
}

/// The node's script for a ramdisk deploy (Ironic's template, switched to
/// `boot_ramdisk`).
pub fn ramdisk_config(
    boot: &BootConfig,
    node_uuid: &str,
    images: &RamdiskImages,
    ramdisk_opts: &KernelArgs,
) -> String {
    let url = |label: &str| format!("{}/{node_uuid}/{label}", boot.http_url);
    let timeout = if boot.ipxe_timeout > 0 {
        format!("--timeout {} ", boot.ipxe_timeout)
    } else {
        String::new()
    };
    let body = match images {
        RamdiskImages::Iso(_) => format!("sanboot {}\n", url("boot_iso")),
        RamdiskImages::KernelRamdisk { .. } => format!(
            "kernel {timeout}{} {} initrd=ramdisk || goto boot_ramdisk\n\
             initrd {timeout}{} || goto boot_ramdisk\n\
             boot\n",
            url("kernel"),
            append_line(boot, ramdisk_opts),
            url("ramdisk"),
        ),
    };
    format!(
        "#!ipxe\n\n\
         set attempts:int32 10\n\
         set i:int32 0\n\n\
         goto boot_ramdisk\n\n\
         :boot_ramdisk\n\
         imgfree\n\
         {body}"
    )
}

/// The node's config for a `pxe` ramdisk boot: pxelinux (BIOS) or grub
/// (UEFI), Ironic's templates with the default switched to `boot_ramdisk`.
pub fn pxe_ramdisk_config(
    boot: &BootConfig,
    node_uuid: &str,
    uefi: bool,
    ramdisk_opts: &KernelArgs,
) -> String {
    let kernel = format!("{node_uuid}/kernel");
    let ramdisk = format!("{node_uuid}/ramdisk");
    let append = append_line(boot, ramdisk_opts);
    if uefi {
        format!(
            "set default=boot_ramdisk\n\
             set timeout=5\n\
             set hidden_timeout_quiet=false\n\n\
             menuentry \"boot_ramdisk\"  {{\n    \
             linux {kernel} {append}\n    \
             initrd {ramdisk}\n\
             }}\n"
        )
    } else {
        format!(
            "default boot_ramdisk\n\n\
             label boot_ramdisk\n\
             kernel {kernel}\n\
             append initrd={ramdisk} {append}\n"
        )
    }
}

/// Writes every file a ramdisk boot of the node needs; returns their paths.
///
/// # Errors
/// When a file cannot be written (what was written is removed again).
#[tracing::instrument(name = "pxe.prepare", skip_all, fields(node.uuid = %node_uuid))]
pub fn prepare_ramdisk(
    boot: &BootConfig,
    kind: BootKind,
    node_uuid: &str,
    macs: &[String],
    images: &RamdiskImages,
    ramdisk_opts: &KernelArgs,
) -> std::io::Result<Vec<PathBuf>> {
    // Paths are built from these: refuse anything that could leave the roots.
    let safe_mac =
        |m: &String| m.len() <= 59 && m.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    if uuid::Uuid::parse_str(node_uuid).is_err() || !macs.iter().all(safe_mac) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("refusing boot file names from node {node_uuid:?} / ports {macs:?}"),
        ));
    }
    let result = (|| {
        let mut written = Vec::new();
        let dir = root(boot, kind).join(node_uuid);
        std::fs::create_dir_all(&dir)?;
        match images {
            RamdiskImages::KernelRamdisk { kernel, ramdisk } => {
                for (master, label) in [(kernel, "kernel"), (ramdisk, "ramdisk")] {
                    crate::images::link_into(master, &dir.join(label))?;
                    written.push(dir.join(label));
                }
            }
            RamdiskImages::Iso(iso) => {
                crate::images::link_into(iso, &dir.join("boot_iso"))?;
                written.push(dir.join("boot_iso"));
            }
        }
        let config = dir.join("config");
        let contents = match kind {
            BootKind::Ipxe => ramdisk_config(boot, node_uuid, images, ramdisk_opts),
            BootKind::Pxe { uefi } => pxe_ramdisk_config(boot, node_uuid, uefi, ramdisk_opts),
        };
        write_atomic(&config, contents.as_bytes())?;
        written.push(config);
        if kind == BootKind::Ipxe {
            // Shared by every node: written only when it changes (as
            // Ironic), not once per deploy.
            let script = boot.http_root.join("boot.ipxe");
            let wanted = boot_script(boot);
            if std::fs::read(&script).ok().as_deref() != Some(wanted.as_bytes()) {
                write_atomic(&script, wanted.as_bytes())?;
            }
        }
        for mac in macs {
            for (link, target) in mac_links(boot, kind, node_uuid, mac) {
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link)?;
                written.push(link);
            }
        }
        Ok(written)
    })();
    if result.is_err() {
        clean_up(boot, node_uuid, macs);
    }
    result
}

/// Node directories under either root (names that are UUIDs).
pub fn node_dirs(boot: &BootConfig) -> Vec<String> {
    let mut uuids = Vec::new();
    for root in [&boot.http_root, &boot.tftp_root] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && uuid::Uuid::parse_str(&name).is_ok() {
                uuids.push(name);
            }
        }
    }
    uuids.sort();
    uuids.dedup();
    uuids
}

/// Removes the boot files of a node that no longer exists: its
/// directories, every per-MAC link into them, its DHCP options. Returns
/// whether anything was there.
pub fn remove_orphan(boot: &BootConfig, node_uuid: &str) -> bool {
    let mut found = false;
    for root in [&boot.http_root, &boot.tftp_root] {
        let target_dir = Path::new("..").join(node_uuid);
        let direct = Path::new(node_uuid);
        for dir in [root.join(&boot.pxe_config_subdir), root.clone()] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(target) = std::fs::read_link(entry.path())
                    && (target.starts_with(&target_dir) || target.starts_with(direct))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        if std::fs::remove_dir_all(root.join(node_uuid)).is_ok() {
            found = true;
        }
    }
    if let Some((_, optsdir)) = &boot.dnsmasq {
        let _ = std::fs::remove_file(optsdir.join(format!("ironic-{node_uuid}.conf")));
    }
    found
}

/// Removes the node's boot files and per-MAC links under both roots
/// (`boot.ipxe` is shared and stays).
pub fn clean_up(boot: &BootConfig, node_uuid: &str, macs: &[String]) {
    for kind in [BootKind::Ipxe, BootKind::Pxe { uefi: false }] {
        for mac in macs {
            for (link, _) in mac_links(boot, kind, node_uuid, mac) {
                let _ = std::fs::remove_file(link);
            }
        }
        let _ = std::fs::remove_dir_all(root(boot, kind).join(node_uuid));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NODE: &str = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123";

    fn boot() -> BootConfig {
        ferric_common::config::Settings::default().boot()
    }

    /// Every file a ramdisk boot writes, for these arguments.
    fn files(args: &KernelArgs) -> Vec<String> {
        let boot = boot();
        let images = RamdiskImages::KernelRamdisk {
            kernel: PathBuf::from("k"),
            ramdisk: PathBuf::from("r"),
        };
        vec![
            ramdisk_config(&boot, NODE, &images, args),
            pxe_ramdisk_config(&boot, NODE, false, args),
            pxe_ramdisk_config(&boot, NODE, true, args),
        ]
    }

    /// Whether `file` is `template` with ` {args}` inserted into some of its
    /// lines, and nothing else.
    fn only_inserts(file: &str, template: &str, args: &KernelArgs) -> bool {
        let inserted = format!(" {args}");
        file.lines().count() == template.lines().count()
            && file.lines().zip(template.lines()).all(|(line, expected)| {
                // Some whole-word occurrence of the arguments, taken out,
                // leaves the template's line.
                line == expected
                    || line.match_indices(&inserted).any(|(at, _)| {
                        let rest = &line[at + inserted.len()..];
                        (rest.is_empty() || rest.starts_with(' '))
                            && format!("{}{rest}", &line[..at]) == expected
                    })
            })
    }

    proptest! {
        /// Whatever text an API user sends, it is refused, or every boot
        /// file has exactly the template's lines and directives, the
        /// arguments inside one line.
        #[test]
        fn no_text_adds_a_line_or_a_directive_to_a_boot_file(text in "\\PC*|[ -~\\n\\t\\r]*") {
            let Ok(args) = KernelArgs::parse(&text) else {
                return Ok(());
            };
            let empty = files(&KernelArgs::default());
            for (file, template) in files(&args).iter().zip(&empty) {
                prop_assert!(only_inserts(file, template, &args), "{file:?}");
                for word in args.words() {
                    prop_assert!(!word.contains(|c: char| c.is_control() || REFUSED_IN_TEST.contains(c)));
                }
            }
        }
    }

    const REFUSED_IN_TEST: &str = ferric_common::kernel_args::REFUSED;

    #[test]
    fn the_node_arguments_stay_on_the_kernel_line() {
        let args = KernelArgs::parse("console=ttyS0 ipa-debug=1").unwrap();
        let [ipxe, pxelinux, grub] = files(&args).try_into().unwrap();
        assert!(ipxe.contains(
            "/kernel root=/dev/ram0 text nofb vga=normal console=ttyS0 ipa-debug=1 initrd=ramdisk || goto boot_ramdisk\n"
        ), "{ipxe}");
        assert!(pxelinux.contains(&format!(
            "append initrd={NODE}/ramdisk root=/dev/ram0 text nofb vga=normal console=ttyS0 ipa-debug=1\n"
        )), "{pxelinux}");
        assert!(grub.contains(&format!(
            "    linux {NODE}/kernel root=/dev/ram0 text nofb vga=normal console=ttyS0 ipa-debug=1\n"
        )), "{grub}");
    }
}
