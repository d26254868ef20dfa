//! Layout v1 as the attacker and the parent see it from outside: the
//! offsets of `docs/layout-v1.md` (`ring/src/layout.rs`), the sizes of the
//! rings under test, and a raw read of the segment file.

use std::os::unix::fs::FileExt;
use std::path::Path;

// Layout v1 offsets (docs/layout-v1.md §2–§5).
pub(crate) const MAGIC_AT: u64 = 0;
pub(crate) const VERSION_AT: u64 = 8;
pub(crate) const FLAVOR_AT: u64 = 12;
pub(crate) const STATE_AT: u64 = 16;
pub(crate) const SLOT_SIZE_AT: u64 = 20;
pub(crate) const CAPACITY_AT: u64 = 24;
pub(crate) const MSG_SIZE_AT: u64 = 32;
pub(crate) const TOTAL_LEN_AT: u64 = 48;
pub(crate) const SKIPPED_AT: u64 = 80;
pub(crate) const WRITE_POS: u64 = 128;
pub(crate) const READ_POS: u64 = 256;
pub(crate) const WAIT_LINE: u64 = 384;
pub(crate) const LIVENESS: u64 = 512;
pub(crate) const REGISTRY: u64 = 1024;
pub(crate) const ENTRY: u64 = 128;
pub(crate) const SLOTS: u64 = 4096;
pub(crate) const SKIPPED: u64 = 1 << 63;

/// Slots of the fixed rings; bytes of the byte ring.
pub(crate) const FIXED_CAP: u64 = 16;
pub(crate) const BYTE_CAP: u64 = 256;
/// Segment length of a fixed ring of `Msg` (64-byte slots).
pub(crate) const FIXED_LEN: u64 = SLOTS + FIXED_CAP * 64;
/// A distance no honest position difference comes near.
pub(crate) const FAR: u64 = 1 << 40;

pub(crate) fn read_u64(path: &Path, at: u64) -> u64 {
    let mut buf = [0; 8];
    std::fs::File::open(path).and_then(|f| f.read_exact_at(&mut buf, at)).expect("read segment file");
    u64::from_le_bytes(buf)
}
