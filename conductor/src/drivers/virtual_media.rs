//! The `redfish-virtual-media` boot interface, with the `ramdisk` deploy
//! interface, as Ironic's `RedfishVirtualMediaBoot`: the node's
//! `instance_info` `boot_iso` is fetched into the image cache (checksum
//! verified when given), or an ISO is built from its `kernel` and `ramdisk`
//! (`iso.rs`, with `ramdisk_kernel_arguments`), published under `http_root` as
//! `redfish/boot-<uuid>.iso` (served with Range requests), inserted into the
//! system's virtual CD with `VirtualMedia.InsertMedia`, the boot device set
//! to cdrom (persistent) and the node power-cycled: `active`. Undeploy
//! powers off, ejects the CD and withdraws the published ISO.
//!
//! The `direct` deploy boots its deploy ISO (`driver_info` `deploy_iso`, or
//! one built from `deploy_kernel` and `deploy_ramdisk` with `ipa-api-url=`)
//! the same way, once, and withdraws it when the deploy ends.
//!
//! Also the node vmedia API's attach/detach (`cdrom-<uuid>.iso`,
//! `floppy-<uuid>.img`, `disk-<uuid>.img`, as Ironic publishes them).
//!
//! Invariant: a failed deploy leaves nothing published and nothing
//! inserted; the error names the image or the step that failed.

use std::path::PathBuf;
use std::time::Duration;

use ferric_common::config::BootConfig;
use ferric_common::db::models::node::Node;
use ferric_common::states::power;
use serde_json::{Map, Value};

use super::bmc::Access;
use super::redfish::System;
use crate::images::ChecksumSpec;
use crate::tasks::Context;

/// The folder of `http_root` Ironic publishes virtual media under.
const SUBDIR: &str = "redfish";

/// Whether the node deploys with this module.
pub fn handles(node: &Node) -> bool {
    node.boot_interface.as_deref() == Some("redfish-virtual-media")
        && node.deploy_interface.as_deref() == Some("ramdisk")
}

/// The boot interface's `validate`: a `direct` deploy needs a `deploy_iso`,
/// or a `deploy_kernel` and `deploy_ramdisk` to build one from.
///
/// # Errors
/// Ironic's message, naming what is missing.
pub fn validate(node: &Node) -> Result<(), String> {
    let info: Map<String, Value> = serde_json::from_str(&node.driver_info).unwrap_or_default();
    let has = |key: &str| info.contains_key(key);
    if node.deploy_interface.as_deref() == Some("direct")
        && !has("deploy_iso")
        && !(has("deploy_kernel") && has("deploy_ramdisk"))
    {
        let missing: Vec<String> = ["deploy_kernel", "deploy_ramdisk"]
            .iter()
            .filter(|k| !has(k))
            .map(|k| format!("'{k}'"))
            .collect();
        return Err(format!(
            "Error validating Redfish virtual media. Some parameters were missing in node's driver_info. Missing are: [{}]",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// The published file `name` and its URL.
fn published(boot: &BootConfig, name: &str) -> (PathBuf, String) {
    (
        boot.http_root.join(SUBDIR).join(name),
        format!("{}/{SUBDIR}/{name}", boot.http_url.trim_end_matches('/')),
    )
}

/// The deploy's ISO: `boot-<uuid>.iso`.
fn boot_iso_name(node: &Node) -> String {
    format!("boot-{}.iso", node.uuid)
}

/// What the vmedia API publishes for a device: `cdrom-<uuid>.iso`,
/// `floppy-<uuid>.img`, `disk-<uuid>.img`, as Ironic names them.
fn attached_name(device_type: &str, node: &Node) -> String {
    let ext = if device_type == "cdrom" { "iso" } else { "img" };
    format!("{device_type}-{}.{ext}", node.uuid)
}

fn redfish_access(ctx: &Context, node: &Node) -> Result<Access, String> {
    match ctx.bmcs.access(node) {
        Some(Ok(access @ Access::Redfish { .. })) => Ok(access),
        Some(Err(message)) => Err(message),
        _ => Err(format!(
            "The redfish-virtual-media boot interface of node {} needs the redfish management interface.",
            node.uuid
        )),
    }
}

/// Runs `f` on the node's Redfish system.
async fn with_system<T>(
    ctx: &Context,
    access: &Access,
    f: impl AsyncFnOnce(System<'_>) -> Result<T, super::redfish::client::RedfishError>,
) -> Result<T, String> {
    let Access::Redfish { node, info } = access else {
        return Err("not a Redfish node".into());
    };
    f(System::new(&ctx.bmcs.redfish, info, node))
        .await
        .map_err(|e| e.to_string())
}

/// Fetches `url` (verified against `checksum` when given) and publishes it
/// as `name`; returns the published file and its URL.
async fn publish(
    ctx: &Context,
    name: &str,
    url: &str,
    checksum: Option<&ChecksumSpec>,
) -> Result<(PathBuf, String), String> {
    let checksum = match checksum {
        Some(spec) => Some(
            ctx.images
                .resolve(spec, url)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let master = ctx
        .images
        .fetch(url, checksum.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let (file, public) = published(&ctx.boot, name);
    let dest = file.clone();
    ferric_common::telemetry::spawn_blocking(move || {
        crate::images::link_into(&master, &dest).inspect_err(|_| {
            // A copy that failed half way is not left to be served.
            let _ = std::fs::remove_file(&dest);
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("could not publish {}: {e}", file.display()))?;
    Ok((file, public))
}

/// Deploys: the ISO published and inserted, boot device cdrom, power
/// cycled. Returns the power state the node is left in.
///
/// # Errors
/// Ironic-style text naming what failed; nothing is left behind.
pub async fn deploy(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let info: Map<String, Value> = serde_json::from_str(&node.instance_info).unwrap_or_default();
    let text = |k: &str| info.get(k).and_then(Value::as_str);
    let source = match (text("boot_iso"), text("kernel"), text("ramdisk")) {
        (Some(iso), _, _) => Source::Iso {
            url: iso.to_owned(),
            checksum: ChecksumSpec::from_instance_info(&info).map_err(|e| e.to_string())?,
        },
        (None, Some(kernel), Some(ramdisk)) => Source::Build {
            kernel: kernel.to_owned(),
            ramdisk: ramdisk.to_owned(),
            params: text("ramdisk_kernel_arguments")
                .unwrap_or_default()
                .to_owned(),
        },
        _ => {
            return Err(format!(
                "Node {} has no instance_info boot_iso, or kernel and ramdisk, to boot with the redfish-virtual-media boot interface.",
                node.uuid
            ));
        }
    };
    boot_iso(ctx, node, source, true).await
}

/// The `direct` deploy's first step over virtual media: the deploy ISO
/// (`driver_info` `deploy_iso`, whose agent finds the API from its own
/// kernel command line, or one built from `deploy_kernel` and
/// `deploy_ramdisk` with `ipa-api-url=`) published, inserted, booted once.
///
/// # Errors
/// Nothing to boot, or what failed; nothing is left behind.
pub async fn boot_deploy_iso(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let info: Map<String, Value> = serde_json::from_str(&node.driver_info).unwrap_or_default();
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
        (None, Some(kernel), Some(ramdisk)) => {
            let mut params = format!("ipa-api-url={}", ctx.boot.api_url);
            if let Some(extra) = text("kernel_append_params") {
                params.push(' ');
                params.push_str(extra);
            }
            Source::Build {
                kernel: kernel.to_owned(),
                ramdisk: ramdisk.to_owned(),
                params,
            }
        }
        _ => {
            return Err(format!(
                "Node {} has no driver_info deploy_iso, or deploy_kernel and deploy_ramdisk, for the direct deploy over redfish-virtual-media.",
                node.uuid
            ));
        }
    };
    boot_iso(ctx, node, source, false).await
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
        params: String,
    },
}

/// Publishes the node's ISO as `boot-<uuid>.iso` (fetched, or built),
/// inserts it, sets the boot device to cdrom and power-cycles the node; on
/// failure ejects and withdraws it.
async fn boot_iso(
    ctx: &Context,
    node: &Node,
    source: Source,
    persistent: bool,
) -> Result<&'static str, String> {
    let access = redfish_access(ctx, node)?;
    let name = boot_iso_name(node);
    let url = match source {
        Source::Iso { url, checksum } => publish(ctx, &name, &url, checksum.as_ref()).await?.1,
        Source::Build {
            kernel,
            ramdisk,
            params,
        } => {
            let (kernel, ramdisk) = tokio::join!(
                ctx.images.fetch(&kernel, None),
                ctx.images.fetch(&ramdisk, None)
            );
            let (kernel, ramdisk) = (
                kernel.map_err(|e| e.to_string())?,
                ramdisk.map_err(|e| e.to_string())?,
            );
            let (file, url) = published(&ctx.boot, &name);
            let (boot, uefi) = (ctx.boot.clone(), super::boot_mode_is_uefi(node));
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
            .map_err(|e| e.to_string())??;
            url
        }
    };
    let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
    let booted = with_system(ctx, &access, async |system| {
        system.set_power(power::POWER_OFF, timeout).await?;
        system.insert_media("cdrom", &url).await?;
        system.set_boot_device("cdrom", persistent).await?;
        system.set_power(power::POWER_ON, timeout).await
    })
    .await;
    if booted.is_err() {
        withdraw(ctx, node).await;
    }
    booted
}

/// Ejects the CD (best effort) and withdraws the published ISO.
pub async fn withdraw(ctx: &Context, node: &Node) {
    let (file, _) = published(&ctx.boot, &boot_iso_name(node));
    if let Ok(access) = redfish_access(ctx, node) {
        let ejected = with_system(ctx, &access, async |system| {
            system.eject_media("cdrom").await
        })
        .await;
        if let Err(e) = ejected {
            tracing::warn!(node.uuid = %node.uuid, error = %e, "could not eject the virtual CD");
        }
    }
    // After the eject: the BMC never points at a URL that is gone.
    let _ = std::fs::remove_file(&file);
}

/// Undeploys: power off, eject the CD, withdraw the published ISO.
///
/// # Errors
/// When the node cannot be powered off or the CD ejected (the ISO is
/// withdrawn anyway).
pub async fn tear_down(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let access = redfish_access(ctx, node)?;
    let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
    let off = with_system(ctx, &access, async |system| {
        system.set_power(power::POWER_OFF, timeout).await
    })
    .await;
    // Ejected and withdrawn even when the power off failed.
    let ejected = with_system(ctx, &access, async |system| {
        system.eject_media("cdrom").await
    })
    .await;
    let (file, _) = published(&ctx.boot, &boot_iso_name(node));
    let _ = std::fs::remove_file(&file);
    match (off, ejected) {
        (Ok(off), Ok(_)) => Ok(off),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(off), Err(eject)) => Err(format!("{off}; {eject}")),
    }
}

/// The node vmedia API's attach: `image_url` inserted into the
/// `device_type` device, published first under `http_root` (as
/// `cdrom-<uuid>.iso`, …) unless `download_source` is `http` and the URL
/// is one the BMC can read itself.
///
/// # Errors
/// The image or the BMC's failure.
pub async fn attach(
    ctx: &Context,
    node: &Node,
    device_type: &str,
    image_url: &str,
    download_source: &str,
) -> Result<(), String> {
    let access = redfish_access(ctx, node)?;
    let direct = download_source != "local"
        && (image_url.starts_with("http://") || image_url.starts_with("https://"));
    let (file, url) = if direct {
        (None, image_url.to_owned())
    } else {
        let name = attached_name(device_type, node);
        let (file, url) = publish(ctx, &name, image_url, None).await?;
        (Some(file), url)
    };
    let inserted = with_system(ctx, &access, async |system| {
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
pub async fn detach(ctx: &Context, node: &Node, device_types: &[String]) -> Result<(), String> {
    let access = redfish_access(ctx, node)?;
    let all = ["disk".to_owned(), "cdrom".to_owned(), "floppy".to_owned()];
    let types = if device_types.is_empty() {
        &all[..]
    } else {
        device_types
    };
    for device_type in types {
        let ejected = with_system(ctx, &access, async |system| {
            system.eject_media(device_type).await
        })
        .await;
        // Withdrawn once ejected: the BMC never points at a URL that is gone.
        ejected?;
        let (file, _) = published(&ctx.boot, &attached_name(device_type, node));
        let _ = std::fs::remove_file(file);
    }
    Ok(())
}
