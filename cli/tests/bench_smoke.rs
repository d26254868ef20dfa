//! `shmlane bench --quick --json` runs, and every line is a well-formed
//! record; every transport x mode x size of `--list` appears, and every
//! fan-out flavour x readers. Not a speed test.

use std::collections::BTreeSet;
use std::process::Command;

const SIZES: [u64; 3] = [64, 1024, 65536];
const REQUIRED: [&str; 8] = ["transport", "mode", "size", "p50_ns", "p99_ns", "p999_ns", "msgs_per_s", "bytes_per_s"];
const FANOUT_FLAVORS: [&str; 2] = ["shmlane-broadcast", "shmlane-spsc"];
const FANOUT_READERS: [u64; 3] = [1, 2, 4];

fn shmlane(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shmlane")).args(args).output().expect("run shmlane");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (transport, mode, size) the run must produce, from `bench --list`.
fn expected() -> BTreeSet<(String, String, u64)> {
    let (ok, list, err) = shmlane(&["bench", "--list"]);
    assert!(ok, "bench --list failed: {err}");
    let mut want = BTreeSet::new();
    for line in list.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "bad --list line {line:?}");
        if cols[1] == "fanout" {
            // Its rows are flavour x readers, checked on their own.
            continue;
        }
        let sizes: Vec<u64> = if cols[3] == "all" { SIZES.to_vec() } else { vec![cols[3].parse().expect("size")] };
        for mode in cols[2].split(',') {
            for &size in &sizes {
                want.insert((cols[0].to_owned(), mode.to_owned(), size));
            }
        }
    }
    for name in
        ["pipe", "pipe-spin", "unix", "unix-spin", "tcp", "tcp-spin", "core-to-core", "memcpy", "cross-core-copy"]
    {
        assert!(want.iter().any(|w| w.0 == name), "{name} missing from --list");
    }
    want
}

#[test]
fn quick_json_run() {
    let want = expected();
    let (ok, stdout, stderr) = shmlane(&["bench", "--quick", "--json", "--no-progress"]);
    assert!(ok, "bench --quick --json failed:\n{stderr}");
    let mut seen = BTreeSet::new();
    let mut fanout = BTreeSet::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
        for key in REQUIRED {
            assert!(obj.contains_key(key), "{key} missing: {line}");
        }
        if obj["kind"] == "fanout" {
            assert_eq!(obj["mode"], "fanout", "{line}");
            assert_eq!(obj["size"], 64, "{line}");
            for key in ["msgs_per_s", "lost_fraction", "p50_ns", "p99_ns"] {
                assert!(obj[key].is_number(), "{key} missing in a fan-out record: {line}");
            }
            assert!(obj["error"].is_null(), "fan-out failed: {line}");
            let key =
                (obj["transport"].as_str().expect("transport").to_owned(), obj["readers"].as_u64().expect("readers"));
            assert!(fanout.insert(key), "duplicate record: {line}");
            continue;
        }
        let transport = obj["transport"].as_str().expect("transport is a string").to_owned();
        let mode = obj["mode"].as_str().expect("mode is a string").to_owned();
        assert!(mode == "rtt" || mode == "stream", "mode {mode}");
        let size = obj["size"].as_u64().expect("size is an integer");
        for key in &REQUIRED[3..] {
            assert!(obj[*key].is_null() || obj[*key].is_number(), "{key} is neither a number nor null: {line}");
        }
        let figures = if mode == "rtt" { &REQUIRED[3..6] } else { &REQUIRED[6..8] };
        for key in figures {
            assert!(obj[*key].is_number(), "{key} missing in a {mode} record: {line}");
        }
        assert!(seen.insert((transport, mode, size)), "duplicate record: {line}");
    }
    let missing: Vec<_> = want.difference(&seen).collect();
    assert!(missing.is_empty(), "missing records: {missing:?}");
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(extra.is_empty(), "unexpected records: {extra:?}");
    let want_fanout: BTreeSet<(String, u64)> =
        FANOUT_FLAVORS.iter().flat_map(|f| FANOUT_READERS.iter().map(|&n| ((*f).to_owned(), n))).collect();
    assert_eq!(fanout, want_fanout, "fan-out records");
}
