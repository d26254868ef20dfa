//! Helpers shared by the multi-process integration tests.
//!
//! A child process is this same test binary re-spawned with
//! `--exact child_entry --nocapture` and the role it plays in
//! [`ROLE_ENV`]; every test file that spawns children defines a
//! `#[test] fn child_entry()` that returns at once unless [`role`] is set,
//! and otherwise dispatches on it. Children are killed when their [`Child`]
//! guard drops, so a failing parent never leaves one spinning.
//!
//! Segment names are unique per process and test ([`Shm`]); each test ends
//! with [`Shm::assert_gone`], and the guard removes a leftover file if the
//! test failed before that.
#![allow(dead_code)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shmlane::WaitStrategy;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Environment variable naming the role of a child process.
pub const ROLE_ENV: &str = "SHMLANE_TEST_ROLE";
/// Prefix of the other variables passed to a child.
const VAR_PREFIX: &str = "SHMLANE_TEST_";
/// Name of the test every file dispatches children from.
const CHILD_ENTRY: &str = "child_entry";
/// Generous bound on any single wait (a noisy 2-core VM, debug build).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The role this process plays, if it is a child.
///
/// In a child this also installs a panic hook that leaves a marker file
/// for the parent before anything else, then aborts: a child that panics
/// must fail its test even when the parent's `SIGKILL` lands while the
/// panic message is still being printed (the exit status alone would then
/// say "killed", which some tests expect). [`Child`] checks the marker.
pub fn role() -> Option<String> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::write(panic_marker(std::process::id()), b"panicked");
        report(info);
        std::process::abort();
    }));
    Some(role)
}

/// The file a child that panicked leaves behind (per child pid).
fn panic_marker(child: u32) -> PathBuf {
    std::env::temp_dir().join(format!("shmlane-it-panicked-{child}"))
}

/// A variable the parent passed to this child.
pub fn var(key: &str) -> String {
    var_opt(key).unwrap_or_else(|| panic!("child needs {VAR_PREFIX}{key}"))
}

/// A variable the parent may have passed to this child.
pub fn var_opt(key: &str) -> Option<String> {
    std::env::var(format!("{VAR_PREFIX}{key}")).ok()
}

/// A numeric variable the parent passed to this child.
pub fn var_u64(key: &str) -> u64 {
    let v = var(key);
    v.parse().unwrap_or_else(|e| panic!("{VAR_PREFIX}{key}={v}: {e}"))
}

/// A child process playing `role`; killed (SIGKILL) and reaped on drop
/// unless it was waited for.
pub struct Child {
    inner: Option<std::process::Child>,
    role: String,
}

/// Re-spawns this test binary as a child playing `role`, with `vars`
/// passed as `SHMLANE_TEST_<KEY>`.
pub fn spawn(role: &str, vars: &[(&str, String)]) -> Child {
    spawn_via(role, vars, |exe, args| {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        cmd
    })
}

/// As [`spawn`], but `wrap` builds the command from the test binary's path
/// and arguments, to run it through another program (say, `unshare` for a
/// private mount namespace). The role and variables are added to whatever
/// `wrap` returns; they reach the test binary through the environment.
pub fn spawn_via(role: &str, vars: &[(&str, String)], wrap: impl FnOnce(&Path, &[&str]) -> Command) -> Child {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = wrap(&exe, &["--exact", CHILD_ENTRY, "--nocapture", "--test-threads=1"]);
    cmd.env(ROLE_ENV, role)
        .stdin(Stdio::null())
        // The harness chatter goes nowhere; a child's panic message goes to
        // our stderr.
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, value) in vars {
        cmd.env(format!("{VAR_PREFIX}{key}"), value);
    }
    let inner = cmd.spawn().unwrap_or_else(|e| panic!("spawning child {role}: {e}"));
    Child { inner: Some(inner), role: role.to_owned() }
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> Pid {
        let child = self.inner.as_ref().expect("child already reaped");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
    }

    /// Sends SIGKILL (`kill -9`) and returns when it was sent.
    pub fn kill9(&self) -> Instant {
        kill(self.pid(), Signal::SIGKILL).expect("kill -9 child");
        Instant::now()
    }

    /// True once the child has exited (reaping it).
    pub fn has_exited(&mut self) -> bool {
        let child = self.inner.as_mut().expect("child already reaped");
        child.try_wait().expect("waitpid").is_some()
    }

    fn wait_status(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.inner.as_mut().expect("child already reaped");
            if let Some(status) = child.try_wait().expect("waitpid") {
                let marker = panic_marker(child.id());
                self.inner = None;
                if std::fs::remove_file(&marker).is_ok() {
                    panic!("child {} panicked (see its message above), exit status {status}", self.role);
                }
                return status;
            }
            // Panicking here drops the guard, which kills the child.
            assert!(Instant::now() < deadline, "child {} still running after {timeout:?}", self.role);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the child to exit successfully.
    pub fn wait_ok(mut self, timeout: Duration) {
        let status = self.wait_status(timeout);
        assert!(status.success(), "child {} failed: {status}", self.role);
    }

    /// Waits for the child to die of SIGKILL.
    pub fn wait_killed(mut self, timeout: Duration) {
        let status = self.wait_status(timeout);
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "child {}: {status}", self.role);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.inner.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A segment name unique to this process and test. Removes a leftover file
/// (or directory) on drop, for tests that fail half-way.
pub struct Shm {
    /// The segment name (no leading slash).
    pub name: String,
}

impl Shm {
    /// `shmlane-it-<pid>-<test>`.
    pub fn new(test: &str) -> Self {
        Self { name: format!("shmlane-it-{}-{test}", std::process::id()) }
    }

    /// The file behind the name, under `/dev/shm`.
    pub fn path(&self) -> PathBuf {
        shmlane::segment_path(&self.name, None).expect("valid test name")
    }

    /// True if something (file, symlink, directory) has this name.
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(self.path()).is_ok()
    }

    /// Asserts the name no longer exists in `/dev/shm`.
    pub fn assert_gone(&self) {
        assert!(!self.exists(), "{} was left behind in /dev/shm", self.path().display());
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let path = self.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(_) => {}
        }
    }
}

/// A file in the temporary directory, removed on drop (children report
/// through these).
pub struct Scratch {
    /// Its path.
    pub path: PathBuf,
}

impl Scratch {
    /// `<tmp>/shmlane-it-<pid>-<test>-<what>`, absent at first.
    pub fn new(test: &str, what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shmlane-it-{}-{test}-{what}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self { path }
    }

    /// The path as a string to pass to a child.
    pub fn arg(&self) -> String {
        self.path.to_str().expect("utf-8 temp dir").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serialises the heavy tests of one binary: on a 2-core VM, two pairs of
/// busy-spinning processes at once only make each other slow.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `cond` every millisecond until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Parks a child until its parent kills it.
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed function of `x`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded PRNG (SplitMix64), identical in parent and child.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..=max`.
    pub fn up_to(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }
}

/// A typed test message: a sequence number, filler derived from it and a
/// checksum over all of it, so a torn, stale or shifted slot is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Msg {
    /// Position in the stream.
    pub seq: u64,
    /// Filler derived from `seq`.
    pub a: u64,
    /// Filler derived from `a`.
    pub b: u64,
    /// Checksum of the above.
    pub check: u64,
}

impl Msg {
    /// Message number `seq`.
    pub fn new(seq: u64) -> Self {
        let a = mix(seq);
        let b = mix(a ^ 0xA5A5_A5A5_A5A5_A5A5);
        Self { seq, a, b, check: checksum(seq, a, b) }
    }

    /// True if the checksum matches the other fields.
    pub fn is_intact(&self) -> bool {
        self.check == checksum(self.seq, self.a, self.b)
    }
}

fn checksum(seq: u64, a: u64, b: u64) -> u64 {
    mix(seq ^ a.rotate_left(17) ^ b.rotate_left(41))
}

/// Asserts `got` is message `seq`, intact.
#[track_caller]
pub fn assert_msg(got: &Msg, seq: u64) {
    assert!(got.is_intact(), "message {seq}: bad checksum in {got:?}");
    assert_eq!(got.seq, seq, "message {seq}: got sequence {} (lost, duplicated or reordered)", got.seq);
    assert_eq!(*got, Msg::new(seq), "message {seq}: payload differs");
}

/// A wait strategy as passed to a child.
pub fn strategy_arg(strategy: WaitStrategy) -> String {
    match strategy {
        WaitStrategy::BusySpin => "busy".to_owned(),
        WaitStrategy::Park => "park".to_owned(),
        WaitStrategy::SpinThenPark { spins } => format!("spin{spins}"),
    }
}

/// The wait strategy a parent passed as `WAIT` (default `BusySpin`).
pub fn strategy_var() -> WaitStrategy {
    match var_opt("WAIT").as_deref() {
        None | Some("busy") => WaitStrategy::BusySpin,
        Some("park") => WaitStrategy::Park,
        Some(s) => {
            let spins = s.strip_prefix("spin").and_then(|n| n.parse().ok());
            WaitStrategy::SpinThenPark { spins: spins.unwrap_or_else(|| panic!("bad WAIT {s}")) }
        }
    }
}
