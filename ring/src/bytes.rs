//! Single-producer single-consumer ring of variable-length byte records.
//!
//! A record is an 8-byte header (`len: u32`, `flags: u32`, little endian)
//! followed by `len` payload bytes padded to 8. A record never straddles the
//! end of the ring: when it does not fit before the end, a padding record
//! (flag [`FLAG_PAD`]) fills the tail and the record starts at offset 0.
//! Positions count bytes and never wrap; `pos & (capacity - 1)` is the
//! offset. This is the byte-ring layout of bbqueue/rtrb chunks, published
//! Lamport style: the consumer trusts a record only below the `write_pos` it
//! acquired, and validates every header against the ring's bounds.
//!
//! Zero copy: [`ByteProducer::reserve`] hands out the payload bytes inside
//! the region; [`Grant::commit`] publishes them. [`ByteConsumer::read`]
//! hands out a guard over the payload in place; dropping it releases the
//! space.

use crate::error::{Corruption, LayoutError};
use crate::layout::Flavor;
use crate::region::Region;
use crate::sync::{AccessGuard, Ordering};
use crate::wait::{self, WaitStrategy, Waker};
use std::time::Duration;

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 8;
/// Header flag of a padding record.
pub const FLAG_PAD: u32 = 1;

#[inline(always)]
fn padded(len: u64) -> u64 {
    (len + 7) & !7
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// The record can never fit this ring.
    #[error(
        "a record of {len} bytes can never fit this ring (at most {max} bytes); use a larger capacity or split the message"
    )]
    TooLarge {
        /// Requested length.
        len: usize,
        /// Largest record the ring can hold.
        max: usize,
    },
    /// The shared positions are impossible.
    #[error(transparent)]
    Corrupted(#[from] Corruption),
}

/// Where an accepted reservation lives.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    /// Offset of the record header.
    offset: usize,
    /// Payload length asked for.
    len: usize,
    /// Bytes of padding record before it (0 if none).
    pad: u64,
}

/// The producing half of a byte-record ring.
pub struct ByteProducer {
    region: Region,
    write_pos: u64,
    cached_read_pos: u64,
    capacity: u64,
    waker: Waker,
}

impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer").field("write_pos", &self.write_pos).finish_non_exhaustive()
    }
}

impl ByteProducer {
    /// Takes the producer role of `region`, continuing at its `write_pos`.
    /// The caller guarantees no other producer handle is alive.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a byte ring, or its positions
    /// are inconsistent.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        check_flavor(&region)?;
        let capacity = region.capacity();
        // Relaxed: only the producer writes write_pos.
        let write = region.producer_line().write_pos.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store of read_pos.
        let read = region.consumer_line().read_pos.load(Ordering::Acquire);
        crate::spsc::check_positions(write, read, capacity)?;
        check_aligned(write, read, capacity)?;
        let waker = Waker::new(&region.wait_line().data);
        Ok(Self { region, write_pos: write, cached_read_pos: read, capacity, waker })
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Largest payload a single record can carry.
    pub fn max_record_len(&self) -> usize {
        self.region.params().max_record_len()
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Finds room for a record of `len` bytes, writing the padding record
    /// if one is needed (unpublished until commit). `None` if full now.
    ///
    /// A record that together with its padding is larger than the ring could
    /// never fit at this offset: then the padding is published alone as soon
    /// as the tail is free, and the record fits at offset 0 once the consumer
    /// has passed it.
    fn try_prepare(&mut self, len: usize) -> Result<Option<Reservation>, ReserveError> {
        let max = self.max_record_len();
        if len > max {
            return Err(ReserveError::TooLarge { len, max });
        }
        let need = RECORD_HEADER as u64 + padded(len as u64);
        let offset = self.write_pos & (self.capacity - 1);
        let to_end = self.capacity - offset;
        let pad = if need > to_end { to_end } else { 0 };
        let total = pad + need;
        if self.capacity - self.write_pos.wrapping_sub(self.cached_read_pos) < total {
            // Acquire: pairs with the consumer's Release store of read_pos:
            // its reads of the bytes we are about to reuse are finished.
            let read = self.region.consumer_line().read_pos.load(Ordering::Acquire);
            crate::spsc::check_positions(self.write_pos, read, self.capacity)?;
            self.cached_read_pos = read;
            let free = self.capacity - self.write_pos.wrapping_sub(read);
            if free < total {
                if total > self.capacity && free >= pad {
                    self.publish_padding(offset as usize, pad);
                }
                return Ok(None);
            }
        }
        if pad > 0 {
            self.write_header(offset as usize, pad - RECORD_HEADER as u64, FLAG_PAD);
        }
        let offset = if pad > 0 { 0 } else { offset as usize };
        Ok(Some(Reservation { offset, len, pad }))
    }

    /// Publishes a padding record of `pad` bytes at `offset` on its own.
    fn publish_padding(&mut self, offset: usize, pad: u64) {
        self.write_header(offset, pad - RECORD_HEADER as u64, FLAG_PAD);
        self.write_pos = self.write_pos.wrapping_add(pad);
        // Release: pairs with the Acquire load of write_pos in
        // `ByteConsumer::try_next`: the padding header is visible first.
        self.region.producer_line().write_pos.store(self.write_pos, Ordering::Release);
        self.waker.notify(&self.region.wait_line().data);
    }

    fn write_header(&self, offset: usize, len: u64, flags: u32) {
        let word = len | (u64::from(flags) << 32);
        let _access = self.region.tracker().write(offset, RECORD_HEADER);
        // SAFETY: `offset` is 8-aligned and at most capacity - 8 (records and
        // the pad start on 8-byte boundaries strictly before the end), so the
        // 8 bytes lie in the data area, which the producer owns until publish.
        unsafe { std::ptr::write_unaligned(self.region.data_ptr(offset) as *mut [u8; 8], word.to_le_bytes()) };
    }

    fn grant(&mut self, reservation: Reservation) -> Grant<'_> {
        let access = self.region.tracker().write(reservation.offset + RECORD_HEADER, reservation.len);
        Grant { producer: self, reservation, _access: access }
    }

    /// Reserves `len` bytes for a record if there is room now.
    ///
    /// # Errors
    /// [`ReserveError::TooLarge`] if the record can never fit,
    /// [`ReserveError::Corrupted`] if the consumer's position is impossible.
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<Grant<'_>>, ReserveError> {
        Ok(self.try_prepare(len)?.map(|r| self.grant(r)))
    }

    /// Reserves `len` bytes, waiting per `strategy` while the ring is full;
    /// see [`crate::SpscProducer::push_blocking`] for `check`.
    ///
    /// # Errors
    /// What `check` returns, or a [`ReserveError`] or futex error converted.
    pub fn reserve_blocking<E>(
        &mut self,
        len: usize,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<Grant<'_>, E>
    where
        E: From<ReserveError> + From<std::io::Error>,
    {
        let reservation = match self.try_prepare(len)? {
            Some(r) => r,
            None => {
                let region = self.region.clone();
                wait::block(strategy, &region.wait_line().space, || Ok(self.try_prepare(len)?), check)?
            }
        };
        Ok(self.grant(reservation))
    }

    /// Copies `payload` into a new record and commits it, if there is room.
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    pub fn try_push(&mut self, payload: &[u8]) -> Result<bool, ReserveError> {
        match self.try_reserve(payload.len())? {
            Some(mut grant) => {
                grant.copy_from_slice(payload);
                grant.commit();
                Ok(true)
            }
            None => Ok(false),
        }
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

/// A reserved record: `len` writable bytes inside the ring. Nothing is
/// visible to the consumer until [`commit`](Self::commit); dropping the
/// grant publishes nothing.
pub struct Grant<'a> {
    producer: &'a mut ByteProducer,
    reservation: Reservation,
    _access: AccessGuard,
}

impl std::fmt::Debug for Grant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("len", &self.reservation.len).finish_non_exhaustive()
    }
}

impl Grant<'_> {
    /// Publishes the whole record.
    pub fn commit(self) {
        let len = self.reservation.len;
        self.commit_len(len);
    }

    /// Publishes only the first `len` bytes (at most the reserved length).
    ///
    /// # Panics
    /// If `len` is larger than the reservation (caller misuse).
    pub fn commit_len(self, len: usize) {
        let reserved = self.reservation.len;
        assert!(len <= reserved, "commit_len({len}) beyond the {reserved} reserved bytes");
        let Grant { producer, reservation, _access: access } = self;
        // The payload writes end here, before the publish below.
        access.end();
        let Reservation { offset, pad, .. } = reservation;
        producer.write_header(offset, len as u64, 0);
        let total = pad + RECORD_HEADER as u64 + padded(len as u64);
        producer.write_pos = producer.write_pos.wrapping_add(total);
        // Release: pairs with the Acquire load of write_pos in
        // `ByteConsumer::try_next`: header and payload are visible first.
        producer.region.producer_line().write_pos.store(producer.write_pos, Ordering::Release);
        producer.waker.notify(&producer.region.wait_line().data);
    }
}

impl std::ops::Deref for Grant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // Bounds: try_prepare checked [offset + 8, offset + 8 + len) fits
        // before the end of the data area.
        // SAFETY: that range is in the region and reserved for this producer
        // until commit; the consumer never reads beyond write_pos.
        unsafe {
            std::slice::from_raw_parts(
                self.producer.region.data_ptr(self.reservation.offset + RECORD_HEADER),
                self.reservation.len,
            )
        }
    }
}

impl std::ops::DerefMut for Grant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.producer.region.data_ptr(self.reservation.offset + RECORD_HEADER),
                self.reservation.len,
            )
        }
    }
}

/// A validated record in place.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: usize,
    len: usize,
    end: u64,
}

/// The consuming half of a byte-record ring.
pub struct ByteConsumer {
    region: Region,
    read_pos: u64,
    cached_write_pos: u64,
    capacity: u64,
    waker: Waker,
}

impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer").field("read_pos", &self.read_pos).finish_non_exhaustive()
    }
}

impl ByteConsumer {
    /// Takes the consumer role of `region`, continuing at its `read_pos`.
    /// The caller guarantees no other consumer handle is alive.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a byte ring, or its positions
    /// are inconsistent.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        check_flavor(&region)?;
        let capacity = region.capacity();
        // Relaxed: only the consumer writes read_pos.
        let read = region.consumer_line().read_pos.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store in `commit_len`.
        let write = region.producer_line().write_pos.load(Ordering::Acquire);
        crate::spsc::check_positions(write, read, capacity)?;
        check_aligned(write, read, capacity)?;
        let waker = Waker::new(&region.wait_line().space);
        Ok(Self { region, read_pos: read, cached_write_pos: read, capacity, waker })
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The region this handle works on.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The next committed record, validated; skips a padding record.
    fn try_next(&mut self) -> Result<Option<Record>, Corruption> {
        // At most two rounds: one padding record, then a real one.
        for _ in 0..2 {
            let pos = self.read_pos;
            if pos == self.cached_write_pos {
                // Acquire: pairs with the Release store of write_pos in
                // `Grant::commit_len`: the record's bytes are visible.
                let write = self.region.producer_line().write_pos.load(Ordering::Acquire);
                crate::spsc::check_positions(write, pos, self.capacity)?;
                self.cached_write_pos = write;
                if write == pos {
                    return Ok(None);
                }
            }
            let avail = self.cached_write_pos.wrapping_sub(pos);
            let offset = (pos & (self.capacity - 1)) as usize;
            let to_end = self.capacity - offset as u64;
            let room = avail.min(to_end);
            if room < RECORD_HEADER as u64 || offset % 8 != 0 {
                return Err(Corruption::RecordLength { pos, len: avail, room: to_end });
            }
            let header = {
                let _access = self.region.tracker().read(offset, RECORD_HEADER);
                // SAFETY: offset is 8-aligned and at least 8 bytes before the
                // end (room >= 8), inside the published range.
                u64::from_le_bytes(unsafe { std::ptr::read_unaligned(self.region.data_ptr(offset) as *const [u8; 8]) })
            };
            let len = header & 0xffff_ffff;
            let flags = (header >> 32) as u32;
            let total = RECORD_HEADER as u64 + padded(len);
            match flags {
                FLAG_PAD if total == to_end && to_end <= avail => {
                    // Released at once: a producer may have published this
                    // padding alone and be waiting for us to pass it.
                    self.release_to(pos.wrapping_add(to_end));
                }
                0 if total <= room => {
                    return Ok(Some(Record {
                        offset: offset + RECORD_HEADER,
                        len: len as usize,
                        end: pos.wrapping_add(total),
                    }));
                }
                0 | FLAG_PAD => return Err(Corruption::RecordLength { pos, len, room }),
                _ => return Err(Corruption::RecordFlags { pos, flags }),
            }
        }
        // Two padding records in a row: no correct producer writes that.
        Err(Corruption::RecordFlags { pos: self.read_pos, flags: FLAG_PAD })
    }

    fn guard(&mut self, record: Record) -> ReadGuard<'_> {
        let access = self.region.tracker().read(record.offset, record.len);
        ReadGuard { consumer: self, record, access: Some(access) }
    }

    fn release_to(&mut self, end: u64) {
        self.read_pos = end;
        // Release: pairs with the Acquire load of read_pos in
        // `ByteProducer::try_prepare`: our reads finish before reuse.
        self.region.consumer_line().read_pos.store(end, Ordering::Release);
        self.waker.notify(&self.region.wait_line().space);
    }

    /// The oldest committed record, in place, if any. Its space returns to
    /// the producer when the guard is dropped.
    ///
    /// # Errors
    /// [`Corruption`] if a record header is impossible.
    pub fn try_read(&mut self) -> Result<Option<ReadGuard<'_>>, Corruption> {
        Ok(self.try_next()?.map(|r| self.guard(r)))
    }

    /// Waits per `strategy` for a record; see
    /// [`crate::SpscProducer::push_blocking`] for `check`.
    ///
    /// # Errors
    /// What `check` returns, [`Corruption`], or a futex error.
    pub fn read_blocking<E>(
        &mut self,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<ReadGuard<'_>, E>
    where
        E: From<Corruption> + From<std::io::Error>,
    {
        let record = match self.try_next()? {
            Some(r) => r,
            None => {
                let region = self.region.clone();
                wait::block(strategy, &region.wait_line().data, || Ok(self.try_next()?), check)?
            }
        };
        Ok(self.guard(record))
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

    /// Bytes committed and not yet read, as seen now (at most the capacity).
    pub fn len_bytes(&self) -> usize {
        self.region.len() as usize
    }
}

/// A record read in place. Derefs to its payload; its space returns to the
/// producer on drop.
///
/// What a misbehaving producer can do: change these bytes while you hold the
/// guard (the producer process can write anywhere in the mapping). What it
/// cannot do: make the slice point outside the ring, make it longer than
/// the ring, or make this process crash — lengths and offsets were
/// validated against the ring's bounds before the guard was made. Copy the
/// payload out and validate the copy if the producer is not trusted.
pub struct ReadGuard<'a> {
    consumer: &'a mut ByteConsumer,
    record: Record,
    /// Taken (ending the tracked read) before the space is released.
    access: Option<AccessGuard>,
}

impl std::fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGuard").field("len", &self.record.len).finish_non_exhaustive()
    }
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `try_next` checked offset + len lies before the end of the
        // data area and inside the range the producer published; the space
        // is not reused until this guard releases it on drop.
        unsafe { std::slice::from_raw_parts(self.consumer.region.data_ptr(self.record.offset), self.record.len) }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Some(access) = self.access.take() {
            access.end();
        }
        self.consumer.release_to(self.record.end);
    }
}

/// Records start on 8-byte boundaries; a position that does not is
/// corruption (it would put a header across the end of the ring).
fn check_aligned(write: u64, read: u64, capacity: u64) -> Result<(), Corruption> {
    if (write | read) % 8 == 0 { Ok(()) } else { Err(Corruption::Positions { write, read, capacity }) }
}

fn check_flavor(region: &Region) -> Result<(), LayoutError> {
    let found = region.params().flavor;
    if found == Flavor::Bytes { Ok(()) } else { Err(LayoutError::FlavorMismatch { expected: Flavor::Bytes, found }) }
}

#[cfg(test)]
mod tests {
    use super::padded;

    #[test]
    fn padding_rounds_to_eight() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), 8);
        assert_eq!(padded(8), 8);
        assert_eq!(padded(9), 16);
    }
}
