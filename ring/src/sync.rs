//! The only place that names atomics, fences, spinning and the futex.
//!
//! Two halves switched on `cfg(loom)`: std atomics and the real (shared,
//! never `FUTEX_PRIVATE_FLAG`) futex normally; loom's atomics and a
//! mutex/condvar futex model under loom, so the loom models in
//! `shmlane-loom-tests` run the real algorithm code. The algorithm files
//! import only from here and carry no `#[cfg]`.
//!
//! [`AccessTracker`] is how loom sees the slot bytes: the slots are raw
//! memory (they live in a mapping shared with another process), so every
//! access to them goes through a tracker guard. The std tracker is a zero-size
//! no-op; the loom tracker holds one `loom::cell::UnsafeCell<()>` per 8-byte
//! granule and reports a causality violation when two accesses race.

pub(crate) use imp::*;

/// Seeded bugs for the loom suite's "the models have teeth" tests. Each is
/// compiled in only with `--cfg shmlane_seeded_bug="…"`, never in a build a
/// user can make by accident.
pub(crate) mod seeded {
    /// Drop the `SeqCst` fence on the sleeper's side of the handshake.
    pub(crate) const NO_PARK_FENCE: bool = cfg!(shmlane_seeded_bug = "no_park_fence");
    /// Drop the `SeqCst` fence on the waker's side of the handshake.
    pub(crate) const NO_WAKE_FENCE: bool = cfg!(shmlane_seeded_bug = "no_wake_fence");
    /// Publish the SPSC slot sequence and write position with `Relaxed`.
    pub(crate) const RELAXED_PUBLISH: bool = cfg!(shmlane_seeded_bug = "relaxed_publish");
    /// Skip the broadcast reader's second read of the slot's version.
    pub(crate) const NO_VERSION_RECHECK: bool = cfg!(shmlane_seeded_bug = "no_version_recheck");
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    use std::time::Duration;

    /// One spin-wait iteration (`pause` on x86).
    #[inline]
    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }

    /// Sleep briefly without the futex (the waker has not armed yet).
    pub(crate) fn nap(d: Duration) {
        std::thread::sleep(d);
    }

    /// The result of one futex wait.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum FutexWait {
        /// Woken, interrupted, or the word no longer held the expected value.
        Returned,
        /// The timeout elapsed.
        TimedOut,
    }

    /// `FUTEX_WAIT` on `word` while it holds `expected`, for at most `timeout`.
    ///
    /// Shared futex (no `FUTEX_PRIVATE_FLAG`): the word lives in a
    /// `MAP_SHARED` mapping and the waker is usually another process.
    /// `EINTR` and `EAGAIN` are normal returns; `ETIMEDOUT` is reported.
    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> std::io::Result<FutexWait> {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // The kernel compares the word atomically with `expected`.
        // SAFETY: `word` is a live aligned AtomicU32 (borrowed) and `ts_ptr` is
        // null or points at `ts` on this frame; FUTEX_WAIT reads only those.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if rc == 0 {
            return Ok(FutexWait::Returned);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(FutexWait::Returned),
            Some(libc::ETIMEDOUT) => Ok(FutexWait::TimedOut),
            _ => Err(err),
        }
    }

    /// `FUTEX_WAKE` every waiter on `word` (shared futex). Returns how many
    /// were woken.
    pub(crate) fn futex_wake(word: &AtomicU32) -> std::io::Result<usize> {
        // SAFETY: `word` is a live aligned `AtomicU32`; FUTEX_WAKE only uses
        // its address as a key and does not dereference the other arguments.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc as usize) }
    }

    /// A futex word as it sits in the segment: a plain `AtomicU32`.
    pub(crate) type FutexWord = AtomicU32;

    /// No-op access tracker: slot accesses are unchecked outside loom.
    #[derive(Debug, Default)]
    pub(crate) struct AccessTracker;

    /// Guard for one tracked access (nothing outside loom).
    #[derive(Debug)]
    pub(crate) struct AccessGuard;

    impl AccessGuard {
        /// Ends the tracked access.
        #[inline(always)]
        pub(crate) fn end(self) {}
    }

    impl AccessTracker {
        #[inline(always)]
        pub(crate) fn read(&self, _offset: usize, _len: usize) -> AccessGuard {
            AccessGuard
        }
        #[inline(always)]
        pub(crate) fn write(&self, _offset: usize, _len: usize) -> AccessGuard {
            AccessGuard
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    use loom::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// Under loom a spin is a yield, or the model would never end.
    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }

    /// Under loom time does not pass: a nap is a yield.
    pub(crate) fn nap(_d: Duration) {
        loom::thread::yield_now();
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum FutexWait {
        Returned,
        TimedOut,
    }

    /// The futex model: an atomic word plus a mutex/condvar pair standing in
    /// for the kernel's hash bucket. `wait` checks the word under the mutex
    /// and blocks on the condvar, exactly as the kernel checks the word under
    /// its bucket lock; `wake` takes the mutex and notifies everyone.
    ///
    /// Timeouts: `Some(Duration::ZERO)` returns `TimedOut` at once (a model of
    /// a timeout that has already fired, and of a spurious return); any other
    /// timeout blocks like `None`, so a lost wake-up shows as a loom deadlock
    /// instead of being hidden by a timer.
    #[derive(Debug)]
    pub(crate) struct FutexWord {
        word: AtomicU32,
        lock: Mutex<()>,
        cond: Condvar,
    }

    impl Default for FutexWord {
        fn default() -> Self {
            Self { word: AtomicU32::new(0), lock: Mutex::new(()), cond: Condvar::new() }
        }
    }

    impl std::ops::Deref for FutexWord {
        type Target = AtomicU32;
        fn deref(&self) -> &AtomicU32 {
            &self.word
        }
    }

    pub(crate) fn futex_wait(word: &FutexWord, expected: u32, timeout: Option<Duration>) -> std::io::Result<FutexWait> {
        if timeout == Some(Duration::ZERO) {
            // A timer that fires at once: let the other threads run first so
            // a caller looping on timeouts is not an unbounded spin.
            loom::thread::yield_now();
            return Ok(FutexWait::TimedOut);
        }
        let guard = word.lock.lock().unwrap();
        // Relaxed, as the kernel's own compare: ordering comes from the
        // caller's fences and from the mutex.
        if word.word.load(Ordering::Relaxed) != expected {
            return Ok(FutexWait::Returned);
        }
        drop(word.cond.wait(guard).unwrap());
        Ok(FutexWait::Returned)
    }

    pub(crate) fn futex_wake(word: &FutexWord) -> std::io::Result<usize> {
        let _guard = word.lock.lock().unwrap();
        word.cond.notify_all();
        Ok(1)
    }

    /// One loom cell per 8-byte granule of the slot area.
    #[derive(Debug)]
    pub(crate) struct AccessTracker {
        cells: Vec<loom::cell::UnsafeCell<()>>,
    }

    /// Live tracked accesses; loom checks them when they are created.
    #[derive(Debug)]
    pub(crate) struct AccessGuard {
        _reads: Vec<loom::cell::ConstPtr<()>>,
        _writes: Vec<loom::cell::MutPtr<()>>,
    }

    impl AccessGuard {
        /// Ends the tracked access.
        pub(crate) fn end(self) {
            drop(self);
        }
    }

    impl AccessTracker {
        pub(crate) fn new(len_bytes: usize) -> Self {
            Self { cells: (0..len_bytes.div_ceil(8)).map(|_| loom::cell::UnsafeCell::new(())).collect() }
        }

        fn granules(&self, offset: usize, len: usize) -> std::ops::Range<usize> {
            let end = (offset + len.max(1)).div_ceil(8).min(self.cells.len());
            (offset / 8).min(end)..end
        }

        pub(crate) fn read(&self, offset: usize, len: usize) -> AccessGuard {
            let reads = self.granules(offset, len).map(|i| self.cells[i].get()).collect();
            AccessGuard { _reads: reads, _writes: Vec::new() }
        }

        pub(crate) fn write(&self, offset: usize, len: usize) -> AccessGuard {
            let writes = self.granules(offset, len).map(|i| self.cells[i].get_mut()).collect();
            AccessGuard { _reads: Vec::new(), _writes: writes }
        }
    }
}
