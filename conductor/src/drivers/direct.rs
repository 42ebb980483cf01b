//! The `direct` deploy interface over `ipxe`/`pxe` or
//! `redfish-virtual-media` boot and `ipmitool` or `redfish` power and
//! management, following Ironic's agent deploy:
//! 1. `deploying`: the deploy ramdisk (`driver_info` `deploy_kernel` and
//!    `deploy_ramdisk`, booted with `ipa-api-url=`) is written where the
//!    node network-boots, the boot device set to pxe and the node rebooted
//!    (or, over virtual media, the prebuilt `deploy_iso` is inserted and
//!    booted once); the node waits in `wait call-back`, unlocked.
//! 2. Each heartbeat of its agent (which looked the node up and holds its
//!    token) continues the deploy under the node's lock: the first fetches
//!    the agent's deploy steps and starts `write_image` with the
//!    `instance_info` image; later ones poll the agent's command until it
//!    ends; success powers the node off, removes the ramdisk's boot files,
//!    sets the boot device to disk and powers it on: `active`.
//! 3. A failed command, or no heartbeat within
//!    `deploy_callback_timeout_secs`, ends in `deploy failed` with the reason
//!    in `last_error`, the node powered off and its boot files gone.
//!
//! The conductor talks to the agent only at the `agent_url` its heartbeat
//! gave, with the token, and never logs the token.

use std::time::Duration;

use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::states::{Event, ProvisionState, power};
use serde_json::{Map, Value, json};

use super::{pxe, ramdisk, virtual_media};
use crate::images::ChecksumSpec;
use crate::reservation::NodeLock;
use crate::tasks::Context;

/// `driver_internal_info` key: where the deploy stands (`writing`).
const PHASE: &str = "ferric_deploy_phase";

/// Keys of an agent's visit, wiped when a deploy starts and when it ends.
const AGENT_KEYS: [&str; 7] = [
    "agent_url",
    "agent_secret_token",
    "agent_secret_token_pregenerated",
    "agent_last_heartbeat",
    "agent_version",
    "agent_cached_deploy_steps",
    PHASE,
];

/// Whether the node deploys with this module.
pub fn handles(node: &Node) -> bool {
    node.deploy_interface.as_deref() == Some("direct")
        && matches!(
            node.boot_interface.as_deref(),
            Some("ipxe" | "pxe" | "redfish-virtual-media")
        )
        && matches!(
            node.power_interface.as_deref(),
            Some("ipmitool" | "redfish")
        )
}

fn internal(node: &Node) -> Map<String, Value> {
    serde_json::from_str(&node.driver_internal_info).unwrap_or_default()
}

fn without_agent(node: &Node) -> String {
    let mut info = internal(node);
    for key in AGENT_KEYS {
        info.remove(key);
    }
    Value::Object(info).to_string()
}

/// Step 1: boots the deploy ramdisk. Returns the change that moves the
/// node to `wait call-back`.
///
/// # Errors
/// Ironic-style text naming what failed; nothing is left behind.
pub async fn start(ctx: &Context, node: &Node) -> Result<StateChange, String> {
    check_instance_image(node)?;
    let booted = if virtual_media_boot(node) {
        virtual_media::boot_deploy_iso(ctx, node).await
    } else {
        network_boot(ctx, node).await
    };
    booted.map(|power_state| StateChange {
        power_state: Some(Some(power_state.to_owned())),
        driver_internal_info: Some(without_agent(node)),
        ..StateChange::default()
    })
}

fn virtual_media_boot(node: &Node) -> bool {
    node.boot_interface.as_deref() == Some("redfish-virtual-media")
}

/// A whole-disk `image_source` to deploy, or Ironic-style text saying why not.
fn check_instance_image(node: &Node) -> Result<(), String> {
    let instance: Map<String, Value> =
        serde_json::from_str(&node.instance_info).unwrap_or_default();
    if instance
        .get("image_source")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(format!(
            "Node {} has no instance_info image_source to deploy.",
            node.uuid
        ));
    }
    // Ironic takes an image with its own kernel and ramdisk, or marked so,
    // for a partition image; Ferric's agent writes whole disks only.
    let partition = instance.get("image_type").and_then(Value::as_str) == Some("partition")
        || (instance.contains_key("kernel") && instance.contains_key("ramdisk"));
    if partition {
        return Err(format!(
            "Node {} asks for a partition image (instance_info image_type, or kernel and ramdisk); the direct deploy interface deploys whole-disk images only.",
            node.uuid
        ));
    }
    Ok(())
}

/// Removes what booted the deploy ramdisk: the virtual CD, or the network
/// boot files and DHCP entries.
async fn remove_deploy_boot(ctx: &Context, node: &Node) {
    if virtual_media_boot(node) {
        virtual_media::withdraw(ctx, node).await;
    } else if let Ok(macs) = ramdisk::pxe_macs(ctx, node).await {
        ramdisk::remove_files(ctx, node, &macs).await;
    }
}

/// Network-boots the deploy kernel and ramdisk (iPXE or PXE).
async fn network_boot(ctx: &Context, node: &Node) -> Result<&'static str, String> {
    let driver_info: Map<String, Value> =
        serde_json::from_str(&node.driver_info).unwrap_or_default();
    let text = |k: &str| {
        driver_info
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(kernel), Some(ramdisk_url)) = (text("deploy_kernel"), text("deploy_ramdisk")) else {
        return Err(format!(
            "Node {} is missing driver_info deploy_kernel and deploy_ramdisk, needed by the direct deploy interface.",
            node.uuid
        ));
    };
    let Some(Ok(access)) = ctx.bmcs.access(node) else {
        return Err(format!(
            "The direct deploy of node {} needs valid ipmitool or redfish driver_info.",
            node.uuid
        ));
    };
    let (kernel, ramdisk_image) = tokio::join!(
        ctx.images.fetch(&kernel, None),
        ctx.images.fetch(&ramdisk_url, None)
    );
    let images = pxe::RamdiskImages::KernelRamdisk {
        kernel: kernel.map_err(|e| e.to_string())?,
        ramdisk: ramdisk_image.map_err(|e| e.to_string())?,
    };
    let kind = ramdisk::boot_kind(node);
    let macs = ramdisk::pxe_macs(ctx, node).await?;
    let mut opts = format!("ipa-api-url={}", ctx.boot.api_url);
    if let Some(extra) = text("kernel_append_params") {
        opts.push(' ');
        opts.push_str(&extra);
    }
    let (boot, uuid, macs2) = (ctx.boot.clone(), node.uuid.clone(), macs.clone());
    let options = match kind {
        pxe::BootKind::Ipxe => super::dhcp::ipxe_options(&boot, ramdisk::uefi(node)),
        pxe::BootKind::Pxe { uefi } => super::dhcp::pxe_options(&boot, uefi),
    };
    let written = ferric_common::telemetry::spawn_blocking(move || {
        pxe::prepare_ramdisk(&boot, kind, &uuid, &macs2, &images, Some(&opts))?;
        super::dhcp::update(&boot, &uuid, &macs2, &options)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| format!("could not write the boot files: {e}")));
    let booted = match written {
        Ok(()) => ramdisk::boot_it(ctx, node, &access).await,
        Err(e) => Err(e),
    };
    if booted.is_err() {
        ramdisk::remove_files(ctx, node, &macs).await;
    }
    booted
}

/// The agent's answer to a command, or why there was none.
async fn agent_call(
    ctx: &Context,
    node: &Node,
    name: &str,
    params: Value,
    wait: bool,
) -> Result<Value, String> {
    let info = internal(node);
    let (Some(url), Some(token)) = (
        info.get("agent_url").and_then(Value::as_str),
        info.get("agent_secret_token").and_then(Value::as_str),
    ) else {
        return Err("Agent driver requires agent_url in driver_internal_info".into());
    };
    let response = ctx
        .agent_http
        .post(format!("{url}/v1/commands/"))
        .query(&[
            ("wait", if wait { "true" } else { "false" }),
            ("agent_token", token),
        ])
        .json(&json!({"name": name, "params": params}))
        .send()
        .await
        .map_err(|e| format!("Agent command {name} failed: {}", e.without_url()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("Agent command {name} answered no JSON: {}", e.without_url()))?;
    if !status.is_success() {
        return Err(format!(
            "Agent command {name} failed with HTTP {status}: {}",
            body.get("faultstring")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    Ok(body)
}

/// The agent's most recent command result.
async fn last_command(ctx: &Context, node: &Node) -> Result<Value, String> {
    let info = internal(node);
    let (Some(url), Some(token)) = (
        info.get("agent_url").and_then(Value::as_str),
        info.get("agent_secret_token").and_then(Value::as_str),
    ) else {
        return Err("Agent driver requires agent_url in driver_internal_info".into());
    };
    let body: Value = ctx
        .agent_http
        .get(format!("{url}/v1/commands/"))
        .query(&[("agent_token", token)])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("could not read the agent's commands: {}", e.without_url()))?
        .json()
        .await
        .map_err(|e| format!("could not read the agent's commands: {}", e.without_url()))?;
    body["commands"]
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .ok_or_else(|| "the agent reports no command".to_owned())
}

/// The `image_info` Ironic's agent deploy sends, from `instance_info`.
fn image_info(node: &Node) -> Result<Value, String> {
    let info: Map<String, Value> = serde_json::from_str(&node.instance_info).unwrap_or_default();
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let source = text("image_source").ok_or("instance_info image_source is missing")?;
    ChecksumSpec::from_instance_info(&info).map_err(|e| e.to_string())?;
    let mut image = json!({
        "id": source,
        "urls": [source],
        "disk_format": text("image_disk_format").unwrap_or_else(|| "raw".into()),
        "container_format": "bare",
        "stream_raw_images": true,
        "image_type": "whole-disk",
    });
    for (from, to) in [
        ("image_os_hash_algo", "os_hash_algo"),
        ("image_os_hash_value", "os_hash_value"),
        ("image_checksum", "checksum"),
    ] {
        if let Some(value) = text(from) {
            image[to] = json!(value);
        }
    }
    Ok(image)
}

fn write_image_step(image: Value) -> Value {
    json!({
        "interface": "deploy",
        "step": "write_image",
        "priority": 80,
        "args": {"image_info": image, "configdrive": null},
    })
}

/// Step 2: what a heartbeat of the node's agent does, in the background.
/// Another heartbeat holding the lock, or a node no longer waiting, makes
/// it do nothing.
pub async fn on_heartbeat(ctx: Context, node_uuid: String) {
    let node = match crate::tasks::load_node(&ctx, &node_uuid).await {
        Ok(Some(node)) => node,
        _ => return,
    };
    let lock = match NodeLock::acquire(&ctx.db, &ctx.host, node.id).await {
        Ok(Some(lock)) => lock,
        _ => return,
    };
    if let Err(e) = continue_deploy(&ctx, &node_uuid).await {
        tracing::error!(node.uuid = %node_uuid, error = %e, "could not continue the deploy");
    }
    if let Err(e) = lock.release().await {
        tracing::error!(node.uuid = %node_uuid, error = %e, "could not release the node lock");
    }
}

async fn continue_deploy(ctx: &Context, node_uuid: &str) -> Result<(), String> {
    let Some(node) = crate::tasks::load_node(ctx, node_uuid)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if node.provision_state != ProvisionState::DeployWait.as_str() || !handles(&node) {
        return Ok(());
    }
    let phase = internal(&node)
        .get(PHASE)
        .and_then(Value::as_str)
        .map(str::to_owned);
    match phase.as_deref() {
        None => match begin_write(ctx, &node).await {
            Ok(()) => Ok(()),
            Err(e) => {
                fail(
                    ctx,
                    &node,
                    format!(
                        "Deploy step deploy.write_image failed on node {}. {e}",
                        node.uuid
                    ),
                )
                .await
            }
        },
        Some(_) => {
            let last = match last_command(ctx, &node).await {
                Ok(last) => last,
                Err(e) => {
                    tracing::warn!(node.uuid = %node.uuid, error = %e, "agent not reachable; waiting for the next heartbeat");
                    return Ok(());
                }
            };
            match last["command_status"].as_str() {
                Some("RUNNING") => Ok(()),
                Some("SUCCEEDED") if last["command_name"] == "deploy.execute_deploy_step" => {
                    finish(ctx, &node).await
                }
                _ => {
                    let error = last["command_error"]["message"]
                        .as_str()
                        .or_else(|| last["command_error"].as_str())
                        .unwrap_or("the agent's command did not succeed")
                        .to_owned();
                    fail(
                        ctx,
                        &node,
                        format!(
                            "Deploy step deploy.write_image failed on node {}. {error}",
                            node.uuid
                        ),
                    )
                    .await
                }
            }
        }
    }
}

/// The first heartbeat: cache the agent's deploy steps, start writing.
async fn begin_write(ctx: &Context, node: &Node) -> Result<(), String> {
    let steps = agent_call(
        ctx,
        node,
        "deploy.get_deploy_steps",
        json!({"node": {"uuid": node.uuid}, "ports": []}),
        true,
    )
    .await?;
    let image = image_info(node)?;
    let step = write_image_step(image);
    let started = agent_call(
        ctx,
        node,
        "deploy.execute_deploy_step",
        json!({"step": step, "node": {"uuid": node.uuid}, "ports": []}),
        false,
    )
    .await?;
    if started["command_status"] == "FAILED" {
        return Err(started["command_error"]["message"]
            .as_str()
            .unwrap_or("write_image failed")
            .to_owned());
    }
    let mut entries = Map::new();
    entries.insert(
        "agent_cached_deploy_steps".into(),
        steps["command_result"]["deploy_steps"].clone(),
    );
    entries.insert(PHASE.into(), json!("writing"));
    let mut shown_step = step;
    shown_step["args"] = json!({});
    let (id, host) = (node.id, ctx.host.clone());
    let deploy_step = shown_step.to_string();
    ctx.db
        .run(move |conn| {
            Node::merge_internal_info(conn, id, &host, &entries, None)?;
            Node::write_state(
                conn,
                id,
                &host,
                &StateChange {
                    deploy_step: Some(deploy_step),
                    ..StateChange::default()
                },
            )
        })
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(node.uuid = %node.uuid, "the agent writes the image");
    Ok(())
}

async fn power_off(ctx: &Context, node: &Node) -> Result<(), String> {
    let Some(Ok(access)) = ctx.bmcs.access(node) else {
        return Err("no usable BMC driver_info".into());
    };
    let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
    ctx.bmcs
        .set_power(&access, power::POWER_OFF, timeout)
        .await
        .map(|_| ())
        .map_err(|e| format!("Failed to change power state to 'power off' by 'power off': {e}"))
}

/// Polls the BMC until it reports the node off, at most `limit`.
async fn wait_powered_off(ctx: &Context, node: &Node, limit: Duration) {
    let Some(Ok(access)) = ctx.bmcs.access(node) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok(power::POWER_OFF) = ctx.bmcs.power_state(&access).await {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The image is written: power off (the agent first, then the BMC), boot
/// from disk, power on: `active`.
async fn finish(ctx: &Context, node: &Node) -> Result<(), String> {
    let resumed = move_to(ctx, node, Event::Resume, StateChange::default()).await?;
    // As Ironic's tear_down_agent: ask the agent to power the machine off
    // (it cannot answer once it has), give it a while, then make sure
    // through the BMC.
    match agent_call(ctx, node, "standby.power_off", json!({}), false).await {
        Ok(_) => wait_powered_off(ctx, node, Duration::from_secs(30)).await,
        Err(e) => {
            tracing::info!(node.uuid = %node.uuid, error = %e, "the agent did not power off; the BMC will");
        }
    }
    let outcome: Result<&'static str, String> = async {
        power_off(ctx, node).await?;
        remove_deploy_boot(ctx, node).await;
        let Some(Ok(access)) = ctx.bmcs.access(node) else {
            return Err("no usable BMC driver_info".into());
        };
        ctx.bmcs
            .set_boot_device(&access, "disk", true, ramdisk::uefi(node))
            .await?;
        let timeout = Duration::from_secs(ctx.settings.power_state_change_timeout_secs);
        ctx.bmcs
            .set_power(&access, power::POWER_ON, timeout)
            .await
            .map_err(|e| format!("Failed to change power state to 'power on' by 'power on': {e}"))
    }
    .await;
    match outcome {
        Ok(power_state) => {
            let change = StateChange {
                power_state: Some(Some(power_state.to_owned())),
                deploy_step: Some("{}".into()),
                driver_internal_info: Some(without_agent(&resumed)),
                ..StateChange::default()
            };
            move_to(ctx, &resumed, Event::Done, change).await?;
            tracing::info!(node.uuid = %node.uuid, "direct deploy done");
            Ok(())
        }
        Err(e) => {
            fail(
                ctx,
                &resumed,
                format!(
                    "Deploy step deploy.prepare_instance_boot failed on node {}. {e}",
                    node.uuid
                ),
            )
            .await
        }
    }
}

/// Writes `event`'s transition (with `change`) under this conductor's lock
/// and returns the node as written.
async fn move_to(
    ctx: &Context,
    node: &Node,
    event: Event,
    mut change: StateChange,
) -> Result<Node, String> {
    let current: ProvisionState = node
        .provision_state
        .parse()
        .map_err(|_| format!("unknown state {}", node.provision_state))?;
    let next = current
        .next(event)
        .ok_or_else(|| format!("no {} transition from {current}", event.as_str()))?;
    let base = StateChange::provision(next);
    change.provision_state = base.provision_state;
    change.target_provision_state = base.target_provision_state;
    change.provision_updated_at = base.provision_updated_at;
    let (id, host, seen) = (node.id, ctx.host.clone(), node.driver_internal_info.clone());
    let written = ctx
        .db
        .run(move |conn| Node::write_flow_state(conn, id, &host, &change, &seen, None))
        .await
        .map_err(|e| e.to_string())?;
    if !written {
        return Err(format!("lost the lock on node {}", node.uuid));
    }
    ctx.notifier.send(ferric_common::notify::provision_set(
        node,
        event.as_str(),
        next,
        None,
    ));
    crate::tasks::load_node(ctx, &node.uuid)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("node {} vanished", node.uuid))
}

/// Ends the deploy in `deploy failed`: powered off, boot files removed, the
/// reason in `last_error`.
async fn fail(ctx: &Context, node: &Node, reason: String) -> Result<(), String> {
    tracing::warn!(node.uuid = %node.uuid, reason = %reason, "direct deploy failed");
    let power_state = match power_off(ctx, node).await {
        Ok(()) => Some(Some(power::POWER_OFF.to_owned())),
        Err(e) => {
            tracing::warn!(node.uuid = %node.uuid, error = %e, "could not power the node off");
            None
        }
    };
    remove_deploy_boot(ctx, node).await;
    let change = StateChange {
        last_error: Some(Some(reason)),
        power_state,
        driver_internal_info: Some(without_agent(node)),
        ..StateChange::default()
    };
    move_to(ctx, node, Event::Fail, change).await.map(|_| ())
}

/// Step 3: fails a node that waited too long for its agent (called by the
/// periodic pass for nodes this conductor owns).
pub async fn time_out(ctx: &Context, node: &Node) {
    let lock = match NodeLock::acquire(&ctx.db, &ctx.host, node.id).await {
        Ok(Some(lock)) => lock,
        _ => return,
    };
    let fresh = crate::tasks::load_node(ctx, &node.uuid).await;
    if let Ok(Some(fresh)) = fresh
        && fresh.provision_state == ProvisionState::DeployWait.as_str()
        && fresh.provision_updated_at == node.provision_updated_at
    {
        let reason = format!(
            "Timeout reached while waiting for callback for node {}",
            fresh.uuid
        );
        if let Err(e) = fail(ctx, &fresh, reason).await {
            tracing::error!(node.uuid = %fresh.uuid, error = %e, "could not fail a timed-out deploy");
        }
    }
    let _ = lock.release().await;
}
