//! `AppState`: what every handler can reach (database, task queue, settings,
//! a cached cluster view) and the helper that sends a task to the conductor
//! owning a node.
//!
//! Invariant: the cluster view is at most `CLUSTER_VIEW_TTL` old, and a
//! lookup that finds no conductor reloads it once before giving up (as
//! Ironic's hash ring manager does), so a conductor that just registered is
//! found.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use ferric_common::cluster::ClusterView;
use ferric_common::config::Settings;
use ferric_common::db::Db;
use ferric_common::db::models::node::Node;
use ferric_common::queue::{QueueError, TaskQueue};
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{RefusalKind, Task, TaskReply, task};

use crate::error::ApiError;

/// How long a cluster view is reused (Ironic's `hash_ring_reset_interval` is 15 s).
const CLUSTER_VIEW_TTL: Duration = Duration::from_secs(5);

/// The last cluster view and when it was loaded.
type CachedView = Arc<Mutex<Option<(Instant, Arc<ClusterView>)>>>;

/// Shared state of the API. Cloning is shallow.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub queue: Arc<dyn TaskQueue>,
    pub settings: Arc<Settings>,
    /// `Some` when `[auth] strategy = http_basic`.
    pub auth: Option<Arc<crate::auth::BasicAuth>>,
    /// Where node create/update/delete notifications go.
    pub notifier: ferric_common::notify::Notifier,
    /// What the console's open pages follow.
    pub feed: ferric_common::feed::Feed,
    /// The per-source rate of `/v1/lookup` and `/v1/heartbeat`.
    pub ramdisk_rate: Arc<crate::throttle::SourceRate>,
    /// The per-source backoff after `http_basic` failures.
    pub auth_backoff: Arc<crate::throttle::FailureBackoff>,
    /// Set on shutdown while the API drains (`[api] drain_secs`).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    cluster: CachedView,
}

impl AppState {
    pub fn new(db: Db, queue: Arc<dyn TaskQueue>, settings: Settings) -> AppState {
        let api = &settings.api;
        let ramdisk_rate = Arc::new(crate::throttle::SourceRate::new(
            api.ramdisk_requests_per_minute,
            api.ramdisk_request_burst,
        ));
        let auth_backoff = Arc::new(crate::throttle::FailureBackoff::new(
            api.auth_failures_before_backoff,
            std::time::Duration::from_secs(api.auth_backoff_max_secs),
        ));
        AppState {
            db,
            queue,
            settings: Arc::new(settings),
            auth: None,
            notifier: ferric_common::notify::Notifier::disabled(),
            feed: ferric_common::feed::Feed::new(),
            ramdisk_rate,
            auth_backoff,
            draining: Arc::default(),
            cluster: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends notifications through `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: ferric_common::notify::Notifier) -> AppState {
        self.notifier = notifier;
        self
    }

    /// Serves the console's live updates from `feed`.
    #[must_use]
    pub fn with_feed(mut self, feed: ferric_common::feed::Feed) -> AppState {
        self.feed = feed;
        self
    }

    /// Turns on `[auth] strategy = http_basic`: reads the user file (and
    /// again on every SIGHUP).
    ///
    /// # Errors
    /// When the strategy is `http_basic` and the file cannot be used.
    pub fn with_auth_from_settings(mut self) -> Result<AppState, crate::auth::ConfigInvalid> {
        if self.settings.auth.strategy == ferric_common::config::AuthStrategy::HttpBasic {
            let auth = Arc::new(crate::auth::BasicAuth::load(
                &self.settings.auth.http_basic_auth_user_file,
            )?);
            auth.reload_on_sighup();
            self.auth = Some(auth);
        }
        Ok(self)
    }

    /// The cached cluster view, reloaded when stale or when `force`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn cluster(&self, force: bool) -> Result<Arc<ClusterView>, ApiError> {
        if !force
            && let Ok(guard) = self.cluster.lock()
            && let Some((at, view)) = guard.as_ref()
            && at.elapsed() < CLUSTER_VIEW_TTL
        {
            return Ok(view.clone());
        }
        let timeout = self.settings.heartbeat_timeout();
        let view = Arc::new(
            self.db
                .run(move |conn| ClusterView::load(conn, timeout))
                .await?,
        );
        if let Ok(mut guard) = self.cluster.lock() {
            *guard = Some((Instant::now(), view.clone()));
        }
        Ok(view)
    }

    /// The conductor owning `node`, reloading the view once on a miss.
    ///
    /// # Errors
    /// 400 `NoValidHost` when no alive conductor serves the node's driver and group.
    pub async fn owner_of(&self, node: &Node) -> Result<String, ApiError> {
        for force in [false, true] {
            let view = self.cluster(force).await?;
            if let Some(owner) = view.owner(&node.conductor_group, &node.driver, &node.uuid) {
                return Ok(owner.to_owned());
            }
        }
        Err(no_valid_host(&node.driver, &node.conductor_group))
    }

    /// Sends a task about `node` to its owner and waits for the reply;
    /// refusals become Ironic's errors.
    ///
    /// # Errors
    /// The conductor's refusal, 503 when no conductor answers.
    pub async fn call(
        &self,
        node: &Node,
        request_id: &str,
        kind: task::Kind,
    ) -> Result<Outcome, ApiError> {
        let owner = self.owner_of(node).await?;
        self.call_host(&owner, &node.uuid, request_id, kind).await
    }

    /// [`AppState::call`] for a task whose reply carries an answer: the one
    /// `expected` picks out of the outcome (any other is a 500).
    ///
    /// # Errors
    /// As [`AppState::call`].
    pub async fn ask<T>(
        &self,
        node: &Node,
        request_id: &str,
        kind: task::Kind,
        expected: impl FnOnce(Outcome) -> Option<T>,
    ) -> Result<T, ApiError> {
        let outcome = self.call(node, request_id, kind).await?;
        expected(outcome).ok_or_else(|| ApiError::Internal("Unexpected conductor reply.".into()))
    }

    /// Sends a task that no node owns (an allocation's) to a live
    /// conductor picked by `key`, and waits for the reply.
    ///
    /// # Errors
    /// As [`AppState::call`]; 503 when no conductor is alive.
    pub async fn call_any(
        &self,
        key: &str,
        request_id: &str,
        kind: task::Kind,
    ) -> Result<Outcome, ApiError> {
        for force in [false, true] {
            let view = self.cluster(force).await?;
            if let Some(host) = view.any_alive(key) {
                let host = host.to_owned();
                return self.call_host(&host, "", request_id, kind).await;
            }
        }
        Err(ApiError::Unavailable(
            "No conductor is available. Please retry later.".into(),
        ))
    }

    async fn call_host(
        &self,
        owner: &str,
        node_uuid: &str,
        request_id: &str,
        kind: task::Kind,
    ) -> Result<Outcome, ApiError> {
        let task = Task {
            task_id: uuid::Uuid::new_v4().to_string(),
            node_uuid: node_uuid.to_owned(),
            request_id: request_id.to_owned(),
            issued_at_unix_ms: chrono::Utc::now().timestamp_millis(),
            kind: Some(kind),
        };
        let timeout = Duration::from_secs(self.settings.api.task_timeout_secs);
        let span = tracing::info_span!("queue.publish", node.uuid = %node_uuid, conductor = %owner);
        let reply: TaskReply = self
            .queue
            .call(owner, task, timeout)
            .instrument(span)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "task not answered");
                match e {
                    QueueError::NoConsumer(_)
                    | QueueError::Dropped(_)
                    | QueueError::Timeout(..)
                        if node_uuid.is_empty() =>
                    {
                        ApiError::Unavailable("No conductor answered. Please retry later.".into())
                    }
                    QueueError::NoConsumer(_)
                    | QueueError::Dropped(_)
                    | QueueError::Timeout(..) => ApiError::Unavailable(format!(
                        "No conductor answered for node {node_uuid}. Please retry later."
                    )),
                    QueueError::Broker(_) => ApiError::Unavailable(
                        "The message broker is temporarily unavailable. Please retry later.".into(),
                    ),
                }
            })?;
        match reply.outcome {
            Some(Outcome::Refused(refusal)) => Err(match refusal.kind() {
                RefusalKind::NodeLocked | RefusalKind::Conflict => {
                    ApiError::Conflict(refusal.message)
                }
                RefusalKind::NotFound => ApiError::NotFound(refusal.message),
                RefusalKind::Forbidden => ApiError::Forbidden(refusal.message),
                RefusalKind::Temporary | RefusalKind::Unspecified => {
                    ApiError::Unavailable(refusal.message)
                }
                RefusalKind::Invalid => ApiError::BadRequest(refusal.message),
                RefusalKind::DriverFailure => ApiError::Internal(refusal.message),
            }),
            Some(outcome) => Ok(outcome),
            None => Err(ApiError::Internal(
                "The conductor sent an empty reply.".into(),
            )),
        }
    }
}

/// Ironic's `NoValidHost` for a driver and conductor group.
pub fn no_valid_host(driver: &str, group: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "No valid host was found. Reason: No conductor service registered which supports driver {driver} for conductor group \"{group}\". Ensure the driver is valid and enabled."
    ))
}
