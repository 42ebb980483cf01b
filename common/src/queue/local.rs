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

use crate::queue::{DeadLetter, QueueError, QueueFuture, TaskQueue};

/// How many undelivered tasks one conductor's channel holds before callers wait.
const CHANNEL_CAPACITY: usize = 4096;

/// One task on its way to a conductor.
#[derive(Debug)]
pub struct Delivery {
    /// The encoded `ferric.v1.Task`.
    pub payload: Vec<u8>,
    /// When the caller stops waiting; a consumer must not start the task after it.
    pub deadline: Instant,
    reply: oneshot::Sender<TaskReply>,
}

impl Delivery {
    /// Answers the caller (a no-op if it stopped waiting).
    pub fn reply(self, reply: TaskReply) {
        let _ = self.reply.send(reply);
    }

    /// Whether the caller has stopped waiting.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.deadline || self.reply.is_closed()
    }
}

/// The in-process queue. Cloning is shallow.
#[derive(Clone, Default)]
pub struct LocalQueue {
    consumers: Arc<Mutex<HashMap<String, mpsc::Sender<Delivery>>>>,
    dead: Arc<Mutex<Vec<DeadLetter>>>,
}

impl LocalQueue {
    pub fn new() -> LocalQueue {
        LocalQueue::default()
    }

    /// Registers `conductor` as a consumer; tasks for it arrive on the receiver.
    pub fn consume(&self, conductor: &str) -> mpsc::Receiver<Delivery> {
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

    /// Records a rejected delivery.
    pub fn dead_letter(&self, conductor: &str, reason: String, payload: Vec<u8>) {
        tracing::warn!(conductor.hostname = conductor, %reason, "task dead-lettered");
        if let Ok(mut dead) = self.dead.lock() {
            dead.push(DeadLetter {
                conductor: conductor.to_owned(),
                reason,
                payload,
            });
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
        let delivery = Delivery {
            payload,
            deadline,
            reply: reply_tx,
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
}
