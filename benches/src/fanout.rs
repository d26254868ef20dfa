//! Fan-out: one writer process, N reader processes, every reader receiving
//! every message, over (a) one shmlane broadcast ring and (b) N shmlane SPSC
//! rings that the writer fills one after the other.
//!
//! One set of processes per (flavour, N) runs two phases:
//!
//! 1. Throughput: the writer sends as fast as it can (warm-up, then a
//!    window). A broadcast writer never waits, so slow readers lose messages
//!    to lag; an SPSC writer waits for the slowest ring (back-pressure,
//!    nothing lost). Each reader counts the window's messages it got.
//! 2. Latency: the writer sends one message every [`FanoutTiming::pace`]
//!    (busy-waited), stamped with its `CLOCK_MONOTONIC` send time; readers
//!    record receive time − send time (one way, same clock on one host).
//!
//! Every 64-byte message is `[seq, send_ns, tag, seq x 5]`; every reader
//! checks each one is the next in order (after a broadcast `Lagged(n)`, `n`
//! further on) and not torn, and that delivered + lagged = sent at the end
//! of each phase. A failed check fails the measurement, it does not panic.
//!
//! The writer is the measuring process (already pinned by [`crate::run`]);
//! the readers are forked and all pinned to the other CPU, so on a 2-CPU
//! machine N > 1 readers share one core and time-slice.

mod record;
mod roles;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::shmlane::{BroadcastProducer, Options, Producer, WaitStrategy};
use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

pub use self::record::{FanoutRecord, fanout_json_lines, fanout_ratios, render_fanout};
use self::roles::{
    FAILED, FINISHED, FanCtrl, FanMsg, HIST_CAP, HistBuf, MAX_READERS, ReaderReport, child_reader, writer,
};
use crate::error::{BenchError, Context, Result};
use crate::harness::new_histogram;
use crate::sys::{CpuPair, Shared, pin_to};

/// The name `--transports` selects the fan-out section by.
pub const FANOUT: &str = "fanout";
/// Reader counts measured, in table order.
pub const FANOUT_READERS: [usize; 3] = [1, 2, 4];
/// Message size, bytes.
pub const FANOUT_SIZE: usize = 64;
/// Slots of the broadcast ring and of each SPSC ring (1 MiB of 64-byte messages).
pub const FANOUT_SLOTS: u64 = 16384;
/// Readers that have a core each poll this many times before parking on the
/// futex: longer than the paced writer's gap, so they do not park while
/// traffic flows.
pub const SPINS_OWN_CORE: u32 = 2000;
/// Readers that share a core poll only this many times: a reader that spins
/// keeps the others off the core until the scheduler preempts it
/// (milliseconds), so they park almost at once and take turns per message.
pub const SPINS_SHARED_CORE: u32 = 50;

/// The `SpinThenPark` spins of the readers: long while every process has a
/// CPU of its own, short once readers must share.
pub fn reader_spins(readers: usize, cpus_online: usize) -> u32 {
    if readers < cpus_online { SPINS_OWN_CORE } else { SPINS_SHARED_CORE }
}

/// Which rings carry the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutFlavor {
    /// One [`shmlane::BroadcastProducer`], N [`shmlane::BroadcastConsumer`]s.
    Broadcast,
    /// N [`shmlane::Producer`]/[`shmlane::Consumer`] pairs; the writer sends each message to every ring.
    Spsc,
}

impl FanoutFlavor {
    /// Both, in table order.
    pub const ALL: [Self; 2] = [Self::Broadcast, Self::Spsc];

    /// Name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Broadcast => "shmlane-broadcast",
            Self::Spsc => "shmlane-spsc",
        }
    }
}

/// Windows and pace of the fan-out measurements.
#[derive(Debug, Clone, Copy)]
pub struct FanoutTiming {
    /// Unrecorded full-speed sending before the throughput window.
    pub warmup: Duration,
    /// Throughput window.
    pub window: Duration,
    /// Unrecorded paced sending before the latency window.
    pub latency_warmup: Duration,
    /// Latency window.
    pub latency_window: Duration,
    /// Time between two paced sends (busy-waited).
    pub pace: Duration,
}

impl FanoutTiming {
    /// The windows of a normal or a `--quick` run.
    pub fn new(quick: bool) -> Self {
        let ms = Duration::from_millis;
        let pace = Duration::from_micros(10);
        if quick {
            Self { warmup: ms(30), window: ms(100), latency_warmup: ms(20), latency_window: ms(100), pace }
        } else {
            Self { warmup: ms(300), window: ms(1000), latency_warmup: ms(200), latency_window: ms(1000), pace }
        }
    }

    /// Expected wall time of one (flavour, N) measurement (windows, fork, drain).
    pub fn per_measurement(&self) -> Duration {
        self.warmup + self.window + self.latency_warmup + self.latency_window + Duration::from_millis(60)
    }
}

/// What one reader process saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderStats {
    /// Throughput window messages delivered.
    pub window_delivered: u64,
    /// Throughput phase: all messages delivered and lost to lag.
    pub delivered: u64,
    /// Lost to lag in the throughput phase.
    pub lagged: u64,
    /// Latency phase: messages delivered.
    pub latency_delivered: u64,
    /// Lost to lag in the latency phase (0 if the readers keep up).
    pub latency_lagged: u64,
    /// Voluntary context switches (sleeps) over the whole run.
    pub sleeps: u64,
    /// CPU after pinning.
    pub cpu: Option<usize>,
}

/// Result of one (flavour, N) measurement.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    /// Messages the writer sent in the throughput window (to every reader).
    pub window_sent: u64,
    /// Length of the throughput window.
    pub window: Duration,
    /// Messages sent in the whole throughput phase.
    pub sent: u64,
    /// One per reader.
    pub readers: Vec<ReaderStats>,
    /// One-way latency (ns) over all readers, latency window.
    pub hist: Histogram<u64>,
    /// Messages sent in the latency window.
    pub latency_sent: u64,
    /// Length of the latency window.
    pub latency_window: Duration,
    /// The writer's CPU.
    pub writer_cpu: Option<usize>,
}

impl FanoutResult {
    /// Mean over readers of the window messages delivered per second.
    pub fn per_reader_msgs_per_s(&self) -> Vec<f64> {
        let secs = self.window.as_secs_f64().max(1e-9);
        self.readers.iter().map(|r| r.window_delivered as f64 / secs).collect()
    }

    /// Fraction of the window's messages lost to lag, mean over readers.
    pub fn lost_fraction(&self) -> f64 {
        if self.window_sent == 0 || self.readers.is_empty() {
            return 0.0;
        }
        let lost: u64 = self.readers.iter().map(|r| self.window_sent.saturating_sub(r.window_delivered)).sum();
        lost as f64 / (self.window_sent as f64 * self.readers.len() as f64)
    }
}

/// Everything the writer holds: its rings (created before `fork`) and the names.
enum Rings {
    Broadcast(Box<BroadcastProducer<FanMsg>>),
    Spsc(Vec<Producer<FanMsg>>),
}

fn segment_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("shmlane-fanout-{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Runs one (flavour, N) measurement: this process writes (pinned by the
/// caller to `cpus.0`); `readers` forked processes read, pinned to `cpus.1`,
/// waiting with `SpinThenPark { spins }`.
///
/// Must be called from a single-threaded process (it forks and runs Rust
/// code in the children).
pub fn run_fanout(
    flavor: FanoutFlavor,
    readers: usize,
    spins: u32,
    t: FanoutTiming,
    cpus: CpuPair,
) -> Result<FanoutResult> {
    if !(1..=MAX_READERS).contains(&readers) {
        return Err(BenchError::other(format!("fan-out to {readers} readers (1..={MAX_READERS})")));
    }
    if new_histogram()?.distinct_values() > HIST_CAP {
        return Err(BenchError::other("latency histogram wider than its shared buffer"));
    }
    let ctrl = Shared::<FanCtrl>::new()?;
    let hists = (0..readers).map(|_| Shared::<HistBuf>::new()).collect::<Result<Vec<_>>>()?;
    let opts = Options::new().capacity(FANOUT_SLOTS).wait(WaitStrategy::BusySpin);
    let create = |e: ::shmlane::OpenError, name: &str| BenchError::other(format!("creating {name}: {e}"));
    let (names, mut rings) = match flavor {
        FanoutFlavor::Broadcast => {
            let name = segment_name("bcast");
            let tx = BroadcastProducer::create(&name, opts).map_err(|e| create(e, &name))?;
            (vec![name], Rings::Broadcast(Box::new(tx)))
        }
        FanoutFlavor::Spsc => {
            let names: Vec<String> = (0..readers).map(|i| segment_name(&format!("spsc{i}"))).collect();
            let txs = names
                .iter()
                .map(|n| Producer::create(n, opts.clone()).map_err(|e| create(e, n)))
                .collect::<Result<Vec<_>>>()?;
            (names, Rings::Spsc(txs))
        }
    };
    let parent = getpid();
    let mut pids = Vec::with_capacity(readers);
    for (i, hist) in hists.iter().enumerate() {
        // SAFETY: the bench is single-threaded (documented above), so no
        // lock is held by a thread missing in the child; the child leaves
        // through `_exit` and never drops the writer's handles it inherited.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let code = child_main(parent, cpus.map(|c| c.1), &ctrl.readers[i], || {
                    child_reader(flavor, &names, i, spins, &ctrl, hist)
                });
                // SAFETY: ends the child at once, without atexit handlers or
                // flushing stdio buffers inherited from the parent.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => pids.push(child),
            Err(e) => {
                reap(&pids, true);
                return Err(BenchError::Sys { context: "fork".into(), source: e });
            }
        }
    }
    let written = match &mut rings {
        Rings::Broadcast(tx) => writer(&mut **tx, &ctrl, readers, &names, t),
        Rings::Spsc(txs) => writer(txs, &ctrl, readers, &names, t),
    };
    let statuses = reap(&pids, written.is_err());
    let reader_err = (0..readers).find_map(|i| {
        let r = &ctrl.readers[i];
        // Acquire: pairs with the reader's Release store in `fail`.
        (r.state.load(Ordering::Acquire) == FAILED).then(|| format!("reader {i}: {}", r.error()))
    });
    let w = match (written, reader_err) {
        (Ok(w), None) => w,
        (Ok(_), Some(e)) => return Err(BenchError::Peer(e)),
        (Err(e), Some(r)) => return Err(BenchError::Other(format!("{e} ({r})"))),
        (Err(e), None) => return Err(e),
    };
    let mut hist = new_histogram()?;
    let mut stats = Vec::with_capacity(readers);
    for (i, status) in statuses.into_iter().enumerate() {
        let r = &ctrl.readers[i];
        // Acquire: pairs with the reader's Release store of FINISHED.
        if !matches!(status, Ok(WaitStatus::Exited(_, 0))) || r.state.load(Ordering::Acquire) != FINISHED {
            return Err(BenchError::Peer(format!("reader {i} ended with {status:?}")));
        }
        let s = ReaderStats {
            window_delivered: r.window_delivered.load(Ordering::Relaxed),
            delivered: r.delivered.load(Ordering::Relaxed),
            lagged: r.lagged.load(Ordering::Relaxed),
            latency_delivered: r.latency_delivered.load(Ordering::Relaxed),
            latency_lagged: r.latency_lagged.load(Ordering::Relaxed),
            sleeps: r.sleeps.load(Ordering::Relaxed),
            cpu: r.cpu_plus_one.load(Ordering::Relaxed).checked_sub(1).and_then(|c| usize::try_from(c).ok()),
        };
        if s.delivered + s.lagged != w.sent {
            return Err(BenchError::other(format!(
                "reader {i}: delivered {} + lagged {} != sent {}",
                s.delivered, s.lagged, w.sent
            )));
        }
        stats.push(s);
        let len = usize::try_from(hists[i].len.load(Ordering::Relaxed)).unwrap_or(usize::MAX).min(HIST_CAP);
        for pair in &hists[i].pairs[..len] {
            hist.saturating_record_n(pair[0].load(Ordering::Relaxed), pair[1].load(Ordering::Relaxed));
        }
    }
    Ok(FanoutResult {
        window_sent: w.window_sent,
        window: w.window,
        sent: w.sent,
        readers: stats,
        hist,
        latency_sent: w.latency_sent,
        latency_window: w.latency_window,
        writer_cpu: cpus.map(|c| c.0),
    })
}

/// Waits for every child (killing them first if `kill_first`).
fn reap(pids: &[Pid], kill_first: bool) -> Vec<Result<WaitStatus>> {
    if kill_first {
        for &pid in pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    pids.iter()
        .map(|&pid| {
            loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => {}
                    other => break other.context("waitpid"),
                }
            }
        })
        .collect()
}

fn child_main(parent: Pid, cpu: Option<usize>, me: &ReaderReport, role: impl FnOnce() -> Result<()>) -> i32 {
    if set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != parent {
        return 70;
    }
    let run = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        if let Some(cpu) = cpu {
            let got = pin_to(cpu)?;
            me.cpu_plus_one.store(got as u64 + 1, Ordering::Relaxed);
        }
        role()
    }));
    match run {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            me.fail(&e.to_string());
            1
        }
        Err(panic) => {
            me.fail(&format!("panic: {}", crate::process::panic_message(panic.as_ref())));
            101
        }
    }
}
