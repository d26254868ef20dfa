//! A validated region: where the header, control lines and slots of one
//! segment are, and the few private accessors every ring goes through.
//!
//! Outside loom the region is memory someone else owns (a shared mapping, or
//! a heap buffer in tests) behind the [`Memory`] trait; the pointers into it
//! are computed once, after validation, and every later access is an index
//! masked by the capacity. Under loom the same accessors point into a heap
//! block of loom atomics, so the ring code above is identical in both.

use crate::error::LayoutError;
#[cfg(not(loom))]
use crate::layout::Expect;
#[cfg(loom)]
use crate::layout::Padded;
use crate::layout::{
    ConsumerLine, Creator, Flavor, Header, HeaderSnapshot, LivenessLine, Params, ProducerLine, REGISTRY_ENTRIES,
    RegistryEntry, WaitLine,
};
use crate::sync::{AccessTracker, AtomicU64, Ordering};
use std::sync::Arc;

/// Memory a ring can live in.
///
/// # Safety
///
/// Implementors guarantee that, for as long as the value is alive,
/// `as_ptr()` always returns the same pointer, aligned to 4096 bytes, valid
/// for reads and writes of `len()` bytes, and that the memory is neither
/// moved nor unmapped. The bytes may be written concurrently by other
/// threads or processes; the ring only touches them through atomics or
/// through raw copies it validates.
pub unsafe trait Memory: Send + Sync + 'static {
    /// First byte of the region.
    fn as_ptr(&self) -> *mut u8;
    /// Length of the region in bytes.
    fn len(&self) -> usize;
    /// True if the region has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A zeroed, page-aligned heap allocation: a [`Memory`] for tests and
/// in-process use.
#[derive(Debug)]
pub struct HeapMemory {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: HeapMemory owns its allocation exclusively; the bytes are only
// reached through the ring, which accesses them with atomics or under the
// ring protocol, so sharing the owner across threads is sound.
unsafe impl Send for HeapMemory {}
// SAFETY: as for Send: no `&self` method reads or writes the bytes.
unsafe impl Sync for HeapMemory {}

impl HeapMemory {
    /// Allocates `len` zeroed bytes aligned to 4096.
    ///
    /// # Panics
    /// If `len` is zero or the allocation fails (as `Vec` does).
    pub fn zeroed(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).expect("length fits isize");
        // SAFETY: the layout has a non-zero size (len.max(1)).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        Self { ptr, layout }
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly `layout`.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the allocation is 4096-aligned, `len` bytes long, owned by the
// value and freed only on drop; the pointer never changes.
unsafe impl Memory for HeapMemory {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
}

/// A ring's memory with its validated parameters. Cheap to clone (shared).
#[derive(Clone)]
pub struct Region {
    inner: Arc<Inner>,
    params: Params,
    /// `params.slot_size()` and `params.payload_offset()`, computed once:
    /// they sit on every push and pop.
    slot_size: usize,
    payload_offset: usize,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("params", &self.params).finish_non_exhaustive()
    }
}

impl Region {
    /// Allocates a region on the heap and initialises it for `params`.
    ///
    /// # Errors
    /// [`LayoutError::TooLarge`] if the parameters need too much memory.
    pub fn heap(params: Params) -> Result<Self, LayoutError> {
        Inner::heap(params)
    }

    fn from_parts(inner: Arc<Inner>, params: Params) -> Self {
        Self { inner, params, slot_size: params.slot_size() as usize, payload_offset: params.payload_offset() }
    }

    /// Validated parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Number of slots (fixed flavors) or bytes (byte ring).
    pub fn capacity(&self) -> u64 {
        self.params.capacity
    }

    /// The segment header.
    pub fn header(&self) -> &Header {
        self.inner.header()
    }

    /// The producer's control line.
    pub fn producer_line(&self) -> &ProducerLine {
        self.inner.producer_line()
    }

    /// The consumer's control line.
    pub fn consumer_line(&self) -> &ConsumerLine {
        self.inner.consumer_line()
    }

    /// Both doorbells.
    pub fn wait_line(&self) -> &WaitLine {
        self.inner.wait_line()
    }

    /// The informational liveness line.
    pub fn liveness(&self) -> &LivenessLine {
        self.inner.liveness()
    }

    /// Registry entry `index`, if in range.
    pub fn registry(&self, index: usize) -> Option<&RegistryEntry> {
        (index < REGISTRY_ENTRIES).then(|| self.inner.registry(index))
    }

    /// A snapshot of the header, for `ls` and `inspect`.
    pub fn header_snapshot(&self) -> HeaderSnapshot {
        HeaderSnapshot::read(self.header())
    }

    /// Write and read positions as they are now, unvalidated.
    pub fn positions(&self) -> (u64, u64) {
        // Relaxed: a snapshot for observers, no data is read through it.
        (self.producer_line().write_pos.load(Ordering::Relaxed), self.consumer_line().read_pos.load(Ordering::Relaxed))
    }

    /// Messages (or bytes) in the ring now, clamped to `0..=capacity` even
    /// if the positions are corrupt or moving.
    pub fn len(&self) -> u64 {
        let (write, read) = self.positions();
        if write < read { 0 } else { (write - read).min(self.capacity()) }
    }

    /// True if [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence word of fixed slot `slot` (`slot < capacity`).
    #[inline(always)]
    pub(crate) fn slot_seq(&self, slot: usize) -> &AtomicU64 {
        debug_assert!((slot as u64) < self.params.capacity);
        self.inner.slot_seq(slot, self.slot_size)
    }

    /// Pointer to the payload of fixed slot `slot` (`slot < capacity`).
    #[inline(always)]
    pub(crate) fn slot_payload(&self, slot: usize) -> *mut u8 {
        debug_assert!((slot as u64) < self.params.capacity);
        self.inner.data_ptr(self.payload_offset_of(slot))
    }

    /// Word `word` of fixed slot `slot`'s payload, for the broadcast rings,
    /// which copy payloads with atomic word accesses because readers read
    /// while the writer may be overwriting (`slot < capacity`, `word` below
    /// the payload's words: `8 * word < msg_size`).
    #[inline(always)]
    pub(crate) fn slot_word(&self, slot: usize, word: usize) -> &AtomicU64 {
        debug_assert!((slot as u64) < self.params.capacity);
        debug_assert!(word * 8 < self.params.msg_size as usize);
        self.inner.word(self.payload_offset_of(slot) / 8 + word)
    }

    /// Byte offset of slot `slot`'s payload in the data area, for tracking.
    #[inline(always)]
    pub(crate) fn payload_offset_of(&self, slot: usize) -> usize {
        slot * self.slot_size + self.payload_offset
    }

    /// Pointer to byte `offset` of the data area (`offset <= capacity`
    /// bytes for the byte ring).
    #[inline(always)]
    pub(crate) fn data_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset as u64 <= self.params.capacity * self.params.slot_size());
        self.inner.data_ptr(offset)
    }

    /// The loom race detector over the data area (a no-op outside loom).
    #[inline(always)]
    pub(crate) fn tracker(&self) -> &AccessTracker {
        self.inner.tracker()
    }
}

/// Zeroes the control lines, initialises the slots for the flavor and
/// writes the header, publishing `state` last.
fn init(region: &Region, total_len: u64, creator: Creator) {
    let params = region.params;
    // Relaxed: nobody can look at the region before `publish_ready` below.
    region.producer_line().write_pos.store(0, Ordering::Relaxed);
    region.consumer_line().read_pos.store(0, Ordering::Relaxed);
    if params.flavor != Flavor::Bytes {
        // SPSC: sequence `pos + 1` means full, anything from the previous lap
        // (0 on the first) means empty. MPMC (Vyukov): slot i starts at i.
        // Broadcast: 0 is "never written".
        let mpmc = params.flavor == Flavor::Mpmc;
        for slot in 0..params.capacity as usize {
            region.slot_seq(slot).store(if mpmc { slot as u64 } else { 0 }, Ordering::Relaxed);
        }
    }
    if params.flavor == Flavor::Mpmc {
        // Many wakers come and go on MPMC: they always fence and check.
        let wait = region.wait_line();
        wait.data.armed.store(1, Ordering::Relaxed);
        wait.space.armed.store(1, Ordering::Relaxed);
    }
    crate::layout::write_header(region.header(), &params, total_len, creator);
    crate::layout::publish_ready(region.header());
}

#[cfg(not(loom))]
struct Inner {
    base: *mut u8,
    data: *mut u8,
    /// Keeps `base` and `data` valid.
    _memory: Box<dyn Memory>,
    tracker: AccessTracker,
}

// SAFETY: `base`/`data` point into `memory`, which is Send + Sync and keeps
// them valid; every access through them is atomic or follows the ring
// protocol.
#[cfg(not(loom))]
unsafe impl Send for Inner {}
// SAFETY: as for Send.
#[cfg(not(loom))]
unsafe impl Sync for Inner {}

#[cfg(not(loom))]
impl Region {
    /// Initialises `memory` (zeroed, at least `params.region_len()` bytes)
    /// as a new segment for `params` and publishes it.
    ///
    /// # Errors
    /// [`LayoutError::RegionTooSmall`] or [`LayoutError::Misaligned`].
    pub fn create(memory: Box<dyn Memory>, params: Params, creator: Creator) -> Result<Self, LayoutError> {
        let needed = params.region_len()?;
        let total_len = memory.len() as u64;
        if total_len < needed {
            return Err(LayoutError::RegionTooSmall { len: total_len, needed });
        }
        let region = Self::wrap(memory, params)?;
        init(&region, total_len, creator);
        Ok(region)
    }

    /// Validates a segment someone else initialised and checks it is what
    /// `expect` asks for.
    ///
    /// # Errors
    /// The [`LayoutError`] naming the first field that is wrong.
    pub fn open(memory: Box<dyn Memory>, expect: &Expect) -> Result<Self, LayoutError> {
        let params = Self::inspect(memory.as_ref())?;
        expect.check(&params)?;
        Self::wrap(memory, params)
    }

    /// Validates a segment of any flavor and message type (for tools that
    /// inspect segments, like `shmlane ls`).
    ///
    /// # Errors
    /// The [`LayoutError`] naming the first field that is wrong.
    pub fn open_any(memory: Box<dyn Memory>) -> Result<Self, LayoutError> {
        let params = Self::inspect(memory.as_ref())?;
        Self::wrap(memory, params)
    }

    /// Reads and validates the header of `memory` without expectations.
    ///
    /// # Errors
    /// The [`LayoutError`] naming the first field that is wrong.
    pub fn inspect(memory: &dyn Memory) -> Result<Params, LayoutError> {
        Self::raw_snapshot(memory)?.validate(memory.len() as u64)
    }

    /// The raw header of `memory`, unvalidated (it must be at least a
    /// header long and page aligned).
    ///
    /// # Errors
    /// [`LayoutError::RegionTooSmall`] or [`LayoutError::Misaligned`].
    pub fn raw_snapshot(memory: &dyn Memory) -> Result<HeaderSnapshot, LayoutError> {
        check_bounds(memory, crate::layout::SLOTS_OFFSET as u64)?;
        // SAFETY: the region is at least SLOTS_OFFSET (> size_of Header)
        // bytes, 4096-aligned (checked above), and a Header is only atomics,
        // for which every bit pattern is valid.
        let header = unsafe { &*(memory.as_ptr() as *const Header) };
        Ok(HeaderSnapshot::read(header))
    }

    fn wrap(memory: Box<dyn Memory>, params: Params) -> Result<Self, LayoutError> {
        check_bounds(memory.as_ref(), params.region_len()?)?;
        let base = memory.as_ptr();
        // SAFETY: region_len() = SLOTS_OFFSET + data area, checked to fit in
        // the memory just above.
        let data = unsafe { base.add(crate::layout::SLOTS_OFFSET) };
        Ok(Self::from_parts(Arc::new(Inner { base, data, _memory: memory, tracker: AccessTracker }), params))
    }
}

#[cfg(not(loom))]
fn check_bounds(memory: &dyn Memory, needed: u64) -> Result<(), LayoutError> {
    if (memory.len() as u64) < needed {
        return Err(LayoutError::RegionTooSmall { len: memory.len() as u64, needed });
    }
    if memory.as_ptr() as usize % 4096 != 0 {
        return Err(LayoutError::Misaligned);
    }
    Ok(())
}

#[cfg(not(loom))]
impl Inner {
    fn heap(params: Params) -> Result<Region, LayoutError> {
        let len = usize::try_from(params.region_len()?)
            .map_err(|_| LayoutError::TooLarge { capacity: params.capacity, slot_size: params.slot_size() })?;
        Region::create(Box::new(HeapMemory::zeroed(len)), params, Creator::default())
    }

    /// # Safety
    /// `offset` is one of the layout's line offsets and `T` the type the
    /// layout places there (checked by the layout asserts).
    #[inline(always)]
    unsafe fn at<T>(&self, offset: usize) -> &T {
        // `wrap` checked SLOTS_OFFSET lies inside the 4096-aligned memory and
        // every line offset is 128-aligned; the types there are all atomics.
        // SAFETY: in bounds, aligned, and any bytes are a valid T (caller's offset).
        unsafe { &*(self.base.add(offset) as *const T) }
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0.
        unsafe { self.at(0) }
    }
    fn producer_line(&self) -> &ProducerLine {
        // SAFETY: the producer line is at PRODUCER_LINE_OFFSET.
        unsafe { self.at(crate::layout::PRODUCER_LINE_OFFSET) }
    }
    fn consumer_line(&self) -> &ConsumerLine {
        // SAFETY: the consumer line is at CONSUMER_LINE_OFFSET.
        unsafe { self.at(crate::layout::CONSUMER_LINE_OFFSET) }
    }
    fn wait_line(&self) -> &WaitLine {
        // SAFETY: the wait line is at WAIT_LINE_OFFSET.
        unsafe { self.at(crate::layout::WAIT_LINE_OFFSET) }
    }
    fn liveness(&self) -> &LivenessLine {
        // SAFETY: the liveness line is at LIVENESS_LINE_OFFSET.
        unsafe { self.at(crate::layout::LIVENESS_LINE_OFFSET) }
    }
    fn registry(&self, index: usize) -> &RegistryEntry {
        debug_assert!(index < REGISTRY_ENTRIES);
        // SAFETY: entries are 128 bytes apart from REGISTRY_OFFSET and the
        // caller (`Region::registry`) checked index < REGISTRY_ENTRIES.
        unsafe { self.at(crate::layout::REGISTRY_OFFSET + index * 128) }
    }
    #[inline(always)]
    fn slot_seq(&self, slot: usize, slot_size: usize) -> &AtomicU64 {
        let offset = slot * slot_size;
        // SAFETY: callers mask `slot` by the capacity, so the slot lies in
        // the data area that `wrap` bounds-checked; slot sizes are multiples
        // of 8 and the data area is page aligned, so the word is aligned.
        unsafe { &*(self.data.add(offset) as *const AtomicU64) }
    }
    #[inline(always)]
    fn word(&self, index: usize) -> &AtomicU64 {
        // SAFETY: `Region::slot_word` passes a word of a masked slot's payload,
        // inside the data area `wrap` bounds-checked; offsets are multiples of
        // 8 in a page-aligned area (aligned); any bits are a valid AtomicU64.
        unsafe { &*(self.data.add(index * 8) as *const AtomicU64) }
    }
    #[inline(always)]
    fn data_ptr(&self, offset: usize) -> *mut u8 {
        // `wrapping_add`: forming the pointer is always safe; the callers
        // bound `offset` by the data area before dereferencing.
        self.data.wrapping_add(offset)
    }
    #[inline(always)]
    fn tracker(&self) -> &AccessTracker {
        &self.tracker
    }
}

#[cfg(loom)]
struct Inner {
    header: Header,
    producer: Padded<ProducerLine>,
    consumer: Padded<ConsumerLine>,
    wait: Padded<WaitLine>,
    liveness: Padded<LivenessLine>,
    registry: Vec<Padded<RegistryEntry>>,
    seqs: Vec<AtomicU64>,
    /// The data area as atomic words (broadcast flavors only).
    words: Vec<AtomicU64>,
    data: Box<[std::cell::UnsafeCell<u64>]>,
    tracker: AccessTracker,
}

// SAFETY: the data bytes are only touched under the ring protocol, which
// loom checks through `tracker`; everything else is loom atomics.
#[cfg(loom)]
unsafe impl Send for Inner {}
// SAFETY: as for Send.
#[cfg(loom)]
unsafe impl Sync for Inner {}

#[cfg(loom)]
impl Inner {
    fn heap(params: Params) -> Result<Region, LayoutError> {
        let data_len = (params.capacity * params.slot_size()) as usize;
        let seqs = if params.flavor == Flavor::Bytes { 0 } else { params.capacity as usize };
        let inner = Inner {
            header: Header::default(),
            producer: Default::default(),
            consumer: Default::default(),
            wait: Default::default(),
            liveness: Default::default(),
            registry: (0..REGISTRY_ENTRIES).map(|_| Default::default()).collect(),
            seqs: (0..seqs).map(|_| AtomicU64::new(0)).collect(),
            words: match params.flavor {
                Flavor::Broadcast | Flavor::BroadcastBytes => (0..data_len / 8).map(|_| AtomicU64::new(0)).collect(),
                _ => Vec::new(),
            },
            data: (0..data_len.div_ceil(8)).map(|_| std::cell::UnsafeCell::new(0)).collect(),
            tracker: AccessTracker::new(data_len),
        };
        let region = Region::from_parts(Arc::new(inner), params);
        init(&region, params.region_len()?, Creator::default());
        Ok(region)
    }
    fn header(&self) -> &Header {
        &self.header
    }
    fn producer_line(&self) -> &ProducerLine {
        &self.producer
    }
    fn consumer_line(&self) -> &ConsumerLine {
        &self.consumer
    }
    fn wait_line(&self) -> &WaitLine {
        &self.wait
    }
    fn liveness(&self) -> &LivenessLine {
        &self.liveness
    }
    fn registry(&self, index: usize) -> &RegistryEntry {
        &self.registry[index]
    }
    fn slot_seq(&self, slot: usize, _slot_size: usize) -> &AtomicU64 {
        &self.seqs[slot]
    }
    fn word(&self, index: usize) -> &AtomicU64 {
        &self.words[index]
    }
    fn data_ptr(&self, offset: usize) -> *mut u8 {
        (self.data.as_ptr() as *mut u8).wrapping_add(offset)
    }
    fn tracker(&self) -> &AccessTracker {
        &self.tracker
    }
}
