//! Typed SPSC: edges first, then threads, then corruption.

use shmlane_ring::{Corruption, Flavor, LayoutError, Params, Region, SpscConsumer, SpscProducer, WaitStrategy};
use std::time::Duration;

fn pair(capacity: u64) -> (SpscProducer<u64>, SpscConsumer<u64>) {
    let region = Region::heap(Params::fixed(Flavor::Spsc, capacity, 8, 8).unwrap()).unwrap();
    (SpscProducer::attach(region.clone()).unwrap(), SpscConsumer::attach(region).unwrap())
}

#[test]
fn capacity_one_alternates_full_and_empty() {
    let (mut tx, mut rx) = pair(1);
    assert_eq!(tx.capacity(), 1);
    for i in 0..10 {
        assert!(rx.is_empty());
        assert!(tx.try_push(&i).unwrap());
        assert!(!tx.try_push(&99).unwrap(), "full at capacity 1");
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.try_pop().unwrap(), Some(i));
        assert_eq!(rx.try_pop().unwrap(), None);
    }
}

#[test]
fn fills_to_capacity_and_wraps_in_order() {
    let (mut tx, mut rx) = pair(4);
    let mut next_out = 0;
    for round in 0..5u64 {
        for i in 0..4 {
            assert!(tx.try_push(&(round * 4 + i)).unwrap());
        }
        assert!(!tx.try_push(&0).unwrap());
        assert_eq!(rx.len(), 4);
        while let Some(v) = rx.try_pop().unwrap() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
    }
    assert_eq!(next_out, 20);
}

#[test]
fn batches_publish_what_fits() {
    let (mut tx, mut rx) = pair(8);
    let values: Vec<u64> = (0..11).collect();
    assert_eq!(tx.push_batch(&values).unwrap(), 8);
    assert_eq!(tx.push_batch(&values).unwrap(), 0);
    let mut out = [0u64; 5];
    assert_eq!(rx.pop_batch(&mut out).unwrap(), 5);
    assert_eq!(out, [0, 1, 2, 3, 4]);
    assert_eq!(tx.push_batch(&values[8..]).unwrap(), 3);
    let mut out = [0u64; 16];
    assert_eq!(rx.pop_batch(&mut out).unwrap(), 6);
    assert_eq!(&out[..6], &[5, 6, 7, 8, 9, 10]);
    assert_eq!(rx.pop_batch(&mut out).unwrap(), 0);
}

#[test]
fn wrong_message_type_is_refused() {
    let region = Region::heap(Params::fixed(Flavor::Spsc, 4, 8, 8).unwrap()).unwrap();
    let err = SpscConsumer::<u32>::attach(region.clone()).unwrap_err();
    assert!(matches!(err, LayoutError::MessageMismatch { found_size: 8, expected_size: 4, .. }));
    let err = SpscConsumer::<[u8; 8]>::attach(region).unwrap_err();
    assert!(matches!(err, LayoutError::MessageMismatch { found_align: 8, expected_align: 1, .. }));
}

#[test]
fn zero_sized_messages_count() {
    let region = Region::heap(Params::fixed(Flavor::Spsc, 2, 0, 1).unwrap()).unwrap();
    let mut tx = SpscProducer::<()>::attach(region.clone()).unwrap();
    let mut rx = SpscConsumer::<()>::attach(region).unwrap();
    assert!(tx.try_push(&()).unwrap());
    assert!(tx.try_push(&()).unwrap());
    assert!(!tx.try_push(&()).unwrap());
    assert_eq!(rx.try_pop().unwrap(), Some(()));
}

#[test]
fn a_new_producer_continues_after_a_batch_whose_position_was_lost() {
    let region = Region::heap(Params::fixed(Flavor::Spsc, 8, 8, 8).unwrap()).unwrap();
    let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
    let mut rx = SpscConsumer::<u64>::attach(region.clone()).unwrap();
    assert_eq!(tx.push_batch(&[1, 2, 3]).unwrap(), 3);
    // Simulate a producer that died after writing slots but before
    // publishing write_pos: put the shared position back.
    region.producer_line().write_pos.store(1, std::sync::atomic::Ordering::Relaxed);
    drop(tx);
    let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
    assert_eq!(region.positions().0, 3, "recovered the batch");
    assert!(tx.try_push(&4).unwrap());
    let mut out = [0; 8];
    assert_eq!(rx.pop_batch(&mut out).unwrap(), 4);
    assert_eq!(&out[..4], &[1, 2, 3, 4]);
}

#[test]
fn corrupt_positions_and_sequences_are_errors_not_panics() {
    use std::sync::atomic::Ordering::Relaxed;
    let region = Region::heap(Params::fixed(Flavor::Spsc, 4, 8, 8).unwrap()).unwrap();
    let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
    let mut rx = SpscConsumer::<u64>::attach(region.clone()).unwrap();
    for i in 0..4 {
        assert!(tx.try_push(&i).unwrap());
    }
    // Consumer position far ahead of the producer.
    region.consumer_line().read_pos.store(u64::MAX - 1, Relaxed);
    assert!(matches!(tx.try_push(&9), Err(Corruption::Positions { .. })));
    assert!(matches!(tx.push_batch(&[9]), Err(Corruption::Positions { .. })));
    region.consumer_line().read_pos.store(0, Relaxed);
    // A fresh handle refuses impossible positions at attach.
    region.producer_line().write_pos.store(1000, Relaxed);
    assert!(SpscProducer::<u64>::attach(region.clone()).is_err());
    assert!(SpscConsumer::<u64>::attach(region.clone()).is_err());
    region.producer_line().write_pos.store(4, Relaxed);
    assert_eq!(rx.try_pop().unwrap(), Some(0));
    let _ = rx.try_pop().unwrap();
    // Values outside 0..=capacity never show in len().
    region.producer_line().write_pos.store(u64::MAX, Relaxed);
    assert!(rx.len() <= 4);
    region.consumer_line().read_pos.store(u64::MAX, Relaxed);
    region.producer_line().write_pos.store(0, Relaxed);
    assert_eq!(region.len(), 0);
}

#[test]
fn threads_move_every_message_once_in_order() {
    const N: u64 = 2_000_000;
    for strategy in [WaitStrategy::BusySpin, WaitStrategy::SpinThenPark { spins: 64 }, WaitStrategy::Park] {
        let n = if strategy == WaitStrategy::BusySpin { N } else { N / 20 };
        let (mut tx, mut rx) = pair(64);
        tx.set_strategy(strategy);
        rx.set_strategy(strategy);
        let producer = std::thread::spawn(move || {
            let mut batch = Vec::new();
            let mut i = 0;
            while i < n {
                if i % 3 == 0 {
                    batch.clear();
                    batch.extend(i..(i + 5).min(n));
                    let mut sent = 0;
                    while sent < batch.len() {
                        sent += tx.push_batch(&batch[sent..]).unwrap();
                    }
                    i += batch.len() as u64;
                } else {
                    tx.push_blocking(&i, strategy, || {
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Duration::from_millis(50))
                    })
                    .map_err(|e| e.to_string())
                    .unwrap();
                    i += 1;
                }
            }
        });
        let mut expected = 0;
        let mut buf = [0u64; 7];
        while expected < n {
            if expected % 2 == 0 {
                let got = rx.pop_batch(&mut buf).unwrap();
                for v in &buf[..got] {
                    assert_eq!(*v, expected);
                    expected += 1;
                }
            } else {
                let v = rx
                    .pop_blocking(strategy, || {
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Duration::from_millis(50))
                    })
                    .map_err(|e| e.to_string())
                    .unwrap();
                assert_eq!(v, expected);
                expected += 1;
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.try_pop().unwrap(), None);
    }
}
