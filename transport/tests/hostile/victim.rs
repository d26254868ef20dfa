//! The victim: real handles of one flavor, driven by a fixed program
//! (paused, at rest) or by two racing threads (running), checking every
//! message it accepts; it leaves what it saw in a [`Report`] file.

use crate::common::{self, Msg, mix};
use crate::offsets::{SKIPPED_AT, read_u64};
use crate::report::Report;
use crate::scenario::{HANG, Kind, LIMIT, Mode, OP, RACE_OP, SHORT, Step, pre_counts, scenario};
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, Corruption, MpmcConsumer, MpmcProducer, OpenError, Options, Producer,
    RecvError, ReserveError, SendError, TrySendError, WaitStrategy,
};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a call failed, without the message it carried.
enum Fail {
    Timeout,
    Disconnected,
    Corrupted(Corruption),
    Other(String),
}

impl Fail {
    fn on(self, side: &str) -> String {
        match self {
            Fail::Timeout => format!("{side}:Timeout"),
            Fail::Disconnected => format!("{side}:Disconnected"),
            Fail::Corrupted(c) => format!("{side}:{c:?}"),
            Fail::Other(e) => format!("{side}:Other({e})"),
        }
    }
}

fn send_fail<T>(e: SendError<T>) -> Fail {
    match e {
        SendError::Timeout(_) => Fail::Timeout,
        SendError::Disconnected(_) => Fail::Disconnected,
        SendError::Corrupted(_, c) => Fail::Corrupted(c),
        SendError::Io(_, e) => Fail::Other(e.to_string()),
    }
}

fn recv_fail(e: RecvError) -> Fail {
    match e {
        RecvError::Timeout => Fail::Timeout,
        RecvError::Disconnected => Fail::Disconnected,
        RecvError::Corrupted(c) => Fail::Corrupted(c),
        other => Fail::Other(other.to_string()),
    }
}

fn reserve_fail(e: ReserveError) -> Fail {
    match e {
        ReserveError::Timeout => Fail::Timeout,
        ReserveError::Disconnected => Fail::Disconnected,
        ReserveError::Corrupted(c) => Fail::Corrupted(c),
        other => Fail::Other(other.to_string()),
    }
}

/// A received message: its index (as it claims) and whether it is exactly
/// message `index`.
struct Got {
    index: Option<u64>,
    intact: bool,
}

/// The sending half of any flavor; message `i` is a function of `i`.
trait Tx: Send {
    /// `Ok(false)`: full now.
    fn offer(&mut self, i: u64) -> Result<bool, Fail>;
    fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail>;
}

/// The receiving half of any flavor.
trait Rx: Send {
    fn poll(&mut self) -> Result<Option<Got>, Fail>;
    fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail>;
}

fn judge_msg(m: Msg) -> Got {
    Got { index: Some(m.seq), intact: m == Msg::new(m.seq) }
}

macro_rules! fixed_lane {
    ($tx:ty, $rx:ty) => {
        impl Tx for $tx {
            fn offer(&mut self, i: u64) -> Result<bool, Fail> {
                match self.try_send(Msg::new(i)) {
                    Ok(()) => Ok(true),
                    Err(TrySendError::Full(_)) => Ok(false),
                    Err(TrySendError::Disconnected(_)) => Err(Fail::Disconnected),
                    Err(TrySendError::Corrupted(_, c)) => Err(Fail::Corrupted(c)),
                }
            }
            fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail> {
                self.send_timeout(Msg::new(i), timeout).map_err(send_fail)
            }
        }
        impl Rx for $rx {
            fn poll(&mut self) -> Result<Option<Got>, Fail> {
                self.try_recv().map(|m| m.map(judge_msg)).map_err(recv_fail)
            }
            fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail> {
                self.recv_timeout(timeout).map(judge_msg).map_err(recv_fail)
            }
        }
    };
}

fixed_lane!(Producer<Msg>, Consumer<Msg>);
fixed_lane!(MpmcProducer<Msg>, MpmcConsumer<Msg>);

/// Byte record `i`: its index, then 0..57 bytes derived from it (lengths
/// 8..=64, most of them not a multiple of 8).
fn record(i: u64) -> Vec<u8> {
    let len = 8 + (mix(i) % 57) as usize;
    let mut bytes = i.to_le_bytes().to_vec();
    bytes.extend((8..len).map(|k| mix(i ^ ((k as u64) << 40)) as u8));
    bytes
}

fn judge_bytes(payload: &[u8]) -> Got {
    match payload.first_chunk::<8>() {
        Some(head) => {
            let i = u64::from_le_bytes(*head);
            Got { index: Some(i), intact: payload == record(i).as_slice() }
        }
        None => Got { index: None, intact: false },
    }
}

impl Tx for ByteProducer {
    fn offer(&mut self, i: u64) -> Result<bool, Fail> {
        let payload = record(i);
        match self.try_reserve(payload.len()) {
            Ok(Some(mut grant)) => {
                grant.copy_from_slice(&payload);
                grant.commit();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(reserve_fail(e)),
        }
    }
    fn put(&mut self, i: u64, timeout: Duration) -> Result<(), Fail> {
        let payload = record(i);
        let mut grant = self.reserve_timeout(payload.len(), timeout).map_err(reserve_fail)?;
        grant.copy_from_slice(&payload);
        grant.commit();
        Ok(())
    }
}

impl Rx for ByteConsumer {
    fn poll(&mut self) -> Result<Option<Got>, Fail> {
        match self.try_recv() {
            Ok(Some(record)) => Ok(Some(judge_bytes(&record))),
            Ok(None) => Ok(None),
            Err(e) => Err(recv_fail(e)),
        }
    }
    fn fetch(&mut self, timeout: Duration) -> Result<Got, Fail> {
        self.recv_timeout(timeout).map(|record| judge_bytes(&record)).map_err(recv_fail)
    }
}

/// Checks every accepted message is the next one, intact.
#[derive(Debug, Default)]
struct Checker {
    expected: u64,
    received: u64,
    bad: u64,
    first_bad: Option<String>,
}

impl Checker {
    fn take(&mut self, got: Got) {
        self.received += 1;
        if got.index == Some(self.expected) && got.intact {
            self.expected += 1;
            return;
        }
        self.bad += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(format!("expected {}, got {:?} intact {}", self.expected, got.index, got.intact));
        }
        // Resynchronise on an intact message (a gap), else skip one.
        self.expected = match got.index {
            Some(i) if got.intact => i.wrapping_add(1),
            _ => self.expected + 1,
        };
    }
}

/// A victim's two halves.
type Lanes = (Box<dyn Tx>, Box<dyn Rx>);

struct Victim {
    tx: Box<dyn Tx>,
    rx: Box<dyn Rx>,
    /// Index of the next message to send.
    next: u64,
    check: Checker,
}

fn open_pair(kind: Kind, name: &str, wait: WaitStrategy) -> Result<Lanes, OpenError> {
    let opts = || Options::new().wait(wait);
    Ok(match kind {
        Kind::Spsc => (Box::new(Producer::<Msg>::open(name, opts())?), Box::new(Consumer::<Msg>::open(name, opts())?)),
        Kind::Bytes => (Box::new(ByteProducer::open(name, opts())?), Box::new(ByteConsumer::open(name, opts())?)),
        Kind::Mpmc => {
            (Box::new(MpmcProducer::<Msg>::open(name, opts())?), Box::new(MpmcConsumer::<Msg>::open(name, opts())?))
        }
    })
}

impl Victim {
    /// Runs `steps`; the first error ends the program.
    fn run(&mut self, steps: &[Step]) -> Option<String> {
        steps.iter().try_for_each(|&s| self.step(s)).err()
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        // Any honest ring says full or empty long before this many calls.
        const BOUND: u32 = 4096;
        match step {
            Step::Fill => {
                for _ in 0..BOUND {
                    if !self.tx.offer(self.next).map_err(|e| e.on("tx"))? {
                        return Ok(());
                    }
                    self.next += 1;
                }
                Err("tx:never full".to_owned())
            }
            Step::Drain => {
                for _ in 0..BOUND {
                    match self.rx.poll().map_err(|e| e.on("rx"))? {
                        Some(got) => self.check.take(got),
                        None => return Ok(()),
                    }
                }
                Err("rx:never empty".to_owned())
            }
            Step::Flow(n) => {
                for _ in 0..n {
                    self.tx.put(self.next, OP).map_err(|e| e.on("tx"))?;
                    self.next += 1;
                    let got = self.rx.fetch(OP).map_err(|e| e.on("rx"))?;
                    self.check.take(got);
                }
                Ok(())
            }
            Step::WaitEmpty => {
                let started = Instant::now();
                match self.rx.fetch(SHORT) {
                    Ok(got) => self.check.take(got),
                    Err(Fail::Timeout) => {}
                    Err(e) => return Err(e.on("rx")),
                }
                if started.elapsed() > HANG { Err(format!("rx:hung {:?}", started.elapsed())) } else { Ok(()) }
            }
            Step::WaitFull => {
                self.step(Step::Fill)?;
                let started = Instant::now();
                match self.tx.put(self.next, SHORT) {
                    Ok(()) => self.next += 1,
                    Err(Fail::Timeout) => {}
                    Err(e) => return Err(e.on("tx")),
                }
                if started.elapsed() > HANG { Err(format!("tx:hung {:?}", started.elapsed())) } else { Ok(()) }
            }
        }
    }

    /// Lockstep exchange, then a few messages left unread.
    fn warm_up(&mut self, kind: Kind) -> Result<(), String> {
        let (lockstep, unread) = pre_counts(kind);
        self.step(Step::Flow(lockstep as u32))?;
        for _ in 0..unread {
            self.tx.put(self.next, OP).map_err(|e| e.on("tx"))?;
            self.next += 1;
        }
        Ok(())
    }

    /// A producer thread and a consumer thread until `stop_file` appears
    /// or one of them fails (which creates `err_file`, the attacker's cue).
    fn race(&mut self, stop_file: &Path, err_file: &Path, started_file: &Path) -> Option<String> {
        let stop = AtomicBool::new(false);
        let first = Mutex::new(None);
        let fail = |what: String| {
            let mut first = first.lock().expect("lock");
            if first.is_none() && !stop.load(Ordering::SeqCst) {
                *first = Some(what);
                std::fs::write(err_file, b"").expect("write error marker");
            }
            stop.store(true, Ordering::SeqCst);
        };
        let Victim { tx, rx, next, check } = self;
        let from = *next;
        let (stop, fail) = (&stop, &fail);
        std::thread::scope(|s| {
            let sender = s.spawn(move || {
                let mut i = from;
                while !stop.load(Ordering::SeqCst) {
                    match tx.put(i, RACE_OP) {
                        Ok(()) => i += 1,
                        Err(Fail::Timeout) => {}
                        Err(e) => {
                            fail(e.on("tx"));
                            break;
                        }
                    }
                }
                i
            });
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match rx.fetch(RACE_OP) {
                        Ok(got) => check.take(got),
                        Err(Fail::Timeout) => {}
                        Err(e) => {
                            fail(e.on("rx"));
                            break;
                        }
                    }
                }
            });
            std::fs::write(started_file, b"").expect("write marker");
            let deadline = Instant::now() + LIMIT;
            while !stop.load(Ordering::SeqCst) && !stop_file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, Ordering::SeqCst);
            *next = sender.join().expect("sender thread");
        });
        first.into_inner().expect("lock")
    }
}

pub(crate) fn victim() {
    let sc = scenario(&common::var("SCENARIO"));
    let name = common::var("NAME");
    let marker = |key: &str| std::path::PathBuf::from(common::var(key));
    let mut report = Report::default();
    match open_pair(sc.kind, &name, sc.wait) {
        Err(e) => report.first = Some(format!("open:{e}")),
        Ok((tx, rx)) => {
            let mut v = Victim { tx, rx, next: 0, check: Checker::default() };
            report.first = match sc.mode {
                Mode::AtRest(steps) => v.run(steps),
                Mode::Paused(steps) => match v.warm_up(sc.kind) {
                    Err(e) => Some(format!("warm-up:{e}")),
                    Ok(()) => {
                        std::fs::write(marker("PAUSED"), b"").expect("write marker");
                        common::wait_until("the attacker", LIMIT, || marker("GO").exists());
                        v.run(steps)
                    }
                },
                Mode::Running { .. } => match v.warm_up(sc.kind) {
                    Err(e) => Some(format!("warm-up:{e}")),
                    Ok(()) => {
                        let first = v.race(&marker("STOP"), &marker("ERR"), &marker("PAUSED"));
                        // Still a working ring after the attack?
                        if first.is_none() {
                            report.after = v.run(&[Step::Drain, Step::Flow(8)]);
                        }
                        first
                    }
                },
            };
            report.received = v.check.received;
            report.bad = v.check.bad;
            report.first_bad = v.check.first_bad.take();
        }
    }
    if sc.kind == Kind::Mpmc {
        report.skipped = read_u64(&shmlane::segment_path(&name, None).expect("name"), SKIPPED_AT);
    }
    let out = marker("OUT");
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, report.render()).expect("write report");
    std::fs::rename(&tmp, &out).expect("publish report");
}
