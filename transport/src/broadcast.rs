//! Broadcast handles: one writer that never waits, any number of readers,
//! each with its own cursor, in any number of processes.

use crate::endpoint::{Endpoint, Role, deadline};
use crate::error::{OpenError, RecvError, Stop};
use crate::options::Options;
use crate::spsc::{fixed_params, layout_err, param_err};
use bytemuck::Pod;
use shmlane_ring::broadcast::{ByteBroadcastReader, ByteBroadcastWriter, Start, TooLarge, byte_expect};
use shmlane_ring::spsc::expect_for;
use shmlane_ring::{BroadcastReader, BroadcastWriter, Flavor, Params};
use std::time::{Duration, Instant};

fn start(opts: &Options) -> Start {
    if opts.from_oldest { Start::Oldest } else { Start::Latest }
}

fn byte_params(name: &str, opts: &Options) -> Result<Params, OpenError> {
    Params::broadcast_bytes(opts.capacity, opts.max_record_len).map_err(|source| param_err(name, opts, source))
}

/// Publishes `T`s to every [`BroadcastConsumer`] of a segment. One writer
/// per segment at a time; it never waits for readers.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmlane::{BroadcastConsumer, BroadcastProducer, Options};
/// let name = format!("doc-broadcast-{}", std::process::id());
/// let mut tx = BroadcastProducer::<u64>::create(&name, Options::new().capacity(8))?;
/// let mut a = BroadcastConsumer::<u64>::open(&name, Options::new())?;
/// let mut b = BroadcastConsumer::<u64>::open(&name, Options::new())?;
/// tx.send(42);
/// assert_eq!((a.recv()?, b.recv()?), (42, 42));
/// # Ok(()) }
/// ```
pub struct BroadcastProducer<T> {
    ring: BroadcastWriter<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(BroadcastProducer<T>);

impl<T: Pod> BroadcastProducer<T> {
    /// Creates broadcast segment `name` of `opts.capacity` messages of type
    /// `T` and becomes its writer. The name is removed when this handle
    /// drops unless [`Options::keep`].
    ///
    /// # Errors
    /// [`OpenError`]: bad name, name taken, no space, bad capacity...
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let params = fixed_params::<T>(name, &opts, Flavor::Broadcast)?;
        Self::attach(Endpoint::create(name, &opts, params, Role::Writer)?)
    }

    /// Opens broadcast segment `name` as its writer, continuing after the
    /// last message a previous writer published.
    ///
    /// # Errors
    /// [`OpenError`]; [`OpenError::RoleTaken`] if a live writer holds it.
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let expect = expect_for::<T>(Flavor::Broadcast, opts.schema_id);
        Self::attach(Endpoint::open(name, &opts, expect, Role::Writer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = BroadcastWriter::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        Ok(Self { ring, ep })
    }

    /// Publishes `value` to every reader. Never waits, never fails, and
    /// makes no system call unless a reader is parked: a reader more than
    /// a ring behind loses the oldest messages and is told how many.
    #[inline]
    pub fn send(&mut self, value: T) {
        self.ring.push(&value);
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Messages published on this segment so far (by every writer).
    pub fn position(&self) -> u64 {
        self.ring.position()
    }
}

crate::family::leave_on_drop!(BroadcastProducer<T>, data);

/// Publishes byte records to every [`ByteBroadcastConsumer`] of a segment.
pub struct ByteBroadcastProducer {
    ring: ByteBroadcastWriter,
    ep: Endpoint,
}

impl ByteBroadcastProducer {
    /// Creates byte broadcast segment `name`: `opts.capacity` slots of one
    /// record of up to [`Options::max_record_len`] bytes each.
    ///
    /// # Errors
    /// As [`BroadcastProducer::create`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::create(name, &opts, byte_params(name, &opts)?, Role::Writer)?)
    }

    /// Opens byte broadcast segment `name` as its writer.
    ///
    /// # Errors
    /// As [`BroadcastProducer::open`].
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::open(name, &opts, byte_expect(opts.schema_id), Role::Writer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = ByteBroadcastWriter::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        Ok(Self { ring, ep })
    }

    /// Publishes `record` to every reader; never waits.
    ///
    /// # Errors
    /// [`TooLarge`] if it is longer than [`max_record_len`](Self::max_record_len).
    #[inline]
    pub fn send(&mut self, record: &[u8]) -> Result<(), TooLarge> {
        self.ring.push(record)
    }

    /// Largest record one slot carries.
    pub fn max_record_len(&self) -> usize {
        self.ring.max_record_len()
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Records published on this segment so far.
    pub fn position(&self) -> u64 {
        self.ring.position()
    }
}

crate::family::debug_by_path!(ByteBroadcastProducer);
crate::family::leave_on_drop!(ByteBroadcastProducer, data);

/// Reads every message a [`BroadcastProducer`] publishes, from its own
/// cursor. Any number may be attached, in any processes; one that falls a
/// ring behind gets [`RecvError::Lagged`] and continues.
pub struct BroadcastConsumer<T> {
    ring: BroadcastReader<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(BroadcastConsumer<T>);

impl<T: Pod> BroadcastConsumer<T> {
    /// Creates broadcast segment `name` and reads it (the writer opens it
    /// later). The name is removed when this handle drops unless
    /// [`Options::keep`].
    ///
    /// # Errors
    /// As [`BroadcastProducer::create`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let params = fixed_params::<T>(name, &opts, Flavor::Broadcast)?;
        Self::attach(Endpoint::create(name, &opts, params, Role::Reader)?, &opts)
    }

    /// Opens broadcast segment `name` as a reader, starting at the next
    /// message published (or the oldest in the ring with
    /// [`Options::from_oldest`]).
    ///
    /// # Errors
    /// [`OpenError`]: not found, wrong type, corrupt, owned by another user.
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let expect = expect_for::<T>(Flavor::Broadcast, opts.schema_id);
        Self::attach(Endpoint::open(name, &opts, expect, Role::Reader)?, &opts)
    }

    fn attach(ep: Endpoint, opts: &Options) -> Result<Self, OpenError> {
        let ring = BroadcastReader::attach(ep.seg.region.clone(), start(opts)).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    crate::family::recv_family!(try_read, read_blocking);

    /// Position of the next message this reader reads (messages published
    /// before it are read or lost).
    pub fn position(&self) -> u64 {
        self.ring.position()
    }

    /// Messages published that this reader has not read (at most the
    /// capacity).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True if this reader has read everything published.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// True unless the writer was attached once and is gone (probes now).
    pub fn is_connected(&mut self) -> bool {
        !self.ep.peer_gone(true)
    }
}

/// Reads every record a [`ByteBroadcastProducer`] publishes, copying each
/// out of the ring (a broadcast slot can be overwritten under a reader, so
/// records are validated after the copy, never lent in place).
pub struct ByteBroadcastConsumer {
    ring: ByteBroadcastReader,
    ep: Endpoint,
}

impl ByteBroadcastConsumer {
    /// Creates byte broadcast segment `name` and reads it.
    ///
    /// # Errors
    /// As [`BroadcastProducer::create`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::create(name, &opts, byte_params(name, &opts)?, Role::Reader)?, &opts)
    }

    /// Opens byte broadcast segment `name` as a reader.
    ///
    /// # Errors
    /// As [`BroadcastConsumer::open`].
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::open(name, &opts, byte_expect(opts.schema_id), Role::Reader)?, &opts)
    }

    fn attach(ep: Endpoint, opts: &Options) -> Result<Self, OpenError> {
        let ring = ByteBroadcastReader::attach(ep.seg.region.clone(), start(opts)).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    /// Copies the next record into `out` (replacing its contents) if one
    /// has been published; returns its length. Never blocks.
    ///
    /// # Errors
    /// As [`BroadcastConsumer::try_recv`]; on an error `out` holds
    /// unspecified bytes.
    pub fn try_recv_into(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, RecvError> {
        match self.ring.try_read_into(out)? {
            Some(n) => Ok(Some(n)),
            None if self.ep.peer_gone(false) => self.ring.try_read_into(out)?.map(Some).ok_or(RecvError::Disconnected),
            None => Ok(None),
        }
    }

    /// Copies the next record into `out`, waiting per the strategy.
    ///
    /// # Errors
    /// As [`BroadcastConsumer::recv`].
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.recv_into_until(out, None)
    }

    /// As [`recv_into`](Self::recv_into), giving up after `timeout`.
    ///
    /// # Errors
    /// As `recv_into`, plus [`RecvError::Timeout`].
    pub fn recv_into_timeout(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<usize, RecvError> {
        self.recv_into_until(out, deadline(Some(timeout)))
    }

    fn recv_into_until(&mut self, out: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize, RecvError> {
        let Self { ring, ep } = self;
        Ok(ring.read_into_blocking::<Stop>(out, ep.wait, || ep.check(deadline))?)
    }

    /// The next record in a new `Vec`, waiting per the strategy.
    ///
    /// # Errors
    /// As [`recv_into`](Self::recv_into).
    pub fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        self.recv_into(&mut out)?;
        Ok(out)
    }

    /// Largest record one slot carries.
    pub fn max_record_len(&self) -> usize {
        self.ring.max_record_len()
    }

    /// Position of the next record this reader reads.
    pub fn position(&self) -> u64 {
        self.ring.position()
    }

    /// Records published that this reader has not read (at most the
    /// capacity).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True if this reader has read everything published.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// True unless the writer was attached once and is gone (probes now).
    pub fn is_connected(&mut self) -> bool {
        !self.ep.peer_gone(true)
    }
}

/// A reader leaves by giving back its registry entry; nobody waits for it.
macro_rules! leave_quietly {
    ($handle:ident $(<$t:ident>)?) => {
        impl$(<$t>)? Drop for $handle$(<$t>)? {
            fn drop(&mut self) {
                self.ep.release();
            }
        }
    };
}
leave_quietly!(BroadcastConsumer<T>);
leave_quietly!(ByteBroadcastConsumer);
crate::family::debug_by_path!(ByteBroadcastConsumer);
