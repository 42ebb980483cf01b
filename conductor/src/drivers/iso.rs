//! Boot ISOs built from a kernel and a ramdisk, for virtual media, as
//! Ironic builds them (it runs mkisofs; Ferric runs `xorriso -as mkisofs`):
//! `/vmlinuz`, `/initrd` and the kernel command line in the loader's
//! configuration; BIOS through ISOLINUX (`[deploy] isolinux_bin`,
//! `ldlinux_c32`), UEFI through the operator's EFI system partition image
//! (`[deploy] esp_image`, whose boot loader reads `/EFI/BOOT/grub.cfg`).
//!
//! Invariant: the ISO appears at its destination whole (written beside it,
//! then renamed) or not at all. Blocking: run it on the blocking pool.

use std::path::Path;
use std::process::Command;

use ferric_common::config::BootConfig;
use ferric_common::kernel_args::KernelArgs;

/// What to put on the ISO.
pub struct IsoSpec<'a> {
    pub kernel: &'a Path,
    pub ramdisk: &'a Path,
    /// The kernel command line.
    pub params: &'a KernelArgs,
    pub uefi: bool,
}

/// Builds the ISO at `dest`.
///
/// # Errors
/// A missing boot loader or `xorriso`, or its failure, in words an
/// operator can act on.
pub fn build(boot: &BootConfig, spec: &IsoSpec<'_>, dest: &Path) -> Result<(), String> {
    let tree = WorkDir(dest.with_extension("iso.tree"));
    let _ = std::fs::remove_dir_all(tree.path());
    std::fs::create_dir_all(tree.path())
        .map_err(|e| format!("cannot make {}: {e}", tree.path().display()))?;
    let put = |from: &Path, to: &str| -> Result<(), String> {
        let target = tree.path().join(to);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::copy(from, &target)
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} into the ISO: {e}", from.display()))
    };
    let write = |to: &str, text: String| -> Result<(), String> {
        let target = tree.path().join(to);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&target, text).map_err(|e| format!("{}: {e}", target.display()))
    };
    put(spec.kernel, "vmlinuz")?;
    put(spec.ramdisk, "initrd")?;
    let mut args: Vec<String> = [
        "-as",
        "mkisofs",
        "-quiet",
        "-J",
        "-r",
        "-V",
        "VMEDIA_BOOT_ISO",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    if spec.uefi {
        let Some(esp) = &boot.esp_image else {
            return Err(
                "building a UEFI boot ISO needs [deploy] esp_image (an EFI system partition image whose boot loader reads /EFI/BOOT/grub.cfg, as Ironic's esp_image); or boot the node in bios mode, or give a prebuilt ISO"
                    .to_owned(),
            );
        };
        put(esp, "efiboot.img")?;
        write(
            "EFI/BOOT/grub.cfg",
            format!(
                "set default=0\nset timeout=5\nmenuentry \"boot\" {{\n    linux /vmlinuz {}\n    initrd /initrd\n}}\n",
                spec.params
            ),
        )?;
        args.extend(["-e", "efiboot.img", "-no-emul-boot"].map(str::to_owned));
    } else {
        for loader in [&boot.isolinux_bin, &boot.ldlinux_c32] {
            if !loader.is_file() {
                return Err(format!(
                    "building a BIOS boot ISO needs {} ([deploy] isolinux_bin / ldlinux_c32; Debian: isolinux, syslinux-common)",
                    loader.display()
                ));
            }
        }
        put(&boot.isolinux_bin, "isolinux/isolinux.bin")?;
        put(&boot.ldlinux_c32, "isolinux/ldlinux.c32")?;
        write(
            "isolinux/isolinux.cfg",
            format!(
                "DEFAULT boot\nPROMPT 0\nLABEL boot\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd {}\n",
                spec.params
            ),
        )?;
        args.extend(
            [
                "-b",
                "isolinux/isolinux.bin",
                "-c",
                "isolinux/boot.cat",
                "-no-emul-boot",
                "-boot-load-size",
                "4",
                "-boot-info-table",
            ]
            .map(str::to_owned),
        );
    }
    let dir = dest
        .parent()
        .ok_or_else(|| format!("{} has no folder", dest.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let partial = dest.with_extension("iso.part");
    let out = Command::new("xorriso")
        .args(&args)
        .arg("-o")
        .arg(&partial)
        .arg(tree.path())
        .output()
        .map_err(|e| format!("cannot run xorriso (Debian: xorriso) to build the boot ISO: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "xorriso could not build the boot ISO: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::rename(&partial, dest).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot publish {}: {e}", dest.display())
    })
}

/// The ISO's file tree while it is built, removed when dropped.
struct WorkDir(std::path::PathBuf);

impl WorkDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
