//! Broadcast: the per-slot seqlock never delivers a torn message, lag is
//! counted exactly, and parked readers are woken.
#![cfg(loom)]

mod common;
use common::*;
use loom::thread;
use shmlane_ring::{
    BroadcastReader, BroadcastWriter, ByteBroadcastReader, ByteBroadcastWriter, Params, ReadError, Region, Start,
    WaitStrategy,
};

#[test]
fn a_torn_read_is_never_delivered() {
    torn_read_model();
}

/// A writer laps a reader on a two-slot ring: every position is either
/// delivered once, in order and whole, or counted in exactly one `Lagged`.
#[test]
fn lag_is_counted_exactly() {
    model(|| {
        const SENT: u64 = 3;
        let region = broadcast(2);
        let mut writer = BroadcastWriter::<[u64; 2]>::attach(region.clone()).unwrap();
        let mut reader = BroadcastReader::<[u64; 2]>::attach(region, Start::Latest).unwrap();
        let w = thread::spawn(move || {
            for i in 0..SENT {
                writer.push(&[i, i]);
            }
        });
        let mut next = 0;
        while next < SENT {
            match reader.try_read() {
                Ok(Some(v)) => {
                    assert_eq!(v, [next, next], "delivered out of order or torn");
                    next += 1;
                }
                Ok(None) => thread::yield_now(),
                Err(ReadError::Lagged(n)) => {
                    assert!(n > 0, "a lag report must move the cursor");
                    next += n;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(next, SENT, "positions lost without being counted");
        assert_eq!(reader.try_read(), Ok(None));
        w.join().unwrap();
    });
}

/// A reader parked on the futex is woken by the writer's publish.
#[test]
fn a_parked_reader_is_woken() {
    model(|| {
        let region = broadcast(2);
        let mut writer = BroadcastWriter::<[u64; 2]>::attach(region.clone()).unwrap();
        let mut reader = BroadcastReader::<[u64; 2]>::attach(region, Start::Latest).unwrap();
        reader.set_strategy(WaitStrategy::Park);
        // The first publish arms the writer's waker; the second is the one a
        // broken handshake could lose.
        writer.push(&[1, 1]);
        let w = thread::spawn(move || writer.push(&[2, 2]));
        assert_eq!(reader.read_blocking(WaitStrategy::Park, forever), Ok([1, 1]));
        assert_eq!(reader.read_blocking(WaitStrategy::Park, forever), Ok([2, 2]));
        w.join().unwrap();
    });
}

/// Byte records: a reader gets exactly one of the records (length and
/// bytes from the same write) or `Lagged`, never a mix.
#[test]
fn byte_records_are_never_torn() {
    model(|| {
        let region = Region::heap(Params::broadcast_bytes(1, 16).unwrap()).unwrap();
        let mut writer = ByteBroadcastWriter::attach(region.clone()).unwrap();
        let mut reader = ByteBroadcastReader::attach(region, Start::Latest).unwrap();
        let w = thread::spawn(move || {
            writer.push(&[1; 3]).unwrap();
            writer.push(&[2; 12]).unwrap();
        });
        let mut out = Vec::new();
        for _ in 0..2 {
            match reader.try_read_into(&mut out) {
                Ok(Some(len)) => assert!(out == [1; 3] || out == [2; 12], "torn record of {len}: {out:?}"),
                Ok(None) | Err(ReadError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        w.join().unwrap();
    });
}
