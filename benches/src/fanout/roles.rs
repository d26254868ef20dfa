//! The two roles of a fan-out measurement and what they share: the
//! writer (this process) and the readers (forked), the control block they
//! synchronise through, the message format and its checks.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::shmlane::{BroadcastConsumer, BroadcastProducer, Consumer, Options, Producer, RecvError, WaitStrategy};
use nix::time::{ClockId, clock_gettime};

use super::{FanoutFlavor, FanoutTiming};
use crate::error::{BenchError, Result};
use crate::harness::new_histogram;
use crate::shmlane::Msg;
use crate::sys::{Usage, ZeroShared};

pub(super) const MAX_READERS: usize = 4;
pub(super) const ERR_CAP: usize = 512;
/// How long the writer waits for the readers to attach or to drain a phase.
pub(super) const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct values a reader's latency histogram can hold, at most (a
/// [`new_histogram`] has fewer; checked at run time).
pub(super) const HIST_CAP: usize = 32 * 1024;

pub(super) type FanMsg = Msg<8>;

/// Message tags (word 2): what the writer was doing when it sent it.
pub(super) const TAG_WARM: u64 = 0;
pub(super) const TAG_WINDOW: u64 = 1;
pub(super) const TAG_END: u64 = 2;
pub(super) const TAG_LAT_WARM: u64 = 3;
pub(super) const TAG_LAT: u64 = 4;

/// Reader states in [`ReaderReport::state`] (0: starting, as zeroed).
pub(super) const ATTACHED: u64 = 1;
pub(super) const THROUGHPUT_DONE: u64 = 2;
pub(super) const FINISHED: u64 = 3;
pub(super) const FAILED: u64 = 9;

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the host.
pub(super) fn now_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux; 0 would only spoil one sample.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| (t.tv_sec() as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec() as u64))
}

pub(super) fn stamp(seq: u64, tag: u64, sent_ns: u64) -> FanMsg {
    Msg([seq, sent_ns, tag, seq, seq, seq, seq, seq])
}

/// What one reader reports; a line of its own, written only by that reader.
#[derive(Debug)]
#[repr(C, align(128))]
pub(super) struct ReaderReport {
    pub(super) state: AtomicU64,
    pub(super) cpu_plus_one: AtomicU64,
    pub(super) window_delivered: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) lagged: AtomicU64,
    pub(super) latency_delivered: AtomicU64,
    pub(super) latency_lagged: AtomicU64,
    pub(super) sleeps: AtomicU64,
    pub(super) err_len: AtomicU64,
    pub(super) err: [AtomicU8; ERR_CAP],
}

/// The writer's announcements, on a line the readers only read (an L1 hit
/// while a phase runs: it is written once at the end of each).
#[derive(Debug)]
#[repr(C, align(128))]
pub(super) struct Announce {
    /// Messages of the throughput phase, set before its last message is sent.
    pub(super) total_a: AtomicU64,
    /// Messages sent in all once the latency phase ends, set before its last message.
    pub(super) total_b: AtomicU64,
}

#[derive(Debug)]
#[repr(C)]
pub(super) struct FanCtrl {
    pub(super) announce: Announce,
    pub(super) readers: [ReaderReport; MAX_READERS],
}

// SAFETY: atomics only: all-zero is valid, no `Drop`, alignment 128.
unsafe impl ZeroShared for FanCtrl {}

/// One reader's latency histogram, as (value, count) pairs.
#[derive(Debug)]
#[repr(C, align(128))]
pub(super) struct HistBuf {
    pub(super) len: AtomicU64,
    pub(super) pairs: [[AtomicU64; 2]; HIST_CAP],
}

// SAFETY: atomics only: all-zero is valid, no `Drop`, alignment 128.
unsafe impl ZeroShared for HistBuf {}

impl ReaderReport {
    pub(super) fn fail(&self, msg: &str) {
        let bytes = &msg.as_bytes()[..msg.len().min(ERR_CAP)];
        for (slot, &b) in self.err.iter().zip(bytes) {
            slot.store(b, Ordering::Relaxed);
        }
        self.err_len.store(bytes.len() as u64, Ordering::Relaxed);
        // Release: the writer's Acquire load of `state` sees the message.
        self.state.store(FAILED, Ordering::Release);
    }

    pub(super) fn error(&self) -> String {
        let len = usize::try_from(self.err_len.load(Ordering::Relaxed)).unwrap_or(0).min(ERR_CAP);
        let bytes: Vec<u8> = self.err[..len].iter().map(|b| b.load(Ordering::Relaxed)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// What a reader takes off its ring.
pub(super) enum Got {
    Msg(FanMsg),
    Lagged(u64),
}

pub(super) trait Source {
    fn next(&mut self) -> Result<Got>;
}

impl Source for BroadcastConsumer<FanMsg> {
    #[inline]
    fn next(&mut self) -> Result<Got> {
        match self.recv() {
            Ok(m) => Ok(Got::Msg(m)),
            Err(RecvError::Lagged(n)) => Ok(Got::Lagged(n)),
            Err(e) => Err(BenchError::other(format!("broadcast recv: {e}"))),
        }
    }
}

impl Source for Consumer<FanMsg> {
    #[inline]
    fn next(&mut self) -> Result<Got> {
        self.recv().map(Got::Msg).map_err(|e| BenchError::other(format!("spsc recv: {e}")))
    }
}

pub(super) trait Sink {
    fn put(&mut self, m: FanMsg) -> Result<()>;
}

impl Sink for BroadcastProducer<FanMsg> {
    #[inline]
    fn put(&mut self, m: FanMsg) -> Result<()> {
        self.send(m);
        Ok(())
    }
}

impl Sink for Vec<Producer<FanMsg>> {
    #[inline]
    fn put(&mut self, m: FanMsg) -> Result<()> {
        for p in self.iter_mut() {
            p.send(m).map_err(|e| BenchError::other(format!("spsc send: {e}")))?;
        }
        Ok(())
    }
}

/// Counts of one phase of one reader.
#[derive(Default)]
pub(super) struct Phase {
    pub(super) delivered: u64,
    pub(super) lagged: u64,
    pub(super) window: u64,
}

/// Reads until `expected` reaches the total the writer announces, checking
/// every message; `on_msg` sees each one.
pub(super) fn read_phase(
    src: &mut impl Source,
    total: &AtomicU64,
    expected: &mut u64,
    lag_allowed: bool,
    mut on_msg: impl FnMut(&FanMsg),
) -> Result<Phase> {
    let mut p = Phase::default();
    loop {
        // Acquire: pairs with the writer's Release store, made before it
        // sent the phase's last message; once we got that message we see it.
        let t = total.load(Ordering::Acquire);
        if t != 0 && *expected >= t {
            if *expected != t {
                return Err(BenchError::other(format!("reader accounted for {expected} of {t} messages sent")));
            }
            return Ok(p);
        }
        match src.next()? {
            Got::Msg(m) => {
                let w = &m.0;
                if w[0] != *expected {
                    return Err(BenchError::Corrupt {
                        seq: *expected,
                        detail: format!("out of order: got sequence {} (lost, duplicated or reordered)", w[0]),
                    });
                }
                if w[3..].iter().any(|&x| x != w[0]) {
                    return Err(BenchError::Corrupt { seq: w[0], detail: format!("torn: {w:?}") });
                }
                p.delivered += 1;
                p.window += u64::from(w[2] == TAG_WINDOW);
                on_msg(&m);
                *expected += 1;
            }
            Got::Lagged(n) if lag_allowed => {
                p.lagged += n;
                *expected += n;
            }
            Got::Lagged(n) => return Err(BenchError::other(format!("an SPSC ring reported {n} messages lagged"))),
        }
    }
}

pub(super) fn reader(
    mut src: impl Source,
    ctrl: &FanCtrl,
    me: &ReaderReport,
    hist_out: &HistBuf,
    lag: bool,
) -> Result<()> {
    let usage0 = Usage::now();
    // Release: the writer's Acquire load sees us attached.
    me.state.store(ATTACHED, Ordering::Release);
    let mut expected = 0u64;
    let a = read_phase(&mut src, &ctrl.announce.total_a, &mut expected, lag, |_| {})?;
    me.window_delivered.store(a.window, Ordering::Relaxed);
    me.delivered.store(a.delivered, Ordering::Relaxed);
    me.lagged.store(a.lagged, Ordering::Relaxed);
    // Release: publishes the counts above to the writer.
    me.state.store(THROUGHPUT_DONE, Ordering::Release);

    let mut hist = new_histogram()?;
    let b = read_phase(&mut src, &ctrl.announce.total_b, &mut expected, lag, |m| {
        if m.0[2] == TAG_LAT {
            hist.saturating_record(now_ns().saturating_sub(m.0[1]));
        }
    })?;
    let mut n = 0;
    for v in hist.iter_recorded() {
        let pair = hist_out.pairs.get(n).ok_or_else(|| BenchError::other("latency histogram too wide"))?;
        pair[0].store(v.value_iterated_to(), Ordering::Relaxed);
        pair[1].store(v.count_at_value(), Ordering::Relaxed);
        n += 1;
    }
    hist_out.len.store(n as u64, Ordering::Relaxed);
    me.latency_delivered.store(b.delivered, Ordering::Relaxed);
    me.latency_lagged.store(b.lagged, Ordering::Relaxed);
    me.sleeps.store(Usage::now().since(usage0).voluntary, Ordering::Relaxed);
    drop(src);
    // Release: publishes the histogram and counts above.
    me.state.store(FINISHED, Ordering::Release);
    Ok(())
}

pub(super) fn reader_opts(spins: u32) -> Options {
    Options::new().wait(WaitStrategy::SpinThenPark { spins })
}

pub(super) fn child_reader(
    flavor: FanoutFlavor,
    names: &[String],
    i: usize,
    spins: u32,
    ctrl: &FanCtrl,
    hist: &HistBuf,
) -> Result<()> {
    let me = &ctrl.readers[i];
    match flavor {
        FanoutFlavor::Broadcast => {
            let name = &names[0];
            let rx = BroadcastConsumer::<FanMsg>::open(name, reader_opts(spins))
                .map_err(|e| BenchError::other(format!("opening {name}: {e}")))?;
            reader(rx, ctrl, me, hist, true)
        }
        FanoutFlavor::Spsc => {
            let name = &names[i];
            let rx = Consumer::<FanMsg>::open(name, reader_opts(spins))
                .map_err(|e| BenchError::other(format!("opening {name}: {e}")))?;
            reader(rx, ctrl, me, hist, false)
        }
    }
}

/// What the writer measured.
pub(super) struct Written {
    pub(super) window_sent: u64,
    pub(super) window: Duration,
    pub(super) sent: u64,
    pub(super) latency_sent: u64,
    pub(super) latency_window: Duration,
}

/// Waits until every reader reached `state` (or one failed).
pub(super) fn wait_readers(ctrl: &FanCtrl, readers: usize, state: u64) -> Result<()> {
    let start = Instant::now();
    loop {
        let mut all = true;
        for (i, r) in ctrl.readers[..readers].iter().enumerate() {
            // Acquire: pairs with the reader's Release stores of its state.
            match r.state.load(Ordering::Acquire) {
                FAILED => return Err(BenchError::Peer(format!("reader {i}: {}", r.error()))),
                s if s < state => all = false,
                _ => {}
            }
        }
        if all {
            return Ok(());
        }
        if start.elapsed() > SYNC_TIMEOUT {
            return Err(BenchError::other(format!("readers did not reach state {state} within {SYNC_TIMEOUT:?}")));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The writer's sending side: its rings and the next sequence number.
pub(super) struct Out<'a, S> {
    pub(super) sink: &'a mut S,
    pub(super) seq: u64,
}

impl<S: Sink> Out<'_, S> {
    #[inline]
    fn send(&mut self, tag: u64, sent_ns: u64) -> Result<()> {
        self.sink.put(stamp(self.seq, tag, sent_ns))?;
        self.seq += 1;
        Ok(())
    }

    /// Sends as fast as the rings take it until `until`; the clock is read
    /// every 16 messages. Returns when it stopped.
    fn flood(&mut self, until: Instant, tag: u64) -> Result<Instant> {
        loop {
            for _ in 0..16 {
                self.send(tag, 0)?;
            }
            let now = Instant::now();
            if now >= until {
                return Ok(now);
            }
        }
    }

    /// Sends one message every `pace_ns` (busy-waited, stamped just before
    /// sending) until `until`; returns how many.
    fn paced(&mut self, pace_ns: u64, until: Instant, tag: u64) -> Result<u64> {
        let mut n = 0u64;
        let mut next = now_ns();
        while Instant::now() < until {
            let mut now = now_ns();
            while now < next {
                std::hint::spin_loop();
                now = now_ns();
            }
            self.send(tag, now)?;
            next = now + pace_ns;
            n += 1;
        }
        Ok(n)
    }

    /// Announces the total through `total`, then sends the message that
    /// completes it: a reader blocked on the ring is woken by that message
    /// and then sees the total. Returns the total.
    fn finish_phase(&mut self, total: &AtomicU64) -> Result<u64> {
        // Release: pairs with the readers' Acquire load in `read_phase`; the
        // message sent next carries it to them.
        total.store(self.seq + 1, Ordering::Release);
        self.send(TAG_END, 0)?;
        Ok(self.seq)
    }
}

pub(super) fn writer(
    sink: &mut impl Sink,
    ctrl: &FanCtrl,
    readers: usize,
    names: &[String],
    t: FanoutTiming,
) -> Result<Written> {
    wait_readers(ctrl, readers, ATTACHED)?;
    // Everyone is attached: the names are not needed any more, and nothing
    // is left in /dev/shm whatever happens next.
    for name in names {
        let _ = ::shmlane::remove(name, None);
    }
    let mut out = Out { sink, seq: 0 };

    out.flood(Instant::now() + t.warmup, TAG_WARM)?;
    let (s0, t0) = (out.seq, Instant::now());
    let t1 = out.flood(t0 + t.window, TAG_WINDOW)?;
    let s1 = out.seq;
    let sent = out.finish_phase(&ctrl.announce.total_a)?;
    wait_readers(ctrl, readers, THROUGHPUT_DONE)?;

    let pace = crate::harness::nanos(t.pace);
    out.paced(pace, Instant::now() + t.latency_warmup, TAG_LAT_WARM)?;
    let l0 = Instant::now();
    let latency_sent = out.paced(pace, l0 + t.latency_window, TAG_LAT)?;
    let latency_window = l0.elapsed();
    out.finish_phase(&ctrl.announce.total_b)?;
    wait_readers(ctrl, readers, FINISHED)?;
    Ok(Written { window_sent: s1 - s0, window: t1 - t0, sent, latency_sent, latency_window })
}
