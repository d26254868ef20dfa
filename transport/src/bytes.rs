//! Variable-length byte-record handles, zero copy on both sides.

use crate::endpoint::{Endpoint, Role, deadline};
use crate::error::{OpenError, RecvError, ReserveError, Stop};
use crate::options::Options;
use crate::spsc::{layout_err, param_err};
use shmlane_ring::{Expect, Flavor, Params};
use std::time::Duration;

pub use shmlane_ring::{Grant, ReadGuard};

fn expect() -> Expect {
    Expect { flavor: Flavor::Bytes, msg_size: 0, msg_align: 8, schema_id: None }
}

/// Writes variable-length records into a byte segment. One per segment.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmlane::{ByteConsumer, ByteProducer, Options};
/// let name = format!("doc-bytes-{}", std::process::id());
/// let mut tx = ByteProducer::create(&name, Options::new().capacity(4096))?;
/// let mut rx = ByteConsumer::open(&name, Options::new())?;
/// let mut grant = tx.reserve(5)?;      // &mut [u8] inside the mapping
/// grant.copy_from_slice(b"hello");
/// grant.commit();
/// assert_eq!(&*rx.recv()?, b"hello"); // &[u8] inside the mapping
/// # Ok(()) }
/// ```
pub struct ByteProducer {
    ring: shmlane_ring::ByteProducer,
    ep: Endpoint,
}

crate::family::debug_by_path!(ByteProducer);

impl ByteProducer {
    /// Creates byte segment `name` of `opts.capacity` bytes and becomes its
    /// producer.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let params = Params::bytes(opts.capacity).map_err(|source| param_err(name, &opts, source))?;
        Self::attach(Endpoint::create(name, &opts, params, Role::Producer)?)
    }

    /// Opens byte segment `name` as its producer.
    ///
    /// # Errors
    /// [`OpenError`], [`OpenError::RoleTaken`] if a live producer holds it.
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::open(name, &opts, Expect { schema_id: opts.schema_id, ..expect() }, Role::Producer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = shmlane_ring::ByteProducer::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    /// Reserves `len` bytes in the ring, waiting per the strategy while it
    /// is full. Write into the grant, then [`Grant::commit`]; a dropped
    /// grant publishes nothing. One grant at a time (it borrows the handle).
    ///
    /// # Errors
    /// [`ReserveError::TooLarge`] at once if `len` can never fit;
    /// [`ReserveError::Disconnected`], [`ReserveError::Corrupted`], [`ReserveError::Io`].
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_>, ReserveError> {
        self.reserve_until(len, None)
    }

    /// As [`reserve`](Self::reserve), giving up after `timeout`.
    ///
    /// # Errors
    /// As `reserve`, plus [`ReserveError::Timeout`].
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<Grant<'_>, ReserveError> {
        self.reserve_until(len, deadline(Some(timeout)))
    }

    fn reserve_until(&mut self, len: usize, deadline: Option<std::time::Instant>) -> Result<Grant<'_>, ReserveError> {
        let Self { ring, ep } = self;
        Ok(ring.reserve_blocking::<Stop>(len, ep.wait, || ep.check(deadline))?)
    }

    /// Reserves `len` bytes if there is room now (`Ok(None)` if full).
    ///
    /// # Errors
    /// [`ReserveError::TooLarge`], [`ReserveError::Disconnected`] (full and
    /// the consumer is gone), [`ReserveError::Corrupted`].
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<Grant<'_>>, ReserveError> {
        // Like a channel: once the consumer is gone, sending is pointless
        // even if there is room (the probe is rate limited, not a syscall
        // per call).
        if self.ep.peer_gone(false) {
            return Err(ReserveError::Disconnected);
        }
        Ok(self.ring.try_reserve(len)?)
    }

    /// Copies `payload` into a record and commits it, waiting while full.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), ReserveError> {
        let mut grant = self.reserve(payload.len())?;
        grant.copy_from_slice(payload);
        grant.commit();
        Ok(())
    }

    /// Largest payload one record can carry.
    pub fn max_record_len(&self) -> usize {
        self.ring.max_record_len()
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

crate::family::leave_on_drop!(ByteProducer, data);

/// Reads variable-length records from a byte segment in place. One per
/// segment.
pub struct ByteConsumer {
    ring: shmlane_ring::ByteConsumer,
    ep: Endpoint,
}

crate::family::debug_by_path!(ByteConsumer);

impl ByteConsumer {
    /// Creates byte segment `name` and becomes its consumer.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let params = Params::bytes(opts.capacity).map_err(|source| param_err(name, &opts, source))?;
        Self::attach(Endpoint::create(name, &opts, params, Role::Consumer)?)
    }

    /// Opens byte segment `name` as its consumer.
    ///
    /// # Errors
    /// [`OpenError`], [`OpenError::RoleTaken`] if a live consumer holds it.
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::open(name, &opts, Expect { schema_id: opts.schema_id, ..expect() }, Role::Consumer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = shmlane_ring::ByteConsumer::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    /// The next record, in place, waiting per the strategy while the ring
    /// is empty. Its space returns to the producer when the guard drops.
    /// See [`ReadGuard`] for what a misbehaving producer can and cannot do.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the producer is gone and the ring is
    /// drained; [`RecvError::Corrupted`]; [`RecvError::Io`].
    pub fn recv(&mut self) -> Result<ReadGuard<'_>, RecvError> {
        self.recv_until(None)
    }

    /// As [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// As `recv`, plus [`RecvError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGuard<'_>, RecvError> {
        self.recv_until(deadline(Some(timeout)))
    }

    fn recv_until(&mut self, deadline: Option<std::time::Instant>) -> Result<ReadGuard<'_>, RecvError> {
        let Self { ring, ep } = self;
        Ok(ring.read_blocking::<Stop>(ep.wait, || ep.check(deadline))?)
    }

    /// The next record if there is one now.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] (empty and the producer is gone),
    /// [`RecvError::Corrupted`].
    pub fn try_recv(&mut self) -> Result<Option<ReadGuard<'_>>, RecvError> {
        if self.ring.len_bytes() == 0 && self.ep.peer_gone(false) {
            // Gone: whatever it committed before leaving is still delivered.
            return match self.ring.try_read()? {
                Some(record) => Ok(Some(record)),
                None => Err(RecvError::Disconnected),
            };
        }
        Ok(self.ring.try_read()?)
    }

    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Bytes committed and not yet read (a snapshot).
    pub fn len_bytes(&self) -> usize {
        self.ring.len_bytes()
    }
}

crate::family::leave_on_drop!(ByteConsumer, space);
