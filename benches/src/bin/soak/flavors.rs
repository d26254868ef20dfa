//! The flavors: who takes part ([`Topology`]) and what each process does,
//! one function per flavor, matching on the process's [`Role`].

use std::hint::spin_loop;
use std::thread::yield_now;
use std::time::Duration;

use bytemuck::Zeroable;
use shmlane::{
    BroadcastConsumer, BroadcastProducer, ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, Producer,
    RecvError, TrySendError,
};

use crate::msg::{Checker, HEADER, Msg, Order, SHAPE_SEED, checksum, fill, key, mix, payload_len};
use crate::proc::{Child, Counts, Res, Role};

/// Slots of the typed SPSC, MPMC and broadcast rings (64 KiB of 64-byte messages).
const TYPED_SLOTS: u64 = 1024;
/// Bytes of the byte ring.
const BYTE_RING: usize = 64 * 1024;
/// The byte ring's own header in front of each record (`RECORD_HEADER`).
const RING_RECORD_HEADER: usize = 8;
/// Largest batch the typed SPSC flavor sends or receives at once.
const MAX_BATCH: usize = 64;
/// Readers of the broadcast flavor.
const BROADCAST_READERS: usize = 2;
/// A broadcast reader publishes its cursor at least every this many
/// messages: far below the writer's allowance (half the ring), so a stale
/// cursor never stalls the writer.
const CURSOR_EVERY: u64 = 64;
/// Longest single `recv_timeout` of a broadcast reader; on a timeout it
/// checks whether to give up, then waits again.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);
/// Polls of the readers' cursors the throttled broadcast writer spins
/// through before it yields the CPU between polls.
const THROTTLE_SPINS: u32 = 128;

/// One way of moving messages that the soak exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Spsc,
    Bytes,
    Mpmc,
    Broadcast,
}

/// Who takes part in a flavor and what each consumer must receive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topology {
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
    /// Each consumer must receive every message (broadcast); otherwise each
    /// message goes to exactly one of them.
    pub(crate) every_reader_gets_all: bool,
}

impl Flavor {
    pub(crate) const ALL: [Self; 4] = [Self::Spsc, Self::Bytes, Self::Mpmc, Self::Broadcast];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Spsc => "spsc",
            Self::Bytes => "bytes",
            Self::Mpmc => "mpmc",
            Self::Broadcast => "broadcast",
        }
    }

    pub(crate) fn topology(self) -> Topology {
        let (producers, consumers) = match self {
            Self::Spsc | Self::Bytes => (1, 1),
            Self::Mpmc => (2, 2),
            Self::Broadcast => (1, BROADCAST_READERS),
        };
        Topology { producers, consumers, every_reader_gets_all: self == Self::Broadcast }
    }

    /// What each process of this flavor runs (it matches on its role).
    pub(crate) fn body(self) -> fn(&Child<'_>) -> Res<Counts> {
        match self {
            Self::Spsc => spsc,
            Self::Bytes => bytes,
            Self::Mpmc => mpmc,
            Self::Broadcast => broadcast,
        }
    }
}

/// Typed SPSC: batches of 1..=64, sent alternately one by one and with
/// `send_batch`; received alternately with `recv_batch` and `recv`.
fn spsc(child: &Child<'_>) -> Res<Counts> {
    let mut batch = [Msg::zeroed(); MAX_BATCH];
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(TYPED_SLOTS, Producer::<Msg>::create, Producer::<Msg>::open)?;
            let mut order = Order::new(child, p);
            let (mut sent, mut round) = (0u64, 0u64);
            loop {
                let want = 1 + (mix(round) % MAX_BATCH as u64) as usize;
                let mut k = 0;
                for (m, (seq, corrupt)) in batch[..want].iter_mut().zip(order.by_ref()) {
                    *m = Msg::new(key(p, seq));
                    m.payload[0] ^= u64::from(corrupt) << 7;
                    k += 1;
                }
                if k == 0 {
                    break;
                }
                if round % 2 == 0 {
                    tx.send_batch(&batch[..k]).map_err(|e| format!("send_batch after {sent} messages: {e}"))?;
                } else {
                    for m in &batch[..k] {
                        tx.send(*m).map_err(|e| format!("send after {sent} messages: {e}"))?;
                    }
                }
                sent += k as u64;
                round += 1;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(TYPED_SLOTS, Consumer::<Msg>::create, Consumer::<Msg>::open)?;
            let mut check = Checker::new(child);
            for round in 0u64.. {
                let got = if round % 2 == 0 {
                    rx.recv_batch(&mut batch[..1 + (round / 2) as usize % MAX_BATCH])
                } else {
                    rx.recv().map(|m| {
                        batch[0] = m;
                        1
                    })
                };
                match got {
                    Ok(n) => batch[..n].iter().for_each(|m| check.msg(m)),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
    }
}

/// Byte records, zero copy: written in the grant, checked in the read guard.
fn bytes(child: &Child<'_>) -> Res<Counts> {
    let max_payload = BYTE_RING - RING_RECORD_HEADER - HEADER;
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(BYTE_RING as u64, ByteProducer::create, ByteProducer::open)?;
            if tx.max_record_len() != max_payload + HEADER {
                return Err(format!("max_record_len {} (expected {})", tx.max_record_len(), max_payload + HEADER));
            }
            let mut sent = 0;
            for (seq, corrupt) in Order::new(child, p) {
                let key = key(p, seq);
                let len = payload_len(key, max_payload);
                let shape = mix(key ^ SHAPE_SEED);
                if shape % 61 == 0 {
                    // An abandoned grant must publish nothing.
                    let mut g = tx.reserve(HEADER + len).map_err(|e| format!("reserve at seq {seq}: {e}"))?;
                    g.fill(0xa5);
                }
                // Sometimes reserve more than needed and commit only the record.
                let extra = if shape % 7 == 0 { ((shape >> 8) % 64) as usize } else { 0 }.min(max_payload - len);
                let mut g = tx.reserve(HEADER + len + extra).map_err(|e| format!("reserve at seq {seq}: {e}"))?;
                let (head, body) = g.split_at_mut(HEADER);
                let body = &mut body[..len];
                fill(key, body);
                let sum = checksum(key, body);
                if corrupt {
                    match body.get_mut(len / 2) {
                        Some(b) => *b ^= 0x10,
                        None => head[0] ^= 1,
                    }
                }
                head[..8].copy_from_slice(&key.to_le_bytes());
                head[8..].copy_from_slice(&sum.to_le_bytes());
                if extra > 0 {
                    g.commit_len(HEADER + len)
                } else {
                    g.commit()
                }
                sent += 1;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(BYTE_RING as u64, ByteConsumer::create, ByteConsumer::open)?;
            let mut check = Checker::new(child);
            loop {
                match rx.recv() {
                    Ok(record) => check.record_bytes(&record, max_payload),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
    }
}

/// MPMC: every other message with `try_send` first; every receive with
/// `try_recv` first, then `recv` if the ring was empty.
fn mpmc(child: &Child<'_>) -> Res<Counts> {
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(TYPED_SLOTS, MpmcProducer::<Msg>::create, MpmcProducer::<Msg>::open)?;
            let mut sent = 0;
            for (seq, corrupt) in Order::new(child, p) {
                let mut m = Msg::new(key(p, seq));
                m.payload[0] ^= u64::from(corrupt) << 7;
                sent += 1;
                let m = if seq % 2 == 0 {
                    match tx.try_send(m) {
                        Ok(()) => continue,
                        Err(TrySendError::Full(m)) => m,
                        Err(e) => return Err(format!("try_send at seq {seq}: {e}")),
                    }
                } else {
                    m
                };
                tx.send(m).map_err(|e| format!("send at seq {seq}: {e}"))?;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(TYPED_SLOTS, MpmcConsumer::<Msg>::create, MpmcConsumer::<Msg>::open)?;
            let mut check = Checker::new(child);
            loop {
                let got = match rx.try_recv() {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => rx.recv(),
                    Err(e) => Err(e),
                };
                match got {
                    Ok(m) => check.msg(&m),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(check.finish())
        }
    }
}

/// Broadcast: one writer, [`BROADCAST_READERS`] readers, each of which must
/// get every message, in order. The ring's writer never waits, so ours
/// throttles itself on the cursors the readers publish in the board: it
/// sends message `sent` only while no reader is more than half a ring
/// behind it, so a correct run never laps a reader (a `Lagged(n)` is n
/// messages missing from that reader's bitmap, and a note). Readers start
/// at the oldest message in the ring (`from_oldest`), so one that attached
/// late still sees everything; they receive by turns with `try_recv` first
/// (then `recv_timeout` if the ring was empty) and with `recv_timeout` alone.
fn broadcast(child: &Child<'_>) -> Res<Counts> {
    match child.role {
        Role::Producer(p) => {
            let mut tx = child.attach(TYPED_SLOTS, BroadcastProducer::<Msg>::create, BroadcastProducer::<Msg>::open)?;
            let ahead = tx.capacity() as u64 / 2;
            // Messages below `limit` may be sent without looking at the cursors.
            let (mut sent, mut limit) = (0u64, 0u64);
            for (seq, corrupt) in Order::new(child, p) {
                if sent >= limit {
                    limit = throttle(child, sent, ahead)?;
                }
                let mut m = Msg::new(key(p, seq));
                m.payload[0] ^= u64::from(corrupt) << 7;
                tx.send(m);
                sent += 1;
            }
            Ok(Counts { handled: sent, ..Counts::default() })
        }
        Role::Consumer(_) => {
            let mut rx = child.attach(
                TYPED_SLOTS,
                |name, opts| BroadcastConsumer::<Msg>::create(name, opts.from_oldest(true)),
                |name, opts| BroadcastConsumer::<Msg>::open(name, opts.from_oldest(true)),
            )?;
            let mut check = Checker::new(child);
            let mut published = rx.position();
            child.publish_cursor(published);
            for round in 0u64.. {
                let got = if round % 2 == 0 {
                    match rx.try_recv() {
                        Ok(Some(m)) => Ok(m),
                        Ok(None) => rx.recv_timeout(RECV_TIMEOUT),
                        Err(e) => Err(e),
                    }
                } else {
                    rx.recv_timeout(RECV_TIMEOUT)
                };
                match got {
                    Ok(m) => check.msg(&m),
                    Err(RecvError::Lagged(n)) => check.lagged(n),
                    Err(RecvError::Timeout) if !child.give_up() => {}
                    Err(RecvError::Disconnected) => break,
                    Err(e) => return Err(format!("recv at position {}: {e}", rx.position())),
                }
                if rx.position() - published >= CURSOR_EVERY {
                    published = rx.position();
                    child.publish_cursor(published);
                }
            }
            Ok(check.finish())
        }
    }
}

/// Waits until the broadcast writer may send message `sent`: until no
/// reader's published cursor is more than `ahead` behind it. Returns the
/// position below which it may send without looking again.
fn throttle(child: &Child<'_>, sent: u64, ahead: u64) -> Res<u64> {
    let mut polls = 0u32;
    loop {
        let slowest = child.min_reader_cursor();
        if sent.saturating_sub(slowest) <= ahead {
            return Ok(slowest.saturating_add(ahead + 1));
        }
        polls = polls.wrapping_add(1);
        if polls < THROTTLE_SPINS {
            spin_loop();
            continue;
        }
        // On a shared core the slowest reader may need this one.
        yield_now();
        if polls % 64 == 0 && child.give_up() {
            return Err(format!("gave up waiting for the readers after {sent} sent (slowest at {slowest})"));
        }
    }
}
