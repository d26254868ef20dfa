//! The whole comparison: plan the measurements to fit a time budget, run
//! them with the limits measured around each, collect [`Record`]s.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use nix::sched::CpuSet;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::alarm;

use crate::error::{BenchError, Context, Result};
use crate::fanout::{
    FANOUT, FANOUT_READERS, FanoutFlavor, FanoutRecord, FanoutTiming, fanout_ratios, reader_spins, run_fanout,
};
use crate::harness::{Kind, Mode, Transport, Window, run_rtt, run_stream};
use crate::limits::{C2cWindow, core_to_core, memcpy};
use crate::report::Record;
use crate::sys::{CpuPair, affinity, choose_cpus, pin_to, set_affinity};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Short windows: the whole run takes seconds (smoke test, CI).
    pub quick: bool,
    /// Measured window per measurement; `None` fits the plan to the time budget.
    pub duration: Option<Duration>,
    /// Only these transports (names); `None` runs all. The limits
    /// (`core-to-core`, `memcpy`) always run: every ratio needs them.
    /// `fanout` selects the fan-out section.
    pub only: Option<Vec<String>>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self { sizes: vec![64, 1024, 65536], quick: false, duration: None, only: None, progress: true }
    }
}

/// Timing constants of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unrecorded warm-up before every window.
    pub warmup: Duration,
    /// Longest window (used when the plan fits the budget).
    pub max_window: Duration,
    /// Shortest window the budget may shrink to.
    pub min_window: Duration,
    /// Target for the whole run.
    pub budget: Duration,
    /// The core-to-core probe run before and after each measurement.
    pub probe: C2cWindow,
    /// `memcpy`: runs per size and length of each.
    pub memcpy_runs: usize,
    /// Length of one `memcpy` run.
    pub memcpy_run: Duration,
    /// Estimated cost of a measurement beyond warm-up and window (fork,
    /// connect, drain, two probes).
    pub overhead: Duration,
}

impl Timing {
    /// The constants for a normal or a `--quick` run.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(40),
                max_window: Duration::from_millis(100),
                min_window: Duration::from_millis(30),
                budget: Duration::from_secs(14),
                probe: C2cWindow { warmup_count: 500, count: 20_000, max_time: Duration::from_millis(15) },
                memcpy_runs: 5,
                memcpy_run: Duration::from_millis(4),
                // Measured: ~95 ms per measurement (fork, attach, drain, two probes).
                overhead: Duration::from_millis(100),
            }
        } else {
            Self {
                warmup: Duration::from_millis(300),
                max_window: Duration::from_millis(1500),
                min_window: Duration::from_millis(250),
                budget: Duration::from_secs(100),
                probe: C2cWindow { warmup_count: 2_000, count: 20_000, max_time: Duration::from_millis(50) },
                memcpy_runs: 9,
                memcpy_run: Duration::from_millis(20),
                overhead: Duration::from_millis(80),
            }
        }
    }
}

/// One transport measurement.
#[derive(Clone, Copy)]
pub struct PlanItem<'a> {
    /// What is measured.
    pub transport: &'a dyn Transport,
    /// Round trip or stream.
    pub mode: Mode,
    /// Message size in bytes.
    pub size: usize,
}

impl std::fmt::Debug for PlanItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.transport.name(), self.mode.as_str(), self.size)
    }
}

/// Everything a run will do, and how long that should take.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Transport measurements, in order.
    pub items: Vec<PlanItem<'a>>,
    /// Sizes (for `memcpy`).
    pub sizes: Vec<usize>,
    /// Window of every measurement.
    pub window: Window,
    /// Timing constants.
    pub timing: Timing,
    /// Expected duration of the whole run.
    pub estimate: Duration,
    /// Notes of the selected transports ([`Transport::note`]) and the
    /// transport x size pairs left out because the transport cannot carry
    /// that size ([`Transport::unsupported`]).
    pub notes: Vec<String>,
    /// The fan-out section's windows, if it runs.
    pub fanout: Option<FanoutTiming>,
}

/// Message sizes above this are refused (a pipe message of 16 MiB already
/// takes hundreds of system calls).
pub const MAX_SIZE: usize = 16 << 20;

/// Selects and orders the measurements and sizes the window to the budget.
pub fn plan<'a>(cfg: &BenchConfig, transports: &'a [Box<dyn Transport>]) -> Result<Plan<'a>> {
    if cfg.sizes.is_empty() {
        return Err(BenchError::other("no message sizes given"));
    }
    if let Some(&bad) = cfg.sizes.iter().find(|&&s| s == 0 || s > MAX_SIZE) {
        return Err(BenchError::other(format!("message size {bad} is out of range 1..={MAX_SIZE}")));
    }
    let mut sizes = cfg.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if let Some(only) = &cfg.only {
        let known: Vec<&str> = transports.iter().map(|t| t.name()).collect();
        if let Some(bad) = only.iter().find(|n| !known.contains(&n.as_str()) && !is_limit_name(n) && *n != FANOUT) {
            return Err(BenchError::other(format!("unknown transport {bad:?}; known: {}, {FANOUT}", known.join(", "))));
        }
    }
    let selected: Vec<&'a dyn Transport> = transports
        .iter()
        .filter(|t| cfg.only.as_ref().is_none_or(|only| only.iter().any(|n| n == t.name())))
        .map(|t| &**t)
        .collect();
    let mut notes: Vec<String> = selected.iter().filter_map(|t| Some(format!("{}: {}", t.name(), t.note()?))).collect();
    for t in &selected {
        for &size in &sizes {
            if let Some(why) = t.unsupported(size) {
                notes.push(format!("{} {size} B skipped: {why}", t.name()));
            }
        }
    }
    let items: Vec<PlanItem<'a>> = selected
        .iter()
        .flat_map(|&t| {
            let sizes = &sizes;
            t.modes().iter().flat_map(move |&mode| {
                sizes.iter().filter(move |&&size| t.unsupported(size).is_none()).map(move |&size| PlanItem {
                    transport: t,
                    mode,
                    size,
                })
            })
        })
        .collect();
    let timing = Timing::new(cfg.quick);
    let fixed = timing.warmup + timing.max_window + timing.memcpy_run * (timing.memcpy_runs * sizes.len()) as u32;
    let per_item_fixed = timing.warmup + timing.overhead;
    let measure = match cfg.duration {
        Some(d) => d,
        None if items.is_empty() => timing.max_window,
        None => {
            let share = timing.budget.saturating_sub(fixed) / items.len() as u32;
            share.saturating_sub(per_item_fixed).clamp(timing.min_window, timing.max_window)
        }
    };
    let fanout =
        cfg.only.as_ref().is_none_or(|only| only.iter().any(|n| n == FANOUT)).then(|| FanoutTiming::new(cfg.quick));
    let fanout_time = fanout.map_or(Duration::ZERO, |f| {
        (f.per_measurement() + timing.probe.max_time * 2) * (FANOUT_READERS.len() * FanoutFlavor::ALL.len()) as u32
    });
    let estimate = fixed + (per_item_fixed + measure) * items.len() as u32 + fanout_time;
    let window = Window { warmup: timing.warmup, measure, max_count: 50_000_000 };
    Ok(Plan { items, sizes, window, timing, estimate, notes, fanout })
}

fn is_limit_name(name: &str) -> bool {
    matches!(name, "core-to-core" | "memcpy")
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct Outcome {
    /// One record per transport x mode x size, plus the limits.
    pub records: Vec<Record>,
    /// One record per fan-out flavour x readers (empty if not selected).
    pub fanout: Vec<FanoutRecord>,
    /// Facts the reader must know (pinning, plan, failures).
    pub notes: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether any measurement failed.
    pub fn failed(&self) -> bool {
        self.records.iter().any(|r| r.error.is_some()) || self.fanout.iter().any(|r| r.error.is_some())
    }
}

/// Runs a plan. Pins this process to the first allowed CPU for the duration
/// (restoring its affinity afterwards) and forks a pinned peer per
/// measurement.
///
/// Must be called from a single-threaded process (it forks and runs Rust
/// code in the child). A measurement that hangs aborts the process after a
/// generous timeout (`SIGALRM`), so a broken transport cannot wedge a run.
pub fn run(plan: &Plan<'_>, progress: bool) -> Result<Outcome> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let saved_affinity = affinity()?;
    let cpus_online = (0..CpuSet::count()).filter(|&c| saved_affinity.is_set(c).unwrap_or(false)).count();
    let mut cpus = choose_cpus()?;
    match cpus {
        Some((a, b)) => match pin_to(a) {
            Ok(_) => {
                notes.push(format!("pinned: measuring process on CPU {a}, peer on CPU {b} (checked with sched_getcpu)"))
            }
            Err(e) => {
                notes.push(format!("NOT pinned: {e}"));
                cpus = None;
            }
        },
        None => notes.push("fewer than 2 CPUs available: processes are NOT pinned; numbers are not comparable".into()),
    }
    notes.push(format!(
        "plan: {} measurements, warm-up {} ms + window {} ms each, core-to-core probe before and after each; \
         estimated {:.0} s",
        plan.items.len(),
        plan.window.warmup.as_millis(),
        plan.window.measure.as_millis(),
        plan.estimate.as_secs_f64()
    ));
    notes.extend(plan.notes.iter().cloned());
    let guard = SignalGuard::install()?;
    let result = run_inner(plan, cpus, cpus_online, progress);
    drop(guard);
    set_affinity(&saved_affinity)?;
    let (records, fanout) = result?;
    let failures =
        records.iter().filter(|r| r.error.is_some()).count() + fanout.iter().filter(|r| r.error.is_some()).count();
    if failures > 0 {
        notes.push(format!("{failures} measurement(s) FAILED (see the notes column)"));
    }
    Ok(Outcome { records, fanout, notes, elapsed: started.elapsed() })
}

fn run_inner(
    plan: &Plan<'_>,
    cpus: CpuPair,
    cpus_online: usize,
    progress: bool,
) -> Result<(Vec<Record>, Vec<FanoutRecord>)> {
    let fanout_steps = if plan.fanout.is_some() { FANOUT_READERS.len() * FanoutFlavor::ALL.len() } else { 0 };
    let steps = 1 + plan.sizes.len() + plan.items.len() + fanout_steps;
    let bar = if progress { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let timeout = |w: Duration| (w + plan.window.warmup).as_secs() as u32 + 30;
    let mut records = Vec::with_capacity(steps);

    bar.set_message("core-to-core rtt 64");
    let mut rec = Record::new("core-to-core", Kind::Limit, Mode::Rtt, 64);
    let window = C2cWindow {
        warmup_count: plan.timing.probe.warmup_count * 10,
        count: plan.window.max_count,
        max_time: plan.window.measure,
    };
    alarm::set(timeout(plan.window.measure));
    match core_to_core(cpus, window) {
        Ok(h) => {
            rec.set_latency(&h, None);
            rec.cpus = cpus.map(|(a, b)| [a, b]);
        }
        Err(e) => rec.error = Some(e.to_string()),
    }
    records.push(rec);
    bar.inc(1);

    for &size in &plan.sizes {
        bar.set_message(format!("memcpy {size}"));
        let mut rec = Record::new("memcpy", Kind::Limit, Mode::Stream, size);
        match memcpy(size, plan.timing.memcpy_runs, plan.timing.memcpy_run) {
            Ok(m) => rec.set_memcpy(m),
            Err(e) => rec.error = Some(e.to_string()),
        }
        records.push(rec);
        bar.inc(1);
    }

    for item in &plan.items {
        bar.set_message(format!("{:?}", item));
        let t = item.transport;
        let mut rec = Record::new(t.name(), t.kind(), item.mode, item.size);
        alarm::set(timeout(plan.window.measure));
        rec.c2c_before_ns = probe(cpus, plan.timing.probe);
        let peer_cpu = match item.mode {
            Mode::Rtt => run_rtt(t, item.size, plan.window, cpus).map(|r| {
                rec.set_rtt(&r);
                r.peer.cpu
            }),
            Mode::Stream => run_stream(t, item.size, plan.window, cpus).map(|r| {
                rec.set_stream(&r, item.size);
                r.peer.cpu
            }),
        };
        match peer_cpu {
            // The peer's CPU as it observed it after pinning; ours was checked at the start.
            Ok(peer) => rec.cpus = cpus.zip(peer).map(|((local, _), peer)| [local, peer]),
            Err(e) => rec.error = Some(e.to_string()),
        }
        rec.c2c_after_ns = probe(cpus, plan.timing.probe);
        if let Some(err) = &rec.error {
            bar.println(format!("FAILED {item:?}: {err}"));
        }
        records.push(rec);
        bar.inc(1);
    }

    // Fan-out, grouped by readers so that each broadcast row runs next to
    // the SPSC row it is compared with.
    let mut fanout = Vec::with_capacity(fanout_steps);
    for t in plan.fanout.iter() {
        for &readers in &FANOUT_READERS {
            for flavor in FanoutFlavor::ALL {
                bar.set_message(format!("fanout {} x{readers}", flavor.name()));
                let spins = reader_spins(readers, cpus_online);
                let mut rec = FanoutRecord::new(flavor, readers, spins, t, cpus_online);
                alarm::set(timeout(t.per_measurement()));
                rec.c2c_before_ns = probe(cpus, plan.timing.probe);
                match run_fanout(flavor, readers, spins, *t, cpus) {
                    Ok(r) => rec.set_result(&r),
                    Err(e) => {
                        bar.println(format!("FAILED fanout {} x{readers}: {e}", flavor.name()));
                        rec.error = Some(e.to_string());
                    }
                }
                rec.c2c_after_ns = probe(cpus, plan.timing.probe);
                fanout.push(rec);
                bar.inc(1);
            }
        }
    }
    fanout_ratios(&mut fanout);
    alarm::cancel();
    bar.finish_and_clear();
    Ok((records, fanout))
}

/// p50 of a short core-to-core run, or `None` if it failed (the measurement
/// it brackets still counts; the ratio is then missing).
fn probe(cpus: CpuPair, w: C2cWindow) -> Option<u64> {
    core_to_core(cpus, w).ok().map(|h| h.value_at_quantile(0.5))
}

/// Ignores `SIGPIPE` (a dead peer becomes `EPIPE`) and turns `SIGALRM` into a
/// clean abort, restoring both on drop.
struct SignalGuard {
    pipe: SigAction,
    alarm: SigAction,
}

extern "C" fn on_alarm(_: libc::c_int) {
    const MSG: &[u8] = b"\nshmlane bench: a measurement did not finish in time (hung transport?), aborting\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static
    // buffer of MSG.len() bytes. The forked peer dies with us (PDEATHSIG).
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(3);
    }
}

impl SignalGuard {
    fn install() -> Result<Self> {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let abort = SigAction::new(SigHandler::Handler(on_alarm), SaFlags::empty(), SigSet::empty());
        // SAFETY: ignoring SIGPIPE is always sound; `on_alarm` only calls
        // async-signal-safe functions.
        let pipe = unsafe { sigaction(Signal::SIGPIPE, &ignore) }.context("sigaction(SIGPIPE)")?;
        // SAFETY: as above.
        let alarm = unsafe { sigaction(Signal::SIGALRM, &abort) }.context("sigaction(SIGALRM)")?;
        Ok(Self { pipe, alarm })
    }
}

impl std::fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalGuard")
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        alarm::cancel();
        // SAFETY: restores the dispositions that were in place before `install`.
        unsafe {
            let _ = sigaction(Signal::SIGPIPE, &self.pipe);
            let _ = sigaction(Signal::SIGALRM, &self.alarm);
        }
    }
}
