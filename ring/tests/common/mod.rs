//! Helpers shared by the integration tests: an error type for the blocking
//! calls, a `check` closure with a bail-out, raw access to a region's bytes
//! and a deterministic pseudo-random stream.
// Each test binary uses a different subset.
#![allow(dead_code)]

use shmlane_ring::{Corruption, HeapMemory, Memory, ReserveError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Error type for the `*_blocking` calls in tests.
#[derive(Debug)]
pub enum TestError {
    /// The `check` closure ended the wait.
    Timeout,
    /// A reservation was refused.
    Reserve(ReserveError),
    /// The ring saw impossible shared state.
    Corrupt(Corruption),
    /// The futex failed.
    Io(std::io::Error),
}

impl From<ReserveError> for TestError {
    fn from(e: ReserveError) -> Self {
        Self::Reserve(e)
    }
}

impl From<Corruption> for TestError {
    fn from(e: Corruption) -> Self {
        Self::Corrupt(e)
    }
}

impl From<std::io::Error> for TestError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// How long a blocking call in a test may wait before the test fails
/// instead of hanging. Generous: the CI machine is a noisy 2-core VM.
pub const BAIL_OUT: Duration = Duration::from_secs(60);

/// A `check` for blocking calls: sleep at most 50 ms at a time, and give up
/// (with [`TestError::Timeout`]) only after [`BAIL_OUT`], so a lost wake-up
/// or a livelock fails the test rather than hanging it.
///
/// It also yields: a busy-spinning wait calls `check` every thousand or so
/// spins, and on a machine with fewer free cores than test threads the peer
/// it waits for may be queued behind it on the same core.
pub fn patient() -> impl FnMut() -> Result<Duration, TestError> {
    let start = Instant::now();
    move || {
        std::thread::yield_now();
        if start.elapsed() > BAIL_OUT { Err(TestError::Timeout) } else { Ok(Duration::from_millis(50)) }
    }
}

/// A `check` that ends the wait once `limit` has passed since it was made.
pub fn deadline(limit: Duration) -> impl FnMut() -> Result<Duration, TestError> {
    let end = Instant::now() + limit;
    move || {
        let now = Instant::now();
        if now >= end { Err(TestError::Timeout) } else { Ok(end - now) }
    }
}

/// Counts the rounds of a `try_*` retry loop and fails the test after
/// [`BAIL_OUT`] instead of spinning forever.
#[derive(Debug)]
pub struct Retry {
    start: Instant,
    rounds: u64,
    what: &'static str,
}

impl Retry {
    /// A retry loop for `what`.
    pub fn new(what: &'static str) -> Self {
        Self { start: Instant::now(), rounds: 0, what }
    }

    /// Backs off once (yielding, as the other threads of the test may
    /// share this core); panics after [`BAIL_OUT`].
    pub fn again(&mut self) {
        self.rounds += 1;
        if self.rounds % 1024 == 0 {
            assert!(self.start.elapsed() < BAIL_OUT, "{} made no progress in {:?}", self.what, BAIL_OUT);
        }
        std::thread::yield_now();
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value for each input.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A tiny xorshift64 generator (never seeded with 0).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(mix(seed) | 1)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A heap region the test keeps a handle on after giving it to a `Region`,
/// to write into it the way a hostile peer would.
pub struct SharedMem(pub Arc<HeapMemory>);

// SAFETY: delegates to HeapMemory, whose guarantees (fixed, 4096-aligned,
// `len` valid bytes, never moved) hold while this Arc keeps it alive.
unsafe impl Memory for SharedMem {
    fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Copies `bytes` into `mem` at byte `offset`.
///
/// Only for tests that own every handle of the region and use none of them
/// from another thread while poking.
pub fn poke(mem: &HeapMemory, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= mem.len(), "poke out of bounds");
    // SAFETY: the range was checked to lie inside the live allocation just
    // above; the test is single-threaded here, so no handle reads or writes
    // these bytes concurrently.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr().add(offset), bytes.len()) };
}

/// Reads `N` bytes of `mem` at byte `offset` (same rules as [`poke`]).
pub fn peek<const N: usize>(mem: &HeapMemory, offset: usize) -> [u8; N] {
    assert!(offset + N <= mem.len(), "peek out of bounds");
    let mut out = [0u8; N];
    // SAFETY: as in `poke`: in bounds (checked above) and not concurrently
    // written.
    unsafe { std::ptr::copy_nonoverlapping(mem.as_ptr().add(offset), out.as_mut_ptr(), N) };
    out
}

/// Held by the threaded stress tests of one test binary so that they run one
/// at a time: with more spinning threads than the machine's cores, a
/// preempted thread would make the others spin out their time slices.
pub fn one_stress_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A poisoned lock only means another stress test failed.
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
