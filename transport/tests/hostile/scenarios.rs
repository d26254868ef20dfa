//! The scenario table: every attack, and what the victim must see after it.

use crate::attacker::{
    doorbells, hammer_doorbells, hammer_header, hammer_liveness, hammer_positions, hammer_registry, spray,
};
use crate::offsets::{
    BYTE_CAP, CAPACITY_AT, ENTRY, FAR, FIXED_CAP, FIXED_LEN, FLAVOR_AT, MAGIC_AT, MSG_SIZE_AT, READ_POS, REGISTRY,
    SKIPPED, SLOT_SIZE_AT, SLOTS, STATE_AT, TOTAL_LEN_AT, VERSION_AT, WRITE_POS,
};
use crate::scenario::{
    Ctx, Kind, RX_FIRST, SLEEPY, Scenario, Step, TX_FIRST, at_rest, clean, header, paused, pre_counts, running,
    survived,
};
use shmlane::{Corruption, LayoutError, OpenError, WaitStrategy};

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

pub(crate) static SCENARIOS: &[Scenario] = &[
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

fn garbage_header_refused(_: &Ctx, res: Result<(), OpenError>) {
    assert!(
        matches!(res, Err(OpenError::Layout { source: LayoutError::BadMagic { .. }, .. } | OpenError::NotReady { .. })),
        "{res:?}"
    );
}
