//! A node's page (`/console/nodes/{ident}`): the diagnosis line, its facts
//! (state and for how long, power, lock holder and whether it lives, agent,
//! step, deploy progress), its timeline (the node journal and Ironic's node
//! history, newest first, with the time spent in each state and the trace
//! of each change), BMC power actions with their latency, and action
//! buttons the page's script turns into the CLI's own API calls.
//!
//! Invariant: only what Ferric recorded is shown; `driver_info` (where the
//! BMC's secrets live) is never read.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use ferric_common::db::models::history::HistoryRow;
use ferric_common::db::models::journal::{BOOT_FILE_FETCHED, JournalRow};
use ferric_common::db::models::node::Node;
use ferric_common::db::models::port::Port;
use ferric_common::states::{ProvisionState, Verb};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::diagnosis::{DhcpFacts, Facts, diagnose};
use super::{ConsoleError, Section, age, human, layout, stamp, state_class};
use crate::error::ApiError;
use crate::state::AppState;

/// Journal rows and history events a page shows at most.
const TIMELINE: i64 = 200;

/// One line of the timeline.
struct Line {
    at: NaiveDateTime,
    what: String,
    class: &'static str,
    /// Time spent in the state this change led to (provision changes).
    lasted: Option<String>,
    step: Option<String>,
    by: Option<String>,
    trace_id: Option<String>,
    error: Option<String>,
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn step_name(column: &str) -> Option<String> {
    let step: Value = serde_json::from_str(column).ok()?;
    let name = step.get("step")?.as_str()?;
    Some(match step.get("interface").and_then(Value::as_str) {
        Some(interface) => format!("{interface}.{name}"),
        None => name.to_owned(),
    })
}

/// The provision changes of `journal` (newest first) with how long the node
/// stayed in the state each led to; the newest lasts until `now`.
fn provision_lines(journal: &[JournalRow]) -> Vec<Line> {
    let mut next_change: Option<NaiveDateTime> = None;
    let mut lines = Vec::new();
    for row in journal {
        let provision = row.event_type.starts_with("baremetal.node.provision_set.");
        let what = if row.event_type == BOOT_FILE_FETCHED {
            format!("boot file {} fetched", row.event.as_deref().unwrap_or("?"))
        } else if provision {
            format!(
                "{} → {}{}",
                row.previous_provision_state.as_deref().unwrap_or("?"),
                row.provision_state.as_deref().unwrap_or("?"),
                row.event
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        } else {
            let status = row.event_type.rsplit('.').next().unwrap_or("");
            format!(
                "power {}: {}",
                status,
                row.to_power.as_deref().unwrap_or("?")
            )
        };
        let lasted = provision.then(|| {
            let until = next_change.unwrap_or_else(ferric_common::db::now);
            let spent = human((until - row.created_at).to_std().unwrap_or_default());
            if next_change.is_none() {
                format!("{spent} so far")
            } else {
                spent
            }
        });
        if provision {
            next_change = Some(row.created_at);
        }
        lines.push(Line {
            at: row.created_at,
            what,
            class: if row.event_type.ends_with(".error") {
                "bad"
            } else {
                ""
            },
            lasted,
            step: row.step.clone(),
            by: Some(row.publisher.clone()),
            trace_id: row.trace_id.clone(),
            error: row.last_error.clone(),
        });
    }
    lines
}

/// Power actions (start → end/error) with the BMC's time to do them,
/// newest first, from the journal.
fn power_actions(journal: &[JournalRow]) -> Vec<(NaiveDateTime, String, Option<Duration>, bool)> {
    let mut out = Vec::new();
    // Newest first: an end is met before its start.
    let mut pending_end: Option<&JournalRow> = None;
    for row in journal {
        match row.event_type.as_str() {
            "baremetal.node.power_set.end" | "baremetal.node.power_set.error" => {
                pending_end = Some(row);
            }
            "baremetal.node.power_set.start" => {
                let target = row.to_power.clone().unwrap_or_default();
                match pending_end.take() {
                    Some(end) if end.to_power == row.to_power => out.push((
                        row.created_at,
                        target,
                        (end.created_at - row.created_at).to_std().ok(),
                        end.event_type.ends_with(".error"),
                    )),
                    _ => out.push((row.created_at, target, None, false)),
                }
            }
            _ => {}
        }
    }
    out
}

/// What the DHCP host files say of the node's PXE ports, when Ferric
/// writes them (`[dhcp] dhcp_provider = dnsmasq`) and they can be read.
fn dhcp_facts(state: &AppState, ports: &[Port]) -> Option<DhcpFacts> {
    let (hostsdir, _) = state.settings.boot().dnsmasq?;
    let mut facts = DhcpFacts {
        ports: 0,
        answering: 0,
        ignored: 0,
    };
    for port in ports.iter().filter(|p| p.pxe_enabled) {
        facts.ports += 1;
        let file = hostsdir.join(format!("ironic-{}.conf", port.address));
        match std::fs::read_to_string(file) {
            Ok(line) if line.trim_end().ends_with(",ignore") => facts.ignored += 1,
            Ok(_) => facts.answering += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(facts)
}

/// The provision actions offered from `state` (verb, label).
fn provision_actions(state: &str) -> Vec<(&'static str, &'static str)> {
    let Ok(current) = state.parse::<ProvisionState>() else {
        return Vec::new();
    };
    [
        (Verb::Manage, "Manage"),
        (Verb::Provide, "Provide"),
        (Verb::Active, "Deploy"),
        (Verb::Deleted, "Undeploy"),
        (Verb::Abort, "Abort"),
    ]
    .into_iter()
    .filter(|(verb, _)| {
        current.next(verb.event()).is_some()
            && verb.allowed_from(current, crate::microversion::MAX_MINOR)
    })
    .map(|(verb, label)| (verb.as_str(), label))
    .collect()
}

fn trace_cell(state: &AppState, trace_id: Option<&str>) -> Markup {
    html! {
        @if let Some(id) = trace_id {
            @if let Some(url) = &state.settings.console.trace_url {
                a href=(url.replace("{trace_id}", id)) { code { (id) } }
            } @else {
                code { (id) }
            }
        }
    }
}

/// `GET /console/nodes/{ident}`.
pub async fn page(
    state: web::Data<AppState>,
    ident: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let ident = ident.into_inner();
    let wanted = ident.clone();
    let loaded = state
        .db
        .run(move |conn| {
            let Some(node) = Node::by_ident(conn, &wanted)? else {
                return Ok(None);
            };
            let ports = Port::of_node(conn, node.id)?;
            let journal = JournalRow::of_node(conn, &node.uuid, TIMELINE)?;
            let history = HistoryRow::page(conn, node.id, None, TIMELINE, true)?;
            Ok(Some((node, ports, journal, history)))
        })
        .await
        .map_err(ApiError::from)?;
    let Some((node, ports, journal, history)) = loaded else {
        return Err(ApiError::NotFound(format!("Node {ident} could not be found.")).into());
    };
    let view = state.cluster(false).await?;
    let owner = view.owner(&node.conductor_group, &node.driver, &node.uuid);
    let internal: Map<String, Value> = node.driver_internal_info_map().unwrap_or_default();
    let heartbeat = internal
        .get("agent_last_heartbeat")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let agent_version = internal.get("agent_version").and_then(Value::as_str);
    let progress = internal.get("deploy_progress").and_then(|p| {
        Some((
            p.get("bytes")?.as_u64()?,
            p.get("total").and_then(Value::as_u64),
        ))
    });
    let step = step_name(&node.deploy_step).or_else(|| step_name(&node.clean_step));
    let conductor = &state.settings.conductor;
    let wait_timeout = match node.provision_state.as_str() {
        "inspect wait" => Some(conductor.inspect_wait_timeout()),
        "wait call-back" | "clean wait" | "rescue wait" | "service wait" => {
            Some(Duration::from_secs(conductor.deploy_callback_timeout_secs))
        }
        _ => None,
    };
    let entered = node.provision_updated_at.unwrap_or(node.created_at);
    let boot_fetch = journal
        .iter()
        .find(|row| row.event_type == BOOT_FILE_FETCHED && row.created_at >= entered)
        .map(|row| (row.event.as_deref().unwrap_or("?"), age(row.created_at)));
    let facts = Facts {
        provision_state: &node.provision_state,
        target_provision_state: node.target_provision_state.as_deref(),
        in_state_for: node.provision_updated_at.or(node.updated_at).map(age),
        power_state: node.power_state.as_deref(),
        target_power_state: node.target_power_state.as_deref(),
        maintenance: node.maintenance,
        maintenance_reason: node.maintenance_reason.as_deref(),
        fault: node.fault.as_deref(),
        last_error: node.last_error.as_deref(),
        lock: node
            .reservation
            .as_deref()
            .map(|holder| (holder, view.is_alive(holder))),
        owner,
        driver: &node.driver,
        agent: heartbeat.map(|at| (age(at), agent_version)),
        step: step.clone(),
        progress,
        wait_timeout,
        dhcp: dhcp_facts(&state, &ports),
        boot_fetch,
        serves_boot_files: state.settings.deploy.http_listen.is_some(),
    };
    let diagnosis = diagnose(&facts);
    let mut timeline = provision_lines(&journal);
    timeline.extend(history.iter().map(|h| Line {
        at: h.created_at,
        what: format!(
            "{} {}",
            h.event_type.as_deref().unwrap_or("event"),
            h.severity.as_deref().unwrap_or("")
        ),
        class: if h.severity.as_deref() == Some("ERROR") {
            "bad"
        } else {
            ""
        },
        lasted: None,
        step: None,
        by: h.conductor.clone(),
        trace_id: None,
        error: h.event.clone(),
    }));
    timeline.sort_by_key(|line| std::cmp::Reverse(line.at));
    let powers = power_actions(&journal);
    let title = node.name.clone().unwrap_or_else(|| node.uuid.clone());
    let main = html! {
        h1 { "Node " (title) }
        p.muted { code { (node.uuid) } " · driver " (node.driver) }
        section.diagnosis aria-labelledby="diag-title" {
            h2 #diag-title { "Why it is where it is" }
            p #diagnosis { (diagnosis.join(" ")) }
        }
        section aria-labelledby="facts-title" {
            h2 #facts-title { "Now" }
            dl.facts #facts {
                dt { "Provision state" }
                dd data-field="provision_state" {
                    span class=(state_class(&node.provision_state)) { (node.provision_state) }
                    @if let Some(target) = &node.target_provision_state { " → " (target) }
                    @if let Some(held) = facts.in_state_for { span.muted { " for " (human(held)) } }
                }
                dt { "Power" }
                dd data-field="power_state" {
                    (node.power_state.as_deref().unwrap_or("None"))
                    @if let Some(target) = &node.target_power_state { " → " (target) }
                }
                dt { "Maintenance" }
                dd data-field="maintenance" {
                    @if node.maintenance {
                        "yes" @if let Some(reason) = &node.maintenance_reason { ": " (reason) }
                    } @else { "no" }
                }
                dt { "Conductor" }
                dd { (owner.unwrap_or("none alive for its driver")) }
                dt { "Lock" }
                dd #lock {
                    @match &node.reservation {
                        Some(holder) => {
                            (holder)
                            @if view.is_alive(holder) { " (alive)" } @else { " (not heartbeating)" }
                        }
                        None => "free",
                    }
                }
                @if let Some(step) = &step { dt { "Step" } dd { code { (step) } } }
                dt { "Agent" }
                dd #agent {
                    @match heartbeat {
                        Some(at) => {
                            "last heartbeat " (human(age(at))) " ago"
                            @if let Some(v) = agent_version { ", version " (v) }
                        }
                        None => "no heartbeat recorded",
                    }
                }
                @if let Some((bytes, total)) = progress {
                    dt { "Deploy progress" }
                    dd {
                        @if let Some(total) = total.filter(|t| *t > 0) {
                            progress value=(bytes) max=(total) {}
                            " " (bytes.saturating_mul(100) / total) "%"
                        } @else { (bytes) " bytes written" }
                    }
                }
                dt { "Last error" }
                @match &node.last_error {
                    Some(error) => dd.error data-field="last_error" { (error) },
                    None => dd data-field="last_error" { "none" },
                }
            }
        }
        section aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            p.muted { "Each asks for confirmation, then calls the API as the CLI does." }
            div.actions #actions data-uuid=(node.uuid) data-name=(title) {
                button type="button" data-kind="power" data-target="power on" { "Power on" }
                button type="button" data-kind="power" data-target="power off" { "Power off" }
                button type="button" data-kind="power" data-target="rebooting" { "Reboot" }
                @if node.maintenance {
                    button type="button" data-kind="maintenance" data-target="off" { "End maintenance" }
                } @else {
                    button type="button" data-kind="maintenance" data-target="on" { "Maintenance" }
                }
                @for (verb, label) in provision_actions(&node.provision_state) {
                    button type="button" data-kind="provision" data-target=(verb) { (label) }
                }
            }
            p #action-result role="status" aria-live="polite" {}
        }
        section aria-labelledby="bmc-title" {
            h2 #bmc-title { "BMC power actions" }
            @if powers.is_empty() {
                p.muted { "None recorded." }
            } @else {
                div.scroll {
                    table #power-actions {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Asked" } th scope="col" { "BMC took" } th scope="col" { "Result" } } }
                        tbody {
                            @for (at, target, took, error) in powers.iter().take(20) {
                                tr {
                                    td { (stamp(*at)) }
                                    td { (target) }
                                    td { @if let Some(took) = took { (format!("{:.2} s", took.as_secs_f64())) } @else { "—" } }
                                    td { @if *error { span.bad { "error" } } @else if took.is_some() { "done" } @else { "running" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            @if timeline.is_empty() {
                p.muted { "Nothing recorded yet." }
            } @else {
                div.scroll {
                    table #timeline {
                        thead {
                            tr {
                                th scope="col" { "When" }
                                th scope="col" { "Change" }
                                th scope="col" { "Stayed" }
                                th scope="col" { "Step" }
                                th scope="col" { "By" }
                                th scope="col" { "Trace" }
                                th scope="col" { "Error" }
                            }
                        }
                        tbody {
                            @for line in &timeline {
                                tr class=(line.class) {
                                    td { (stamp(line.at)) }
                                    td { (line.what) }
                                    td { (line.lasted.as_deref().unwrap_or("")) }
                                    td { @if let Some(s) = &line.step { code { (s) } } }
                                    td { (line.by.as_deref().unwrap_or("")) }
                                    td { (trace_cell(&state, line.trace_id.as_deref())) }
                                    td.error { (line.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&title, Section::Fleet, "node", main))
}
