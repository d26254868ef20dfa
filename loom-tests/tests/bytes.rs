//! Byte records: reserve/commit against read/release, with a padding record
//! at the wrap (64-byte ring, 24-byte records: the third needs padding).
#![cfg(loom)]

mod common;
use common::*;
use loom::thread;
use shmlane_ring::{ByteConsumer, ByteProducer, ReserveError};

#[test]
fn records_cross_the_wrap_with_padding() {
    model(|| {
        let region = bytes();
        let mut tx = ByteProducer::attach(region.clone()).unwrap();
        let mut rx = ByteConsumer::attach(region).unwrap();
        let producer = thread::spawn(move || {
            for i in 1..=3u8 {
                loop {
                    if let Some(mut grant) = tx.try_reserve(16).unwrap() {
                        grant.fill(i);
                        grant.commit();
                        break;
                    }
                    loom::thread::yield_now();
                }
            }
        });
        for i in 1..=3u8 {
            loop {
                if let Some(record) = rx.try_read().unwrap() {
                    assert_eq!(&*record, &[i; 16]);
                    break;
                }
                loom::thread::yield_now();
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn a_record_larger_than_the_ring_is_refused_not_waited_for() {
    model(|| {
        let region = bytes();
        let mut tx = ByteProducer::attach(region).unwrap();
        let max = tx.max_record_len();
        assert!(matches!(tx.try_reserve(max + 1), Err(ReserveError::TooLarge { .. })));
        let err = tx.reserve_blocking(max + 1, shmlane_ring::WaitStrategy::Park, forever).unwrap_err();
        assert_eq!(err, Stop::TooLarge);
    });
}
