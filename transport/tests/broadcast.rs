//! Broadcast between real processes: every reader gets every message in
//! order, or an exact `Lagged(n)` for what it missed; a reader that is
//! killed changes nothing for the writer or the other readers.
//!
//! Children are this test binary re-spawned (see `common`). Readers report
//! what they saw through a scratch file: `delivered lagged`.

mod common;

use common::{Child, Msg, Scratch, Shm, TIMEOUT, assert_msg, mix, serial, spawn, strategy_arg, strategy_var};
use shmlane::{
    BroadcastConsumer, BroadcastProducer, ByteBroadcastConsumer, ByteBroadcastProducer, Options, RecvError, RoleState,
    WaitStrategy,
};
use std::time::Duration;

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "reader" => reader(),
        "paused_reader" => paused_reader(),
        "byte_reader" => byte_reader(),
        other => panic!("unknown child role {other}"),
    }
}

fn signal_ready() {
    std::fs::write(common::var("READY"), b"ready").expect("write ready file");
}

fn report(delivered: u64, lagged: u64) {
    std::fs::write(common::var("OUT"), format!("{delivered} {lagged}")).expect("write report");
}

/// Child: reads `NAME` until the writer is gone, checking that every
/// message is the next one expected or is accounted for by a `Lagged(n)`,
/// then reports. With `SLOW_EVERY = k` it sleeps 1 ms every k messages.
fn reader() {
    let name = common::var("NAME");
    let slow_every = common::var_opt("SLOW_EVERY").map(|k| k.parse::<u64>().expect("SLOW_EVERY"));
    let mut rx = BroadcastConsumer::<Msg>::open(&name, Options::new().wait(strategy_var())).expect("open reader");
    signal_ready();
    let (mut next, mut delivered, mut lagged) = (0u64, 0u64, 0u64);
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_msg(&m, next);
                next += 1;
                delivered += 1;
                if slow_every.is_some_and(|k| delivered % k == 0) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(RecvError::Lagged(n)) => {
                assert!(n > 0, "Lagged(0) at {next}");
                next += n;
                lagged += n;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("reader at {next}: {e}"),
        }
    }
    assert_eq!(next, delivered + lagged);
    report(delivered, lagged);
}

/// Child: attaches, then does not read until the writer has left, so it
/// finds the ring lapped: it must be told exactly how many it lost, then
/// get the last `capacity` messages in order.
fn paused_reader() {
    let name = common::var("NAME");
    let count = common::var_u64("COUNT");
    let mut rx = BroadcastConsumer::<Msg>::open(&name, Options::new()).expect("open reader");
    signal_ready();
    common::wait_until("the writer to leave", TIMEOUT, || !rx.is_connected());
    let capacity = rx.capacity() as u64;
    let lost = count - capacity;
    match rx.try_recv() {
        Err(RecvError::Lagged(n)) => assert_eq!(n, lost, "lag count"),
        other => panic!("expected Lagged({lost}), got {other:?}"),
    }
    for seq in lost..count {
        let m = rx.try_recv().unwrap_or_else(|e| panic!("message {seq}: {e}"));
        assert_msg(&m.unwrap_or_else(|| panic!("message {seq} missing")), seq);
    }
    assert!(matches!(rx.try_recv(), Err(RecvError::Disconnected)));
    report(capacity, lost);
}

/// The payload of byte record `seq`: its sequence number, then a length and
/// bytes derived from it.
fn record(seq: u64, max: usize) -> Vec<u8> {
    let len = 8 + (mix(seq) % (max as u64 - 7)) as usize;
    let mut out = seq.to_le_bytes().to_vec();
    out.extend((8..len).map(|i| mix(seq ^ i as u64) as u8));
    out
}

/// Child: as `reader`, for byte records.
fn byte_reader() {
    let name = common::var("NAME");
    let mut rx = ByteBroadcastConsumer::open(&name, Options::new().wait(strategy_var())).expect("open byte reader");
    signal_ready();
    let max = rx.max_record_len();
    let (mut next, mut out) = (0u64, Vec::new());
    loop {
        match rx.recv_into_timeout(&mut out, TIMEOUT) {
            Ok(len) => {
                assert_eq!(len, out.len());
                assert_eq!(out, record(next, max), "record {next}");
                next += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("byte reader at {next}: {e}"),
        }
    }
    report(next, 0);
}

/// A reader child with its ready and report files.
struct Reader {
    child: Child,
    ready: Scratch,
    out: Scratch,
}

fn spawn_reader(test: &str, i: usize, role: &str, shm: &Shm, extra: &[(&str, String)]) -> Reader {
    let ready = Scratch::new(test, &format!("ready{i}"));
    let out = Scratch::new(test, &format!("out{i}"));
    let mut vars = vec![("NAME", shm.name.clone()), ("READY", ready.arg()), ("OUT", out.arg())];
    vars.extend(extra.iter().cloned());
    let child = spawn(role, &vars);
    Reader { child, ready, out }
}

fn wait_ready(readers: &[Reader]) {
    for r in readers {
        common::wait_until("a reader to attach", TIMEOUT, || r.ready.path.exists());
    }
}

/// Waits for a reader to finish and returns its `(delivered, lagged)`.
fn finish(reader: Reader) -> (u64, u64) {
    reader.child.wait_ok(TIMEOUT);
    let text = std::fs::read_to_string(&reader.out.path).expect("reader report");
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().expect("number"));
    (it.next().expect("delivered"), it.next().expect("lagged"))
}

fn live_readers(shm: &Shm) -> RoleState {
    shmlane::inspect(&shm.path()).expect("inspect").consumer
}

#[test]
fn four_readers_each_receive_every_message_in_order() {
    const COUNT: u64 = 200_000;
    let _serial = serial();
    let test = "bc_four";
    let shm = Shm::new(test);
    // A ring larger than the stream: nobody can lag, whatever the scheduler.
    let mut tx = BroadcastProducer::<Msg>::create(&shm.name, Options::new().capacity(COUNT)).expect("create");
    let wait = strategy_arg(WaitStrategy::SpinThenPark { spins: 1_000 });
    let readers: Vec<Reader> =
        (0..4).map(|i| spawn_reader(test, i, "reader", &shm, &[("WAIT", wait.clone())])).collect();
    wait_ready(&readers);
    assert_eq!(live_readers(&shm), RoleState::Alive(4));
    for seq in 0..COUNT {
        tx.send(Msg::new(seq));
    }
    drop(tx);
    for r in readers {
        assert_eq!(finish(r), (COUNT, 0), "(delivered, lagged)");
    }
    shm.assert_gone();
}

#[test]
fn a_paused_reader_is_told_exactly_how_many_it_lost() {
    const COUNT: u64 = 10_000;
    let _serial = serial();
    let test = "bc_paused";
    let shm = Shm::new(test);
    let mut tx = BroadcastProducer::<Msg>::create(&shm.name, Options::new().capacity(64)).expect("create");
    let reader = spawn_reader(test, 0, "paused_reader", &shm, &[("COUNT", COUNT.to_string())]);
    wait_ready(std::slice::from_ref(&reader));
    for seq in 0..COUNT {
        tx.send(Msg::new(seq));
    }
    drop(tx);
    assert_eq!(finish(reader), (64, COUNT - 64));
    shm.assert_gone();
}

/// A reader slowed while the writer streams into a small ring loses
/// messages; whatever it loses is reported, and delivered + lost is the
/// whole stream. A parked reader beside it accounts the same way.
#[test]
fn slowed_readers_account_for_every_message() {
    const COUNT: u64 = 100_000;
    let _serial = serial();
    let test = "bc_slow";
    let shm = Shm::new(test);
    let mut tx = BroadcastProducer::<Msg>::create(&shm.name, Options::new().capacity(256)).expect("create");
    let readers = vec![
        spawn_reader(test, 0, "reader", &shm, &[("SLOW_EVERY", "1000".into())]),
        spawn_reader(test, 1, "reader", &shm, &[("WAIT", strategy_arg(WaitStrategy::Park))]),
    ];
    wait_ready(&readers);
    for seq in 0..COUNT {
        tx.send(Msg::new(seq));
        if seq % 10_000 == 0 {
            // Give the slowed reader time to fall a whole ring behind.
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    drop(tx);
    let mut results = readers.into_iter().map(finish);
    let (delivered, lagged) = results.next().unwrap();
    assert_eq!(delivered + lagged, COUNT);
    assert!(lagged > 0, "the slowed reader never lagged: the test did not test lag");
    let (delivered, lagged) = results.next().unwrap();
    assert_eq!(delivered + lagged, COUNT);
    shm.assert_gone();
}

#[test]
fn a_killed_reader_affects_neither_the_writer_nor_the_others() {
    const COUNT: u64 = 100_000;
    let _serial = serial();
    let test = "bc_kill";
    let shm = Shm::new(test);
    let mut tx = BroadcastProducer::<Msg>::create(&shm.name, Options::new().capacity(COUNT)).expect("create");
    let wait = strategy_arg(WaitStrategy::SpinThenPark { spins: 1_000 });
    let mut readers: Vec<Reader> =
        (0..3).map(|i| spawn_reader(test, i, "reader", &shm, &[("WAIT", wait.clone())])).collect();
    wait_ready(&readers);
    assert_eq!(live_readers(&shm), RoleState::Alive(3));
    for seq in 0..COUNT / 2 {
        tx.send(Msg::new(seq));
    }
    let victim = readers.remove(0);
    victim.child.kill9();
    victim.child.wait_killed(TIMEOUT);
    assert_eq!(live_readers(&shm), RoleState::Alive(2));
    for seq in COUNT / 2..COUNT {
        tx.send(Msg::new(seq));
    }
    assert_eq!(tx.position(), COUNT);
    drop(tx);
    for r in readers {
        assert_eq!(finish(r), (COUNT, 0), "(delivered, lagged)");
    }
    shm.assert_gone();
}

#[test]
fn byte_records_reach_every_reader_intact() {
    const COUNT: u64 = 50_000;
    let _serial = serial();
    let test = "bc_bytes";
    let shm = Shm::new(test);
    let opts = Options::new().capacity(COUNT).max_record_len(200);
    let mut tx = ByteBroadcastProducer::create(&shm.name, opts).expect("create");
    let wait = strategy_arg(WaitStrategy::SpinThenPark { spins: 1_000 });
    let readers: Vec<Reader> =
        (0..2).map(|i| spawn_reader(test, i, "byte_reader", &shm, &[("WAIT", wait.clone())])).collect();
    wait_ready(&readers);
    let max = tx.max_record_len();
    for seq in 0..COUNT {
        tx.send(&record(seq, max)).expect("record fits");
    }
    assert!(tx.send(&vec![0; max + 1]).is_err());
    drop(tx);
    for r in readers {
        assert_eq!(finish(r), (COUNT, 0));
    }
    shm.assert_gone();
}
