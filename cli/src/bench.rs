//! `shmlane bench`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use shmlane_benches::{
    BenchConfig, FANOUT, FANOUT_SIZE, LIMITS, Mode, compute_ratios, fanout_json_lines, json_lines, plan, render_table,
    run, write_chart,
};

/// Arguments of `shmlane bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Message sizes in bytes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "64,1024,65536")]
    sizes: Vec<usize>,
    /// Short windows: the whole run takes well under 20 s.
    #[arg(long)]
    quick: bool,
    /// Write one JSON object per measurement and line to stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also draw latency percentiles and throughput to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Only these transports, comma separated (see --list); `fanout` is the fan-out section. The limits always run.
    #[arg(long, value_delimiter = ',')]
    transports: Option<Vec<String>>,
    /// Measured window per measurement in milliseconds (default: fit the run to ~100 s, at most 1500 ms each).
    #[arg(long, value_name = "MS")]
    duration_ms: Option<u64>,
    /// List the transports and limits (name, kind, modes, sizes) and exit.
    #[arg(long)]
    list: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn main(args: &BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmlane bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn bench(args: &BenchArgs) -> shmlane_benches::Result<ExitCode> {
    let transports = shmlane_benches::transports();
    if args.list {
        let mut out = String::new();
        for t in &transports {
            let modes: Vec<&str> = t.modes().iter().map(|m| m.as_str()).collect();
            out.push_str(&format!("{}\t{:?}\t{}\tall\n", t.name(), t.kind(), modes.join(",")).to_lowercase());
        }
        out.push_str(&format!("{}\tlimit\t{}\t64\n", LIMITS[0], Mode::Rtt.as_str()));
        out.push_str(&format!("{}\tlimit\t{}\tall\n", LIMITS[1], Mode::Stream.as_str()));
        out.push_str(&format!("{FANOUT}\tfanout\tfanout\t{FANOUT_SIZE}\n"));
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = BenchConfig {
        sizes: args.sizes.clone(),
        quick: args.quick,
        duration: args.duration_ms.map(Duration::from_millis),
        only: args.transports.clone(),
        progress: !args.no_progress,
    };
    let plan = plan(&cfg, &transports)?;
    let mut outcome = run(&plan, cfg.progress)?;
    compute_ratios(&mut outcome.records);
    let table = render_table(&outcome);
    if args.json {
        eprint!("{table}");
        let mut lines = json_lines(&outcome.records)?;
        lines.push_str(&fanout_json_lines(&outcome.fanout)?);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| shmlane_benches::BenchError::io("writing JSON to stdout", e))?;
    } else {
        print!("{table}");
    }
    if let Some(path) = &args.chart {
        write_chart(&outcome.records, path)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(if outcome.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
