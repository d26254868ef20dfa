//! Exhaustion and permissions (issue #8): a full `/dev/shm`, names taken
//! by someone else, segments of the wrong mode or owner, dangling
//! symlinks, and a segment file truncated under a live mapping.
//!
//! What is promised, and asserted here:
//! - Creating a segment that does not fit is `OpenError::NoSpace` (pages
//!   are reserved with `posix_fallocate` at creation), never a `SIGBUS` on
//!   first touch, and leaves no file and no pages behind. A segment created
//!   while there was room keeps working when the file system fills up.
//! - A name that is someone else's file, a segment owned by another user,
//!   one this user may not open, or a symlink is refused with a typed error
//!   that names the path.
//! - A file truncated under a live mapping is refused by every new open
//!   (and by `inspect`), which validate its size against the header.
//! - A segment in a hugetlbfs directory (`Options::dir`) is sized in whole
//!   huge pages (hugetlbfs refuses any other length), works, and is
//!   `NoSpace` when the huge pages run out.
//!
//! What is *not* promised: a process still mapping a truncated segment gets
//! `SIGBUS` from the kernel as soon as it touches a page past the new end
//! of file (the slot area). The library cannot prevent that short of a
//! `SIGBUS` handler; the test only checks that a live handle which does not
//! touch the slots (its drop touches the first page only) is unharmed.
//!
//! Tests that need root (a private tmpfs, `chown`, another uid) print why
//! they are skipped and pass when not run as root.

mod common;

use common::{Scratch, Shm, TIMEOUT, spawn, spawn_via};
use shmlane::{ByteProducer, Consumer, LayoutError, MpmcConsumer, OpenError, Options, Producer};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "tiny_shm" => tiny_shm(),
        "open_as_nobody" => open_as_nobody(),
        "hold_consumer" => hold_consumer(),
        "huge_pages" => huge_pages(),
        other => panic!("unknown child role {other}"),
    }
}

/// Size of the private tmpfs mounted on `/dev/shm` for the full-disk test.
const TINY_FS: u64 = 256 * 1024;
/// An SPSC segment of `u64`s: 16-byte slots after the 4096-byte header page.
fn u64_segment_len(capacity: u64) -> u64 {
    4096 + capacity * 16
}

fn quick() -> Options {
    Options::new().ready_timeout(Duration::from_millis(50))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn nobody() -> Option<nix::unistd::User> {
    nix::unistd::User::from_name("nobody").ok().flatten()
}

/// The command that runs `sh -c` in a private mount namespace with a
/// 256 KiB tmpfs on `/dev/shm`.
fn in_tiny_dev_shm(script: &str) -> Command {
    let mut cmd = Command::new("unshare");
    let mount = format!("mount -t tmpfs -o size={}k shmlane-tiny /dev/shm && {script}", TINY_FS / 1024);
    cmd.args(["-m", "--propagation", "private", "sh", "-c"]).arg(mount);
    cmd
}

/// Why the full-disk test cannot run here, if it cannot.
fn no_private_tmpfs() -> Option<String> {
    if !is_root() {
        return Some("not root (mounting a tmpfs needs it)".to_owned());
    }
    let probe = in_tiny_dev_shm("true").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    match probe {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(status) if !status.success() => Some(format!("unshare -m + mount tmpfs failed ({status})")),
        Ok(_) => None,
    }
}

/// A full `/dev/shm`: creation fails with `NoSpace` (never `SIGBUS`), and
/// leaves nothing behind. Runs in a child with a private 256 KiB tmpfs on
/// `/dev/shm`, so the real one is never filled.
#[test]
fn full_dev_shm_is_no_space_never_sigbus() {
    if let Some(why) = no_private_tmpfs() {
        eprintln!("skipped: {why}");
        return;
    }
    let child = spawn_via("tiny_shm", &[], |exe, args| {
        let mut cmd = in_tiny_dev_shm(r#"exec "$0" "$@""#);
        cmd.arg(exe).args(args);
        cmd
    });
    // A normal exit: every failure was a typed error, no signal.
    child.wait_ok(TIMEOUT);
}

fn statvfs_bytes(available: bool) -> u64 {
    let s = nix::sys::statvfs::statvfs(shmlane::SHM_DIR).expect("statvfs /dev/shm");
    let blocks = if available { s.blocks_available() } else { s.blocks() };
    blocks as u64 * s.fragment_size() as u64
}

#[track_caller]
fn assert_no_space(shm: &Shm, result: Result<(), OpenError>, len: u64) {
    let err = result.expect_err("creation fitted a full file system");
    match &err {
        OpenError::NoSpace { path, len_bytes } => assert_eq!((path, *len_bytes), (&shm.path(), len)),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    // Says what and where, and what to do.
    let text = err.to_string();
    for part in [shm.path().to_str().expect("utf-8"), "free space", "smaller capacity"] {
        assert!(text.contains(part), "{text:?} does not mention {part:?}");
    }
    shm.assert_gone();
}

/// Child, inside the private namespace.
fn tiny_shm() {
    let total = statvfs_bytes(false);
    assert!(total <= TINY_FS, "/dev/shm has {total} bytes: not the private tmpfs, refusing to fill it");

    // Larger than the whole file system, every flavor.
    let big = Shm::new("big");
    let free = statvfs_bytes(true);
    let capacity = 1 << 16;
    assert_no_space(
        &big,
        Producer::<u64>::create(&big.name, Options::new().capacity(capacity)).map(drop),
        u64_segment_len(capacity),
    );
    assert_no_space(
        &big,
        ByteProducer::create(&big.name, Options::new().capacity(1 << 20)).map(drop),
        4096 + (1 << 20),
    );
    assert_no_space(
        &big,
        MpmcConsumer::<u64>::create(&big.name, Options::new().capacity(capacity)).map(drop),
        u64_segment_len(capacity),
    );
    assert_eq!(statvfs_bytes(true), free, "a failed creation kept pages");

    // A segment created while there was room...
    let small = Shm::new("small");
    let mut tx = Producer::<u64>::create(&small.name, Options::new().capacity(512)).expect("fits");
    let mut rx = Consumer::<u64>::open(&small.name, Options::new()).expect("open");
    // ...then someone fills the file system up.
    let filler = Shm::new("filler");
    let filler_len = fill(&filler);
    assert!(statvfs_bytes(true) < 4096, "the file system is not full");
    // Its pages were reserved at creation: touching every one of them
    // (two laps over 512 slots of 16 bytes) works, no SIGBUS.
    for i in 0..1024 {
        tx.send_timeout(i, TIMEOUT).expect("send on a full file system");
        assert_eq!(rx.recv_timeout(TIMEOUT).expect("recv on a full file system"), i);
    }

    // Even a small segment fails now, and leaves nothing behind.
    let tiny = Shm::new("tiny");
    let create_tiny = || Producer::<u64>::create(&tiny.name, Options::new().capacity(16)).map(drop);
    assert_no_space(&tiny, create_tiny(), u64_segment_len(16));
    // One page free, two needed: the first page reserved must be given back.
    std::fs::OpenOptions::new()
        .write(true)
        .open(filler.path())
        .and_then(|f| f.set_len(filler_len / 4096 * 4096 - 4096))
        .expect("shrink the filler");
    let free = statvfs_bytes(true);
    assert!((4096..8192).contains(&free), "{free} bytes free");
    assert_no_space(&tiny, create_tiny(), u64_segment_len(16));
    assert_eq!(statvfs_bytes(true), free, "a failed creation kept pages");

    // Room again: it works.
    std::fs::remove_file(filler.path()).expect("remove the filler");
    create_tiny().expect("fits again");
    tiny.assert_gone();
    drop((tx, rx));
    small.assert_gone();
    big.assert_gone();
}

/// Writes `shm`'s file until the file system is full; returns its length.
fn fill(shm: &Shm) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(shm.path()).expect("create the filler");
    let page = [0x5Au8; 4096];
    let mut len = 0;
    for _ in 0..=TINY_FS / 4096 {
        match file.write(&page) {
            Ok(n) => len += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return len,
            Err(e) => panic!("writing the filler: {e}"),
        }
    }
    panic!("wrote {len} bytes to a {TINY_FS}-byte file system without ENOSPC");
}

/// A name that is someone else's file: creating refuses to take it over,
/// opening refuses another user's file. A segment of ours whose owner was
/// changed is refused the same way.
#[test]
fn another_users_file_or_segment_is_refused() {
    let Some(nobody) = nobody().filter(|_| is_root()) else {
        eprintln!("skipped: needs root and a user `nobody` to chown files");
        return;
    };
    let uid = nobody.uid.as_raw();
    let shm = Shm::new("foreign_file");
    let theirs = vec![0x5Au8; 8192];
    std::fs::write(shm.path(), &theirs).expect("write file");
    std::os::unix::fs::chown(shm.path(), Some(uid), Some(nobody.gid.as_raw())).expect("chown");
    for result in [
        Producer::<u64>::create(&shm.name, Options::new()).map(drop),
        ByteProducer::create(&shm.name, Options::new()).map(drop),
        MpmcConsumer::<u64>::create(&shm.name, Options::new()).map(drop),
    ] {
        match result {
            Err(OpenError::AlreadyExists { path }) => assert_eq!(path, shm.path()),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
    }
    let meta = std::fs::metadata(shm.path()).expect("stat");
    assert_eq!((meta.uid(), std::fs::read(shm.path()).expect("read")), (uid, theirs), "their file was changed");
    let err = Consumer::<u64>::open(&shm.name, quick()).expect_err("opened another user's file");
    assert_foreign(&err, &shm, uid);
    // Asked to allow other owners, it is still checked: not a segment.
    match Consumer::<u64>::open(&shm.name, quick().allow_foreign_owner(true)) {
        Err(OpenError::Layout { source: LayoutError::BadMagic { found: 0x5A5A_5A5A_5A5A_5A5A }, path }) => {
            assert_eq!(path, shm.path());
        }
        other => panic!("expected Layout(BadMagic), got {other:?}"),
    }
    std::fs::remove_file(shm.path()).expect("remove");
    shm.assert_gone();

    // Our own segment, given away while in use (wrong uid).
    let mut tx = Producer::<u64>::create(&shm.name, Options::new().capacity(4)).expect("create");
    tx.send(7).expect("send");
    std::os::unix::fs::chown(shm.path(), Some(uid), None).expect("chown");
    let err = Consumer::<u64>::open(&shm.name, quick()).expect_err("opened a segment owned by another user");
    assert_foreign(&err, &shm, uid);
    let mut rx = Consumer::<u64>::open(&shm.name, quick().allow_foreign_owner(true)).expect("allowed");
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("recv"), 7);
    drop((tx, rx));
    shm.assert_gone();
}

#[track_caller]
fn assert_foreign(err: &OpenError, shm: &Shm, uid: u32) {
    match err {
        OpenError::ForeignOwner { path, owner, us } => assert_eq!((path, *owner, *us), (&shm.path(), uid, 0)),
        other => panic!("expected ForeignOwner, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(shm.path().to_str().expect("utf-8")) && text.contains(&uid.to_string()), "{text}");
}

/// Creation sets exactly the mode asked for (the umask does not narrow it),
/// and another user is refused by each mode in its own way.
///
/// Not refused, by design of v1: a segment *we* own with a group- or
/// world-writable mode. Any local user may then write into it, i.e. act as
/// a hostile peer (see `hostile/`: typed errors, no crash). `mode(0o666)`
/// is how two users share a segment (with `allow_foreign_owner`).
#[test]
fn other_users_are_refused_by_mode_and_owner() {
    let Some(nobody) = nobody().filter(|_| is_root()) else {
        eprintln!("skipped: needs root and a user `nobody` to open as another user");
        return;
    };
    let segments: Vec<(Shm, u32)> =
        [("mode_600", 0o600), ("mode_644", 0o644), ("mode_666", 0o666)].map(|(n, m)| (Shm::new(n), m)).into();
    let _handles: Vec<Producer<u64>> = segments
        .iter()
        .map(|(shm, mode)| {
            let tx = Producer::<u64>::create(&shm.name, Options::new().mode(*mode)).expect("create");
            let found = std::fs::metadata(shm.path()).expect("stat").permissions().mode() & 0o777;
            assert_eq!(found, *mode, "{}: mode {found:o}, asked for {mode:o}", shm.name);
            tx
        })
        .collect();
    let out = Scratch::new("modes", "out");
    let names = segments.iter().map(|(s, _)| s.name.clone()).collect::<Vec<_>>().join(",");
    spawn("open_as_nobody", &[("NAMES", names), ("OUT", out.arg())]).wait_ok(TIMEOUT);
    let report = std::fs::read_to_string(&out.path).expect("child report");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    let path = |i: usize| segments[i].0.path().display().to_string();
    // 0600 and 0644: shm_open(O_RDWR) fails with EACCES.
    assert_eq!(lines[0], format!("PermissionDenied {{ path: {:?} }}", path(0)));
    assert_eq!(lines[1], format!("PermissionDenied {{ path: {:?} }}", path(1)));
    // 0666: it opens, but the owner is checked before mapping.
    assert_eq!(lines[2], format!("ForeignOwner {{ path: {:?}, owner: 0, us: {} }}", path(2), nobody.uid.as_raw()));
    drop(_handles);
    for (shm, _) in &segments {
        shm.assert_gone();
    }
}

/// Child (as root): becomes `nobody`, opens each of `NAMES` as a consumer
/// and writes one line per name: the error's Debug (after checking its
/// Display names the file).
fn open_as_nobody() {
    let nobody = nobody().expect("user nobody");
    nix::unistd::setgroups(&[]).expect("setgroups");
    nix::unistd::setgid(nobody.gid).expect("setgid");
    nix::unistd::setuid(nobody.uid).expect("setuid");
    let mut lines = String::new();
    for name in common::var("NAMES").split(',') {
        let err = Consumer::<u64>::open(name, quick()).expect_err("another user's segment opened");
        let path = shmlane::segment_path(name, None).expect("name");
        assert!(err.to_string().contains(path.to_str().expect("utf-8")), "{err}");
        lines.push_str(&format!("{err:?}\n"));
    }
    std::fs::write(common::var("OUT"), lines).expect("write report");
}

/// A symlink whose target does not exist is not created through (which
/// would create a file wherever it points) and not followed, nor is one
/// whose target exists; removing the name removes the link only.
#[test]
fn dangling_symlink_is_not_created_through_or_followed() {
    let link = Shm::new("dangling");
    let target = Scratch::new("dangling", "target");
    std::os::unix::fs::symlink(&target.path, link.path()).expect("symlink");
    for result in [
        Producer::<u64>::create(&link.name, Options::new()).map(drop),
        ByteProducer::create(&link.name, Options::new()).map(drop),
        MpmcConsumer::<u64>::create(&link.name, Options::new()).map(drop),
    ] {
        match result {
            Err(OpenError::AlreadyExists { path }) => assert_eq!(path, link.path()),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert!(!target.path.exists(), "created a file through a dangling symlink");
    }
    let open_link = || Consumer::<u64>::open(&link.name, quick()).map(drop);
    assert!(matches!(open_link(), Err(OpenError::NotAFile { path }) if path == link.path()));
    // With a target that exists, and somebody's data in it.
    std::fs::write(&target.path, [7u8; 8192]).expect("write target");
    assert!(matches!(open_link(), Err(OpenError::NotAFile { path }) if path == link.path()));
    assert!(matches!(shmlane::inspect(&link.path()), Err(OpenError::NotAFile { .. })));
    shmlane::remove(&link.name, None).expect("remove the link");
    link.assert_gone();
    assert_eq!(std::fs::read(&target.path).expect("target still there"), [7u8; 8192]);
}

/// Child: opens the consumer, receives the three messages waiting, then
/// waits (without touching the mapping) until told to leave.
fn hold_consumer() {
    let mut rx = Consumer::<u64>::open(&common::var("NAME"), Options::new()).expect("open consumer");
    for i in 0..3 {
        assert_eq!(rx.recv_timeout(TIMEOUT).expect("recv"), i);
    }
    std::fs::write(common::var("READY"), b"").expect("write marker");
    let leave = std::path::PathBuf::from(common::var("LEAVE"));
    common::wait_until("the parent to let us go", TIMEOUT, || leave.exists());
    // Dropping touches only the first page (lock byte 513, the doorbell at
    // 400), which the truncated file still covers.
    drop(rx);
}

/// A segment truncated while a consumer maps it: every new open and
/// `inspect` refuse it; the live consumer, which does not touch the slot
/// area again, leaves normally.
#[test]
fn truncated_under_a_live_mapping_is_refused_on_open() {
    let shm = Shm::new("truncated_live");
    let ready = Scratch::new("truncated_live", "ready");
    let leave = Scratch::new("truncated_live", "leave");
    let len = u64_segment_len(16);
    {
        let mut tx = Producer::<u64>::create(&shm.name, Options::new().capacity(16).keep(true)).expect("create");
        (0..3).for_each(|i| tx.send(i).expect("send"));
    }
    let child = spawn("hold_consumer", &[("NAME", shm.name.clone()), ("READY", ready.arg()), ("LEAVE", leave.arg())]);
    common::wait_until("the consumer to read", TIMEOUT, || ready.path.exists());
    let truncate = |to: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(shm.path())
            .and_then(|f| f.set_len(to))
            .expect("truncate the segment file");
    };

    // Down to the header page: the header's total length gives it away.
    truncate(4096);
    let opens = || {
        [
            Consumer::<u64>::open(&shm.name, quick()).map(drop),
            Producer::<u64>::open(&shm.name, quick()).map(drop),
            shmlane::inspect(&shm.path()).map(drop),
        ]
    };
    for result in opens() {
        match result {
            Err(OpenError::Layout { source: LayoutError::BadTotalLength { header, needed, region }, path }) => {
                assert_eq!((path, header, needed, region), (shm.path(), len, len, 4096));
            }
            other => panic!("expected Layout(BadTotalLength), got {other:?}"),
        }
    }
    let listed = shmlane::list(None);
    let (_, entry) = listed.iter().find(|(p, _)| *p == shm.path()).expect("list shows it");
    assert!(entry.is_err(), "list took a truncated segment for a valid one");

    // Smaller than a header page: refused before mapping.
    truncate(2048);
    for result in opens() {
        match result {
            Err(OpenError::BadSize { path, len_bytes }) => assert_eq!((path, len_bytes), (shm.path(), 2048)),
            other => panic!("expected BadSize, got {other:?}"),
        }
    }

    std::fs::write(&leave.path, b"").expect("write marker");
    // Exits normally: no SIGBUS for a handle that stays off the slots.
    child.wait_ok(TIMEOUT);
    shmlane::remove(&shm.name, None).expect("remove");
    shm.assert_gone();
}

/// A `/proc/meminfo` figure (huge page counts, or kB).
fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The command that mounts a hugetlbfs on `dir` in a private mount
/// namespace, then runs `script` there.
fn with_hugetlbfs(dir: &str, script: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("mount -t hugetlbfs shmlane-huge {dir} && {script}"));
    cmd
}

/// Segments in a hugetlbfs directory: sized in whole huge pages, usable
/// from both sides, refused with `NoSpace` (not `SIGBUS`) once the huge
/// pages run out. Needs root (to mount) and two free huge pages (`.ci/run`
/// reserves some: `echo 4 > /proc/sys/vm/nr_hugepages`).
#[test]
fn hugetlbfs_segments_are_whole_huge_pages() {
    let free = meminfo("HugePages_Free:").unwrap_or(0);
    let why = if !is_root() {
        Some("not root (mounting hugetlbfs needs it)".to_owned())
    } else if free < 2 {
        Some(format!("{free} free huge pages (echo 4 > /proc/sys/vm/nr_hugepages)"))
    } else {
        None
    };
    if let Some(why) = why {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("shmlane-it-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mount point");
    let dir_arg = dir.to_str().expect("utf-8 temp dir").to_owned();
    let child = spawn_via("huge_pages", &[("HUGE_DIR", dir_arg.clone())], |exe, args| {
        let mut cmd = with_hugetlbfs(&dir_arg, r#"exec "$0" "$@""#);
        cmd.arg(exe).args(args);
        cmd
    });
    child.wait_ok(TIMEOUT);
    let _ = std::fs::remove_dir(&dir);
}

/// Child, with a hugetlbfs mounted on `HUGE_DIR`.
fn huge_pages() {
    let dir = std::path::PathBuf::from(common::var("HUGE_DIR"));
    let page = meminfo("Hugepagesize:").expect("Hugepagesize") * 1024;
    let opts = || quick().dir(&dir);

    // 1024 u64s need 20 KiB: the file is one whole huge page, and works.
    let mut tx = Producer::<u64>::create("huge-spsc", opts().capacity(1024)).expect("create in hugetlbfs");
    let path = dir.join("huge-spsc");
    assert_eq!(std::fs::metadata(&path).expect("segment file").len(), page, "not rounded to the huge page");
    let mut rx = Consumer::<u64>::open("huge-spsc", opts()).expect("open in hugetlbfs");
    for i in 0..5000u64 {
        tx.send(i).expect("send");
        assert_eq!(rx.recv().expect("recv"), i);
    }
    let info = shmlane::inspect(&path).expect("inspect");
    assert_eq!(info.len_bytes, page);
    drop((tx, rx));
    assert!(!path.exists(), "the creator unlinks on drop");

    // More than the free huge pages: NoSpace at creation, nothing left.
    let free = meminfo("HugePages_Free:").expect("HugePages_Free");
    let capacity = (free + 1) * page;
    match ByteProducer::create("huge-big", opts().capacity(capacity)) {
        Err(OpenError::NoSpace { path, .. }) => assert!(!path.exists(), "{} left behind", path.display()),
        other => panic!("expected NoSpace with {free} free huge pages, got {other:?}"),
    }
}
