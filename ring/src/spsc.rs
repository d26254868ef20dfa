//! Single-producer single-consumer ring of fixed-size `Pod` messages.
//!
//! Lamport's ring with cached remote positions (as in rtrb and Rigtorp's
//! SPSCQueue), plus a sequence word at the start of every slot
//! (FastForward / Vyukov): the consumer learns "this slot is full" from the
//! slot's own cache line instead of from the producer's position, so a
//! message costs one line transfer, not two serialized ones. The producer
//! still publishes `write_pos` (for observers, `len()` and crash recovery),
//! but that line stays in its own cache.
//!
//! Slot `pos & mask` holds message `pos` once its sequence word reads
//! `pos + 1`; any value from the previous lap (`pos + 1 - capacity`, or 0 on
//! the first) means empty; anything else is corruption.
//!
//! The producer reads `read_pos` only when its cached copy says full
//! ("possibly full → refresh → really full"); the consumer publishes
//! `read_pos` once per pop or once per batch.

use crate::error::{Corruption, LayoutError};
use crate::layout::{Expect, Flavor};
use crate::region::Region;
use crate::sync::{Ordering, seeded};
use crate::wait::{self, WaitStrategy, Waker};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::Duration;

/// What a typed handle expects of a segment holding `T`.
pub fn expect_for<T: Pod>(flavor: Flavor, schema_id: Option<u64>) -> Expect {
    Expect { flavor, msg_size: std::mem::size_of::<T>() as u32, msg_align: std::mem::align_of::<T>() as u32, schema_id }
}

/// Ordering for the producer's publishing stores (weakened only by a loom
/// seeded bug).
const PUBLISH: Ordering = if seeded::RELAXED_PUBLISH { Ordering::Relaxed } else { Ordering::Release };

/// Sequence word of an empty slot at `pos`: its previous lap's full value.
#[inline(always)]
fn empty_seq(pos: u64, capacity: u64) -> u64 {
    pos.wrapping_add(1).saturating_sub(capacity)
}

/// The producing half of an SPSC ring.
pub struct SpscProducer<T> {
    region: Region,
    /// Next position to write; authoritative (the shared copy follows it).
    write_pos: u64,
    /// Last `read_pos` seen; refreshed only when the ring looks full.
    cached_read_pos: u64,
    mask: u64,
    waker: Waker,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for SpscProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscProducer").field("write_pos", &self.write_pos).finish_non_exhaustive()
    }
}

impl<T: Pod> SpscProducer<T> {
    /// Takes the producer role of `region`, continuing where a previous
    /// producer stopped (even if it died in the middle of a batch).
    ///
    /// The caller guarantees no other producer handle for this region is
    /// alive (the transport does it with a lock); two would corrupt the ring.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not an SPSC ring of `T`, or its
    /// positions are inconsistent.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        expect_for::<T>(Flavor::Spsc, None).check(region.params())?;
        let capacity = region.capacity();
        // Relaxed: we are the only writer of write_pos from now on.
        let mut write = region.producer_line().write_pos.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store of `read_pos`.
        let read = region.consumer_line().read_pos.load(Ordering::Acquire);
        if write.wrapping_sub(read) > capacity {
            // A producer that died mid-batch leaves `write_pos` behind what
            // the consumer may already have read; the scan below fixes it.
            if read.wrapping_sub(write) > capacity {
                return Err(positions(write, read, capacity).into());
            }
            write = read;
        }
        // Recover a batch whose slots were published but whose `write_pos`
        // was not: bounded by the capacity.
        while write.wrapping_sub(read) < capacity
            // Acquire: pairs with the Release store of the sequence word.
            && region.slot_seq((write & (capacity - 1)) as usize).load(Ordering::Acquire) == write.wrapping_add(1)
        {
            write = write.wrapping_add(1);
        }
        // Release: observers that read write_pos see the slots before it.
        region.producer_line().write_pos.store(write, Ordering::Release);
        let waker = Waker::new(&region.wait_line().data);
        Ok(Self { region, write_pos: write, cached_read_pos: read, mask: capacity - 1, waker, _msg: PhantomData })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Free slots as far as this handle knows, refreshing the consumer's
    /// position when `wanted` more than that are needed.
    #[inline]
    fn free_slots(&mut self, wanted: u64) -> Result<u64, Corruption> {
        let capacity = self.mask + 1;
        let free = capacity - self.write_pos.wrapping_sub(self.cached_read_pos);
        if free >= wanted {
            return Ok(free);
        }
        // Acquire: pairs with the consumer's Release store of `read_pos`, so
        // its reads of the slots we are about to reuse are finished.
        let read = self.region.consumer_line().read_pos.load(Ordering::Acquire);
        check_positions(self.write_pos, read, capacity)?;
        self.cached_read_pos = read;
        Ok(capacity - self.write_pos.wrapping_sub(read))
    }

    /// Writes `value` into the slot of `pos` and publishes its sequence word.
    #[inline(always)]
    fn write_slot(&self, pos: u64, value: &T) {
        let slot = (pos & self.mask) as usize;
        {
            let _access = self.region.tracker().write(self.region.payload_offset_of(slot), size_of::<T>());
            // SAFETY: `slot` is masked below the capacity, so the payload lies
            // in the data area; the slot is ours (free_slots said the consumer
            // is done with it); T is Pod so a byte copy is a valid write.
            unsafe { std::ptr::write_unaligned(self.region.slot_payload(slot) as *mut T, *value) };
        }
        // Release: pairs with the Acquire load of the sequence word in
        // `SpscConsumer::try_pop`, so the payload is visible before "full".
        self.region.slot_seq(slot).store(pos.wrapping_add(1), PUBLISH);
    }

    #[inline(always)]
    fn publish(&mut self) {
        // Release: pairs with the Acquire loads of `write_pos` by observers
        // and a recovering producer; this line is read by nobody on the fast
        // path, so the store stays in our cache.
        self.region.producer_line().write_pos.store(self.write_pos, PUBLISH);
        self.waker.notify(&self.region.wait_line().data);
    }

    /// Pushes `value` if there is room. Never blocks, allocates or makes a
    /// system call while the consumer is awake.
    ///
    /// # Errors
    /// [`Corruption`] if the consumer's position is impossible.
    #[inline]
    pub fn try_push(&mut self, value: &T) -> Result<bool, Corruption> {
        if self.free_slots(1)? == 0 {
            return Ok(false);
        }
        self.write_slot(self.write_pos, value);
        self.write_pos = self.write_pos.wrapping_add(1);
        self.publish();
        Ok(true)
    }

    /// Pushes as many of `values` as fit, publishing `write_pos` once.
    /// Returns how many were pushed.
    ///
    /// # Errors
    /// [`Corruption`] if the consumer's position is impossible.
    pub fn push_batch(&mut self, values: &[T]) -> Result<usize, Corruption> {
        let n = self.free_slots(values.len() as u64)?.min(values.len() as u64) as usize;
        for value in &values[..n] {
            self.write_slot(self.write_pos, value);
            self.write_pos = self.write_pos.wrapping_add(1);
        }
        if n > 0 {
            self.publish();
        }
        Ok(n)
    }

    /// Pushes `value`, waiting per `strategy` while the ring is full.
    /// `check` is called before each sleep: it returns the longest sleep
    /// allowed, or the error that ends the wait (timeout, consumer gone).
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

    /// Announces that this handle may sleep on the futex (call at attach).
    pub fn set_strategy(&self, strategy: WaitStrategy) {
        wait::announce_parker(&self.region.wait_line().space, strategy);
    }

    /// Wakes the peer if it sleeps on the futex. Handles call it when they
    /// leave, so a parked peer notices at once.
    pub fn wake_peer(&self) {
        wait::ring(&self.region.wait_line().data);
    }
}

/// The consuming half of an SPSC ring.
pub struct SpscConsumer<T> {
    region: Region,
    /// Next position to read; authoritative.
    read_pos: u64,
    mask: u64,
    waker: Waker,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for SpscConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscConsumer").field("read_pos", &self.read_pos).finish_non_exhaustive()
    }
}

impl<T: Pod> SpscConsumer<T> {
    /// Takes the consumer role of `region`, continuing where a previous
    /// consumer stopped.
    ///
    /// The caller guarantees no other consumer handle for this region is
    /// alive.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not an SPSC ring of `T`, or its
    /// positions are inconsistent.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        expect_for::<T>(Flavor::Spsc, None).check(region.params())?;
        let capacity = region.capacity();
        // Relaxed: we are the only writer of read_pos.
        let read = region.consumer_line().read_pos.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store of `write_pos`.
        let write = region.producer_line().write_pos.load(Ordering::Acquire);
        // write_pos may trail read_pos by up to a batch if a producer died
        // mid-batch; more than a capacity either way is corruption.
        if write.wrapping_sub(read) > capacity && read.wrapping_sub(write) > capacity {
            return Err(positions(write, read, capacity).into());
        }
        let waker = Waker::new(&region.wait_line().space);
        Ok(Self { region, read_pos: read, mask: capacity - 1, waker, _msg: PhantomData })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Reads message `pos` if its slot says it is there.
    #[inline(always)]
    fn read_slot(&self, pos: u64) -> Result<Option<T>, Corruption> {
        let slot = (pos & self.mask) as usize;
        // Acquire: pairs with the Release store of the sequence word in
        // `SpscProducer::write_slot`: the payload is visible once it reads full.
        let seq = self.region.slot_seq(slot).load(Ordering::Acquire);
        if seq != pos.wrapping_add(1) {
            return if seq == empty_seq(pos, self.mask + 1) {
                Ok(None)
            } else {
                Err(Corruption::Sequence { pos, found: seq })
            };
        }
        let _access = self.region.tracker().read(self.region.payload_offset_of(slot), size_of::<T>());
        // SAFETY: `slot` is masked below the capacity so the payload lies in
        // the data area; the sequence word says the producer finished writing
        // it; T is Pod, so any bytes (even a hostile peer's) are a valid T.
        Ok(Some(unsafe { std::ptr::read_unaligned(self.region.slot_payload(slot) as *const T) }))
    }

    #[inline(always)]
    fn release(&mut self) {
        // Release: pairs with the Acquire load of `read_pos` in
        // `SpscProducer::free_slots`: our slot reads finish before reuse.
        self.region.consumer_line().read_pos.store(self.read_pos, Ordering::Release);
        self.waker.notify(&self.region.wait_line().space);
    }

    /// Pops the oldest message, if any. Copies it out of the ring first.
    ///
    /// # Errors
    /// [`Corruption`] if the slot's sequence word is impossible.
    #[inline]
    pub fn try_pop(&mut self) -> Result<Option<T>, Corruption> {
        let value = self.read_slot(self.read_pos)?;
        if value.is_some() {
            self.read_pos = self.read_pos.wrapping_add(1);
            self.release();
        }
        Ok(value)
    }

    /// Pops up to `out.len()` messages into `out`, publishing `read_pos`
    /// once. Returns how many were popped.
    ///
    /// # Errors
    /// [`Corruption`] if the first slot's sequence word is impossible. A
    /// corrupt slot after some good ones ends the batch early; the good ones
    /// are returned and the next call reports the corruption.
    pub fn pop_batch(&mut self, out: &mut [T]) -> Result<usize, Corruption> {
        let mut n = 0;
        while n < out.len() {
            match self.read_slot(self.read_pos) {
                Ok(Some(v)) => {
                    out[n] = v;
                    n += 1;
                    self.read_pos = self.read_pos.wrapping_add(1);
                }
                Ok(None) => break,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if n > 0 {
            self.release();
        }
        Ok(n)
    }

    /// Pops a message, waiting per `strategy` while the ring is empty; see
    /// [`SpscProducer::push_blocking`] for `check`.
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

    /// Announces that this handle may sleep on the futex (call at attach).
    pub fn set_strategy(&self, strategy: WaitStrategy) {
        wait::announce_parker(&self.region.wait_line().data, strategy);
    }

    /// Wakes the peer if it sleeps on the futex. Handles call it when they
    /// leave, so a parked peer notices at once.
    pub fn wake_peer(&self) {
        wait::ring(&self.region.wait_line().space);
    }

    /// Messages waiting, as seen now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.region.len() as usize
    }

    /// True if no message is waiting at the read position (a snapshot).
    pub fn is_empty(&self) -> bool {
        let slot = (self.read_pos & self.mask) as usize;
        // Acquire: as in `read_slot`.
        self.region.slot_seq(slot).load(Ordering::Acquire) != self.read_pos.wrapping_add(1)
    }
}

#[inline]
fn positions(write: u64, read: u64, capacity: u64) -> Corruption {
    Corruption::Positions { write, read, capacity }
}

/// `read <= write <= read + capacity`, in wrapping arithmetic.
#[inline]
pub(crate) fn check_positions(write: u64, read: u64, capacity: u64) -> Result<(), Corruption> {
    if write.wrapping_sub(read) <= capacity { Ok(()) } else { Err(positions(write, read, capacity)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sequence_is_previous_lap() {
        assert_eq!(empty_seq(0, 4), 0);
        assert_eq!(empty_seq(3, 4), 0);
        assert_eq!(empty_seq(4, 4), 1);
        assert_eq!(empty_seq(9, 4), 6);
        assert_eq!(empty_seq(u64::MAX, 4), 0);
    }

    #[test]
    fn positions_check_handles_wrap_and_hostile_values() {
        assert!(check_positions(4, 0, 4).is_ok());
        assert!(check_positions(5, 0, 4).is_err());
        assert!(check_positions(0, 1, 4).is_err());
        assert!(check_positions(1, u64::MAX, 4).is_ok());
        assert!(check_positions(u64::MAX, 0, 4).is_err());
    }
}
