//! The conductors and queues page (`/console/conductors`): the ring's
//! members with their heartbeat age and how many nodes the ring gives each,
//! each conductor's task queue (depth, consumers) and the dead letters with
//! the reason each was set aside (`x-ferric-reason`) — from RabbitMQ over
//! AMQP in the distributed mode, from the in-process queue when embedded.
//!
//! Invariant: looking never consumes a message (peeked dead letters go back
//! to their queue unchanged).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use ferric_common::db::models::node::Node;
use maud::html;

use super::{ConsoleError, Section, age, human, layout};
use crate::error::ApiError;
use crate::state::AppState;

/// Dead letters listed at most.
const PEEK: usize = 50;

/// `GET /console/conductors`.
pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let view = state.cluster(true).await?;
    let places = state
        .db
        .run(Node::ring_places)
        .await
        .map_err(ApiError::from)?;
    let mut per_conductor: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unplaced = 0;
    for (uuid, group, driver) in &places {
        match view.owner(group, driver, uuid) {
            Some(host) => *per_conductor.entry(host).or_default() += 1,
            None => unplaced += 1,
        }
    }
    let hosts: Vec<String> = view
        .conductors()
        .iter()
        .map(|c| c.hostname.clone())
        .collect();
    let overview = state.queue.overview(&hosts, PEEK).await;
    let main = html! {
        h1 { "Conductors & queues" }
        section #ring aria-labelledby="ring-title" {
            h2 #ring-title { "The ring" }
            p.muted {
                (places.len()) " nodes; "
                @if unplaced > 0 { strong.bad { (unplaced) " with no live conductor for their driver" } }
                @else { "every node has a live conductor" }
                "."
            }
            div.scroll {
                table #conductors {
                    thead {
                        tr {
                            th scope="col" { "Conductor" }
                            th scope="col" { "Group" }
                            th scope="col" { "State" }
                            th scope="col" { "Last heartbeat" }
                            th scope="col" { "Hardware types" }
                            th scope="col" { "Nodes" }
                        }
                    }
                    tbody {
                        @for c in view.conductors() {
                            @let alive = view.is_alive(&c.hostname);
                            tr data-conductor=(c.hostname) {
                                td { (c.hostname) }
                                td { (if c.conductor_group.is_empty() { "(default)" } else { &c.conductor_group }) }
                                td {
                                    @if alive { "alive" }
                                    @else if c.online { span.bad { "not heartbeating" } }
                                    @else { "stopped" }
                                }
                                td { (human(age(c.updated_at.unwrap_or(c.created_at)))) " ago" }
                                td { (view.hardware_types_of(&c.hostname).join(", ")) }
                                td { (per_conductor.get(c.hostname.as_str()).copied().unwrap_or(0)) }
                            }
                        }
                    }
                }
            }
        }
        section #queue-section aria-labelledby="queues-title" {
            h2 #queues-title { "Task queues" }
            @match &overview {
                Err(e) => p.error #queue-error { "The queues cannot be read: " (e.to_string()) },
                Ok(overview) => {
                    div.scroll {
                        table #queues {
                            thead { tr { th scope="col" { "Queue" } th scope="col" { "Waiting" } th scope="col" { "Consumers" } } }
                            tbody {
                                @for q in overview.queues.iter().chain(std::iter::once(&overview.dead)) {
                                    tr data-queue=(q.name) {
                                        td { (q.name) }
                                        td { (q.messages) }
                                        td { (q.consumers) }
                                    }
                                }
                            }
                        }
                    }
                    h3 { "Dead letters" }
                    @if overview.dead_letters.is_empty() {
                        p.muted #dead-none { "None." }
                    } @else {
                        p.muted {
                            "The oldest " (overview.dead_letters.len()) " of " (overview.dead.messages)
                            ", with the reason each was set aside. They stay in the queue."
                        }
                        div.scroll {
                            table #dead-letters {
                                thead { tr { th scope="col" { "Sent to" } th scope="col" { "Task" } th scope="col" { "Size" } th scope="col" { "Reason" } } }
                                tbody {
                                    @for letter in &overview.dead_letters {
                                        tr {
                                            td { (letter.conductor) }
                                            td { (letter.task_type.as_deref().unwrap_or("—")) }
                                            td { (letter.bytes) " B" }
                                            td.error { (letter.reason) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        "Conductors & queues",
        Section::Conductors,
        "conductors",
        main,
    ))
}
