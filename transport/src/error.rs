//! Errors, one enum per operation family. Each says what happened and what
//! to do; send errors give the message back; none requires `T: Debug`.

use shmlane_ring::{Corruption, LayoutError, ReadError};
use std::path::PathBuf;

/// Creating or opening a segment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name cannot name a segment.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Creating: the name is already taken (by a live or stale segment, or
    /// by someone else's file).
    #[error(
        "{path} already exists: open it instead, pick another name, or remove it (`shmlane clean` removes dead segments)"
    )]
    AlreadyExists {
        /// File behind the name.
        path: PathBuf,
    },
    /// Opening: no such segment.
    #[error("{path} does not exist: start the side that creates it first, or check the name")]
    NotFound {
        /// File behind the name.
        path: PathBuf,
    },
    /// The file's permissions do not let us open it.
    #[error("permission denied on {path}: the segment belongs to another user or has a restrictive mode")]
    PermissionDenied {
        /// File behind the name.
        path: PathBuf,
    },
    /// The segment is owned by another user (refused unless
    /// [`Options::allow_foreign_owner`](crate::Options::allow_foreign_owner)).
    #[error("{path} is owned by uid {owner}, not by us (uid {us}): refusing a segment another user controls")]
    ForeignOwner {
        /// File behind the name.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        us: u32,
    },
    /// Not a regular file (a symlink, a directory, a device...).
    #[error("{path} is not a regular file")]
    NotAFile {
        /// File behind the name.
        path: PathBuf,
    },
    /// The file system has no room for the segment (full `/dev/shm`).
    #[error(
        "no space for a {len_bytes}-byte segment at {path}: free space in /dev/shm (or its mount) or use a smaller capacity"
    )]
    NoSpace {
        /// File behind the name.
        path: PathBuf,
        /// Bytes asked for.
        len_bytes: u64,
    },
    /// The creator has not finished (or died while) creating the segment.
    #[error("{path} is not ready: its creator is still initialising it or died doing so (`shmlane clean` removes it)")]
    NotReady {
        /// File behind the name.
        path: PathBuf,
    },
    /// The file is smaller than a header or larger than any segment.
    #[error("{path} has {len_bytes} bytes, which no shmlane segment has")]
    BadSize {
        /// File behind the name.
        path: PathBuf,
        /// Its size.
        len_bytes: u64,
    },
    /// The header or parameters are wrong: corrupt segment, other protocol,
    /// other message type.
    #[error("{path}: {source}")]
    Layout {
        /// File behind the name.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: LayoutError,
    },
    /// The role is held by a live process.
    #[error("the {role} role of {path} is held by a live process; SPSC segments take one {role} at a time")]
    RoleTaken {
        /// File behind the name.
        path: PathBuf,
        /// "producer" or "consumer".
        role: &'static str,
    },
    /// Every MPMC registry entry is in use.
    #[error("{path} already has the maximum number of MPMC handles attached")]
    TooManyHandles {
        /// File behind the name.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{op} on {path} failed: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// File behind the name.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// `try_send` could not send; the message is given back.
#[derive(thiserror::Error)]
pub enum TrySendError<T> {
    /// The ring is full; try again later.
    #[error("ring is full")]
    Full(T),
    /// The consumer is gone (and was there once).
    #[error("the consumer is gone")]
    Disconnected(T),
    /// The shared state was corrupted by a peer.
    #[error("ring corrupted: {1}")]
    Corrupted(T, Corruption),
}

/// A blocking send failed; the message is given back.
#[derive(thiserror::Error)]
pub enum SendError<T> {
    /// The deadline passed with the ring still full (the consumer is alive).
    #[error("timed out waiting for room")]
    Timeout(T),
    /// The consumer is gone (and was there once).
    #[error("the consumer is gone")]
    Disconnected(T),
    /// The shared state was corrupted by a peer.
    #[error("ring corrupted: {1}")]
    Corrupted(T, Corruption),
    /// The futex wait failed.
    #[error("waiting failed: {1}")]
    Io(T, #[source] std::io::Error),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(v) | Self::Disconnected(v) | Self::Corrupted(v, _) | Self::Io(v, _) => v,
        }
    }
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Disconnected(v) | Self::Corrupted(v, _) => v,
        }
    }
}

macro_rules! debug_without_value {
    ($ty:ident { $($variant:ident $(($($field:ident),*))?),* }) => {
        impl<T> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Self::$variant(_value $(, $($field),*)?) => {
                        let mut t = f.debug_tuple(stringify!($variant));
                        t.field(&format_args!(".."));
                        $($(t.field($field);)*)?
                        t.finish()
                    })*
                }
            }
        }
    };
}

debug_without_value!(TrySendError { Full, Disconnected, Corrupted(c) });
debug_without_value!(SendError { Timeout, Disconnected, Corrupted(c), Io(e) });

/// Receiving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The deadline passed with the ring still empty (the producer is alive).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The producer is gone and everything it committed was received.
    #[error("the producer is gone and the ring is drained")]
    Disconnected,
    /// Broadcast: the writer overwrote this many messages before this
    /// reader got to them. The reader now stands at the oldest message
    /// still in the ring; the next call continues from there.
    #[error(
        "this reader fell more than a ring behind and lost {0} messages; it continues at the oldest one still present (read faster, or create the ring with a larger capacity)"
    )]
    Lagged(u64),
    /// The shared state was corrupted by a peer.
    #[error("ring corrupted: {0}")]
    Corrupted(#[from] Corruption),
    /// The futex wait failed.
    #[error("waiting failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReadError> for RecvError {
    fn from(e: ReadError) -> Self {
        Stop::from(e).into()
    }
}

/// Reserving room for a byte record failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReserveError {
    /// The record can never fit this ring.
    #[error(
        "a record of {len} bytes can never fit this ring (at most {max}); create it with a larger capacity or split the message"
    )]
    TooLarge {
        /// Requested length.
        len: usize,
        /// Largest record.
        max: usize,
    },
    /// The deadline passed with no room (the consumer is alive).
    #[error("timed out waiting for room")]
    Timeout,
    /// The consumer is gone.
    #[error("the consumer is gone")]
    Disconnected,
    /// The shared state was corrupted by a peer.
    #[error("ring corrupted: {0}")]
    Corrupted(#[from] Corruption),
    /// The futex wait failed.
    #[error("waiting failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<shmlane_ring::ReserveError> for ReserveError {
    fn from(e: shmlane_ring::ReserveError) -> Self {
        Stop::from(e).into()
    }
}

/// Why a blocking wait ended without success; converted into the
/// operation's own error.
#[derive(Debug)]
pub(crate) enum Stop {
    Timeout,
    Disconnected,
    Corrupted(Corruption),
    TooLarge { len: usize, max: usize },
    Lagged(u64),
    Io(std::io::Error),
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Lagged(n) => Self::Lagged(n),
            ReadError::Corrupted(c) => Self::Corrupted(c),
        }
    }
}

impl From<Corruption> for Stop {
    fn from(c: Corruption) -> Self {
        Self::Corrupted(c)
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<shmlane_ring::ReserveError> for Stop {
    fn from(e: shmlane_ring::ReserveError) -> Self {
        match e {
            shmlane_ring::ReserveError::TooLarge { len, max } => Self::TooLarge { len, max },
            shmlane_ring::ReserveError::Corrupted(c) => Self::Corrupted(c),
        }
    }
}

impl Stop {
    pub(crate) fn into_send<T>(self, value: T) -> SendError<T> {
        match self {
            Self::Timeout => SendError::Timeout(value),
            Self::Disconnected => SendError::Disconnected(value),
            Self::Corrupted(c) => SendError::Corrupted(value, c),
            Self::Io(e) => SendError::Io(value, e),
            Self::TooLarge { .. } | Self::Lagged(_) => unreachable!("only receives lag; fixed-size sends always fit"),
        }
    }
}

impl From<Stop> for RecvError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Timeout => Self::Timeout,
            Stop::Disconnected => Self::Disconnected,
            Stop::Corrupted(c) => Self::Corrupted(c),
            Stop::Io(e) => Self::Io(e),
            Stop::Lagged(n) => Self::Lagged(n),
            Stop::TooLarge { .. } => unreachable!("receives are never too large"),
        }
    }
}

impl From<Stop> for ReserveError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Timeout => Self::Timeout,
            Stop::Disconnected => Self::Disconnected,
            Stop::Corrupted(c) => Self::Corrupted(c),
            Stop::Io(e) => Self::Io(e),
            Stop::TooLarge { len, max } => Self::TooLarge { len, max },
            Stop::Lagged(_) => unreachable!("reservations never lag"),
        }
    }
}
