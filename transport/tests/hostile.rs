//! The hostile-segment suite (issue #8): a second process maps a live
//! segment with plain `memmap2` (never through shmlane) and writes garbage
//! into it while a victim process sends and receives through it.
//!
//! The promise under test: **no panic, no out-of-bounds access, no hang, and
//! a typed `Corrupted` error wherever the damage is detectable.** Every run
//! checks that the victim exits normally (not by a signal, not by a panic)
//! within [`LIMIT`]; each scenario then asserts what the victim saw.
//!
//! Three modes:
//! - **Paused** (deterministic): the victim, single-threaded, holds a
//!   producer and a consumer, exchanges a few laps of messages
//!   ([`pre_counts`]), leaves a few unread in flight and pauses; the attacker writes once; the victim
//!   resumes with a fixed program ([`Step`]s). Nothing moves while the
//!   attacker writes, so each scenario asserts the exact first error (variant
//!   and fields), or a clean run, and that every message accepted before it
//!   was intact and in order (message `i` is a pure function of `i`).
//! - **At rest**: the attacker writes before the victim attaches.
//! - **Running** (chaos): the victim runs a producer thread and a consumer
//!   thread while the attacker hammers a region for a while. Where the
//!   outcome is deterministic (header, liveness and doorbell words are never
//!   trusted on the data path) the scenario asserts a clean run and a working
//!   ring afterwards; elsewhere only that it survived.
//!
//! Some damage is legitimately undetectable, and the scenarios say so where
//! they meet it: a forged but well-formed value (a sequence word saying
//! "empty", a position that lies "all consumed" or "ahead", a skip marker, a
//! record length that still fits) is indistinguishable from an honest peer,
//! so the victim may wait (bounded by its timeout), lose a message, or, with
//! a concurrent reader, copy a torn payload. Those cases assert "no panic,
//! no hang" and document what happens.
//!
//! Offsets are those of `docs/layout-v1.md` (`ring/src/layout.rs`).

mod common;

use common::{Msg, Rng, Scratch, Shm, mix, spawn};
use memmap2::MmapRaw;
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, Corruption, LayoutError, MpmcConsumer, MpmcProducer, OpenError, Options,
    Producer, RecvError, ReserveError, SendError, TrySendError, WaitStrategy,
};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "victim" => victim(),
        "attacker" => attacker(),
        other => panic!("unknown child role {other}"),
    }
}

// Layout v1 offsets (docs/layout-v1.md §2–§5).
const MAGIC_AT: u64 = 0;
const VERSION_AT: u64 = 8;
const FLAVOR_AT: u64 = 12;
const STATE_AT: u64 = 16;
const SLOT_SIZE_AT: u64 = 20;
const CAPACITY_AT: u64 = 24;
const MSG_SIZE_AT: u64 = 32;
const TOTAL_LEN_AT: u64 = 48;
const SKIPPED_AT: u64 = 80;
const WRITE_POS: u64 = 128;
const READ_POS: u64 = 256;
const WAIT_LINE: u64 = 384;
const LIVENESS: u64 = 512;
const REGISTRY: u64 = 1024;
const ENTRY: u64 = 128;
const SLOTS: u64 = 4096;
const SKIPPED: u64 = 1 << 63;

/// Slots of the fixed rings; bytes of the byte ring.
const FIXED_CAP: u64 = 16;
const BYTE_CAP: u64 = 256;
/// Segment length of a fixed ring of `Msg` (64-byte slots).
const FIXED_LEN: u64 = SLOTS + FIXED_CAP * 64;
/// A distance no honest position difference comes near.
const FAR: u64 = 1 << 40;

/// Timeout of a victim's blocking call in the paused program: only ever
/// reached when the ring is wedged.
const OP: Duration = Duration::from_millis(500);
/// Timeout of the deliberate waits on an empty or full ring.
const SHORT: Duration = Duration::from_millis(100);
/// Timeout of each call in the racing threads (they loop on it).
const RACE_OP: Duration = Duration::from_millis(200);
/// Longest a deliberate `SHORT` wait may take before we call it a hang.
const HANG: Duration = Duration::from_secs(5);
/// Bound on every child: a victim still running after this is hung.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spsc,
    Bytes,
    Mpmc,
}

/// Messages exchanged in lockstep before the attack, and sent on top of
/// them, unread, so the attack finds data in flight.
fn pre_counts(kind: Kind) -> (u64, u64) {
    match kind {
        // Five laps and a bit: the victim pauses at write 90, read 85.
        Kind::Spsc | Kind::Mpmc => (85, 5),
        // ~7 laps; two unread records always fit 256 bytes, padding included.
        Kind::Bytes => (40, 2),
    }
}

/// One part of the victim's program after the attack.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `try_send` until the ring says full.
    Fill,
    /// `try_recv` until the ring says empty.
    Drain,
    /// `n` times: send (timeout [`OP`]), then receive (timeout [`OP`]).
    Flow(u32),
    /// On an empty ring: a receive of [`SHORT`] must time out, not hang.
    WaitEmpty,
    /// Fill, then a send of [`SHORT`] must time out, not hang.
    WaitFull,
}

/// The producer refreshes `read_pos` (on filling up) before the consumer
/// republishes it.
const TX_FIRST: &[Step] = &[Step::Fill, Step::Drain, Step::Flow(32)];
/// The consumer meets the damage first.
const RX_FIRST: &[Step] = &[Step::Drain, Step::Fill, Step::Drain, Step::Flow(32)];
/// Sleeps on both doorbells, then works.
const SLEEPY: &[Step] = &[Step::Drain, Step::WaitEmpty, Step::WaitFull, Step::Drain, Step::Flow(32)];

#[derive(Debug, Clone, Copy)]
enum Mode {
    AtRest(&'static [Step]),
    Paused(&'static [Step]),
    /// The attacker hammers for `ms`, or until the victim reports an error.
    Running {
        ms: u64,
    },
}

/// Positions when the attacker wrote (paused mode).
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    w: u64,
    r: u64,
}

/// Checks a fresh open made after the attack.
type Reopen = fn(&Ctx, Result<(), OpenError>);

struct Scenario {
    name: &'static str,
    kind: Kind,
    mode: Mode,
    wait: WaitStrategy,
    attack: fn(&Target<'_>, &mut Rng),
    /// Checks a fresh open made after the attack (header damage).
    reopen: Option<Reopen>,
    expect: fn(&Ctx, &Report),
}

const SPIN_PARK: WaitStrategy = WaitStrategy::SpinThenPark { spins: 64 };

const fn paused(
    name: &'static str,
    kind: Kind,
    steps: &'static [Step],
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { name, kind, mode: Mode::Paused(steps), wait: SPIN_PARK, attack, reopen: None, expect }
}

/// A header field damaged under a running victim: the victim, which
/// validated the header once at open, is unaffected; a new open is refused.
const fn header(name: &'static str, kind: Kind, attack: fn(&Target<'_>, &mut Rng), reopen: Reopen) -> Scenario {
    Scenario { reopen: Some(reopen), ..paused(name, kind, RX_FIRST, attack, clean) }
}

const fn at_rest(
    name: &'static str,
    kind: Kind,
    steps: &'static [Step],
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { mode: Mode::AtRest(steps), ..paused(name, kind, steps, attack, expect) }
}

const fn running(
    name: &'static str,
    kind: Kind,
    ms: u64,
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { mode: Mode::Running { ms }, ..paused(name, kind, RX_FIRST, attack, expect) }
}

fn clean(_: &Ctx, r: &Report) {
    r.clean();
}

/// Survived: exited normally within the limit (checked for every scenario);
/// any typed outcome, and accepted messages may be wrong (undetectable).
fn survived(_: &Ctx, _: &Report) {}

fn rx(c: Corruption) -> String {
    format!("rx:{c:?}")
}

fn to_end(pos: u64) -> u64 {
    BYTE_CAP - pos % BYTE_CAP
}

/// Bytes a byte-ring consumer at `c.r` may look at: up to `write_pos` and
/// up to the end of the area.
fn room(c: &Ctx) -> u64 {
    (c.w - c.r).min(to_end(c.r))
}

/// Length of a padding record at `pos` that is *not* the exact tail.
fn wrong_pad_len(pos: u64) -> u64 {
    if to_end(pos) == 16 { 0 } else { 8 }
}

/// The slot of each position in `[p0, p0 + 16)`: where a fixed ring of 16
/// slots at `p0` has each slot's next position.
fn lap_from(p0: u64, slot: u64) -> u64 {
    p0.wrapping_add(slot.wrapping_sub(p0) & (FIXED_CAP - 1))
}

/// Close to `u64::MAX`, for rings set up to run across the wrap.
const NEAR_MAX: u64 = 0u64.wrapping_sub(8);
const NEAR_MAX_BYTES: u64 = 0u64.wrapping_sub(64);

#[track_caller]
fn layout(res: Result<(), OpenError>) -> LayoutError {
    match res {
        Err(OpenError::Layout { source, path }) => {
            assert!(path.starts_with(shmlane::SHM_DIR), "{path:?}");
            source
        }
        other => panic!("expected OpenError::Layout, got {other:?}"),
    }
}

static SCENARIOS: &[Scenario] = &[
    // ---- SPSC, paused at write 90, read 85 (slots 85..90 full) ----
    paused(
        "spsc_seq_garbage",
        Kind::Spsc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), 0xDEAD_BEEF),
        |c, r| r.error(&rx(Corruption::Sequence { pos: c.r, found: 0xDEAD_BEEF })),
    ),
    paused(
        "spsc_seq_next_lap",
        Kind::Spsc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), t.r() + 1 + FIXED_CAP),
        |c, r| r.error(&rx(Corruption::Sequence { pos: c.r, found: c.r + 1 + FIXED_CAP })),
    ),
    paused(
        "spsc_seq_near_max",
        Kind::Spsc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), u64::MAX),
        |c, r| r.error(&rx(Corruption::Sequence { pos: c.r, found: u64::MAX })),
    ),
    // Undetectable: slot r+1 forged to read "empty" looks like a slow
    // producer. The consumer stops there; the producer fills up and times out.
    paused(
        "spsc_seq_forged_empty",
        Kind::Spsc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r() + 1), t.r() + 2 - FIXED_CAP),
        |c, r| {
            r.error("tx:Timeout");
            assert_eq!(r.received, c.r + 1, "{r:?}");
        },
    ),
    paused(
        "spsc_read_pos_ahead",
        Kind::Spsc,
        TX_FIRST,
        |t, _| t.put(READ_POS, t.w() + FAR),
        |c, r| r.error_positions("tx", c.w + FAR, FIXED_CAP),
    ),
    paused(
        "spsc_read_pos_behind",
        Kind::Spsc,
        TX_FIRST,
        |t, _| t.put(READ_POS, t.w().wrapping_sub(FAR)),
        |c, r| r.error_positions("tx", c.w.wrapping_sub(FAR), FIXED_CAP),
    ),
    paused(
        "spsc_positions_near_max",
        Kind::Spsc,
        TX_FIRST,
        |t, _| {
            t.put(WRITE_POS, u64::MAX - 2);
            t.put(READ_POS, u64::MAX - 2);
        },
        |_, r| r.error_positions("tx", u64::MAX - 2, FIXED_CAP),
    ),
    // read_pos lies "all consumed": the producer overwrites unread slots,
    // and the consumer finds a later lap's sequence word at its position.
    // (With a concurrent consumer, a copy in progress could also be torn:
    // the consumer does not re-check the word after copying.)
    paused(
        "spsc_read_pos_lies_all_read",
        Kind::Spsc,
        TX_FIRST,
        |t, _| t.put(READ_POS, t.w()),
        |c, r| {
            r.error_where(&format!("rx:Sequence {{ pos: {}, ", c.r), |e| {
                e.starts_with(&format!("rx:Sequence {{ pos: {}, ", c.r))
            })
        },
    ),
    // Harmless: nobody trusts the shared write_pos on the data path, and the
    // producer's next publish overwrites it.
    paused("spsc_write_pos_ahead", Kind::Spsc, RX_FIRST, |t, _| t.put(WRITE_POS, t.w() + FAR), clean),
    header(
        "spsc_header_magic",
        Kind::Spsc,
        |t, _| t.put(MAGIC_AT, 0xDEAD_BEEF),
        |_, res| {
            assert_eq!(layout(res), LayoutError::BadMagic { found: 0xDEAD_BEEF });
        },
    ),
    header(
        "spsc_header_version",
        Kind::Spsc,
        |t, _| t.put32(VERSION_AT, 2),
        |_, res| {
            assert_eq!(layout(res), LayoutError::UnsupportedVersion { found: 2, supported: 1 });
        },
    ),
    header(
        "spsc_header_flavor",
        Kind::Spsc,
        |t, _| t.put32(FLAVOR_AT, 9),
        |_, res| {
            assert_eq!(layout(res), LayoutError::UnknownFlavor { found: 9 });
        },
    ),
    header(
        "spsc_header_state",
        Kind::Spsc,
        |t, _| t.put32(STATE_AT, 0x0BAD_0BAD),
        |_, res| {
            assert!(matches!(res, Err(OpenError::NotReady { .. })), "{res:?}");
        },
    ),
    header(
        "spsc_header_capacity",
        Kind::Spsc,
        |t, _| t.put(CAPACITY_AT, 12),
        |_, res| {
            assert_eq!(layout(res), LayoutError::BadCapacity { found: 12 });
        },
    ),
    header(
        "spsc_header_slot_size",
        Kind::Spsc,
        |t, _| t.put32(SLOT_SIZE_AT, 24),
        |_, res| {
            assert_eq!(layout(res), LayoutError::BadSlotSize { found: 24, expected: 64 });
        },
    ),
    header(
        "spsc_header_msg_size",
        Kind::Spsc,
        |t, _| t.put32(MSG_SIZE_AT, 16),
        |_, res| {
            assert_eq!(layout(res), LayoutError::BadSlotSize { found: 64, expected: 32 });
        },
    ),
    header(
        "spsc_header_total_len",
        Kind::Spsc,
        |t, _| t.put(TOTAL_LEN_AT, 1 << 20),
        |_, res| {
            let e = layout(res);
            assert_eq!(e, LayoutError::BadTotalLength { header: 1 << 20, needed: FIXED_LEN, region: FIXED_LEN });
        },
    ),
    // Across u64::MAX in lockstep: positions wrap like any other number.
    // (Lockstep never looks at a slot before it is written. Polling an empty
    // slot just past the wrap would report `Corruption::Sequence`: v1's
    // `empty(pos) = (pos + 1).saturating_sub(capacity)` treats positions
    // below the capacity as the first lap. Reachable only after 2^64
    // messages, or by a hostile writer, so a typed error is fine.)
    at_rest(
        "spsc_across_u64_max",
        Kind::Spsc,
        &[Step::Flow(40)],
        |t, _| {
            for slot in 0..FIXED_CAP {
                let pos = lap_from(NEAR_MAX, slot);
                t.put(t.seq_at(pos), pos.wrapping_add(1).saturating_sub(FIXED_CAP));
            }
            t.put(WRITE_POS, NEAR_MAX);
            t.put(READ_POS, NEAR_MAX);
        },
        clean,
    ),
    // ---- byte ring, 256 bytes, paused with two records unread ----
    paused(
        "bytes_len_huge",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(t.rec_at(t.r()), 0xFFFF_FFF0),
        |c, r| r.error(&rx(Corruption::RecordLength { pos: c.r, len: 0xFFFF_FFF0, room: room(c) })),
    ),
    paused(
        "bytes_len_crossing_end",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(t.rec_at(t.r()), to_end(t.r())),
        |c, r| r.error(&rx(Corruption::RecordLength { pos: c.r, len: to_end(c.r), room: room(c) })),
    ),
    paused(
        "bytes_len_past_write_pos_unaligned",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(t.rec_at(t.r()), t.w() - t.r() + 1),
        |c, r| r.error(&rx(Corruption::RecordLength { pos: c.r, len: c.w - c.r + 1, room: room(c) })),
    ),
    // Undetectable when it still fits: a data record 8 bytes longer than
    // written is accepted (with the next record's header in it), and the
    // consumer then parses from the middle of a record. Unless the longer
    // record no longer fits before the end of the area, which is caught.
    paused(
        "bytes_len_plausible",
        Kind::Bytes,
        RX_FIRST,
        |t, _| {
            let mut at = t.r();
            if t.get(t.rec_at(at)) >> 32 == 1 {
                at += to_end(at); // a padding record: the data record is at 0
            }
            t.put(t.rec_at(at), t.get(t.rec_at(at)) + 8);
        },
        |_, r| {
            let first = pre_counts(Kind::Bytes).0;
            let accepted = r.first_bad.as_deref() == Some(&format!("expected {first}, got Some({first}) intact false"));
            let refused = r.first.as_deref().is_some_and(|e| e.starts_with("rx:RecordLength")) && r.bad == 0;
            assert!(accepted || refused, "{r:?}");
        },
    ),
    paused(
        "bytes_flags",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(t.rec_at(t.r()), (t.get(t.rec_at(t.r())) & 0xFFFF_FFFF) | 7 << 32),
        |c, r| r.error(&rx(Corruption::RecordFlags { pos: c.r, flags: 7 })),
    ),
    paused(
        "bytes_padding_of_wrong_size",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(t.rec_at(t.r()), wrong_pad_len(t.r()) | 1 << 32),
        |c, r| r.error(&rx(Corruption::RecordLength { pos: c.r, len: wrong_pad_len(c.r), room: room(c) })),
    ),
    paused(
        "bytes_write_pos_ahead",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(WRITE_POS, t.w() + 1024),
        |c, r| r.error(&rx(Corruption::Positions { write: c.w + 1024, read: c.r, capacity: BYTE_CAP })),
    ),
    // write_pos 3 bytes past the last record: both records are read, then
    // the 3 bytes cannot hold a header.
    paused(
        "bytes_write_pos_unaligned",
        Kind::Bytes,
        RX_FIRST,
        |t, _| t.put(WRITE_POS, t.w() + 3),
        |c, r| {
            r.error(&rx(Corruption::RecordLength { pos: c.w, len: 3, room: to_end(c.w) }));
            assert_eq!(r.received, pre_counts(Kind::Bytes).0 + 2, "{r:?}");
        },
    ),
    paused(
        "bytes_read_pos_ahead",
        Kind::Bytes,
        TX_FIRST,
        |t, _| t.put(READ_POS, t.w() + FAR),
        |c, r| r.error_positions("tx", c.w + FAR, BYTE_CAP),
    ),
    // Harmless: records are 8-byte granular, so a read_pos 3 bytes ahead
    // frees no byte of an unread record.
    paused("bytes_read_pos_unaligned", Kind::Bytes, TX_FIRST, |t, _| t.put(READ_POS, t.r() + 3), clean),
    header(
        "bytes_header_magic",
        Kind::Bytes,
        |t, _| t.put(MAGIC_AT, 0xDEAD_BEEF),
        |_, res| {
            assert_eq!(layout(res), LayoutError::BadMagic { found: 0xDEAD_BEEF });
        },
    ),
    at_rest(
        "bytes_across_u64_max",
        Kind::Bytes,
        &[Step::Flow(10), Step::Fill, Step::Drain, Step::Flow(50)],
        |t, _| {
            t.put(WRITE_POS, NEAR_MAX_BYTES);
            t.put(READ_POS, NEAR_MAX_BYTES);
        },
        |_, r| {
            r.clean();
            assert!(r.received >= 60, "{r:?}");
        },
    ),
    // ---- MPMC, paused at write 90, read 85; victim's entries are 0 and 1 ----
    paused(
        "mpmc_seq_garbage",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), 0x3BAD_0000_0000_0000),
        |c, r| r.error(&rx(Corruption::Sequence { pos: c.r, found: 0x3BAD_0000_0000_0000 })),
    ),
    // Undetectable under v1's signed comparison: a word from laps ago reads
    // "not committed" to consumers and "full" to producers. The ring wedges
    // at that slot; every wait ends at its timeout.
    paused(
        "mpmc_seq_laps_behind",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), t.r() - 3 * FIXED_CAP),
        |c, r| {
            r.error("tx:Timeout");
            assert_eq!(r.received, c.r, "{r:?}");
        },
    ),
    // Undetectable: a forged skip marker (a dead producer's slot) makes
    // consumers pass over a committed message. Exactly that one is lost.
    paused(
        "mpmc_seq_forged_skip",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| t.put(t.seq_at(t.r()), (t.r() + 1) | SKIPPED),
        |c, r| {
            assert_eq!(r.first, None, "{r:?}");
            assert_eq!((r.bad, r.skipped), (1, 1), "{r:?}");
            assert_eq!(
                r.first_bad.as_deref(),
                Some(format!("expected {}, got Some({}) intact true", c.r, c.r + 1).as_str())
            );
        },
    ),
    paused(
        "mpmc_write_pos_behind",
        Kind::Mpmc,
        TX_FIRST,
        |t, _| t.put(WRITE_POS, t.w().wrapping_sub(1000)),
        // Behind 0, i.e. past 2^62: refused before any slot is read.
        |c, r| {
            r.error(&format!("tx:Positions {{ write: {}, read: 0, capacity: {FIXED_CAP} }}", c.w.wrapping_sub(1000)))
        },
    ),
    // Undetectable in v1: a producer cannot tell write_pos pushed ahead from
    // a full ring (it never reads read_pos). Messages in flight still arrive.
    paused(
        "mpmc_write_pos_ahead",
        Kind::Mpmc,
        TX_FIRST,
        |t, _| t.put(WRITE_POS, t.w() + 1000),
        |c, r| {
            r.error("tx:Timeout");
            assert_eq!(r.received, c.w, "{r:?}");
        },
    ),
    paused(
        "mpmc_read_pos_behind",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| t.put(READ_POS, t.r().wrapping_sub(1000)),
        // Behind 0, i.e. past 2^62: refused before any slot is read.
        |c, r| {
            r.error(&format!("rx:Positions {{ write: 0, read: {}, capacity: {FIXED_CAP} }}", c.r.wrapping_sub(1000)))
        },
    ),
    // Undetectable likewise: read_pos pushed ahead reads as an empty ring.
    paused(
        "mpmc_read_pos_ahead",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| t.put(READ_POS, t.r() + 1000),
        |c, r| {
            r.error("tx:Timeout");
            assert_eq!(r.received, c.r, "{r:?}");
        },
    ),
    paused(
        "mpmc_positions_near_max",
        Kind::Mpmc,
        TX_FIRST,
        |t, _| {
            t.put(WRITE_POS, u64::MAX - 2);
            t.put(READ_POS, u64::MAX - 2);
        },
        // Positions at or past 2^62 are refused before any slot is read.
        |_, r| r.error(&format!("tx:Positions {{ write: {}, read: 0, capacity: {FIXED_CAP} }}", u64::MAX - 2)),
    ),
    // A forged claim in a free (unlocked, so "dead") registry entry, plus a
    // write_pos bump: consumers see a stall with only dead claimants and skip
    // a slot nobody wrote. Harmless (counted in `skipped`), nothing is lost.
    paused(
        "mpmc_registry_forged_dead_claim",
        Kind::Mpmc,
        RX_FIRST,
        |t, _| {
            let w = t.w();
            t.put32(REGISTRY + 5 * ENTRY, 1);
            t.put(REGISTRY + 5 * ENTRY + 8, w + 1);
            t.put(WRITE_POS, w + 1);
        },
        |_, r| {
            r.clean();
            assert_eq!(r.skipped, 1, "{r:?}");
        },
    ),
    // Liveness spoofing: with the consumer's entry no longer saying "consumer",
    // the producer finds no live consumer: a typed, sticky Disconnected.
    paused(
        "mpmc_registry_roles_garbage",
        Kind::Mpmc,
        TX_FIRST,
        |t, _| {
            t.put32(REGISTRY, u32::MAX);
            t.put32(REGISTRY + ENTRY, u32::MAX);
        },
        |_, r| r.error("tx:Disconnected"),
    ),
    header(
        "mpmc_header_state",
        Kind::Mpmc,
        |t, _| t.put32(STATE_AT, 0),
        |_, res| {
            assert!(matches!(res, Err(OpenError::NotReady { .. })), "{res:?}");
        },
    ),
    // MPMC cannot run at positions >= 2^63: `SKIPPED` is bit 63 of the
    // sequence word, so there a commit would read as a skip. Positions at
    // or past 2^62 (`MAX_POS`, unreachable honestly) are refused as
    // `Positions` before any slot is read: no wrong message is accepted,
    // nothing panics or hangs.
    at_rest(
        "mpmc_at_positions_past_2_63",
        Kind::Mpmc,
        &[Step::Flow(10), Step::Fill, Step::Drain, Step::Flow(50)],
        |t, _| {
            for slot in 0..FIXED_CAP {
                t.put(t.seq_at(slot), lap_from(NEAR_MAX, slot));
            }
            t.put(WRITE_POS, NEAR_MAX);
            t.put(READ_POS, NEAR_MAX);
        },
        |_, r| assert_eq!(r.bad, 0, "{r:?}"),
    ),
    // ---- garbage doorbells: at worst spurious wake-ups or lost ones, and
    // every sleep is bounded, so waits end on time and data flows ----
    Scenario { wait: WaitStrategy::Park, ..paused("spsc_doorbells_garbage", Kind::Spsc, SLEEPY, doorbells, clean) },
    Scenario { wait: WaitStrategy::Park, ..paused("bytes_doorbells_garbage", Kind::Bytes, SLEEPY, doorbells, clean) },
    Scenario { wait: WaitStrategy::Park, ..paused("mpmc_doorbells_garbage", Kind::Mpmc, SLEEPY, doorbells, clean) },
    // ---- running: two victim threads, the attacker hammering ----
    Scenario { wait: WaitStrategy::Park, ..running("spsc_race_doorbells", Kind::Spsc, 300, hammer_doorbells, clean) },
    Scenario { wait: WaitStrategy::Park, ..running("bytes_race_doorbells", Kind::Bytes, 300, hammer_doorbells, clean) },
    Scenario { wait: WaitStrategy::Park, ..running("mpmc_race_doorbells", Kind::Mpmc, 300, hammer_doorbells, clean) },
    Scenario {
        reopen: Some(garbage_header_refused),
        ..running("spsc_race_header", Kind::Spsc, 300, hammer_header, clean)
    },
    Scenario {
        reopen: Some(garbage_header_refused),
        ..running("bytes_race_header", Kind::Bytes, 300, hammer_header, clean)
    },
    Scenario {
        reopen: Some(garbage_header_refused),
        ..running("mpmc_race_header", Kind::Mpmc, 300, hammer_header, clean)
    },
    running("spsc_race_liveness", Kind::Spsc, 300, hammer_liveness, clean),
    running("bytes_race_liveness", Kind::Bytes, 300, hammer_liveness, clean),
    running("mpmc_race_liveness", Kind::Mpmc, 300, hammer_liveness, clean),
    // Garbage sequence words (never "full" for any position) at the
    // consumer's slot: caught, and nothing wrong was accepted before.
    running(
        "spsc_race_seq",
        Kind::Spsc,
        5000,
        |t, rng| t.put(t.seq_at(t.r()), 0xBAD0_0000_0000_0000 | (rng.next_u64() & 0xFFFF)),
        |_, r| r.error_where("rx:Sequence", |e| e.starts_with("rx:Sequence")),
    ),
    running(
        "mpmc_race_seq",
        Kind::Mpmc,
        5000,
        |t, rng| t.put(t.seq_at(t.r()), 0x3BAD_0000_0000_0000 | (rng.next_u64() & 0xFFFF)),
        |_, r| r.error_where("rx or tx:Sequence", |e| e.starts_with("rx:Sequence") || e.starts_with("tx:Sequence")),
    ),
    // Impossible record headers at the consumer's offset: caught. An
    // attacker descheduled between reading read_pos and writing may land in
    // a later record's payload instead: undetectable, so bad records are
    // allowed here.
    running(
        "bytes_race_records",
        Kind::Bytes,
        5000,
        |t, rng| {
            let flags = if rng.next_u64() & 1 == 0 { 0 } else { 2 + rng.next_u64() % 5 };
            t.put(t.rec_at(t.r()), 0xFFFF_FFF0 | flags << 32);
        },
        |_, r| {
            let first = r.first.as_deref().unwrap_or_default();
            assert!(first.starts_with("rx:RecordLength") || first.starts_with("rx:RecordFlags"), "{r:?}");
        },
    ),
    running("spsc_race_positions", Kind::Spsc, 300, hammer_positions, survived),
    running("bytes_race_positions", Kind::Bytes, 300, hammer_positions, survived),
    running("mpmc_race_positions", Kind::Mpmc, 300, hammer_positions, survived),
    running("mpmc_race_registry", Kind::Mpmc, 300, hammer_registry, survived),
    running("spsc_race_spray_control", Kind::Spsc, 300, |t, rng| spray(t, rng, WRITE_POS, SLOTS), survived),
    running("spsc_race_spray_all", Kind::Spsc, 300, |t, rng| spray(t, rng, 0, t.len()), survived),
    running("bytes_race_spray_all", Kind::Bytes, 300, |t, rng| spray(t, rng, 0, t.len()), survived),
    running("mpmc_race_spray_all", Kind::Mpmc, 300, |t, rng| spray(t, rng, 0, t.len()), survived),
];

fn doorbells(t: &Target<'_>, rng: &mut Rng) {
    // data: random epoch, a sleeper count about to wrap, random flags;
    // space: all zero (unarmed, "nobody waits").
    t.put32(WAIT_LINE, rng.next_u64() as u32);
    t.put32(WAIT_LINE + 4, u32::MAX);
    t.put32(WAIT_LINE + 8, rng.next_u64() as u32);
    t.put32(WAIT_LINE + 12, rng.next_u64() as u32 | 1);
    t.put(WAIT_LINE + 16, 0);
    t.put(WAIT_LINE + 24, 0);
}

fn hammer_doorbells(t: &Target<'_>, rng: &mut Rng) {
    let v = match rng.next_u64() % 4 {
        0 => 0,
        1 => u32::MAX,
        _ => rng.next_u64() as u32,
    };
    t.put32(WAIT_LINE + 4 * (rng.next_u64() % 8), v);
}

fn hammer_header(t: &Target<'_>, rng: &mut Rng) {
    for at in (0..128).step_by(8) {
        t.put(at, rng.next_u64());
    }
}

fn hammer_liveness(t: &Target<'_>, rng: &mut Rng) {
    t.put(LIVENESS + 8 * (rng.next_u64() % 16), rng.next_u64());
}

fn hammer_positions(t: &Target<'_>, rng: &mut Rng) {
    let at = if rng.next_u64() & 1 == 0 { WRITE_POS } else { READ_POS };
    let now = t.get(at);
    let v = match rng.next_u64() % 4 {
        0 => rng.next_u64(),
        1 => now.wrapping_add(rng.next_u64() % 64).wrapping_sub(32),
        2 => u64::MAX - rng.next_u64() % 64,
        _ => now.wrapping_add(FAR),
    };
    t.put(at, v);
}

fn hammer_registry(t: &Target<'_>, rng: &mut Rng) {
    let entry = REGISTRY + ENTRY * (rng.next_u64() % 24);
    match rng.next_u64() % 3 {
        0 => t.put32(entry, (rng.next_u64() % 4) as u32),
        1 => t.put(entry + 8, t.r().wrapping_add(rng.next_u64() % 3)),
        _ => t.put(entry + 8 * (rng.next_u64() % 16), rng.next_u64()),
    }
}

fn spray(t: &Target<'_>, rng: &mut Rng, from: u64, to: u64) {
    t.put(from + 8 * (rng.next_u64() % ((to - from) / 8)), rng.next_u64());
}

fn garbage_header_refused(_: &Ctx, res: Result<(), OpenError>) {
    assert!(
        matches!(res, Err(OpenError::Layout { source: LayoutError::BadMagic { .. }, .. } | OpenError::NotReady { .. })),
        "{res:?}"
    );
}

fn scenario(name: &str) -> &'static Scenario {
    SCENARIOS.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no scenario {name}"))
}

// ---------------------------------------------------------------- parent

fn run_all(filter: impl Fn(&Scenario) -> bool) {
    let _serial = common::serial();
    let started = Instant::now();
    let mut n = 0;
    for sc in SCENARIOS.iter().filter(|s| filter(s)) {
        run(sc);
        n += 1;
    }
    eprintln!("{n} scenarios in {:?}", started.elapsed());
}

#[test]
fn spsc_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Spsc && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn bytes_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Bytes && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn mpmc_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Mpmc && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn racing_attackers() {
    run_all(|s| matches!(s.mode, Mode::Running { .. }));
}

fn run(sc: &'static Scenario) {
    let started = Instant::now();
    let shm = Shm::new(sc.name);
    let files = ["report", "paused", "go", "err", "stop"].map(|what| Scratch::new(sc.name, what));
    let [out, paused, go, err, stop] = &files;
    leave_segment(sc.kind, &shm);
    let seed = sc.name.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
    let vars = [
        ("NAME", shm.name.clone()),
        ("SCENARIO", sc.name.to_owned()),
        ("OUT", out.arg()),
        ("PAUSED", paused.arg()),
        ("GO", go.arg()),
        ("ERR", err.arg()),
        ("STOP", stop.arg()),
        ("SEED", seed.to_string()),
    ];
    let mut ctx = Ctx::default();
    if let Mode::AtRest(_) = sc.mode {
        spawn("attacker", &vars).wait_ok(LIMIT);
        spawn("victim", &vars).wait_ok(LIMIT);
    } else {
        let mut victim = spawn("victim", &vars);
        common::wait_until("the victim to get going", LIMIT, || paused.path.exists() || victim.has_exited());
        assert!(paused.path.exists(), "{}: victim left early: {}", sc.name, read_report(out));
        ctx = positions(&shm);
        spawn("attacker", &vars).wait_ok(LIMIT);
        // Observers must cope with whatever is there now.
        let _ = shmlane::inspect(&shm.path());
        if let Some(check) = sc.reopen {
            check(&ctx, try_open(sc.kind, &shm.name));
        }
        let resume = if let Mode::Paused(_) = sc.mode { go } else { stop };
        std::fs::write(&resume.path, b"").expect("write marker");
        // The exit status says: no panic, no signal (SIGSEGV, SIGBUS), and
        // no hang past LIMIT.
        victim.wait_ok(LIMIT);
    }
    let report = Report::parse(&read_report(out));
    eprintln!("{}: {ctx:?} {report:?} in {:?}", sc.name, started.elapsed());
    (sc.expect)(&ctx, &report);
    shmlane::remove(&shm.name, None).expect("remove");
    shm.assert_gone();
}

/// Creates the segment and leaves it, roles free, for the victim to open.
fn leave_segment(kind: Kind, shm: &Shm) {
    let opts = Options::new().keep(true);
    match kind {
        Kind::Spsc => drop(Producer::<Msg>::create(&shm.name, opts.capacity(FIXED_CAP)).expect("create")),
        Kind::Bytes => drop(ByteProducer::create(&shm.name, opts.capacity(BYTE_CAP)).expect("create")),
        Kind::Mpmc => drop(MpmcProducer::<Msg>::create(&shm.name, opts.capacity(FIXED_CAP)).expect("create")),
    }
}

fn read_u64(path: &Path, at: u64) -> u64 {
    let mut buf = [0; 8];
    std::fs::File::open(path).and_then(|f| f.read_exact_at(&mut buf, at)).expect("read segment file");
    u64::from_le_bytes(buf)
}

fn positions(shm: &Shm) -> Ctx {
    Ctx { w: read_u64(&shm.path(), WRITE_POS), r: read_u64(&shm.path(), READ_POS) }
}

fn try_open(kind: Kind, name: &str) -> Result<(), OpenError> {
    let opts = Options::new().ready_timeout(Duration::from_millis(50));
    match kind {
        Kind::Spsc => Consumer::<Msg>::open(name, opts).map(drop),
        Kind::Bytes => ByteConsumer::open(name, opts).map(drop),
        Kind::Mpmc => MpmcConsumer::<Msg>::open(name, opts).map(drop),
    }
}

fn read_report(out: &Scratch) -> String {
    std::fs::read_to_string(&out.path).unwrap_or_else(|e| format!("(no report: {e})"))
}

/// What the victim saw.
#[derive(Debug, Default)]
struct Report {
    /// The first error (`tx:` or `rx:` and what), `None` for a clean run.
    first: Option<String>,
    /// Messages accepted, all phases.
    received: u64,
    /// Accepted messages that were not the next one, intact.
    bad: u64,
    first_bad: Option<String>,
    /// Running mode: how a final single-threaded check went (drain, then
    /// a few messages), if the race ended without an error.
    after: Option<String>,
    /// MPMC header `skipped` counter at the end.
    skipped: u64,
}

impl Report {
    fn render(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".to_owned());
        format!(
            "first={}\nreceived={}\nbad={}\nfirst_bad={}\nafter={}\nskipped={}\n",
            opt(&self.first),
            self.received,
            self.bad,
            opt(&self.first_bad),
            opt(&self.after),
            self.skipped
        )
    }

    fn parse(text: &str) -> Self {
        let mut r = Report::default();
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("bad report line {line:?}"));
            let opt = || (value != "none").then(|| value.to_owned());
            let num = || value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            match key {
                "first" => r.first = opt(),
                "received" => r.received = num(),
                "bad" => r.bad = num(),
                "first_bad" => r.first_bad = opt(),
                "after" => r.after = opt(),
                "skipped" => r.skipped = num(),
                _ => panic!("bad report line {line:?}"),
            }
        }
        r
    }

    #[track_caller]
    fn clean(&self) {
        assert_eq!((self.first.as_deref(), self.bad, self.after.as_deref()), (None, 0, None), "{self:?}");
    }

    #[track_caller]
    fn error(&self, want: &str) {
        assert_eq!(self.first.as_deref(), Some(want), "{self:?}");
        assert_eq!(self.bad, 0, "a bad message was accepted before the error: {self:?}");
    }

    #[track_caller]
    fn error_where(&self, what: &str, ok: impl Fn(&str) -> bool) {
        assert!(self.first.as_deref().is_some_and(ok), "expected {what}: {self:?}");
        assert_eq!(self.bad, 0, "a bad message was accepted before the error: {self:?}");
    }

    /// `side:Positions { write: _, read: <read>, capacity: <capacity> }`.
    #[track_caller]
    fn error_positions(&self, side: &str, read: u64, capacity: u64) {
        let tail = format!("read: {read}, capacity: {capacity} }}");
        self.error_where(&format!("{side}:Positions .. {tail}"), |e| {
            e.starts_with(&format!("{side}:Positions {{")) && e.ends_with(&tail)
        });
    }
}

// ---------------------------------------------------------------- victim

/// Why a call failed, without the message it carried.
enum Fail {
    Timeout,
    Disconnected,
    Corrupted(Corruption),
    Other(String),
}

impl Fail {
    fn on(self, side: &str) -> String {
        match self {
            Fail::Timeout => format!("{side}:Timeout"),
            Fail::Disconnected => format!("{side}:Disconnected"),
            Fail::Corrupted(c) => format!("{side}:{c:?}"),
            Fail::Other(e) => format!("{side}:Other({e})"),
        }
    }
}

fn send_fail<T>(e: SendError<T>) -> Fail {
    match e {
        SendError::Timeout(_) => Fail::Timeout,
        SendError::Disconnected(_) => Fail::Disconnected,
        SendError::Corrupted(_, c) => Fail::Corrupted(c),
        SendError::Io(_, e) => Fail::Other(e.to_string()),
    }
}

fn recv_fail(e: RecvError) -> Fail {
    match e {
        RecvError::Timeout => Fail::Timeout,
        RecvError::Disconnected => Fail::Disconnected,
        RecvError::Corrupted(c) => Fail::Corrupted(c),
        other => Fail::Other(other.to_string()),
    }
}

fn reserve_fail(e: ReserveError) -> Fail {
    match e {
        ReserveError::Timeout => Fail::Timeout,
        ReserveError::Disconnected => Fail::Disconnected,
        ReserveError::Corrupted(c) => Fail::Corrupted(c),
        other => Fail::Other(other.to_string()),
    }
}

/// A received message: its index (as it claims) and whether it is exactly
/// message `index`.
struct Got {
    index: Option<u64>,
    intact: bool,
}

/// The sending half of any flavor; message `i` is a function of `i`.
trait Tx: Send {
    /// `Ok(false)`: full now.
    fn offer(&mut self, i: u64) -> Result<bool, Fail>;
    fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail>;
}

/// The receiving half of any flavor.
trait Rx: Send {
    fn poll(&mut self) -> Result<Option<Got>, Fail>;
    fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail>;
}

fn judge_msg(m: Msg) -> Got {
    Got { index: Some(m.seq), intact: m == Msg::new(m.seq) }
}

macro_rules! fixed_lane {
    ($tx:ty, $rx:ty) => {
        impl Tx for $tx {
            fn offer(&mut self, i: u64) -> Result<bool, Fail> {
                match self.try_send(Msg::new(i)) {
                    Ok(()) => Ok(true),
                    Err(TrySendError::Full(_)) => Ok(false),
                    Err(TrySendError::Disconnected(_)) => Err(Fail::Disconnected),
                    Err(TrySendError::Corrupted(_, c)) => Err(Fail::Corrupted(c)),
                }
            }
            fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail> {
                self.send_timeout(Msg::new(i), timeout).map_err(send_fail)
            }
        }
        impl Rx for $rx {
            fn poll(&mut self) -> Result<Option<Got>, Fail> {
                self.try_recv().map(|m| m.map(judge_msg)).map_err(recv_fail)
            }
            fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail> {
                self.recv_timeout(timeout).map(judge_msg).map_err(recv_fail)
            }
        }
    };
}

fixed_lane!(Producer<Msg>, Consumer<Msg>);
fixed_lane!(MpmcProducer<Msg>, MpmcConsumer<Msg>);

/// Byte record `i`: its index, then 0..57 bytes derived from it (lengths
/// 8..=64, most of them not a multiple of 8).
fn record(i: u64) -> Vec<u8> {
    let len = 8 + (mix(i) % 57) as usize;
    let mut bytes = i.to_le_bytes().to_vec();
    bytes.extend((8..len).map(|k| mix(i ^ ((k as u64) << 40)) as u8));
    bytes
}

fn judge_bytes(payload: &[u8]) -> Got {
    match payload.first_chunk::<8>() {
        Some(head) => {
            let i = u64::from_le_bytes(*head);
            Got { index: Some(i), intact: payload == record(i).as_slice() }
        }
        None => Got { index: None, intact: false },
    }
}

impl Tx for ByteProducer {
    fn offer(&mut self, i: u64) -> Result<bool, Fail> {
        let payload = record(i);
        match self.try_reserve(payload.len()) {
            Ok(Some(mut grant)) => {
                grant.copy_from_slice(&payload);
                grant.commit();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(reserve_fail(e)),
        }
    }
    fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail> {
        let payload = record(i);
        let mut grant = self.reserve_timeout(payload.len(), timeout).map_err(reserve_fail)?;
        grant.copy_from_slice(&payload);
        grant.commit();
        Ok(())
    }
}

impl Rx for ByteConsumer {
    fn poll(&mut self) -> Result<Option<Got>, Fail> {
        match self.try_recv() {
            Ok(Some(record)) => Ok(Some(judge_bytes(&record))),
            Ok(None) => Ok(None),
            Err(e) => Err(recv_fail(e)),
        }
    }
    fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail> {
        self.recv_timeout(timeout).map(|record| judge_bytes(&record)).map_err(recv_fail)
    }
}

/// Checks every accepted message is the next one, intact.
#[derive(Debug, Default)]
struct Checker {
    expected: u64,
    received: u64,
    bad: u64,
    first_bad: Option<String>,
}

impl Checker {
    fn take(&mut self, got: Got) {
        self.received += 1;
        if got.index == Some(self.expected) && got.intact {
            self.expected += 1;
            return;
        }
        self.bad += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(format!("expected {}, got {:?} intact {}", self.expected, got.index, got.intact));
        }
        // Resynchronise on an intact message (a gap), else skip one.
        self.expected = match got.index {
            Some(i) if got.intact => i.wrapping_add(1),
            _ => self.expected + 1,
        };
    }
}

/// A victim's two halves.
type Lanes = (Box<dyn Tx>, Box<dyn Rx>);

struct Victim {
    tx: Box<dyn Tx>,
    rx: Box<dyn Rx>,
    /// Index of the next message to send.
    next: u64,
    check: Checker,
}

fn open_pair(kind: Kind, name: &str, wait: WaitStrategy) -> Result<Lanes, OpenError> {
    let opts = || Options::new().wait(wait);
    Ok(match kind {
        Kind::Spsc => (Box::new(Producer::<Msg>::open(name, opts())?), Box::new(Consumer::<Msg>::open(name, opts())?)),
        Kind::Bytes => (Box::new(ByteProducer::open(name, opts())?), Box::new(ByteConsumer::open(name, opts())?)),
        Kind::Mpmc => {
            (Box::new(MpmcProducer::<Msg>::open(name, opts())?), Box::new(MpmcConsumer::<Msg>::open(name, opts())?))
        }
    })
}

impl Victim {
    /// Runs `steps`; the first error ends the program.
    fn run(&mut self, steps: &[Step]) -> Option<String> {
        steps.iter().try_for_each(|&s| self.step(s)).err()
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        // Any honest ring says full or empty long before this many calls.
        const BOUND: u32 = 4096;
        match step {
            Step::Fill => {
                for _ in 0..BOUND {
                    if !self.tx.offer(self.next).map_err(|e| e.on("tx"))? {
                        return Ok(());
                    }
                    self.next += 1;
                }
                Err("tx:never full".to_owned())
            }
            Step::Drain => {
                for _ in 0..BOUND {
                    match self.rx.poll().map_err(|e| e.on("rx"))? {
                        Some(got) => self.check.take(got),
                        None => return Ok(()),
                    }
                }
                Err("rx:never empty".to_owned())
            }
            Step::Flow(n) => {
                for _ in 0..n {
                    self.tx.put(self.next, OP).map_err(|e| e.on("tx"))?;
                    self.next += 1;
                    let got = self.rx.fetch(OP).map_err(|e| e.on("rx"))?;
                    self.check.take(got);
                }
                Ok(())
            }
            Step::WaitEmpty => {
                let started = Instant::now();
                match self.rx.fetch(SHORT) {
                    Ok(got) => self.check.take(got),
                    Err(Fail::Timeout) => {}
                    Err(e) => return Err(e.on("rx")),
                }
                if started.elapsed() > HANG { Err(format!("rx:hung {:?}", started.elapsed())) } else { Ok(()) }
            }
            Step::WaitFull => {
                self.step(Step::Fill)?;
                let started = Instant::now();
                match self.tx.put(self.next, SHORT) {
                    Ok(()) => self.next += 1,
                    Err(Fail::Timeout) => {}
                    Err(e) => return Err(e.on("tx")),
                }
                if started.elapsed() > HANG { Err(format!("tx:hung {:?}", started.elapsed())) } else { Ok(()) }
            }
        }
    }

    /// Lockstep exchange, then a few messages left unread.
    fn warm_up(&mut self, kind: Kind) -> Result<(), String> {
        let (lockstep, unread) = pre_counts(kind);
        self.step(Step::Flow(lockstep as u32))?;
        for _ in 0..unread {
            self.tx.put(self.next, OP).map_err(|e| e.on("tx"))?;
            self.next += 1;
        }
        Ok(())
    }

    /// A producer thread and a consumer thread until `stop_file` appears
    /// or one of them fails (which creates `err_file`, the attacker's cue).
    fn race(&mut self, stop_file: &Path, err_file: &Path, started_file: &Path) -> Option<String> {
        let stop = AtomicBool::new(false);
        let first = Mutex::new(None);
        let fail = |what: String| {
            let mut first = first.lock().expect("lock");
            if first.is_none() && !stop.load(Ordering::SeqCst) {
                *first = Some(what);
                std::fs::write(err_file, b"").expect("write error marker");
            }
            stop.store(true, Ordering::SeqCst);
        };
        let Victim { tx, rx, next, check } = self;
        let from = *next;
        let (stop, fail) = (&stop, &fail);
        std::thread::scope(|s| {
            let sender = s.spawn(move || {
                let mut i = from;
                while !stop.load(Ordering::SeqCst) {
                    match tx.put(i, RACE_OP) {
                        Ok(()) => i += 1,
                        Err(Fail::Timeout) => {}
                        Err(e) => {
                            fail(e.on("tx"));
                            break;
                        }
                    }
                }
                i
            });
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match rx.fetch(RACE_OP) {
                        Ok(got) => check.take(got),
                        Err(Fail::Timeout) => {}
                        Err(e) => {
                            fail(e.on("rx"));
                            break;
                        }
                    }
                }
            });
            std::fs::write(started_file, b"").expect("write marker");
            let deadline = Instant::now() + LIMIT;
            while !stop.load(Ordering::SeqCst) && !stop_file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, Ordering::SeqCst);
            *next = sender.join().expect("sender thread");
        });
        first.into_inner().expect("lock")
    }
}

fn victim() {
    let sc = scenario(&common::var("SCENARIO"));
    let name = common::var("NAME");
    let marker = |key: &str| std::path::PathBuf::from(common::var(key));
    let mut report = Report::default();
    match open_pair(sc.kind, &name, sc.wait) {
        Err(e) => report.first = Some(format!("open:{e}")),
        Ok((tx, rx)) => {
            let mut v = Victim { tx, rx, next: 0, check: Checker::default() };
            report.first = match sc.mode {
                Mode::AtRest(steps) => v.run(steps),
                Mode::Paused(steps) => match v.warm_up(sc.kind) {
                    Err(e) => Some(format!("warm-up:{e}")),
                    Ok(()) => {
                        std::fs::write(marker("PAUSED"), b"").expect("write marker");
                        common::wait_until("the attacker", LIMIT, || marker("GO").exists());
                        v.run(steps)
                    }
                },
                Mode::Running { .. } => match v.warm_up(sc.kind) {
                    Err(e) => Some(format!("warm-up:{e}")),
                    Ok(()) => {
                        let first = v.race(&marker("STOP"), &marker("ERR"), &marker("PAUSED"));
                        // Still a working ring after the attack?
                        if first.is_none() {
                            report.after = v.run(&[Step::Drain, Step::Flow(8)]);
                        }
                        first
                    }
                },
            };
            report.received = v.check.received;
            report.bad = v.check.bad;
            report.first_bad = v.check.first_bad.take();
        }
    }
    if sc.kind == Kind::Mpmc {
        report.skipped = read_u64(&shmlane::segment_path(&name, None).expect("name"), SKIPPED_AT);
    }
    let out = marker("OUT");
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, report.render()).expect("write report");
    std::fs::rename(&tmp, &out).expect("publish report");
}

// ---------------------------------------------------------------- attacker

/// The attacker's view of the segment: raw words at layout offsets.
struct Target<'a> {
    map: &'a MmapRaw,
    mask: u64,
    slot_size: u64,
}

impl<'a> Target<'a> {
    fn new(map: &'a MmapRaw) -> Self {
        let mut t = Self { map, mask: 0, slot_size: 0 };
        // Read once, before any damage.
        t.mask = t.get(CAPACITY_AT).wrapping_sub(1);
        t.slot_size = u64::from(t.half(SLOT_SIZE_AT).load(Ordering::SeqCst));
        t
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn at(&self, offset: u64, width: u64) -> *mut u8 {
        assert!(offset % width == 0 && offset + width <= self.len(), "attack at {offset} is outside the segment");
        self.map.as_mut_ptr().wrapping_add(offset as usize)
    }

    fn word(&self, offset: u64) -> &AtomicU64 {
        let p = self.at(offset, 8);
        // SAFETY: `at` checked the 8 bytes lie inside the mapping, which
        // `self` borrows (so it stays mapped), and are 8-aligned (the
        // mapping is page aligned). Any bits are a valid u64. The victim
        // process writes the same bytes: that race is the test, and it is
        // outside this process's memory.
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    fn half(&self, offset: u64) -> &AtomicU32 {
        let p = self.at(offset, 4);
        // SAFETY: as in `word`, for 4 bytes 4-aligned.
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    fn get(&self, offset: u64) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }

    fn put(&self, offset: u64, value: u64) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    fn put32(&self, offset: u64, value: u32) {
        self.half(offset).store(value, Ordering::SeqCst);
    }

    fn w(&self) -> u64 {
        self.get(WRITE_POS)
    }

    fn r(&self) -> u64 {
        self.get(READ_POS)
    }

    /// Sequence word of the slot of `pos` (fixed flavors).
    fn seq_at(&self, pos: u64) -> u64 {
        SLOTS + (pos & self.mask) * self.slot_size
    }

    /// Record header at `pos` (byte ring).
    fn rec_at(&self, pos: u64) -> u64 {
        SLOTS + (pos & self.mask)
    }
}

fn attacker() {
    let sc = scenario(&common::var("SCENARIO"));
    let path = shmlane::segment_path(&common::var("NAME"), None).expect("name");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open segment file");
    let map = MmapRaw::map_raw(&file).expect("map segment file");
    let target = Target::new(&map);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let Mode::Running { ms } = sc.mode else {
        (sc.attack)(&target, &mut rng);
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(ms);
    let victim_failed = std::path::PathBuf::from(common::var("ERR"));
    for round in 0u64.. {
        (sc.attack)(&target, &mut rng);
        if round % 64 == 0 {
            if Instant::now() >= deadline || victim_failed.exists() {
                break;
            }
            // Two cores, two victim threads: let them run.
            std::thread::yield_now();
        }
    }
}
