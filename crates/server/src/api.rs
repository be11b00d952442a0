//! The read-only JSON API under `/api/v1/`. Every page of the dashboard is
//! rendered in the browser from these endpoints, so anything a person can
//! see, a script can fetch. Documented in `openapi.json`.

use crate::cache::Core;
use crate::error::ApiError;
use crate::model::{self, CycleDecisions, EodView, OrderView, Overview, PositionsResponse};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{OrderStatus, Symbol};
use keel_store::{AuditRow, FillFilter, FillRow, OrderFilter};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Default and largest page sizes for list endpoints.
const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 5_000;
/// Default and largest number of cycles per request (each needs one query).
const DEFAULT_CYCLES: u32 = 20;
const MAX_CYCLES: u32 = 200;
/// Default and largest audit page.
const DEFAULT_AUDIT: u32 = 50;
const MAX_AUDIT: u32 = 500;

/// The OpenAPI document, kept in the repository next to this crate and
/// checked against the router by a test.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Treats an empty query value (an empty filter box) as absent.
fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_day(v: &Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    present(v)
        .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| ApiError::bad_param("day", s, e)))
        .transpose()
}

fn parse_symbol(v: &Option<String>) -> Result<Option<Symbol>, ApiError> {
    present(v)
        .map(|s| Symbol::new(s).map_err(|e| ApiError::bad_param("symbol", s, e)))
        .transpose()
}

fn parse_limit(name: &str, v: &Option<String>, default: u32, max: u32) -> Result<u32, ApiError> {
    match present(v) {
        None => Ok(default),
        Some(s) => {
            let n: u32 = s.parse().map_err(|e| ApiError::bad_param(name, s, e))?;
            if n == 0 || n > max {
                return Err(ApiError::bad_param(
                    name,
                    s,
                    format!("must be between 1 and {max}"),
                ));
            }
            Ok(n)
        }
    }
}

fn parse_u64(name: &str, v: &Option<String>) -> Result<Option<u64>, ApiError> {
    present(v)
        .map(|s| s.parse::<u64>().map_err(|e| ApiError::bad_param(name, s, e)))
        .transpose()
}

/// `GET /api/v1/overview`: the headline figures. Answered from the cache;
/// only the market status and day P&L depend on the clock, so the body is
/// serialised at most once per audit version and wall-clock second (`as_of`
/// has one-second resolution).
pub(crate) async fn overview(State(state): State<AppState>) -> Result<Response, ApiError> {
    let core = state.cache().core().await?;
    let now = Utc::now();
    let second = now.timestamp();
    let body = match state.cache().overview_body(core.seq, second) {
        Some(b) => b,
        None => {
            let now = DateTime::from_timestamp(second, 0).unwrap_or(now);
            let b = Bytes::from(serde_json::to_vec(&overview_at(&core, now)).map_err(|e| {
                tracing::error!(error = %e, "cannot serialise the overview");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot serialise the overview")
            })?);
            state.cache().set_overview_body(core.seq, second, b.clone());
            b
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The overview of one cached version at `now`.
fn overview_at(core: &Core, now: DateTime<Utc>) -> Overview {
    let pnl = model::day_pnl(core.book.equity, &core.eod, model::pnl_session_date(now));
    Overview {
        as_of: now,
        account_id: core.account.as_ref().map(|a| a.account_id.clone()),
        equity: core.book.equity,
        cash: core.book.cash,
        gross_exposure: core.book.gross_exposure,
        net_exposure: core.book.net_exposure,
        unrealized_pnl: core.book.unrealized_pnl,
        day_pnl: pnl.map(|p| p.0),
        day_pnl_basis_date: pnl.map(|p| p.1),
        positions: core.book.positions.iter().filter(|p| !p.qty.is_zero()).count(),
        open_orders: core.open_orders,
        kill_switch: model::KillView::from_state(core.kill.as_ref()),
        market: model::market_status(now),
        last_cycle: core.last_cycle.clone(),
        reconciliation: core.reconciliation.clone(),
        last_ok_reconciliation: core.last_ok_reconciliation.clone(),
        target_sets: core.target_sets.clone(),
        eod_count: core.eod.len(),
        last_eod_date: core.eod.last().map(|e| e.date),
        audit_seq: core.seq,
    }
}

/// `GET /api/v1/positions`.
pub(crate) async fn positions(State(state): State<AppState>) -> Result<Json<PositionsResponse>, ApiError> {
    let core = state.cache().core().await?;
    let b = &core.book;
    Ok(Json(PositionsResponse {
        audit_seq: core.seq,
        cash: b.cash,
        equity: b.equity,
        gross_exposure: b.gross_exposure,
        net_exposure: b.net_exposure,
        unrealized_pnl: b.unrealized_pnl,
        target_set_id: core.target_set_id.clone(),
        positions: b.positions.clone(),
    }))
}

/// Query of `GET /api/v1/orders`.
#[derive(Debug, Deserialize)]
pub(crate) struct OrdersQuery {
    day: Option<String>,
    symbol: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// Response of `GET /api/v1/orders`.
#[derive(Debug, Serialize)]
pub(crate) struct OrdersResponse {
    limit: u32,
    orders: Vec<OrderView>,
}

/// `GET /api/v1/orders?day=&symbol=&status=&limit=`: newest first.
pub(crate) async fn orders(
    State(state): State<AppState>,
    Query(q): Query<OrdersQuery>,
) -> Result<Json<OrdersResponse>, ApiError> {
    let status = present(&q.status)
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| ApiError::bad_param("status", s, "unknown order status"))
        })
        .transpose()?;
    let limit = parse_limit("limit", &q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = OrderFilter {
        day: parse_day(&q.day)?,
        symbol: parse_symbol(&q.symbol)?,
        status,
        limit: Some(limit),
    };
    let rows = state.store().orders(&filter).await?;
    Ok(Json(OrdersResponse {
        limit,
        orders: rows.into_iter().map(OrderView::from_row).collect(),
    }))
}

/// Query of `GET /api/v1/fills`.
#[derive(Debug, Deserialize)]
pub(crate) struct FillsQuery {
    day: Option<String>,
    symbol: Option<String>,
    order: Option<String>,
    limit: Option<String>,
}

/// Response of `GET /api/v1/fills`.
#[derive(Debug, Serialize)]
pub(crate) struct FillsResponse {
    limit: u32,
    fills: Vec<FillRow>,
}

/// `GET /api/v1/fills?day=&symbol=&order=&limit=`: newest first.
pub(crate) async fn fills(
    State(state): State<AppState>,
    Query(q): Query<FillsQuery>,
) -> Result<Json<FillsResponse>, ApiError> {
    let limit = parse_limit("limit", &q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = FillFilter {
        day: parse_day(&q.day)?,
        symbol: parse_symbol(&q.symbol)?,
        client_order_id: present(&q.order).map(str::to_string),
        limit: Some(limit),
    };
    let fills = state.store().fills(&filter).await?;
    Ok(Json(FillsResponse { limit, fills }))
}

/// Query of `GET /api/v1/slippage`.
#[derive(Debug, Deserialize)]
pub(crate) struct SlippageQuery {
    day: Option<String>,
    symbol: Option<String>,
}

/// `GET /api/v1/slippage?day=&symbol=`.
pub(crate) async fn slippage(
    State(state): State<AppState>,
    Query(q): Query<SlippageQuery>,
) -> Result<Json<Arc<model::SlippageResponse>>, ApiError> {
    let v = state
        .cache()
        .slippage(parse_day(&q.day)?, parse_symbol(&q.symbol)?)
        .await?;
    Ok(Json(v))
}

/// Response of `GET /api/v1/eod`.
#[derive(Debug, Serialize)]
pub(crate) struct EodResponse {
    audit_seq: u64,
    snapshots: Arc<Vec<EodView>>,
}

/// `GET /api/v1/eod`: every end-of-day snapshot, oldest first (the equity curve).
pub(crate) async fn eod(State(state): State<AppState>) -> Result<Json<EodResponse>, ApiError> {
    let core = state.cache().core().await?;
    Ok(Json(EodResponse {
        audit_seq: core.seq,
        snapshots: core.eod.clone(),
    }))
}

/// Query of the cycle lists.
#[derive(Debug, Deserialize)]
pub(crate) struct CyclesQuery {
    limit: Option<String>,
}

/// Response of `GET /api/v1/cycles` and `GET /api/v1/guard-decisions`.
#[derive(Debug, Serialize)]
pub(crate) struct CyclesResponse {
    cycles: Vec<CycleDecisions>,
}

/// Loads the latest `limit` cycles with their decision summaries.
async fn cycle_list(
    state: &AppState,
    limit: u32,
    keep_actions: bool,
) -> Result<Vec<CycleDecisions>, ApiError> {
    let cycles = state.store().cycles(limit).await?;
    let mut out = Vec::with_capacity(cycles.len());
    for c in cycles {
        let plan = state.store().guard_decisions(&c.cycle_id).await?;
        let mut d = CycleDecisions::from_plan(c, plan.as_ref());
        if !keep_actions {
            d.actions.clear();
        }
        out.push(d);
    }
    Ok(out)
}

/// `GET /api/v1/cycles?limit=`: the latest cycles with pass/resize/block counts.
pub(crate) async fn cycles(
    State(state): State<AppState>,
    Query(q): Query<CyclesQuery>,
) -> Result<Json<CyclesResponse>, ApiError> {
    let limit = parse_limit("limit", &q.limit, DEFAULT_CYCLES, MAX_CYCLES)?;
    Ok(Json(CyclesResponse {
        cycles: cycle_list(&state, limit, false).await?,
    }))
}

/// Query of `GET /api/v1/guard-decisions`.
#[derive(Debug, Deserialize)]
pub(crate) struct GuardQuery {
    limit: Option<String>,
    offset: Option<String>,
    day: Option<String>,
    symbol: Option<String>,
    guard: Option<String>,
}

/// Response of `GET /api/v1/guard-decisions`.
#[derive(Debug, Serialize)]
pub(crate) struct GuardDecisionsResponse {
    cycles: Vec<CycleDecisions>,
    /// Matching cycles skipped (newest first) before this page.
    offset: u32,
    /// The `offset` of the next (older) page; `None` when this is the last one.
    next_offset: Option<u32>,
    /// Cycles examined, from the newest.
    scanned: usize,
    /// True when the scan stopped at its bound: older cycles were not examined.
    scan_truncated: bool,
}

/// Cycles examined per guard-decisions request, newest first: paging and
/// filters reach this far back.
const GUARD_SCAN: u32 = 10_000;

/// `GET /api/v1/guard-decisions?limit=&offset=&day=&symbol=&guard=`: cycles,
/// newest first, with every block and resize (what was stopped or shrunk, by
/// which guard, and why). `day` keeps cycles started that UTC day; `symbol`
/// and `guard` keep the actions on that symbol (whole-plan blocks concern
/// every symbol, so they stay) or by that guard, and the cycles with any left.
/// `offset` pages back past the newest cycles.
pub(crate) async fn guard_decisions(
    State(state): State<AppState>,
    Query(q): Query<GuardQuery>,
) -> Result<Json<GuardDecisionsResponse>, ApiError> {
    let limit = parse_limit("limit", &q.limit, DEFAULT_CYCLES, MAX_CYCLES)?;
    let offset = match parse_u64("offset", &q.offset)? {
        Some(o) if o > u64::from(GUARD_SCAN) => {
            return Err(ApiError::bad_param(
                "offset",
                &o.to_string(),
                format!("must be at most {GUARD_SCAN}"),
            ))
        }
        Some(o) => u32::try_from(o).unwrap_or(0),
        None => 0,
    };
    let day = parse_day(&q.day)?;
    let symbol = parse_symbol(&q.symbol)?.map(|s| s.to_string());
    let guard = present(&q.guard).map(str::to_string);
    let filtered = symbol.is_some() || guard.is_some();
    // The cycle list is newest first and cheap; decisions are read only for
    // cycles on the requested day.
    let cycles = state.store().cycles(GUARD_SCAN).await?;
    let scan_truncated = cycles.len() as u64 >= u64::from(GUARD_SCAN);
    let (mut out, mut matched, mut scanned, mut more) = (Vec::new(), 0u32, 0usize, false);
    for c in cycles {
        scanned += 1;
        if day.is_some_and(|d| c.started_at.date_naive() != d) {
            continue;
        }
        let plan = state.store().guard_decisions(&c.cycle_id).await?;
        let mut d = CycleDecisions::from_plan(c, plan.as_ref());
        if filtered {
            d.actions.retain(|a| {
                symbol
                    .as_ref()
                    .is_none_or(|s| a.action == "plan_block" || a.symbol.as_deref() == Some(s))
                    && guard.as_ref().is_none_or(|g| a.guard.as_deref() == Some(g))
            });
            if d.actions.is_empty() {
                continue;
            }
        }
        matched += 1;
        if matched <= offset {
            continue;
        }
        if out.len() as u32 == limit {
            more = true;
            break;
        }
        out.push(d);
    }
    Ok(Json(GuardDecisionsResponse {
        cycles: out,
        offset,
        next_offset: more.then(|| offset + limit),
        scanned,
        scan_truncated,
    }))
}

/// One account in `GET /api/v1/accounts`.
#[derive(Debug, Serialize)]
pub(crate) struct AccountEntry {
    /// The configured id (the store's account id for an unnamed store).
    id: String,
    /// Path prefix of its own dashboard and API ("" for the root).
    base: String,
    /// Its overview.
    overview: Overview,
}

/// Sums over every account.
#[derive(Debug, Serialize, Default)]
pub(crate) struct AccountsTotal {
    equity: rust_decimal::Decimal,
    cash: rust_decimal::Decimal,
    gross_exposure: rust_decimal::Decimal,
    net_exposure: rust_decimal::Decimal,
    unrealized_pnl: rust_decimal::Decimal,
    /// Σ day P&L of the accounts that have one.
    day_pnl: rust_decimal::Decimal,
    positions: usize,
    open_orders: usize,
    /// Accounts whose kill switch is engaged.
    killed: usize,
}

/// Response of `GET /api/v1/accounts`.
#[derive(Debug, Serialize)]
pub(crate) struct AccountsResponse {
    accounts: Vec<AccountEntry>,
    total: AccountsTotal,
}

/// `GET /api/v1/accounts`: every configured account's overview, and their sum.
pub(crate) async fn accounts(State(state): State<AppState>) -> Result<Json<AccountsResponse>, ApiError> {
    let now = Utc::now();
    let mut accounts = Vec::new();
    let mut total = AccountsTotal::default();
    for p in state.peers().iter() {
        let core = p.cache.core().await?;
        let o = overview_at(&core, now);
        total.equity += o.equity;
        total.cash += o.cash;
        total.gross_exposure += o.gross_exposure;
        total.net_exposure += o.net_exposure;
        total.unrealized_pnl += o.unrealized_pnl;
        total.day_pnl += o.day_pnl.unwrap_or_default();
        total.positions += o.positions;
        total.open_orders += o.open_orders;
        total.killed += usize::from(o.kill_switch.engaged);
        let id = if p.id.is_empty() {
            o.account_id.clone().unwrap_or_default()
        } else {
            p.id.clone()
        };
        accounts.push(AccountEntry {
            id,
            base: p.base.clone(),
            overview: o,
        });
    }
    Ok(Json(AccountsResponse { accounts, total }))
}

/// Response of `GET /api/v1/cycles/{cycle_id}/decisions`.
#[derive(Debug, Serialize)]
pub(crate) struct DecisionsResponse {
    cycle_id: String,
    /// The planner's full output as recorded (orders, decisions with every
    /// guard step, exposure, plan blocks).
    plan: serde_json::Value,
}

/// `GET /api/v1/cycles/{cycle_id}/decisions`: the raw recorded plan.
pub(crate) async fn cycle_decisions(
    State(state): State<AppState>,
    Path(cycle_id): Path<String>,
) -> Result<Json<DecisionsResponse>, ApiError> {
    let plan = state
        .store()
        .guard_decisions(&cycle_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(DecisionsResponse { cycle_id, plan }))
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// Response of `GET /api/v1/audit`.
#[derive(Debug, Serialize)]
pub(crate) struct AuditResponse {
    head_seq: u64,
    head_hash: String,
    limit: u32,
    rows: Vec<AuditRow>,
}

/// `GET /api/v1/audit?after=|before=&limit=`: a page of audit rows in
/// sequence order; without `after` or `before`, the newest page.
pub(crate) async fn audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditResponse>, ApiError> {
    let limit = parse_limit("limit", &q.limit, DEFAULT_AUDIT, MAX_AUDIT)?;
    let after = parse_u64("after", &q.after)?;
    let before = parse_u64("before", &q.before)?;
    // Read the head directly: the audit page should show rows the moment they exist.
    let (head_seq, head_hash) = state.store().audit_head().await?;
    let (from, upto) = match (after, before) {
        (Some(a), _) => (a, None),
        (None, Some(b)) => (b.saturating_sub(1).saturating_sub(u64::from(limit)), Some(b)),
        (None, None) => (head_seq.saturating_sub(u64::from(limit)), None),
    };
    let mut rows = state.store().audit_page(from, limit).await?;
    if let Some(b) = upto {
        rows.retain(|r| r.seq < b);
    }
    Ok(Json(AuditResponse {
        head_seq,
        head_hash,
        limit,
        rows,
    }))
}

/// Response of `GET /api/v1/audit/verify`.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyResponse {
    ok: bool,
    events: u64,
    first_bad_seq: Option<u64>,
    first_bad_reason: Option<String>,
    verified_head_seq: u64,
    verified_at: DateTime<Utc>,
    in_progress: bool,
}

/// `GET /api/v1/audit/verify`: hash-chain verification status (re-run in
/// the background when the log grew; see the cache).
pub(crate) async fn audit_verify(State(state): State<AppState>) -> Result<Json<VerifyResponse>, ApiError> {
    let (v, in_progress) = state.cache().verify().await?;
    Ok(Json(VerifyResponse {
        ok: v.report.is_ok(),
        events: v.report.events,
        first_bad_seq: v.report.first_bad.as_ref().map(|b| b.0),
        first_bad_reason: v.report.first_bad.as_ref().map(|b| b.1.clone()),
        verified_head_seq: v.head_seq,
        verified_at: v.at,
        in_progress,
    }))
}

/// Response of `GET /api/v1/health`.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
    audit_seq: u64,
}

/// `GET /api/v1/health`: 200 when the store answers.
pub(crate) async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let core = state.cache().core().await?;
    Ok(Json(Health {
        status: "ok",
        audit_seq: core.seq,
    }))
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// `GET /api/v1/report/{day}`: the daily execution report (`keel report`'s model).
pub(crate) async fn day_report(
    State(state): State<AppState>,
    Path(day): Path<String>,
) -> Result<Json<crate::report::DayReport>, ApiError> {
    let day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_param("day", &day, "expected YYYY-MM-DD"))?;
    Ok(Json(crate::report::build(state.store().as_ref(), day).await?))
}
