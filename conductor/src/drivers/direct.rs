//! The `direct` deploy interface, following Ironic's agent deploy, over
//! any boot interface and any power interface:
//! 1. `deploying`: the boot interface makes the node boot the deploy
//!    ramdisk with `ipa-api-url=`, the node is rebooted and waits in
//!    `wait call-back`, unlocked.
//! 2. Each heartbeat of its agent (which looked the node up and holds its
//!    token) continues the deploy under the node's lock: the first fetches
//!    the agent's deploy steps and starts `write_image` with the
//!    `instance_info` image; later ones poll the agent's command until it
//!    ends; success powers the node off, undoes the ramdisk's boot, boots
//!    the instance from disk and powers it on: `active`.
//! 3. A failed command, or no heartbeat within
//!    `deploy_callback_timeout_secs` (the periodic pass calls
//!    [`DeployInterface::clean_up`]), ends in `deploy failed` with the
//!    reason in `last_error`, the node powered off and its ramdisk's boot
//!    undone.
//!
//! The conductor talks to the agent only at the `agent_url` its heartbeat
//! gave, with the token, and never logs the token. Cleaning through the
//! agent is [`super::agent_clean`].

use std::time::Duration;

use async_trait::async_trait;
use ferric_common::config::{BootConfig, ImageDownloadSource};
use ferric_common::db::models::node::{Node, StateChange};
use ferric_common::states::{Event, ProvisionState, power};
use serde_json::{Map, Value, json};

use super::error::DriverError;
use super::interfaces::{CleanStep, DeployInterface, Deployed, InstanceBoot, Interface};
use super::{agent_clean, agent_client, configdrive};
use super::{deploy_kernel_args, power_actions};
use crate::images::{self, ChecksumSpec};
use crate::task::Task;

/// `driver_internal_info` key: where the deploy stands (`writing`).
const PHASE: &str = "ferric_deploy_phase";

/// Keys of an agent's visit, wiped when a deploy starts and when it ends.
const AGENT_KEYS: [&str; 12] = [
    "agent_url",
    "agent_verify_ca",
    "agent_lookup_address",
    "agent_secret_token",
    "agent_secret_token_pregenerated",
    "agent_last_heartbeat",
    "agent_version",
    "agent_status",
    "agent_status_message",
    "agent_cached_deploy_steps",
    "deploy_progress",
    PHASE,
];

/// How long the agent is given to power the machine off itself before the
/// BMC does it.
const AGENT_POWER_OFF_WAIT: Duration = Duration::from_secs(30);

/// `direct`.
pub struct DirectDeploy;

/// The agent's clean steps a manual clean may name (ironic-python-agent's
/// generic hardware manager's); the agent's own list decides when the
/// cleaning runs.
const AGENT_CLEAN_STEPS: [CleanStep; 6] = [
    CleanStep {
        step: "erase_devices",
        required: &[],
    },
    CleanStep {
        step: "erase_devices_metadata",
        required: &[],
    },
    CleanStep {
        step: "erase_devices_express",
        required: &[],
    },
    CleanStep {
        step: "erase_pstore",
        required: &[],
    },
    CleanStep {
        step: "delete_configuration",
        required: &[],
    },
    CleanStep {
        step: "clean_uefi_nvram",
        required: &[],
    },
];

impl Interface for DirectDeploy {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn clean_steps(&self) -> &'static [CleanStep] {
        &AGENT_CLEAN_STEPS
    }
}

#[async_trait]
impl DeployInterface for DirectDeploy {
    fn boots_deploy_ramdisk(&self) -> bool {
        true
    }

    async fn deploy(&self, task: &mut Task) -> Result<Deployed, DriverError> {
        check_instance_image(&task.node)?;
        if serves_locally(&task.node, &task.ctx().boot)? {
            stage_local_image(task).await?;
        }
        let api = task.ctx().boot.api_url.clone();
        let waiting = boot_ramdisk(task, &format!("ipa-api-url={api}")).await;
        if waiting.is_err() {
            remove_local_image(task);
        }
        waiting.map(Deployed::Waiting)
    }

    async fn prepare_cleaning(&self, task: &mut Task) -> Result<Option<StateChange>, DriverError> {
        agent_clean::prepare(task).await.map(Some)
    }

    async fn heartbeat(&self, task: &mut Task) -> Result<(), DriverError> {
        if task.node.provision_state == ProvisionState::CleanWait.as_str() {
            return agent_clean::heartbeat(task).await;
        }
        let phase = task
            .node
            .driver_internal_info_map()?
            .get(PHASE)
            .and_then(Value::as_str)
            .map(str::to_owned);
        if phase.is_none() {
            if let Err(e) = begin_write(task).await {
                let reason = format!(
                    "Deploy step deploy.write_image failed on node {}. {e}",
                    task.node.uuid
                );
                return fail(self, task, reason).await;
            }
            return Ok(());
        }
        let last = match agent_client::last_command(task.ctx(), &task.node).await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(node.uuid = %task.node.uuid, error = %e, "agent not reachable; waiting for the next heartbeat");
                return Ok(());
            }
        };
        // As Ironic: only the deploy step's own command counts; anything
        // else (a step not yet started, an out-of-band command) waits for
        // the next heartbeat.
        // (`deploy.execute_deploy_step`: ferric-agent ramdisks built before
        // it named commands as IPA does.)
        if !matches!(
            last["command_name"].as_str(),
            Some("execute_deploy_step" | "deploy.execute_deploy_step")
        ) {
            return Ok(());
        }
        match last["command_status"].as_str() {
            Some("RUNNING") => Ok(()),
            Some("SUCCEEDED") => {
                if last["command_result"]["deploy_step"]["step"] == "write_image" {
                    finish(self, task).await
                } else {
                    Ok(())
                }
            }
            _ => {
                let error = agent_client::command_error(&last);
                let reason = format!(
                    "Deploy step deploy.write_image failed on node {}. {error}",
                    task.node.uuid
                );
                fail(self, task, reason).await
            }
        }
    }

    async fn tear_down(&self, task: &mut Task) -> Result<Option<&'static str>, DriverError> {
        power_actions::tear_down(task).await
    }

    /// Powers the node off and undoes the ramdisk's boot; the agent's keys
    /// go.
    async fn clean_up(&self, task: &Task) -> StateChange {
        if task.node.provision_state == ProvisionState::CleanWait.as_str() {
            return agent_clean::clean_up(task).await;
        }
        leave_ramdisk(task).await
    }
}

/// Makes the node boot the deploy ramdisk with `kernel_args` and reboots it
/// (undoing the ramdisk's boot if that fails); the change to record as the
/// node waits for its agent: the power state, and `driver_internal_info`
/// without a former agent's keys (a new boot never inherits them).
///
/// # Errors
/// Bad kernel arguments, or the boot or power interface's failure.
pub(super) async fn boot_ramdisk(
    task: &mut Task,
    kernel_args: &str,
) -> Result<StateChange, DriverError> {
    let params = deploy_kernel_args(kernel_args)?;
    let boot = task.driver.boot;
    boot.prepare_ramdisk(task, &params).await?;
    match power_actions::reboot(task).await {
        Ok(power_state) => Ok(StateChange {
            power_state: Some(Some(power_state.to_owned())),
            driver_internal_info: Some(without_agent(&task.node)?),
            ..StateChange::default()
        }),
        Err(e) => {
            boot.clean_up_ramdisk(task).await;
            Err(e)
        }
    }
}

/// Powers the node off and undoes the ramdisk's boot (a failure to power
/// off is logged, not fatal: the node is failing or done anyway); the
/// change to record: the power state and `driver_internal_info` without
/// the agent's keys.
pub(super) async fn leave_ramdisk(task: &Task) -> StateChange {
    let power_state = match power_actions::power_off(task).await {
        Ok(state) => Some(Some(state.to_owned())),
        Err(e) => {
            tracing::warn!(node.uuid = %task.node.uuid, state = %task.node.provision_state, error = %e, "could not power the node off");
            None
        }
    };
    task.driver.boot.clean_up_ramdisk(task).await;
    remove_local_image(task);
    StateChange {
        power_state,
        driver_internal_info: without_agent(&task.node).ok(),
        ..StateChange::default()
    }
}

/// Under `http_root`: the instance images the `local` download source
/// serves, one link per node (Ironic's `agent_images`).
const LOCAL_IMAGES: &str = "agent_images";

/// Whether the conductor serves the node's image: `image_download_source`
/// (`instance_info`, else `[agent]`) is `local`, or the image is a file.
fn serves_locally(node: &Node, boot: &BootConfig) -> Result<bool, DriverError> {
    let info = node.instance_info_map()?;
    if info
        .get("image_source")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("file://"))
    {
        return Ok(true);
    }
    match info.get("image_download_source") {
        None | Some(Value::Null) => Ok(boot.image_download_source == ImageDownloadSource::Local),
        Some(Value::String(s)) if s == "local" => Ok(true),
        Some(Value::String(s)) if s == "http" => Ok(false),
        Some(other) => Err(DriverError::InvalidParameter(format!(
            "instance_info image_download_source must be http or local, not {other}"
        ))),
    }
}

fn local_image_path(boot: &BootConfig, node: &Node) -> std::path::PathBuf {
    boot.http_root.join(LOCAL_IMAGES).join(&node.uuid)
}

/// Fetches the node's image into the master cache, verified against its
/// checksum (one download for every node deploying it), and links it
/// where `[deploy] http_url` serves it.
///
/// # Errors
/// As the cache's: an unreachable image, a checksum mismatch.
async fn stage_local_image(task: &Task) -> Result<(), DriverError> {
    let (ctx, node) = (task.ctx(), &task.node);
    let info = node.instance_info_map()?;
    let source = info
        .get("image_source")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = ChecksumSpec::from_instance_info(&info)? else {
        return Err(DriverError::InvalidParameter(format!(
            "Node {} has no image checksum (image_checksum, or image_os_hash_algo and image_os_hash_value).",
            node.uuid
        )));
    };
    let checksum = ctx.images.resolve(&spec, &source).await?;
    let master = ctx.images.fetch(&source, Some(&checksum)).await?;
    let dest = local_image_path(&ctx.boot, node);
    ferric_common::telemetry::spawn_blocking(move || images::link_into(&master, &dest))
        .await
        .map_err(|e| DriverError::Files(e.to_string()))?
        .map_err(|e| DriverError::Files(format!("cannot serve the image: {e}")))?;
    tracing::info!(node.uuid = %node.uuid, "instance image cached and served by the conductor");
    Ok(())
}

/// The image the conductor serves was verified against a checksum it read
/// (a checksum file when `instance_info` names one by URL): the agent gets
/// that value, not the URL, which it may not reach.
async fn resolved_checksum(task: &Task, image: &mut Value) -> Result<(), DriverError> {
    let (ctx, node) = (task.ctx(), &task.node);
    let info = node.instance_info_map()?;
    let Some(spec @ ChecksumSpec::Url { .. }) = ChecksumSpec::from_instance_info(&info)? else {
        return Ok(());
    };
    let source = info
        .get("image_source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let checksum = ctx.images.resolve(&spec, source).await?;
    if let Some(fields) = image.as_object_mut() {
        fields.remove("checksum");
        fields.insert("os_hash_algo".into(), json!(checksum.algo.name()));
        fields.insert("os_hash_value".into(), json!(checksum.hex));
    }
    Ok(())
}

/// Stops serving the node's image (the cache keeps its master copy).
fn remove_local_image(task: &Task) {
    let _ = std::fs::remove_file(local_image_path(&task.ctx().boot, &task.node));
}

/// The node's `driver_internal_info` without the agent's keys.
pub(super) fn without_agent(node: &Node) -> Result<String, DriverError> {
    let mut info = node.driver_internal_info_map()?;
    for key in AGENT_KEYS {
        info.remove(key);
    }
    Ok(Value::Object(info).to_string())
}

/// A whole-disk `image_source` to deploy, or Ironic-style text saying why not.
fn check_instance_image(node: &Node) -> Result<(), DriverError> {
    let instance = node.instance_info_map()?;
    if instance
        .get("image_source")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(DriverError::InvalidParameter(format!(
            "Node {} has no instance_info image_source to deploy.",
            node.uuid
        )));
    }
    // Ironic takes an image with its own kernel and ramdisk, or marked so,
    // for a partition image; Ferric's agent writes whole disks only.
    let partition = instance.get("image_type").and_then(Value::as_str) == Some("partition")
        || (instance.contains_key("kernel") && instance.contains_key("ramdisk"));
    if partition {
        return Err(DriverError::InvalidParameter(format!(
            "Node {} asks for a partition image (instance_info image_type, or kernel and ramdisk); the direct deploy interface deploys whole-disk images only.",
            node.uuid
        )));
    }
    Ok(())
}

/// The `image_info` Ironic's agent deploy sends, from `instance_info`;
/// with the `local` download source, the conductor's URL of the image.
fn image_info(node: &Node, boot: &BootConfig) -> Result<Value, DriverError> {
    let info: Map<String, Value> = node.instance_info_map()?;
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let source = text("image_source").ok_or_else(|| {
        DriverError::InvalidParameter("instance_info image_source is missing".into())
    })?;
    ChecksumSpec::from_instance_info(&info)?;
    let mut image = json!({
        // As Ironic: the last part of the source (IPA names its download
        // after it when it converts with qemu-img).
        "id": source.rsplit('/').next().unwrap_or(&source),
        "urls": [source],
        // As Ironic: what the operator declared, else nothing (the agent
        // detects the format and checks it is permitted).
        "disk_format": text("image_disk_format"),
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
    if serves_locally(node, boot)? {
        let url = format!(
            "{}/{LOCAL_IMAGES}/{}",
            boot.http_url.trim_end_matches('/'),
            node.uuid
        );
        image["urls"] = json!([url]);
    }
    Ok(image)
}

fn write_image_step(image: Value, configdrive: Option<String>) -> Value {
    json!({
        "interface": "deploy",
        "step": "write_image",
        "priority": 80,
        "args": {"image_info": image, "configdrive": configdrive},
    })
}

/// The node's config drive for the agent (built on the blocking pool when
/// it is given as JSON).
async fn configdrive_for_agent(task: &Task) -> Result<Option<String>, DriverError> {
    let node = &task.node;
    let info = node.instance_info_map()?;
    let (uuid, name) = (node.uuid.clone(), node.name.clone());
    let work = task
        .ctx()
        .boot
        .image_cache_dir
        .join(format!("configdrive-{}", uuid::Uuid::new_v4().simple()));
    ferric_common::telemetry::spawn_blocking(move || {
        configdrive::for_agent(&info, &uuid, name.as_deref(), &work)
    })
    .await
    .map_err(|e| DriverError::Files(format!("building the config drive: {e}")))?
    .map_err(DriverError::Files)
}

/// The first heartbeat: cache the agent's deploy steps, start writing.
async fn begin_write(task: &Task) -> Result<(), DriverError> {
    let (ctx, node) = (task.ctx(), &task.node);
    // As Ironic: the whole node (secrets masked) and its ports with every
    // command; the config drive only where the step writes it.
    let (listed_node, ports) = agent_client::node_params(ctx, node, false).await?;
    let steps = agent_client::call(
        ctx,
        node,
        "deploy.get_deploy_steps",
        json!({"node": listed_node, "ports": ports}),
        true,
    )
    .await?;
    let mut image = image_info(node, &ctx.boot)?;
    if serves_locally(node, &ctx.boot)? {
        resolved_checksum(task, &mut image).await?;
    }
    let step = write_image_step(image, configdrive_for_agent(task).await?);
    let deploy_version = steps["command_result"]["hardware_manager_version"].clone();
    let started = agent_client::call(
        ctx,
        node,
        "deploy.execute_deploy_step",
        json!({"step": step, "node": agent_client::agent_node(node, true), "ports": ports,
               "deploy_version": deploy_version}),
        false,
    )
    .await?;
    if started["command_status"] == "FAILED" {
        return Err(DriverError::Agent(
            started["command_error"]["message"]
                .as_str()
                .unwrap_or("write_image failed")
                .to_owned(),
        ));
    }
    let mut entries = Map::new();
    entries.insert(
        "agent_cached_deploy_steps".into(),
        steps["command_result"]["deploy_steps"].clone(),
    );
    entries.insert(PHASE.into(), json!("writing"));
    task.merge_internal_info(entries).await?;
    let mut shown_step = step;
    shown_step["args"] = json!({});
    task.write(StateChange {
        deploy_step: Some(shown_step.to_string()),
        ..StateChange::default()
    })
    .await?;
    tracing::info!(node.uuid = %node.uuid, "the agent writes the image");
    Ok(())
}

/// `driver_info.deploy_forces_oob_reboot` (Ironic's, off unless set; a
/// boolean or a string as oslo's `bool_from_string` reads it).
fn forces_oob_reboot(node: &Node) -> Result<bool, DriverError> {
    Ok(
        match node.driver_info_map()?.get("deploy_forces_oob_reboot") {
            Some(Value::Bool(on)) => *on,
            Some(Value::String(text)) => matches!(
                text.trim().to_ascii_lowercase().as_str(),
                "1" | "t" | "true" | "on" | "y" | "yes"
            ),
            _ => false,
        },
    )
}

/// Polls the power interface until it reports the node off, at most `limit`.
async fn wait_powered_off(task: &Task, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(power::POWER_OFF)) = task.driver.power.get_power_state(task).await {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The image is written: power off (the agent first, then the BMC), boot
/// the instance from disk, power on: `active`.
async fn finish(deploy: &DirectDeploy, task: &mut Task) -> Result<(), DriverError> {
    task.transition(Event::Resume, StateChange::default())
        .await?;
    task.reload().await?;
    // As Ironic's tear_down_agent: with driver_info deploy_forces_oob_reboot
    // flush the agent's buffers and power off out of band at once; else ask
    // the agent to power the machine off (it cannot answer once it has),
    // give it a while, then make sure through the power interface.
    if forces_oob_reboot(&task.node)? {
        match agent_client::call(task.ctx(), &task.node, "standby.sync", json!({}), true).await {
            Ok(answer) if answer["command_status"] == "FAILED" => {
                tracing::warn!(node.uuid = %task.node.uuid, error = %answer["command_error"], "the agent could not flush its buffers before the hard power off");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(node.uuid = %task.node.uuid, error = %e, "the agent could not flush its buffers before the hard power off");
            }
        }
    } else {
        match agent_client::power_off(task.ctx(), &task.node).await {
            Ok(_) => wait_powered_off(task, AGENT_POWER_OFF_WAIT).await,
            Err(e) => {
                tracing::info!(node.uuid = %task.node.uuid, error = %e, "the agent did not power off; the BMC will");
            }
        }
    }
    let boot = task.driver.boot;
    let outcome: Result<&'static str, DriverError> = async {
        power_actions::power_off(task).await?;
        boot.clean_up_ramdisk(task).await;
        remove_local_image(task);
        boot.prepare_instance(task, InstanceBoot::Disk).await?;
        power_actions::power_on(task).await
    }
    .await;
    match outcome {
        Ok(power_state) => {
            let change = StateChange {
                power_state: Some(Some(power_state.to_owned())),
                deploy_step: Some("{}".into()),
                driver_internal_info: Some(without_agent(&task.node)?),
                ..StateChange::default()
            };
            task.transition(Event::Done, change).await?;
            tracing::info!(node.uuid = %task.node.uuid, "direct deploy done");
            Ok(())
        }
        Err(e) => {
            let reason = format!(
                "Deploy step deploy.prepare_instance_boot failed on node {}. {e}",
                task.node.uuid
            );
            fail(deploy, task, reason).await
        }
    }
}

/// Ends the deploy in `deploy failed`: powered off, the ramdisk's boot
/// undone, the reason in `last_error`.
async fn fail(deploy: &DirectDeploy, task: &mut Task, reason: String) -> Result<(), DriverError> {
    tracing::warn!(node.uuid = %task.node.uuid, reason = %reason, "direct deploy failed");
    let change = deploy.clean_up(task).await;
    Ok(task.fail(reason, change).await?)
}
