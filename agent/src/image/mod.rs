//! Writing an instance image to the root device, as IPA's `write_image`
//! does for a whole-disk image, but converting while streaming: the image
//! is downloaded once from the first URL of `image_info`, hashed as
//! downloaded, decompressed (gzip, zstd, xz), inspected ([`format`]) and
//! written — raw-like images byte for byte, qcow2 converted cluster by
//! cluster ([`qcow2`]) — then synced and checked against
//! `os_hash_algo`/`os_hash_value` (or the older `checksum`). A mismatch is
//! an error naming both values.
//!
//! For a plain qcow2 on a server that answers Range requests, the header
//! and the L1 and L2 tables are read first (when they total at most
//! [`PRELOAD_LIMIT`]); otherwise they are found in the stream, with
//! [`SPOOL_LIMIT`] bytes of data kept for tables that come after it.
//!
//! Invariants: memory stays bounded whatever the image's size (a few
//! chunks in flight, the decompressor's window, the held first MiB, the
//! qcow2 tables); a failed write leaves the disk wiped at both ends
//! ([`sink`]), never looking installed; the disk is untouched when the
//! image is refused before its first byte is written.

mod checksum;
pub mod format;
pub mod qcow2;
mod sink;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt as _;
use serde_json::Value;

use crate::progress::Progress;
use checksum::{Hasher, expected_checksum};
use format::{Compression, Policy};
use qcow2::{Qcow2Error, Qcow2Writer, Sink as _};
use sink::DiskSink;

/// The most bytes of qcow2 tables read ahead with Range requests.
pub const PRELOAD_LIMIT: u64 = 4 << 20;
/// The most bytes kept for qcow2 tables that come after their data.
pub const SPOOL_LIMIT: usize = 32 << 20;
/// Chunks in flight between the download and the writer.
const IN_FLIGHT: usize = 16;

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
    #[error("Invalid image: {0}")]
    Invalid(String),
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
    /// Bytes downloaded (and hashed).
    pub bytes: u64,
    pub algo: &'static str,
    /// The format inside, and the compression around it.
    pub format: &'static str,
    pub compression: &'static str,
    /// The disk's size as the image defines it.
    pub virtual_size: u64,
    pub seconds: f64,
    /// The most the qcow2 spool held.
    pub spool_peak: usize,
}

/// What the blocking side reports.
struct Converted {
    format: &'static str,
    compression: Compression,
    virtual_size: u64,
    spool_peak: usize,
}

/// Streams the image onto `device` and verifies it.
///
/// # Errors
/// [`ImageError`] for bad `image_info`, a refused image, a failed
/// download or write, or a checksum mismatch.
pub async fn write_image(
    info: &Value,
    device: &Path,
    policy: &Policy,
    progress: Arc<Progress>,
) -> Result<Written, ImageError> {
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
    let declared = info
        .get("disk_format")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (algo, expected) = expected_checksum(info)?;
    let mut hasher = Hasher::new(algo).ok_or(ImageError::Missing("a known algorithm"))?;
    let shown = display_url(&url);
    let download = |reason: String| ImageError::Download {
        url: shown.clone(),
        reason: reason.replace(&url, &shown),
    };
    let write_err = |e: std::io::Error| ImageError::Write {
        device: device.display().to_string(),
        reason: e.to_string(),
    };
    // A stalled server must not keep the agent busy forever.
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| download(e.to_string()))?;
    let started = std::time::Instant::now();
    let preloaded = preload_qcow2_tables(&client, &url).await;
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| download(e.to_string()))?;
    let length = response.content_length().unwrap_or(0);
    let mut sink = DiskSink::open(device, progress.clone()).map_err(write_err)?;
    progress.start(length);

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(IN_FLIGHT);
    let policy = policy.clone();
    let converting = {
        let progress = progress.clone();
        let declared = declared.clone();
        // ferric-agent has no ferric_common (whose spawn_blocking keeps
        // the span): a plain one.
        #[allow(clippy::disallowed_methods)]
        tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                chunk: bytes::Bytes::new(),
            };
            let result = convert(
                reader,
                &mut sink,
                declared.as_deref(),
                &policy,
                length,
                preloaded,
                &progress,
            );
            (sink, result)
        })
    };
    let mut bytes = 0_u64;
    let mut failed = None;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                failed = Some(download(e.to_string()));
                break;
            }
        };
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            // The writer stopped: its error says why.
            break;
        }
    }
    drop(tx);
    let (sink, converted) = converting
        .await
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
    progress.stop();
    let finish = |sink: DiskSink| {
        #[allow(clippy::disallowed_methods)]
        tokio::task::spawn_blocking(move || sink.wipe())
    };
    let converted = match converted {
        Ok(converted) => converted,
        Err(e) => {
            let _ = finish(sink).await;
            return Err(failed.unwrap_or(e));
        }
    };
    let actual = hasher.finish();
    if actual != expected {
        let _ = finish(sink).await;
        return Err(ImageError::Checksum {
            url: shown,
            id: image_id,
            expected,
            actual,
        });
    }
    #[allow(clippy::disallowed_methods)]
    tokio::task::spawn_blocking(move || sink.commit())
        .await
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
        .map_err(write_err)?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        bytes,
        algo,
        format = converted.format,
        compression = converted.compression.name(),
        virtual_size = converted.virtual_size,
        seconds,
        url = %shown,
        device = %device.display(),
        "image written and verified"
    );
    Ok(Written {
        image_id,
        bytes,
        algo,
        format: converted.format,
        compression: converted.compression.name(),
        virtual_size: converted.virtual_size,
        seconds,
        spool_peak: converted.spool_peak,
    })
}

/// The downloaded chunks, as a [`Read`] for the blocking writer.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    chunk: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// Reads up to `n` bytes (fewer only at the end) and gives them back with
/// a reader that yields them again first.
fn peek<R: Read>(mut reader: R, n: usize) -> std::io::Result<(Vec<u8>, impl Read)> {
    let mut prefix = Vec::with_capacity(n);
    (&mut reader).take(n as u64).read_to_end(&mut prefix)?;
    Ok((prefix.clone(), std::io::Cursor::new(prefix).chain(reader)))
}

/// Decompresses, inspects and writes; runs on a blocking thread.
fn convert(
    reader: ChannelReader,
    sink: &mut DiskSink,
    declared: Option<&str>,
    policy: &Policy,
    length: u64,
    preloaded: Vec<(u64, Vec<u8>)>,
    progress: &Progress,
) -> Result<Converted, ImageError> {
    let read_err = |e: std::io::Error| ImageError::Invalid(format!("reading the image: {e}"));
    let (magic, reader) = peek(reader, Compression::PREFIX).map_err(read_err)?;
    let compression = Compression::detect(&magic);
    if compression != Compression::None {
        // The download's length is not the disk's: unknown until the
        // inner image says (a qcow2's virtual size).
        progress.set_total(0);
    }
    let inner: Box<dyn Read> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader).map_err(read_err)?),
        // liblzma's own memory limit would fail late; xz -9 needs 64 MiB.
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new(reader)),
    };
    let (prefix, mut inner) = peek(inner, format::PREFIX).map_err(read_err)?;
    let detected = format::detect(&prefix);
    format::check(declared, detected, policy).map_err(ImageError::Invalid)?;
    let device_size = sink.size();
    let mut buf = vec![0_u8; 1 << 20];
    if detected != "qcow2" {
        if compression == Compression::None && length > device_size {
            return Err(ImageError::Invalid(format!(
                "the image ({length} bytes) is larger than the device ({device_size} bytes)"
            )));
        }
        let mut at = 0_u64;
        loop {
            let n = inner.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            (&mut *sink)
                .write_at(at, &buf[..n])
                .map_err(|e| ImageError::Invalid(e.to_string()))?;
            at += n as u64;
        }
        return Ok(Converted {
            format: detected,
            compression,
            virtual_size: at,
            spool_peak: 0,
        });
    }
    let mut writer = Qcow2Writer::new(&mut *sink, SPOOL_LIMIT);
    let usable = compression == Compression::None;
    for (offset, bytes) in preloaded.iter().filter(|_| usable) {
        writer.preload(*offset, bytes).map_err(qcow2_err)?;
    }
    let mut sized = false;
    loop {
        let n = inner.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        writer.feed(&buf[..n]).map_err(qcow2_err)?;
        if !sized && let Some(header) = writer.header() {
            sized = true;
            progress.set_total(header.size);
            if header.size > device_size {
                return Err(ImageError::Invalid(format!(
                    "the image's virtual size ({} bytes) is larger than the device ({device_size} bytes)",
                    header.size
                )));
            }
        }
    }
    let (_, done) = writer.finish().map_err(qcow2_err)?;
    Ok(Converted {
        format: "qcow2",
        compression,
        virtual_size: done.virtual_size,
        spool_peak: done.spool_peak,
    })
}

fn qcow2_err(e: Qcow2Error) -> ImageError {
    ImageError::Invalid(e.to_string())
}

/// The header and tables of a plain qcow2 image read with Range requests,
/// when the server answers them and they are small enough; empty
/// otherwise (the stream finds them itself).
async fn preload_qcow2_tables(client: &reqwest::Client, url: &str) -> Vec<(u64, Vec<u8>)> {
    let range = |start: u64, len: u64| async move {
        let response = client
            .get(url)
            .header(
                reqwest::header::RANGE,
                format!("bytes={start}-{}", start + len - 1),
            )
            .send()
            .await
            .ok()?;
        // A 200 would be the whole image: dropped unread.
        if response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            return None;
        }
        let body = response.bytes().await.ok()?;
        (body.len() as u64 == len).then(|| body.to_vec())
    };
    let Some(first) = range(0, qcow2::Header::PREFIX as u64).await else {
        return Vec::new();
    };
    if first[..4] != qcow2::MAGIC {
        return Vec::new();
    }
    let cluster_bits =
        u32::from_be_bytes([first[20], first[21], first[22], first[23]]).clamp(9, 21);
    let Some(head) = range(0, 1 << cluster_bits).await else {
        return Vec::new();
    };
    // A collector that only sees tables: the sink is never written.
    let mut probe = Qcow2Writer::new(NoSink, 0);
    let mut loaded = vec![(0, head.clone())];
    if probe.preload(0, &head).is_err() {
        return Vec::new();
    }
    let mut total = 0;
    loop {
        let unread = probe.unread_tables();
        if unread.is_empty() {
            tracing::info!(
                tables = loaded.len(),
                bytes = total,
                "qcow2 header and tables read ahead with Range requests"
            );
            return loaded;
        }
        for (start, len) in unread {
            total += len;
            if total > PRELOAD_LIMIT {
                tracing::info!(
                    limit = PRELOAD_LIMIT,
                    "qcow2 tables too big to read ahead: found in the stream"
                );
                return Vec::new();
            }
            let Some(table) = range(start, len).await else {
                return Vec::new();
            };
            if probe.preload(start, &table).is_err() {
                return Vec::new();
            }
            loaded.push((start, table));
        }
    }
}

/// The sink of a table-only pass.
struct NoSink;

impl qcow2::Sink for NoSink {
    fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
