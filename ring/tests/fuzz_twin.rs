//! The proptest twin of the cargo-fuzz targets in `fuzz/`: the same entry
//! points (`shmlane_ring::testing`), run on every `cargo test`.
//!
//! Fully arbitrary bytes mostly stop at header validation; the deep code
//! (positions, sequence words, record headers, padding) is reached by
//! taking valid segments of every flavor and overwriting a few bytes or
//! words, or nudging a word by a small delta, at offsets chosen inside the
//! fields that matter. The entry points panic if the ring breaks its
//! contract, so each property is "this does not panic" plus what a
//! valid segment must give.

use proptest::prelude::*;
use shmlane_ring::Corruption;
use shmlane_ring::layout::{
    CONSUMER_LINE_OFFSET, PRODUCER_LINE_OFFSET, REGISTRY_OFFSET, SLOTS_OFFSET, WAIT_LINE_OFFSET,
};
use shmlane_ring::testing::{drain_byte_records, open_and_drain, sample_byte_record_inputs, sample_segments};
use std::ops::Range;
use std::sync::LazyLock;

/// Built once: every case starts from a copy.
static SEGMENTS: LazyLock<Vec<(&str, Vec<u8>)>> = LazyLock::new(sample_segments);
static RECORD_INPUTS: LazyLock<Vec<(&str, Vec<u8>)>> = LazyLock::new(sample_byte_record_inputs);

/// Where mutations land in a segment image: header, both positions, the
/// doorbells, registry entry 0, and the slots.
const SEGMENT_AREAS: [Range<usize>; 6] = [
    0..128,
    PRODUCER_LINE_OFFSET..PRODUCER_LINE_OFFSET + 8,
    CONSUMER_LINE_OFFSET..CONSUMER_LINE_OFFSET + 8,
    WAIT_LINE_OFFSET..WAIT_LINE_OFFSET + 32,
    REGISTRY_OFFSET..REGISTRY_OFFSET + 16,
    SLOTS_OFFSET..usize::MAX,
];

/// Where mutations land in a `drain_byte_records` input: the capacity
/// selector, the two positions, the data area.
const RECORD_AREAS: [Range<usize>; 4] = [0..1, 1..9, 9..17, 17..usize::MAX];

/// One overwrite: (area, index in the area, kind, value). Kind 0 writes the
/// byte `value as u8`, kind 1 the word `value`, kind 2 adds a delta in
/// -16..=16 (times 8 if bit 40 of `value` is set: positions stay aligned) to
/// the word: a position, sequence or record length off by a little. The
/// last area (slots, data) is picked three times as often as the others.
type Mutation = (usize, usize, u8, u64);

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<usize>(), any::<usize>(), 0u8..3, any::<u64>())
}

/// Applies `mutations`; words are 8-aligned from the start of their area.
fn mutate(bytes: &mut [u8], areas: &[Range<usize>], mutations: &[Mutation]) {
    for &(area, index, kind, value) in mutations {
        let area = &areas[(area % (areas.len() + 2)).min(areas.len() - 1)];
        let (start, end) = (area.start.min(bytes.len()), area.end.min(bytes.len()));
        if start >= end {
            continue;
        }
        let at = start + index % (end - start);
        let word_at = start + (at - start) / 8 * 8;
        if kind == 0 || word_at + 8 > end {
            bytes[at] = value as u8;
            continue;
        }
        let word = &mut bytes[word_at..word_at + 8];
        let old = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let step = if value & (1 << 40) != 0 { 8 } else { 1 };
        let new = if kind == 1 { value } else { old.wrapping_add((value % 33).wrapping_sub(16).wrapping_mul(step)) };
        word.copy_from_slice(&new.to_le_bytes());
    }
}

#[test]
fn sample_segments_are_valid_and_round_trip() {
    for (name, segment) in sample_segments() {
        let out = open_and_drain(&segment);
        assert!(out.flavor.is_some(), "{name}: {out:?}");
        assert_eq!((&out.layout_error, &out.corruption), (&None, &None), "{name}");
        assert!(out.written > 0 && out.read > 0, "{name}: {out:?}");
    }
    for (name, input) in sample_byte_record_inputs() {
        let out = drain_byte_records(&input);
        assert_eq!((&out.layout_error, &out.corruption), (&None, &None), "{name}");
        // Every sample holds at least one unread record, and the pushes
        // that follow (all but the one too large) come back.
        assert!(out.read > out.written && out.written == 8, "{name}: {out:?}");
    }
}

/// Found by `mutated_segments_never_panic` (a false alarm of the old push
/// bound, kept as a regression): `write_pos` trails `read_pos` by the
/// capacity and slot 0 holds a sequence no lap explains. The consumer
/// reports the slot, the producer restarts at `read_pos`, and then the
/// consumer pops the stale slots 2 and 3 the producer thinks free: its
/// next two pushes are lost and it accepts more than a capacity of pushes
/// in a row. Garbage in, garbage out, but no panic, and the bound counts the
/// consumer's pops.
#[test]
fn consumer_passing_the_producer_is_no_crash() {
    let mut segment = SEGMENTS.iter().find(|(name, _)| *name == "spsc-u8-full").expect("sample").1.clone();
    segment[PRODUCER_LINE_OFFSET..PRODUCER_LINE_OFFSET + 8].copy_from_slice(&4u64.wrapping_sub(8).to_le_bytes());
    segment[SLOTS_OFFSET] = 2;
    let out = open_and_drain(&segment);
    assert_eq!(out.corruption, Some(Corruption::Sequence { pos: 0, found: 2 }));
    assert_eq!((out.read, out.written), (8, 8));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..5000)) {
        open_and_drain(&bytes);
        drain_byte_records(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_segments_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut segment = which.get(&SEGMENTS).1.clone();
        mutate(&mut segment, &SEGMENT_AREAS, &mutations);
        open_and_drain(&segment);
    }

    #[test]
    fn mutated_byte_records_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut input = which.get(&RECORD_INPUTS).1.clone();
        mutate(&mut input, &RECORD_AREAS, &mutations);
        drain_byte_records(&input);
    }
}

/// Writes the samples as seed corpora for `fuzz/` (run by hand after a
/// layout change: `cargo test -p shmlane-ring --test fuzz_twin -- --ignored`).
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    for (target, samples) in [("open_and_drain", sample_segments()), ("byte_records", sample_byte_record_inputs())] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create seed directory");
        for (name, bytes) in samples {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}
