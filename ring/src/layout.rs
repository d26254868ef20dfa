//! The shared layout: what lives where in a segment, how big a segment is,
//! how it is initialised and how a segment someone else wrote is validated.
//!
//! ```text
//! offset  size   what                       written by        read by
//! 0       128    Header                     creator, once     everyone, once at open
//! 128     128    ProducerLine (write_pos)   producer          consumer (rarely), observers
//! 256     128    ConsumerLine (read_pos)    consumer          producer (when its cache says full)
//! 384     128    WaitLine (futex words)     a side going to   the other side, after each
//!                                           sleep (rarely)    publish (an L1 hit: rarely written)
//! 512     128    LivenessLine               each role, at     `ls`, `inspect`
//!                                           attach
//! 1024    24×128 Registry (MPMC, liveness)  its owner         consumers unwedging a dead claim
//! 4096    cap×slot_size  Slots              producer/consumer
//! ```
//!
//! Every structure here is `#[repr(C)]`, holds only atomics (a hostile peer
//! may write any field at any time; atomics make that a wrong value, never a
//! data race in our process), and has its size, alignment and field offsets
//! pinned with `static_assertions`. The byte-level specification a reader in
//! another language implements from is `docs/layout-v1.md`.

use crate::error::LayoutError;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// `b"SHMLANE\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMLANE\0");
/// Version of the layout described here. Bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 1;
/// Value of [`Header::state`] once the creator has finished initialising.
pub const STATE_READY: u32 = u32::from_le_bytes(*b"REDY");

/// Byte offset of the producer's control line.
pub const PRODUCER_LINE_OFFSET: usize = 128;
/// Byte offset of the consumer's control line.
pub const CONSUMER_LINE_OFFSET: usize = 256;
/// Byte offset of the line holding both sides' futex words.
pub const WAIT_LINE_OFFSET: usize = 384;
/// Byte offset of the liveness line. Its first two bytes are the role bytes
/// the transport locks with open-file-description locks.
pub const LIVENESS_LINE_OFFSET: usize = 512;
/// File offset of the byte the (SPSC) producer locks while attached.
pub const PRODUCER_LOCK_BYTE: u64 = LIVENESS_LINE_OFFSET as u64;
/// File offset of the byte the (SPSC) consumer locks while attached.
pub const CONSUMER_LOCK_BYTE: u64 = LIVENESS_LINE_OFFSET as u64 + 1;
/// Byte offset of the registry (one entry per MPMC participant).
pub const REGISTRY_OFFSET: usize = 1024;
/// Number of registry entries: the most MPMC handles attached at once.
pub const REGISTRY_ENTRIES: usize = 24;
/// Byte offset of the first slot. Slots start on their own page.
pub const SLOTS_OFFSET: usize = 4096;
/// Smallest MPMC capacity in slots: with one slot, Vyukov's sequence word
/// reads the same for "full at `pos`" and "empty at `pos + 1`".
pub const MIN_MPMC_CAPACITY: u64 = 2;
/// Largest capacity in slots (fixed-size flavors) accepted anywhere.
pub const MAX_CAPACITY: u64 = 1 << 32;
/// Largest byte-ring capacity (bytes): record lengths are `u32`.
pub const MAX_BYTE_CAPACITY: u64 = 1 << 31;
/// Smallest byte-ring capacity (bytes).
pub const MIN_BYTE_CAPACITY: u64 = 64;
/// Largest message size (bytes) for fixed-size flavors.
pub const MAX_MSG_SIZE: u32 = 1 << 24;
/// Largest message alignment accepted.
pub const MAX_MSG_ALIGN: u32 = 4096;
/// Largest segment accepted (1 TiB).
pub const MAX_TOTAL_LEN: u64 = 1 << 40;

/// Which protocol a segment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Flavor {
    /// Single producer, single consumer, fixed-size slots with a sequence word.
    Spsc = 1,
    /// Single producer, single consumer, variable-length byte records.
    Bytes = 2,
    /// Many producers, many consumers, fixed-size slots (Vyukov).
    Mpmc = 3,
    /// One writer that never waits, any number of readers, fixed-size
    /// `Pod` messages in seqlock slots.
    Broadcast = 4,
    /// As [`Broadcast`](Self::Broadcast), for byte records of up to
    /// `msg_size - 8` bytes (a length word, then the bytes, in each slot).
    BroadcastBytes = 5,
}

impl Flavor {
    /// The flavor stored as `raw`, if it names one.
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Spsc),
            2 => Some(Self::Bytes),
            3 => Some(Self::Mpmc),
            4 => Some(Self::Broadcast),
            5 => Some(Self::BroadcastBytes),
            _ => None,
        }
    }

    /// Lower-case name, as `shmlane ls` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spsc => "spsc",
            Self::Bytes => "bytes",
            Self::Mpmc => "mpmc",
            Self::Broadcast => "broadcast",
            Self::BroadcastBytes => "broadcast-bytes",
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The segment header. Written once by the creator, `state` last (Release);
/// everyone else reads it once at open into a [`Params`] and never again.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// [`Flavor`] as `u32`.
    pub flavor: AtomicU32,
    /// 0 while initialising, [`STATE_READY`] once published.
    pub state: AtomicU32,
    /// Bytes per slot (the stride). 1 for the byte ring.
    pub slot_size: AtomicU32,
    /// Number of slots (fixed flavors) or bytes (byte ring); a power of two.
    pub capacity: AtomicU64,
    /// Size in bytes of one message (fixed flavors), 0 for the byte ring.
    pub msg_size: AtomicU32,
    /// Alignment of one message (fixed flavors), 8 for the byte ring.
    pub msg_align: AtomicU32,
    /// User-chosen schema id (0: none), compared on open.
    pub schema_id: AtomicU64,
    /// Total length of the segment in bytes, equal to the file size.
    pub total_len: AtomicU64,
    /// Byte offset of slot 0, [`SLOTS_OFFSET`].
    pub slots_offset: AtomicU64,
    /// Process id of the creator (informational).
    pub creator_pid: AtomicU32,
    /// User id of the creator (informational; the file owner is what is checked).
    pub creator_uid: AtomicU32,
    /// Creation time, nanoseconds since the Unix epoch (informational).
    pub created_unix_ns: AtomicU64,
    /// MPMC: slots skipped because their claimer died before committing.
    pub skipped: AtomicU64,
    reserved: [AtomicU64; 5],
}

/// Written by the producer, read by the consumer only when needed.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ProducerLine {
    /// Next position the producer will write (monotonic, never wraps).
    pub write_pos: AtomicU64,
}

/// Largest position a broadcast ring accepts: its sequence words hold
/// `2 * pos + 2`, which must not wrap (2^62 messages is 146 years at 1 GHz).
pub const MAX_BROADCAST_POS: u64 = 1 << 62;

/// Written by the consumer, read by the producer only when its cached copy
/// says the ring is full.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ConsumerLine {
    /// Next position the consumer will read (monotonic, never wraps).
    pub read_pos: AtomicU64,
}

/// One direction of the sleep/wake handshake. Sleepers own `waiting` and
/// `parker`; wakers bump `epoch` and write `armed` once.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Doorbell {
    /// The futex word: bumped by every wake. A sleeper waits for it to move
    /// from the value it read before announcing itself, so a wake that comes
    /// between its re-check and its `FUTEX_WAIT` is never lost, however many
    /// sleepers share the bell (a 0/1 flag would suffer ABA there).
    pub(crate) epoch: crate::sync::FutexWord,
    /// How many sleepers may be in (or entering) `FUTEX_WAIT` now.
    pub(crate) waiting: AtomicU32,
    /// Set by a sleeper whose strategy may park, at attach.
    pub(crate) parker: AtomicU32,
    /// Set by the waker once every later publish of its fences and checks
    /// `waiting`; a sleeper parks on the futex only after seeing it.
    pub(crate) armed: AtomicU32,
}

/// Both doorbells on one line that is read after every publish but written
/// only when a side goes to sleep, so it stays shared in both caches.
#[repr(C)]
#[derive(Debug, Default)]
pub struct WaitLine {
    /// The consumer sleeps here when the ring is empty; producers ring it.
    pub data: Doorbell,
    /// The producer sleeps here when the ring is full; consumers ring it.
    pub space: Doorbell,
}

/// Informational liveness: who attached last. The authoritative liveness is
/// the kernel's open-file-description lock on the role bytes.
#[repr(C)]
#[derive(Debug, Default)]
pub struct LivenessLine {
    /// Role bytes live in the first bytes of this line; the value is unused.
    pub role_bytes: AtomicU64,
    /// Pid of the producer that attached last.
    pub producer_pid: AtomicU32,
    /// Pid of the consumer that attached last.
    pub consumer_pid: AtomicU32,
    /// How many times a producer attached.
    pub producer_attaches: AtomicU64,
    /// How many times a consumer attached.
    pub consumer_attaches: AtomicU64,
}

/// One MPMC participant (registry entry). Its owner locks the entry's first
/// byte with an open-file-description lock while attached.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RegistryEntry {
    /// Lock byte lives here; also holds the owner's role (1 producer, 2 consumer).
    pub role: AtomicU32,
    /// Owner pid (informational).
    pub pid: AtomicU32,
    /// `pos + 1` of the slot this producer is claiming or writing, 0 if none.
    pub claim: AtomicU64,
}

/// Control lines padded to 128 bytes: the adjacent-line prefetcher pairs
/// 64-byte lines, so each line one side writes must sit alone in 128.
pub type Padded<T> = CachePadded<T>;

#[cfg(not(loom))]
mod asserts {
    use super::*;
    use static_assertions::{const_assert, const_assert_eq};
    use std::mem::{align_of, offset_of, size_of};

    const_assert_eq!(size_of::<Header>(), 128);
    const_assert_eq!(align_of::<Header>(), 8);
    const_assert_eq!(offset_of!(Header, magic), 0);
    const_assert_eq!(offset_of!(Header, version), 8);
    const_assert_eq!(offset_of!(Header, flavor), 12);
    const_assert_eq!(offset_of!(Header, state), 16);
    const_assert_eq!(offset_of!(Header, slot_size), 20);
    const_assert_eq!(offset_of!(Header, capacity), 24);
    const_assert_eq!(offset_of!(Header, msg_size), 32);
    const_assert_eq!(offset_of!(Header, msg_align), 36);
    const_assert_eq!(offset_of!(Header, schema_id), 40);
    const_assert_eq!(offset_of!(Header, total_len), 48);
    const_assert_eq!(offset_of!(Header, slots_offset), 56);
    const_assert_eq!(offset_of!(Header, creator_pid), 64);
    const_assert_eq!(offset_of!(Header, creator_uid), 68);
    const_assert_eq!(offset_of!(Header, created_unix_ns), 72);
    const_assert_eq!(offset_of!(Header, skipped), 80);
    // CachePadded is 128 on x86_64 and aarch64 but not everywhere: pin it.
    const_assert_eq!(size_of::<Padded<ProducerLine>>(), 128);
    const_assert_eq!(align_of::<Padded<ProducerLine>>(), 128);
    const_assert_eq!(size_of::<Padded<ConsumerLine>>(), 128);
    const_assert_eq!(size_of::<Padded<WaitLine>>(), 128);
    const_assert_eq!(size_of::<Padded<LivenessLine>>(), 128);
    const_assert_eq!(size_of::<Padded<RegistryEntry>>(), 128);
    const_assert_eq!(offset_of!(ProducerLine, write_pos), 0);
    const_assert_eq!(offset_of!(ConsumerLine, read_pos), 0);
    const_assert_eq!(size_of::<Doorbell>(), 16);
    const_assert_eq!(offset_of!(Doorbell, epoch), 0);
    const_assert_eq!(offset_of!(Doorbell, waiting), 4);
    const_assert_eq!(offset_of!(Doorbell, parker), 8);
    const_assert_eq!(offset_of!(Doorbell, armed), 12);
    const_assert_eq!(offset_of!(WaitLine, data), 0);
    const_assert_eq!(offset_of!(WaitLine, space), 16);
    const_assert_eq!(offset_of!(LivenessLine, producer_pid), 8);
    const_assert_eq!(offset_of!(LivenessLine, consumer_pid), 12);
    const_assert_eq!(offset_of!(LivenessLine, producer_attaches), 16);
    const_assert_eq!(offset_of!(LivenessLine, consumer_attaches), 24);
    const_assert_eq!(offset_of!(RegistryEntry, role), 0);
    const_assert_eq!(offset_of!(RegistryEntry, pid), 4);
    const_assert_eq!(offset_of!(RegistryEntry, claim), 8);
    const_assert!(REGISTRY_OFFSET + REGISTRY_ENTRIES * 128 <= SLOTS_OFFSET);
    const_assert!(LIVENESS_LINE_OFFSET + 128 <= REGISTRY_OFFSET);
}

/// What a segment holds, as the creator asks for it and as validation
/// reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    /// Protocol.
    pub flavor: Flavor,
    /// Slots (fixed flavors) or bytes (byte ring); a power of two.
    pub capacity: u64,
    /// Bytes per message (fixed flavors); 0 for the byte ring.
    pub msg_size: u32,
    /// Alignment of a message (fixed flavors); 8 for the byte ring.
    pub msg_align: u32,
    /// Schema id stored in the header and compared on open (0: none).
    pub schema_id: u64,
}

impl Params {
    /// Parameters for a fixed-size ring of `capacity` messages of
    /// `msg_size` bytes aligned to `msg_align`. The capacity is rounded up
    /// to a power of two (at least [`MIN_MPMC_CAPACITY`] for MPMC).
    ///
    /// # Errors
    /// [`LayoutError::ZeroCapacity`], [`LayoutError::CapacityTooLarge`],
    /// [`LayoutError::BadMessageSize`] or [`LayoutError::BadMessageAlign`].
    pub fn fixed(flavor: Flavor, capacity: u64, msg_size: usize, msg_align: usize) -> Result<Self, LayoutError> {
        if flavor == Flavor::Bytes {
            return Self::bytes(capacity);
        }
        let min = if flavor == Flavor::Mpmc { MIN_MPMC_CAPACITY } else { 1 };
        let capacity = round_capacity(capacity, min, MAX_CAPACITY)?;
        let msg_size = u32::try_from(msg_size)
            .ok()
            .filter(|&s| s <= MAX_MSG_SIZE)
            .ok_or(LayoutError::BadMessageSize { size: msg_size as u64 })?;
        let msg_align = u32::try_from(msg_align)
            .ok()
            .filter(|a| a.is_power_of_two() && *a <= MAX_MSG_ALIGN)
            .ok_or(LayoutError::BadMessageAlign { align: msg_align as u64 })?;
        let params = Self { flavor, capacity, msg_size, msg_align, schema_id: 0 };
        params.region_len()?;
        Ok(params)
    }

    /// Parameters for a byte-record ring of at least `capacity_bytes` bytes
    /// (rounded up to a power of two, at least [`MIN_BYTE_CAPACITY`]).
    ///
    /// # Errors
    /// [`LayoutError::ZeroCapacity`] or [`LayoutError::CapacityTooLarge`].
    pub fn bytes(capacity_bytes: u64) -> Result<Self, LayoutError> {
        let capacity = round_capacity(capacity_bytes, MIN_BYTE_CAPACITY, MAX_BYTE_CAPACITY)?;
        Ok(Self { flavor: Flavor::Bytes, capacity, msg_size: 0, msg_align: 8, schema_id: 0 })
    }

    /// Parameters for a broadcast ring of `capacity` slots (rounded up to a
    /// power of two), each carrying one byte record of up to
    /// `max_record_len` bytes.
    ///
    /// # Errors
    /// As [`fixed`](Self::fixed); [`LayoutError::BadMessageSize`] if
    /// `max_record_len` is 0 or too large.
    pub fn broadcast_bytes(capacity: u64, max_record_len: usize) -> Result<Self, LayoutError> {
        let padded = max_record_len.checked_add(8).filter(|_| max_record_len > 0);
        let msg_size = padded.ok_or(LayoutError::BadMessageSize { size: max_record_len as u64 })?;
        Self::fixed(Flavor::BroadcastBytes, capacity, msg_size, 8)
    }

    /// The same parameters with a schema id.
    pub fn with_schema(mut self, schema_id: u64) -> Self {
        self.schema_id = schema_id;
        self
    }

    /// Offset of the payload inside a fixed-size slot (after the sequence word).
    pub fn payload_offset(&self) -> usize {
        (self.msg_align as usize).max(8)
    }

    /// Bytes per slot: sequence word plus message, rounded up so that no
    /// slot straddles a 64-byte cache line (a power of two up to 64, a
    /// multiple of 64 beyond). Straddling would make a message cost two line
    /// transfers and let the producer's next write share a line the consumer
    /// is still reading. 1 for the byte ring.
    pub fn slot_size(&self) -> u64 {
        match self.flavor {
            Flavor::Bytes => 1,
            _ => {
                let align = u64::from(self.msg_align).max(8);
                let raw = (self.payload_offset() as u64 + u64::from(self.msg_size)).div_ceil(align) * align;
                if raw <= 64 { raw.next_power_of_two() } else { raw.div_ceil(64) * 64 }
            }
        }
    }

    /// Total bytes the segment needs for these parameters.
    ///
    /// # Errors
    /// [`LayoutError::TooLarge`] if that exceeds [`MAX_TOTAL_LEN`].
    pub fn region_len(&self) -> Result<u64, LayoutError> {
        self.capacity
            .checked_mul(self.slot_size())
            .and_then(|slots| slots.checked_add(SLOTS_OFFSET as u64))
            .filter(|&len| len <= MAX_TOTAL_LEN)
            .ok_or(LayoutError::TooLarge { capacity: self.capacity, slot_size: self.slot_size() })
    }

    /// Largest payload one byte record can carry in this ring.
    pub fn max_record_len(&self) -> usize {
        match self.flavor {
            Flavor::BroadcastBytes => (self.msg_size as usize).saturating_sub(8),
            _ => (self.capacity as usize).saturating_sub(crate::bytes::RECORD_HEADER),
        }
    }
}

fn round_capacity(requested: u64, min: u64, max: u64) -> Result<u64, LayoutError> {
    if requested == 0 {
        return Err(LayoutError::ZeroCapacity);
    }
    requested
        .max(min)
        .checked_next_power_of_two()
        .filter(|&c| c <= max)
        .ok_or(LayoutError::CapacityTooLarge { requested, max })
}

/// Every header field, read once with `Relaxed` loads after the `Acquire`
/// load of `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSnapshot {
    /// Raw `magic`.
    pub magic: u64,
    /// Raw `version`.
    pub version: u32,
    /// Raw `flavor`.
    pub flavor: u32,
    /// Raw `state`.
    pub state: u32,
    /// Raw `slot_size`.
    pub slot_size: u32,
    /// Raw `capacity`.
    pub capacity: u64,
    /// Raw `msg_size`.
    pub msg_size: u32,
    /// Raw `msg_align`.
    pub msg_align: u32,
    /// Raw `schema_id`.
    pub schema_id: u64,
    /// Raw `total_len`.
    pub total_len: u64,
    /// Raw `slots_offset`.
    pub slots_offset: u64,
    /// Raw `creator_pid`.
    pub creator_pid: u32,
    /// Raw `creator_uid`.
    pub creator_uid: u32,
    /// Raw `created_unix_ns`.
    pub created_unix_ns: u64,
    /// Raw `skipped` counter.
    pub skipped: u64,
}

impl HeaderSnapshot {
    /// Reads every field of `header`.
    pub fn read(header: &Header) -> Self {
        // Acquire: pairs with the Release store of `state` at the end of
        // `init`, so the fields below are the creator's if it says ready.
        let state = header.state.load(Ordering::Acquire);
        // Relaxed below: ordered by the Acquire above; a hostile writer can
        // change them at any time anyway, which is why they are copied once.
        Self {
            magic: header.magic.load(Ordering::Relaxed),
            version: header.version.load(Ordering::Relaxed),
            flavor: header.flavor.load(Ordering::Relaxed),
            state,
            slot_size: header.slot_size.load(Ordering::Relaxed),
            capacity: header.capacity.load(Ordering::Relaxed),
            msg_size: header.msg_size.load(Ordering::Relaxed),
            msg_align: header.msg_align.load(Ordering::Relaxed),
            schema_id: header.schema_id.load(Ordering::Relaxed),
            total_len: header.total_len.load(Ordering::Relaxed),
            slots_offset: header.slots_offset.load(Ordering::Relaxed),
            creator_pid: header.creator_pid.load(Ordering::Relaxed),
            creator_uid: header.creator_uid.load(Ordering::Relaxed),
            created_unix_ns: header.created_unix_ns.load(Ordering::Relaxed),
            skipped: header.skipped.load(Ordering::Relaxed),
        }
    }

    /// Checks the header is self-consistent and fits a region of
    /// `region_len` bytes, and returns its parameters.
    ///
    /// # Errors
    /// One [`LayoutError`] variant per field that is wrong, checked in
    /// field order.
    pub fn validate(&self, region_len: u64) -> Result<Params, LayoutError> {
        // A creator that died before (or while) writing the header leaves
        // zeroes or an unpublished header: that is "not ready", not foreign.
        if self.state != STATE_READY && (self.magic == 0 || self.magic == MAGIC) {
            return Err(LayoutError::NotReady { state: self.state });
        }
        if self.magic != MAGIC {
            return Err(LayoutError::BadMagic { found: self.magic });
        }
        if self.version != LAYOUT_VERSION {
            return Err(LayoutError::UnsupportedVersion { found: self.version, supported: LAYOUT_VERSION });
        }
        let flavor = Flavor::from_raw(self.flavor).ok_or(LayoutError::UnknownFlavor { found: self.flavor })?;
        if self.state != STATE_READY {
            return Err(LayoutError::NotReady { state: self.state });
        }
        let (min, max) = match flavor {
            Flavor::Bytes => (MIN_BYTE_CAPACITY, MAX_BYTE_CAPACITY),
            Flavor::Mpmc => (MIN_MPMC_CAPACITY, MAX_CAPACITY),
            Flavor::Spsc | Flavor::Broadcast | Flavor::BroadcastBytes => (1, MAX_CAPACITY),
        };
        if !self.capacity.is_power_of_two() || self.capacity < min || self.capacity > max {
            return Err(LayoutError::BadCapacity { found: self.capacity });
        }
        let size_ok = match flavor {
            Flavor::Bytes => self.msg_size == 0,
            // The length word, then at least one byte of room.
            Flavor::BroadcastBytes => self.msg_size > 8 && self.msg_size <= MAX_MSG_SIZE,
            _ => self.msg_size <= MAX_MSG_SIZE,
        };
        if !size_ok {
            return Err(LayoutError::BadMessageSize { size: u64::from(self.msg_size) });
        }
        let align_ok = match flavor {
            Flavor::Bytes | Flavor::BroadcastBytes => self.msg_align == 8,
            _ => self.msg_align.is_power_of_two() && self.msg_align <= MAX_MSG_ALIGN,
        };
        if !align_ok {
            return Err(LayoutError::BadMessageAlign { align: u64::from(self.msg_align) });
        }
        let params = Params {
            flavor,
            capacity: self.capacity,
            msg_size: self.msg_size,
            msg_align: self.msg_align,
            schema_id: self.schema_id,
        };
        if u64::from(self.slot_size) != params.slot_size() {
            return Err(LayoutError::BadSlotSize { found: self.slot_size, expected: params.slot_size() });
        }
        if self.slots_offset != SLOTS_OFFSET as u64 {
            return Err(LayoutError::BadSlotsOffset { found: self.slots_offset });
        }
        let needed = params.region_len()?;
        if self.total_len < needed || self.total_len != region_len {
            return Err(LayoutError::BadTotalLength { header: self.total_len, needed, region: region_len });
        }
        Ok(params)
    }
}

/// What a handle expects of a segment it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Required flavor.
    pub flavor: Flavor,
    /// Required message size (fixed flavors).
    pub msg_size: u32,
    /// Required message alignment (fixed flavors).
    pub msg_align: u32,
    /// Required schema id; `None` accepts any.
    pub schema_id: Option<u64>,
}

impl Expect {
    /// Checks `params` (already self-consistent) against what is expected.
    ///
    /// # Errors
    /// [`LayoutError::FlavorMismatch`], [`LayoutError::MessageMismatch`] or
    /// [`LayoutError::SchemaMismatch`].
    pub fn check(&self, params: &Params) -> Result<(), LayoutError> {
        if params.flavor != self.flavor {
            return Err(LayoutError::FlavorMismatch { expected: self.flavor, found: params.flavor });
        }
        // Byte readers take whatever record size the writer chose.
        let sized = !matches!(self.flavor, Flavor::Bytes | Flavor::BroadcastBytes);
        if sized && (params.msg_size != self.msg_size || params.msg_align != self.msg_align) {
            return Err(LayoutError::MessageMismatch {
                expected_size: self.msg_size,
                expected_align: self.msg_align,
                found_size: params.msg_size,
                found_align: params.msg_align,
            });
        }
        if let Some(id) = self.schema_id {
            if id != params.schema_id {
                return Err(LayoutError::SchemaMismatch { expected: id, found: params.schema_id });
            }
        }
        Ok(())
    }
}

/// Creator identity recorded in the header (informational).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Creator {
    /// Creator process id.
    pub pid: u32,
    /// Creator user id.
    pub uid: u32,
    /// Creation time, ns since the Unix epoch.
    pub unix_ns: u64,
}

/// Writes the header for `params` into a zeroed header and publishes it.
/// `state` is written last with `Release`.
pub(crate) fn write_header(header: &Header, params: &Params, total_len: u64, creator: Creator) {
    // Relaxed stores: all published by the Release store of `state` below.
    header.magic.store(MAGIC, Ordering::Relaxed);
    header.version.store(LAYOUT_VERSION, Ordering::Relaxed);
    header.flavor.store(params.flavor as u32, Ordering::Relaxed);
    header.slot_size.store(params.slot_size() as u32, Ordering::Relaxed);
    header.capacity.store(params.capacity, Ordering::Relaxed);
    header.msg_size.store(params.msg_size, Ordering::Relaxed);
    header.msg_align.store(params.msg_align, Ordering::Relaxed);
    header.schema_id.store(params.schema_id, Ordering::Relaxed);
    header.total_len.store(total_len, Ordering::Relaxed);
    header.slots_offset.store(SLOTS_OFFSET as u64, Ordering::Relaxed);
    header.creator_pid.store(creator.pid, Ordering::Relaxed);
    header.creator_uid.store(creator.uid, Ordering::Relaxed);
    header.created_unix_ns.store(creator.unix_ns, Ordering::Relaxed);
}

/// Publishes a fully initialised segment.
pub(crate) fn publish_ready(header: &Header) {
    // Release: pairs with the Acquire load of `state` in
    // `HeaderSnapshot::read`; everything `init` wrote is visible to a reader
    // that sees READY.
    header.state.store(STATE_READY, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_and_zero_is_an_error() {
        assert_eq!(Params::fixed(Flavor::Spsc, 0, 8, 8), Err(LayoutError::ZeroCapacity));
        assert_eq!(Params::fixed(Flavor::Spsc, 1, 8, 8).unwrap().capacity, 1);
        assert_eq!(Params::fixed(Flavor::Spsc, 3, 8, 8).unwrap().capacity, 4);
        assert_eq!(Params::fixed(Flavor::Mpmc, 1000, 8, 8).unwrap().capacity, 1024);
        assert_eq!(Params::bytes(1).unwrap().capacity, MIN_BYTE_CAPACITY);
        assert!(matches!(Params::bytes(u64::MAX), Err(LayoutError::CapacityTooLarge { .. })));
        assert!(matches!(Params::fixed(Flavor::Spsc, u64::MAX, 8, 8), Err(LayoutError::CapacityTooLarge { .. })));
    }

    #[test]
    fn slot_size_holds_sequence_word_and_message() {
        let p = Params::fixed(Flavor::Spsc, 4, 64, 8).unwrap();
        assert_eq!(p.payload_offset(), 8);
        assert_eq!(p.slot_size(), 128);
        let p = Params::fixed(Flavor::Spsc, 4, 56, 8).unwrap();
        assert_eq!(p.slot_size(), 64);
        let p = Params::fixed(Flavor::Spsc, 4, 20, 4).unwrap();
        assert_eq!(p.slot_size(), 32);
        let p = Params::fixed(Flavor::Spsc, 4, 1, 1).unwrap();
        assert_eq!(p.slot_size(), 16);
        let p = Params::fixed(Flavor::Spsc, 4, 0, 1).unwrap();
        assert_eq!(p.slot_size(), 8);
        let p = Params::fixed(Flavor::Spsc, 4, 24, 16).unwrap();
        assert_eq!((p.payload_offset(), p.slot_size()), (16, 64));
        assert_eq!(p.region_len().unwrap(), 4096 + 4 * 64);
        let p = Params::fixed(Flavor::Spsc, 4, 1000, 8).unwrap();
        assert_eq!(p.slot_size(), 1024);
    }

    #[test]
    fn bad_message_shapes_are_errors() {
        assert!(matches!(Params::fixed(Flavor::Spsc, 4, 8, 3), Err(LayoutError::BadMessageAlign { .. })));
        assert!(matches!(Params::fixed(Flavor::Spsc, 4, 8, 8192), Err(LayoutError::BadMessageAlign { .. })));
        assert!(matches!(
            Params::fixed(Flavor::Spsc, 4, MAX_MSG_SIZE as usize + 1, 8),
            Err(LayoutError::BadMessageSize { .. })
        ));
        assert!(matches!(Params::fixed(Flavor::Spsc, 1 << 32, 1 << 24, 8), Err(LayoutError::TooLarge { .. })));
    }
}
