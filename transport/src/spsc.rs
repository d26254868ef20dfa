//! Typed single-producer single-consumer handles.

use crate::endpoint::{Endpoint, Role};
use crate::error::{OpenError, RecvError, SendError, TrySendError};
use crate::options::Options;
use bytemuck::Pod;
use shmlane_ring::spsc::expect_for;
use shmlane_ring::{Flavor, Params, SpscConsumer, SpscProducer};

pub(crate) fn fixed_params<T>(name: &str, opts: &Options, flavor: Flavor) -> Result<Params, OpenError> {
    Params::fixed(flavor, opts.capacity, size_of::<T>(), align_of::<T>())
        .map_err(|source| param_err(name, opts, source))
}

/// A parameter error, naming the segment it was for.
pub(crate) fn param_err(name: &str, opts: &Options, source: shmlane_ring::LayoutError) -> OpenError {
    match crate::segment::segment_path(name, opts.dir.as_deref()) {
        Ok(path) => OpenError::Layout { path, source },
        Err(e) => e,
    }
}

pub(crate) fn layout_err(ep: &Endpoint, source: shmlane_ring::LayoutError) -> OpenError {
    OpenError::Layout { path: ep.seg.path.clone(), source }
}

/// Sends `T`s into an SPSC segment. One per segment at a time.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmlane::{Consumer, Options, Producer};
/// let name = format!("doc-spsc-{}", std::process::id());
/// let mut tx = Producer::<u64>::create(&name, Options::new().capacity(8))?;
/// let mut rx = Consumer::<u64>::open(&name, Options::new())?;
/// tx.send(42)?;
/// assert_eq!(rx.recv()?, 42);
/// # Ok(()) }
/// ```
pub struct Producer<T> {
    ring: SpscProducer<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(Producer<T>);

impl<T: Pod> Producer<T> {
    /// Creates segment `name` for messages of type `T` and becomes its
    /// producer. The name is removed when this handle drops unless
    /// [`Options::keep`].
    ///
    /// # Errors
    /// [`OpenError`]: bad name, name taken, no space, bad capacity...
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let ep = Endpoint::create(name, &opts, fixed_params::<T>(name, &opts, Flavor::Spsc)?, Role::Producer)?;
        Self::attach(ep)
    }

    /// Opens segment `name` as its producer, continuing where a previous
    /// producer stopped.
    ///
    /// # Errors
    /// [`OpenError`]: not found, wrong type, corrupt, owned by another
    /// user, [`OpenError::RoleTaken`] if a live producer holds it.
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let ep = Endpoint::open(name, &opts, expect_for::<T>(Flavor::Spsc, opts.schema_id), Role::Producer)?;
        Self::attach(ep)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = SpscProducer::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    crate::family::send_family!();

    /// Sends every value, publishing once per run of values that fit and
    /// waiting while the ring is full.
    ///
    /// # Errors
    /// As [`send`](Self::send); the error carries how many were sent.
    pub fn send_batch(&mut self, values: &[T]) -> Result<(), SendError<usize>> {
        let mut sent = 0;
        while sent < values.len() {
            match self.ring.push_batch(&values[sent..]) {
                Ok(0) => self.send_until(values[sent], None).map(|()| sent += 1).map_err(|e| map_count(e, sent))?,
                Ok(n) => sent += n,
                Err(c) => return Err(SendError::Corrupted(sent, c)),
            }
        }
        Ok(())
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Messages in the ring now (a snapshot in `0..=capacity`).
    pub fn len(&self) -> usize {
        self.ep.seg.region.len() as usize
    }

    /// True if the ring holds no message now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True unless the consumer was attached once and is gone (probes now).
    pub fn is_connected(&mut self) -> bool {
        !self.ep.peer_gone(true)
    }
}

pub(crate) fn map_count<T>(e: SendError<T>, sent: usize) -> SendError<usize> {
    match e {
        SendError::Timeout(_) => SendError::Timeout(sent),
        SendError::Disconnected(_) => SendError::Disconnected(sent),
        SendError::Corrupted(_, c) => SendError::Corrupted(sent, c),
        SendError::Io(_, e) => SendError::Io(sent, e),
    }
}

crate::family::leave_on_drop!(Producer<T>, data);

/// Receives `T`s from an SPSC segment. One per segment at a time.
pub struct Consumer<T> {
    ring: SpscConsumer<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(Consumer<T>);

impl<T: Pod> Consumer<T> {
    /// Creates segment `name` for messages of type `T` and becomes its
    /// consumer (the producer opens it).
    ///
    /// # Errors
    /// As [`Producer::create`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        let ep = Endpoint::create(name, &opts, fixed_params::<T>(name, &opts, Flavor::Spsc)?, Role::Consumer)?;
        Self::attach(ep)
    }

    /// Opens segment `name` as its consumer.
    ///
    /// # Errors
    /// As [`Producer::open`].
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let ep = Endpoint::open(name, &opts, expect_for::<T>(Flavor::Spsc, opts.schema_id), Role::Consumer)?;
        Self::attach(ep)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = SpscConsumer::attach(ep.seg.region.clone()).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    crate::family::recv_family!(try_pop, pop_blocking);

    /// Waits for at least one message, then fills `out` with what is there,
    /// releasing the space once. Returns how many were received.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_batch(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        if out.is_empty() {
            return Ok(0);
        }
        let n = self.ring.pop_batch(out)?;
        if n > 0 {
            return Ok(n);
        }
        out[0] = self.recv()?;
        // A corrupt slot after the first message ends the batch; it is
        // reported by the next call, and the message we hold is delivered.
        Ok(1 + self.ring.pop_batch(&mut out[1..]).unwrap_or(0))
    }

    /// An iterator of received messages that ends when the producer is gone
    /// and the ring drained (or on an error).
    pub fn iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Messages waiting now (a snapshot in `0..=capacity`).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True if no message is waiting now.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// True unless the producer was attached once and is gone (probes now).
    pub fn is_connected(&mut self) -> bool {
        !self.ep.peer_gone(true)
    }
}

crate::family::leave_on_drop!(Consumer<T>, space);
