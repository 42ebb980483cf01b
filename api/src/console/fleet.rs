//! The fleet page (`/console/`): counts by provision state, a filter form
//! (search by name or UUID, state, maintenance) and one page of nodes
//! ordered by name, with a link to the next page — all plain HTML and GET
//! forms, so it reads without JavaScript; the script updates rows and counts
//! live. `/console/counts` gives the counts as JSON for the script.
//!
//! Invariant: a page costs two queries (counts, one page of nodes) whatever
//! the fleet's size.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use ferric_common::cluster::ClusterView;
use ferric_common::db::models::node::{Node, NodeFilter};
use ferric_common::db::models::{Page, SortDir};
use ferric_common::states::ProvisionState;
use maud::{Markup, html};
use serde::Deserialize;

use super::{ConsoleError, Section, layout, state_class};
use crate::state::AppState;

/// The fleet page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    /// Name or UUID contains.
    #[serde(default)]
    q: String,
    /// Exact provision state.
    #[serde(default)]
    state: String,
    /// `yes`, `no` or empty (either).
    #[serde(default)]
    maintenance: String,
    /// The UUID of the last node of the previous page.
    #[serde(default)]
    after: String,
}

/// Node counts by provision state, and the total.
async fn count(state: &AppState) -> Result<(BTreeMap<String, i64>, i64), ConsoleError> {
    let rows = state
        .db
        .run(Node::count_by_state)
        .await
        .map_err(crate::error::ApiError::from)?;
    let mut by_state = BTreeMap::new();
    let mut total = 0;
    for (provision, _power, n) in rows {
        *by_state.entry(provision).or_insert(0) += n;
        total += n;
    }
    Ok((by_state, total))
}

/// `GET /console/counts`: `{"total": N, "states": {"active": n, …}}`.
pub async fn counts(state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let (by_state, total) = count(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"total": total, "states": by_state})))
}

/// The row of one node (the script replaces rows with the same markup's
/// fields, keyed by `data-field`).
fn row(node: &Node, conductor: Option<&str>) -> Markup {
    let target = node.target_provision_state.as_deref();
    html! {
        tr id={ "node-" (node.uuid) } data-uuid=(node.uuid) {
            td data-field="name" {
                a href={ "/console/nodes/" (node.uuid) } {
                    (node.name.as_deref().unwrap_or(&node.uuid))
                }
            }
            td.state data-field="provision_state" {
                span class=(state_class(&node.provision_state)) { (node.provision_state) }
                @if let Some(target) = target {
                    span.target { " → " (target) }
                }
            }
            td data-field="power_state" { (node.power_state.as_deref().unwrap_or("None")) }
            td data-field="maintenance" {
                @if node.maintenance { span.maint { "maintenance" } } @else { "no" }
            }
            td data-field="conductor" { (conductor.unwrap_or("—")) }
            td.error data-field="last_error" { (node.last_error.as_deref().unwrap_or("")) }
        }
    }
}

fn counts_markup(by_state: &BTreeMap<String, i64>, total: i64) -> Markup {
    html! {
        section aria-labelledby="counts-title" {
            h2 #counts-title { "By state" }
            ul.counts #counts {
                li { a href="/console/" { "all " strong #count-total { (total) } } }
                @for (state, n) in by_state {
                    li {
                        a href={ "/console/?state=" (urlencode(state)) } data-count-state=(state) {
                            span class=(state_class(state)) { (state) } " " strong { (n) }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(query: &FleetQuery) -> Markup {
    let states = ProvisionState::ALL.iter().map(|s| s.as_str());
    html! {
        form.filters method="get" action="/console/" role="search" {
            label { "Name or UUID " input type="search" name="q" value=(query.q); }
            label {
                "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in states {
                        option value=(s) selected[query.state == s] { (s) }
                    }
                }
            }
            label {
                "Maintenance "
                select name="maintenance" {
                    option value="" { "either" }
                    option value="yes" selected[query.maintenance == "yes"] { "yes" }
                    option value="no" selected[query.maintenance == "no"] { "no" }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `GET /console/`: the fleet.
pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let query = query.into_inner();
    let limit = i64::from(state.settings.console.page_size);
    let filter = NodeFilter {
        name_or_uuid_contains: Some(query.q.trim().to_owned()).filter(|q| !q.is_empty()),
        provision_state: Some(query.state.clone()).filter(|s| !s.is_empty()),
        maintenance: match query.maintenance.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        ..NodeFilter::default()
    };
    let after = Some(query.after.clone()).filter(|a| !a.is_empty());
    let nodes = state
        .db
        .run(move |conn| {
            let marker = match &after {
                Some(uuid) => Node::by_uuid(conn, uuid)?,
                None => None,
            };
            let page = Page {
                limit: limit + 1,
                sort_key: "name".into(),
                sort_dir: SortDir::Asc,
            };
            Node::list(conn, &filter, &page, marker.as_ref())
        })
        .await
        .map_err(crate::error::ApiError::from)?;
    let (by_state, total) = count(&state).await?;
    let view = state.cluster(false).await?;
    let more = i64::try_from(nodes.len()).unwrap_or(i64::MAX) > limit;
    let shown = &nodes[..nodes
        .len()
        .min(usize::try_from(limit).unwrap_or(usize::MAX))];
    let next = more.then(|| {
        let last = shown.last().map_or("", |n| n.uuid.as_str());
        format!(
            "/console/?q={}&state={}&maintenance={}&after={}",
            urlencode(&query.q),
            urlencode(&query.state),
            urlencode(&query.maintenance),
            last
        )
    });
    let filtered = !query.q.is_empty() || !query.state.is_empty() || !query.maintenance.is_empty();
    let main = html! {
        h1 { "Fleet " span.muted { (total) " nodes" } }
        (counts_markup(&by_state, total))
        (filter_form(&query))
        section aria-labelledby="nodes-title" {
            h2 #nodes-title {
                @if filtered { "Matching nodes" } @else { "Nodes" }
                @if !query.after.is_empty() { " (continued)" }
            }
            @if shown.is_empty() {
                p #empty { "No node matches." }
            } @else {
                div.scroll {
                    table #nodes data-filter-state=(query.state) data-filter-maintenance=(query.maintenance) {
                        thead {
                            tr {
                                th scope="col" { "Name" }
                                th scope="col" { "Provision state" }
                                th scope="col" { "Power" }
                                th scope="col" { "Maintenance" }
                                th scope="col" { "Conductor" }
                                th scope="col" { "Last error" }
                            }
                        }
                        tbody {
                            @for node in shown {
                                (row(node, owner(&view, node)))
                            }
                        }
                    }
                }
            }
            nav.pages aria-label="Pages" {
                @if !query.after.is_empty() { a href="/console/" { "First page" } }
                @if let Some(next) = next { a rel="next" href=(next) { "Next page" } }
            }
        }
    };
    Ok(layout("Fleet", Section::Fleet, "fleet", main))
}

/// The conductor the hash ring gives `node` to.
fn owner<'a>(view: &'a ClusterView, node: &Node) -> Option<&'a str> {
    view.owner(&node.conductor_group, &node.driver, &node.uuid)
}
