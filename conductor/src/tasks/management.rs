//! Synchronous management calls: boot device get/set/supported, NMI, boot
//! mode and secure boot, and interface validation. Reads take no lock
//! (Ironic's shared lock); changes take the exclusive lock.

use ferric_common::db::models::node::StateChange;
use ferric_proto::v1::task_reply::Outcome;
use ferric_proto::v1::{
    BootDevice, InterfaceValidation, RefusalKind, SetBootDevice, SupportedBootDevices, TaskReply,
    Validation,
};

use crate::drivers::DriverError;
use crate::task::Task;
use crate::tasks::{Context, TaskError, driver_refusal, lock_node, read_node, refused};

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

fn accepted() -> TaskReply {
    reply(Outcome::Accepted(ferric_proto::v1::Accepted {}))
}

pub async fn supported_boot_devices(
    ctx: &Context,
    node_uuid: &str,
) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    Ok(reply(Outcome::SupportedBootDevices(SupportedBootDevices {
        boot_devices: task
            .driver
            .management
            .supported_boot_devices()
            .iter()
            .map(|d| (*d).to_owned())
            .collect(),
    })))
}

pub async fn get_boot_device(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    Ok(match task.driver.management.get_boot_device(&task).await {
        Ok((device, persistent)) => reply(Outcome::BootDevice(BootDevice {
            boot_device: device.map(str::to_owned),
            persistent,
        })),
        Err(e) => driver_refusal(&e),
    })
}

pub async fn set_boot_device(
    ctx: &Context,
    node_uuid: &str,
    request: SetBootDevice,
) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let supported = task.driver.management.supported_boot_devices();
    if supported.is_empty() {
        return Ok(driver_refusal(&DriverError::not_supported(
            &task.node,
            "management",
        )));
    }
    if !supported.contains(&request.boot_device.as_str()) {
        return Ok(refused(
            RefusalKind::Invalid,
            format!("Invalid boot device {} specified.", request.boot_device),
        ));
    }
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let result = match task
        .driver
        .management
        .set_boot_device(&task, &request.boot_device, request.persistent)
        .await
    {
        Ok(()) => accepted(),
        Err(e) => driver_refusal(&e),
    };
    task.release().await;
    Ok(result)
}

/// Inject NMI under the node's lock; interfaces without it refuse
/// (Ironic's UnsupportedDriverExtension).
pub async fn inject_nmi(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    if let Err(e) = task.driver.management.validate(&task) {
        return Ok(driver_refusal(&e));
    }
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let result = match task.driver.management.inject_nmi(&task).await {
        Ok(()) => accepted(),
        Err(e) => driver_refusal(&e),
    };
    task.release().await;
    Ok(result)
}

pub async fn validate(ctx: &Context, node_uuid: &str) -> Result<TaskReply, TaskError> {
    let task = match read_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let interfaces = VALIDATED_INTERFACES
        .iter()
        .map(|interface_type| {
            let reason = match task.driver.interface(interface_type) {
                Some(iface) if iface.supported() => iface.validate(&task).err(),
                _ => Some(DriverError::NotSupported {
                    driver: task.node.driver.clone(),
                    extension: interface_type,
                }),
            }
            .map(|e| e.to_string());
            InterfaceValidation {
                interface: (*interface_type).to_owned(),
                result: Some(reason.is_none()),
                reason,
            }
        })
        .collect();
    Ok(reply(Outcome::Validation(Validation { interfaces })))
}

/// Boot mode (`target`) or secure boot (`secure`) change, under the
/// node's lock: the management interface changes the hardware, then the
/// node records what it took.
pub async fn set_boot_mode(
    ctx: &Context,
    node_uuid: &str,
    target: Option<String>,
    secure: Option<bool>,
) -> Result<TaskReply, TaskError> {
    let task = match lock_node(ctx, node_uuid).await? {
        Ok(task) => task,
        Err(refusal) => return Ok(refusal),
    };
    let changed = change_boot_mode(&task, target.as_deref(), secure).await;
    let result = match changed {
        Ok(()) => {
            let change = StateChange {
                boot_mode: target.map(Some),
                secure_boot: secure.map(Some),
                ..StateChange::default()
            };
            task.write(change).await.map(|()| accepted())
        }
        Err(e) => Ok(driver_refusal(&e)),
    };
    task.release().await;
    result
}

async fn change_boot_mode(
    task: &Task,
    target: Option<&str>,
    secure: Option<bool>,
) -> Result<(), DriverError> {
    let management = task.driver.management;
    match (target, secure) {
        (Some(mode), _) => management.set_boot_mode(task, mode).await,
        (None, Some(enabled)) => management.set_secure_boot(task, enabled).await,
        (None, None) => Ok(()),
    }
}
