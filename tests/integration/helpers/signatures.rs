//! Disk signatures planted into, and read back from, the files that stand
//! for a VM's disks: partition tables (`sgdisk`), ext4 (`mkfs.ext4`), LVM
//! labels (`pvcreate`), each on a read-write loop device over a byte range
//! of the file (the test's own, never a disk of this machine), and mdraid
//! superblocks written as mdadm lays them out (this machine's kernel may
//! have no md driver for `mdadm --create`). Read back with `wipefs`.

use std::path::Path;
use std::process::Command;

/// A loop device over `[offset, offset + len)` of a file; detached on drop.
struct Window {
    device: String,
}

impl Window {
    fn new(file: &Path, offset: u64, len: u64, read_only: bool) -> Window {
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show"])
            .args(["--offset", &offset.to_string()])
            .args(["--sizelimit", &len.to_string()]);
        if read_only {
            cmd.arg("--read-only");
        }
        let out = cmd.arg(file).output().unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Window {
            device: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The signature types `wipefs` finds in `[offset, offset + len)` of `file`.
pub fn found(file: &Path, offset: u64, len: u64) -> Vec<String> {
    let window = Window::new(file, offset, len, true);
    let out = Command::new("wipefs")
        .args(["--no-act", "--noheadings", "--output", "TYPE"])
        .arg(&window.device)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wipefs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A GPT on `file` with partitions of the given sizes in MiB (0: the rest),
/// the first at 1 MiB.
pub fn gpt(file: &Path, partitions_mib: &[u64]) {
    let mut args = vec!["--clear".to_owned()];
    for (n, mib) in partitions_mib.iter().enumerate() {
        let end = if *mib == 0 {
            "0".to_owned()
        } else {
            format!("+{mib}M")
        };
        args.push(format!("--new={}:0:{end}", n + 1));
    }
    args.push(file.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("sgdisk", &args);
}

/// An ext4 filesystem over `[offset, offset + len)`.
pub fn ext4(file: &Path, offset: u64, len: u64) {
    let window = Window::new(file, offset, len, false);
    run("mkfs.ext4", &["-q", "-F", &window.device]);
}

/// An LVM physical volume label over `[offset, offset + len)` (no volume
/// group: nothing to activate).
pub fn lvm_pv(file: &Path, offset: u64, len: u64) {
    let window = Window::new(file, offset, len, false);
    run(
        "pvcreate",
        &["-q", "-f", "--devices", &window.device, &window.device],
    );
}

fn write_at(file: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// `bytes` bytes of `0x5a` at `offset`: data no metadata erase may touch.
pub fn sentinel(file: &Path, offset: u64, bytes: usize) {
    write_at(file, offset, &vec![0x5a; bytes]);
}

/// Whether the sentinel at `offset` is still there.
pub fn sentinel_kept(file: &Path, offset: u64, bytes: usize) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; bytes];
    f.read_exact(&mut buf).unwrap();
    buf.iter().all(|b| *b == 0x5a)
}

const MD_MAGIC: u32 = 0xa92b_4efc;

/// An mdraid 1.2 member superblock (4 KiB into the member at `offset` of
/// `len`): a two-disk RAID1's first member, checksummed as md does.
pub fn md_1_2(file: &Path, offset: u64, len: u64) {
    let max_dev = 2_usize;
    let mut sb = vec![0u8; 256 + 2 * max_dev];
    let put32 =
        |sb: &mut Vec<u8>, at: usize, v: u32| sb[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |sb: &mut Vec<u8>, at: usize, v: u64| sb[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut sb, 0, MD_MAGIC);
    put32(&mut sb, 4, 1); // major version
    sb[16..32].copy_from_slice(b"ferric-md-uuid-1");
    sb[32..40].copy_from_slice(b"ferric:0");
    put32(&mut sb, 72, 1); // level
    put32(&mut sb, 92, 2); // raid disks
    put64(&mut sb, 128, 2048); // data offset, sectors
    put64(&mut sb, 136, len / 512 - 2048); // data size
    put64(&mut sb, 144, 8); // super offset: 4 KiB
    put32(&mut sb, 220, max_dev as u32);
    sb[258] = 1; // dev_roles: [0, 1]
    let mut sum: u64 = sb
        .chunks_exact(4)
        .map(|w| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    if sb.len() % 4 == 2 {
        let tail = &sb[sb.len() - 2..];
        sum += u64::from(u16::from_le_bytes([tail[0], tail[1]]));
    }
    let csum = (sum & 0xffff_ffff) + (sum >> 32);
    put32(&mut sb, 216, csum as u32);
    write_at(file, offset + 4096, &sb);
}

/// An mdraid 0.90 superblock at the end of `[0, size)` of `file` (the last
/// 64 KiB-aligned 64 KiB), as a whole-disk member has it.
pub fn md_0_90(file: &Path, size: u64) {
    let words: [u32; 16] = [
        MD_MAGIC,
        0,
        90,
        0,
        0,
        0x1111_1111,
        0,
        1,
        0,
        2,
        2,
        0,
        0,
        0x2222_2222,
        0x3333_3333,
        0x4444_4444,
    ];
    let sb: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    write_at(file, (size & !0xffff) - 0x10000, &sb);
}
