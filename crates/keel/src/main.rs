//! The `keel` command line: a thin layer over the library crates.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad input or usage.

mod cli;
mod commands;
mod config;
mod config_doc;
mod config_schema;
mod demo;
mod error;
mod export;
mod live;
mod report;
mod runner;
mod serve;
mod status;
mod stores;
mod venue;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `keel status | head` must end quietly, like any Unix tool, not panic on a closed pipe.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    init_tracing();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout with success; usage errors to stderr with code 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs go to stderr; `KEEL_LOG=debug` raises the level, `KEEL_LOG_FORMAT=json` switches to JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("KEEL_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
