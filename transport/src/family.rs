//! The operation families the typed handles share. SPSC and MPMC producers
//! differ only in their ring (`ring` field) and liveness rules (`ep` field),
//! so their `try_send`/`send`/`send_timeout` bodies are written once here.

/// `try_send`, `send`, `send_timeout` for a handle with a `ring` that has
/// `try_push`/`push_blocking` and an `ep: Endpoint`.
macro_rules! send_family {
    () => {
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
            ring.push_blocking::<crate::error::Stop>(&value, ep.wait, || ep.check(deadline))
                .map_err(|s| s.into_send(value))
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

pub(crate) use {leave_on_drop, send_family};
