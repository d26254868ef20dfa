//! Telemetry collection: W worker processes push variable-length metric
//! records to one collector, one byte ring per worker, and the collector
//! notices a worker that dies.
//!
//! ```sh
//! cargo run --release -p shmlane-examples --example telemetry
//! # optional arguments: [workers=4] [seconds=3] [kill_after_seconds=1, 0 = kill nobody]
//! cargo run --release -p shmlane-examples --example telemetry -- 2 1 0.3
//! ```
//!
//! What it shows:
//! - zero-copy variable-length records: a worker `reserve(len)`s a record in
//!   the ring, writes the text straight into the grant (no buffer in
//!   between) and `commit()`s it; the collector reads it in place;
//! - one consumer polling many rings round-robin with `try_recv`, sleeping
//!   briefly only when every ring is empty;
//! - death detection: the collector SIGKILLs one worker after ~1 s. The
//!   kernel drops that worker's role lock, so its ring drains and then
//!   reports `RecvError::Disconnected`, exactly as for a worker that
//!   finished; no heartbeat needed.
//!
//! What to expect (~3 s): one line per second with each worker's record
//! rate, a line "worker k died (Disconnected) after N records" for the
//! killed worker, "worker k finished (Disconnected) after N records" for the
//! others, then "collector: all W rings disconnected". Exit status 0;
//! nothing is left in /dev/shm (the collector created the segments and
//! removes them when it drops its consumers).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shmlane::{ByteConsumer, ByteProducer, Options, RecvError, ReserveError, WaitStrategy};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WAIT: WaitStrategy = WaitStrategy::SpinThenPark { spins: 10_000 };
const RING_BYTES: u64 = 64 * 1024;
const METRICS: [&str; 5] = ["cpu", "mem", "disk_io", "net_rx", "queue_depth"];

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let name = args.get(1).ok_or("worker needs a segment name")?;
        let id: usize = args.get(2).ok_or("worker needs an id")?.parse()?;
        let seconds: f64 = args.get(3).ok_or("worker needs a duration")?.parse()?;
        return worker(name, id, Duration::from_secs_f64(seconds));
    }
    let workers: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let seconds: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let kill_after: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    if workers == 0 {
        return Err("need at least one worker".into());
    }
    collector(workers, seconds, (kill_after > 0.0).then(|| Duration::from_secs_f64(kill_after)))
}

struct Ring {
    rx: ByteConsumer,
    child: Child,
    records: u64,
    last_report: u64,
    next_seq: u64,
    done: bool,
}

fn collector(workers: usize, seconds: f64, kill_after: Option<Duration>) -> Res<()> {
    let prefix = format!("telemetry-{}", std::process::id());
    let exe = std::env::current_exe()?;
    let mut rings = Vec::with_capacity(workers);
    for k in 0..workers {
        let name = format!("{prefix}.w{k}");
        // The collector creates the segment (so it owns and removes it); the
        // worker opens it as producer.
        let rx = ByteConsumer::create(&name, Options::new().capacity(RING_BYTES).wait(WAIT))?;
        let child = Command::new(&exe).args(["worker", &name, &k.to_string(), &seconds.to_string()]).spawn()?;
        rings.push(Ring { rx, child, records: 0, last_report: 0, next_seq: 0, done: false });
    }
    // Kill the last worker (worker 1 of 4 would do as well; any one shows it).
    let victim = kill_after.map(|after| (workers - 1, after));
    let mut killed = false;

    let start = Instant::now();
    let give_up = start + Duration::from_secs_f64(seconds) + Duration::from_secs(10);
    let mut next_report = start + Duration::from_secs(1);
    let mut live = workers;
    while live > 0 {
        let mut got_any = false;
        for (k, ring) in rings.iter_mut().enumerate().filter(|(_, r)| !r.done) {
            // Up to a batch per ring per pass, so one busy worker cannot
            // starve the others.
            for _ in 0..256 {
                match ring.rx.try_recv() {
                    Ok(Some(record)) => {
                        got_any = true;
                        check_record(&record, k, ring.next_seq)?;
                        ring.next_seq += 1;
                        ring.records += 1;
                    }
                    Ok(None) => break,
                    Err(RecvError::Disconnected) => {
                        let was_killed = killed && victim.is_some_and(|(v, _)| v == k);
                        let how = if was_killed { "died" } else { "finished" };
                        println!(
                            "worker {k} {how} (Disconnected) after {} records, at {:.2} s",
                            ring.records,
                            start.elapsed().as_secs_f64()
                        );
                        ring.done = true;
                        live -= 1;
                        break;
                    }
                    Err(e) => return Err(format!("ring {k}: {e}").into()),
                }
            }
        }

        let now = Instant::now();
        if let Some((v, _)) = victim.filter(|&(_, after)| !killed && now >= start + after) {
            let pid = Pid::from_raw(rings[v].child.id() as i32);
            kill(pid, Signal::SIGKILL)?;
            killed = true;
            println!("collector: sent SIGKILL to worker {v} (pid {pid}) at {:.2} s", start.elapsed().as_secs_f64());
        }
        if now >= next_report {
            let rates: Vec<String> = rings
                .iter_mut()
                .enumerate()
                .map(|(k, r)| {
                    let rate = r.records - r.last_report;
                    r.last_report = r.records;
                    if r.done { format!("w{k} done") } else { format!("w{k} {rate} rec/s") }
                })
                .collect();
            println!("t={:.0}s  {}", (now - start).as_secs_f64(), rates.join("  "));
            next_report += Duration::from_secs(1);
        }
        if now >= give_up {
            for r in rings.iter_mut().filter(|r| !r.done) {
                let _ = r.child.kill();
            }
            return Err("workers did not finish in time".into());
        }
        if !got_any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    // Every ring has reported Disconnected: reap the workers. The killed one
    // ends by SIGKILL (expected); any other must have exited 0.
    let mut failed = 0;
    for (k, ring) in rings.iter_mut().enumerate() {
        let status = ring.child.wait()?;
        let expected_kill = killed && victim.is_some_and(|(v, _)| v == k) && status.signal() == Some(9);
        if !status.success() && !expected_kill {
            eprintln!("collector: worker {k} failed: {status}");
            failed += 1;
        }
    }
    let total: u64 = rings.iter().map(|r| r.records).sum();
    println!("collector: all {workers} rings disconnected, {total} records in {:.2} s", start.elapsed().as_secs_f64());
    if failed > 0 {
        return Err(format!("{failed} workers failed").into());
    }
    Ok(())
}

/// A record is "worker=K metric=M value=V seq=S" plus padding spaces; check
/// the worker id and that no record was lost or reordered.
fn check_record(record: &[u8], k: usize, want_seq: u64) -> Res<()> {
    let text = std::str::from_utf8(record)?;
    let mut worker = None;
    let mut seq = None;
    for field in text.split_ascii_whitespace() {
        if let Some(v) = field.strip_prefix("worker=") {
            worker = Some(v.parse::<usize>()?);
        } else if let Some(v) = field.strip_prefix("seq=") {
            seq = Some(v.parse::<u64>()?);
        }
    }
    if worker != Some(k) || seq != Some(want_seq) {
        return Err(format!("ring {k}: expected worker={k} seq={want_seq}, got {text:?}").into());
    }
    Ok(())
}

fn worker(name: &str, id: usize, duration: Duration) -> Res<()> {
    let mut tx = ByteProducer::open(name, Options::new().wait(WAIT))?;
    let start = Instant::now();
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut seq = 0u64;
    while start.elapsed() < duration {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let metric = METRICS[(rng % METRICS.len() as u64) as usize];
        let value = (rng >> 32) as f64 / u32::MAX as f64;
        // Random-ish record length: the text (under 80 bytes) plus 0..=63
        // bytes of padding, as a stand-in for optional tags.
        let len = 80 + (rng >> 8) as usize % 64;
        let mut grant = match tx.reserve(len) {
            Ok(g) => g,
            Err(ReserveError::Disconnected) => return Err("collector is gone".into()),
            Err(e) => return Err(e.into()),
        };
        // Write straight into the mapping: `&mut [u8]` implements `Write`.
        let buf: &mut [u8] = &mut grant;
        let mut cursor: &mut [u8] = buf;
        write!(cursor, "worker={id} metric={metric} value={value:.3} seq={seq}")?;
        cursor.fill(b' ');
        grant.commit();
        seq += 1;
        // Telemetry is not a firehose: pause a little now and then.
        if seq % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    Ok(())
}
