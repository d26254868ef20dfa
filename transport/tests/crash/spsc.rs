//! Typed SPSC rings: the producer, the consumer, or both SIGKILLed.

use crate::board::{Board, COMMITTED, CONSUMED, READY};
use crate::common::{self, Msg, Shm, TIMEOUT, assert_msg, serial, spawn, strategy_arg};
use crate::support::{Latencies, any_wait, asleep, drain_typed, kill_after, kill9, reap, seeded_rng, wait_steadily};
use shmlane::{Consumer, Options, Producer, RecvError, RoleState, SendError, WaitStrategy};
use std::time::{Duration, Instant};

/// The body of [`crate::spsc_producer_sigkilled_at_random_points`].
pub(crate) fn spsc_producer_sigkilled_at_random_points() {
    const ITERATIONS: usize = 30;
    const CAPACITY: u64 = 64;
    let _serial = serial();
    let mut rng = seeded_rng("spsc_producer_sigkilled_at_random_points");
    let mut latencies = Latencies::new("typed SPSC, producer killed");
    let (mut in_flight, mut parked) = (0, 0);
    for it in 0..ITERATIONS {
        let park_on_full = it % 3 == 2;
        let shm = Shm::new("crash_spsc");
        let board = Board::create("crash_spsc");
        let producer_wait = if park_on_full { WaitStrategy::Park } else { any_wait(&mut rng) };
        let mut rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(CAPACITY).wait(any_wait(&mut rng)))
            .expect("create consumer");
        let pace = [0, 0, 300, 3_000][rng.up_to(3)];
        let child = spawn(
            "spsc_producer",
            &[
                ("NAME", shm.name.clone()),
                ("BOARD", board.arg()),
                ("WAIT", strategy_arg(producer_wait)),
                ("PACE", pace.to_string()),
                ("SEED", rng.next_u64().to_string()),
            ],
        );
        let pid = child.pid();
        let mut next = 0;
        let before = 1 + rng.up_to(2_000) as u64;
        let (killed, disconnected) = if park_on_full {
            while next < before {
                assert_msg(&rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}")), next);
                next += 1;
            }
            wait_steadily("the producer to park on the full ring", || rx.len() == rx.capacity() && asleep(pid, None));
            std::thread::sleep(Duration::from_micros(rng.up_to(5_000) as u64));
            let killed = kill9(pid);
            parked += 1;
            (killed, drain_typed(&mut rx, &mut next))
        } else {
            let after = 1 + rng.up_to(5_000) as u64;
            let delay = Duration::from_micros(rng.up_to(15_000) as u64);
            std::thread::scope(|s| {
                let killer = s.spawn(|| kill_after(pid, delay, || board.get(COMMITTED) >= after));
                let disconnected = drain_typed(&mut rx, &mut next);
                (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected)
            })
        };
        reap(child, &board);
        let committed = board.get(COMMITTED);
        assert!(
            committed <= next && next <= committed + 1,
            "iteration {it}: received {next} messages, the producer had committed {committed} (at most one more \
             may have been published when it was killed)"
        );
        if park_on_full {
            assert_eq!(next, committed, "iteration {it}: a parked producer has no message in flight");
            assert_eq!(next, before + CAPACITY, "iteration {it}: a full ring's worth after the pause");
        }
        in_flight += usize::from(next == committed + 1);
        latencies.push(disconnected.saturating_duration_since(killed));
        assert!(matches!(rx.try_recv(), Err(RecvError::Disconnected)), "iteration {it}: Disconnected must stay");
        drop(rx);
        shm.assert_gone();
    }
    println!(
        "typed SPSC: {ITERATIONS} kills, {parked} parked on a full ring, {in_flight} with a published message the \
         producer had not yet counted"
    );
    latencies.check();
}

/// The body of [`crate::consumer_sigkilled_while_producer_parked`].
pub(crate) fn consumer_sigkilled_while_producer_parked() {
    const ITERATIONS: usize = 20;
    const CAPACITY: u64 = 16;
    let _serial = serial();
    let mut rng = seeded_rng("consumer_sigkilled_while_producer_parked");
    let mut latencies = Latencies::new("typed SPSC, consumer killed, producer parked");
    let mut unrecorded = 0;
    for it in 0..ITERATIONS {
        let stop_after = (it % 2 == 0).then(|| 1 + rng.up_to(500) as u64);
        let shm = Shm::new("crash_cons");
        let board = Board::create("crash_cons");
        let wait = if it % 4 == 3 { WaitStrategy::SpinThenPark { spins: 1_000 } } else { WaitStrategy::Park };
        let mut tx =
            Producer::<Msg>::create(&shm.name, Options::new().capacity(CAPACITY).wait(wait)).expect("create producer");
        let mut vars = vec![
            ("NAME", shm.name.clone()),
            ("BOARD", board.arg()),
            ("WAIT", strategy_arg(any_wait(&mut rng))),
            ("SEED", rng.next_u64().to_string()),
            ("PACE", if stop_after.is_some() { "0".into() } else { "20000".into() }),
        ];
        if let Some(n) = stop_after {
            vars.push(("STOP_AFTER", n.to_string()));
        }
        let child = spawn("spsc_consumer", &vars);
        let pid = child.pid();
        let me = nix::unistd::gettid();
        let self_pid = nix::unistd::getpid();
        let delay = Duration::from_micros(rng.up_to(if stop_after.is_some() { 5_000 } else { 10_000 }) as u64);
        let after = 1 + rng.up_to(300) as u64;
        let mut seq = 0;
        let (killed, disconnected) = std::thread::scope(|s| {
            let killer = s.spawn(|| match stop_after {
                // Stopped reading, and this thread asleep in `send` (steadily,
                // so not just between two probes).
                Some(n) => {
                    let mut steady = 0;
                    kill_after(pid, delay, || {
                        steady = if board.get(CONSUMED) == n && asleep(self_pid, Some(me)) { steady + 1 } else { 0 };
                        steady >= 3
                    })
                }
                None => kill_after(pid, delay, || board.get(CONSUMED) >= after),
            });
            loop {
                match tx.send(Msg::new(seq)) {
                    Ok(()) => seq += 1,
                    Err(SendError::Disconnected(m)) => {
                        let disconnected = Instant::now();
                        assert_msg(&m, seq);
                        break (killer.join().expect("killer thread").unwrap_or_else(|e| panic!("{e}")), disconnected);
                    }
                    Err(e) => panic!("iteration {it}: send {seq}: {e}"),
                }
            }
        });
        reap(child, &board);
        latencies.push(disconnected.saturating_duration_since(killed));
        assert!(!tx.is_connected());
        let consumed = board.get(CONSUMED);
        let info = shmlane::inspect(&shm.path()).expect("inspect");
        assert_eq!((info.producer, info.consumer), (RoleState::Alive(1), RoleState::Dead));
        let (write, read) = info.positions;
        assert_eq!(write, seq, "iteration {it}: every accepted message is in the ring or consumed");
        assert_eq!(write - read, CAPACITY, "iteration {it}: Disconnected only once the ring is full");
        assert!(
            consumed <= read && read <= consumed + 1,
            "iteration {it}: the consumer recorded {consumed} messages, read_pos is {read}"
        );
        if let Some(n) = stop_after {
            assert_eq!((consumed, read), (n, n), "iteration {it}: it stopped reading after {n}");
        }
        unrecorded += usize::from(read == consumed + 1);
        // A new consumer resumes at read_pos: each waiting message once.
        let mut rx = Consumer::<Msg>::open(&shm.name, Options::new()).expect("a new consumer");
        for pos in read..write {
            let m = rx.try_recv().unwrap_or_else(|e| panic!("iteration {it}: recv {pos}: {e}"));
            assert_msg(&m.unwrap_or_else(|| panic!("iteration {it}: message {pos} missing")), pos);
        }
        assert!(matches!(rx.try_recv(), Ok(None)), "iteration {it}: nothing beyond what was sent");
        assert!(tx.is_connected());
        for pos in write..write + 2 * CAPACITY {
            tx.try_send(Msg::new(pos)).unwrap_or_else(|e| panic!("iteration {it}: send {pos}: {e}"));
            assert_msg(&rx.try_recv().expect("try_recv").expect("the message just sent"), pos);
        }
        drop(rx);
        drop(tx);
        shm.assert_gone();
    }
    println!(
        "consumer killed: {ITERATIONS} kills, {unrecorded} between the consumer releasing a message and counting it"
    );
    latencies.check();
}

/// The body of [`crate::both_sigkilled_then_new_pair_resumes`].
pub(crate) fn both_sigkilled_then_new_pair_resumes() {
    const ITERATIONS: usize = 20;
    const CAPACITY: u64 = 64;
    let _serial = serial();
    let mut rng = seeded_rng("both_sigkilled_then_new_pair_resumes");
    let (mut unconsumed, mut recovered) = (0, 0);
    for it in 0..ITERATIONS {
        let shm = Shm::new("crash_both");
        let prod_board = Board::create("crash_both_p");
        let cons_board = Board::create("crash_both_c");
        let producer = spawn(
            "spsc_producer",
            &[
                ("NAME", shm.name.clone()),
                ("BOARD", prod_board.arg()),
                ("CREATE", CAPACITY.to_string()),
                ("WAIT", strategy_arg(any_wait(&mut rng))),
                ("PACE", [0, 300, 3_000][rng.up_to(2)].to_string()),
                ("SEED", rng.next_u64().to_string()),
            ],
        );
        common::wait_until("the producer to create the segment", TIMEOUT, || prod_board.get(READY) == 1);
        let consumer = spawn(
            "spsc_consumer",
            &[
                ("NAME", shm.name.clone()),
                ("BOARD", cons_board.arg()),
                ("WAIT", strategy_arg(any_wait(&mut rng))),
                ("PACE", [0, 300, 3_000][rng.up_to(2)].to_string()),
                ("SEED", rng.next_u64().to_string()),
            ],
        );
        let after = 1 + rng.up_to(2_000) as u64;
        common::wait_until("the consumer to make progress", TIMEOUT, || cons_board.get(CONSUMED) >= after);
        std::thread::sleep(Duration::from_micros(rng.up_to(10_000) as u64));
        let gap = Duration::from_micros(rng.up_to(1) as u64 * rng.up_to(2_000) as u64);
        let (first, second) = if rng.up_to(1) == 0 { (&producer, &consumer) } else { (&consumer, &producer) };
        first.kill9();
        std::thread::sleep(gap);
        second.kill9();
        reap(producer, &prod_board);
        reap(consumer, &cons_board);

        let (committed, consumed) = (prod_board.get(COMMITTED), cons_board.get(CONSUMED));
        let info = shmlane::inspect(&shm.path()).expect("inspect the orphaned segment");
        assert_eq!((info.producer, info.consumer), (RoleState::Dead, RoleState::Dead), "iteration {it}");
        assert!(info.is_dead(), "iteration {it}: `shmlane clean` would remove it");
        let read = info.positions.1;
        assert!(
            consumed <= read && read <= consumed + 1,
            "iteration {it}: the consumer recorded {consumed} messages, read_pos is {read}"
        );

        let mut tx = Producer::<Msg>::open(&shm.name, Options::new()).expect("a new producer");
        let start = shmlane::inspect(&shm.path()).expect("inspect").positions.0;
        assert!(
            committed <= start && start <= committed + 1,
            "iteration {it}: the new producer starts at {start}, the old one had committed {committed}"
        );
        assert!(start >= read && start - read <= CAPACITY, "iteration {it}: start {start}, read_pos {read}");
        recovered += usize::from(start != info.positions.0);
        let mut rx = Consumer::<Msg>::open(&shm.name, Options::new()).expect("a new consumer");
        for pos in read..start {
            let m = rx.try_recv().unwrap_or_else(|e| panic!("iteration {it}: recv {pos}: {e}"));
            assert_msg(&m.unwrap_or_else(|| panic!("iteration {it}: committed message {pos} missing")), pos);
        }
        assert!(matches!(rx.try_recv(), Ok(None)), "iteration {it}: nothing beyond what was committed");
        unconsumed += start - read;
        for pos in start..start + 2 * CAPACITY {
            tx.try_send(Msg::new(pos)).unwrap_or_else(|e| panic!("iteration {it}: send {pos}: {e}"));
            assert_msg(&rx.try_recv().expect("try_recv").expect("the message just sent"), pos);
        }
        drop(tx);
        let end = rx.recv_timeout(TIMEOUT);
        assert!(matches!(end, Err(RecvError::Disconnected)), "iteration {it}: {end:?}");
        drop(rx);

        // Nobody created it in this run, so nobody unlinked it: the
        // `shmlane clean` path. It is listed, dead, and removed.
        assert!(shm.exists(), "iteration {it}: only the (killed) creator would have unlinked it");
        let listed = shmlane::list(None);
        let (_, info) = listed.iter().find(|(p, _)| *p == shm.path()).expect("listed");
        assert!(info.as_ref().is_ok_and(|i| i.is_dead()), "iteration {it}: listed as dead: {info:?}");
        shmlane::remove(&shm.name, None).expect("remove");
        shm.assert_gone();
    }
    println!(
        "both killed: {ITERATIONS} pairs, {unconsumed} committed-unconsumed messages delivered to the new pair, \
         {recovered} times the new producer recovered a message published past write_pos"
    );
}
