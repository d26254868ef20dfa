//! Multi-producer multi-consumer handles: any number of processes may open
//! either role (up to the registry size, 24 handles in all).

use crate::endpoint::{Endpoint, Role, deadline};
use crate::error::{OpenError, RecvError, SendError, Stop, TrySendError};
use crate::options::Options;
use crate::spsc::{fixed_params, layout_err};
use bytemuck::Pod;
use shmlane_ring::Flavor;
use shmlane_ring::spsc::expect_for;
use std::time::Duration;

/// Sends `T`s into an MPMC segment; many may exist, in many processes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmlane::{MpmcConsumer, MpmcProducer, Options};
/// let name = format!("doc-mpmc-{}", std::process::id());
/// let mut a = MpmcProducer::<u32>::create(&name, Options::new().capacity(16))?;
/// let mut b = MpmcProducer::<u32>::open(&name, Options::new())?;
/// let mut rx = MpmcConsumer::<u32>::open(&name, Options::new())?;
/// a.send(1)?;
/// b.send(2)?;
/// assert_eq!(rx.recv()? + rx.recv()?, 3);
/// # Ok(()) }
/// ```
pub struct MpmcProducer<T> {
    ring: shmlane_ring::MpmcProducer<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(MpmcProducer<T>);

impl<T: Pod> MpmcProducer<T> {
    /// Creates MPMC segment `name` and becomes a producer on it.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::create(name, &opts, fixed_params::<T>(name, &opts, Flavor::Mpmc)?, Role::MpmcProducer)?)
    }

    /// Opens MPMC segment `name` as one more producer.
    ///
    /// # Errors
    /// [`OpenError`], [`OpenError::TooManyHandles`].
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let expect = expect_for::<T>(Flavor::Mpmc, opts.schema_id);
        Self::attach(Endpoint::open(name, &opts, expect, Role::MpmcProducer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring =
            shmlane_ring::MpmcProducer::attach(ep.seg.region.clone(), ep.entry).map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    crate::family::send_family!(unwedge_consumers);

    /// Sends every value in order, waiting while full.
    ///
    /// # Errors
    /// As [`send`](Self::send); the error carries how many were sent.
    pub fn send_batch(&mut self, values: &[T]) -> Result<(), SendError<usize>> {
        for (sent, value) in values.iter().enumerate() {
            self.send(*value).map_err(|e| crate::spsc::map_count(e, sent))?;
        }
        Ok(())
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

crate::family::leave_on_drop!(MpmcProducer<T>, data);

/// Receives `T`s from an MPMC segment; many may exist, in many processes.
pub struct MpmcConsumer<T> {
    ring: shmlane_ring::MpmcConsumer<T>,
    ep: Endpoint,
}

crate::family::debug_by_path!(MpmcConsumer<T>);

impl<T: Pod> MpmcConsumer<T> {
    /// Creates MPMC segment `name` and becomes a consumer on it.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn create(name: &str, opts: Options) -> Result<Self, OpenError> {
        Self::attach(Endpoint::create(name, &opts, fixed_params::<T>(name, &opts, Flavor::Mpmc)?, Role::MpmcConsumer)?)
    }

    /// Opens MPMC segment `name` as one more consumer.
    ///
    /// # Errors
    /// [`OpenError`], [`OpenError::TooManyHandles`].
    pub fn open(name: &str, opts: Options) -> Result<Self, OpenError> {
        let expect = expect_for::<T>(Flavor::Mpmc, opts.schema_id);
        Self::attach(Endpoint::open(name, &opts, expect, Role::MpmcConsumer)?)
    }

    fn attach(ep: Endpoint) -> Result<Self, OpenError> {
        let ring = shmlane_ring::MpmcConsumer::attach_with_entry(ep.seg.region.clone(), ep.entry)
            .map_err(|e| layout_err(&ep, e))?;
        ring.set_strategy(ep.wait);
        Ok(Self { ring, ep })
    }

    /// The oldest available message, if any, copied out of the mapping.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] (empty, every producer that attached is
    /// gone), [`RecvError::Corrupted`].
    pub fn try_recv(&mut self) -> Result<Option<T>, RecvError> {
        if let Some(v) = self.ring.try_pop()? {
            return Ok(Some(v));
        }
        unwedge(&self.ring, &self.ep);
        match self.ring.try_pop()? {
            Some(v) => Ok(Some(v)),
            None if self.ep.peer_gone(false) => self.ring.try_pop()?.map(Some).ok_or(RecvError::Disconnected),
            None => Ok(None),
        }
    }

    /// Receives a message, waiting while the ring is empty. A slot claimed
    /// by a producer that died before committing it is skipped (and counted
    /// in the header) once its death is seen.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), plus [`RecvError::Io`].
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// As [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// As `recv`, plus [`RecvError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(deadline(Some(timeout)))
    }

    fn recv_until(&mut self, deadline: Option<std::time::Instant>) -> Result<T, RecvError> {
        // Fast path first: the unblocker's view (an Arc clone and a layout
        // check) is only needed once we have to wait.
        if let Some(v) = self.ring.try_pop()? {
            return Ok(v);
        }
        let view =
            shmlane_ring::MpmcConsumer::<T>::attach(self.ep.seg.region.clone()).map_err(|_| RecvError::Disconnected)?;
        let Self { ring, ep } = self;
        Ok(ring.pop_blocking::<Stop>(ep.wait, || {
            unwedge(&view, ep);
            ep.check(deadline)
        })?)
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
}

/// If every producer waits on a slot whose message a consumer took and
/// never released (it died in between), release the slot: the mirror of
/// [`unwedge`]. Only with at least one claimant and none alive: a live
/// consumer still reading is never overtaken. Runs before each sleep of a
/// blocking send; `try_send` only reports `Full`.
fn unwedge_consumers(ep: &Endpoint) {
    let region = &ep.seg.region;
    if let Some(stall) = shmlane_ring::mpmc::consumer_stall(region).filter(|s| all_claimants_dead(s, ep)) {
        shmlane_ring::mpmc::release_consumer_stall(region, &stall);
    }
}

/// If every consumer waits on a slot whose claimer died before committing
/// it, skip that slot (Aeron's unblocker). Only with at least one claimant
/// and none alive: a live producer's slot is never skipped.
fn unwedge<T: Pod>(ring: &shmlane_ring::MpmcConsumer<T>, ep: &Endpoint) {
    if let Some(stall) = ring.stall().filter(|s| all_claimants_dead(s, ep)) {
        ring.skip_stalled(&stall);
    }
}

/// True if `stall` has at least one claimant and none is held by a live
/// handle (a failing lock probe counts as alive).
fn all_claimants_dead(stall: &shmlane_ring::Stall, ep: &Endpoint) -> bool {
    stall.claimants != 0
        && (0..32).filter(|i| stall.claimants & (1 << i) != 0).all(|i| !ep.entry_alive(i as usize).unwrap_or(true))
}

crate::family::leave_on_drop!(MpmcConsumer<T>, space);
