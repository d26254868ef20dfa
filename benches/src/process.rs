//! Running two roles in two real processes: fork, pin, die with the parent,
//! report back through a shared control block.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

use crate::error::{BenchError, Context, Result};
use crate::sys::{CpuPair, Shared, Usage, ZeroShared, pin_to};

const ERR_CAP: usize = 512;

/// Shared between the parent and the child of one measurement.
///
/// The first line holds the flags the roles poll; it is written only at the
/// end of a measurement, so while it runs it sits Shared in both caches and
/// polling it is an L1 hit. The child's report is on lines of its own.
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct Ctrl {
    /// Set by the parent: the measurement is over, finish up.
    pub(crate) stop: AtomicU64,
    /// Set by a streaming sender once `total` is final.
    pub(crate) done: AtomicU64,
    /// Number of messages a streaming sender sent in all.
    pub(crate) total: AtomicU64,
    report: ChildReport,
}

#[derive(Debug)]
#[repr(C, align(128))]
struct ChildReport {
    ok: AtomicU64,
    cpu_plus_one: AtomicU64,
    msgs: AtomicU64,
    voluntary: AtomicU64,
    involuntary: AtomicU64,
    syscalls_plus_one: AtomicU64,
    err_len: AtomicU64,
    err: [AtomicU8; ERR_CAP],
}

// SAFETY: `Ctrl` is atomics only: all-zero is a valid value, it has no
// `Drop`, and its alignment (128) is below a page.
unsafe impl ZeroShared for Ctrl {}

impl Ctrl {
    fn write_error(&self, msg: &str) {
        let bytes = &msg.as_bytes()[..msg.len().min(ERR_CAP)];
        for (slot, &b) in self.report.err.iter().zip(bytes) {
            slot.store(b, Ordering::Relaxed);
        }
        self.report.err_len.store(bytes.len() as u64, Ordering::Release);
    }

    fn read_error(&self) -> Option<String> {
        let len = usize::try_from(self.report.err_len.load(Ordering::Acquire)).unwrap_or(0).min(ERR_CAP);
        if len == 0 {
            return None;
        }
        let bytes: Vec<u8> = self.report.err[..len].iter().map(|b| b.load(Ordering::Relaxed)).collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// What the child role returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildStats {
    /// Messages (or round trips) the child handled.
    pub(crate) msgs: u64,
    /// Its context switches while doing so.
    pub(crate) usage: Usage,
    /// System calls its endpoint counted, if it counts them.
    pub(crate) syscalls: Option<u64>,
}

/// What the parent learns about the child after it exited.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildOutcome {
    /// The CPU `sched_getcpu()` reported after pinning, if pinned.
    pub(crate) cpu: Option<usize>,
    /// Its statistics.
    pub(crate) stats: ChildStats,
}

/// Forks; the child pins itself to `cpus.1`, runs `child(state, ctrl)` and
/// `_exit`s; the parent (already pinned to `cpus.0` by the caller) runs
/// `parent(state, ctrl)`, then reaps the child.
///
/// Each process receives its own copy of `state` (that is what `fork` does),
/// so `state` is whatever both sides must inherit: file descriptors, a shared
/// mapping. If the parent role fails, the child is killed. The child also gets
/// `SIGKILL` if the parent dies (`PR_SET_PDEATHSIG`).
///
/// The calling process must be single-threaded: the child runs Rust code
/// (allocates) after `fork`.
pub(crate) fn run_pair<S, R>(
    cpus: CpuPair,
    state: S,
    child: impl FnOnce(S, &Ctrl) -> Result<ChildStats>,
    parent: impl FnOnce(S, &Ctrl) -> Result<R>,
) -> Result<(R, ChildOutcome)> {
    let ctrl = Shared::<Ctrl>::new()?;
    let parent_pid = getpid();
    // SAFETY: the harness is single-threaded (documented above), so no lock
    // is held by a thread that does not exist in the child; the child never
    // returns from this function (it leaves through `_exit`).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let code = child_main(parent_pid, cpus.map(|c| c.1), state, child, &ctrl);
            // SAFETY: `_exit` ends the child at once, without running atexit
            // handlers or flushing stdio buffers it inherited from the parent.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child: pid } => {
            let result = parent(state, &ctrl);
            if result.is_err() {
                // The child may be blocked on a peer that gave up; it is of no further use.
                let _ = kill(pid, Signal::SIGKILL);
            }
            let status = loop {
                match waitpid(pid, None) {
                    Err(Errno::EINTR) => {}
                    other => break other.context("waitpid")?,
                }
            };
            let child_err = ctrl.read_error();
            let outcome = match status {
                WaitStatus::Exited(_, 0) if ctrl.report.ok.load(Ordering::Acquire) == 1 => Ok(read_outcome(&ctrl)),
                WaitStatus::Exited(_, code) => {
                    Err(BenchError::Peer(child_err.unwrap_or_else(|| format!("exited with status {code}"))))
                }
                WaitStatus::Signaled(_, sig, _) => Err(BenchError::Peer(format!("killed by {sig}"))),
                other => Err(BenchError::Peer(format!("unexpected wait status {other:?}"))),
            };
            match (result, outcome) {
                (Ok(r), Ok(o)) => Ok((r, o)),
                // The child's own error is usually the cause of the parent's
                // (for example an end of file after the child failed).
                (Err(e), _) => Err(match ctrl.read_error() {
                    Some(c) => BenchError::Other(format!("{e} (peer: {c})")),
                    None => e,
                }),
                (Ok(_), Err(e)) => Err(e),
            }
        }
    }
}

fn read_outcome(ctrl: &Ctrl) -> ChildOutcome {
    let r = &ctrl.report;
    let cpu = r.cpu_plus_one.load(Ordering::Relaxed);
    let sys = r.syscalls_plus_one.load(Ordering::Relaxed);
    ChildOutcome {
        cpu: cpu.checked_sub(1).and_then(|c| usize::try_from(c).ok()),
        stats: ChildStats {
            msgs: r.msgs.load(Ordering::Relaxed),
            usage: Usage {
                voluntary: r.voluntary.load(Ordering::Relaxed),
                involuntary: r.involuntary.load(Ordering::Relaxed),
            },
            syscalls: sys.checked_sub(1),
        },
    }
}

fn child_main<S>(
    parent_pid: Pid,
    cpu: Option<usize>,
    state: S,
    role: impl FnOnce(S, &Ctrl) -> Result<ChildStats>,
    ctrl: &Ctrl,
) -> i32 {
    // If the parent died before the death signal was armed, nobody would kill us.
    if set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != parent_pid {
        return 70;
    }
    let run = catch_unwind(AssertUnwindSafe(|| -> Result<ChildStats> {
        if let Some(cpu) = cpu {
            let got = pin_to(cpu)?;
            ctrl.report.cpu_plus_one.store(got as u64 + 1, Ordering::Relaxed);
        }
        role(state, ctrl)
    }));
    match run {
        Ok(Ok(stats)) => {
            let r = &ctrl.report;
            r.msgs.store(stats.msgs, Ordering::Relaxed);
            r.voluntary.store(stats.usage.voluntary, Ordering::Relaxed);
            r.involuntary.store(stats.usage.involuntary, Ordering::Relaxed);
            r.syscalls_plus_one.store(stats.syscalls.map_or(0, |s| s.saturating_add(1)), Ordering::Relaxed);
            r.ok.store(1, Ordering::Release);
            0
        }
        Ok(Err(e)) => {
            ctrl.write_error(&e.to_string());
            1
        }
        Err(panic) => {
            ctrl.write_error(&format!("panic: {}", panic_message(panic.as_ref())));
            101
        }
    }
}

/// The message a caught panic carried (`panic!` with a literal or a
/// formatted string), for a child to report to its parent.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
