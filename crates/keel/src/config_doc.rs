//! The commented `keel.toml` that `keel init` writes: the real defaults,
//! rendered from [`KeelConfig::default`], with one comment per key from
//! [`DOCS`]. A test fails when a key has no comment, so the example can
//! never drift from the code.

use crate::config::KeelConfig;

/// (dotted key, explanation). Optional keys (absent by default) are listed
/// with a `#` prefix in [`OPTIONAL`] instead.
pub const DOCS: &[(&str, &str)] = &[
    (
        "account_id",
        "Account id; part of every client order id, so never change it for a live account.",
    ),
    (
        "data_dir",
        "Directory for the store, the paper broker's file and the inbox.",
    ),
    (
        "notify.poll_ms",
        "How often notifications are looked for, in ms (100..=60000). Delivery runs beside trading, never in its way.",
    ),
    (
        "notify.backoff_initial_ms",
        "First retry delay after a failed delivery, in ms (100..=600000); doubles per attempt.",
    ),
    (
        "notify.backoff_max_ms",
        "Longest retry delay, in ms (backoff_initial_ms..=3600000).",
    ),
    (
        "notify.max_age_hours",
        "Notifications older than this are not sent (1..=720), so a new channel does not replay last month.",
    ),
    (
        "paper.account_id",
        "Ignored: the paper broker always runs under the top-level account_id.",
    ),
    ("paper.initial_cash", "Cash of a new paper account."),
    (
        "paper.seed",
        "Seed of the synthetic market and of every random fill decision (fixed per paper file).",
    ),
    (
        "paper.slippage_bps",
        "Adverse slippage applied to paper fills, in basis points.",
    ),
    (
        "paper.partial_fill_prob",
        "Probability that a paper order's first fill is partial.",
    ),
    (
        "paper.fill_delay_secs",
        "Seconds until the rest of a partially filled paper order executes.",
    ),
    (
        "paper.allow_short",
        "Let the paper venue accept sells beyond holdings.",
    ),
    (
        "paper.faults.timeout_before_send",
        "Fault injection: probability a call times out before it is processed.",
    ),
    (
        "paper.faults.timeout_after_send",
        "Fault injection: probability a submit/cancel is processed but unanswered.",
    ),
    (
        "paper.faults.server_error",
        "Fault injection: probability of a 5xx-like retryable error.",
    ),
    (
        "paper.faults.rate_limited",
        "Fault injection: probability of a 429 with retry-after.",
    ),
    (
        "paper.faults.reject",
        "Fault injection: probability a submit is rejected.",
    ),
    (
        "paper.faults.drop_event",
        "Fault injection: probability an order event is missing from the stream.",
    ),
    (
        "paper.faults.duplicate_event",
        "Fault injection: probability an order event appears twice.",
    ),
    (
        "paper.faults.delay_ms",
        "Fault injection: latency added to every venue call.",
    ),
    (
        "intake.max_gross",
        "Refuse target sets whose sum of |weight| exceeds this.",
    ),
    (
        "intake.max_target_age_secs",
        "Refuse target sets whose as_of is older than this.",
    ),
    (
        "intake.max_future_skew_secs",
        "Refuse target sets dated further than this in the future.",
    ),
    (
        "intake.max_targets",
        "Refuse target sets with more entries than this.",
    ),
    ("intake.max_file_bytes", "Refuse target files larger than this."),
    (
        "intake.liquidate_floor",
        "Sets with gross weight below this need \"liquidate\": true.",
    ),
    ("intake.allow_short", "Accept negative weights."),
    (
        "planner.fractional",
        "Trade fractional shares (4 dp) instead of whole shares.",
    ),
    ("planner.order_type", "\"limit\" or \"market\"."),
    (
        "planner.limit_offset_bps",
        "Limit price offset through the reference price, in bps.",
    ),
    ("planner.time_in_force", "\"day\", \"ioc\" or \"gtc\"."),
    (
        "planner.allow_short",
        "Allow sells beyond holdings (invariant 1 is off when true).",
    ),
    (
        "guards.replayed_target_set.enabled",
        "Block a target-set id that already executed.",
    ),
    (
        "guards.stale_targets.enabled",
        "Block target sets that are too old at cycle time.",
    ),
    (
        "guards.stale_targets.max_age_secs",
        "Age of as_of beyond which a set is stale at cycle time.",
    ),
    (
        "guards.stale_targets.max_future_secs",
        "How far in the future as_of may be.",
    ),
    (
        "guards.suspicious_target_set.enabled",
        "Block near-empty sets without \"liquidate\": true.",
    ),
    (
        "guards.suspicious_target_set.min_gross_weight",
        "Gross weight below which a set is near-empty.",
    ),
    ("guards.market_hours.enabled", "Only trade inside NYSE sessions."),
    (
        "guards.market_hours.after_open_secs",
        "No orders this long after the open.",
    ),
    (
        "guards.market_hours.before_close_secs",
        "No orders this long before the close.",
    ),
    (
        "guards.stale_quote.enabled",
        "Block orders whose quote is missing or stale.",
    ),
    (
        "guards.stale_quote.max_age_secs",
        "Quote age beyond which it is stale.",
    ),
    (
        "guards.stale_quote.max_future_secs",
        "Quote timestamps this far ahead of now are refused.",
    ),
    ("guards.restricted_list.enabled", "Block restricted symbols."),
    (
        "guards.restricted_list.symbols",
        "Symbols that must not be traded.",
    ),
    (
        "guards.open_orders.block_opposite_side",
        "Also block when an order on the other side is working.",
    ),
    ("guards.no_trade_band.enabled", "Ignore tiny rebalances."),
    (
        "guards.no_trade_band.min_weight",
        "Ignore deltas below this weight.",
    ),
    (
        "guards.no_trade_band.min_notional",
        "Ignore deltas below this notional.",
    ),
    (
        "guards.no_trade_band.min_shares",
        "Ignore deltas below this many shares.",
    ),
    (
        "guards.no_trade_band.exempt_full_exit",
        "A full exit is never ignored, however small.",
    ),
    ("guards.cooldown.enabled", "Enforce cooldowns between trades."),
    (
        "guards.cooldown.symbol_secs",
        "Minimum seconds between trades in one symbol.",
    ),
    (
        "guards.cooldown.account_secs",
        "Minimum seconds between rebalances of the account.",
    ),
    (
        "guards.volatility_brake.enabled",
        "Scale risk-increasing orders by a volatility brake in [0, 1].",
    ),
    (
        "guards.volatility_brake.builtin",
        "Use realized volatility of the reference symbol.",
    ),
    (
        "guards.volatility_brake.reference_symbol",
        "Symbol whose daily closes feed the built-in brake.",
    ),
    (
        "guards.volatility_brake.lookback_days",
        "Daily returns in the realized-volatility window.",
    ),
    (
        "guards.volatility_brake.target_vol",
        "Annualized volatility the book is sized for.",
    ),
    (
        "guards.volatility_brake.annualization_days",
        "Trading days per year.",
    ),
    (
        "guards.volatility_brake.hook",
        "External brake hook: \"off\", or a file/command (see docs).",
    ),
    (
        "guards.price_collar.enabled",
        "Keep limit prices near the reference quote.",
    ),
    (
        "guards.price_collar.max_bps",
        "Maximum distance of a limit price from the reference, in bps.",
    ),
    ("guards.max_order_size.enabled", "Cap each order."),
    (
        "guards.max_order_size.max_notional",
        "Maximum notional per order.",
    ),
    ("guards.max_order_size.max_shares", "Maximum shares per order."),
    (
        "guards.adv_limit.enabled",
        "Cap orders as a fraction of average daily volume.",
    ),
    (
        "guards.adv_limit.max_adv_fraction",
        "Maximum fraction of ADV per order.",
    ),
    (
        "guards.adv_limit.block_unknown",
        "Block when ADV is unknown (else pass).",
    ),
    (
        "guards.max_position_weight.enabled",
        "Cap each position's weight.",
    ),
    (
        "guards.max_position_weight.max_weight",
        "Maximum weight per symbol.",
    ),
    ("guards.exposure.enabled", "Cap gross and net exposure."),
    ("guards.exposure.max_gross", "Maximum gross exposure / equity."),
    ("guards.exposure.max_net", "Maximum net exposure / equity."),
    (
        "guards.buying_power.enabled",
        "Never spend more than buying power.",
    ),
    (
        "guards.buying_power.sell_proceeds_fraction",
        "Fraction of planned sell proceeds counted for buys.",
    ),
    (
        "guards.buying_power.subtract_open_buys",
        "Reserve buying power for working buys.",
    ),
    (
        "guards.buying_power.market_buffer_bps",
        "Extra headroom for market orders, in bps.",
    ),
    (
        "guards.cycle_limits.enabled",
        "Limit orders and turnover per cycle.",
    ),
    ("guards.cycle_limits.max_orders", "Maximum orders per cycle."),
    (
        "guards.cycle_limits.max_turnover",
        "Maximum traded notional per cycle / equity.",
    ),
    ("guards.order_rate.enabled", "Throttle the order rate."),
    ("guards.order_rate.max_orders", "Maximum orders per window."),
    ("guards.order_rate.window_secs", "Length of the rolling window."),
    (
        "worker.stale_order_secs",
        "Working orders older than this are cancelled before re-planning.",
    ),
    (
        "worker.max_attempts",
        "Cycles per target set before keel stops chasing it.",
    ),
    (
        "worker.retry_budget",
        "Resends after retryable broker errors, per order.",
    ),
    ("worker.retry_backoff_ms", "Pause between retries."),
    (
        "worker.reconcile_cash_tolerance",
        "Cash difference tolerated between store and broker.",
    ),
    (
        "worker.reconcile_qty_tolerance",
        "Share difference tolerated per symbol.",
    ),
    (
        "kill_switch.daily_loss_limit",
        "Engage when equity falls this fraction below the previous close.",
    ),
    (
        "kill_switch.drawdown_limit",
        "Engage when equity falls this fraction below its peak close.",
    ),
    (
        "kill_switch.reject_storm",
        "Engage after this many rejects in one cycle.",
    ),
    (
        "kill_switch.unknown_outcome_limit",
        "Engage after this many unknown outcomes in one cycle.",
    ),
    (
        "schedule.cycle_every_secs",
        "Seconds between cycles while the market is open (keel run).",
    ),
    (
        "server.bind",
        "Dashboard listen address (keel serve / keel run); anything but loopback is logged as a warning.",
    ),
    (
        "server.refresh_secs",
        "Dashboard auto-refresh period in seconds.",
    ),
    (
        "store.schema_prefix",
        "With store.url: each account's tables live in PostgreSQL schema <prefix><account id>.",
    ),
    (
        "lease.ttl_ms",
        "Single-writer lease: validity of each acquisition/renewal (database clock); a dead holder's lease is free after this.",
    ),
    (
        "lease.renew_ms",
        "How often the holder renews (and a standby tries to acquire); keep well inside ttl_ms.",
    ),
    (
        "lease.margin_ms",
        "The holder stops sending this long before its lease could expire (renew_ms + margin_ms < ttl_ms).",
    ),
];

/// Keys that are absent by default, shown commented out under their table.
pub const OPTIONAL: &[(&str, &str)] = &[
    (
        "store",
        "# path = \"keel-data/keel.db\"   # SQLite file; default <data_dir>/keel.db",
    ),
    (
        "store",
        "# url = \"postgres://keel@db.internal:5432/keel\"   # PostgreSQL instead of SQLite (keep passwords out of shared files)",
    ),
    (
        "kill_switch",
        "# flag_file = \"/var/run/keel/STOP\"   # engage the kill switch whenever this file exists",
    ),
    (
        "schedule",
        "# inbox = \"keel-data/inbox\"   # watched for target files; default <data_dir>/inbox",
    ),
    (
        "server",
        "# control_token_file = \"/etc/keel/control-token\"   # enables the control API (KEEL_CONTROL_TOKEN wins)",
    ),
];

/// Appended to the example: notification channels.
const NOTIFY_EXAMPLE: &str = "
# Notification channels: each receives the kinds in `events` (empty: all) at
# or above `min_severity` (info | warning | critical; default warning). Kinds:
# kill_switch_engaged, kill_switch_released, reconciliation_mismatch,
# reject_storm, unknown_outcomes, lease_lost, lease_taken_over, cycle_error,
# stream_down, target_set_refused, target_set_superseded, eod_summary.
# Secrets are never written here: url_env / url_file, password_env / password_file.
# Every message carries the event id (receivers drop duplicates by it).
# [[notify.channel]]
# name = \"ops-slack\"
# type = \"webhook\"
# url_env = \"KEEL_SLACK_WEBHOOK_URL\"
# format = \"slack\"                   # or \"json\" (keel's message, the default)
# min_severity = \"warning\"
# [[notify.channel]]
# name = \"ops-mail\"
# type = \"email\"
# host = \"smtp.example.com\"
# port = 587
# starttls = \"required\"              # default; \"opportunistic\" or \"off\" (loopback test servers only)
# username = \"keel\"
# password_file = \"/run/credentials/keel.service/smtp-password\"
# from = \"keel@example.com\"
# to = [\"pm@example.com\"]
# events = [\"kill_switch_engaged\", \"reconciliation_mismatch\", \"eod_summary\"]
# min_severity = \"info\"
# [[notify.channel]]
# name = \"pager\"
# type = \"command\"
# command = [\"/usr/local/bin/page-oncall\"]   # the message as JSON on stdin
# min_severity = \"critical\"
";

/// Appended to the example: several accounts in one file.
const ACCOUNTS_EXAMPLE: &str = "
# Several accounts: one [[accounts]] entry each. Every account gets its own
# store (SQLite <data_dir>/<id>/keel.db, or PostgreSQL schema <schema_prefix><id>),
# paper venue and inbox; `keel run` trades them all, one leased worker each;
# other verbs take --account ID. Unset keys come from the top level, and
# paper / guards / kill_switch tables are merged over it key by key.
# [[accounts]]
# id = \"growth\"
# data_dir = \"keel-data/growth\"      # default <data_dir>/<id>
# inbox = \"keel-data/growth/inbox\"   # default <its data_dir>/inbox
# paper = { seed = 7, initial_cash = \"250000\" }
# guards = { max_order_size = { max_notional = \"20000\" } }
";

fn doc(key: &str) -> Option<&'static str> {
    DOCS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// Renders the example; `Err` lists undocumented keys (a test keeps it empty).
pub fn render() -> Result<String, Vec<String>> {
    let body = toml::to_string_pretty(&KeelConfig::default()).map_err(|e| vec![e.to_string()])?;
    let mut out = String::from(
        "# keel.toml — every key with its default. Delete what you do not change.\n\
         # Unknown keys are refused (exit code 2), so a misspelt limit is never ignored.\n\n",
    );
    let mut table = String::new();
    let mut missing = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(|c| c == '[' || c == ']').to_string();
            out.push_str(line);
            out.push('\n');
            for (tbl, text) in OPTIONAL {
                if *tbl == table {
                    out.push_str(text);
                    out.push('\n');
                }
            }
            continue;
        }
        if let Some((k, _)) = t.split_once(" = ") {
            let key = if table.is_empty() {
                k.to_string()
            } else {
                format!("{table}.{k}")
            };
            match doc(&key) {
                Some(d) => out.push_str(&format!("# {d}\n")),
                None => missing.push(key),
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(NOTIFY_EXAMPLE);
    out.push_str(ACCOUNTS_EXAMPLE);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented_and_the_example_parses_to_the_defaults() {
        let text = render().unwrap_or_else(|missing| panic!("undocumented config keys: {missing:?}"));
        let parsed: KeelConfig = toml::from_str(&text).expect("the example parses");
        assert_eq!(parsed, KeelConfig::default());
        // Uncommenting the optional keys still parses.
        let uncommented: String = text
            .lines()
            .map(|l| {
                if OPTIONAL.iter().any(|(_, o)| *o == l) {
                    &l[2..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        toml::from_str::<KeelConfig>(&uncommented).expect("optional keys parse");
    }

    #[test]
    fn no_stale_docs() {
        let body = toml::to_string_pretty(&KeelConfig::default()).unwrap();
        for (k, _) in DOCS {
            let leaf = k.rsplit('.').next().unwrap();
            assert!(
                body.contains(&format!("{leaf} = ")),
                "documented key {k} no longer exists"
            );
        }
    }
}
