//! Listing and inspecting segments, for `shmlane ls`, `inspect` and `clean`.

use crate::error::OpenError;
use crate::segment::{SHM_DIR, is_locked, map_for_inspection};
use shmlane_ring::layout::{CONSUMER_LOCK_BYTE, MAGIC, PRODUCER_LOCK_BYTE, REGISTRY_ENTRIES, REGISTRY_OFFSET};
use shmlane_ring::mpmc::{ROLE_CONSUMER, ROLE_PRODUCER, ROLE_READER};
use shmlane_ring::{Flavor, HeaderSnapshot, Params};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Whether a role has a live holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleState {
    /// A live process holds it (count for MPMC).
    Alive(u32),
    /// Attached once, nobody holds it now.
    Dead,
    /// Never attached.
    Never,
}

impl RoleState {
    /// True if some process holds the role now.
    pub fn is_alive(self) -> bool {
        matches!(self, RoleState::Alive(_))
    }
}

/// What `ls` and `inspect` report about one segment.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Name (file name under the directory).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Validated parameters.
    pub params: Params,
    /// Every header field.
    pub header: HeaderSnapshot,
    /// Shared write and read positions.
    pub positions: (u64, u64),
    /// Messages (or bytes) waiting, clamped to the capacity.
    pub fill: u64,
    /// Producer side liveness.
    pub producer: RoleState,
    /// Consumer side liveness.
    pub consumer: RoleState,
    /// File size in bytes.
    pub len_bytes: u64,
}

impl SegmentInfo {
    /// True if no role is held by a live process (safe to remove).
    pub fn is_dead(&self) -> bool {
        !self.producer.is_alive() && !self.consumer.is_alive()
    }
}

/// Inspects the segment file at `path` without attaching to it.
///
/// # Errors
/// [`OpenError`] saying why the file is not a valid shmlane segment.
pub fn inspect(path: &Path) -> Result<SegmentInfo, OpenError> {
    let (file, region) = map_for_inspection(path)?;
    let params = *region.params();
    let live = region.liveness();
    let io = |source| OpenError::Io { op: "fcntl(F_OFD_GETLK)", path: path.to_owned(), source };
    let role = |byte: u64, attaches: u64| -> Result<RoleState, OpenError> {
        Ok(if is_locked(&file, byte).map_err(io)? {
            RoleState::Alive(1)
        } else if attaches > 0 {
            RoleState::Dead
        } else {
            RoleState::Never
        })
    };
    // Relaxed: informational counters.
    let (p_att, c_att) =
        (live.producer_attaches.load(Ordering::Relaxed), live.consumer_attaches.load(Ordering::Relaxed));
    // Live registry entries per role (MPMC handles, broadcast readers).
    let mut alive = [0u32; 4];
    if matches!(params.flavor, Flavor::Mpmc | Flavor::Broadcast | Flavor::BroadcastBytes) {
        for i in 0..REGISTRY_ENTRIES {
            let Some(e) = region.registry(i) else { continue };
            // Relaxed: informational.
            let r = e.role.load(Ordering::Relaxed);
            if matches!(r, ROLE_PRODUCER | ROLE_CONSUMER | ROLE_READER)
                && is_locked(&file, (REGISTRY_OFFSET + i * 128) as u64).map_err(io)?
            {
                alive[r as usize] += 1;
            }
        }
    }
    let state = |n: u32, attaches: u64| match (n, attaches) {
        (0, 0) => RoleState::Never,
        (0, _) => RoleState::Dead,
        (n, _) => RoleState::Alive(n),
    };
    let (producer, consumer) = match params.flavor {
        Flavor::Mpmc => (state(alive[1], p_att), state(alive[2], c_att)),
        // Readers beyond the registry's entries attach unlisted.
        Flavor::Broadcast | Flavor::BroadcastBytes => (role(PRODUCER_LOCK_BYTE, p_att)?, state(alive[3], c_att)),
        Flavor::Spsc | Flavor::Bytes => (role(PRODUCER_LOCK_BYTE, p_att)?, role(CONSUMER_LOCK_BYTE, c_att)?),
    };
    Ok(SegmentInfo {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        path: path.to_owned(),
        params,
        header: region.header_snapshot(),
        positions: region.positions(),
        fill: region.len(),
        producer,
        consumer,
        len_bytes: file.metadata().map(|m| m.len()).unwrap_or(0),
    })
}

/// True if the file at `path` starts with the shmlane magic (whatever the
/// rest says). Reads 8 bytes; never maps.
pub fn has_magic(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(path) else {
        return false;
    };
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).is_ok() && u64::from_le_bytes(magic) == MAGIC
}

use std::os::unix::fs::OpenOptionsExt;

/// Every shmlane segment in `dir` (default `/dev/shm`), found by its magic,
/// not its name, with the result of inspecting it (a corrupt one is listed
/// with its error).
pub fn list(dir: Option<&Path>) -> Vec<(PathBuf, Result<SegmentInfo, OpenError>)> {
    let dir = dir.unwrap_or(Path::new(SHM_DIR));
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| has_magic(p))
        .map(|p| {
            let info = inspect(&p);
            (p, info)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// True if any role byte or registry entry of the file at `path` is locked
/// by a live process, or the file changed in the last few seconds (a creator
/// may still be initialising it). `shmlane clean` removes an unusable
/// segment only when this is false.
pub fn any_role_locked(path: &Path) -> bool {
    let Ok(file) = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(path) else {
        return true;
    };
    let recent = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(5));
    recent
        || [PRODUCER_LOCK_BYTE, CONSUMER_LOCK_BYTE]
            .into_iter()
            .chain((0..REGISTRY_ENTRIES).map(|i| (REGISTRY_OFFSET + i * 128) as u64))
            .any(|byte| is_locked(&file, byte).unwrap_or(true))
}
