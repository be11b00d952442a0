//! The `keel` command line: a thin layer over the library crates.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad input or usage, 3 a cycle
//! the kill switch stopped.

mod audit_config;
mod cli;
mod commands;
mod config;
mod config_doc;
mod config_schema;
mod day_report;
mod demo;
mod discover;
mod error;
mod export;
mod integrity;
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
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout with success; usage errors to stderr with code 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if dies_quietly_on_closed_pipe(&cli.command) {
        // `keel status | head` must end quietly, like any Unix tool, not panic on a closed pipe.
        // SAFETY: called before any thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The long-running verbs narrate at info (start, each cycle, each order,
    // each kill-switch change); one-shot verbs print their result and only warn.
    let default_level = match cli.command {
        cli::Command::Run { .. } | cli::Command::Serve { .. } | cli::Command::Demo { .. } => "info",
        _ => "warn",
    };
    init_tracing(default_level);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Whether a closed pipe may end this verb. Not the verbs that feed
/// notification hooks on stdin or serve: a hook that exits without reading
/// its message (`command = ["true"]`) would otherwise kill `keel run` with
/// SIGPIPE, silently, mid-tenure. They keep Rust's default (ignored, the
/// write returns EPIPE and the hook's delivery is judged by its exit code).
fn dies_quietly_on_closed_pipe(command: &cli::Command) -> bool {
    !matches!(
        command,
        cli::Command::Run { .. }
            | cli::Command::Serve { .. }
            | cli::Command::Demo { .. }
            | cli::Command::Notify { .. }
    )
}

/// Logs go to stderr: `KEEL_LOG` sets the filter (`debug`, `keel_worker=debug,warn`, ...),
/// `KEEL_LOG_FORMAT=json` gives one JSON object per line with the event's
/// fields at the top level. Colour only when stderr is a terminal.
fn init_tracing(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("KEEL_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
