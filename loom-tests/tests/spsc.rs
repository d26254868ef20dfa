//! Typed SPSC: values arrive exactly once, in order, across the wrap point.
#![cfg(loom)]

mod common;
use common::*;
use loom::thread;
use shmlane_ring::{SpscConsumer, SpscProducer};

#[test]
fn push_pop_across_the_wrap() {
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        let producer = thread::spawn(move || {
            for i in 1..=3u64 {
                spin(|| tx.try_push(&i).unwrap().then_some(()));
            }
        });
        for i in 1..=3u64 {
            assert_eq!(spin(|| rx.try_pop().unwrap()), i);
        }
        assert_eq!(rx.try_pop().unwrap(), None);
        producer.join().unwrap();
    });
}

#[test]
fn batches_arrive_whole_and_in_order() {
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        let producer = thread::spawn(move || {
            let values = [1u64, 2, 3];
            let mut sent = 0;
            while sent < values.len() {
                sent += tx.push_batch(&values[sent..]).unwrap();
                loom::thread::yield_now();
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u64; 2];
        while got.len() < 3 {
            let n = rx.pop_batch(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            loom::thread::yield_now();
        }
        assert_eq!(got, [1, 2, 3]);
        producer.join().unwrap();
    });
}

#[test]
fn full_and_empty_edges() {
    model(|| {
        let region = spsc(1);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        assert!(tx.try_push(&1).unwrap());
        let producer = thread::spawn(move || {
            // Full until the consumer frees the only slot.
            spin(|| tx.try_push(&2).unwrap().then_some(()));
        });
        assert_eq!(spin(|| rx.try_pop().unwrap()), 1);
        assert_eq!(spin(|| rx.try_pop().unwrap()), 2);
        producer.join().unwrap();
    });
}
