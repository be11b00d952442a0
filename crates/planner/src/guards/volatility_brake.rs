//! Volatility brake: a scale in [0, 1] on risk-increasing trades, from the
//! realized volatility of a reference symbol (built in) and/or an external
//! hook. At 1 nothing changes; at 0 only risk-reducing orders pass.
//!
//! The scale applies to the *target*: a position may grow to at most
//! `scale × target`, never beyond. Reductions the targets ask for happen in
//! full, and the brake never sells on its own: a portfolio above its scaled
//! target simply stops growing. That makes the brake a throttle on new risk,
//! not an automatic liquidation triggered by a market data glitch.

use super::{base_after_reducing, cap_increase, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::input::GuardState;
use crate::output::{GuardId, ReasonCode};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Longest realized-volatility window, in daily returns (about four years).
/// The config check refuses more, and [`VolatilityBrake::closes_needed`]
/// clamps to it, so no value can make the worker request (and allocate) an
/// unbounded history.
pub const MAX_LOOKBACK_DAYS: u32 = 1_000;

/// How the external hook's value is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolHook {
    /// Ignore [`GuardState::external_vol_scale`]. Default.
    #[default]
    Off,
    /// Use the hook's value when present; absent means no opinion.
    Optional,
    /// The hook must supply a value; absent fails closed to 0.
    Required,
}

/// The volatility brake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VolatilityBrake {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Use the built-in realized-volatility source. Default `true`. Fewer
    /// than `lookback_days + 1` usable closes fail closed to 0, so the worker
    /// must supply [`GuardState::reference_closes`] or switch this off.
    pub builtin: bool,
    /// The symbol whose daily closes the worker supplies. Default `"SPY"`.
    /// Read by the worker, not by the planner.
    #[schemars(length(min = 1, max = 16))]
    pub reference_symbol: String,
    /// Daily log returns in the realized-vol window. Default 20 (one month).
    #[schemars(range(min = 2, max = MAX_LOOKBACK_DAYS))]
    pub lookback_days: u32,
    /// Annualized volatility the book is sized for; scale = target_vol /
    /// realized, clamped to [0, 1]. Default 0.25: calm markets (SPY runs at
    /// 10–20%) leave the book alone, stress (40%+) roughly halves new risk.
    #[schemars(range(max = 5), extend("exclusiveMinimum" = 0))]
    pub target_vol: Decimal,
    /// Trading days per year for annualizing. Default 252.
    #[schemars(range(min = 1, max = 366))]
    pub annualization_days: u32,
    /// The external hook's role. Default `Off`.
    pub hook: VolHook,
}

impl VolatilityBrake {
    /// Daily closes the built-in brake needs: `lookback_days + 1`, the window
    /// clamped to [`MAX_LOOKBACK_DAYS`].
    pub fn closes_needed(&self) -> usize {
        usize::try_from(self.lookback_days.min(MAX_LOOKBACK_DAYS)).unwrap_or(0) + 1
    }
}

impl Default for VolatilityBrake {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin: true,
            reference_symbol: "SPY".to_string(),
            lookback_days: 20,
            target_vol: Decimal::new(25, 2),
            annualization_days: 252,
            hook: VolHook::Off,
        }
    }
}

/// The effective scale and how it came about (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolScale {
    pub scale: Decimal,
    pub detail: String,
}

/// Annualized realized volatility (sample standard deviation of daily log
/// returns × √annualization) of the last `lookback` returns in `closes`.
/// `None` when there are too few closes, a close is not positive, or the
/// arithmetic is not finite. Computed in `f64`: it is a statistic, not money,
/// and is converted to a 4-decimal `Decimal` at the edge.
pub fn realized_vol(closes: &[Decimal], lookback: u32, annualization_days: u32) -> Option<f64> {
    let n = usize::try_from(lookback).ok()?;
    if n < 2 || annualization_days == 0 || closes.len() < n.checked_add(1)? {
        return None;
    }
    let window = &closes[closes.len() - (n + 1)..];
    let mut prices = Vec::with_capacity(window.len());
    for c in window {
        let p = rust_decimal::prelude::ToPrimitive::to_f64(c)?;
        if !(p.is_finite() && p > 0.0) {
            return None;
        }
        prices.push(p);
    }
    let returns: Vec<f64> = prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let mean = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1) as f64;
    let vol = (var * f64::from(annualization_days)).sqrt();
    vol.is_finite().then_some(vol)
}

/// Rounds a scale toward zero to 4 dp and clamps it to [0, 1], so the plan
/// records a short, exact number and rounding never loosens the brake.
fn clamp_scale(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(4, RoundingStrategy::ToZero)
        .clamp(Decimal::ZERO, Decimal::ONE)
}

impl VolatilityBrake {
    /// The effective scale: the minimum of the enabled sources, 1 when none
    /// is enabled. Every failure (missing data, non-finite numbers, a hook
    /// value outside [0, 1]) fails closed to 0 with an explanation.
    pub(crate) fn scale(&self, state: &GuardState) -> VolScale {
        if !self.enabled {
            return VolScale {
                scale: Decimal::ONE,
                detail: "volatility brake disabled".into(),
            };
        }
        let mut parts: Vec<String> = Vec::new();
        let mut scale = Decimal::ONE;
        if self.builtin {
            let s = match realized_vol(
                &state.reference_closes,
                self.lookback_days,
                self.annualization_days,
            ) {
                None => {
                    parts.push(format!(
                        "built-in: {} closes of {} is not enough usable data for {} returns; fail closed",
                        state.reference_closes.len(),
                        self.reference_symbol,
                        self.lookback_days
                    ));
                    Decimal::ZERO
                }
                Some(vol) if vol <= 0.0 => {
                    parts.push(format!("built-in: {} realized vol 0", self.reference_symbol));
                    Decimal::ONE
                }
                Some(vol) => {
                    let realized = Decimal::from_f64_retain(vol).unwrap_or(Decimal::MAX);
                    let s = self
                        .target_vol
                        .checked_div(realized)
                        .map(clamp_scale)
                        .unwrap_or(Decimal::ZERO);
                    parts.push(format!(
                        "built-in: {} realized vol {:.4} vs target {} -> {s}",
                        self.reference_symbol, vol, self.target_vol
                    ));
                    s
                }
            };
            scale = scale.min(s);
        }
        let hook = match (self.hook, state.external_vol_scale) {
            (VolHook::Off, _) | (VolHook::Optional, None) => None,
            (VolHook::Required, None) => Some((
                Decimal::ZERO,
                "hook: required but absent; fail closed".to_string(),
            )),
            (_, Some(v)) if v < Decimal::ZERO || v > Decimal::ONE => Some((
                Decimal::ZERO,
                format!("hook: value {v} outside [0, 1]; fail closed"),
            )),
            (_, Some(v)) => Some((clamp_scale(v), format!("hook: {v}"))),
        };
        if let Some((s, text)) = hook {
            parts.push(text);
            scale = scale.min(s);
        }
        if parts.is_empty() {
            parts.push("no source enabled".into());
        }
        VolScale {
            detail: format!("{} => scale {scale}", parts.join("; ")),
            scale,
        }
    }
}

impl Guard for VolatilityBrake {
    fn id(&self) -> GuardId {
        GuardId::VolatilityBrake
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn exempts_risk_reducing(&self) -> bool {
        true
    }

    /// Caps growth so that |position after| ≤ scale × |target|.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        let scale = ctx.vol.scale;
        if fx::ge(scale, Decimal::ONE) {
            return Verdict::Pass;
        }
        let target = c.target_qty.unwrap_or_default().abs();
        let allowed_abs = scale.saturating_mul(target);
        let base = base_after_reducing(c);
        let max_increase = allowed_abs.saturating_sub(base);
        cap_increase(c, ctx, max_increase, ReasonCode::VolBrake, |q| {
            format!(
                "{}; {} may grow to {allowed_abs} of target {target} shares; allowed {q}",
                ctx.vol.detail, c.symbol
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn closes_with_daily_moves(step: f64, n: usize) -> Vec<Decimal> {
        // Alternating up/down moves of `step` in log space give a known realized vol.
        let mut p = 100.0_f64;
        let mut out = vec![Decimal::from_f64_retain(p).unwrap()];
        for i in 0..n {
            p *= if i % 2 == 0 { step.exp() } else { (-step).exp() };
            out.push(Decimal::from_f64_retain(p).unwrap().round_dp(6));
        }
        out
    }

    #[test]
    fn realized_vol_matches_hand_computation() {
        let closes = closes_with_daily_moves(0.01, 20);
        let v = realized_vol(&closes, 20, 252).unwrap();
        // Returns alternate ±0.01: mean 0, sample variance 20 * 1e-4 / 19.
        let expected = (20.0 * 1e-4 / 19.0 * 252.0_f64).sqrt();
        assert!((v - expected).abs() < 1e-4, "{v} vs {expected}");
        assert_eq!(realized_vol(&closes[..20], 20, 252), None);
        assert_eq!(realized_vol(&closes, 1, 252), None);
        let mut bad = closes.clone();
        bad[15] = Decimal::ZERO;
        assert_eq!(realized_vol(&bad, 20, 252), None);
        // Only the last lookback+1 closes matter.
        let mut longer = vec![Decimal::ONE; 50];
        longer.extend(closes.iter().copied());
        assert_eq!(realized_vol(&longer, 20, 252), Some(v));
    }

    #[test]
    fn scale_sources_and_fail_closed() {
        let state = |closes: Vec<Decimal>, hook| GuardState {
            reference_closes: closes,
            external_vol_scale: hook,
            ..Default::default()
        };
        let g = VolatilityBrake::default();
        // ~16% annualized vol < 25% target: scale 1.
        let calm = closes_with_daily_moves(0.01, 20);
        assert_eq!(g.scale(&state(calm.clone(), None)).scale, Decimal::ONE);
        // ~50% vol: scale ~0.5.
        let wild = closes_with_daily_moves(0.031, 20);
        let s = g.scale(&state(wild, None));
        assert!(s.scale > d("0.45") && s.scale < d("0.55"), "{s:?}");
        // Missing data fails closed.
        assert_eq!(g.scale(&state(vec![], None)).scale, Decimal::ZERO);
        // Hooks.
        let hooked = VolatilityBrake {
            hook: VolHook::Required,
            ..g.clone()
        };
        assert_eq!(hooked.scale(&state(calm.clone(), None)).scale, Decimal::ZERO);
        assert_eq!(hooked.scale(&state(calm.clone(), Some(d("0.3")))).scale, d("0.3"));
        assert_eq!(
            hooked.scale(&state(calm.clone(), Some(d("1.5")))).scale,
            Decimal::ZERO
        );
        assert_eq!(
            hooked.scale(&state(calm.clone(), Some(d("-0.1")))).scale,
            Decimal::ZERO
        );
        let optional = VolatilityBrake {
            hook: VolHook::Optional,
            builtin: false,
            ..g.clone()
        };
        assert_eq!(optional.scale(&state(vec![], None)).scale, Decimal::ONE);
        assert_eq!(optional.scale(&state(vec![], Some(d("0.25")))).scale, d("0.25"));
        let off = VolatilityBrake { enabled: false, ..g };
        assert_eq!(off.scale(&state(vec![], None)).scale, Decimal::ONE);
    }

    #[test]
    fn half_scale_halves_growth_toward_target() {
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .position("MSFT", "60")
            .target("MSFT", "0.1")
            .quote("MSFT", "100")
            .vol_hook("0.5");
        let plan = fx.plan();
        assert_eq!(plan.vol_scale, d("0.5"));
        // Equity 106,000. AAPL: target 212, may reach 106.
        assert_eq!(decision(&plan, "AAPL").final_qty, d("106"));
        // MSFT: target 106, scaled 53, already held 60: no growth (and the brake sells nothing).
        assert_blocked(decision(&plan, "MSFT"), ReasonCode::VolBrake);
    }

    #[test]
    fn zero_scale_passes_only_reductions_and_never_sells_on_its_own() {
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .position("MSFT", "300")
            .target("MSFT", "0.1")
            .quote("MSFT", "100")
            .vol_hook("0");
        let plan = fx.plan();
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::VolBrake);
        // MSFT: held 300, target 130 (equity 130,000): the targets' own reduction passes in full.
        assert_eq!(decision(&plan, "MSFT").final_qty, d("170"));
        assert_eq!(plan.orders.len(), 1);
    }
}
