//! A node's baseboard management controller, whichever protocol its power
//! and management interfaces speak: `ipmitool` (IPMI over LAN) or
//! `redfish`. Task handlers, the deploy interfaces and the power sync go
//! through here, so every flow works on both.
//!
//! Invariant: a node's power and management interfaces speak one
//! protocol (every hardware type pairs them so); `fake` and `noop`
//! interfaces have no BMC (`access` is `None`).

use std::time::Duration;

use ferric_common::config::{IpmiSettings, RedfishSettings};
use ferric_common::db::models::node::Node;
use serde_json::{Map, Value};

use super::ipmi::driver_info::IpmiInfo;
use super::ipmi::sessions::Sessions;
use super::redfish::client::Clients;
use super::redfish::driver_info::RedfishInfo;
use super::{ipmi, redfish};

/// How to reach one node's BMC.
#[derive(Debug, Clone)]
pub enum Access {
    Ipmi(IpmiInfo),
    Redfish { node: String, info: RedfishInfo },
}

/// Every BMC connection of this conductor, by protocol.
pub struct Bmcs {
    pub ipmi: Sessions,
    pub redfish: Clients,
    /// `[redfish]auth_type`, for driver_info that does not say.
    redfish_auth: String,
}

impl Bmcs {
    pub fn new(ipmi: IpmiSettings, redfish: RedfishSettings) -> Bmcs {
        let redfish_auth = redfish.auth_type.clone();
        Bmcs {
            ipmi: Sessions::new(ipmi),
            redfish: Clients::new(redfish),
            redfish_auth,
        }
    }

    /// The node's BMC when its power or management interface has one:
    /// `None` for other interfaces, `Some(Err)` with Ironic's message when
    /// its `driver_info` is unusable.
    pub fn access(&self, node: &Node) -> Option<Result<Access, String>> {
        let uses = |name: &str| {
            node.power_interface.as_deref() == Some(name)
                || node.management_interface.as_deref() == Some(name)
        };
        let info = || -> Map<String, Value> {
            serde_json::from_str(&node.driver_info).unwrap_or_default()
        };
        if uses("ipmitool") {
            Some(
                ipmi::driver_info::parse(&node.uuid, &info())
                    .map(Access::Ipmi)
                    .map_err(|e| e.to_string()),
            )
        } else if uses("redfish") {
            Some(
                redfish::driver_info::parse(&node.uuid, &info(), &self.redfish_auth)
                    .map(|info| Access::Redfish {
                        node: node.uuid.clone(),
                        info,
                    })
                    .map_err(|e| e.to_string()),
            )
        } else {
            None
        }
    }

    /// The power state the BMC reports (`power on` / `power off`).
    ///
    /// # Errors
    /// The BMC's failure, worded as Ironic's.
    pub async fn power_state(&self, access: &Access) -> Result<&'static str, String> {
        match access {
            Access::Ipmi(info) => ipmi::power_state(&self.ipmi, info)
                .await
                .map_err(|e| e.to_string()),
            Access::Redfish { node, info } => redfish::System::new(&self.redfish, info, node)
                .power_state()
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Carries out `requested` (one of Ironic's power targets) and waits
    /// for the hardware; returns the state the node is left in.
    ///
    /// # Errors
    /// The BMC's failure, or Ironic's PowerStateFailure after `timeout`.
    pub async fn set_power(
        &self,
        access: &Access,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, String> {
        match access {
            Access::Ipmi(info) => ipmi::set_power(&self.ipmi, info, requested, timeout)
                .await
                .map_err(|e| e.to_string()),
            Access::Redfish { node, info } => redfish::System::new(&self.redfish, info, node)
                .set_power(requested, timeout)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Sets the next boot device (`uefi`: the boot mode IPMI's boot flags
    /// carry; Redfish keeps the system's own mode).
    ///
    /// # Errors
    /// An unsupported device, or the BMC's failure.
    pub async fn set_boot_device(
        &self,
        access: &Access,
        device: &str,
        persistent: bool,
        uefi: bool,
    ) -> Result<(), String> {
        match access {
            Access::Ipmi(info) => ipmi::set_boot_device(&self.ipmi, info, device, persistent, uefi)
                .await
                .map_err(|e| e.to_string()),
            Access::Redfish { node, info } => redfish::System::new(&self.redfish, info, node)
                .set_boot_device(device, persistent)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// The boot device the BMC will use and whether it persists.
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn boot_device(
        &self,
        access: &Access,
    ) -> Result<(Option<&'static str>, Option<bool>), String> {
        match access {
            Access::Ipmi(info) => ipmi::boot_device(&self.ipmi, info)
                .await
                .map(|(device, persistent)| (device, Some(persistent)))
                .map_err(|e| e.to_string()),
            Access::Redfish { node, info } => redfish::System::new(&self.redfish, info, node)
                .boot_device()
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Injects a non-maskable interrupt.
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn inject_nmi(&self, access: &Access) -> Result<(), String> {
        match access {
            Access::Ipmi(info) => ipmi::inject_nmi(&self.ipmi, info)
                .await
                .map_err(|e| e.to_string()),
            Access::Redfish { node, info } => redfish::System::new(&self.redfish, info, node)
                .inject_nmi()
                .await
                .map_err(|e| e.to_string()),
        }
    }
}
