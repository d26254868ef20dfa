//! The harness itself: message checks, every transport end to end in short
//! windows, and a wrong transport failing instead of winning.
//!
//! Everything runs in one `#[test]`, sequentially: the harness forks, and
//! forking while other test threads run is asking for trouble.

use std::time::Duration;

use shmlane_benches::{
    BenchError, C2cWindow, CpuPair, CrossCoreCopy, Endpoint, FdTransport, Kind, Mode, Prepared, Result, Role,
    ShmlaneTransport, Transport, Window, check_message, choose_cpus, core_to_core, fill_message, memcpy, pin_to,
    run_rtt, run_stream,
};

fn window() -> Window {
    Window { warmup: Duration::from_millis(10), measure: Duration::from_millis(40), max_count: 1_000_000 }
}

fn message_checks() {
    for size in [1usize, 7, 8, 13, 64, 1000] {
        let mut buf = vec![0u8; size];
        fill_message(&mut buf, 0x0102_0304_0506_0708);
        assert!(check_message(&buf, 0x0102_0304_0506_0708).is_ok(), "size {size}");
        assert!(matches!(check_message(&buf, 0x0102_0304_0506_0709), Err(BenchError::Corrupt { .. })), "size {size}");
        if size >= 16 {
            // Torn: the tail of the message belongs to another one.
            let mut torn = buf.clone();
            fill_message(&mut torn[8..], 7);
            let err = check_message(&torn, 0x0102_0304_0506_0708).map(|()| "accepted").unwrap_err().to_string();
            assert!(err.contains("torn"), "{err}");
        }
    }
}

/// Wraps a transport and damages one message on the sending side.
struct Broken {
    inner: Box<dyn Transport>,
    damage: Damage,
}

#[derive(Clone, Copy)]
enum Damage {
    /// Message 300 is never sent.
    Drop,
    /// One byte in the middle of message 300 is flipped.
    Tear,
}

struct BrokenPrepared {
    inner: Box<dyn Prepared>,
    damage: Damage,
}

struct BrokenEndpoint {
    inner: Box<dyn Endpoint>,
    /// `None` on the side that does not damage (one side only, or a ponger
    /// flipping the same byte back would repair the message).
    damage: Option<Damage>,
    sent: u64,
}

impl Transport for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn kind(&self) -> Kind {
        Kind::Spinning
    }
    fn prepare(&self, mode: Mode, size: usize) -> Result<Box<dyn Prepared>> {
        Ok(Box::new(BrokenPrepared { inner: self.inner.prepare(mode, size)?, damage: self.damage }))
    }
}

impl Prepared for BrokenPrepared {
    fn endpoint(self: Box<Self>, role: Role) -> Result<Box<dyn Endpoint>> {
        let damage = matches!(role, Role::Sender | Role::Pinger).then_some(self.damage);
        Ok(Box::new(BrokenEndpoint { inner: self.inner.endpoint(role)?, damage, sent: 0 }))
    }
}

impl Endpoint for BrokenEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.sent += 1;
        match (self.sent, self.damage) {
            (300, Some(Damage::Drop)) => Ok(()),
            (300, Some(Damage::Tear)) => {
                let mut torn = msg.to_vec();
                let mid = torn.len() / 2;
                torn[mid] ^= 0x40;
                self.inner.send(&torn)
            }
            _ => self.inner.send(msg),
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.recv(buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

/// Segments this process (the parent of every measurement) named and left in `/dev/shm`.
fn leftover_segments() -> Vec<String> {
    let prefix = format!("shmlane-bench-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn all_transports_work(cpus: CpuPair) {
    let mut transports: Vec<Box<dyn Transport>> = Vec::new();
    for t in FdTransport::all() {
        transports.push(Box::new(t));
    }
    transports.push(Box::new(CrossCoreCopy));
    for t in ShmlaneTransport::all() {
        transports.push(Box::new(t));
    }
    // 1 and 13: shorter than a word and a partial word; 200 KiB: more than a
    // pipe or socket buffer, so sends and receives are split. 8 and 64 KiB:
    // the smallest and largest typed shmlane messages.
    for t in &transports {
        for size in [1usize, 8, 13, 64, 65536, 200 * 1024] {
            if t.unsupported(size).is_some() {
                assert!(t.name().starts_with("shmlane-") && t.name() != "shmlane-bytes", "{} {size}", t.name());
                continue;
            }
            if matches!(size, 8 | 65536) && !t.name().starts_with("shmlane-") {
                continue;
            }
            if t.modes().contains(&Mode::Rtt) {
                let r = run_rtt(&**t, size, window(), cpus).unwrap_or_else(|e| panic!("{} rtt {size}: {e}", t.name()));
                assert!(!r.hist.is_empty() && r.local.msgs == r.hist.len(), "{} rtt {size}", t.name());
                assert!(r.peer.msgs > r.local.msgs, "{} rtt {size}: the ponger also served the warm-up", t.name());
                assert_eq!(r.peer.cpu, cpus.map(|c| c.1));
            }
            let r =
                run_stream(&**t, size, window(), cpus).unwrap_or_else(|e| panic!("{} stream {size}: {e}", t.name()));
            assert!(r.msgs > 0 && r.peer.msgs > r.msgs, "{} stream {size}", t.name());
            assert!(r.msgs_per_s() > 0.0);
        }
    }
    assert_eq!(leftover_segments(), Vec::<String>::new(), "shmlane segments left in /dev/shm");
}

fn wrong_transports_fail(cpus: CpuPair) {
    for damage in [Damage::Drop, Damage::Tear] {
        for inner in [
            Box::new(FdTransport::pipe(false)) as Box<dyn Transport>,
            Box::new(CrossCoreCopy),
            Box::new(ShmlaneTransport::spsc()),
            Box::new(ShmlaneTransport::park()),
            Box::new(ShmlaneTransport::bytes()),
            Box::new(ShmlaneTransport::mpmc()),
        ] {
            let broken = Broken { inner, damage };
            match run_stream(&broken, 64, window(), cpus) {
                Err(BenchError::Corrupt { seq: 299, .. }) => {}
                Err(e) => panic!("wrong error: {e}"),
                Ok(r) => panic!("a wrong transport was measured: {} msgs", r.msgs),
            }
        }
    }
    // Round trip: the pinger checks the echo.
    for inner in [Box::new(FdTransport::unix(false)) as Box<dyn Transport>, Box::new(ShmlaneTransport::spsc())] {
        let broken = Broken { inner, damage: Damage::Tear };
        assert!(run_rtt(&broken, 64, window(), cpus).is_err());
    }
    assert_eq!(leftover_segments(), Vec::<String>::new(), "shmlane segments left in /dev/shm");
}

fn limits_work(cpus: CpuPair) {
    let h = core_to_core(cpus, C2cWindow { warmup_count: 100, count: 2000, max_time: Duration::from_millis(100) })
        .expect("core-to-core");
    assert!(!h.is_empty() && h.value_at_quantile(0.5) > 0);
    let m = memcpy(4096, 3, Duration::from_millis(2)).expect("memcpy");
    assert!(m.best >= m.median && m.median > 0.0);
}

#[test]
fn harness() {
    // Typed shmlane messages of 64 KiB travel by value; an unoptimised build
    // keeps several copies on the stack at once, more than a test thread's
    // default 2 MiB. Forking from this thread is as safe as from the test's.
    std::thread::Builder::new()
        .name("harness".into())
        .stack_size(64 << 20)
        .spawn(harness_body)
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn harness_body() {
    message_checks();
    let cpus = choose_cpus().expect("affinity");
    if let Some((a, _)) = cpus {
        pin_to(a).expect("pin");
    }
    limits_work(cpus);
    wrong_transports_fail(cpus);
    all_transports_work(cpus);
}
