//! Per-source limits on what anyone may call without credentials or with
//! wrong ones: a request rate on the ramdisk endpoints (`/v1/lookup`,
//! `/v1/heartbeat`, governor's GCRA) and an exponential backoff after
//! repeated `http_basic` failures.
//!
//! Invariants: a source is the client's IP address (IPv6 by its /64, the
//! smallest network one host is given), taken from the connection, or from
//! `X-Forwarded-For` only when `[api] enable_proxy_headers_parsing` says a
//! trusted proxy sets it; the memory held is bounded (forgotten sources are
//! dropped, and past [`MAX_SOURCES`] the oldest go).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Most sources remembered at once by either limit.
pub const MAX_SOURCES: usize = 100_000;

/// The address a request comes from, as a key: IPv6 by its /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The client's address: the connection's peer, or the first address of
/// `X-Forwarded-For` / `Forwarded` when proxy headers are trusted.
pub fn client_ip(req: &HttpRequest, trust_proxy_headers: bool) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if !trust_proxy_headers {
        return peer;
    }
    let info = req.connection_info();
    info.realip_remote_addr()
        .and_then(|text| {
            text.parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .or_else(|_| text.trim_matches(['[', ']']).parse::<IpAddr>())
                .ok()
        })
        .or(peer)
}

/// A request rate per source; `None` inside = unlimited.
pub struct SourceRate(Option<DefaultKeyedRateLimiter<IpAddr>>);

impl SourceRate {
    /// `per_minute` requests a minute in bursts of `burst`; 0 = unlimited.
    pub fn new(per_minute: u32, burst: u32) -> SourceRate {
        SourceRate(NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        }))
    }

    /// Counts a request from `ip`.
    ///
    /// # Errors
    /// 429 with the seconds to wait when `ip` is over its rate.
    pub fn check(&self, ip: IpAddr, what: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        if limiter.len() > MAX_SOURCES {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&source_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                message: format!("Too many {what} requests from {ip}; retry later."),
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}

/// What is known of one source's recent failures.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Exponential backoff per source after repeated authentication failures:
/// the first `free` failures cost nothing, each later one doubles the wait
/// (1 s, 2 s, 4 s … up to `max`) during which that source is answered 429
/// without its password being checked. A success forgets the source.
pub struct FailureBackoff {
    free: u32,
    max: Duration,
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

impl FailureBackoff {
    /// Backoff after `free` failures, waits capped at `max` (zero = none).
    pub fn new(free: u32, max: Duration) -> FailureBackoff {
        FailureBackoff {
            free,
            max,
            sources: Mutex::default(),
        }
    }

    fn wait_after(&self, count: u32) -> Duration {
        let over = count.saturating_sub(self.free);
        if over == 0 || self.max.is_zero() {
            return Duration::ZERO;
        }
        let secs = 1u64.checked_shl(over - 1).unwrap_or(u64::MAX);
        Duration::from_secs(secs).min(self.max)
    }

    /// How long `ip` must still wait before it may try again, if at all.
    pub fn waiting(&self, ip: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().ok()?;
        let failures = sources.get(&source_key(ip))?;
        let until = failures.last + self.wait_after(failures.count);
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Records a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut sources) = self.sources.lock() else {
            return;
        };
        let now = Instant::now();
        if sources.len() >= MAX_SOURCES {
            // Forget sources whose wait ended long ago, then the oldest.
            let horizon = self.max.max(Duration::from_secs(60)) * 2;
            sources.retain(|_, f| now.duration_since(f.last) < horizon);
            if sources.len() >= MAX_SOURCES
                && let Some(oldest) = sources.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
            {
                sources.remove(&oldest);
            }
        }
        let entry = sources.entry(source_key(ip)).or_insert(Failures {
            count: 0,
            last: now,
        });
        // A source quiet for longer than the longest wait starts again.
        if now.duration_since(entry.last) > self.max.max(Duration::from_secs(60)) * 2 {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Forgets `ip`'s failures (it authenticated).
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.remove(&source_key(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_their_64_and_mapped_ones_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        assert_eq!(
            source_key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_source_over_its_rate_waits_and_others_do_not() {
        let rate = SourceRate::new(60, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            rate.check(a, "lookup").unwrap();
        }
        match rate.check(a, "lookup") {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => assert!(retry_after_secs >= 1),
            other => panic!("{other:?}"),
        }
        rate.check(b, "lookup").unwrap();
        let unlimited = SourceRate::new(0, 0);
        for _ in 0..1000 {
            unlimited.check(a, "lookup").unwrap();
        }
    }

    #[test]
    fn failures_back_off_exponentially_and_a_success_forgets() {
        let backoff = FailureBackoff::new(2, Duration::from_secs(8));
        assert_eq!(backoff.wait_after(2), Duration::ZERO);
        assert_eq!(backoff.wait_after(3), Duration::from_secs(1));
        assert_eq!(backoff.wait_after(5), Duration::from_secs(4));
        assert_eq!(backoff.wait_after(40), Duration::from_secs(8));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        backoff.failed(ip);
        backoff.failed(ip);
        assert!(backoff.waiting(ip).is_none(), "the free failures");
        backoff.failed(ip);
        assert!(backoff.waiting(ip).is_some());
        assert!(backoff.waiting("10.0.0.2".parse().unwrap()).is_none());
        backoff.succeeded(ip);
        assert!(backoff.waiting(ip).is_none());
    }
}
