//! MPMC (Vyukov): every value exactly once with 2 producers / 1 consumer
//! and 1 producer / 2 consumers, capacity 2. Waiting goes through the futex
//! model (blocked threads are not scheduled), which keeps the models finite
//! and checks MPMC wake-ups too.
#![cfg(loom)]

mod common;
use common::*;
use loom::sync::{Arc, Mutex};
use loom::thread;
use shmlane_ring::{MpmcConsumer, MpmcProducer, WaitStrategy::Park};

#[test]
fn two_producers_one_consumer() {
    model(|| {
        let region = mpmc(2);
        let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
        let producers: Vec<_> = [10u64, 20]
            .into_iter()
            .map(|base| {
                let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
                thread::spawn(move || {
                    for i in 1..=2 {
                        tx.push_blocking(&(base + i), Park, forever).unwrap();
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 4 {
            got.push(rx.pop_blocking(Park, forever).unwrap());
        }
        for p in producers {
            p.join().unwrap();
        }
        // Per producer, in order; overall, exactly once.
        let from = |base: u64| got.iter().copied().filter(|v| v / 10 == base / 10).collect::<Vec<_>>();
        assert_eq!(from(10), [11, 12]);
        assert_eq!(from(20), [21, 22]);
        assert_eq!(rx.try_pop().unwrap(), None);
    });
}

#[test]
fn one_producer_two_consumers() {
    model(|| {
        let region = mpmc(2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
                let seen = seen.clone();
                thread::spawn(move || {
                    for _ in 0..2 {
                        let v = rx.pop_blocking(Park, forever).unwrap();
                        seen.lock().unwrap().push(v);
                    }
                })
            })
            .collect();
        let mut tx = MpmcProducer::<u64>::attach(region, None).unwrap();
        for i in 1..=4u64 {
            tx.push_blocking(&i, Park, forever).unwrap();
        }
        for c in consumers {
            c.join().unwrap();
        }
        let mut all = seen.lock().unwrap().clone();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3, 4]);
    });
}
