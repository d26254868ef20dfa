//! The operation families the typed handles share. SPSC and MPMC producers
//! differ only in their ring (`ring` field) and liveness rules (`ep` field),
//! so their `try_send`/`send`/`send_timeout` bodies are written once here.

/// `try_send`, `send`, `send_timeout` for a handle with a `ring` that has
/// `try_push`/`push_blocking` and an `ep: Endpoint`. `$unwedge(&Endpoint)`,
/// if given, runs before each sleep of a blocking send (MPMC: release a slot
/// held by a dead consumer).
macro_rules! send_family {
    ($($unwedge:path)?) => {
        /// Sends `value` if there is room now; never blocks, and makes no
        /// system call while the consumer is awake.
        ///
        /// # Errors
        /// [`TrySendError::Full`], [`TrySendError::Disconnected`] (consumer
        /// gone) or [`TrySendError::Corrupted`]; each gives `value` back.
        #[inline]
        pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
            match self.ring.try_push(&value) {
                Ok(true) => Ok(()),
                Ok(false) if self.ep.peer_gone(false) => Err(TrySendError::Disconnected(value)),
                Ok(false) => Err(TrySendError::Full(value)),
                Err(c) => Err(TrySendError::Corrupted(value, c)),
            }
        }

        /// Sends `value`, waiting per the [`WaitStrategy`](crate::WaitStrategy)
        /// while the ring is full.
        ///
        /// # Errors
        /// [`SendError::Disconnected`] if the consumer side is gone (noticed
        /// within ~50 ms even while parked), [`SendError::Corrupted`],
        /// [`SendError::Io`]; each gives `value` back.
        pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
            self.send_until(value, None)
        }

        /// As [`send`](Self::send), giving up after `timeout`.
        ///
        /// # Errors
        /// As `send`, plus [`SendError::Timeout`] (the consumer is alive).
        pub fn send_timeout(&mut self, value: T, timeout: std::time::Duration) -> Result<(), SendError<T>> {
            self.send_until(value, crate::endpoint::deadline(Some(timeout)))
        }

        fn send_until(&mut self, value: T, deadline: Option<std::time::Instant>) -> Result<(), SendError<T>> {
            let Self { ring, ep } = self;
            ring.push_blocking::<crate::error::Stop>(&value, ep.wait, || {
                $($unwedge(ep);)?
                ep.check(deadline)
            })
            .map_err(|s| s.into_send(value))
        }
    };
}

/// `try_recv`, `recv`, `recv_timeout` for a single-cursor reading handle
/// (SPSC consumer, broadcast reader) with a `ring` whose non-blocking and
/// blocking reads are named `$try_read` and `$read_blocking`, and an
/// `ep: Endpoint`.
macro_rules! recv_family {
    ($try_read:ident, $read_blocking:ident) => {
        /// The next message if there is one now; never blocks. The value is
        /// copied out of the mapping before it is returned.
        ///
        /// # Errors
        /// [`RecvError::Disconnected`] once the producer is gone and every
        /// message it published was received; [`RecvError::Lagged`]
        /// (broadcast: the next call continues at the oldest message left);
        /// [`RecvError::Corrupted`].
        #[inline]
        pub fn try_recv(&mut self) -> Result<Option<T>, RecvError> {
            match self.ring.$try_read()? {
                Some(v) => Ok(Some(v)),
                None if self.ep.peer_gone(false) => self.ring.$try_read()?.map(Some).ok_or(RecvError::Disconnected),
                None => Ok(None),
            }
        }

        /// Receives the next message, waiting per the strategy while there
        /// is none.
        ///
        /// # Errors
        /// As [`try_recv`](Self::try_recv), plus [`RecvError::Io`].
        pub fn recv(&mut self) -> Result<T, RecvError> {
            self.recv_until(None)
        }

        /// As [`recv`](Self::recv), giving up after `timeout`.
        ///
        /// # Errors
        /// As `recv`, plus [`RecvError::Timeout`] (the producer is alive).
        pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Result<T, RecvError> {
            self.recv_until(crate::endpoint::deadline(Some(timeout)))
        }

        fn recv_until(&mut self, deadline: Option<std::time::Instant>) -> Result<T, RecvError> {
            let Self { ring, ep } = self;
            Ok(ring.$read_blocking::<crate::error::Stop>(ep.wait, || ep.check(deadline))?)
        }
    };
}

/// `Debug` for a handle: its type and the file behind it (the ring's
/// private state is of no use to a reader of logs).
macro_rules! debug_by_path {
    ($handle:ident $(<$t:ident>)?) => {
        impl$(<$t>)? std::fmt::Debug for $handle$(<$t>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle)).field("path", &self.ep.seg.path).finish_non_exhaustive()
            }
        }
    };
}

/// `Drop` for a handle: release the role lock first, then ring the peer's
/// doorbell (`data` for producers, `space` for consumers), so a parked peer
/// wakes and finds us gone at once.
macro_rules! leave_on_drop {
    ($handle:ident $(<$t:ident>)?, $bell:ident) => {
        impl$(<$t>)? Drop for $handle$(<$t>)? {
            fn drop(&mut self) {
                self.ep.release();
                shmlane_ring::wait::ring(&self.ep.seg.region.wait_line().$bell);
            }
        }
    };
}

pub(crate) use {debug_by_path, leave_on_drop, recv_family, send_family};
