//! The two-process comparison bench of shmlane: round trip and streaming
//! between two pinned processes over shmlane and over pipes, Unix stream
//! sockets and TCP loopback, each blocking and spinning, next to the limits
//! of the machine measured in the same run (core-to-core cache-line round
//! trip, one-core `memcpy`, a minimal cross-core copy ring).
//!
//! The rules it follows are in `BENCHMARKING.md`: real processes, pinned and
//! checked; warm-up, then a fixed window; `hdrhistogram` percentiles, never
//! averages; every streamed message checked (a fast wrong transport fails);
//! a core-to-core probe right before and after every measurement.
//!
//! To add a transport, implement [`Transport`] (state created before `fork`),
//! [`Prepared`] (each process's copy becomes an endpoint) and [`Endpoint`]
//! (send and receive whole fixed-size messages), and return it from
//! [`transports`]. Optional hooks: zero-copy `send_with`/`recv_with`, a
//! `flush` for a sender that batches, a `syscalls` count, a `note` for the
//! report, and `unsupported` sizes (skipped with a note). The shmlane
//! transports themselves are in `shmlane.rs` ([`ShmlaneTransport`]).
//!
//! The fan-out section (`fanout.rs`, selected as `fanout`) runs one writer
//! and 1, 2, 4 reader processes over a broadcast ring and over N SPSC rings
//! ([`run_fanout`], [`FanoutRecord`]).

mod chart;
mod error;
mod fanout;
mod harness;
mod limits;
mod process;
mod report;
mod run;
mod shmlane;
mod sys;
mod transports;

pub use self::shmlane::{Msg, ShmlaneTransport, TYPED_SIZES};
pub use chart::write_chart;
pub use error::{BenchError, Result};
pub use fanout::{
    FANOUT, FANOUT_READERS, FANOUT_SIZE, FanoutFlavor, FanoutRecord, FanoutResult, FanoutTiming, ReaderStats,
    fanout_json_lines, run_fanout,
};
pub use harness::{
    Endpoint, Kind, Mode, Prepared, Role, RttResult, SideStats, StreamResult, Transport, Window, check_message,
    fill_message, new_histogram, run_rtt, run_stream,
};
pub use limits::{C2cWindow, CrossCoreCopy, MemcpyResult, core_to_core, memcpy};
pub use process::panic_message;
pub use report::{Record, compute_ratios, fmt_ns, fmt_rate, json_lines, pipe_baseline, render_table};
pub use run::{BenchConfig, MAX_SIZE, Outcome, Plan, PlanItem, Timing, plan, run};
pub use sys::{CpuPair, SharedMem, Usage, choose_cpus, pin_to};
pub use transports::FdTransport;

/// Every transport the bench knows, in table order. The limits
/// `core-to-core` and `memcpy` are not transports; they always run.
pub fn transports() -> Vec<Box<dyn Transport>> {
    let mut all: Vec<Box<dyn Transport>> = Vec::new();
    for t in FdTransport::all() {
        all.push(Box::new(t));
    }
    // shmlane: spinning variants are compared with `pipe-spin`, the parking
    // one with `pipe`.
    for t in ShmlaneTransport::all() {
        all.push(Box::new(t));
    }
    all.push(Box::new(CrossCoreCopy));
    all
}

/// Names of the limits that are measured in every run (not in [`transports`]).
pub const LIMITS: [&str; 2] = ["core-to-core", "memcpy"];
