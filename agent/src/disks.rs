//! The machine's disks, as the kernel lists them under `/sys/block`, and
//! the choice of the one to install to, as ironic-python-agent makes it:
//! the disk matching every root-device hint (`name`, `serial`, `wwn`,
//! `wwn_with_extension`, `wwn_vendor_extension`, `size` in GiB, `rotational`,
//! `model`, `vendor`, `hctl`, `by_path`, with ironic-lib's operators), or,
//! without hints, the smallest disk of at least 4 GiB.
//!
//! Invariant: pure but for reading `/sys` (no device is opened here);
//! loop, RAM, optical, device-mapper and partition entries are never
//! candidates.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The smallest disk IPA installs to without hints.
const MIN_SIZE: u64 = 4 << 30;
const GIB: u64 = 1 << 30;

/// One disk, with the fields IPA's `BlockDevice` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `/dev/<kernel name>`.
    pub name: String,
    pub size: u64,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub hctl: Option<String>,
    pub by_path: Option<String>,
    /// The partitions the kernel found on it, in bytes from the disk's
    /// start (never candidates themselves; cleaning wipes each).
    pub partitions: Vec<Extent>,
}

/// Where a partition lies on its disk, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Disk {
    /// A device known only by its path and size (one named on the command
    /// line, or a test's file).
    pub fn named(name: String, size: u64) -> Disk {
        Disk {
            name,
            size,
            rotational: false,
            model: None,
            vendor: None,
            serial: None,
            wwn: None,
            hctl: None,
            by_path: None,
            partitions: Vec::new(),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Kernel names that are never install targets.
fn skipped(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "dm-", "md", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The disks under `sys_block` (`/sys/block`), named under `dev_dir`
/// (`/dev`), sorted by name.
pub fn list(sys_block: &Path, dev_dir: &Path) -> Vec<Disk> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut disks: Vec<Disk> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if skipped(&name) {
                return None;
            }
            let dir = entry.path();
            let sectors: u64 = read(&dir.join("size"))?.parse().ok()?;
            let device = dir.join("device");
            let hctl = std::fs::read_link(&device)
                .ok()
                .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| n.split(':').count() == 4);
            Some(Disk {
                name: dev_dir.join(&name).to_string_lossy().into_owned(),
                size: sectors.saturating_mul(512),
                rotational: read(&dir.join("queue/rotational")).as_deref() == Some("1"),
                model: read(&device.join("model")),
                vendor: read(&device.join("vendor")),
                serial: read(&device.join("serial")).or_else(|| read(&dir.join("serial"))),
                wwn: read(&dir.join("wwid")).or_else(|| read(&device.join("wwid"))),
                hctl,
                by_path: by_path(dev_dir, &name),
                partitions: partitions(&dir),
            })
        })
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

/// The partitions under a disk's `/sys/block/<disk>` directory
/// (`<disk>N/start` and `size`, in 512-byte sectors), by start.
fn partitions(dir: &Path) -> Vec<Extent> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Extent> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|part| part.join("partition").exists())
        .filter_map(|part| {
            let sectors = |file: &str| read(&part.join(file))?.parse::<u64>().ok();
            Some(Extent {
                start: sectors("start")?.saturating_mul(512),
                len: sectors("size")?.saturating_mul(512),
            })
        })
        .collect();
    found.sort_by_key(|p| p.start);
    found
}

/// The `/dev/disk/by-path` link to `name`, when udev made one.
fn by_path(dev_dir: &Path, name: &str) -> Option<String> {
    let links = dev_dir.join("disk/by-path");
    std::fs::read_dir(&links)
        .ok()?
        .filter_map(Result::ok)
        .find(|link| {
            std::fs::read_link(link.path())
                .ok()
                .and_then(|t| t.file_name().map(|n| n == name))
                .unwrap_or(false)
        })
        .map(|link| link.path().to_string_lossy().into_owned())
}

/// The disk to install to.
///
/// # Errors
/// IPA's "No suitable device was found…" when nothing matches.
pub fn choose(disks: &[Disk], hints: Option<&Map<String, Value>>) -> Result<PathBuf, String> {
    match hints.filter(|h| !h.is_empty()) {
        None => disks
            .iter()
            .filter(|d| d.size >= MIN_SIZE)
            .min_by_key(|d| d.size)
            .map(|d| PathBuf::from(&d.name))
            .ok_or_else(|| {
                format!(
                    "No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than {MIN_SIZE}B."
                )
            }),
        Some(hints) => {
            for disk in disks {
                if matches(disk, hints)? {
                    return Ok(PathBuf::from(&disk.name));
                }
            }
            Err(format!(
                "No suitable device was found for deployment using these hints {}",
                Value::Object(hints.clone())
            ))
        }
    }
}

/// Whether `disk` matches every hint.
///
/// # Errors
/// An unknown hint or a malformed value.
fn matches(disk: &Disk, hints: &Map<String, Value>) -> Result<bool, String> {
    for (key, hint) in hints {
        let ok = match key.as_str() {
            "size" => {
                let size = disk.size / GIB;
                compare_int(size, hint).map_err(|e| format!("root device hint size: {e}"))?
            }
            "rotational" => {
                let want = match hint {
                    Value::Bool(b) => *b,
                    Value::String(s) => {
                        matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
                    }
                    Value::Number(n) => n.as_u64() == Some(1),
                    _ => return Err("root device hint rotational must be a boolean".into()),
                };
                disk.rotational == want
            }
            "name" => compare_text(Some(disk.name.as_str()), hint, &|v| {
                if v.starts_with("/dev/") {
                    v.to_owned()
                } else {
                    format!("/dev/{v}")
                }
            }),
            "serial" => compare_text(disk.serial.as_deref(), hint, &str::to_owned),
            "wwn" | "wwn_with_extension" | "wwn_vendor_extension" => {
                compare_text(disk.wwn.as_deref(), hint, &str::to_owned)
            }
            "model" => compare_text(disk.model.as_deref(), hint, &str::to_owned),
            "vendor" => compare_text(disk.vendor.as_deref(), hint, &str::to_owned),
            "hctl" => compare_text(disk.hctl.as_deref(), hint, &str::to_owned),
            "by_path" => compare_text(disk.by_path.as_deref(), hint, &str::to_owned),
            other => return Err(format!("unknown root device hint {other}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A string hint with ironic-lib's operators (`s==` by default, `s!=`,
/// `s>=`, `s>`, `s<=`, `s<`, `<in>` substring, `<or>` alternatives); the
/// comparison ignores case and surrounding blanks, as IPA's.
fn compare_text(value: Option<&str>, hint: &Value, normalize: &dyn Fn(&str) -> String) -> bool {
    let Some(raw) = value else {
        return false;
    };
    let hint = match hint {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let norm = |s: &str| normalize(s.trim()).to_lowercase();
    let value = norm(raw);
    let hint = hint.trim();
    if hint.starts_with("<or>") {
        return hint
            .split("<or>")
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .any(|h| compare_text(Some(raw), &Value::String(h.to_owned()), normalize));
    }
    for (op, test) in [
        ("s==", (|v: &str, h: &str| v == h) as fn(&str, &str) -> bool),
        ("s!=", |v, h| v != h),
        ("s>=", |v, h| v >= h),
        ("s<=", |v, h| v <= h),
        ("s>", |v, h| v > h),
        ("s<", |v, h| v < h),
        ("<in>", |v, h| v.contains(h)),
    ] {
        if let Some(rest) = hint.strip_prefix(op) {
            return test(&value, &norm(rest));
        }
    }
    value == norm(hint)
}

/// An integer hint (`==` by default, `!=`, `>=`, `>`, `<=`, `<`, `<or>`).
fn compare_int(value: u64, hint: &Value) -> Result<bool, String> {
    let text = match hint {
        Value::Number(n) => {
            return n
                .as_u64()
                .map(|n| n == value)
                .ok_or("not a whole number".into());
        }
        Value::String(s) => s.trim().to_owned(),
        _ => return Err("not a number".into()),
    };
    if text.starts_with("<or>") {
        for part in text.split("<or>").map(str::trim).filter(|p| !p.is_empty()) {
            if compare_int(value, &Value::String(part.to_owned()))? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    for op in ["==", "!=", ">=", "<=", ">", "<"] {
        if let Some(rest) = text.strip_prefix(op) {
            let n: u64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?;
            return Ok(match op {
                "==" => value == n,
                "!=" => value != n,
                ">=" => value >= n,
                "<=" => value <= n,
                ">" => value > n,
                _ => value < n,
            });
        }
    }
    let n: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    Ok(value == n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn disk(name: &str, gib: u64, serial: &str, rotational: bool) -> Disk {
        Disk {
            name: format!("/dev/{name}"),
            size: gib * GIB,
            rotational,
            model: Some("QEMU HARDDISK".into()),
            vendor: Some("ATA".into()),
            serial: Some(serial.into()),
            wwn: Some(format!("0x5000{serial}")),
            hctl: Some("0:0:0:0".into()),
            by_path: None,
            partitions: Vec::new(),
        }
    }

    fn pick(disks: &[Disk], hints: Value) -> Result<PathBuf, String> {
        choose(disks, hints.as_object())
    }

    #[test]
    fn hints_pick_the_disk_as_ipa_does() {
        let disks = [
            disk("sda", 100, "S-A", true),
            disk("sdb", 20, "S-B", false),
            disk("vda", 2, "S-C", false),
        ];
        assert_eq!(
            pick(&disks, json!({"serial": "s-b"})).unwrap(),
            PathBuf::from("/dev/sdb")
        );
        assert_eq!(
            pick(&disks, json!({"name": "sda"})).unwrap(),
            PathBuf::from("/dev/sda")
        );
        assert_eq!(
            pick(&disks, json!({"name": "s== /dev/vda"})).unwrap(),
            PathBuf::from("/dev/vda")
        );
        assert_eq!(
            pick(&disks, json!({"size": ">= 50"})).unwrap(),
            PathBuf::from("/dev/sda")
        );
        assert_eq!(
            pick(&disks, json!({"size": 20, "rotational": false})).unwrap(),
            PathBuf::from("/dev/sdb")
        );
        assert_eq!(
            pick(&disks, json!({"serial": "<or> S-X <or> S-C"})).unwrap(),
            PathBuf::from("/dev/vda")
        );
        assert_eq!(
            pick(
                &disks,
                json!({"model": "<in> harddisk", "rotational": "true"})
            )
            .unwrap(),
            PathBuf::from("/dev/sda")
        );
        assert_eq!(
            pick(&disks, json!({"wwn": "0x5000S-B"})).unwrap(),
            PathBuf::from("/dev/sdb")
        );
    }

    #[test]
    fn without_hints_the_smallest_disk_of_four_gib_and_a_miss_is_an_error() {
        let disks = [
            disk("sda", 100, "S-A", true),
            disk("sdb", 20, "S-B", false),
            disk("vda", 2, "S-C", false),
        ];
        assert_eq!(pick(&disks, json!({})).unwrap(), PathBuf::from("/dev/sdb"));
        assert_eq!(choose(&disks, None).unwrap(), PathBuf::from("/dev/sdb"));
        let missed = pick(&disks, json!({"serial": "nope"})).unwrap_err();
        assert!(
            missed.starts_with("No suitable device was found for deployment using these hints"),
            "{missed}"
        );
        assert!(
            pick(&[disk("vda", 2, "x", false)], json!({}))
                .unwrap_err()
                .contains("smaller than 4294967296B")
        );
        assert!(
            pick(&disks, json!({"colour": "red"}))
                .unwrap_err()
                .contains("unknown root device hint")
        );
        assert!(pick(&disks, json!({"size": "big"})).is_err());
    }

    #[test]
    fn disks_are_read_from_sys_block_without_loop_or_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("block");
        for (name, sectors, serial) in [
            ("vda", 8_388_608_u64, "V1"),
            ("loop0", 100, "L"),
            ("sdb", 41_943_040, "S2"),
        ] {
            std::fs::create_dir_all(sys.join(name).join("queue")).unwrap();
            std::fs::create_dir_all(sys.join(name).join("device")).unwrap();
            std::fs::write(sys.join(name).join("size"), format!("{sectors}\n")).unwrap();
            std::fs::write(sys.join(name).join("queue/rotational"), "0\n").unwrap();
            std::fs::write(sys.join(name).join("serial"), format!("{serial}\n")).unwrap();
        }
        std::fs::write(sys.join("sdb/device/model"), "Disk 2  \n").unwrap();
        for (part, start, size) in [("sdb2", 4096, 2048), ("sdb1", 2048, 2048)] {
            let dir = sys.join("sdb").join(part);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("partition"), "1\n").unwrap();
            std::fs::write(dir.join("start"), format!("{start}\n")).unwrap();
            std::fs::write(dir.join("size"), format!("{size}\n")).unwrap();
        }
        let disks = list(&sys, Path::new("/dev"));
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["/dev/sdb", "/dev/vda"]);
        assert_eq!(disks[0].size, 20 * GIB);
        assert_eq!(disks[0].model.as_deref(), Some("Disk 2"));
        assert_eq!(disks[1].serial.as_deref(), Some("V1"));
        let mib = 1 << 20;
        assert_eq!(
            disks[0].partitions,
            [
                Extent {
                    start: mib,
                    len: mib
                },
                Extent {
                    start: 2 * mib,
                    len: mib
                }
            ]
        );
        assert!(disks[1].partitions.is_empty());
    }
}
