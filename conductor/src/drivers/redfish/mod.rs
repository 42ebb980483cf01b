//! The `redfish` hardware type: Ironic's `redfish` power and management
//! interfaces and the virtual media the `redfish-virtual-media` boot
//! interface uses, over Redfish with the requests Ironic (sushy) sends.
//!
//! Semantics follow `ironic/drivers/modules/redfish/{power,management}.py`:
//! every operation reads the ComputerSystem first; a power action is a
//! `ComputerSystem.Reset` at the target the system advertises, then the
//! power state is polled until it is the target or the timeout passes
//! (Ironic's PowerStateFailure); a 400/409 refusal while the system is
//! already where it was asked to go is success; reboot is off (when on)
//! then on; the boot device is a PATCH of `Boot`; validate checks
//! `driver_info` and never touches the BMC.

pub mod client;
pub mod driver_info;
pub mod interfaces;

pub use self::interfaces::REDFISH;

use std::time::{Duration, Instant};

use ferric_common::states::power;
use reqwest::Method;
use serde_json::{Value, json};

use self::client::{Clients, RedfishError};
use self::driver_info::RedfishInfo;

/// Boot devices the `redfish` management interface supports, in Ironic's
/// order, with their `BootSourceOverrideTarget`.
pub const BOOT_DEVICES: [(&str, &str); 5] = [
    ("pxe", "Pxe"),
    ("disk", "Hdd"),
    ("cdrom", "Cd"),
    ("bios", "BiosSetup"),
    ("uefihttp", "UefiHttp"),
];

/// The names of [`BOOT_DEVICES`], as `boot_device/supported` lists them.
pub const SUPPORTED_BOOT_DEVICES: [&str; 5] = ["pxe", "disk", "cdrom", "bios", "uefihttp"];

/// How often a power action polls for its target state.
const POWER_POLL: Duration = Duration::from_secs(1);

/// One node's system on its BMC.
pub struct System<'a> {
    clients: &'a Clients,
    info: &'a RedfishInfo,
    node: &'a str,
}

impl<'a> System<'a> {
    pub fn new(clients: &'a Clients, info: &'a RedfishInfo, node: &'a str) -> System<'a> {
        System {
            clients,
            info,
            node,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RedfishError> {
        Ok(self
            .clients
            .call(self.info, self.node, method, path, body)
            .await?
            .json)
    }

    /// The system's path: `redfish_system_id`, or the service's only system.
    async fn path(&self) -> Result<String, RedfishError> {
        if let Some(id) = &self.info.system_id {
            return Ok(id.clone());
        }
        let systems = format!("{}Systems", self.info.root);
        let collection = self.call(Method::GET, &systems, None).await?;
        let members: Vec<&str> = collection["Members"]
            .as_array()
            .map(|m| m.iter().filter_map(|s| s["@odata.id"].as_str()).collect())
            .unwrap_or_default();
        match members.as_slice() {
            [only] => Ok((*only).to_owned()),
            _ => Err(RedfishError::Service(format!(
                "Failed at determining default for \"ComputerSystem\": the service has {} systems; set driver_info redfish_system_id",
                members.len()
            ))),
        }
    }

    /// The ComputerSystem resource and its path.
    pub async fn read(&self) -> Result<(String, Value), RedfishError> {
        let path = self.path().await?;
        let system = self.call(Method::GET, &path, None).await?;
        Ok((path, system))
    }

    /// The power state the system reports (`power on` / `power off`).
    ///
    /// # Errors
    /// When the BMC does not answer, or reports no power state Ironic knows.
    pub async fn power_state(&self) -> Result<&'static str, RedfishError> {
        let (path, system) = self.read().await?;
        power_of(&system).ok_or_else(|| {
            RedfishError::Service(format!(
                "The attribute PowerState is missing from the resource {path}"
            ))
        })
    }

    /// Posts `ComputerSystem.Reset` with `reset_type` at the target the
    /// system advertises.
    async fn reset(
        &self,
        path: &str,
        system: &Value,
        reset_type: &str,
    ) -> Result<(), RedfishError> {
        let target = system["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .ok_or_else(|| {
                RedfishError::Service(format!(
                    "The action #ComputerSystem.Reset is missing from the resource {path}"
                ))
            })?;
        self.call(
            Method::POST,
            target,
            Some(&json!({ "ResetType": reset_type })),
        )
        .await?;
        Ok(())
    }

    /// Polls until the system reports `target` or `timeout` passes.
    async fn wait_for(&self, target: &'static str, timeout: Duration) -> Result<(), RedfishError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.power_state().await? == target {
                return Ok(());
            }
            if Instant::now() + POWER_POLL > deadline {
                return Err(RedfishError::PowerStateFailure(target));
            }
            tokio::time::sleep(POWER_POLL).await;
        }
    }

    /// One reset towards `target`: an `On` refused with 409
    /// `ActionParameterValueConflict` (a BMC still settling after a power
    /// off) is retried `[redfish] power_on_conflict_retry_attempts` times;
    /// a 400/409 refusal while the system is already there is success; both
    /// as in Ironic.
    async fn reset_towards(
        &self,
        path: &str,
        system: &Value,
        reset_type: &str,
        target: &'static str,
        timeout: Duration,
    ) -> Result<(), RedfishError> {
        let settings = self.clients.settings();
        let mut attempt = 0;
        let reset = loop {
            match self.reset(path, system, reset_type).await {
                Err(e)
                    if reset_type == "On"
                        && e.status() == Some(409)
                        && e.has_message_id("ActionParameterValueConflict")
                        && attempt < settings.power_on_conflict_retry_attempts =>
                {
                    attempt += 1;
                    tracing::warn!(node.uuid = %self.node, attempt, "the BMC refused power on (ActionParameterValueConflict); retrying after it settles");
                    tokio::time::sleep(Duration::from_secs(
                        settings.power_on_conflict_retry_interval_secs,
                    ))
                    .await;
                }
                other => break other,
            }
        };
        if let Err(e) = reset {
            let conflict = matches!(e.status(), Some(400 | 409));
            if !(conflict && self.power_state().await.ok() == Some(target)) {
                return Err(e);
            }
        }
        self.wait_for(target, timeout).await
    }

    /// Carries out `requested` (one of Ironic's power targets) and waits for
    /// the system; returns the state the node is left in.
    ///
    /// # Errors
    /// The BMC's failure, or PowerStateFailure when the target state was not
    /// reached within `timeout` (each half of a reboot gets the whole timeout).
    pub async fn set_power(
        &self,
        requested: &str,
        timeout: Duration,
    ) -> Result<&'static str, RedfishError> {
        let (on, off) = (power::POWER_ON, power::POWER_OFF);
        let (path, system) = self.read().await?;
        let current = power_of(&system);
        match requested {
            // Already there: nothing to ask (as Ironic's node_power_action).
            power::POWER_ON | power::POWER_OFF if current == Some(power::settles_to(requested)) => {
                Ok(power::settles_to(requested))
            }
            power::POWER_ON => {
                self.reset_towards(&path, &system, "On", on, timeout)
                    .await?;
                Ok(on)
            }
            power::SOFT_POWER_OFF => {
                self.reset_towards(&path, &system, "GracefulShutdown", off, timeout)
                    .await?;
                Ok(off)
            }
            power::SOFT_REBOOT => {
                self.reset_towards(&path, &system, "GracefulRestart", on, timeout)
                    .await?;
                Ok(on)
            }
            power::REBOOT => {
                if current == Some(on) {
                    self.reset_towards(&path, &system, "ForceOff", off, timeout)
                        .await?;
                }
                self.reset_towards(&path, &system, "On", on, timeout)
                    .await?;
                Ok(on)
            }
            _ => {
                self.reset_towards(&path, &system, "ForceOff", off, timeout)
                    .await?;
                Ok(off)
            }
        }
    }

    /// Injects a non-maskable interrupt (`ResetType` `Nmi`).
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn inject_nmi(&self) -> Result<(), RedfishError> {
        let (path, system) = self.read().await?;
        self.reset(&path, &system, "Nmi").await
    }

    /// Sets the next boot device: a PATCH of `Boot` with the override
    /// target and, unless already so, whether it persists.
    ///
    /// # Errors
    /// InvalidBootDevice for a device `redfish` management does not
    /// support, or the BMC's failure, worded as Ironic's.
    pub async fn set_boot_device(
        &self,
        device: &str,
        persistent: bool,
    ) -> Result<(), RedfishError> {
        let Some((_, target)) = BOOT_DEVICES.iter().find(|(name, _)| *name == device) else {
            return Err(RedfishError::InvalidBootDevice(device.to_owned()));
        };
        let (path, system) = self.read().await?;
        let enabled = if persistent { "Continuous" } else { "Once" };
        let mut boot = json!({ "BootSourceOverrideTarget": target });
        if system["Boot"]["BootSourceOverrideEnabled"] != enabled {
            boot["BootSourceOverrideEnabled"] = json!(enabled);
        }
        self.call(Method::PATCH, &path, Some(&json!({ "Boot": boot })))
            .await
            .map(|_| ())
            .map_err(|e| {
                RedfishError::Service(format!(
                    "Redfish set boot device failed for node {}. Error: {}",
                    self.node,
                    inner(&e)
                ))
            })
    }

    /// Sets the boot mode (`uefi` → `UEFI`, `bios` → `Legacy`), a PATCH
    /// of `Boot` `BootSourceOverrideMode`.
    ///
    /// # Errors
    /// An unknown mode, or the BMC's failure.
    pub async fn set_boot_mode(&self, mode: &str) -> Result<(), RedfishError> {
        let redfish_mode = match mode {
            "uefi" => "UEFI",
            "bios" => "Legacy",
            other => {
                return Err(RedfishError::Service(format!(
                    "Invalid boot mode {other} requested for node {}",
                    self.node
                )));
            }
        };
        let (path, _) = self.read().await?;
        self.call(
            Method::PATCH,
            &path,
            Some(&json!({ "Boot": { "BootSourceOverrideMode": redfish_mode } })),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            RedfishError::Service(format!(
                "Setting boot mode to {mode} failed for node {}. Error: {}",
                self.node,
                inner(&e)
            ))
        })
    }

    /// Turns UEFI secure boot on or off: a PATCH of the system's
    /// `SecureBoot` resource's `SecureBootEnable`.
    ///
    /// # Errors
    /// A system without `SecureBoot`, or the BMC's failure.
    pub async fn set_secure_boot(&self, enabled: bool) -> Result<(), RedfishError> {
        let (path, system) = self.read().await?;
        let secure = system["SecureBoot"]["@odata.id"].as_str().ok_or_else(|| {
            RedfishError::Service(format!(
                "The attribute SecureBoot is missing from the resource {path}"
            ))
        })?;
        self.call(
            Method::PATCH,
            secure,
            Some(&json!({ "SecureBootEnable": enabled })),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            RedfishError::Service(format!(
                "Setting secure boot state to {enabled} failed for node {}. Error: {}",
                self.node,
                inner(&e)
            ))
        })
    }

    /// The boot device the system will use and whether it persists.
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn boot_device(&self) -> Result<(Option<&'static str>, Option<bool>), RedfishError> {
        let (_, system) = self.read().await?;
        let boot = &system["Boot"];
        let device = BOOT_DEVICES
            .iter()
            .find(|(_, target)| boot["BootSourceOverrideTarget"] == *target)
            .map(|(name, _)| *name);
        let persistent = match boot["BootSourceOverrideEnabled"].as_str() {
            Some("Continuous") => Some(true),
            Some("Once") => Some(false),
            _ => None,
        };
        Ok((device, persistent))
    }

    /// The system's virtual media devices (`VirtualMedia` of the system,
    /// else of its first manager).
    async fn virtual_media(&self) -> Result<Vec<(String, Value)>, RedfishError> {
        let (path, system) = self.read().await?;
        let collection = match system["VirtualMedia"]["@odata.id"].as_str() {
            Some(collection) => collection.to_owned(),
            None => {
                let manager = system["Links"]["ManagedBy"][0]["@odata.id"]
                    .as_str()
                    .ok_or_else(|| {
                        RedfishError::Service(format!(
                            "The attribute VirtualMedia is missing from the resource {path}"
                        ))
                    })?;
                let manager = self.call(Method::GET, manager, None).await?;
                manager["VirtualMedia"]["@odata.id"]
                    .as_str()
                    .ok_or_else(|| {
                        RedfishError::Service(format!(
                            "No virtual media available on node {}",
                            self.node
                        ))
                    })?
                    .to_owned()
            }
        };
        let members = self.call(Method::GET, &collection, None).await?;
        let mut devices = Vec::new();
        for member in members["Members"].as_array().into_iter().flatten() {
            if let Some(member) = member["@odata.id"].as_str() {
                devices.push((
                    member.to_owned(),
                    self.call(Method::GET, member, None).await?,
                ));
            }
        }
        Ok(devices)
    }

    /// The system's virtual media devices as Ironic's `get_virtual_media`
    /// lists them: `[{media_types, inserted, image}]`.
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn media_summary(&self) -> Result<Value, RedfishError> {
        Ok(Value::Array(
            self.virtual_media()
                .await?
                .into_iter()
                .map(|(_, media)| {
                    json!({
                        "media_types": media["MediaTypes"],
                        "inserted": media["Inserted"],
                        "image": media["Image"],
                    })
                })
                .collect(),
        ))
    }

    /// The virtual media device for Ironic's `device_type`
    /// (`cdrom`, `floppy`, `usb`/`disk`).
    async fn find_media(&self, device_type: &str) -> Result<Option<(String, Value)>, RedfishError> {
        let wanted: &[&str] = match device_type {
            "cdrom" => &["CD", "DVD"],
            "floppy" => &["Floppy"],
            _ => &["USBStick"],
        };
        Ok(self.virtual_media().await?.into_iter().find(|(_, media)| {
            media["MediaTypes"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| wanted.iter().any(|w| t == w)))
        }))
    }

    /// [`System::find_media`], required.
    async fn media_device(&self, device_type: &str) -> Result<(String, Value), RedfishError> {
        self.find_media(device_type).await?.ok_or_else(|| {
            RedfishError::Service(format!(
                "No suitable virtual media device found for {device_type} on node {}",
                self.node
            ))
        })
    }

    /// Inserts `image` into the `device_type` device. Whatever the device
    /// says it holds is ejected first (best effort), as Ironic does: some
    /// BMCs report stale media, and the same URL may now hold another image.
    /// A device without the `InsertMedia` action is PATCHed, as sushy does.
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn insert_media(&self, device_type: &str, image: &str) -> Result<(), RedfishError> {
        let (path, media) = self.media_device(device_type).await?;
        if media["Inserted"] == true
            && let Err(e) = self.eject(&path, &media).await
        {
            tracing::warn!(node.uuid = %self.node, error = %e, "could not eject before inserting");
        }
        match action(&path, &media, "#VirtualMedia.InsertMedia") {
            Ok(target) => {
                self.call(Method::POST, &target, Some(&json!({ "Image": image })))
                    .await?
            }
            Err(_) => {
                let insert = json!({"Image": image, "Inserted": true, "WriteProtected": true});
                self.call(Method::PATCH, &path, Some(&insert)).await?
            }
        };
        Ok(())
    }

    /// Ejects whatever the `device_type` device holds; `false` when there
    /// was nothing to eject (or no such device).
    ///
    /// # Errors
    /// The BMC's failure.
    pub async fn eject_media(&self, device_type: &str) -> Result<bool, RedfishError> {
        // A system without such a device has nothing to eject.
        let Some((path, media)) = self.find_media(device_type).await? else {
            return Ok(false);
        };
        if media["Inserted"] != true && media["Image"].as_str().is_none_or(str::is_empty) {
            return Ok(false);
        }
        self.eject(&path, &media).await?;
        Ok(true)
    }

    async fn eject(&self, path: &str, media: &Value) -> Result<(), RedfishError> {
        let Ok(target) = action(path, media, "#VirtualMedia.EjectMedia") else {
            // No action: PATCH the device, as sushy does.
            let eject = json!({"Image": null, "Inserted": false});
            return self
                .call(Method::PATCH, path, Some(&eject))
                .await
                .map(|_| ());
        };
        match self.call(Method::POST, &target, None).await {
            // sushy sends an empty object to BMCs that refuse no body.
            Err(e) if matches!(e.status(), Some(400 | 415)) => {
                self.call(Method::POST, &target, Some(&json!({}))).await?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

/// Ironic's power state for the system's `PowerState`.
fn power_of(system: &Value) -> Option<&'static str> {
    match system["PowerState"].as_str()? {
        "On" | "PoweringOn" => Some(power::POWER_ON),
        "Off" | "PoweringOff" => Some(power::POWER_OFF),
        _ => None,
    }
}

fn action(path: &str, resource: &Value, name: &str) -> Result<String, RedfishError> {
    resource["Actions"][name]["target"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            RedfishError::Service(format!(
                "The action {name} is missing from the resource {path}"
            ))
        })
}

/// The message inside a [`RedfishError::Http`] or
/// [`RedfishError::Service`] (for Ironic's messages that wrap sushy's).
fn inner(e: &RedfishError) -> String {
    match e {
        RedfishError::Http { message, .. } | RedfishError::Service(message) => message.clone(),
        other => other.to_string(),
    }
}
