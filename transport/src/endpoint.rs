//! What every handle shares: its segment, the lock that says it is alive,
//! how it learns that its peer is gone, and the `check` its blocking calls
//! give the ring (deadline + liveness probe).

use crate::error::{OpenError, Stop};
use crate::options::Options;
use crate::segment::Segment;
use shmlane_ring::layout::{CONSUMER_LOCK_BYTE, PRODUCER_LOCK_BYTE, REGISTRY_ENTRIES, REGISTRY_OFFSET};
use shmlane_ring::mpmc::{ROLE_CONSUMER, ROLE_PRODUCER, ROLE_READER};
use shmlane_ring::{Expect, Params, WaitStrategy};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest single sleep: a blocked call re-probes its peer at least this
/// often, so it notices a dead peer within ~this (the promise is 100 ms).
pub(crate) const SLICE: Duration = Duration::from_millis(40);
/// Probes of the peer's lock (one fcntl each) are at most this frequent
/// while spinning, so a waiting busy-spinner makes ~100 syscalls/s, none
/// while messages flow.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// Which role a handle plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// SPSC or byte-ring producer.
    Producer,
    /// SPSC or byte-ring consumer.
    Consumer,
    /// MPMC producer holding a registry entry.
    MpmcProducer,
    /// MPMC consumer holding a registry entry.
    MpmcConsumer,
    /// Broadcast writer (holds the producer lock byte).
    Writer,
    /// Broadcast reader, holding a registry entry if one is free (for `ls`;
    /// readers beyond the registry attach unlisted).
    Reader,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Producer | Role::MpmcProducer => "producer",
            Role::Consumer | Role::MpmcConsumer => "consumer",
            Role::Writer => "broadcast writer",
            Role::Reader => "reader",
        }
    }
    /// The byte a creator in this role locks before publishing the header
    /// (MPMC handles and readers: registry entry 0, which a fresh segment's
    /// first handle takes).
    fn first_lock_byte(self) -> u64 {
        match self {
            Role::Producer | Role::Writer => PRODUCER_LOCK_BYTE,
            Role::Consumer => CONSUMER_LOCK_BYTE,
            Role::MpmcProducer | Role::MpmcConsumer | Role::Reader => REGISTRY_OFFSET as u64,
        }
    }
    fn is_producer(self) -> bool {
        matches!(self, Role::Producer | Role::MpmcProducer | Role::Writer)
    }
}

/// A handle's segment, role lock and view of its peer.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) seg: Segment,
    pub(crate) role: Role,
    /// The byte this handle holds locked (an unlisted reader holds none).
    pub(crate) lock_byte: Option<u64>,
    /// Registry entry (MPMC).
    pub(crate) entry: Option<usize>,
    pub(crate) wait: WaitStrategy,
    last_probe: Option<Instant>,
    peer_gone: bool,
}

impl Endpoint {
    /// Creates the segment and takes `role` in it.
    pub(crate) fn create(name: &str, opts: &Options, params: Params, role: Role) -> Result<Self, OpenError> {
        let params = params.with_schema(opts.schema_id.unwrap_or(0));
        // The role's byte is locked before the header is published; the
        // attach below takes it again through the same open file
        // description, which succeeds.
        Self::attach(Segment::create(name, opts, params, role.first_lock_byte())?, opts, role)
    }

    /// Opens the segment and takes `role` in it.
    pub(crate) fn open(name: &str, opts: &Options, expect: Expect, role: Role) -> Result<Self, OpenError> {
        Self::attach(Segment::open(name, opts, &expect)?, opts, role)
    }

    fn attach(seg: Segment, opts: &Options, role: Role) -> Result<Self, OpenError> {
        let (lock_byte, entry) = match role {
            Role::Producer | Role::Consumer | Role::Writer => {
                let byte = role.first_lock_byte();
                if !seg.try_lock(byte)? {
                    return Err(OpenError::RoleTaken { path: seg.path.clone(), role: role.name() });
                }
                (Some(byte), None)
            }
            Role::Reader => {
                // Readers are never waited for: an entry only makes the
                // reader visible to `ls`, so a full registry is no error.
                let mut taken = (None, None);
                for i in 0..REGISTRY_ENTRIES {
                    let byte = (REGISTRY_OFFSET + i * 128) as u64;
                    if seg.try_lock(byte)? {
                        taken = (Some(byte), Some(i));
                        break;
                    }
                }
                taken
            }
            Role::MpmcProducer | Role::MpmcConsumer => {
                let mut taken = None;
                for i in 0..REGISTRY_ENTRIES {
                    let byte = (REGISTRY_OFFSET + i * 128) as u64;
                    if !seg.try_lock(byte)? {
                        continue;
                    }
                    // An entry whose dead owner still holds an unresolved
                    // claim is the evidence a consumer needs to unwedge the
                    // ring: leave it alone and take another.
                    if shmlane_ring::mpmc::settle_claim(&seg.region, i) {
                        taken = Some((byte, i));
                        break;
                    }
                    seg.unlock(byte);
                }
                let (byte, i) = taken.ok_or_else(|| OpenError::TooManyHandles { path: seg.path.clone() })?;
                (Some(byte), Some(i))
            }
        };
        let live = seg.region.liveness();
        // Relaxed: informational counters and pids, read by `ls` and by the
        // peer's "was it ever attached" test after a lock probe (a syscall).
        let pid = std::process::id();
        if role.is_producer() {
            live.producer_pid.store(pid, Ordering::Relaxed);
            live.producer_attaches.fetch_add(1, Ordering::Relaxed);
        } else {
            live.consumer_pid.store(pid, Ordering::Relaxed);
            live.consumer_attaches.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(e) = entry.and_then(|i| seg.region.registry(i)) {
            e.pid.store(pid, Ordering::Relaxed);
            match role {
                Role::MpmcConsumer => e.role.store(ROLE_CONSUMER, Ordering::Relaxed),
                Role::Reader => e.role.store(ROLE_READER, Ordering::Relaxed),
                _ => {}
            }
        }
        Ok(Self { seg, role, lock_byte, entry, wait: opts.wait, last_probe: None, peer_gone: false })
    }

    /// True if the peer role was attached once and no live process holds
    /// it now. Probes (one or a few fcntl calls) at most every
    /// [`PROBE_EVERY`] unless `force`.
    pub(crate) fn peer_gone(&mut self, force: bool) -> bool {
        let now = Instant::now();
        // Only "alive" is taken from the last probe: "gone" is probed again,
        // so a peer that attached since (a new MPMC consumer, a restarted
        // producer) is never reported gone. That costs a syscall per call
        // only while no peer is there.
        if !force && !self.peer_gone && self.last_probe.is_some_and(|t| now.duration_since(t) < PROBE_EVERY) {
            return false;
        }
        self.last_probe = Some(now);
        let live = self.seg.region.liveness();
        // Relaxed: the counter only tells "attached once"; the lock probe
        // below is the authority.
        let attaches = if self.role.is_producer() {
            live.consumer_attaches.load(Ordering::Relaxed)
        } else {
            live.producer_attaches.load(Ordering::Relaxed)
        };
        if attaches == 0 {
            return false;
        }
        let alive = match self.role {
            Role::Producer => self.seg.is_locked(CONSUMER_LOCK_BYTE),
            Role::Consumer | Role::Reader => self.seg.is_locked(PRODUCER_LOCK_BYTE),
            // Nobody waits for readers: a writer never has a peer to lose.
            Role::Writer => Ok(true),
            Role::MpmcProducer => self.any_entry_alive(ROLE_CONSUMER),
            Role::MpmcConsumer => self.any_entry_alive(ROLE_PRODUCER),
        };
        // A failing probe (impossible on a valid fd) counts as alive: we
        // would rather wait for the deadline than drop a live peer.
        self.peer_gone = !alive.unwrap_or(true);
        self.peer_gone
    }

    fn any_entry_alive(&self, role: u32) -> std::io::Result<bool> {
        for i in 0..REGISTRY_ENTRIES {
            let Some(e) = self.seg.region.registry(i) else { continue };
            // Relaxed: a hint to skip probing entries of the other role.
            if e.role.load(Ordering::Relaxed) == role && self.entry_alive(i)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True if registry entry `i` is held by a live handle (us included).
    pub(crate) fn entry_alive(&self, i: usize) -> std::io::Result<bool> {
        if self.entry == Some(i) {
            return Ok(true);
        }
        self.seg.is_locked((REGISTRY_OFFSET + i * 128) as u64)
    }

    /// The `check` of a blocking call: `Disconnected` if the peer is gone,
    /// `Timeout` past the deadline, otherwise how long the next sleep may be.
    pub(crate) fn check(&mut self, deadline: Option<Instant>) -> Result<Duration, Stop> {
        let probed_before = self.last_probe;
        if self.peer_gone(false) {
            return Err(Stop::Disconnected);
        }
        // If the probe was skipped (rate limit), sleep only until the next
        // one is due: a peer that left (and rang us awake) just after our
        // last probe is then seen within PROBE_EVERY, not a whole SLICE.
        let slice = match self.last_probe {
            Some(t) if self.last_probe == probed_before => PROBE_EVERY.saturating_sub(t.elapsed()).min(SLICE),
            _ => SLICE,
        };
        match deadline {
            None => Ok(slice),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() { Err(Stop::Timeout) } else { Ok(left.min(slice)) }
            }
        }
    }

    /// Releases this handle's lock, so the peer sees it gone at its next
    /// probe. Call before waking the peer when leaving.
    pub(crate) fn release(&self) {
        if let Some(byte) = self.lock_byte {
            self.seg.unlock(byte);
        }
    }
}

/// The deadline `timeout` from now (`None`: wait forever).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
