//! Static DHCP for dnsmasq, as Ironic's `dnsmasq` DHCP provider: one host
//! file per PXE-enabled MAC in `dhcp_hostsdir` (`ironic-<mac>.conf`:
//! `<mac>,set:<tag>,set:ironic`) and the node's boot options in
//! `dhcp_optsdir` (`ironic-<uuid>.conf`: `tag:<tag>,…`). dnsmasq re-reads
//! both directories by itself. Cleaning turns each host entry into
//! `<mac>,ignore` and removes the options file, as Ironic does.
//!
//! Invariant: files are written atomically; the tag is the node's UUID, so
//! a node's entries never match another node's.

use std::path::Path;

use ferric_common::config::BootConfig;

use super::pxe::write_atomic;

fn host_file(hostsdir: &Path, mac: &str) -> std::path::PathBuf {
    hostsdir.join(format!("ironic-{mac}.conf"))
}

fn opts_file(optsdir: &Path, node_uuid: &str) -> std::path::PathBuf {
    optsdir.join(format!("ironic-{node_uuid}.conf"))
}

/// The boot options for an iPXE node: non-iPXE firmware gets the iPXE
/// binary for its boot mode, iPXE gets `boot.ipxe` over HTTP.
pub fn ipxe_options(boot: &BootConfig, uefi: bool) -> Vec<String> {
    let bootfile = if uefi {
        &boot.uefi_ipxe_bootfile_name
    } else {
        &boot.ipxe_bootfile_name
    };
    vec![
        format!("tag:!ipxe,67,{bootfile}"),
        format!("tag:ipxe,67,{}/boot.ipxe", boot.http_url),
        format!("66,{}", boot.tftp_server),
        format!("150,{}", boot.tftp_server),
        format!("255,{}", boot.tftp_server),
    ]
}

/// The boot options for a `pxe` node: the loader for its boot mode over TFTP.
pub fn pxe_options(boot: &BootConfig, uefi: bool) -> Vec<String> {
    let bootfile = if uefi {
        &boot.uefi_pxe_bootfile_name
    } else {
        &boot.pxe_bootfile_name
    };
    vec![
        format!("67,{bootfile}"),
        format!("66,{}", boot.tftp_server),
        format!("150,{}", boot.tftp_server),
        format!("255,{}", boot.tftp_server),
    ]
}

/// Writes the node's host and option files (nothing when the provider is `none`).
///
/// # Errors
/// When a file cannot be written.
pub fn update(
    boot: &BootConfig,
    node_uuid: &str,
    macs: &[String],
    options: &[String],
) -> std::io::Result<()> {
    let Some((hostsdir, optsdir)) = &boot.dnsmasq else {
        return Ok(());
    };
    let tag = node_uuid;
    let lines: String = options.iter().map(|o| format!("tag:{tag},{o}\n")).collect();
    write_atomic(&opts_file(optsdir, node_uuid), lines.as_bytes())?;
    for mac in macs {
        write_atomic(
            &host_file(hostsdir, mac),
            format!("{mac},set:{tag},set:ironic\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Stops answering the node's MACs and drops its options.
pub fn clean(boot: &BootConfig, node_uuid: &str, macs: &[String]) {
    let Some((hostsdir, optsdir)) = &boot.dnsmasq else {
        return;
    };
    for mac in macs {
        if let Err(e) = write_atomic(
            &host_file(hostsdir, mac),
            format!("{mac},ignore\n").as_bytes(),
        ) {
            tracing::warn!(node.uuid = node_uuid, %mac, error = %e, "could not write a DHCP ignore entry");
        }
    }
    let _ = std::fs::remove_file(opts_file(optsdir, node_uuid));
}
