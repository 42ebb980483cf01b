//! Writing an instance image to the root device, as IPA's `write_image`
//! does for a raw whole-disk image: streamed from the first URL of
//! `image_info` straight onto the device, hashed on the way, synced, and
//! checked against `os_hash_algo`/`os_hash_value` (or the older `checksum`,
//! whose length names md5, sha256 or sha512). A mismatch is an error naming
//! both values.

use std::path::Path;

use futures_util::StreamExt as _;
use md5::Md5;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncWriteExt as _;

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image_info is missing {0}")]
    Missing(&'static str),
    #[error("unsupported {what} {value}")]
    Unsupported { what: &'static str, value: String },
    #[error("could not download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("could not write {device}: {reason}")]
    Write { device: String, reason: String },
    #[error(
        "Image failed to verify against checksum. location: {url}; image ID: {id}; image checksum: {expected}; verification checksum: {actual}"
    )]
    Checksum {
        url: String,
        id: String,
        expected: String,
        actual: String,
    },
}

/// A URL as it may be shown or logged: without credentials and query
/// string (Swift temp URLs sign their query).
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{host}/{path}")
        }
        None => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_owned(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub image_id: String,
    pub bytes: u64,
    pub algo: &'static str,
}

enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algo: &str) -> Option<Hasher> {
        match algo {
            "md5" => Some(Hasher::Md5(Md5::new())),
            "sha256" => Some(Hasher::Sha256(Sha256::new())),
            "sha512" => Some(Hasher::Sha512(Sha512::new())),
            _ => None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// The algorithm and expected value Ironic sent.
fn expected_checksum(info: &Value) -> Result<(&'static str, String), ImageError> {
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

/// Streams the image onto `device` and verifies it.
///
/// # Errors
/// [`ImageError`] for bad `image_info`, a failed download or write, or a
/// checksum mismatch.
pub async fn write_image(info: &Value, device: &Path) -> Result<Written, ImageError> {
    let url = info
        .get("urls")
        .and_then(Value::as_array)
        .and_then(|urls| urls.first())
        .and_then(Value::as_str)
        .ok_or(ImageError::Missing("urls"))?
        .to_owned();
    let image_id = info
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(format) = info.get("disk_format").and_then(Value::as_str)
        && !["raw", ""].contains(&format)
    {
        return Err(ImageError::Unsupported {
            what: "disk_format (ferric-agent writes raw images)",
            value: format.to_owned(),
        });
    }
    let (algo, expected) = expected_checksum(info)?;
    let mut hasher = Hasher::new(algo).ok_or(ImageError::Missing("a known algorithm"))?;
    let shown = display_url(&url);
    let download = |reason: String| ImageError::Download {
        url: shown.clone(),
        reason: reason.replace(&url, &shown),
    };
    // A stalled server must not keep the agent busy forever.
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| download(e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| download(e.to_string()))?;
    let write_err = |e: std::io::Error| ImageError::Write {
        device: device.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .await
        .map_err(write_err)?;
    let mut bytes = 0_u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| download(e.to_string()))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_err)?;
        bytes += chunk.len() as u64;
    }
    file.flush().await.map_err(write_err)?;
    file.sync_all().await.map_err(write_err)?;
    let actual = hasher.finish();
    if actual != expected {
        return Err(ImageError::Checksum {
            url: shown,
            id: image_id,
            expected,
            actual,
        });
    }
    tracing::info!(bytes, algo, device = %device.display(), "image written and verified");
    Ok(Written {
        image_id,
        bytes,
        algo,
    })
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

    #[test]
    fn shown_urls_lose_credentials_and_signatures() {
        assert_eq!(
            display_url("http://user:pw@swift:8080/v1/AUTH/c/img?temp_url_sig=abc&x=1"),
            "http://swift:8080/v1/AUTH/c/img"
        );
        assert_eq!(display_url("http://host/img.raw"), "http://host/img.raw");
        assert_eq!(display_url("file:///var/img"), "file:///var/img");
    }
}
