//! The crash suite (issue #8): real processes SIGKILLed at random points,
//! many times over, for every flavor.
//!
//! What "committed" means is made provable by a [`Board`]: a few counters
//! in a small shared file that a child bumps *after* each `send` / `commit`
//! / `recv` returns. Its stores live in the page cache, not in the child,
//! so they survive the SIGKILL and the parent reads them once the child is
//! reaped. Message `i` is a pure function of `i` ([`Msg::new`], or
//! [`fill_record`] for byte records), so the receiver checks each one is
//! exactly the next, intact.
//!
//! What the protocol guarantees, and what each scenario asserts:
//!
//! - A message is published by one store (the slot's sequence word for the
//!   typed rings, `write_pos` in `Grant::commit_len` for byte rings), made
//!   before `send`/`commit` returns. So after a producer is killed, the
//!   survivor receives exactly messages `0..R` with `P <= R <= P + 1`, `P`
//!   the child's counter: the one message in flight may or may not have
//!   been published, nothing after it was, and nothing is duplicated or torn.
//!   A kill inside an open `Grant` (between `reserve` and `commit`) publishes
//!   nothing: the grant is filled with [`POISON`] first, and `R == P`.
//! - A consumer publishes `read_pos` after copying a message out, before
//!   `recv` returns. After it is killed, `C <= read_pos <= C + 1` for its
//!   counter `C`, and a new consumer receives exactly the messages from
//!   `read_pos` on, once each. (Message `read_pos - 1` is lost to the
//!   application when the kill lands between `recv` returning and the
//!   application recording it: no queue without acknowledgements avoids that.)
//!   A byte record is released when its `ReadGuard` drops, so a consumer
//!   killed holding one leaves it to the next consumer: at-least-once for
//!   the record in hand.
//! - MPMC: a producer killed between claiming a slot and committing it
//!   does not wedge the consumers: the slot is skipped and counted.
//! - A new producer on a ring whose producer was killed continues at the
//!   first position nobody published (its attach scans published slots), so
//!   every committed message is delivered once, across the crash.
//! - The survivor gets `Disconnected` soon after the kill: measured every
//!   iteration and printed (run with `--nocapture`). The promise is 100 ms;
//!   on a noisy 2-core VM one iteration can stall for longer, so a hard
//!   per-iteration 100 ms would flake: the median must be under 100 ms and
//!   every single one under 1 s.
//! - A child's panic fails the test even when the SIGKILL lands while it is
//!   unwinding (it is written on the board by a panic hook).
//! - No segment leaks: a creator that leaves unlinks the name; a segment
//!   whose creator was killed is reported dead by `inspect` (every role
//!   dead, which is what `shmlane clean` removes) and removed through
//!   `shmlane::remove`.
//!
//! Randomness is seeded and printed; rerun a failure with
//! `SHMLANE_CRASH_SEED=<seed>`.

mod common;

use common::{Msg, Rng, Scratch, Shm, TIMEOUT, assert_msg, mix, serial, spawn, strategy_arg, strategy_var};
use memmap2::MmapRaw;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, Options, Producer, RecvError, ReserveError,
    RoleState, SendError, WaitStrategy,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What we promise: a survivor notices a dead peer within this.
const PROMISE: Duration = Duration::from_millis(100);
/// What any single iteration must meet on a stalling VM.
const NOTICE_BOUND: Duration = Duration::from_secs(1);

// ------------------------------------------------------------ child roles

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    // A child's panic must fail the test even when our SIGKILL lands while
    // it is still unwinding (its exit status then says "killed"): it is
    // written on the board first, and the parent checks in `reap`.
    let board = common::var("BOARD");
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        Board::open(&board).set(PANICKED, 1);
        report(info);
    }));
    match role.as_str() {
        "spsc_producer" => spsc_producer(),
        "spsc_consumer" => spsc_consumer(),
        "byte_producer" => byte_producer(),
        "byte_consumer" => byte_consumer(),
        "mpmc_producer" => mpmc_producer(),
        other => panic!("unknown child role {other}"),
    }
}

/// Child: the producer of `NAME` (creating it with capacity `CREATE` if
/// given, else opening it). Sends `Msg::new(0)`, `Msg::new(1)`, ... forever,
/// idling up to `PACE` random spins before each, and bumps `COMMITTED` after
/// each `send` returns.
fn spsc_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let opts = Options::new().wait(strategy_var());
    let mut tx = match common::var_opt("CREATE") {
        Some(capacity) => Producer::<Msg>::create(&name, opts.capacity(capacity.parse().expect("CREATE"))),
        None => Producer::<Msg>::open(&name, opts),
    }
    .expect("producer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    for seq in 0.. {
        spin(rng.up_to(pace));
        match tx.send(Msg::new(seq)) {
            Ok(()) => board.set(COMMITTED, seq + 1),
            // Only when both sides are killed: the consumer died first.
            Err(SendError::Disconnected(_)) => common::sleep_forever(),
            Err(e) => panic!("send {seq}: {e}"),
        }
    }
}

/// Child: the consumer of `NAME` (a fresh ring: it starts at message 0).
/// Receives and checks each message and bumps `CONSUMED` after each `recv`
/// returns, idling up to `PACE` random spins after each; after `STOP_AFTER`
/// messages (if given) it stays attached without receiving.
fn spsc_consumer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut rx = Consumer::<Msg>::open(&name, Options::new().wait(strategy_var())).expect("open consumer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let stop_after = common::var_opt("STOP_AFTER").map_or(u64::MAX, |s| s.parse().expect("STOP_AFTER"));
    for seq in 0..stop_after {
        match rx.recv() {
            Ok(m) => {
                assert_msg(&m, seq);
                board.set(CONSUMED, seq + 1);
            }
            // Only when both sides are killed: the producer died first.
            Err(RecvError::Disconnected) => common::sleep_forever(),
            Err(e) => panic!("recv {seq}: {e}"),
        }
        spin(rng.up_to(pace));
    }
    common::sleep_forever()
}

/// Child: the producer of byte segment `NAME`. Record `seq` is reserved
/// (sometimes a little larger than it is committed), filled with
/// [`POISON`], announced in `IN_GRANT`, sometimes held for a random while,
/// then written and committed; `COMMITTED` is bumped after `commit_len`
/// returns. At record `HOLD_AT` (if given) it stays inside the grant.
fn byte_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut tx = ByteProducer::open(&name, Options::new().wait(strategy_var())).expect("open byte producer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let hold_at = common::var_opt("HOLD_AT").map(|h| h.parse::<u64>().expect("HOLD_AT"));
    for seq in 0.. {
        let len = record_len(seq);
        let extra = if rng.up_to(3) == 0 { rng.up_to(16) } else { 0 };
        let mut grant = tx.reserve(len + extra).unwrap_or_else(|e| panic!("reserve record {seq}: {e}"));
        grant.fill(POISON);
        board.set(IN_GRANT, seq + 1);
        if hold_at == Some(seq) {
            common::sleep_forever();
        }
        if rng.up_to(3) == 0 {
            spin(rng.up_to(20_000));
        }
        fill_record(seq, &mut grant[..len]);
        grant.commit_len(len);
        board.set(COMMITTED, seq + 1);
        board.set(IN_GRANT, 0);
    }
}

/// Child: the consumer of byte segment `NAME` (fresh: from record 0).
/// Sets `IN_GRANT` to `seq + 1` while it holds record `seq`'s guard,
/// checks the record, and bumps `CONSUMED` once the guard is dropped (its
/// space released), idling up to `PACE` random spins after each. At record
/// `HOLD_AT` (if given) it keeps the guard and stays.
fn byte_consumer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut rx = ByteConsumer::open(&name, Options::new().wait(strategy_var())).expect("open byte consumer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let hold_at = common::var_opt("HOLD_AT").map(|h| h.parse::<u64>().expect("HOLD_AT"));
    for seq in 0.. {
        let record = match rx.recv() {
            Ok(record) => record,
            Err(e) => panic!("recv record {seq}: {e}"),
        };
        board.set(IN_GRANT, seq + 1);
        check_record(&record, seq);
        if hold_at == Some(seq) {
            common::sleep_forever();
        }
        drop(record);
        board.set(CONSUMED, seq + 1);
        board.set(IN_GRANT, 0);
        spin(rng.up_to(pace));
    }
}

/// Child: MPMC producer number `ID` on `NAME`, sending [`Wide::new`]`(ID,
/// n)` for n = 0, 1, ... forever, idling up to `PACE` random spins before
/// each, and bumping `COMMITTED + ID` after each `send`.
fn mpmc_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let id = common::var_u64("ID");
    let mut tx = MpmcProducer::<Wide>::open(&name, Options::new().wait(strategy_var())).expect("open mpmc producer");
    board.set(READY + id as usize, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let mut message = Wide::new(id, 0);
    for n in 0.. {
        spin(rng.up_to(pace));
        message.set_seq(id, n);
        if let Err(e) = tx.send(message) {
            panic!("producer {id} send {n}: {e}");
        }
        board.set(COMMITTED + id as usize, n + 1);
    }
}

// ------------------------------------------------------------- scenarios

/// A typed SPSC producer process is SIGKILLed at a random moment, 30
/// times: two in three while streaming (the consumer keeps up; random wait
/// strategies on both sides; the kill lands in `send`, between two sends,
/// or while spinning on a full ring), one in three while parked
/// (`WaitStrategy::Park`) on a full ring the consumer stopped reading.
/// The consumer gets messages `0..R`, each once, intact, `P <= R <= P + 1`
/// (exactly `R == P`, a full ring's worth after the pause, when parked),
/// then `Disconnected`.
#[test]
fn spsc_producer_sigkilled_at_random_points() {
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

/// A byte-ring producer process is SIGKILLed 30 times: a third at a random
/// moment (it holds each grant for a random while one record in three, so
/// some kills land between `reserve` and `commit`), a third certainly inside
/// a grant (the child stops in it and says so), a third parked in `reserve`
/// on a full ring. Records `0..R` arrive once each, with their exact length
/// and bytes, `P <= R <= P + 1`, and `R == P` when the kill was inside a
/// grant or parked: the poisoned, uncommitted record is never delivered.
#[test]
fn byte_producer_sigkilled_inside_grants_and_parked() {
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

/// The consumer process is SIGKILLed while this producer (`Park`, or
/// spin-then-park) waits on the full ring, 20 times: half after the child
/// stopped reading at a random message (the producer certainly asleep in
/// `send`), half while it reads slowly (the kill lands anywhere in its
/// loop, in `recv` or between two). `send` returns `Disconnected` with the
/// message; `C <= read_pos <= C + 1`; then a new consumer gets exactly the
/// messages from `read_pos` on, and the producer continues.
#[test]
fn consumer_sigkilled_while_producer_parked() {
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

/// The byte-ring consumer process is SIGKILLed while this producer is
/// parked in `reserve` on the full ring, 16 times: half while the child
/// holds a record's `ReadGuard` (it stops inside one), half at a random
/// moment while it reads slowly. `reserve` returns `Disconnected`. A record
/// whose guard was not dropped was never released: the new consumer gets
/// it again (at-least-once for the record in hand), so it starts at `C`
/// (guard held, or between records) or `C + 1` (killed between the drop
/// and the count), and then gets every later committed record once.
#[test]
fn byte_consumer_sigkilled_while_producer_parked() {
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

/// Both processes are SIGKILLed (the producer created the segment, so
/// nobody unlinks it), 20 times, at a random moment, in random order. The
/// segment then reads "every role dead" (what `shmlane clean` removes). A
/// new pair attaches instead: the new producer continues at the first
/// position the old one did not publish (`P <= start <= P + 1`), the new
/// consumer at `read_pos` (`C <= read_pos <= C + 1`), and every message
/// committed and not consumed before the crash is delivered exactly once,
/// followed by the new producer's. Afterwards the segment is dead again and
/// is removed.
#[test]
fn both_sigkilled_then_new_pair_resumes() {
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

/// Two MPMC producer processes are SIGKILLed one after the other at random
/// moments, 30 times, sending 16 KiB messages (so a kill often lands
/// mid-write). A producer killed between claiming a slot and
/// committing it must not wedge the consumer: the slot is skipped and
/// counted. Each producer's messages arrive in order, once, intact,
/// `P <= R <= P + 1` each; the skipped count is at most the number of
/// producers whose in-flight message was not delivered; `Disconnected`
/// follows the second kill.
#[test]
fn mpmc_producers_sigkilled_mid_write() {
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

/// Found by `mpmc_producers_sigkilled_mid_write`: a slot skipped for a dead
/// claimer (sequence `pos + 1 | SKIPPED`) that no consumer has passed yet
/// must read "full" to a live producer waiting for that slot's next lap,
/// not "corrupted". The window is real: the survivor fills the ring while
/// the consumer is wedged, then spins on exactly that slot while the
/// consumer skips it. Deterministic, on the ring in one process.
#[test]
fn mpmc_skipped_slot_not_yet_passed_is_full_not_corrupt() {
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

// --------------------------------------------------------------- helpers

/// Board word: messages (records) whose `send` (`commit`) returned.
const COMMITTED: usize = 0;
/// Board word: `seq + 1` while the byte producer holds record `seq`'s grant.
const IN_GRANT: usize = 2;
/// Board word: messages whose `recv` returned in the consumer child.
const CONSUMED: usize = 3;
/// Board word: 1 once the child holds its role (MPMC: `READY + id`).
const READY: usize = 4;
/// Board word: 1 if a child using this board panicked.
const PANICKED: usize = 7;
/// Words on a board.
const BOARD_WORDS: usize = 8;
/// MPMC messages carry their producer's id above this bit.
const MPMC_ID_SHIFT: u64 = 40;

/// A wide MPMC message (16 KiB): copying it into its slot takes long
/// enough that a random kill often lands between a producer's claim and
/// its commit. Head and tail carry the same [`Msg`], the body a pattern of
/// the producer, so a torn or mixed slot is seen.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Wide {
    head: Msg,
    body: [u64; 2048],
    tail: Msg,
}

impl Wide {
    fn new(id: u64, n: u64) -> Self {
        let head = Msg::new((id << MPMC_ID_SHIFT) | n);
        Self { head, body: [mix(id); 2048], tail: head }
    }

    /// Makes this message `n` of producer `id` (whose body it has).
    fn set_seq(&mut self, id: u64, n: u64) {
        self.head = Msg::new((id << MPMC_ID_SHIFT) | n);
        self.tail = self.head;
    }

    /// `(producer, n)` if the message is whole.
    fn check(&self) -> Result<(u64, u64), String> {
        let (head, tail) = (self.head, self.tail);
        if !head.is_intact() || head != Msg::new(head.seq) || tail != head {
            return Err(format!("torn message: head {head:?}, tail {tail:?}"));
        }
        let id = head.seq >> MPMC_ID_SHIFT;
        if let Some(k) = [0, 1, 1023, 2046, 2047].into_iter().find(|&k| self.body[k] != mix(id)) {
            return Err(format!("torn message {}: body word {k}", head.seq));
        }
        Ok((id, head.seq & ((1 << MPMC_ID_SHIFT) - 1)))
    }
}

/// A few counters in a small shared file: a child's stores to it survive
/// its SIGKILL (they are in the page cache, not in the dead process).
struct Board {
    map: MmapRaw,
    /// The file, removed with the board (the parent's only).
    file: Option<Scratch>,
    path: String,
}

impl Board {
    /// A new zeroed board for this test (the parent).
    fn create(test: &str) -> Self {
        let file = Scratch::new(test, "board");
        let path = file.arg();
        let f = std::fs::File::options().read(true).write(true).create_new(true).open(&path).expect("board file");
        f.set_len((BOARD_WORDS * 8) as u64).expect("size the board");
        Self { map: Self::map(&f), file: Some(file), path }
    }

    /// The board the parent made (a child).
    fn open(path: &str) -> Self {
        let f = std::fs::File::options().read(true).write(true).open(path).expect("open board");
        Self { map: Self::map(&f), file: None, path: path.to_owned() }
    }

    fn map(f: &std::fs::File) -> MmapRaw {
        let map = MmapRaw::map_raw(f).expect("map board");
        assert!(map.len() >= BOARD_WORDS * 8, "board file too short");
        map
    }

    /// Its path, for a child.
    fn arg(&self) -> String {
        debug_assert!(self.file.is_some());
        self.path.clone()
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < BOARD_WORDS, "board word {i}");
        // SAFETY: the mapping is page aligned and at least BOARD_WORDS * 8
        // bytes long (checked in `map`), so word `i` is an aligned u64 inside
        // it for as long as `self` keeps it mapped; every process touches
        // these words only through atomics.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().cast::<u64>().add(i)) }
    }

    fn get(&self, i: usize) -> u64 {
        // Acquire: pairs with the Release in `set`; the parent reads either
        // progress while the child runs or final values after reaping it.
        self.word(i).load(Ordering::Acquire)
    }

    fn set(&self, i: usize, value: u64) {
        // Release: the child's earlier work (a returned send) is done first.
        self.word(i).store(value, Ordering::Release);
    }
}

/// The suite's random generator: `SHMLANE_CRASH_SEED` or the clock, printed.
fn seeded_rng(test: &str) -> Rng {
    let seed = match std::env::var("SHMLANE_CRASH_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|e| panic!("SHMLANE_CRASH_SEED={s}: {e}")),
        Err(_) => SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    };
    println!("{test}: seed {seed} (rerun with SHMLANE_CRASH_SEED={seed})");
    Rng::new(test.bytes().fold(seed, |h, b| mix(h ^ u64::from(b))))
}

/// Any of the three strategies (spin counts random too).
fn any_wait(rng: &mut Rng) -> WaitStrategy {
    match rng.up_to(2) {
        0 => WaitStrategy::BusySpin,
        1 => WaitStrategy::SpinThenPark { spins: 1 + rng.up_to(5_000) as u32 },
        _ => WaitStrategy::Park,
    }
}

/// Burns `iterations` loop turns (pacing, holding a grant).
fn spin(iterations: usize) {
    for i in 0..iterations {
        std::hint::black_box(i);
    }
}

/// Reaps `child`, which must have died of our SIGKILL, not of a panic
/// (which it reports on `board` before unwinding).
#[track_caller]
fn reap(child: common::Child, board: &Board) {
    child.wait_killed(TIMEOUT);
    assert_eq!(board.get(PANICKED), 0, "a child panicked (see its message above)");
}

/// SIGKILLs `pid`; returns the moment just before (so a latency measured
/// from it includes the kill itself, and is never negative).
fn kill9(pid: Pid) -> Instant {
    let at = Instant::now();
    kill(pid, Signal::SIGKILL).expect("kill -9");
    at
}

/// Waits for `ready`, sleeps `delay`, SIGKILLs `pid`. Kills even when
/// `ready` times out (so the receiving side is not left waiting forever),
/// and then says so.
fn kill_after(pid: Pid, delay: Duration, mut ready: impl FnMut() -> bool) -> Result<Instant, String> {
    let deadline = Instant::now() + TIMEOUT;
    while !ready() {
        if Instant::now() > deadline {
            kill9(pid);
            return Err(format!("the killer gave up waiting for its moment after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    Ok(kill9(pid))
}

/// Waits until `cond` holds on 3 polls in a row, 1 ms apart.
fn wait_steadily(what: &str, mut cond: impl FnMut() -> bool) {
    let mut steady = 0;
    common::wait_until(what, TIMEOUT, || {
        steady = if cond() { steady + 1 } else { 0 };
        steady >= 3
    });
}

/// True if every thread of process `pid` (or only thread `tid`) is asleep
/// (state S or D in /proc): blocked on the futex or napping, not spinning.
fn asleep(pid: Pid, tid: Option<Pid>) -> bool {
    let dir = format!("/proc/{pid}/task");
    let tids: Vec<String> = match tid {
        Some(t) => vec![t.to_string()],
        None => match std::fs::read_dir(&dir) {
            Ok(entries) => {
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            }
            Err(_) => return false,
        },
    };
    !tids.is_empty()
        && tids.iter().all(|t| {
            std::fs::read_to_string(format!("{dir}/{t}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['S', 'D'])))
                .unwrap_or(false)
        })
}

/// Receives until `Disconnected`, checking each message continues from
/// `*next`; returns when `Disconnected` came.
fn drain_typed(rx: &mut Consumer<Msg>, next: &mut u64) -> Instant {
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_msg(&m, *next);
                *next += 1;
            }
            Err(RecvError::Disconnected) => return Instant::now(),
            Err(e) => panic!("after message {next}: expected Disconnected, got {e}"),
        }
    }
}

/// As [`drain_typed`], for byte records.
fn drain_bytes(rx: &mut ByteConsumer, next: &mut u64) -> Instant {
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(record) => {
                check_record(&record, *next);
                *next += 1;
            }
            Err(RecvError::Disconnected) => return Instant::now(),
            Err(e) => panic!("after record {next}: expected Disconnected, got {e}"),
        }
    }
}

/// What an open grant holds until it is written: never delivered.
const POISON: u8 = 0xDB;

/// Length of byte record `seq`: its number, then mostly a short payload,
/// one in 16 long enough to need padding at the end of the ring.
fn record_len(seq: u64) -> usize {
    let r = mix(seq ^ 0xB17E_5EED);
    8 + if r % 16 == 0 { (r >> 8) % 900 } else { (r >> 8) % 120 } as usize
}

/// Byte record `seq`: `seq` little endian, then bytes derived from it.
fn fill_record(seq: u64, out: &mut [u8]) {
    let key = mix(seq);
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out.iter_mut().enumerate().skip(8) {
        *b = (key >> (8 * (i & 7))) as u8 ^ (i >> 3) as u8;
    }
}

/// Asserts `record` is byte record `seq`, whole.
#[track_caller]
fn check_record(record: &[u8], seq: u64) {
    if record.len() >= 8 && record[..8].iter().all(|&b| b == POISON) {
        panic!("record {seq}: an uncommitted (poisoned) grant was delivered");
    }
    let mut want = vec![0; record_len(seq)];
    fill_record(seq, &mut want);
    assert_eq!(record.len(), want.len(), "record {seq}: length (lost, duplicated or torn)");
    if let Some(i) = (0..want.len()).find(|&i| record[i] != want[i]) {
        panic!("record {seq}: byte {i} is {:#04x}, expected {:#04x}", record[i], want[i]);
    }
}

/// Kill → `Disconnected` latencies of one scenario.
struct Latencies {
    what: &'static str,
    samples: Vec<Duration>,
}

impl Latencies {
    fn new(what: &'static str) -> Self {
        Self { what, samples: Vec::new() }
    }

    fn push(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    /// Prints the distribution; asserts the median is within the 100 ms
    /// promise and every sample within 1 s. (A hard 100 ms on each would
    /// flake: this VM has 2 noisy cores shared with other builds.)
    fn check(mut self) {
        self.samples.sort();
        let n = self.samples.len();
        assert!(n > 0);
        let (min, median, max) = (self.samples[0], self.samples[n / 2], self.samples[n - 1]);
        println!("{}: kill → Disconnected over {n} kills: min {min:?}, median {median:?}, max {max:?}", self.what);
        assert!(median < PROMISE, "{}: median {median:?} breaks the {PROMISE:?} promise", self.what);
        assert!(max < NOTICE_BOUND, "{}: one survivor took {max:?} to notice", self.what);
    }
}
