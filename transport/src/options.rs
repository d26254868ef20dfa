//! Options for creating and opening segments.

use shmlane_ring::WaitStrategy;
use std::path::PathBuf;
use std::time::Duration;

/// How to create or open a segment, and how the handle waits.
///
/// ```
/// use shmlane::{Options, WaitStrategy};
/// let opts = Options::new().capacity(4096).wait(WaitStrategy::SpinThenPark { spins: 10_000 });
/// assert_eq!(opts.capacity_requested(), 4096);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) capacity: u64,
    pub(crate) wait: WaitStrategy,
    pub(crate) mode: u32,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) keep: bool,
    pub(crate) schema_id: Option<u64>,
    pub(crate) allow_foreign_owner: bool,
    pub(crate) ready_timeout: Duration,
    pub(crate) max_record_len: usize,
    pub(crate) from_oldest: bool,
}

/// Default largest record of a byte broadcast ring: with its version and
/// length words a slot is then exactly 256 bytes (four cache lines).
pub const DEFAULT_MAX_RECORD_LEN: usize = 240;

impl Default for Options {
    fn default() -> Self {
        Self {
            capacity: 1024,
            wait: WaitStrategy::BusySpin,
            mode: 0o600,
            dir: None,
            keep: false,
            schema_id: None,
            allow_foreign_owner: false,
            ready_timeout: Duration::from_millis(500),
            max_record_len: DEFAULT_MAX_RECORD_LEN,
            from_oldest: false,
        }
    }
}

impl Options {
    /// Defaults: capacity 1024, [`WaitStrategy::BusySpin`], mode 0600,
    /// `/dev/shm`, unlink on drop, no schema id, same-owner only, 500 ms
    /// wait for a segment still being created.
    pub fn new() -> Self {
        Self::default()
    }

    /// Capacity when creating: messages (typed, MPMC and broadcast rings) or
    /// bytes (SPSC byte rings), rounded up to a power of two. 0 is an error
    /// at creation.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The capacity asked for (before rounding).
    pub fn capacity_requested(&self) -> u64 {
        self.capacity
    }

    /// What the handle does while the ring is full or empty.
    pub fn wait(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// File mode when creating (default 0600: only this user).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Put the segment file in `dir` instead of `/dev/shm` (a hugetlbfs
    /// mount, another tmpfs). Both sides must use the same directory. On
    /// hugetlbfs the segment is sized in whole huge pages, and creation is
    /// `NoSpace` when too few are free.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Keep the name when the creating handle is dropped (default: unlink).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// A schema id stored at creation and required on open.
    pub fn schema_id(mut self, id: u64) -> Self {
        self.schema_id = Some(id);
        self
    }

    /// Accept a segment owned by another user (default: refuse).
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// Byte broadcast rings, when creating: the largest record one slot
    /// carries (default [`DEFAULT_MAX_RECORD_LEN`]). Every slot is that big.
    pub fn max_record_len(mut self, len: usize) -> Self {
        self.max_record_len = len;
        self
    }

    /// Broadcast readers: start at the oldest message still in the ring
    /// instead of the next one published (default: the next one).
    pub fn from_oldest(mut self, from_oldest: bool) -> Self {
        self.from_oldest = from_oldest;
        self
    }

    /// How long `open` waits for a segment whose creator is still
    /// initialising it before giving [`OpenError::NotReady`](crate::OpenError::NotReady).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }
}
