//! shmlane: lock-free shared-memory rings between processes on one Linux host.
//!
//! # Contract
//!
//! A segment is a named POSIX shared-memory object holding one ring. The
//! creating handle sizes and initialises it and removes the name when it
//! drops (unless [`Options::keep`]); the other side opens it by name and
//! validates everything it maps. [`Producer`]/[`Consumer`] carry fixed-size
//! `bytemuck::Pod` messages between one producer and one consumer;
//! [`ByteProducer`]/[`ByteConsumer`] carry variable-length records with
//! zero copy on both sides; [`MpmcProducer`]/[`MpmcConsumer`] may be opened
//! by any number of processes.
//!
//! - `try_*` calls never block and, while the peer is awake, make no system
//!   call and do not allocate. `send`/`recv` wait per the handle's
//!   [`WaitStrategy`]: spin, spin then sleep on a futex in the mapping, or
//!   sleep at once.
//! - A dead peer (exit or `SIGKILL`) is seen through an open-file-description
//!   lock the kernel drops for it: a consumer drains everything that was
//!   committed, then gets [`RecvError::Disconnected`]; a blocked producer
//!   gets [`SendError::Disconnected`]. A blocked call notices within ~50 ms.
//! - Everything read from the mapping is untrusted: a corrupt or hostile
//!   segment gives a typed error ([`OpenError`], `Corrupted`), never a
//!   panic or an out-of-bounds access.
//!
//! # Example
//!
//! Two processes (here two handles in one, for a runnable doc test):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmlane::{Consumer, Options, Producer, WaitStrategy};
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Tick { instrument: u32, _pad: u32, price: i64, qty: i64, ts_ns: u64 }
//!
//! let name = format!("doc-lib-{}", std::process::id());
//! // process A
//! let mut tx = Producer::<Tick>::create(&name, Options::new().capacity(4096))?;
//! // process B
//! let mut rx = Consumer::<Tick>::open(&name, Options::new().wait(WaitStrategy::SpinThenPark { spins: 10_000 }))?;
//!
//! tx.send(Tick { instrument: 7, _pad: 0, price: 101, qty: 5, ts_ns: 1 })?;
//! assert_eq!(rx.recv()?.price, 101);
//! drop(tx); // the producer leaves: the consumer drains, then is told
//! assert!(matches!(rx.recv(), Err(shmlane::RecvError::Disconnected)));
//! # Ok(()) }
//! ```
#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

mod broadcast;
mod bytes;
mod endpoint;
mod error;
mod family;
mod inspect;
mod mpmc;
mod options;
mod segment;
mod spsc;

pub use broadcast::{BroadcastConsumer, BroadcastProducer, ByteBroadcastConsumer, ByteBroadcastProducer};
pub use bytes::{ByteConsumer, ByteProducer, Grant, ReadGuard};
pub use error::{OpenError, RecvError, ReserveError, SendError, TrySendError};
pub use inspect::{RoleState, SegmentInfo, any_role_locked, has_magic, inspect, list};
pub use mpmc::{MpmcConsumer, MpmcProducer};
pub use options::{DEFAULT_MAX_RECORD_LEN, Options};
pub use segment::{MAX_NAME_LEN, SHM_DIR, remove, segment_path};
pub use shmlane_ring::broadcast::TooLarge;
pub use shmlane_ring::{Corruption, Flavor, LayoutError, WaitStrategy};
pub use spsc::{Consumer, Producer};
