//! MPMC: edges first, then threads, then the stalled-claim path and
//! corruption.

mod common;

use common::{Retry, SharedMem, TestError, one_stress_at_a_time, patient, poke};
use shmlane_ring::layout::{MIN_MPMC_CAPACITY, REGISTRY_ENTRIES, SLOTS_OFFSET};
use shmlane_ring::mpmc::{ROLE_CONSUMER, ROLE_PRODUCER};
use shmlane_ring::spsc::expect_for;
use shmlane_ring::{
    Corruption, Creator, Flavor, HeapMemory, LayoutError, MpmcConsumer, MpmcProducer, Params, Region, Stall,
    WaitStrategy,
};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

fn region(capacity: u64) -> Region {
    Region::heap(Params::fixed(Flavor::Mpmc, capacity, 8, 8).unwrap()).unwrap()
}

fn pair(capacity: u64) -> (MpmcProducer<u64>, MpmcConsumer<u64>) {
    let region = region(capacity);
    (MpmcProducer::attach(region.clone(), None).unwrap(), MpmcConsumer::attach(region).unwrap())
}

#[test]
fn capacity_one_is_rounded_up_to_two() {
    // Vyukov's sequence words need two slots: with one, "full at pos" and
    // "empty at pos + 1" are the same word and a producer would overwrite
    // a message nobody has read.
    assert_eq!(Params::fixed(Flavor::Mpmc, 1, 8, 8).unwrap().capacity, MIN_MPMC_CAPACITY);
    let (tx, rx) = pair(1);
    assert_eq!((tx.capacity(), rx.capacity()), (2, 2));
}

#[test]
fn a_header_claiming_one_mpmc_slot_is_refused() {
    let (_region, mem) = raw_region(2);
    poke(&mem, 24, &1u64.to_le_bytes());
    let err = Region::open(Box::new(SharedMem(mem)), &expect_for::<u64>(Flavor::Mpmc, None)).unwrap_err();
    assert_eq!(err, LayoutError::BadCapacity { found: 1 });
}

#[test]
fn the_smallest_ring_alternates_full_and_empty() {
    let (mut tx, mut rx) = pair(1);
    let capacity = tx.capacity() as u64;
    for lap in 0..10u64 {
        assert!(rx.is_empty());
        assert_eq!(rx.try_pop().unwrap(), None);
        for i in 0..capacity {
            assert!(tx.try_push(&(lap * 100 + i)).unwrap());
        }
        assert!(!tx.try_push(&99).unwrap(), "full at capacity {capacity}");
        assert_eq!(rx.len() as u64, capacity);
        for i in 0..capacity {
            assert_eq!(rx.try_pop().unwrap(), Some(lap * 100 + i));
        }
        assert_eq!(rx.try_pop().unwrap(), None);
        // Interleaved: one in, one out, across the slot boundary.
        assert!(tx.try_push(&lap).unwrap());
        assert_eq!(rx.try_pop().unwrap(), Some(lap));
    }
}

#[test]
fn fills_to_capacity_and_wraps_in_order() {
    let (mut tx, mut rx) = pair(4);
    assert_eq!(tx.capacity(), 4);
    let mut next_in = 0;
    let mut next_out = 0;
    for round in 0..20 {
        // Fill part way or completely, then drain part way.
        while tx.try_push(&next_in).unwrap() {
            next_in += 1;
            if round % 3 == 1 && next_in % 3 == 0 {
                break;
            }
        }
        assert!(rx.len() <= 4);
        for _ in 0..(1 + round % 4) {
            match rx.try_pop().unwrap() {
                Some(v) => {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
                None => assert_eq!(next_out, next_in),
            }
        }
    }
    while let Some(v) = rx.try_pop().unwrap() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, next_in);
    assert!(rx.is_empty());
}

#[test]
fn many_handles_share_one_ring() {
    let region = region(8);
    let mut producers: Vec<_> = (0..3).map(|i| MpmcProducer::<u64>::attach(region.clone(), Some(i)).unwrap()).collect();
    let mut consumers: Vec<_> = (0..3).map(|_| MpmcConsumer::<u64>::attach(region.clone()).unwrap()).collect();
    for (i, tx) in producers.iter_mut().enumerate() {
        assert!(tx.try_push(&(i as u64)).unwrap());
        assert!(tx.try_push(&(10 + i as u64)).unwrap());
    }
    // Single-threaded, positions are handed out in order: any consumer
    // gets the oldest message.
    let order = [0, 10, 1, 11, 2, 12];
    for (k, expected) in order.iter().enumerate() {
        assert_eq!(consumers[k % 3].try_pop().unwrap(), Some(*expected));
    }
    assert!(consumers.iter_mut().all(|rx| rx.try_pop().unwrap().is_none()));
    // Attaching took the registry entries as producers, with no claim.
    for i in 0..3 {
        let entry = region.registry(i).unwrap();
        assert_eq!((entry.role.load(Relaxed), entry.claim.load(Relaxed)), (ROLE_PRODUCER, 0));
    }
    assert!(region.registry(REGISTRY_ENTRIES).is_none());
}

#[test]
fn wrong_message_type_or_flavor_is_refused() {
    let region = region(4);
    assert!(matches!(MpmcConsumer::<u32>::attach(region.clone()), Err(LayoutError::MessageMismatch { .. })));
    assert!(matches!(MpmcProducer::<[u8; 8]>::attach(region, None), Err(LayoutError::MessageMismatch { .. })));
    let spsc = Region::heap(Params::fixed(Flavor::Spsc, 4, 8, 8).unwrap()).unwrap();
    assert!(matches!(MpmcConsumer::<u64>::attach(spsc.clone()), Err(LayoutError::FlavorMismatch { .. })));
    assert!(matches!(MpmcProducer::<u64>::attach(spsc, None), Err(LayoutError::FlavorMismatch { .. })));
}

const PRODUCERS: u64 = 2;
const CONSUMERS: usize = 2;
const SENTINEL: u64 = u64::MAX;

fn message(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

/// Runs `PRODUCERS` × `CONSUMERS` threads moving `n` messages per producer
/// through a ring of 8, then checks every message arrived exactly once and
/// each consumer saw each producer's messages in increasing order.
///
/// Every producer ends with one sentinel; a consumer stops at the first it
/// gets. Positions are handed out in order, so once both consumers have
/// stopped every message before both sentinels has been taken.
fn stress(n: u64, strategy: WaitStrategy, blocking: bool) {
    let _serial = one_stress_at_a_time();
    let region = region(8);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let mut tx = MpmcProducer::<u64>::attach(region.clone(), Some(id as usize)).unwrap();
            tx.set_strategy(strategy);
            std::thread::spawn(move || {
                for seq in (0..n).map(|s| message(id, s)).chain([SENTINEL]) {
                    if blocking || seq % 2 == 0 {
                        tx.push_blocking(&seq, strategy, patient()).unwrap();
                    } else {
                        let mut retry = Retry::new("mpmc try_push");
                        while !tx.try_push(&seq).unwrap() {
                            retry.again();
                        }
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|k| {
            let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
            rx.set_strategy(strategy);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let value = if blocking || (got.len() + k) % 2 == 0 {
                        rx.pop_blocking(strategy, patient()).unwrap()
                    } else {
                        let mut retry = Retry::new("mpmc try_pop");
                        loop {
                            match rx.try_pop().unwrap() {
                                Some(v) => break v,
                                None => retry.again(),
                            }
                        }
                    };
                    if value == SENTINEL {
                        return got;
                    }
                    got.push(value);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut seen = vec![vec![false; n as usize]; PRODUCERS as usize];
    for c in consumers {
        let got = c.join().unwrap();
        let mut last = [None::<u64>; PRODUCERS as usize];
        for value in got {
            let (producer, seq) = ((value >> 32) as usize, value & 0xffff_ffff);
            assert!(producer < PRODUCERS as usize && seq < n, "garbage message {value:#x}");
            assert!(last[producer].is_none_or(|l| l < seq), "producer {producer}: {seq} after {last:?}");
            last[producer] = Some(seq);
            assert!(!std::mem::replace(&mut seen[producer][seq as usize], true), "{value:#x} twice");
        }
    }
    for (producer, seen) in seen.iter().enumerate() {
        let missing = seen.iter().filter(|s| !**s).count();
        assert_eq!(missing, 0, "producer {producer}: {missing} messages lost");
    }
    assert!(region.is_empty());
    assert_eq!(region.header_snapshot().skipped, 0);
}

#[test]
fn two_producers_two_consumers_busy_spin() {
    stress(200_000, WaitStrategy::BusySpin, false);
}

#[test]
fn two_producers_two_consumers_park() {
    stress(100_000, WaitStrategy::Park, true);
}

/// Emulates a producer holding registry entry `entry` that claimed the next
/// position and died before committing it. Returns that position.
fn claim_and_die(region: &Region, entry: usize) -> u64 {
    let pos = region.producer_line().write_pos.load(Relaxed);
    let e = region.registry(entry).unwrap();
    e.role.store(ROLE_PRODUCER, Relaxed);
    e.claim.store(pos + 1, Relaxed);
    region.producer_line().write_pos.store(pos + 1, Relaxed);
    pos
}

#[test]
fn a_slot_claimed_by_a_dead_producer_can_be_skipped() {
    let region = region(4);
    let mut a = MpmcProducer::<u64>::attach(region.clone(), Some(0)).unwrap();
    let mut b = MpmcProducer::<u64>::attach(region.clone(), Some(1)).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    assert_eq!(rx.stall(), None, "empty ring");
    assert!(a.try_push(&1).unwrap());
    assert_eq!(rx.stall(), None, "a committed message is no stall");
    assert_eq!(rx.try_pop().unwrap(), Some(1));
    assert_eq!(region.registry(0).unwrap().claim.load(Relaxed), 0, "the claim ends at commit");

    drop(a);
    let pos = claim_and_die(&region, 0);
    assert!(b.try_push(&2).unwrap(), "b commits behind the stuck slot");
    assert_eq!(rx.try_pop().unwrap(), None, "wedged at the claimed slot");
    let stall = rx.stall().expect("a stall");
    assert_eq!(stall, Stall { pos, claimants: 0b1 });

    assert!(rx.skip_stalled(&stall));
    assert!(!rx.skip_stalled(&stall), "already skipped");
    assert_eq!(rx.try_pop().unwrap(), Some(2), "the later message still arrives");
    assert_eq!(region.header_snapshot().skipped, 1);
    assert_eq!(rx.stall(), None);
    assert_eq!(rx.try_pop().unwrap(), None);

    // The ring keeps working for several laps over the skipped slot.
    for v in 0..40u64 {
        assert!(b.try_push(&v).unwrap());
        assert_eq!(rx.try_pop().unwrap(), Some(v));
    }
    for v in 0..4u64 {
        assert!(b.try_push(&v).unwrap());
    }
    assert!(!b.try_push(&9).unwrap());
    for v in 0..4u64 {
        assert_eq!(rx.try_pop().unwrap(), Some(v));
    }
    assert_eq!(region.header_snapshot().skipped, 1);
}

#[test]
fn skipped_slots_in_a_row_are_all_passed_over_and_counted() {
    let region = region(8);
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), Some(5)).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    let mut other = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    for entry in [0, 1, 2] {
        claim_and_die(&region, entry);
    }
    assert!(tx.try_push(&7).unwrap());
    for (pos, expected_claimant) in [(0, 0b001), (1, 0b010), (2, 0b100)] {
        // Passes over the slots skipped so far and wedges at the next.
        assert_eq!(rx.try_pop().unwrap(), None);
        // Either consumer sees the same stall and may skip it.
        let stall = other.stall().unwrap();
        assert_eq!(rx.stall(), Some(stall));
        assert_eq!(stall, Stall { pos, claimants: expected_claimant });
        assert!(other.skip_stalled(&stall));
        assert_eq!(rx.stall(), None, "skipped, not yet passed");
    }
    assert_eq!(rx.try_pop().unwrap(), Some(7));
    assert_eq!(other.try_pop().unwrap(), None);
    assert_eq!(region.header_snapshot().skipped, 3);
}

#[test]
fn a_stall_names_only_producers_claiming_the_stuck_position() {
    let region = region(4);
    let rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    let pos = claim_and_die(&region, 3);
    // A consumer's entry with the same claim value is not a claimant; nor
    // is a producer claiming another position.
    let consumer_entry = region.registry(4).unwrap();
    consumer_entry.role.store(ROLE_CONSUMER, Relaxed);
    consumer_entry.claim.store(pos + 1, Relaxed);
    let other = region.registry(6).unwrap();
    other.role.store(ROLE_PRODUCER, Relaxed);
    other.claim.store(pos + 2, Relaxed);
    // Two producers recorded the same claim (one lost its CAS and died).
    let twin = region.registry(REGISTRY_ENTRIES - 1).unwrap();
    twin.role.store(ROLE_PRODUCER, Relaxed);
    twin.claim.store(pos + 1, Relaxed);
    assert_eq!(rx.stall(), Some(Stall { pos, claimants: (1 << 3) | (1 << (REGISTRY_ENTRIES - 1)) }));
    // A claimed slot with no known claimant is still a stall (claimants 0):
    // the caller decides what an unowned claim means.
    for i in 0..REGISTRY_ENTRIES {
        region.registry(i).unwrap().claim.store(0, Relaxed);
    }
    assert_eq!(rx.stall(), Some(Stall { pos, claimants: 0 }));
}

#[test]
fn a_committed_slot_is_never_skipped() {
    let region = region(4);
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), Some(0)).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    // A stall seen just before the producer committed.
    let stale = Stall { pos: 0, claimants: 1 };
    assert!(tx.try_push(&5).unwrap());
    assert!(!rx.skip_stalled(&stale), "the slot moved on");
    assert_eq!(rx.try_pop().unwrap(), Some(5));
    assert_eq!(region.header_snapshot().skipped, 0);
}

/// An MPMC ring whose raw memory the test can reach.
fn raw_region(capacity: u64) -> (Region, Arc<HeapMemory>) {
    let params = Params::fixed(Flavor::Mpmc, capacity, 8, 8).unwrap();
    let mem = Arc::new(HeapMemory::zeroed(params.region_len().unwrap() as usize));
    let region = Region::create(Box::new(SharedMem(mem.clone())), params, Creator::default()).unwrap();
    (region, mem)
}

#[test]
fn impossible_sequence_words_are_corruption() {
    let (region, mem) = raw_region(4);
    let slot_size = region.params().slot_size() as usize;
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    // Slot 0's sequence word from a lap nobody reached.
    poke(&mem, SLOTS_OFFSET, &12_345u64.to_le_bytes());
    assert_eq!(tx.try_push(&1).unwrap_err(), Corruption::Sequence { pos: 0, found: 12_345 });
    assert_eq!(rx.try_pop().unwrap_err(), Corruption::Sequence { pos: 0, found: 12_345 });
    let err = rx.pop_blocking(WaitStrategy::Park, patient()).unwrap_err();
    assert!(matches!(err, TestError::Corrupt(Corruption::Sequence { .. })), "{err:?}");
    let err = tx.push_blocking(&1, WaitStrategy::BusySpin, patient()).unwrap_err();
    assert!(matches!(err, TestError::Corrupt(Corruption::Sequence { .. })), "{err:?}");
    // Hostile words and positions never panic, whatever they are.
    for (seq, write, read) in [(u64::MAX, 0, 0), (3, u64::MAX, 0), (1 << 63, 7, 3), (5, 0, u64::MAX)] {
        for slot in 0..4 {
            poke(&mem, SLOTS_OFFSET + slot * slot_size, &seq.wrapping_add(slot as u64).to_le_bytes());
        }
        region.producer_line().write_pos.store(write, Relaxed);
        region.consumer_line().read_pos.store(read, Relaxed);
        let _ = tx.try_push(&1);
        let _ = rx.try_pop();
        let _ = rx.stall();
        assert!(rx.len() <= 4);
    }
}

/// As a consumer that took position `pos` (its claim in `entry`, its CAS
/// on `read_pos`) and died before releasing the slot.
fn die_mid_pop(region: &Region, entry: usize, pos: u64) {
    let e = region.registry(entry).unwrap();
    e.role.store(ROLE_CONSUMER, Relaxed);
    e.claim.store(pos + 1, Relaxed);
    region.consumer_line().read_pos.store(pos + 1, Relaxed);
}

#[test]
fn a_slot_taken_by_a_dead_consumer_is_released_for_the_producers() {
    let region = region(4);
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), Some(0)).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach_with_entry(region.clone(), Some(1)).unwrap();
    for i in 0..4 {
        assert!(tx.try_push(&i).unwrap());
    }
    die_mid_pop(&region, 2, 0);
    // The other consumers go on past it...
    for i in 1..4 {
        assert_eq!(rx.try_pop().unwrap(), Some(i));
    }
    // ...until the producers come round to its slot, still holding message 0.
    assert!(!tx.try_push(&4).unwrap());
    let stall = shmlane_ring::mpmc::consumer_stall(&region).expect("the producers are held up");
    assert_eq!(stall, Stall { pos: 0, claimants: 1 << 2 });
    // The entry's dead owner left an unresolved claim: a new handle may not
    // take it (that would erase the evidence).
    assert!(!shmlane_ring::mpmc::settle_claim(&region, 2));
    // The caller decided entry 2's owner is dead: release the slot.
    assert!(shmlane_ring::mpmc::release_consumer_stall(&region, &stall));
    assert!(!shmlane_ring::mpmc::release_consumer_stall(&region, &stall), "released once");
    assert_eq!(region.header().skipped.load(Relaxed), 1, "message 0 went down with its consumer");
    assert_eq!(region.registry(2).unwrap().claim.load(Relaxed), 0);
    assert!(shmlane_ring::mpmc::settle_claim(&region, 2));
    for i in 4..12 {
        assert!(tx.try_push(&i).unwrap());
        assert_eq!(rx.try_pop().unwrap(), Some(i));
    }
    // A live consumer's claim is cleared once it released its slot.
    assert_eq!(region.registry(1).unwrap().claim.load(Relaxed), 0);
}

#[test]
fn a_full_ring_or_a_claimless_stall_is_never_released() {
    let region = region(2);
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
    assert!(tx.try_push(&0).unwrap() && tx.try_push(&1).unwrap());
    // Full, nothing taken: not a consumer stall.
    assert_eq!(shmlane_ring::mpmc::consumer_stall(&region), None);
    // Taken by a consumer with no registry entry (it may be alive and
    // reading): a stall with no claimant, which is never released.
    region.consumer_line().read_pos.store(1, Relaxed);
    let stall = shmlane_ring::mpmc::consumer_stall(&region).expect("stall");
    assert_eq!(stall.claimants, 0);
    assert!(!shmlane_ring::mpmc::release_consumer_stall(&region, &stall));
}

#[test]
fn consumers_with_entries_pass_every_message_under_threads() {
    const PER: u64 = 20_000;
    let _one = one_stress_at_a_time();
    let region = region(8);
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let mut tx = MpmcProducer::<u64>::attach(region.clone(), Some(p)).unwrap();
            std::thread::spawn(move || {
                for i in 0..PER {
                    tx.push_blocking::<TestError>(&(p as u64 * PER + i), WaitStrategy::BusySpin, patient()).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let mut rx = MpmcConsumer::<u64>::attach_with_entry(region.clone(), Some(2 + c)).unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < PER as usize {
                    got.push(rx.pop_blocking::<TestError>(WaitStrategy::BusySpin, patient()).unwrap());
                }
                got
            })
        })
        .collect();
    producers.into_iter().for_each(|h| h.join().unwrap());
    let mut all: Vec<u64> = consumers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..2 * PER).collect::<Vec<_>>());
    assert_eq!(region.header().skipped.load(Relaxed), 0);
    assert!((2..4).all(|i| region.registry(i).unwrap().claim.load(Relaxed) == 0));
}

/// Found in review: while one consumer still holds a skipped slot of the
/// previous lap (`(q + 1) | SKIPPED`, not yet passed), another consumer
/// coming round to that slot must see "not yet committed", not corruption.
#[test]
fn a_previous_lap_skip_still_held_reads_as_empty() {
    let (region, mem) = raw_region(2);
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
    assert!(tx.try_push(&0).unwrap() && tx.try_push(&1).unwrap());
    // Position 0 was skipped, and a consumer has taken it (read_pos = 1)
    // without passing it yet.
    poke(&mem, SLOTS_OFFSET, &(1 | shmlane_ring::mpmc::SKIPPED).to_le_bytes());
    region.consumer_line().read_pos.store(1, Relaxed);
    assert_eq!(rx.try_pop().unwrap(), Some(1));
    assert_eq!(rx.try_pop(), Ok(None), "position 2's slot still holds position 0's skip");
}
