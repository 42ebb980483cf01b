//! Synchronous management calls: boot device get/set/supported and interface
//! validation. They take no lock for reads (Ironic's shared lock) and the
//! exclusive lock for a set.

use ferric_common::db::models::node::Node;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{
    BootDevice, InterfaceValidation, RefusalKind, SetBootDevice, SupportedBootDevices, TaskReply,
    Validation,
};

use crate::drivers::{self, fake, ipmi, redfish};
use crate::tasks::{Context, TaskError, load_node, lock_node, node_not_found, refused};

/// Interfaces `validate` reports, in Ironic's order (core, then optional).
const VALIDATED_INTERFACES: [&str; 12] = [
    "boot",
    "deploy",
    "management",
    "network",
    "power",
    "bios",
    "console",
    "firmware",
    "inspect",
    "raid",
    "rescue",
    "storage",
];

fn reply(outcome: Outcome) -> TaskReply {
    TaskReply {
        task_id: String::new(),
        outcome: Some(outcome),
    }
}

fn supported_devices(node: &Node) -> &'static [&'static str] {
    match node.management_interface.as_deref() {
        Some("fake") => &fake::SUPPORTED_BOOT_DEVICES,
        Some("ipmitool") => &ipmi::SUPPORTED_BOOT_DEVICES,
        Some("redfish") => &redfish::SUPPORTED_BOOT_DEVICES,
        _ => &fake::NOOP_BOOT_DEVICES,
    }
}

fn unsupported(node: &Node, extension: &str) -> TaskReply {
    refused(
        RefusalKind::Invalid,
        format!(
            "Driver {} does not support {extension} (disabled or not implemented).",
            node.driver
        ),
    )
}

pub async fn supported_boot_devices(
    ctx: &Context,
    node_uuid: &str,
) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    Ok(reply(Outcome::SupportedBootDevices(SupportedBootDevices {
        boot_devices: supported_devices(&node)
            .iter()
            .map(|d| (*d).to_owned())
            .collect(),
    })))
}

pub async fn get_boot_device(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    match ctx.bmcs.access(&node) {
        None if node.management_interface.as_deref() == Some("fake") => {
            Ok(reply(Outcome::BootDevice(BootDevice {
                boot_device: Some("pxe".into()),
                persistent: Some(false),
            })))
        }
        None => Ok(unsupported(&node, "management")),
        Some(Err(message)) => Ok(refused(RefusalKind::Invalid, message)),
        Some(Ok(access)) => match ctx.bmcs.boot_device(&access).await {
            Ok((device, persistent)) => Ok(reply(Outcome::BootDevice(BootDevice {
                boot_device: device.map(str::to_owned),
                persistent,
            }))),
            Err(e) => Ok(refused(RefusalKind::DriverFailure, e)),
        },
    }
}

pub async fn set_boot_device(
    ctx: &Context,
    node_uuid: &str,
    request: SetBootDevice,
) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let access = ctx.bmcs.access(&node);
    if access.is_none() && node.management_interface.as_deref() != Some("fake") {
        return Ok(unsupported(&node, "management"));
    }
    if !supported_devices(&node).contains(&request.boot_device.as_str()) {
        return Ok(refused(
            RefusalKind::Invalid,
            format!("Invalid boot device {} specified.", request.boot_device),
        ));
    }
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(refusal),
    };
    let result = match access {
        None => reply(Outcome::Accepted(ferric_proto::v1::Accepted {})),
        Some(Err(message)) => refused(RefusalKind::Invalid, message),
        Some(Ok(access)) => {
            let uefi = drivers::boot_mode_is_uefi(&node);
            match ctx
                .bmcs
                .set_boot_device(&access, &request.boot_device, request.persistent, uefi)
                .await
            {
                Ok(()) => reply(Outcome::Accepted(ferric_proto::v1::Accepted {})),
                Err(e) => refused(RefusalKind::DriverFailure, e),
            }
        }
    };
    lock.release().await?;
    Ok(result)
}

/// Inject NMI: `ipmitool` management sends Chassis Control "pulse
/// diagnostic interrupt" under the node's lock; other interfaces do not
/// support it (Ironic's UnsupportedDriverExtension).
pub async fn inject_nmi(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let access = match ctx.bmcs.access(&node) {
        None => return Ok(unsupported(&node, "inject_nmi")),
        Some(Err(message)) => return Ok(refused(RefusalKind::Invalid, message)),
        Some(Ok(access)) => access,
    };
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(refusal),
    };
    let result = match ctx.bmcs.inject_nmi(&access).await {
        Ok(()) => reply(Outcome::Accepted(ferric_proto::v1::Accepted {})),
        Err(e) => refused(RefusalKind::DriverFailure, e),
    };
    lock.release().await?;
    Ok(result)
}

pub async fn validate(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let interfaces = VALIDATED_INTERFACES
        .iter()
        .map(|iface| {
            let name = interface_of(&node, iface);
            let implemented = drivers::hardware_type(&node.driver).is_some_and(|hw| {
                hw.interfaces
                    .iter()
                    .any(|(t, enabled, _)| t == iface && enabled.contains(&name.unwrap_or("")))
            });
            let supported = implemented && name.is_some_and(|n| !n.starts_with("no-"));
            let mut reason = (!supported).then(|| {
                format!(
                    "Driver {} does not support {iface} (disabled or not implemented).",
                    node.driver
                )
            });
            if supported
                && matches!(name, Some("ipmitool" | "redfish"))
                && let Some(Err(message)) = ctx.bmcs.access(&node)
            {
                reason = Some(message);
            }
            if supported && *iface == "boot" && name == Some("redfish-virtual-media") {
                reason = reason.or_else(|| drivers::virtual_media::validate(&node).err());
            }
            let result = reason.is_none();
            InterfaceValidation {
                interface: (*iface).to_owned(),
                result: Some(result),
                reason,
            }
        })
        .collect();
    Ok(reply(Outcome::Validation(Validation { interfaces })))
}

fn interface_of<'a>(node: &'a Node, interface_type: &str) -> Option<&'a str> {
    match interface_type {
        "bios" => node.bios_interface.as_deref(),
        "boot" => node.boot_interface.as_deref(),
        "console" => node.console_interface.as_deref(),
        "deploy" => node.deploy_interface.as_deref(),
        "firmware" => node.firmware_interface.as_deref(),
        "inspect" => node.inspect_interface.as_deref(),
        "management" => node.management_interface.as_deref(),
        "network" => node.network_interface.as_deref(),
        "power" => node.power_interface.as_deref(),
        "raid" => node.raid_interface.as_deref(),
        "rescue" => node.rescue_interface.as_deref(),
        "storage" => node.storage_interface.as_deref(),
        "vendor" => node.vendor_interface.as_deref(),
        _ => None,
    }
}

/// Boot mode (`target`) or secure boot (`secure`) change, under the
/// node's lock. The `fake` management interface records the new value as
/// the node's current one; other interfaces do not implement it yet
/// (Ironic's UnsupportedDriverExtension).
pub async fn set_boot_mode(
    ctx: &Context,
    node_uuid: &str,
    target: Option<String>,
    secure: Option<bool>,
) -> Result<TaskReply, TaskError> {
    let Some(node) = load_node(ctx, node_uuid).await? else {
        return Ok(node_not_found(node_uuid));
    };
    let redfish = node.management_interface.as_deref() == Some("redfish");
    if node.management_interface.as_deref() != Some("fake") && !redfish {
        let extension = if target.is_some() {
            "set_boot_mode"
        } else {
            "set_secure_boot_state"
        };
        return Ok(unsupported(&node, extension));
    }
    let lock = match lock_node(ctx, &node).await? {
        Ok(lock) => lock,
        Err(refusal) => return Ok(refusal),
    };
    // `redfish`: the system's `BootSourceOverrideMode` or `SecureBoot`
    // first; the node records what the hardware took.
    if redfish {
        let changed = match ctx.bmcs.access(&node) {
            Some(Ok(drivers::bmc::Access::Redfish { node: uuid, info })) => {
                let system = redfish::System::new(&ctx.bmcs.redfish, &info, &uuid);
                match (&target, secure) {
                    (Some(mode), _) => system.set_boot_mode(mode).await,
                    (None, Some(enabled)) => system.set_secure_boot(enabled).await,
                    (None, None) => Ok(()),
                }
                .map_err(|e| e.to_string())
            }
            Some(Err(message)) => Err(message),
            _ => Err(format!(
                "Node {} has no usable Redfish driver_info.",
                node.uuid
            )),
        };
        if let Err(message) = changed {
            lock.release().await?;
            return Ok(refused(RefusalKind::DriverFailure, message));
        }
    }
    let change = ferric_common::db::models::node::StateChange {
        boot_mode: target.map(Some),
        secure_boot: secure.map(Some),
        ..Default::default()
    };
    let (host, id) = (ctx.host.clone(), node.id);
    let written = ctx
        .db
        .run(move |conn| Node::write_state(conn, id, &host, &change))
        .await;
    lock.release().await?;
    if !written? {
        return Err(TaskError::LockLost(node.uuid));
    }
    Ok(reply(Outcome::Accepted(ferric_proto::v1::Accepted {})))
}
