//! The scale run's image server: one whole-disk image of a given size,
//! served over HTTP on loopback for the simulated agents to stream and
//! hash (as an operator's image server serves ironic-python-agent).
//!
//! Invariant: the bytes are fixed by the size alone, so the checksum the
//! nodes are given is known before anything is served.

use axum::routing::get;
use sha2::Digest as _;

/// A served image.
pub struct Image {
    pub url: String,
    pub sha256: String,
}

/// `kib` KiB of deterministic, incompressible-looking bytes.
fn content(kib: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..kib * 1024)
        .map(|_| {
            // xorshift64: cheap and never constant.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Serves `kib` KiB at `http://127.0.0.1:<port>/scale.img` until the
/// process ends.
///
/// # Errors
/// When no loopback port can be bound.
pub async fn serve(kib: usize) -> anyhow::Result<Image> {
    let body = bytes::Bytes::from(content(kib));
    let sha256 = hex::encode(sha2::Sha256::digest(&body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/scale.img", listener.local_addr()?);
    let routes = axum::Router::new().route("/scale.img", get(move || async move { body.clone() }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    Ok(Image { url, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_fixed_by_its_size() {
        let a = content(4);
        assert_eq!(a.len(), 4096);
        assert_eq!(a, content(4));
        assert!(a.iter().any(|b| *b != a[0]));
    }
}
