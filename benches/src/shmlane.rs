//! The shmlane transports, through the same harness as the kernel ones:
//!
//! - `shmlane-spsc`: typed [`Producer`]/[`Consumer`] of a `#[repr(C)]` array
//!   of `u64` exactly one message long, [`WaitStrategy::BusySpin`]. Streaming
//!   publishes in batches ([`Producer::send_batch`] /
//!   [`Consumer::recv_batch`]); every message is still filled, counted and
//!   checked one by one.
//! - `shmlane-park`: the same with [`WaitStrategy::Park`] on both sides (a
//!   blocking transport: compared with the blocking pipe).
//! - `shmlane-bytes`: [`ByteProducer::reserve`]/`commit` and
//!   [`ByteConsumer::recv`], zero copy: the harness fills the message in the
//!   ring and checks it there.
//! - `shmlane-mpmc`: [`MpmcProducer`]/[`MpmcConsumer`], one process each.
//!
//! Round trips use two segments (ping, pong), streaming one, each named
//! `shmlane-bench-<pid>-<counter>-<ping|pong|data>`. The measuring process
//! (the parent of the fork) creates every segment in [`Transport::prepare`]
//! and keeps its creating handles; the forked peer opens the other role of
//! each by name, then removes the names (both sides are attached, nobody
//! else needs them) and says so through a shared flag, which the parent
//! waits for before its first message. From then on nothing is left in
//! `/dev/shm` whatever happens to either process (a crash, the harness's
//! `SIGALRM` abort); before it, the parent's handles remove the names when
//! they drop. The parent's handles, which the child inherits through
//! `fork`, are never dropped in the child: their `Drop` would release the
//! parent's role lock (an open-file-description lock, shared by both copies
//! of the descriptor) and unlink the name.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, OpenError, Options, Producer, WaitStrategy,
};
use bytemuck::{Pod, Zeroable};

use crate::error::{BenchError, Result};
use crate::harness::{Endpoint, Kind, Mode, Prepared, Role, Transport};
use crate::sys::{Shared, ZeroShared};

/// One typed message: `N` words, `8 * N` bytes, no padding.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Msg<const N: usize>(pub [u64; N]);

// SAFETY: `Msg<N>` is `repr(C)` around `[u64; N]`: all-zero bytes are a
// valid value.
unsafe impl<const N: usize> Zeroable for Msg<N> {}
// SAFETY: `repr(C)` around `[u64; N]`: no padding, every bit pattern is
// valid, `Copy + 'static`, no interior mutability or pointers.
unsafe impl<const N: usize> Pod for Msg<N> {}

/// Message sizes (bytes) the typed variants carry: `Msg<{size / 8}>`.
pub const TYPED_SIZES: [usize; 14] = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

/// Calls `$f::<{ size / 8 }>(args)` for a size in [`TYPED_SIZES`], `None` otherwise.
macro_rules! for_typed_size {
    ($size:expr, $f:ident $args:tt) => {
        for_typed_size!(@arms $size, $f $args;
            8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
    };
    (@arms $size:expr, $f:ident $args:tt; $($bytes:literal),*) => {
        match $size {
            $( $bytes => Some($f::<{ $bytes / 8 }> $args), )*
            _ => None,
        }
    };
}

/// Bytes of ring a streaming segment aims for (as `cross-core-copy`).
const STREAM_RING_BYTES: usize = 1 << 20;
/// Slots of each typed round-trip segment (one message is ever in flight).
const RTT_SLOTS: u64 = 8;
/// A streaming batch holds about this many bytes (and at most `MAX_BATCH` messages).
const BATCH_BYTES: usize = 4096;
const MAX_BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Spsc,
    Park,
    Bytes,
    Mpmc,
}

/// A shmlane transport: `shmlane-spsc`, `shmlane-park`, `shmlane-bytes` or `shmlane-mpmc`.
#[derive(Debug, Clone, Copy)]
pub struct ShmlaneTransport {
    variant: Variant,
}

impl ShmlaneTransport {
    /// `shmlane-spsc`: typed SPSC, busy spinning, batched streaming.
    pub fn spsc() -> Self {
        Self { variant: Variant::Spsc }
    }

    /// `shmlane-park`: typed SPSC, both sides park on the futex at once.
    pub fn park() -> Self {
        Self { variant: Variant::Park }
    }

    /// `shmlane-bytes`: byte records, zero copy, busy spinning.
    pub fn bytes() -> Self {
        Self { variant: Variant::Bytes }
    }

    /// `shmlane-mpmc`: typed MPMC with one producer and one consumer process, busy spinning.
    pub fn mpmc() -> Self {
        Self { variant: Variant::Mpmc }
    }

    /// All four, in table order.
    pub fn all() -> Vec<Self> {
        vec![Self::spsc(), Self::park(), Self::bytes(), Self::mpmc()]
    }

    fn wait(self) -> WaitStrategy {
        if self.variant == Variant::Park { WaitStrategy::Park } else { WaitStrategy::BusySpin }
    }
}

impl Transport for ShmlaneTransport {
    fn name(&self) -> &str {
        match self.variant {
            Variant::Spsc => "shmlane-spsc",
            Variant::Park => "shmlane-park",
            Variant::Bytes => "shmlane-bytes",
            Variant::Mpmc => "shmlane-mpmc",
        }
    }

    fn kind(&self) -> Kind {
        if self.variant == Variant::Park { Kind::Blocking } else { Kind::Spinning }
    }

    fn note(&self) -> Option<String> {
        let batch = format!(
            "streams in batches of min({MAX_BATCH}, {BATCH_BYTES} B / size) messages (64 at 64 B, 4 at 1 KiB, \
             1 from 4 KiB up) with send_batch/recv_batch, each message still filled and checked one by one"
        );
        Some(match self.variant {
            Variant::Spsc => format!("typed SPSC of [u64; size/8], BusySpin; {batch}"),
            Variant::Park => format!(
                "typed SPSC, Park on both sides; {batch}; futex calls are not counted \
                 (sys '-'), sleeps = voluntary context switches (getrusage), i.e. FUTEX_WAITs that slept"
            ),
            Variant::Bytes => "byte records, BusySpin, zero copy: reserve/commit and recv guard, \
                               the message is filled and checked in the ring"
                .to_owned(),
            Variant::Mpmc => "typed MPMC of [u64; size/8], BusySpin, one producer and one consumer process, \
                              one message per call"
                .to_owned(),
        })
    }

    fn unsupported(&self, size: usize) -> Option<String> {
        (self.variant != Variant::Bytes && !TYPED_SIZES.contains(&size)).then(|| {
            format!(
                "typed messages are compiled for {}..={} bytes in powers of two (shmlane-bytes carries any size)",
                TYPED_SIZES[0],
                TYPED_SIZES[TYPED_SIZES.len() - 1]
            )
        })
    }

    fn prepare(&self, mode: Mode, size: usize) -> Result<Box<dyn Prepared>> {
        let wait = self.wait();
        let batched = matches!(self.variant, Variant::Spsc | Variant::Park);
        let batch = if mode == Mode::Stream && batched { (BATCH_BYTES / size.max(1)).clamp(1, MAX_BATCH) } else { 1 };
        let prepared = match self.variant {
            Variant::Bytes => {
                // Room for a few records of any size; 1 MiB when streaming.
                let record = size.next_multiple_of(8) + 64;
                let bytes = match mode {
                    Mode::Rtt => (4 * record).max(4096),
                    Mode::Stream => (4 * record).max(STREAM_RING_BYTES),
                };
                Some(ShmPrepared::<BytesChan>::create(mode, wait, bytes as u64, batch, size))
            }
            Variant::Spsc | Variant::Park => for_typed_size!(size, spsc_prepared(mode, wait, batch, size)),
            Variant::Mpmc => for_typed_size!(size, mpmc_prepared(mode, wait, batch, size)),
        };
        prepared.unwrap_or_else(|| {
            Err(BenchError::other(format!("{}: {size}-byte messages are not supported", self.name())))
        })
    }
}

/// Slots of a typed segment for `size`-byte messages.
fn typed_slots(mode: Mode, size: usize) -> u64 {
    match mode {
        Mode::Rtt => RTT_SLOTS,
        Mode::Stream => (STREAM_RING_BYTES / size.max(1)).clamp(4, 16384).next_power_of_two() as u64,
    }
}

fn spsc_prepared<const N: usize>(
    mode: Mode,
    wait: WaitStrategy,
    batch: usize,
    size: usize,
) -> Result<Box<dyn Prepared>> {
    ShmPrepared::<SpscChan<Msg<N>>>::create(mode, wait, typed_slots(mode, size), batch, size)
}

fn mpmc_prepared<const N: usize>(
    mode: Mode,
    wait: WaitStrategy,
    batch: usize,
    size: usize,
) -> Result<Box<dyn Prepared>> {
    ShmPrepared::<MpmcChan<Msg<N>>>::create(mode, wait, typed_slots(mode, size), batch, size)
}

/// One flavour of shmlane handles: how to create and open each role, and
/// the endpoint they make.
trait Chan: 'static {
    type Tx: 'static;
    type Rx: 'static;
    fn create_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError>;
    fn open_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError>;
    fn create_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError>;
    fn open_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError>;
    fn endpoint(tx: Option<Self::Tx>, rx: Option<Self::Rx>, batch: usize, size: usize) -> Result<Box<dyn Endpoint>>;
}

struct SpscChan<M>(PhantomData<M>);
struct MpmcChan<M>(PhantomData<M>);
struct BytesChan;

impl<M: Pod> Chan for SpscChan<M> {
    type Tx = Producer<M>;
    type Rx = Consumer<M>;
    fn create_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        Producer::create(name, opts)
    }
    fn open_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        Producer::open(name, opts)
    }
    fn create_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        Consumer::create(name, opts)
    }
    fn open_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        Consumer::open(name, opts)
    }
    fn endpoint(tx: Option<Self::Tx>, rx: Option<Self::Rx>, batch: usize, size: usize) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(TypedEndpoint::<M, _, _>::new(tx, rx, batch, size)?))
    }
}

impl<M: Pod> Chan for MpmcChan<M> {
    type Tx = MpmcProducer<M>;
    type Rx = MpmcConsumer<M>;
    fn create_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        MpmcProducer::create(name, opts)
    }
    fn open_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        MpmcProducer::open(name, opts)
    }
    fn create_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        MpmcConsumer::create(name, opts)
    }
    fn open_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        MpmcConsumer::open(name, opts)
    }
    fn endpoint(tx: Option<Self::Tx>, rx: Option<Self::Rx>, batch: usize, size: usize) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(TypedEndpoint::<M, _, _>::new(tx, rx, batch, size)?))
    }
}

impl Chan for BytesChan {
    type Tx = ByteProducer;
    type Rx = ByteConsumer;
    fn create_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        ByteProducer::create(name, opts)
    }
    fn open_tx(name: &str, opts: Options) -> Result<Self::Tx, OpenError> {
        ByteProducer::open(name, opts)
    }
    fn create_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        ByteConsumer::create(name, opts)
    }
    fn open_rx(name: &str, opts: Options) -> Result<Self::Rx, OpenError> {
        ByteConsumer::open(name, opts)
    }
    fn endpoint(tx: Option<Self::Tx>, rx: Option<Self::Rx>, _batch: usize, size: usize) -> Result<Box<dyn Endpoint>> {
        if let Some(tx) = &tx {
            if tx.max_record_len() < size {
                return Err(BenchError::other(format!(
                    "shmlane-bytes: a {size}-byte record does not fit a {}-byte ring",
                    tx.capacity()
                )));
            }
        }
        Ok(Box::new(BytesEndpoint { tx, rx }))
    }
}

/// A segment name no other run, measurement or process uses.
fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("shmlane-bench-{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn open_err(what: &str, name: &str, e: OpenError) -> BenchError {
    BenchError::other(format!("{what} {name}: {e}"))
}

/// A value only the process that made it may drop. Both processes inherit a
/// copy at `fork`; in any other process it is forgotten instead (its `Drop`
/// would act on state the two copies share: role locks, the name).
struct ParentOnly<T> {
    pid: u32,
    value: Option<T>,
}

impl<T> ParentOnly<T> {
    fn new(value: T) -> Self {
        Self { pid: std::process::id(), value: Some(value) }
    }

    fn take(mut self) -> Result<T> {
        if std::process::id() != self.pid {
            return Err(BenchError::other("shmlane: the creating handles belong to the parent process"));
        }
        self.value.take().ok_or_else(|| BenchError::other("shmlane: handles already taken"))
    }
}

impl<T> Drop for ParentOnly<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            if std::process::id() != self.pid {
                std::mem::forget(value);
            }
        }
    }
}

/// How long the parent waits for the child to open its segments.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
const ATTACH_PENDING: u32 = 0;
const ATTACH_OK: u32 = 1;
const ATTACH_FAILED: u32 = 2;

/// Set by the child once it opened its segments (or failed to) and removed
/// their names.
#[derive(Debug)]
#[repr(C, align(64))]
struct AttachFlag {
    state: AtomicU32,
}

// SAFETY: one atomic; zero (`ATTACH_PENDING`) is valid, no `Drop`, alignment 64.
unsafe impl ZeroShared for AttachFlag {}

/// The segments of one measurement, created by the parent (the pinger or
/// receiver). Streaming: `back` carries sender -> receiver. Round trip:
/// `forth` carries pinger -> ponger (ping), `back` ponger -> pinger (pong).
struct ShmPrepared<C: Chan> {
    wait: WaitStrategy,
    batch: usize,
    size: usize,
    back: String,
    forth: Option<String>,
    /// The parent's handles: producer of `forth`, consumer of `back`.
    parent: ParentOnly<(Option<C::Tx>, C::Rx)>,
    attached: Shared<AttachFlag>,
}

impl<C: Chan> ShmPrepared<C> {
    fn create(mode: Mode, wait: WaitStrategy, capacity: u64, batch: usize, size: usize) -> Result<Box<dyn Prepared>> {
        let opts = Options::new().capacity(capacity).wait(wait);
        let back = unique_name(if mode == Mode::Rtt { "pong" } else { "data" });
        let rx = C::create_rx(&back, opts.clone()).map_err(|e| open_err("creating", &back, e))?;
        // If this fails, `rx` drops here, in the parent, and removes `back`.
        let (forth, tx) = match mode {
            Mode::Stream => (None, None),
            Mode::Rtt => {
                let name = unique_name("ping");
                let tx = C::create_tx(&name, opts).map_err(|e| open_err("creating", &name, e))?;
                (Some(name), Some(tx))
            }
        };
        let attached = Shared::<AttachFlag>::new()?;
        Ok(Box::new(Self { wait, batch, size, back, forth, parent: ParentOnly::new((tx, rx)), attached }))
    }
}

impl<C: Chan> Prepared for ShmPrepared<C> {
    fn endpoint(self: Box<Self>, role: Role) -> Result<Box<dyn Endpoint>> {
        let Self { wait, batch, size, back, forth, parent, attached } = *self;
        match role {
            Role::Pinger | Role::Receiver => {
                let (tx, rx) = parent.take()?;
                wait_for_peer(&attached.state)?;
                C::endpoint(tx, Some(rx), batch, size)
            }
            Role::Ponger | Role::Sender => {
                // Forgets the parent's handles (we are the child).
                drop(parent);
                let opts = Options::new().wait(wait);
                let tx = C::open_tx(&back, opts.clone()).map_err(|e| open_err("opening", &back, e));
                let rx = forth.as_deref().map(|n| C::open_rx(n, opts).map_err(|e| open_err("opening", n, e)));
                // Both sides hold the segments now (or this side failed and
                // the parent's handles remove them): the names are not needed.
                for name in std::iter::once(back.as_str()).chain(forth.as_deref()) {
                    let _ = ::shmlane::remove(name, None);
                }
                let ok = tx.is_ok() && rx.as_ref().is_none_or(|r| r.is_ok());
                // Release: the parent's Acquire load sees the names removed.
                attached.state.store(if ok { ATTACH_OK } else { ATTACH_FAILED }, Ordering::Release);
                C::endpoint(Some(tx?), rx.transpose()?, batch, size)
            }
        }
    }
}

/// Waits until the child opened its segments (and removed their names).
fn wait_for_peer(state: &AtomicU32) -> Result<()> {
    let start = Instant::now();
    loop {
        // Acquire: pairs with the child's Release store.
        match state.load(Ordering::Acquire) {
            ATTACH_OK => return Ok(()),
            ATTACH_PENDING if start.elapsed() < ATTACH_TIMEOUT => std::thread::sleep(Duration::from_micros(20)),
            ATTACH_PENDING => {
                return Err(BenchError::other(format!(
                    "shmlane: the peer did not open its segments within {} s",
                    ATTACH_TIMEOUT.as_secs()
                )));
            }
            _ => return Err(BenchError::other("shmlane: the peer could not open its segments")),
        }
    }
}

fn cannot(what: &str) -> BenchError {
    BenchError::other(format!("this side of the shmlane transport cannot {what}"))
}

/// Sending `M`s, one at a time or many at once.
trait TypedTx<M> {
    fn send_one(&mut self, msg: M) -> Result<()>;
    fn send_many(&mut self, msgs: &[M]) -> Result<()>;
}

/// Receiving `M`s, one at a time or what is there (at least one).
trait TypedRx<M> {
    fn recv_one(&mut self) -> Result<M>;
    fn recv_many(&mut self, out: &mut [M]) -> Result<usize>;
}

impl<M: Pod> TypedTx<M> for Producer<M> {
    #[inline]
    fn send_one(&mut self, msg: M) -> Result<()> {
        self.send(msg).map_err(|e| BenchError::other(format!("send: {e}")))
    }
    fn send_many(&mut self, msgs: &[M]) -> Result<()> {
        self.send_batch(msgs).map_err(|e| BenchError::other(format!("send_batch: {e}")))
    }
}

impl<M: Pod> TypedRx<M> for Consumer<M> {
    #[inline]
    fn recv_one(&mut self) -> Result<M> {
        self.recv().map_err(|e| BenchError::other(format!("recv: {e}")))
    }
    fn recv_many(&mut self, out: &mut [M]) -> Result<usize> {
        self.recv_batch(out).map_err(|e| BenchError::other(format!("recv_batch: {e}")))
    }
}

impl<M: Pod> TypedTx<M> for MpmcProducer<M> {
    #[inline]
    fn send_one(&mut self, msg: M) -> Result<()> {
        self.send(msg).map_err(|e| BenchError::other(format!("send: {e}")))
    }
    fn send_many(&mut self, msgs: &[M]) -> Result<()> {
        self.send_batch(msgs).map_err(|e| BenchError::other(format!("send_batch: {e}")))
    }
}

impl<M: Pod> TypedRx<M> for MpmcConsumer<M> {
    #[inline]
    fn recv_one(&mut self) -> Result<M> {
        self.recv().map_err(|e| BenchError::other(format!("recv: {e}")))
    }
    fn recv_many(&mut self, out: &mut [M]) -> Result<usize> {
        // No batch receive on MPMC: one at a time.
        let first = out.first_mut().ok_or_else(|| BenchError::other("recv_many into nothing"))?;
        *first = self.recv_one()?;
        Ok(1)
    }
}

/// Typed messages: the harness's bytes are the bytes of one `M`. With
/// `batch > 1` (streaming) the sender gathers `batch` messages and publishes
/// them with one `send_batch`, and the receiver takes what is there with one
/// `recv_batch`; the harness still fills and checks each message in place.
struct TypedEndpoint<M: Pod, T: TypedTx<M>, R: TypedRx<M>> {
    tx: Option<T>,
    rx: Option<R>,
    /// Messages being gathered (`pending` of them filled).
    out: Vec<M>,
    pending: usize,
    /// Messages received by `recv_batch` and not yet handed out:
    /// `inbox[head..avail]` (empty without batching).
    inbox: Vec<M>,
    head: usize,
    avail: usize,
}

impl<M: Pod, T: TypedTx<M>, R: TypedRx<M>> TypedEndpoint<M, T, R> {
    fn new(tx: Option<T>, rx: Option<R>, batch: usize, size: usize) -> Result<Self> {
        if size_of::<M>() != size {
            return Err(BenchError::other(format!(
                "typed message of {} bytes for {size}-byte messages",
                size_of::<M>()
            )));
        }
        let batch = batch.max(1);
        let out = if tx.is_some() { vec![M::zeroed(); batch] } else { Vec::new() };
        // Single messages come straight from `recv`; batches land here.
        let inbox = if rx.is_some() && batch > 1 { vec![M::zeroed(); batch] } else { Vec::new() };
        Ok(Self { tx, rx, out, pending: 0, inbox, head: 0, avail: 0 })
    }

    /// Lets `write` fill the next outgoing message, and sends it (or the
    /// batch it completes).
    #[inline]
    fn push(&mut self, write: impl FnOnce(&mut [u8])) -> Result<()> {
        let tx = self.tx.as_mut().ok_or_else(|| cannot("send"))?;
        let single = self.out.len() == 1;
        let slot = &mut self.out[self.pending];
        write(bytemuck::bytes_of_mut(slot));
        if single {
            return tx.send_one(*slot);
        }
        self.pending += 1;
        if self.pending == self.out.len() {
            self.pending = 0;
            tx.send_many(&self.out)?;
        }
        Ok(())
    }

    /// Hands the next incoming message to `f`: straight from `recv` (the
    /// value a user of the typed API gets), or from the last `recv_batch`.
    #[inline]
    fn pull(&mut self, f: impl FnOnce(&[u8]) -> Result<()>) -> Result<()> {
        let rx = self.rx.as_mut().ok_or_else(|| cannot("receive"))?;
        if self.inbox.is_empty() {
            let msg = rx.recv_one()?;
            return f(bytemuck::bytes_of(&msg));
        }
        if self.head == self.avail {
            self.head = 0;
            self.avail = 0;
            self.avail = rx.recv_many(&mut self.inbox)?;
        }
        let msg = &self.inbox[self.head];
        self.head += 1;
        f(bytemuck::bytes_of(msg))
    }
}

fn check_len(got: usize, want: usize) -> Result<()> {
    if got == want { Ok(()) } else { Err(BenchError::other(format!("message of {got} bytes, expected {want}"))) }
}

impl<M: Pod, T: TypedTx<M>, R: TypedRx<M>> Endpoint for TypedEndpoint<M, T, R> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        check_len(msg.len(), size_of::<M>())?;
        self.push(|slot| slot.copy_from_slice(msg))
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        check_len(buf.len(), size_of::<M>())?;
        self.pull(|msg| {
            buf.copy_from_slice(msg);
            Ok(())
        })
    }

    fn send_with(&mut self, scratch: &mut [u8], fill: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        check_len(scratch.len(), size_of::<M>())?;
        self.push(fill)
    }

    fn recv_with(&mut self, scratch: &mut [u8], check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        check_len(scratch.len(), size_of::<M>())?;
        self.pull(check)
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending > 0 {
            let tx = self.tx.as_mut().ok_or_else(|| cannot("send"))?;
            let n = std::mem::take(&mut self.pending);
            tx.send_many(&self.out[..n])?;
        }
        Ok(())
    }
}

impl<M: Pod, T: TypedTx<M>, R: TypedRx<M>> Drop for TypedEndpoint<M, T, R> {
    fn drop(&mut self) {
        // A harness that forgot to `flush` still delivers what was gathered.
        let _ = self.flush();
    }
}

/// Byte records, zero copy: `send_with` fills the reserved record in the
/// ring, `recv_with` checks the record in the ring.
struct BytesEndpoint {
    tx: Option<ByteProducer>,
    rx: Option<ByteConsumer>,
}

impl Endpoint for BytesEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let tx = self.tx.as_mut().ok_or_else(|| cannot("send"))?;
        tx.send(msg).map_err(|e| BenchError::other(format!("send: {e}")))
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let rx = self.rx.as_mut().ok_or_else(|| cannot("receive"))?;
        let record = rx.recv().map_err(|e| BenchError::other(format!("recv: {e}")))?;
        check_len(record.len(), buf.len())?;
        buf.copy_from_slice(&record);
        Ok(())
    }

    fn send_with(&mut self, scratch: &mut [u8], fill: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        let tx = self.tx.as_mut().ok_or_else(|| cannot("send"))?;
        let mut grant = tx.reserve(scratch.len()).map_err(|e| BenchError::other(format!("reserve: {e}")))?;
        fill(&mut grant);
        grant.commit();
        Ok(())
    }

    fn recv_with(&mut self, scratch: &mut [u8], check: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let rx = self.rx.as_mut().ok_or_else(|| cannot("receive"))?;
        let record = rx.recv().map_err(|e| BenchError::other(format!("recv: {e}")))?;
        check_len(record.len(), scratch.len())?;
        // The space returns to the producer when `record` drops, after the check.
        check(&record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<const N: usize>() -> usize {
        N
    }

    #[test]
    fn typed_sizes_match_the_dispatch() {
        assert_eq!(size_of::<Msg<8>>(), 64);
        for size in TYPED_SIZES {
            assert_eq!(for_typed_size!(size, words()), Some(size / 8), "{size}");
        }
        for size in [0, 1, 13, 100, 96, 131072] {
            assert_eq!(for_typed_size!(size, words()), None, "{size}");
            assert!(ShmlaneTransport::spsc().unsupported(size).is_some());
            assert!(ShmlaneTransport::bytes().unsupported(size).is_none());
        }
    }
}
