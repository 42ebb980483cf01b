//! The config drive a deploy hands the agent, as Ironic's agent deploy
//! does (`write_image`'s `configdrive` argument): the node's
//! `instance_info.configdrive` when it is a string (a gzipped, base64
//! ISO 9660 image, or a URL the agent fetches), or, when it is a JSON
//! object (API 1.56), the OpenStack config drive built from it as Ironic's
//! `build_configdrive` builds it: `openstack/latest/meta_data.json` (with
//! the node's `uuid` and `name` unless given), `user_data`,
//! `network_data.json` and `vendor_data2.json` on an ISO labelled
//! `config-2`, gzipped and base64-encoded.
//!
//! Invariant: the config drive holds the instance's secrets; it goes only
//! to the agent, never into a log, `last_error` or a recorded step.
//! Blocking: [`build`] runs `xorriso`; call it on the blocking pool.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{Map, Value};

/// The config drive to send the agent for `instance_info`, if any.
///
/// # Errors
/// When a JSON config drive cannot be built, in words an operator acts on.
pub fn for_agent(
    instance_info: &Map<String, Value>,
    node_uuid: &str,
    node_name: Option<&str>,
    work: &Path,
) -> Result<Option<String>, String> {
    match instance_info.get("configdrive") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(contents)) => build(contents, node_uuid, node_name, work).map(Some),
        Some(other) => Err(format!(
            "instance_info configdrive must be a string or an object, not {other}"
        )),
    }
}

/// The OpenStack config drive of `contents`, gzipped and base64-encoded.
///
/// # Errors
/// When `xorriso` is missing or fails, or the work directory cannot be used.
pub fn build(
    contents: &Map<String, Value>,
    node_uuid: &str,
    node_name: Option<&str>,
    work: &Path,
) -> Result<String, String> {
    let tree = work.join("tree");
    let _ = std::fs::remove_dir_all(work);
    let result = build_in(contents, node_uuid, node_name, work, &tree);
    let _ = std::fs::remove_dir_all(work);
    result
}

fn build_in(
    contents: &Map<String, Value>,
    node_uuid: &str,
    node_name: Option<&str>,
    work: &Path,
    tree: &Path,
) -> Result<String, String> {
    let latest = tree.join("openstack").join("latest");
    std::fs::create_dir_all(&latest).map_err(|e| format!("{}: {e}", latest.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(latest.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    let mut meta = match contents.get("meta_data") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            return Err(format!(
                "configdrive meta_data must be an object, not {other}"
            ));
        }
    };
    meta.entry("uuid").or_insert_with(|| Value::from(node_uuid));
    if let Some(name) = node_name {
        meta.entry("name").or_insert_with(|| Value::from(name));
    }
    write("meta_data.json", Value::Object(meta).to_string().as_bytes())?;
    match contents.get("user_data") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => write("user_data", text.as_bytes())?,
        // As Ironic: a JSON user_data is written as JSON.
        Some(json) => write("user_data", json.to_string().as_bytes())?,
    }
    for (key, file) in [
        ("network_data", "network_data.json"),
        ("vendor_data", "vendor_data2.json"),
    ] {
        if let Some(value) = contents.get(key).filter(|v| !v.is_null()) {
            write(file, value.to_string().as_bytes())?;
        }
    }
    let iso = work.join("configdrive.iso");
    let output = Command::new("xorriso")
        .args([
            "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o",
        ])
        .arg(&iso)
        .arg(tree)
        .output()
        .map_err(|e| format!("cannot run xorriso to build the config drive: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "xorriso could not build the config drive: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let image = std::fs::read(&iso).map_err(|e| format!("{}: {e}", iso.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&image)
        .and_then(|()| gz.finish())
        .map(|zipped| base64::engine::general_purpose::STANDARD.encode(zipped))
        .map_err(|e| format!("cannot compress the config drive: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use serde_json::json;

    use super::*;

    #[test]
    fn strings_go_as_they_are_and_nothing_is_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let info = |v: Value| json!({ "configdrive": v }).as_object().unwrap().clone();
        let w = dir.path();
        assert_eq!(for_agent(&Map::new(), "u", None, w).unwrap(), None);
        assert_eq!(for_agent(&info(Value::Null), "u", None, w).unwrap(), None);
        assert_eq!(
            for_agent(&info(json!("http://x/cd.iso")), "u", None, w).unwrap(),
            Some("http://x/cd.iso".into())
        );
        assert!(for_agent(&info(json!(7)), "u", None, w).is_err());
    }

    #[test]
    fn a_json_config_drive_becomes_a_config_2_iso_with_openstacks_layout() {
        let dir = tempfile::tempdir().unwrap();
        let contents = json!({"meta_data": {"hostname": "web-1"}, "user_data": "#cloud-config\n",
                              "network_data": {"links": []}});
        let encoded = build(
            contents.as_object().unwrap(),
            "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
            Some("node-1"),
            &dir.path().join("work"),
        )
        .unwrap();
        let zipped = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let mut iso = Vec::new();
        flate2::read::GzDecoder::new(zipped.as_slice())
            .read_to_end(&mut iso)
            .unwrap();
        // The primary volume descriptor's label (ISO 9660, sector 16).
        assert_eq!(&iso[0x8000 + 1..0x8000 + 6], b"CD001");
        assert_eq!(&iso[0x8028..0x8028 + 8], b"config-2");
        let path = dir.path().join("check.iso");
        std::fs::write(&path, &iso).unwrap();
        let meta = Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&path)
            .args(["-extract", "/openstack/latest/meta_data.json"])
            .arg(dir.path().join("meta.json"))
            .output()
            .unwrap();
        assert!(meta.status.success(), "{meta:?}");
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["hostname"], "web-1");
        assert_eq!(meta["uuid"], "1be26c0b-03f2-4d2e-ae87-c02d7f33c123");
        assert_eq!(meta["name"], "node-1");
        assert!(!dir.path().join("work").exists(), "the work directory goes");
    }
}
