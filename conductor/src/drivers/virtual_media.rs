//! The `redfish-virtual-media` boot interface, as Ironic's
//! `RedfishVirtualMediaBoot`: an ISO is published under `http_root` as
//! `redfish/boot-<uuid>.iso` (served with Range requests), the node powered
//! off, the ISO inserted into the system's virtual CD with
//! `VirtualMedia.InsertMedia` and the boot device set to cdrom; the deploy
//! interface then powers the node on.
//!
//! - Deploy ramdisk: `driver_info` `deploy_iso` (whose agent finds the API
//!   from its own kernel command line), or an ISO built (`iso.rs`) from
//!   `deploy_kernel` and `deploy_ramdisk` with the deploy's kernel
//!   parameters; booted once, ejected and withdrawn when the deploy ends.
//! - Instance, `ramdisk` deploy: `instance_info` `boot_iso` (checksum
//!   verified when given), or one built from `kernel` and `ramdisk` with
//!   `ramdisk_kernel_arguments`; boot device persistent. Undeploy ejects and
//!   withdraws it.
//! - Instance, whole disk: the boot device set to disk, persistently.
//!
//! Also the node vmedia API's attach/detach (`cdrom-<uuid>.iso`,
//! `floppy-<uuid>.img`, `disk-<uuid>.img`, as Ironic publishes them),
//! called by the `redfish` management interface.
//!
//! Invariant: a failed preparation leaves nothing published and nothing
//! inserted; the error names the image or the step that failed.

use std::path::PathBuf;

use async_trait::async_trait;
use ferric_common::config::BootConfig;
use ferric_common::kernel_args::KernelArgs;
use ferric_common::states::power;
use serde_json::Value;

use super::error::DriverError;
use super::interfaces::{BootInterface, InstanceBoot, Interface};
use super::node_kernel_args;
use super::redfish::interfaces::{info as redfish_info, with_system};
use crate::images::ChecksumSpec;
use crate::task::Task;

/// The folder of `http_root` Ironic publishes virtual media under.
const SUBDIR: &str = "redfish";

/// `redfish-virtual-media`.
pub struct RedfishVirtualMediaBoot;

impl Interface for RedfishVirtualMediaBoot {
    fn name(&self) -> &'static str {
        "redfish-virtual-media"
    }

    /// A deploy that boots a deploy ramdisk (`direct`) needs a
    /// `deploy_iso`, or a `deploy_kernel` and `deploy_ramdisk` to build one
    /// from.
    fn validate(&self, task: &Task) -> Result<(), DriverError> {
        let info = task.node.driver_info_map()?;
        let has = |key: &str| info.contains_key(key);
        if task.driver.deploy.boots_deploy_ramdisk()
            && !has("deploy_iso")
            && !(has("deploy_kernel") && has("deploy_ramdisk"))
        {
            let missing: Vec<String> = ["deploy_kernel", "deploy_ramdisk"]
                .iter()
                .filter(|k| !has(k))
                .map(|k| format!("'{k}'"))
                .collect();
            return Err(DriverError::InvalidParameter(format!(
                "Error validating Redfish virtual media. Some parameters were missing in node's driver_info. Missing are: [{}]",
                missing.join(", ")
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl BootInterface for RedfishVirtualMediaBoot {
    async fn prepare_ramdisk(
        &self,
        task: &Task,
        kernel_params: &KernelArgs,
    ) -> Result<(), DriverError> {
        let info = task.node.driver_info_map()?;
        let text = |k: &str| info.get(k).and_then(Value::as_str);
        let source = match (
            text("deploy_iso"),
            text("deploy_kernel"),
            text("deploy_ramdisk"),
        ) {
            (Some(iso), _, _) => Source::Iso {
                url: iso.to_owned(),
                checksum: None,
            },
            (None, Some(kernel), Some(ramdisk)) => Source::Build {
                kernel: kernel.to_owned(),
                ramdisk: ramdisk.to_owned(),
                params: kernel_params.clone().and(&node_kernel_args(
                    &info,
                    "driver_info",
                    "kernel_append_params",
                )?),
            },
            _ => {
                return Err(DriverError::InvalidParameter(format!(
                    "Node {} has no driver_info deploy_iso, or deploy_kernel and deploy_ramdisk, for the direct deploy over redfish-virtual-media.",
                    task.node.uuid
                )));
            }
        };
        insert_boot_iso(task, source, false).await
    }

    async fn clean_up_ramdisk(&self, task: &Task) {
        withdraw(task).await;
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
        let text = |k: &str| info.get(k).and_then(Value::as_str);
        let source = match (text("boot_iso"), text("kernel"), text("ramdisk")) {
            (Some(iso), _, _) => Source::Iso {
                url: iso.to_owned(),
                checksum: ChecksumSpec::from_instance_info(&info)?,
            },
            (None, Some(kernel), Some(ramdisk)) => Source::Build {
                kernel: kernel.to_owned(),
                ramdisk: ramdisk.to_owned(),
                params: node_kernel_args(&info, "instance_info", "ramdisk_kernel_arguments")?,
            },
            _ => {
                return Err(DriverError::InvalidParameter(format!(
                    "Node {} has no instance_info boot_iso, or kernel and ramdisk, to boot with the redfish-virtual-media boot interface.",
                    task.node.uuid
                )));
            }
        };
        insert_boot_iso(task, source, true).await
    }

    /// Ejects the CD and withdraws the published ISO (withdrawn even when
    /// the eject failed).
    async fn clean_up_instance(&self, task: &Task) -> Result<(), DriverError> {
        let ejected = with_system(task, async |system| system.eject_media("cdrom").await).await;
        let (file, _) = published(&task.ctx().boot, &boot_iso_name(task));
        let _ = std::fs::remove_file(&file);
        ejected.map(|_| ())
    }
}

/// The published file `name` and its URL.
fn published(boot: &BootConfig, name: &str) -> (PathBuf, String) {
    (
        boot.http_root.join(SUBDIR).join(name),
        format!("{}/{SUBDIR}/{name}", boot.http_url.trim_end_matches('/')),
    )
}

/// The deploy's ISO: `boot-<uuid>.iso`.
fn boot_iso_name(task: &Task) -> String {
    format!("boot-{}.iso", task.node.uuid)
}

/// What the vmedia API publishes for a device: `cdrom-<uuid>.iso`,
/// `floppy-<uuid>.img`, `disk-<uuid>.img`, as Ironic names them.
fn attached_name(device_type: &str, task: &Task) -> String {
    let ext = if device_type == "cdrom" { "iso" } else { "img" };
    format!("{device_type}-{}.{ext}", task.node.uuid)
}

/// Fetches `url` (verified against `checksum` when given) and publishes it
/// as `name`; returns the published file and its URL.
async fn publish(
    task: &Task,
    name: &str,
    url: &str,
    checksum: Option<&ChecksumSpec>,
) -> Result<(PathBuf, String), DriverError> {
    let cache = &task.ctx().images;
    let checksum = match checksum {
        Some(spec) => Some(cache.resolve(spec, url).await?),
        None => None,
    };
    let master = cache.fetch(url, checksum.as_ref()).await?;
    let (file, public) = published(&task.ctx().boot, name);
    let dest = file.clone();
    ferric_common::telemetry::spawn_blocking(move || {
        crate::images::link_into(&master, &dest).inspect_err(|_| {
            // A copy that failed half way is not left to be served.
            let _ = std::fs::remove_file(&dest);
        })
    })
    .await
    .map_err(|e| DriverError::Files(e.to_string()))?
    .map_err(|e| DriverError::Files(format!("could not publish {}: {e}", file.display())))?;
    Ok((file, public))
}

/// What a node boots from virtual media.
enum Source {
    /// An ISO to fetch (and verify) as it is.
    Iso {
        url: String,
        checksum: Option<ChecksumSpec>,
    },
    /// An ISO to build from a kernel, a ramdisk and a command line.
    Build {
        kernel: String,
        ramdisk: String,
        params: KernelArgs,
    },
}

/// Publishes the node's ISO as `boot-<uuid>.iso` (fetched, or built),
/// powers the node off, inserts the ISO and sets the boot device to cdrom;
/// on failure ejects and withdraws it.
async fn insert_boot_iso(task: &Task, source: Source, persistent: bool) -> Result<(), DriverError> {
    redfish_info(task)?;
    let name = boot_iso_name(task);
    let url = match source {
        Source::Iso { url, checksum } => publish(task, &name, &url, checksum.as_ref()).await?.1,
        Source::Build {
            kernel,
            ramdisk,
            params,
        } => {
            let cache = &task.ctx().images;
            let (kernel, ramdisk) =
                tokio::join!(cache.fetch(&kernel, None), cache.fetch(&ramdisk, None));
            let (kernel, ramdisk) = (kernel?, ramdisk?);
            let (file, url) = published(&task.ctx().boot, &name);
            let (boot, uefi) = (
                task.ctx().boot.clone(),
                super::boot_mode_is_uefi(&task.node)?,
            );
            ferric_common::telemetry::spawn_blocking(move || {
                let spec = super::iso::IsoSpec {
                    kernel: &kernel,
                    ramdisk: &ramdisk,
                    params: &params,
                    uefi,
                };
                super::iso::build(&boot, &spec, &file)
            })
            .await
            .map_err(|e| DriverError::Files(e.to_string()))?
            .map_err(DriverError::Files)?;
            url
        }
    };
    let timeout = task.ctx().settings.power_state_change_timeout();
    let inserted = with_system(task, async |system| {
        system.set_power(power::POWER_OFF, timeout).await?;
        system.insert_media("cdrom", &url).await?;
        system.set_boot_device("cdrom", persistent).await
    })
    .await;
    if inserted.is_err() {
        withdraw(task).await;
    }
    inserted
}

/// Ejects the CD (best effort) and withdraws the published ISO.
async fn withdraw(task: &Task) {
    let (file, _) = published(&task.ctx().boot, &boot_iso_name(task));
    let ejected = with_system(task, async |system| system.eject_media("cdrom").await).await;
    if let Err(e) = ejected {
        tracing::warn!(node.uuid = %task.node.uuid, error = %e, "could not eject the virtual CD");
    }
    // After the eject: the BMC never points at a URL that is gone.
    let _ = std::fs::remove_file(&file);
}

/// The node vmedia API's attach: `image_url` inserted into the
/// `device_type` device, published first under `http_root` (as
/// `cdrom-<uuid>.iso`, …) unless `download_source` is `http` and the URL
/// is one the BMC can read itself.
///
/// # Errors
/// The image or the BMC's failure.
pub async fn attach(
    task: &Task,
    device_type: &str,
    image_url: &str,
    download_source: &str,
) -> Result<(), DriverError> {
    redfish_info(task)?;
    let direct = download_source != "local"
        && (image_url.starts_with("http://") || image_url.starts_with("https://"));
    let (file, url) = if direct {
        (None, image_url.to_owned())
    } else {
        let name = attached_name(device_type, task);
        let (file, url) = publish(task, &name, image_url, None).await?;
        (Some(file), url)
    };
    let inserted = with_system(task, async |system| {
        system.insert_media(device_type, &url).await
    })
    .await;
    if inserted.is_err()
        && let Some(file) = file
    {
        let _ = std::fs::remove_file(file);
    }
    inserted
}

/// The node vmedia API's detach: every device of `device_types` (all when
/// empty) ejected, their published images withdrawn.
///
/// # Errors
/// The BMC's failure.
pub async fn detach(task: &Task, device_types: &[String]) -> Result<(), DriverError> {
    let all = ["disk".to_owned(), "cdrom".to_owned(), "floppy".to_owned()];
    let types = if device_types.is_empty() {
        &all[..]
    } else {
        device_types
    };
    for device_type in types {
        with_system(task, async |system| system.eject_media(device_type).await).await?;
        // Withdrawn once ejected: the BMC never points at a URL that is gone.
        let (file, _) = published(&task.ctx().boot, &attached_name(device_type, task));
        let _ = std::fs::remove_file(file);
    }
    Ok(())
}
