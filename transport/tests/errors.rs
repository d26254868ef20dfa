//! Every way creating or opening a segment can go wrong gives its typed
//! error: taken and missing names, bad names, the wrong message type or
//! flavor, corrupt, truncated, empty and foreign files, non-files, another
//! user's segment; plus records too large, capacity 0, and what `list` and
//! `inspect` report.
//!
//! Corrupt files are written with `std::fs` at the offsets of
//! `docs/layout-v1.md` §3, never through the library.

mod common;

use common::{Rng, Shm, TIMEOUT, spawn};
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, Corruption, Flavor, LayoutError, MpmcConsumer, MpmcProducer, OpenError,
    Options, Producer, RecvError, ReserveError, RoleState,
};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "hold_producer" => {
            let _tx = Producer::<u64>::open(&common::var("NAME"), Options::new()).expect("open producer");
            common::sleep_forever()
        }
        "create_as_nobody" => create_as_nobody(),
        other => panic!("unknown child role {other}"),
    }
}

// Header field offsets (docs/layout-v1.md §3).
const MAGIC_AT: u64 = 0;
const VERSION_AT: u64 = 8;
const FLAVOR_AT: u64 = 12;
const STATE_AT: u64 = 16;
const SLOT_SIZE_AT: u64 = 20;
const CAPACITY_AT: u64 = 24;
const MSG_SIZE_AT: u64 = 32;
const MSG_ALIGN_AT: u64 = 36;
const TOTAL_LEN_AT: u64 = 48;
const SLOTS_OFFSET_AT: u64 = 56;
const READ_POS_AT: u64 = 256;
const SLOTS_AT: u64 = 4096;

/// Options for opening a file that may never become ready: fail fast.
fn quick() -> Options {
    Options::new().ready_timeout(Duration::from_millis(50))
}

fn write_at(shm: &Shm, offset: u64, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(shm.path()).expect("open segment file");
    file.write_all_at(bytes, offset).expect("write into segment file");
}

/// Creates an SPSC segment of 16 `u64`s and leaves it (creator gone, file
/// kept), so the test can damage it with nobody mapping it.
fn left_segment(shm: &Shm) -> u64 {
    drop(Producer::<u64>::create(&shm.name, Options::new().capacity(16).keep(true)).expect("create"));
    let len = std::fs::metadata(shm.path()).expect("segment file").len();
    assert_eq!(len, 4096 + 16 * 16, "SPSC segment of 16 u64s (16-byte slots)");
    len
}

/// Unwraps the `LayoutError` of an `OpenError::Layout` for `shm`.
#[track_caller]
fn layout_error<T: std::fmt::Debug>(shm: &Shm, result: Result<T, OpenError>) -> LayoutError {
    match result {
        Err(OpenError::Layout { path, source }) => {
            assert_eq!(path, shm.path());
            source
        }
        other => panic!("expected OpenError::Layout, got {other:?}"),
    }
}

#[test]
fn create_over_an_existing_name_is_already_exists() {
    let shm = Shm::new("exists");
    let tx = Producer::<u64>::create(&shm.name, Options::new()).expect("create");
    for result in [
        Producer::<u64>::create(&shm.name, Options::new()).map(drop),
        Consumer::<u64>::create(&shm.name, Options::new()).map(drop),
        ByteProducer::create(&shm.name, Options::new()).map(drop),
        MpmcConsumer::<u64>::create(&shm.name, Options::new()).map(drop),
    ] {
        match result {
            Err(OpenError::AlreadyExists { path }) => assert_eq!(path, shm.path()),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
    }
    // The failed creates did not remove the live segment.
    assert!(shm.exists());
    drop(tx);
    shm.assert_gone();

    // Someone else's plain file is not replaced either.
    std::fs::write(shm.path(), b"not ours").expect("write file");
    assert!(matches!(Producer::<u64>::create(&shm.name, Options::new()), Err(OpenError::AlreadyExists { .. })));
    assert_eq!(std::fs::read(shm.path()).expect("file still there"), b"not ours");
    std::fs::remove_file(shm.path()).expect("remove");
    shm.assert_gone();
}

#[test]
fn open_of_a_missing_name_is_not_found() {
    let shm = Shm::new("missing");
    for result in [
        Producer::<u64>::open(&shm.name, Options::new()).map(drop),
        Consumer::<u64>::open(&shm.name, Options::new()).map(drop),
        ByteConsumer::open(&shm.name, Options::new()).map(drop),
        MpmcProducer::<u64>::open(&shm.name, Options::new()).map(drop),
    ] {
        match result {
            Err(OpenError::NotFound { path }) => assert_eq!(path, shm.path()),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(matches!(shmlane::remove(&shm.name, None), Err(OpenError::NotFound { .. })));
    shm.assert_gone();
}

#[test]
fn invalid_names_are_refused() {
    let too_long = "x".repeat(shmlane::MAX_NAME_LEN + 1);
    for name in ["", "a/b", "/leading", "trailing/", ".", "..", "nul\0byte", too_long.as_str()] {
        for result in [
            Producer::<u64>::create(name, Options::new()).map(drop),
            Consumer::<u64>::open(name, Options::new()).map(drop),
            ByteProducer::create(name, Options::new()).map(drop),
            MpmcConsumer::<u64>::open(name, Options::new()).map(drop),
            shmlane::remove(name, None),
        ] {
            match result {
                Err(OpenError::InvalidName { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name:?}: expected InvalidName, got {other:?}"),
            }
        }
        assert!(shmlane::segment_path(name, None).is_err());
    }
    // The longest valid name works.
    let prefix = Shm::new("maxlen-").name.clone();
    let longest = Shm { name: format!("{prefix}{}", "x".repeat(shmlane::MAX_NAME_LEN - prefix.len())) };
    assert_eq!(longest.name.len(), shmlane::MAX_NAME_LEN);
    let tx = Producer::<u64>::create(&longest.name, Options::new()).expect("longest name");
    drop(Consumer::<u64>::open(&longest.name, Options::new()).expect("open longest name"));
    drop(tx);
    longest.assert_gone();
}

#[test]
fn wrong_message_type_is_message_mismatch() {
    let shm = Shm::new("wrong_type");
    let tx = Producer::<u64>::create(&shm.name, Options::new()).expect("create");
    // Other size.
    assert_eq!(
        layout_error(&shm, Consumer::<[u32; 4]>::open(&shm.name, Options::new())),
        LayoutError::MessageMismatch { expected_size: 16, expected_align: 4, found_size: 8, found_align: 8 }
    );
    // Same size, other alignment.
    assert_eq!(
        layout_error(&shm, Consumer::<[u8; 8]>::open(&shm.name, Options::new())),
        LayoutError::MessageMismatch { expected_size: 8, expected_align: 1, found_size: 8, found_align: 8 }
    );
    drop(tx);

    let rx = MpmcConsumer::<u32>::create(&shm.name, Options::new()).expect("create mpmc");
    assert!(matches!(
        layout_error(&shm, MpmcProducer::<u64>::open(&shm.name, Options::new())),
        LayoutError::MessageMismatch { expected_size: 8, found_size: 4, .. }
    ));
    drop(rx);
    shm.assert_gone();
}

#[test]
fn wrong_flavor_is_flavor_mismatch() {
    let shm = Shm::new("wrong_flavor");
    let spsc = Producer::<u64>::create(&shm.name, Options::new()).expect("create spsc");
    assert_eq!(
        layout_error(&shm, MpmcConsumer::<u64>::open(&shm.name, Options::new())),
        LayoutError::FlavorMismatch { expected: Flavor::Mpmc, found: Flavor::Spsc }
    );
    assert_eq!(
        layout_error(&shm, ByteConsumer::open(&shm.name, Options::new())),
        LayoutError::FlavorMismatch { expected: Flavor::Bytes, found: Flavor::Spsc }
    );
    drop(spsc);

    let bytes = ByteProducer::create(&shm.name, Options::new()).expect("create bytes");
    assert_eq!(
        layout_error(&shm, Consumer::<u64>::open(&shm.name, Options::new())),
        LayoutError::FlavorMismatch { expected: Flavor::Spsc, found: Flavor::Bytes }
    );
    drop(bytes);

    let mpmc = MpmcProducer::<u64>::create(&shm.name, Options::new()).expect("create mpmc");
    assert_eq!(
        layout_error(&shm, Consumer::<u64>::open(&shm.name, Options::new())),
        LayoutError::FlavorMismatch { expected: Flavor::Spsc, found: Flavor::Mpmc }
    );
    drop(mpmc);
    shm.assert_gone();
}

#[test]
fn schema_id_must_match_when_asked() {
    let shm = Shm::new("schema");
    let tx = Producer::<u64>::create(&shm.name, Options::new().schema_id(0xABCD)).expect("create");
    assert_eq!(
        layout_error(&shm, Consumer::<u64>::open(&shm.name, Options::new().schema_id(0x1234))),
        LayoutError::SchemaMismatch { expected: 0x1234, found: 0xABCD }
    );
    drop(Consumer::<u64>::open(&shm.name, Options::new().schema_id(0xABCD)).expect("same schema"));
    drop(Consumer::<u64>::open(&shm.name, Options::new()).expect("no schema asked"));
    drop(tx);
    shm.assert_gone();
}

/// Each header field damaged on its own gives its own typed error.
#[test]
fn corrupt_header_fields_give_typed_errors() {
    type Check = fn(&LayoutError) -> bool;
    let len = 4096u64 + 16 * 16;
    let cases: Vec<(&str, u64, Vec<u8>, Check)> = vec![
        ("magic", MAGIC_AT, 0xDEAD_BEEF_u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadMagic { found: 0xDEAD_BEEF })
        }),
        ("version", VERSION_AT, 2u32.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::UnsupportedVersion { found: 2, supported: 1 })
        }),
        ("flavor", FLAVOR_AT, 9u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::UnknownFlavor { found: 9 })),
        ("slot_size", SLOT_SIZE_AT, 24u32.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadSlotSize { found: 24, expected: 16 })
        }),
        ("capacity not a power of two", CAPACITY_AT, 12u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadCapacity { found: 12 })
        }),
        ("capacity larger than the file", CAPACITY_AT, 32u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadTotalLength { .. })
        }),
        ("msg_size out of range", MSG_SIZE_AT, (1u32 << 25).to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadMessageSize { size: 0x200_0000 })
        }),
        ("msg_size changing the slot", MSG_SIZE_AT, 16u32.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadSlotSize { found: 16, expected: 32 })
        }),
        ("msg_align", MSG_ALIGN_AT, 3u32.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadMessageAlign { align: 3 })
        }),
        ("total_len", TOTAL_LEN_AT, (len + 4096).to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadTotalLength { header: 8448, needed: 4352, region: 4352 })
        }),
        ("slots_offset", SLOTS_OFFSET_AT, 8192u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadSlotsOffset { found: 8192 })
        }),
        ("read_pos beyond write_pos", READ_POS_AT, 1000u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::Corrupted(Corruption::Positions { write: 0, read: 1000, capacity: 16 }))
        }),
    ];
    for (what, offset, bytes, check) in cases {
        let shm = Shm::new("corrupt_field");
        left_segment(&shm);
        write_at(&shm, offset, &bytes);
        let err = layout_error(&shm, Consumer::<u64>::open(&shm.name, quick()));
        assert!(check(&err), "{what}: unexpected {err:?}");
        // inspect reports header damage too (positions are not its business).
        if offset < 128 {
            assert!(shmlane::inspect(&shm.path()).is_err(), "{what}: inspect accepted it");
        }
        shmlane::remove(&shm.name, None).expect("remove");
        shm.assert_gone();
    }

    // An unpublished header (state not READY) is "not ready", after the
    // ready timeout.
    let shm = Shm::new("corrupt_state");
    left_segment(&shm);
    write_at(&shm, STATE_AT, &0u32.to_le_bytes());
    let started = Instant::now();
    match Producer::<u64>::open(&shm.name, quick()) {
        Err(OpenError::NotReady { path }) => assert_eq!(path, shm.path()),
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(50), "NotReady before the ready timeout");
    shmlane::remove(&shm.name, None).expect("remove");
    shm.assert_gone();
}

/// Random garbage over the whole header: a typed layout error, no panic.
#[test]
fn garbage_header_is_a_layout_error() {
    let shm = Shm::new("garbage");
    let mut rng = Rng::new(0x6A5B_A6E5);
    for round in 0..50 {
        left_segment(&shm);
        let garbage: Vec<u8> = (0..128).map(|_| rng.next_u64() as u8).collect();
        write_at(&shm, 0, &garbage);
        match Consumer::<u64>::open(&shm.name, quick()) {
            Err(OpenError::Layout { source: LayoutError::BadMagic { .. }, .. }) => {}
            other => panic!("round {round}: expected Layout(BadMagic), got {other:?}"),
        }
        assert!(shmlane::inspect(&shm.path()).is_err());
        shmlane::remove(&shm.name, None).expect("remove");
    }
    // Garbage everywhere but a valid magic: still a typed error.
    for round in 0..50 {
        left_segment(&shm);
        let mut garbage: Vec<u8> = (0..128).map(|_| rng.next_u64() as u8).collect();
        garbage[..8].copy_from_slice(b"SHMLANE\0");
        write_at(&shm, 0, &garbage);
        match Consumer::<u64>::open(&shm.name, quick()) {
            Err(OpenError::Layout { .. } | OpenError::NotReady { .. }) => {}
            other => panic!("round {round}: expected Layout or NotReady, got {other:?}"),
        }
        shmlane::remove(&shm.name, None).expect("remove");
    }
    shm.assert_gone();
}

/// A slot or record damaged while attached: `Corrupted`, not a panic.
#[test]
fn corrupt_ring_contents_are_reported() {
    let shm = Shm::new("corrupt_slot");
    let mut tx = Producer::<u64>::create(&shm.name, Options::new().capacity(16)).expect("create");
    let mut rx = Consumer::<u64>::open(&shm.name, Options::new()).expect("open");
    tx.send(7).expect("send");
    // Slot 0's sequence word says "full" as 1; make it something no peer writes.
    write_at(&shm, SLOTS_AT, &12_345u64.to_le_bytes());
    match rx.try_recv() {
        Err(RecvError::Corrupted(Corruption::Sequence { pos: 0, found: 12_345 })) => {}
        other => panic!("expected Corrupted(Sequence), got {other:?}"),
    }
    drop((tx, rx));
    shm.assert_gone();

    let mut tx = ByteProducer::create(&shm.name, Options::new().capacity(256)).expect("create bytes");
    let mut rx = ByteConsumer::open(&shm.name, Options::new()).expect("open bytes");
    tx.send(b"hello").expect("send");
    // Record header at offset 0 of the data area: len 5, flags 0. Claim 10000 bytes.
    write_at(&shm, SLOTS_AT, &10_000u64.to_le_bytes());
    match rx.try_recv().map(|r| r.map(|g| g.len())) {
        Err(RecvError::Corrupted(Corruption::RecordLength { pos: 0, len: 10_000, .. })) => {}
        other => panic!("expected Corrupted(RecordLength), got {other:?}"),
    }
    drop((tx, rx));
    shm.assert_gone();
}

#[test]
fn truncated_or_resized_file_is_refused() {
    let shm = Shm::new("truncated");
    for (new_len, expect_bad_size) in [(4096 + 8 * 16, false), (4096, false), (4096 + 32 * 16, false), (4095, true)] {
        let len = left_segment(&shm);
        std::fs::OpenOptions::new()
            .write(true)
            .open(shm.path())
            .and_then(|f| f.set_len(new_len))
            .expect("resize segment file");
        match Consumer::<u64>::open(&shm.name, quick()) {
            Err(OpenError::BadSize { len_bytes, .. }) if expect_bad_size => assert_eq!(len_bytes, new_len),
            Err(OpenError::Layout { source: LayoutError::BadTotalLength { header, region, .. }, .. })
                if !expect_bad_size =>
            {
                assert_eq!((header, region), (len, new_len));
            }
            other => panic!("resized to {new_len}: unexpected {other:?}"),
        }
        shmlane::remove(&shm.name, None).expect("remove");
    }
    shm.assert_gone();
}

/// A creator that died before sizing its file leaves it empty; one that
/// died after sizing but before writing the header leaves zeroes.
#[test]
fn empty_or_zeroed_file_is_not_ready() {
    let shm = Shm::new("not_ready");
    for len in [0u64, 8192] {
        std::fs::File::create(shm.path()).and_then(|f| f.set_len(len)).expect("create file");
        let started = Instant::now();
        match Consumer::<u64>::open(&shm.name, quick()) {
            Err(OpenError::NotReady { path }) => assert_eq!(path, shm.path()),
            other => panic!("{len}-byte file: expected NotReady, got {other:?}"),
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{len}-byte file: gave up after {waited:?}, before the timeout");
        std::fs::remove_file(shm.path()).expect("remove");
    }
    shm.assert_gone();
}

#[test]
fn foreign_file_is_bad_magic() {
    let shm = Shm::new("foreign_file");
    std::fs::write(shm.path(), "not a shmlane segment\n".repeat(400)).expect("write file");
    match layout_error(&shm, Consumer::<u64>::open(&shm.name, quick())) {
        LayoutError::BadMagic { found } => assert_eq!(found, u64::from_le_bytes(*b"not a sh")),
        other => panic!("expected BadMagic, got {other:?}"),
    }
    assert!(!shmlane::has_magic(&shm.path()));
    assert!(shmlane::list(None).iter().all(|(p, _)| *p != shm.path()), "list shows a non-shmlane file");
    // Smaller than a header page: refused before mapping.
    std::fs::write(shm.path(), "tiny").expect("write file");
    assert!(matches!(Consumer::<u64>::open(&shm.name, quick()), Err(OpenError::BadSize { len_bytes: 4, .. })));
    std::fs::remove_file(shm.path()).expect("remove");
    shm.assert_gone();
}

/// A symlink in /dev/shm is never followed, even to a valid segment.
#[test]
fn symlink_is_refused() {
    let target = Shm::new("symlink_target");
    let link = Shm::new("symlink");
    let tx = Producer::<u64>::create(&target.name, Options::new()).expect("create target");
    std::os::unix::fs::symlink(target.path(), link.path()).expect("symlink");
    match Consumer::<u64>::open(&link.name, Options::new()) {
        Err(OpenError::NotAFile { path }) => assert_eq!(path, link.path()),
        other => panic!("expected NotAFile, got {other:?}"),
    }
    assert!(matches!(Producer::<u64>::create(&link.name, Options::new()), Err(OpenError::AlreadyExists { .. })));
    assert!(matches!(shmlane::inspect(&link.path()), Err(OpenError::NotAFile { .. })));
    assert!(shmlane::list(None).iter().all(|(p, _)| *p != link.path()), "list follows a symlink");
    std::fs::remove_file(link.path()).expect("remove symlink");
    drop(tx);
    link.assert_gone();
    target.assert_gone();
}

#[test]
fn fifo_is_not_a_file() {
    let shm = Shm::new("fifo");
    nix::unistd::mkfifo(&shm.path(), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    match Consumer::<u64>::open(&shm.name, quick()) {
        Err(OpenError::NotAFile { path }) => assert_eq!(path, shm.path()),
        other => panic!("expected NotAFile, got {other:?}"),
    }
    std::fs::remove_file(shm.path()).expect("remove fifo");
    shm.assert_gone();
}

/// A directory is `NotAFile`: `open(2)` fails with EISDIR, which glibc's
/// `shm_open` turns into EINVAL (the name itself was validated first).
#[test]
fn directory_is_not_a_file() {
    let shm = Shm::new("directory");
    std::fs::create_dir(shm.path()).expect("mkdir");
    let result = Consumer::<u64>::open(&shm.name, quick());
    std::fs::remove_dir(shm.path()).expect("rmdir");
    shm.assert_gone();
    match result {
        Err(OpenError::NotAFile { path }) => assert_eq!(path, shm.path()),
        other => panic!("expected NotAFile, got {other:?}"),
    }
}

/// Child (as root): drops to `nobody`, creates a world-writable segment,
/// sends 42 and leaves once it was taken (removing the name).
fn create_as_nobody() {
    let nobody = nix::unistd::User::from_name("nobody").expect("getpwnam").expect("user nobody");
    nix::unistd::setgroups(&[]).expect("setgroups");
    nix::unistd::setgid(nobody.gid).expect("setgid");
    nix::unistd::setuid(nobody.uid).expect("setuid");
    let mut tx = Producer::<u64>::create(&common::var("NAME"), Options::new().capacity(4).mode(0o666))
        .expect("create as nobody");
    tx.send(42).expect("send");
    common::wait_until("the parent to take the message", TIMEOUT, || tx.is_empty());
}

/// A segment owned by another user is refused unless allowed. Needs root
/// (to create one as `nobody`); skipped otherwise.
#[test]
fn foreign_owner_is_refused_unless_allowed() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root to create a segment as another user");
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        println!("skipped: no user `nobody`");
        return;
    };
    let shm = Shm::new("foreign_owner");
    let child = spawn("create_as_nobody", &[("NAME", shm.name.clone())]);
    common::wait_until("the child to create the segment", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.producer.is_alive())
    });
    let meta = std::fs::metadata(shm.path()).expect("stat");
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (nobody.uid.as_raw(), 0o666));
    match Consumer::<u64>::open(&shm.name, Options::new()) {
        Err(OpenError::ForeignOwner { path, owner, us }) => {
            assert_eq!((path, owner, us), (shm.path(), nobody.uid.as_raw(), 0));
        }
        other => panic!("expected ForeignOwner, got {other:?}"),
    }
    let mut rx = Consumer::<u64>::open(&shm.name, Options::new().allow_foreign_owner(true)).expect("allowed");
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("recv"), 42);
    child.wait_ok(TIMEOUT);
    assert!(matches!(rx.try_recv(), Err(RecvError::Disconnected)));
    drop(rx);
    shm.assert_gone();
}

#[test]
fn record_larger_than_the_ring_is_too_large_at_once() {
    let shm = Shm::new("too_large");
    let mut tx = ByteProducer::create(&shm.name, Options::new().capacity(256)).expect("create");
    let max = tx.max_record_len();
    assert_eq!(max, 256 - 8);
    // No consumer is attached: a blocking reserve that did not refuse at
    // once would wait for the timeout instead.
    for len in [max + 1, 256, 10_000, usize::MAX] {
        match tx.reserve_timeout(len, TIMEOUT) {
            Err(ReserveError::TooLarge { len: l, max: m }) => assert_eq!((l, m), (len, max)),
            other => panic!("reserve {len}: expected TooLarge, got {other:?}"),
        }
        assert!(matches!(tx.try_reserve(len), Err(ReserveError::TooLarge { .. })));
    }
    assert!(matches!(tx.send(&vec![0; max + 1]), Err(ReserveError::TooLarge { .. })));
    // The largest record fits an empty ring.
    let payload: Vec<u8> = (0..max).map(|i| i as u8).collect();
    tx.send(&payload).expect("largest record");
    let mut rx = ByteConsumer::open(&shm.name, Options::new()).expect("open");
    assert_eq!(&*rx.recv_timeout(TIMEOUT).expect("recv"), payload.as_slice());
    drop((tx, rx));
    shm.assert_gone();
}

#[test]
fn zero_capacity_is_refused_at_creation() {
    let shm = Shm::new("zero_capacity");
    let zero = || Options::new().capacity(0);
    for result in [
        Producer::<u64>::create(&shm.name, zero()).map(drop),
        Consumer::<u64>::create(&shm.name, zero()).map(drop),
        ByteProducer::create(&shm.name, zero()).map(drop),
        MpmcProducer::<u64>::create(&shm.name, zero()).map(drop),
    ] {
        assert!(
            matches!(result, Err(OpenError::Layout { source: LayoutError::ZeroCapacity, .. })),
            "expected Layout(ZeroCapacity), got {result:?}"
        );
        shm.assert_gone();
    }
}

#[test]
fn list_finds_a_live_segment() {
    let shm = Shm::new("list");
    let tx = Producer::<u64>::create(&shm.name, Options::new().capacity(100)).expect("create");
    let listed = shmlane::list(None);
    let (_, info) = listed.iter().find(|(p, _)| *p == shm.path()).expect("list shows the segment");
    let info = info.as_ref().expect("valid segment");
    assert_eq!(info.name, shm.name);
    assert_eq!(info.params.flavor, Flavor::Spsc);
    assert_eq!(info.params.capacity, 128, "rounded up to a power of two");
    assert_eq!((info.producer, info.consumer), (RoleState::Alive(1), RoleState::Never));
    assert_eq!(info.header.creator_pid, std::process::id());
    assert!(!info.is_dead());
    drop(tx);
    assert!(shmlane::list(None).iter().all(|(p, _)| *p != shm.path()));
    shm.assert_gone();
}

/// `inspect` tells a live role from a dead one: the producer is held by a
/// child, then killed.
#[test]
fn inspect_reports_live_and_dead_roles() {
    let shm = Shm::new("inspect");
    let mut rx = Consumer::<u64>::create(&shm.name, Options::new().capacity(8)).expect("create");
    let info = shmlane::inspect(&shm.path()).expect("inspect");
    assert_eq!((info.producer, info.consumer), (RoleState::Never, RoleState::Alive(1)));
    let child = spawn("hold_producer", &[("NAME", shm.name.clone())]);
    common::wait_until("the child to hold the producer role", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.producer == RoleState::Alive(1))
    });
    assert!(rx.is_connected());
    child.kill9();
    child.wait_killed(TIMEOUT);
    let info = shmlane::inspect(&shm.path()).expect("inspect");
    assert_eq!((info.producer, info.consumer), (RoleState::Dead, RoleState::Alive(1)));
    assert!(!info.is_dead(), "the consumer still lives");
    assert!(!rx.is_connected());
    assert!(matches!(rx.recv_timeout(TIMEOUT), Err(RecvError::Disconnected)));
    drop(rx);
    shm.assert_gone();

    // MPMC counts live handles per role.
    let a = MpmcProducer::<u64>::create(&shm.name, Options::new()).expect("create mpmc");
    let b = MpmcProducer::<u64>::open(&shm.name, Options::new()).expect("second producer");
    let c = MpmcConsumer::<u64>::open(&shm.name, Options::new()).expect("consumer");
    let info = shmlane::inspect(&shm.path()).expect("inspect");
    assert_eq!((info.producer, info.consumer), (RoleState::Alive(2), RoleState::Alive(1)));
    drop(b);
    let info = shmlane::inspect(&shm.path()).expect("inspect");
    assert_eq!((info.producer, info.consumer), (RoleState::Alive(1), RoleState::Alive(1)));
    drop((c, a));
    shm.assert_gone();
}
