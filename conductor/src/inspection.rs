//! What an agent's inspection data makes of a node: Ironic's inspection
//! hooks, in their order — `ramdisk-error`, `validate-interfaces`, `ports`,
//! `architecture`, `cpus`/`memory`/`root-device` (properties) and
//! `boot-mode` — then the inspection rules ([`crate::inspection_rules`]).
//!
//! Pure: it reads the node, the MACs that already have ports, and the
//! posted data, and returns the node's new `properties`, the ports to
//! create and the plugin data to store; the caller writes them in one
//! transaction with the node's move to `manageable`. Ferric records more
//! than Ironic's default hooks (which set only `cpu_arch`): `cpus`,
//! `memory_mb`, `local_gb` and the `boot_mode` capability, as the
//! `memory`, `cpus`, `root-device` and `boot-mode` hooks do when enabled.

use serde_json::{Map, Value, json};

/// `[inspector] add_ports`: which interfaces get a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddPorts {
    /// The interface the machine network-booted from (or, when the
    /// inventory does not say, those with an address).
    Pxe,
    /// Those with an IP address.
    Active,
    All,
    Disabled,
}

impl AddPorts {
    /// # Errors
    /// An unknown name.
    pub fn parse(text: &str) -> Result<AddPorts, String> {
        match text {
            "pxe" => Ok(AddPorts::Pxe),
            "active" => Ok(AddPorts::Active),
            "all" => Ok(AddPorts::All),
            "disabled" => Ok(AddPorts::Disabled),
            other => Err(format!(
                "[inspector] add_ports must be pxe, active, all or disabled, not {other}"
            )),
        }
    }
}

/// What the hooks found.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub properties: Map<String, Value>,
    /// Ports to create: (MAC address, PXE-enabled).
    pub new_ports: Vec<(String, bool)>,
}

const GIB: u64 = 1 << 30;

/// A MAC address in Ironic's form (lower case, colons), if it is one.
fn normalize_mac(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase().replace('-', ":");
    let parts: Vec<&str> = text.split(':').collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())))
    .then_some(text)
}

/// The MAC the machine booted from (`boot.pxe_interface`, possibly in
/// pxelinux's `01-aa-bb-…` form).
fn pxe_mac(inventory: &Value) -> Option<String> {
    let raw = inventory["boot"]["pxe_interface"].as_str()?;
    let raw = match raw.split_once('-') {
        Some((_, rest)) if raw.len() == 20 => rest,
        _ => raw,
    };
    normalize_mac(raw)
}

fn invalid(node_uuid: &str, reason: &str) -> String {
    format!("Inventory for node {node_uuid} is invalid: {reason}")
}

fn is_loopback(ip: &str) -> bool {
    ip.split('%')
        .next()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Runs the hooks over `inventory` and `plugin_data` (which gains
/// `all_interfaces`, `valid_interfaces` and `macs`, as Ironic's).
///
/// # Errors
/// Ironic's message for what stops an inspection: the ramdisk's own
/// error, or no usable interface.
pub fn process(
    node_uuid: &str,
    properties: &Map<String, Value>,
    existing_macs: &[String],
    inventory: &Value,
    plugin_data: &mut Map<String, Value>,
    add_ports: AddPorts,
) -> Result<Findings, String> {
    // ramdisk-error
    if let Some(error) = plugin_data.get("error").filter(|e| !e.is_null()) {
        let text = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned);
        if !text.is_empty() {
            return Err(format!("Ramdisk reported error: {text}"));
        }
    }
    // validate-interfaces
    let Some(interfaces) = inventory["interfaces"].as_array() else {
        return Err(invalid(node_uuid, "no interfaces present in inventory"));
    };
    let pxe = pxe_mac(inventory);
    let mut all = Map::new();
    for iface in interfaces {
        let Some(name) = iface["name"].as_str() else {
            tracing::warn!(node.uuid = %node_uuid, "inventory interface without a name skipped");
            continue;
        };
        let Some(mac) = iface["mac_address"].as_str().and_then(normalize_mac) else {
            continue;
        };
        let mut entry = iface.as_object().cloned().unwrap_or_default();
        entry.insert("mac_address".into(), json!(mac));
        entry.insert(
            "pxe_enabled".into(),
            json!(pxe.as_deref() == Some(mac.as_str())),
        );
        all.insert(name.to_owned(), Value::Object(entry));
    }
    if all.is_empty() {
        return Err(invalid(node_uuid, "no valid network interfaces"));
    }
    let mut valid = Map::new();
    for (name, iface) in &all {
        let ip = iface["ipv4_address"]
            .as_str()
            .or_else(|| iface["ipv6_address"].as_str())
            .filter(|ip| !ip.is_empty());
        if name == "lo" || ip.is_some_and(is_loopback) {
            continue;
        }
        let keep = match add_ports {
            AddPorts::Pxe if pxe.is_some() => iface["pxe_enabled"] == true,
            AddPorts::Pxe | AddPorts::Active => ip.is_some(),
            AddPorts::All | AddPorts::Disabled => true,
        };
        if keep {
            valid.insert(name.clone(), iface.clone());
        }
    }
    if valid.is_empty() {
        let setting = match add_ports {
            AddPorts::Pxe => "pxe",
            AddPorts::Active => "active",
            AddPorts::All => "all",
            AddPorts::Disabled => "disabled",
        };
        return Err(invalid(
            node_uuid,
            &format!(
                "no network interfaces match the configuration (add_ports set to \"{setting}\")"
            ),
        ));
    }
    let macs: Vec<Value> = valid.values().map(|i| i["mac_address"].clone()).collect();
    // ports
    let mut new_ports = Vec::new();
    if add_ports != AddPorts::Disabled {
        for iface in valid.values() {
            let mac = iface["mac_address"].as_str().unwrap_or_default().to_owned();
            if !existing_macs.contains(&mac) && !new_ports.iter().any(|(m, _)| *m == mac) {
                new_ports.push((mac, iface["pxe_enabled"] == true));
            }
        }
    }
    plugin_data.insert("all_interfaces".into(), Value::Object(all));
    plugin_data.insert("valid_interfaces".into(), Value::Object(valid));
    plugin_data.insert("macs".into(), Value::Array(macs));

    let mut properties = properties.clone();
    // architecture, cpus, memory
    if let Some(arch) = inventory["cpu"]["architecture"].as_str() {
        properties.insert("cpu_arch".into(), json!(arch));
    }
    if let Some(count) = inventory["cpu"]["count"].as_u64() {
        properties.insert("cpus".into(), json!(count));
    }
    let memory_mb = inventory["memory"]["physical_mb"]
        .as_u64()
        .or_else(|| inventory["memory"]["total"].as_u64().map(|b| b / (1 << 20)));
    if let Some(mb) = memory_mb {
        properties.insert("memory_mb".into(), json!(mb));
    }
    // root-device: the disk the agent would install to, else the smallest
    // of at least 4 GiB; local_gb leaves a GiB for partitioning, as Ironic.
    let root_size = plugin_data
        .get("root_disk")
        .and_then(|d| d["size"].as_u64())
        .or_else(|| {
            inventory["disks"]
                .as_array()?
                .iter()
                .filter_map(|d| d["size"].as_u64())
                .filter(|size| *size >= 4 * GIB)
                .min()
        });
    if let Some(size) = root_size {
        properties.insert("local_gb".into(), json!((size / GIB).saturating_sub(1)));
    }
    // boot-mode
    if let Some(mode) = inventory["boot"]["current_boot_mode"].as_str() {
        set_capability(&mut properties, "boot_mode", mode);
    }
    Ok(Findings {
        properties,
        new_ports,
    })
}

/// Sets `key:value` in `properties.capabilities` (Ironic's
/// `key1:val1,key2:val2` string, or a dict).
pub fn set_capability(properties: &mut Map<String, Value>, key: &str, value: &str) {
    match properties.get_mut("capabilities") {
        Some(Value::Object(map)) => {
            map.insert(key.into(), json!(value));
        }
        other => {
            let text = other.and_then(|v| v.as_str()).unwrap_or_default();
            let mut pairs: Vec<String> = text
                .split(',')
                .filter(|p| !p.is_empty() && p.split(':').next() != Some(key))
                .map(str::to_owned)
                .collect();
            pairs.push(format!("{key}:{value}"));
            properties.insert("capabilities".into(), json!(pairs.join(",")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Value {
        json!({
            "interfaces": [
                {"name": "lo", "mac_address": "00:00:00:00:00:00", "ipv4_address": "127.0.0.1"},
                {"name": "eth0", "mac_address": "52:54:00:AA:BB:01", "ipv4_address": "10.0.0.5"},
                {"name": "eth1", "mac_address": "52:54:00:aa:bb:02", "ipv4_address": null},
                {"name": "bad", "mac_address": "not-a-mac"},
            ],
            "cpu": {"architecture": "x86_64", "count": 4},
            "memory": {"total": 8_589_934_592_u64, "physical_mb": 8192},
            "disks": [{"name": "/dev/vda", "size": 2 * GIB}, {"name": "/dev/vdb", "size": 21 * GIB},
                      {"name": "/dev/vdc", "size": 50 * GIB}],
            "boot": {"current_boot_mode": "uefi", "pxe_interface": "01-52-54-00-aa-bb-02"},
        })
    }

    #[test]
    fn the_hooks_set_properties_and_add_the_pxe_port() {
        let mut plugin = Map::new();
        let properties = json!({"capabilities": "secure_boot:true"})
            .as_object()
            .cloned()
            .unwrap();
        let found = process(
            "n1",
            &properties,
            &[],
            &inventory(),
            &mut plugin,
            AddPorts::Pxe,
        )
        .unwrap();
        assert_eq!(
            found.new_ports,
            vec![("52:54:00:aa:bb:02".to_owned(), true)]
        );
        assert_eq!(found.properties["cpu_arch"], "x86_64");
        assert_eq!(found.properties["cpus"], 4);
        assert_eq!(found.properties["memory_mb"], 8192);
        assert_eq!(found.properties["local_gb"], 20);
        assert_eq!(
            found.properties["capabilities"],
            "secure_boot:true,boot_mode:uefi"
        );
        assert_eq!(plugin["macs"], json!(["52:54:00:aa:bb:02"]));
        assert_eq!(plugin["all_interfaces"].as_object().unwrap().len(), 3);
    }

    #[test]
    fn add_ports_chooses_the_interfaces_and_existing_ports_are_kept() {
        let mut plugin = Map::new();
        let mut no_pxe = inventory();
        no_pxe["boot"] = json!({});
        let active = process("n1", &Map::new(), &[], &no_pxe, &mut plugin, AddPorts::Pxe).unwrap();
        assert_eq!(
            active.new_ports,
            vec![("52:54:00:aa:bb:01".to_owned(), false)]
        );
        let all = process(
            "n1",
            &Map::new(),
            &["52:54:00:aa:bb:01".to_owned()],
            &inventory(),
            &mut plugin,
            AddPorts::All,
        )
        .unwrap();
        assert_eq!(all.new_ports, vec![("52:54:00:aa:bb:02".to_owned(), true)]);
        let none = process(
            "n1",
            &Map::new(),
            &[],
            &inventory(),
            &mut plugin,
            AddPorts::Disabled,
        )
        .unwrap();
        assert!(none.new_ports.is_empty());
    }

    #[test]
    fn a_ramdisk_error_or_no_usable_interface_stops_the_inspection() {
        let mut plugin = json!({"error": "lshw failed"})
            .as_object()
            .cloned()
            .unwrap();
        let error = process(
            "n1",
            &Map::new(),
            &[],
            &inventory(),
            &mut plugin,
            AddPorts::Pxe,
        );
        assert_eq!(error.unwrap_err(), "Ramdisk reported error: lshw failed");
        let mut plugin = Map::new();
        let only_lo = json!({"interfaces": [{"name": "lo", "mac_address": "00:00:00:00:00:00"}]});
        let error = process("n1", &Map::new(), &[], &only_lo, &mut plugin, AddPorts::All);
        assert!(error.unwrap_err().contains("no network interfaces match"));
        let error = process(
            "n1",
            &Map::new(),
            &[],
            &json!({"interfaces": "x"}),
            &mut plugin,
            AddPorts::All,
        );
        assert_eq!(
            error.unwrap_err(),
            "Inventory for node n1 is invalid: no interfaces present in inventory"
        );
    }
}
