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
    lost_wake_up_model();
}

/// Without the waker's fence, the same Dekker pair breaks from the other side.
#[cfg(shmlane_seeded_bug = "no_wake_fence")]
#[test]
#[should_panic]
fn missing_wake_fence_loses_a_wake_up() {
    lost_wake_up_model();
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

/// Two publishes: the first arms the waker (a sleeper that saw `armed`
/// also sees it, fence or not), the second is the one a broken Dekker pair
/// can lose.
fn lost_wake_up_model() {
    use shmlane_ring::{SpscConsumer, SpscProducer, WaitStrategy};
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::Park);
        assert!(tx.try_push(&1).unwrap());
        let producer = loom::thread::spawn(move || {
            assert!(tx.try_push(&2).unwrap());
        });
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(2));
        producer.join().unwrap();
    });
}

/// The same model passes on the correct code (`.ci/run` skips it in the
/// seeded builds, where it fails by design).
#[test]
fn the_lost_wake_up_model_passes_without_a_seeded_bug() {
    lost_wake_up_model();
}

/// Without the reader's second version load, a copy that raced with the
/// writer is delivered torn.
#[cfg(shmlane_seeded_bug = "no_version_recheck")]
#[test]
#[should_panic(expected = "torn read delivered")]
fn missing_version_recheck_delivers_a_torn_read() {
    torn_read_model();
}
