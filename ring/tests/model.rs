//! Random operation sequences against a `VecDeque` model, one thread.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use shmlane_ring::bytes::RECORD_HEADER;
use shmlane_ring::{
    ByteConsumer, ByteProducer, Flavor, MpmcConsumer, MpmcProducer, Params, Region, SpscConsumer, SpscProducer,
};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum SpscOp {
    Push(u64),
    PushBatch(Vec<u64>),
    Pop,
    PopBatch(usize),
}

fn spsc_op() -> impl Strategy<Value = SpscOp> {
    prop_oneof![
        any::<u64>().prop_map(SpscOp::Push),
        vec(any::<u64>(), 0..20).prop_map(SpscOp::PushBatch),
        Just(SpscOp::Pop),
        (0usize..20).prop_map(SpscOp::PopBatch),
    ]
}

#[derive(Debug, Clone)]
enum ByteOp {
    /// `try_push` of a payload whose length is picked from `0..=max`.
    Push(Index),
    /// `try_reserve`, then `commit_len` of a part of it.
    ReserveCommit(Index, Index),
    /// `try_reserve`, fill, drop.
    ReserveDrop(Index),
    /// `try_read`.
    Pop,
}

fn byte_len() -> impl Strategy<Value = Index> {
    any::<Index>()
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => byte_len().prop_map(ByteOp::Push),
        1 => (byte_len(), any::<Index>()).prop_map(|(len, keep)| ByteOp::ReserveCommit(len, keep)),
        1 => byte_len().prop_map(ByteOp::ReserveDrop),
        4 => Just(ByteOp::Pop),
    ]
}

#[derive(Debug, Clone)]
enum MpmcOp {
    Push { producer: bool, value: u64 },
    Pop { consumer: bool },
}

fn mpmc_op() -> impl Strategy<Value = MpmcOp> {
    prop_oneof![
        (any::<bool>(), any::<u64>()).prop_map(|(producer, value)| MpmcOp::Push { producer, value }),
        any::<bool>().prop_map(|consumer| MpmcOp::Pop { consumer }),
    ]
}

/// Payload lengths: short ones often, anything up to `max` sometimes.
fn pick_len(index: &Index, max: usize) -> usize {
    let raw = index.index(4 * (max + 1));
    if raw < 2 * (max + 1) { raw % 17.min(max + 1) } else { raw % (max + 1) }
}

/// Whether a record of `len` bytes fits now, from the positions and the
/// documented layout: 8-byte header, payload padded to 8, and a padding
/// record to the end of the ring if the record does not fit before it.
fn fits(region: &Region, len: usize) -> bool {
    let capacity = region.capacity();
    let (write, read) = region.positions();
    let need = (RECORD_HEADER + len.next_multiple_of(8)) as u64;
    let to_end = capacity - write % capacity;
    let pad = if need > to_end { to_end } else { 0 };
    pad + need <= capacity - (write - read)
}

fn payload(counter: &mut u8, len: usize) -> Vec<u8> {
    *counter = counter.wrapping_add(1);
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ *counter).collect()
}

proptest! {
    #[test]
    fn spsc_behaves_like_a_bounded_queue(requested in 1u64..=16, ops in vec(spsc_op(), 0..200)) {
        let region = Region::heap(Params::fixed(Flavor::Spsc, requested, 8, 8).unwrap()).unwrap();
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region.clone()).unwrap();
        let capacity = tx.capacity();
        prop_assert_eq!(capacity as u64, requested.next_power_of_two());
        let mut model = VecDeque::new();
        let (mut pushed, mut popped) = (0u64, 0u64);
        for op in ops {
            match op {
                SpscOp::Push(v) => {
                    let ok = tx.try_push(&v).unwrap();
                    prop_assert_eq!(ok, model.len() < capacity);
                    if ok {
                        model.push_back(v);
                        pushed += 1;
                    }
                }
                SpscOp::PushBatch(values) => {
                    let n = tx.push_batch(&values).unwrap();
                    prop_assert_eq!(n, values.len().min(capacity - model.len()));
                    model.extend(&values[..n]);
                    pushed += n as u64;
                }
                SpscOp::Pop => {
                    let got = rx.try_pop().unwrap();
                    prop_assert_eq!(got, model.pop_front());
                    popped += u64::from(got.is_some());
                }
                SpscOp::PopBatch(k) => {
                    let mut out = vec![0u64; k];
                    let n = rx.pop_batch(&mut out).unwrap();
                    let expected: Vec<u64> = model.drain(..k.min(model.len())).collect();
                    prop_assert_eq!(&out[..n], &expected[..]);
                    popped += n as u64;
                }
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(rx.is_empty(), model.is_empty());
            prop_assert_eq!(region.positions(), (pushed, popped));
        }
    }

    #[test]
    fn byte_ring_behaves_like_a_queue_of_records(
        capacity in prop::sample::select(vec![64u64, 128, 256]),
        ops in vec(byte_op(), 0..200),
    ) {
        let region = Region::heap(Params::bytes(capacity).unwrap()).unwrap();
        let mut tx = ByteProducer::attach(region.clone()).unwrap();
        let mut rx = ByteConsumer::attach(region.clone()).unwrap();
        let max = tx.max_record_len();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut counter = 0u8;
        for op in ops {
            match op {
                ByteOp::Push(len) => {
                    let len = pick_len(&len, max);
                    let record = payload(&mut counter, len);
                    let expected = fits(&region, len);
                    let ok = tx.try_push(&record).unwrap();
                    prop_assert_eq!(ok, expected, "len {} at {:?}", len, region.positions());
                    if !ok && model.is_empty() {
                        // Any record up to the maximum fits an empty ring once
                        // the consumer has passed what padding there is.
                        prop_assert!(rx.try_read().unwrap().is_none());
                        prop_assert!(tx.try_push(&record).unwrap(), "len {} never fits the empty ring", len);
                        model.push_back(record);
                    } else if ok {
                        model.push_back(record);
                    }
                }
                ByteOp::ReserveCommit(len, keep) => {
                    let len = pick_len(&len, max);
                    let expected = fits(&region, len);
                    let record = payload(&mut counter, len);
                    match tx.try_reserve(len).unwrap() {
                        Some(mut grant) => {
                            prop_assert!(expected);
                            grant.copy_from_slice(&record);
                            let keep = keep.index(len + 1);
                            grant.commit_len(keep);
                            model.push_back(record[..keep].to_vec());
                        }
                        None => prop_assert!(!expected),
                    }
                }
                ByteOp::ReserveDrop(len) => {
                    let len = pick_len(&len, max);
                    let before = region.positions();
                    let reserved = match tx.try_reserve(len).unwrap() {
                        Some(mut grant) => {
                            grant.fill(0xdd);
                            true
                        }
                        None => false,
                    };
                    if reserved {
                        prop_assert_eq!(region.positions(), before, "a dropped grant published something");
                    }
                }
                ByteOp::Pop => {
                    let got = rx.try_read().unwrap().map(|g| g.to_vec());
                    prop_assert_eq!(got, model.pop_front());
                }
            }
            let (write, read) = region.positions();
            prop_assert!(write - read <= capacity);
            prop_assert!(rx.len_bytes() as u64 <= capacity);
            let payload_bytes: usize = model.iter().map(|r| RECORD_HEADER + r.len().next_multiple_of(8)).sum();
            prop_assert!(payload_bytes as u64 <= write - read);
        }
        // Everything left comes out in order.
        while let Some(expected) = model.pop_front() {
            let got = rx.try_read().unwrap().map(|g| g.to_vec());
            prop_assert_eq!(got, Some(expected));
        }
        prop_assert!(rx.try_read().unwrap().is_none());
    }

    #[test]
    fn mpmc_behaves_like_a_bounded_queue_in_one_thread(requested in 1u64..=16, ops in vec(mpmc_op(), 0..200)) {
        let region = Region::heap(Params::fixed(Flavor::Mpmc, requested, 8, 8).unwrap()).unwrap();
        let mut producers = [
            MpmcProducer::<u64>::attach(region.clone(), Some(0)).unwrap(),
            MpmcProducer::<u64>::attach(region.clone(), None).unwrap(),
        ];
        let mut consumers = [
            MpmcConsumer::<u64>::attach(region.clone()).unwrap(),
            MpmcConsumer::<u64>::attach(region.clone()).unwrap(),
        ];
        let capacity = producers[0].capacity();
        prop_assert_eq!(capacity as u64, requested.next_power_of_two().max(2));
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                MpmcOp::Push { producer, value } => {
                    let ok = producers[usize::from(producer)].try_push(&value).unwrap();
                    prop_assert_eq!(ok, model.len() < capacity);
                    if ok {
                        model.push_back(value);
                    }
                }
                MpmcOp::Pop { consumer } => {
                    prop_assert_eq!(consumers[usize::from(consumer)].try_pop().unwrap(), model.pop_front());
                }
            }
            prop_assert_eq!(consumers[0].len(), model.len());
            prop_assert_eq!(consumers[1].is_empty(), model.is_empty());
            prop_assert_eq!(consumers[0].stall(), None);
        }
        prop_assert_eq!(region.header_snapshot().skipped, 0);
    }
}
