//! Byte records: edges first, then threads, then corruption.

mod common;

use common::{Retry, SharedMem, TestError, XorShift, mix, one_stress_at_a_time, patient, peek, poke};
use shmlane_ring::bytes::{FLAG_PAD, RECORD_HEADER};
use shmlane_ring::layout::SLOTS_OFFSET;
use shmlane_ring::{
    ByteConsumer, ByteProducer, Corruption, Creator, Flavor, HeapMemory, LayoutError, Params, Region, ReserveError,
    SpscProducer, WaitStrategy,
};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// A byte ring of `capacity` bytes whose raw memory the test can reach.
fn ring(capacity: u64) -> (ByteProducer, ByteConsumer, Region, Arc<HeapMemory>) {
    let params = Params::bytes(capacity).unwrap();
    let mem = Arc::new(HeapMemory::zeroed(params.region_len().unwrap() as usize));
    let region = Region::create(Box::new(SharedMem(mem.clone())), params, Creator::default()).unwrap();
    let tx = ByteProducer::attach(region.clone()).unwrap();
    let rx = ByteConsumer::attach(region.clone()).unwrap();
    (tx, rx, region, mem)
}

/// Bytes a record of `len` payload bytes takes in the ring.
fn footprint(len: usize) -> u64 {
    (RECORD_HEADER + len.next_multiple_of(8)) as u64
}

/// The record header at data offset `offset`, as (len, flags).
fn header_at(mem: &HeapMemory, offset: usize) -> (u32, u32) {
    let word = u64::from_le_bytes(peek(mem, SLOTS_OFFSET + offset));
    (word as u32, (word >> 32) as u32)
}

/// Writes a record header (len, flags) at data offset `offset`.
fn write_header_at(mem: &HeapMemory, offset: usize, len: u32, flags: u32) {
    let word = u64::from(len) | (u64::from(flags) << 32);
    poke(mem, SLOTS_OFFSET + offset, &word.to_le_bytes());
}

/// Reads one record and checks it is `expected`.
fn expect_record(rx: &mut ByteConsumer, expected: &[u8]) {
    let guard = rx.try_read().unwrap().expect("a record is waiting");
    assert_eq!(&*guard, expected);
}

/// Pushes and pops records until the producer's offset in the ring is
/// `offset` (a multiple of 8), leaving the ring empty.
fn move_to_offset(tx: &mut ByteProducer, rx: &mut ByteConsumer, offset: u64) {
    let capacity = tx.capacity() as u64;
    let mut pos = tx.region().positions().0;
    while pos % capacity != offset {
        let gap = (offset + capacity - pos % capacity) % capacity;
        // A record of footprint `gap` (at most the whole ring), or a smaller
        // one when the gap runs past the end and would need padding.
        let step = gap.min(capacity - pos % capacity);
        let len = (step - RECORD_HEADER as u64) as usize;
        assert!(tx.try_push(&vec![0x5a; len]).unwrap());
        assert_eq!(rx.try_read().unwrap().unwrap().len(), len);
        pos = tx.region().positions().0;
    }
    assert!(rx.try_read().unwrap().is_none());
}

#[test]
fn zero_length_records_round_trip() {
    let (mut tx, mut rx, region, _mem) = ring(64);
    assert!(tx.try_push(&[]).unwrap());
    let grant = tx.try_reserve(0).unwrap().unwrap();
    assert!(grant.is_empty());
    grant.commit();
    assert_eq!(region.positions(), (16, 0), "a zero-length record is its header alone");
    assert_eq!(rx.len_bytes(), 16);
    for _ in 0..2 {
        let guard = rx.try_read().unwrap().unwrap();
        assert!(guard.is_empty());
    }
    assert_eq!(region.positions(), (16, 16));
    assert!(rx.try_read().unwrap().is_none());
}

#[test]
fn a_record_of_max_len_fills_an_empty_ring() {
    let (mut tx, mut rx, region, _mem) = ring(64);
    let max = tx.max_record_len();
    assert_eq!(max, 64 - RECORD_HEADER);
    assert_eq!(region.params().max_record_len(), max);
    let payload: Vec<u8> = (0..max as u8).collect();
    assert!(tx.try_push(&payload).unwrap());
    assert!(!tx.try_push(&[]).unwrap(), "a record of max_record_len fills the ring");
    assert_eq!(rx.len_bytes(), 64);
    expect_record(&mut rx, &payload);
    assert!(tx.try_push(&payload).unwrap());
    expect_record(&mut rx, &payload);
}

#[test]
fn a_record_of_max_len_fits_an_empty_ring_at_every_offset() {
    for capacity in [64u64, 256] {
        for offset in (0..capacity).step_by(8) {
            let (mut tx, mut rx, _region, _mem) = ring(capacity);
            move_to_offset(&mut tx, &mut rx, offset);
            let payload: Vec<u8> = (0..tx.max_record_len()).map(|i| i as u8 ^ 0xa5).collect();
            // A record that cannot fit before the end goes behind a padding
            // record; once the consumer has passed the padding, the whole ring
            // is free for it. One poll of the consumer must be enough.
            let mut pushed = tx.try_push(&payload).unwrap();
            if !pushed {
                assert!(rx.try_read().unwrap().is_none(), "only padding in the ring");
                pushed = tx.try_push(&payload).unwrap();
            }
            assert!(pushed, "capacity {capacity}, offset {offset}: a max record never fits the empty ring");
            expect_record(&mut rx, &payload);
            assert!(rx.try_read().unwrap().is_none());
        }
    }
}

#[test]
fn one_byte_over_max_is_too_large_at_once() {
    let (mut tx, _rx, region, _mem) = ring(256);
    let max = tx.max_record_len();
    let too_large = ReserveError::TooLarge { len: max + 1, max };
    assert_eq!(tx.try_reserve(max + 1).unwrap_err(), too_large);
    assert_eq!(tx.try_push(&vec![0; max + 1]).unwrap_err(), too_large);
    assert_eq!(tx.try_reserve(usize::MAX).unwrap_err(), ReserveError::TooLarge { len: usize::MAX, max });
    // The blocking form refuses before it ever waits.
    for strategy in [WaitStrategy::BusySpin, WaitStrategy::Park] {
        let err = tx
            .reserve_blocking(max + 1, strategy, || -> Result<_, TestError> {
                panic!("waited for an impossible record")
            })
            .unwrap_err();
        assert!(matches!(err, TestError::Reserve(e) if e == too_large), "{err:?}");
    }
    assert!(!too_large.to_string().is_empty());
    assert_eq!(region.positions(), (0, 0));
}

#[test]
fn a_record_that_does_not_fit_before_the_end_goes_behind_padding() {
    let (mut tx, mut rx, region, mem) = ring(256);
    // Two records of 112 bytes each: the producer is 32 bytes from the end.
    for fill in [1u8, 2] {
        assert!(tx.try_push(&[fill; 100]).unwrap());
        expect_record(&mut rx, &[fill; 100]);
    }
    assert_eq!(region.positions(), (224, 224));
    // 48 bytes do not fit in the 32 left: padding, then the record at 0.
    let payload: Vec<u8> = (0..40).collect();
    assert!(tx.try_push(&payload).unwrap());
    assert_eq!(region.positions(), (224 + 32 + 48, 224));
    assert_eq!(header_at(&mem, 224), (32 - RECORD_HEADER as u32, FLAG_PAD));
    assert_eq!(header_at(&mem, 0), (40, 0));
    assert_eq!(rx.len_bytes(), 80);
    expect_record(&mut rx, &payload);
    assert_eq!(region.positions(), (304, 304));
    // A record that exactly reaches the end needs no padding.
    assert!(tx.try_push(&[3; 168]).unwrap());
    assert!(tx.try_push(&[4; 24]).unwrap());
    assert_eq!(region.positions().0, 304 + 176 + 32);
    assert_eq!(header_at(&mem, 224), (24, 0));
    expect_record(&mut rx, &[3; 168]);
    expect_record(&mut rx, &[4; 24]);
    assert!(rx.try_read().unwrap().is_none());
}

#[test]
fn commit_len_publishes_only_what_was_committed() {
    let (mut tx, mut rx, region, _mem) = ring(256);
    let mut grant = tx.try_reserve(100).unwrap().unwrap();
    assert_eq!(grant.len(), 100);
    grant.fill(0xab);
    grant.commit_len(10);
    assert_eq!(region.positions(), (footprint(10), 0));
    expect_record(&mut rx, &[0xab; 10]);
    let grant = tx.try_reserve(100).unwrap().unwrap();
    grant.commit_len(0);
    expect_record(&mut rx, &[]);
    assert_eq!(region.positions(), (footprint(10) + footprint(0), footprint(10) + footprint(0)));
}

#[test]
#[should_panic(expected = "beyond the 4 reserved bytes")]
fn commit_len_beyond_the_reservation_panics() {
    let (mut tx, _rx, _region, _mem) = ring(64);
    let grant = tx.try_reserve(4).unwrap().unwrap();
    grant.commit_len(5);
}

#[test]
fn a_dropped_grant_publishes_nothing() {
    let (mut tx, mut rx, region, _mem) = ring(256);
    {
        let mut grant = tx.try_reserve(20).unwrap().unwrap();
        grant.fill(0xee);
        // Dropped here, uncommitted.
    }
    assert_eq!(region.positions(), (0, 0));
    assert!(rx.try_read().unwrap().is_none());
    assert!(tx.try_push(b"kept").unwrap());
    expect_record(&mut rx, b"kept");
    // A dropped grant behind a padding record publishes the padding neither.
    move_to_offset(&mut tx, &mut rx, 224);
    assert_eq!(tx.try_reserve(40).unwrap().map(|grant| grant.len()), Some(40));
    assert_eq!(region.positions(), (224, 224));
    assert!(rx.try_read().unwrap().is_none());
    // The next record fits before the end and overwrites the stale padding.
    assert!(tx.try_push(&[7; 8]).unwrap());
    expect_record(&mut rx, &[7; 8]);
    assert_eq!(region.positions(), (240, 240));
}

#[test]
fn dropping_the_read_guard_releases_the_space() {
    let (mut tx, mut rx, region, _mem) = ring(64);
    assert!(tx.try_push(&[1; 56]).unwrap());
    assert!(!tx.try_push(&[]).unwrap());
    let guard = rx.try_read().unwrap().unwrap();
    assert_eq!(guard.len(), 56);
    assert!(!tx.try_push(&[]).unwrap(), "space is still held by the guard");
    assert_eq!(region.positions(), (64, 0));
    drop(guard);
    assert_eq!(region.positions(), (64, 64));
    assert!(tx.try_push(&[]).unwrap());
}

#[test]
fn a_byte_ring_is_not_a_typed_ring() {
    let spsc = Region::heap(Params::fixed(Flavor::Spsc, 4, 8, 8).unwrap()).unwrap();
    assert!(matches!(ByteProducer::attach(spsc.clone()), Err(LayoutError::FlavorMismatch { .. })));
    assert!(matches!(ByteConsumer::attach(spsc), Err(LayoutError::FlavorMismatch { .. })));
    let bytes = Region::heap(Params::bytes(64).unwrap()).unwrap();
    assert!(matches!(SpscProducer::<u64>::attach(bytes), Err(LayoutError::FlavorMismatch { .. })));
}

/// Length of record `seq`: mostly short, now and then up to the maximum.
fn record_len(seq: u64, max: usize) -> usize {
    let h = mix(seq);
    let bound = if h % 16 == 0 { max } else { 40 };
    ((h >> 8) % (bound as u64 + 1)) as usize
}

/// FNV-1a, 32 bits.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Writes the payload of record `seq` into `out` (its whole length): the
/// sequence number, a stream derived from it, and a checksum of the rest
/// at the end (when there is room for them).
fn fill_payload(seq: u64, out: &mut [u8]) {
    let mut rng = XorShift::new(seq);
    let mut word = 0;
    for (i, b) in out.iter_mut().enumerate() {
        if i % 8 == 0 {
            word = rng.next_u64();
        }
        *b = (word >> (i % 8 * 8)) as u8;
    }
    if out.len() >= 12 {
        out[..8].copy_from_slice(&seq.to_le_bytes());
        let body = out.len() - 4;
        let sum = checksum(&out[..body]);
        out[body..].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Checks `got` is record `seq`: its length, its own checksum, then every byte.
fn check_payload(seq: u64, got: &[u8], expected_len: usize, scratch: &mut Vec<u8>) {
    assert_eq!(got.len(), expected_len, "record {seq}: length");
    if got.len() >= 12 {
        let found = u64::from_le_bytes(got[..8].try_into().unwrap());
        assert_eq!(found, seq, "records out of order, lost or repeated");
        let body = got.len() - 4;
        assert_eq!(checksum(&got[..body]).to_le_bytes(), got[body..], "record {seq}: torn");
    }
    scratch.clear();
    scratch.resize(expected_len, 0);
    fill_payload(seq, scratch);
    assert!(got == &scratch[..], "record {seq}: payload differs");
}

/// Moves `n` records of random lengths through a 256-byte ring, mixing the
/// blocking and the `try_*` calls on both sides.
fn stress(strategy: WaitStrategy, n: u64) {
    let _serial = one_stress_at_a_time();
    let (mut tx, mut rx, _region, _mem) = ring(256);
    tx.set_strategy(strategy);
    rx.set_strategy(strategy);
    let max = tx.max_record_len();
    let producer = std::thread::spawn(move || {
        let mut buf = vec![0u8; max];
        for seq in 0..n {
            let len = record_len(seq, max);
            match seq % 3 {
                0 => {
                    let mut grant = tx.reserve_blocking(len, strategy, patient()).unwrap();
                    fill_payload(seq, &mut grant);
                    grant.commit();
                }
                1 => {
                    // Reserve more than needed and commit only `len`.
                    let extra = (len + 13).min(max);
                    let mut retry = Retry::new("try_reserve");
                    let mut grant = loop {
                        match tx.try_reserve(extra).unwrap() {
                            Some(grant) => break grant,
                            None => retry.again(),
                        }
                    };
                    fill_payload(seq, &mut grant[..len]);
                    grant.commit_len(len);
                }
                _ => {
                    fill_payload(seq, &mut buf[..len]);
                    let mut retry = Retry::new("try_push");
                    while !tx.try_push(&buf[..len]).unwrap() {
                        retry.again();
                    }
                }
            }
        }
    });
    let mut scratch = Vec::new();
    for seq in 0..n {
        let len = record_len(seq, max);
        if seq % 2 == 0 {
            let guard = rx.read_blocking(strategy, patient()).unwrap();
            check_payload(seq, &guard, len, &mut scratch);
        } else {
            let mut retry = Retry::new("try_read");
            loop {
                if let Some(guard) = rx.try_read().unwrap() {
                    check_payload(seq, &guard, len, &mut scratch);
                    break;
                }
                retry.again();
            }
        }
    }
    producer.join().unwrap();
    assert!(rx.try_read().unwrap().is_none(), "no record beyond the last");
}

#[test]
fn threads_move_random_records_once_in_order_busy_spin() {
    stress(WaitStrategy::BusySpin, 200_000);
}

#[test]
fn threads_move_random_records_once_in_order_park() {
    stress(WaitStrategy::Park, 200_000);
}

/// A ring holding one committed 16-byte record at offset 0.
fn ring_with_one_record() -> (ByteProducer, ByteConsumer, Region, Arc<HeapMemory>) {
    let (mut tx, rx, region, mem) = ring(256);
    assert!(tx.try_push(&[9; 16]).unwrap());
    (tx, rx, region, mem)
}

#[test]
fn a_record_length_past_the_end_is_corruption() {
    for len in [1000, 249, u32::MAX] {
        let (_tx, mut rx, _region, mem) = ring_with_one_record();
        write_header_at(&mem, 0, len, 0);
        let err = rx.try_read().unwrap_err();
        assert!(matches!(err, Corruption::RecordLength { pos: 0, .. }), "len {len}: {err:?}");
        // Blocking reads report it too, instead of waiting.
        let err = rx.read_blocking(WaitStrategy::Park, patient()).unwrap_err();
        assert!(matches!(err, TestError::Corrupt(Corruption::RecordLength { .. })), "{err:?}");
        assert!(!rx.try_read().unwrap_err().to_string().is_empty());
    }
}

#[test]
fn a_record_length_past_the_write_position_is_corruption() {
    let (_tx, mut rx, _region, mem) = ring_with_one_record();
    // Fits the ring, but runs past the 24 bytes published.
    write_header_at(&mem, 0, 100, 0);
    assert!(matches!(rx.try_read(), Err(Corruption::RecordLength { pos: 0, len: 100, room: 24 })));
}

#[test]
fn unknown_record_flags_are_corruption() {
    for flags in [2, 3, 0x8000_0000, u32::MAX] {
        let (_tx, mut rx, _region, mem) = ring_with_one_record();
        write_header_at(&mem, 0, 16, flags);
        let err = rx.try_read().unwrap_err();
        assert_eq!(err, Corruption::RecordFlags { pos: 0, flags });
    }
}

#[test]
fn padding_that_does_not_reach_the_end_is_corruption() {
    let (_tx, mut rx, _region, mem) = ring_with_one_record();
    write_header_at(&mem, 0, 8, FLAG_PAD);
    assert!(matches!(rx.try_read(), Err(Corruption::RecordLength { pos: 0, .. })));
}

#[test]
fn two_padding_records_in_a_row_are_corruption() {
    let (mut tx, mut rx, region, mem) = ring(256);
    move_to_offset(&mut tx, &mut rx, 128);
    // Padding from 128 to the end, then another padding record at 0.
    write_header_at(&mem, 128, 120, FLAG_PAD);
    write_header_at(&mem, 0, 56, FLAG_PAD);
    region.producer_line().write_pos.store(128 + 128 + 64, Relaxed);
    let err = rx.try_read().unwrap_err();
    assert!(matches!(err, Corruption::RecordLength { .. } | Corruption::RecordFlags { .. }), "{err:?}");
    // Still an error (not a panic) when asked again.
    assert!(rx.try_read().is_err());
}

#[test]
fn a_write_position_beyond_a_lap_ahead_is_corruption() {
    let (_tx, mut rx, region, _mem) = ring_with_one_record();
    region.producer_line().write_pos.store(256 + 8, Relaxed);
    assert_eq!(rx.try_read().unwrap_err(), Corruption::Positions { write: 264, read: 0, capacity: 256 });
    let err = rx.read_blocking(WaitStrategy::BusySpin, patient()).unwrap_err();
    assert!(matches!(err, TestError::Corrupt(Corruption::Positions { .. })), "{err:?}");
    // New handles refuse the segment at attach.
    assert!(matches!(ByteConsumer::attach(region.clone()), Err(LayoutError::Corrupted(Corruption::Positions { .. }))));
    assert!(matches!(ByteProducer::attach(region.clone()), Err(LayoutError::Corrupted(Corruption::Positions { .. }))));
    // A write position behind the read position is as impossible.
    region.producer_line().write_pos.store(0, Relaxed);
    region.consumer_line().read_pos.store(8, Relaxed);
    assert!(ByteConsumer::attach(region.clone()).is_err());
    assert!(region.len() <= 256);
}

#[test]
fn a_read_position_ahead_of_the_producer_is_corruption() {
    let (mut tx, _rx, region, _mem) = ring(256);
    assert!(tx.try_push(&[0; 200]).unwrap());
    region.consumer_line().read_pos.store(4096, Relaxed);
    // The producer looks at read_pos once its cache says full.
    let err = tx.try_push(&[0; 100]).unwrap_err();
    assert!(matches!(err, ReserveError::Corrupted(Corruption::Positions { write: 208, read: 4096, .. })), "{err:?}");
    let err = tx.reserve_blocking(100, WaitStrategy::Park, patient()).unwrap_err();
    assert!(matches!(err, TestError::Reserve(ReserveError::Corrupted(_))), "{err:?}");
}

#[test]
fn a_misaligned_read_position_is_corruption() {
    let (_tx, _rx, region, _mem) = ring(256);
    region.consumer_line().read_pos.store(3, Relaxed);
    region.producer_line().write_pos.store(3 + 16, Relaxed);
    // Refused at attach: a misaligned position would put a record header
    // across the end of the ring.
    let err = ByteConsumer::attach(region.clone()).unwrap_err();
    assert!(matches!(err, shmlane_ring::LayoutError::Corrupted(Corruption::Positions { read: 3, .. })), "{err:?}");
    assert!(ByteProducer::attach(region).is_err());
}
