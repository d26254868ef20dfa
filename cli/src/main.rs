//! `shmlane`: the command-line tool of shmlane.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::main(&args),
    }
}
