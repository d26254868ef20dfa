//! Runs the `soak` binary with a small N over every flavor: it must report
//! nothing lost, duplicated, corrupt or reordered, and exit 0.

use std::process::Command;

#[test]
fn soak_small_n_passes_every_flavor() {
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--messages", "20000", "--timeout", "120"])
        .output()
        .expect("run the soak binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "soak failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("verdict: PASS"), "no PASS verdict:\n{stdout}");
    for flavor in ["spsc", "bytes", "mpmc", "broadcast"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(flavor) && l.ends_with(" ok")),
            "no ok row for {flavor}:\n{stdout}"
        );
    }
    // Not a terminal: no progress bar may leak into the captured output.
    assert!(stderr.is_empty(), "unexpected stderr:\n{stderr}");
}

#[test]
fn soak_json_reports_each_flavor() {
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--messages", "5000", "--flavor", "mpmc", "--json", "--no-pin"])
        .output()
        .expect("run the soak binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "soak failed ({}):\n{stdout}", out.status);
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 2, "one flavor and the verdict:\n{stdout}");
    assert_eq!(lines[0]["flavor"], "mpmc");
    assert_eq!(lines[0]["passed"], true);
    assert_eq!(lines[0]["lost"], 0);
    assert_eq!(lines[1]["verdict"], "PASS");
}

#[test]
fn soak_broadcast_every_reader_gets_all() {
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--messages", "20000", "--flavor", "broadcast", "--json", "--no-pin"])
        .output()
        .expect("run the soak binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "soak failed ({}):\n{stdout}", out.status);
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 2, "one flavor and the verdict:\n{stdout}");
    assert_eq!(lines[0]["flavor"], "broadcast");
    assert_eq!((lines[0]["producers"].as_u64(), lines[0]["consumers"].as_u64()), (Some(1), Some(2)));
    // Each reader received all of them; the writer never lapped one.
    assert_eq!(lines[0]["received"], 40_000);
    assert_eq!(lines[0]["lost"], 0);
    assert_eq!(lines[0]["passed"], true);
    assert_eq!(lines[1]["verdict"], "PASS");
}

#[test]
fn soak_catches_injected_faults() {
    // Producer 0 leaves out one message, sends one twice, corrupts one after
    // its checksum and swaps two: every flavor must count them and fail.
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--messages", "20000", "--json", "--no-pin", "--inject-faults"])
        .output()
        .expect("run the soak binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "soak passed despite injected faults:\n{stdout}");
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 5, "four flavors and the verdict:\n{stdout}");
    let names: Vec<&str> = lines[..4].iter().filter_map(|l| l["flavor"].as_str()).collect();
    assert_eq!(names, ["spsc", "bytes", "mpmc", "broadcast"]);
    for flavor in &lines[..4] {
        assert_eq!(flavor["passed"], false, "{flavor}");
        // Broadcast: every reader gets every message, so each counts them.
        let readers = if flavor["flavor"] == "broadcast" { flavor["consumers"].as_u64().expect("a count") } else { 1 };
        // The skipped one, and the corrupted one that never arrived intact.
        assert_eq!(flavor["lost"], 2 * readers, "{flavor}");
        assert_eq!(flavor["duplicated"], readers, "{flavor}");
        assert_eq!(flavor["corrupt"], readers, "{flavor}");
        // Two MPMC consumers may each get one of the swapped pair.
        let reordered = flavor["reordered"].as_u64().expect("a count");
        if flavor["flavor"] == "mpmc" {
            assert!(reordered <= 1, "{flavor}");
        } else {
            assert_eq!(reordered, readers, "{flavor}");
        }
    }
    assert_eq!(lines[4]["verdict"], "FAIL");
}
