//! [`Context`]: the services every task and every interface implementation
//! shares (database, BMC connections, image cache, boot settings, the
//! notifier, the agent HTTP client), built once when a conductor starts.
//!
//! Invariant: cloning a context shares these services (they are handles);
//! nothing here holds a node's state.

use std::sync::Arc;
use std::time::Duration;

use ferric_common::config::{BootConfig, ConductorConfig, ConductorSettings};
use ferric_common::db::Db;
use ferric_common::notify::Notifier;
use tokio_util::task::TaskTracker;

use crate::destinations::DestinationPolicy;
use crate::drivers::bmc::Bmcs;
use crate::images::{DownloadLimits, ImageCache, Sources};

/// What every task needs.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    /// This conductor's host name: the value it writes into `reservation`.
    pub host: String,
    /// `[conductor]`, shared (a task clones the context).
    pub settings: Arc<ConductorSettings>,
    /// Tracks background work so shutdown can wait for it.
    pub tracker: TaskTracker,
    /// BMC connections (IPMI sessions, Redfish clients).
    pub bmcs: Arc<Bmcs>,
    /// Downloaded, verified images.
    pub images: Arc<ImageCache>,
    /// Where boot files go.
    pub boot: Arc<BootConfig>,
    /// Where notifications of state changes go.
    pub notifier: Notifier,
    /// Talks to deploy ramdisks' agents (bounded timeouts).
    pub agent_http: reqwest::Client,
    /// Nodes whose outcome or lock a database outage kept from being
    /// written; the periodic pass writes them.
    pub unsettled: Arc<crate::unsettled::Unsettled>,
}

/// An HTTP client (for agents, for images) could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpClientError(String);

impl Context {
    /// The services of a conductor named `host`, with a new tracker for
    /// its background work.
    ///
    /// # Errors
    /// When the agent HTTP client cannot be built (no TLS backend).
    pub fn new(
        config: &ConductorConfig,
        db: Db,
        host: String,
        notifier: Notifier,
    ) -> Result<Context, HttpClientError> {
        let boot = &config.boot;
        let settings = &config.conductor;
        Ok(Context {
            db,
            host,
            settings: Arc::new(config.conductor.clone()),
            tracker: TaskTracker::new(),
            bmcs: Arc::new(Bmcs::new(config.ipmi.clone(), config.redfish.clone())),
            images: Arc::new(
                ImageCache::new(
                    boot.image_cache_dir.clone(),
                    Sources {
                        allowed_file_paths: boot.file_url_allowed_paths.clone(),
                        destinations: DestinationPolicy::new(
                            settings.image_url_allowed_networks.clone(),
                            settings.image_url_denied_networks.clone(),
                            config.own_listeners.clone(),
                        ),
                    },
                    boot.image_cache_size_mb.saturating_mul(1024 * 1024),
                    Duration::from_secs(boot.image_cache_ttl_mins.saturating_mul(60)),
                    DownloadLimits {
                        connect: settings.image_download_connect_timeout(),
                        read: settings.image_download_read_timeout(),
                        total: settings.image_download_timeout(),
                        max_bytes: settings.image_download_max_mb.saturating_mul(1024 * 1024),
                    },
                )
                .map_err(|e| HttpClientError(format!("the image download client: {e}")))?,
            ),
            boot: Arc::new(boot.clone()),
            notifier,
            agent_http: crate::drivers::agent_tls::plain_client()
                .map_err(|e| HttpClientError(format!("the agent HTTP client: {e}")))?,
            unsettled: Arc::default(),
        })
    }
}
