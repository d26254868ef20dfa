//! The sleep/wake handshake: no lost wake-up (it would deadlock the model:
//! loom's futex blocks without a timer), no missed message, timeouts and
//! spurious returns, and disconnect while parked.
#![cfg(loom)]

mod common;
use common::*;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use shmlane_ring::{SpscConsumer, SpscProducer, WaitStrategy};
use std::time::Duration;

#[test]
fn consumer_parks_on_empty_and_is_woken() {
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::Park);
        let producer = thread::spawn(move || {
            assert!(tx.try_push(&1).unwrap());
            assert!(tx.try_push(&2).unwrap());
        });
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(2));
        producer.join().unwrap();
    });
}

#[test]
fn consumer_announcing_while_the_producer_publishes() {
    // The consumer announces itself concurrently with the first publish: it
    // must not park on the futex before the producer armed, or it could
    // sleep through that publish.
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        let producer = thread::spawn(move || {
            assert!(tx.try_push(&1).unwrap());
        });
        rx.set_strategy(WaitStrategy::Park);
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        producer.join().unwrap();
    });
}

#[test]
fn producer_parks_on_full_and_is_woken() {
    model(|| {
        let region = spsc(1);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        tx.set_strategy(WaitStrategy::Park);
        rx.set_strategy(WaitStrategy::Park);
        let producer = thread::spawn(move || {
            for i in 1..=2 {
                tx.push_blocking(&i, WaitStrategy::Park, forever).unwrap();
            }
        });
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(1));
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, forever), Ok(2));
        producer.join().unwrap();
    });
}

#[test]
fn timeouts_and_spurious_returns_never_lose_a_message() {
    // Every sleep "times out" at once (a spurious return); after a few the
    // caller's deadline passes. Either the message arrives, or Timeout, and
    // a message that arrived is never lost: it is read afterwards.
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::SpinThenPark { spins: 1 });
        let producer = thread::spawn(move || {
            assert!(tx.try_push(&7).unwrap());
        });
        let mut checks = 0;
        let got = rx.pop_blocking(WaitStrategy::SpinThenPark { spins: 1 }, || {
            checks += 1;
            if checks > 2 { Err(Stop::Timeout) } else { Ok(Duration::ZERO) }
        });
        producer.join().unwrap();
        match got {
            Ok(v) => assert_eq!(v, 7),
            Err(Stop::Timeout) => assert_eq!(rx.try_pop().unwrap(), Some(7)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn disconnect_while_parked_wakes_and_drains_first() {
    // The producer sends, then leaves: marks itself gone (the transport's
    // lock release) and rings the bell. The parked consumer gets the message
    // first, then Disconnected; never a hang. "Gone" is not part of the
    // Dekker pair (the transport learns it from a lock probe), so a sleeper
    // may miss the leaving ring; it then notices at its next liveness probe,
    // which ends every bounded sleep slice.
    model(|| {
        let region = spsc(2);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let mut rx = SpscConsumer::<u64>::attach(region).unwrap();
        rx.set_strategy(WaitStrategy::Park);
        let gone = Arc::new(AtomicBool::new(false));
        let producer = {
            let gone = gone.clone();
            thread::spawn(move || {
                assert!(tx.try_push(&1).unwrap());
                gone.store(true, Ordering::Release);
                tx.wake_peer();
            })
        };
        // The real `check` probes liveness after every bounded sleep slice;
        // loom has no timer, so the slice is a timeout that fires at once.
        let check = || if gone.load(Ordering::Acquire) { Err(Stop::Disconnected) } else { Ok(Duration::ZERO) };
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, check), Ok(1));
        assert_eq!(rx.pop_blocking(WaitStrategy::Park, check), Err(Stop::Disconnected));
        producer.join().unwrap();
    });
}

#[test]
fn parked_producer_sees_consumer_gone() {
    model(|| {
        let region = spsc(1);
        let mut tx = SpscProducer::<u64>::attach(region.clone()).unwrap();
        let rx = SpscConsumer::<u64>::attach(region).unwrap();
        tx.set_strategy(WaitStrategy::Park);
        assert!(tx.try_push(&1).unwrap());
        let gone = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let gone = gone.clone();
            thread::spawn(move || {
                gone.store(true, Ordering::Release);
                rx.wake_peer();
            })
        };
        let check = || {
            calls.fetch_add(1, Ordering::Relaxed);
            if gone.load(Ordering::Acquire) { Err(Stop::Disconnected) } else { Ok(Duration::ZERO) }
        };
        assert_eq!(tx.push_blocking(&2, WaitStrategy::Park, check), Err(Stop::Disconnected));
        consumer.join().unwrap();
    });
}
