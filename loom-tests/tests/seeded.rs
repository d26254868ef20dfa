//! The models have teeth: each test runs only in a build with one seeded
//! bug (`--cfg shmlane_seeded_bug="…"`, see `.ci/run`) and must fail.
#![cfg(loom)]

mod common;
#[allow(unused_imports)]
use common::*;

/// Without the sleeper's fence, its `waiting` store and its re-check can
/// be reordered around the producer's publish: a lost wake-up (deadlock).
#[cfg(shmlane_seeded_bug = "no_park_fence")]
#[test]
#[should_panic]
fn missing_park_fence_loses_a_wake_up() {
    use shmlane_ring::{SpscConsumer, SpscProducer, WaitStrategy};
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::Park);
        let producer = loom::thread::spawn(move || {
            assert!(tx.try_push(&1).unwrap());
        });
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        producer.join().unwrap();
    });
}

/// Without the waker's fence, the same Dekker pair breaks from the other side.
#[cfg(shmlane_seeded_bug = "no_wake_fence")]
#[test]
#[should_panic]
fn missing_wake_fence_loses_a_wake_up() {
    use shmlane_ring::{SpscConsumer, SpscProducer, WaitStrategy};
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::Park);
        let producer = loom::thread::spawn(move || {
            assert!(tx.try_push(&1).unwrap());
        });
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        producer.join().unwrap();
    });
}

/// A Relaxed publish of the slot sequence lets the consumer read the slot
/// before the payload write happens-before it: loom reports the race.
#[cfg(shmlane_seeded_bug = "relaxed_publish")]
#[test]
#[should_panic]
fn relaxed_publish_races_on_the_payload() {
    use shmlane_ring::{SpscConsumer, SpscProducer};
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        let producer = loom::thread::spawn(move || {
            assert!(tx.try_push(&1).unwrap());
        });
        assert_eq!(spin(|| rx.try_pop().unwrap()), 1);
        producer.join().unwrap();
    });
}

/// Present in every build so the file is never empty.
#[test]
fn seeded_bugs_are_compiled_only_on_request() {}
