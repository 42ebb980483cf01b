//! The task queue both run modes share: the API *calls* a conductor with a
//! protobuf [`Task`] and waits for its [`TaskReply`] (the conductor answers
//! once it holds the node lock and has committed the in-progress state).
//!
//! Invariants: tasks travel encoded (`prost`), in the embedded mode too, so
//! both modes exercise the same decode path; a task that cannot be decoded is
//! dead-lettered with a reason, never crashes a consumer.

pub mod amqp;
pub mod broker;
pub mod local;
pub mod reroute;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ferric_proto::v1::{Task, TaskReply};

/// Errors from publishing a task or waiting for its reply.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No consumer is registered under the conductor's name.
    #[error("conductor {0} is not consuming tasks")]
    NoConsumer(String),
    /// The conductor did not answer within the call timeout.
    #[error("conductor {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// The conductor went away before answering.
    #[error("conductor {0} dropped the task without answering")]
    Dropped(String),
    /// The broker is unreachable or refused the message.
    #[error("message broker: {0}")]
    Broker(String),
}

/// A boxed future, so the trait stays object-safe.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends tasks to conductors by name and waits for their replies.
pub trait TaskQueue: Send + Sync + 'static {
    /// Sends `task` to `conductor` and waits at most `timeout` for its reply.
    /// A task the caller gave up on is never run later.
    fn call<'a>(
        &'a self,
        conductor: &'a str,
        task: Task,
        timeout: Duration,
    ) -> QueueFuture<'a, Result<TaskReply, QueueError>>;

    /// Whether a call could be sent now (the broker reachable); the
    /// in-process queue always can.
    fn ready(&self) -> QueueFuture<'_, Result<(), QueueError>> {
        Box::pin(async { Ok(()) })
    }

    /// The task queues of `conductors` and the dead letters (the oldest
    /// `peek` of them), for the console. Reading never consumes a message.
    fn overview<'a>(
        &'a self,
        conductors: &'a [String],
        peek: usize,
    ) -> QueueFuture<'a, Result<QueueOverview, QueueError>>;
}

/// One queue's depth, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub name: String,
    /// Messages ready for delivery.
    pub messages: u32,
    pub consumers: u32,
}

/// A dead letter as the console shows it (never the task's content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedLetter {
    /// The conductor it was sent to.
    pub conductor: String,
    /// Why it was dead-lettered (`x-ferric-reason`).
    pub reason: String,
    /// The task's type, when the publisher named it.
    pub task_type: Option<String>,
    pub bytes: usize,
}

/// The queues at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOverview {
    /// Each conductor's task queue (absent ones are left out).
    pub queues: Vec<QueueDepth>,
    /// The dead-letter queue.
    pub dead: QueueDepth,
    /// Its oldest messages, at most the `peek` asked for.
    pub dead_letters: Vec<PeekedLetter>,
}

/// Why a delivery was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub conductor: String,
    pub reason: String,
    pub payload: Vec<u8>,
}

/// A task delivered to a conductor, with the way to settle it.
pub struct Incoming {
    /// The encoded `ferric.v1.Task`.
    pub payload: Vec<u8>,
    /// The caller's W3C trace context (`traceparent`, `tracestate`).
    pub trace: std::collections::HashMap<String, String>,
    /// How the delivery is answered, acknowledged or dead-lettered.
    pub settle: Box<dyn Settle>,
}

/// Settles one delivery: exactly one of its methods is called.
pub trait Settle: Send {
    /// Whether the caller stopped waiting (the task must then not run).
    fn is_expired(&self) -> bool;
    /// Sends the reply to the caller and acknowledges the delivery.
    fn reply(self: Box<Self>, reply: TaskReply) -> QueueFuture<'static, ()>;
    /// Moves the delivery to the dead letters with `reason`.
    fn dead_letter(self: Box<Self>, reason: String) -> QueueFuture<'static, ()>;
}
