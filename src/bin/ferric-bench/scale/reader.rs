//! A steady read load on the API while the fleet deploys: `GET
//! /v1/nodes/{uuid}` at a fixed rate over the nodes in turn, open loop (a
//! request is sent on schedule whether or not the previous ones have
//! answered, so a slow server shows in the latency instead of lowering
//! the rate), until stopped.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::stats::Samples;

/// Reads at `rate` requests per second until `stop`; the samples.
pub async fn read_steadily(
    api: Api,
    uuids: Vec<String>,
    rate: u32,
    stop: CancellationToken,
) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    if rate == 0 || uuids.is_empty() {
        return Samples::default();
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut n = 0_usize;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let path = format!("/v1/nodes/{}", uuids[n % uuids.len()]);
        n += 1;
        let (api, samples) = (api.clone(), samples.clone());
        in_flight.spawn(async move {
            let outcome = api.send(Method::GET, &path, None, StatusCode::OK).await;
            samples.lock().await.record(&outcome);
        });
        // Reap what has finished so the set stays small.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    let mut samples = samples.lock().await;
    std::mem::take(&mut *samples)
}
