//! The agent's clean steps, as ironic-python-agent's generic hardware
//! manager offers them: `erase_devices_metadata` (priority 99) and
//! `erase_devices` (priority 10), over the disks the agent was given: the
//! `--root-device` alone when one was named, else every disk it lists
//! ([`crate::disks`]: never loop, RAM, optical or device-mapper devices, so
//! never a ramdisk or a virtual-media CD it booted from).
//!
//! - `erase_devices_metadata` zeroes the first and the last MiB of each
//!   disk: every partition table (MBR, GPT and its backup header at the
//!   end), filesystem superblock, LVM label and mdraid superblock (0.90 and
//!   1.0 at the end, 1.1 and 1.2 at the start) lives there — what
//!   `wipefs --all` plus `sgdisk --zap-all` remove.
//! - `erase_devices` discards the whole disk where the device supports it
//!   (`blkdiscard`, then the first MiB read back as zeros), else overwrites
//!   it with zeros.
//!
//! Invariant: a step touches only the devices it is given, and fails on the
//! first one it cannot erase (the error names it).

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use serde_json::{Value, json};

use crate::disks::Disk;

const MIB: u64 = 1 << 20;

/// The clean steps offered, in IPA's shape.
pub fn clean_steps() -> Value {
    let step = |name: &str, priority: u32| {
        json!({"step": name, "priority": priority, "interface": "deploy",
               "reboot_requested": false, "abortable": true})
    };
    json!([
        step("erase_devices_metadata", 99),
        step("erase_devices", 10)
    ])
}

/// Runs `step` over `disks`; what it did.
///
/// # Errors
/// An unknown step, or the device that could not be erased and why.
pub fn run(step: &str, disks: &[Disk]) -> Result<Value, String> {
    let erase: fn(&Disk) -> std::io::Result<()> = match step {
        "erase_devices_metadata" => erase_metadata,
        "erase_devices" => erase_all,
        other => return Err(format!("Unknown clean step {other}")),
    };
    let mut done = Vec::new();
    for disk in disks {
        erase(disk).map_err(|e| format!("Erasing {} failed: {e}", disk.name))?;
        tracing::info!(device = %disk.name, step, "device erased");
        done.push(disk.name.clone());
    }
    Ok(json!({"erased": done}))
}

/// Zeroes `len` bytes from `offset` of an open device.
fn zero(file: &mut std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    let block = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        file.write_all(&block[..n as usize])?;
        left -= n;
    }
    Ok(())
}

fn erase_metadata(disk: &Disk) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(&disk.name)?;
    let head = disk.size.min(MIB);
    zero(&mut file, 0, head)?;
    if disk.size > MIB {
        let tail_start = disk.size.saturating_sub(MIB).max(head);
        zero(&mut file, tail_start, disk.size - tail_start)?;
    }
    file.sync_all()
}

fn erase_all(disk: &Disk) -> std::io::Result<()> {
    if discard(disk) {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new().write(true).open(&disk.name)?;
    zero(&mut file, 0, disk.size)?;
    file.sync_all()
}

/// Whether `blkdiscard` emptied the device (its first MiB reads as zeros
/// afterwards: some devices accept a discard and keep the data).
fn discard(disk: &Disk) -> bool {
    let ran = std::process::Command::new("blkdiscard")
        .arg(&disk.name)
        .output()
        .is_ok_and(|out| out.status.success());
    if !ran {
        return false;
    }
    let mut head = vec![0u8; disk.size.min(MIB) as usize];
    std::fs::File::open(&disk.name)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head.iter().all(|b| *b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "disk": a file of `size` bytes full of 0xAA.
    fn disk(dir: &std::path::Path, name: &str, size: u64) -> Disk {
        let path = dir.join(name);
        std::fs::write(&path, vec![0xAA; size as usize]).unwrap();
        Disk::named(path.to_string_lossy().into_owned(), size)
    }

    #[test]
    fn metadata_erasure_zeroes_both_ends_of_every_disk_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let disks = [
            disk(dir.path(), "sda", 4 * MIB),
            disk(dir.path(), "sdb", MIB / 2),
        ];
        let done = run("erase_devices_metadata", &disks).unwrap();
        assert_eq!(done["erased"].as_array().unwrap().len(), 2);
        let sda = std::fs::read(dir.path().join("sda")).unwrap();
        assert_eq!(sda.len() as u64, 4 * MIB);
        assert!(sda[..MIB as usize].iter().all(|b| *b == 0));
        assert!(sda[(3 * MIB) as usize..].iter().all(|b| *b == 0));
        assert!(
            sda[MIB as usize..(3 * MIB) as usize]
                .iter()
                .all(|b| *b == 0xAA)
        );
        let sdb = std::fs::read(dir.path().join("sdb")).unwrap();
        assert!(sdb.iter().all(|b| *b == 0));
    }

    #[test]
    fn full_erasure_overwrites_a_disk_that_cannot_discard() {
        let dir = tempfile::tempdir().unwrap();
        let disks = [disk(dir.path(), "sda", 3 * MIB)];
        run("erase_devices", &disks).unwrap();
        let sda = std::fs::read(dir.path().join("sda")).unwrap();
        assert!(sda.iter().all(|b| *b == 0));
        let unknown = run("erase_everything", &disks);
        assert_eq!(unknown.unwrap_err(), "Unknown clean step erase_everything");
    }
}
