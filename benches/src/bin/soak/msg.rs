//! The messages the soak moves and a consumer's checks: a typed [`Msg`] or
//! a byte record carries its key (producer and sequence number) and a
//! checksum of a payload derived from the key; [`Order`] is the sequence a
//! producer sends (with faults under `--inject-faults`), and [`Checker`]
//! marks what a consumer received and counts what was wrong.

use std::sync::atomic::Ordering;

use bytemuck::{Pod, Zeroable};

use crate::proc::{Child, Counts};

/// The producer index sits above this bit of a key, the sequence number below.
pub(crate) const PRODUCER_SHIFT: u32 = 56;
/// Our header in each byte record: key, then checksum.
pub(crate) const HEADER: usize = 16;
/// Anomalies a consumer describes (it counts all of them).
const NOTED_ANOMALIES: u32 = 3;
/// A consumer publishes its progress every this many messages.
const PROGRESS_EVERY: u64 = 1 << 12;
/// Seeds that make a record's payload length and its shape (abandoned grant,
/// short commit) independent of each other and of its payload words.
const LEN_SEED: u64 = 0x006c_656e_6774_6800;
pub(crate) const SHAPE_SEED: u64 = 0x0073_6861_7065_0000;

/// A typed message: 64 bytes, checksum over key and payload.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct Msg {
    pub(crate) key: u64,
    pub(crate) check: u64,
    pub(crate) payload: [u64; 6],
}

impl Msg {
    pub(crate) fn new(key: u64) -> Self {
        let payload = std::array::from_fn(|i| payload_word(key, i));
        Self { key, check: checksum(key, bytemuck::bytes_of(&payload)), payload }
    }

    pub(crate) fn intact(&self) -> bool {
        self.check == checksum(self.key, bytemuck::bytes_of(&self.payload))
    }
}

pub(crate) fn key(producer: usize, seq: u64) -> u64 {
    (producer as u64) << PRODUCER_SHIFT | seq
}

pub(crate) fn split_key(key: u64) -> (usize, u64) {
    ((key >> PRODUCER_SHIFT) as usize, key & ((1 << PRODUCER_SHIFT) - 1))
}

/// splitmix64's finaliser.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn payload_word(key: u64, i: usize) -> u64 {
    mix(key ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn load_word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// Fills `buf` with the payload of `key`: its words, little-endian, the last one cut.
pub(crate) fn fill(key: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let n = chunk.len();
        chunk.copy_from_slice(&payload_word(key, i).to_le_bytes()[..n]);
    }
}

/// A 64-bit checksum of `key`, the length and the bytes (not cryptographic:
/// it catches torn, stale, shifted or foreign bytes).
pub(crate) fn checksum(key: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(key ^ (bytes.len() as u64).rotate_left(32));
    for chunk in bytes.chunks(8) {
        h = (h ^ load_word(chunk)).wrapping_mul(0x9fb2_1c65_1e98_df25).rotate_left(29);
    }
    mix(h)
}

/// Payload length of the byte record `key`, in `0..=max`: mostly up to 128
/// bytes, 6% up to 4 KiB, 1 in 512 within 256 bytes of `max` (those
/// fit only at the start of the ring: padding to the end, then a wait for
/// the ring to drain).
pub(crate) fn payload_len(key: u64, max: usize) -> usize {
    let h = mix(key ^ LEN_SEED);
    let r = (h >> 16) as usize;
    let len = match h % 1024 {
        0..=1 => max.saturating_sub(r % 256),
        2..=63 => r % 4097,
        _ => r % 129,
    };
    len.min(max)
}

/// The sequence numbers a producer sends, in order, each with "corrupt it
/// after the checksum". Normally `0..total`, all intact. Under
/// `--inject-faults`, producer 0 leaves out 10, sends 20 twice, corrupts 30
/// and sends 41 before 40: a consumer must then count 2 lost (10, and 30
/// which never arrived intact), 1 duplicated, 1 corrupt and (SPSC) 1 reordered.
pub(crate) struct Order {
    next: u64,
    total: u64,
    inject: bool,
    pending: Option<u64>,
}

impl Order {
    pub(crate) fn new(child: &Child<'_>, p: usize) -> Self {
        Self { next: 0, total: child.sends(p), inject: child.inject_faults && p == 0, pending: None }
    }
}

impl Iterator for Order {
    type Item = (u64, bool);

    fn next(&mut self) -> Option<(u64, bool)> {
        if let Some(seq) = self.pending.take() {
            return Some((seq, false));
        }
        if self.next >= self.total {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        if !self.inject {
            return Some((seq, false));
        }
        match seq {
            10 => self.next(),
            20 => {
                self.pending = Some(20);
                Some((20, false))
            }
            30 => Some((30, true)),
            40 if self.total > 41 => {
                self.next = 42;
                self.pending = Some(40);
                Some((41, false))
            }
            _ => Some((seq, false)),
        }
    }
}

/// A consumer's checks: marks each message in its bitmap, counts what is wrong.
pub(crate) struct Checker<'a> {
    child: &'a Child<'a>,
    /// Highest sequence number seen from each producer.
    last: Vec<Option<u64>>,
    counts: Counts,
    anomalies: u32,
    note: String,
    /// Broadcast: times this reader was lapped, and messages it lost so.
    lags: u64,
    lagged: u64,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(child: &'a Child<'a>) -> Self {
        Self {
            child,
            last: vec![None; child.topo.producers],
            counts: Counts::default(),
            anomalies: 0,
            note: String::new(),
            lags: 0,
            lagged: 0,
        }
    }

    pub(crate) fn msg(&mut self, m: &Msg) {
        self.record(m.key, m.intact(), || format!("typed message with key {:#x}: checksum mismatch", m.key));
    }

    pub(crate) fn record_bytes(&mut self, rec: &[u8], max_payload: usize) {
        if rec.len() < HEADER {
            self.counts.handled += 1;
            self.counts.corrupt += 1;
            self.anomaly(format!("corrupt: a record of {} bytes, shorter than its header", rec.len()));
            return;
        }
        let (key, sum, body) = (load_word(&rec[..8]), load_word(&rec[8..HEADER]), &rec[HEADER..]);
        let want = payload_len(key, max_payload);
        let intact = body.len() == want && checksum(key, body) == sum;
        self.record(key, intact, || match body.len() {
            len if len == want => format!("record with key {key:#x}: checksum mismatch ({len} payload bytes)"),
            len => format!("record with key {key:#x}: {len} payload bytes, expected {want}"),
        });
    }

    fn record(&mut self, key: u64, intact: bool, describe: impl FnOnce() -> String) {
        self.counts.handled += 1;
        if self.counts.handled % PROGRESS_EVERY == 0 {
            self.child.progress(self.counts.handled);
        }
        if !intact {
            self.counts.corrupt += 1;
            return self.anomaly(format!("corrupt: {}", describe()));
        }
        let (p, seq) = split_key(key);
        let Some(map) = self.child.maps.get(p).filter(|_| seq < self.child.sends(p)) else {
            self.counts.corrupt += 1;
            return self.anomaly(format!("corrupt: intact message with impossible key {key:#x}"));
        };
        let (word, bit) = (&map[(seq / 64) as usize], 1u64 << (seq % 64));
        // Relaxed: only this process writes its bitmap; the parent reads it
        // after `waitpid`.
        let w = word.load(Ordering::Relaxed);
        if w & bit != 0 {
            self.counts.duplicated += 1;
            return self.anomaly(format!("duplicate: producer {p} seq {seq}"));
        }
        word.store(w | bit, Ordering::Relaxed);
        match self.last[p] {
            Some(last) if seq < last => {
                self.counts.reordered += 1;
                self.anomaly(format!("reordered: producer {p} seq {seq} after seq {last}"));
            }
            _ => self.last[p] = Some(seq),
        }
    }

    /// A broadcast reader was lapped and skipped `n` messages. They count
    /// as lost through its bitmap (they were never marked); this notes the
    /// lag, and [`finish`](Self::finish) tallies every lag in the note.
    pub(crate) fn lagged(&mut self, n: u64) {
        self.lags += 1;
        self.lagged += n;
        self.anomaly(format!("lagged: lost {n} messages after receiving {}", self.counts.handled));
    }

    fn anomaly(&mut self, what: String) {
        if self.anomalies < NOTED_ANOMALIES {
            if !self.note.is_empty() {
                self.note.push_str("; ");
            }
            self.note.push_str(&what);
            self.child.slot.note.write(&self.note);
        }
        self.anomalies += 1;
    }

    pub(crate) fn finish(mut self) -> Counts {
        self.child.progress(self.counts.handled);
        if self.lags > 0 {
            let sep = if self.note.is_empty() { "" } else { "; " };
            self.note.push_str(&format!("{sep}lagged {} time(s), {} messages lost in all", self.lags, self.lagged));
            self.child.slot.note.write(&self.note);
        }
        self.counts
    }
}
