//! The embedded mode's in-process queue: one bounded channel per conductor,
//! a oneshot for each reply.
//!
//! Invariants: a delivery whose caller has already given up (deadline passed)
//! is discarded unrun, as an AMQP message past its `expiration` would be;
//! rejected deliveries are kept in a dead-letter list that operators and
//! tests can read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_proto::v1::{Task, TaskReply};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::queue::{
    DeadLetter, Incoming, PeekedLetter, QueueDepth, QueueError, QueueFuture, QueueOverview, Settle,
    TaskQueue,
};

/// How many undelivered tasks one conductor's channel holds before callers wait.
const CHANNEL_CAPACITY: usize = 4096;

/// How a local delivery is settled: its caller's oneshot, and the queue's
/// dead-letter list.
struct LocalSettle {
    conductor: String,
    payload: Vec<u8>,
    deadline: Instant,
    reply: oneshot::Sender<TaskReply>,
    dead: Arc<Mutex<Vec<DeadLetter>>>,
}

impl Settle for LocalSettle {
    fn is_expired(&self) -> bool {
        Instant::now() >= self.deadline || self.reply.is_closed()
    }

    fn reply(self: Box<Self>, reply: TaskReply) -> QueueFuture<'static, ()> {
        let _ = self.reply.send(reply);
        Box::pin(async {})
    }

    fn dead_letter(self: Box<Self>, reason: String) -> QueueFuture<'static, ()> {
        tracing::warn!(conductor.hostname = %self.conductor, %reason, "task dead-lettered");
        if let Ok(mut dead) = self.dead.lock() {
            dead.push(DeadLetter {
                conductor: self.conductor,
                reason,
                payload: self.payload,
            });
        }
        Box::pin(async {})
    }
}

/// The in-process queue. Cloning is shallow.
#[derive(Clone, Default)]
pub struct LocalQueue {
    consumers: Arc<Mutex<HashMap<String, mpsc::Sender<Incoming>>>>,
    dead: Arc<Mutex<Vec<DeadLetter>>>,
}

impl LocalQueue {
    pub fn new() -> LocalQueue {
        LocalQueue::default()
    }

    /// Registers `conductor` as a consumer; tasks for it arrive on the receiver.
    pub fn consume(&self, conductor: &str) -> mpsc::Receiver<Incoming> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.insert(conductor.to_owned(), tx);
        }
        rx
    }

    /// Stops delivering to `conductor`.
    pub fn cancel(&self, conductor: &str) {
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.remove(conductor);
        }
    }

    /// Every dead letter so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Sends raw bytes to a conductor, as a broken publisher could (tests).
    ///
    /// # Errors
    /// As [`TaskQueue::call`].
    pub async fn call_raw(
        &self,
        conductor: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<TaskReply, QueueError> {
        let sender = self
            .consumers
            .lock()
            .ok()
            .and_then(|c| c.get(conductor).cloned())
            .ok_or_else(|| QueueError::NoConsumer(conductor.to_owned()))?;
        let deadline = Instant::now() + timeout;
        let (reply_tx, reply_rx) = oneshot::channel();
        let delivery = Incoming {
            payload: payload.clone(),
            trace: crate::telemetry::trace_context(),
            settle: Box::new(LocalSettle {
                conductor: conductor.to_owned(),
                payload,
                deadline,
                reply: reply_tx,
                dead: self.dead.clone(),
            }),
        };
        tokio::time::timeout_at(deadline, sender.send(delivery))
            .await
            .map_err(|_| QueueError::Timeout(conductor.to_owned(), timeout))?
            .map_err(|_| QueueError::NoConsumer(conductor.to_owned()))?;
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Err(_) => Err(QueueError::Timeout(conductor.to_owned(), timeout)),
            Ok(Err(_)) => Err(QueueError::Dropped(conductor.to_owned())),
            Ok(Ok(reply)) => Ok(reply),
        }
    }
}

impl TaskQueue for LocalQueue {
    fn call<'a>(
        &'a self,
        conductor: &'a str,
        task: Task,
        timeout: Duration,
    ) -> QueueFuture<'a, Result<TaskReply, QueueError>> {
        Box::pin(self.call_raw(conductor, task.encode_to_vec(), timeout))
    }

    fn overview<'a>(
        &'a self,
        conductors: &'a [String],
        peek: usize,
    ) -> QueueFuture<'a, Result<QueueOverview, QueueError>> {
        let queues = self
            .consumers
            .lock()
            .map(|consumers| {
                conductors
                    .iter()
                    .filter_map(|name| {
                        let sender = consumers.get(name)?;
                        Some(QueueDepth {
                            name: name.clone(),
                            messages: u32::try_from(sender.max_capacity() - sender.capacity())
                                .unwrap_or(u32::MAX),
                            consumers: u32::from(!sender.is_closed()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let dead = self.dead_letters();
        let dead_letters = dead
            .iter()
            .take(peek)
            .map(|letter| PeekedLetter {
                conductor: letter.conductor.clone(),
                reason: letter.reason.clone(),
                task_type: None,
                bytes: letter.payload.len(),
            })
            .collect();
        let overview = QueueOverview {
            queues,
            dead: QueueDepth {
                name: "dead letters".into(),
                messages: u32::try_from(dead.len()).unwrap_or(u32::MAX),
                consumers: 0,
            },
            dead_letters,
        };
        Box::pin(async move { Ok(overview) })
    }
}
