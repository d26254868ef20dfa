//! Multi-producer multi-consumer ring of fixed-size `Pod` messages.
//!
//! Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>):
//! every slot carries a sequence word; producers claim a position with a CAS
//! on `write_pos` when the slot's sequence equals the position, write, and
//! store `pos + 1`; consumers claim with a CAS on `read_pos` when the
//! sequence equals `pos + 1`, read, and store `pos + capacity`.
//!
//! A producer that dies between its claim and its commit would wedge every
//! consumer at that slot. So each producer records `pos + 1` in its
//! registry entry (`claim`) before its CAS; a consumer stuck at a claimed,
//! uncommitted slot can ask for the [`Stall`], the transport checks whether
//! every claimant is dead (it owns the liveness locks), and
//! [`MpmcConsumer::skip_stalled`] marks the slot skipped (sequence
//! `pos + 1` with [`SKIPPED`] set). Consumers pass over a skipped slot and
//! count it in the header, as Aeron's unblocker does.

use crate::error::{Corruption, LayoutError};
use crate::layout::{Flavor, REGISTRY_ENTRIES};
use crate::region::Region;
use crate::spsc::expect_for;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{self, WaitStrategy, Waker};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::Duration;

/// Sequence bit marking a slot skipped because its claimer died.
pub const SKIPPED: u64 = 1 << 63;

/// Registry role value of an MPMC producer.
pub const ROLE_PRODUCER: u32 = 1;
/// Registry role value of an MPMC consumer.
pub const ROLE_CONSUMER: u32 = 2;
/// Registry role of a broadcast reader (informational, for `ls`).
pub const ROLE_READER: u32 = 3;
/// Positions at or beyond this are corruption: sequence words hold
/// `pos + capacity` and use bit 63 as [`SKIPPED`], so an honest ring stays
/// far below (2^62 messages is 146 years at 1 GHz) and a hostile position
/// up there must not be mistaken for a skip.
pub const MAX_POS: u64 = 1 << 62;

/// The producing half of an MPMC ring; any number may exist.
pub struct MpmcProducer<T> {
    region: Region,
    mask: u64,
    entry: Option<usize>,
    waker: Waker,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for MpmcProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcProducer").field("entry", &self.entry).finish_non_exhaustive()
    }
}

impl<T: Pod> MpmcProducer<T> {
    /// A producer on `region`. `entry` is the registry entry this handle
    /// owns (the transport locks it), used to record claims so that a
    /// consumer can unwedge the ring if this process dies mid-write; `None`
    /// in one process, where nobody dies alone.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not an MPMC ring of `T`.
    pub fn attach(region: Region, entry: Option<usize>) -> Result<Self, LayoutError> {
        expect_for::<T>(Flavor::Mpmc, None).check(region.params())?;
        if let Some(index) = entry {
            if !settle_claim(&region, index) {
                // The previous owner died holding a claim nobody has skipped
                // yet: keep the evidence until a consumer resolves it.
                return Err(LayoutError::RegistryEntry { index, reason: "holds an unresolved claim" });
            }
            if let Some(e) = region.registry(index) {
                // Relaxed: the transport took this entry under its lock.
                e.role.store(ROLE_PRODUCER, Ordering::Relaxed);
            }
        }
        let mask = region.capacity() - 1;
        let waker = Waker::new(&region.wait_line().data);
        Ok(Self { region, mask, entry: entry.filter(|&i| i < REGISTRY_ENTRIES), waker, _msg: PhantomData })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Pushes `value` if there is room.
    ///
    /// # Errors
    /// [`Corruption`] if a sequence word is impossible.
    pub fn try_push(&mut self, value: &T) -> Result<bool, Corruption> {
        let line = self.region.producer_line();
        let claim = self.entry.and_then(|i| self.region.registry(i)).map(|e| &e.claim);
        // Relaxed: a hint; the CAS below decides.
        let mut pos = line.write_pos.load(Ordering::Relaxed);
        let slot = loop {
            if pos >= MAX_POS {
                return Err(Corruption::Positions { write: pos, read: 0, capacity: self.mask + 1 });
            }
            let slot = (pos & self.mask) as usize;
            // Acquire: pairs with the consumer's Release store of `pos` (as
            // `old + capacity`) in `try_pop`: its read of the slot is done.
            let seq = self.region.slot_seq(slot).load(Ordering::Acquire);
            // A slot skipped for a dead claimer that no consumer has passed
            // yet reads `p + 1 | SKIPPED`; to a producer it is what a commit
            // of `p` is: taken until a consumer passes it (full, when `p` is
            // the previous lap). Without the mask the bit made it look like a
            // later lap, i.e. corruption. `p + 1 == pos` is impossible, as
            // the capacity is at least 2.
            match (seq & !SKIPPED).wrapping_sub(pos) as i64 {
                0 => {
                    if let Some(claim) = claim {
                        // Relaxed: published by the AcqRel CAS below to a
                        // consumer that acquires write_pos in `stall`.
                        claim.store(pos.wrapping_add(1), Ordering::Relaxed);
                    }
                    // AcqRel on success: releases the claim record above;
                    // Relaxed on failure: we only retry.
                    match line.write_pos.compare_exchange(pos, pos.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                    {
                        Ok(_) => break slot,
                        Err(current) => pos = current,
                    }
                }
                diff if diff < 0 => {
                    // The slot still holds the previous lap: full.
                    if let Some(claim) = claim {
                        claim.store(0, Ordering::Relaxed);
                    }
                    return Ok(false);
                }
                _ => {
                    // Another producer took `pos`; its CAS happened before
                    // the sequence we acquired, so write_pos must have moved.
                    let current = line.write_pos.load(Ordering::Relaxed);
                    if current == pos {
                        return Err(Corruption::Sequence { pos, found: seq });
                    }
                    pos = current;
                }
            }
        };
        {
            let _access = self.region.tracker().write(self.region.payload_offset_of(slot), size_of::<T>());
            // SAFETY: `slot` is masked below the capacity; we own position
            // `pos` (won the CAS) and the sequence said consumers are done
            // with the slot; T is Pod.
            unsafe { std::ptr::write_unaligned(self.region.slot_payload(slot) as *mut T, *value) };
        }
        // Release: pairs with the Acquire load of the sequence in
        // `MpmcConsumer::try_pop`: the payload is visible first.
        self.region.slot_seq(slot).store(pos.wrapping_add(1), Ordering::Release);
        if let Some(claim) = claim {
            // Release: pairs with the Acquire claimant loads in
            // `MpmcConsumer::stall`: a consumer that reads this 0 sees the
            // commit above, so its skip CAS fails instead of overwriting it.
            claim.store(0, Ordering::Release);
        }
        self.waker.notify(&self.region.wait_line().data);
        Ok(true)
    }

    /// Pushes `value`, waiting per `strategy` while the ring is full; see
    /// [`crate::SpscProducer::push_blocking`] for `check`.
    ///
    /// # Errors
    /// What `check` returns, [`Corruption`], or a futex error.
    pub fn push_blocking<E>(
        &mut self,
        value: &T,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<(), E>
    where
        E: From<Corruption> + From<std::io::Error>,
    {
        if self.try_push(value)? {
            return Ok(());
        }
        let region = self.region.clone();
        wait::block(strategy, &region.wait_line().space, || Ok(self.try_push(value)?.then_some(())), check)
    }

    /// Announces that this handle may sleep on the futex.
    pub fn set_strategy(&self, strategy: WaitStrategy) {
        wait::announce_parker(&self.region.wait_line().space, strategy);
    }

    /// Wakes the peer if it sleeps on the futex. Handles call it when they
    /// leave, so a parked peer notices at once.
    pub fn wake_peer(&self) {
        wait::ring(&self.region.wait_line().data);
    }
}

/// Makes registry entry `index` ready for a new owner (who holds its lock):
/// true if it holds no claim, or a settled one (its position was consumed
/// or skipped), which is cleared; false if its claim may still wedge the
/// consumers, or the index is out of range.
pub fn settle_claim(region: &Region, index: usize) -> bool {
    let Some(e) = region.registry(index) else { return false };
    // Relaxed: the caller holds the entry's lock, taken after the previous
    // owner's death (the kernel orders the two).
    let stale = e.claim.load(Ordering::Relaxed);
    if stale != 0 {
        // Relaxed: the dead owner's role, as it left it.
        let unsettled = if e.role.load(Ordering::Relaxed) == ROLE_CONSUMER {
            // A consumer's claim is settled once its slot was released
            // (by it, or by a producer's `release_consumer_stall`).
            let pos = stale.wrapping_sub(1);
            // Acquire: pairs with the release of the slot.
            let seq = region.slot_seq((pos & (region.capacity() - 1)) as usize).load(Ordering::Acquire);
            seq & !SKIPPED == stale
        } else {
            // Acquire: pairs with the consumers' sequence releases; a read
            // position past a producer's claim means it was consumed or
            // skipped.
            let read = region.consumer_line().read_pos.load(Ordering::Acquire);
            (read.wrapping_sub(stale) as i64) < 0
        };
        if unsettled {
            return false;
        }
    }
    // Relaxed: nobody else writes an entry whose lock we hold.
    e.claim.store(0, Ordering::Relaxed);
    true
}

/// Registry entries of `role` whose claim names `pos` (bit i = entry i).
fn claimants(region: &Region, role: u32, pos: u64) -> u32 {
    (0..REGISTRY_ENTRIES)
        .filter_map(|i| region.registry(i).map(|e| (i, e)))
        // Role Relaxed (a hint). Claim Acquire: pairs with the Release clear
        // after a commit (producers) or a slot release (consumers): a claim
        // read as cleared means that store happened before, so the skip or
        // release CAS that follows fails instead of overwriting it.
        .filter(|(_, e)| {
            e.role.load(Ordering::Relaxed) == role && e.claim.load(Ordering::Acquire) == pos.wrapping_add(1)
        })
        .fold(0u32, |bits, (i, _)| bits | (1 << i))
}

/// After a skip or release resolved `stall`, clears its claimants' claims so
/// their entries may be taken again.
fn clear_dead_claims(region: &Region, stall: &Stall) {
    for i in (0..REGISTRY_ENTRIES).filter(|i| stall.claimants & (1 << i) != 0) {
        if let Some(e) = region.registry(i) {
            // Relaxed: the dead claimant's entry may be reused now.
            let _ = e.claim.compare_exchange(stall.pos.wrapping_add(1), 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// Clears a consumer's claim when it leaves `try_pop` holding no slot: a
/// claim left by a lost CAS names a position another consumer took.
#[inline]
fn clear_claim(claim: Option<&AtomicU64>) {
    if let Some(claim) = claim {
        // Relaxed: this consumer holds no slot, so there is no release for a
        // producer to order after.
        claim.store(0, Ordering::Relaxed);
    }
}

/// The slot every producer is waiting on, if a consumer took its message
/// (moved `read_pos` past it) and has not released it: the consumer died
/// between the two, or is slow. [`Stall::claimants`] are the registry
/// entries of consumers claiming it; release it with
/// [`release_consumer_stall`] only once all of them are known dead.
pub fn consumer_stall(region: &Region) -> Option<Stall> {
    let mask = region.capacity() - 1;
    // Relaxed: a stale value finds a sequence that moved on, and
    // `release_consumer_stall` re-checks with a CAS anyway.
    let write = region.producer_line().write_pos.load(Ordering::Relaxed);
    let pos = write.wrapping_sub(mask + 1);
    // Acquire: as in `MpmcProducer::try_push`.
    let seq = region.slot_seq((write & mask) as usize).load(Ordering::Acquire);
    if seq & !SKIPPED != pos.wrapping_add(1) {
        return None;
    }
    // Acquire: pairs with the consumers' Release CAS of read_pos, so the
    // claim a consumer stored before it is visible below.
    let read = region.consumer_line().read_pos.load(Ordering::Acquire);
    if (read.wrapping_sub(pos) as i64) <= 0 {
        // Nobody took `pos` yet: the ring is simply full.
        return None;
    }
    // The claims were published by the consumers' Release CAS, acquired
    // with read_pos above.
    Some(Stall { pos, claimants: claimants(region, ROLE_CONSUMER, pos) })
}

/// Releases the slot of a [`consumer_stall`] as its dead consumer would
/// have: its message is lost (counted in the header's `skipped`). Call only
/// once every claimant is known dead; a stall with no claimant is never
/// released. Consumers without a registry entry make no claims, so they
/// must not share a segment with registered ones where this runs: a dead
/// registered consumer's stale claim could then name a slot an unregistered
/// one is reading. Returns false if nothing was released.
pub fn release_consumer_stall(region: &Region, stall: &Stall) -> bool {
    if stall.claimants == 0 {
        return false;
    }
    let capacity = region.capacity();
    let seq = region.slot_seq((stall.pos & (capacity - 1)) as usize);
    // Relaxed: the CAS below decides.
    let current = seq.load(Ordering::Relaxed);
    if current & !SKIPPED != stall.pos.wrapping_add(1) {
        return false;
    }
    // AcqRel: a release like the dead consumer's (Release, pairs with the
    // producers' Acquire sequence load) that also observes what it replaces.
    let released =
        seq.compare_exchange(current, stall.pos.wrapping_add(capacity), Ordering::AcqRel, Ordering::Relaxed).is_ok();
    if released {
        // Relaxed: a statistic.
        region.header().skipped.fetch_add(1, Ordering::Relaxed);
        clear_dead_claims(region, stall);
        wait::ring(&region.wait_line().space);
    }
    released
}

/// A claimed, uncommitted slot holding up every consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// The stuck position.
    pub pos: u64,
    /// Registry entries whose owner claims it (bit i = entry i): producers
    /// for a [`MpmcConsumer::stall`], consumers for a [`consumer_stall`].
    pub claimants: u32,
}

/// The consuming half of an MPMC ring; any number may exist.
pub struct MpmcConsumer<T> {
    region: Region,
    mask: u64,
    /// Registry entry whose `claim` records the position being read.
    entry: Option<usize>,
    waker: Waker,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for MpmcConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcConsumer").finish_non_exhaustive()
    }
}

impl<T: Pod> MpmcConsumer<T> {
    /// A consumer on `region`.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not an MPMC ring of `T`.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        Self::attach_with_entry(region, None)
    }

    /// A consumer owning registry entry `entry` (the transport locks it):
    /// it records there the position it is reading, so that producers can
    /// release the slot if this process dies between taking a message and
    /// freeing its slot (see [`consumer_stall`]).
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not an MPMC ring of `T`, or the
    /// entry's previous owner died holding an unresolved claim.
    pub fn attach_with_entry(region: Region, entry: Option<usize>) -> Result<Self, LayoutError> {
        expect_for::<T>(Flavor::Mpmc, None).check(region.params())?;
        if let Some(index) = entry {
            if !settle_claim(&region, index) {
                return Err(LayoutError::RegistryEntry { index, reason: "holds an unresolved claim" });
            }
            if let Some(e) = region.registry(index) {
                // Relaxed: the transport took this entry under its lock.
                e.role.store(ROLE_CONSUMER, Ordering::Relaxed);
            }
        }
        let mask = region.capacity() - 1;
        let waker = Waker::new(&region.wait_line().space);
        let entry = entry.filter(|&i| i < REGISTRY_ENTRIES);
        Ok(Self { region, mask, entry, waker, _msg: PhantomData })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Pops the oldest available message, copying it out. Skipped slots are
    /// passed over (and counted in the header).
    ///
    /// # Errors
    /// [`Corruption`] if a sequence word is impossible.
    pub fn try_pop(&mut self) -> Result<Option<T>, Corruption> {
        let line = self.region.consumer_line();
        let capacity = self.mask + 1;
        let claim = self.entry.and_then(|i| self.region.registry(i)).map(|e| &e.claim);
        // Relaxed: a hint; the CAS below decides.
        let mut pos = line.read_pos.load(Ordering::Relaxed);
        loop {
            if pos >= MAX_POS {
                clear_claim(claim);
                return Err(Corruption::Positions { write: 0, read: pos, capacity });
            }
            let slot = (pos & self.mask) as usize;
            // Acquire: pairs with the producer's Release store of `pos + 1`.
            let seq = self.region.slot_seq(slot).load(Ordering::Acquire);
            let ready = pos.wrapping_add(1);
            let skipped = seq == ready | SKIPPED;
            if seq == ready || skipped {
                if let Some(claim) = claim {
                    // Relaxed: published by the Release CAS below to a
                    // producer that acquires read_pos in `consumer_stall`.
                    claim.store(ready, Ordering::Relaxed);
                }
                // Release on success: publishes the claim above (the slot's
                // sequence, not read_pos, carries the data). Relaxed on
                // failure: we only retry.
                match line.read_pos.compare_exchange(pos, ready, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => {}
                    Err(current) => {
                        pos = current;
                        continue;
                    }
                }
                let value = (!skipped).then(|| {
                    let _access = self.region.tracker().read(self.region.payload_offset_of(slot), size_of::<T>());
                    // SAFETY: `slot` is masked below the capacity; we own
                    // position `pos` (won the CAS) and its sequence said
                    // committed; T is Pod, so any bytes are a valid T.
                    unsafe { std::ptr::read_unaligned(self.region.slot_payload(slot) as *const T) }
                });
                // Release: pairs with the producer's Acquire load of the
                // sequence in `try_push`: our read is done before reuse.
                self.region.slot_seq(slot).store(pos.wrapping_add(capacity), Ordering::Release);
                if let Some(claim) = claim {
                    // Release: pairs with the Acquire claimant loads in
                    // `consumer_stall`: a producer that reads this 0 sees
                    // the slot release above, so it never releases it again.
                    claim.store(0, Ordering::Release);
                }
                self.waker.notify(&self.region.wait_line().space);
                match value {
                    Some(v) => return Ok(Some(v)),
                    None => {
                        // Relaxed: a statistic.
                        self.region.header().skipped.fetch_add(1, Ordering::Relaxed);
                        pos = ready;
                        continue;
                    }
                }
            }
            // Masked: a previous lap's skipped slot that its consumer has
            // not passed yet reads `(pos + 1 - capacity) | SKIPPED`, which is
            // "not yet committed" here, not a later lap.
            if ((seq & !SKIPPED).wrapping_sub(ready) as i64) < 0 {
                clear_claim(claim);
                return Ok(None);
            }
            // Another consumer took `pos` (its CAS precedes the sequence we
            // acquired), so read_pos must have moved.
            let current = line.read_pos.load(Ordering::Relaxed);
            if current == pos {
                clear_claim(claim);
                return Err(Corruption::Sequence { pos, found: seq });
            }
            pos = current;
        }
    }

    /// Pops a message, waiting per `strategy` while the ring is empty; see
    /// [`crate::SpscProducer::push_blocking`] for `check`.
    ///
    /// # Errors
    /// What `check` returns, [`Corruption`], or a futex error.
    pub fn pop_blocking<E>(
        &mut self,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<T, E>
    where
        E: From<Corruption> + From<std::io::Error>,
    {
        if let Some(v) = self.try_pop()? {
            return Ok(v);
        }
        let region = self.region.clone();
        wait::block(strategy, &region.wait_line().data, || Ok(self.try_pop()?), check)
    }

    /// Announces that this handle may sleep on the futex.
    pub fn set_strategy(&self, strategy: WaitStrategy) {
        wait::announce_parker(&self.region.wait_line().data, strategy);
    }

    /// Wakes the peer if it sleeps on the futex. Handles call it when they
    /// leave, so a parked peer notices at once.
    pub fn wake_peer(&self) {
        wait::ring(&self.region.wait_line().space);
    }

    /// The slot every consumer is waiting on, if a producer claimed it and
    /// has not committed it.
    pub fn stall(&self) -> Option<Stall> {
        // Relaxed: a stale `pos` finds a sequence that moved past `pos`, and
        // `skip_stalled` re-checks with a CAS anyway.
        let pos = self.region.consumer_line().read_pos.load(Ordering::Relaxed);
        // Acquire: as in `try_pop`.
        let seq = self.region.slot_seq((pos & self.mask) as usize).load(Ordering::Acquire);
        // Acquire: pairs with the claimer's AcqRel CAS, so its `claim` store
        // is visible below.
        let write = self.region.producer_line().write_pos.load(Ordering::Acquire);
        if seq != pos || write.wrapping_sub(pos).wrapping_sub(1) > self.mask {
            return None;
        }
        // The claims were published by the producers' AcqRel CAS, acquired
        // with write_pos above.
        Some(Stall { pos, claimants: claimants(&self.region, ROLE_PRODUCER, pos) })
    }

    /// Marks the stalled slot skipped. Call only once every claimant of
    /// `stall` is known dead; a stall with no claimant is never skipped (a
    /// live producer without a registry entry may own it). Returns false if
    /// nothing was skipped (no claimant, or the slot moved on meanwhile).
    pub fn skip_stalled(&self, stall: &Stall) -> bool {
        if stall.claimants == 0 {
            return false;
        }
        let seq = self.region.slot_seq((stall.pos & self.mask) as usize);
        // AcqRel: like a commit (Release, pairs with the consumers' Acquire
        // sequence load) that also observes the state it replaces.
        let skipped = seq
            .compare_exchange(stall.pos, stall.pos.wrapping_add(1) | SKIPPED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if skipped {
            clear_dead_claims(&self.region, stall);
        }
        skipped
    }

    /// Messages waiting, as seen now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.region.len() as usize
    }

    /// True if [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
