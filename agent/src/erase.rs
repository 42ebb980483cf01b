//! The agent's clean steps, as ironic-python-agent's generic hardware
//! manager offers them: `erase_devices_metadata` (priority 99) and
//! `erase_devices` (priority 10), over the disks the agent was given: the
//! `--root-device` alone when one was named, else every disk it lists
//! ([`crate::disks`]: never loop, RAM, optical or device-mapper devices, so
//! never a ramdisk or a virtual-media CD it booted from).
//!
//! - `erase_devices_metadata` zeroes the first and the last MiB of each
//!   partition the kernel found on a disk, then of the disk itself (IPA
//!   wipes partitions before their disk too): every partition table (MBR,
//!   GPT and its backup header at the end), filesystem superblock, LVM
//!   label and mdraid superblock (0.90 and 1.0 at the end, 1.1 and 1.2 at
//!   the start) lives there — what `wipefs --all` on each plus
//!   `sgdisk --zap-all` remove.
//! - `erase_devices` lets the device erase itself where it can
//!   ([`crate::secure_erase`]: NVMe format, ATA secure erase), else
//!   discards it (`blkdiscard`, checked: markers written first at the
//!   start, middle and end must read back as zeros), else overwrites it
//!   with zeros; the result says which for each device.
//!
//! Invariant: a step touches only the devices it is given, and fails on the
//! first one it cannot erase (the error names it).

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use serde_json::{Value, json};

use crate::disks::{Disk, Extent};

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
    let erase: fn(&Disk) -> Result<String, String> = match step {
        "erase_devices_metadata" => |disk| {
            erase_metadata(disk)
                .map(|()| "metadata zeroed".to_owned())
                .map_err(|e| e.to_string())
        },
        "erase_devices" => erase_all,
        other => return Err(format!("Unknown clean step {other}")),
    };
    let mut done = Vec::new();
    let mut methods = serde_json::Map::new();
    for disk in disks {
        let how = erase(disk).map_err(|e| format!("Erasing {} failed: {e}", disk.name))?;
        tracing::info!(device = %disk.name, step, how = %how, "device erased");
        done.push(disk.name.clone());
        methods.insert(disk.name.clone(), json!(how));
    }
    Ok(json!({"erased": done, "methods": methods}))
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

/// Zeroes the first and the last MiB of `extent` (all of it when it is
/// smaller than 2 MiB); none of it beyond `disk_size`.
fn zero_ends(file: &mut std::fs::File, extent: Extent, disk_size: u64) -> std::io::Result<()> {
    let end = extent.start.saturating_add(extent.len).min(disk_size);
    let head_end = extent.start.saturating_add(MIB).min(end);
    zero(file, extent.start, head_end.saturating_sub(extent.start))?;
    let tail_start = end.saturating_sub(MIB).max(head_end);
    zero(file, tail_start, end - tail_start)
}

fn erase_metadata(disk: &Disk) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(&disk.name)?;
    for partition in &disk.partitions {
        zero_ends(&mut file, *partition, disk.size)?;
    }
    let whole = Extent {
        start: 0,
        len: disk.size,
    };
    zero_ends(&mut file, whole, disk.size)?;
    file.sync_all()
}

fn erase_all(disk: &Disk) -> Result<String, String> {
    if let Some(how) = crate::secure_erase::erase(&disk.name)? {
        return Ok(how);
    }
    if discard(disk) {
        return Ok("discard".to_owned());
    }
    let overwrite = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).open(&disk.name)?;
        zero(&mut file, 0, disk.size)?;
        file.sync_all()
    };
    overwrite()
        .map(|()| "overwrite".to_owned())
        .map_err(|e| e.to_string())
}

/// Whether `blkdiscard` emptied the device. Some devices accept a discard
/// and keep the data (QEMU's with `discard=ignore`, some SSDs), so a marker
/// is written first at the start, the middle and the end, and each must
/// read back as zeros afterwards.
fn discard(disk: &Disk) -> bool {
    const BLOCK: u64 = 4096;
    if disk.size < 3 * BLOCK {
        return false;
    }
    let samples = [0, (disk.size / 2) & !(BLOCK - 1), disk.size - BLOCK];
    let marked = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk.name)
        .and_then(|mut f| {
            for at in samples {
                f.seek(SeekFrom::Start(at))?;
                f.write_all(&[0xA5; BLOCK as usize])?;
            }
            f.sync_all()
        });
    if marked.is_err() {
        return false;
    }
    let ran = std::process::Command::new("blkdiscard")
        .arg(&disk.name)
        .output()
        .is_ok_and(|out| out.status.success());
    if !ran {
        return false;
    }
    let mut block = [0u8; BLOCK as usize];
    std::fs::File::open(&disk.name).is_ok_and(|mut f| {
        samples.iter().all(|at| {
            f.seek(SeekFrom::Start(*at)).is_ok()
                && f.read_exact(&mut block).is_ok()
                && block.iter().all(|b| *b == 0)
        })
    })
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
    fn metadata_erasure_wipes_each_partitions_ends_before_the_disks() {
        let dir = tempfile::tempdir().unwrap();
        let mut sda = disk(dir.path(), "sda", 16 * MIB);
        sda.partitions = vec![
            Extent {
                start: MIB,
                len: 6 * MIB,
            },
            Extent {
                start: 7 * MIB,
                len: MIB / 2,
            },
        ];
        let done = run("erase_devices_metadata", &[sda]).unwrap();
        assert_eq!(done["methods"].as_object().unwrap().len(), 1);
        let bytes = std::fs::read(dir.path().join("sda")).unwrap();
        let zeroed = |from: u64, to: u64| bytes[from as usize..to as usize].iter().all(|b| *b == 0);
        let kept =
            |from: u64, to: u64| bytes[from as usize..to as usize].iter().all(|b| *b == 0xAA);
        // The disk's head, the first partition's two ends, all of the small
        // second one, the disk's tail.
        assert!(zeroed(0, 2 * MIB));
        assert!(kept(2 * MIB, 6 * MIB));
        assert!(zeroed(6 * MIB, 7 * MIB + MIB / 2));
        assert!(kept(7 * MIB + MIB / 2, 15 * MIB));
        assert!(zeroed(15 * MIB, 16 * MIB));
    }

    #[test]
    fn full_erasure_overwrites_a_disk_that_cannot_discard() {
        let dir = tempfile::tempdir().unwrap();
        let disks = [disk(dir.path(), "sda", 3 * MIB)];
        run("erase_devices", &disks).unwrap();
        let sda = std::fs::read(dir.path().join("sda")).unwrap();
        assert!(sda.iter().all(|b| *b == 0));
        // A file is no block device: neither a tool nor a discard touched it.
        let path = disks[0].name.clone();
        assert_eq!(
            run("erase_devices", &disks).unwrap()["methods"][&path],
            "overwrite"
        );
        let unknown = run("erase_everything", &disks);
        assert_eq!(unknown.unwrap_err(), "Unknown clean step erase_everything");
    }
}
