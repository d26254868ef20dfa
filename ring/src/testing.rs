//! Drives the rings with untrusted bytes: the one implementation behind the
//! cargo-fuzz targets (`fuzz/`) and their proptest twin
//! (`tests/fuzz_twin.rs`). Hidden from the docs; not part of the API.
//!
//! The contract under test is the crate's: everything read from a region is
//! untrusted, so any bytes give typed errors, never a panic, an
//! out-of-bounds access or a hang. Beyond "does not crash", the drivers
//! check what even a hostile segment cannot break, and panic (which is what
//! a fuzzer reports) if it breaks:
//!
//! - with no push in between, a consumer yields at most `capacity` messages
//!   (byte ring: `capacity / 8` records), and since it attached a producer
//!   accepts at most `capacity` pushes more than there were pops;
//! - a byte ring whose consumer drained it to empty without a
//!   [`Corruption`] is consistent again: records pushed next come back
//!   byte for byte.
//!
//! Every loop here is bounded by the capacity, so a ring that never says
//! "empty" or "full" shows up as a broken oracle, never as a hang.
#![cfg(not(loom))]

use crate::broadcast::{BroadcastReader, BroadcastWriter, ByteBroadcastReader, ByteBroadcastWriter, ReadError, Start};
use crate::bytes::{ByteConsumer, ByteProducer, ReserveError};
use crate::error::{Corruption, LayoutError};
use crate::layout::{Creator, Flavor, MIN_BYTE_CAPACITY, Params, SLOTS_OFFSET};
use crate::mpmc::{MpmcConsumer, MpmcProducer};
use crate::region::{HeapMemory, Memory, Region};
use crate::spsc::{SpscConsumer, SpscProducer};
use crate::sync::Ordering;
use bytemuck::Pod;
use std::sync::Arc;

/// What one run saw, for assertions in tests and for curiosity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Flavor of the segment, if it opened.
    pub flavor: Option<Flavor>,
    /// First layout error (open or attach).
    pub layout_error: Option<LayoutError>,
    /// First corruption an operation reported.
    pub corruption: Option<Corruption>,
    /// Messages or records read.
    pub read: u64,
    /// Messages or records pushed.
    pub written: u64,
}

impl Outcome {
    fn layout(&mut self, e: LayoutError) {
        self.layout_error.get_or_insert(e);
    }
    fn corrupt(&mut self, c: Corruption) {
        self.corruption.get_or_insert(c);
    }
}

/// Opens `bytes` as a segment of any flavor, attaches both roles and
/// exercises them: drain, push until full, drain again.
///
/// # Panics
/// Only if the ring breaks its contract (see the module doc).
pub fn open_and_drain(bytes: &[u8]) -> Outcome {
    let memory = HeapMemory::zeroed(bytes.len());
    // SAFETY: `memory` is a fresh allocation of at least `bytes.len()`
    // bytes that nothing else references yet; the source is a live slice.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), memory.as_ptr(), bytes.len()) };
    let mut out = Outcome::default();
    let region = match Region::open_any(Box::new(memory)) {
        Ok(region) => region,
        Err(e) => {
            out.layout(e);
            return out;
        }
    };
    out.flavor = Some(region.params().flavor);
    // Observers must cope with any positions too.
    let _ = (region.len(), region.is_empty(), region.header_snapshot(), region.positions());
    match region.params().flavor {
        Flavor::Bytes => drive_bytes(&region, &mut out),
        Flavor::BroadcastBytes => drive_broadcast_bytes(&region, &mut out),
        _ => drive_fixed_any(&region, &mut out),
    }
    out
}

/// Broadcast reads: a reader never yields more than a ring's worth of
/// messages (plus what was pushed since) between lag reports, and each lag
/// report moves it forward. `read` is one attempt; returns how many
/// messages were read before the ring said empty or failed.
fn drain_broadcast(capacity: u64, out: &mut Outcome, mut read: impl FnMut() -> Result<bool, ReadError>) -> u64 {
    let mut got = 0;
    // Each attempt reads, lags (which moves the cursor forward) or stops;
    // a hostile ring cannot make this loop beyond the bound.
    for _ in 0..2 * capacity + 2 {
        match read() {
            Ok(true) => got += 1,
            Ok(false) => return got,
            Err(ReadError::Lagged(n)) => assert!(n > 0, "Lagged(0) cannot move the cursor"),
            Err(ReadError::Corrupted(c)) => {
                out.corrupt(c);
                return got;
            }
        }
    }
    got
}

/// Broadcast, typed: readers from the oldest and the latest, a writer that
/// laps them, and the readers again.
fn drive_broadcast<T: Pod>(region: &Region, out: &mut Outcome) {
    let capacity = region.capacity();
    let mut old = match BroadcastReader::<T>::attach(region.clone(), Start::Oldest) {
        Ok(r) => r,
        Err(e) => return out.layout(e),
    };
    let _ = (old.len(), old.is_empty(), old.position());
    out.read += drain_broadcast(capacity, out, || old.try_read().map(|v| v.is_some()));
    let mut tx = match BroadcastWriter::<T>::attach(region.clone()) {
        Ok(tx) => tx,
        Err(e) => return out.layout(e),
    };
    let mut new = match BroadcastReader::<T>::attach(region.clone(), Start::Latest) {
        Ok(r) => r,
        Err(e) => return out.layout(e),
    };
    let mut value = T::zeroed();
    bytemuck::bytes_of_mut(&mut value).fill(0xa5);
    for _ in 0..=capacity {
        tx.push(&value);
        out.written += 1;
    }
    for reader in [&mut old, &mut new] {
        out.read += drain_broadcast(capacity, out, || reader.try_read().map(|v| v.is_some()));
    }
}

/// Broadcast, byte records: as [`drive_broadcast`], records of awkward lengths.
fn drive_broadcast_bytes(region: &Region, out: &mut Outcome) {
    let capacity = region.capacity();
    let mut buf = Vec::new();
    let mut old = match ByteBroadcastReader::attach(region.clone(), Start::Oldest) {
        Ok(r) => r,
        Err(e) => return out.layout(e),
    };
    out.read += drain_broadcast(capacity, out, || old.try_read_into(&mut buf).map(|r| r.is_some()));
    let mut tx = match ByteBroadcastWriter::attach(region.clone()) {
        Ok(tx) => tx,
        Err(e) => return out.layout(e),
    };
    let max = tx.max_record_len();
    for len in [0, 1, 7, 8, 9, max, max + 1] {
        let record: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
        match tx.push(&record) {
            Ok(()) => out.written += 1,
            Err(e) => assert!(len > max, "a {len}-byte record refused with max {max}: {e}"),
        }
    }
    out.read += drain_broadcast(capacity, out, || old.try_read_into(&mut buf).map(|r| r.is_some()));
}

/// Builds a valid byte ring, overwrites its positions and data area with
/// `bytes`, and drives it like [`open_and_drain`]: the header is always
/// valid here, so every input reaches the record parser.
///
/// Input: byte 0 picks the capacity (`64 << (b & 7)`), bytes 1..9 and 9..17
/// are `write_pos` and `read_pos` (little endian), the rest fills the data
/// area from offset 0. Missing bytes are zero.
///
/// # Panics
/// Only if the ring breaks its contract (see the module doc).
pub fn drain_byte_records(bytes: &[u8]) -> Outcome {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let word = |at: usize| u64::from_le_bytes(std::array::from_fn(|i| byte(at + i)));
    let capacity = MIN_BYTE_CAPACITY << (byte(0) & 7);
    let mut out = Outcome::default();
    let params = match Params::bytes(capacity) {
        Ok(p) => p,
        Err(e) => {
            out.layout(e);
            return out;
        }
    };
    let data = bytes.get(17..).unwrap_or(&[]);
    let data = &data[..data.len().min(capacity as usize)];
    let memory = HeapMemory::zeroed(SLOTS_OFFSET + capacity as usize);
    // SAFETY: the allocation is SLOTS_OFFSET + capacity bytes and `data` is
    // at most `capacity` long; nothing else references the memory yet.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), memory.as_ptr().add(SLOTS_OFFSET), data.len()) };
    // `create` leaves the byte ring's data area as it finds it.
    let region = match Region::create(Box::new(memory), params, Creator::default()) {
        Ok(region) => region,
        Err(e) => {
            out.layout(e);
            return out;
        }
    };
    // Relaxed: no handle exists yet; attach loads these on this thread.
    region.producer_line().write_pos.store(word(1), Ordering::Relaxed);
    region.consumer_line().read_pos.store(word(9), Ordering::Relaxed);
    out.flavor = Some(Flavor::Bytes);
    drive_bytes(&region, &mut out);
    out
}

/// Byte ring: drain, then push records of awkward lengths, each read back.
fn drive_bytes(region: &Region, out: &mut Outcome) {
    let mut rx = match ByteConsumer::attach(region.clone()) {
        Ok(rx) => rx,
        Err(e) => return out.layout(e),
    };
    let clean = drain_records(&mut rx, out);
    let mut tx = match ByteProducer::attach(region.clone()) {
        Ok(tx) => tx,
        Err(e) => return out.layout(e),
    };
    let max = tx.max_record_len();
    let capacity = tx.capacity();
    for len in [0, 1, 7, 8, 9, 13, capacity / 2, max, max + 1] {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
        // At most twice: a record that does not fit before the end publishes
        // the padding alone first; reading past it frees the tail.
        let mut pushed = false;
        for _ in 0..2 {
            match tx.try_push(&payload) {
                Ok(true) => {
                    pushed = true;
                    break;
                }
                Ok(false) => match rx.try_read() {
                    Ok(None) => {}
                    Ok(Some(_)) => assert!(!clean, "a clean byte ring yielded a record nobody pushed"),
                    Err(c) => {
                        assert!(!clean, "a clean byte ring reported {c}");
                        out.corrupt(c);
                    }
                },
                Err(ReserveError::TooLarge { .. }) => {
                    assert!(len > max, "a {len}-byte record was refused, max is {max}");
                    break;
                }
                Err(ReserveError::Corrupted(c)) => {
                    assert!(!clean, "a clean byte ring refused a push: {c}");
                    out.corrupt(c);
                    break;
                }
            }
        }
        assert!(pushed || !clean || len > max, "a clean, empty byte ring refused {len} bytes twice");
        if !pushed {
            continue;
        }
        out.written += 1;
        match rx.try_read() {
            Ok(Some(record)) => {
                assert!(!clean || *record == payload[..], "a clean byte ring garbled a {len}-byte record");
                out.read += 1;
            }
            Ok(None) => assert!(!clean, "a clean byte ring lost a {len}-byte record"),
            Err(c) => {
                assert!(!clean, "a clean byte ring reported {c}");
                out.corrupt(c);
            }
        }
    }
}

/// Reads records until empty or corrupt; true if it ended empty.
fn drain_records(rx: &mut ByteConsumer, out: &mut Outcome) -> bool {
    // Every record takes at least 8 bytes of at most `capacity` published.
    let bound = rx.capacity() / 8;
    for _ in 0..=bound {
        match rx.try_read() {
            Ok(Some(record)) => {
                // Touch every byte: an out-of-bounds slice faults under ASan.
                std::hint::black_box(record.iter().fold(0u8, |a, b| a ^ b));
                out.read += 1;
            }
            Ok(None) => return true,
            Err(c) => {
                out.corrupt(c);
                return false;
            }
        }
    }
    panic!("byte ring yielded more than {bound} records without a push");
}

/// Fixed flavors: runs [`drive_fixed`] with a `Pod` type of the segment's
/// message shape. Shapes with no type here get `u64`, whose attach must
/// then fail with a typed error.
fn drive_fixed_any(region: &Region, out: &mut Outcome) {
    let p = region.params();
    match (p.msg_size, p.msg_align) {
        (0, 1) => drive_fixed::<()>(region, out),
        (1, 1) => drive_fixed::<u8>(region, out),
        (2, 2) => drive_fixed::<u16>(region, out),
        (3, 1) => drive_fixed::<[u8; 3]>(region, out),
        (4, 4) => drive_fixed::<u32>(region, out),
        (12, 4) => drive_fixed::<[u32; 3]>(region, out),
        (16, 8) => drive_fixed::<[u64; 2]>(region, out),
        (24, 8) => drive_fixed::<[u64; 3]>(region, out),
        (64, 1) => drive_fixed::<[u8; 64]>(region, out),
        (s, a) if (s, a) == (size_of::<u128>() as u32, align_of::<u128>() as u32) => drive_fixed::<u128>(region, out),
        _ => drive_fixed::<u64>(region, out),
    }
}

/// The two roles of a fixed-size ring, behind one interface.
trait Fixed<T> {
    fn pop(&mut self) -> Result<Option<T>, Corruption>;
    fn push(&mut self, value: &T) -> Result<bool, Corruption>;
}

/// Both handles of an SPSC ring.
struct Spsc<T>(SpscProducer<T>, SpscConsumer<T>);
impl<T: Pod> Fixed<T> for Spsc<T> {
    fn pop(&mut self) -> Result<Option<T>, Corruption> {
        self.1.try_pop()
    }
    fn push(&mut self, value: &T) -> Result<bool, Corruption> {
        self.0.try_push(value)
    }
}

/// One producer (owning registry entry 0) and one consumer of an MPMC ring.
struct Mpmc<T>(MpmcProducer<T>, MpmcConsumer<T>);
impl<T: Pod> Fixed<T> for Mpmc<T> {
    fn pop(&mut self) -> Result<Option<T>, Corruption> {
        self.1.try_pop()
    }
    fn push(&mut self, value: &T) -> Result<bool, Corruption> {
        self.0.try_push(value)
    }
}

/// Fixed flavors: drain (also in a batch for SPSC), push until full, drain.
fn drive_fixed<T: Pod>(region: &Region, out: &mut Outcome) {
    let capacity = region.capacity();
    match region.params().flavor {
        Flavor::Spsc => {
            // The consumer first: the producer's attach then sees the
            // positions the consumer's drain left, as after a restart.
            let mut rx = match SpscConsumer::<T>::attach(region.clone()) {
                Ok(rx) => rx,
                Err(e) => return out.layout(e),
            };
            let _ = (rx.len(), rx.is_empty());
            let mut batch = [T::zeroed(); 3];
            let first = match rx.pop_batch(&mut batch) {
                Ok(n) => n as u64,
                Err(c) => {
                    out.corrupt(c);
                    0
                }
            };
            assert!(first <= capacity, "pop_batch returned {first} messages from {capacity} slots");
            out.read += first;
            let mut tx = match SpscProducer::<T>::attach(region.clone()) {
                Ok(tx) => tx,
                Err(e) => return out.layout(e),
            };
            match tx.push_batch(&[T::zeroed(); 2]) {
                Ok(n) => out.written += n as u64,
                Err(c) => out.corrupt(c),
            }
            exercise(&mut Spsc(tx, rx), capacity, out);
        }
        Flavor::Mpmc => {
            let rx = match MpmcConsumer::<T>::attach(region.clone()) {
                Ok(rx) => rx,
                Err(e) => return out.layout(e),
            };
            let _ = (rx.len(), rx.is_empty());
            // An entry left with a claim: a consumer may skip it as if its
            // producer had died (in one process it has not; the ring must
            // still hold together).
            if let Some(stall) = rx.stall() {
                rx.skip_stalled(&stall);
            }
            let tx = match MpmcProducer::<T>::attach(region.clone(), Some(0)) {
                Ok(tx) => tx,
                Err(e) => return out.layout(e),
            };
            exercise(&mut Mpmc(tx, rx), capacity, out);
        }
        Flavor::Broadcast => drive_broadcast::<T>(region, out),
        Flavor::Bytes | Flavor::BroadcastBytes => unreachable!("byte rings have their own drivers"),
    }
}

/// Drain, fill, drain, checking the capacity bounds. Pushes since the
/// producer attached are bounded by the capacity plus the pops since then:
/// a pop frees a slot for one later push, a push fills a slot until a pop.
/// (Hostile sequence words can make the consumer pop slots the producer
/// thinks free, so its pushes there are lost: garbage in, not a crash.)
fn exercise<T: Pod>(ring: &mut impl Fixed<T>, capacity: u64, out: &mut Outcome) {
    let mut value = T::zeroed();
    bytemuck::bytes_of_mut(&mut value).fill(0xa5);
    let bound = capacity + drain(ring, capacity, out);
    let mut pushed = 0;
    while pushed <= bound {
        match ring.push(&value) {
            Ok(true) => pushed += 1,
            Ok(false) => break,
            Err(c) => {
                out.corrupt(c);
                break;
            }
        }
    }
    assert!(pushed <= bound, "producer accepted more than {bound} pushes");
    out.written += pushed;
    drain(ring, capacity, out);
}

/// Pops until empty or corrupt, at most `capacity` messages; returns how
/// many.
fn drain<T: Pod>(ring: &mut impl Fixed<T>, capacity: u64, out: &mut Outcome) -> u64 {
    for popped in 0..=capacity {
        match ring.pop() {
            Ok(Some(v)) => {
                std::hint::black_box(v);
                out.read += 1;
            }
            Ok(None) => return popped,
            Err(c) => {
                out.corrupt(c);
                return popped;
            }
        }
    }
    panic!("ring yielded more than {capacity} messages without a push");
}

/// A heap region the caller can still read after a [`Region`] owns it.
struct SharedHeap(Arc<HeapMemory>);

// SAFETY: forwards to the `HeapMemory`, whose pointer and length never
// change while this `Arc` keeps it alive.
unsafe impl Memory for SharedHeap {
    fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A segment for `params` after `run` used it, as raw bytes.
fn segment_bytes(params: Params, run: impl FnOnce(&Region)) -> Vec<u8> {
    // The parameters below are small constants: the length fits.
    let len = params.region_len().expect("sample parameters are small") as usize;
    let memory = Arc::new(HeapMemory::zeroed(len));
    let region = Region::create(Box::new(SharedHeap(memory.clone())), params, Creator::default())
        .expect("a zeroed heap region of region_len bytes is valid");
    run(&region);
    drop(region);
    let mut bytes = vec![0; len];
    // SAFETY: the allocation is `len` bytes; every handle is gone, so
    // nothing writes it during the copy.
    unsafe { std::ptr::copy_nonoverlapping(memory.as_ptr(), bytes.as_mut_ptr(), len) };
    bytes
}

fn spsc_sample<T: Pod>(capacity: u64, push: usize, pop: usize) -> Vec<u8> {
    let params = Params::fixed(Flavor::Spsc, capacity, size_of::<T>(), align_of::<T>()).expect("small shape");
    segment_bytes(params, |region| {
        let tx = SpscProducer::<T>::attach(region.clone()).expect("fresh ring");
        let rx = SpscConsumer::<T>::attach(region.clone()).expect("fresh ring");
        fill_sample(&mut Spsc(tx, rx), push, pop);
    })
}

fn mpmc_sample<T: Pod>(capacity: u64, push: usize, pop: usize) -> Vec<u8> {
    let params = Params::fixed(Flavor::Mpmc, capacity, size_of::<T>(), align_of::<T>()).expect("small shape");
    segment_bytes(params, |region| {
        let tx = MpmcProducer::<T>::attach(region.clone(), Some(0)).expect("fresh ring");
        let rx = MpmcConsumer::<T>::attach(region.clone()).expect("fresh ring");
        fill_sample(&mut Mpmc(tx, rx), push, pop);
    })
}

/// Pushes `push` messages (message i is bytes `i`), popping one whenever
/// the ring is full so `push` may exceed the capacity (wrapping), then pops
/// `pop`.
fn fill_sample<T: Pod>(ring: &mut impl Fixed<T>, push: usize, pop: usize) {
    let mut value = T::zeroed();
    for i in 0..push {
        bytemuck::bytes_of_mut(&mut value).fill(i as u8);
        if !ring.push(&value).expect("valid ring") {
            ring.pop().expect("valid ring");
            assert!(ring.push(&value).expect("valid ring"));
        }
    }
    for _ in 0..pop {
        ring.pop().expect("valid ring");
    }
}

/// A broadcast ring (typed `[u64; 3]` or byte records) after `push`
/// messages.
fn broadcast_sample(params: Result<Params, LayoutError>, push: u64) -> Vec<u8> {
    let params = params.expect("small shape");
    segment_bytes(params, |region| {
        if params.flavor == Flavor::Broadcast {
            let mut tx = BroadcastWriter::<[u64; 3]>::attach(region.clone()).expect("fresh ring");
            (0..push).for_each(|i| tx.push(&[i; 3]));
        } else {
            let mut tx = ByteBroadcastWriter::attach(region.clone()).expect("fresh ring");
            (0..push).for_each(|i| tx.push(&vec![i as u8; i as usize % 25]).expect("fits"));
        }
    })
}

/// Pushes the record lengths in `push` (reading as needed to make room),
/// then reads `pop` records.
fn bytes_sample(capacity: u64, push: &[usize], pop: usize) -> Vec<u8> {
    let params = Params::bytes(capacity).expect("small capacity");
    segment_bytes(params, |region| {
        let mut tx = ByteProducer::attach(region.clone()).expect("fresh ring");
        let mut rx = ByteConsumer::attach(region.clone()).expect("fresh ring");
        for (i, &len) in push.iter().enumerate() {
            let payload = vec![i as u8; len];
            while !tx.try_push(&payload).expect("valid ring") {
                drop(rx.try_read().expect("valid ring"));
            }
        }
        for _ in 0..pop {
            drop(rx.try_read().expect("valid ring"));
        }
    })
}

/// Valid segments of every flavor in interesting states (wrapped, with a
/// padding record, zero-size messages...), named: fuzz seeds and the
/// starting points of the proptest twin.
pub fn sample_segments() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("spsc-u64-wrapped", spsc_sample::<u64>(8, 11, 6)),
        ("spsc-u8-full", spsc_sample::<u8>(4, 4, 0)),
        ("spsc-unit", spsc_sample::<()>(2, 3, 1)),
        ("spsc-u64x3", spsc_sample::<[u64; 3]>(4, 6, 3)),
        ("spsc-u128-empty", spsc_sample::<u128>(2, 2, 2)),
        ("mpmc-u32-wrapped", mpmc_sample::<u32>(4, 5, 2)),
        ("mpmc-u8x3", mpmc_sample::<[u8; 3]>(8, 3, 0)),
        ("bytes-64-padding", bytes_sample(64, &[20, 8, 20], 0)),
        ("bytes-256-mixed", bytes_sample(256, &[0, 1, 9, 40, 100, 13, 64, 7], 2)),
        ("broadcast-u64x3-lapped", broadcast_sample(Params::fixed(Flavor::Broadcast, 4, 24, 8), 11)),
        ("broadcast-bytes-24", broadcast_sample(Params::broadcast_bytes(8, 24), 5)),
    ]
}

/// [`sample_segments`]' byte rings in [`drain_byte_records`]' input
/// encoding.
pub fn sample_byte_record_inputs() -> Vec<(&'static str, Vec<u8>)> {
    sample_segments()
        .into_iter()
        .filter(|(name, _)| name.starts_with("bytes"))
        .map(|(name, segment)| {
            let word = |at: usize| -> [u8; 8] { std::array::from_fn(|i| segment[at + i]) };
            let capacity = segment.len() - SLOTS_OFFSET;
            let selector = (capacity as u64 / MIN_BYTE_CAPACITY).trailing_zeros() as u8;
            let mut input = vec![selector];
            input.extend_from_slice(&word(crate::layout::PRODUCER_LINE_OFFSET));
            input.extend_from_slice(&word(crate::layout::CONSUMER_LINE_OFFSET));
            input.extend_from_slice(&segment[SLOTS_OFFSET..]);
            (name, input)
        })
        .collect()
}
