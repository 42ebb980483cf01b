//! What an image is, from its first bytes, and whether it may be written:
//! the compression around it (gzip, zstd, xz) and the disk format inside
//! (as Ironic's image format inspector names them), checked against the
//! format Ironic declared (`disk_format`) and the lookup's
//! `permitted_image_formats`, as ironic-python-agent checks them.
//!
//! Invariant: only raw-like images (`raw`, `gpt`, `iso`: written byte for
//! byte) and `qcow2` (converted) are ever written; with deep inspection on
//! (the default) a declared format must match the detected one.

/// The compression around an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    /// The most bytes [`Compression::detect`] looks at.
    pub const PREFIX: usize = 6;

    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

/// The most bytes [`detect`] looks at (an ISO's volume descriptor).
pub const PREFIX: usize = 32 * 1024 + 8;

/// The disk format of an image from its first bytes (up to [`PREFIX`]).
pub fn detect(prefix: &[u8]) -> &'static str {
    let at = |offset: usize, magic: &[u8]| prefix.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &super::qcow2::MAGIC) {
        "qcow2"
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        "vmdk"
    } else if at(0, b"vhdxfile") {
        "vhdx"
    } else if at(0, b"conectix") {
        "vpc"
    } else if at(0, b"QED\0") {
        "qed"
    } else if at(0, b"LUKS\xba\xbe") {
        "luks"
    } else if at(0x40, &0xbeda_107f_u32.to_le_bytes()) {
        "vdi"
    } else if at(32769, b"CD001") {
        "iso"
    } else if at(512, b"EFI PART") {
        "gpt"
    } else {
        "raw"
    }
}

/// Formats written byte for byte.
fn raw_like(format: &str) -> bool {
    matches!(format, "raw" | "gpt" | "iso")
}

/// What the image checks decide from.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `permitted_image_formats` from the lookup.
    pub permitted: Vec<String>,
    /// `disable_deep_image_inspection` from the lookup.
    pub deep_inspection_disabled: bool,
}

impl Default for Policy {
    /// Ironic 39's defaults.
    fn default() -> Policy {
        Policy {
            permitted: ["raw", "gpt", "qcow2", "iso"].map(String::from).to_vec(),
            deep_inspection_disabled: false,
        }
    }
}

/// Whether an image detected as `detected` may be written when Ironic
/// declared `declared`; the error is the operator's reason.
///
/// # Errors
/// A refusal in IPA's words ("Security: …").
pub fn check(declared: Option<&str>, detected: &str, policy: &Policy) -> Result<(), String> {
    let declared = declared.filter(|d| !d.is_empty() && *d != "unknown");
    if !policy.deep_inspection_disabled {
        if !policy.permitted.iter().any(|p| p == detected) {
            return Err(format!(
                "Security: Detected image format was {detected}, but only {} are allowed",
                policy.permitted.join(", ")
            ));
        }
        if let Some(declared) = declared
            && declared != detected
            && !(raw_like(declared) && raw_like(detected))
        {
            return Err(format!(
                "Security: Expected format was {declared}, but image was actually {detected}"
            ));
        }
    }
    if raw_like(detected) || detected == "qcow2" {
        Ok(())
    } else {
        Err(format!(
            "ferric-agent cannot convert {detected} images (raw, gpt, iso and qcow2 it can)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_compressions_are_told_by_their_magic() {
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03"), "qcow2");
        assert_eq!(detect(b"KDMV...."), "vmdk");
        let mut gpt = vec![0_u8; 1024];
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(detect(&gpt), "gpt");
        let mut iso = vec![0_u8; PREFIX];
        iso[32769..32774].copy_from_slice(b"CD001");
        assert_eq!(detect(&iso), "iso");
        assert_eq!(detect(&[0_u8; 100]), "raw");
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(
            Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Compression::Xz
        );
        assert_eq!(Compression::detect(b"QFI"), Compression::None);
    }

    #[test]
    fn a_declared_format_must_match_and_be_permitted() {
        let policy = Policy::default();
        assert!(check(Some("qcow2"), "qcow2", &policy).is_ok());
        assert!(check(None, "qcow2", &policy).is_ok());
        assert!(check(Some("raw"), "gpt", &policy).is_ok());
        assert_eq!(
            check(Some("raw"), "qcow2", &policy).unwrap_err(),
            "Security: Expected format was raw, but image was actually qcow2"
        );
        assert_eq!(
            check(Some("qcow2"), "raw", &policy).unwrap_err(),
            "Security: Expected format was qcow2, but image was actually raw"
        );
        assert_eq!(
            check(None, "vmdk", &policy).unwrap_err(),
            "Security: Detected image format was vmdk, but only raw, gpt, qcow2, iso are allowed"
        );
        let only_raw = Policy {
            permitted: vec!["raw".into()],
            ..Policy::default()
        };
        assert!(check(None, "qcow2", &only_raw).is_err());
        let disabled = Policy {
            deep_inspection_disabled: true,
            ..only_raw
        };
        assert!(check(Some("raw"), "qcow2", &disabled).is_ok());
        assert!(check(None, "vmdk", &disabled).is_err(), "never written");
    }
}
