//! In-process fast paths of the rings (criterion), beside the ideal
//! in-process references: `rtrb` (cached-index SPSC) and crossbeam's
//! `ArrayQueue` (bounded MPMC). One thread: these measure the instruction
//! cost of push + pop, not cache-line transfers (the two-process comparison,
//! `shmlane bench`, measures those). `cargo bench -p shmlane-benches`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shmlane_ring::{
    ByteConsumer, ByteProducer, Flavor, MpmcConsumer, MpmcProducer, Params, Region, SpscConsumer, SpscProducer,
};
use std::hint::black_box;

type Msg = [u64; 8]; // 64 bytes

fn spsc(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_64B");
    g.throughput(Throughput::Elements(1));
    let region = Region::heap(Params::fixed(Flavor::Spsc, 1024, 64, 8).unwrap()).unwrap();
    let mut tx = SpscProducer::<Msg>::attach(region.clone()).unwrap();
    let mut rx = SpscConsumer::<Msg>::attach(region).unwrap();
    g.bench_function("shmlane push+pop", |b| {
        b.iter(|| {
            tx.try_push(black_box(&[1; 8])).unwrap();
            black_box(rx.try_pop().unwrap())
        })
    });
    let (mut rp, mut rc) = rtrb::RingBuffer::<Msg>::new(1024);
    g.bench_function("rtrb push+pop", |b| {
        b.iter(|| {
            rp.push(black_box([1; 8])).unwrap();
            black_box(rc.pop().unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("spsc_64B_batch32");
    g.throughput(Throughput::Elements(32));
    let batch = [[1u64; 8]; 32];
    let mut out = [[0u64; 8]; 32];
    g.bench_function("shmlane push_batch+pop_batch", |b| {
        b.iter(|| {
            assert_eq!(tx.push_batch(black_box(&batch)).unwrap(), 32);
            black_box(rx.pop_batch(&mut out).unwrap())
        })
    });
    g.finish();
}

fn bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("bytes");
    for len in [64usize, 1024, 65536] {
        g.throughput(Throughput::Bytes(len as u64));
        let region = Region::heap(Params::bytes(1 << 20).unwrap()).unwrap();
        let mut tx = ByteProducer::attach(region.clone()).unwrap();
        let mut rx = ByteConsumer::attach(region).unwrap();
        let payload = vec![7u8; len];
        g.bench_with_input(BenchmarkId::new("reserve+commit+read", len), &len, |b, &len| {
            b.iter(|| {
                let mut grant = tx.try_reserve(len).unwrap().unwrap();
                grant.copy_from_slice(&payload);
                grant.commit();
                let record = rx.try_read().unwrap().unwrap();
                black_box(record[len - 1])
            })
        });
    }
    g.finish();
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_8B");
    g.throughput(Throughput::Elements(1));
    let region = Region::heap(Params::fixed(Flavor::Mpmc, 1024, 8, 8).unwrap()).unwrap();
    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
    let mut rx = MpmcConsumer::<u64>::attach(region).unwrap();
    g.bench_function("shmlane push+pop", |b| {
        b.iter(|| {
            tx.try_push(black_box(&1)).unwrap();
            black_box(rx.try_pop().unwrap())
        })
    });
    let q = crossbeam_queue::ArrayQueue::<u64>::new(1024);
    g.bench_function("crossbeam ArrayQueue push+pop", |b| {
        b.iter(|| {
            q.push(black_box(1)).unwrap();
            black_box(q.pop())
        })
    });
    g.finish();
}

fn mpmc_threads(c: &mut Criterion) {
    // 2 producers × 2 consumers, 10k messages per producer per iteration.
    const PER: u64 = 10_000;
    let mut g = c.benchmark_group("mpmc_2x2_threads");
    g.throughput(Throughput::Elements(2 * PER));
    g.sample_size(10);
    g.bench_function("shmlane", |b| {
        b.iter(|| {
            let region = Region::heap(Params::fixed(Flavor::Mpmc, 1024, 8, 8).unwrap()).unwrap();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let mut tx = MpmcProducer::<u64>::attach(region.clone(), None).unwrap();
                    s.spawn(move || {
                        for i in 0..PER {
                            while !tx.try_push(&i).unwrap() {
                                std::thread::yield_now();
                            }
                        }
                    });
                }
                for _ in 0..2 {
                    let mut rx = MpmcConsumer::<u64>::attach(region.clone()).unwrap();
                    s.spawn(move || {
                        for _ in 0..PER {
                            while rx.try_pop().unwrap().is_none() {
                                std::thread::yield_now();
                            }
                        }
                    });
                }
            });
        })
    });
    g.finish();
}

criterion_group!(benches, spsc, bytes, mpmc, mpmc_threads);
criterion_main!(benches);
