//! [`Bmcs`]: this conductor's connections to baseboard management
//! controllers, one pool per protocol (IPMI sessions, Redfish clients),
//! shared by every task through the context.
//!
//! Invariant: the pools only connect; which protocol a node speaks is its
//! driver's business (`ipmi::interfaces`, `redfish::interfaces`).

use ferric_common::config::{IpmiSettings, RedfishAuthType, RedfishSettings};

use super::ipmi::sessions::Sessions;
use super::redfish::client::Clients;

/// Every BMC connection of this conductor, by protocol.
pub struct Bmcs {
    pub ipmi: Sessions,
    pub redfish: Clients,
    /// `[redfish] auth_type`, for driver_info that does not say.
    redfish_auth: RedfishAuthType,
}

impl Bmcs {
    pub fn new(ipmi: IpmiSettings, redfish: RedfishSettings) -> Bmcs {
        let redfish_auth = redfish.auth_type;
        Bmcs {
            ipmi: Sessions::new(ipmi),
            redfish: Clients::new(redfish),
            redfish_auth,
        }
    }

    /// `[redfish] auth_type`: what a node's `driver_info` that names none
    /// uses.
    pub fn redfish_auth(&self) -> RedfishAuthType {
        self.redfish_auth
    }
}
