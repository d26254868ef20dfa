//! The board: a few counters in a small shared file that outlive a
//! SIGKILLed child.

use crate::common::Scratch;
use memmap2::MmapRaw;
use std::sync::atomic::{AtomicU64, Ordering};

/// Board word: messages (records) whose `send` (`commit`) returned.
pub(crate) const COMMITTED: usize = 0;
/// Board word: `seq + 1` while the byte producer holds record `seq`'s grant.
pub(crate) const IN_GRANT: usize = 2;
/// Board word: messages whose `recv` returned in the consumer child.
pub(crate) const CONSUMED: usize = 3;
/// Board word: 1 once the child holds its role (MPMC: `READY + id`).
pub(crate) const READY: usize = 4;
/// Board word: 1 if a child using this board panicked.
pub(crate) const PANICKED: usize = 7;
/// Words on a board.
const BOARD_WORDS: usize = 8;

/// A few counters in a small shared file: a child's stores to it survive
/// its SIGKILL (they are in the page cache, not in the dead process).
pub(crate) struct Board {
    map: MmapRaw,
    /// The file, removed with the board (the parent's only).
    file: Option<Scratch>,
    path: String,
}

impl Board {
    /// A new zeroed board for this test (the parent).
    pub(crate) fn create(test: &str) -> Self {
        let file = Scratch::new(test, "board");
        let path = file.arg();
        let f = std::fs::File::options().read(true).write(true).create_new(true).open(&path).expect("board file");
        f.set_len((BOARD_WORDS * 8) as u64).expect("size the board");
        Self { map: Self::map(&f), file: Some(file), path }
    }

    /// The board the parent made (a child).
    pub(crate) fn open(path: &str) -> Self {
        let f = std::fs::File::options().read(true).write(true).open(path).expect("open board");
        Self { map: Self::map(&f), file: None, path: path.to_owned() }
    }

    fn map(f: &std::fs::File) -> MmapRaw {
        let map = MmapRaw::map_raw(f).expect("map board");
        assert!(map.len() >= BOARD_WORDS * 8, "board file too short");
        map
    }

    /// Its path, for a child.
    pub(crate) fn arg(&self) -> String {
        debug_assert!(self.file.is_some());
        self.path.clone()
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < BOARD_WORDS, "board word {i}");
        // SAFETY: the mapping is page aligned and BOARD_WORDS * 8 bytes or
        // more (checked in `map`): word `i` is an aligned u64 inside it while
        // `self` keeps it mapped; every process uses these words atomically.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().cast::<u64>().add(i)) }
    }

    pub(crate) fn get(&self, i: usize) -> u64 {
        // Acquire: pairs with the Release in `set`; the parent reads either
        // progress while the child runs or final values after reaping it.
        self.word(i).load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, i: usize, value: u64) {
        // Release: the child's earlier work (a returned send) is done first.
        self.word(i).store(value, Ordering::Release);
    }
}
