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
