//! The smallest round trip: this program starts a copy of itself as the
//! "pong" process; "ping" sends a `u64`, pong sends it back + 1, 100_000
//! times, then ping prints the round-trip percentiles.
//!
//! ```sh
//! cargo run --release -p shmlane-examples --example ping_pong
//! ```
//!
//! Two segments, one per direction. Ping creates both (and removes them when
//! it exits); pong opens them. Both spin a while, then sleep on the futex:
//! while replies come fast they never sleep, and on a busy machine they do
//! not burn a core each. Use `WaitStrategy::BusySpin` for the lowest latency
//! when each side has a core to itself.

use shmlane::{Consumer, Options, Producer, RecvError, WaitStrategy};
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 100_000;
const WAIT: WaitStrategy = WaitStrategy::SpinThenPark { spins: 20_000 };

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("pong") => pong(&args.next().ok_or("pong needs a name prefix")?),
        Some(n) => ping(n.parse()?),
        None => ping(ROUND_TRIPS),
    }
}

fn ping(round_trips: usize) -> Result<(), Box<dyn std::error::Error>> {
    let prefix = format!("ping-pong-{}", std::process::id());
    let opts = Options::new().capacity(16).wait(WAIT);
    let mut tx = Producer::<u64>::create(&format!("{prefix}.ping"), opts.clone())?;
    let mut rx = Consumer::<u64>::create(&format!("{prefix}.pong"), opts)?;
    let mut child = std::process::Command::new(std::env::current_exe()?).args(["pong", &prefix]).spawn()?;

    let mut rtts = Vec::with_capacity(round_trips);
    for i in 0..round_trips as u64 {
        let start = Instant::now();
        tx.send(i)?;
        let reply = rx.recv_timeout(Duration::from_secs(5))?;
        rtts.push(start.elapsed());
        assert_eq!(reply, i + 1, "pong must answer i + 1");
    }
    drop(tx); // pong sees Disconnected and exits
    child.wait()?;

    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    println!(
        "{round_trips} round trips: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        rtts[rtts.len() - 1]
    );
    Ok(())
}

fn pong(prefix: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = Consumer::<u64>::open(&format!("{prefix}.ping"), Options::new().wait(WAIT))?;
    let mut tx = Producer::<u64>::open(&format!("{prefix}.pong"), Options::new().wait(WAIT))?;
    loop {
        match rx.recv() {
            Ok(v) => tx.send(v + 1)?,
            Err(RecvError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
