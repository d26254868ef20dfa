//! The processes of one flavor run: the board and bitmaps they share with
//! the parent (anonymous shared mappings, inherited across `fork`), what a
//! child knows ([`Child`]), forking, supervising, and merging the bitmaps
//! into a [`FlavorReport`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use nix::errno::Errno;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use shmlane::{OpenError, Options, WaitStrategy};
use shmlane_benches::{SharedMem, pin_to};

use crate::flavors::{Flavor, Topology};
use crate::{Config, FlavorReport};

/// Most processes one flavor may use.
const MAX_PROCS: usize = 8;
/// Bytes of a note or error a child leaves for the parent.
const TEXT_CAP: usize = 480;
/// How long the others get to finish after one process failed.
const GRACE: Duration = Duration::from_secs(3);
/// How often the parent polls its children.
const POLL: Duration = Duration::from_millis(20);

/// What a child reports when it fails.
pub(crate) type Res<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Producer(usize),
    Consumer(usize),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Producer(i) => write!(f, "producer {i}"),
            Self::Consumer(i) => write!(f, "consumer {i}"),
        }
    }
}

/// Text a child leaves for the parent.
#[repr(C)]
pub(crate) struct Text {
    len: AtomicU64,
    bytes: [AtomicU8; TEXT_CAP],
}

impl Text {
    pub(crate) fn write(&self, s: &str) {
        let src = &s.as_bytes()[..s.len().min(TEXT_CAP)];
        // Relaxed: the parent reads after `waitpid`, which orders it after
        // everything this process did.
        for (slot, &b) in self.bytes.iter().zip(src) {
            slot.store(b, Ordering::Relaxed);
        }
        self.len.store(src.len() as u64, Ordering::Relaxed);
    }

    fn read(&self) -> String {
        let len = (self.len.load(Ordering::Relaxed) as usize).min(TEXT_CAP);
        let bytes: Vec<u8> = self.bytes[..len].iter().map(|b| b.load(Ordering::Relaxed)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// What one child reports. Its own cache lines: only that child writes them.
#[repr(C, align(128))]
pub(crate) struct Slot {
    ok: AtomicU64,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    progress: AtomicU64,
    /// Broadcast reader: the position of the next message it reads, for
    /// the writer's throttle. On the same line as `progress`: this reader
    /// writes both, the writer polls it only when it may be a ring ahead.
    cursor: AtomicU64,
    handled: AtomicU64,
    corrupt: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    pub(crate) note: Text,
    error: Text,
}

/// The control block of one flavor run.
#[repr(C)]
pub(crate) struct Board {
    /// Children attached to the segment (the start barrier).
    attached: AtomicU64,
    /// Set by the parent once a child failed: stop waiting for the others.
    abort: AtomicU64,
    slots: [Slot; MAX_PROCS],
}

impl Board {
    /// Consumer `c`'s slot: [`run_processes`] forks the consumers first, so
    /// consumer `c` is child `c`.
    fn consumer_slot(&self, c: usize) -> &Slot {
        &self.slots[c]
    }
}

// A `Board` lives at the start of a page-aligned mapping.
const _: () = assert!(align_of::<Board>() <= 4096);

/// A zeroed [`Board`] in a shared anonymous mapping, inherited by the children.
struct BoardMem(SharedMem);

impl BoardMem {
    fn new() -> Res<Self> {
        SharedMem::new(size_of::<Board>()).map(Self).map_err(|e| e.to_string())
    }

    fn get(&self) -> &Board {
        // SAFETY: the mapping is page aligned (asserted above), at least
        // size_of::<Board>() bytes and zero-filled; `Board` is atomics only
        // (all-zero is valid); the reference borrows `self`, the mapping's owner.
        unsafe { &*self.0.as_ptr().cast::<Board>() }
    }
}

/// Every consumer's bitmap of every producer's sequence numbers, shared so
/// the parent can merge them after the children exit.
struct Bitmaps {
    mem: SharedMem,
    /// Start (in words) of each producer's bitmap within a consumer's part.
    offsets: Vec<usize>,
    /// Words of one consumer's part.
    stride: usize,
}

impl Bitmaps {
    fn new(topo: Topology, messages: u64) -> Res<Self> {
        let mut offsets = Vec::with_capacity(topo.producers + 1);
        let mut at = 0;
        for p in 0..topo.producers {
            offsets.push(at);
            at += (sends(messages, topo, p).div_ceil(64) as usize).max(1);
        }
        offsets.push(at);
        let mem = SharedMem::new(at * topo.consumers * 8).map_err(|e| e.to_string())?;
        Ok(Self { mem, offsets, stride: at })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page aligned, `stride * consumers * 8` bytes
        // long (so `len / 8` whole words), zero-filled (a valid `AtomicU64`),
        // and lives as long as the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr().cast::<AtomicU64>(), self.mem.len() / 8) }
    }

    /// Consumer `c`'s bitmap of producer `p`.
    fn map(&self, c: usize, p: usize) -> &[AtomicU64] {
        &self.words()[c * self.stride + self.offsets[p]..c * self.stride + self.offsets[p + 1]]
    }
}

/// Messages producer `p` sends.
pub(crate) fn sends(messages: u64, topo: Topology, p: usize) -> u64 {
    let n = topo.producers as u64;
    messages / n + u64::from((p as u64) < messages % n)
}

/// What a child process knows: its role, where to report, the segment.
pub(crate) struct Child<'a> {
    pub(crate) role: Role,
    board: &'a Board,
    pub(crate) slot: &'a Slot,
    /// This consumer's bitmap of each producer (empty for producers).
    pub(crate) maps: Vec<&'a [AtomicU64]>,
    name: &'a str,
    wait: WaitStrategy,
    pub(crate) topo: Topology,
    messages: u64,
    base: Instant,
    deadline: Instant,
    pub(crate) inject_faults: bool,
}

/// What a process counted: messages sent or received, and what was wrong.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) handled: u64,
    pub(crate) corrupt: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
}

impl Child<'_> {
    pub(crate) fn sends(&self, p: usize) -> u64 {
        sends(self.messages, self.topo, p)
    }

    pub(crate) fn progress(&self, n: u64) {
        // Relaxed: a progress display only.
        self.slot.progress.store(n, Ordering::Relaxed);
    }

    pub(crate) fn give_up(&self) -> bool {
        // Relaxed: a flag polled in a loop; nothing is read through it.
        self.board.abort.load(Ordering::Relaxed) != 0 || Instant::now() > self.deadline
    }

    /// Broadcast reader: publishes `pos`, the position of the next message
    /// it reads (received + lost to lag), for the writer's throttle.
    pub(crate) fn publish_cursor(&self, pos: u64) {
        // Release: pairs with the Acquire load in `min_reader_cursor`, so a
        // writer that sees `pos` overwrites the slots below it only after
        // this reader's copies out of them (were the throttle wrong, the
        // ring's seqlock would still catch it, as `Lagged`).
        self.slot.cursor.store(pos, Ordering::Release);
    }

    /// Broadcast writer: the lowest cursor any reader published.
    pub(crate) fn min_reader_cursor(&self) -> u64 {
        (0..self.topo.consumers)
            // Acquire: pairs with the Release store in `publish_cursor`.
            .map(|c| self.board.consumer_slot(c).cursor.load(Ordering::Acquire))
            .fold(u64::MAX, u64::min)
    }

    /// Creates (consumer 0) or opens the segment, then waits until every
    /// process of the flavor is attached.
    pub(crate) fn attach<H>(
        &self,
        capacity: u64,
        create: impl Fn(&str, Options) -> Result<H, OpenError>,
        open: impl Fn(&str, Options) -> Result<H, OpenError>,
    ) -> Res<H> {
        let opts = Options::new().capacity(capacity).wait(self.wait);
        let handle = if self.role == Role::Consumer(0) {
            create(self.name, opts).map_err(|e| format!("create: {e}"))?
        } else {
            loop {
                match open(self.name, opts.clone()) {
                    Ok(h) => break h,
                    Err(OpenError::NotFound { .. } | OpenError::NotReady { .. }) if !self.give_up() => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(format!("open: {e}")),
                }
            }
        };
        let all = (self.topo.producers + self.topo.consumers) as u64;
        // Relaxed: a count of attached processes; the segment itself is
        // published by its own handshake, so nothing is read through this.
        self.board.attached.fetch_add(1, Ordering::Relaxed);
        while self.board.attached.load(Ordering::Relaxed) < all {
            if self.give_up() {
                return Err("gave up waiting for the other processes to attach".into());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        self.slot.start_ns.store(self.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(handle)
    }
}

/// Runs in the forked child; returns its exit status.
fn child_main(child: &Child<'_>, body: fn(&Child<'_>) -> Res<Counts>, cpu: Option<usize>, parent: Pid) -> i32 {
    // If the parent died before the death signal was armed, nobody would kill us.
    if set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != parent {
        return 70;
    }
    let run = catch_unwind(AssertUnwindSafe(|| {
        if let Some(cpu) = cpu {
            pin_to(cpu).map_err(|e| e.to_string())?;
        }
        body(child)
    }));
    let slot = child.slot;
    match run {
        Ok(Ok(c)) => {
            // Relaxed: the parent reads these after `waitpid`.
            slot.end_ns.store(child.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            slot.handled.store(c.handled, Ordering::Relaxed);
            slot.corrupt.store(c.corrupt, Ordering::Relaxed);
            slot.duplicated.store(c.duplicated, Ordering::Relaxed);
            slot.reordered.store(c.reordered, Ordering::Relaxed);
            slot.ok.store(1, Ordering::Relaxed);
            0
        }
        Ok(Err(e)) => {
            slot.error.write(&e);
            1
        }
        Err(panic) => {
            slot.error.write(&format!("panicked: {}", shmlane_benches::panic_message(panic.as_ref())));
            101
        }
    }
}

pub(crate) fn run_flavor(flavor: Flavor, cfg: &Config) -> FlavorReport {
    let topo = flavor.topology();
    let mut report = FlavorReport {
        flavor: flavor.name(),
        producers: topo.producers,
        consumers: topo.consumers,
        messages: cfg.messages,
        ..FlavorReport::default()
    };
    let name = format!("shmlane-soak-{}-{}", std::process::id(), flavor.name());
    if let Err(e) = run_processes(flavor, topo, &name, cfg, &mut report) {
        report.failures.push(e);
    }
    // Whatever happened to the creator, leave nothing behind in /dev/shm.
    let _ = shmlane::remove(&name, None);
    report.passed = report.failures.is_empty()
        && report.lost + report.duplicated + report.corrupt + report.reordered == 0
        && report.received == cfg.messages * if topo.every_reader_gets_all { topo.consumers as u64 } else { 1 };
    report
}

fn run_processes(flavor: Flavor, topo: Topology, name: &str, cfg: &Config, report: &mut FlavorReport) -> Res<()> {
    let roles: Vec<Role> =
        (0..topo.consumers).map(Role::Consumer).chain((0..topo.producers).map(Role::Producer)).collect();
    if roles.len() > MAX_PROCS {
        return Err(format!("{} processes, at most {MAX_PROCS}", roles.len()));
    }
    let board_mem = BoardMem::new()?;
    let board = board_mem.get();
    let maps = Bitmaps::new(topo, cfg.messages)?;
    let base = Instant::now();
    let parent = getpid();
    let mut children: Vec<(Pid, Role, usize)> = Vec::with_capacity(roles.len());
    for (i, &role) in roles.iter().enumerate() {
        let child = Child {
            role,
            board,
            slot: &board.slots[i],
            maps: match role {
                Role::Consumer(c) => (0..topo.producers).map(|p| maps.map(c, p)).collect(),
                Role::Producer(_) => Vec::new(),
            },
            name,
            wait: cfg.wait,
            topo,
            messages: cfg.messages,
            base,
            deadline: base + cfg.timeout,
            inject_faults: cfg.inject_faults,
        };
        let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[i % cfg.cpus.len()]);
        // SAFETY: this process is single-threaded (no progress bar exists
        // while forking, and nothing else starts threads), so no lock is held
        // by a thread missing in the child; the child leaves through `_exit`.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let code = child_main(&child, flavor.body(), cpu, parent);
                // SAFETY: `_exit` ends the child at once, without running the
                // parent's atexit handlers or flushing its inherited stdio buffers.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child: pid }) => children.push((pid, role, i)),
            Err(e) => {
                report.failures.push(format!("fork for {role}: {e}"));
                break;
            }
        }
    }
    let bar = progress_bar(cfg, flavor, topo);
    supervise(board, &children, base + cfg.timeout, &bar, &mut report.failures);
    bar.finish_and_clear();

    let mut start = u64::MAX;
    let mut end = 0;
    for &(_, role, i) in &children {
        let slot = &board.slots[i];
        // Relaxed: every child has been reaped; `waitpid` ordered its writes before these reads.
        match slot.start_ns.load(Ordering::Relaxed) {
            0 => {} // never got past the barrier
            t => start = start.min(t),
        }
        end = end.max(slot.end_ns.load(Ordering::Relaxed));
        if let Role::Consumer(_) = role {
            report.received += slot.handled.load(Ordering::Relaxed);
            report.corrupt += slot.corrupt.load(Ordering::Relaxed);
            report.duplicated += slot.duplicated.load(Ordering::Relaxed);
            report.reordered += slot.reordered.load(Ordering::Relaxed);
            let note = slot.note.read();
            if !note.is_empty() {
                report.notes.push(format!("{role}: {note}"));
            }
        }
    }
    if end > start {
        report.seconds = (end - start) as f64 / 1e9;
        let readers = if topo.every_reader_gets_all { topo.consumers as u64 } else { 1 };
        report.msgs_per_sec = (report.received / readers) as f64 / report.seconds;
    }
    let (lost, duplicated) = merge(&maps, topo, cfg.messages);
    report.lost = lost;
    report.duplicated += duplicated;
    Ok(())
}

/// Reaps the children; once one failed, gives the others [`GRACE`], then
/// kills whatever still runs (also at the deadline).
fn supervise(
    board: &Board,
    children: &[(Pid, Role, usize)],
    deadline: Instant,
    bar: &ProgressBar,
    failures: &mut Vec<String>,
) {
    let mut running = children.to_vec();
    let mut deadline = deadline;
    let mut aborted = false;
    while !running.is_empty() {
        running.retain(|&(pid, role, i)| match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => true,
            Ok(status) => {
                failures.extend(judge(status, role, &board.slots[i]));
                false
            }
            Err(e) => {
                failures.push(format!("{role}: waitpid: {e}"));
                false
            }
        });
        if !failures.is_empty() && !aborted {
            // Relaxed: a flag the children poll; nothing is read through it.
            board.abort.store(1, Ordering::Relaxed);
            deadline = deadline.min(Instant::now() + GRACE);
            aborted = true;
        }
        if Instant::now() >= deadline && !running.is_empty() {
            let why = if aborted { "after another process failed" } else { "at the deadline (see --timeout)" };
            for &(pid, role, i) in &running {
                let _ = kill(pid, Signal::SIGKILL);
                while let Err(Errno::EINTR) = waitpid(pid, None) {}
                failures.push(format!("{role}: still running {why}, killed{}", suffix(&board.slots[i].error.read())));
            }
            break;
        }
        // Relaxed: a progress display only.
        bar.set_position(children.iter().map(|&(_, _, i)| board.slots[i].progress.load(Ordering::Relaxed)).sum());
        std::thread::sleep(POLL);
    }
}

fn suffix(error: &str) -> String {
    if error.is_empty() { String::new() } else { format!(": {error}") }
}

/// `None` if the child exited cleanly after reporting success.
fn judge(status: WaitStatus, role: Role, slot: &Slot) -> Option<String> {
    let error = slot.error.read();
    match status {
        // Relaxed: the child was reaped; `waitpid` ordered its writes first.
        WaitStatus::Exited(_, 0) if slot.ok.load(Ordering::Relaxed) == 1 => None,
        WaitStatus::Exited(_, code) => Some(format!("{role}: exited with status {code}{}", suffix(&error))),
        WaitStatus::Signaled(_, sig, _) => Some(format!("{role}: killed by {sig}{}", suffix(&error))),
        other => Some(format!("{role}: unexpected wait status {other:?}")),
    }
}

/// Lost messages and duplicates across consumers, from the bitmaps.
fn merge(maps: &Bitmaps, topo: Topology, messages: u64) -> (u64, u64) {
    let (mut lost, mut duplicated) = (0u64, 0u64);
    for p in 0..topo.producers {
        let bits = sends(messages, topo, p);
        for w in 0..bits.div_ceil(64) as usize {
            let valid = if (w as u64 + 1) * 64 <= bits { u64::MAX } else { (1u64 << (bits % 64)) - 1 };
            // Relaxed: every child has been reaped; `waitpid` ordered its writes before these reads.
            let words = (0..topo.consumers).map(|c| maps.map(c, p)[w].load(Ordering::Relaxed) & valid);
            if topo.every_reader_gets_all {
                lost += words.map(|x| u64::from((!x & valid).count_ones())).sum::<u64>();
            } else {
                let (union, total) = words.fold((0u64, 0u64), |(u, t), x| (u | x, t + u64::from(x.count_ones())));
                lost += u64::from((!union & valid).count_ones());
                duplicated += total - u64::from(union.count_ones());
            }
        }
    }
    (lost, duplicated)
}

fn progress_bar(cfg: &Config, flavor: Flavor, topo: Topology) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let total = cfg.messages * if topo.every_reader_gets_all { topo.consumers as u64 } else { 1 };
    let bar = ProgressBar::new(total).with_prefix(flavor.name());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>5} {elapsed:>4} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
