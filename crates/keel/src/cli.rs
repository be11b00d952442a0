//! Command-line surface (DESIGN.md "Command line"; keep these verbs).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Shown under `keel --help`: what the README's "Configuration", "Logs" and
/// "Exit codes" sections say, in short.
const AFTER_HELP: &str = "\
Configuration: --config FILE, else $KEEL_CONFIG, else ./keel.toml, else <data dir>/keel.toml,
else built-in defaults. Every state verb prints on stderr which config, account and data
directory it uses.

Environment:
  KEEL_CONFIG         config file (when --config is not given)
  KEEL_LOG            log filter, e.g. info, debug, keel_worker=debug,warn
                      (default: info for run/serve/demo, warn otherwise)
  KEEL_LOG_FORMAT     json: one JSON object per log line, fields at top level
                      (default: text, coloured only when stderr is a terminal)
  KEEL_CONTROL_TOKEN  bearer token enabling the control API

Exit codes:
  0  success
  1  runtime failure (store, broker, cannot bind the dashboard)
  2  bad input or usage; nothing changed
  3  `keel cycle` stopped by the kill switch: nothing was sent";

/// keel: turns target portfolios into safe broker orders.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every verb that touches state.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Configuration file (keel.toml). Defaults apply without it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` in the config).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Act as of this instant (RFC 3339) instead of the system clock; for
    /// replays, tests and the simulator.
    #[arg(long, global = true)]
    pub at: Option<String>,
    /// Which `[[accounts]]` entry to act on (required when the config lists
    /// more than one; `keel run` without it runs them all).
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// Confirm trading a live (real-money) Alpaca account. Required, together
    /// with `broker.alpaca.env = "live"` in the config, by every verb that
    /// opens the venue; either signal alone is refused.
    #[arg(long, global = true)]
    pub live: bool,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulated trading days on the embedded paper broker.
    Demo {
        /// Trading days to simulate.
        #[arg(long, default_value_t = 5)]
        days: u32,
        /// Seed for the scripted allocator and the paper market.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Directory for the demo's state (recreated).
        #[arg(long, default_value = "keel-demo")]
        dir: PathBuf,
        /// Exit after the simulation instead of serving the dashboard.
        #[arg(long)]
        no_serve: bool,
        /// Address to serve the dashboard on (default: server.bind, 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<String>,
        /// Simulate the sessions before this date (YYYY-MM-DD; default:
        /// today), so a demo state is reproducible.
        #[arg(long)]
        before: Option<String>,
    },
    /// Serve the read-only dashboard (and the control API when a token is configured).
    Serve {
        /// Address to serve on, overriding `server.bind`.
        #[arg(long)]
        bind: Option<String>,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// The live worker: watch the inbox, run cycles in market hours.
    Run {
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Dry run: print the plan and every guard decision, send nothing, write nothing.
    Plan {
        /// Target set file (JSON, or CSV `symbol,weight` with --id).
        #[arg(long)]
        targets: PathBuf,
        /// Target-set id for CSV files.
        #[arg(long)]
        id: Option<String>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Validate a target set and queue it for the next cycle.
    Submit {
        /// Target set file (JSON, or CSV with --id).
        file: PathBuf,
        /// Target-set id for CSV files.
        #[arg(long)]
        id: Option<String>,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Run one execution cycle now. Exit code 3 when the kill switch stopped it.
    Cycle {
        /// Print the outcome as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Account, positions, exposure, kill switch, last cycle.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Engage the kill switch: cancel open orders, block new ones, until `keel resume`.
    Kill {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Release the kill switch.
    Resume {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Audit log commands.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Deterministic simulation: seeded days with injected faults and crashes, invariants checked every step.
    Sim(keel_sim::cli::SimArgs),
    /// Print NYSE sessions as CSV: date,open_utc,close_utc.
    Calendar {
        /// First date (YYYY-MM-DD), inclusive.
        #[arg(long)]
        from: String,
        /// Last date (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: String,
    },
    /// Apply pending schema migrations to the configured store(s) and exit.
    Migrate {
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Copy an account's audit log (and so its state) to another store,
    /// verbatim: the target's hash chain is the source's and verifies, and its
    /// projections equal the source's. Re-running resumes / is a no-op.
    Export {
        /// Target: `sqlite:PATH`, `jsonl:PATH` or a `postgres://` URL (the
        /// account's schema there is `<store.schema_prefix><account id>`).
        #[arg(long)]
        to: String,
        /// Source instead of the configured store: `sqlite:PATH`, `jsonl:PATH`
        /// or a `postgres://` URL.
        #[arg(long)]
        from: Option<String>,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Notification channels (`[notify]` in keel.toml).
    Notify {
        /// What to do.
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// The day's execution report: target sets, targets vs achieved weights,
    /// orders and fills, slippage and shortfall, guard blocks, kill-switch and
    /// reconciliation events, EOD equity and P&L.
    Report {
        /// Session date (YYYY-MM-DD).
        #[arg(long)]
        day: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Write a commented example keel.toml (`--schema`: print keel.toml's JSON Schema instead).
    Init {
        /// Where to write it.
        #[arg(default_value = "keel.toml")]
        path: PathBuf,
        /// Print the JSON Schema of keel.toml (as in docs/keel.schema.json) to stdout.
        #[arg(long)]
        schema: bool,
    },
}

/// `keel notify ...`.
#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// Send a test message on every channel; exit 1 if any failed.
    Test {
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
}

/// `keel report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Plain text for a terminal or an email.
    Text,
    /// CSV sections (one table per section).
    Csv,
    /// The report model as JSON (what `/api/v1/report/{day}` serves).
    Json,
    /// One self-contained HTML file with charts (works offline).
    Html,
}

/// `keel audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Verify the chain (keyed or not), replay the log against every projection
    /// table and check the newest checkpoint; exit 1 naming the sequence number,
    /// table row or checkpoint at fault.
    Verify {
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// Migrate an unkeyed (SHA-256) log to a keyed (HMAC-SHA-256) one under the
    /// configured key (KEEL_AUDIT_KEY or [audit] key_file), after verifying it;
    /// then write a keyed checkpoint.
    Rekey {
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
}
