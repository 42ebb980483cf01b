//! The `ipxe` boot interface's files, where Ironic puts them
//! (`pxe_utils.py`, `ipxe_config.template`, `boot.ipxe`): under `http_root`,
//! the master script `boot.ipxe` (chains `pxelinux.cfg/<mac-with-hyphens>`),
//! the node's `<uuid>/config` and its images `<uuid>/{kernel,ramdisk,boot_iso}`,
//! and one relative symlink `pxelinux.cfg/<mac>` → `../<uuid>/config` per
//! PXE-enabled port.
//!
//! Invariants: every file is written to a temporary name and renamed, so a
//! machine never reads half a script; [`clean_up`] removes everything
//! [`prepare_ramdisk`] wrote for a node (and only that).

use std::io::Write;
use std::path::{Path, PathBuf};

use ferric_common::config::BootConfig;

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

fn node_dir(boot: &BootConfig, node_uuid: &str) -> PathBuf {
    boot.http_root.join(node_uuid)
}

fn mac_path(boot: &BootConfig, mac: &str) -> PathBuf {
    boot.http_root
        .join(&boot.pxe_config_subdir)
        .join(mac.replace(':', "-").to_lowercase())
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

/// The node's script for a ramdisk deploy (Ironic's template, switched to
/// `boot_ramdisk`).
pub fn ramdisk_config(
    boot: &BootConfig,
    node_uuid: &str,
    images: &RamdiskImages,
    ramdisk_opts: Option<&str>,
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
            "kernel {timeout}{} root=/dev/ram0 text {} {} initrd=ramdisk || goto boot_ramdisk\n\
             initrd {timeout}{} || goto boot_ramdisk\n\
             boot\n",
            url("kernel"),
            boot.pxe_append_params,
            ramdisk_opts.unwrap_or(""),
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

/// Writes every file a ramdisk boot of the node needs; returns their paths.
///
/// # Errors
/// When a file cannot be written (what was written is removed again).
pub fn prepare_ramdisk(
    boot: &BootConfig,
    node_uuid: &str,
    macs: &[String],
    images: &RamdiskImages,
    ramdisk_opts: Option<&str>,
) -> std::io::Result<Vec<PathBuf>> {
    let result = (|| {
        let mut written = Vec::new();
        let dir = node_dir(boot, node_uuid);
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
        write_atomic(
            &config,
            ramdisk_config(boot, node_uuid, images, ramdisk_opts).as_bytes(),
        )?;
        written.push(config);
        let script = boot.http_root.join("boot.ipxe");
        write_atomic(&script, boot_script(boot).as_bytes())?;
        for mac in macs {
            let link = mac_path(boot, mac);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(Path::new("..").join(node_uuid).join("config"), &link)?;
            written.push(link);
        }
        Ok(written)
    })();
    if result.is_err() {
        clean_up(boot, node_uuid, macs);
    }
    result
}

/// Removes the node's boot files and per-MAC links (`boot.ipxe` is shared
/// and stays).
pub fn clean_up(boot: &BootConfig, node_uuid: &str, macs: &[String]) {
    for mac in macs {
        let _ = std::fs::remove_file(mac_path(boot, mac));
    }
    let _ = std::fs::remove_dir_all(node_dir(boot, node_uuid));
}
