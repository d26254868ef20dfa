//! Records of a run and their presentations: ratios, the text table, JSON lines.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::harness::{Kind, Mode, RttResult, SideStats, StreamResult};
use crate::limits::MemcpyResult;
use crate::run::Outcome;

/// A core-to-core probe pair differing by more than this factor means the
/// host moved the vCPUs during the measurement.
pub const C2C_MOVED_FACTOR: f64 = 1.5;

/// One measurement: a JSON line, a table row, a chart mark.
///
/// The first eight fields are the stable interface (`null` when not
/// applicable or failed); the rest are extras. `local_*` is the measuring
/// process (pinger / receiver), `peer_*` the forked one (ponger / sender).
/// Per-message figures are per round trip in `rtt` mode.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Transport or limit name.
    pub transport: String,
    /// `"rtt"` or `"stream"`.
    pub mode: Mode,
    /// Message size in bytes.
    pub size: usize,
    /// Round-trip median, ns.
    pub p50_ns: Option<u64>,
    /// Round-trip 99th percentile, ns.
    pub p99_ns: Option<u64>,
    /// Round-trip 99.9th percentile, ns.
    pub p999_ns: Option<u64>,
    /// Messages per second received inside the window.
    pub msgs_per_s: Option<f64>,
    /// Bytes per second received inside the window (for `memcpy`: best run).
    pub bytes_per_s: Option<f64>,
    /// `"blocking"`, `"spinning"` or `"limit"`.
    pub kind: Kind,
    /// Largest round trip, ns.
    pub max_ns: Option<u64>,
    /// Round trips recorded or messages counted.
    pub samples: Option<u64>,
    /// Measured window, seconds.
    pub window_s: Option<f64>,
    /// `memcpy` only: median run.
    pub bytes_per_s_median: Option<f64>,
    /// Core-to-core p50 just before this measurement, ns.
    pub c2c_before_ns: Option<u64>,
    /// Core-to-core p50 just after, ns.
    pub c2c_after_ns: Option<u64>,
    /// The probes differ by more than `C2C_MOVED_FACTOR`: vCPU placement changed.
    pub c2c_moved: Option<bool>,
    /// System calls per message, both processes (transports that count them).
    pub syscalls_per_msg: Option<f64>,
    /// System calls per message of the measuring process.
    pub local_syscalls_per_msg: Option<f64>,
    /// System calls per message of the peer.
    pub peer_syscalls_per_msg: Option<f64>,
    /// Voluntary context switches (sleeps) per message, both processes.
    pub csw_per_msg: Option<f64>,
    /// Voluntary context switches per message of the measuring process.
    pub local_csw_per_msg: Option<f64>,
    /// Voluntary context switches per message of the peer.
    pub peer_csw_per_msg: Option<f64>,
    /// CPUs of the measuring process and of the peer.
    pub cpus: Option<[usize; 2]>,
    /// rtt: p50 / mean of the two core-to-core probes.
    pub vs_c2c: Option<f64>,
    /// rtt: p50 / p50 of the pipe of the same kind (lower is better);
    /// stream: msgs/s / msgs/s of that pipe (higher is better).
    pub vs_pipe: Option<f64>,
    /// stream: bytes/s / best `memcpy` bytes/s of the same size.
    pub vs_memcpy: Option<f64>,
    /// stream: bytes/s / `cross-core-copy` bytes/s of the same size.
    pub vs_cross_core_copy: Option<f64>,
    /// stream: mean core-to-core probe (ns) of the `cross-core-copy`
    /// measurement `vs_cross_core_copy` divides by. Both are bound by the
    /// same cache-line traffic, so the ratio only means something when this
    /// is close to [`Record::c2c_ns`] (the table notes when it is not).
    pub xcopy_c2c_ns: Option<f64>,
    /// Why the measurement failed.
    pub error: Option<String>,
}

impl Record {
    /// An empty record (every figure `null`).
    pub fn new(transport: &str, kind: Kind, mode: Mode, size: usize) -> Self {
        Self {
            transport: transport.to_owned(),
            mode,
            size,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            msgs_per_s: None,
            bytes_per_s: None,
            kind,
            max_ns: None,
            samples: None,
            window_s: None,
            bytes_per_s_median: None,
            c2c_before_ns: None,
            c2c_after_ns: None,
            c2c_moved: None,
            syscalls_per_msg: None,
            local_syscalls_per_msg: None,
            peer_syscalls_per_msg: None,
            csw_per_msg: None,
            local_csw_per_msg: None,
            peer_csw_per_msg: None,
            cpus: None,
            vs_c2c: None,
            vs_pipe: None,
            vs_memcpy: None,
            vs_cross_core_copy: None,
            xcopy_c2c_ns: None,
            error: None,
        }
    }

    /// Fills the latency figures from a histogram of nanoseconds.
    pub fn set_latency(&mut self, h: &Histogram<u64>, window_s: Option<f64>) {
        if h.is_empty() {
            return;
        }
        self.p50_ns = Some(h.value_at_quantile(0.5));
        self.p99_ns = Some(h.value_at_quantile(0.99));
        self.p999_ns = Some(h.value_at_quantile(0.999));
        self.max_ns = Some(h.max());
        self.samples = Some(h.len());
        self.window_s = window_s;
    }

    /// Fills a round-trip measurement.
    pub fn set_rtt(&mut self, r: &RttResult) {
        self.set_latency(&r.hist, Some(r.elapsed.as_secs_f64()));
        self.set_sides(&r.local, &r.peer);
    }

    /// Fills a streaming measurement.
    pub fn set_stream(&mut self, r: &StreamResult, size: usize) {
        let rate = r.msgs_per_s();
        self.msgs_per_s = Some(rate);
        self.bytes_per_s = Some(rate * size as f64);
        self.samples = Some(r.msgs);
        self.window_s = Some(r.elapsed.as_secs_f64());
        self.set_sides(&r.local, &r.peer);
    }

    /// Fills a `memcpy` result.
    pub fn set_memcpy(&mut self, m: MemcpyResult) {
        self.bytes_per_s = Some(m.best);
        self.bytes_per_s_median = Some(m.median);
        self.msgs_per_s = Some(m.best / self.size as f64);
    }

    fn set_sides(&mut self, local: &SideStats, peer: &SideStats) {
        self.local_syscalls_per_msg = local.syscalls_per_msg();
        self.peer_syscalls_per_msg = peer.syscalls_per_msg();
        self.syscalls_per_msg = self.local_syscalls_per_msg.zip(self.peer_syscalls_per_msg).map(|(a, b)| a + b);
        self.local_csw_per_msg = local.csw_per_msg();
        self.peer_csw_per_msg = peer.csw_per_msg();
        self.csw_per_msg = self.local_csw_per_msg.zip(self.peer_csw_per_msg).map(|(a, b)| a + b);
    }

    /// Mean of the two core-to-core probes, ns.
    pub fn c2c_ns(&self) -> Option<f64> {
        match (self.c2c_before_ns, self.c2c_after_ns) {
            (Some(a), Some(b)) => Some((a + b) as f64 / 2.0),
            (Some(a), None) | (None, Some(a)) => Some(a as f64),
            (None, None) => None,
        }
    }
}

/// The pipe a transport is compared with: blocking with blocking, everything
/// else with spinning.
pub fn pipe_baseline(kind: Kind) -> &'static str {
    match kind {
        Kind::Blocking => "pipe",
        Kind::Spinning | Kind::Limit => "pipe-spin",
    }
}

/// Computes the ratio fields (and `c2c_moved`) from the other records.
pub fn compute_ratios(records: &mut [Record]) {
    let snapshot = records.to_vec();
    let find = |name: &str, mode: Mode, size: usize| {
        snapshot.iter().find(|r| r.transport == name && r.mode == mode && r.size == size && r.error.is_none())
    };
    for r in records.iter_mut() {
        if let (Some(a), Some(b)) = (r.c2c_before_ns, r.c2c_after_ns) {
            let (lo, hi) = (a.min(b).max(1) as f64, a.max(b) as f64);
            r.c2c_moved = Some(hi / lo > C2C_MOVED_FACTOR);
        }
        // No fallback to the other kind: blocking and spinning are not compared.
        let pipe = find(pipe_baseline(r.kind), r.mode, r.size);
        match r.mode {
            Mode::Rtt => {
                let p50 = r.p50_ns.map(|v| v as f64);
                r.vs_c2c = ratio(p50, r.c2c_ns());
                r.vs_pipe = ratio(p50, pipe.and_then(|p| p.p50_ns).map(|v| v as f64));
            }
            Mode::Stream => {
                r.vs_pipe = ratio(r.msgs_per_s, pipe.and_then(|p| p.msgs_per_s));
                r.vs_memcpy = ratio(r.bytes_per_s, find("memcpy", Mode::Stream, r.size).and_then(|m| m.bytes_per_s));
                let xcopy = find("cross-core-copy", Mode::Stream, r.size);
                r.vs_cross_core_copy = ratio(r.bytes_per_s, xcopy.and_then(|m| m.bytes_per_s));
                r.xcopy_c2c_ns = r.vs_cross_core_copy.and(xcopy.and_then(Record::c2c_ns));
            }
        }
        if crate::LIMITS.contains(&r.transport.as_str()) {
            r.vs_pipe = None;
            r.vs_memcpy = None;
            r.vs_cross_core_copy = None;
            r.xcopy_c2c_ns = None;
        }
    }
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

/// One JSON object per record and line.
pub fn json_lines(records: &[Record]) -> Result<String> {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).map_err(|e| BenchError::other(format!("JSON: {e}")))?);
        out.push('\n');
    }
    Ok(out)
}

/// Formats nanoseconds with three significant digits: `812 ns`, `61.2 µs`, `1.20 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{} µs", sig3(ns / 1e3))
    } else if ns < 1e9 {
        format!("{} ms", sig3(ns / 1e6))
    } else {
        format!("{} s", sig3(ns / 1e9))
    }
}

/// Formats a rate with an SI prefix and a unit: `12.3 M/s`, `1.21 GB/s`.
pub fn fmt_rate(v: f64, unit: &str) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{} {prefix}{unit}", sig3(scaled))
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 0.01 || v == 0.0 => format!("{}x", sig3(v)),
        // Three significant digits for small ratios too (0.00131x, not 0.00x).
        Some(v) => format!("{v:.*}x", (2 - v.log10().floor() as i32).clamp(2, 9) as usize),
    }
}

fn fmt_per_msg(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(v) if v < 0.001 => format!("{v:.1e}"),
        Some(v) if v < 0.01 => format!("{v:.4}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_opt_ns(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| fmt_ns(v as f64))
}

fn fmt_probes(r: &Record) -> String {
    match (r.c2c_before_ns, r.c2c_after_ns) {
        (None, None) => "-".into(),
        (a, b) => format!(
            "{}/{}",
            a.map_or_else(|| "-".into(), |v| v.to_string()),
            b.map_or_else(|| "-".into(), |v| v.to_string())
        ),
    }
}

fn notes_of(r: &Record) -> String {
    let mut notes = Vec::new();
    if let Some(e) = &r.error {
        notes.push(format!("FAILED: {e}"));
    }
    if r.c2c_moved == Some(true) {
        notes.push("vCPU placement moved".to_owned());
    }
    if let (Some(x), Some(own)) = (r.xcopy_c2c_ns, r.c2c_ns()) {
        if x.max(own) / x.min(own).max(1.0) > C2C_MOVED_FACTOR {
            notes.push(format!("/xcopy across placements: xcopy ran at c2c {x:.0} ns"));
        }
    }
    if let Some(m) = r.bytes_per_s_median {
        notes.push(format!("best of runs; median {}", fmt_rate(m, "B/s")));
    }
    notes.join("; ")
}

/// A plain-text table with aligned columns.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    /// Right-align this column.
    right: Vec<bool>,
    rows: Vec<Option<Vec<String>>>,
}

impl Table {
    pub(crate) fn new(columns: &[(&'static str, bool)]) -> Self {
        Self {
            header: columns.iter().map(|c| c.0).collect(),
            right: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Some(cells));
    }

    pub(crate) fn gap(&mut self) {
        self.rows.push(None);
    }

    pub(crate) fn render(&self, out: &mut String) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in self.rows.iter().flatten() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == widths.len();
                if i > 0 {
                    text.push_str("  ");
                }
                if self.right[i] {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if !last {
                        text.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(out, &mut self.header.iter().copied());
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(&"-".repeat(total.min(160)));
        out.push('\n');
        for row in &self.rows {
            match row {
                Some(cells) => line(out, &mut cells.iter().map(String::as_str)),
                None => out.push('\n'),
            }
        }
    }
}

/// Rows of one mode, grouped by size (a blank line between groups), limits
/// first within a group, otherwise in run order.
fn ordered(records: &[Record], mode: Mode) -> Vec<&Record> {
    let mut rows: Vec<(usize, &Record)> = records.iter().enumerate().filter(|(_, r)| r.mode == mode).collect();
    rows.sort_by_key(|(i, r)| (r.size, r.kind != Kind::Limit, *i));
    rows.into_iter().map(|(_, r)| r).collect()
}

fn add_rows<'a>(table: &mut Table, rows: &[&'a Record], cells: impl Fn(&'a Record) -> Vec<String>) {
    let mut last_size = None;
    for r in rows {
        if last_size.is_some_and(|s| s != r.size) {
            table.gap();
        }
        last_size = Some(r.size);
        table.row(cells(r));
    }
}

/// The report: notes, the round-trip table, the streaming table, a legend.
pub fn render_table(outcome: &Outcome) -> String {
    let mut out = String::new();
    for n in &outcome.notes {
        let _ = writeln!(out, "# {n}");
    }
    let rtt = ordered(&outcome.records, Mode::Rtt);
    if !rtt.is_empty() {
        let _ = writeln!(out, "\nRound trip (ping-pong, one message each way; one-way ~ RTT/2)\n");
        let mut t = Table::new(&[
            ("transport", false),
            ("size", true),
            ("p50", true),
            ("p99", true),
            ("p99.9", true),
            ("max", true),
            ("/c2c", true),
            ("/pipe", true),
            ("sys/rt", true),
            ("sleeps/rt", true),
            ("c2c ns", true),
            ("notes", false),
        ]);
        add_rows(&mut t, &rtt, |r| {
            vec![
                r.transport.clone(),
                r.size.to_string(),
                fmt_opt_ns(r.p50_ns),
                fmt_opt_ns(r.p99_ns),
                fmt_opt_ns(r.p999_ns),
                fmt_opt_ns(r.max_ns),
                fmt_ratio(r.vs_c2c),
                fmt_ratio(r.vs_pipe),
                fmt_per_msg(r.syscalls_per_msg),
                fmt_per_msg(r.csw_per_msg),
                fmt_probes(r),
                notes_of(r),
            ]
        });
        t.render(&mut out);
    }
    let stream = ordered(&outcome.records, Mode::Stream);
    if !stream.is_empty() {
        let _ = writeln!(out, "\nStreaming (receiver's window, every message checked)\n");
        let mut t = Table::new(&[
            ("transport", false),
            ("size", true),
            ("msgs/s", true),
            ("bytes/s", true),
            ("/pipe", true),
            ("/memcpy", true),
            ("/xcopy", true),
            ("sys/msg", true),
            ("sleeps/msg", true),
            ("c2c ns", true),
            ("notes", false),
        ]);
        add_rows(&mut t, &stream, |r| {
            vec![
                r.transport.clone(),
                r.size.to_string(),
                r.msgs_per_s.map_or_else(|| "-".into(), |v| fmt_rate(v, "/s")),
                r.bytes_per_s.map_or_else(|| "-".into(), |v| fmt_rate(v, "B/s")),
                fmt_ratio(r.vs_pipe),
                fmt_ratio(r.vs_memcpy),
                fmt_ratio(r.vs_cross_core_copy),
                fmt_per_msg(r.syscalls_per_msg),
                fmt_per_msg(r.csw_per_msg),
                fmt_probes(r),
                notes_of(r),
            ]
        });
        t.render(&mut out);
    }
    let _ = writeln!(
        out,
        "\n/c2c: p50 over the core-to-core round trip measured just before and after (c2c ns: before/after).\n\
         /pipe: against the pipe of the same kind (blocking vs `pipe`, spinning vs `pipe-spin`); \
         rtt: lower is better, stream: higher is better.\n\
         /memcpy, /xcopy: bytes/s over one-core memcpy and over cross-core-copy (what crossing cores allows; \
         only comparable at the same vCPU placement, noted when the two ran at different c2c ns).\n\
         sys: system calls counted by the endpoints; sleeps: voluntary context switches (getrusage), \
         both processes, per message or round trip."
    );
    crate::fanout::render_fanout(&outcome.fanout, &mut out);
    let _ = writeln!(out, "\nRun time: {:.1} s.", outcome.elapsed.as_secs_f64());
    out
}
