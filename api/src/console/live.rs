//! `GET /console/events`: the live feed as server-sent events, one `data:`
//! line of JSON per node event (see `ferric_common::feed`), a comment every
//! 15 s so proxies keep the stream open, and a resync event when this
//! client fell behind.
//!
//! Invariant: a stream ends within a second once the API starts draining,
//! so an open page never holds up a shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpResponse, http::header};
use ferric_common::feed::RESYNC;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::state::AppState;

/// How often a stream checks whether the API is draining.
const TICK: Duration = Duration::from_secs(1);
/// Ticks between keep-alive comments.
const KEEPALIVE_TICKS: u32 = 15;

struct Follower {
    rx: broadcast::Receiver<Arc<str>>,
    draining: Arc<AtomicBool>,
    greeted: bool,
}

fn event(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

async fn next(mut f: Follower) -> Option<(Result<Bytes, actix_web::Error>, Follower)> {
    if !f.greeted {
        f.greeted = true;
        return Some((Ok(Bytes::from_static(b"retry: 2000\n: live\n\n")), f));
    }
    let mut ticks = 0;
    loop {
        if f.draining.load(Ordering::Acquire) {
            return None;
        }
        tokio::select! {
            got = f.rx.recv() => {
                let bytes = match got {
                    Ok(json) => event(&json),
                    Err(RecvError::Lagged(_)) => event(RESYNC),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(bytes), f));
            }
            () = tokio::time::sleep(TICK) => {
                ticks += 1;
                if ticks >= KEEPALIVE_TICKS {
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), f));
                }
            }
        }
    }
}

/// `GET /console/events`.
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let follower = Follower {
        rx: state.feed.subscribe(),
        draining: state.draining.clone(),
        greeted: false,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(follower, next))
}
