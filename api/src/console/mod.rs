//! The operator console under `/console/`: the fleet live, one node's story
//! and why it is where it is, the conductors and the queues — HTML rendered
//! here (readable without JavaScript), enhanced by one small script that
//! follows the live feed and calls the same API the CLI uses.
//!
//! Invariants: every page sits behind the API's own authentication (the
//! middleware sees `/console/` like any other path); the console only reads
//! (actions are the page's script calling `/v1`); assets are compiled into
//! the binary; every value shown is escaped (maud) and secrets never reach a
//! page (driver_info is never read here).

mod cluster_page;
mod diagnosis;
mod fleet;
mod live;
mod node_page;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError, web};
use chrono::NaiveDateTime;
use maud::{DOCTYPE, Markup, html};

use crate::error::ApiError;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Registers the console's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(to_console)))
        .service(web::resource("/console/").route(web::get().to(fleet::page)))
        .service(web::resource("/console/counts").route(web::get().to(fleet::counts)))
        .service(web::resource("/console/events").route(web::get().to(live::events)))
        .service(web::resource("/console/nodes/{ident}").route(web::get().to(node_page::page)))
        .service(web::resource("/console/conductors").route(web::get().to(cluster_page::page)))
        .service(web::resource("/console/assets/console.css").route(web::get().to(css)))
        .service(web::resource("/console/assets/console.js").route(web::get().to(js)));
}

async fn to_console() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> HttpResponse {
    asset(JS, "text/javascript; charset=utf-8")
}

/// Which page a layout is for (its navigation link is marked current).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Fleet,
    Conductors,
}

/// The page around `main`.
fn layout(title: &str, section: Section, page: &str, main: Markup) -> HttpResponse {
    let current = |s: Section| (s == section).then_some("page");
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ferric" }
                link rel="stylesheet" href="/console/assets/console.css";
                script defer src="/console/assets/console.js" {}
            }
            body data-page=(page) {
                a.skip href="#main" { "Skip to content" }
                header {
                    strong.brand { "Ferric" }
                    nav aria-label="Console" {
                        a href="/console/" aria-current=[current(Section::Fleet)] { "Fleet" }
                        a href="/console/conductors" aria-current=[current(Section::Conductors)] {
                            "Conductors & queues"
                        }
                    }
                    span #live role="status" aria-live="polite" { "static page" }
                }
                main #main { (main) }
            }
        }
    };
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(markup.into_string())
}

/// Only the console's own script, style and API; never framed.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// A console page that could not be shown, as an HTML page.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConsoleError(#[from] ApiError);

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (status.as_u16()) " · Ferric" }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body {
                    main #main {
                        h1 { (status.canonical_reason().unwrap_or("Error")) }
                        p.error { (self.0.to_string()) }
                        p { a href="/console/" { "Back to the fleet" } }
                    }
                }
            }
        };
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
            .body(markup.into_string())
    }
}

/// `d`, as a person says it: `45 s`, `4 min`, `2 h 5 min`, `3 d`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => match (secs % 3600) / 60 {
            0 => format!("{} h", secs / 3600),
            m => format!("{} h {m} min", secs / 3600),
        },
        _ => format!("{} d", secs / 86_400),
    }
}

/// How long ago `at` (UTC) was; zero for a time in the future.
fn age(at: NaiveDateTime) -> Duration {
    (ferric_common::db::now() - at).to_std().unwrap_or_default()
}

/// A time in UTC as the pages show it.
fn stamp(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A provision state as a CSS class (`deploy failed` → `s-deploy-failed`).
fn state_class(state: &str) -> String {
    format!("s-{}", state.replace(' ', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(4 * 60 + 59)), "4 min");
        assert_eq!(human(Duration::from_secs(7200)), "2 h");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 5)), "3 d");
    }
}
