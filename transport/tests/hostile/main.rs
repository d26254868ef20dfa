//! The hostile-segment suite (issue #8): a second process maps a live
//! segment with plain `memmap2` (never through shmlane) and writes garbage
//! into it while a victim process sends and receives through it.
//!
//! The promise under test: **no panic, no out-of-bounds access, no hang, and
//! a typed `Corrupted` error wherever the damage is detectable.** Every run
//! checks that the victim exits normally (not by a signal, not by a panic)
//! within [`LIMIT`]; each scenario then asserts what the victim saw.
//!
//! Three modes:
//! - **Paused** (deterministic): the victim, single-threaded, holds a
//!   producer and a consumer, exchanges a few laps of messages
//!   ([`pre_counts`]), leaves a few unread in flight and pauses; the attacker writes once; the victim
//!   resumes with a fixed program ([`Step`]s). Nothing moves while the
//!   attacker writes, so each scenario asserts the exact first error (variant
//!   and fields), or a clean run, and that every message accepted before it
//!   was intact and in order (message `i` is a pure function of `i`).
//! - **At rest**: the attacker writes before the victim attaches.
//! - **Running** (chaos): the victim runs a producer thread and a consumer
//!   thread while the attacker hammers a region for a while. Where the
//!   outcome is deterministic (header, liveness and doorbell words are never
//!   trusted on the data path) the scenario asserts a clean run and a working
//!   ring afterwards; elsewhere only that it survived.
//!
//! Some damage is legitimately undetectable, and the scenarios say so where
//! they meet it: a forged but well-formed value (a sequence word saying
//! "empty", a position that lies "all consumed" or "ahead", a skip marker, a
//! record length that still fits) is indistinguishable from an honest peer,
//! so the victim may wait (bounded by its timeout), lose a message, or, with
//! a concurrent reader, copy a torn payload. Those cases assert "no panic,
//! no hang" and document what happens.
//!
//! Offsets are those of `docs/layout-v1.md` (`ring/src/layout.rs`).

//!
//! Modules: `scenario` (what a scenario is: flavor, mode, the victim's
//! program, timeouts), `scenarios` (the table), `offsets` (layout v1 as seen
//! from outside), `victim`, `attacker`, and `report` (what the victim saw);
//! this file holds the tests and the parent's side of a run.
//!
//! [`LIMIT`]: scenario::LIMIT
//! [`pre_counts`]: scenario::pre_counts
//! [`Step`]: scenario::Step

#[path = "../common/mod.rs"]
mod common;

mod attacker;
mod offsets;
mod report;
mod scenario;
mod scenarios;
mod victim;

use common::{Msg, Scratch, Shm, mix, spawn};
use offsets::{BYTE_CAP, FIXED_CAP, READ_POS, WRITE_POS, read_u64};
use report::Report;
use scenario::{Ctx, Kind, LIMIT, Mode, Scenario};
use scenarios::SCENARIOS;
use shmlane::{ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, OpenError, Options, Producer};
use std::time::{Duration, Instant};

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    match role.as_str() {
        "victim" => victim::victim(),
        "attacker" => attacker::attacker(),
        other => panic!("unknown child role {other}"),
    }
}

// ---------------------------------------------------------------- parent

fn run_all(filter: impl Fn(&Scenario) -> bool) {
    let _serial = common::serial();
    let started = Instant::now();
    let mut n = 0;
    for sc in SCENARIOS.iter().filter(|s| filter(s)) {
        run(sc);
        n += 1;
    }
    eprintln!("{n} scenarios in {:?}", started.elapsed());
}

#[test]
fn spsc_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Spsc && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn bytes_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Bytes && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn mpmc_paused_and_at_rest() {
    run_all(|s| s.kind == Kind::Mpmc && !matches!(s.mode, Mode::Running { .. }));
}

#[test]
fn racing_attackers() {
    run_all(|s| matches!(s.mode, Mode::Running { .. }));
}

fn run(sc: &'static Scenario) {
    let started = Instant::now();
    let shm = Shm::new(sc.name);
    let files = ["report", "paused", "go", "err", "stop"].map(|what| Scratch::new(sc.name, what));
    let [out, paused, go, err, stop] = &files;
    leave_segment(sc.kind, &shm);
    let seed = sc.name.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
    let vars = [
        ("NAME", shm.name.clone()),
        ("SCENARIO", sc.name.to_owned()),
        ("OUT", out.arg()),
        ("PAUSED", paused.arg()),
        ("GO", go.arg()),
        ("ERR", err.arg()),
        ("STOP", stop.arg()),
        ("SEED", seed.to_string()),
    ];
    let mut ctx = Ctx::default();
    if let Mode::AtRest(_) = sc.mode {
        spawn("attacker", &vars).wait_ok(LIMIT);
        spawn("victim", &vars).wait_ok(LIMIT);
    } else {
        let mut victim = spawn("victim", &vars);
        common::wait_until("the victim to get going", LIMIT, || paused.path.exists() || victim.has_exited());
        assert!(paused.path.exists(), "{}: victim left early: {}", sc.name, read_report(out));
        ctx = positions(&shm);
        spawn("attacker", &vars).wait_ok(LIMIT);
        // Observers must cope with whatever is there now.
        let _ = shmlane::inspect(&shm.path());
        if let Some(check) = sc.reopen {
            check(&ctx, try_open(sc.kind, &shm.name));
        }
        let resume = if let Mode::Paused(_) = sc.mode { go } else { stop };
        std::fs::write(&resume.path, b"").expect("write marker");
        // The exit status says: no panic, no signal (SIGSEGV, SIGBUS), and
        // no hang past LIMIT.
        victim.wait_ok(LIMIT);
    }
    let report = Report::parse(&read_report(out));
    eprintln!("{}: {ctx:?} {report:?} in {:?}", sc.name, started.elapsed());
    (sc.expect)(&ctx, &report);
    shmlane::remove(&shm.name, None).expect("remove");
    shm.assert_gone();
}

/// Creates the segment and leaves it, roles free, for the victim to open.
fn leave_segment(kind: Kind, shm: &Shm) {
    let opts = Options::new().keep(true);
    match kind {
        Kind::Spsc => drop(Producer::<Msg>::create(&shm.name, opts.capacity(FIXED_CAP)).expect("create")),
        Kind::Bytes => drop(ByteProducer::create(&shm.name, opts.capacity(BYTE_CAP)).expect("create")),
        Kind::Mpmc => drop(MpmcProducer::<Msg>::create(&shm.name, opts.capacity(FIXED_CAP)).expect("create")),
    }
}

fn positions(shm: &Shm) -> Ctx {
    Ctx { w: read_u64(&shm.path(), WRITE_POS), r: read_u64(&shm.path(), READ_POS) }
}

fn try_open(kind: Kind, name: &str) -> Result<(), OpenError> {
    let opts = Options::new().ready_timeout(Duration::from_millis(50));
    match kind {
        Kind::Spsc => Consumer::<Msg>::open(name, opts).map(drop),
        Kind::Bytes => ByteConsumer::open(name, opts).map(drop),
        Kind::Mpmc => MpmcConsumer::<Msg>::open(name, opts).map(drop),
    }
}

fn read_report(out: &Scratch) -> String {
    std::fs::read_to_string(&out.path).unwrap_or_else(|e| format!("(no report: {e})"))
}
