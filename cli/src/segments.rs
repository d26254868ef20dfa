//! `shmlane ls`, `inspect` and `clean`: what is in /dev/shm, and removing
//! what nobody holds any more. Segments are recognised by their magic, never
//! by their name; a file that is not ours is never touched.

use clap::Args;
use shmlane::{Flavor, OpenError, RoleState, SegmentInfo};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `shmlane ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// One JSON object per segment instead of a table.
    #[arg(long)]
    json: bool,
    /// Directory to scan (default /dev/shm).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Arguments of `shmlane inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Segment name (in the directory) or a path to a segment file.
    name: String,
    /// Directory of the segment (default /dev/shm).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `shmlane clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Directory to clean (default /dev/shm).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn role(state: RoleState) -> String {
    match state {
        RoleState::Alive(1) => "alive".into(),
        RoleState::Alive(n) => format!("alive×{n}"),
        RoleState::Dead => "dead".into(),
        RoleState::Never => "never".into(),
    }
}

fn json_of(info: &SegmentInfo) -> String {
    let h = &info.header;
    format!(
        concat!(
            "{{\"name\":{:?},\"path\":{:?},\"flavor\":\"{}\",\"capacity\":{},\"msg_size\":{},\"msg_align\":{},",
            "\"schema_id\":{},\"len_bytes\":{},\"write_pos\":{},\"read_pos\":{},\"fill\":{},\"lag\":{},",
            "\"producer\":\"{}\",\"consumer\":\"{}\",\"creator_pid\":{},\"creator_uid\":{},\"skipped\":{},\"valid\":true}}"
        ),
        info.name,
        info.path.display().to_string(),
        info.params.flavor,
        info.params.capacity,
        info.params.msg_size,
        info.params.msg_align,
        info.params.schema_id,
        info.len_bytes,
        info.positions.0,
        info.positions.1,
        info.fill,
        // Broadcast readers keep their cursors private: no shared lag.
        if matches!(info.params.flavor, Flavor::Broadcast | Flavor::BroadcastBytes) {
            "null".to_string()
        } else {
            info.fill.to_string()
        },
        role(info.producer),
        role(info.consumer),
        h.creator_pid,
        h.creator_uid,
        h.skipped,
    )
}

fn json_error(path: &Path, error: &OpenError) -> String {
    format!(
        "{{\"name\":{:?},\"path\":{:?},\"valid\":false,\"error\":{:?}}}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        path.display().to_string(),
        error.to_string()
    )
}

/// `shmlane ls`.
pub fn ls(args: &LsArgs) -> ExitCode {
    let segments = shmlane::list(args.dir.as_deref());
    if args.json {
        for (path, info) in &segments {
            match info {
                Ok(info) => println!("{}", json_of(info)),
                Err(e) => println!("{}", json_error(path, e)),
            }
        }
        return ExitCode::SUCCESS;
    }
    if segments.is_empty() {
        println!("no shmlane segments in {}", args.dir.as_deref().unwrap_or(Path::new(shmlane::SHM_DIR)).display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<32} {:<15} {:>10} {:>8} {:>10} {:<9} {:<9}",
        "NAME", "FLAVOR", "CAPACITY", "MSG", "FILL", "PRODUCER", "CONSUMER"
    );
    for (path, info) in &segments {
        match info {
            Ok(i) => println!(
                "{:<32} {:<15} {:>10} {:>8} {:>10} {:<9} {:<9}",
                i.name,
                i.params.flavor.to_string(),
                i.params.capacity,
                if i.params.msg_size == 0 { "-".to_string() } else { i.params.msg_size.to_string() },
                i.fill,
                role(i.producer),
                role(i.consumer)
            ),
            Err(e) => println!(
                "{:<32} invalid: {e}",
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ),
        }
    }
    ExitCode::SUCCESS
}

/// `shmlane inspect NAME`: exit 0 for a valid segment, 1 for an invalid or
/// foreign file (reported), 2 for a missing one.
pub fn inspect(args: &InspectArgs) -> ExitCode {
    let path = if args.name.contains('/') {
        PathBuf::from(&args.name)
    } else {
        match shmlane::segment_path(&args.name, args.dir.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("shmlane inspect: {e}");
                return ExitCode::from(2);
            }
        }
    };
    if !path.exists() {
        eprintln!("shmlane inspect: {} does not exist", path.display());
        return ExitCode::from(2);
    }
    match shmlane::inspect(&path) {
        Ok(info) if args.json => {
            println!("{}", json_of(&info));
            ExitCode::SUCCESS
        }
        Ok(info) => {
            let h = &info.header;
            println!("segment   {}", info.path.display());
            println!("verdict   valid shmlane segment (layout v{})", h.version);
            println!("flavor    {}", info.params.flavor);
            println!(
                "capacity  {} {}",
                info.params.capacity,
                if info.params.msg_size == 0 { "bytes" } else { "messages" }
            );
            println!(
                "message   {} bytes, align {}, schema id {:#x}",
                info.params.msg_size, info.params.msg_align, info.params.schema_id
            );
            println!("size      {} bytes (slot {} bytes)", info.len_bytes, h.slot_size);
            println!("positions write {} read {} (fill {})", info.positions.0, info.positions.1, info.fill);
            println!("producer  {}", role(info.producer));
            println!("consumer  {}", role(info.consumer));
            println!("creator   pid {} uid {} at {} ns since epoch", h.creator_pid, h.creator_uid, h.created_unix_ns);
            if h.skipped > 0 {
                println!("skipped   {} slots of producers that died mid-write", h.skipped);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json {
                println!("{}", json_error(&path, &e));
            } else {
                println!("segment   {}", path.display());
                println!("verdict   invalid: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// `shmlane clean`: removes shmlane segments whose every role is dead (or
/// that were never published by a creator that is gone). Never touches a
/// live segment or a file without our magic.
pub fn clean(args: &CleanArgs) -> ExitCode {
    let mut failed = false;
    let mut removed = 0;
    for (path, info) in shmlane::list(args.dir.as_deref()) {
        let reason = match &info {
            Ok(i) if i.is_dead() => "every role is dead".to_string(),
            Ok(_) => continue,
            // Ours by magic, but unusable: safe to remove only if nobody
            // holds a role lock on it.
            Err(OpenError::NotReady { .. }) | Err(OpenError::Layout { .. }) | Err(OpenError::BadSize { .. }) => {
                if shmlane::any_role_locked(&path) {
                    continue;
                }
                format!("invalid and unheld ({})", info.as_ref().err().map(|e| e.to_string()).unwrap_or_default())
            }
            Err(_) => continue,
        };
        if args.dry_run {
            println!("would remove {} ({reason})", path.display());
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                removed += 1;
                println!("removed {} ({reason})", path.display());
            }
            Err(e) => {
                failed = true;
                eprintln!("shmlane clean: cannot remove {}: {e}", path.display());
            }
        }
    }
    if !args.dry_run {
        println!("{removed} segment(s) removed");
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
