//! Ferric's settings: defaults < TOML file (`--config`) < environment
//! `FERRIC_<SECTION>__<KEY>`, loaded and validated once at start-up.
//!
//! Invariants: no other module reads environment variables; a bad value is a
//! start-up error naming its key; secrets are [`SecretString`] so `Debug`
//! never prints them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The whole configuration tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded mode keeps its SQLite database.
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub conductor: ConductorSettings,
    pub ipmi: IpmiSettings,
    pub redfish: RedfishSettings,
    pub pxe: PxeSettings,
    pub deploy: DeploySettings,
    pub agent: AgentSettings,
    pub dhcp: DhcpSettings,
    pub dnsmasq: DnsmasqSettings,
    pub auth: AuthSettings,
    pub vnc: VncSettings,
    pub console: ConsoleSettings,
    pub auto_discovery: AutoDiscoverySettings,
}

/// `[auto_discovery]` (Ironic's): a machine no node matches that posts its
/// inspection data (`/v1/continue_inspection`) is enrolled as a new node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoDiscoverySettings {
    pub enabled: bool,
    /// The new node's driver (hardware type); needed when enabled.
    pub driver: Option<String>,
}

/// `[console]`: the operator console under `/console/` on the API's port.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve the console (behind the API's own authentication); off, no
    /// node journal is written either.
    pub enabled: bool,
    /// A tracing UI's page of one trace, `{trace_id}` replaced by the
    /// trace id (e.g. `http://jaeger:16686/trace/{trace_id}`); without it
    /// trace ids are shown as text.
    pub trace_url: Option<String>,
    /// Days the node journal (the console's timelines) keeps a change.
    pub journal_days: u32,
    /// Nodes per page of the fleet view.
    pub page_size: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            trace_url: None,
            journal_days: 30,
            page_size: 100,
        }
    }
}

impl ConsoleSettings {
    /// How long the journal keeps a change.
    pub fn journal_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.journal_days) * 86_400)
    }
}

/// `[vnc]`: graphical consoles.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VncSettings {
    /// Ironic's `[vnc]public_url`: the noVNC page a graphical console's
    /// link opens (behind a proxy, the proxy's).
    pub public_url: String,
}

impl Default for VncSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:6090/vnc_auto.html".into(),
        }
    }
}

/// `[amqp]`: the broker of the distributed mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`.
    pub url: SecretString,
    /// Prefix of every exchange and queue name (several deployments or
    /// test runs on one broker).
    pub prefix: String,
    /// PEM file of the CA(s) an `amqps://` broker's certificate must chain
    /// to (with its name as in the URL); needed for `amqps://`, refused
    /// for `amqp://`.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefix: String::new(),
            tls_ca_file: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./ferric-data"),
            api: ApiSettings::default(),
            database: DatabaseSettings::default(),
            amqp: AmqpSettings::default(),
            conductor: ConductorSettings::default(),
            ipmi: IpmiSettings::default(),
            redfish: RedfishSettings::default(),
            pxe: PxeSettings::default(),
            deploy: DeploySettings::default(),
            agent: AgentSettings::default(),
            dhcp: DhcpSettings::default(),
            dnsmasq: DnsmasqSettings::default(),
            auth: AuthSettings::default(),
            vnc: VncSettings::default(),
            console: ConsoleSettings::default(),
            auto_discovery: AutoDiscoverySettings::default(),
        }
    }
}

/// `[api]`: the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// The base URL put into links (`http://host:port` when unset), like
    /// Ironic's `[api]public_endpoint`.
    pub public_endpoint: Option<String>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// `[api]max_limit`: the largest page a list returns.
    pub max_limit: usize,
    /// `[api]ramdisk_heartbeat_timeout`: how often, at most, a deploy
    /// ramdisk is told to heartbeat (seconds).
    pub ramdisk_heartbeat_timeout_secs: u64,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// How long the API waits for a conductor to accept a task.
    pub task_timeout_secs: u64,
    /// Most connections open at once per worker; more wait in the backlog.
    pub max_connections: usize,
    /// A client must send its whole request head within this, or the
    /// connection is closed (slow-client protection).
    pub client_request_timeout_ms: u64,
    /// A client must send its whole request body within this once its head
    /// arrived (a body dripped a byte at a time ties up nothing longer).
    pub body_read_timeout_secs: u64,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Largest request head (all header names and values) accepted; more
    /// gets 431.
    pub max_header_bytes: usize,
    /// Ironic's `[oslo_middleware]enable_proxy_headers_parsing`: build links
    /// from `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` (only
    /// behind a proxy that sets them); otherwise from the address the
    /// client reached (never from its `Host` header).
    pub enable_proxy_headers_parsing: bool,
    /// TLS: a PEM certificate chain and its PEM private key; both set =
    /// the API speaks HTTPS only.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Requests a minute one source may make to the ramdisk endpoints
    /// (`/v1/lookup`, `/v1/heartbeat`), in bursts of
    /// `ramdisk_request_burst`; more get 429. 0 = unlimited.
    pub ramdisk_requests_per_minute: u32,
    pub ramdisk_request_burst: u32,
    /// When not empty, the only networks lookups and heartbeats are
    /// answered from (the provisioning networks); others get 403.
    pub ramdisk_allowed_networks: Vec<ipnet::IpNet>,
    /// `http_basic`: failures one source may have before each further one
    /// makes it wait (1 s, 2 s, 4 s … up to `auth_backoff_max_secs`,
    /// answered 429 without checking a password); 0 s = no backoff.
    pub auth_failures_before_backoff: u32,
    pub auth_backoff_max_secs: u64,
    /// On SIGTERM, how long the API goes on serving while `/readyz` says
    /// 503 and every answer closes its connection, so a load balancer stops
    /// sending before the listener closes (then in-flight requests finish).
    pub drain_secs: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6385,
            public_endpoint: None,
            max_body_bytes: 1024 * 1024,
            max_limit: 1000,
            ramdisk_heartbeat_timeout_secs: 300,
            workers: 0,
            task_timeout_secs: 60,
            max_connections: 25_000,
            client_request_timeout_ms: 5_000,
            body_read_timeout_secs: 60,
            keep_alive_secs: 5,
            max_header_bytes: 32 * 1024,
            enable_proxy_headers_parsing: false,
            tls_cert_file: None,
            tls_key_file: None,
            ramdisk_requests_per_minute: 120,
            ramdisk_request_burst: 30,
            ramdisk_allowed_networks: Vec::new(),
            auth_failures_before_backoff: 5,
            auth_backoff_max_secs: 30,
            drain_secs: 0,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://<path>`; unset = `<data_dir>/ferric.db`.
    pub url: Option<SecretString>,
    pub pool_size: u32,
    /// SQLite's busy timeout, in milliseconds.
    pub busy_timeout_ms: u64,
    /// How long a call waits for a database connection: then an API
    /// request answers 503 (within 100 ms while the database is known
    /// to be down), a conductor tries again (see `outage_tolerance_secs`).
    pub connection_timeout_ms: u64,
    /// How long a conductor rides a database outage out (a restart, a
    /// failover, dropped connections), retrying with backoff, before the
    /// work that needed the database fails with that reason.
    pub outage_tolerance_secs: u64,
    /// PEM file of the CA(s) PostgreSQL's certificate must chain to: set,
    /// Ferric reaches PostgreSQL only over TLS and verifies the server's
    /// name as in the URL (libpq's `verify-full`; `sslmode=verify-full`
    /// with `sslrootcert` in the URL does the same).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 8,
            busy_timeout_ms: 10_000,
            connection_timeout_ms: 2_000,
            outage_tolerance_secs: 120,
            tls_ca_file: None,
        }
    }
}

impl DatabaseSettings {
    /// [`DatabaseSettings::connection_timeout_ms`] as a duration.
    pub fn connection_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_timeout_ms)
    }

    /// [`DatabaseSettings::outage_tolerance_secs`] as a duration.
    pub fn outage_tolerance(&self) -> Duration {
        Duration::from_secs(self.outage_tolerance_secs)
    }
}

/// `[conductor]automated_cleaning_step_source`, Ironic's three choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleaningStepSource {
    /// The interfaces' steps by priority (Ironic's default).
    Autogenerated,
    /// A configured runbook, or the cleaning fails.
    Runbook,
    /// A configured runbook, else the interfaces' steps.
    Hybrid,
}

/// `[conductor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConductorSettings {
    /// This conductor's name in the `conductors` table and the hash ring;
    /// unset = the machine's host name.
    pub host: Option<String>,
    pub conductor_group: String,
    pub enabled_hardware_types: Vec<String>,
    pub heartbeat_interval_secs: u64,
    pub heartbeat_timeout_secs: u64,
    /// `[conductor]automated_clean`: clean on provide and undeploy.
    pub automated_clean: bool,
    /// `[conductor]deploy_callback_timeout`: how long a node may wait for
    /// its deploy ramdisk's heartbeat before the deploy fails.
    pub deploy_callback_timeout_secs: u64,
    /// `[conductor]inspect_wait_timeout`: how long a node may wait in
    /// `inspect wait` for its agent's data before the inspection fails.
    pub inspect_wait_timeout_secs: u64,
    /// `[inspector]add_ports`: which interfaces an agent inspection creates
    /// ports for: `pxe` (the one it booted from; those with an address
    /// when unknown), `active` (with an address), `all` or `disabled`.
    pub inspect_add_ports: String,
    /// `[deploy]erase_devices_priority`: the priority of the agent's
    /// `erase_devices` clean step in automated cleaning; unset = the
    /// agent's own (10 for ironic-python-agent: every disk overwritten),
    /// 0 = never.
    pub erase_devices_priority: Option<i32>,
    /// `[deploy]erase_devices_metadata_priority`: likewise for
    /// `erase_devices_metadata` (the agent's own: 99).
    pub erase_devices_metadata_priority: Option<i32>,
    /// `[conductor]clean_step_priority_override`: `interface.step:priority`
    /// pairs, comma-separated (`deploy.erase_devices_metadata:123,
    /// deploy.erase_devices:0`), applied after the `[deploy]` priorities;
    /// 0 leaves a step out of automated cleaning.
    pub clean_step_priority_override: String,
    /// `[conductor]automated_cleaning_step_source`: where automated
    /// cleaning's steps come from — the interfaces' priorities
    /// (`autogenerated`), a runbook that must be configured (`runbook`), or
    /// a runbook when one is configured, else the priorities (`hybrid`).
    pub automated_cleaning_step_source: CleaningStepSource,
    /// `[conductor]automated_cleaning_runbook`: the runbook (name or UUID)
    /// of automated cleaning when neither the node's resource class nor
    /// the node names one.
    pub automated_cleaning_runbook: Option<String>,
    /// `[conductor]automated_cleaning_runbook_by_resource_class`: resource
    /// class → runbook (a TOML table).
    pub automated_cleaning_runbook_by_resource_class: std::collections::BTreeMap<String, String>,
    /// `[conductor]automated_cleaning_runbook_from_node`: a node's
    /// `driver_info` `cleaning_runbook` wins (off by default: whoever may
    /// edit `driver_info` could then skip cleaning).
    pub automated_cleaning_runbook_from_node: bool,
    /// `[conductor]automated_cleaning_runbook_validate_traits`: the node
    /// must share a trait with the runbook, or its cleaning fails.
    pub automated_cleaning_runbook_validate_traits: bool,
    /// `[conductor]allow_deleting_available_nodes`.
    pub allow_deleting_available_nodes: bool,
    /// `[conductor]permitted_image_formats`: the formats an instance image
    /// may be detected as; deploy ramdisks are told at lookup and refuse
    /// any other ("Security: Detected image format was …").
    pub permitted_image_formats: Vec<String>,
    /// `[conductor]disable_deep_image_inspection`: skip the format checks
    /// above (Ironic's escape hatch; not advised).
    pub disable_deep_image_inspection: bool,
    /// How long each fake step (verify, clean, deploy) takes, in
    /// milliseconds; Ironic's fake interfaces return at once.
    pub fake_step_delay_ms: u64,
    /// Most tasks a conductor runs at once.
    pub max_concurrent_tasks: usize,
    /// `[conductor]check_provision_state_interval`: how often a conductor looks
    /// for nodes locked by dead conductors that it now owns (takeover).
    pub check_provision_state_interval_secs: u64,
    /// `[conductor]node_locked_retry_attempts`: tries to take a busy node's lock.
    pub node_locked_retry_attempts: u32,
    /// `[conductor]node_locked_retry_interval`, in milliseconds.
    pub node_locked_retry_interval_ms: u64,
    /// How long a shutting-down conductor waits for running tasks.
    pub graceful_shutdown_timeout_secs: u64,
    /// `[conductor]power_state_change_timeout`: how long a power action
    /// waits for the hardware to report the target state.
    pub power_state_change_timeout_secs: u64,
    /// `[conductor]soft_power_off_timeout`: the default wait of a soft power off.
    pub soft_power_off_timeout_secs: u64,
    /// `[conductor]sync_power_state_interval`: how often the power state of
    /// the nodes this conductor owns is compared with the hardware; 0 = never.
    pub sync_power_state_interval_secs: u64,
    /// `[conductor]force_power_state_during_sync`: on a mismatch, set the
    /// hardware to the recorded state (true) or record the hardware's (false).
    pub force_power_state_during_sync: bool,
    /// `[conductor]power_state_sync_max_retries`: failed syncs of one node
    /// before it goes into maintenance with fault `power failure`.
    pub power_state_sync_max_retries: u32,
    /// `[conductor]sync_power_state_workers`: nodes synced at once.
    pub sync_power_state_workers: usize,
    /// `[conductor]file_url_allowed_paths`: the only directories `file://`
    /// image URLs may read from; unset = `/var/lib/ironic` and
    /// `<data_dir>/images`; empty = no `file://` URLs at all.
    pub file_url_allowed_paths: Option<Vec<PathBuf>>,
    /// `[conductor]image_download_connect_timeout_secs`: how long an image
    /// server may take to accept the connection.
    pub image_download_connect_timeout_secs: u64,
    /// `[conductor]image_download_read_timeout_secs`: the longest silence
    /// while an image downloads (no byte in that long fails it).
    pub image_download_read_timeout_secs: u64,
    /// `[conductor]image_download_timeout_secs`: the longest a whole image
    /// download may take.
    pub image_download_timeout_secs: u64,
    /// `[conductor]image_download_max_mb`: the largest image Ferric
    /// downloads (MiB); larger ones fail the deploy.
    pub image_download_max_mb: u64,
    /// `[conductor]image_url_allowed_networks`: when not empty, the only
    /// networks an http(s) image or checksum URL may reach (after every
    /// redirect and name resolution); empty = any not denied.
    pub image_url_allowed_networks: Vec<ipnet::IpNet>,
    /// `[conductor]image_url_denied_networks`: networks no image URL
    /// reaches (default: link-local and cloud metadata addresses). Ferric's
    /// own listeners are always refused.
    pub image_url_denied_networks: Vec<ipnet::IpNet>,
    /// Binds an agent to the address its lookup came from: its heartbeats
    /// must come from there and its `callback_url` must name it (beyond
    /// Ironic; turn off only when agents reach the API through NAT).
    pub agent_bind_source_address: bool,
    /// Where a `ferric conductor` serves its Prometheus `/metrics`
    /// (`host:port`); unset = not served (the embedded mode's API serves them).
    pub metrics_listen: Option<String>,
}

impl Default for ConductorSettings {
    fn default() -> Self {
        Self {
            host: None,
            conductor_group: String::new(),
            enabled_hardware_types: vec![
                "fake-hardware".into(),
                "ipmi".into(),
                "manual-management".into(),
                "redfish".into(),
            ],
            heartbeat_interval_secs: 10,
            heartbeat_timeout_secs: 60,
            automated_clean: true,
            permitted_image_formats: ["raw", "gpt", "qcow2", "iso"].map(String::from).to_vec(),
            disable_deep_image_inspection: false,
            deploy_callback_timeout_secs: 1800,
            inspect_wait_timeout_secs: 1800,
            inspect_add_ports: "pxe".into(),
            erase_devices_priority: None,
            erase_devices_metadata_priority: None,
            clean_step_priority_override: String::new(),
            automated_cleaning_step_source: CleaningStepSource::Autogenerated,
            automated_cleaning_runbook: None,
            automated_cleaning_runbook_by_resource_class: std::collections::BTreeMap::new(),
            automated_cleaning_runbook_from_node: false,
            automated_cleaning_runbook_validate_traits: true,
            allow_deleting_available_nodes: true,
            fake_step_delay_ms: 0,
            max_concurrent_tasks: 256,
            check_provision_state_interval_secs: 60,
            node_locked_retry_attempts: 3,
            node_locked_retry_interval_ms: 1000,
            graceful_shutdown_timeout_secs: 60,
            power_state_change_timeout_secs: 60,
            soft_power_off_timeout_secs: 600,
            sync_power_state_interval_secs: 120,
            force_power_state_during_sync: true,
            power_state_sync_max_retries: 3,
            sync_power_state_workers: 64,
            file_url_allowed_paths: None,
            image_download_connect_timeout_secs: 10,
            image_download_read_timeout_secs: 60,
            image_download_timeout_secs: 3600,
            image_download_max_mb: 102_400,
            image_url_allowed_networks: Vec::new(),
            image_url_denied_networks: crate::destinations::DEFAULT_DENIED_NETWORKS
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            agent_bind_source_address: true,
            metrics_listen: None,
        }
    }
}

/// The durations of `[conductor]`, as the code uses them.
impl ConductorSettings {
    /// `heartbeat_interval_secs` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs)
    }

    /// `heartbeat_timeout_secs` as a duration.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs)
    }

    /// `clean_step_priority_override` as `interface.step` → priority.
    ///
    /// # Errors
    /// An entry that is not `interface.step:integer`, named in the message.
    pub fn clean_step_priorities(&self) -> Result<std::collections::BTreeMap<String, i64>, String> {
        let mut priorities = std::collections::BTreeMap::new();
        for entry in self
            .clean_step_priority_override
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parsed = entry.rsplit_once(':').and_then(|(step, priority)| {
                let (interface, name) = step.trim().split_once('.')?;
                let valid = |part: &str| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                };
                (valid(interface) && valid(name))
                    .then_some(())
                    .and_then(|()| priority.trim().parse::<i64>().ok())
                    .map(|p| (format!("{interface}.{name}"), p))
            });
            let Some((step, priority)) = parsed else {
                return Err(format!(
                    "{entry:?} is not interface.step:priority (e.g. deploy.erase_devices_metadata:123)"
                ));
            };
            priorities.insert(step, priority);
        }
        Ok(priorities)
    }

    /// `inspect_wait_timeout_secs` as a duration.
    pub fn inspect_wait_timeout(&self) -> Duration {
        Duration::from_secs(self.inspect_wait_timeout_secs)
    }

    /// `deploy_callback_timeout_secs` as a duration.
    pub fn deploy_callback_timeout(&self) -> Duration {
        Duration::from_secs(self.deploy_callback_timeout_secs)
    }

    /// `fake_step_delay_ms` as a duration.
    pub fn fake_step_delay(&self) -> Duration {
        Duration::from_millis(self.fake_step_delay_ms)
    }

    /// `check_provision_state_interval_secs` as a duration.
    pub fn check_provision_state_interval(&self) -> Duration {
        Duration::from_secs(self.check_provision_state_interval_secs)
    }

    /// `node_locked_retry_interval_ms` as a duration.
    pub fn node_locked_retry_interval(&self) -> Duration {
        Duration::from_millis(self.node_locked_retry_interval_ms)
    }

    /// `graceful_shutdown_timeout_secs` as a duration.
    pub fn graceful_shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.graceful_shutdown_timeout_secs)
    }

    /// `power_state_change_timeout_secs` as a duration.
    pub fn power_state_change_timeout(&self) -> Duration {
        Duration::from_secs(self.power_state_change_timeout_secs)
    }

    /// `soft_power_off_timeout_secs` as a duration.
    pub fn soft_power_off_timeout(&self) -> Duration {
        Duration::from_secs(self.soft_power_off_timeout_secs)
    }

    /// `image_download_connect_timeout_secs` as a duration.
    pub fn image_download_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.image_download_connect_timeout_secs)
    }

    /// `image_download_read_timeout_secs` as a duration.
    pub fn image_download_read_timeout(&self) -> Duration {
        Duration::from_secs(self.image_download_read_timeout_secs)
    }

    /// `image_download_timeout_secs` as a duration.
    pub fn image_download_timeout(&self) -> Duration {
        Duration::from_secs(self.image_download_timeout_secs)
    }

    /// `sync_power_state_interval_secs` as a duration.
    pub fn sync_power_state_interval(&self) -> Duration {
        Duration::from_secs(self.sync_power_state_interval_secs)
    }
}

/// `[ipmi]`: the `ipmitool` power and management interfaces (spoken
/// natively over RMCP+, not by running ipmitool).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpmiSettings {
    /// `[ipmi]command_retry_timeout`: how long one command is retried
    /// (re-opening the session) before it fails.
    pub command_retry_timeout_secs: u64,
    /// `[ipmi]min_command_interval`, in milliseconds: the least time between
    /// two commands to one BMC. Ironic's 5 s guards against ipmitool opening
    /// a session per command; Ferric keeps one session per BMC.
    pub min_command_interval_ms: u64,
    /// How long one request waits for the BMC's reply before it is resent
    /// on a fresh session.
    pub reply_timeout_ms: u64,
    /// Most IPMI calls running at once across all BMCs (blocking threads).
    pub max_parallel_calls: usize,
}

impl Default for IpmiSettings {
    fn default() -> Self {
        Self {
            command_retry_timeout_secs: 60,
            min_command_interval_ms: 50,
            reply_timeout_ms: 2000,
            max_parallel_calls: 64,
        }
    }
}

/// `[redfish]`: the Redfish client, with Ironic's names and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedfishSettings {
    /// `[redfish]connection_attempts`: tries of one request that cannot
    /// reach the BMC before it fails.
    pub connection_attempts: u32,
    /// `[redfish]connection_retry_interval`, seconds between those tries.
    pub connection_retry_interval_secs: u64,
    /// `[redfish]connect_timeout`, seconds.
    pub connect_timeout_secs: u64,
    /// `[redfish]read_timeout`, seconds for a whole request.
    pub read_timeout_secs: u64,
    /// `[redfish]auth_type`: `basic`, `session` or `auto` (session, falling
    /// back to basic), for nodes whose driver_info does not say.
    pub auth_type: RedfishAuthType,
    /// Most requests in flight to one BMC at once (BMCs are small).
    pub max_parallel_per_bmc: usize,
    /// Most Redfish requests in flight at once across all BMCs.
    pub max_parallel_calls: usize,
    /// Retries of a GET the BMC answers with a server-side error (5xx),
    /// as sushy's `server_side_retries`: BMCs answer 500 while busy.
    pub server_side_retries: u32,
    /// Seconds between those retries (sushy's `server_side_retries_delay`).
    pub server_side_retries_delay_secs: u64,
    /// `[redfish]power_on_conflict_retry_attempts`: retries of a power on
    /// the BMC refuses with 409 ActionParameterValueConflict.
    pub power_on_conflict_retry_attempts: u32,
    /// `[redfish]power_on_conflict_retry_interval`, seconds.
    pub power_on_conflict_retry_interval_secs: u64,
}

impl Default for RedfishSettings {
    fn default() -> Self {
        Self {
            connection_attempts: 5,
            connection_retry_interval_secs: 4,
            connect_timeout_secs: 30,
            read_timeout_secs: 60,
            auth_type: RedfishAuthType::Auto,
            max_parallel_per_bmc: 4,
            max_parallel_calls: 256,
            server_side_retries: 10,
            server_side_retries_delay_secs: 3,
            power_on_conflict_retry_attempts: 6,
            power_on_conflict_retry_interval_secs: 10,
        }
    }
}

/// `[pxe]`: network boot files, with Ironic's names.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PxeSettings {
    /// Where TFTP is served from; unset = `<data_dir>/tftpboot`.
    pub tftp_root: Option<PathBuf>,
    /// The TFTP server's address handed out over DHCP.
    pub tftp_server: String,
    /// Kernel command line added to every boot.
    pub pxe_append_params: String,
    /// The per-MAC configuration directory under the roots.
    pub pxe_config_subdir: String,
    /// iPXE's download timeout in milliseconds (0 = iPXE's default).
    pub ipxe_timeout: u64,
    /// iPXE binaries DHCP hands to non-iPXE firmware, by boot mode.
    pub ipxe_bootfile_name: String,
    pub uefi_ipxe_bootfile_name: String,
    /// The `pxe` boot interface's loaders, by boot mode (BIOS pxelinux,
    /// UEFI grub).
    pub pxe_bootfile_name: String,
    pub uefi_pxe_bootfile_name: String,
    /// Where downloaded images are kept (the master cache); unset =
    /// `<data_dir>/master_images`.
    pub image_cache_dir: Option<PathBuf>,
    /// `[pxe]image_cache_size`: the cache's size limit in MiB.
    pub image_cache_size_mb: u64,
    /// `[pxe]image_cache_ttl`: minutes an unused image is kept.
    pub image_cache_ttl_mins: u64,
}

impl Default for PxeSettings {
    fn default() -> Self {
        Self {
            tftp_root: None,
            tftp_server: "127.0.0.1".into(),
            pxe_append_params: "nofb vga=normal".into(),
            pxe_config_subdir: "pxelinux.cfg".into(),
            ipxe_timeout: 0,
            ipxe_bootfile_name: "undionly.kpxe".into(),
            uefi_ipxe_bootfile_name: "snponly.efi".into(),
            pxe_bootfile_name: "pxelinux.0".into(),
            uefi_pxe_bootfile_name: "bootx64.efi".into(),
            image_cache_dir: None,
            image_cache_size_mb: 20480,
            image_cache_ttl_mins: 10080,
        }
    }
}

/// `[deploy]`: the HTTP side of network boot.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploySettings {
    /// Where iPXE scripts and images are written; unset = `<data_dir>/httpboot`.
    pub http_root: Option<PathBuf>,
    /// The URL machines reach `http_root` at; unset = derived from
    /// `http_listen` (its host, or `[pxe] tftp_server` when it listens on
    /// every address), else `http://127.0.0.1:8080`.
    pub http_url: Option<String>,
    /// When set (`host:port`), Ferric serves `http_root` there itself.
    pub http_listen: Option<String>,
    /// The API URL a deploy ramdisk's agent is given (`ipa-api-url=`);
    /// unset = `[api] public_endpoint`, else the API's own address.
    pub api_url: Option<String>,
    /// Ironic's `isolinux_bin` and `ldlinux_c32`: the BIOS boot loader of
    /// the ISOs Ferric builds for virtual media.
    pub isolinux_bin: PathBuf,
    pub ldlinux_c32: PathBuf,
    /// Ironic's `esp_image`: an EFI system partition image (with a boot
    /// loader reading `/EFI/BOOT/grub.cfg`) for UEFI ISOs; unset = Ferric
    /// builds BIOS ISOs only.
    pub esp_image: Option<PathBuf>,
}

impl Default for DeploySettings {
    fn default() -> Self {
        Self {
            http_root: None,
            http_url: None,
            http_listen: None,
            api_url: None,
            isolinux_bin: PathBuf::from("/usr/lib/ISOLINUX/isolinux.bin"),
            ldlinux_c32: PathBuf::from("/usr/lib/syslinux/modules/bios/ldlinux.c32"),
            esp_image: None,
        }
    }
}

/// `[agent]`: how deploy agents get their images (Ironic's `[agent]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// `http`: the agent downloads `image_source` itself; `local`: the
    /// conductor fetches and verifies it into its image cache and serves
    /// it from `[deploy] http_url`. A node's
    /// `instance_info.image_download_source` overrides it; `file://`
    /// images are always served locally.
    pub image_download_source: ImageDownloadSource,
}

/// Where an agent downloads the instance image from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDownloadSource {
    #[default]
    Http,
    Local,
}

/// `[redfish] auth_type`: how Ferric authenticates to a Redfish BMC whose
/// `driver_info` does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedfishAuthType {
    Basic,
    Session,
    /// A session when the service offers one, else basic.
    Auto,
}

/// `[auth] strategy` (Ironic's `auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    /// Anyone may use the API (Ironic's standalone default).
    Noauth,
    /// Apache htpasswd users with bcrypt passwords.
    HttpBasic,
}

/// `[dhcp] dhcp_provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpProvider {
    /// DHCP is someone else's.
    None,
    /// Host and option files for a dnsmasq reading `dhcp-hostsdir` /
    /// `dhcp-optsdir`.
    Dnsmasq,
}

/// `[auth]`: who may use the API (Ironic's `auth_strategy`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `noauth` (anyone; Ironic's standalone default) or `http_basic`.
    pub strategy: AuthStrategy,
    /// `http_basic_auth_user_file`: an Apache htpasswd file with bcrypt
    /// entries, read at start and on SIGHUP.
    pub http_basic_auth_user_file: PathBuf,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            strategy: AuthStrategy::Noauth,
            http_basic_auth_user_file: PathBuf::from("/etc/ironic/htpasswd"),
        }
    }
}

/// `[dhcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpSettings {
    /// `none` (DHCP is someone else's) or `dnsmasq` (host and option files
    /// for a dnsmasq reading `dhcp-hostsdir` / `dhcp-optsdir`).
    pub dhcp_provider: DhcpProvider,
}

impl Default for DhcpSettings {
    fn default() -> Self {
        Self {
            dhcp_provider: DhcpProvider::None,
        }
    }
}

/// `[dnsmasq]`: where the `dnsmasq` DHCP provider writes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsmasqSettings {
    /// unset = `<data_dir>/dhcp-hostsdir`.
    pub dhcp_hostsdir: Option<PathBuf>,
    /// unset = `<data_dir>/dhcp-optsdir`.
    pub dhcp_optsdir: Option<PathBuf>,
}

/// Network boot settings with every path resolved.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// What a deploy ramdisk's agent is told the API is.
    pub api_url: String,
    pub tftp_root: PathBuf,
    pub tftp_server: String,
    pub pxe_append_params: String,
    pub pxe_config_subdir: String,
    pub ipxe_timeout: u64,
    pub ipxe_bootfile_name: String,
    pub uefi_ipxe_bootfile_name: String,
    pub pxe_bootfile_name: String,
    pub uefi_pxe_bootfile_name: String,
    pub image_cache_dir: PathBuf,
    pub image_cache_size_mb: u64,
    pub image_cache_ttl_mins: u64,
    pub file_url_allowed_paths: Vec<PathBuf>,
    pub http_root: PathBuf,
    pub http_url: String,
    pub isolinux_bin: PathBuf,
    pub ldlinux_c32: PathBuf,
    pub esp_image: Option<PathBuf>,
    /// `[agent] image_download_source`.
    pub image_download_source: ImageDownloadSource,
    /// `Some((hostsdir, optsdir))` when the dnsmasq provider is on.
    pub dnsmasq: Option<(PathBuf, PathBuf)>,
}

/// Everything a conductor is configured with.
#[derive(Debug, Clone)]
pub struct ConductorConfig {
    pub conductor: ConductorSettings,
    pub ipmi: IpmiSettings,
    pub redfish: RedfishSettings,
    pub boot: BootConfig,
    /// The addresses this installation's servers listen on (no image
    /// fetch may reach them); start-up adds the ports it binds.
    pub own_listeners: crate::destinations::OwnListeners,
    /// How long the node journal keeps a change (`[console] journal_days`);
    /// `None` when the console is off (no journal is written).
    pub journal_retention: Option<std::time::Duration>,
}

/// A configuration that cannot be used, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("configuration: invalid value for {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Settings {
    /// Loads defaults, then `path` (if any), then `FERRIC_*` variables.
    ///
    /// # Errors
    /// When the file or a variable cannot be parsed, or a value is invalid.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_with_env(path, None)
    }

    /// As [`Settings::load`], reading the `FERRIC_*` variables from `env`
    /// instead of the process environment when it is given (to check a
    /// deployment's settings, such as docker-compose.yml's, without running it).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("FERRIC")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("conductor.enabled_hardware_types")
                .with_list_parse_key("conductor.file_url_allowed_paths")
                .try_parsing(true)
                .source(env),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and relations between values.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.api.max_body_bytes == 0 {
            return invalid("api.max_body_bytes", "must be positive");
        }
        if self.api.max_limit == 0 {
            return invalid("api.max_limit", "must be positive");
        }
        if let Err(reason) = self.conductor.clean_step_priorities() {
            return Err(ConfigError::Invalid {
                key: "conductor.clean_step_priority_override",
                reason,
            });
        }
        if self.console.page_size == 0 || self.console.page_size > 1000 {
            return invalid("console.page_size", "must be between 1 and 1000");
        }
        if self.auto_discovery.enabled
            && self
                .auto_discovery
                .driver
                .as_deref()
                .is_none_or(|d| d.trim().is_empty())
        {
            return invalid(
                "auto_discovery.driver",
                "must name the new nodes' hardware type when auto_discovery.enabled is set",
            );
        }
        if self.console.journal_days == 0 {
            return invalid("console.journal_days", "must be positive");
        }
        if let Some(url) = &self.console.trace_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("console.trace_url", "must be an http:// or https:// URL");
        }
        if self.api.max_connections == 0 || self.api.client_request_timeout_ms == 0 {
            return invalid(
                "api.max_connections / api.client_request_timeout_ms",
                "must be positive",
            );
        }
        if self.api.tls_cert_file.is_some() != self.api.tls_key_file.is_some() {
            return invalid(
                "api.tls_cert_file / api.tls_key_file",
                "set both or neither",
            );
        }
        if self.api.body_read_timeout_secs == 0 {
            return invalid("api.body_read_timeout_secs", "must be positive");
        }
        if self.api.task_timeout_secs == 0 {
            return invalid("api.task_timeout_secs", "must be positive");
        }
        if let Some(endpoint) = &self.api.public_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return invalid("api.public_endpoint", "must be an http(s) URL");
        }
        if self.database.pool_size == 0 {
            return invalid("database.pool_size", "must be positive");
        }
        if self.database.connection_timeout_ms == 0 {
            return invalid("database.connection_timeout_ms", "must be positive");
        }
        if !["pxe", "active", "all", "disabled"]
            .contains(&self.conductor.inspect_add_ports.as_str())
        {
            return invalid(
                "conductor.inspect_add_ports",
                "must be pxe, active, all or disabled",
            );
        }
        if self.conductor.permitted_image_formats.is_empty()
            || self.conductor.permitted_image_formats.iter().any(|f| {
                f.is_empty()
                    || !f
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
        {
            return invalid(
                "conductor.permitted_image_formats",
                "must list formats by name (raw, gpt, qcow2, iso …)",
            );
        }
        if self.conductor.enabled_hardware_types.is_empty() {
            return invalid("conductor.enabled_hardware_types", "must not be empty");
        }
        if self.conductor.heartbeat_interval_secs == 0 {
            return invalid("conductor.heartbeat_interval_secs", "must be positive");
        }
        if self.conductor.heartbeat_timeout_secs <= self.conductor.heartbeat_interval_secs {
            return invalid(
                "conductor.heartbeat_timeout_secs",
                "must be larger than conductor.heartbeat_interval_secs",
            );
        }
        if self.conductor.check_provision_state_interval_secs == 0 {
            return invalid(
                "conductor.check_provision_state_interval_secs",
                "must be positive",
            );
        }
        if self.conductor.node_locked_retry_attempts == 0 {
            return invalid("conductor.node_locked_retry_attempts", "must be at least 1");
        }
        if self.conductor.max_concurrent_tasks == 0 {
            return invalid("conductor.max_concurrent_tasks", "must be positive");
        }
        if self.conductor.power_state_change_timeout_secs < 2 {
            return invalid(
                "conductor.power_state_change_timeout_secs",
                "must be at least 2",
            );
        }
        if self.conductor.image_download_connect_timeout_secs == 0
            || self.conductor.image_download_read_timeout_secs == 0
            || self.conductor.image_download_timeout_secs == 0
            || self.conductor.image_download_max_mb == 0
        {
            return invalid(
                "conductor.image_download_connect_timeout_secs / read_timeout_secs / timeout_secs / max_mb",
                "must be positive",
            );
        }
        if self.conductor.sync_power_state_workers == 0 {
            return invalid("conductor.sync_power_state_workers", "must be positive");
        }
        if self.redfish.connection_attempts == 0
            || self.redfish.max_parallel_per_bmc == 0
            || self.redfish.max_parallel_calls == 0
            || self.redfish.connect_timeout_secs == 0
            || self.redfish.read_timeout_secs == 0
        {
            return invalid(
                "redfish.connection_attempts / max_parallel_per_bmc / max_parallel_calls / connect_timeout_secs / read_timeout_secs",
                "must be positive",
            );
        }
        let http_url = self.http_url();
        if !(http_url.starts_with("http://") || http_url.starts_with("https://")) {
            return invalid("deploy.http_url", "must be an http:// or https:// URL");
        }
        if let Err(e) = crate::kernel_args::KernelArgs::parse(&self.pxe.pxe_append_params) {
            return invalid("pxe.pxe_append_params", &e.to_string());
        }
        if self.ipmi.reply_timeout_ms == 0 {
            return invalid("ipmi.reply_timeout_ms", "must be positive");
        }
        if self.ipmi.max_parallel_calls == 0 {
            return invalid("ipmi.max_parallel_calls", "must be positive");
        }
        Ok(())
    }

    /// The database URL, defaulting to the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("ferric.db").display()),
        }
    }

    /// Network boot settings, paths defaulting under `data_dir`.
    pub fn boot(&self) -> BootConfig {
        let under = |set: &Option<PathBuf>, name: &str| {
            set.clone().unwrap_or_else(|| self.data_dir.join(name))
        };
        let api_url = self
            .deploy
            .api_url
            .clone()
            .or_else(|| self.api.public_endpoint.clone())
            .unwrap_or_else(|| format!("http://{}:{}", self.api.host, self.api.port));
        BootConfig {
            api_url: api_url.trim_end_matches('/').to_owned(),
            tftp_root: under(&self.pxe.tftp_root, "tftpboot"),
            tftp_server: self.pxe.tftp_server.clone(),
            pxe_append_params: self.pxe.pxe_append_params.clone(),
            pxe_config_subdir: self.pxe.pxe_config_subdir.clone(),
            ipxe_timeout: self.pxe.ipxe_timeout,
            ipxe_bootfile_name: self.pxe.ipxe_bootfile_name.clone(),
            uefi_ipxe_bootfile_name: self.pxe.uefi_ipxe_bootfile_name.clone(),
            pxe_bootfile_name: self.pxe.pxe_bootfile_name.clone(),
            uefi_pxe_bootfile_name: self.pxe.uefi_pxe_bootfile_name.clone(),
            image_cache_dir: under(&self.pxe.image_cache_dir, "master_images"),
            image_cache_size_mb: self.pxe.image_cache_size_mb,
            image_cache_ttl_mins: self.pxe.image_cache_ttl_mins,
            file_url_allowed_paths: self
                .conductor
                .file_url_allowed_paths
                .clone()
                .unwrap_or_else(|| {
                    vec![
                        PathBuf::from("/var/lib/ironic"),
                        self.data_dir.join("images"),
                    ]
                }),
            http_root: under(&self.deploy.http_root, "httpboot"),
            http_url: self.http_url(),
            isolinux_bin: self.deploy.isolinux_bin.clone(),
            ldlinux_c32: self.deploy.ldlinux_c32.clone(),
            esp_image: self.deploy.esp_image.clone(),
            image_download_source: self.agent.image_download_source,
            dnsmasq: (self.dhcp.dhcp_provider == DhcpProvider::Dnsmasq).then(|| {
                (
                    under(&self.dnsmasq.dhcp_hostsdir, "dhcp-hostsdir"),
                    under(&self.dnsmasq.dhcp_optsdir, "dhcp-optsdir"),
                )
            }),
        }
    }

    /// `[deploy] http_url`, or the address `http_listen` serves, so the
    /// DHCP options and boot scripts point where Ferric listens.
    pub fn http_url(&self) -> String {
        if let Some(url) = &self.deploy.http_url {
            return url.trim_end_matches('/').to_owned();
        }
        let Some(listen) = &self.deploy.http_listen else {
            return "http://127.0.0.1:8080".to_owned();
        };
        let (host, port) = listen.rsplit_once(':').unwrap_or((listen.as_str(), "80"));
        let host = match host.trim_matches(|c| c == '[' || c == ']') {
            "" | "0.0.0.0" | "::" => self.pxe.tftp_server.clone(),
            _ => host.to_owned(),
        };
        format!("http://{host}:{port}")
    }

    /// What a conductor needs.
    pub fn conductor_config(&self) -> ConductorConfig {
        ConductorConfig {
            journal_retention: self
                .console
                .enabled
                .then(|| self.console.journal_retention()),
            conductor: self.conductor.clone(),
            ipmi: self.ipmi.clone(),
            redfish: self.redfish.clone(),
            boot: self.boot(),
            own_listeners: self.own_listeners(),
        }
    }

    /// The listeners this configuration names: the API, the boot-file
    /// server, the conductor's metrics, and the public endpoint's address.
    pub fn own_listeners(&self) -> crate::destinations::OwnListeners {
        let own = crate::destinations::OwnListeners::default();
        own.add_host(&self.api.host, self.api.port);
        for listen in [&self.deploy.http_listen, &self.conductor.metrics_listen]
            .into_iter()
            .flatten()
        {
            own.add_spec(listen);
        }
        if let Some(endpoint) = &self.api.public_endpoint
            && let Some((scheme, rest)) = endpoint.split_once("://")
        {
            let authority = rest.split('/').next().unwrap_or_default();
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()));
            if has_port {
                own.add_spec(authority);
            } else {
                let port = if scheme == "https" { 443 } else { 80 };
                own.add_spec(&format!("{authority}:{port}"));
            }
        }
        own
    }

    /// The conductor's host name.
    pub fn conductor_host(&self) -> String {
        self.conductor.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned())
        })
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.conductor.heartbeat_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn clean_step_priority_overrides_are_parsed_and_checked() {
        let mut settings = Settings::default();
        settings.conductor.clean_step_priority_override =
            "deploy.erase_devices_metadata:123, deploy.erase_devices:0".into();
        let priorities = settings.conductor.clean_step_priorities().unwrap();
        assert_eq!(priorities["deploy.erase_devices_metadata"], 123);
        assert_eq!(priorities["deploy.erase_devices"], 0);
        settings.validate().unwrap();
        for bad in [
            "erase_devices:1",
            "deploy.erase_devices",
            "deploy.x:high",
            ".x:1",
        ] {
            settings.conductor.clean_step_priority_override = bad.into();
            let err = settings.validate().unwrap_err().to_string();
            assert!(
                err.contains("conductor.clean_step_priority_override"),
                "{err}"
            );
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn auto_discovery_needs_a_driver() {
        let mut settings = Settings::default();
        settings.auto_discovery.enabled = true;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("auto_discovery.driver"), "{err}");
        settings.auto_discovery.driver = Some("ipmi".into());
        settings.validate().unwrap();
    }

    #[test]
    fn heartbeat_timeout_must_exceed_interval() {
        let mut settings = Settings::default();
        settings.conductor.heartbeat_timeout_secs = 5;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("conductor.heartbeat_timeout_secs"), "{err}");
    }

    #[test]
    fn redfish_settings_are_checked() {
        let env = |key: &str, value: &str| {
            Some(std::collections::HashMap::from([(
                key.to_owned(),
                value.to_owned(),
            )]))
        };
        let err = Settings::load_with_env(None, env("FERRIC_REDFISH__AUTH_TYPE", "kerberos"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("redfish.auth_type"), "{err}");
        assert!(err.contains("kerberos"), "{err}");
        let loaded =
            Settings::load_with_env(None, env("FERRIC_REDFISH__AUTH_TYPE", "session")).unwrap();
        assert_eq!(loaded.redfish.auth_type, RedfishAuthType::Session);
        let err = Settings::load_with_env(None, env("FERRIC_DHCP__DHCP_PROVIDER", "isc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dhcp.dhcp_provider"), "{err}");
        let loaded =
            Settings::load_with_env(None, env("FERRIC_AUTH__STRATEGY", "http_basic")).unwrap();
        assert_eq!(loaded.auth.strategy, AuthStrategy::HttpBasic);
        let mut settings = Settings::default();
        settings.redfish.connection_attempts = 0;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("redfish.connection_attempts"), "{err}");
    }

    #[test]
    fn http_url_follows_http_listen_unless_set() {
        let mut settings = Settings::default();
        assert_eq!(settings.http_url(), "http://127.0.0.1:8080");
        settings.deploy.http_listen = Some("10.0.0.5:8081".into());
        assert_eq!(settings.http_url(), "http://10.0.0.5:8081");
        settings.deploy.http_listen = Some("0.0.0.0:8081".into());
        settings.pxe.tftp_server = "10.0.0.1".into();
        assert_eq!(settings.http_url(), "http://10.0.0.1:8081");
        assert_eq!(settings.boot().http_url, "http://10.0.0.1:8081");
        settings.deploy.http_url = Some("http://boot.example:80/".into());
        assert_eq!(settings.http_url(), "http://boot.example:80");
    }

    #[test]
    fn pxe_append_params_must_stay_on_one_kernel_line() {
        let mut settings = Settings::default();
        settings.pxe.pxe_append_params = "nofb\nshell".into();
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("pxe.pxe_append_params"), "{err}");
        assert!(err.contains("control character"), "{err}");
    }

    #[test]
    fn sqlite_url_defaults_into_the_data_dir() {
        let settings = Settings {
            data_dir: PathBuf::from("/tmp/x"),
            ..Settings::default()
        };
        assert_eq!(settings.database_url(), "sqlite:///tmp/x/ferric.db");
    }
}
