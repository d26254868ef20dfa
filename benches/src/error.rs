//! The one error type of the bench harness.

use std::io;

/// Why a measurement (or the whole run) failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call made through `std` failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What the harness was doing.
        context: String,
        /// The underlying errno.
        #[source]
        source: nix::Error,
    },
    /// A received message is not the one that was sent next: lost, duplicated,
    /// reordered or torn. A transport that does this fails its measurement.
    #[error("message {seq}: {detail}")]
    Corrupt {
        /// The sequence number the receiver expected.
        seq: u64,
        /// What was wrong with it.
        detail: String,
    },
    /// The other process of a pair failed or died.
    #[error("peer process: {0}")]
    Peer(String),
    /// Anything else (bad arguments, a transport's own error type, ...).
    #[error("{0}")]
    Other(String),
}

/// Result with [`BenchError`] as the error.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// Wraps any displayable error (for example a transport's own error type).
    pub fn other(msg: impl std::fmt::Display) -> Self {
        Self::Other(msg.to_string())
    }
}

/// Adds context to `io` and `nix` results.
pub(crate) trait Context<T> {
    /// Turns the error into a [`BenchError`] that says what was being done.
    fn context(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|source| BenchError::io(what, source))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|source| BenchError::Sys { context: what.to_owned(), source })
    }
}
