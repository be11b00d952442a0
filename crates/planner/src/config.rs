//! Risk configuration: how the planner sizes and prices orders, and every
//! guard's switch and thresholds.
//!
//! Every struct takes `#[serde(default, deny_unknown_fields)]`: a missing key
//! gets the documented safe default, and a misspelt key is an error rather
//! than a silently ignored limit.

use crate::guards::{
    AdvLimit, BrokerRules, BuyingPower, Cooldown, Coverage, CycleLimits, ExposureLimits, KillSwitch,
    MarketHours, MaxOrderSize, MaxPositionWeight, NoTradeBand, OpenOrderGuard, OrderRateThrottle,
    PositionExistence, PriceCollar, ReplayedTargetSet, RestrictedList, StaleQuote, StaleTargets,
    SuspiciousTargetSet, VolatilityBrake,
};
use keel_domain::{OrderType, TimeInForce};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How targets become orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    /// Trade fractional shares (quantities to 4 decimal places). Default
    /// `false`: whole shares work with every broker and order type.
    pub fractional: bool,
    /// Order type. Default `Limit`: a limit bounds the price paid, and the
    /// price collar can check it; a market order has no price to check.
    pub order_type: OrderType,
    /// Limit offset through the reference price, in basis points. Default 10:
    /// buy limit = reference × (1 + 10 bps), sell = reference × (1 − 10 bps),
    /// rounded toward the reference to cents (4 dp below $1).
    #[schemars(range(min = -500, max = 500))]
    pub limit_offset_bps: Decimal,
    /// Time in force. Default `Day`: nothing keel sends outlives the session
    /// it was planned for.
    pub time_in_force: TimeInForce,
    /// Allow sells beyond the shares held (short sales) and negative targets.
    /// Default `false` (invariant 1: no sell without shares).
    pub allow_short: bool,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            fractional: false,
            order_type: OrderType::Limit,
            limit_offset_bps: Decimal::TEN,
            time_in_force: TimeInForce::Day,
            allow_short: false,
        }
    }
}

/// Every guard's configuration, one table per guard, named as in `[guards.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GuardsConfig {
    /// Kill switch (cannot be disabled).
    pub kill_switch: KillSwitch,
    /// Replayed target-set id.
    pub replayed_target_set: ReplayedTargetSet,
    /// Stale or future-dated target sets.
    pub stale_targets: StaleTargets,
    /// Near-empty or malformed target sets.
    pub suspicious_target_set: SuspiciousTargetSet,
    /// A set too much of which has no quote is blocked whole.
    pub coverage: Coverage,
    /// NYSE hours and buffers.
    pub market_hours: MarketHours,
    /// Missing and stale quotes.
    pub stale_quote: StaleQuote,
    /// Restricted symbols.
    pub restricted_list: RestrictedList,
    /// One working order per symbol and side (cannot be disabled).
    pub open_orders: OpenOrderGuard,
    /// Ignore tiny rebalances.
    pub no_trade_band: NoTradeBand,
    /// No sells without shares (cannot be disabled; see `planner.allow_short`).
    pub position_existence: PositionExistence,
    /// Per-symbol and per-account cooldowns.
    pub cooldown: Cooldown,
    /// Volatility brake (built-in realized vol and/or external hook).
    pub volatility_brake: VolatilityBrake,
    /// Limit price within N bps of the reference.
    pub price_collar: PriceCollar,
    /// Per-order notional and share caps.
    pub max_order_size: MaxOrderSize,
    /// Cap as a fraction of average daily volume.
    pub adv_limit: AdvLimit,
    /// Per-symbol weight cap.
    pub max_position_weight: MaxPositionWeight,
    /// Gross and net exposure caps.
    pub exposure: ExposureLimits,
    /// Buying power.
    pub buying_power: BuyingPower,
    /// Orders and turnover per cycle.
    pub cycle_limits: CycleLimits,
    /// Orders per rolling window.
    pub order_rate: OrderRateThrottle,
    /// Refusals the venue would give (asset facts, shorts, wash trades).
    pub broker_rules: BrokerRules,
}

/// The whole risk configuration (`[planner]` and `[guards.*]` in keel.toml).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Sizing and pricing.
    pub planner: PlannerConfig,
    /// Guards.
    pub guards: GuardsConfig,
}

/// A configuration value that makes no sense, named by its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `guards.price_collar.max_bps`.
    pub field: &'static str,
    /// The offending value as written.
    pub value: String,
    /// What it must be instead.
    pub expected: &'static str,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: must be {}", self.field, self.value, self.expected)
    }
}

impl RiskConfig {
    /// Checks values that parse but make no sense, so the loader can refuse
    /// them with an exact message (exit code 2). [`crate::plan`] does not
    /// require a valid config: nonsense limits there fail closed (a negative
    /// cap blocks every order it applies to).
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut p = Vec::new();
        let g = &self.guards;
        let one = Decimal::ONE;
        let mut non_neg = |field: &'static str, v: Decimal| {
            if v < Decimal::ZERO {
                p.push(ConfigProblem {
                    field,
                    value: v.to_string(),
                    expected: "zero or more",
                });
            }
        };
        non_neg("guards.no_trade_band.min_weight", g.no_trade_band.min_weight);
        non_neg("guards.no_trade_band.min_notional", g.no_trade_band.min_notional);
        non_neg("guards.no_trade_band.min_shares", g.no_trade_band.min_shares);
        non_neg("guards.price_collar.max_bps", g.price_collar.max_bps);
        non_neg(
            "guards.max_order_size.max_notional",
            g.max_order_size.max_notional,
        );
        non_neg("guards.max_order_size.max_shares", g.max_order_size.max_shares);
        non_neg("guards.adv_limit.max_adv_fraction", g.adv_limit.max_adv_fraction);
        non_neg(
            "guards.max_position_weight.max_weight",
            g.max_position_weight.max_weight,
        );
        non_neg("guards.exposure.max_gross", g.exposure.max_gross);
        non_neg("guards.exposure.max_net", g.exposure.max_net);
        non_neg("guards.cycle_limits.max_turnover", g.cycle_limits.max_turnover);
        non_neg(
            "guards.volatility_brake.target_vol",
            g.volatility_brake.target_vol,
        );
        non_neg(
            "guards.buying_power.market_buffer_bps",
            g.buying_power.market_buffer_bps,
        );
        non_neg(
            "guards.suspicious_target_set.min_gross_weight",
            g.suspicious_target_set.min_gross_weight,
        );
        let c = g.coverage.max_missing_weight;
        if c < Decimal::ZERO || c > one {
            p.push(ConfigProblem {
                field: "guards.coverage.max_missing_weight",
                value: c.to_string(),
                expected: "a fraction of the set's gross weight between 0 and 1",
            });
        }
        let bps = self.planner.limit_offset_bps;
        if bps <= -crate::num::BPS || bps >= crate::num::BPS {
            p.push(ConfigProblem {
                field: "planner.limit_offset_bps",
                value: bps.to_string(),
                expected: "strictly between -10000 and 10000",
            });
        }
        let f = g.buying_power.sell_proceeds_fraction;
        if f < Decimal::ZERO || f > one {
            p.push(ConfigProblem {
                field: "guards.buying_power.sell_proceeds_fraction",
                value: f.to_string(),
                expected: "between 0 and 1",
            });
        }
        if g.adv_limit.max_adv_fraction > one {
            p.push(ConfigProblem {
                field: "guards.adv_limit.max_adv_fraction",
                value: g.adv_limit.max_adv_fraction.to_string(),
                expected: "a fraction (0.05 = 5%), at most 1",
            });
        }
        if g.volatility_brake.lookback_days < 2 {
            p.push(ConfigProblem {
                field: "guards.volatility_brake.lookback_days",
                value: g.volatility_brake.lookback_days.to_string(),
                expected: "at least 2",
            });
        }
        if g.volatility_brake.annualization_days == 0 {
            p.push(ConfigProblem {
                field: "guards.volatility_brake.annualization_days",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if g.order_rate.window_secs == 0 {
            p.push(ConfigProblem {
                field: "guards.order_rate.window_secs",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let cfg = RiskConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        let text = toml::to_string(&cfg).unwrap();
        let back: RiskConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let json = serde_json::to_string(&cfg).unwrap();
        let back: RiskConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn empty_and_partial_tables_take_defaults() {
        let cfg: RiskConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, RiskConfig::default());
        let cfg: RiskConfig =
            toml::from_str("[guards.price_collar]\nmax_bps = \"25\"\n[planner]\nfractional = true\n")
                .unwrap();
        assert_eq!(cfg.guards.price_collar.max_bps, Decimal::from(25));
        assert!(cfg.guards.price_collar.enabled);
        assert!(cfg.planner.fractional);
        assert_eq!(cfg.planner.order_type, OrderType::Limit);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<RiskConfig>("[planner]\nfractionnal = true\n").is_err());
        assert!(toml::from_str::<RiskConfig>("[guards.cooldown]\nsymbol_sec = 1\n").is_err());
        // The invariant guards have no switch: trying to turn one off is an error, not a no-op.
        assert!(toml::from_str::<RiskConfig>("[guards.kill_switch]\nenabled = false\n").is_err());
        assert!(toml::from_str::<RiskConfig>("[guards.position_existence]\nenabled = false\n").is_err());
        assert!(toml::from_str::<RiskConfig>("[guards.open_orders]\nenabled = false\n").is_err());
    }

    #[test]
    fn validate_names_field_and_value() {
        let mut cfg = RiskConfig::default();
        cfg.guards.price_collar.max_bps = Decimal::from(-5);
        cfg.planner.limit_offset_bps = Decimal::from(20_000);
        let problems = cfg.validate().unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"guards.price_collar.max_bps = -5: must be zero or more".to_string()));
        assert!(text
            .iter()
            .any(|t| t.starts_with("planner.limit_offset_bps = 20000")));
    }
}
