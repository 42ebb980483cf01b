//! The master image cache: kernels, ramdisks and ISOs fetched from
//! `file://` or `http(s)://`, verified against their checksum, kept once
//! under `image_cache_dir` and hard-linked into each node's boot directory
//! (Ironic's `image_cache.py` / `ImageCache`).
//!
//! Invariants: a file is in the cache only once it was downloaded whole and
//! its checksum matched (written to a temporary name, verified, renamed);
//! many nodes wanting the same source at once download it once (one lock
//! per source); a mismatch or failure leaves nothing behind.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use sha2::Digest;

use crate::destinations::{DestinationPolicy, PolicyResolver};

/// The hash an image must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: Algo,
    /// Lower-case hex.
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn parse(name: &str) -> Option<Algo> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(Algo::Md5),
            "sha256" => Some(Algo::Sha256),
            "sha512" => Some(Algo::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }
}

/// A checksum as `instance_info` gives it: the value, or the URL of a
/// checksum file (`SHA256SUMS`-style) that lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumSpec {
    Value(Checksum),
    Url { url: String, algo: Option<Algo> },
}

impl ChecksumSpec {
    /// Reads `instance_info`: a URL in `image_checksum` or
    /// `image_os_hash_value` is a checksum file; anything else as
    /// [`Checksum::from_instance_info`].
    ///
    /// # Errors
    /// As [`Checksum::from_instance_info`].
    pub fn from_instance_info(
        info: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<ChecksumSpec>, ImageError> {
        let text = |k: &str| info.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let is_url = |v: &str| {
            v.starts_with("http://") || v.starts_with("https://") || v.starts_with("file://")
        };
        if let Some(url) = text("image_os_hash_value").filter(|v| is_url(v)) {
            let algo = text("image_os_hash_algo").and_then(|a| Algo::parse(&a));
            return Ok(Some(ChecksumSpec::Url { url, algo }));
        }
        if let Some(url) = text("image_checksum").filter(|v| is_url(v)) {
            return Ok(Some(ChecksumSpec::Url { url, algo: None }));
        }
        Ok(Checksum::from_instance_info(info)?.map(ChecksumSpec::Value))
    }
}

/// The checksum of `image_source` in a checksum file, as Ironic's
/// `get_checksum_from_url`: a file holding only a digest, or lines naming
/// files (`<hex>  <name>`, `<hex> *<name>`, `ALGO (<name>) = <hex>`).
///
/// # Errors
/// Ironic's reasons: an empty file, no valid checksum, no line for the image.
pub fn checksum_from_file(text: &str, image_source: &str) -> Result<Checksum, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let hex_token = |line: &str| {
        line.split(|c: char| c.is_whitespace() || c == '=' || c == '*')
            .find(|t| [32, 64, 128].contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    };
    let digest = match lines.as_slice() {
        [] => return Err("Checksum file empty.".into()),
        [only] if !only.contains(' ') => {
            hex_token(only).ok_or("Invalid checksum file (No valid checksum found)")?
        }
        _ => {
            let name = image_source
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default();
            lines
                .iter()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    l.ends_with(&format!(" {name}"))
                        || l.ends_with(&format!(" *{name}"))
                        || l.contains(&format!("({name})"))
                })
                .find_map(|l| hex_token(l))
                .ok_or_else(|| format!("Checksum file does not contain name {name}"))?
        }
    };
    let algo = match digest.len() {
        64 => Algo::Sha256,
        128 => Algo::Sha512,
        _ => Algo::Md5,
    };
    Ok(Checksum { algo, hex: digest })
}

impl Checksum {
    /// Ironic's forms: `image_os_hash_algo` + `image_os_hash_value`, or
    /// `image_checksum` as bare hex (md5, or by length sha256/sha512) or
    /// `<algo>:<hex>`. `None` when nothing is given.
    ///
    /// # Errors
    /// An unknown algorithm or a value that is not hex of the right length.
    pub fn from_instance_info(
        info: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Checksum>, ImageError> {
        let text = |k: &str| info.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (algo, hex) = match (text("image_os_hash_algo"), text("image_os_hash_value")) {
            (Some(algo), Some(value)) => (
                Algo::parse(&algo).ok_or_else(|| {
                    ImageError::Invalid(format!("Unsupported checksum algorithm {algo}."))
                })?,
                value,
            ),
            _ => match text("image_checksum") {
                None => return Ok(None),
                Some(value) => match value.split_once(':') {
                    Some((algo, hex)) => (
                        Algo::parse(algo).ok_or_else(|| {
                            ImageError::Invalid(format!("Unsupported checksum algorithm {algo}."))
                        })?,
                        hex.to_owned(),
                    ),
                    None => {
                        let algo = match value.len() {
                            64 => Algo::Sha256,
                            128 => Algo::Sha512,
                            _ => Algo::Md5,
                        };
                        (algo, value)
                    }
                },
            },
        };
        let hex = hex.to_ascii_lowercase();
        let length = match algo {
            Algo::Md5 => 32,
            Algo::Sha256 => 64,
            Algo::Sha512 => 128,
        };
        if hex.len() != length || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageError::Invalid(format!(
                "The checksum {hex} is not a valid {} hex digest.",
                algo.name()
            )));
        }
        Ok(Some(Checksum { algo, hex }))
    }
}

/// Why an image could not be had; the message names the image.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Invalid(String),
    #[error("Failed to fetch image {image}: {reason}")]
    Fetch { image: String, reason: String },
    #[error(
        "Image {image} failed to verify against checksum. Expected {algo} {expected}, got {actual}."
    )]
    Mismatch {
        image: String,
        algo: &'static str,
        expected: String,
        actual: String,
    },
}

/// A running image checksum of any [`Algo`].
pub enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: Algo) -> Hasher {
        match algo {
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The checksum, lowercase hex.
    pub fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// System paths a `file://` URL may never read (Ironic's
/// `BLOCKED_FILE_URL_PATHS`), whatever is allowed.
const BLOCKED_FILE_URL_PATHS: [&str; 6] = ["/dev", "/sys", "/proc", "/boot", "/etc", "/run"];

/// The local file a `file://` URL names, if it is allowed: the path is
/// resolved (symlinks and `..` included) before it is checked, so nothing
/// outside `allowed` can be read through a link.
///
/// # Errors
/// Ironic's ImageRefValidationFailed wording.
pub fn allowed_file(source: &str, allowed: &[PathBuf]) -> Result<PathBuf, ImageError> {
    let refused = |reason: String| {
        ImageError::Invalid(format!(
            "Validation of image href {source} failed, reason: {reason}"
        ))
    };
    let path = source.strip_prefix("file://").unwrap_or(source);
    let blocked = |p: &Path| {
        BLOCKED_FILE_URL_PATHS
            .iter()
            .find(|b| p.starts_with(b))
            .map(|bad| {
                refused(format!(
                    "Security: The path {bad} is not permitted in file URLs"
                ))
            })
    };
    let not_allowed = || {
        refused(format!(
            "Security: Path {path} is not allowed for image source file URLs"
        ))
    };
    // Judged on the path as written first, so the answer never tells
    // whether a file exists where no image may be read.
    let written = Path::new(path);
    if let Some(refusal) = blocked(written) {
        return Err(refusal);
    }
    let lexically_allowed = !written
        .components()
        .any(|c| c == std::path::Component::ParentDir)
        && allowed.iter().any(|dir| written.starts_with(dir));
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) if lexically_allowed => {
            return Err(refused("Specified image file not found.".into()));
        }
        Err(_) => return Err(not_allowed()),
    };
    if let Some(refusal) = blocked(&real) {
        return Err(refusal);
    }
    let permitted = allowed
        .iter()
        .any(|dir| std::fs::canonicalize(dir).is_ok_and(|dir| real.starts_with(dir)));
    if !permitted || !real.is_file() {
        return Err(not_allowed());
    }
    Ok(real)
}

/// The cache; one per conductor.
pub struct ImageCache {
    dir: PathBuf,
    allowed_file_paths: Vec<PathBuf>,
    max_bytes: u64,
    ttl: std::time::Duration,
    limits: DownloadLimits,
    policy: Arc<DestinationPolicy>,
    http: reqwest::Client,
    /// One lock per source, so concurrent fetches of one image run once.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// How many times an image was actually downloaded (for tests and logs).
    downloads: Mutex<HashMap<String, usize>>,
}

/// Bounds of one image download (`[conductor] image_download_*`).
#[derive(Debug, Clone, Copy)]
pub struct DownloadLimits {
    /// To have the server accept the connection.
    pub connect: std::time::Duration,
    /// The longest silence while the image comes.
    pub read: std::time::Duration,
    /// The whole download.
    pub total: std::time::Duration,
    /// The largest image.
    pub max_bytes: u64,
}

/// Where image and checksum files may be read from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The only directories `file://` URLs read.
    pub allowed_file_paths: Vec<PathBuf>,
    /// Where http(s) URLs may lead.
    pub destinations: DestinationPolicy,
}

impl ImageCache {
    /// A cache in `dir` of at most `max_bytes`, images unused for `ttl`
    /// cleaned, each download from `sources` within `limits`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(
        dir: PathBuf,
        sources: Sources,
        max_bytes: u64,
        ttl: std::time::Duration,
        limits: DownloadLimits,
    ) -> Result<ImageCache, reqwest::Error> {
        let policy = Arc::new(sources.destinations);
        let http = reqwest::Client::builder()
            .connect_timeout(limits.connect)
            .read_timeout(limits.read)
            .redirect(policy.redirects())
            .dns_resolver(Arc::new(PolicyResolver(Arc::clone(&policy))))
            .build()?;
        Ok(ImageCache {
            dir,
            allowed_file_paths: sources.allowed_file_paths,
            max_bytes,
            ttl,
            limits,
            policy,
            http,
            inflight: Mutex::default(),
            downloads: Mutex::default(),
        })
    }

    /// Why a download failed, from reqwest's error, in words an operator
    /// acts on (never with the URL: it may hold credentials).
    fn http_failure(&self, e: &reqwest::Error) -> String {
        if let Some(refused) = DestinationPolicy::refusal_in(e) {
            refused.to_string()
        } else if e.is_connect() && e.is_timeout() {
            format!(
                "the image server did not accept the connection within {} s ([conductor] image_download_connect_timeout_secs)",
                self.limits.connect.as_secs()
            )
        } else if e.is_timeout() {
            format!(
                "the image server sent nothing for {} s ([conductor] image_download_read_timeout_secs)",
                self.limits.read.as_secs()
            )
        } else {
            let mut text = e.to_string();
            if let Some(url) = e.url() {
                text = text.replace(url.as_str(), "the image");
            }
            text
        }
    }

    /// The answer to a GET of `url`, refused before anything is sent when
    /// the URL names a refused address, and before its body is read when
    /// it came from one (see [`crate::destinations`]).
    async fn get(&self, url: &str) -> Result<reqwest::Response, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        self.policy.check_url(&parsed).map_err(|r| r.to_string())?;
        let response = self
            .http
            .get(parsed)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| self.http_failure(&e))?;
        if let Some(peer) = response.remote_addr() {
            self.policy.check(peer).map_err(|r| r.to_string())?;
        }
        Ok(response)
    }

    /// How many times `source` was downloaded by this cache.
    pub fn download_count(&self, source: &str) -> usize {
        self.downloads
            .lock()
            .map(|d| d.get(source).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn master_path(&self, source: &str, checksum: Option<&Checksum>) -> PathBuf {
        let mut key = sha2::Sha256::new();
        key.update(source.as_bytes());
        if let Some(c) = checksum {
            key.update(c.hex.as_bytes());
        }
        self.dir.join(hex::encode(key.finalize()))
    }

    /// Turns a checksum spec into the checksum of `source` (reading the
    /// checksum file when it is a URL).
    ///
    /// # Errors
    /// When the checksum file cannot be read or does not list the image.
    pub async fn resolve(&self, spec: &ChecksumSpec, source: &str) -> Result<Checksum, ImageError> {
        let (url, algo) = match spec {
            ChecksumSpec::Value(c) => return Ok(c.clone()),
            ChecksumSpec::Url { url, algo } => (url, algo),
        };
        let failed = |reason: String| ImageError::Fetch {
            image: ferric_common::redact::url_credentials(url).into_owned(),
            reason,
        };
        let text = if url.starts_with("file://") {
            let path = allowed_file(url, &self.allowed_file_paths)?;
            tokio::fs::read_to_string(path)
                .await
                .map_err(|e| failed(e.to_string()))?
        } else {
            self.get(url)
                .await
                .map_err(failed)?
                .text()
                .await
                .map_err(|e| failed(self.http_failure(&e)))?
        };
        let mut checksum = checksum_from_file(&text, source).map_err(failed)?;
        if let Some(algo) = algo {
            checksum.algo = *algo;
        }
        Ok(checksum)
    }

    /// The verified master copy of `source`, fetched when missing.
    ///
    /// # Errors
    /// When the source cannot be read or its checksum does not match.
    // The source is not recorded: an image URL may hold credentials.
    #[tracing::instrument(name = "image.fetch", skip_all)]
    pub async fn fetch(
        &self,
        source: &str,
        checksum: Option<&Checksum>,
    ) -> Result<PathBuf, ImageError> {
        let master = self.master_path(source, checksum);
        let lock = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inflight.entry(source.to_owned()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if tokio::fs::try_exists(&master).await.unwrap_or(false) {
            return Ok(master);
        }
        let failed = |reason: String| ImageError::Fetch {
            image: ferric_common::redact::url_credentials(source).into_owned(),
            reason,
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| failed(format!("cannot create {}: {e}", self.dir.display())))?;
        let partial = master.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
        let result = tokio::time::timeout(
            self.limits.total,
            self.download(source, &partial, checksum),
        )
        .await
        .unwrap_or_else(|_| {
            Err(failed(format!(
                "the download did not finish within {} s ([conductor] image_download_timeout_secs)",
                self.limits.total.as_secs()
            )))
        });
        match result {
            Ok(()) => {
                tokio::fs::rename(&partial, &master)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if let Ok(mut d) = self.downloads.lock() {
                    *d.entry(source.to_owned()).or_default() += 1;
                }
                tracing::info!(image = %ferric_common::redact::url_credentials(source), "image cached");
                let (dir, max, ttl) = (self.dir.clone(), self.max_bytes, self.ttl);
                let removed =
                    ferric_common::telemetry::spawn_blocking(move || clean(&dir, max, ttl))
                        .await
                        .unwrap_or_default();
                if removed > 0 {
                    tracing::info!(count = removed, "removed unused images from the cache");
                }
                Ok(master)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    async fn download(
        &self,
        source: &str,
        dest: &Path,
        checksum: Option<&Checksum>,
    ) -> Result<(), ImageError> {
        let failed = |reason: String| ImageError::Fetch {
            image: ferric_common::redact::url_credentials(source).into_owned(),
            reason,
        };
        let local = if source.starts_with("file://") {
            Some(allowed_file(source, &self.allowed_file_paths)?)
        } else {
            None
        };
        let mut file = std::fs::File::create(dest).map_err(|e| failed(e.to_string()))?;
        let mut hasher = checksum.map(|c| Hasher::new(c.algo));
        if let Some(path) = local {
            let mut input = tokio::fs::File::open(path)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let size = input
                .metadata()
                .await
                .map_err(|e| failed(e.to_string()))?
                .len();
            if size > self.limits.max_bytes {
                return Err(failed(format!(
                    "the image is larger than {} MiB ([conductor] image_download_max_mb)",
                    self.limits.max_bytes / (1024 * 1024)
                )));
            }
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut input, &mut buf)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if n == 0 {
                    break;
                }
                let chunk = buf.get(..n).unwrap_or_default();
                if let Some(h) = hasher.as_mut() {
                    h.update(chunk);
                }
                file.write_all(chunk).map_err(|e| failed(e.to_string()))?;
            }
        } else if source.starts_with("http://") || source.starts_with("https://") {
            let response = self.get(source).await.map_err(failed)?;
            let too_big = || {
                failed(format!(
                    "the image is larger than {} MiB ([conductor] image_download_max_mb)",
                    self.limits.max_bytes / (1024 * 1024)
                ))
            };
            if response
                .content_length()
                .is_some_and(|n| n > self.limits.max_bytes)
            {
                return Err(too_big());
            }
            let mut received: u64 = 0;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| failed(self.http_failure(&e)))?;
                received = received.saturating_add(chunk.len() as u64);
                if received > self.limits.max_bytes {
                    return Err(too_big());
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                file.write_all(&chunk).map_err(|e| failed(e.to_string()))?;
            }
        } else {
            return Err(ImageError::Invalid(format!(
                "Image source {source} is not a file://, http:// or https:// URL."
            )));
        }
        file.sync_all().map_err(|e| failed(e.to_string()))?;
        if let (Some(expected), Some(hasher)) = (checksum, hasher) {
            let actual = hasher.finish();
            if actual != expected.hex {
                return Err(ImageError::Mismatch {
                    image: ferric_common::redact::url_credentials(source).into_owned(),
                    algo: expected.algo.name(),
                    expected: expected.hex.clone(),
                    actual,
                });
            }
        }
        Ok(())
    }
}

/// How long a cached file is safe from cleaning after it was written (a
/// fetch that just returned it may not have linked it yet).
const FRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// Cleans the cache in `dir` as Ironic's image cache does: unused images
/// (no hard link outside the cache) older than `ttl` go, then the oldest
/// unused ones until the cache is within `max_bytes`. Returns how many
/// files were removed. Images in use are never removed.
pub fn clean(dir: &Path, max_bytes: u64, ttl: std::time::Duration) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut files: Vec<(PathBuf, u64, std::time::Duration, bool)> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().contains(".part-"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let age = now
                .duration_since(meta.modified().ok()?)
                .unwrap_or_default();
            Some((e.path(), meta.len(), age, meta.nlink() == 1))
        })
        .collect();
    let mut removed = 0;
    files.retain(|(path, _, age, unused)| {
        let expired = *unused && *age > ttl && *age > FRESH;
        if expired && std::fs::remove_file(path).is_ok() {
            removed += 1;
            return false;
        }
        true
    });
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort_by_key(|f| std::cmp::Reverse(f.2));
    for (path, size, age, unused) in files {
        if total <= max_bytes {
            break;
        }
        if unused && age > FRESH && std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
            removed += 1;
        }
    }
    removed
}

/// Puts `master` at `dest` as a hard link (a copy across file systems),
/// replacing what was there.
///
/// # Errors
/// When neither works.
pub fn link_into(master: &Path, dest: &Path) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(dest);
    if std::fs::hard_link(master, dest).is_err() {
        std::fs::copy(master, dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn info(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn aged(path: &Path, bytes: usize, age_secs: u64) {
        std::fs::write(path, vec![0u8; bytes]).unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn cleaning_removes_old_unused_images_then_the_oldest_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let node = tempfile::tempdir().unwrap();
        let d = dir.path();
        aged(&d.join("expired"), 10, 7200);
        aged(&d.join("in-use-and-old"), 10, 7200);
        link_into(&d.join("in-use-and-old"), &node.path().join("kernel")).unwrap();
        aged(&d.join("oldest"), 100, 600);
        aged(&d.join("older"), 100, 300);
        aged(&d.join("fresh"), 100, 1);

        let removed = clean(d, 215, std::time::Duration::from_secs(3600));

        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(removed, 2);
        assert_eq!(left, ["fresh", "in-use-and-old", "older"]);
    }

    #[test]
    fn file_urls_read_only_allowed_directories_and_never_through_links() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("kernel"), b"k").unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), allowed.path().join("link"))
            .unwrap();
        let dirs = vec![allowed.path().to_path_buf()];
        let url = |p: &Path| format!("file://{}", p.display());

        assert!(allowed_file(&url(&allowed.path().join("kernel")), &dirs).is_ok());
        for bad in [
            url(&outside.path().join("secret")),
            url(&allowed.path().join("link")),
            url(&allowed
                .path()
                .join("../")
                .join(outside.path().file_name().unwrap())
                .join("secret")),
            "file:///etc/passwd".to_owned(),
            url(&allowed.path().join("missing")),
        ] {
            let err = allowed_file(&bad, &dirs).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("Validation of image href {bad} failed")),
                "{err}"
            );
        }
        assert!(
            allowed_file("file:///etc/passwd", &[PathBuf::from("/")])
                .unwrap_err()
                .to_string()
                .contains("The path /etc is not permitted")
        );
        // Outside the allowed directories, a file that exists and one that
        // does not are refused alike.
        let reason = |source: &str| {
            let err = allowed_file(source, &dirs).unwrap_err().to_string();
            err.split_once("reason: ")
                .map(|(_, r)| r.to_owned())
                .unwrap_or(err)
        };
        let existing = url(&outside.path().join("secret"));
        let missing = url(&outside.path().join("no-such-file"));
        assert_eq!(
            reason(&existing).replace("secret", "X"),
            reason(&missing).replace("no-such-file", "X")
        );
        assert_eq!(
            reason("file:///etc/passwd"),
            reason("file:///etc/no-such-file")
        );
        assert_eq!(
            reason(&url(&allowed.path().join("missing"))),
            "Specified image file not found."
        );
    }

    #[test]
    fn checksum_files_are_read_as_ironic_reads_them() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let other = "a".repeat(64);
        let sums = format!("# comment\n{other}  other.iso\n{sha} *boot.iso\n");
        let bsd = format!("SHA256 (boot.iso) = {sha}\n");

        assert_eq!(
            checksum_from_file(&sums, "http://h/images/boot.iso")
                .unwrap()
                .hex,
            sha
        );
        assert_eq!(
            checksum_from_file(&bsd, "http://h/boot.iso?x=1")
                .unwrap()
                .hex,
            sha
        );
        assert_eq!(
            checksum_from_file(&format!("{sha}\n"), "x").unwrap().algo,
            Algo::Sha256
        );
        assert_eq!(
            checksum_from_file("", "x").unwrap_err(),
            "Checksum file empty."
        );
        assert_eq!(
            checksum_from_file("nothex", "x").unwrap_err(),
            "Invalid checksum file (No valid checksum found)"
        );
        assert_eq!(
            checksum_from_file(&sums, "http://h/missing.iso").unwrap_err(),
            "Checksum file does not contain name missing.iso"
        );
    }

    #[test]
    fn checksums_come_in_ironics_forms() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            Checksum::from_instance_info(&info(json!({"image_checksum": md5}))).unwrap(),
            Some(Checksum {
                algo: Algo::Md5,
                hex: md5.into()
            })
        );
        assert_eq!(
            Checksum::from_instance_info(&info(json!({"image_checksum": sha}))).unwrap(),
            Some(Checksum {
                algo: Algo::Sha256,
                hex: sha.into()
            })
        );
        assert_eq!(
            Checksum::from_instance_info(&info(json!({
                "image_os_hash_algo": "sha256", "image_os_hash_value": sha.to_uppercase()})))
            .unwrap(),
            Some(Checksum {
                algo: Algo::Sha256,
                hex: sha.into()
            })
        );
        assert_eq!(
            Checksum::from_instance_info(&info(json!({}))).unwrap(),
            None
        );
        assert!(Checksum::from_instance_info(&info(json!({"image_checksum": "xyz"}))).is_err());
        assert!(
            Checksum::from_instance_info(&info(json!({
                "image_os_hash_algo": "crc32", "image_os_hash_value": "00"})))
            .is_err()
        );
    }
}
