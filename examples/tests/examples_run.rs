//! Each example runs to completion by itself, exits 0 and leaves nothing in
//! /dev/shm. `cargo test` builds the examples next to this test's binary.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples_run-<hash> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples").join(name)
}

fn shm_entries(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn ping_pong_runs_and_cleans_up() {
    let out = Command::new(example("ping_pong")).arg("2000").output().expect("run ping_pong");
    assert!(out.status.success(), "ping_pong failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2000 round trips"), "{stdout}");
    assert!(shm_entries("ping-pong-").is_empty(), "segments left behind: {:?}", shm_entries("ping-pong-"));
}

#[test]
fn market_data_runs_and_cleans_up() {
    // 0.5 s, 2 strategies, 50,000 quotes/s through one broadcast ring.
    let out = Command::new(example("market_data")).args(["0.5", "2", "50000"]).output().expect("run market_data");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "market_data failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("feed: all 2 strategies ok"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("strategy ")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        // The ring holds 64 Ki quotes, more than the 25,000 sent: nobody lags.
        assert!(line.contains("seq ok, 0 lost to lag") && line.contains("p99.9"), "{line}");
    }
    assert!(shm_entries("market-data-").is_empty(), "segments left behind: {:?}", shm_entries("market-data-"));
}

#[test]
fn telemetry_runs_detects_the_killed_worker_and_cleans_up() {
    // 3 workers for 1 s; the collector SIGKILLs worker 2 after 0.3 s.
    let out = Command::new(example("telemetry")).args(["3", "1", "0.3"]).output().expect("run telemetry");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "telemetry failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("worker 2 died (Disconnected) after"), "{stdout}");
    assert!(stdout.contains("worker 0 finished (Disconnected) after"), "{stdout}");
    assert!(stdout.contains("worker 1 finished (Disconnected) after"), "{stdout}");
    assert!(stdout.contains("collector: all 3 rings disconnected"), "{stdout}");
    assert!(shm_entries("telemetry-").is_empty(), "segments left behind: {:?}", shm_entries("telemetry-"));
}
