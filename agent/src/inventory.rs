//! The machine's hardware inventory in ironic-python-agent's format (what
//! `POST /v1/continue_inspection` takes and `GET /v1/nodes/{id}/inventory`
//! shows), read from `/sys` and `/proc`: CPUs, memory, every disk
//! ([`crate::disks`]), every NIC with its MAC, addresses, carrier, speed,
//! PCI address and driver, the system vendor from DMI, the boot mode and
//! the interface the machine network-booted from (`BOOTIF=`).
//!
//! Invariant: reads only; a value the kernel does not expose is `null`, as
//! in IPA's inventory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::disks::{self, Disk};

/// Where the inventory is read from (the real paths, or a test's).
#[derive(Debug, Clone)]
pub struct Sources {
    pub sys_class_net: PathBuf,
    pub sys_block: PathBuf,
    pub dev_dir: PathBuf,
    /// `/proc` (cpuinfo, meminfo).
    pub proc_dir: PathBuf,
    /// `/sys/class/dmi/id`.
    pub dmi: PathBuf,
    /// `/sys/firmware/efi`.
    pub efi: PathBuf,
    /// The kernel command line (for `BOOTIF=`).
    pub cmdline: String,
}

fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn link_name(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// The inventory and the plugin data IPA's default collector adds
/// (`root_disk`, `boot_interface`), as one object to post.
pub fn collect(sources: &Sources) -> Value {
    let disks = disks::list(&sources.sys_block, &sources.dev_dir);
    let pxe = pxe_mac(&sources.cmdline);
    let root = disks::choose(&disks, None)
        .ok()
        .and_then(|chosen| disks.iter().find(|d| Path::new(&d.name) == chosen))
        .map(disk_json);
    json!({
        "inventory": {
            "interfaces": interfaces(&sources.sys_class_net),
            "cpu": cpu(&sources.proc_dir),
            "memory": memory(&sources.proc_dir),
            "disks": disks.iter().map(disk_json).collect::<Vec<_>>(),
            "bmc_address": null,
            "bmc_v6address": null,
            "system_vendor": {
                "product_name": read(&sources.dmi.join("product_name")),
                "serial_number": read(&sources.dmi.join("product_serial")),
                "manufacturer": read(&sources.dmi.join("sys_vendor")),
                "firmware": {
                    "vendor": read(&sources.dmi.join("bios_vendor")),
                    "version": read(&sources.dmi.join("bios_version")),
                    "build_date": read(&sources.dmi.join("bios_date")),
                },
            },
            "boot": {
                "current_boot_mode": if sources.efi.exists() { "uefi" } else { "bios" },
                "pxe_interface": pxe,
            },
            "hostname": read(&sources.proc_dir.join("sys/kernel/hostname")),
        },
        "root_disk": root,
        "boot_interface": pxe,
        "error": null,
    })
}

/// `BOOTIF=01-aa-bb-…` (pxelinux) or `BOOTIF=aa:bb:…` (iPXE) as a MAC.
fn pxe_mac(cmdline: &str) -> Option<String> {
    let raw = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("BOOTIF="))?;
    let raw = match raw.split_once('-') {
        Some((_, rest)) if raw.len() == 20 => rest.replace('-', ":"),
        _ => raw.to_owned(),
    };
    Some(raw.to_lowercase())
}

fn disk_json(disk: &Disk) -> Value {
    json!({
        "name": disk.name,
        "model": disk.model,
        "size": disk.size,
        "rotational": disk.rotational,
        "wwn": disk.wwn,
        "serial": disk.serial,
        "vendor": disk.vendor,
        "wwn_with_extension": disk.wwn,
        "wwn_vendor_extension": null,
        "hctl": disk.hctl,
        "by_path": disk.by_path,
    })
}

/// Every NIC but loopback, with its addresses from the kernel.
fn interfaces(sys_class_net: &Path) -> Vec<Value> {
    let addresses = if_addrs::get_if_addrs().unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| {
            let dir = sys_class_net.join(name);
            let mac = read(&dir.join("address"))?.to_lowercase();
            let ip = |v4: bool| {
                addresses
                    .iter()
                    .filter(|a| a.name == *name && a.ip().is_ipv4() == v4)
                    .map(|a| a.ip().to_string())
                    .next()
            };
            Some(json!({
                "name": name,
                "mac_address": mac,
                "ipv4_address": ip(true),
                "ipv6_address": ip(false),
                "has_carrier": read(&dir.join("carrier")).as_deref() == Some("1"),
                "lldp": null,
                "vendor": read(&dir.join("device/vendor")),
                "product": read(&dir.join("device/device")),
                "client_id": null,
                "biosdevname": null,
                "speed_mbps": read(&dir.join("speed")).and_then(|s| s.parse::<i64>().ok()).filter(|s| *s > 0),
                "pci_address": link_name(&dir.join("device")),
                "driver": link_name(&dir.join("device/driver")),
            }))
        })
        .collect()
}

fn cpu(proc_dir: &Path) -> Value {
    let info = std::fs::read_to_string(proc_dir.join("cpuinfo")).unwrap_or_default();
    let field = |key: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let count = info
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count();
    let sockets: BTreeSet<&str> = info
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "physical id").then(|| v.trim())
        })
        .collect();
    json!({
        "model_name": field("model name"),
        "frequency": field("cpu MHz"),
        "count": count,
        "architecture": std::env::consts::ARCH,
        "flags": field("flags").map(|f| f.split_whitespace().map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default(),
        "socket_count": sockets.len().max(1),
    })
}

fn memory(proc_dir: &Path) -> Value {
    let info = std::fs::read_to_string(proc_dir.join("meminfo")).unwrap_or_default();
    let total_kib: Option<u64> = info.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    });
    let total = total_kib.map(|k| k * 1024);
    json!({
        "total": total,
        // What the machine has, rounded up to a GiB as DMI would report it.
        "physical_mb": total.map(|t| t.div_ceil(1 << 30) * 1024),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_has_ipas_shape() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        std::fs::create_dir_all(net.join("eth0")).unwrap();
        std::fs::write(net.join("eth0/address"), "52:54:00:AA:00:01\n").unwrap();
        std::fs::write(net.join("eth0/carrier"), "1\n").unwrap();
        std::fs::write(net.join("eth0/speed"), "1000\n").unwrap();
        let proc_dir = dir.path().join("proc");
        std::fs::create_dir_all(&proc_dir).unwrap();
        std::fs::write(
            proc_dir.join("cpuinfo"),
            "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\nflags\t\t: fpu vme\n\nprocessor\t: 1\nphysical id\t: 0\n",
        )
        .unwrap();
        std::fs::write(proc_dir.join("meminfo"), "MemTotal:        2000000 kB\n").unwrap();
        let sources = Sources {
            sys_class_net: net,
            sys_block: dir.path().join("none"),
            dev_dir: PathBuf::from("/dev"),
            proc_dir,
            dmi: dir.path().join("dmi"),
            efi: dir.path().join("efi"),
            cmdline: "root=/dev/ram0 BOOTIF=01-52-54-00-aa-00-01".into(),
        };
        let posted = collect(&sources);
        let inventory = &posted["inventory"];
        assert_eq!(
            inventory["interfaces"][0]["mac_address"],
            "52:54:00:aa:00:01"
        );
        assert_eq!(inventory["interfaces"][0]["has_carrier"], true);
        assert_eq!(inventory["interfaces"][0]["speed_mbps"], 1000);
        assert_eq!(inventory["cpu"]["count"], 2);
        assert_eq!(inventory["cpu"]["model_name"], "Test CPU");
        assert_eq!(inventory["cpu"]["flags"], json!(["fpu", "vme"]));
        assert_eq!(inventory["memory"]["total"], 2_048_000_000_u64);
        assert_eq!(inventory["memory"]["physical_mb"], 2048);
        assert_eq!(inventory["boot"]["current_boot_mode"], "bios");
        assert_eq!(inventory["boot"]["pxe_interface"], "52:54:00:aa:00:01");
        assert_eq!(posted["boot_interface"], "52:54:00:aa:00:01");
        assert_eq!(inventory["disks"], json!([]));
    }
}
