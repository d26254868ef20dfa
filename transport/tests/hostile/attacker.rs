//! The attacker: maps the live segment with plain `memmap2` (never through
//! shmlane) and writes words at layout offsets, once or, in running mode,
//! over and over.

use crate::common::{self, Rng};
use crate::offsets::{
    CAPACITY_AT, ENTRY, FAR, LIVENESS, READ_POS, REGISTRY, SLOT_SIZE_AT, SLOTS, WAIT_LINE, WRITE_POS,
};
use crate::scenario::{Mode, scenario};
use memmap2::MmapRaw;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The attacker's view of the segment: raw words at layout offsets.
pub(crate) struct Target<'a> {
    map: &'a MmapRaw,
    mask: u64,
    slot_size: u64,
}

impl<'a> Target<'a> {
    fn new(map: &'a MmapRaw) -> Self {
        let mut t = Self { map, mask: 0, slot_size: 0 };
        // Read once, before any damage.
        t.mask = t.get(CAPACITY_AT).wrapping_sub(1);
        t.slot_size = u64::from(t.half(SLOT_SIZE_AT).load(Ordering::SeqCst));
        t
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn at(&self, offset: u64, width: u64) -> *mut u8 {
        assert!(offset % width == 0 && offset + width <= self.len(), "attack at {offset} is outside the segment");
        self.map.as_mut_ptr().wrapping_add(offset as usize)
    }

    fn word(&self, offset: u64) -> &AtomicU64 {
        let p = self.at(offset, 8);
        // SAFETY: `at` checked the 8 bytes lie inside the mapping `self`
        // keeps mapped, 8-aligned (page-aligned mapping); any bits are a valid
        // u64. The victim writes them too: that race is the test.
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    fn half(&self, offset: u64) -> &AtomicU32 {
        let p = self.at(offset, 4);
        // SAFETY: as in `word`, for 4 bytes 4-aligned.
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    pub(crate) fn get(&self, offset: u64) -> u64 {
        self.word(offset).load(Ordering::SeqCst)
    }

    pub(crate) fn put(&self, offset: u64, value: u64) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    pub(crate) fn put32(&self, offset: u64, value: u32) {
        self.half(offset).store(value, Ordering::SeqCst);
    }

    pub(crate) fn w(&self) -> u64 {
        self.get(WRITE_POS)
    }

    pub(crate) fn r(&self) -> u64 {
        self.get(READ_POS)
    }

    /// Sequence word of the slot of `pos` (fixed flavors).
    pub(crate) fn seq_at(&self, pos: u64) -> u64 {
        SLOTS + (pos & self.mask) * self.slot_size
    }

    /// Record header at `pos` (byte ring).
    pub(crate) fn rec_at(&self, pos: u64) -> u64 {
        SLOTS + (pos & self.mask)
    }
}

pub(crate) fn doorbells(t: &Target<'_>, rng: &mut Rng) {
    // data: random epoch, a sleeper count about to wrap, random flags;
    // space: all zero (unarmed, "nobody waits").
    t.put32(WAIT_LINE, rng.next_u64() as u32);
    t.put32(WAIT_LINE + 4, u32::MAX);
    t.put32(WAIT_LINE + 8, rng.next_u64() as u32);
    t.put32(WAIT_LINE + 12, rng.next_u64() as u32 | 1);
    t.put(WAIT_LINE + 16, 0);
    t.put(WAIT_LINE + 24, 0);
}

pub(crate) fn hammer_doorbells(t: &Target<'_>, rng: &mut Rng) {
    let v = match rng.next_u64() % 4 {
        0 => 0,
        1 => u32::MAX,
        _ => rng.next_u64() as u32,
    };
    t.put32(WAIT_LINE + 4 * (rng.next_u64() % 8), v);
}

pub(crate) fn hammer_header(t: &Target<'_>, rng: &mut Rng) {
    for at in (0..128).step_by(8) {
        t.put(at, rng.next_u64());
    }
}

pub(crate) fn hammer_liveness(t: &Target<'_>, rng: &mut Rng) {
    t.put(LIVENESS + 8 * (rng.next_u64() % 16), rng.next_u64());
}

pub(crate) fn hammer_positions(t: &Target<'_>, rng: &mut Rng) {
    let at = if rng.next_u64() & 1 == 0 { WRITE_POS } else { READ_POS };
    let now = t.get(at);
    let v = match rng.next_u64() % 4 {
        0 => rng.next_u64(),
        1 => now.wrapping_add(rng.next_u64() % 64).wrapping_sub(32),
        2 => u64::MAX - rng.next_u64() % 64,
        _ => now.wrapping_add(FAR),
    };
    t.put(at, v);
}

pub(crate) fn hammer_registry(t: &Target<'_>, rng: &mut Rng) {
    let entry = REGISTRY + ENTRY * (rng.next_u64() % 24);
    match rng.next_u64() % 3 {
        0 => t.put32(entry, (rng.next_u64() % 4) as u32),
        1 => t.put(entry + 8, t.r().wrapping_add(rng.next_u64() % 3)),
        _ => t.put(entry + 8 * (rng.next_u64() % 16), rng.next_u64()),
    }
}

pub(crate) fn spray(t: &Target<'_>, rng: &mut Rng, from: u64, to: u64) {
    t.put(from + 8 * (rng.next_u64() % ((to - from) / 8)), rng.next_u64());
}

pub(crate) fn attacker() {
    let sc = scenario(&common::var("SCENARIO"));
    let path = shmlane::segment_path(&common::var("NAME"), None).expect("name");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open segment file");
    let map = MmapRaw::map_raw(&file).expect("map segment file");
    let target = Target::new(&map);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let Mode::Running { ms } = sc.mode else {
        (sc.attack)(&target, &mut rng);
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(ms);
    let victim_failed = std::path::PathBuf::from(common::var("ERR"));
    for round in 0u64.. {
        (sc.attack)(&target, &mut rng);
        if round % 64 == 0 {
            if Instant::now() >= deadline || victim_failed.exists() {
                break;
            }
            // Two cores, two victim threads: let them run.
            std::thread::yield_now();
        }
    }
}
