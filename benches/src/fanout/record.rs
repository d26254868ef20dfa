//! Fan-out records: the JSON lines and the table section.

use std::fmt::Write as _;

use serde::Serialize;

use super::{FANOUT_SIZE, FANOUT_SLOTS, FanoutFlavor, FanoutResult, FanoutTiming, SPINS_OWN_CORE, SPINS_SHARED_CORE};
use crate::report::{C2C_MOVED_FACTOR, Table, fmt_ns, fmt_rate, fmt_ratio, ratio};

/// One fan-out measurement (flavour x readers): a JSON line and a row of
/// the fan-out section. Shares the first eight fields of [`Record`](crate::report::Record)
/// (`mode` is `"fanout"`, the figures are per reader) and says what it is in
/// `kind: "fanout"`.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutRecord {
    /// `"shmlane-broadcast"` or `"shmlane-spsc"` (N rings).
    pub transport: String,
    /// Always `"fanout"`.
    pub mode: &'static str,
    /// Message size in bytes.
    pub size: usize,
    /// One-way latency median over all readers, ns (paced writer).
    pub p50_ns: Option<u64>,
    /// One-way latency 99th percentile, ns.
    pub p99_ns: Option<u64>,
    /// One-way latency 99.9th percentile, ns.
    pub p999_ns: Option<u64>,
    /// Throughput window: messages each reader got per second, mean over readers.
    pub msgs_per_s: Option<f64>,
    /// `msgs_per_s` x size.
    pub bytes_per_s: Option<f64>,
    /// Always `"fanout"`.
    pub kind: &'static str,
    /// Reader processes.
    pub readers: usize,
    /// CPUs this run may use.
    pub cpus_online: usize,
    /// More processes (writer + readers) than CPUs.
    pub oversubscribed: bool,
    /// Each reader's messages per second (throughput window).
    pub reader_msgs_per_s: Vec<f64>,
    /// Messages the writer sent per second in the window (each to every reader).
    pub writer_msgs_per_s: Option<f64>,
    /// Fraction of the window's messages lost to lag, mean over readers (0 for SPSC).
    pub lost_fraction: Option<f64>,
    /// Broadcast rows: `msgs_per_s` / `msgs_per_s` of SPSC with as many readers.
    pub vs_spsc: Option<f64>,
    /// Largest one-way latency, ns.
    pub max_ns: Option<u64>,
    /// Latency samples, all readers.
    pub latency_samples: Option<u64>,
    /// Messages the paced writer sent per second in the latency window.
    pub latency_msgs_per_s: Option<f64>,
    /// Messages lost to lag in the latency phase, all readers (should be 0).
    pub latency_lagged: Option<u64>,
    /// Readers' `WaitStrategy::SpinThenPark` spins (see `reader_spins`).
    pub reader_spins: u32,
    /// Target gap between two paced sends, ns.
    pub pace_ns: u64,
    /// Throughput window, seconds.
    pub window_s: Option<f64>,
    /// Latency window, seconds.
    pub latency_window_s: Option<f64>,
    /// Voluntary context switches (sleeps) per delivered message, readers' mean.
    pub reader_sleeps_per_msg: Option<f64>,
    /// The writer's CPU.
    pub writer_cpu: Option<usize>,
    /// The readers' CPUs, as each observed after pinning.
    pub reader_cpus: Vec<usize>,
    /// Core-to-core p50 just before, ns.
    pub c2c_before_ns: Option<u64>,
    /// Core-to-core p50 just after, ns.
    pub c2c_after_ns: Option<u64>,
    /// Why the measurement failed.
    pub error: Option<String>,
}

impl FanoutRecord {
    /// An empty record for `flavor` with `readers` readers.
    pub fn new(flavor: FanoutFlavor, readers: usize, spins: u32, timing: &FanoutTiming, cpus_online: usize) -> Self {
        Self {
            transport: flavor.name().to_owned(),
            mode: "fanout",
            size: FANOUT_SIZE,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            msgs_per_s: None,
            bytes_per_s: None,
            kind: "fanout",
            readers,
            cpus_online,
            oversubscribed: readers + 1 > cpus_online,
            reader_msgs_per_s: Vec::new(),
            writer_msgs_per_s: None,
            lost_fraction: None,
            vs_spsc: None,
            max_ns: None,
            latency_samples: None,
            latency_msgs_per_s: None,
            latency_lagged: None,
            reader_spins: spins,
            pace_ns: crate::harness::nanos(timing.pace),
            window_s: None,
            latency_window_s: None,
            reader_sleeps_per_msg: None,
            writer_cpu: None,
            reader_cpus: Vec::new(),
            c2c_before_ns: None,
            c2c_after_ns: None,
            error: None,
        }
    }

    /// Fills the figures of a finished measurement.
    pub fn set_result(&mut self, r: &FanoutResult) {
        let per_reader = r.per_reader_msgs_per_s();
        let mean = per_reader.iter().sum::<f64>() / per_reader.len().max(1) as f64;
        self.msgs_per_s = Some(mean);
        self.bytes_per_s = Some(mean * self.size as f64);
        self.reader_msgs_per_s = per_reader;
        let window = r.window.as_secs_f64().max(1e-9);
        self.writer_msgs_per_s = Some(r.window_sent as f64 / window);
        self.window_s = Some(window);
        self.lost_fraction = Some(r.lost_fraction());
        if !r.hist.is_empty() {
            self.p50_ns = Some(r.hist.value_at_quantile(0.5));
            self.p99_ns = Some(r.hist.value_at_quantile(0.99));
            self.p999_ns = Some(r.hist.value_at_quantile(0.999));
            self.max_ns = Some(r.hist.max());
            self.latency_samples = Some(r.hist.len());
        }
        let lat = r.latency_window.as_secs_f64().max(1e-9);
        self.latency_window_s = Some(lat);
        self.latency_msgs_per_s = Some(r.latency_sent as f64 / lat);
        self.latency_lagged = Some(r.readers.iter().map(|s| s.latency_lagged).sum());
        let delivered: u64 = r.readers.iter().map(|s| s.delivered + s.latency_delivered).sum();
        let sleeps: u64 = r.readers.iter().map(|s| s.sleeps).sum();
        self.reader_sleeps_per_msg = (delivered > 0).then(|| sleeps as f64 / delivered as f64);
        self.writer_cpu = r.writer_cpu;
        self.reader_cpus = r.readers.iter().filter_map(|s| s.cpu).collect();
    }
}

/// Fills `vs_spsc` of the broadcast rows.
pub fn fanout_ratios(records: &mut [FanoutRecord]) {
    let spsc: Vec<(usize, Option<f64>)> = records
        .iter()
        .filter(|r| r.transport == FanoutFlavor::Spsc.name() && r.error.is_none())
        .map(|r| (r.readers, r.msgs_per_s))
        .collect();
    for r in records.iter_mut().filter(|r| r.transport == FanoutFlavor::Broadcast.name()) {
        let base = spsc.iter().find(|s| s.0 == r.readers).and_then(|s| s.1);
        r.vs_spsc = ratio(r.msgs_per_s, base);
    }
}

/// One JSON object per fan-out record and line.
pub fn fanout_json_lines(records: &[FanoutRecord]) -> crate::Result<String> {
    let mut out = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| crate::BenchError::other(format!("JSON: {e}")))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

fn notes_of(r: &FanoutRecord) -> String {
    let mut notes = Vec::new();
    if let Some(e) = &r.error {
        notes.push(format!("FAILED: {e}"));
    }
    if r.oversubscribed {
        notes.push(format!("{} readers + writer > {} CPUs", r.readers, r.cpus_online));
    }
    if let (Some(a), Some(b)) = (r.c2c_before_ns, r.c2c_after_ns) {
        if a.max(b) as f64 / a.min(b).max(1) as f64 > C2C_MOVED_FACTOR {
            notes.push("vCPU placement moved".to_owned());
        }
    }
    if let Some(n) = r.latency_lagged.filter(|&n| n > 0) {
        notes.push(format!("{n} lost to lag while paced"));
    }
    notes.join("; ")
}

fn opt_ns(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| fmt_ns(v as f64))
}

/// The fan-out section of the report: a header that says how the processes
/// sit on the CPUs, one row per flavour x readers, a legend.
pub fn render_fanout(records: &[FanoutRecord], out: &mut String) {
    let Some(first) = records.first() else { return };
    let _ = writeln!(out, "\nfan-out (1 writer → N readers, {FANOUT_SIZE} B)\n");
    let cpus = first.cpus_online;
    let placement = match (first.writer_cpu, records.iter().find_map(|r| r.reader_cpus.first())) {
        (Some(w), Some(r)) => format!("the writer is pinned to CPU {w}, every reader to CPU {r}"),
        _ => "processes are NOT pinned".to_owned(),
    };
    let _ = writeln!(
        out,
        "# this machine has {cpus} CPU{}: {placement}; with readers + writer > {cpus} the readers share \
         cores and take turns (readers > cores), so per-reader figures include time-slicing",
        if cpus == 1 { "" } else { "s" }
    );
    let mut t = Table::new(&[
        ("flavor", false),
        ("readers", true),
        ("msgs/s/reader", true),
        ("lost", true),
        ("bcast/spsc", true),
        ("lat p50", true),
        ("lat p99", true),
        ("lat p99.9", true),
        ("paced", true),
        ("spins", true),
        ("sleeps/msg", true),
        ("c2c ns", true),
        ("notes", false),
    ]);
    let mut last = None;
    for r in records {
        if last.is_some_and(|n| n != r.readers) {
            t.gap();
        }
        last = Some(r.readers);
        t.row(vec![
            if r.transport == FanoutFlavor::Spsc.name() {
                format!("{} x{}", r.transport, r.readers)
            } else {
                r.transport.clone()
            },
            r.readers.to_string(),
            r.msgs_per_s.map_or_else(|| "-".into(), |v| fmt_rate(v, "/s")),
            r.lost_fraction.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0)),
            fmt_ratio(r.vs_spsc),
            opt_ns(r.p50_ns),
            opt_ns(r.p99_ns),
            opt_ns(r.p999_ns),
            r.latency_msgs_per_s.map_or_else(|| "-".into(), |v| fmt_rate(v, "/s")),
            r.reader_spins.to_string(),
            r.reader_sleeps_per_msg.map_or_else(|| "-".into(), |v| format!("{v:.3}")),
            match (r.c2c_before_ns, r.c2c_after_ns) {
                (Some(a), Some(b)) => format!("{a}/{b}"),
                _ => "-".into(),
            },
            notes_of(r),
        ]);
    }
    t.render(out);
    let pace = fmt_ns(first.pace_ns as f64);
    let _ = writeln!(
        out,
        "\nmsgs/s/reader: throughput window, the writer sending as fast as it can; messages each reader got, \
         per second, mean over readers. A broadcast writer never waits (lost: messages readers lost to lag); \
         the SPSC writer sends each message to N rings in turn and waits for the slowest (nothing lost).\n\
         bcast/spsc: broadcast msgs/s/reader over SPSC msgs/s/reader with as many readers.\n\
         lat: one-way (receive time - CLOCK_MONOTONIC send stamp), all readers together, the writer paced at one \
         message per {pace} (busy-waited; paced: the rate it reached).\n\
         Rings of {FANOUT_SLOTS} slots, one message per call (no batching); writer BusySpin, readers \
         SpinThenPark {{ spins }}: {SPINS_OWN_CORE} while each reader has a CPU of its own (no parking between \
         paced messages), {SPINS_SHARED_CORE} once readers share one (a spinning reader would keep the others off \
         it until preempted, milliseconds); sleeps/msg: readers' voluntary context switches (parks) per message.",
    );
}
