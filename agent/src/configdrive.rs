//! Writing the config drive after a whole-disk image, as IPA does: the
//! `configdrive` argument of `write_image` (a gzipped, base64-encoded ISO
//! 9660 image, or a URL to one) goes into the disk's partition labelled
//! `config-2` when the image has one, else into a new partition at the end
//! of the disk, added to the image's partition table (GPT, whose backup
//! header moves to the disk's end, via gptman; or MBR, whose four entries
//! are edited here).
//!
//! Invariants: the drive is checked (decodes, at most [`MAX_SIZE`], an ISO
//! 9660 image) before the disk is touched; a partition is only added where
//! no partition lies; the drive's contents are never logged, only its size.

use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use base64::Engine as _;

/// Ironic's and IPA's limit, and the size of a new partition.
pub const MAX_SIZE: u64 = 64 << 20;
/// New partitions start on a MiB boundary, as parted places them.
const ALIGN: u64 = 1 << 20;
/// The Linux filesystem partition type, as sgdisk's 8300 (mixed-endian).
const LINUX_FS: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// Where the drive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// `existing`, `gpt` or `mbr` (a partition added to that table).
    pub how: &'static str,
    pub offset: u64,
    pub bytes: u64,
}

/// The drive's bytes from the `configdrive` argument.
///
/// # Errors
/// What is wrong with it, in words for `last_error`.
pub async fn fetch(configdrive: &str) -> Result<Vec<u8>, String> {
    let encoded = if configdrive.starts_with("http://") || configdrive.starts_with("https://") {
        let shown = crate::image::display_url(configdrive);
        let response = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| e.to_string())?
            .get(configdrive)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("could not download the config drive from {shown}: {e}"))?;
        if response.content_length().unwrap_or(0) > 2 * MAX_SIZE {
            return Err(format!("the config drive at {shown} is too large"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("could not download the config drive from {shown}: {e}"))?;
        // Served as it is stored: base64 text, or the image itself.
        match std::str::from_utf8(&body) {
            Ok(text) => text.to_owned(),
            Err(_) => return check(ungzip(&body)?),
        }
    } else {
        configdrive.to_owned()
    };
    let compact: String = encoded.split_whitespace().collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("the config drive is not base64: {e}"))?;
    check(ungzip(&decoded)?)
}

/// Gunzips `bytes` (bounded by [`MAX_SIZE`]), or takes them as they are
/// when they are not gzip, as IPA does.
fn ungzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the config drive is not valid gzip: {e}"))?;
    Ok(out)
}

fn check(drive: Vec<u8>) -> Result<Vec<u8>, String> {
    if drive.len() as u64 > MAX_SIZE {
        return Err(format!(
            "Config drive size exceeds maximum limit of {}MiB",
            MAX_SIZE >> 20
        ));
    }
    if drive.get(32769..32774) != Some(b"CD001") {
        return Err("the config drive is not an ISO 9660 image".into());
    }
    Ok(drive)
}

/// The label of the filesystem starting at `offset` (ISO 9660 or FAT).
fn label_at(file: &File, offset: u64) -> Option<String> {
    let mut iso = [0_u8; 72];
    if file.read_exact_at(&mut iso, offset + 32768).is_ok() && &iso[1..6] == b"CD001" {
        return Some(String::from_utf8_lossy(&iso[40..72]).trim_end().to_owned());
    }
    let mut boot = [0_u8; 512];
    file.read_exact_at(&mut boot, offset).ok()?;
    if boot[510..] != [0x55, 0xaa] {
        return None;
    }
    // FAT32 keeps its label at 71, FAT12/16 at 43, after a 0x29 signature.
    for (signature, at) in [(66, 71), (38, 43)] {
        if boot[signature] == 0x29 {
            return Some(
                String::from_utf8_lossy(&boot[at..at + 11])
                    .trim_end()
                    .to_owned(),
            );
        }
    }
    None
}

/// Writes `drive` onto `device` after the image.
///
/// # Errors
/// When the disk has no partition table, no room, or cannot be written.
pub fn write(device: &Path, drive: &[u8]) -> Result<Placed, String> {
    let err = |e: std::io::Error| format!("{}: {e}", device.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(err)?;
    let size = file.seek(SeekFrom::End(0)).map_err(err)?;
    let len = drive.len() as u64;
    let placed = match gptman::GPT::find_from(&mut file) {
        Ok(gpt) => place_gpt(&mut file, gpt, size, len)?,
        Err(_) => place_mbr(&mut file, size, len)?,
    };
    file.write_all_at(drive, placed.offset).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(Placed {
        bytes: len,
        ..placed
    })
}

fn place_gpt(file: &mut File, mut gpt: gptman::GPT, size: u64, len: u64) -> Result<Placed, String> {
    let sector = gpt.sector_size;
    for (_, p) in gpt.iter().filter(|(_, p)| p.is_used()) {
        let (start, end) = (p.starting_lba * sector, (p.ending_lba + 1) * sector);
        if end - start >= len && label_at(file, start).as_deref() == Some("config-2") {
            return Ok(Placed {
                how: "existing",
                offset: start,
                bytes: 0,
            });
        }
    }
    // The image's backup header sits where the image ended: move it to
    // the disk's end, then claim the last MAX_SIZE bytes before it.
    gpt.header
        .update_from(file, sector)
        .map_err(|e| format!("the image's GPT: {e}"))?;
    let last = gpt.header.last_usable_lba;
    let sectors = MAX_SIZE / sector;
    let start = ((last + 1).saturating_sub(sectors) * sector / ALIGN * ALIGN) / sector;
    if start < gpt.header.first_usable_lba
        || gpt
            .iter()
            .any(|(_, p)| p.is_used() && p.ending_lba >= start)
    {
        return Err(format!(
            "no room for a {} MiB config drive partition at the end of the disk ({size} bytes)",
            MAX_SIZE >> 20
        ));
    }
    let unique: [u8; 16] = *uuid::Uuid::new_v4().as_bytes();
    let Some((_, slot)) = gpt.iter_mut().find(|(_, p)| p.is_unused()) else {
        return Err("the image's GPT has no free partition entry".into());
    };
    *slot = gptman::GPTPartitionEntry {
        partition_type_guid: LINUX_FS,
        unique_partition_guid: unique,
        starting_lba: start,
        ending_lba: last,
        attribute_bits: 0,
        partition_name: "config-2".into(),
    };
    gpt.write_into(file)
        .map_err(|e| format!("could not write the GPT: {e}"))?;
    Ok(Placed {
        how: "gpt",
        offset: start * sector,
        bytes: 0,
    })
}

/// An MBR partition entry: (index, type, first sector, sectors).
type MbrEntry = (usize, u8, u64, u64);

/// The four primary entries of the MBR in `sector` (mbrman panics on an
/// isohybrid image's partition starting at sector 0, so they are read
/// here: the layout is four 16-byte entries at 446 and 0x55AA at 510).
fn mbr_entries(sector: &[u8; 512]) -> Option<Vec<MbrEntry>> {
    if sector[510..] != [0x55, 0xaa] {
        return None;
    }
    let le32 = |at: usize| {
        u64::from(u32::from_le_bytes([
            sector[at],
            sector[at + 1],
            sector[at + 2],
            sector[at + 3],
        ]))
    };
    Some(
        (0..4)
            .map(|i| {
                let at = 446 + 16 * i;
                (i, sector[at + 4], le32(at + 8), le32(at + 12))
            })
            .collect(),
    )
}

fn place_mbr(file: &mut File, size: u64, len: u64) -> Result<Placed, String> {
    let mut sector = [0_u8; 512];
    file.read_exact_at(&mut sector, 0)
        .map_err(|e| format!("could not read the MBR: {e}"))?;
    let Some(entries) = mbr_entries(&sector) else {
        return Err("the image has no partition table to add the config drive partition to".into());
    };
    let used: Vec<MbrEntry> = entries
        .iter()
        .copied()
        .filter(|e| e.1 != 0 && e.3 > 0)
        .collect();
    if used.is_empty() {
        return Err("the image has no partition table to add the config drive partition to".into());
    }
    for (_, _, start, sectors) in &used {
        let at = start * 512;
        if sectors * 512 >= len && label_at(file, at).as_deref() == Some("config-2") {
            return Ok(Placed {
                how: "existing",
                offset: at,
                bytes: 0,
            });
        }
    }
    let total = size / 512;
    let sectors = MAX_SIZE / 512;
    let start = total.saturating_sub(sectors) * 512 / ALIGN * ALIGN / 512;
    let end = start + sectors;
    if end > u64::from(u32::MAX) {
        return Err("an MBR cannot address a config drive partition past 2 TiB".into());
    }
    if start == 0 || end > total || used.iter().any(|(_, _, s, n)| s + n > start) {
        return Err(format!(
            "no room for a {} MiB config drive partition at the end of the disk",
            MAX_SIZE >> 20
        ));
    }
    let Some((slot, ..)) = entries.iter().find(|e| e.1 == 0 || e.3 == 0) else {
        return Err(
            "the image's MBR has four partitions already: no room for a config drive".into(),
        );
    };
    let at = 446 + 16 * slot;
    let mut entry = [0_u8; 16];
    // Not bootable; CHS "beyond 8 GiB" (as parted writes for LBA use).
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[4] = 0x83;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    file.write_all_at(&entry, at as u64)
        .map_err(|e| format!("could not write the MBR: {e}"))?;
    Ok(Placed {
        how: "mbr",
        offset: start * 512,
        bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(program: &str, args: &[&str]) -> String {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An ISO labelled config-2 holding openstack/latest/user_data.
    fn iso(dir: &Path) -> Vec<u8> {
        let tree = dir.join("tree/openstack/latest");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("user_data"), "#cloud-config\nhostname: h1\n").unwrap();
        let out = dir.join("cd.iso");
        run(
            "xorriso",
            &[
                "-as",
                "genisoimage",
                "-quiet",
                "-o",
                out.to_str().unwrap(),
                "-ldots",
                "-allow-lowercase",
                "-allow-multidot",
                "-l",
                "-J",
                "-r",
                "-V",
                "config-2",
                dir.join("tree").to_str().unwrap(),
            ],
        );
        std::fs::read(out).unwrap()
    }

    fn encoded(bytes: &[u8]) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, bytes).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    /// A 200 MiB disk whose first 8 MiB are an image partitioned with a
    /// `label` table (`gpt` or `dos`).
    fn partitioned(dir: &Path, label: &str) -> std::path::PathBuf {
        let image = dir.join("image");
        File::create(&image).unwrap().set_len(8 << 20).unwrap();
        let script = format!("label: {label}\nstart=2048, size=8192, type=L\n");
        let mut child = Command::new("sfdisk")
            .args(["-q", image.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        // The image on a bigger disk.
        let disk = dir.join("disk");
        let bytes = std::fs::read(&image).unwrap();
        let file = File::create(&disk).unwrap();
        file.set_len(200 << 20).unwrap();
        file.write_all_at(&bytes, 0).unwrap();
        disk
    }

    #[tokio::test]
    async fn a_drive_is_decoded_and_checked_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let drive = iso(dir.path());
        assert_eq!(fetch(&encoded(&drive)).await.unwrap(), drive);
        let plain = base64::engine::general_purpose::STANDARD.encode(&drive);
        assert_eq!(fetch(&plain).await.unwrap(), drive, "gzip is optional");
        assert_eq!(
            fetch("not base64!").await.unwrap_err(),
            "the config drive is not base64: Invalid symbol 33, offset 9."
        );
        assert_eq!(
            fetch(&encoded(b"hello")).await.unwrap_err(),
            "the config drive is not an ISO 9660 image"
        );
        let huge = vec![0_u8; (MAX_SIZE + 1) as usize];
        assert_eq!(
            fetch(&encoded(&huge)).await.unwrap_err(),
            "Config drive size exceeds maximum limit of 64MiB"
        );
    }

    #[test]
    fn a_new_partition_at_the_disks_end_in_gpt_and_mbr_as_the_image_is() {
        for label in ["gpt", "dos"] {
            let dir = tempfile::tempdir().unwrap();
            let drive = iso(dir.path());
            let disk = partitioned(dir.path(), label);
            let placed = write(&disk, &drive).unwrap();
            let dump = run("sfdisk", &["--dump", disk.to_str().unwrap()]);
            // The new partition: the disk's last 64 MiB (GPT: before its
            // backup table), and the image's own partition kept.
            assert!(
                dump.contains("start=        2048, size=        8192"),
                "{label}: {dump}"
            );
            let expected = if label == "gpt" {
                assert_eq!(placed.how, "gpt");
                assert!(dump.contains("name=\"config-2\""), "{dump}");
                // sfdisk verifies both GPT headers and their CRCs.
                let verify = run("sfdisk", &["--verify", disk.to_str().unwrap()]);
                assert!(!verify.contains("corrupt"), "{verify}");
                (200 << 20) - (64 << 20) - (1 << 20)
            } else {
                assert_eq!(placed.how, "mbr");
                (200_u64 << 20) - (64 << 20)
            };
            assert_eq!(placed.offset, expected, "{label}: {dump}");
            let file = File::open(&disk).unwrap();
            assert_eq!(label_at(&file, placed.offset).as_deref(), Some("config-2"));
            let mut back = vec![0_u8; drive.len()];
            file.read_exact_at(&mut back, placed.offset).unwrap();
            assert!(back == drive);
            // A second write finds the partition and reuses it.
            let again = write(&disk, &drive).unwrap();
            assert_eq!((again.how, again.offset), ("existing", placed.offset));
            let dump_again = run("sfdisk", &["--dump", disk.to_str().unwrap()]);
            assert_eq!(dump_again.matches("start=").count(), 2, "{dump_again}");
        }
    }

    #[test]
    fn an_isohybrid_images_partition_at_sector_0_keeps_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let drive = iso(dir.path());
        // As xorriso's isohybrid MBR: one bootable partition of type 0x17
        // from sector 0 over the whole ISO.
        let disk = dir.path().join("disk");
        let file = File::create(&disk).unwrap();
        file.set_len(100 << 20).unwrap();
        let mut entry = [0_u8; 16];
        entry[0] = 0x80;
        entry[4] = 0x17;
        entry[12..16].copy_from_slice(&45056_u32.to_le_bytes());
        file.write_all_at(&entry, 446).unwrap();
        file.write_all_at(&[0x55, 0xaa], 510).unwrap();
        let placed = write(&disk, &drive).unwrap();
        assert_eq!((placed.how, placed.offset), ("mbr", 36 << 20));
        let dump = run("sfdisk", &["--dump", disk.to_str().unwrap()]);
        assert!(
            dump.contains("start=           0, size=       45056, type=17, bootable"),
            "{dump}"
        );
        assert!(
            dump.contains("start=       73728, size=      131072, type=83"),
            "{dump}"
        );
    }

    #[test]
    fn a_disk_without_a_partition_table_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let drive = iso(dir.path());
        let disk = dir.path().join("bare");
        std::fs::write(&disk, vec![0x11_u8; 100 << 20]).unwrap();
        assert_eq!(
            write(&disk, &drive).unwrap_err(),
            "the image has no partition table to add the config drive partition to"
        );
        assert!(std::fs::read(&disk).unwrap().iter().all(|b| *b == 0x11));
    }
}
