//! `keel sim` without the keel binary: `cargo run --release -p keel-sim --example sim -- --seeds 0..100 --days 20`.

use clap::Parser;
use std::process::ExitCode;

/// Deterministic simulation of keel trading days with faults and crashes.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: keel_sim::cli::SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match keel_sim::cli::main(&cli.sim) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel sim: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
