//! `tidemark status` on a live backup: the real snapshotter records the backup's freshness in
//! its health record, and the CLI judges it. A writer that stops turns the backup red.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidemark_tests::live_backup::{Backup, PREFIX, now_ms};

fn status(backup: &Backup) -> (i32, Value) {
    let output = Command::new(backup.stack.binary("tidemark"))
        .args(["-o", "json", "status", "--stale-after-minutes", "15"])
        .env("TIDEMARK_BUCKET", &backup.storage.bucket)
        .env("TIDEMARK_TABLE", &backup.storage.table)
        .env("TIDEMARK_PREFIX", PREFIX)
        .env("TIDEMARK_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_ENDPOINT_URL", &backup.stack.aws_endpoint)
        .output()
        .expect("running tidemark");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let parsed = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), parsed)
}

fn record(partition: i64, n: i64) -> Value {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(format!("payment {n}"));
    json!({"partition": partition, "timestamp": now_ms(), "key": null, "value": value, "headers": []})
}

#[tokio::test(flavor = "multi_thread")]
async fn status_goes_red_naming_the_stalled_partitions_when_the_writer_stops() {
    let mut backup = Backup::start("payments.status", 2).await;
    backup.produce_and_back_up((0..40).map(|n| record(n % 2, n)).collect());
    // The stall check counts a partition stalled when its checkpoint has not moved for 1 s
    // while records wait.
    let stall = [("TIDEMARK_STALL_AFTER_SECONDS", "1")];
    backup.snapshot_with("none", &stall).await;
    let (code, healthy) = status(&backup);
    assert_eq!(code, 0, "{healthy:#}");
    let first = &healthy["backups"][0];
    assert_eq!(first["backup_id"], backup.backup_id.as_str());
    assert_eq!(
        first["health"]["freshness"]["records_behind"], 0,
        "{first:#}"
    );
    assert_eq!(first["health"]["freshness"]["stalled_count"], 0);
    assert_eq!(first["rpo_now_ms"], 0);
    assert_eq!(
        first["level"], "amber",
        "never validated nor drilled: {first:#}"
    );

    // The writer stops (its event source is gone) while the topic goes on.
    backup.stop_bridge();
    let stopped = Instant::now();
    backup.stack.produce(
        &backup.topic,
        &json!((0..10).map(|n| record(n % 2, n)).collect::<Vec<_>>()),
    );
    // The checkpoints are then older than the 1 s stall threshold by construction.
    while stopped.elapsed() < Duration::from_millis(1_200) {
        std::thread::sleep(Duration::from_millis(100));
    }
    backup.snapshot_with("none", &stall).await;
    let (code, red) = status(&backup);
    assert_eq!(code, 1, "red exits 1: {red:#}");
    assert_eq!(red["level"], "red");
    let backup_status = &red["backups"][0];
    assert_eq!(backup_status["health"]["freshness"]["records_behind"], 10);
    assert_eq!(backup_status["health"]["freshness"]["stalled_count"], 2);
    let reasons: Vec<&str> = backup_status["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|reason| reason.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|reason| reason.starts_with("2 partitions stalled")
                && reason.contains(&backup.topic)),
        "{reasons:?}"
    );
}
