//! `shmlane ls`, `inspect` and `clean` against live, dead, corrupt and
//! foreign files, in a private directory so parallel tests and other users
//! of /dev/shm are never touched.

use shmlane::{Options, Producer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn dir(test: &str) -> PathBuf {
    let d = Path::new("/dev/shm").join(format!("shmlane-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).expect("test dir in /dev/shm");
    d
}

fn shmlane(args: &[&str], dir: &Path) -> (i32, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_shmlane")).args(args).arg("--dir").arg(dir).output().expect("run shmlane");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn age(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
}

#[test]
fn ls_inspect_and_clean_tell_live_dead_corrupt_and_foreign_apart() {
    let d = dir("all");
    let opts = || Options::new().dir(&d).capacity(8);
    // Live: a producer held by this process.
    let mut live = Producer::<u64>::create("live", opts()).unwrap();
    live.try_send(1).unwrap();
    // Dead: created, kept, and its only handle gone.
    drop(Producer::<u64>::create("dead", opts().keep(true)).unwrap());
    // Corrupt: our magic, garbage after it, old enough to be nobody's work in progress.
    let mut corrupt = b"SHMLANE\0".to_vec();
    corrupt.resize(8192, 0xee);
    std::fs::write(d.join("corrupt"), &corrupt).unwrap();
    age(&d.join("corrupt"));
    // Foreign: not ours.
    std::fs::write(d.join("foreign"), b"not a segment").unwrap();
    age(&d.join("foreign"));

    let (code, out) = shmlane(&["ls", "--json"], &d);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "live, dead and corrupt are ours; foreign is not listed: {out}");
    let line = |name: &str| *lines.iter().find(|l| l.contains(&format!("\"name\":\"{name}\""))).unwrap();
    assert!(line("live").contains("\"producer\":\"alive\"") && line("live").contains("\"fill\":1"), "{out}");
    assert!(line("dead").contains("\"producer\":\"dead\""), "{out}");
    assert!(line("corrupt").contains("\"valid\":false"), "{out}");

    let (code, text) = shmlane(&["inspect", "live"], &d);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid shmlane segment") && text.contains("producer  alive"), "{text}");
    let (code, text) = shmlane(&["inspect", "corrupt"], &d);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("invalid"), "{text}");
    let (code, text) = shmlane(&["inspect", "foreign"], &d);
    assert_eq!(code, 1, "{text}");
    let (code, _) = shmlane(&["inspect", "missing"], &d);
    assert_eq!(code, 2);

    let (code, text) = shmlane(&["clean", "--dry-run"], &d);
    assert_eq!(code, 0);
    assert!(text.contains("dead") && text.contains("corrupt") && !text.contains("live"), "{text}");
    assert!(d.join("dead").exists(), "dry run removes nothing");

    let (code, text) = shmlane(&["clean"], &d);
    assert_eq!(code, 0, "{text}");
    assert!(!d.join("dead").exists() && !d.join("corrupt").exists(), "{text}");
    assert!(d.join("live").exists(), "a live segment is never removed");
    assert!(d.join("foreign").exists(), "a file that is not ours is never touched");

    drop(live);
    assert!(!d.join("live").exists(), "the creator unlinks on drop");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ls_counts_broadcast_readers_and_clean_keeps_a_live_writer() {
    use shmlane::{BroadcastConsumer, BroadcastProducer};
    let d = dir("broadcast");
    let opts = || Options::new().dir(&d).capacity(8);
    let mut tx = BroadcastProducer::<u64>::create("feed", opts()).unwrap();
    let readers: Vec<_> = (0..3).map(|_| BroadcastConsumer::<u64>::open("feed", opts()).unwrap()).collect();
    tx.send(7);
    let (code, out) = shmlane(&["ls", "--json"], &d);
    assert_eq!(code, 0);
    assert!(out.contains("\"flavor\":\"broadcast\"") && out.contains("\"consumer\":\"alive×3\""), "{out}");
    assert!(out.contains("\"producer\":\"alive\"") && out.contains("\"lag\":null"), "{out}");
    drop(readers);
    let (_, out) = shmlane(&["ls", "--json"], &d);
    assert!(out.contains("\"consumer\":\"dead\""), "{out}");
    let (code, text) = shmlane(&["clean"], &d);
    assert_eq!(code, 0, "{text}");
    assert!(d.join("feed").exists(), "a segment with a live writer is never removed");
    drop(tx);
    assert!(!d.join("feed").exists(), "the creator unlinks on drop");
    std::fs::remove_dir_all(&d).unwrap();
}
