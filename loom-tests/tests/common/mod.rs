//! Shared pieces of the loom models.
#![allow(dead_code)]

use shmlane_ring::{Corruption, Flavor, Params, Region};
use std::time::Duration;

/// Why a blocking call in a model stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Timeout,
    Disconnected,
    Corrupted(Corruption),
    TooLarge,
    Io,
}

impl From<Corruption> for Stop {
    fn from(c: Corruption) -> Self {
        Stop::Corrupted(c)
    }
}

impl From<std::io::Error> for Stop {
    fn from(_: std::io::Error) -> Self {
        Stop::Io
    }
}

impl From<shmlane_ring::ReserveError> for Stop {
    fn from(e: shmlane_ring::ReserveError) -> Self {
        match e {
            shmlane_ring::ReserveError::Corrupted(c) => Stop::Corrupted(c),
            shmlane_ring::ReserveError::TooLarge { .. } => Stop::TooLarge,
        }
    }
}

/// A `check` that never stops the wait and lets it sleep "forever" (loom's
/// futex treats any non-zero timeout as unbounded, so a lost wake-up
/// deadlocks the model).
pub fn forever() -> Result<Duration, Stop> {
    Ok(Duration::from_secs(3600))
}

pub fn spsc(capacity: u64) -> Region {
    Region::heap(Params::fixed(Flavor::Spsc, capacity, 8, 8).unwrap()).unwrap()
}

pub fn mpmc(capacity: u64) -> Region {
    Region::heap(Params::fixed(Flavor::Mpmc, capacity, 8, 8).unwrap()).unwrap()
}

pub fn bytes() -> Region {
    Region::heap(Params::bytes(64).unwrap()).unwrap()
}

/// loom's builder with a preemption bound from `LOOM_MAX_PREEMPTIONS`
/// (default 3), so every model finishes in CI time.
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.max_branches = 20_000;
    builder.check(f);
}

/// Spins (yielding to loom) until `f` returns Some.
pub fn spin<T>(mut f: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        loom::thread::yield_now();
    }
}
