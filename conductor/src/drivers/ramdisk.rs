//! The `ramdisk` deploy interface over `ipxe` or `pxe` boot and `ipmitool`
//! power and management, as Ironic's `RamdiskDeploy`: the node network-boots a
//! kernel+ramdisk or an ISO (`instance_info` `kernel`/`ramdisk` or
//! `boot_iso`) and is `active` once it has been told to boot it; undeploy
//! powers it off and removes its boot files.
//!
//! Invariant: a failed deploy leaves no boot files and no DHCP entries
//! behind; the error says which image or which step failed and why.

use std::time::Duration;

use ferric_common::db::models::node::Node;
use ferric_common::db::models::port::Port;
use ferric_common::states::power;
use serde_json::{Map, Value};

use super::{bmc, dhcp, pxe};
use crate::images::ChecksumSpec;
use crate::tasks::Context;

/// Whether the node deploys with this module.
pub fn handles(node: &Node) -> bool {
    node.deploy_interface.as_deref() == Some("ramdisk")
        && matches!(node.boot_interface.as_deref(), Some("ipxe" | "pxe"))
}

pub(crate) fn boot_kind(node: &Node) -> pxe::BootKind {
    if node.boot_interface.as_deref() == Some("pxe") {
        pxe::BootKind::Pxe { uefi: uefi(node) }
    } else {
        pxe::BootKind::Ipxe
    }
}

pub(crate) async fn pxe_macs(ctx: &Context, node: &Node) -> Result<Vec<String>, String> {
    let id = node.id;
    let ports = ctx
        .db
        .run(move |conn| Port::of_node(conn, id))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ports
        .into_iter()
        .filter(|p| p.pxe_enabled)
        .map(|p| p.address.to_lowercase())
        .collect())
}

pub(crate) fn uefi(node: &Node) -> bool {
    super::boot_mode_is_uefi(node)
}

/// Deploys: images fetched and verified, boot files and DHCP entries
/// written, boot device pxe (persistent), power cycled. Returns the power
/// state the node is left in.
///
/// # Errors
/// Ironic-style text naming what failed; nothing is left behind.
pub async fn deploy(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let info: Map<String, Value> = serde_json::from_str(&node.instance_info).unwrap_or_default();
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let checksum = ChecksumSpec::from_instance_info(&info).map_err(|e| e.to_string())?;
    let kind = boot_kind(node);
    if kind != pxe::BootKind::Ipxe && text("boot_iso").is_some() {
        return Err(format!(
            "Node {} boots with the pxe boot interface, which cannot boot an ISO (boot_iso); use ipxe.",
            node.uuid
        ));
    }
    let images = match (text("boot_iso"), text("kernel"), text("ramdisk")) {
        (Some(iso), _, _) => {
            let checksum = match &checksum {
                Some(spec) => Some(
                    ctx.images
                        .resolve(spec, &iso)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            pxe::RamdiskImages::Iso(
                ctx.images
                    .fetch(&iso, checksum.as_ref())
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        (None, Some(kernel), Some(ramdisk)) => {
            let (kernel, ramdisk) = tokio::join!(
                ctx.images.fetch(&kernel, None),
                ctx.images.fetch(&ramdisk, None)
            );
            pxe::RamdiskImages::KernelRamdisk {
                kernel: kernel.map_err(|e| e.to_string())?,
                ramdisk: ramdisk.map_err(|e| e.to_string())?,
            }
        }
        _ => {
            return Err(format!(
                "Node {} has no instance_info boot_iso, or kernel and ramdisk, to boot with the ramdisk deploy interface.",
                node.uuid
            ));
        }
    };
    let access = match ctx.bmcs.access(node) {
        Some(Ok(info)) => info,
        Some(Err(message)) => return Err(message),
        None => {
            return Err(format!(
                "The ramdisk deploy of node {} needs the ipmitool or redfish power and management interfaces.",
                node.uuid
            ));
        }
    };
    let macs = pxe_macs(ctx, node).await?;
    let boot = ctx.boot.clone();
    let (uuid, opts) = (node.uuid.clone(), text("ramdisk_kernel_arguments"));
    let macs2 = macs.clone();
    let options = match kind {
        pxe::BootKind::Ipxe => dhcp::ipxe_options(&boot, uefi(node)),
        pxe::BootKind::Pxe { uefi } => dhcp::pxe_options(&boot, uefi),
    };
    let written = ferric_common::telemetry::spawn_blocking(move || {
        pxe::prepare_ramdisk(&boot, kind, &uuid, &macs2, &images, opts.as_deref())?;
        dhcp::update(&boot, &uuid, &macs2, &options)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| format!("could not write the boot files: {e}")));
    let result = match written {
        Ok(()) => boot_it(ctx, node, &access).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        remove_files(ctx, node, &macs).await;
    }
    result
}

pub(crate) async fn boot_it(
    ctx: &Context,
    node: &Node,
    access: &bmc::Access,
) -> Result<&'static str, String> {
    ctx.bmcs
        .set_boot_device(access, "pxe", true, uefi(node))
        .await?;
    let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
    ctx.bmcs
        .set_power(access, power::REBOOT, timeout)
        .await
        .map_err(|e| format!("Failed to change power state to 'power on' by 'rebooting': {e}"))
}

pub(crate) async fn remove_files(ctx: &Context, node: &Node, macs: &[String]) {
    let (boot, uuid, macs) = (ctx.boot.clone(), node.uuid.clone(), macs.to_vec());
    let _ = ferric_common::telemetry::spawn_blocking(move || {
        pxe::clean_up(&boot, &uuid, &macs);
        dhcp::clean(&boot, &uuid, &macs);
    })
    .await;
}

/// Undeploys: power off, then the boot files and DHCP entries go.
///
/// # Errors
/// When the node cannot be powered off (its files are removed anyway).
pub async fn tear_down(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let macs = pxe_macs(ctx, node).await?;
    remove_files(ctx, node, &macs).await;
    let Some(Ok(access)) = ctx.bmcs.access(node) else {
        return Ok(power::POWER_OFF);
    };
    let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
    ctx.bmcs
        .set_power(&access, power::POWER_OFF, timeout)
        .await
        .map_err(|e| format!("Failed to change power state to 'power off' by 'power off': {e}"))
}
