//! Helpers of the parent: seeding, killing and reaping children, telling
//! whether a process sleeps, draining a ring to `Disconnected`, and the
//! kill → `Disconnected` latencies.

use crate::board::{Board, PANICKED};
use crate::common::{self, Msg, Rng, TIMEOUT, assert_msg, mix};
use crate::payload::check_record;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shmlane::{ByteConsumer, Consumer, RecvError, WaitStrategy};
use std::time::{Duration, Instant, SystemTime};

/// What we promise: a survivor notices a dead peer within this.
const PROMISE: Duration = Duration::from_millis(100);
/// What any single iteration must meet on a stalling VM.
const NOTICE_BOUND: Duration = Duration::from_secs(1);

/// The suite's random generator: `SHMLANE_CRASH_SEED` or the clock, printed.
pub(crate) fn seeded_rng(test: &str) -> Rng {
    let seed = match std::env::var("SHMLANE_CRASH_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|e| panic!("SHMLANE_CRASH_SEED={s}: {e}")),
        Err(_) => SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    };
    println!("{test}: seed {seed} (rerun with SHMLANE_CRASH_SEED={seed})");
    Rng::new(test.bytes().fold(seed, |h, b| mix(h ^ u64::from(b))))
}

/// Any of the three strategies (spin counts random too).
pub(crate) fn any_wait(rng: &mut Rng) -> WaitStrategy {
    match rng.up_to(2) {
        0 => WaitStrategy::BusySpin,
        1 => WaitStrategy::SpinThenPark { spins: 1 + rng.up_to(5_000) as u32 },
        _ => WaitStrategy::Park,
    }
}

/// Burns `iterations` loop turns (pacing, holding a grant).
pub(crate) fn spin(iterations: usize) {
    for i in 0..iterations {
        std::hint::black_box(i);
    }
}

/// Reaps `child`, which must have died of our SIGKILL, not of a panic
/// (which it reports on `board` before unwinding).
#[track_caller]
pub(crate) fn reap(child: common::Child, board: &Board) {
    child.wait_killed(TIMEOUT);
    assert_eq!(board.get(PANICKED), 0, "a child panicked (see its message above)");
}

/// SIGKILLs `pid`; returns the moment just before (so a latency measured
/// from it includes the kill itself, and is never negative).
pub(crate) fn kill9(pid: Pid) -> Instant {
    let at = Instant::now();
    kill(pid, Signal::SIGKILL).expect("kill -9");
    at
}

/// Waits for `ready`, sleeps `delay`, SIGKILLs `pid`. Kills even when
/// `ready` times out (so the receiving side is not left waiting forever),
/// and then says so.
pub(crate) fn kill_after(pid: Pid, delay: Duration, mut ready: impl FnMut() -> bool) -> Result<Instant, String> {
    let deadline = Instant::now() + TIMEOUT;
    while !ready() {
        if Instant::now() > deadline {
            kill9(pid);
            return Err(format!("the killer gave up waiting for its moment after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    Ok(kill9(pid))
}

/// Waits until `cond` holds on 3 polls in a row, 1 ms apart.
pub(crate) fn wait_steadily(what: &str, mut cond: impl FnMut() -> bool) {
    let mut steady = 0;
    common::wait_until(what, TIMEOUT, || {
        steady = if cond() { steady + 1 } else { 0 };
        steady >= 3
    });
}

/// True if every thread of process `pid` (or only thread `tid`) is asleep
/// (state S or D in /proc): blocked on the futex or napping, not spinning.
pub(crate) fn asleep(pid: Pid, tid: Option<Pid>) -> bool {
    let dir = format!("/proc/{pid}/task");
    let tids: Vec<String> = match tid {
        Some(t) => vec![t.to_string()],
        None => match std::fs::read_dir(&dir) {
            Ok(entries) => {
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            }
            Err(_) => return false,
        },
    };
    !tids.is_empty()
        && tids.iter().all(|t| {
            std::fs::read_to_string(format!("{dir}/{t}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['S', 'D'])))
                .unwrap_or(false)
        })
}

/// Receives until `Disconnected`, checking each message continues from
/// `*next`; returns when `Disconnected` came.
pub(crate) fn drain_typed(rx: &mut Consumer<Msg>, next: &mut u64) -> Instant {
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_msg(&m, *next);
                *next += 1;
            }
            Err(RecvError::Disconnected) => return Instant::now(),
            Err(e) => panic!("after message {next}: expected Disconnected, got {e}"),
        }
    }
}

/// As [`drain_typed`], for byte records.
pub(crate) fn drain_bytes(rx: &mut ByteConsumer, next: &mut u64) -> Instant {
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(record) => {
                check_record(&record, *next);
                *next += 1;
            }
            Err(RecvError::Disconnected) => return Instant::now(),
            Err(e) => panic!("after record {next}: expected Disconnected, got {e}"),
        }
    }
}

/// Kill → `Disconnected` latencies of one scenario.
pub(crate) struct Latencies {
    what: &'static str,
    samples: Vec<Duration>,
}

impl Latencies {
    pub(crate) fn new(what: &'static str) -> Self {
        Self { what, samples: Vec::new() }
    }

    pub(crate) fn push(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    /// Prints the distribution; asserts the median is within the 100 ms
    /// promise and every sample within 1 s. (A hard 100 ms on each would
    /// flake: this VM has 2 noisy cores shared with other builds.)
    pub(crate) fn check(mut self) {
        self.samples.sort();
        let n = self.samples.len();
        assert!(n > 0);
        let (min, median, max) = (self.samples[0], self.samples[n / 2], self.samples[n - 1]);
        println!("{}: kill → Disconnected over {n} kills: min {min:?}, median {median:?}, max {max:?}", self.what);
        assert!(median < PROMISE, "{}: median {median:?} breaks the {PROMISE:?} promise", self.what);
        assert!(max < NOTICE_BOUND, "{}: one survivor took {max:?} to notice", self.what);
    }
}
