//! The checksum an image is verified against, as Ironic sends it
//! (`os_hash_algo`/`os_hash_value`, or the older `checksum`, whose length
//! names md5, sha256 or sha512), and the hasher of the bytes as downloaded.

use md5::Md5;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

use super::ImageError;

pub enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algo: &str) -> Option<Hasher> {
        match algo {
            "md5" => Some(Hasher::Md5(Md5::new())),
            "sha256" => Some(Hasher::Sha256(Sha256::new())),
            "sha512" => Some(Hasher::Sha512(Sha512::new())),
            _ => None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// The algorithm and expected value Ironic sent.
pub fn expected_checksum(info: &Value) -> Result<(&'static str, String), ImageError> {
    let s = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let (Some(algo), Some(value)) = (s("os_hash_algo"), s("os_hash_value")) {
        let algo = match algo {
            "md5" => "md5",
            "sha256" => "sha256",
            "sha512" => "sha512",
            other => {
                return Err(ImageError::Unsupported {
                    what: "os_hash_algo",
                    value: other.to_owned(),
                });
            }
        };
        return Ok((algo, value.to_lowercase()));
    }
    let Some(checksum) = s("checksum") else {
        return Err(ImageError::Missing(
            "a checksum (os_hash_algo/os_hash_value or checksum)",
        ));
    };
    let (algo, value) = match checksum.split_once(':') {
        Some((algo, value)) => (algo, value),
        None => match checksum.len() {
            32 => ("md5", checksum),
            64 => ("sha256", checksum),
            128 => ("sha512", checksum),
            _ => {
                return Err(ImageError::Unsupported {
                    what: "checksum",
                    value: checksum.to_owned(),
                });
            }
        },
    };
    match algo {
        "md5" => Ok(("md5", value.to_lowercase())),
        "sha256" => Ok(("sha256", value.to_lowercase())),
        "sha512" => Ok(("sha512", value.to_lowercase())),
        other => Err(ImageError::Unsupported {
            what: "checksum algorithm",
            value: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checksums_come_from_os_hash_or_the_checksum_field() {
        let sha = "a".repeat(64);
        assert_eq!(
            expected_checksum(
                &json!({"os_hash_algo": "sha256", "os_hash_value": sha.to_uppercase()})
            )
            .unwrap(),
            ("sha256", sha.clone())
        );
        assert_eq!(
            expected_checksum(&json!({"checksum": "b".repeat(32)}))
                .unwrap()
                .0,
            "md5"
        );
        assert_eq!(
            expected_checksum(&json!({"checksum": format!("sha512:{}", "c".repeat(128))}))
                .unwrap()
                .0,
            "sha512"
        );
        assert!(expected_checksum(&json!({})).is_err());
        assert!(
            expected_checksum(&json!({"os_hash_algo": "crc32", "os_hash_value": "1"})).is_err()
        );
    }
}
