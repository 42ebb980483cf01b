//! A small HTTP file server on loopback for image downloads: serves fixed
//! bytes per path (a `Range: bytes=a-b` request gets a 206 with those
//! bytes), or redirects (302) a path elsewhere, 404 otherwise, and counts
//! the requests per path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct FileServer {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    /// Serves `files` (path → bytes) until dropped.
    pub async fn start(files: HashMap<String, Vec<u8>>) -> FileServer {
        FileServer::with_redirects(files, HashMap::new()).await
    }

    /// Serves `files`, and answers the paths of `redirects` with a 302 to
    /// their location.
    pub async fn with_redirects(
        files: HashMap<String, Vec<u8>>,
        redirects: HashMap<String, String>,
    ) -> FileServer {
        let redirects = Arc::new(redirects);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let files = Arc::new(files);
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (files, counter, redirects) =
                    (files.clone(), counter.clone(), redirects.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let response = match (files.get(&path), redirects.get(&path)) {
                        (_, Some(location)) => format!(
                            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .into_bytes(),
                        (Some(body), None) if range(&text, body.len()).is_some() => {
                            let (start, end) = range(&text, body.len()).unwrap_or_default();
                            let mut r = format!(
                                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                end - 1,
                                body.len(),
                                end - start
                            )
                            .into_bytes();
                            r.extend_from_slice(&body[start..end]);
                            r
                        }
                        (Some(body), None) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(body);
                            r
                        }
                        (None, None) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                    };
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FileServer { port, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many times `path` was requested.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The byte range `[start, end)` a request asks for, when it asks for one
/// inside a body of `len` bytes.
fn range(request: &str, len: usize) -> Option<(usize, usize)> {
    let line = request
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("range:"))?;
    let spec = line.split_once('=')?.1.trim();
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.parse().ok()?;
    let end = b.parse::<usize>().ok()?.min(len.checked_sub(1)?) + 1;
    (start < end).then_some((start, end))
}
