//! Waiting: the futex handshake under ping-pong, deadlines enforced through
//! `check`, and data that arrives as the wait gives up.
//!
//! No test here asserts that anything is fast: only that a wait ends, with
//! the right outcome, well within a generous bound.

mod common;

use common::{BAIL_OUT, TestError, deadline, one_stress_at_a_time, patient};
use shmlane_ring::{
    ByteConsumer, ByteProducer, Flavor, MpmcConsumer, MpmcProducer, Params, Region, SpscConsumer, SpscProducer,
    WaitStrategy,
};
use std::time::{Duration, Instant};

const STRATEGIES: [WaitStrategy; 3] =
    [WaitStrategy::BusySpin, WaitStrategy::SpinThenPark { spins: 100 }, WaitStrategy::Park];

fn spsc(capacity: u64) -> (SpscProducer<u64>, SpscConsumer<u64>) {
    let region = Region::heap(Params::fixed(Flavor::Spsc, capacity, 8, 8).unwrap()).unwrap();
    (SpscProducer::attach(region.clone()).unwrap(), SpscConsumer::attach(region).unwrap())
}

fn mpmc(capacity: u64) -> (MpmcProducer<u64>, MpmcConsumer<u64>) {
    let region = Region::heap(Params::fixed(Flavor::Mpmc, capacity, 8, 8).unwrap()).unwrap();
    (MpmcProducer::attach(region.clone(), None).unwrap(), MpmcConsumer::attach(region).unwrap())
}

fn bytes(capacity: u64) -> (ByteProducer, ByteConsumer) {
    let region = Region::heap(Params::bytes(capacity).unwrap()).unwrap();
    (ByteProducer::attach(region.clone()).unwrap(), ByteConsumer::attach(region).unwrap())
}

/// Round trips of the ping-pong tests.
const ROUND_TRIPS: u64 = 2000;

/// Two threads, each parking as soon as it waits, bounce a counter over two
/// SPSC rings: every message has to wake a sleeping peer.
fn ping_pong(strategy: WaitStrategy) {
    let _serial = one_stress_at_a_time();
    let (mut ping_tx, mut ping_rx) = spsc(1);
    let (mut pong_tx, mut pong_rx) = spsc(1);
    ping_tx.set_strategy(strategy);
    pong_rx.set_strategy(strategy);
    ping_rx.set_strategy(strategy);
    pong_tx.set_strategy(strategy);
    let echo = std::thread::spawn(move || {
        for i in 0..ROUND_TRIPS {
            let v = ping_rx.pop_blocking(strategy, patient()).unwrap();
            assert_eq!(v, i);
            pong_tx.push_blocking(&(v + 1), strategy, patient()).unwrap();
        }
    });
    for i in 0..ROUND_TRIPS {
        ping_tx.push_blocking(&i, strategy, patient()).unwrap();
        assert_eq!(pong_rx.pop_blocking(strategy, patient()).unwrap(), i + 1);
    }
    echo.join().unwrap();
    assert_eq!(pong_rx.try_pop().unwrap(), None);
}

#[test]
fn ping_pong_parks_and_wakes_both_sides() {
    ping_pong(WaitStrategy::Park);
}

#[test]
fn ping_pong_spins_then_parks() {
    ping_pong(WaitStrategy::SpinThenPark { spins: 64 });
}

#[test]
fn ping_pong_over_byte_rings_parks_and_wakes() {
    let _serial = one_stress_at_a_time();
    let strategy = WaitStrategy::Park;
    let (mut ping_tx, mut ping_rx) = bytes(64);
    let (mut pong_tx, mut pong_rx) = bytes(64);
    for side in [&ping_tx, &pong_tx] {
        side.set_strategy(strategy);
    }
    for side in [&ping_rx, &pong_rx] {
        side.set_strategy(strategy);
    }
    let echo = std::thread::spawn(move || {
        for _ in 0..ROUND_TRIPS {
            let len = {
                let got = ping_rx.read_blocking(strategy, patient()).unwrap();
                got.len()
            };
            // Answer with a record one byte longer (wrapping at the maximum).
            let reply = (len + 1) % (pong_tx.max_record_len() + 1);
            pong_tx.reserve_blocking(reply, strategy, patient()).unwrap().commit();
        }
    });
    let max = ping_tx.max_record_len();
    for i in 0..ROUND_TRIPS as usize {
        let len = i % (max + 1);
        let mut grant = ping_tx.reserve_blocking(len, strategy, patient()).unwrap();
        grant.fill(len as u8);
        grant.commit();
        let got = pong_rx.read_blocking(strategy, patient()).unwrap();
        assert_eq!(got.len(), (len + 1) % (max + 1));
    }
    echo.join().unwrap();
}

#[test]
fn ping_pong_over_mpmc_rings_parks_and_wakes() {
    let _serial = one_stress_at_a_time();
    let strategy = WaitStrategy::Park;
    let (mut ping_tx, mut ping_rx) = mpmc(2);
    let (mut pong_tx, mut pong_rx) = mpmc(2);
    ping_tx.set_strategy(strategy);
    ping_rx.set_strategy(strategy);
    pong_tx.set_strategy(strategy);
    pong_rx.set_strategy(strategy);
    let echo = std::thread::spawn(move || {
        for _ in 0..ROUND_TRIPS {
            let v = ping_rx.pop_blocking(strategy, patient()).unwrap();
            pong_tx.push_blocking(&(v * 2), strategy, patient()).unwrap();
        }
    });
    for i in 0..ROUND_TRIPS {
        ping_tx.push_blocking(&i, strategy, patient()).unwrap();
        assert_eq!(pong_rx.pop_blocking(strategy, patient()).unwrap(), i * 2);
    }
    echo.join().unwrap();
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_late_producer() {
    for strategy in STRATEGIES {
        let (mut tx, mut rx) = spsc(4);
        rx.set_strategy(strategy);
        let consumer = std::thread::spawn(move || rx.pop_blocking(strategy, patient()).unwrap());
        // Give the consumer a chance to go to sleep first (not required for
        // the test to pass, only for it to test something).
        std::thread::sleep(Duration::from_millis(20));
        assert!(tx.try_push(&42).unwrap());
        assert_eq!(consumer.join().unwrap(), 42);
    }
}

#[test]
fn a_sleeping_producer_is_woken_by_a_late_consumer() {
    for strategy in STRATEGIES {
        let (mut tx, mut rx) = spsc(1);
        tx.set_strategy(strategy);
        assert!(tx.try_push(&1).unwrap());
        let producer = std::thread::spawn(move || tx.push_blocking(&2, strategy, patient()).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(rx.try_pop().unwrap(), Some(1));
        producer.join().unwrap();
        assert_eq!(rx.try_pop().unwrap(), Some(2));
    }
}

const LIMIT: Duration = Duration::from_millis(50);

/// Runs `wait`, which must give up with `Timeout` once [`LIMIT`] has passed.
fn times_out<T: std::fmt::Debug>(what: &str, wait: impl FnOnce() -> Result<T, TestError>) {
    let start = Instant::now();
    let result = wait();
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(TestError::Timeout)), "{what}: {result:?}");
    // `check` alone decides when to give up, so this cannot be early.
    assert!(elapsed >= LIMIT, "{what}: gave up after {elapsed:?}");
    assert!(elapsed < BAIL_OUT, "{what}: took {elapsed:?}");
}

#[test]
fn a_wait_on_an_empty_or_full_ring_ends_with_the_check_error() {
    for strategy in STRATEGIES {
        let (mut tx, mut rx) = spsc(1);
        tx.set_strategy(strategy);
        rx.set_strategy(strategy);
        times_out("spsc pop", || rx.pop_blocking(strategy, deadline(LIMIT)));
        assert!(tx.try_push(&1).unwrap());
        times_out("spsc push", || tx.push_blocking(&2, strategy, deadline(LIMIT)));
        assert_eq!(rx.try_pop().unwrap(), Some(1), "the timed-out push left nothing behind");
        assert_eq!(rx.try_pop().unwrap(), None);

        let (mut tx, mut rx) = mpmc(2);
        tx.set_strategy(strategy);
        rx.set_strategy(strategy);
        times_out("mpmc pop", || rx.pop_blocking(strategy, deadline(LIMIT)));
        assert!(tx.try_push(&1).unwrap() && tx.try_push(&2).unwrap());
        times_out("mpmc push", || tx.push_blocking(&3, strategy, deadline(LIMIT)));
        assert_eq!((rx.try_pop().unwrap(), rx.try_pop().unwrap(), rx.try_pop().unwrap()), (Some(1), Some(2), None));

        let (mut tx, mut rx) = bytes(64);
        tx.set_strategy(strategy);
        rx.set_strategy(strategy);
        times_out("bytes read", || rx.read_blocking(strategy, deadline(LIMIT)).map(|g| g.len()));
        assert!(tx.try_push(&[1; 56]).unwrap());
        times_out("bytes reserve", || tx.reserve_blocking(0, strategy, deadline(LIMIT)).map(|g| g.len()));
        assert_eq!(rx.try_read().unwrap().map(|g| g.len()), Some(56));
        assert!(rx.try_read().unwrap().is_none());
    }
}

#[test]
fn a_check_that_fails_as_data_arrives_still_delivers_it() {
    for strategy in STRATEGIES {
        // The data shows up during the last `check`, which then gives up:
        // the wait runs its attempt once more and returns the data.
        let (mut tx, mut rx) = spsc(1);
        let got = rx.pop_blocking(strategy, || {
            assert!(tx.try_push(&7).unwrap());
            Err::<Duration, _>(TestError::Timeout)
        });
        assert_eq!(got.unwrap(), 7);
        assert!(tx.try_push(&8).unwrap());
        let pushed = tx.push_blocking(&9, strategy, || {
            assert_eq!(rx.try_pop().unwrap(), Some(8));
            Err::<Duration, _>(TestError::Timeout)
        });
        pushed.unwrap();
        assert_eq!(rx.try_pop().unwrap(), Some(9));

        let (mut tx, mut rx) = mpmc(2);
        let got = rx.pop_blocking(strategy, || {
            assert!(tx.try_push(&7).unwrap());
            Err::<Duration, _>(TestError::Timeout)
        });
        assert_eq!(got.unwrap(), 7);
        assert!(tx.try_push(&1).unwrap() && tx.try_push(&2).unwrap());
        let pushed = tx.push_blocking(&3, strategy, || {
            assert_eq!(rx.try_pop().unwrap(), Some(1));
            Err::<Duration, _>(TestError::Timeout)
        });
        pushed.unwrap();
        assert_eq!((rx.try_pop().unwrap(), rx.try_pop().unwrap()), (Some(2), Some(3)));

        let (mut tx, mut rx) = bytes(64);
        {
            let got = rx
                .read_blocking(strategy, || {
                    assert!(tx.try_push(b"late").unwrap());
                    Err::<Duration, _>(TestError::Timeout)
                })
                .unwrap();
            assert_eq!(&*got, b"late");
        }
        let (mut tx, mut rx) = bytes(64);
        assert!(tx.try_push(&[1; 56]).unwrap());
        let grant = tx
            .reserve_blocking(8, strategy, || {
                assert_eq!(rx.try_read().unwrap().map(|g| g.len()), Some(56));
                Err::<Duration, _>(TestError::Timeout)
            })
            .unwrap();
        grant.commit();
        assert_eq!(rx.try_read().unwrap().map(|g| g.len()), Some(8));
    }
}

#[test]
fn a_check_that_fails_with_no_data_returns_its_error_at_once() {
    for strategy in STRATEGIES {
        let (_tx, mut rx) = spsc(1);
        let mut calls = 0;
        let got = rx.pop_blocking(strategy, || {
            calls += 1;
            Err::<Duration, _>(TestError::Timeout)
        });
        assert!(matches!(got, Err(TestError::Timeout)));
        assert_eq!(calls, 1, "{strategy:?}: the first error ends the wait");
    }
}
