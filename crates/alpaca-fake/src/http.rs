//! The REST surface: Trading API and Market Data API paths exactly as in
//! Alpaca's OpenAPI files, plus the `/_fake/` inspection endpoints.

use crate::app::{lock, App};
use crate::json::{self, asset_json, fill_json, num, order_json, position_json, ts};
use crate::venue::{ApiError, Kind, NewOrder, Order, Side, Tif};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use keel_broker::universe;
use keel_domain::Symbol;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

type Shared = State<Arc<App>>;
type Params = Query<HashMap<String, String>>;

pub fn router(app: Arc<App>) -> Router {
    let alpaca = Router::new()
        .route("/v2/account", get(account))
        .route(
            "/v2/orders",
            post(submit_order).get(list_orders).delete(cancel_all),
        )
        .route("/v2/orders:by_client_order_id", get(order_by_cid))
        .route("/v2/orders/{order_id}", get(get_order).delete(cancel_order))
        .route("/v2/positions", get(positions))
        .route("/v2/positions/{symbol_or_asset_id}", get(position))
        .route("/v2/assets", get(assets))
        .route("/v2/assets/{symbol_or_asset_id}", get(asset))
        .route("/v2/clock", get(clock))
        .route("/v2/calendar", get(calendar))
        .route("/v2/account/activities", get(activities))
        .route("/v2/account/activities/{activity_type}", get(activities_of_type))
        .route("/v2/stocks/quotes/latest", get(latest_quotes))
        .route("/v2/stocks/snapshots", get(snapshots))
        .route("/v2/stocks/bars", get(bars))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), gate));
    let fake = Router::new()
        .route("/stream", get(crate::stream::upgrade))
        .route("/_fake/submissions", get(fake_submissions))
        .route("/_fake/state", get(fake_state))
        .route("/_fake/clock", post(fake_clock))
        .route("/_fake/faults", get(fake_faults_get).post(fake_faults_set))
        .route("/_fake/account", post(fake_account))
        .route("/_fake/stream/drop", post(fake_stream_drop));
    fake.merge(alpaca).with_state(app)
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

pub fn err(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"code": e.code, "message": e.message}))).into_response()
}

async fn not_found() -> Response {
    err(ApiError::not_found("endpoint not found"))
}

/// Auth, request budget and request-level faults for every Alpaca path.
async fn gate(State(app): Shared, req: Request, next: Next) -> Response {
    let header = |h: &HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let key = header(req.headers(), "apca-api-key-id");
    let secret = header(req.headers(), "apca-api-secret-key");
    let is_get = req.method() == Method::GET;
    let line = app.verbose.then(|| format!("{} {}", req.method(), req.uri()));
    let (Some(key), Some(_secret)) = (key, secret) else {
        // Alpaca answers missing or malformed key headers with a bare 403.
        return (StatusCode::FORBIDDEN, Json(json!({"message": "forbidden."}))).into_response();
    };
    lock(&app.counters).requests += 1;
    let decision = app.take_token(&key);
    let faults = *lock(&app.faults);
    let storm = {
        let mut left = lock(&app.storm_left);
        if *left == 0 && app.chance(faults.rate_storm) {
            *left = 5 + (lock(&app.fault_rng).next_u64() % 16) as u32;
        }
        if *left > 0 {
            *left -= 1;
            true
        } else {
            false
        }
    };
    let rate_headers = |h: &mut HeaderMap, remaining: u32| {
        let reset = app.clock.now().timestamp() + decision.reset_secs as i64;
        for (k, v) in [
            ("x-ratelimit-limit", decision.limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
    };
    if !decision.allowed || storm {
        lock(&app.counters).rate_limited += 1;
        let retry = decision.retry_after_secs.max(1);
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"code": 42910000, "message": "rate limit exceeded"})),
        )
            .into_response();
        rate_headers(resp.headers_mut(), 0);
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    if is_get && app.chance(faults.read_5xx) {
        lock(&app.counters).faults_5xx += 1;
        let pick = lock(&app.fault_rng).next_u64() % 3;
        let (status, msg) = match pick {
            0 => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
            1 => (StatusCode::BAD_GATEWAY, "bad gateway"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "service unavailable"),
        };
        let mut resp = (status, Json(json!({"code": 50010000, "message": msg}))).into_response();
        rate_headers(resp.headers_mut(), decision.remaining);
        return resp;
    }
    let mut resp = next.run(req).await;
    rate_headers(resp.headers_mut(), decision.remaining);
    if let Some(line) = line {
        eprintln!("alpaca-fake: {line} -> {}", resp.status().as_u16());
    }
    resp
}

// ---------------------------------------------------------------------------
// Trading API
// ---------------------------------------------------------------------------

async fn account(State(app): Shared) -> Response {
    let now = app.clock.now();
    ok(lock(&app.venue).account_json(now))
}

fn field_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ApiError::unprocessable(format!(
            "{name} must be a string, got {other}"
        ))),
    }
}

/// A decimal field: Alpaca takes strings (and tolerates numbers).
fn field_decimal(body: &Map<String, Value>, name: &str) -> Result<Option<Decimal>, ApiError> {
    let text = match body.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "{name} must be a decimal string, got {other}"
            )))
        }
    };
    let valid = !text.is_empty()
        && text.len() <= 40
        && text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && text.matches('.').count() <= 1;
    let parsed = if valid {
        Decimal::from_str(&text).ok()
    } else {
        None
    };
    parsed
        .map(Some)
        .ok_or_else(|| ApiError::unprocessable(format!("invalid {name}: \"{text}\"")))
}

fn parse_new_order(body: &Map<String, Value>) -> Result<NewOrder, ApiError> {
    let symbol = field_str(body, "symbol")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unprocessable("symbol is required"))?;
    if field_decimal(body, "notional")?.is_some() {
        return Err(ApiError::unprocessable(
            "notional orders are not supported by alpaca-fake; send qty",
        ));
    }
    let qty =
        field_decimal(body, "qty")?.ok_or_else(|| ApiError::unprocessable("qty or notional is required"))?;
    let side = match field_str(body, "side")? {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        Some(s) => return Err(ApiError::unprocessable(format!("invalid side: {s}"))),
        None => return Err(ApiError::unprocessable("side is required")),
    };
    let kind = match field_str(body, "type")? {
        Some("market") => Kind::Market,
        Some("limit") => Kind::Limit,
        Some(t @ ("stop" | "stop_limit" | "trailing_stop")) => {
            return Err(ApiError::unprocessable(format!(
                "order type {t} is not supported by alpaca-fake"
            )))
        }
        Some(t) => return Err(ApiError::unprocessable(format!("invalid order type: {t}"))),
        None => return Err(ApiError::unprocessable("type is required")),
    };
    let tif = match field_str(body, "time_in_force")? {
        Some("day") => Tif::Day,
        Some("gtc") => Tif::Gtc,
        Some("ioc") => Tif::Ioc,
        Some("fok") => Tif::Fok,
        Some(t @ ("opg" | "cls")) => {
            return Err(ApiError::unprocessable(format!(
                "time_in_force {t} is not supported by alpaca-fake"
            )))
        }
        Some(t) => return Err(ApiError::unprocessable(format!("invalid time_in_force: {t}"))),
        None => return Err(ApiError::unprocessable("time_in_force is required")),
    };
    if body.contains_key("order_class") && !matches!(field_str(body, "order_class")?, Some("simple" | "")) {
        return Err(ApiError::unprocessable(
            "only simple orders are supported by alpaca-fake",
        ));
    }
    let extended_hours = match body.get("extended_hours") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "extended_hours must be a boolean, got {other}"
            )))
        }
    };
    Ok(NewOrder {
        symbol: symbol.to_string(),
        qty,
        side,
        kind,
        tif,
        limit_price: field_decimal(body, "limit_price")?,
        client_order_id: field_str(body, "client_order_id")?.map(str::to_string),
        extended_hours,
        doomed: false,
    })
}

async fn submit_order(State(app): Shared, body: Bytes) -> Response {
    let now = app.clock.now();
    let parsed: Result<Map<String, Value>, ApiError> = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(400, 40010000, "request body format is invalid"));
    let cid = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.get("client_order_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let faults = *lock(&app.faults);
    let outcome = parsed.and_then(|b| parse_new_order(&b)).and_then(|mut req| {
        req.doomed = app.chance(faults.reject_after_accept);
        let mut venue = lock(&app.venue);
        venue.submit(req, now)
    });
    let status = match &outcome {
        Ok(_) => 200,
        Err(e) => e.status,
    };
    let fault = outcome.is_ok() && app.chance(faults.submit_504);
    lock(&app.venue).record_submission(cid, now, if fault { 504 } else { status });
    match outcome {
        Ok(order) => {
            app.tick.notify_one();
            if fault {
                lock(&app.counters).faults_504 += 1;
                // The order exists and will trade; only the answer is lost.
                return (
                    StatusCode::GATEWAY_TIMEOUT,
                    Json(json!({"code": 50410000, "message": "gateway timeout"})),
                )
                    .into_response();
            }
            ok(order_json(&order))
        }
        Err(e) => err(e),
    }
}

/// RFC 3339 instants or plain dates (midnight UTC), as Alpaca accepts.
fn parse_time(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(ApiError::unprocessable(format!(
        "invalid {name}: \"{v}\" (expected RFC 3339 or YYYY-MM-DD)"
    )))
}

fn opt_time(q: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    q.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| parse_time(name, v))
        .transpose()
}

fn opt_u64(q: &HashMap<String, String>, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    match q.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::unprocessable(format!(
                "invalid {name}: \"{v}\" (allowed {min} to {max})"
            ))),
        },
    }
}

fn direction_asc(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("direction").map(String::as_str) {
        None | Some("") | Some("desc") => Ok(false),
        Some("asc") => Ok(true),
        Some(d) => Err(ApiError::unprocessable(format!(
            "invalid direction: \"{d}\" (allowed asc, desc)"
        ))),
    }
}

fn symbols_param(q: &HashMap<String, String>) -> Vec<String> {
    q.get("symbols")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_uppercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

async fn list_orders(State(app): Shared, Query(q): Params) -> Response {
    let run = || -> Result<Value, ApiError> {
        let status = q.get("status").map(String::as_str).unwrap_or("open");
        if !matches!(status, "open" | "closed" | "all") {
            return Err(ApiError::unprocessable(format!(
                "invalid status: \"{status}\" (allowed open, closed, all)"
            )));
        }
        let limit = opt_u64(&q, "limit", 1, 500)?.unwrap_or(50) as usize;
        let after = opt_time(&q, "after")?;
        let until = opt_time(&q, "until")?;
        let asc = direction_asc(&q)?;
        let symbols = symbols_param(&q);
        let venue = lock(&app.venue);
        let mut picked: Vec<&Order> = venue
            .orders
            .iter()
            .filter(|o| match status {
                "open" => o.is_open(),
                "closed" => !o.is_open(),
                _ => true,
            })
            .filter(|o| after.is_none_or(|a| o.created_at > a))
            .filter(|o| until.is_none_or(|u| o.created_at < u))
            .filter(|o| symbols.is_empty() || symbols.contains(&o.symbol))
            .collect();
        // Newest first by default; `limit` keeps the first ones in that order.
        if !asc {
            picked.reverse();
        }
        Ok(Value::Array(
            picked.into_iter().take(limit).map(order_json).collect(),
        ))
    };
    run().map(ok).unwrap_or_else(err)
}

async fn order_by_cid(State(app): Shared, Query(q): Params) -> Response {
    let Some(cid) = q.get("client_order_id") else {
        return err(ApiError::unprocessable("client_order_id is required"));
    };
    match lock(&app.venue).order_by_cid(cid) {
        Some(o) => ok(order_json(o)),
        None => err(ApiError::not_found("order not found")),
    }
}

async fn get_order(State(app): Shared, Path(id): Path<String>) -> Response {
    match lock(&app.venue).order_by_id(&id) {
        Some(o) => ok(order_json(o)),
        None => err(ApiError::not_found(format!("order not found for {id}"))),
    }
}

async fn cancel_order(State(app): Shared, Path(id): Path<String>) -> Response {
    let now = app.clock.now();
    match lock(&app.venue).cancel(&id, now) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => err(e),
    }
}

async fn cancel_all(State(app): Shared) -> Response {
    let now = app.clock.now();
    let ids = lock(&app.venue).cancel_all(now);
    let body: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"id": id, "status": 200}))
        .collect();
    (StatusCode::MULTI_STATUS, Json(Value::Array(body))).into_response()
}

fn positions_json(app: &App, only: Option<&str>) -> Vec<Value> {
    let now = app.clock.now();
    let venue = lock(&app.venue);
    let today = json::ny_date(now);
    venue
        .positions
        .iter()
        .filter(|(s, _)| only.is_none_or(|o| o == s.as_str() || o == json::asset_id(s)))
        .map(|(s, p)| {
            let sym = Symbol::new(s).ok();
            let current = venue.quote(s, now).map(|q| q.last).unwrap_or(p.avg_entry);
            let lastday = sym
                .and_then(|sym| universe::daily_closes(venue.cfg.seed, &sym, today, 1).pop())
                .unwrap_or(current);
            let promised: Decimal = venue
                .orders
                .iter()
                .filter(|o| o.is_open() && &o.symbol == s && o.side == Side::Sell)
                .map(Order::remaining)
                .sum();
            let available = if p.qty.is_sign_positive() {
                (p.qty - promised).max(Decimal::ZERO)
            } else {
                p.qty
            };
            position_json(s, p, available, current, lastday)
        })
        .collect()
}

async fn positions(State(app): Shared) -> Response {
    ok(Value::Array(positions_json(&app, None)))
}

async fn position(State(app): Shared, Path(sym): Path<String>) -> Response {
    let key = sym.to_uppercase();
    let key = if sym.contains('-') { sym } else { key };
    match positions_json(&app, Some(&key)).pop() {
        Some(p) => ok(p),
        None => err(ApiError::not_found("position does not exist")),
    }
}

async fn assets(State(app): Shared, Query(q): Params) -> Response {
    let status = q.get("status").map(String::as_str).unwrap_or("");
    if status == "inactive" {
        return ok(Value::Array(vec![]));
    }
    let class = q.get("asset_class").map(String::as_str).unwrap_or("");
    if !class.is_empty() && class != "us_equity" {
        return ok(Value::Array(vec![]));
    }
    let exchange = q.get("exchange").map(String::as_str).unwrap_or("");
    let venue = lock(&app.venue);
    let list = universe::symbols()
        .iter()
        .filter(|s| exchange.is_empty() || json::exchange(s.as_str()) == exchange)
        .map(|s| asset_json(s.as_str(), &venue.cfg.assets))
        .collect();
    ok(Value::Array(list))
}

async fn asset(State(app): Shared, Path(key): Path<String>) -> Response {
    let venue = lock(&app.venue);
    let upper = key.to_uppercase();
    let found = universe::symbols()
        .into_iter()
        .find(|s| s.as_str() == upper || json::asset_id(s.as_str()) == key);
    match found {
        Some(s) => ok(asset_json(s.as_str(), &venue.cfg.assets)),
        None => err(ApiError::not_found(format!("asset not found for {key}"))),
    }
}

async fn clock(State(app): Shared) -> Response {
    let now = app.clock.now();
    let today = json::ny_date(now);
    let current = keel_calendar::session_containing(now);
    let next_open = {
        let s = keel_calendar::next_session_on_or_after(today);
        if s.open > now {
            s.open
        } else {
            keel_calendar::next_session_on_or_after(today.succ_opt().unwrap_or(today)).open
        }
    };
    let next_close = match current {
        Some(s) => s.close,
        None => {
            let s = keel_calendar::next_session_on_or_after(today);
            if s.close > now {
                s.close
            } else {
                keel_calendar::next_session_on_or_after(today.succ_opt().unwrap_or(today)).close
            }
        }
    };
    ok(json!({
        "timestamp": json::ny_ts(now),
        "is_open": current.is_some(),
        "next_open": json::ny_ts(next_open),
        "next_close": json::ny_ts(next_close),
    }))
}

/// A calendar date parameter: a plain date, or the date of an RFC 3339
/// instant as written (its own offset), which is what the spec's date-time
/// format makes clients send.
fn date_param(q: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    let Some(v) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.date_naive()));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Some).map_err(|_| {
        ApiError::unprocessable(format!(
            "invalid {name}: \"{v}\" (expected RFC 3339 or YYYY-MM-DD)"
        ))
    })
}

/// A bar-window bound: an RFC 3339 instant, or a plain date meaning New York
/// midnight of that date (where daily bars are stamped).
fn bar_bound(q: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = q.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| Some(json::ny_midnight(d)))
        .map_err(|_| {
            ApiError::new(
                400,
                40010001,
                format!("invalid {name}: \"{v}\" (expected RFC 3339 or YYYY-MM-DD)"),
            )
        })
}

async fn calendar(State(app): Shared, Query(q): Params) -> Response {
    let run = || -> Result<Value, ApiError> {
        let today = json::ny_date(app.clock.now());
        let start = date_param(&q, "start")?.unwrap_or(today);
        let end = date_param(&q, "end")?.unwrap_or_else(|| start + chrono::Duration::days(30));
        if (end - start).num_days() > 3660 {
            return Err(ApiError::unprocessable("start to end spans more than 10 years"));
        }
        let days = keel_calendar::sessions(start, end)
            .into_iter()
            .map(|s| {
                let o = s.open.with_timezone(&chrono_tz::America::New_York);
                let c = s.close.with_timezone(&chrono_tz::America::New_York);
                json!({
                    "date": s.date.format("%Y-%m-%d").to_string(),
                    "open": o.format("%H:%M").to_string(),
                    "close": c.format("%H:%M").to_string(),
                    "session_open": "0400",
                    "session_close": "2000",
                })
            })
            .collect();
        Ok(Value::Array(days))
    };
    run().map(ok).unwrap_or_else(err)
}

fn fills_page(app: &App, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let asc = direction_asc(q)?;
    let page_size = opt_u64(q, "page_size", 1, 100)?.unwrap_or(100) as usize;
    let after = opt_time(q, "after")?;
    let until = opt_time(q, "until")?;
    let date = q
        .get("date")
        .filter(|v| !v.is_empty())
        .map(|v| parse_time("date", v).map(|t| t.date_naive()))
        .transpose()?;
    let token = q.get("page_token").filter(|t| !t.is_empty()).cloned();
    let venue = lock(&app.venue);
    let mut fills: Vec<_> = venue
        .fills
        .iter()
        .filter(|f| after.is_none_or(|a| f.at > a))
        .filter(|f| until.is_none_or(|u| f.at < u))
        .filter(|f| date.is_none_or(|d| json::ny_date(f.at) == d))
        .collect();
    if !asc {
        fills.reverse();
    }
    let start = match token {
        Some(t) => fills
            .iter()
            .position(|f| f.activity_id == t)
            .map(|i| i + 1)
            .unwrap_or(fills.len()),
        None => 0,
    };
    Ok(Value::Array(
        fills
            .into_iter()
            .skip(start)
            .take(page_size)
            .map(fill_json)
            .collect(),
    ))
}

async fn activities(State(app): Shared, Query(q): Params) -> Response {
    let wants_fills = q.get("activity_types").is_none_or(|t| {
        t.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("FILL") || x.trim().is_empty())
    });
    if !wants_fills {
        return ok(Value::Array(vec![]));
    }
    fills_page(&app, &q).map(ok).unwrap_or_else(err)
}

async fn activities_of_type(State(app): Shared, Path(kind): Path<String>, Query(q): Params) -> Response {
    if !kind.eq_ignore_ascii_case("FILL") {
        return ok(Value::Array(vec![]));
    }
    fills_page(&app, &q).map(ok).unwrap_or_else(err)
}

// ---------------------------------------------------------------------------
// Market Data API
// ---------------------------------------------------------------------------

fn md_symbols(q: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let syms = symbols_param(q);
    if syms.is_empty() {
        return Err(ApiError::new(400, 40010001, "symbols is required"));
    }
    if syms.len() > 10_000 {
        return Err(ApiError::new(400, 40010001, "too many symbols"));
    }
    match q.get("feed").map(String::as_str) {
        None | Some("" | "iex" | "sip" | "otc") => Ok(syms),
        Some(f) => Err(ApiError::new(
            400,
            40010001,
            format!("invalid feed: \"{f}\" (allowed iex, sip, otc)"),
        )),
    }
}

fn quote_json(q: &keel_domain::Quote, ts_at: DateTime<Utc>) -> Value {
    json!({
        "t": ts(ts_at),
        "ax": "V",
        "ap": num(q.ask),
        "as": 3,
        "bx": "V",
        "bp": num(q.bid),
        "bs": 2,
        "c": ["R"],
        "z": "C",
    })
}

async fn latest_quotes(State(app): Shared, Query(q): Params) -> Response {
    let syms = match md_symbols(&q) {
        Ok(s) => s,
        Err(e) => return err(e),
    };
    let now = app.clock.now();
    let venue = lock(&app.venue);
    let mut out = Map::new();
    for s in syms {
        // Unknown symbols are simply absent, as with Alpaca.
        if let Some(qt) = venue.quote(&s, now) {
            out.insert(s, quote_json(&qt, now));
        }
    }
    ok(json!({"quotes": out}))
}

/// A daily bar for the session `date`, observed at `now` (a bar of a session
/// still trading ends at `now`). High and low come from the same price path
/// the quotes follow, sampled through the session.
fn daily_bar(seed: u64, sym: &Symbol, date: NaiveDate, now: DateTime<Utc>) -> Option<Value> {
    let s = keel_calendar::session(date)?;
    if s.open > now {
        return None;
    }
    let end = if now < s.close {
        now
    } else {
        s.close - chrono::Duration::milliseconds(1)
    };
    let open = universe::quote(seed, sym, s.open)?.last;
    let close = if now < s.close {
        universe::quote(seed, sym, now)?.last
    } else {
        universe::session_close(seed, sym, date)?
    };
    let (mut hi, mut lo) = (open.max(close), open.min(close));
    let span = (end - s.open).num_milliseconds().max(0);
    for k in 1..24 {
        let at = s.open + chrono::Duration::milliseconds(span * k / 24);
        if let Some(q) = universe::quote(seed, sym, at) {
            hi = hi.max(q.last);
            lo = lo.min(q.last);
        }
    }
    let volume = universe::adv(sym).unwrap_or_default();
    Some(json!({
        "t": ts(json::ny_midnight(date)),
        "o": num(open),
        "h": num(hi),
        "l": num(lo),
        "c": num(close),
        "v": num(volume),
        "n": 10_000,
        "vw": num(((open + close + hi + lo) / Decimal::from(4)).round_dp(4)),
    }))
}

async fn snapshots(State(app): Shared, Query(q): Params) -> Response {
    let syms = match md_symbols(&q) {
        Ok(s) => s,
        Err(e) => return err(e),
    };
    let now = app.clock.now();
    let venue = lock(&app.venue);
    let seed = venue.cfg.seed;
    let today = json::ny_date(now);
    let mut out = Map::new();
    for s in syms {
        let Ok(sym) = Symbol::new(&s) else { continue };
        let Some(qt) = venue.quote(&s, now) else {
            continue;
        };
        let last_session = if keel_calendar::session(today).is_some_and(|x| x.open <= now) {
            today
        } else {
            keel_calendar::previous_session_before(today).date
        };
        let prev = keel_calendar::previous_session_before(last_session).date;
        let mut snap = Map::new();
        snap.insert(
            "latestTrade".into(),
            json!({"t": ts(now), "x": "V", "p": num(qt.last), "s": 100, "c": ["@"], "i": 1, "z": "C"}),
        );
        snap.insert("latestQuote".into(), quote_json(&qt, now));
        let minute = chrono::DateTime::from_timestamp(now.timestamp() / 60 * 60, 0).unwrap_or(now);
        snap.insert(
            "minuteBar".into(),
            json!({"t": ts(minute), "o": num(qt.last), "h": num(qt.last), "l": num(qt.last), "c": num(qt.last), "v": 100, "n": 1, "vw": num(qt.last)}),
        );
        if let Some(b) = daily_bar(seed, &sym, last_session, now) {
            snap.insert("dailyBar".into(), b);
        }
        if let Some(b) = daily_bar(seed, &sym, prev, now) {
            snap.insert("prevDailyBar".into(), b);
        }
        out.insert(s, Value::Object(snap));
    }
    ok(Value::Object(out))
}

/// Page tokens are opaque to clients: here `SYMBOL|YYYY-MM-DD` in hex.
fn encode_token(sym: &str, date: NaiveDate) -> String {
    format!("{sym}|{date}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(t: &str) -> Option<(String, NaiveDate)> {
    if !t.len().is_multiple_of(2) || t.len() > 200 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let (sym, d) = s.split_once('|')?;
    Some((sym.to_string(), NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?))
}

async fn bars(State(app): Shared, Query(q): Params) -> Response {
    let run = || -> Result<Value, ApiError> {
        let mut syms = md_symbols(&q)?;
        syms.sort();
        syms.dedup();
        match q.get("timeframe").map(String::as_str) {
            Some("1Day" | "1D" | "1day") => {}
            Some(t) => {
                return Err(ApiError::new(
                    400,
                    40010001,
                    format!("timeframe {t} is not supported by alpaca-fake (only 1Day)"),
                ))
            }
            None => return Err(ApiError::new(400, 40010001, "timeframe is required")),
        }
        let limit = opt_u64(&q, "limit", 1, 10_000)?.unwrap_or(1000) as usize;
        let now = app.clock.now();
        let today = json::ny_date(now);
        // Bars are stamped at New York midnight; the window filters on that
        // stamp. Default: today's bar only.
        let start_t = bar_bound(&q, "start")?.unwrap_or_else(|| json::ny_midnight(today));
        let end_t = bar_bound(&q, "end")?.unwrap_or(now).min(now);
        if start_t > end_t {
            return Ok(json!({"bars": {}, "next_page_token": null}));
        }
        let start = json::ny_date(start_t);
        let end = json::ny_date(end_t);
        if (end - start).num_days() > 3660 * 3 {
            return Err(ApiError::new(
                400,
                40010001,
                "start to end spans more than 30 years",
            ));
        }
        let token = match q.get("page_token").filter(|t| !t.is_empty()) {
            Some(t) => {
                Some(decode_token(t).ok_or_else(|| ApiError::new(400, 40010001, "invalid page_token"))?)
            }
            None => None,
        };
        let sessions: Vec<_> = keel_calendar::sessions(start, end)
            .into_iter()
            .filter(|s| (start_t..=end_t).contains(&json::ny_midnight(s.date)))
            .collect();
        let seed = lock(&app.venue).cfg.seed;
        let mut out = Map::new();
        let mut count = 0usize;
        let mut next = None;
        'outer: for s in &syms {
            if let Some((ts_sym, _)) = &token {
                if s < ts_sym {
                    continue;
                }
            }
            let Ok(sym) = Symbol::new(s) else { continue };
            if universe::instrument(&sym).is_none() {
                continue;
            }
            let mut list = Vec::new();
            for sess in &sessions {
                if let Some((ts_sym, ts_date)) = &token {
                    if s == ts_sym && sess.date < *ts_date {
                        continue;
                    }
                }
                let Some(b) = daily_bar(seed, &sym, sess.date, now) else {
                    continue;
                };
                if count == limit {
                    next = Some(encode_token(s, sess.date));
                    if !list.is_empty() {
                        out.insert(s.clone(), Value::Array(list));
                    }
                    break 'outer;
                }
                list.push(b);
                count += 1;
            }
            if !list.is_empty() {
                out.insert(s.clone(), Value::Array(list));
            }
        }
        Ok(json!({"bars": out, "next_page_token": next}))
    };
    run().map(ok).unwrap_or_else(err)
}

// ---------------------------------------------------------------------------
// /_fake/: inspection and control, outside Alpaca's paths
// ---------------------------------------------------------------------------

async fn fake_submissions(State(app): Shared) -> Response {
    let venue = lock(&app.venue);
    let mut counts: Map<String, Value> = Map::new();
    for s in &venue.submissions {
        if let Some(cid) = &s.client_order_id {
            let n = counts.get(cid).and_then(Value::as_u64).unwrap_or(0);
            counts.insert(cid.clone(), json!(n + 1));
        }
    }
    let list: Vec<Value> = venue
        .submissions
        .iter()
        .map(|s| json!({"client_order_id": s.client_order_id, "at": ts(s.at), "status": s.status}))
        .collect();
    ok(json!({
        "total": venue.submissions.len(),
        "by_client_order_id": counts,
        "submissions": list,
    }))
}

async fn fake_state(State(app): Shared) -> Response {
    let now = app.clock.now();
    let positions = positions_json(&app, None);
    let venue = lock(&app.venue);
    let counters = lock(&app.counters).clone();
    ok(json!({
        "now": ts(now),
        "account": venue.account_json(now),
        "positions": positions,
        "orders": venue.orders.iter().map(order_json).collect::<Vec<_>>(),
        "fills": venue.fills.iter().map(|f| {
            let mut v = fill_json(f);
            if let Some(m) = v.as_object_mut() {
                m.insert("execution_id".into(), json!(f.execution_id));
            }
            v
        }).collect::<Vec<_>>(),
        "faults": lock(&app.faults).to_json(),
        "counters": {
            "requests": counters.requests,
            "rate_limited": counters.rate_limited,
            "faults_5xx": counters.faults_5xx,
            "faults_504": counters.faults_504,
            "stream_connections": counters.stream_connections,
            "stream_evictions": counters.stream_evictions,
        },
    }))
}

async fn fake_clock(State(app): Shared, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return err(ApiError::new(
                400,
                40010000,
                "body must be {\"at\": RFC3339} or {\"advance_secs\": N}",
            ))
        }
    };
    if let Some(at) = v.get("at").and_then(Value::as_str) {
        match DateTime::parse_from_rfc3339(at) {
            Ok(t) => app.clock.jump_to(t.with_timezone(&Utc)),
            Err(_) => return err(ApiError::unprocessable(format!("invalid at: \"{at}\""))),
        }
    } else if let Some(secs) = v.get("advance_secs").and_then(Value::as_i64) {
        if secs.unsigned_abs() > 10 * 365 * 86_400 {
            return err(ApiError::unprocessable(
                "advance_secs beyond ten years either way",
            ));
        }
        app.clock
            .jump_to(app.clock.now() + chrono::Duration::seconds(secs));
    } else {
        return err(ApiError::unprocessable(
            "body must be {\"at\": RFC3339} or {\"advance_secs\": N}",
        ));
    }
    app.tick.notify_one();
    ok(json!({"now": ts(app.clock.now())}))
}

async fn fake_faults_get(State(app): Shared) -> Response {
    ok(lock(&app.faults).to_json())
}

/// Replaces the fault profile: `{"submit_504": 1.0}` (kinds not named go to 0).
async fn fake_faults_set(State(app): Shared, body: Bytes) -> Response {
    let v: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return err(ApiError::new(400, 40010000, "body must be a JSON object")),
    };
    let spec: Vec<String> = v.iter().map(|(k, p)| format!("{k}={p}")).collect();
    let mut profile = crate::faults::FaultProfile::default();
    match profile.apply(&spec.join(",")) {
        Ok(()) => {
            *lock(&app.faults) = profile;
            ok(profile.to_json())
        }
        Err(e) => err(ApiError::unprocessable(e)),
    }
}

async fn fake_account(State(app): Shared, body: Bytes) -> Response {
    let v: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return err(ApiError::new(400, 40010000, "body must be a JSON object")),
    };
    let now = app.clock.now();
    let mut venue = lock(&app.venue);
    if let Some(b) = v.get("trading_blocked").and_then(Value::as_bool) {
        venue.trading_blocked = b;
    }
    if let Some(b) = v.get("account_blocked").and_then(Value::as_bool) {
        venue.account_blocked = b;
    }
    ok(venue.account_json(now))
}

async fn fake_stream_drop(State(app): Shared) -> Response {
    app.stream_gen.send_modify(|g| *g += 1);
    ok(json!({"dropped": true}))
}
