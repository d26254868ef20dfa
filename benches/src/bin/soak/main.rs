//! `soak`: moves N messages per flavor between real processes and checks
//! every one. A message carries its producer, its sequence number and a
//! checksum of its payload (itself derived from the sequence number); every
//! consumer marks what it received in a bitmap of its own, and the parent
//! merges the bitmaps. A flavor passes when nothing was lost, duplicated,
//! corrupt or reordered and every process exited cleanly; the exit status
//! is non-zero otherwise.
//!
//! ```text
//! cargo run --release -p shmlane-benches --bin soak -- --messages 100000000
//! ```
//!
//! Flavors ([`Flavor`]):
//! - `spsc`: typed [`Producer`]/[`Consumer`] of 64-byte messages, single
//!   sends mixed with batches of 1..=64 on both sides;
//! - `bytes`: [`ByteProducer`]/[`ByteConsumer`] records of 16 bytes up to the
//!   largest the ring takes (those only fit at offset 0: the wrap/padding
//!   path), reserved/committed in place, with abandoned grants and short
//!   commits (`commit_len`) mixed in;
//! - `mpmc`: 2 [`MpmcProducer`]s × 2 [`MpmcConsumer`]s, `try_*` mixed with
//!   blocking calls; each producer has its own sequence space, and each of
//!   its messages must reach exactly one consumer;
//! - `broadcast`: 1 [`BroadcastProducer`] → 2 [`BroadcastConsumer`]s, every
//!   reader must get every message in order; `try_recv` mixed with
//!   `recv_timeout`. The writer never waits for readers, so the soak's
//!   writer throttles itself on the cursors the readers publish in the
//!   board: a correct run never laps a reader, and a `Lagged(n)` shows as
//!   n lost (and in a note).
//!
//! To add a flavor: a variant, its [`Topology`] (`every_reader_gets_all:
//! true`: each reader's bitmap is then checked on its own, and order per
//! reader is checked by [`Checker`] already) and a function
//! `fn(&Child) -> Res<Counts>` returned by [`Flavor::body`], all in
//! `flavors.rs`.
//!
//! Modules: `flavors` (what each process of a flavor does), `msg` (the
//! messages, their checksums, and a consumer's [`Checker`]), `proc` (the
//! shared board and bitmaps, forking, supervising and merging); this file
//! holds the command line and the report.
//!
//! Processes: for each flavor the parent forks one child per role,
//! consumers first. Consumer 0 creates the segment, the others open it; all
//! meet at a barrier once attached, so none leaves before all are in. The
//! children pin themselves round-robin over the allowed CPUs and die with
//! the parent (`PR_SET_PDEATHSIG`). The parent never opens the segment: it
//! polls the children, shows progress when stderr is a terminal, kills the
//! rest a grace period after one fails or when the deadline (derived from
//! N, or `--timeout`) passes, removes the name, and merges the bitmaps.
//!
//! [`Producer`]: shmlane::Producer
//! [`Consumer`]: shmlane::Consumer
//! [`ByteProducer`]: shmlane::ByteProducer
//! [`ByteConsumer`]: shmlane::ByteConsumer
//! [`MpmcProducer`]: shmlane::MpmcProducer
//! [`MpmcConsumer`]: shmlane::MpmcConsumer
//! [`BroadcastProducer`]: shmlane::BroadcastProducer
//! [`BroadcastConsumer`]: shmlane::BroadcastConsumer
//! [`Flavor`]: flavors::Flavor
//! [`Flavor::body`]: flavors::Flavor::body
//! [`Topology`]: flavors::Topology
//! [`Checker`]: msg::Checker

mod flavors;
mod msg;
mod proc;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;
use serde::Serialize;
use shmlane::WaitStrategy;

use flavors::Flavor;
use msg::PRODUCER_SHIFT;

/// Moves N messages per flavor across processes; every message is checked.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// Messages per flavor (across all producers).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..1 << PRODUCER_SHIFT))]
    messages: u64,
    /// Which flavor to run.
    #[arg(long, value_enum, default_value_t = Which::All)]
    flavor: Which,
    /// How every handle waits while its ring is full or empty.
    #[arg(long, value_enum, default_value_t = Wait::SpinThenPark)]
    wait: Wait,
    /// Polls before parking, for `--wait spin-then-park`.
    #[arg(long, default_value_t = 2_000)]
    spins: u32,
    /// Per-flavor deadline in seconds (default: 60 + 10 µs per message).
    #[arg(long)]
    timeout: Option<u64>,
    /// Do not pin the processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// One JSON object per flavor (and a verdict) on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Self-test of the checks: producer 0 skips, repeats, corrupts and
    /// swaps a few messages on purpose ([`Order`]); the run must then fail.
    ///
    /// [`Order`]: msg::Order
    #[arg(long, hide = true)]
    inject_faults: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Spsc,
    Bytes,
    Mpmc,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Wait {
    Spin,
    SpinThenPark,
    Park,
}

/// Everything the parent needs to run flavors.
pub(crate) struct Config {
    pub(crate) messages: u64,
    pub(crate) wait: WaitStrategy,
    pub(crate) cpus: Vec<usize>,
    pub(crate) timeout: Duration,
    pub(crate) progress: bool,
    pub(crate) inject_faults: bool,
}

/// The outcome of one flavor, as printed and as JSON.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FlavorReport {
    pub(crate) flavor: &'static str,
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
    pub(crate) messages: u64,
    pub(crate) seconds: f64,
    pub(crate) msgs_per_sec: f64,
    pub(crate) received: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) corrupt: u64,
    pub(crate) reordered: u64,
    pub(crate) failures: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) passed: bool,
}

fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else { return Vec::new() };
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

fn print_row(r: &FlavorReport) {
    let result = if r.passed { "ok" } else { "FAILED" };
    println!(
        "{:<9} {:>11} {:>8.2} {:>12.0} {:>6} {:>10} {:>7} {:>9}  {result}",
        r.flavor, r.messages, r.seconds, r.msgs_per_sec, r.lost, r.duplicated, r.corrupt, r.reordered
    );
    for line in r.failures.iter().chain(&r.notes) {
        println!("       {line}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let wait = match args.wait {
        Wait::Spin => WaitStrategy::BusySpin,
        Wait::SpinThenPark => WaitStrategy::SpinThenPark { spins: args.spins },
        Wait::Park => WaitStrategy::Park,
    };
    let cpus = if args.no_pin { Vec::new() } else { allowed_cpus() };
    let cfg = Config {
        messages: args.messages,
        wait,
        cpus: if cpus.len() >= 2 { cpus } else { Vec::new() },
        timeout: Duration::from_secs(args.timeout.unwrap_or(60 + args.messages / 100_000)),
        progress: std::io::stderr().is_terminal(),
        inject_faults: args.inject_faults,
    };
    let flavors: Vec<Flavor> = match args.flavor {
        Which::All => Flavor::ALL.to_vec(),
        Which::Spsc => vec![Flavor::Spsc],
        Which::Bytes => vec![Flavor::Bytes],
        Which::Mpmc => vec![Flavor::Mpmc],
        Which::Broadcast => vec![Flavor::Broadcast],
    };
    if !args.json {
        let pinning =
            if cfg.cpus.is_empty() { "not pinned".to_owned() } else { format!("pinned over CPUs {:?}", cfg.cpus) };
        println!("soak: {} messages per flavor, wait {wait:?}, {pinning}, timeout {:?}", cfg.messages, cfg.timeout);
        println!(
            "{:<9} {:>11} {:>8} {:>12} {:>6} {:>10} {:>7} {:>9}  result",
            "flavor", "messages", "seconds", "msgs/s", "lost", "duplicated", "corrupt", "reordered"
        );
    }
    let mut reports = Vec::with_capacity(flavors.len());
    for flavor in flavors {
        let report = proc::run_flavor(flavor, &cfg);
        if args.json {
            println!("{}", serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
        } else {
            print_row(&report);
        }
        let _ = std::io::stdout().flush();
        reports.push(report);
    }
    let passed = reports.iter().all(|r| r.passed);
    let sum = |f: fn(&FlavorReport) -> u64| reports.iter().map(f).sum::<u64>();
    let (lost, duplicated, corrupt, reordered) =
        (sum(|r| r.lost), sum(|r| r.duplicated), sum(|r| r.corrupt), sum(|r| r.reordered));
    let failed: Vec<&str> = reports.iter().filter(|r| !r.passed).map(|r| r.flavor).collect();
    if args.json {
        let verdict = serde_json::json!({
            "verdict": if passed { "PASS" } else { "FAIL" },
            "failed": failed, "lost": lost, "duplicated": duplicated, "corrupt": corrupt, "reordered": reordered,
        });
        println!("{verdict}");
    } else {
        let verdict = if passed { "PASS".to_owned() } else { format!("FAIL ({})", failed.join(", ")) };
        println!(
            "verdict: {verdict}: {} flavor(s), {lost} lost, {duplicated} duplicated, {corrupt} corrupt, {reordered} reordered",
            reports.len()
        );
    }
    if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
