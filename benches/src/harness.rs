//! The transport abstraction and the two measurements run over it:
//! round trip (ping-pong) and streaming.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::process::{ChildOutcome, ChildStats, Ctrl, run_pair};
use crate::sys::{CpuPair, Usage};

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Ping-pong of one message: latency percentiles.
    Rtt,
    /// One side sends as fast as it can: messages and bytes per second.
    Stream,
}

impl Mode {
    /// `"rtt"` or `"stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtt => "rtt",
            Self::Stream => "stream",
        }
    }
}

/// How a transport waits; decides what it is compared with (blocking with
/// blocking, spinning with spinning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Sleeps in the kernel until data arrives (pays the vCPU wake-up).
    Blocking,
    /// Busy-polls; never sleeps.
    Spinning,
    /// A hardware reference point, not a transport a user would pick.
    Limit,
}

/// Which part a process plays. The parent of the fork is always the
/// measuring side: the [`Role::Pinger`] or the [`Role::Receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Round trip, measuring side: sends, waits for the echo.
    Pinger,
    /// Round trip, other side: echoes every message back.
    Ponger,
    /// Streaming, other side: sends as fast as it can.
    Sender,
    /// Streaming, measuring side: receives and checks every message.
    Receiver,
}

/// A way to move messages between two processes.
///
/// The harness calls [`Transport::prepare`] in the parent before `fork`;
/// both processes inherit the returned state, and each turns its copy into an
/// [`Endpoint`] for its [`Role`].
pub trait Transport {
    /// Name in the table, the JSON and `--transports`.
    fn name(&self) -> &str;

    /// Blocking, spinning or a limit.
    fn kind(&self) -> Kind;

    /// The modes this transport takes part in.
    fn modes(&self) -> &'static [Mode] {
        &[Mode::Rtt, Mode::Stream]
    }

    /// What a reader of the table must know about how this transport is
    /// driven (batching, zero copy, what its accounting counts), if anything.
    fn note(&self) -> Option<String> {
        None
    }

    /// Why this transport cannot carry `size`-byte messages, or `None` if it
    /// can. The plan skips such sizes and says so in the notes (for example
    /// typed rings, whose message type is chosen at compile time).
    fn unsupported(&self, size: usize) -> Option<String> {
        let _ = size;
        None
    }

    /// Creates what both processes must share (pipes, sockets, a listening
    /// socket, a shared-memory segment) for messages of exactly `size` bytes.
    fn prepare(&self, mode: Mode, size: usize) -> Result<Box<dyn Prepared>>;
}

/// State created before `fork`; each process converts its own copy.
pub trait Prepared {
    /// Runs after `fork` in the process that plays `role`: drop what this side
    /// does not use (so that the peer sees end-of-file if this side dies),
    /// finish connecting, and return the endpoint.
    fn endpoint(self: Box<Self>, role: Role) -> Result<Box<dyn Endpoint>>;
}

/// One side of a connected transport. Messages have a fixed size, known to
/// both sides; a message must arrive whole, in order, exactly once.
pub trait Endpoint {
    /// Sends `msg`, waiting (by blocking or spinning) for room.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Receives the next message into `buf`, which is exactly one message long.
    fn recv(&mut self, buf: &mut [u8]) -> Result<()>;

    /// Sends one `scratch.len()`-byte message whose bytes `fill` writes. The
    /// default fills `scratch` and sends it; a zero-copy transport can let
    /// `fill` write straight into its slot.
    fn send_with(&mut self, scratch: &mut [u8], fill: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        fill(scratch);
        self.send(scratch)
    }

    /// Receives one `scratch.len()`-byte message and hands it to `check`. The
    /// default receives into `scratch`; a zero-copy transport can check the
    /// message in place.
    fn recv_with(&mut self, scratch: &mut [u8], check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.recv(scratch)?;
        check(scratch)
    }

    /// Delivers whatever a streaming sender still holds back. A transport
    /// that gathers messages to publish them in batches (one index update per
    /// batch) keeps up to a batch here; the harness calls this once, after the
    /// sender's last message. The default holds nothing back.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// System calls this endpoint has made so far, if it counts them
    /// (accounting hook: a parking shm transport counts its futex calls).
    fn syscalls(&self) -> Option<u64> {
        None
    }
}

/// Fills a message with its sequence number: every 8-byte word holds `seq`
/// (little endian); a tail shorter than 8 bytes holds its low bytes.
pub fn fill_message(buf: &mut [u8], seq: u64) {
    let word = seq.to_le_bytes();
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word);
    }
    let tail = chunks.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word[..n]);
}

/// Checks a message written by [`fill_message`] with `seq`: rejects a wrong
/// sequence number (lost, duplicated, reordered) and a torn message.
pub fn check_message(buf: &[u8], seq: u64) -> Result<()> {
    let word = seq.to_le_bytes();
    let expect = u64::from_le_bytes(word);
    let chunks = buf.chunks_exact(8);
    let tail = chunks.remainder();
    // Branch-free accumulation so that the check runs at memory speed.
    let diff = chunks.fold(0u64, |acc, c| acc | (load_word(c) ^ expect));
    if diff == 0 && tail == &word[..tail.len()] {
        return Ok(());
    }
    Err(describe_mismatch(buf, seq))
}

fn load_word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk); // `chunks_exact(8)` yields 8-byte chunks only.
    u64::from_le_bytes(w)
}

fn describe_mismatch(buf: &[u8], seq: u64) -> BenchError {
    let word = seq.to_le_bytes();
    let first = buf.iter().zip(word.iter().cycle()).position(|(a, b)| a != b).unwrap_or(0);
    let detail = if first < 8 {
        let mut got = [0u8; 8];
        let n = buf.len().min(8);
        got[..n].copy_from_slice(&buf[..n]);
        format!(
            "out of order: expected sequence {seq}, got {} (lost, duplicated or reordered)",
            u64::from_le_bytes(got)
        )
    } else {
        let at = first / 8 * 8;
        let end = (at + 8).min(buf.len());
        let mut got = [0u8; 8];
        got[..end - at].copy_from_slice(&buf[at..end]);
        format!("torn: byte {first} of {} differs, word at {at} holds {}", buf.len(), u64::from_le_bytes(got))
    };
    BenchError::Corrupt { seq, detail }
}

/// How long to warm up and measure.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Unrecorded warm-up.
    pub warmup: Duration,
    /// Measured window.
    pub measure: Duration,
    /// Stop after this many recorded messages or round trips, whichever comes first.
    pub max_count: u64,
}

/// Per-process accounting of one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct SideStats {
    /// Messages (stream) or round trips (rtt) this side handled while counting.
    pub msgs: u64,
    /// Context switches meanwhile.
    pub usage: Usage,
    /// System calls meanwhile, if the endpoint counts them.
    pub syscalls: Option<u64>,
    /// CPU observed after pinning.
    pub cpu: Option<usize>,
}

impl SideStats {
    fn from_child(o: ChildOutcome) -> Self {
        Self { msgs: o.stats.msgs, usage: o.stats.usage, syscalls: o.stats.syscalls, cpu: o.cpu }
    }

    /// Voluntary context switches per message.
    pub fn csw_per_msg(&self) -> Option<f64> {
        (self.msgs > 0).then(|| self.usage.voluntary as f64 / self.msgs as f64)
    }

    /// System calls per message, if counted.
    pub fn syscalls_per_msg(&self) -> Option<f64> {
        let s = self.syscalls?;
        (self.msgs > 0).then(|| s as f64 / self.msgs as f64)
    }
}

/// Result of a round-trip measurement.
#[derive(Debug, Clone)]
pub struct RttResult {
    /// Round-trip times in nanoseconds.
    pub hist: Histogram<u64>,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// The pinger (this process).
    pub local: SideStats,
    /// The ponger (the child).
    pub peer: SideStats,
}

/// Result of a streaming measurement.
#[derive(Debug, Clone, Copy)]
pub struct StreamResult {
    /// Messages received inside the window.
    pub msgs: u64,
    /// Length of the window.
    pub elapsed: Duration,
    /// The receiver (this process).
    pub local: SideStats,
    /// The sender (the child).
    pub peer: SideStats,
}

impl StreamResult {
    /// Messages per second.
    pub fn msgs_per_s(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A histogram for nanosecond latencies: 1 ns .. 100 s, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).map_err(|e| BenchError::other(format!("histogram: {e:?}")))
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs a ping-pong of `size`-byte messages over `transport` between this
/// process (the pinger, already pinned to `cpus.0`) and a forked ponger on
/// `cpus.1`.
pub fn run_rtt(transport: &dyn Transport, size: usize, window: Window, cpus: CpuPair) -> Result<RttResult> {
    let prepared = transport.prepare(Mode::Rtt, size)?;
    let ((hist, elapsed, local), child) =
        run_pair(cpus, prepared, |p, ctrl| ponger(p, ctrl, size), |p, ctrl| pinger(p, ctrl, size, window))?;
    Ok(RttResult { hist, elapsed, local, peer: SideStats::from_child(child) })
}

fn ponger(prepared: Box<dyn Prepared>, ctrl: &Ctrl, size: usize) -> Result<ChildStats> {
    let mut ep = prepared.endpoint(Role::Ponger)?;
    let mut buf = vec![0u8; size];
    let start = Usage::now();
    let sys0 = ep.syscalls();
    let mut n = 0u64;
    loop {
        ep.recv(&mut buf)?;
        // Read after the message arrived: the pinger sets `stop` before its last message.
        let last = ctrl.stop.load(Ordering::Acquire) != 0;
        ep.send(&buf)?;
        n += 1;
        if last {
            break;
        }
    }
    Ok(ChildStats { msgs: n, usage: Usage::now().since(start), syscalls: sub(ep.syscalls(), sys0) })
}

fn sub(now: Option<u64>, before: Option<u64>) -> Option<u64> {
    Some(now?.saturating_sub(before?))
}

fn pinger(
    prepared: Box<dyn Prepared>,
    ctrl: &Ctrl,
    size: usize,
    w: Window,
) -> Result<(Histogram<u64>, Duration, SideStats)> {
    let mut ep = prepared.endpoint(Role::Pinger)?;
    let mut hist = new_histogram()?;
    let mut msg = vec![0u8; size];
    let mut reply = vec![0u8; size];
    let mut seq = 0u64;
    let mut round_trip = |ep: &mut Box<dyn Endpoint>, seq: u64| -> Result<Duration> {
        fill_message(&mut msg, seq);
        let t0 = Instant::now();
        ep.send(&msg)?;
        ep.recv(&mut reply)?;
        let rtt = t0.elapsed();
        check_message(&reply, seq)?;
        Ok(rtt)
    };
    let warm_end = Instant::now() + w.warmup;
    while Instant::now() < warm_end {
        round_trip(&mut ep, seq)?;
        seq += 1;
    }
    let usage0 = Usage::now();
    let sys0 = ep.syscalls();
    let start = Instant::now();
    let end = start + w.measure;
    let mut n = 0u64;
    loop {
        let rtt = round_trip(&mut ep, seq)?;
        seq += 1;
        n += 1;
        hist.saturating_record(nanos(rtt));
        if n >= w.max_count || Instant::now() >= end {
            break;
        }
    }
    let elapsed = start.elapsed();
    let local = SideStats { msgs: n, usage: Usage::now().since(usage0), syscalls: sub(ep.syscalls(), sys0), cpu: None };
    ctrl.stop.store(1, Ordering::Release);
    round_trip(&mut ep, seq)?;
    Ok((hist, elapsed, local))
}

/// Streams `size`-byte messages from a forked sender on `cpus.1` to this
/// process (the receiver, already pinned to `cpus.0`), which checks every one.
pub fn run_stream(transport: &dyn Transport, size: usize, window: Window, cpus: CpuPair) -> Result<StreamResult> {
    let prepared = transport.prepare(Mode::Stream, size)?;
    let ((msgs, elapsed, local), child) =
        run_pair(cpus, prepared, |p, ctrl| sender(p, ctrl, size), |p, ctrl| receiver(p, ctrl, size, window))?;
    Ok(StreamResult { msgs, elapsed, local, peer: SideStats::from_child(child) })
}

fn sender(prepared: Box<dyn Prepared>, ctrl: &Ctrl, size: usize) -> Result<ChildStats> {
    let mut ep = prepared.endpoint(Role::Sender)?;
    let mut scratch = vec![0u8; size];
    let start = Usage::now();
    let sys0 = ep.syscalls();
    let mut seq = 0u64;
    loop {
        // After `stop`, send exactly one more message, announced through
        // `total`/`done` first: the receiver's drain then never waits for a
        // message that will not come.
        let last = ctrl.stop.load(Ordering::Relaxed) != 0;
        if last {
            ctrl.total.store(seq + 1, Ordering::Relaxed);
            ctrl.done.store(1, Ordering::Release);
        }
        ep.send_with(&mut scratch, &mut |m| fill_message(m, seq))?;
        seq += 1;
        if last {
            break;
        }
    }
    // A batching endpoint may still hold the last messages the receiver's drain waits for.
    ep.flush()?;
    Ok(ChildStats { msgs: seq, usage: Usage::now().since(start), syscalls: sub(ep.syscalls(), sys0) })
}

fn receiver(prepared: Box<dyn Prepared>, ctrl: &Ctrl, size: usize, w: Window) -> Result<(u64, Duration, SideStats)> {
    let mut ep = prepared.endpoint(Role::Receiver)?;
    let mut scratch = vec![0u8; size];
    let mut expected = 0u64;
    let mut recv_one = |ep: &mut Box<dyn Endpoint>, expected: &mut u64| -> Result<()> {
        let seq = *expected;
        ep.recv_with(&mut scratch, &mut |m| check_message(m, seq))?;
        *expected += 1;
        Ok(())
    };
    // The warm-up starts when the sender is up.
    recv_one(&mut ep, &mut expected)?;
    let warm_end = Instant::now() + w.warmup;
    while Instant::now() < warm_end {
        recv_one(&mut ep, &mut expected)?;
    }
    // Reading the clock costs ~20 ns; for small messages look every 16.
    let clock_mask = if size >= 4096 { 0 } else { 15 };
    let usage0 = Usage::now();
    let sys0 = ep.syscalls();
    let start = Instant::now();
    let end = start + w.measure;
    let mut count = 0u64;
    let stopped_at = loop {
        recv_one(&mut ep, &mut expected)?;
        count += 1;
        if count & clock_mask == 0 {
            let now = Instant::now();
            if now >= end || count >= w.max_count {
                break now;
            }
        }
    };
    let local =
        SideStats { msgs: count, usage: Usage::now().since(usage0), syscalls: sub(ep.syscalls(), sys0), cpu: None };
    ctrl.stop.store(1, Ordering::Release);
    // Drain whatever the sender still sends, checking it too.
    while !(ctrl.done.load(Ordering::Acquire) != 0 && expected >= ctrl.total.load(Ordering::Acquire)) {
        recv_one(&mut ep, &mut expected)?;
    }
    Ok((count, stopped_at - start, local))
}
