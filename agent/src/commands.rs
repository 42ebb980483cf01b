//! The agent's commands, as ironic-python-agent runs them: each call of
//! `POST /v1/commands/` becomes a result with an id, the command's name and
//! parameters, a status (`RUNNING`, `SUCCEEDED`, `FAILED`), an error and a
//! result; the conductor polls `GET /v1/commands/` for the last one.
//!
//! Invariants: at most one command runs at a time (another gets "agent is
//! busy", as IPA answers); a result never carries the agent token; the
//! commands Ironic's `direct` deploy uses are implemented, any other name
//! is an `InvalidCommandError`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{configdrive, disks, erase, image};

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
}

/// A command's error, shaped like IPA's serialized exceptions.
#[derive(Debug, Clone, Serialize)]
pub struct CommandError {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: u16,
    pub message: String,
    pub details: String,
}

impl CommandError {
    fn new(kind: &str, code: u16, message: String) -> CommandError {
        CommandError {
            kind: kind.into(),
            code,
            details: message.clone(),
            message,
        }
    }
}

/// One command and its outcome (`BaseCommandResult.serialize()`).
#[derive(Debug, Clone, Serialize)]
pub struct CommandResult {
    pub id: String,
    pub command_name: String,
    pub command_params: Value,
    pub command_status: Status,
    pub command_error: Option<CommandError>,
    pub command_result: Option<Value>,
}

/// What the commands may touch.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The disk images are written to, when set on the command line;
    /// otherwise the one the node's root-device hints pick among the
    /// disks under `sys_block`, as IPA picks it.
    pub root_device: Option<PathBuf>,
    /// Where the disks are listed (`/sys/block`) and named (`/dev`).
    pub sys_block: PathBuf,
    pub dev_dir: PathBuf,
    /// Run by `standby.power_off` (argv).
    pub power_off: Vec<String>,
    /// The image formats the lookup permits.
    pub image_policy: Arc<RwLock<image::format::Policy>>,
    /// The image being written, for the heartbeat.
    pub progress: Arc<crate::progress::Progress>,
}

impl Machine {
    /// The disks a clean step erases: the root device alone when one was
    /// named on the command line (a test's file, or an operator's choice),
    /// else every disk listed under `sys_block`.
    pub fn disks(&self) -> Vec<disks::Disk> {
        let Some(device) = &self.root_device else {
            return disks::list(&self.sys_block, &self.dev_dir);
        };
        // A block device's length is where seeking to its end lands.
        let size = std::fs::File::open(device)
            .and_then(|mut f| std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)))
            .unwrap_or(0);
        vec![disks::Disk::named(
            device.to_string_lossy().into_owned(),
            size,
        )]
    }
}

/// Why a command was not started.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Another command is still running (IPA's 409).
    #[error("agent is busy: command {0} is still running")]
    Busy(String),
    /// An unknown extension or command (IPA's 400).
    #[error("Unknown command: {0}")]
    Unknown(String),
}

/// The commands run so far, newest last.
#[derive(Clone, Default)]
pub struct Commands {
    results: Arc<Mutex<Vec<CommandResult>>>,
    /// Woken when an asynchronous command ends: as IPA, the agent then
    /// heartbeats at once, so the conductor carries on without waiting for
    /// the next periodic heartbeat.
    ended: Arc<tokio::sync::Notify>,
}

/// The commands that run in the background (IPA's `async_command`s); the
/// others answer with their result.
const ASYNC: [&str; 4] = [
    "deploy.execute_deploy_step",
    "clean.execute_clean_step",
    "standby.prepare_image",
    "image.install_bootloader",
];

/// The commands this agent implements.
const KNOWN: [&str; 10] = [
    "deploy.get_deploy_steps",
    "deploy.execute_deploy_step",
    "standby.prepare_image",
    "standby.sync",
    "standby.power_off",
    "standby.get_partition_uuids",
    "image.install_bootloader",
    "clean.get_clean_steps",
    "clean.execute_clean_step",
    "log.collect_system_logs",
];

/// The agent's version, reported in heartbeats.
pub const AGENT_VERSION: &str = concat!("ferric-agent ", env!("CARGO_PKG_VERSION"));

/// The write_image deploy step, as IPA's generic hardware manager offers it.
fn write_image_step() -> Value {
    json!({
        "step": "write_image",
        "priority": 80,
        "interface": "deploy",
        "reboot_requested": false,
        "abortable": false,
        "argsinfo": {
            "image_info": {"description": "Image information", "required": true},
            "configdrive": {"description": "Config drive", "required": false},
        },
    })
}

fn hardware_manager_version() -> Value {
    json!({"generic_hardware_manager": "1.2"})
}

impl Commands {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CommandResult>> {
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn all(&self) -> Vec<CommandResult> {
        self.lock().clone()
    }

    /// Wakes when an asynchronous command has ended.
    pub fn ended(&self) -> Arc<tokio::sync::Notify> {
        self.ended.clone()
    }

    pub fn get(&self, id: &str) -> Option<CommandResult> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }

    fn finish(&self, id: &str, outcome: Result<Value, CommandError>) {
        let mut results = self.lock();
        if let Some(r) = results.iter_mut().find(|r| r.id == id) {
            match outcome {
                Ok(value) => {
                    r.command_status = Status::Succeeded;
                    r.command_result = Some(value);
                }
                Err(error) => {
                    tracing::warn!(command = %r.command_name, error = %error.message, "command failed");
                    r.command_status = Status::Failed;
                    r.command_error = Some(error);
                }
            }
        }
    }

    /// Starts `name` and returns its result at once (`RUNNING` unless it
    /// finished); the work goes on in the background.
    ///
    /// # Errors
    /// [`Refusal`] when another command runs or the name is unknown.
    pub fn start(
        &self,
        machine: &Machine,
        name: &str,
        params: Value,
    ) -> Result<(CommandResult, tokio::task::JoinHandle<()>), Refusal> {
        if !KNOWN.contains(&name) {
            return Err(Refusal::Unknown(name.to_owned()));
        }
        let result = {
            let mut results = self.lock();
            if let Some(running) = results.iter().find(|r| r.command_status == Status::Running) {
                return Err(Refusal::Busy(running.command_name.clone()));
            }
            let result = CommandResult {
                id: crate::ids::command_id(),
                // As IPA: the command without its extension.
                command_name: name.rsplit('.').next().unwrap_or(name).to_owned(),
                command_params: redact(&params),
                command_status: Status::Running,
                command_error: None,
                command_result: None,
            };
            results.push(result.clone());
            result
        };
        tracing::info!(command = name, id = %result.id, "command started");
        let (commands, machine, id, name) = (
            self.clone(),
            machine.clone(),
            result.id.clone(),
            name.to_owned(),
        );
        let handle = tokio::spawn(async move {
            let outcome = run(&machine, &name, params).await;
            commands.finish(&id, outcome);
            if ASYNC.contains(&name.as_str()) {
                commands.ended.notify_one();
            }
        });
        Ok((result, handle))
    }
}

/// Parameters as shown back: config drives (large, and holding the
/// instance's secrets) become `<...>` wherever they are, and image URLs
/// lose credentials and query strings (signed URLs).
fn redact(params: &Value) -> Value {
    let mut shown = params.clone();
    redact_in_place(&mut shown);
    shown
}

fn redact_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "configdrive" && !v.is_null() {
                    *v = json!("<...>");
                } else if key == "urls"
                    && let Value::Array(urls) = v
                {
                    for url in urls.iter_mut() {
                        if let Some(u) = url.as_str() {
                            *url = json!(image::display_url(u));
                        }
                    }
                } else {
                    redact_in_place(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_in_place),
        _ => {}
    }
}

async fn run(machine: &Machine, name: &str, params: Value) -> Result<Value, CommandError> {
    match name {
        "deploy.get_deploy_steps" => Ok(json!({
            "deploy_steps": {"GenericHardwareManager": [write_image_step()]},
            "hardware_manager_version": hardware_manager_version(),
        })),
        "clean.get_clean_steps" => Ok(json!({
            "clean_steps": {"GenericHardwareManager": erase::clean_steps()},
            "hardware_manager_version": hardware_manager_version(),
        })),
        "clean.execute_clean_step" => {
            let step = params.get("step").cloned().unwrap_or(Value::Null);
            let name = step["step"].as_str().unwrap_or_default().to_owned();
            let disks = machine.disks();
            // ferric-agent has no ferric_common (whose spawn_blocking keeps
            // the span): a plain one, the step logs its own devices.
            #[allow(clippy::disallowed_methods)]
            let outcome = tokio::task::spawn_blocking(move || erase::run(&name, &disks))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match outcome {
                Ok(result) => Ok(json!({"clean_result": result, "clean_step": step})),
                Err(e) => Err(CommandError::new("CleaningError", 500, e)),
            }
        }
        "deploy.execute_deploy_step" => {
            let step = params.get("step").cloned().unwrap_or(Value::Null);
            let step_name = step.get("step").and_then(Value::as_str).unwrap_or_default();
            if step_name != "write_image" {
                return Err(CommandError::new(
                    "InvalidCommandParamsError",
                    400,
                    format!("Unknown deploy step {step_name}"),
                ));
            }
            let image_info = step
                .get("args")
                .and_then(|a| a.get("image_info"))
                .or_else(|| params.get("image_info"))
                .cloned()
                .unwrap_or(Value::Null);
            // The config drive is checked before the disk is touched.
            let drive = match step
                .get("args")
                .and_then(|a| a.get("configdrive"))
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                Some(encoded) => Some(configdrive::fetch(encoded).await.map_err(|e| {
                    CommandError::new(
                        "InstanceDeployFailure",
                        500,
                        format!("Invalid config drive: {e}"),
                    )
                })?),
                None => None,
            };
            let device = install_device(machine, &params)?;
            let mut written = write(machine, &device, &image_info).await?;
            if let Some(drive) = drive {
                let target = device.clone();
                #[allow(clippy::disallowed_methods)]
                let placed =
                    tokio::task::spawn_blocking(move || configdrive::write(&target, &drive))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map_err(|e| {
                            CommandError::new(
                                "InstanceDeployFailure",
                                500,
                                format!(
                                    "Failed to create config drive on disk {}: {e}",
                                    device.display()
                                ),
                            )
                        })?;
                // Its contents are the instance's secrets: only where it went.
                tracing::info!(
                    how = placed.how,
                    offset = placed.offset,
                    bytes = placed.bytes,
                    "config drive written"
                );
                written["configdrive"] = json!({"partition": placed.how, "offset": placed.offset, "bytes": placed.bytes});
            }
            Ok(json!({"deploy_result": written, "deploy_step": redact(&step)}))
        }
        "standby.prepare_image" => {
            let image_info = params.get("image_info").cloned().unwrap_or(Value::Null);
            let device = install_device(machine, &params)?;
            write(machine, &device, &image_info).await
        }
        "standby.sync" => {
            let status = tokio::process::Command::new("sync").status().await;
            match status {
                Ok(s) if s.success() => Ok(json!({})),
                _ => Err(CommandError::new(
                    "CommandExecutionError",
                    500,
                    "sync failed".into(),
                )),
            }
        }
        "standby.power_off" => power_off(machine).await,
        "standby.get_partition_uuids" => Ok(json!({})),
        // A whole-disk image carries its own boot loader.
        "image.install_bootloader" => Ok(json!({})),
        "log.collect_system_logs" => Ok(json!({"system_logs": ""})),
        other => Err(CommandError::new(
            "InvalidCommandError",
            400,
            format!("Unknown command: {other}"),
        )),
    }
}

/// The disk to write: the one given on the command line, else the one the
/// node's root-device hints (`instance_info`, then `properties`) pick.
fn install_device(machine: &Machine, params: &Value) -> Result<PathBuf, CommandError> {
    if let Some(device) = &machine.root_device {
        return Ok(device.clone());
    }
    let node = &params["node"];
    let hints = node["instance_info"]["root_device"]
        .as_object()
        .filter(|h| !h.is_empty())
        .or_else(|| node["properties"]["root_device"].as_object());
    let disks = disks::list(&machine.sys_block, &machine.dev_dir);
    let device =
        disks::choose(&disks, hints).map_err(|e| CommandError::new("DeviceNotFound", 404, e))?;
    tracing::info!(device = %device.display(), hints = ?hints, "root device picked");
    Ok(device)
}

async fn write(
    machine: &Machine,
    device: &Path,
    image_info: &Value,
) -> Result<Value, CommandError> {
    let policy = machine
        .image_policy
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match image::write_image(image_info, device, &policy, machine.progress.clone()).await {
        Ok(written) => Ok(json!({
            "image_id": written.image_id,
            "root_device": device.display().to_string(),
            "bytes": written.bytes,
            "checksum_algo": written.algo,
            "disk_format": written.format,
            "compression": written.compression,
            "virtual_size": written.virtual_size,
            "seconds": written.seconds,
            "qcow2_spool_peak": written.spool_peak,
        })),
        Err(e) => Err(CommandError::new("ImageWriteError", 500, e.to_string())),
    }
}

async fn power_off(machine: &Machine) -> Result<Value, CommandError> {
    let Some((program, args)) = machine.power_off.split_first() else {
        return Err(CommandError::new(
            "CommandExecutionError",
            500,
            "no power-off command configured".into(),
        ));
    };
    tracing::info!(command = ?machine.power_off, "powering off");
    match tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
    {
        Ok(status) if status.success() => Ok(json!({})),
        Ok(status) => Err(CommandError::new(
            "CommandExecutionError",
            500,
            format!("power off exited with {status}"),
        )),
        Err(e) => Err(CommandError::new(
            "CommandExecutionError",
            500,
            format!("could not run the power-off command: {e}"),
        )),
    }
}
