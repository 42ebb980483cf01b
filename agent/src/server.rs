//! The agent's HTTP API (IPA's `/v1`): `GET /v1/status`, `GET /v1/commands/`
//! (every result), `GET /v1/commands/{id}`, and `POST /v1/commands/` with
//! `{"name": "<extension>.<command>", "params": {...}}` and `?wait=true` to
//! answer when done. Everything but the status needs `?agent_token=`, the
//! token lookup returned (compared in constant time), as Ironic sends it.

use std::sync::{Arc, RwLock};

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::commands::{AGENT_VERSION, Commands, Machine, Refusal};

/// What the handlers share.
#[derive(Clone)]
pub struct Agent {
    pub commands: Commands,
    pub machine: Machine,
    /// The token from lookup; `None` until then (every command refused).
    pub token: Arc<RwLock<Option<String>>>,
    pub started_at: f64,
}

#[derive(Debug, Deserialize)]
struct CommandQuery {
    wait: Option<String>,
    agent_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CommandBody {
    name: String,
    #[serde(default)]
    params: Value,
}

fn fault(status: actix_web::http::StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({"faultstring": message}))
}

async fn status(agent: web::Data<Agent>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"started_at": agent.started_at, "version": AGENT_VERSION}))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    agent_token: Option<String>,
}

fn unauthorized() -> HttpResponse {
    fault(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "Received unauthorized request: the agent_token is missing or invalid.".into(),
    )
}

async fn list(agent: web::Data<Agent>, query: web::Query<TokenQuery>) -> HttpResponse {
    if !token_ok(&agent, query.agent_token.as_deref()) {
        return unauthorized();
    }
    HttpResponse::Ok().json(json!({"commands": agent.commands.all()}))
}

async fn show(
    agent: web::Data<Agent>,
    id: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> HttpResponse {
    if !token_ok(&agent, query.agent_token.as_deref()) {
        return unauthorized();
    }
    match agent.commands.get(&id) {
        Some(result) => HttpResponse::Ok().json(result),
        None => fault(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("Command {id} could not be found."),
        ),
    }
}

fn token_ok(agent: &Agent, offered: Option<&str>) -> bool {
    let known = agent
        .token
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match (known, offered) {
        (Some(known), Some(offered)) => bool::from(known.as_bytes().ct_eq(offered.as_bytes())),
        _ => false,
    }
}

async fn run(
    agent: web::Data<Agent>,
    query: web::Query<CommandQuery>,
    body: web::Json<CommandBody>,
) -> HttpResponse {
    if !token_ok(&agent, query.agent_token.as_deref()) {
        tracing::warn!(command = %body.name, "command with a missing or wrong agent token refused");
        return unauthorized();
    }
    let body = body.into_inner();
    match agent
        .commands
        .start(&agent.machine, &body.name, body.params)
    {
        Ok((result, handle)) => {
            let wait = query
                .wait
                .as_deref()
                .is_some_and(|w| matches!(w.to_lowercase().as_str(), "true" | "1" | "yes"));
            if !wait {
                return HttpResponse::Ok().json(result);
            }
            let _ = handle.await;
            match agent.commands.get(&result.id) {
                Some(done) => HttpResponse::Ok().json(done),
                None => HttpResponse::Ok().json(result),
            }
        }
        Err(refusal @ Refusal::Busy(_)) => {
            fault(actix_web::http::StatusCode::CONFLICT, refusal.to_string())
        }
        Err(refusal @ Refusal::Unknown(_)) => HttpResponse::BadRequest().json(json!({
            "type": "InvalidCommandError",
            "code": 400,
            "message": refusal.to_string(),
            "details": refusal.to_string(),
            "faultstring": refusal.to_string(),
        })),
    }
}

/// The routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/status", web::get().to(status))
        .route("/v1/commands", web::get().to(list))
        .route("/v1/commands/", web::get().to(list))
        .route("/v1/commands", web::post().to(run))
        .route("/v1/commands/", web::post().to(run))
        .route("/v1/commands/{id}", web::get().to(show));
}
