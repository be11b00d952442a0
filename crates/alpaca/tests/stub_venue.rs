//! The adapter against a scripted local Alpaca (axum on 127.0.0.1): the
//! outcome mapping of real HTTP exchanges, read retries, the stream
//! handshake with binary frames, the silent-socket watchdog and the
//! backfill after every (re)connect.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keel_alpaca::{AlpacaConfig, Credentials};
use keel_broker::BrokerError;
use keel_domain::{Clock, FixedClock, Order, OrderType, Side, Symbol, TimeInForce};
use rust_decimal_macros::dec;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Stub {
    /// Scripted answers per "METHOD path", used first-in first-out, then the default.
    script: HashMap<String, VecDeque<(u16, String)>>,
    /// Default answers per "METHOD path".
    fixed: HashMap<String, (u16, String)>,
    /// Every request seen: "METHOD path?query".
    seen: Vec<String>,
    /// Stream behaviour: frames to send after listening, then stay silent or not.
    after_listen: Vec<String>,
    /// Stream connections accepted.
    ws_connects: u32,
}

type Shared = Arc<Mutex<Stub>>;

async fn any(State(s): State<Shared>, method: Method, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let key = format!("{method} {}", uri.path());
    let mut st = s.lock().unwrap();
    st.seen.push(format!("{method} {}", uri));
    if headers.get("APCA-API-KEY-ID").and_then(|v| v.to_str().ok()) != Some("KEY") {
        return (StatusCode::UNAUTHORIZED, "no key").into_response();
    }
    let answer = st
        .script
        .get_mut(&key)
        .and_then(|q| q.pop_front())
        .or_else(|| st.fixed.get(&key).cloned())
        .unwrap_or((404, r#"{"message":"not found"}"#.into()));
    let mut r = (StatusCode::from_u16(answer.0).unwrap(), answer.1).into_response();
    if answer.0 == 429 {
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
    }
    r
}

async fn stream(State(s): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| talk(socket, s))
}

async fn talk(mut socket: WebSocket, s: Shared) {
    s.lock().unwrap().ws_connects += 1;
    // authenticate -> authorized (binary, like paper) ; listen -> listening (text, like live)
    while let Some(Ok(m)) = socket.recv().await {
        let text = match m {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).to_string(),
            _ => continue,
        };
        if text.contains("authenticate") {
            assert!(text.contains("KEY") && text.contains("SECRET"));
            let _ = socket
                .send(Message::Binary(
                    r#"{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}"#
                        .into(),
                ))
                .await;
        } else if text.contains("listen") {
            let _ = socket
                .send(Message::Text(
                    r#"{"stream":"listening","data":{"streams":["trade_updates"]}}"#.into(),
                ))
                .await;
            let frames = s.lock().unwrap().after_listen.clone();
            for f in frames {
                let _ = socket.send(Message::Binary(f.into_bytes().into())).await;
            }
            // Then go silent: no frames, no pongs (we stop reading), socket open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

async fn start(stub: Stub) -> (Shared, String) {
    let shared: Shared = Arc::new(Mutex::new(stub));
    let app = Router::new()
        .route("/stream", get(stream))
        .fallback(any)
        .with_state(shared.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (shared, format!("127.0.0.1:{}", addr.port()))
}

fn cfg(addr: &str) -> AlpacaConfig {
    AlpacaConfig {
        trading_url: Some(format!("http://{addr}")),
        data_url: Some(format!("http://{addr}")),
        stream_url: Some(format!("ws://{addr}/stream")),
        request_timeout_ms: 1_000,
        stream_silence_secs: 2,
        ..Default::default()
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .unwrap()
            .to_utc(),
    ))
}

fn venue(addr: &str) -> keel_alpaca::Venue {
    keel_alpaca::connect(&cfg(addr), Credentials::new("KEY", "SECRET").unwrap(), clock()).unwrap()
}

fn order() -> Order {
    Order {
        client_order_id: "keel-t-s1-AAPL-buy-0".into(),
        symbol: Symbol::new("AAPL").unwrap(),
        side: Side::Buy,
        qty: dec!(10),
        order_type: OrderType::Limit,
        limit_price: Some(dec!(190.12)),
        time_in_force: TimeInForce::Day,
    }
}

const ORDER: &str = r#"{"id":"o1","client_order_id":"keel-t-s1-AAPL-buy-0","symbol":"AAPL","side":"buy","qty":"10",
  "filled_qty":"10","filled_avg_price":"190.06","type":"limit","limit_price":"190.12","status":"filled",
  "submitted_at":"2026-12-01T14:59:00Z","created_at":"2026-12-01T14:59:00Z","updated_at":"2026-12-01T14:59:30Z"}"#;

fn count(s: &Shared, prefix: &str) -> usize {
    s.lock()
        .unwrap()
        .seen
        .iter()
        .filter(|r| r.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_on_submit_is_unknown_sent_once_and_resolved_by_client_id() {
    let mut stub = Stub::default();
    stub.fixed
        .insert("POST /v2/orders".into(), (504, "gateway timeout".into()));
    stub.fixed
        .insert("GET /v2/orders:by_client_order_id".into(), (200, ORDER.into()));
    stub.fixed.insert(
        "GET /v2/account/activities".into(),
        (
            200,
            r#"[{"id":"a1","activity_type":"FILL","order_id":"o1","qty":"4","cum_qty":"4","price":"190",
                 "transaction_time":"2026-12-01T14:59:10Z","side":"buy","symbol":"AAPL"},
                {"id":"a2","activity_type":"FILL","order_id":"o1","qty":"6","cum_qty":"10","price":"190.1",
                 "transaction_time":"2026-12-01T14:59:30Z","side":"buy","symbol":"AAPL"},
                {"id":"a3","activity_type":"FILL","order_id":"other","qty":"1","cum_qty":"1","price":"5"}]"#
                .into(),
        ),
    );
    let (s, addr) = start(stub).await;
    let v = venue(&addr);
    let b = v.broker();
    let e = b.submit(&order()).await.unwrap_err();
    assert!(e.is_unknown_outcome(), "{e:?}");
    assert_eq!(
        count(&s, "POST /v2/orders"),
        1,
        "a submit is never resent by the adapter"
    );
    let bo = b
        .order_by_client_id("keel-t-s1-AAPL-buy-0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bo.status, keel_domain::OrderStatus::Filled);
    let fills: Vec<(String, String)> = bo
        .fills
        .iter()
        .map(|f| (f.fill_id.clone(), f.qty.to_string()))
        .collect();
    assert_eq!(
        fills,
        [
            ("o1:4".to_string(), "4".to_string()),
            ("o1:10".into(), "6".into())
        ]
    );
    assert_eq!(bo.fills[1].price, dec!(190.1));
    // A second lookup (another cycle) returns the same fills, not more.
    let again = b
        .order_by_client_id("keel-t-s1-AAPL-buy-0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.fills, bo.fills);
    // The request really carried strings.
    assert_eq!(count(&s, "POST /v2/orders"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_rejections_and_throttles_are_told_apart() {
    let mut stub = Stub::default();
    stub.script.insert(
        "POST /v2/orders".into(),
        VecDeque::from([
            (
                422,
                r#"{"code":40010001,"message":"client_order_id must be unique"}"#.into(),
            ),
            (
                403,
                r#"{"code":40310000,"message":"insufficient buying power"}"#.into(),
            ),
            (429, "too many requests".into()),
            (500, "oops".into()),
        ]),
    );
    let (s, addr) = start(stub).await;
    let b = venue(&addr).broker();
    assert_eq!(
        b.submit(&order()).await.unwrap_err(),
        BrokerError::DuplicateClientOrderId
    );
    match b.submit(&order()).await.unwrap_err() {
        BrokerError::Rejected { reason } => assert!(reason.contains("insufficient buying power"), "{reason}"),
        e => panic!("{e:?}"),
    }
    match b.submit(&order()).await.unwrap_err() {
        BrokerError::Retryable { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        e => panic!("{e:?}"),
    }
    assert!(b.submit(&order()).await.unwrap_err().is_unknown_outcome());
    assert_eq!(
        count(&s, "POST /v2/orders"),
        4,
        "one request per submit, no hidden resend"
    );
    // Nothing is sent for an order that cannot be valid.
    let mut bad = order();
    bad.limit_price = None;
    assert!(matches!(
        b.submit(&bad).await.unwrap_err(),
        BrokerError::Rejected { .. }
    ));
    assert_eq!(count(&s, "POST /v2/orders"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_503_or_429_does_not_fail_a_read() {
    let mut stub = Stub::default();
    stub.script.insert(
        "GET /v2/account".into(),
        VecDeque::from([(503, "busy".into()), (429, "slow down".into())]),
    );
    stub.fixed.insert(
        "GET /v2/account".into(),
        (200, r#"{"id":"acc","status":"ACTIVE","cash":"100000.01","equity":"100000.01","buying_power":"200000.02","new_field":1}"#.into()),
    );
    stub.fixed.insert(
        "GET /v2/stocks/quotes/latest".into(),
        (
            200,
            r#"{"quotes":{"AAPL":{"t":"2026-12-01T14:59:59Z","ap":190.13,"bp":190.11,"as":1,"bs":2},
                             "BAD":{"t":"2026-12-01T14:59:59Z","ap":0,"bp":0}}}"#
                .into(),
        ),
    );
    let (s, addr) = start(stub).await;
    let v = venue(&addr);
    let started = Instant::now();
    let a = v.broker().account().await.unwrap();
    assert_eq!(a.cash, dec!(100000.01));
    assert_eq!(count(&s, "GET /v2/account"), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let q = v
        .market()
        .quotes(&[
            Symbol::new("AAPL").unwrap(),
            Symbol::new("BAD").unwrap(),
            Symbol::new("MSFT").unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(q.len(), 1, "an empty book and an unknown symbol give no quote");
    assert_eq!(q[&Symbol::new("AAPL").unwrap()].reference(), dec!(190.12));
    let st = v.stats();
    assert!(st.requests >= 4 && st.throttled >= 1, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_authenticates_backfills_and_reconnects_a_silent_socket() {
    let mut stub = Stub::default();
    stub.fixed.insert("GET /v2/orders".into(), (200, "[]".into()));
    stub.fixed
        .insert("GET /v2/account/activities".into(), (200, "[]".into()));
    stub.fixed.insert(
        "GET /v2/account".into(),
        (200, r#"{"id":"acc","status":"ACTIVE","cash":"1"}"#.into()),
    );
    stub.fixed
        .insert("GET /v2/clock".into(), (200, r#"{"is_open":true}"#.into()));
    stub.after_listen = vec![format!(
        r#"{{"stream":"trade_updates","data":{{"event":"fill","execution_id":"x1","price":"190.06","qty":"10",
            "timestamp":"2026-12-01T14:59:30Z","order":{ORDER}}}}}"#
    )];
    let (s, addr) = start(stub).await;
    let mut v = venue(&addr);
    let status = v.start_stream(&cfg(&addr));
    let b = v.broker();
    // Before the first backfill: blocked, and a submit sends nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status.backfilled() {
        assert!(
            Instant::now() < deadline,
            "never backfilled: {:?}",
            status.last_error()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.trading_blocks().await.unwrap().is_empty());
    // The fill arrives in a binary frame and is logged once.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = b.events_since(0).await.unwrap();
        if ev.iter().any(|(_, e)| e.kind() == "fill") {
            let kinds: Vec<&str> = ev.iter().map(|(_, e)| e.kind()).collect();
            assert_eq!(kinds, ["accepted", "fill"]);
            break;
        }
        assert!(Instant::now() < deadline, "no fill event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The stub then goes silent: the watchdog (2 s) reconnects and backfills again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.lock().unwrap().ws_connects < 2 || status.connects() < 2 {
        assert!(Instant::now() < deadline, "watchdog never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let backfills = count(&s, "GET /v2/orders?status=all");
    assert!(backfills >= 2, "one backfill per connect: {backfills}");
    assert!(
        status.last_error().unwrap_or_default().contains("silent"),
        "{:?}",
        status.last_error()
    );
    // The replayed fill (sent again on the new connection) is not counted twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fills = b
        .events_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind() == "fill")
        .count();
    assert_eq!(fills, 1);
    drop(b);
    drop(v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_clock_or_account_that_disagrees_blocks_trading() {
    let mut stub = Stub::default();
    stub.fixed.insert(
        "GET /v2/account".into(),
        (
            200,
            r#"{"id":"acc","status":"ACTIVE","cash":"1","trading_blocked":true}"#.into(),
        ),
    );
    // keel's calendar says open at 15:00Z on a Tuesday; the venue says closed.
    stub.fixed
        .insert("GET /v2/clock".into(), (200, r#"{"is_open":false}"#.into()));
    let (_s, addr) = start(stub).await;
    let blocks = venue(&addr).broker().trading_blocks().await.unwrap();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert!(
        blocks[0].contains("trading_blocked") && blocks[1].contains("clock"),
        "{blocks:?}"
    );
}
