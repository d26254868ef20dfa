//! MPMC rings: producers SIGKILLed mid-write, and the skipped-slot
//! regression the crash suite found.

use crate::board::{Board, COMMITTED, CONSUMED, READY};
use crate::common::{Shm, TIMEOUT, serial, spawn, strategy_arg};
use crate::payload::Wide;
use crate::support::{Latencies, any_wait, kill_after, reap, seeded_rng};
use shmlane::{MpmcConsumer, MpmcProducer, Options, RecvError, SendError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The body of [`crate::mpmc_producers_sigkilled_mid_write`].
pub(crate) fn mpmc_producers_sigkilled_mid_write() {
    const ITERATIONS: usize = 30;
    let _serial = serial();
    let mut rng = seeded_rng("mpmc_producers_sigkilled_mid_write");
    let mut latencies = Latencies::new("MPMC, last producer killed");
    let mut skipped_total = 0;
    for it in 0..ITERATIONS {
        let shm = Shm::new("crash_mpmc");
        let board = Board::create("crash_mpmc");
        let mut rx = MpmcConsumer::<Wide>::create(&shm.name, Options::new().capacity(64).wait(any_wait(&mut rng)))
            .expect("create consumer");
        let children: Vec<_> = (0..2u64)
            .map(|id| {
                spawn(
                    "mpmc_producer",
                    &[
                        ("NAME", shm.name.clone()),
                        ("BOARD", board.arg()),
                        ("ID", id.to_string()),
                        ("WAIT", strategy_arg(any_wait(&mut rng))),
                        ("PACE", [0, 200, 2_000][rng.up_to(2)].to_string()),
                        ("SEED", rng.next_u64().to_string()),
                    ],
                )
            })
            .collect();
        let order = if rng.up_to(1) == 0 { [0, 1] } else { [1, 0] };
        let pids = order.map(|i| children[i].pid());
        let after = 1 + rng.up_to(3_000) as u64;
        let delays = [rng.up_to(10_000), rng.up_to(10_000)].map(|us| Duration::from_micros(us as u64));
        let mut next = [0u64; 2];
        let (killed, disconnected) = std::thread::scope(|s| {
            let killer = s.spawn(|| {
                let started = || board.get(COMMITTED) >= after && board.get(COMMITTED + 1) >= after;
                // The second is killed even if the first kill gave up.
                let first = kill_after(pids[0], delays[0], started);
                let second = kill_after(pids[1], delays[1], || true);
                first.and(second)
            });
            loop {
                match rx.recv_timeout(TIMEOUT) {
                    Ok(m) => {
                        let (id, n) = m.check().unwrap_or_else(|e| panic!("iteration {it}: {e}"));
                        let id = id as usize;
                        assert!(id < 2, "iteration {it}: bogus producer {id}");
                        assert_eq!(n, next[id], "iteration {it}: producer {id} (lost, duplicated or reordered)");
                        next[id] += 1;
                    }
                    Err(RecvError::Disconnected) => {
                        let disconnected = Instant::now();
                        break (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected);
                    }
                    Err(e) => panic!("iteration {it}: recv: {e}"),
                }
            }
        });
        for child in children {
            reap(child, &board);
        }
        latencies.push(disconnected.saturating_duration_since(killed));
        let mut undelivered = 0;
        for (id, &received) in next.iter().enumerate() {
            let committed = board.get(COMMITTED + id);
            assert!(
                committed <= received && received <= committed + 1,
                "iteration {it}: producer {id} committed {committed}, received {received}"
            );
            undelivered += u64::from(received == committed);
        }
        let skipped = shmlane::inspect(&shm.path()).expect("inspect").header.skipped;
        assert!(
            skipped <= undelivered,
            "iteration {it}: {skipped} slots skipped, but only {undelivered} producers may have died holding one"
        );
        skipped_total += skipped;
        drop(rx);
        shm.assert_gone();
    }
    println!("MPMC: {ITERATIONS} iterations, 2 producers killed in each, {skipped_total} claimed slots skipped");
    latencies.check();
}

/// The body of [`crate::mpmc_skipped_slot_not_yet_passed_is_full_not_corrupt`].
pub(crate) fn mpmc_skipped_slot_not_yet_passed_is_full_not_corrupt() {
    use shmlane_ring::{Flavor, Params, Region};
    let region = Region::heap(Params::fixed(Flavor::Mpmc, 2, 8, 8).expect("params")).expect("region");
    let _dead = shmlane_ring::MpmcProducer::<u64>::attach(region.clone(), Some(0)).expect("producer 0");
    let mut live = shmlane_ring::MpmcProducer::<u64>::attach(region.clone(), Some(1)).expect("producer 1");
    let mut rx = shmlane_ring::MpmcConsumer::<u64>::attach(region.clone()).expect("consumer");
    // Producer 0 claims position 0 (claim record, then the CAS) and dies
    // before writing it.
    region.registry(0).expect("entry 0").claim.store(1, Ordering::Relaxed);
    region.producer_line().write_pos.store(1, Ordering::Release);
    // The survivor takes position 1; the ring (capacity 2) is then full.
    assert_eq!(live.try_push(&7), Ok(true));
    assert_eq!(live.try_push(&8), Ok(false));
    // The consumer is wedged at 0; with producer 0 known dead, it skips it.
    assert_eq!(rx.try_pop(), Ok(None));
    let stall = rx.stall().expect("stalled at position 0");
    assert_eq!((stall.pos, stall.claimants), (0, 0b1));
    assert!(rx.skip_stalled(&stall));
    // Not passed yet: position 2 (slot 0) is still taken.
    assert_eq!(live.try_push(&8), Ok(false), "a skipped slot no consumer passed yet is full, not corrupt");
    assert_eq!(rx.try_pop(), Ok(Some(7)));
    assert_eq!(live.try_push(&8), Ok(true));
    assert_eq!(rx.try_pop(), Ok(Some(8)));
    assert_eq!(region.header().skipped.load(Ordering::Relaxed), 1);
}

/// The body of [`crate::mpmc_consumers_sigkilled_mid_read_never_wedge_the_producer`].
pub(crate) fn mpmc_consumers_sigkilled_mid_read_never_wedge_the_producer() {
    const KILLS: usize = 30;
    let _serial = serial();
    let mut rng = seeded_rng("mpmc_consumers_sigkilled_mid_read");
    let shm = Shm::new("crash_mpmc_rx");
    let mut tx = MpmcProducer::<Wide>::create(&shm.name, Options::new().capacity(4)).expect("create producer");
    let mut message = Wide::new(0, 0);
    let mut n = 0u64;
    // `n + 1` of the last message the previous consumers recorded.
    let mut recorded = 0u64;
    for kill in 0..=KILLS {
        let board = Board::create("crash_mpmc_rx");
        let child = spawn("mpmc_consumer", &[("NAME", shm.name.clone()), ("BOARD", board.arg())]);
        // Until it holds its entry, a send would find no consumer alive.
        crate::common::wait_until("the consumer to attach", TIMEOUT, || {
            shmlane::inspect(&shm.path()).is_ok_and(|i| i.consumer.is_alive())
        });
        let last_round = kill == KILLS;
        // Stream until the consumer has taken a few messages, then kill it
        // at a random moment while the stream goes on.
        let after = n + 2 + rng.up_to(20) as u64;
        let delay = Duration::from_micros(rng.up_to(2_000) as u64);
        let pid = child.pid();
        let killer = (!last_round).then(|| {
            let board = &board;
            let killed = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                let killer = s.spawn(|| {
                    let result = kill_after(pid, delay, || board.get(CONSUMED) > after);
                    killed.store(true, Ordering::Release);
                    result
                });
                loop {
                    message.set_seq(0, n);
                    match tx.send_timeout(message, TIMEOUT) {
                        Ok(()) => n += 1,
                        // The consumer is dead: no one to wait for.
                        Err(SendError::Disconnected(_)) => {
                            assert!(killed.load(Ordering::Acquire), "kill {kill}: Disconnected with a live consumer");
                            break;
                        }
                        Err(e) => panic!("kill {kill}: send {n}: {e} (the producer wedged on a dead consumer's slot?)"),
                    }
                }
                killer.join().expect("killer thread")
            })
        });
        if let Some(killed) = killer {
            killed.unwrap_or_else(|e| panic!("kill {kill}: {e}"));
            reap(child, &board);
        } else {
            // The last consumer lives: a few more laps of the ring prove the
            // producer is not wedged, then it is killed too.
            let target = n + 64;
            while n < target {
                message.set_seq(0, n);
                tx.send_timeout(message, TIMEOUT).unwrap_or_else(|e| panic!("send {n} to the last consumer: {e}"));
                n += 1;
            }
            crate::common::wait_until("the last consumer to catch up", TIMEOUT, || board.get(CONSUMED) + 4 >= n);
            child.kill9();
            reap(child, &board);
        }
        let first = board.get(READY);
        assert!(first == 0 || first > recorded, "kill {kill}: message {} delivered again", first - 1);
        recorded = recorded.max(board.get(CONSUMED));
    }
    let released = shmlane::inspect(&shm.path()).expect("inspect").header.skipped;
    eprintln!("{KILLS} consumer kills: {released} slots released after a consumer died holding them");
    assert!(released <= KILLS as u64, "more slots released ({released}) than consumers killed");
    drop(tx);
    shm.assert_gone();
}
