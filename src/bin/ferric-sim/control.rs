//! The simulator's own HTTP API, for tests and rehearsals: read a BMC's
//! state (`GET /bmcs/{index}`), set its faults or power (`PATCH
//! /bmcs/{index}`, or every BMC with `PATCH /bmcs`), and the fleet's totals
//! (`GET /stats`).
//!
//! Invariant: a PATCH with anything but the known keys, or a value out of
//! range, is refused with 400 and changes nothing.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::fleet::{Bmc, Faults};

/// The BMCs, by index.
pub struct Control {
    pub bmcs: Vec<Arc<Bmc>>,
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/bmcs/{index}", web::get().to(show))
        .route("/bmcs/{index}", web::patch().to(change_one))
        .route("/bmcs", web::patch().to(change_all))
        .route("/stats", web::get().to(stats));
}

fn bad(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": message}))
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

fn missing(index: usize) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": format!("no BMC {index}")}))
}

async fn show(control: web::Data<Control>, index: web::Path<usize>) -> HttpResponse {
    match control.bmcs.get(*index) {
        Some(bmc) => HttpResponse::Ok().json(bmc.report()),
        None => missing(*index),
    }
}

async fn change_one(
    control: web::Data<Control>,
    index: web::Path<usize>,
    change: web::Json<Change>,
) -> HttpResponse {
    let Some(bmc) = control.bmcs.get(*index) else {
        return missing(*index);
    };
    match update(bmc, &change) {
        Ok(()) => HttpResponse::Ok().json(bmc.report()),
        Err(message) => bad(&message),
    }
}

async fn change_all(control: web::Data<Control>, change: web::Json<Change>) -> HttpResponse {
    // Checked once before any BMC changes.
    if let Err(message) = apply(&change, &Faults::default()) {
        return bad(&message);
    }
    for bmc in &control.bmcs {
        if let Err(message) = update(bmc, &change) {
            return bad(&message);
        }
    }
    HttpResponse::Ok().json(json!({"changed": control.bmcs.len()}))
}

async fn stats(control: web::Data<Control>) -> HttpResponse {
    let (mut requests, mut errors, mut on) = (0_u64, 0_u64, 0_usize);
    for bmc in &control.bmcs {
        bmc.with(|s| {
            requests += s.requests;
            errors += s.injected_errors;
            on += usize::from(s.power_on);
        });
    }
    HttpResponse::Ok().json(json!({
        "bmcs": control.bmcs.len(),
        "requests": requests,
        "injected_errors": errors,
        "powered_on": on,
    }))
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
