//! What a side does when it has nothing to do, and the futex handshake that
//! lets it sleep without ever losing a wake-up.
//!
//! # The handshake
//!
//! One [`Doorbell`] per direction (data for consumers, space for producers).
//! The sleeper:
//!
//! 1. sees `armed` (Acquire) — the waker has promised to check on every
//!    publish from now on; otherwise it only naps briefly and polls again;
//! 2. reads `epoch` (Acquire), increments `waiting` (the sleeper count),
//!    issues `fence(SeqCst)`, re-checks the ring;
//! 3. only then calls `FUTEX_WAIT(epoch, e, timeout)` with the epoch it read,
//!    and decrements `waiting` when it returns.
//!
//! The waker publishes (Release), issues `fence(SeqCst)`, and only if it
//! sees `waiting != 0` bumps `epoch` (Release) and calls `FUTEX_WAKE` (all
//! sleepers). The two fences form a Dekker pair: either
//! the sleeper's re-check sees the publish, or the waker sees `waiting`.
//! In the second case the epoch moves after the sleeper read it, so its
//! `FUTEX_WAIT` either returns at once or is woken. The epoch only grows,
//! so another sleeper re-announcing cannot hide the wake (it could with a
//! 0/1 futex word: loom found that ABA with two MPMC consumers).
//!
//! # Why `armed`
//!
//! The waker's fence drains its store buffer, which costs a cross-core round
//! trip when the consumer is polling the line just written. A pair of
//! busy-spinning handles must not pay it. So the fence is taken only once a
//! sleeper has announced itself (`parker = 1`) and the waker has answered
//! (`armed = 1`, Release, written at a publish). Publishes before `armed` are
//! visible to a sleeper that acquired it; publishes after it all fence. A
//! waker that never sees `parker` never fences, and its peer never parks on
//! the futex (it naps instead): no lost wake-up in either case, and no
//! `SeqCst` on the busy-spin fast path.

use crate::layout::Doorbell;
use crate::sync::{self, FutexWait, Ordering, fence, futex_wait, futex_wake};
use std::time::Duration;

/// What a handle does when its ring is full (sending) or empty (receiving).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaitStrategy {
    /// Spin on the ring forever. Lowest latency; burns a core while waiting.
    /// Best for hot pipelines with a core per side.
    #[default]
    BusySpin,
    /// Spin `spins` times, then sleep on the futex. Low latency while
    /// traffic flows, no CPU while idle.
    SpinThenPark {
        /// Polls before parking.
        spins: u32,
    },
    /// Sleep on the futex as soon as there is nothing to do. Least CPU;
    /// every wake-up costs a system call on each side.
    Park,
}

impl WaitStrategy {
    /// True if a handle with this strategy may sleep on the futex.
    pub fn may_park(self) -> bool {
        !matches!(self, Self::BusySpin)
    }
}

/// How long a sleeper naps when the waker has not armed yet.
const NAP: Duration = Duration::from_micros(200);
/// Spin iterations between two calls to the caller's `check`.
const CHECK_EVERY: u32 = 1 << 10;

/// The waking half of one doorbell, held by the publishing handle.
#[derive(Debug, Clone, Copy)]
pub struct Waker {
    armed: bool,
}

impl Waker {
    /// A waker for `bell`. Already armed if an earlier holder of this role
    /// armed it (its promise must be kept by whoever takes the role over).
    pub fn new(bell: &Doorbell) -> Self {
        // Relaxed: a new holder of the role acquired it through the kernel
        // (an OFD lock), which orders it after the previous holder's store.
        Self { armed: bell.armed.load(Ordering::Relaxed) != 0 }
    }

    /// Call after every publish. Costs one L1 load while no peer may park.
    #[inline]
    pub fn notify(&mut self, bell: &Doorbell) {
        if !self.armed {
            // Relaxed: ordering is carried by `armed` below; until the sleeper
            // sees `armed` it never parks on the futex.
            if bell.parker.load(Ordering::Relaxed) == 0 {
                return;
            }
            // Release: pairs with the Acquire load of `armed` in `park`: all
            // publishes before this one are visible to a sleeper that sees 1.
            bell.armed.store(1, Ordering::Release);
            self.armed = true;
        }
        ring(bell);
    }
}

/// Wakes whoever sleeps on `bell`, if anyone: the waker half of the
/// handshake. Also used on its own when a handle leaves, so a sleeping peer
/// notices at once instead of at its next liveness probe.
#[cold]
#[inline(never)]
pub fn ring(bell: &Doorbell) {
    // SeqCst fence: the waker half of the Dekker pair with the fence in
    // `park` (publish; fence; load waiting  vs  store waiting; fence;
    // re-check): one of the two sides sees the other's store.
    if !sync::seeded::NO_WAKE_FENCE {
        fence(Ordering::SeqCst);
    }
    // Relaxed: the number of sleepers; the fence above orders it after our
    // publish, and the epoch bump below carries the ordering to sleepers.
    if bell.waiting.load(Ordering::Relaxed) != 0 {
        // Release: pairs with the sleeper's Acquire load of `epoch` in `park`:
        // a sleeper that read the new epoch also sees our publish.
        bell.epoch.fetch_add(1, Ordering::Release);
        // FUTEX_WAKE fails only for a bad address or op, impossible for a
        // word inside a live mapping; the sleeper's bounded timeout would
        // cover it anyway.
        let _ = futex_wake(&bell.epoch);
    }
}

/// Announces that a handle whose strategy may park sleeps on `bell`.
pub fn announce_parker(bell: &Doorbell, strategy: WaitStrategy) {
    if strategy.may_park() {
        // Relaxed: read by `Waker::notify`; the handshake's safety rests on
        // `armed`, not on when this becomes visible.
        bell.parker.store(1, Ordering::Relaxed);
    }
}

/// Result of one [`park`].
enum Parked<T> {
    /// The re-check after announcing succeeded.
    Ready(T),
    /// Slept (or could not yet); the caller tries again.
    Again,
}

/// One sleep on `bell`, for at most `timeout`. `attempt` is the operation
/// the caller is waiting to complete: it is re-run after the fence.
///
fn park<T, E>(
    bell: &Doorbell,
    attempt: &mut impl FnMut() -> Result<Option<T>, E>,
    timeout: Duration,
) -> Result<Parked<T>, E>
where
    E: From<std::io::Error>,
{
    // Acquire: pairs with the Release store of `armed` in `Waker::notify`.
    if bell.armed.load(Ordering::Acquire) == 0 {
        sync::nap(timeout.min(NAP));
        return attempt().map(|v| v.map_or(Parked::Again, Parked::Ready));
    }
    // Acquire: pairs with the Release bump in `ring`: if we read a bumped
    // epoch, the publish before it is visible to the re-check below.
    let epoch = bell.epoch.load(Ordering::Acquire);
    // Relaxed RMW: counts us among the sleepers; ordered before the
    // re-check by the fence below.
    bell.waiting.fetch_add(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the fence in `ring` (Dekker).
    if !sync::seeded::NO_PARK_FENCE {
        fence(Ordering::SeqCst);
    }
    let outcome = match attempt() {
        Ok(Some(v)) => Ok(Parked::Ready(v)),
        Ok(None) => match futex_wait(&bell.epoch, epoch, Some(timeout)) {
            Ok(FutexWait::Returned | FutexWait::TimedOut) => Ok(Parked::Again),
            Err(e) => Err(E::from(e)),
        },
        Err(e) => Err(e),
    };
    // Relaxed: we are no longer a sleeper; a waker that still counts us only
    // makes one spare FUTEX_WAKE.
    bell.waiting.fetch_sub(1, Ordering::Relaxed);
    outcome
}

/// Runs `attempt` until it yields a value, waiting per `strategy` in
/// between, ringing `bell` nobody: the caller's peer rings it.
///
/// `check` is called before each sleep and every few thousand spins; it
/// returns how long the next sleep may last (the caller's deadline and its
/// peer-liveness probe interval) or an error that ends the wait (timeout,
/// peer gone). When it errs, `attempt` runs once more so that whatever the
/// peer committed before it left is still delivered.
///
/// # Errors
/// Whatever `attempt` or `check` return, or a futex error.
pub fn block<T, E>(
    strategy: WaitStrategy,
    bell: &Doorbell,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut check: impl FnMut() -> Result<Duration, E>,
) -> Result<T, E>
where
    E: From<std::io::Error>,
{
    let spin_limit = match strategy {
        WaitStrategy::BusySpin => u32::MAX,
        WaitStrategy::SpinThenPark { spins } => spins,
        WaitStrategy::Park => 0,
    };
    let mut spins = 0u32;
    loop {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        if spins < spin_limit {
            spins += 1;
            sync::spin_loop();
            if spins % CHECK_EVERY == 0 {
                if let Err(e) = check() {
                    return attempt()?.ok_or(e);
                }
                if strategy == WaitStrategy::BusySpin {
                    spins = 0;
                }
            }
            continue;
        }
        let budget = match check() {
            Ok(budget) => budget,
            Err(e) => return attempt()?.ok_or(e),
        };
        if let Parked::Ready(v) = park(bell, &mut attempt, budget)? {
            return Ok(v);
        }
    }
}
