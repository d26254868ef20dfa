//! Two (and more) real processes exchanging messages through a named
//! segment: every message arrives exactly once, intact and in order.
//!
//! Children are this test binary re-spawned (see `common`); the parent
//! creates the segment so that it, not a child, removes the name.

mod common;

use common::{Child, Msg, Rng, Scratch, Shm, TIMEOUT, assert_msg, serial, spawn, strategy_arg, strategy_var};
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, Options, Producer, RecvError, RoleState,
    WaitStrategy,
};

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "spsc_producer" => spsc_producer(),
        "byte_consumer" => byte_consumer(),
        "mpmc_producer" => mpmc_producer(),
        "mpmc_consumer" => mpmc_consumer(),
        other => panic!("unknown child role {other}"),
    }
}

// ---------------------------------------------------------------- typed SPSC

/// Child: opens `NAME` as producer and sends `COUNT` messages (in batches of
/// `BATCH` if given), then leaves.
fn spsc_producer() {
    let name = common::var("NAME");
    let count = common::var_u64("COUNT");
    let batch = common::var_opt("BATCH").map(|b| b.parse::<u64>().expect("BATCH"));
    let mut tx = Producer::<Msg>::open(&name, Options::new().wait(strategy_var())).expect("open producer");
    match batch {
        None => {
            for seq in 0..count {
                tx.send_timeout(Msg::new(seq), TIMEOUT).unwrap_or_else(|e| panic!("send {seq}: {e}"));
            }
        }
        Some(batch) => {
            let mut seq = 0;
            while seq < count {
                let n = batch.min(count - seq);
                let values: Vec<Msg> = (seq..seq + n).map(Msg::new).collect();
                tx.send_batch(&values).unwrap_or_else(|e| panic!("send_batch at {seq}: {e}"));
                seq += n;
            }
        }
    }
}

/// Parent consumes `count` messages from a child producer, each exactly
/// once and in order, then sees the producer leave.
fn typed_spsc(test: &str, wait: WaitStrategy, count: u64, batch: Option<u64>) {
    let _serial = serial();
    let shm = Shm::new(test);
    let mut rx = Consumer::<Msg>::create(&shm.name, Options::new().capacity(1024).wait(wait)).expect("create");
    let mut vars = vec![("NAME", shm.name.clone()), ("COUNT", count.to_string()), ("WAIT", strategy_arg(wait))];
    if let Some(b) = batch {
        vars.push(("BATCH", b.to_string()));
    }
    let child = spawn("spsc_producer", &vars);
    let mut next = 0u64;
    if batch.is_some() {
        let mut buf = vec![Msg::new(0); 100];
        while next < count {
            let n = rx.recv_batch(&mut buf).unwrap_or_else(|e| panic!("recv_batch at {next}: {e}"));
            assert!(n > 0 && next + n as u64 <= count, "recv_batch gave {n} at {next} of {count}");
            for m in &buf[..n] {
                assert_msg(m, next);
                next += 1;
            }
        }
    } else {
        while next < count {
            let m = rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv {next}: {e}"));
            assert_msg(&m, next);
            next += 1;
        }
    }
    // Nothing more: the producer leaves and we are told so.
    match rx.recv_timeout(TIMEOUT) {
        Err(RecvError::Disconnected) => {}
        Ok(m) => panic!("extra message after {count}: {m:?}"),
        Err(e) => panic!("expected Disconnected, got {e}"),
    }
    child.wait_ok(TIMEOUT);
    drop(rx);
    shm.assert_gone();
}

#[test]
fn typed_spsc_busy_spin_one_million() {
    typed_spsc("typed_busy", WaitStrategy::BusySpin, 1_000_000, None);
}

/// Park on both sides: every full/empty transition may be a futex round
/// trip. Measured on the 2-core VM it is not slower than spinning (the
/// sides take turns instead of fighting for the cores), so the full million.
#[test]
fn typed_spsc_park_both_sides_one_million() {
    typed_spsc("typed_park", WaitStrategy::Park, 1_000_000, None);
}

/// Batched send/receive with spin-then-park, batches not dividing the
/// capacity (so they straddle the wrap-around).
#[test]
fn typed_spsc_batches_spin_then_park() {
    typed_spsc("typed_batch", WaitStrategy::SpinThenPark { spins: 2_000 }, 300_000, Some(37));
}

// -------------------------------------------------------------- byte records

const RECORD_SEED: u64 = 0x5EED_0000_B17E_5EED;
const RECORDS: u64 = 100_000;
const BYTE_CAPACITY: u64 = 4096;

/// Length of record `i` (drawn from the shared seeded PRNG): mostly short,
/// 1 in 32 anything up to the largest record, some empty.
fn record_len(rng: &mut Rng, max: usize) -> usize {
    match rng.next_u64() % 32 {
        0 => rng.up_to(max),
        1 => 0,
        _ => rng.up_to(300),
    }
}

/// Byte `i` of record `seq`.
#[inline]
fn record_byte(seed: u64, i: usize) -> u8 {
    ((seed >> (8 * (i & 7))) as u8).wrapping_add((i >> 3) as u8)
}

/// Child: opens `NAME` as byte consumer and checks `COUNT` records against
/// the same PRNG, then expects the producer to leave.
fn byte_consumer() {
    let name = common::var("NAME");
    let count = common::var_u64("COUNT");
    let mut rx = ByteConsumer::open(&name, Options::new().wait(strategy_var())).expect("open byte consumer");
    let max = rx.capacity() - 8;
    let mut rng = Rng::new(RECORD_SEED);
    for seq in 0..count {
        let len = record_len(&mut rng, max);
        let record = rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("recv record {seq}: {e}"));
        assert_eq!(record.len(), len, "record {seq}: length");
        let seed = common::mix(seq);
        if let Some(i) = record.iter().enumerate().position(|(i, &b)| b != record_byte(seed, i)) {
            panic!(
                "record {seq} ({len} bytes): byte {i} is {:#04x}, expected {:#04x}",
                record[i],
                record_byte(seed, i)
            );
        }
    }
    match rx.recv_timeout(TIMEOUT) {
        Err(RecvError::Disconnected) => {}
        Ok(r) => panic!("extra record after {count}: {} bytes", r.len()),
        Err(e) => panic!("expected Disconnected, got {e}"),
    }
}

/// Random-length records from a seeded PRNG, payload derived from the
/// sequence number; the child checks every byte. Some records are reserved
/// larger and committed shorter (`commit_len`).
#[test]
fn byte_records_between_processes() {
    let _serial = serial();
    let shm = Shm::new("bytes");
    let wait = WaitStrategy::SpinThenPark { spins: 2_000 };
    let mut tx = ByteProducer::create(&shm.name, Options::new().capacity(BYTE_CAPACITY).wait(wait)).expect("create");
    let max = tx.max_record_len();
    assert_eq!(max, BYTE_CAPACITY as usize - 8, "largest record of a {BYTE_CAPACITY}-byte ring");
    let child = spawn(
        "byte_consumer",
        &[("NAME", shm.name.clone()), ("COUNT", RECORDS.to_string()), ("WAIT", strategy_arg(wait))],
    );
    let mut rng = Rng::new(RECORD_SEED);
    for seq in 0..RECORDS {
        let len = record_len(&mut rng, max);
        let seed = common::mix(seq);
        // Every 7th record: reserve a little more and commit only `len`.
        let extra = if seq % 7 == 0 { (max - len).min(13) } else { 0 };
        let mut grant = tx.reserve_timeout(len + extra, TIMEOUT).unwrap_or_else(|e| panic!("reserve {seq}: {e}"));
        for (i, b) in grant[..len].iter_mut().enumerate() {
            *b = record_byte(seed, i);
        }
        grant.commit_len(len);
    }
    drop(tx);
    child.wait_ok(TIMEOUT);
    shm.assert_gone();
}

// ----------------------------------------------------------------------- MPMC

/// A message tagged with its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tagged {
    producer: u64,
    seq: u64,
    check: u64,
}

impl Tagged {
    fn new(producer: u64, seq: u64) -> Self {
        Self { producer, seq, check: common::mix((producer << 40) ^ seq) }
    }
}

const MPMC_PER_PRODUCER: u64 = 100_000;
const MPMC_PRODUCERS: u64 = 2;
const MPMC_CONSUMERS: usize = 2;

/// Child: opens `NAME` as one more MPMC producer and sends `COUNT` tagged
/// messages as producer `ID`.
fn mpmc_producer() {
    let name = common::var("NAME");
    let id = common::var_u64("ID");
    let count = common::var_u64("COUNT");
    let mut tx = MpmcProducer::<Tagged>::open(&name, Options::new().wait(strategy_var())).expect("open producer");
    for seq in 0..count {
        tx.send_timeout(Tagged::new(id, seq), TIMEOUT).unwrap_or_else(|e| panic!("producer {id} send {seq}: {e}"));
    }
}

/// Child: opens `NAME` as one more MPMC consumer, receives until every
/// producer is gone, and writes what it got, in order, to `OUT` as
/// little-endian `(producer, seq)` pairs.
fn mpmc_consumer() {
    let name = common::var("NAME");
    let out = common::var("OUT");
    let mut rx = MpmcConsumer::<Tagged>::open(&name, Options::new().wait(strategy_var())).expect("open consumer");
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_eq!(m, Tagged::new(m.producer, m.seq), "torn or corrupt message");
                got.extend_from_slice(&m.producer.to_le_bytes());
                got.extend_from_slice(&m.seq.to_le_bytes());
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("consumer recv: {e}"),
        }
    }
    std::fs::write(&out, got).expect("write report");
}

/// 2 producer processes × 2 consumer processes. The parent holds a producer
/// handle (sending nothing) until both producers finished, so consumers see
/// `Disconnected` only once everything was sent. Overall every message
/// arrives exactly once; each consumer sees each producer's messages in
/// order.
#[test]
fn mpmc_two_producers_two_consumers() {
    let _serial = serial();
    let shm = Shm::new("mpmc");
    let wait = WaitStrategy::SpinThenPark { spins: 2_000 };
    let holder = MpmcProducer::<Tagged>::create(&shm.name, Options::new().capacity(256).wait(wait)).expect("create");
    let reports: Vec<Scratch> = (0..MPMC_CONSUMERS).map(|i| Scratch::new("mpmc", &format!("consumer{i}"))).collect();
    let consumers: Vec<Child> = reports
        .iter()
        .map(|r| spawn("mpmc_consumer", &[("NAME", shm.name.clone()), ("OUT", r.arg()), ("WAIT", strategy_arg(wait))]))
        .collect();
    // Both consumers attached before anything is sent, so neither can miss
    // the segment (the name goes when `holder` drops).
    common::wait_until("both consumers to attach", TIMEOUT, || {
        shmlane::inspect(&shm.path()).is_ok_and(|i| i.consumer == RoleState::Alive(MPMC_CONSUMERS as u32))
    });
    let producers: Vec<Child> = (0..MPMC_PRODUCERS)
        .map(|id| {
            spawn(
                "mpmc_producer",
                &[
                    ("NAME", shm.name.clone()),
                    ("ID", id.to_string()),
                    ("COUNT", MPMC_PER_PRODUCER.to_string()),
                    ("WAIT", strategy_arg(wait)),
                ],
            )
        })
        .collect();
    for p in producers {
        p.wait_ok(TIMEOUT * 2);
    }
    let info = shmlane::inspect(&shm.path()).expect("inspect");
    assert_eq!(info.header.skipped, 0, "no producer died, so no slot may be skipped");
    drop(holder);
    for c in consumers {
        c.wait_ok(TIMEOUT);
    }
    shm.assert_gone();

    let total = (MPMC_PRODUCERS * MPMC_PER_PRODUCER) as usize;
    let mut seen = vec![0u8; total];
    let mut per_consumer = Vec::new();
    for (c, report) in reports.iter().enumerate() {
        let bytes = std::fs::read(&report.path).expect("read consumer report");
        assert_eq!(bytes.len() % 16, 0, "consumer {c}: truncated report");
        let mut last = [None::<u64>; MPMC_PRODUCERS as usize];
        for pair in bytes.chunks_exact(16) {
            let producer = u64::from_le_bytes(pair[..8].try_into().expect("8 bytes"));
            let seq = u64::from_le_bytes(pair[8..].try_into().expect("8 bytes"));
            assert!(producer < MPMC_PRODUCERS && seq < MPMC_PER_PRODUCER, "consumer {c}: bogus ({producer}, {seq})");
            let prev = &mut last[producer as usize];
            assert!(prev.is_none_or(|p| p < seq), "consumer {c}: producer {producer} seq {seq} after {prev:?}");
            *prev = Some(seq);
            seen[(producer * MPMC_PER_PRODUCER + seq) as usize] += 1;
        }
        per_consumer.push(bytes.len() / 16);
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missing, duplicated), (0, 0), "messages missing / received more than once");
    println!("mpmc: {total} messages, per consumer {per_consumer:?}");
}
