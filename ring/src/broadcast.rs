//! One writer, many readers: a broadcast ring of fixed-size slots, each
//! guarded by its own seqlock.
//!
//! The writer never waits for anyone. Each reader keeps its cursor in its
//! own process and copies a message out of the slot, then checks that the
//! slot was not rewritten while it copied; a reader that was lapped is told
//! how many messages it lost ([`ReadError::Lagged`], as tokio's broadcast
//! does) and resumes at the oldest message still in the ring.
//!
//! # Slot versions
//!
//! Every slot starts with a version word: 0 before its first write,
//! `2 * pos + 1` while the writer writes message `pos` into it, and
//! `2 * pos + 2` once message `pos` is complete. The writer (Boehm's
//! seqlock, "Can seqlocks get along with programming language memory
//! models?", 2012):
//!
//! 1. stores `2 * pos + 1` (Relaxed), then `fence(Release)`;
//! 2. stores the payload words (Relaxed atomic stores);
//! 3. stores `2 * pos + 2` (Release).
//!
//! The reader loads the version (Acquire), copies the payload words
//! (Relaxed atomic loads), issues `fence(Acquire)`, and loads the version
//! again (Relaxed). If both reads say "complete `pos`", the copy is message
//! `pos`: had any copied word come from a later write, the fence pair
//! (writer's Release fence before that word, reader's Acquire fence after
//! it) would make the second load see that write's odd version or later.
//!
//! The payload is copied with atomic word accesses, not `memcpy`, because
//! the reader reads while the writer may be writing: with atomics the race
//! is a stale value that the version check discards, never a data race
//! (and loom can explore it word by word).
//!
//! # Lag
//!
//! A slot whose version names a position `p` later than the reader's cursor
//! `c` (same slot, so `p >= c + capacity`) means the reader was lapped. The
//! writer has at least started `p`, and its published `write_pos` may say
//! more: the oldest message that can still be intact is
//! `max(write_pos, p + 1) - capacity` (the slot of `max(..)` itself may be
//! under rewrite). The reader jumps there and reports the jump. Each such
//! jump moves the cursor forward by at least one, so lag handling cannot
//! loop, and every position is either delivered once or counted as lost
//! once.

use crate::error::{Corruption, LayoutError};
use crate::layout::{Expect, Flavor, MAX_BROADCAST_POS};
use crate::region::Region;
use crate::sync::{Ordering, fence, seeded};
use crate::wait::{self, WaitStrategy, Waker};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::time::Duration;

/// Version of a slot holding complete message `pos`.
#[inline(always)]
fn complete(pos: u64) -> u64 {
    pos.wrapping_mul(2).wrapping_add(2)
}

/// Version of a slot while message `pos` is written into it.
#[inline(always)]
fn writing(pos: u64) -> u64 {
    pos.wrapping_mul(2).wrapping_add(1)
}

/// The position a non-zero version speaks of.
#[inline(always)]
fn owner(version: u64) -> u64 {
    (version - 1) / 2
}

/// Why a broadcast read returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The writer overwrote this many messages before this reader got to
    /// them; the reader now stands at the oldest message still in the ring.
    #[error(
        "this reader fell more than a ring behind and lost {0} messages; it resumes at the oldest one still present (read faster or use a larger capacity)"
    )]
    Lagged(u64),
    /// The shared state was changed in a way no correct writer does.
    #[error(transparent)]
    Corrupted(#[from] Corruption),
}

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// At the next message the writer publishes (tokio's `subscribe`).
    #[default]
    Latest,
    /// At the oldest message still in the ring.
    Oldest,
}

/// The writer's half: owns the position and the slot protocol, for both
/// the typed and the byte-record rings.
#[derive(Debug)]
struct Writer {
    region: Region,
    write_pos: u64,
    mask: u64,
    waker: Waker,
}

impl Writer {
    fn attach(region: Region) -> Result<Self, LayoutError> {
        let capacity = region.capacity();
        // Acquire: pairs with the previous writer's Release store of
        // `write_pos`; we are the only writer from now on.
        let mut write = region.producer_line().write_pos.load(Ordering::Acquire);
        if write >= MAX_BROADCAST_POS {
            return Err(Corruption::Positions { write, read: 0, capacity }.into());
        }
        // A writer that died between completing a slot and publishing
        // `write_pos` left complete slots past it: continue after them
        // (bounded by the capacity), so no position is written twice.
        for _ in 0..capacity {
            let slot = (write & (capacity - 1)) as usize;
            // Acquire: pairs with the Release store of the complete version.
            if region.slot_seq(slot).load(Ordering::Acquire) != complete(write) {
                break;
            }
            write += 1;
        }
        // Release: pairs with readers' Acquire loads of `write_pos`.
        region.producer_line().write_pos.store(write, Ordering::Release);
        let waker = Waker::new(&region.wait_line().data);
        Ok(Self { region, write_pos: write, mask: capacity - 1, waker })
    }

    /// Writes the next message: `fill(region, slot)` stores its payload
    /// words (Relaxed, with [`store_word`]).
    #[inline(always)]
    fn publish(&mut self, fill: impl FnOnce(&Region, usize)) {
        let pos = self.write_pos;
        let slot = (pos & self.mask) as usize;
        let version = self.region.slot_seq(slot);
        // Relaxed store + Release fence: the fence orders this "writing"
        // version before every payload store below; it pairs with the
        // reader's Acquire fence before its second version load, so a reader
        // that copied any word of this write sees the slot changed.
        version.store(writing(pos), Ordering::Relaxed);
        fence(Ordering::Release);
        fill(&self.region, slot);
        // Release: pairs with the reader's Acquire load of the version: a
        // reader that sees "complete" sees the payload.
        version.store(complete(pos), Ordering::Release);
        self.write_pos = pos + 1;
        // Release: pairs with the Acquire loads of `write_pos` by readers
        // (attach, lag recovery) and a recovering writer.
        self.region.producer_line().write_pos.store(self.write_pos, Ordering::Release);
        self.waker.notify(&self.region.wait_line().data);
    }
}

/// The reader's half: one cursor, private to the reader.
#[derive(Debug)]
struct Reader {
    region: Region,
    read_pos: u64,
    mask: u64,
}

impl Reader {
    fn attach(region: Region, start: Start) -> Result<Self, LayoutError> {
        let capacity = region.capacity();
        // Acquire: pairs with the writer's Release store of `write_pos`.
        let write = region.producer_line().write_pos.load(Ordering::Acquire);
        if write >= MAX_BROADCAST_POS {
            return Err(Corruption::Positions { write, read: 0, capacity }.into());
        }
        let read_pos = match start {
            Start::Latest => write,
            Start::Oldest => write.saturating_sub(capacity),
        };
        Ok(Self { region, read_pos, mask: capacity - 1 })
    }

    /// Reads the message at the cursor if it is there: `copy(region, slot)`
    /// copies it out (Relaxed, with [`load_word`]). The copy may be torn; it
    /// is returned only if the slot's version did not change around it.
    #[inline(always)]
    fn read<R>(&mut self, copy: impl FnOnce(&Region, usize) -> Result<R, Corruption>) -> Result<Option<R>, ReadError> {
        let pos = self.read_pos;
        let slot = (pos & self.mask) as usize;
        let version = self.region.slot_seq(slot);
        // Acquire: pairs with the writer's Release store of the complete
        // version: the payload words of `pos` are visible.
        let first = version.load(Ordering::Acquire);
        if first != complete(pos) {
            return self.not_there(pos, first);
        }
        let copied = copy(&self.region, slot);
        // Acquire fence: pairs with the writer's Release fence after its
        // "writing" store: if any word above came from a later write, the
        // load below sees that write's version (or a later one).
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        let second = if seeded::NO_VERSION_RECHECK { first } else { version.load(Ordering::Relaxed) };
        if second != first {
            return Err(self.overwritten(pos, second));
        }
        // A length that is wrong in a stable slot is the writer's doing.
        let value = copied?;
        self.read_pos = pos + 1;
        Ok(Some(value))
    }

    /// The slot of `pos` does not hold it complete: not yet written, being
    /// written, lapped, or impossible.
    #[cold]
    fn not_there<R>(&mut self, pos: u64, version: u64) -> Result<Option<R>, ReadError> {
        let capacity = self.mask + 1;
        if version == 0 {
            // Never written: only possible on the first lap.
            return if pos < capacity { Ok(None) } else { Err(Corruption::Sequence { pos, found: version }.into()) };
        }
        let owner = owner(version);
        if owner & self.mask != pos & self.mask {
            return Err(Corruption::Sequence { pos, found: version }.into());
        }
        if owner == pos || owner.wrapping_add(capacity) == pos {
            // Being written now, or still the previous lap's message.
            return Ok(None);
        }
        if owner > pos {
            return Err(self.lag(pos, version));
        }
        Err(Corruption::Sequence { pos, found: version }.into())
    }

    /// The slot changed while we copied `pos`: the writer lapped us (or a
    /// hostile peer wrote it).
    #[cold]
    fn overwritten(&mut self, pos: u64, version: u64) -> ReadError {
        if version == 0 {
            return Corruption::Sequence { pos, found: version }.into();
        }
        let owner = owner(version);
        if owner & self.mask != pos & self.mask || owner <= pos {
            return Corruption::Sequence { pos, found: version }.into();
        }
        self.lag(pos, version)
    }

    /// The slot's `version` says the writer has started a later position
    /// `owner` (`> pos`, same slot): jump to the oldest message that can
    /// still be intact and report the jump.
    fn lag(&mut self, pos: u64, version: u64) -> ReadError {
        let capacity = self.mask + 1;
        let owner = owner(version);
        if owner >= MAX_BROADCAST_POS {
            // No writer gets there: a hostile version, not a lap.
            return Corruption::Sequence { pos, found: version }.into();
        }
        // Acquire: pairs with the writer's Release store of `write_pos`.
        let write = self.region.producer_line().write_pos.load(Ordering::Acquire);
        if write >= MAX_BROADCAST_POS {
            return Corruption::Positions { write, read: pos, capacity }.into();
        }
        // `owner >= pos + capacity` (same slot, later), so this is > pos.
        let resume = write.max(owner + 1) - capacity;
        self.read_pos = resume;
        ReadError::Lagged(resume - pos)
    }

    /// Messages published and not yet read (clamped to the capacity).
    fn len(&self) -> u64 {
        // Relaxed: a snapshot for callers; no data is read through it.
        let write = self.region.producer_line().write_pos.load(Ordering::Relaxed);
        write.saturating_sub(self.read_pos).min(self.mask + 1)
    }

    fn read_blocking<T, E>(
        &mut self,
        strategy: WaitStrategy,
        mut attempt: impl FnMut(&mut Self) -> Result<Option<T>, ReadError>,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<T, E>
    where
        E: From<ReadError> + From<std::io::Error>,
    {
        if let Some(v) = attempt(self)? {
            return Ok(v);
        }
        let region = self.region.clone();
        wait::block(strategy, &region.wait_line().data, || Ok(attempt(self)?), check)
    }
}

/// Stores payload word `word` of `slot`.
#[inline(always)]
fn store_word(region: &Region, slot: usize, word: usize, value: u64) {
    // Relaxed: published by the writer's Release store of the complete
    // version; a reader racing with it discards what it read.
    region.slot_word(slot, word).store(value, Ordering::Relaxed);
}

/// Loads payload word `word` of `slot`.
#[inline(always)]
fn load_word(region: &Region, slot: usize, word: usize) -> u64 {
    // Relaxed: validated by the reader's fence and second version load.
    region.slot_word(slot, word).load(Ordering::Relaxed)
}

/// Stores `bytes` as payload words of `slot` from word `first` on (the last
/// word zero-padded).
#[inline(always)]
fn store_bytes(region: &Region, slot: usize, first: usize, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        store_word(region, slot, first + i, u64::from_ne_bytes(word));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        store_word(region, slot, first + bytes.len() / 8, u64::from_ne_bytes(word));
    }
}

/// Loads payload words of `slot` from word `first` on into `out`.
#[inline(always)]
fn load_bytes(region: &Region, slot: usize, first: usize, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = load_word(region, slot, first + i).to_ne_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The accessors every writer handle has (over its `inner: Writer`).
macro_rules! writer_accessors {
    () => {
        /// Number of slots.
        pub fn capacity(&self) -> usize {
            (self.inner.mask + 1) as usize
        }

        /// Messages published so far (the next message's position).
        pub fn position(&self) -> u64 {
            self.inner.write_pos
        }

        /// The region this handle works on.
        pub fn region(&self) -> &Region {
            &self.inner.region
        }

        /// Wakes every parked reader (call when leaving).
        pub fn wake_readers(&self) {
            wait::ring(&self.inner.region.wait_line().data);
        }
    };
}

/// The accessors every reader handle has (over its `inner: Reader`).
macro_rules! reader_accessors {
    () => {
        /// Announces that this reader may sleep on the futex.
        pub fn set_strategy(&self, strategy: WaitStrategy) {
            wait::announce_parker(&self.inner.region.wait_line().data, strategy);
        }

        /// Position of the next message this reader will read.
        pub fn position(&self) -> u64 {
            self.inner.read_pos
        }

        /// Messages published that this reader has not read (at most the
        /// capacity).
        pub fn len(&self) -> usize {
            self.inner.len() as usize
        }

        /// True if this reader has read everything published.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Number of slots.
        pub fn capacity(&self) -> usize {
            (self.inner.mask + 1) as usize
        }

        /// The region this handle works on.
        pub fn region(&self) -> &Region {
            &self.inner.region
        }
    };
}

/// The writing half of a typed broadcast ring.
pub struct BroadcastWriter<T> {
    inner: Writer,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for BroadcastWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastWriter").field("write_pos", &self.inner.write_pos).finish_non_exhaustive()
    }
}

impl<T: Pod> BroadcastWriter<T> {
    /// Takes the writer role of `region`, continuing after the last message
    /// a previous writer completed. The caller guarantees no other writer is
    /// alive (the transport does it with a lock).
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a broadcast ring of `T` or its
    /// position is impossible.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        crate::spsc::expect_for::<T>(Flavor::Broadcast, None).check(region.params())?;
        Ok(Self { inner: Writer::attach(region)?, _msg: PhantomData })
    }

    /// Publishes `value` to every reader. Never waits and never fails: a
    /// reader that has not read the slot this overwrites loses it.
    #[inline]
    pub fn push(&mut self, value: &T) {
        self.inner.publish(|region, slot| store_bytes(region, slot, 0, bytemuck::bytes_of(value)));
    }

    writer_accessors!();
}

/// A reading half of a typed broadcast ring; any number may exist.
pub struct BroadcastReader<T> {
    inner: Reader,
    _msg: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for BroadcastReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastReader").field("read_pos", &self.inner.read_pos).finish_non_exhaustive()
    }
}

impl<T: Pod> BroadcastReader<T> {
    /// A new reader of `region`, starting per `start`.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a broadcast ring of `T` or its
    /// position is impossible.
    pub fn attach(region: Region, start: Start) -> Result<Self, LayoutError> {
        crate::spsc::expect_for::<T>(Flavor::Broadcast, None).check(region.params())?;
        Ok(Self { inner: Reader::attach(region, start)?, _msg: PhantomData })
    }

    /// The next message, if it has been published. Never blocks.
    ///
    /// # Errors
    /// [`ReadError::Lagged`] if the writer overwrote messages this reader
    /// had not read (the next call continues at the oldest one left);
    /// [`ReadError::Corrupted`].
    #[inline]
    pub fn try_read(&mut self) -> Result<Option<T>, ReadError> {
        Self::read_with(&mut self.inner)
    }

    /// The next message, waiting per `strategy`; see
    /// [`SpscProducer::push_blocking`](crate::SpscProducer::push_blocking)
    /// for `check`.
    ///
    /// # Errors
    /// What `check` returns, [`ReadError`], or a futex error.
    pub fn read_blocking<E>(
        &mut self,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<T, E>
    where
        E: From<ReadError> + From<std::io::Error>,
    {
        self.inner.read_blocking(strategy, Self::read_with, check)
    }

    #[inline(always)]
    fn read_with(reader: &mut Reader) -> Result<Option<T>, ReadError> {
        reader.read(|region, slot| {
            let mut value = T::zeroed();
            load_bytes(region, slot, 0, bytemuck::bytes_of_mut(&mut value));
            Ok(value)
        })
    }

    reader_accessors!();
}

/// The writing half of a byte-record broadcast ring: each slot carries one
/// record of up to [`max_record_len`](Self::max_record_len) bytes.
#[derive(Debug)]
pub struct ByteBroadcastWriter {
    inner: Writer,
    max_len: usize,
}

/// Why a byte record was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a record of {len} bytes does not fit this ring's slots (at most {max}); create it with a larger record size")]
pub struct TooLarge {
    /// Length asked for.
    pub len: usize,
    /// Largest record.
    pub max: usize,
}

impl ByteBroadcastWriter {
    /// Takes the writer role of a byte-record broadcast `region`.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a byte broadcast ring or its
    /// position is impossible.
    pub fn attach(region: Region) -> Result<Self, LayoutError> {
        byte_expect(None).check(region.params())?;
        let max_len = region.params().max_record_len();
        Ok(Self { inner: Writer::attach(region)?, max_len })
    }

    /// Publishes `record` to every reader. Never waits.
    ///
    /// # Errors
    /// [`TooLarge`] if it exceeds [`max_record_len`](Self::max_record_len).
    #[inline]
    pub fn push(&mut self, record: &[u8]) -> Result<(), TooLarge> {
        if record.len() > self.max_len {
            return Err(TooLarge { len: record.len(), max: self.max_len });
        }
        self.inner.publish(|region, slot| {
            store_word(region, slot, 0, record.len() as u64);
            store_bytes(region, slot, 1, record);
        });
        Ok(())
    }

    /// Largest record a slot carries.
    pub fn max_record_len(&self) -> usize {
        self.max_len
    }

    writer_accessors!();
}

/// What a byte-broadcast handle expects of a segment (any record size).
pub fn byte_expect(schema_id: Option<u64>) -> Expect {
    Expect { flavor: Flavor::BroadcastBytes, msg_size: 0, msg_align: 8, schema_id }
}

/// A reading half of a byte-record broadcast ring.
#[derive(Debug)]
pub struct ByteBroadcastReader {
    inner: Reader,
    max_len: usize,
}

impl ByteBroadcastReader {
    /// A new reader of `region`, starting per `start`.
    ///
    /// # Errors
    /// [`LayoutError`] if the region is not a byte broadcast ring or its
    /// position is impossible.
    pub fn attach(region: Region, start: Start) -> Result<Self, LayoutError> {
        byte_expect(None).check(region.params())?;
        let max_len = region.params().max_record_len();
        Ok(Self { inner: Reader::attach(region, start)?, max_len })
    }

    /// Copies the next record into `out` (replacing its contents) if one
    /// has been published, and returns its length. Never blocks. On an
    /// error `out` holds unspecified bytes.
    ///
    /// # Errors
    /// [`ReadError::Lagged`], or [`ReadError::Corrupted`] if a stable slot
    /// claims a length larger than the slot.
    #[inline]
    pub fn try_read_into(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, ReadError> {
        Self::read_with(&mut self.inner, self.max_len, out)
    }

    fn read_with(reader: &mut Reader, max_len: usize, out: &mut Vec<u8>) -> Result<Option<usize>, ReadError> {
        let pos = reader.read_pos;
        reader.read(|region, slot| {
            // The length may be torn: bound it before using it; a wrong one
            // in a slot that did not change is reported after the re-check.
            let len = load_word(region, slot, 0);
            let fits = usize::try_from(len).ok().filter(|&l| l <= max_len);
            out.clear();
            let len = fits.ok_or(Corruption::RecordLength { pos, len, room: max_len as u64 })?;
            out.resize(len, 0);
            load_bytes(region, slot, 1, out);
            Ok(len)
        })
    }

    /// As [`try_read_into`](Self::try_read_into), waiting per `strategy`.
    ///
    /// # Errors
    /// What `check` returns, [`ReadError`], or a futex error.
    pub fn read_into_blocking<E>(
        &mut self,
        out: &mut Vec<u8>,
        strategy: WaitStrategy,
        check: impl FnMut() -> Result<Duration, E>,
    ) -> Result<usize, E>
    where
        E: From<ReadError> + From<std::io::Error>,
    {
        let max_len = self.max_len;
        self.inner.read_blocking(strategy, |r| Self::read_with(r, max_len, out), check)
    }

    /// Largest record a slot carries.
    pub fn max_record_len(&self) -> usize {
        self.max_len
    }

    reader_accessors!();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::Params;

    fn typed(capacity: u64) -> Region {
        Region::heap(Params::fixed(Flavor::Broadcast, capacity, 24, 8).unwrap()).unwrap()
    }

    #[test]
    fn every_reader_gets_every_message_in_order() {
        let region = typed(8);
        let mut w = BroadcastWriter::<[u64; 3]>::attach(region.clone()).unwrap();
        let mut a = BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Latest).unwrap();
        let mut b = BroadcastReader::<[u64; 3]>::attach(region, Start::Latest).unwrap();
        for i in 0..20u64 {
            w.push(&[i, i + 1, i + 2]);
            assert_eq!(a.try_read(), Ok(Some([i, i + 1, i + 2])));
            assert_eq!(b.try_read(), Ok(Some([i, i + 1, i + 2])));
            assert_eq!(a.try_read(), Ok(None));
        }
    }

    #[test]
    fn a_lapped_reader_is_told_exactly_how_many_it_lost() {
        let region = typed(4);
        let mut w = BroadcastWriter::<[u64; 3]>::attach(region.clone()).unwrap();
        let mut r = BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Latest).unwrap();
        for i in 0..10u64 {
            w.push(&[i; 3]);
        }
        // Positions 6..10 are in the ring; 0..6 were overwritten.
        assert_eq!(r.try_read(), Err(ReadError::Lagged(6)));
        for i in 6..10u64 {
            assert_eq!(r.try_read(), Ok(Some([i; 3])));
        }
        assert_eq!(r.try_read(), Ok(None));
        // A reader starting at the oldest sees the whole ring.
        let old = BroadcastReader::<[u64; 3]>::attach(region, Start::Oldest).unwrap();
        assert_eq!(old.position(), 6);
    }

    #[test]
    fn a_slot_under_rewrite_is_not_delivered() {
        let region = typed(2);
        let mut w = BroadcastWriter::<[u64; 3]>::attach(region.clone()).unwrap();
        let mut r = BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Latest).unwrap();
        w.push(&[0; 3]);
        // The writer is writing position 2 into slot 0 (odd version).
        region.slot_seq(0).store(writing(2), Ordering::Relaxed);
        assert_eq!(r.try_read(), Err(ReadError::Lagged(1)));
        assert_eq!(r.position(), 1);
    }

    #[test]
    fn hostile_versions_and_positions_are_corruption() {
        let region = typed(4);
        let mut w = BroadcastWriter::<[u64; 3]>::attach(region.clone()).unwrap();
        let mut r = BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Latest).unwrap();
        w.push(&[1; 3]);
        region.slot_seq(0).store(complete(1), Ordering::Relaxed); // wrong slot for position 1
        assert!(matches!(r.try_read(), Err(ReadError::Corrupted(Corruption::Sequence { .. }))));
        region.slot_seq(0).store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(r.try_read(), Err(ReadError::Corrupted(_))));
        region.slot_seq(0).store(complete(8), Ordering::Relaxed);
        region.producer_line().write_pos.store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(r.try_read(), Err(ReadError::Corrupted(Corruption::Positions { .. }))));
        assert!(BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Latest).is_err());
        assert!(BroadcastWriter::<[u64; 3]>::attach(region.clone()).is_err());
        // A version naming a position no writer reaches is not a lap.
        region.producer_line().write_pos.store(1, Ordering::Relaxed);
        let mut r = BroadcastReader::<[u64; 3]>::attach(region.clone(), Start::Oldest).unwrap();
        region.slot_seq(0).store(complete(crate::layout::MAX_BROADCAST_POS), Ordering::Relaxed);
        assert!(matches!(r.try_read(), Err(ReadError::Corrupted(Corruption::Sequence { pos: 0, .. }))));
        assert_eq!(r.position(), 0, "a hostile version does not move the cursor");
    }

    #[test]
    fn writer_recovers_slots_completed_after_its_last_published_position() {
        let region = typed(4);
        let mut w = BroadcastWriter::<[u64; 3]>::attach(region.clone()).unwrap();
        w.push(&[0; 3]);
        w.push(&[1; 3]);
        // As if the writer died after completing slot 1 but before
        // publishing write_pos = 2.
        region.producer_line().write_pos.store(1, Ordering::Relaxed);
        drop(w);
        let w = BroadcastWriter::<[u64; 3]>::attach(region).unwrap();
        assert_eq!(w.position(), 2);
    }

    #[test]
    fn byte_records_round_trip_and_bad_lengths_are_corruption() {
        let region = Region::heap(Params::broadcast_bytes(4, 20).unwrap()).unwrap();
        let mut w = ByteBroadcastWriter::attach(region.clone()).unwrap();
        let mut r = ByteBroadcastReader::attach(region.clone(), Start::Latest).unwrap();
        assert_eq!(w.max_record_len(), 20);
        assert_eq!(w.push(&[7; 21]), Err(TooLarge { len: 21, max: 20 }));
        let mut out = Vec::new();
        for len in [0usize, 1, 7, 8, 9, 20] {
            let record: Vec<u8> = (0..len as u8).collect();
            w.push(&record).unwrap();
            assert_eq!(r.try_read_into(&mut out), Ok(Some(len)));
            assert_eq!(out, record);
        }
        assert_eq!(r.try_read_into(&mut out), Ok(None));
        w.push(b"x").unwrap();
        let slot = (w.position() - 1) as usize & 3;
        region.slot_word(slot, 0).store(1 << 40, Ordering::Relaxed);
        assert!(matches!(r.try_read_into(&mut out), Err(ReadError::Corrupted(Corruption::RecordLength { .. }))));
        assert!(ByteBroadcastReader::attach(typed(4), Start::Latest).is_err());
    }
}
