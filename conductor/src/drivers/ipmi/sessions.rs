//! One session per BMC, reused: BMCs have few session slots (ipmi_sim
//! refuses the 64th) and ipmi-rs never closes a session, so opening one per
//! command would exhaust them. Calls to one BMC run one at a time, at least
//! `min_command_interval` apart; a transport or session failure drops the
//! session and the call is retried on a fresh one until
//! `command_retry_timeout`. ipmi-rs blocks, so every call runs on the
//! blocking pool, at most `max_parallel_calls` at once.
//!
//! Invariant: a session is only ever used by one call at a time (it is
//! moved into the blocking call and back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use ferric_common::config::IpmiSettings;
use tokio::sync::Semaphore;

use super::bmc::{BmcError, BmcSession};
use super::driver_info::IpmiInfo;

#[derive(Default)]
struct Slot {
    session: Option<BmcSession>,
    last_call: Option<Instant>,
}

/// The conductor's BMC sessions.
pub struct Sessions {
    settings: IpmiSettings,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    parallel: Arc<Semaphore>,
}

impl Sessions {
    pub fn new(settings: IpmiSettings) -> Sessions {
        let parallel = Arc::new(Semaphore::new(settings.max_parallel_calls));
        Sessions {
            settings,
            slots: Mutex::default(),
            parallel,
        }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Runs `f` on `info`'s BMC session (opened when needed), retrying on a
    /// fresh session after transport failures until the retry timeout.
    ///
    /// # Errors
    /// The last [`BmcError`] when every attempt failed.
    pub async fn call<T, F>(&self, info: &IpmiInfo, f: F) -> Result<T, BmcError>
    where
        T: Send + 'static,
        F: Fn(&mut BmcSession) -> Result<T, BmcError> + Send + Sync + 'static,
    {
        let started = Instant::now();
        let span =
            tracing::info_span!("ipmi.call", bmc = %format!("{}:{}", info.address, info.port));
        let result = self.call_with_retries(info, f).instrument(span).await;
        ferric_common::metrics::global().bmc_call("ipmi", result.is_ok(), started.elapsed());
        result
    }

    async fn call_with_retries<T, F>(&self, info: &IpmiInfo, f: F) -> Result<T, BmcError>
    where
        T: Send + 'static,
        F: Fn(&mut BmcSession) -> Result<T, BmcError> + Send + Sync + 'static,
    {
        let slot = self.slot(&info.bmc_key());
        let mut slot = slot.lock().await;
        let f = Arc::new(f);
        let deadline =
            Instant::now() + Duration::from_secs(self.settings.command_retry_timeout_secs);
        let interval = Duration::from_millis(self.settings.min_command_interval_ms);
        let reply_timeout = Duration::from_millis(self.settings.reply_timeout_ms);
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Some(last) = slot.last_call {
                tokio::time::sleep_until((last + interval).into()).await;
            }
            let Ok(_permit) = self.parallel.clone().acquire_owned().await else {
                return Err(BmcError::Command {
                    cmd: "ipmi",
                    reason: "the conductor is shutting down".into(),
                });
            };
            let session = slot.session.take();
            let (info2, f2) = (info.clone(), f.clone());
            let outcome = ferric_common::telemetry::spawn_blocking(move || {
                let mut session = match session {
                    Some(session) => session,
                    None => BmcSession::open(&info2, reply_timeout)?,
                };
                let result = f2(&mut session);
                Ok::<_, BmcError>((session, result))
            })
            .await
            .unwrap_or_else(|e| {
                Err(BmcError::Command {
                    cmd: "ipmi",
                    reason: format!("the IPMI client failed: {e}"),
                })
            });
            slot.last_call = Some(Instant::now());
            let error = match outcome {
                Ok((session, Ok(value))) => {
                    slot.session = Some(session);
                    return Ok(value);
                }
                Ok((session, Err(e))) if !e.needs_new_session() => {
                    slot.session = Some(session);
                    return Err(e);
                }
                // The session is dropped: the next attempt opens a new one.
                Ok((_, Err(e))) | Err(e) => e,
            };
            if !error.retryable() || Instant::now() + backoff >= deadline {
                return Err(error);
            }
            tracing::debug!(bmc = %info.address, error = %error, "IPMI call failed; retrying on a new session");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
