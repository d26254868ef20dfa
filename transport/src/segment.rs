//! Named segments: creating, opening and validating the file behind a name,
//! mapping it, and the open-file-description locks that say who is alive.

use crate::error::OpenError;
use crate::options::Options;
use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::Mode;
use shmlane_ring::{Creator, Expect, LayoutError, Memory, Params, Region};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where POSIX shared-memory names live on Linux.
pub const SHM_DIR: &str = "/dev/shm";
/// Longest name accepted (NAME_MAX minus room for a leading slash).
pub const MAX_NAME_LEN: usize = 250;

/// Checks `name` and returns the file it maps to in `dir` (default
/// `/dev/shm`).
///
/// # Errors
/// [`OpenError::InvalidName`] for an empty name, one with `/` or NUL, `.`
/// or `..`, or one longer than [`MAX_NAME_LEN`] bytes.
///
/// # Examples
/// ```
/// assert_eq!(shmlane::segment_path("md.eurusd", None)?, std::path::Path::new("/dev/shm/md.eurusd"));
/// assert!(shmlane::segment_path("a/b", None).is_err());
/// # Ok::<(), shmlane::OpenError>(())
/// ```
pub fn segment_path(name: &str, dir: Option<&Path>) -> Result<PathBuf, OpenError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it contains '/'; a segment name is one path component")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 250 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(OpenError::InvalidName { name: name.to_owned(), reason }),
        None => Ok(dir.unwrap_or(Path::new(SHM_DIR)).join(name)),
    }
}

/// A shared mapping of a whole segment file.
struct Mapping(MmapRaw);

// SAFETY: an MmapRaw is a fixed mapping of `len` bytes, page aligned (mmap
// returns page-aligned addresses), valid until it is dropped; it is never
// remapped or moved.
unsafe impl Memory for Mapping {
    fn as_ptr(&self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// An open segment: its file (for locks), its validated region, and
/// whether to unlink the name on drop.
pub(crate) struct Segment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) region: Region,
    unlink_on_drop: bool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("path", &self.path).field("params", self.region.params()).finish()
    }
}

fn io_err(op: &'static str, path: &Path, errno: Errno) -> OpenError {
    match errno {
        Errno::EEXIST => OpenError::AlreadyExists { path: path.to_owned() },
        Errno::ENOENT => OpenError::NotFound { path: path.to_owned() },
        Errno::EACCES | Errno::EPERM => OpenError::PermissionDenied { path: path.to_owned() },
        Errno::ELOOP | Errno::EISDIR => OpenError::NotAFile { path: path.to_owned() },
        _ => OpenError::Io { op, path: path.to_owned(), source: errno.into() },
    }
}

fn open_file(path: &Path, opts: &Options, create: bool) -> Result<File, OpenError> {
    let mut flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if create {
        flags |= OFlag::O_CREAT | OFlag::O_EXCL;
    }
    let mode = Mode::from_bits_truncate(opts.mode);
    let fd: OwnedFd = match &opts.dir {
        // shm_open on Linux is open(2) under /dev/shm with O_NOFOLLOW and
        // O_CLOEXEC; a chosen directory (hugetlbfs, another tmpfs) is opened
        // the same way by path.
        None => {
            let name = format!("/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or_default());
            nix::sys::mman::shm_open(name.as_str(), flags, mode)
        }
        Some(_) => nix::fcntl::open(path, flags, mode),
    }
    .map_err(|e| match e {
        // The name was validated, so shm_open's EINVAL means a directory.
        Errno::EINVAL if !create && opts.dir.is_none() => OpenError::NotAFile { path: path.to_owned() },
        e => io_err(if create { "create" } else { "open" }, path, e),
    })?;
    if create {
        // The umask may have narrowed the mode; set exactly what was asked.
        if let Err(e) = nix::sys::stat::fchmod(&fd, mode) {
            let _ = unlink(path, opts.dir.as_deref());
            return Err(io_err("fchmod", path, e));
        }
    }
    Ok(File::from(fd))
}

fn unlink(path: &Path, opts_dir: Option<&Path>) -> nix::Result<()> {
    match opts_dir {
        None => {
            nix::sys::mman::shm_unlink(format!("/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("")).as_str())
        }
        Some(_) => nix::unistd::unlink(path),
    }
}

/// `len` rounded up to what the file system maps in: a hugetlbfs file can
/// only be sized (and mapped) in whole huge pages, so `ftruncate` to any
/// other length fails there with `EINVAL`. Other file systems take any
/// length.
fn page_multiple(file: &File, len: u64) -> Result<u64, Errno> {
    let fs = nix::sys::statfs::fstatfs(file)?;
    if fs.filesystem_type() != nix::sys::statfs::HUGETLBFS_MAGIC {
        return Ok(len);
    }
    // On hugetlbfs `f_bsize` is the huge page size of the mount.
    #[allow(clippy::unnecessary_cast)] // its type differs between targets
    let page = (fs.block_size() as u64).max(1);
    len.checked_next_multiple_of(page).ok_or(Errno::EFBIG)
}

fn map(file: &File, path: &Path, len: u64) -> Result<MmapRaw, OpenError> {
    let len = usize::try_from(len).map_err(|_| OpenError::BadSize { path: path.to_owned(), len_bytes: len })?;
    MmapOptions::new().len(len).map_raw(file).map_err(|source| OpenError::Io {
        op: "mmap",
        path: path.to_owned(),
        source,
    })
}

impl Segment {
    /// Creates the file (O_CREAT | O_EXCL, mode from `opts`), sizes it,
    /// reserves its pages so a full file system fails here and not with a
    /// SIGBUS later, maps it, locks the creator's role byte `lock` and only
    /// then publishes the header: nobody takes a role before the header is
    /// ready (`open` waits for it), so no opener can take the creator's.
    pub(crate) fn create(name: &str, opts: &Options, params: Params, lock: u64) -> Result<Self, OpenError> {
        let path = segment_path(name, opts.dir.as_deref())?;
        let len = params.region_len().map_err(|source| OpenError::Layout { path: path.clone(), source })?;
        let file = open_file(&path, opts, true)?;
        // From here on, a failure removes what we created.
        let cleanup = |e: OpenError| {
            let _ = unlink(&path, opts.dir.as_deref());
            e
        };
        // The header records the rounded length; openers accept a segment
        // longer than its parameters need as long as the file matches it.
        let len = page_multiple(&file, len).map_err(|e| cleanup(io_err("fstatfs", &path, e)))?;
        let len_i =
            i64::try_from(len).map_err(|_| cleanup(OpenError::BadSize { path: path.clone(), len_bytes: len }))?;
        nix::unistd::ftruncate(&file, len_i).map_err(|e| cleanup(no_space_or(e, "ftruncate", &path, len)))?;
        nix::fcntl::posix_fallocate(&file, 0, len_i).map_err(|e| cleanup(no_space_or(e, "fallocate", &path, len)))?;
        let mapping = map(&file, &path, len).map_err(cleanup)?;
        ofd_lock(&file, lock, libc::F_WRLCK as i16).map_err(|e| cleanup(io_err("fcntl(F_OFD_SETLK)", &path, e)))?;
        let creator = Creator {
            pid: std::process::id(),
            uid: nix::unistd::geteuid().as_raw(),
            unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        let region = Region::create(Box::new(Mapping(mapping)), params, creator)
            .map_err(|source| cleanup(OpenError::Layout { path: path.clone(), source }))?;
        Ok(Self { file, path, region, unlink_on_drop: !opts.keep })
    }

    /// Opens and validates an existing segment: `fstat` first (regular
    /// file, owner, size), then map and check the header against `expect`.
    /// Waits up to `opts.ready_timeout` for a creator still initialising.
    pub(crate) fn open(name: &str, opts: &Options, expect: &Expect) -> Result<Self, OpenError> {
        let path = segment_path(name, opts.dir.as_deref())?;
        let file = open_file(&path, opts, false)?;
        let deadline = Instant::now() + opts.ready_timeout;
        loop {
            match Self::validate(
                file.try_clone().map_err(|source| OpenError::Io { op: "dup", path: path.clone(), source })?,
                &path,
                opts,
                expect,
            ) {
                Err(OpenError::Layout { source: LayoutError::NotReady { .. }, .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(OpenError::Layout { source: LayoutError::NotReady { .. }, path }) => {
                    return Err(OpenError::NotReady { path });
                }
                other => return other,
            }
        }
    }

    fn validate(file: File, path: &Path, opts: &Options, expect: &Expect) -> Result<Self, OpenError> {
        let meta = file.metadata().map_err(|source| OpenError::Io { op: "fstat", path: path.to_owned(), source })?;
        if !meta.file_type().is_file() {
            return Err(OpenError::NotAFile { path: path.to_owned() });
        }
        let us = nix::unistd::geteuid().as_raw();
        if meta.uid() != us && !opts.allow_foreign_owner {
            return Err(OpenError::ForeignOwner { path: path.to_owned(), owner: meta.uid(), us });
        }
        let len = meta.len();
        if len < shmlane_ring::layout::SLOTS_OFFSET as u64 || len > shmlane_ring::layout::MAX_TOTAL_LEN {
            // A file the creator has not sized yet is "not ready", not foreign.
            if len == 0 {
                return Err(OpenError::Layout { path: path.to_owned(), source: LayoutError::NotReady { state: 0 } });
            }
            return Err(OpenError::BadSize { path: path.to_owned(), len_bytes: len });
        }
        let mapping = map(&file, path, len)?;
        let region = Region::open(Box::new(Mapping(mapping)), expect)
            .map_err(|source| OpenError::Layout { path: path.to_owned(), source })?;
        Ok(Self { file, path: path.to_owned(), region, unlink_on_drop: false })
    }

    /// Takes the lock on byte `offset` (a role byte or a registry entry).
    /// Returns false if another open file description holds it.
    pub(crate) fn try_lock(&self, offset: u64) -> Result<bool, OpenError> {
        match ofd_lock(&self.file, offset, libc::F_WRLCK as i16) {
            Ok(()) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(e) => Err(io_err("fcntl(F_OFD_SETLK)", &self.path, e)),
        }
    }

    /// Releases the lock on byte `offset`.
    pub(crate) fn unlock(&self, offset: u64) {
        // Unlocking cannot fail on a valid descriptor; closing it would
        // release the lock anyway.
        let _ = ofd_lock(&self.file, offset, libc::F_UNLCK as i16);
    }

    /// True if some other open file description holds byte `offset`.
    pub(crate) fn is_locked(&self, offset: u64) -> std::io::Result<bool> {
        is_locked(&self.file, offset)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let dir = self.path.parent().filter(|d| *d != Path::new(SHM_DIR));
            let _ = unlink(&self.path, dir);
        }
    }
}

fn no_space_or(e: Errno, op: &'static str, path: &Path, len: u64) -> OpenError {
    match e {
        Errno::ENOSPC | Errno::EFBIG | Errno::ENOMEM => OpenError::NoSpace { path: path.to_owned(), len_bytes: len },
        other => io_err(op, path, other),
    }
}

fn flock(offset: u64, kind: i16) -> libc::flock {
    // SAFETY: libc::flock is a plain C struct; all-zero is a valid value
    // (and l_pid must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl
}

fn ofd_lock(file: &File, offset: u64, kind: i16) -> Result<(), Errno> {
    nix::fcntl::fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&flock(offset, kind))).map(|_| ())
}

/// True if another open file description holds a lock on byte `offset`.
pub(crate) fn is_locked(file: &File, offset: u64) -> std::io::Result<bool> {
    let mut fl = flock(offset, libc::F_WRLCK as i16);
    nix::fcntl::fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl))?;
    Ok(fl.l_type != libc::F_UNLCK as i16)
}

/// Removes the segment `name` from `/dev/shm` (or `dir`). Processes that
/// have it mapped keep working; new ones cannot open it.
///
/// # Errors
/// [`OpenError::InvalidName`], [`OpenError::NotFound`] or an I/O error.
pub fn remove(name: &str, dir: Option<&Path>) -> Result<(), OpenError> {
    let path = segment_path(name, dir)?;
    unlink(&path, dir).map_err(|e| io_err("unlink", &path, e))
}

/// Maps an existing file read-only-ish for inspection (no expectations, no
/// owner check), for `ls`/`inspect`.
pub(crate) fn map_for_inspection(path: &Path) -> Result<(File, Region), OpenError> {
    let file =
        File::options().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(
            |source| match source.raw_os_error() {
                Some(code) => io_err("open", path, Errno::from_raw(code)),
                None => OpenError::Io { op: "open", path: path.to_owned(), source },
            },
        )?;
    let meta = file.metadata().map_err(|source| OpenError::Io { op: "fstat", path: path.to_owned(), source })?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotAFile { path: path.to_owned() });
    }
    let len = meta.len();
    if len < shmlane_ring::layout::SLOTS_OFFSET as u64 || len > shmlane_ring::layout::MAX_TOTAL_LEN {
        return Err(OpenError::BadSize { path: path.to_owned(), len_bytes: len });
    }
    let mapping = map(&file, path, len)?;
    let region = Region::open_any(Box::new(Mapping(mapping)))
        .map_err(|source| OpenError::Layout { path: path.to_owned(), source })?;
    Ok((file, region))
}

use std::os::unix::fs::OpenOptionsExt;
