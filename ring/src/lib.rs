//! Lock-free rings over a raw shared-memory region.
//!
//! This crate owns the algorithms of shmlane and nothing else: the shared
//! layout ([`layout`]), the rings ([`SpscProducer`]/[`SpscConsumer`] for
//! fixed-size `Pod` messages, [`ByteProducer`]/[`ByteConsumer`] for
//! variable-length records, [`MpmcProducer`]/[`MpmcConsumer`],
//! [`BroadcastWriter`]/[`BroadcastReader`] for one-to-many fan-out), and the
//! futex sleep/wake handshake ([`wait`]). It opens no files and knows no
//! names; the `shmlane` crate maps segments and hands them here as a
//! [`Region`].
//!
//! # Contract
//!
//! - A region holds one ring. Its SPSC roles must each be held by one handle
//!   at a time (the transport enforces it with locks); MPMC handles may be
//!   many, in any number of processes.
//! - `try_*` operations never block, never allocate and make no system call
//!   unless the peer is asleep on the futex. `*_blocking` operations wait per
//!   [`WaitStrategy`] and ask the caller (`check`) how long they may sleep,
//!   so the caller can enforce deadlines and probe peer liveness.
//! - Everything read from the region is untrusted: impossible positions,
//!   sequence words or record lengths give [`Corruption`], never a panic,
//!   an out-of-bounds access or a hang.
//!
//! # Example
//!
//! ```
//! use shmlane_ring::{Flavor, Params, Region, SpscConsumer, SpscProducer};
//!
//! let region = Region::heap(Params::fixed(Flavor::Spsc, 4, 8, 8)?)?;
//! let mut tx = SpscProducer::<u64>::attach(region.clone())?;
//! let mut rx = SpscConsumer::<u64>::attach(region)?;
//! assert!(tx.try_push(&7)?);
//! assert_eq!(rx.try_pop()?, Some(7));
//! assert_eq!(rx.try_pop()?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

pub mod broadcast;
pub mod bytes;
mod error;
pub mod layout;
pub mod mpmc;
mod region;
pub mod spsc;
mod sync;
#[doc(hidden)]
pub mod testing;
pub mod wait;

pub use broadcast::{BroadcastReader, BroadcastWriter, ByteBroadcastReader, ByteBroadcastWriter, ReadError, Start};
pub use bytes::{ByteConsumer, ByteProducer, Grant, ReadGuard, ReserveError};
pub use error::{Corruption, LayoutError};
pub use layout::{Creator, Expect, Flavor, HeaderSnapshot, Params};
pub use mpmc::{MpmcConsumer, MpmcProducer, Stall};
pub use region::{HeapMemory, Memory, Region};
pub use spsc::{SpscConsumer, SpscProducer};
pub use wait::WaitStrategy;
