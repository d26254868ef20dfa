//! Byte rings: the producer SIGKILLed inside grants and parked, the
//! consumer SIGKILLed holding a record or not.

use crate::board::{Board, COMMITTED, CONSUMED, IN_GRANT};
use crate::common::{Shm, TIMEOUT, serial, spawn, strategy_arg};
use crate::payload::{check_record, fill_record, record_len};
use crate::support::{Latencies, any_wait, asleep, drain_bytes, kill_after, kill9, reap, seeded_rng, wait_steadily};
use shmlane::{ByteConsumer, ByteProducer, Options, ReserveError, RoleState, WaitStrategy};
use std::time::{Duration, Instant};

/// The body of [`crate::byte_producer_sigkilled_inside_grants_and_parked`].
pub(crate) fn byte_producer_sigkilled_inside_grants_and_parked() {
    const ITERATIONS: usize = 30;
    let _serial = serial();
    let mut rng = seeded_rng("byte_producer_sigkilled_inside_grants_and_parked");
    let mut latencies = Latencies::new("byte ring, producer killed");
    let (mut in_grant, mut in_flight) = (0, 0);
    for it in 0..ITERATIONS {
        #[derive(Debug, PartialEq)]
        enum Kill {
            Random,
            InGrant(u64),
            Parked,
        }
        let kill_at = match it % 3 {
            0 => Kill::Random,
            1 => Kill::InGrant(1 + rng.up_to(3_000) as u64),
            _ => Kill::Parked,
        };
        let shm = Shm::new("crash_bytes");
        let board = Board::create("crash_bytes");
        let producer_wait = if kill_at == Kill::Parked { WaitStrategy::Park } else { any_wait(&mut rng) };
        let mut rx = ByteConsumer::create(&shm.name, Options::new().capacity(2048).wait(any_wait(&mut rng)))
            .expect("create byte consumer");
        let mut vars = vec![
            ("NAME", shm.name.clone()),
            ("BOARD", board.arg()),
            ("WAIT", strategy_arg(producer_wait)),
            ("SEED", rng.next_u64().to_string()),
        ];
        if let Kill::InGrant(seq) = kill_at {
            vars.push(("HOLD_AT", seq.to_string()));
        }
        let child = spawn("byte_producer", &vars);
        let pid = child.pid();
        let mut next = 0;
        let (killed, disconnected) = match kill_at {
            Kill::Parked => {
                let before = 1 + rng.up_to(2_000) as u64;
                while next < before {
                    check_record(&rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}")), next);
                    next += 1;
                }
                // Blocked in `reserve` (no grant open), asleep: the ring is full.
                wait_steadily("the producer to park on the full ring", || {
                    board.get(IN_GRANT) == 0 && asleep(pid, None)
                });
                std::thread::sleep(Duration::from_micros(rng.up_to(5_000) as u64));
                (kill9(pid), drain_bytes(&mut rx, &mut next))
            }
            Kill::InGrant(seq) => {
                let delay = Duration::from_micros(rng.up_to(3_000) as u64);
                std::thread::scope(|s| {
                    let killer = s.spawn(|| kill_after(pid, delay, || board.get(IN_GRANT) == seq + 1));
                    let disconnected = drain_bytes(&mut rx, &mut next);
                    (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected)
                })
            }
            Kill::Random => {
                let after = 1 + rng.up_to(3_000) as u64;
                let delay = Duration::from_micros(rng.up_to(15_000) as u64);
                std::thread::scope(|s| {
                    let killer = s.spawn(|| kill_after(pid, delay, || board.get(COMMITTED) >= after));
                    let disconnected = drain_bytes(&mut rx, &mut next);
                    (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected)
                })
            }
        };
        reap(child, &board);
        let committed = board.get(COMMITTED);
        let open_grant = board.get(IN_GRANT);
        assert!(
            committed <= next && next <= committed + 1,
            "iteration {it} ({kill_at:?}): received {next} records, the producer had committed {committed}"
        );
        match kill_at {
            Kill::InGrant(seq) => {
                assert_eq!((committed, open_grant), (seq, seq + 1), "iteration {it}: the child stopped in its grant");
                assert_eq!(next, seq, "iteration {it}: the record of the open grant must not be delivered");
            }
            Kill::Parked => assert_eq!(next, committed, "iteration {it}: a parked producer has no record in flight"),
            Kill::Random => {}
        }
        // Killed with a grant open (and not just after its commit): nothing of it is published.
        if open_grant == committed + 1 && next == committed {
            in_grant += 1;
        }
        in_flight += usize::from(next == committed + 1);
        latencies.push(disconnected.saturating_duration_since(killed));
        drop(rx);
        shm.assert_gone();
    }
    println!(
        "byte ring: {ITERATIONS} kills, {in_grant} between reserve and commit ({} of them chosen), {in_flight} with a \
         committed record the producer had not yet counted",
        ITERATIONS / 3
    );
    assert!(in_grant >= ITERATIONS / 3, "every chosen kill lands inside a grant");
    latencies.check();
}

/// The body of [`crate::byte_consumer_sigkilled_while_producer_parked`].
pub(crate) fn byte_consumer_sigkilled_while_producer_parked() {
    const ITERATIONS: usize = 16;
    let _serial = serial();
    let mut rng = seeded_rng("byte_consumer_sigkilled_while_producer_parked");
    let mut latencies = Latencies::new("byte ring, consumer killed, producer parked");
    let mut redelivered = 0;
    for it in 0..ITERATIONS {
        let hold_at = (it % 2 == 0).then(|| rng.up_to(500) as u64);
        let shm = Shm::new("crash_bytecons");
        let board = Board::create("crash_bytecons");
        let wait = if it % 4 == 3 { WaitStrategy::SpinThenPark { spins: 1_000 } } else { WaitStrategy::Park };
        let mut tx = ByteProducer::create(&shm.name, Options::new().capacity(2048).wait(wait)).expect("create");
        let mut vars = vec![
            ("NAME", shm.name.clone()),
            ("BOARD", board.arg()),
            ("WAIT", strategy_arg(any_wait(&mut rng))),
            ("SEED", rng.next_u64().to_string()),
            ("PACE", if hold_at.is_some() { "0".into() } else { "20000".into() }),
        ];
        if let Some(k) = hold_at {
            vars.push(("HOLD_AT", k.to_string()));
        }
        let child = spawn("byte_consumer", &vars);
        let pid = child.pid();
        let (me, self_pid) = (nix::unistd::gettid(), nix::unistd::getpid());
        let delay = Duration::from_micros(rng.up_to(5_000) as u64);
        let after = 1 + rng.up_to(300) as u64;
        let mut seq = 0;
        let (killed, disconnected) = std::thread::scope(|s| {
            let killer = s.spawn(|| match hold_at {
                Some(k) => {
                    let mut steady = 0;
                    kill_after(pid, delay, || {
                        let parked = board.get(IN_GRANT) == k + 1 && asleep(self_pid, Some(me));
                        steady = if parked { steady + 1 } else { 0 };
                        steady >= 3
                    })
                }
                None => kill_after(pid, delay, || board.get(CONSUMED) >= after),
            });
            loop {
                match tx.reserve(record_len(seq)) {
                    Ok(mut grant) => {
                        fill_record(seq, &mut grant);
                        grant.commit();
                        seq += 1;
                    }
                    Err(ReserveError::Disconnected) => {
                        let disconnected = Instant::now();
                        break (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected);
                    }
                    Err(e) => panic!("iteration {it}: reserve {seq}: {e}"),
                }
            }
        });
        reap(child, &board);
        latencies.push(disconnected.saturating_duration_since(killed));
        let (consumed, in_hand) = (board.get(CONSUMED), board.get(IN_GRANT));
        assert_eq!(shmlane::inspect(&shm.path()).expect("inspect").consumer, RoleState::Dead);
        // A new consumer starts at read_pos: the held record again, if any.
        let mut rx = ByteConsumer::open(&shm.name, Options::new()).expect("a new consumer");
        let first = {
            let record = rx.try_recv().expect("try_recv").expect("the ring is full");
            let first = u64::from_le_bytes(record[..8].try_into().expect("a record starts with its number"));
            check_record(&record, first);
            first
        };
        assert!(
            consumed <= first && first <= consumed + 1,
            "iteration {it}: the consumer released {consumed} records, the new one starts at {first}"
        );
        if let Some(k) = hold_at {
            assert_eq!((consumed, first), (k, k), "iteration {it}: the held record is delivered again");
        }
        if in_hand == 0 {
            assert_eq!(first, consumed, "iteration {it}: killed between records");
        }
        // Killed holding the guard of record `consumed` (not just after
        // dropping it): that record is delivered again.
        redelivered += usize::from(in_hand == consumed + 1 && first == consumed);
        let mut next = first + 1;
        while let Some(record) = rx.try_recv().expect("try_recv") {
            check_record(&record, next);
            next += 1;
        }
        assert_eq!(next, seq, "iteration {it}: every committed record once");
        for _ in 0..8 {
            let mut grant = tx.reserve(record_len(seq)).expect("reserve");
            fill_record(seq, &mut grant);
            grant.commit();
            seq += 1;
            check_record(&rx.try_recv().expect("try_recv").expect("the record just sent"), next);
            next += 1;
        }
        drop(rx);
        drop(tx);
        shm.assert_gone();
    }
    println!(
        "byte consumer killed: {ITERATIONS} kills, {redelivered} with a record's guard held (delivered again), \
         {} of them chosen",
        ITERATIONS / 2
    );
    latencies.check();
}
