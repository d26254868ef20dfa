//! Market-data fan-out: one feed process publishes typed quotes to N strategy
//! processes, one SPSC ring per strategy.
//!
//! ```sh
//! cargo run --release -p shmlane-examples --example market_data
//! # optional arguments: [seconds=3] [strategies=3] [quotes/s per ring=200000, 0 = unpaced]
//! cargo run --release -p shmlane-examples --example market_data -- 1 2 0
//! ```
//!
//! What it shows:
//! - a `#[repr(C)]` `bytemuck::Pod` message (`Quote`) sent by value through
//!   shared memory: `Producer::<Quote>::create` in the feed, one segment per
//!   strategy, `Consumer::<Quote>::open` in each strategy;
//! - end-to-end latency measured across processes: the feed stamps each quote
//!   with `CLOCK_MONOTONIC`, which every process on the host shares;
//! - shutdown by dropping the producers: each strategy drains its ring, gets
//!   `RecvError::Disconnected` and exits;
//! - `WaitStrategy::SpinThenPark`, so four processes share a 2-core machine
//!   without each burning a core while idle.
//!
//! What to expect (~3 s): the feed starts its strategies, publishes 200,000
//! quotes/s to each for 3 s (600,000 quotes per strategy), then each strategy
//! prints one line (count, sequence check, messages/s, latency
//! p50/p99/p99.9/max) and the feed prints a summary. Exit status 0; nothing
//! is left in /dev/shm (the feed's producers remove their segments when they
//! drop). Latency is in microseconds on an idle machine, more on a loaded or
//! 2-core one (a strategy that parked must be woken). Unpaced (`-- 3 3 0`)
//! the feed goes as fast as the slowest strategy and latency becomes queueing
//! time in the 4096-slot ring: milliseconds.

use hdrhistogram::Histogram;
use shmlane::{Consumer, Options, Producer, RecvError, SendError, WaitStrategy};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WAIT: WaitStrategy = WaitStrategy::SpinThenPark { spins: 10_000 };
const CAPACITY: u64 = 4096;

/// One top-of-book quote. `repr(C)` with no implicit padding, so it is `Pod`
/// and the same bytes mean the same thing in every process.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    instrument_id: u32,
    bid_size: u32,
    ask_size: u32,
    _pad: u32,
    /// Per-ring sequence number, 0, 1, 2, ... (checked by the strategy).
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
    let prefix = format!("market-data-{}", std::process::id());
    let opts = Options::new().capacity(CAPACITY).wait(WAIT);
    let mut txs = Vec::with_capacity(strategies);
    let mut children: Vec<Child> = Vec::with_capacity(strategies);
    let exe = std::env::current_exe()?;
    for k in 0..strategies {
        let name = format!("{prefix}.s{k}");
        txs.push(Producer::<Quote>::create(&name, opts.clone())?);
        children.push(Command::new(&exe).args(["strategy", &name]).spawn()?);
    }

    let result = publish(&mut txs, duration, rate);
    // Dropping the producers tells every strategy "no more quotes": each
    // drains its ring, then sees Disconnected. The segments are removed here.
    drop(txs);

    let mut failed = 0;
    for (k, child) in children.iter_mut().enumerate() {
        let status = child.wait()?;
        if !status.success() {
            eprintln!("feed: strategy {k} failed: {status}");
            failed += 1;
        }
    }
    let (sent, elapsed) = result?;
    println!(
        "feed: published {sent} quotes to each of {strategies} strategies in {:.2} s ({:.0} quotes/s per ring)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    if failed > 0 {
        return Err(format!("{failed} strategies failed").into());
    }
    println!("feed: all {strategies} strategies ok");
    Ok(())
}

/// Publishes quotes round-robin over instruments to every ring until
/// `duration` has passed, at `rate` quotes/s per ring (0: as fast as the
/// slowest strategy reads). A strategy that never attaches (or dies early)
/// shows up as a send timeout rather than a hang.
fn publish(txs: &mut [Producer<Quote>], duration: Duration, rate: f64) -> Res<(u64, Duration)> {
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
            let mut quote = Quote {
                instrument_id: (seq % 16) as u32,
                bid_size: 100 * (1 + (rng >> 20) as u32 % 50),
                ask_size: 100 * (1 + (rng >> 30) as u32 % 50),
                _pad: 0,
                seq,
                bid: mid - spread,
                ask: mid + spread,
                exchange_ts_ns: 0,
            };
            for tx in txs.iter_mut() {
                // Stamp per ring, just before the send, so latency is the
                // time in the ring and not the time spent on other rings.
                quote.exchange_ts_ns = monotonic_ns();
                match tx.send_timeout(quote, Duration::from_secs(5)) {
                    Ok(()) => {}
                    Err(SendError::Timeout(_)) => return Err("a strategy stopped reading for 5 s".into()),
                    Err(e) => return Err(format!("send failed: {e}").into()),
                }
            }
            seq += 1;
        }
    }
    Ok((seq, start.elapsed()))
}

fn strategy(name: &str) -> Res<()> {
    let mut rx = Consumer::<Quote>::open(name, Options::new().wait(WAIT))?;
    // 1 ns .. 60 s, 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut count = 0u64;
    let mut first: Option<Instant> = None;
    let mut spread_sum = 0i64;
    loop {
        match rx.recv() {
            Ok(q) => {
                let now = monotonic_ns();
                first.get_or_insert_with(Instant::now);
                if q.seq != count {
                    return Err(format!("{name}: expected seq {count}, got {}", q.seq).into());
                }
                if q.ask <= q.bid {
                    return Err(format!("{name}: crossed quote {q:?}").into());
                }
                hist.saturating_record(now.saturating_sub(q.exchange_ts_ns).max(1));
                spread_sum += q.ask - q.bid;
                count += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("{name}: {e}").into()),
        }
    }
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "strategy {}: {count} quotes, seq ok, {:.0} msg/s, avg spread {:.1} ticks, latency p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.2} us",
        name.rsplit('.').next().unwrap_or(name),
        if secs > 0.0 { count as f64 / secs } else { 0.0 },
        if count > 0 { spread_sum as f64 / count as f64 } else { 0.0 },
        us(0.50),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
