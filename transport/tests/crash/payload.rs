//! What the children send: the wide MPMC message and the byte records,
//! each a pure function of its number, with their checks.

use crate::common::{Msg, mix};

/// MPMC messages carry their producer's id above this bit.
const MPMC_ID_SHIFT: u64 = 40;

/// A wide MPMC message (16 KiB): copying it into its slot takes long
/// enough that a random kill often lands between a producer's claim and
/// its commit. Head and tail carry the same [`Msg`], the body a pattern of
/// the producer, so a torn or mixed slot is seen.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct Wide {
    head: Msg,
    body: [u64; 2048],
    tail: Msg,
}

impl Wide {
    pub(crate) fn new(id: u64, n: u64) -> Self {
        let head = Msg::new((id << MPMC_ID_SHIFT) | n);
        Self { head, body: [mix(id); 2048], tail: head }
    }

    /// Makes this message `n` of producer `id` (whose body it has).
    pub(crate) fn set_seq(&mut self, id: u64, n: u64) {
        self.head = Msg::new((id << MPMC_ID_SHIFT) | n);
        self.tail = self.head;
    }

    /// `(producer, n)` if the message is whole.
    pub(crate) fn check(&self) -> Result<(u64, u64), String> {
        let (head, tail) = (self.head, self.tail);
        if !head.is_intact() || head != Msg::new(head.seq) || tail != head {
            return Err(format!("torn message: head {head:?}, tail {tail:?}"));
        }
        let id = head.seq >> MPMC_ID_SHIFT;
        if let Some(k) = [0, 1, 1023, 2046, 2047].into_iter().find(|&k| self.body[k] != mix(id)) {
            return Err(format!("torn message {}: body word {k}", head.seq));
        }
        Ok((id, head.seq & ((1 << MPMC_ID_SHIFT) - 1)))
    }
}

/// What an open grant holds until it is written: never delivered.
pub(crate) const POISON: u8 = 0xDB;

/// Length of byte record `seq`: its number, then mostly a short payload,
/// one in 16 long enough to need padding at the end of the ring.
pub(crate) fn record_len(seq: u64) -> usize {
    let r = mix(seq ^ 0xB17E_5EED);
    8 + if r % 16 == 0 { (r >> 8) % 900 } else { (r >> 8) % 120 } as usize
}

/// Byte record `seq`: `seq` little endian, then bytes derived from it.
pub(crate) fn fill_record(seq: u64, out: &mut [u8]) {
    let key = mix(seq);
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out.iter_mut().enumerate().skip(8) {
        *b = (key >> (8 * (i & 7))) as u8 ^ (i >> 3) as u8;
    }
}

/// Asserts `record` is byte record `seq`, whole.
#[track_caller]
pub(crate) fn check_record(record: &[u8], seq: u64) {
    if record.len() >= 8 && record[..8].iter().all(|&b| b == POISON) {
        panic!("record {seq}: an uncommitted (poisoned) grant was delivered");
    }
    let mut want = vec![0; record_len(seq)];
    fill_record(seq, &mut want);
    assert_eq!(record.len(), want.len(), "record {seq}: length (lost, duplicated or torn)");
    if let Some(i) = (0..want.len()).find(|&i| record[i] != want[i]) {
        panic!("record {seq}: byte {i} is {:#04x}, expected {:#04x}", record[i], want[i]);
    }
}
