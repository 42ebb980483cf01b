//! Re-routing: the tasks left in a dead conductor's queue go to the nodes'
//! new owners (DESIGN §6 "re-routes the messages left in the dead
//! conductor's queue"). The API that published such a task is still
//! waiting for its reply, so the task keeps its `reply_to` and correlation
//! id and the caller gets its answer from the new owner.
//!
//! Invariants: a message is acknowledged in the dead queue only after the
//! broker confirmed its copy to the new owner; a task whose caller has
//! given up (issue time + expiration passed) is dropped, never run late; an
//! undecodable one is dead-lettered; one without a live owner stays where
//! it is until a later pass. One pass handles at most the messages that
//! were in the queue when it began.

use ferric_proto::v1::Task;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use prost::Message;

use crate::queue::QueueError;
use crate::queue::amqp::{Names, broker, dead_letter, open};
use crate::queue::broker::Broker;

/// What one pass over a dead conductor's queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rerouted {
    /// Tasks now in their new owner's queue.
    pub moved: usize,
    /// Tasks whose caller had given up, dropped.
    pub expired: usize,
    /// Messages that were not tasks, dead-lettered.
    pub dead_lettered: usize,
    /// Tasks without a live owner yet, left for a later pass.
    pub left: usize,
}

/// Moves tasks out of dead conductors' queues; holds one confirm-mode
/// channel, reopened after any channel error (a missing queue closes it).
pub struct Rerouter {
    broker: Broker,
    names: Names,
    link: Option<(Connection, Channel)>,
}

impl Rerouter {
    pub fn new(broker: Broker, prefix: &str) -> Rerouter {
        Rerouter {
            broker,
            names: Names::new(prefix),
            link: None,
        }
    }

    async fn channel(&mut self) -> Result<Channel, QueueError> {
        if let Some((_, channel)) = &self.link
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (conn, channel) = open(&self.broker, &self.names).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        self.link = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Moves the tasks in `dead_host`'s queue to the hosts `owner_of`
    /// names (`None`: no live owner now).
    ///
    /// # Errors
    /// When the broker fails; the pass stops and unsettled messages stay.
    pub async fn drain<F, Fut>(
        &mut self,
        dead_host: &str,
        owner_of: F,
    ) -> Result<Rerouted, QueueError>
    where
        F: Fn(&Task) -> Fut,
        Fut: Future<Output = Option<String>>,
    {
        let channel = self.channel().await?;
        let queue = self.names.conductor_queue(dead_host);
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let waiting = match declared {
            Ok(q) => q.message_count(),
            Err(_) => {
                // No such queue (the channel is closed now): nothing to move.
                self.link = None;
                return Ok(Rerouted::default());
            }
        };
        let mut done = Rerouted::default();
        for _ in 0..waiting {
            let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .map_err(broker)?
            else {
                break;
            };
            let delivery = message.delivery;
            let task = match Task::decode(delivery.data.as_slice()) {
                Ok(task) => task,
                Err(e) => {
                    let reason = format!("undecodable task: {e}");
                    dead_letter(&channel, &self.names.dlx, &delivery, &reason).await;
                    done.dead_lettered += 1;
                    continue;
                }
            };
            let remaining = remaining_ms(&task, delivery.properties.expiration());
            if remaining == Some(0) {
                done.expired += 1;
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(broker)?;
                continue;
            }
            let mut properties = delivery.properties.clone();
            if let Some(ms) = remaining {
                properties = properties.with_expiration(ms.to_string().as_str().into());
            }
            // To the new owner, or back to the tail of this queue for a
            // later pass when there is none (a requeue would put it back
            // at the head).
            let owner = owner_of(&task).await;
            let (exchange, routing_key) = match &owner {
                Some(owner) => (self.names.tasks.as_str(), owner.as_str()),
                None => ("", queue.as_str()),
            };
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    properties,
                )
                .await
                .map_err(broker)?
                .await
                .map_err(broker)?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                // Not taken: leave the original where it is and stop.
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
                    .map_err(broker)?;
                done.left += 1;
                break;
            }
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(broker)?;
            match owner {
                Some(owner) => {
                    tracing::info!(task.id = %task.task_id, node.uuid = %task.node_uuid, from = dead_host, to = %owner, "task re-routed");
                    done.moved += 1;
                }
                None => done.left += 1,
            }
        }
        Ok(done)
    }
}

/// Milliseconds the task's caller still waits: `None` when the message
/// has no expiration, `Some(0)` when the caller has given up.
fn remaining_ms(task: &Task, expiration: &Option<lapin::types::ShortString>) -> Option<u64> {
    let ttl: u64 = expiration.as_ref()?.as_str().parse().ok()?;
    let issued = u64::try_from(task.issued_at_unix_ms).ok()?;
    let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(u64::MAX);
    Some((issued + ttl).saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_issued(ms_ago: i64) -> Task {
        Task {
            issued_at_unix_ms: chrono::Utc::now().timestamp_millis() - ms_ago,
            ..Task::default()
        }
    }

    #[test]
    fn a_task_past_its_expiration_has_no_time_left() {
        let expired = remaining_ms(&task_issued(61_000), &Some("60000".into()));
        let live = remaining_ms(&task_issued(1_000), &Some("60000".into()));
        let unbounded = remaining_ms(&task_issued(1_000), &None);

        assert_eq!(expired, Some(0));
        assert!(
            live.is_some_and(|ms| ms > 50_000 && ms <= 59_000),
            "{live:?}"
        );
        assert_eq!(unbounded, None);
    }
}
