//! Average-daily-volume limit: an order larger than a small fraction of what
//! trades in a day moves the price against itself and is a likely units error.

use super::{cap_at, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::{mul, pct};
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The ADV participation cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdvLimit {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum order size as a fraction of ADV (0.05 = 5%). Default 0.05, a
    /// common participation ceiling for a single working order.
    #[schemars(range(max = 1), extend("exclusiveMinimum" = 0))]
    pub max_adv_fraction: Decimal,
    /// Refuse to add risk in a symbol whose ADV is unknown. Default `false`:
    /// the worker may not have volume data, and the other caps still apply.
    pub block_unknown: bool,
}

impl Default for AdvLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            max_adv_fraction: Decimal::new(5, 2),
            block_unknown: false,
        }
    }
}

impl Guard for AdvLimit {
    fn id(&self) -> GuardId {
        GuardId::AdvLimit
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shrinks any order (sells too: impact does not care about direction)
    /// to the ADV cap. With unknown ADV and `block_unknown`, only the
    /// risk-reducing part of the order may go.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        match c.adv.copied().filter(|a| fx::is_pos(*a)) {
            Some(adv) => {
                // `cap_at` below passes when the cap, rounded to the lot, is at least the quantity.
                let fast = || {
                    let cap = D64::of(adv)?
                        .mul(D64::of(self.max_adv_fraction)?)?
                        .floor_lot(ctx.lot_dp)?;
                    Some(cap.cmp(D64::of(c.qty)?)? != std::cmp::Ordering::Less)
                };
                if fast() == Some(true) {
                    return Verdict::Pass;
                }
                let max = mul(adv, self.max_adv_fraction);
                cap_at(c, ctx, max, ReasonCode::MaxAdvPct, |q| {
                    format!(
                        "{} {} exceeds {} of ADV {adv} = {max}; allowed {q}",
                        c.qty,
                        c.symbol,
                        pct(self.max_adv_fraction)
                    )
                })
            }
            None if self.block_unknown => cap_at(c, ctx, c.reducing_qty(), ReasonCode::UnknownAdv, |q| {
                format!(
                    "ADV of {} is unknown; only the risk-reducing {q} may trade",
                    c.symbol
                )
            }),
            None => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn caps_at_fraction_of_adv() {
        let fx = Fixture::new()
            .target("AAPL", "0.5")
            .quote("AAPL", "100")
            .adv("AAPL", "2000");
        let v = check(&AdvLimit::default(), &fx, "AAPL");
        assert!(
            matches!(&v, Verdict::Cap { qty, reason: ReasonCode::MaxAdvPct, detail } if *qty == d("100") && detail.contains("5.00% of ADV 2000")),
            "{v:?}"
        );
    }

    #[test]
    fn unknown_adv_passes_unless_configured() {
        let fx = Fixture::new().target("AAPL", "0.5").quote("AAPL", "100");
        assert_eq!(check(&AdvLimit::default(), &fx, "AAPL"), Verdict::Pass);
        let g = AdvLimit {
            block_unknown: true,
            ..Default::default()
        };
        assert!(
            matches!(check(&g, &fx, "AAPL"), Verdict::Cap { qty, reason: ReasonCode::UnknownAdv, .. } if qty.is_zero())
        );
        // A zero ADV counts as unknown.
        let fx = fx.adv("AAPL", "0");
        assert!(matches!(check(&g, &fx, "AAPL"), Verdict::Cap { .. }));
        // A risk-reducing sell with unknown ADV passes.
        let fx = Fixture::new().position("AAPL", "10").quote("AAPL", "100");
        assert_eq!(check(&g, &fx, "AAPL"), Verdict::Pass);
    }
}
