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
//!   its messages must reach exactly one consumer.
//!
//! To add a flavor (a `broadcast` of 1 producer → N readers, say): a
//! variant, its [`Topology`] (`every_reader_gets_all: true`: each reader's
//! bitmap is then checked on its own, and order per reader is checked by
//! [`Checker`] already) and a function `fn(&Child) -> Res<Counts>` returned
//! by [`Flavor::body`].
//!
//! Processes: for each flavor the parent forks one child per role,
//! consumers first. Consumer 0 creates the segment, the others open it; all
//! meet at a barrier once attached, so none leaves before all are in. The
//! children pin themselves round-robin over the allowed CPUs and die with
//! the parent (`PR_SET_PDEATHSIG`). The parent never opens the segment: it
//! polls the children, shows progress when stderr is a terminal, kills the
//! rest a grace period after one fails or when the deadline (derived from
//! N, or `--timeout`) passes, removes the name, and merges the bitmaps.

use std::io::{IsTerminal, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nix::errno::Errno;
use nix::sched::{CpuSet, sched_getaffinity};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use serde::Serialize;
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, OpenError, Options, Producer, RecvError,
    TrySendError, WaitStrategy,
};
use shmlane_benches::{SharedMem, pin_to};

/// Slots of the typed SPSC and the MPMC rings (64 KiB of 64-byte messages).
const TYPED_SLOTS: u64 = 1024;
/// Bytes of the byte ring.
const BYTE_RING: usize = 64 * 1024;
/// The byte ring's own header in front of each record (`RECORD_HEADER`).
const RING_RECORD_HEADER: usize = 8;
/// Our header in each byte record: key, then checksum.
const HEADER: usize = 16;
/// Largest batch the typed SPSC flavor sends or receives at once.
const MAX_BATCH: usize = 64;
/// The producer index sits above this bit of a key, the sequence number below.
const PRODUCER_SHIFT: u32 = 56;
/// Most processes one flavor may use.
const MAX_PROCS: usize = 8;
/// Bytes of a note or error a child leaves for the parent.
const TEXT_CAP: usize = 480;
/// Anomalies a consumer describes (it counts all of them).
const NOTED_ANOMALIES: u32 = 3;
/// A consumer publishes its progress every this many messages.
const PROGRESS_EVERY: u64 = 1 << 12;
/// How long the others get to finish after one process failed.
const GRACE: Duration = Duration::from_secs(3);
/// How often the parent polls its children.
const POLL: Duration = Duration::from_millis(20);
/// Seeds that make a record's payload length and its shape (abandoned grant,
/// short commit) independent of each other and of its payload words.
const LEN_SEED: u64 = 0x006c_656e_6774_6800;
const SHAPE_SEED: u64 = 0x0073_6861_7065_0000;

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
    #[arg(long, hide = true)]
    inject_faults: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    Spsc,
    Bytes,
    Mpmc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Wait {
    Spin,
    SpinThenPark,
    Park,
}

/// One way of moving messages that the soak exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Spsc,
    Bytes,
    Mpmc,
}

/// Who takes part in a flavor and what each consumer must receive.
#[derive(Debug, Clone, Copy)]
struct Topology {
    producers: usize,
    consumers: usize,
    /// Each consumer must receive every message (broadcast); otherwise each
    /// message goes to exactly one of them.
    every_reader_gets_all: bool,
}

impl Flavor {
    const ALL: [Self; 3] = [Self::Spsc, Self::Bytes, Self::Mpmc];

    fn name(self) -> &'static str {
        match self {
            Self::Spsc => "spsc",
            Self::Bytes => "bytes",
            Self::Mpmc => "mpmc",
        }
    }

    fn topology(self) -> Topology {
        let (producers, consumers) = match self {
            Self::Spsc | Self::Bytes => (1, 1),
            Self::Mpmc => (2, 2),
        };
        Topology { producers, consumers, every_reader_gets_all: false }
    }

    /// What each process of this flavor runs (it matches on its role).
    fn body(self) -> fn(&Child<'_>) -> Res<Counts> {
        match self {
            Self::Spsc => spsc,
            Self::Bytes => bytes,
            Self::Mpmc => mpmc,
        }
    }
}

type Res<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
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

// ---------------------------------------------------------------- messages

/// A typed message: 64 bytes, checksum over key and payload.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Msg {
    key: u64,
    check: u64,
    payload: [u64; 6],
}

impl Msg {
    fn new(key: u64) -> Self {
        let payload = std::array::from_fn(|i| payload_word(key, i));
        Self { key, check: checksum(key, bytemuck::bytes_of(&payload)), payload }
    }

    fn intact(&self) -> bool {
        self.check == checksum(self.key, bytemuck::bytes_of(&self.payload))
    }
}

fn key(producer: usize, seq: u64) -> u64 {
    (producer as u64) << PRODUCER_SHIFT | seq
}

fn split_key(key: u64) -> (usize, u64) {
    ((key >> PRODUCER_SHIFT) as usize, key & ((1 << PRODUCER_SHIFT) - 1))
}

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn payload_word(key: u64, i: usize) -> u64 {
    mix(key ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn load_word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// Fills `buf` with the payload of `key`: its words, little-endian, the last one cut.
fn fill(key: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let n = chunk.len();
        chunk.copy_from_slice(&payload_word(key, i).to_le_bytes()[..n]);
    }
}

/// A 64-bit checksum of `key`, the length and the bytes (not cryptographic:
/// it catches torn, stale, shifted or foreign bytes).
fn checksum(key: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(key ^ (bytes.len() as u64).rotate_left(32));
    for chunk in bytes.chunks(8) {
        h = (h ^ load_word(chunk)).wrapping_mul(0x9fb2_1c65_1e98_df25).rotate_left(29);
    }
    mix(h)
}

/// Payload length of the byte record `key`, in `0..=max`: mostly up to 128
/// bytes, 6% up to 4 KiB, 1 in 512 within 256 bytes of `max` (those
/// fit only at the start of the ring: padding to the end, then a wait for
/// the ring to drain).
fn payload_len(key: u64, max: usize) -> usize {
    let h = mix(key ^ LEN_SEED);
    let r = (h >> 16) as usize;
    let len = match h % 1024 {
        0..=1 => max.saturating_sub(r % 256),
        2..=63 => r % 4097,
        _ => r % 129,
    };
    len.min(max)
}

/// The sequence numbers a producer sends, in order, each with "corrupt it
/// after the checksum". Normally `0..total`, all intact. Under
/// `--inject-faults`, producer 0 leaves out 10, sends 20 twice, corrupts 30
/// and sends 41 before 40: a consumer must then count 2 lost (10, and 30
/// which never arrived intact), 1 duplicated, 1 corrupt and (SPSC) 1 reordered.
struct Order {
    next: u64,
    total: u64,
    inject: bool,
    pending: Option<u64>,
}

impl Order {
    fn new(child: &Child<'_>, p: usize) -> Self {
        Self { next: 0, total: child.sends(p), inject: child.inject_faults && p == 0, pending: None }
    }
}

impl Iterator for Order {
    type Item = (u64, bool);

    fn next(&mut self) -> Option<(u64, bool)> {
        if let Some(seq) = self.pending.take() {
            return Some((seq, false));
        }
        if self.next >= self.total {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        if !self.inject {
            return Some((seq, false));
        }
        match seq {
            10 => self.next(),
            20 => {
                self.pending = Some(20);
                Some((20, false))
            }
            30 => Some((30, true)),
            40 if self.total > 41 => {
                self.next = 42;
                self.pending = Some(40);
                Some((41, false))
            }
            _ => Some((seq, false)),
        }
    }
}

// ------------------------------------------------------ shared with parent

/// Text a child leaves for the parent.
#[repr(C)]
struct Text {
    len: AtomicU64,
    bytes: [AtomicU8; TEXT_CAP],
}

impl Text {
    fn write(&self, s: &str) {
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
struct Slot {
    ok: AtomicU64,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    progress: AtomicU64,
    handled: AtomicU64,
    corrupt: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    note: Text,
    error: Text,
}

/// The control block of one flavor run.
#[repr(C)]
struct Board {
    /// Children attached to the segment (the start barrier).
    attached: AtomicU64,
    /// Set by the parent once a child failed: stop waiting for the others.
    abort: AtomicU64,
    slots: [Slot; MAX_PROCS],
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
        // SAFETY: the mapping is page aligned (>= align_of::<Board>(), asserted
        // above), at least size_of::<Board>() bytes, zero-filled, and `Board`
        // is atomics only, for which all-zero is a valid value; the reference
        // borrows `self`, which owns the mapping.
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
fn sends(messages: u64, topo: Topology, p: usize) -> u64 {
    let n = topo.producers as u64;
    messages / n + u64::from((p as u64) < messages % n)
}

// ---------------------------------------------------------------- children

/// What a child process knows: its role, where to report, the segment.
struct Child<'a> {
    role: Role,
    board: &'a Board,
    slot: &'a Slot,
    /// This consumer's bitmap of each producer (empty for producers).
    maps: Vec<&'a [AtomicU64]>,
    name: &'a str,
    wait: WaitStrategy,
    topo: Topology,
    messages: u64,
    base: Instant,
    deadline: Instant,
    inject_faults: bool,
}

/// What a process counted: messages sent or received, and what was wrong.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    handled: u64,
    corrupt: u64,
    duplicated: u64,
    reordered: u64,
}

impl Child<'_> {
    fn sends(&self, p: usize) -> u64 {
        sends(self.messages, self.topo, p)
    }

    fn progress(&self, n: u64) {
        // Relaxed: a progress display only.
        self.slot.progress.store(n, Ordering::Relaxed);
    }

    fn give_up(&self) -> bool {
        // Relaxed: a flag polled in a loop; nothing is read through it.
        self.board.abort.load(Ordering::Relaxed) != 0 || Instant::now() > self.deadline
    }

    /// Creates (consumer 0) or opens the segment, then waits until every
    /// process of the flavor is attached.
    fn attach<H>(
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

/// A consumer's checks: marks each message in its bitmap, counts what is wrong.
struct Checker<'a> {
    child: &'a Child<'a>,
    /// Highest sequence number seen from each producer.
    last: Vec<Option<u64>>,
    counts: Counts,
    anomalies: u32,
    note: String,
}

impl<'a> Checker<'a> {
    fn new(child: &'a Child<'a>) -> Self {
        Self {
            child,
            last: vec![None; child.topo.producers],
            counts: Counts::default(),
            anomalies: 0,
            note: String::new(),
        }
    }

    fn msg(&mut self, m: &Msg) {
        self.record(m.key, m.intact(), || format!("typed message with key {:#x}: checksum mismatch", m.key));
    }

    fn record_bytes(&mut self, rec: &[u8], max_payload: usize) {
        if rec.len() < HEADER {
            self.counts.handled += 1;
            self.counts.corrupt += 1;
            self.anomaly(format!("corrupt: a record of {} bytes, shorter than its header", rec.len()));
            return;
        }
        let (key, sum, body) = (load_word(&rec[..8]), load_word(&rec[8..HEADER]), &rec[HEADER..]);
        let want = payload_len(key, max_payload);
        let intact = body.len() == want && checksum(key, body) == sum;
        self.record(key, intact, || match body.len() {
            len if len == want => format!("record with key {key:#x}: checksum mismatch ({len} payload bytes)"),
            len => format!("record with key {key:#x}: {len} payload bytes, expected {want}"),
        });
    }

    fn record(&mut self, key: u64, intact: bool, describe: impl FnOnce() -> String) {
        self.counts.handled += 1;
        if self.counts.handled % PROGRESS_EVERY == 0 {
            self.child.progress(self.counts.handled);
        }
        if !intact {
            self.counts.corrupt += 1;
            return self.anomaly(format!("corrupt: {}", describe()));
        }
        let (p, seq) = split_key(key);
        let Some(map) = self.child.maps.get(p).filter(|_| seq < self.child.sends(p)) else {
            self.counts.corrupt += 1;
            return self.anomaly(format!("corrupt: intact message with impossible key {key:#x}"));
        };
        let (word, bit) = (&map[(seq / 64) as usize], 1u64 << (seq % 64));
        // Relaxed: only this process writes its bitmap; the parent reads it
        // after `waitpid`.
        let w = word.load(Ordering::Relaxed);
        if w & bit != 0 {
            self.counts.duplicated += 1;
            return self.anomaly(format!("duplicate: producer {p} seq {seq}"));
        }
        word.store(w | bit, Ordering::Relaxed);
        match self.last[p] {
            Some(last) if seq < last => {
                self.counts.reordered += 1;
                self.anomaly(format!("reordered: producer {p} seq {seq} after seq {last}"));
            }
            _ => self.last[p] = Some(seq),
        }
    }

    fn anomaly(&mut self, what: String) {
        if self.anomalies < NOTED_ANOMALIES {
            if !self.note.is_empty() {
                self.note.push_str("; ");
            }
            self.note.push_str(&what);
            self.child.slot.note.write(&self.note);
        }
        self.anomalies += 1;
    }

    fn finish(self) -> Counts {
        self.child.progress(self.counts.handled);
        self.counts
    }
}

/// Typed SPSC: batches of 1..=64, sent alternately one by one and with
/// `send_batch`; received alternately with `recv_batch` and `recv`.
fn spsc(child: &Child<'_>) -> Res<Counts> {
    let mut batch = [Msg::zeroed(); MAX_BATCH];
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(TYPED_SLOTS, Producer::<Msg>::create, Producer::<Msg>::open)?;
            let mut order = Order::new(child, p);
            let (mut sent, mut round) = (0u64, 0u64);
            loop {
                let want = 1 + (mix(round) % MAX_BATCH as u64) as usize;
                let mut k = 0;
                for (m, (seq, corrupt)) in batch[..want].iter_mut().zip(order.by_ref()) {
                    *m = Msg::new(key(p, seq));
                    m.payload[0] ^= u64::from(corrupt) << 7;
                    k += 1;
                }
                if k == 0 {
                    break;
                }
                if round % 2 == 0 {
                    tx.send_batch(&batch[..k]).map_err(|e| format!("send_batch after {sent} messages: {e}"))?;
                } else {
                    for m in &batch[..k] {
                        tx.send(*m).map_err(|e| format!("send after {sent} messages: {e}"))?;
                    }
                }
                sent += k as u64;
                round += 1;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(TYPED_SLOTS, Consumer::<Msg>::create, Consumer::<Msg>::open)?;
            let mut check = Checker::new(child);
            for round in 0u64.. {
                let got = if round % 2 == 0 {
                    rx.recv_batch(&mut batch[..1 + (round / 2) as usize % MAX_BATCH])
                } else {
                    rx.recv().map(|m| {
                        batch[0] = m;
                        1
                    })
                };
                match got {
                    Ok(n) => batch[..n].iter().for_each(|m| check.msg(m)),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
    }
}

/// Byte records, zero copy: written in the grant, checked in the read guard.
fn bytes(child: &Child<'_>) -> Res<Counts> {
    let max_payload = BYTE_RING - RING_RECORD_HEADER - HEADER;
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(BYTE_RING as u64, ByteProducer::create, ByteProducer::open)?;
            if tx.max_record_len() != max_payload + HEADER {
                return Err(format!("max_record_len {} (expected {})", tx.max_record_len(), max_payload + HEADER));
            }
            let mut sent = 0;
            for (seq, corrupt) in Order::new(child, p) {
                let key = key(p, seq);
                let len = payload_len(key, max_payload);
                let shape = mix(key ^ SHAPE_SEED);
                if shape % 61 == 0 {
                    // An abandoned grant must publish nothing.
                    let mut g = tx.reserve(HEADER + len).map_err(|e| format!("reserve at seq {seq}: {e}"))?;
                    g.fill(0xa5);
                }
                // Sometimes reserve more than needed and commit only the record.
                let extra = if shape % 7 == 0 { ((shape >> 8) % 64) as usize } else { 0 }.min(max_payload - len);
                let mut g = tx.reserve(HEADER + len + extra).map_err(|e| format!("reserve at seq {seq}: {e}"))?;
                let (head, body) = g.split_at_mut(HEADER);
                let body = &mut body[..len];
                fill(key, body);
                let sum = checksum(key, body);
                if corrupt {
                    match body.get_mut(len / 2) {
                        Some(b) => *b ^= 0x10,
                        None => head[0] ^= 1,
                    }
                }
                head[..8].copy_from_slice(&key.to_le_bytes());
                head[8..].copy_from_slice(&sum.to_le_bytes());
                if extra > 0 {
                    g.commit_len(HEADER + len)
                } else {
                    g.commit()
                }
                sent += 1;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(BYTE_RING as u64, ByteConsumer::create, ByteConsumer::open)?;
            let mut check = Checker::new(child);
            loop {
                match rx.recv() {
                    Ok(record) => check.record_bytes(&record, max_payload),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
    }
}

/// MPMC: every other message with `try_send` first; every receive with
/// `try_recv` first, then `recv` if the ring was empty.
fn mpmc(child: &Child<'_>) -> Res<Counts> {
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(TYPED_SLOTS, MpmcProducer::<Msg>::create, MpmcProducer::<Msg>::open)?;
            let mut sent = 0;
            for (seq, corrupt) in Order::new(child, p) {
                let mut m = Msg::new(key(p, seq));
                m.payload[0] ^= u64::from(corrupt) << 7;
                sent += 1;
                let m = if seq % 2 == 0 {
                    match tx.try_send(m) {
                        Ok(()) => continue,
                        Err(TrySendError::Full(m)) => m,
                        Err(e) => return Err(format!("try_send at seq {seq}: {e}")),
                    }
                } else {
                    m
                };
                tx.send(m).map_err(|e| format!("send at seq {seq}: {e}"))?;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(TYPED_SLOTS, MpmcConsumer::<Msg>::create, MpmcConsumer::<Msg>::open)?;
            let mut check = Checker::new(child);
            loop {
                let got = match rx.try_recv() {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => rx.recv(),
                    Err(e) => Err(e),
                };
                match got {
                    Ok(m) => check.msg(&m),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
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
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            slot.error.write(&format!("panicked: {msg}"));
            101
        }
    }
}

// ------------------------------------------------------------------ parent

/// Everything the parent needs to run flavors.
struct Config {
    messages: u64,
    wait: WaitStrategy,
    cpus: Vec<usize>,
    timeout: Duration,
    progress: bool,
    inject_faults: bool,
}

/// The outcome of one flavor, as printed and as JSON.
#[derive(Debug, Default, Serialize)]
struct FlavorReport {
    flavor: &'static str,
    producers: usize,
    consumers: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    received: u64,
    lost: u64,
    duplicated: u64,
    corrupt: u64,
    reordered: u64,
    failures: Vec<String>,
    notes: Vec<String>,
    passed: bool,
}

fn run_flavor(flavor: Flavor, cfg: &Config) -> FlavorReport {
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

fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else { return Vec::new() };
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

fn print_row(r: &FlavorReport) {
    let result = if r.passed { "ok" } else { "FAILED" };
    println!(
        "{:<6} {:>11} {:>8.2} {:>12.0} {:>6} {:>10} {:>7} {:>9}  {result}",
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
    };
    if !args.json {
        let pinning =
            if cfg.cpus.is_empty() { "not pinned".to_owned() } else { format!("pinned over CPUs {:?}", cfg.cpus) };
        println!("soak: {} messages per flavor, wait {wait:?}, {pinning}, timeout {:?}", cfg.messages, cfg.timeout);
        println!(
            "{:<6} {:>11} {:>8} {:>12} {:>6} {:>10} {:>7} {:>9}  result",
            "flavor", "messages", "seconds", "msgs/s", "lost", "duplicated", "corrupt", "reordered"
        );
    }
    let mut reports = Vec::with_capacity(flavors.len());
    for flavor in flavors {
        let report = run_flavor(flavor, &cfg);
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
