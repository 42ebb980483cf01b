//! The scale run in miniature (`ferric-bench scale`, 500 machines): real
//! `ferric` processes embedded and distributed (3 conductors on the
//! machine's PostgreSQL and RabbitMQ), `ferric-sim` with Redfish and IPMI
//! BMCs and a simulated agent per machine booted from the network. Every
//! node must be enrolled, swept, managed, provided and deployed with no
//! error, every agent must have streamed and hashed the image, and the
//! report must hold every figure. Speed is not asserted: it is for the
//! bench to print (the README has the 10,000-node figures).

use serde_json::Value;

const NODES: u64 = 500;
const IMAGE_KIB: u64 = 64;

#[tokio::test]
async fn five_hundred_machines_deploy_through_both_modes_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scale.json");
    let pg = std::env::var("TEST_FERRIC_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferric-bench"))
        .args(["scale", "--nodes", &NODES.to_string()])
        .args(["--modes", "embedded,distributed", "--conductors", "3"])
        .args(["--write-secs", "3", "--agent-boot-secs", "0.5"])
        .args(["--image-kib", &IMAGE_KIB.to_string()])
        .args(["--sweep-interval-secs", "3", "--read-rate", "50"])
        .args(["--timeout-secs", "300", "--shard", "250"])
        .args(["--ferric", env!("CARGO_BIN_EXE_ferric")])
        .args(["--sim", env!("CARGO_BIN_EXE_ferric-sim")])
        .args(["--database-url", &pg])
        .args(["--amqp-url", &crate::helpers::broker::amqp_url()])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["nodes"], NODES);
    assert_eq!(report["ipmi"], NODES / 2);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{report:#}");
    for run in runs {
        assert_eq!(run["errors"], 0, "{run:#}");
        let phases: Vec<&str> = run["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            phases,
            [
                "enroll (node + port)",
                "manage",
                "provide",
                "deploy (direct, simulated agents)"
            ]
        );
        // Both sweeps read every node.
        let sweeps = run["sweeps"].as_array().unwrap();
        assert_eq!(sweeps.len(), 2);
        for sweep in sweeps {
            assert_eq!(sweep[1], NODES, "{run:#}");
        }
        // Every machine booted its agent once, which wrote (hashed) the
        // whole image once; every node's deploy took at least the write.
        let agents = &run["simulator"]["agents"];
        assert_eq!(agents["started"], NODES, "{agents}");
        assert_eq!(agents["images_written"], NODES, "{agents}");
        assert_eq!(agents["image_bytes"], NODES * IMAGE_KIB * 1024);
        assert_eq!(agents["commands_failed"], 0);
        assert_eq!(run["simulator"]["bmcs"], NODES);
        // Deployed machines run from disk: powered on, no agent.
        assert_eq!(run["simulator"]["powered_on"], NODES);
        let e2e = &run["deploy_end_to_end"];
        assert!(e2e["p50"].as_f64().unwrap() >= 3.0, "{e2e}");
        assert!(run["reads"].as_u64().unwrap() > 0);
        assert!(run["read_p99_ms"].as_f64().is_some());
        assert!(run["conductor_rss_mib"].as_f64().unwrap() > 0.0);
    }
    let distributed = &runs[1];
    assert_eq!(distributed["mode"], "distributed");
    assert_eq!(distributed["conductors"], 3);
    // Each deploy went through the broker and the database.
    assert!(distributed["amqp_messages_per_deploy"].as_f64().unwrap() >= 1.0);
    assert!(
        distributed["db_per_deploy"]["transactions"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    assert!(runs[0]["amqp_messages_per_deploy"].is_null());
    assert!(printed.contains("errors: 0"), "{printed}");
}
