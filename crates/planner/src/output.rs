//! What the planner returns: the orders to send and the audited decision
//! behind every proposed order, including the ones that were refused.
//!
//! Everything here serialises deterministically (no hash maps, vectors in a
//! documented order), so the same inputs give byte-identical JSON (invariant 5)
//! and the audit log can store a plan and compare it on replay.

use keel_domain::{Order, Side, Symbol};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Names the check that produced a step, so an operator can find its config
/// table (`[guards.<id>]`) and its module (`guards/<id>.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardId {
    /// The planner's own sanity checks (equity, account, arithmetic, limit price).
    Planner,
    /// [`crate::guards::KillSwitch`].
    KillSwitch,
    /// [`crate::guards::ReplayedTargetSet`].
    ReplayedTargetSet,
    /// [`crate::guards::StaleTargets`].
    StaleTargets,
    /// [`crate::guards::SuspiciousTargetSet`].
    SuspiciousTargetSet,
    /// [`crate::guards::Coverage`].
    Coverage,
    /// [`crate::guards::MarketHours`].
    MarketHours,
    /// [`crate::guards::StaleQuote`].
    StaleQuote,
    /// [`crate::guards::RestrictedList`].
    RestrictedList,
    /// [`crate::guards::OpenOrderGuard`].
    OpenOrder,
    /// [`crate::guards::NoTradeBand`].
    NoTradeBand,
    /// [`crate::guards::PositionExistence`].
    PositionExistence,
    /// [`crate::guards::Cooldown`].
    Cooldown,
    /// [`crate::guards::VolatilityBrake`].
    VolatilityBrake,
    /// [`crate::guards::PriceCollar`].
    PriceCollar,
    /// [`crate::guards::MaxOrderSize`].
    MaxOrderSize,
    /// [`crate::guards::AdvLimit`].
    AdvLimit,
    /// [`crate::guards::MaxPositionWeight`].
    MaxPositionWeight,
    /// [`crate::guards::ExposureLimits`].
    ExposureLimits,
    /// [`crate::guards::BuyingPower`].
    BuyingPower,
    /// [`crate::guards::CycleLimits`].
    CycleLimits,
    /// [`crate::guards::OrderRateThrottle`].
    OrderRateThrottle,
    /// [`crate::guards::BrokerRules`].
    BrokerRules,
}

/// Why an order was resized or blocked. The snake_case names are a stable
/// interface: dashboards, alerts and audit queries match on them, so variants
/// may be added but never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Account equity (the lower of broker and marked) is zero or negative: nothing can be sized.
    NonPositiveEquity,
    /// The snapshot belongs to a different account than the one being planned.
    AccountMismatch,
    /// A quantity or price overflowed decimal range; refused rather than guessed.
    ArithmeticOverflow,
    /// The limit price could not be computed or is not positive.
    InvalidLimitPrice,
    /// The kill switch is engaged.
    KillSwitch,
    /// This target set id was already executed.
    ReplayedTargetSet,
    /// The target set is older than allowed or past its `valid_until`.
    StaleTargets,
    /// The target set is dated in the future.
    FutureDatedTargets,
    /// The target set looks like an allocator failure (near-empty without `liquidate`, duplicates).
    SuspiciousTargetSet,
    /// No session is open, or `now` is inside the after-open / before-close buffer.
    MarketClosed,
    /// The symbol is on the restricted list.
    RestrictedSymbol,
    /// No usable quote: the order can be neither sized nor priced.
    MissingQuote,
    /// The quote is older than allowed (or dated in the future).
    StaleQuote,
    /// An order on the same symbol (and side) is already working.
    OpenOrderExists,
    /// The change is too small to be worth trading.
    BelowNoTradeBand,
    /// A sell exceeds the shares held minus shares already committed to open sells.
    NoPosition,
    /// The symbol traded too recently.
    CooldownSymbol,
    /// The account rebalanced too recently.
    CooldownAccount,
    /// The volatility brake scaled or stopped a risk-increasing order.
    VolBrake,
    /// The limit price is too far from the reference price.
    PriceCollar,
    /// The order's notional exceeds the per-order maximum.
    MaxOrderNotional,
    /// The order's share count exceeds the per-order maximum.
    MaxOrderShares,
    /// The order exceeds the allowed fraction of average daily volume.
    MaxAdvPct,
    /// Average daily volume is unknown and the config requires it.
    UnknownAdv,
    /// The position after the order would exceed the per-symbol weight limit.
    MaxPositionWeight,
    /// Gross exposure after the order would exceed the limit.
    MaxGrossExposure,
    /// Net exposure after the order would exceed the limit.
    MaxNetExposure,
    /// Not enough buying power left for the buy.
    BuyingPower,
    /// The cycle already has the maximum number of orders.
    MaxOrdersPerCycle,
    /// The cycle's traded notional would exceed the turnover limit.
    MaxTurnover,
    /// Too many orders in the rolling rate window.
    OrderRate,
    /// The venue does not know the symbol (no asset facts for it).
    UnknownAsset,
    /// The venue does not accept orders in the symbol.
    AssetNotTradable,
    /// A fractional quantity the venue would refuse (asset not fractionable,
    /// not a day order, or a short sale).
    FractionalNotAllowed,
    /// A short sale where shorting is off or the asset is not shortable.
    ShortNotAllowed,
    /// The order could cross the account's own resting order on the other side.
    PotentialWashTrade,
    /// Too much of the target set's weight has no usable quote: the set is blocked whole.
    IncompleteCoverage,
}

impl ReasonCode {
    /// Every reason code, for tests and documentation generators.
    pub const ALL: [ReasonCode; 37] = [
        ReasonCode::NonPositiveEquity,
        ReasonCode::AccountMismatch,
        ReasonCode::ArithmeticOverflow,
        ReasonCode::InvalidLimitPrice,
        ReasonCode::KillSwitch,
        ReasonCode::ReplayedTargetSet,
        ReasonCode::StaleTargets,
        ReasonCode::FutureDatedTargets,
        ReasonCode::SuspiciousTargetSet,
        ReasonCode::MarketClosed,
        ReasonCode::RestrictedSymbol,
        ReasonCode::MissingQuote,
        ReasonCode::StaleQuote,
        ReasonCode::OpenOrderExists,
        ReasonCode::BelowNoTradeBand,
        ReasonCode::NoPosition,
        ReasonCode::CooldownSymbol,
        ReasonCode::CooldownAccount,
        ReasonCode::VolBrake,
        ReasonCode::PriceCollar,
        ReasonCode::MaxOrderNotional,
        ReasonCode::MaxOrderShares,
        ReasonCode::MaxAdvPct,
        ReasonCode::UnknownAdv,
        ReasonCode::MaxPositionWeight,
        ReasonCode::MaxGrossExposure,
        ReasonCode::MaxNetExposure,
        ReasonCode::BuyingPower,
        ReasonCode::MaxOrdersPerCycle,
        ReasonCode::MaxTurnover,
        ReasonCode::OrderRate,
        ReasonCode::UnknownAsset,
        ReasonCode::AssetNotTradable,
        ReasonCode::FractionalNotAllowed,
        ReasonCode::ShortNotAllowed,
        ReasonCode::PotentialWashTrade,
        ReasonCode::IncompleteCoverage,
    ];

    /// The stable snake_case name (the same string serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NonPositiveEquity => "non_positive_equity",
            ReasonCode::AccountMismatch => "account_mismatch",
            ReasonCode::ArithmeticOverflow => "arithmetic_overflow",
            ReasonCode::InvalidLimitPrice => "invalid_limit_price",
            ReasonCode::KillSwitch => "kill_switch",
            ReasonCode::ReplayedTargetSet => "replayed_target_set",
            ReasonCode::StaleTargets => "stale_targets",
            ReasonCode::FutureDatedTargets => "future_dated_targets",
            ReasonCode::SuspiciousTargetSet => "suspicious_target_set",
            ReasonCode::MarketClosed => "market_closed",
            ReasonCode::RestrictedSymbol => "restricted_symbol",
            ReasonCode::MissingQuote => "missing_quote",
            ReasonCode::StaleQuote => "stale_quote",
            ReasonCode::OpenOrderExists => "open_order_exists",
            ReasonCode::BelowNoTradeBand => "below_no_trade_band",
            ReasonCode::NoPosition => "no_position",
            ReasonCode::CooldownSymbol => "cooldown_symbol",
            ReasonCode::CooldownAccount => "cooldown_account",
            ReasonCode::VolBrake => "vol_brake",
            ReasonCode::PriceCollar => "price_collar",
            ReasonCode::MaxOrderNotional => "max_order_notional",
            ReasonCode::MaxOrderShares => "max_order_shares",
            ReasonCode::MaxAdvPct => "max_adv_pct",
            ReasonCode::UnknownAdv => "unknown_adv",
            ReasonCode::MaxPositionWeight => "max_position_weight",
            ReasonCode::MaxGrossExposure => "max_gross_exposure",
            ReasonCode::MaxNetExposure => "max_net_exposure",
            ReasonCode::BuyingPower => "buying_power",
            ReasonCode::MaxOrdersPerCycle => "max_orders_per_cycle",
            ReasonCode::MaxTurnover => "max_turnover",
            ReasonCode::OrderRate => "order_rate",
            ReasonCode::UnknownAsset => "unknown_asset",
            ReasonCode::AssetNotTradable => "asset_not_tradable",
            ReasonCode::FractionalNotAllowed => "fractional_not_allowed",
            ReasonCode::ShortNotAllowed => "short_not_allowed",
            ReasonCode::PotentialWashTrade => "potential_wash_trade",
            ReasonCode::IncompleteCoverage => "incomplete_coverage",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One guard shrinking one order. Only resizes are steps: a block ends the
/// pipeline and is the decision's [`Outcome`], and guards that passed the
/// order are not listed (with ~20 guards and thousands of symbols, recording
/// every pass would bury the few decisions an operator needs to read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardStep {
    /// The guard that resized the order.
    pub guard: GuardId,
    /// Quantity before this guard.
    pub from: Decimal,
    /// Quantity after this guard (positive, below `from`).
    pub to: Decimal,
    /// Which limit bound.
    pub reason: ReasonCode,
    /// Human-readable numbers behind the decision.
    pub detail: String,
}

/// The final verdict on a proposed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Sent at the proposed quantity.
    Pass,
    /// Sent at a smaller quantity; the fields name the last (binding) resize,
    /// [`Decision::steps`] lists all of them.
    Resize {
        /// Final quantity.
        qty: Decimal,
        /// The guard whose limit bound last.
        guard: GuardId,
        /// Its reason.
        reason: ReasonCode,
        /// Its explanation.
        detail: String,
    },
    /// Not sent.
    Block {
        /// The guard that refused it.
        guard: GuardId,
        /// Stable reason.
        reason: ReasonCode,
        /// Human-readable explanation (never empty).
        detail: String,
    },
}

/// The audited story of one proposed order: what the planner wanted, what
/// each guard did to it, and what (if anything) was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The instrument.
    pub symbol: Symbol,
    /// Direction of the proposed trade. For a symbol that could not be priced
    /// (so not sized) this is the direction of its target weight.
    pub side: Side,
    /// Whether the proposed trade only moves the position toward zero without
    /// crossing it (such trades pass several guards that stop risk-increasing ones).
    pub risk_reducing: bool,
    /// Target weight from the set (0 when the symbol is absent from it).
    pub target_weight: Decimal,
    /// Position the trade starts from: held + open buys − open sells.
    pub position: Decimal,
    /// Desired position (weight × equity / reference), rounded toward zero;
    /// `None` when the symbol could not be priced.
    pub target_qty: Option<Decimal>,
    /// Reference price used for sizing (mid, or last when the book is crossed).
    pub reference_price: Option<Decimal>,
    /// Limit price the order carries (limit orders only).
    pub limit_price: Option<Decimal>,
    /// Quantity the planner proposed (0 when the symbol could not be sized).
    pub proposed_qty: Decimal,
    /// Quantity sent (0 when blocked).
    pub final_qty: Decimal,
    /// The order's deterministic client order id; `None` when blocked (no
    /// order exists, and hashing thousands of ids nobody uses is not free).
    pub client_order_id: Option<String>,
    /// Every resize, in pipeline order (a block is in `outcome`).
    pub steps: Vec<GuardStep>,
    /// Final verdict.
    pub outcome: Outcome,
}

impl Decision {
    /// True when an order is sent for this decision.
    pub fn is_sent(&self) -> bool {
        !matches!(self.outcome, Outcome::Block { .. })
    }
}

/// A verdict that applies to the whole plan (kill switch, closed market,
/// stale or replayed target set, ...). Every one that applies is listed;
/// each decision records the first in precedence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBlock {
    /// The guard.
    pub guard: GuardId,
    /// Stable reason.
    pub reason: ReasonCode,
    /// Explanation.
    pub detail: String,
}

/// Portfolio exposure at reference prices, assuming working and planned
/// orders fill (the same view the exposure guard limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// Σ |position| × price before this plan's orders.
    pub gross_before: Decimal,
    /// Σ position × price before this plan's orders.
    pub net_before: Decimal,
    /// Σ |position| × price after this plan's orders.
    pub gross_after: Decimal,
    /// Σ position × price after this plan's orders.
    pub net_after: Decimal,
}

/// The result of one planning run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Orders to send: all sells (by symbol), then all buys (by symbol), so
    /// sells can free cash before buys need it.
    pub orders: Vec<Order>,
    /// One decision per symbol with a non-zero proposed trade, in the same
    /// order as `orders` (sells by symbol, then buys by symbol).
    pub decisions: Vec<Decision>,
    /// Effective volatility-brake scale in [0, 1] (1 when the brake is off).
    pub vol_scale: Decimal,
    /// Equity the weights were applied to: min(broker equity, marked equity).
    pub equity: Decimal,
    /// Exposure before and after.
    pub exposure: Exposure,
    /// Whole-plan verdicts, in precedence order; empty when none applied.
    pub plan_blocks: Vec<PlanBlock>,
}
