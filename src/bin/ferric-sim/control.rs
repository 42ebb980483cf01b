//! The simulator's own HTTP API, for tests and rehearsals: read a BMC's
//! state (`GET /bmcs/{index}`), set its faults or power (`PATCH
//! /bmcs/{index}`, or every BMC with `PATCH /bmcs`), and the fleet's totals
//! (`GET /stats`, the agents' too); the simulated agents' command API
//! is served here as well ([`crate::agents`]).
//!
//! Invariant: a PATCH with anything but the known keys, or a value out of
//! range, is refused with 400 and changes nothing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, patch};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agents::Agents;
use crate::fleet::{Bmc, Faults};

/// The BMCs, the index of the first, and the agents when they run.
type Bmcs = Arc<(Vec<Arc<Bmc>>, usize, Option<Arc<Agents>>)>;

fn bmc(bmcs: &Bmcs, index: usize) -> Option<&Arc<Bmc>> {
    bmcs.0.get(index.checked_sub(bmcs.1)?)
}

/// A change to one BMC or all of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    hang: Option<bool>,
    /// `"on"` or `"off"`.
    power: Option<String>,
}

/// Serves the control API on `listener` until the process ends.
pub async fn serve(
    bmcs: Vec<Arc<Bmc>>,
    first_index: usize,
    agents: Option<Arc<Agents>>,
    listener: tokio::net::TcpListener,
) {
    let mut routes = axum::Router::new()
        .route("/bmcs/{index}", get(show).patch(change_one))
        .route("/bmcs", patch(change_all))
        .route("/stats", get(stats))
        .with_state(Arc::new((bmcs, first_index, agents.clone())));
    if let Some(agents) = agents {
        routes = routes.merge(agents.routes());
    }
    let _ = axum::serve(listener, routes).await;
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn bad(message: &str) -> Response {
    answer(StatusCode::BAD_REQUEST, json!({"error": message}))
}

/// Checks a change; the faults it leads to from `current`, and the power.
fn apply(change: &Change, current: &Faults) -> Result<(Faults, Option<bool>), String> {
    let power = match change.power.as_deref() {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => return Err(format!("power must be on or off, not {other:?}")),
    };
    let mut faults = current.clone();
    if let Some(rate) = change.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("error_rate must be between 0 and 1, not {rate}"));
        }
        faults.error_rate = rate;
    }
    if let Some(ms) = change.latency_ms {
        faults.latency_ms = ms;
    }
    if let Some(hang) = change.hang {
        faults.hang = hang;
    }
    Ok((faults, power))
}

fn update(bmc: &Bmc, change: &Change) -> Result<(), String> {
    let current = bmc.with(|s| s.faults.clone());
    let (faults, power) = apply(change, &current)?;
    bmc.with(|s| s.faults = faults);
    if let Some(on) = power {
        bmc.set_power(on);
    }
    Ok(())
}

fn missing(index: usize) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no BMC {index}")}),
    )
}

async fn show(State(bmcs): State<Bmcs>, Path(index): Path<usize>) -> Response {
    match bmc(&bmcs, index) {
        Some(bmc) => answer(StatusCode::OK, bmc.report()),
        None => missing(index),
    }
}

async fn change_one(
    State(bmcs): State<Bmcs>,
    Path(index): Path<usize>,
    Json(change): Json<Change>,
) -> Response {
    let Some(found) = bmc(&bmcs, index) else {
        return missing(index);
    };
    match update(found, &change) {
        Ok(()) => answer(StatusCode::OK, found.report()),
        Err(message) => bad(&message),
    }
}

async fn change_all(State(bmcs): State<Bmcs>, Json(change): Json<Change>) -> Response {
    // Checked once before any BMC changes.
    if let Err(message) = apply(&change, &Faults::default()) {
        return bad(&message);
    }
    for each in &bmcs.0 {
        if let Err(message) = update(each, &change) {
            return bad(&message);
        }
    }
    answer(StatusCode::OK, json!({"changed": bmcs.0.len()}))
}

async fn stats(State(bmcs): State<Bmcs>) -> Response {
    let (mut requests, mut errors, mut on) = (0_u64, 0_u64, 0_usize);
    for each in &bmcs.0 {
        each.with(|s| {
            requests += s.requests;
            errors += s.injected_errors;
            on += usize::from(s.power_on);
        });
    }
    answer(
        StatusCode::OK,
        json!({
            "bmcs": bmcs.0.len(),
            "requests": requests,
            "injected_errors": errors,
            "powered_on": on,
            "agents": bmcs.2.as_ref().map(|a| a.stats()),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: serde_json::Value) -> Change {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn changes_are_checked_before_anything_is_set() {
        let (faults, power) = apply(
            &change(json!({"error_rate": 0.5, "power": "on"})),
            &Faults::default(),
        )
        .unwrap();
        assert_eq!(faults.error_rate, 0.5);
        assert_eq!(power, Some(true));
        assert!(apply(&change(json!({"error_rate": 2.0})), &Faults::default()).is_err());
        assert!(apply(&change(json!({"power": "sideways"})), &Faults::default()).is_err());
        assert!(serde_json::from_value::<Change>(json!({"colour": "red"})).is_err());
    }
}
