//! MPMC (Vyukov): every value exactly once with 2 producers / 1 consumer
//! and 1 producer / 2 consumers, capacity 2 (the minimum) and three values,
//! so the ring also fills. Waiting goes through the futex model (a blocked
//! thread is not scheduled), which keeps the models finite and checks the
//! MPMC wake-ups with several sleepers on one bell. Three threads make these
//! the largest models: they run with a preemption bound of 2.
#![cfg(loom)]

mod common;

mod models {
    use super::common::*;
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use shmlane_ring::{MpmcConsumer, MpmcProducer, WaitStrategy::Park};

    fn model3<F: Fn() + Sync + Send + 'static>(f: F) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(2).min(2));
        builder.max_branches = 20_000;
        builder.check(f);
    }

    #[test]
    fn two_producers_one_consumer() {
        model3(|| {
            let region = mpmc(2);
            let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
            let producers: Vec<_> = [(10u64, 1u64), (20, 2)]
                .into_iter()
                .map(|(base, count)| {
                    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
                    thread::spawn(move || {
                        for i in 1..=count {
                            tx.push_blocking(&(base + i), Park, forever).unwrap();
                        }
                    })
                })
                .collect();
            let mut got = Vec::new();
            while got.len() < 3 {
                got.push(rx.pop_blocking(Park, forever).unwrap());
            }
            for p in producers {
                p.join().unwrap();
            }
            // Per producer, in order; overall, exactly once.
            let from = |base: u64| got.iter().copied().filter(|v| v / 10 == base / 10).collect::<Vec<_>>();
            assert_eq!(from(10), [11]);
            assert_eq!(from(20), [21, 22]);
            assert_eq!(rx.try_pop().unwrap(), None);
        });
    }

    #[test]
    fn one_producer_two_consumers() {
        model3(|| {
            let region = mpmc(2);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let consumers: Vec<_> = [1usize, 2]
                .into_iter()
                .map(|count| {
                    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
                    let seen = seen.clone();
                    thread::spawn(move || {
                        let mut mine = Vec::new();
                        for _ in 0..count {
                            mine.push(rx.pop_blocking(Park, forever).unwrap());
                        }
                        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order per consumer");
                        seen.lock().unwrap().extend(mine);
                    })
                })
                .collect();
            let mut tx = MpmcProducer::<u64>::attach(region, None).unwrap();
            for i in 1..=3u64 {
                tx.push_blocking(&i, Park, forever).unwrap();
            }
            for c in consumers {
                c.join().unwrap();
            }
            let mut all = seen.lock().unwrap().clone();
            all.sort_unstable();
            assert_eq!(all, [1, 2, 3]);
        });
    }

    /// The producers' unblocker never overtakes a live consumer. Entry 2
    /// holds a stale claim on position 0 from a consumer that died (so a
    /// stall on 0 always has a dead claimant); entry 1 is a live consumer
    /// popping position 0. The producer releases the stall whenever the live
    /// consumer is not among its claimants, and then writes the slot: if
    /// the live consumer's claim were not published by the CAS that takes
    /// the slot, that write would race with its read (loom's race detector
    /// on the slot bytes reports it).
    #[test]
    fn the_unblocker_never_releases_a_slot_under_a_live_consumer() {
        use loom::sync::atomic::Ordering::Relaxed;
        use shmlane_ring::mpmc::{ROLE_CONSUMER, consumer_stall, release_consumer_stall};
        model(|| {
            let region = mpmc(2);
            let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
            assert!(tx.try_push(&1).unwrap() && tx.try_push(&2).unwrap());
            let dead = region.registry(2).unwrap();
            dead.role.store(ROLE_CONSUMER, Relaxed);
            dead.claim.store(1, Relaxed);
            let mut rx = MpmcConsumer::<u64>::attach_with_entry(region.clone(), Some(1)).unwrap();
            let consumer = thread::spawn(move || rx.try_pop().unwrap());
            // Without a yield here loom ran the producer side to the end
            // before the consumer in the only schedule it tried.
            thread::yield_now();
            if let Some(stall) = consumer_stall(&region) {
                if stall.claimants & (1 << 1) == 0 && release_consumer_stall(&region, &stall) {
                    assert!(tx.try_push(&3).unwrap());
                }
            }
            assert_eq!(consumer.join().unwrap(), Some(1));
        });
    }
}
