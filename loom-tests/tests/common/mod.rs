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
    Lagged(u64),
    Io,
}

impl From<shmlane_ring::ReadError> for Stop {
    fn from(e: shmlane_ring::ReadError) -> Self {
        match e {
            shmlane_ring::ReadError::Lagged(n) => Stop::Lagged(n),
            shmlane_ring::ReadError::Corrupted(c) => Stop::Corrupted(c),
        }
    }
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

/// A typed broadcast ring of `capacity` slots of two-word messages.
pub fn broadcast(capacity: u64) -> Region {
    Region::heap(Params::fixed(Flavor::Broadcast, capacity, 16, 8).unwrap()).unwrap()
}

/// The seqlock model: a one-slot ring the writer rewrites while a reader
/// copies it. Every message is two equal words, so a torn copy shows as
/// two different words. With the version re-check a reader gets whole
/// messages in order or `Lagged`; without it (seeded bug) loom finds a
/// delivered `[1, 2]`.
pub fn torn_read_model() {
    use shmlane_ring::{BroadcastReader, BroadcastWriter, ReadError, Start};
    model(|| {
        let region = broadcast(1);
        let mut writer = BroadcastWriter::<[u64; 2]>::attach(region.clone()).unwrap();
        let mut reader = BroadcastReader::<[u64; 2]>::attach(region, Start::Latest).unwrap();
        let w = loom::thread::spawn(move || {
            writer.push(&[1, 1]);
            writer.push(&[2, 2]);
        });
        let mut last = 0;
        for _ in 0..2 {
            match reader.try_read() {
                Ok(Some([a, b])) => {
                    assert_eq!(a, b, "torn read delivered");
                    assert!(a > last, "out of order: {a} after {last}");
                    last = a;
                }
                Ok(None) | Err(ReadError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        w.join().unwrap();
    });
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
