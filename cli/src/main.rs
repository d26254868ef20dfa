//! `shmlane`: the command-line tool of shmlane.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod segments;

#[derive(Debug, Parser)]
#[command(name = "shmlane", version, about = "Lock-free shared-memory ring transport between processes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Two-process comparison: shmlane vs pipe, Unix socket, TCP, and the machine's limits.
    Bench(bench::BenchArgs),
    /// List every shmlane segment (found by magic) with flavor, capacity, fill and live roles.
    Ls(segments::LsArgs),
    /// Show one segment's header, positions, liveness and a validation verdict.
    Inspect(segments::InspectArgs),
    /// Remove segments whose every role is dead (never a live one, never a foreign file).
    Clean(segments::CleanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::main(&args),
        Command::Ls(args) => segments::ls(&args),
        Command::Inspect(args) => segments::inspect(&args),
        Command::Clean(args) => segments::clean(&args),
    }
}
