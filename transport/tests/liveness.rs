//! A peer that dies (SIGKILL) or leaves is noticed: the consumer drains
//! what was committed and then gets `Disconnected`; a blocked producer gets
//! `Disconnected`; a new producer continues where a killed one stopped;
//! a role held by a live process cannot be taken twice.
//!
//! Latencies are printed (run with `--nocapture`), and only bounded
//! generously (1 s): the promise is ~50-100 ms, but a 2-core VM can stall.

mod common;

use common::{Msg, Scratch, Shm, TIMEOUT, assert_msg, serial, spawn, strategy_arg, strategy_var};
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, OpenError, Options, Producer, RecvError,
    ReserveError, RoleState, SendError, TrySendError, WaitStrategy,
};
use std::time::{Duration, Instant};

/// Generous bound on noticing a dead peer (the documented promise is ~50 ms).
const NOTICE_BOUND: Duration = Duration::from_secs(1);

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "producer" => producer(),
        "hold_producer" => {
            let _tx = Producer::<Msg>::open(&common::var("NAME"), Options::new()).expect("open producer");
            common::sleep_forever()
        }
        "consumer_then_sleep" => consumer_then_sleep(),
        "mpmc_producer" => {
            // Paced, so the consumer keeps the ring nearly empty and the
            // kill tends to land while the producer is writing a slot.
            let mut tx = MpmcProducer::<Msg>::open(&common::var("NAME"), Options::new()).expect("open mpmc producer");
            for seq in 0.. {
                for _ in 0..200 {
                    std::hint::black_box(seq);
                }
                if let Err(e) = tx.send(Msg::new(seq)) {
                    panic!("send {seq}: {e}");
                }
            }
        }
        "byte_consumer_then_sleep" => {
            let mut rx = ByteConsumer::open(&common::var("NAME"), Options::new()).expect("open byte consumer");
            assert_eq!(&*rx.recv_timeout(TIMEOUT).expect("first record"), b"hello");
            common::sleep_forever()
        }
        "panic" => panic!("a deliberate panic in a child"),
        "race_for_producer" => race_for_producer(),
        other => panic!("unknown child role {other}"),
    }
}

/// The harness has teeth: a child that panics fails its test, even where
/// the test expected the child to die of SIGKILL (the panic hook leaves a
/// marker before the parent's kill could land).
#[test]
#[should_panic(expected = "child panic panicked")]
fn a_child_that_panics_fails_the_test() {
    let child = common::spawn("panic", &[]);
    child.wait_killed(TIMEOUT);
}

/// Child: opens `NAME` as producer and sends `Msg`s numbered from the
/// segment's write position (0 for a new segment; where a dead producer
/// stopped otherwise), writing that start to `OUT` if given. Sends `COUNT`
/// messages, or forever, idling `PACE` loop iterations before each; with
/// `HOLD` it then stays attached until killed.
fn producer() {
    let name = common::var("NAME");
    let mut tx = Producer::<Msg>::open(&name, Options::new().wait(strategy_var())).expect("open producer");
    // We hold the producer role, so nobody moves write_pos but us.
    let start = shmlane::inspect(&shmlane::segment_path(&name, None).expect("name")).expect("inspect").positions.0;
    if let Some(out) = common::var_opt("OUT") {
        std::fs::write(out, start.to_string()).expect("write start");
    }
    let end = common::var_opt("COUNT").map_or(u64::MAX, |c| start + c.parse::<u64>().expect("COUNT"));
    let pace = common::var_opt("PACE").map_or(0, |p| p.parse::<u32>().expect("PACE"));
    for seq in start..end {
        for _ in 0..pace {
            std::hint::black_box(seq);
        }
        match tx.send(Msg::new(seq)) {
            Ok(()) => {}
            // The parent gave up (a failing test): just leave.
            Err(SendError::Disconnected(_)) => return,
            Err(e) => panic!("send {seq}: {e}"),
        }
    }
    if common::var_opt("HOLD").is_some() {
        common::sleep_forever();
    }
}

/// Child: opens `NAME` as consumer, receives one message, then stays
/// attached without receiving until killed.
fn consumer_then_sleep() {
    let mut rx = Consumer::<Msg>::open(&common::var("NAME"), Options::new()).expect("open consumer");
    assert_msg(&rx.recv_timeout(TIMEOUT).expect("first message"), 0);
    common::sleep_forever()
}

/// Receives until `Disconnected`, checking each message continues the
/// sequence from `*next`; returns when the last message came.
fn drain_until_disconnected(rx: &mut Consumer<Msg>, next: &mut u64) -> Option<Instant> {
    let mut last = None;
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_msg(&m, *next);
                *next += 1;
                last = Some(Instant::now());
            }
            Err(RecvError::Disconnected) => return last,
            Err(e) => panic!("after message {next}: expected Disconnected, got {e}"),
        }
    }
}

/// The child producer sends forever; after `N` messages the parent kills
/// it with SIGKILL, drains what it committed (in order, none lost) and gets
/// `Disconnected`. With `fill_first`, the kill waits until the ring is full
/// (the producer spinning in `send`), so exactly a ring's worth must be
/// drained; without, the kill lands while the producer is writing.
fn sigkill_producer_mid_stream(test: &str, consumer_wait: WaitStrategy, fill_first: bool) {
    const N: u64 = 50_000;
    let _serial = serial();
    let shm = Shm::new(test);
    let mut rx =
        Consumer::<Msg>::create(&shm.name, Options::new().capacity(256).wait(consumer_wait)).expect("create consumer");
    let child = spawn("producer", &[("NAME", shm.name.clone())]);
    let mut next = 0;
    while next < N {
        assert_msg(&rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}")), next);
        next += 1;
    }
    if fill_first {
        common::wait_until("the producer to fill the ring", TIMEOUT, || rx.len() == rx.capacity());
    }
    let killed = child.kill9();
    let last = drain_until_disconnected(&mut rx, &mut next);
    if fill_first {
        assert_eq!(next - N, rx.capacity() as u64, "a full ring's worth of committed messages");
    }
    let disconnected = Instant::now();
    // Sticky: nothing comes after Disconnected.
    assert!(matches!(rx.try_recv(), Err(RecvError::Disconnected)), "Disconnected must stay");
    child.wait_killed(TIMEOUT);
    let from_kill = disconnected - killed;
    let from_last = last.map(|l| disconnected - l);
    println!(
        "{test}: {} committed messages drained after the kill; Disconnected {from_kill:?} after SIGKILL, \
         {from_last:?} after the last message",
        next - N
    );
    assert!(from_kill < NOTICE_BOUND + Duration::from_millis(500), "Disconnected {from_kill:?} after the kill");
    if let Some(d) = from_last {
        assert!(d < NOTICE_BOUND, "Disconnected {d:?} after the last message");
    }
    drop(rx);
    shm.assert_gone();
}

#[test]
fn sigkill_producer_mid_stream_busy_spin_consumer() {
    sigkill_producer_mid_stream("kill_prod_busy", WaitStrategy::BusySpin, false);
}

#[test]
fn sigkill_producer_mid_stream_parked_consumer() {
    sigkill_producer_mid_stream("kill_prod_park", WaitStrategy::Park, true);
}

/// An MPMC producer process killed while writing: the consumer gets every
/// committed message in order (one producer), a slot the producer claimed
/// but never committed is skipped rather than wedging the ring, and then
/// `Disconnected`.
#[test]
fn sigkill_mpmc_producer_mid_stream() {
    const N: u64 = 30_000;
    let _serial = serial();
    let shm = Shm::new("kill_mpmc_prod");
    let mut rx = MpmcConsumer::<Msg>::create(&shm.name, Options::new().capacity(64)).expect("create consumer");
    let child = spawn("mpmc_producer", &[("NAME", shm.name.clone())]);
    let mut next = 0;
    let mut killed = None;
    let mut last = None;
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_msg(&m, next);
                next += 1;
                last = Some(Instant::now());
            }
            Err(RecvError::Disconnected) if killed.is_some() => break,
            Err(e) => panic!("after message {next}: {e}"),
        }
        if next == N {
            killed = Some(child.kill9());
        }
    }
    let disconnected = Instant::now();
    let killed = killed.expect("killed");
    child.wait_killed(TIMEOUT);
    let skipped = shmlane::inspect(&shm.path()).expect("inspect").header.skipped;
    assert!(skipped <= 1, "one dead producer leaves at most one claimed slot, skipped {skipped}");
    let from_last = last.map(|l| disconnected - l.max(killed));
    println!(
        "mpmc: {} messages drained after the kill, {skipped} slot skipped; Disconnected {:?} after SIGKILL, \
         {from_last:?} after the last message",
        next - N,
        disconnected - killed
    );
    assert!(disconnected - killed < NOTICE_BOUND + Duration::from_millis(500));
    drop(rx);
    shm.assert_gone();
}

/// The consumer is asleep in `recv` (Park, empty ring) when the idle
/// producer is killed: it wakes by itself and reports `Disconnected`.
/// This measures the notice latency itself, with no draining in between.
#[test]
fn sigkill_idle_producer_wakes_parked_consumer() {
    const N: u64 = 1_000;
    let _serial = serial();
    let shm = Shm::new("kill_idle_prod");
    let mut rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(64).wait(WaitStrategy::Park))
        .expect("create consumer");
    let child = spawn("producer", &[("NAME", shm.name.clone()), ("COUNT", N.to_string()), ("HOLD", "1".into())]);
    let mut next = 0;
    while next < N {
        assert_msg(&rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}")), next);
        next += 1;
    }
    // Alive and idle: a short wait times out instead of disconnecting.
    assert!(matches!(rx.recv_timeout(Duration::from_millis(100)), Err(RecvError::Timeout)));
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
        Instant::now()
    });
    let result = rx.recv_timeout(TIMEOUT);
    let disconnected = Instant::now();
    let killed = killer.join().expect("killer thread");
    assert!(matches!(result, Err(RecvError::Disconnected)), "expected Disconnected, got {result:?}");
    let latency = disconnected.saturating_duration_since(killed);
    println!("parked consumer: Disconnected {latency:?} after SIGKILL of the idle producer");
    assert!(latency < NOTICE_BOUND, "Disconnected {latency:?} after the kill");
    child.wait_killed(TIMEOUT);
    drop(rx);
    shm.assert_gone();
}

/// The child consumer takes one message and then stops reading; the parent
/// fills the ring and blocks in `send`; the child is killed; `send` returns
/// `Disconnected` with the message.
fn sigkill_consumer_unblocks_producer(test: &str, wait: WaitStrategy) {
    let _serial = serial();
    let shm = Shm::new(test);
    let mut tx = Producer::<Msg>::create(&shm.name, Options::new().capacity(16).wait(wait)).expect("create producer");
    let child = spawn("consumer_then_sleep", &[("NAME", shm.name.clone())]);
    tx.send_timeout(Msg::new(0), TIMEOUT).expect("first message");
    common::wait_until("the consumer to take the first message", TIMEOUT, || tx.is_empty());
    let mut seq = 1;
    loop {
        match tx.try_send(Msg::new(seq)) {
            Ok(()) => seq += 1,
            Err(TrySendError::Full(_)) => break,
            Err(e) => panic!("try_send {seq}: {e}"),
        }
    }
    assert_eq!(seq, 1 + tx.capacity() as u64, "the ring holds exactly its capacity");
    // Alive but not reading: a short wait times out.
    assert!(matches!(tx.send_timeout(Msg::new(seq), Duration::from_millis(100)), Err(SendError::Timeout(_))));
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
        Instant::now()
    });
    let result = tx.send_timeout(Msg::new(seq), TIMEOUT);
    let disconnected = Instant::now();
    let killed = killer.join().expect("killer thread");
    match result {
        Err(SendError::Disconnected(m)) => assert_msg(&m, seq),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(!tx.is_connected());
    assert!(matches!(tx.try_send(Msg::new(seq)), Err(TrySendError::Disconnected(_))));
    let latency = disconnected.saturating_duration_since(killed);
    println!("{test}: blocked producer got Disconnected {latency:?} after SIGKILL of the consumer");
    assert!(latency < NOTICE_BOUND, "Disconnected {latency:?} after the kill");
    child.wait_killed(TIMEOUT);
    drop(tx);
    shm.assert_gone();
}

#[test]
fn sigkill_consumer_unblocks_busy_spin_producer() {
    sigkill_consumer_unblocks_producer("kill_cons_busy", WaitStrategy::BusySpin);
}

#[test]
fn sigkill_consumer_unblocks_parked_producer() {
    sigkill_consumer_unblocks_producer("kill_cons_park", WaitStrategy::Park);
}

/// Same for a byte ring: a producer blocked in `reserve` on a full ring.
#[test]
fn sigkill_byte_consumer_unblocks_reserve() {
    let _serial = serial();
    let shm = Shm::new("kill_bytecons");
    let mut tx =
        ByteProducer::create(&shm.name, Options::new().capacity(256).wait(WaitStrategy::SpinThenPark { spins: 1_000 }))
            .expect("create byte producer");
    let child = spawn("byte_consumer_then_sleep", &[("NAME", shm.name.clone())]);
    tx.send(b"hello").expect("first record");
    common::wait_until("the consumer to take the first record", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.fill == 0)
    });
    while tx.try_reserve(40).expect("try_reserve").map(|g| g.commit()).is_some() {}
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
        Instant::now()
    });
    let result = tx.reserve_timeout(40, TIMEOUT).map(|_| ());
    let disconnected = Instant::now();
    let killed = killer.join().expect("killer thread");
    assert!(matches!(result, Err(ReserveError::Disconnected)), "expected Disconnected, got {result:?}");
    let latency = disconnected.saturating_duration_since(killed);
    println!("byte ring: blocked reserve got Disconnected {latency:?} after SIGKILL of the consumer");
    assert!(latency < NOTICE_BOUND, "Disconnected {latency:?} after the kill");
    child.wait_killed(TIMEOUT);
    drop(tx);
    shm.assert_gone();
}

/// A producer killed mid-stream is replaced by a new process that opens
/// the producer role again: it starts at the ring's write position, and
/// the consumer receives every committed message of both, in order, none
/// twice.
///
/// `while_writing`: the first producer is paced (the consumer keeps up) and
/// killed at an arbitrary moment, possibly between publishing a slot and
/// publishing `write_pos` (which the new producer must recover). Otherwise
/// it is killed spinning on a full ring. Either way the consumer must not
/// look for a message while no producer is attached: it would (rightly) be
/// told `Disconnected`, which is final for that handle.
fn reattached_producer_continues(test: &str, while_writing: bool) {
    const N: u64 = 20_000;
    const M: u64 = 20_000;
    let _serial = serial();
    let shm = Shm::new(test);
    let start_file = Scratch::new(test, "start");
    let mut rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(64)).expect("create consumer");
    let mut vars = vec![("NAME", shm.name.clone())];
    if while_writing {
        vars.push(("PACE", "300".into()));
    }
    let first = spawn("producer", &vars);
    let mut next = 0;
    while next < N {
        assert_msg(&rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}")), next);
        next += 1;
    }
    if while_writing {
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            first.kill9();
            first.wait_killed(TIMEOUT);
        });
        // Receive only what is there (`is_empty` reads the slot, not the
        // producer's liveness) until the first producer is dead and reaped,
        // then take what it left.
        while !killer.is_finished() {
            while !rx.is_empty() {
                assert_msg(&rx.try_recv().expect("try_recv").expect("a message"), next);
                next += 1;
            }
        }
        killer.join().expect("killer thread");
        while !rx.is_empty() {
            assert_msg(&rx.try_recv().expect("try_recv").expect("a message"), next);
            next += 1;
        }
    } else {
        common::wait_until("the first producer to fill the ring", TIMEOUT, || rx.len() == rx.capacity());
        first.kill9();
        first.wait_killed(TIMEOUT);
        assert_eq!(shmlane::inspect(&shm.path()).expect("inspect").positions.0, next + rx.capacity() as u64);
    }
    assert_eq!(shmlane::inspect(&shm.path()).expect("inspect").producer, RoleState::Dead);
    // Everything the first producer committed: received, or in the ring.
    let committed = next + rx.len() as u64;

    let second = spawn("producer", &[("NAME", shm.name.clone()), ("COUNT", M.to_string()), ("OUT", start_file.arg())]);
    // It cannot finish before we receive: M is far more than the ring holds.
    common::wait_until("the second producer to attach", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.producer.is_alive())
    });
    drain_until_disconnected(&mut rx, &mut next);
    second.wait_ok(TIMEOUT);
    let start: u64 = std::fs::read_to_string(&start_file.path).expect("start").parse().expect("number");
    println!("{test}: first producer committed {committed}, second started at {start}");
    assert_eq!(start, committed, "the new producer starts where the old one stopped");
    assert_eq!(next, committed + M, "every committed message of both producers, once");
    drop(rx);
    shm.assert_gone();
}

#[test]
fn reattached_producer_continues_after_sigkill_on_full_ring() {
    reattached_producer_continues("reattach_full", false);
}

#[test]
fn reattached_producer_continues_after_sigkill_while_writing() {
    reattached_producer_continues("reattach_writing", true);
}

/// SPSC roles are exclusive while their holder lives, in another process
/// or in this one, and free again once it is killed.
#[test]
fn second_live_producer_is_refused() {
    let _serial = serial();
    let shm = Shm::new("role_taken");
    let rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(16)).expect("create consumer");
    let child = spawn("hold_producer", &[("NAME", shm.name.clone())]);
    common::wait_until("the child to hold the producer role", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.producer.is_alive())
    });
    match Producer::<Msg>::open(&shm.name, Options::new()) {
        Err(OpenError::RoleTaken { role, path }) => {
            assert_eq!(role, "producer");
            assert_eq!(path, shm.path());
        }
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    // The consumer role is ours, in this process: a second one is refused too.
    assert!(matches!(
        Consumer::<Msg>::open(&shm.name, Options::new()),
        Err(OpenError::RoleTaken { role: "consumer", .. })
    ));
    child.kill9();
    child.wait_killed(TIMEOUT);
    let mut tx = Producer::<Msg>::open(&shm.name, Options::new()).expect("the role is free once its holder died");
    tx.send(Msg::new(0)).expect("send");
    drop(tx);
    drop(rx);
    shm.assert_gone();
}

/// Child: opens `NAME` as producer as fast as it can until the segment
/// exists and is ready; the creator holds that role, so it must be refused.
fn race_for_producer() {
    let name = common::var("NAME");
    let opts = Options::new().ready_timeout(Duration::ZERO);
    std::fs::write(common::var("READY"), b"polling").expect("write ready file");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        match Producer::<Msg>::open(&name, opts.clone()) {
            Err(OpenError::NotFound { .. } | OpenError::NotReady { .. }) => std::hint::spin_loop(),
            Err(OpenError::RoleTaken { .. }) => return,
            Ok(_) => panic!("took the producer role of a segment its creator holds"),
            Err(e) => panic!("open: {e}"),
        }
    }
    panic!("the segment never became ready");
}

/// A creator holds its role from before the segment is published: a
/// process opening it the moment it becomes ready (here: a child polling
/// `open` in a tight loop) can never take the creator's role.
#[test]
fn a_creator_holds_its_role_before_anyone_can_open() {
    let _serial = serial();
    for i in 0..ROLE_RACES {
        let shm = Shm::new(&format!("creator_race{i}"));
        let ready = Scratch::new("creator_race", &i.to_string());
        let child = spawn("race_for_producer", &[("NAME", shm.name.clone()), ("READY", ready.arg())]);
        common::wait_until("the child to poll", TIMEOUT, || ready.path.exists());
        let tx = Producer::<Msg>::create(&shm.name, Options::new().capacity(16))
            .unwrap_or_else(|e| panic!("race {i}: the creator lost its role: {e}"));
        child.wait_ok(TIMEOUT);
        drop(tx);
        shm.assert_gone();
    }
}

/// Rounds of [`a_creator_holds_its_role_before_anyone_can_open`]: without
/// the lock-before-publish, about one round in 700 lost the role.
const ROLE_RACES: usize = 500;

/// Byte rings enforce the same exclusivity.
#[test]
fn second_byte_producer_is_refused() {
    let shm = Shm::new("role_taken_bytes");
    let tx = ByteProducer::create(&shm.name, Options::new().capacity(256)).expect("create");
    assert!(matches!(
        ByteProducer::open(&shm.name, Options::new()),
        Err(OpenError::RoleTaken { role: "producer", .. })
    ));
    let rx = ByteConsumer::open(&shm.name, Options::new()).expect("consumer");
    assert!(matches!(
        ByteConsumer::open(&shm.name, Options::new()),
        Err(OpenError::RoleTaken { role: "consumer", .. })
    ));
    drop(rx);
    drop(tx);
    shm.assert_gone();
}

/// A producer that leaves normally (drop): the consumer gets everything it
/// sent, then `Disconnected`, promptly even while parked.
#[test]
fn graceful_producer_drop_drains_then_disconnects() {
    const N: u64 = 10_000;
    let _serial = serial();
    let shm = Shm::new("graceful");
    let wait = WaitStrategy::SpinThenPark { spins: 1_000 };
    let mut rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(128).wait(wait)).expect("create");
    let child =
        spawn("producer", &[("NAME", shm.name.clone()), ("COUNT", N.to_string()), ("WAIT", strategy_arg(wait))]);
    let mut next = 0;
    let last = drain_until_disconnected(&mut rx, &mut next);
    let disconnected = Instant::now();
    assert_eq!(next, N, "every message, once, in order");
    child.wait_ok(TIMEOUT);
    if let Some(last) = last {
        println!("graceful drop: Disconnected {:?} after the last message", disconnected - last);
    }
    assert!(!rx.is_connected());
    drop(rx);
    shm.assert_gone();
}
