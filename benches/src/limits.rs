//! What the hardware allows, measured in the same run as the transports:
//! the core-to-core cache-line round trip, single-core `memcpy` bandwidth,
//! and a minimal two-process copy-in/copy-out ring (`cross-core-copy`).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{BenchError, Result};
use crate::harness::{Endpoint, Kind, Mode, Prepared, Role, Transport, nanos, new_histogram};
use crate::process::{ChildStats, run_pair};
use crate::sys::{CpuPair, Shared, SharedMem, ZeroShared};

/// One cache line two processes bounce between them.
#[derive(Debug)]
#[repr(C, align(128))]
struct BounceLine {
    value: AtomicU64,
}

// SAFETY: one atomic; zero is valid, no `Drop`, alignment 128.
unsafe impl ZeroShared for BounceLine {}

const BOUNCE_STOP: u64 = u64::MAX;

/// How long a core-to-core measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct C2cWindow {
    /// Unrecorded round trips first.
    pub warmup_count: u64,
    /// Recorded round trips, at most.
    pub count: u64,
    /// Time limit for the recorded part.
    pub max_time: Duration,
}

/// Round-trip times (ns) of one cache line bounced between two processes
/// pinned to `cpus`: the pinger stores an odd value and spins until it reads
/// the next even one, the ponger spins on odd values and answers with `+1`.
///
/// Each round trip is timed with one clock read (the time between
/// consecutive reads), so it includes one `Instant::now()` (~20 ns).
pub fn core_to_core(cpus: CpuPair, w: C2cWindow) -> Result<Histogram<u64>> {
    let line = Shared::<BounceLine>::new()?;
    let (hist, _) = run_pair(
        cpus,
        &line,
        |line, _ctrl| {
            let mut next = 1u64;
            let mut n = 0u64;
            loop {
                let v = line.value.load(Ordering::Acquire);
                if v == next {
                    line.value.store(next + 1, Ordering::Release);
                    next += 2;
                    n += 1;
                } else if v == BOUNCE_STOP {
                    break;
                }
            }
            Ok(ChildStats { msgs: n, ..ChildStats::default() })
        },
        |line, _ctrl| {
            let mut hist = new_histogram()?;
            let mut v = 1u64;
            let mut bounce = || {
                line.value.store(v, Ordering::Release);
                while line.value.load(Ordering::Acquire) != v + 1 {}
                v += 2;
            };
            for _ in 0..w.warmup_count {
                bounce();
            }
            let end = Instant::now() + w.max_time;
            let mut prev = Instant::now();
            for _ in 0..w.count {
                bounce();
                let now = Instant::now();
                hist.saturating_record(nanos(now - prev));
                prev = now;
                if now >= end {
                    break;
                }
            }
            line.value.store(BOUNCE_STOP, Ordering::Release);
            Ok(hist)
        },
    )?;
    Ok(hist)
}

/// Single-core `memcpy` bandwidth for one size, in bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct MemcpyResult {
    /// Best of the runs.
    pub best: f64,
    /// Median of the runs.
    pub median: f64,
}

/// Copies `size` bytes between two hot buffers over and over, `runs` times
/// for `run_time` each, on the calling thread's CPU.
pub fn memcpy(size: usize, runs: usize, run_time: Duration) -> Result<MemcpyResult> {
    if size == 0 || runs == 0 {
        return Err(BenchError::other("memcpy: size and runs must be positive"));
    }
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    // Copies per clock read: about 1 MiB worth, at least one.
    let batch = ((1usize << 20) / size).clamp(1, 1 << 14);
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut copies = 0usize;
            let elapsed = loop {
                for _ in 0..batch {
                    let s = black_box(src.as_slice());
                    let d = black_box(dst.as_mut_slice());
                    d.copy_from_slice(s);
                }
                copies += batch;
                let e = start.elapsed();
                if e >= run_time {
                    break e;
                }
            };
            (copies * size) as f64 / elapsed.as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Ok(MemcpyResult { best: rates[rates.len() - 1], median: rates[rates.len() / 2] })
}

/// `cross-core-copy`: the least a shared-memory ring can do between two
/// processes. Fixed-size slots, a head and a tail index on lines of their
/// own, cached copies of the other side's index, a copy into the slot and a
/// copy out of it. Large messages through any shm transport are bound by the
/// same cache-line traffic, so this is the reference for big sizes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossCoreCopy;

/// Bytes of ring the slot count aims for.
const XCOPY_RING_BYTES: usize = 1 << 20;
const XCOPY_HEAD: usize = 0;
const XCOPY_TAIL: usize = 128;
const XCOPY_DATA: usize = 4096;

impl Transport for CrossCoreCopy {
    fn name(&self) -> &str {
        "cross-core-copy"
    }

    fn kind(&self) -> Kind {
        Kind::Limit
    }

    fn modes(&self) -> &'static [Mode] {
        &[Mode::Stream]
    }

    fn prepare(&self, mode: Mode, size: usize) -> Result<Box<dyn Prepared>> {
        if mode != Mode::Stream {
            return Err(BenchError::other("cross-core-copy only streams"));
        }
        let stride = size.max(1).next_multiple_of(64);
        let slots = (XCOPY_RING_BYTES / stride).clamp(4, 16384).next_power_of_two();
        let mem = SharedMem::new(XCOPY_DATA + slots * stride)?;
        Ok(Box::new(XcopyPrepared { mem, stride, slots }))
    }
}

#[derive(Debug)]
struct XcopyPrepared {
    mem: SharedMem,
    stride: usize,
    slots: usize,
}

impl Prepared for XcopyPrepared {
    fn endpoint(self: Box<Self>, role: Role) -> Result<Box<dyn Endpoint>> {
        if !matches!(role, Role::Sender | Role::Receiver) {
            return Err(BenchError::other("cross-core-copy only streams"));
        }
        let XcopyPrepared { mem, stride, slots } = *self;
        Ok(Box::new(XcopyEndpoint { mem, stride, mask: slots as u64 - 1, pos: 0, cached: 0 }))
    }
}

#[derive(Debug)]
struct XcopyEndpoint {
    mem: SharedMem,
    stride: usize,
    mask: u64,
    /// Next position this side writes (sender) or reads (receiver).
    pos: u64,
    /// Last seen value of the other side's index.
    cached: u64,
}

impl XcopyEndpoint {
    fn index(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: offsets 0 and 128 are inside the first page of the mapping,
        // 8-byte aligned, zero-initialised, accessed only atomically, and the
        // mapping lives as long as `self`.
        unsafe { &*self.mem.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    fn slot(&self, pos: u64) -> *mut u8 {
        // `pos & mask` < slots, so the slot lies inside the mapping.
        let slot = (pos & self.mask) as usize;
        // SAFETY: XCOPY_DATA + slot * stride + stride <= mapping length (see `prepare`).
        unsafe { self.mem.as_ptr().add(XCOPY_DATA + slot * self.stride) }
    }
}

impl Endpoint for XcopyEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.stride {
            return Err(BenchError::other("message larger than the slot"));
        }
        let slots = self.mask + 1;
        while self.pos - self.cached >= slots {
            self.cached = self.index(XCOPY_TAIL).load(Ordering::Acquire);
            if self.pos - self.cached >= slots {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the slot is `stride >= msg.len()` bytes inside the mapping;
        // the receiver is done with it (tail passed it, Acquire above) and
        // will not read it until the Release of `head` below.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.slot(self.pos), msg.len()) };
        self.pos += 1;
        self.index(XCOPY_HEAD).store(self.pos, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.len() > self.stride {
            return Err(BenchError::other("message larger than the slot"));
        }
        while self.pos >= self.cached {
            self.cached = self.index(XCOPY_HEAD).load(Ordering::Acquire);
            if self.pos >= self.cached {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the slot is `stride >= buf.len()` bytes inside the mapping;
        // the sender published it (Acquire of `head` above) and will not
        // overwrite it until the Release of `tail` below.
        unsafe { std::ptr::copy_nonoverlapping(self.slot(self.pos), buf.as_mut_ptr(), buf.len()) };
        self.pos += 1;
        self.index(XCOPY_TAIL).store(self.pos, Ordering::Release);
        Ok(())
    }
}
