//! Errors of the ring crate: one for the layout (creation and validation),
//! one for a region whose contents went bad while in use.

use crate::layout::Flavor;

/// A segment's header is unusable, or parameters asked for are impossible.
///
/// Every header field has its own variant, so a corrupt or foreign segment
/// says exactly which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Capacity 0 was asked for.
    #[error("capacity 0 is not allowed; ask for at least one message")]
    ZeroCapacity,
    /// Capacity larger than the layout supports was asked for.
    #[error("capacity {requested} exceeds the maximum {max}")]
    CapacityTooLarge {
        /// What was asked.
        requested: u64,
        /// The limit.
        max: u64,
    },
    /// The segment would be larger than the layout allows.
    #[error("{capacity} slots of {slot_size} bytes exceed the largest segment shmlane maps")]
    TooLarge {
        /// Capacity.
        capacity: u64,
        /// Slot size.
        slot_size: u64,
    },
    /// The memory is smaller than the header, or than what the header needs.
    #[error("region of {len} bytes is too small: at least {needed} bytes are needed")]
    RegionTooSmall {
        /// Bytes available.
        len: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// The region does not start on a 4096-byte boundary.
    #[error("region is not page aligned")]
    Misaligned,
    /// Not a shmlane segment.
    #[error("bad magic {found:#018x}: this is not a shmlane segment")]
    BadMagic {
        /// Magic found.
        found: u64,
    },
    /// Written by another layout version.
    #[error("layout version {found} is not supported (this build reads version {supported}); upgrade the older side")]
    UnsupportedVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Flavor field holds no known flavor.
    #[error("unknown flavor {found}")]
    UnknownFlavor {
        /// Raw value found.
        found: u32,
    },
    /// The creator has not published the header (still creating, or died
    /// while creating).
    #[error("segment is not ready (state {state:#x}): its creator is still initialising it or died doing so")]
    NotReady {
        /// Raw state found.
        state: u32,
    },
    /// Capacity field is zero, not a power of two, or out of range.
    #[error("capacity field {found} is not a power of two in the allowed range")]
    BadCapacity {
        /// Capacity found.
        found: u64,
    },
    /// Message size out of range (or asked for out of range).
    #[error("message size {size} is out of range")]
    BadMessageSize {
        /// Size.
        size: u64,
    },
    /// Message alignment not a power of two or too large.
    #[error("message alignment {align} is not a power of two up to 4096")]
    BadMessageAlign {
        /// Alignment.
        align: u64,
    },
    /// Slot size field does not match what the other fields imply.
    #[error("slot size field {found} does not match the {expected} the message shape implies")]
    BadSlotSize {
        /// Found.
        found: u32,
        /// Implied.
        expected: u64,
    },
    /// Slots offset field is not the layout's.
    #[error("slots offset field {found} is not 4096")]
    BadSlotsOffset {
        /// Found.
        found: u64,
    },
    /// Total length field disagrees with the layout or the real size.
    #[error("total length field {header} does not match the mapped size {region} (the layout needs {needed})")]
    BadTotalLength {
        /// Field value.
        header: u64,
        /// Bytes the layout needs.
        needed: u64,
        /// Bytes actually mapped.
        region: u64,
    },
    /// The segment runs another protocol.
    #[error("segment is {found}, expected {expected}")]
    FlavorMismatch {
        /// Wanted.
        expected: Flavor,
        /// Found.
        found: Flavor,
    },
    /// The segment carries another message type.
    #[error(
        "segment carries messages of {found_size} bytes aligned to {found_align}, expected {expected_size} aligned to {expected_align}: wrong message type"
    )]
    MessageMismatch {
        /// Expected size.
        expected_size: u32,
        /// Expected alignment.
        expected_align: u32,
        /// Found size.
        found_size: u32,
        /// Found alignment.
        found_align: u32,
    },
    /// The schema id differs.
    #[error("schema id {found:#x} does not match the expected {expected:#x}")]
    SchemaMismatch {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// An MPMC registry entry cannot be used.
    #[error("registry entry {index} {reason}")]
    RegistryEntry {
        /// Entry index.
        index: usize,
        /// Why.
        reason: &'static str,
    },
    /// The control lines hold positions no correct peer could have written.
    #[error("control lines are inconsistent: {0}")]
    Corrupted(#[from] Corruption),
}

/// The contents of a region were changed in a way no correct peer does.
///
/// Returned from every operation that reads the shared state; the handle
/// stays usable (and safe) but the data in the ring is not to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// `write_pos - read_pos` is negative or larger than the capacity.
    #[error("positions out of range: write {write}, read {read}, capacity {capacity}")]
    Positions {
        /// Write position.
        write: u64,
        /// Read position.
        read: u64,
        /// Capacity.
        capacity: u64,
    },
    /// A slot's sequence word is neither "empty" nor "full" for its position.
    #[error("slot sequence {found} at position {pos} is not one a peer could write")]
    Sequence {
        /// Position being read or written.
        pos: u64,
        /// Sequence found.
        found: u64,
    },
    /// A byte record's length runs past the ring or its end.
    #[error("record at position {pos} claims {len} bytes, more than the {room} left before the end")]
    RecordLength {
        /// Position of the record header.
        pos: u64,
        /// Length found.
        len: u64,
        /// Room available.
        room: u64,
    },
    /// A byte record's header carries unknown flags.
    #[error("record at position {pos} has unknown flags {flags:#x}")]
    RecordFlags {
        /// Position of the record header.
        pos: u64,
        /// Flags found.
        flags: u32,
    },
}
