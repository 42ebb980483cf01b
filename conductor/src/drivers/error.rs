//! [`DriverError`]: why an interface implementation could not do what it
//! was asked, in variants its callers branch on.
//!
//! Invariant: `Display` is the message Ironic would record or answer (the
//! protocol errors' own wording is kept whole); callers map variants, never
//! text, to refusals and `last_error`.

use ferric_common::db::DbError;
use ferric_common::db::models::node_json::CorruptColumn;

use super::ipmi::IpmiError;
use super::ipmi::bmc::BmcError;
use super::ipmi::driver_info::InfoError;
use super::redfish::client::RedfishError;
use crate::images::ImageError;
use crate::task::TaskError;

/// An interface implementation's failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Ironic's InvalidParameterValue / MissingParameterValue: the node's
    /// `driver_info` or `instance_info` (or a request) cannot be used.
    #[error("{0}")]
    InvalidParameter(String),
    /// Ironic's UnsupportedDriverExtension.
    #[error("Driver {driver} does not support {extension} (disabled or not implemented).")]
    NotSupported {
        driver: String,
        extension: &'static str,
    },
    /// The BMC could not be reached.
    #[error("{0}")]
    BmcUnreachable(String),
    /// The BMC refused the credentials.
    #[error("{0}")]
    CredentialsRefused(String),
    /// The BMC refused because of its current state (HTTP 409 and the like).
    #[error("{0}")]
    Conflict(String),
    /// The BMC failed otherwise.
    #[error("{0}")]
    Bmc(String),
    /// The hardware did not reach a state in time (Ironic's
    /// PowerStateFailure and the like).
    #[error("{0}")]
    Timeout(String),
    /// An image could not be fetched, or failed its checksum.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The deploy ramdisk's agent failed or could not be reached.
    #[error("{0}")]
    Agent(String),
    /// Boot files, DHCP entries or an ISO could not be written.
    #[error("{0}")]
    Files(String),
    /// A node's JSON column does not hold an object.
    #[error(transparent)]
    Corrupt(#[from] CorruptColumn),
    /// The task layer failed (database, lost lock).
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl DriverError {
    /// Ironic's UnsupportedDriverExtension for the node's driver.
    pub fn not_supported(
        node: &ferric_common::db::models::node::Node,
        extension: &'static str,
    ) -> Self {
        DriverError::NotSupported {
            driver: node.driver.clone(),
            extension,
        }
    }

    /// Whether the request (or the node's configuration) is at fault rather
    /// than the hardware: an invalid parameter, an unsupported extension,
    /// a corrupt column.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            DriverError::InvalidParameter(_)
                | DriverError::NotSupported { .. }
                | DriverError::Corrupt(_)
        )
    }

    /// This error with `prefix` before its message, keeping its kind.
    #[must_use]
    pub fn prefixed(self, prefix: &str) -> Self {
        let text = |e: &DriverError| format!("{prefix}{e}");
        match &self {
            DriverError::InvalidParameter(_) => DriverError::InvalidParameter(text(&self)),
            DriverError::BmcUnreachable(_) => DriverError::BmcUnreachable(text(&self)),
            DriverError::CredentialsRefused(_) => DriverError::CredentialsRefused(text(&self)),
            DriverError::Conflict(_) => DriverError::Conflict(text(&self)),
            DriverError::Bmc(_) => DriverError::Bmc(text(&self)),
            DriverError::Timeout(_) => DriverError::Timeout(text(&self)),
            DriverError::Agent(_) => DriverError::Agent(text(&self)),
            DriverError::Files(_) => DriverError::Files(text(&self)),
            DriverError::Image(_) | DriverError::NotSupported { .. } | DriverError::Corrupt(_) => {
                DriverError::Bmc(text(&self))
            }
            DriverError::Task(_) => self,
        }
    }
}

impl From<DbError> for DriverError {
    fn from(e: DbError) -> Self {
        DriverError::Task(TaskError::Db(e))
    }
}

impl From<InfoError> for DriverError {
    fn from(e: InfoError) -> Self {
        DriverError::InvalidParameter(e.to_string())
    }
}

impl From<BmcError> for DriverError {
    fn from(e: BmcError) -> Self {
        match e {
            BmcError::Session { .. } => DriverError::BmcUnreachable(e.to_string()),
            BmcError::Unauthorized { .. } => DriverError::CredentialsRefused(e.to_string()),
            BmcError::Command { .. } | BmcError::Completion { .. } | BmcError::Malformed { .. } => {
                DriverError::Bmc(e.to_string())
            }
        }
    }
}

impl From<IpmiError> for DriverError {
    fn from(e: IpmiError) -> Self {
        match e {
            IpmiError::Bmc(bmc) => bmc.into(),
            IpmiError::PowerStateFailure(_) => DriverError::Timeout(e.to_string()),
            IpmiError::InvalidBootDevice(_) => DriverError::InvalidParameter(e.to_string()),
        }
    }
}

impl From<RedfishError> for DriverError {
    fn from(e: RedfishError) -> Self {
        match &e {
            RedfishError::Connection { .. } => DriverError::BmcUnreachable(e.to_string()),
            RedfishError::Http { status: 401, .. } => {
                DriverError::CredentialsRefused(e.to_string())
            }
            RedfishError::Http { status: 409, .. } => DriverError::Conflict(e.to_string()),
            RedfishError::Http { .. } | RedfishError::Service(_) => DriverError::Bmc(e.to_string()),
            RedfishError::PowerStateFailure(_) => DriverError::Timeout(e.to_string()),
            RedfishError::InvalidBootDevice(_) => DriverError::InvalidParameter(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_keep_their_wording_and_gain_a_kind() {
        let unreachable: DriverError = RedfishError::Connection {
            node: "n".into(),
            url: "https://bmc".into(),
            error: "refused".into(),
        }
        .into();
        assert!(matches!(unreachable, DriverError::BmcUnreachable(_)));
        assert_eq!(
            unreachable.to_string(),
            "Redfish connection failed for node n: Unable to connect to https://bmc. Error: refused"
        );
        let refused: DriverError = RedfishError::Http {
            status: 401,
            message: "no".into(),
            message_ids: Vec::new(),
        }
        .into();
        assert!(matches!(refused, DriverError::CredentialsRefused(_)));
        let timeout: DriverError = IpmiError::PowerStateFailure("power on").into();
        assert!(matches!(timeout, DriverError::Timeout(_)));
        assert_eq!(
            timeout.to_string(),
            "Failed to set node power state to power on."
        );
        let bad: DriverError = IpmiError::InvalidBootDevice("floppy".into()).into();
        assert!(bad.is_invalid_request());
        assert!(!timeout.is_invalid_request());
    }

    #[test]
    fn a_prefix_keeps_the_kind() {
        let e = DriverError::Timeout("late".into()).prefixed("Failed: ");
        assert!(matches!(&e, DriverError::Timeout(m) if m == "Failed: late"));
    }
}
