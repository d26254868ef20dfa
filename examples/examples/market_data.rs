//! Market-data fan-out: one feed process publishes typed quotes to N strategy
//! processes through one broadcast ring: each quote is written once, and
//! every strategy reads it from its own cursor.
//!
//! ```sh
//! cargo run --release -p shmlane-examples --example market_data
//! # optional arguments: [seconds=3] [strategies=3] [quotes/s=200000, 0 = unpaced]
//! cargo run --release -p shmlane-examples --example market_data -- 1 2 0
//! ```
//!
//! What it shows:
//! - a `#[repr(C)]` `bytemuck::Pod` message (`Quote`) published by value
//!   through shared memory: `BroadcastProducer::<Quote>::create` in the
//!   feed, `BroadcastConsumer::<Quote>::open` in each strategy;
//! - a feed that never waits for its readers: a strategy that falls more
//!   than a ring behind is told how many quotes it lost
//!   (`RecvError::Lagged(n)`) and continues at the oldest quote still there;
//! - end-to-end latency measured across processes: the feed stamps each quote
//!   with `CLOCK_MONOTONIC`, which every process on the host shares;
//! - shutdown by dropping the producer: each strategy reads what is left,
//!   gets `RecvError::Disconnected` and exits;
//! - `WaitStrategy::SpinThenPark`, so four processes share a 2-core machine
//!   without each burning a core while idle.
//!
//! What to expect (~3 s): the feed starts its strategies, waits until they
//! are attached, publishes 200,000 quotes/s for 3 s, then each strategy
//! prints one line (count, sequence check, quotes lost to lag, messages/s,
//! latency p50/p99/p99.9/max) and the feed prints a summary. Exit status 0;
//! nothing is left in /dev/shm. Latency is in microseconds on an idle
//! machine, more on a loaded or 2-core one (a strategy that parked must be
//! woken). Unpaced (`-- 3 3 0`) the feed runs flat out and strategies that
//! cannot keep up report lost quotes instead of slowing the feed.

use hdrhistogram::Histogram;
use shmlane::{BroadcastConsumer, BroadcastProducer, Options, RecvError, RoleState, WaitStrategy};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WAIT: WaitStrategy = WaitStrategy::SpinThenPark { spins: 10_000 };
/// Quotes the ring holds: how far a strategy may fall behind before it
/// loses quotes (64 Ki × 64-byte slots = 4 MiB).
const CAPACITY: u64 = 1 << 16;

/// One top-of-book quote. `repr(C)` with no implicit padding, so it is `Pod`
/// and the same bytes mean the same thing in every process.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    instrument_id: u32,
    bid_size: u32,
    ask_size: u32,
    _pad: u32,
    /// Sequence number, 0, 1, 2, ... (checked by the strategy).
    seq: u64,
    /// Prices in ticks (fixed point: 1 tick = 0.0001).
    bid: i64,
    ask: i64,
    /// `CLOCK_MONOTONIC` in ns when the feed published the quote.
    exchange_ts_ns: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process.
fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("strategy") => strategy(args.get(1).ok_or("strategy needs a segment name")?),
        _ => {
            let seconds: f64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
            let strategies: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
            if strategies == 0 {
                return Err("need at least one strategy".into());
            }
            let rate: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200_000.0);
            feed(Duration::from_secs_f64(seconds), strategies, rate)
        }
    }
}

fn feed(duration: Duration, strategies: usize, rate: f64) -> Res<()> {
    let name = format!("market-data-{}", std::process::id());
    let mut tx = BroadcastProducer::<Quote>::create(&name, Options::new().capacity(CAPACITY))?;
    let exe = std::env::current_exe()?;
    let mut children: Vec<Child> = Vec::with_capacity(strategies);
    for _ in 0..strategies {
        children.push(Command::new(&exe).args(["strategy", &name]).spawn()?);
    }
    // Readers start at the next quote published: wait until every strategy
    // is attached (each is listed in the segment's registry) so none misses
    // the first quotes.
    let path = shmlane::segment_path(&name, None)?;
    let attached = Instant::now();
    while shmlane::inspect(&path)?.consumer != RoleState::Alive(strategies as u32) {
        if attached.elapsed() > Duration::from_secs(10) {
            return Err("strategies did not attach within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let (sent, elapsed) = publish(&mut tx, duration, rate);
    // Dropping the producer tells every strategy "no more quotes": each
    // reads what is left, then sees Disconnected. The segment is removed here.
    drop(tx);

    let mut failed = 0;
    for (k, child) in children.iter_mut().enumerate() {
        let status = child.wait()?;
        if !status.success() {
            eprintln!("feed: strategy {k} failed: {status}");
            failed += 1;
        }
    }
    println!(
        "feed: published {sent} quotes once, read by {strategies} strategies, in {:.2} s ({:.0} quotes/s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    if failed > 0 {
        return Err(format!("{failed} strategies failed").into());
    }
    println!("feed: all {strategies} strategies ok");
    Ok(())
}

/// Publishes quotes round-robin over instruments until `duration` has
/// passed, at `rate` quotes/s (0: flat out). Never waits for a strategy.
fn publish(tx: &mut BroadcastProducer<Quote>, duration: Duration, rate: f64) -> (u64, Duration) {
    let interval_ns = if rate > 0.0 { 1e9 / rate } else { 0.0 };
    let start = Instant::now();
    let mut seq = 0u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    while start.elapsed() < duration {
        // A small batch between clock checks.
        for _ in 0..64 {
            // Pacing: spin until this quote is due (a real feed would be
            // paced by the exchange).
            let due = Duration::from_nanos((seq as f64 * interval_ns) as u64);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mid = 1_000_000 + (rng % 10_000) as i64;
            let spread = 1 + (rng >> 40) as i64 % 5;
            tx.send(Quote {
                instrument_id: (seq % 16) as u32,
                bid_size: 100 * (1 + (rng >> 20) as u32 % 50),
                ask_size: 100 * (1 + (rng >> 30) as u32 % 50),
                _pad: 0,
                seq,
                bid: mid - spread,
                ask: mid + spread,
                exchange_ts_ns: monotonic_ns(),
            });
            seq += 1;
        }
    }
    (seq, start.elapsed())
}

fn strategy(name: &str) -> Res<()> {
    let mut rx = BroadcastConsumer::<Quote>::open(name, Options::new().wait(WAIT))?;
    // 1 ns .. 60 s, 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let (mut count, mut lost, mut next) = (0u64, 0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut spread_sum = 0i64;
    loop {
        match rx.recv() {
            Ok(q) => {
                let now = monotonic_ns();
                first.get_or_insert_with(Instant::now);
                if q.seq != next {
                    return Err(format!("{name}: expected seq {next}, got {}", q.seq).into());
                }
                if q.ask <= q.bid {
                    return Err(format!("{name}: crossed quote {q:?}").into());
                }
                hist.saturating_record(now.saturating_sub(q.exchange_ts_ns).max(1));
                spread_sum += q.ask - q.bid;
                count += 1;
                next += 1;
            }
            // Too slow: the feed overwrote `n` quotes we had not read. A real
            // strategy would resynchronise its book here.
            Err(RecvError::Lagged(n)) => {
                lost += n;
                next += n;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("{name}: {e}").into()),
        }
    }
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "strategy {}: {count} quotes, seq ok, {lost} lost to lag, {:.0} msg/s, avg spread {:.1} ticks, latency p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.2} us",
        std::process::id(),
        if secs > 0.0 { count as f64 / secs } else { 0.0 },
        if count > 0 { spread_sum as f64 / count as f64 } else { 0.0 },
        us(0.50),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
