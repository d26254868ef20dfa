//! Operating-system helpers: shared anonymous memory, CPU pinning, resource usage.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::ptr::NonNull;

use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::Pid;

use crate::error::{BenchError, Context, Result};

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping, zero-filled. Created before `fork`,
/// it is the same memory in both processes.
#[derive(Debug)]
pub struct SharedMem {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMem {
    /// Maps `len` bytes (rounded up to whole pages by the kernel), zero-filled.
    pub fn new(len: usize) -> Result<Self> {
        let length = NonZeroUsize::new(len).ok_or_else(|| BenchError::other("shared mapping of 0 bytes"))?;
        // SAFETY: an anonymous mapping at an address the kernel chooses cannot
        // overlap anything Rust already owns; we own the result until `Drop`.
        let ptr =
            unsafe { mmap_anonymous(None, length, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }
                .context("mmap shared anonymous memory")?;
        Ok(Self { ptr: ptr.cast(), len })
    }

    /// Start of the mapping (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length asked for at creation.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from our own successful mmap, and no
        // reference into the mapping outlives `self` (accessors borrow it).
        // An error here cannot be acted on, so it is ignored.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Types for which all-zero bytes are a valid value and that are only used
/// through shared references (atomics), so they may live in a shared mapping.
///
/// # Safety
///
/// The all-zero bit pattern must be a valid `Self`, `Self` must need no
/// `Drop`, and its alignment must not exceed 4096.
pub(crate) unsafe trait ZeroShared {}

/// One `T` in its own shared mapping.
#[derive(Debug)]
pub(crate) struct Shared<T: ZeroShared> {
    mem: SharedMem,
    _type: PhantomData<T>,
}

impl<T: ZeroShared> Shared<T> {
    /// Maps a zeroed `T`.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self { mem: SharedMem::new(size_of::<T>().max(1))?, _type: PhantomData })
    }
}

impl<T: ZeroShared> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is page aligned (>= align_of::<T>() per the
        // `ZeroShared` contract), at least size_of::<T>() bytes, zero-filled
        // (a valid `T` per the contract), and lives as long as `self`.
        unsafe { &*self.mem.as_ptr().cast::<T>() }
    }
}

/// The two CPUs a pair of processes is pinned to, or `None` to not pin.
pub type CpuPair = Option<(usize, usize)>;

/// The first two CPUs this process may run on, or `None` if it may use fewer than two.
pub fn choose_cpus() -> Result<CpuPair> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    let mut cpus = (0..CpuSet::count()).filter(|&cpu| allowed.is_set(cpu).unwrap_or(false));
    Ok(match (cpus.next(), cpus.next()) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    })
}

/// The current CPU affinity mask of the calling thread.
pub fn affinity() -> Result<CpuSet> {
    sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")
}

/// Restores an affinity mask saved with [`affinity`].
pub fn set_affinity(set: &CpuSet) -> Result<()> {
    sched_setaffinity(Pid::from_raw(0), set).context("sched_setaffinity")
}

/// Pins the calling thread to `cpu` and returns the CPU `sched_getcpu()`
/// reports afterwards (which should be `cpu`).
pub fn pin_to(cpu: usize) -> Result<usize> {
    let mut set = CpuSet::new();
    set.set(cpu).context("CpuSet::set")?;
    sched_setaffinity(Pid::from_raw(0), &set).context("sched_setaffinity")?;
    let now = sched_getcpu().context("sched_getcpu")?;
    if now == cpu {
        Ok(now)
    } else {
        Err(BenchError::other(format!("pinned to CPU {cpu} but sched_getcpu() says {now}")))
    }
}

/// Context switches of the calling process so far (`getrusage(RUSAGE_SELF)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Voluntary context switches (`ru_nvcsw`): each one is a blocking system call that slept.
    pub voluntary: u64,
    /// Involuntary context switches (`ru_nivcsw`): preemptions.
    pub involuntary: u64,
}

impl Usage {
    /// Reads the counters now. Returns zeros if `getrusage` fails (it cannot
    /// for `RUSAGE_SELF`), so the hot path never has to handle an error.
    pub fn now() -> Self {
        getrusage(UsageWho::RUSAGE_SELF).map_or(Self::default(), |u| Self {
            voluntary: u64::try_from(u.voluntary_context_switches()).unwrap_or(0),
            involuntary: u64::try_from(u.involuntary_context_switches()).unwrap_or(0),
        })
    }

    /// Counters accumulated since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}
