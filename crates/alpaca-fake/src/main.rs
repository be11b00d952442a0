//! alpaca-fake: a stateful local Alpaca venue for tests. See README.md.

mod app;
mod faults;
mod http;
mod json;
mod stream;
mod venue;

use anyhow::Context;
use app::{lock, App, AppConfig, VenueClock};
use chrono::{DateTime, Utc};
use clap::Parser;
use faults::FaultProfile;
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use venue::{AssetRules, Venue, VenueConfig};

#[derive(Parser, Debug)]
#[command(
    name = "alpaca-fake",
    about = "A stateful local Alpaca venue (Trading API, Market Data API, trade_updates stream) for tests"
)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Venue time at start (RFC 3339); it then advances in real time.
    #[arg(long)]
    at: Option<String>,
    /// Keep venue time at --at (or the start) until `POST /_fake/clock`
    /// moves it, so a client acting as of a fixed instant (`keel --at`) sees
    /// the same quotes on every call.
    #[arg(long)]
    frozen_clock: bool,
    /// Seed of the price path, ids, partial fills and faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Starting cash in dollars.
    #[arg(long, default_value = "1000000")]
    cash: String,
    /// `none` or `all` (every fault kind at its default rate).
    #[arg(long, default_value = "none")]
    faults: String,
    /// Per-kind probabilities over --faults, e.g. `submit_504=1,stream_dup=0.2`.
    #[arg(long, default_value = "")]
    fault_profile: String,
    /// Request budget per key (token bucket refilled over a minute).
    #[arg(long, default_value_t = 200)]
    requests_per_minute: u32,
    /// Requests allowed at once after a pause (token-bucket capacity);
    /// default: the per-minute budget. 1 makes the venue refuse any request
    /// that comes sooner than 60/N seconds after the previous one.
    #[arg(long)]
    burst: Option<u32>,
    /// Probability that a fill opportunity fills only half of what remains.
    #[arg(long, default_value_t = 0.1)]
    partial_fill_prob: f64,
    /// How long a canceled order stays `pending_cancel` (and can still
    /// fill) before it is `canceled`; 0 cancels at once.
    #[arg(long, default_value_t = 0)]
    cancel_delay_ms: u64,
    /// Matching loop period in milliseconds.
    #[arg(long, default_value_t = 200)]
    tick_ms: u64,
    /// Allow selling short (off: a sell beyond the position is a 403).
    #[arg(long)]
    shorting: bool,
    /// Comma-separated symbols listed as not fractionable.
    #[arg(long, default_value = "BRK.B,COST")]
    non_fractionable: String,
    /// Comma-separated symbols listed as not shortable.
    #[arg(long, default_value = "INTC,PFE")]
    non_shortable: String,
    /// Comma-separated symbols listed as not tradable.
    #[arg(long, default_value = "VZ")]
    non_tradable: String,
    /// Send stream messages in text frames instead of binary ones.
    #[arg(long)]
    stream_text: bool,
    /// Send a websocket ping every N seconds on the stream (0: never; the
    /// venue always answers a client's pings while it is not silent).
    #[arg(long, default_value_t = 0)]
    stream_ping_secs: u64,
    /// Log every /v2 request (method, path, status) to stderr.
    #[arg(long)]
    verbose: bool,
}

fn set(list: &str) -> BTreeSet<String> {
    list.split(',')
        .map(|s| s.trim().to_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn fail(msg: String) -> ! {
    eprintln!("alpaca-fake: {msg}");
    std::process::exit(2);
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let at: Option<DateTime<Utc>> = args.at.as_deref().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| fail(format!("--at {s}: expected an RFC 3339 instant")))
    });
    let cash = Decimal::from_str(&args.cash)
        .ok()
        .filter(|c| !c.is_sign_negative())
        .unwrap_or_else(|| fail(format!("--cash {}: expected a non-negative decimal", args.cash)));
    let mut profile = match args.faults.as_str() {
        "none" => FaultProfile::default(),
        "all" => FaultProfile::all(),
        other => fail(format!("--faults {other}: allowed none, all")),
    };
    profile.apply(&args.fault_profile).unwrap_or_else(|e| fail(e));
    if !(0.0..=1.0).contains(&args.partial_fill_prob) {
        fail(format!(
            "--partial-fill-prob {}: must be in [0, 1]",
            args.partial_fill_prob
        ));
    }
    if !(1..=60_000).contains(&args.tick_ms) {
        fail(format!("--tick-ms {}: must be 1 to 60000", args.tick_ms));
    }
    if args.cancel_delay_ms > 3_600_000 {
        fail(format!(
            "--cancel-delay-ms {}: must be 0 to 3600000",
            args.cancel_delay_ms
        ));
    }
    if args.stream_ping_secs > 86_400 {
        fail(format!(
            "--stream-ping-secs {}: must be 0 to 86400",
            args.stream_ping_secs
        ));
    }
    if args.requests_per_minute == 0 {
        fail("--requests-per-minute 0: must be at least 1".into());
    }
    if args.burst == Some(0) {
        fail("--burst 0: must be at least 1".into());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let clock = VenueClock::starting_at(at, args.frozen_clock);
        let (events, _) = tokio::sync::broadcast::channel(4096);
        let venue = Venue::new(
            VenueConfig {
                seed: args.seed,
                cash,
                shorting: args.shorting,
                partial_fill_prob: args.partial_fill_prob,
                cancel_delay: chrono::Duration::milliseconds(args.cancel_delay_ms as i64),
                assets: AssetRules {
                    non_fractionable: set(&args.non_fractionable),
                    non_shortable: set(&args.non_shortable),
                    non_tradable: set(&args.non_tradable),
                },
            },
            clock.now(),
            events.clone(),
        );
        let app = Arc::new(App::new(
            venue,
            clock,
            AppConfig {
                faults: profile,
                seed: args.seed,
                rpm: args.requests_per_minute,
                burst: args.burst.unwrap_or(args.requests_per_minute),
                stream_text: args.stream_text,
                verbose: args.verbose,
                stream_ping_secs: args.stream_ping_secs,
            },
            events,
        ));
        let listener = tokio::net::TcpListener::bind(&args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "alpaca-fake listening on http://{addr}")?;
            out.flush()?;
        }
        let ticker = app.clone();
        let period = Duration::from_millis(args.tick_ms);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = ticker.tick.notified() => {}
                }
                let now = ticker.clock.now();
                lock(&ticker.venue).tick(now);
            }
        });
        axum::serve(listener, http::router(app))
            .await
            .context("serving")?;
        Ok(())
    })
}
