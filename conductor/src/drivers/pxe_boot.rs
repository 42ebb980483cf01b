//! The `ipxe` and `pxe` boot interfaces (Ironic's `iPXEBoot`, `PXEBoot`):
//! the node network-boots what [`pxe`] writes for it, with the DHCP entries
//! of [`dhcp`]; the boot device is set to pxe, persistently.
//!
//! - Deploy ramdisk: `driver_info` `deploy_kernel` and `deploy_ramdisk`,
//!   booted with the deploy's kernel parameters and `kernel_append_params`.
//! - Instance, `ramdisk` deploy: `instance_info` `boot_iso` (iPXE only,
//!   checksum verified when given) or `kernel` and `ramdisk`, with
//!   `ramdisk_kernel_arguments`.
//! - Instance, whole disk: the boot device set to disk, persistently.
//!
//! Invariant: a failed preparation leaves no boot files and no DHCP entries
//! behind; the error says which image or which step failed and why.

use async_trait::async_trait;
use ferric_common::db::models::port::Port;
use ferric_common::kernel_args::KernelArgs;
use serde_json::Value;

use super::error::DriverError;
use super::interfaces::{BootInterface, InstanceBoot, Interface};
use super::pxe::{self, BootKind, RamdiskImages};
use super::{boot_mode_is_uefi, dhcp, node_kernel_args};
use crate::images::ChecksumSpec;
use crate::task::Task;

/// `ipxe` or `pxe`.
pub struct PxeBoot {
    ipxe: bool,
}

pub const IPXE: PxeBoot = PxeBoot { ipxe: true };
pub const PXE: PxeBoot = PxeBoot { ipxe: false };

impl PxeBoot {
    fn kind(&self, task: &Task) -> Result<BootKind, DriverError> {
        Ok(if self.ipxe {
            BootKind::Ipxe
        } else {
            BootKind::Pxe {
                uefi: boot_mode_is_uefi(&task.node)?,
            }
        })
    }

    /// Writes the node's boot files and DHCP entries for `images`, then
    /// sets the boot device to pxe; on failure removes them again.
    async fn boot_from(
        &self,
        task: &Task,
        images: RamdiskImages,
        kernel_params: KernelArgs,
    ) -> Result<(), DriverError> {
        task.driver.management.validate(task)?;
        let kind = self.kind(task)?;
        let macs = pxe_macs(task).await?;
        let boot = task.ctx().boot.clone();
        let options = match kind {
            BootKind::Ipxe => dhcp::ipxe_options(&boot, boot_mode_is_uefi(&task.node)?),
            BootKind::Pxe { uefi } => dhcp::pxe_options(&boot, uefi),
        };
        let (uuid, macs2) = (task.node.uuid.clone(), macs.clone());
        let written = ferric_common::telemetry::spawn_blocking(move || {
            pxe::prepare_ramdisk(&boot, kind, &uuid, &macs2, &images, &kernel_params)?;
            dhcp::update(&boot, &uuid, &macs2, &options)
        })
        .await
        .map_err(|e| DriverError::Files(e.to_string()))
        .and_then(|r| {
            r.map_err(|e| DriverError::Files(format!("could not write the boot files: {e}")))
        });
        let booted = match written {
            Ok(()) => remember_macs(task, &macs).await,
            Err(e) => Err(e),
        };
        let booted = match booted {
            Ok(()) => {
                task.driver
                    .management
                    .set_boot_device(task, "pxe", true)
                    .await
            }
            Err(e) => Err(e),
        };
        if booted.is_err() {
            remove_files(task, &macs).await;
        }
        booted
    }
}

impl Interface for PxeBoot {
    fn name(&self) -> &'static str {
        if self.ipxe { "ipxe" } else { "pxe" }
    }
}

#[async_trait]
impl BootInterface for PxeBoot {
    async fn prepare_ramdisk(
        &self,
        task: &Task,
        kernel_params: &KernelArgs,
    ) -> Result<(), DriverError> {
        let driver_info = task.node.driver_info_map()?;
        let text = |k: &str| {
            driver_info
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(kernel), Some(ramdisk)) = (text("deploy_kernel"), text("deploy_ramdisk")) else {
            return Err(DriverError::InvalidParameter(format!(
                "Node {} is missing driver_info deploy_kernel and deploy_ramdisk, needed by the direct deploy interface.",
                task.node.uuid
            )));
        };
        let params = kernel_params.clone().and(&node_kernel_args(
            &driver_info,
            "driver_info",
            "kernel_append_params",
        )?);
        task.driver.management.validate(task)?;
        let images = &task.ctx().images;
        let (kernel, ramdisk) =
            tokio::join!(images.fetch(&kernel, None), images.fetch(&ramdisk, None));
        let images = RamdiskImages::KernelRamdisk {
            kernel: kernel?,
            ramdisk: ramdisk?,
        };
        self.boot_from(task, images, params).await
    }

    async fn clean_up_ramdisk(&self, task: &Task) {
        if let Ok(macs) = booted_macs(task).await {
            remove_files(task, &macs).await;
            forget_macs(task).await;
        }
    }

    async fn prepare_instance(&self, task: &Task, boot: InstanceBoot) -> Result<(), DriverError> {
        if boot == InstanceBoot::Disk {
            return task
                .driver
                .management
                .set_boot_device(task, "disk", true)
                .await;
        }
        let info = task.node.instance_info_map()?;
        let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        let checksum = ChecksumSpec::from_instance_info(&info)?;
        let params = node_kernel_args(&info, "instance_info", "ramdisk_kernel_arguments")?;
        if !self.ipxe && text("boot_iso").is_some() {
            return Err(DriverError::InvalidParameter(format!(
                "Node {} boots with the pxe boot interface, which cannot boot an ISO (boot_iso); use ipxe.",
                task.node.uuid
            )));
        }
        let cache = &task.ctx().images;
        let images = match (text("boot_iso"), text("kernel"), text("ramdisk")) {
            (Some(iso), _, _) => {
                let checksum = match &checksum {
                    Some(spec) => Some(cache.resolve(spec, &iso).await?),
                    None => None,
                };
                RamdiskImages::Iso(cache.fetch(&iso, checksum.as_ref()).await?)
            }
            (None, Some(kernel), Some(ramdisk)) => {
                let (kernel, ramdisk) =
                    tokio::join!(cache.fetch(&kernel, None), cache.fetch(&ramdisk, None));
                RamdiskImages::KernelRamdisk {
                    kernel: kernel?,
                    ramdisk: ramdisk?,
                }
            }
            _ => {
                return Err(DriverError::InvalidParameter(format!(
                    "Node {} has no instance_info boot_iso, or kernel and ramdisk, to boot with the ramdisk deploy interface.",
                    task.node.uuid
                )));
            }
        };
        self.boot_from(task, images, params).await
    }

    async fn clean_up_instance(&self, task: &Task) -> Result<(), DriverError> {
        let macs = booted_macs(task).await?;
        remove_files(task, &macs).await;
        forget_macs(task).await;
        Ok(())
    }
}

/// The MACs of the node's PXE-enabled ports, lower-cased.
async fn pxe_macs(task: &Task) -> Result<Vec<String>, DriverError> {
    let id = task.node.id;
    let ports = task
        .ctx()
        .db
        .run(move |conn| Port::of_node(conn, id))
        .await?;
    Ok(ports
        .into_iter()
        .filter(|p| p.pxe_enabled)
        .map(|p| p.address.to_lowercase())
        .collect())
}

/// `driver_internal_info` key: the MACs whose DHCP entries and boot links
/// the node's last network boot wrote, so they are removed even when a
/// port went away meanwhile.
const BOOTED_MACS: &str = "ferric_boot_macs";

/// Records the MACs a network boot wrote entries for.
async fn remember_macs(task: &Task, macs: &[String]) -> Result<(), DriverError> {
    let mut entries = serde_json::Map::new();
    entries.insert(BOOTED_MACS.into(), serde_json::json!(macs));
    Ok(task.merge_internal_info(entries).await?)
}

/// The MACs to clean: the node's PXE-enabled ports now, and those its
/// last network boot wrote entries for.
async fn booted_macs(task: &Task) -> Result<Vec<String>, DriverError> {
    let mut macs = pxe_macs(task).await?;
    let recorded = task
        .node
        .driver_internal_info_map()?
        .get(BOOTED_MACS)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // Only what a MAC can be: these become file names.
    let safe = |m: &String| m.len() <= 59 && m.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    for mac in recorded.into_iter().filter(safe) {
        if !macs.contains(&mac) {
            macs.push(mac);
        }
    }
    Ok(macs)
}

/// Forgets the recorded MACs once their entries are gone (a MAC may later
/// belong to another node).
async fn forget_macs(task: &Task) {
    let mut entries = serde_json::Map::new();
    entries.insert(BOOTED_MACS.into(), Value::Null);
    if let Err(e) = task.merge_internal_info(entries).await {
        tracing::warn!(node.uuid = %task.node.uuid, error = %e, "could not forget the booted MACs");
    }
}

/// Removes the node's boot files and sets its MACs to be ignored by DHCP.
async fn remove_files(task: &Task, macs: &[String]) {
    let boot = task.ctx().boot.clone();
    let (uuid, macs) = (task.node.uuid.clone(), macs.to_vec());
    let _ = ferric_common::telemetry::spawn_blocking(move || {
        pxe::clean_up(&boot, &uuid, &macs);
        dhcp::clean(&boot, &uuid, &macs);
    })
    .await;
}
