//! Behaviour of the running `alpaca-fake` binary, over real HTTP and websocket.

mod common;

use common::{Fake, OPEN_AT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .expect("decimal")
}

#[tokio::test]
async fn market_order_fills_against_the_quote_and_updates_account_and_positions() {
    let fake = Fake::start(&["--at", OPEN_AT, "--partial-fill-prob", "0"]);
    let (code, quotes) = fake.get("/v2/stocks/quotes/latest?symbols=AAPL&feed=iex").await;
    assert_eq!(code, 200);
    let ask = &quotes["quotes"]["AAPL"]["ap"];
    assert!(ask.is_number(), "market data prices are JSON numbers: {ask}");

    let (code, o) = fake.order("buy-1", "AAPL", "buy", "10", None).await;
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["status"], "new");
    assert_eq!(o["qty"], "10", "trading API quantities are strings");
    assert_eq!(o["filled_qty"], "0");
    let filled = fake.wait_order("buy-1", |o| o["status"] == "filled").await;
    assert_eq!(filled["filled_qty"], "10");
    let px = dec(&filled["filled_avg_price"]);

    let (_, pos) = fake.get("/v2/positions/AAPL").await;
    assert_eq!(pos["qty"], "10");
    assert_eq!(dec(&pos["avg_entry_price"]), px);
    let (_, acct) = fake.get("/v2/account").await;
    assert_eq!(
        dec(&acct["cash"]),
        rust_decimal::Decimal::from(1_000_000) - px * rust_decimal::Decimal::from(10)
    );
    let (_, fills) = fake.get("/v2/account/activities/FILL").await;
    let fills = fills.as_array().expect("array");
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0]["order_id"], filled["id"]);
    assert_eq!(fills[0]["qty"], "10");
    let (_, same) = fake.get("/v2/account/activities?activity_types=FILL").await;
    assert_eq!(same.as_array().map(Vec::len), Some(1));
    let (code, _) = fake.get("/v2/positions/MSFT").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn partial_fill_then_cancel_leaves_the_filled_part() {
    // Every fill opportunity fills half; the matching loop runs only when an
    // order arrives (tick far away), so the test controls each step.
    let fake = Fake::start(&["--at", OPEN_AT, "--partial-fill-prob", "1", "--tick-ms", "60000"]);
    let (code, _) = fake.order("part-1", "MSFT", "buy", "10", None).await;
    assert_eq!(code, 200);
    let o = fake
        .wait_order("part-1", |o| o["status"] == "partially_filled")
        .await;
    assert_eq!(o["filled_qty"], "5");
    let id = o["id"].as_str().unwrap().to_string();
    let (code, _) = fake.delete(&format!("/v2/orders/{id}")).await;
    assert_eq!(code, 204);
    let (_, o) = fake.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(o["status"], "canceled");
    assert_eq!(o["filled_qty"], "5");
    let (code, e) = fake.delete(&format!("/v2/orders/{id}")).await;
    assert_eq!(code, 422, "a final order is not cancelable: {e}");
    let (code, _) = fake
        .delete("/v2/orders/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(code, 404);
    let (_, fills) = fake.get("/v2/account/activities/FILL").await;
    assert_eq!(fills[0]["type"], "partial_fill");
    assert_eq!(fills[0]["leaves_qty"], "5");
}

#[tokio::test]
async fn resting_limit_orders_list_and_cancel_all() {
    let fake = Fake::start(&["--at", OPEN_AT]);
    let (code, o) = fake.order("rest-1", "KO", "buy", "3", Some("1.00")).await;
    assert_eq!(code, 200, "{o}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, open) = fake.get("/v2/orders?status=open").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1));
    assert_eq!(open[0]["status"], "new");
    assert_eq!(open[0]["filled_qty"], "0");
    let (code, res) = fake.delete("/v2/orders").await;
    assert_eq!(code, 207);
    assert_eq!(res[0]["id"], o["id"]);
    assert_eq!(res[0]["status"], 200);
    let (_, open) = fake.get("/v2/orders").await;
    assert_eq!(open.as_array().map(Vec::len), Some(0));
    let (_, closed) = fake.get("/v2/orders?status=closed&symbols=KO").await;
    assert_eq!(closed[0]["status"], "canceled");
}

#[tokio::test]
async fn client_order_id_is_unique_for_ever() {
    let fake = Fake::start(&["--at", OPEN_AT]);
    let (code, o) = fake.order("dup-1", "KO", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 200);
    let (code, e) = fake.order("dup-1", "KO", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 422);
    assert_eq!(
        e,
        json!({"code": 40010001, "message": "client_order_id must be unique"})
    );
    let (code, _) = fake
        .delete(&format!("/v2/orders/{}", o["id"].as_str().unwrap()))
        .await;
    assert_eq!(code, 204);
    let (code, _) = fake.order("dup-1", "KO", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 422, "still refused after a cancel");
    let long = "x".repeat(129);
    let (code, _) = fake.order(&long, "KO", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 422);
    let ok128 = "y".repeat(128);
    let (code, _) = fake.order(&ok128, "KO", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 200);
    let (code, _) = fake
        .get("/v2/orders:by_client_order_id?client_order_id=never-sent")
        .await;
    assert_eq!(code, 404);
    let (_, subs) = fake.get("/_fake/submissions").await;
    assert_eq!(subs["by_client_order_id"]["dup-1"], 3, "every POST is counted");
}

#[tokio::test]
async fn risk_refusals_wash_trade_buying_power_shares_and_asset_facts() {
    let fake = Fake::start(&["--at", OPEN_AT, "--partial-fill-prob", "0", "--cash", "100000"]);
    let (code, _) = fake.order("w-buy", "AAPL", "buy", "10", None).await;
    assert_eq!(code, 200);
    fake.wait_order("w-buy", |o| o["status"] == "filled").await;
    // A resting sell far above the market.
    let (code, _) = fake.order("w-sell", "AAPL", "sell", "5", Some("9999")).await;
    assert_eq!(code, 200);
    // A buy that could trade against it is a wash trade; one below is fine.
    let (code, e) = fake.order("w-cross", "AAPL", "buy", "1", None).await;
    assert_eq!(code, 403);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("potential wash trade detected"),
        "{e}"
    );
    let (code, _) = fake.order("w-cross2", "AAPL", "buy", "1", Some("10000")).await;
    assert_eq!(code, 403);
    let (code, _) = fake.order("w-below", "AAPL", "buy", "1", Some("1.00")).await;
    assert_eq!(code, 200);
    // Shares: 10 held, 5 promised to the resting sell.
    let (code, e) = fake.order("w-over", "AAPL", "sell", "6", Some("9999")).await;
    assert_eq!(code, 403);
    assert!(e["message"].as_str().unwrap().contains("insufficient qty"), "{e}");
    let (code, e) = fake.order("w-bp", "MSFT", "buy", "100000", None).await;
    assert_eq!(
        (code, e["message"].clone()),
        (403, json!("insufficient buying power"))
    );
    let (code, _) = fake.order("w-frac", "BRK.B", "buy", "0.5", None).await;
    assert_eq!(code, 422, "BRK.B is not fractionable");
    let (code, _) = fake.order("w-frac-ok", "MSFT", "buy", "0.5", None).await;
    assert_eq!(code, 200, "MSFT is");
    let (code, _) = fake.order("w-unknown", "NOPE", "buy", "1", None).await;
    assert_eq!(code, 422);
    let (code, _) = fake.order("w-untradable", "VZ", "buy", "1", None).await;
    assert_eq!(code, 422);
    let (_, vz) = fake.get("/v2/assets/VZ").await;
    assert_eq!(vz["tradable"], false);
    let (_, intc) = fake.get("/v2/assets/INTC").await;
    assert_eq!(
        (intc["shortable"].clone(), intc["fractionable"].clone()),
        (json!(false), json!(true))
    );
    let (_, all) = fake.get("/v2/assets").await;
    assert!(all.as_array().unwrap().len() >= 50);
}

#[tokio::test]
async fn request_budget_answers_429_with_retry_after() {
    let fake = Fake::start(&["--requests-per-minute", "5"]);
    for i in 0..5 {
        let r = fake
            .client
            .get(fake.url("/v2/clock"))
            .header("APCA-API-KEY-ID", "k")
            .header("APCA-API-SECRET-KEY", "s")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "request {i} is within the budget");
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
    }
    let r = fake
        .client
        .get(fake.url("/v2/clock"))
        .header("APCA-API-KEY-ID", "k")
        .header("APCA-API-SECRET-KEY", "s")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    // Another key has its own budget.
    let r = fake
        .client
        .get(fake.url("/v2/clock"))
        .header("APCA-API-KEY-ID", "other")
        .header("APCA-API-SECRET-KEY", "s")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn missing_keys_are_forbidden() {
    let fake = Fake::start(&[]);
    let r = fake.client.get(fake.url("/v2/account")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = fake
        .client
        .get(fake.url("/v2/account"))
        .header("APCA-API-KEY-ID", "k")
        .header("APCA-API-SECRET-KEY", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn a_504_after_accept_leaves_the_order_findable_by_client_id() {
    let fake = Fake::start(&["--at", OPEN_AT, "--fault-profile", "submit_504=1"]);
    let (code, _) = fake.order("lost-answer", "AAPL", "buy", "2", None).await;
    assert_eq!(code, 504);
    let o = fake.wait_order("lost-answer", |o| o["status"] == "filled").await;
    assert_eq!(o["qty"], "2");
    let (_, subs) = fake.get("/_fake/submissions").await;
    assert_eq!(subs["by_client_order_id"]["lost-answer"], 1);
    assert_eq!(subs["submissions"][0]["status"], 504);
    // A blind resend is caught by uniqueness, never a second order.
    let (code, _) = fake.order("lost-answer", "AAPL", "buy", "2", None).await;
    assert_eq!(code, 422);
    let (_, all) = fake.get("/v2/orders?status=all").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn read_faults_are_5xx_and_seeded() {
    let statuses = |seed: &'static str| async move {
        let fake = Fake::start(&["--seed", seed, "--fault-profile", "read_5xx=0.5"]);
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(fake.get("/v2/clock").await.0);
        }
        out
    };
    let a = statuses("7").await;
    assert!(a.iter().any(|&c| c >= 500), "{a:?}");
    assert!(a.contains(&200), "{a:?}");
    assert_eq!(a, statuses("7").await, "same seed, same faults");
}

#[tokio::test]
async fn clock_starts_at_the_given_instant_and_can_jump() {
    let fake = Fake::start(&["--at", "2026-12-05T15:00:00Z"]); // a Saturday
    let (_, c) = fake.get("/v2/clock").await;
    assert_eq!(c["is_open"], false);
    assert!(
        c["timestamp"].as_str().unwrap().starts_with("2026-12-05T10:00"),
        "{c}"
    );
    assert!(
        c["next_open"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-07T09:30:00-05:00"),
        "{c}"
    );
    // An order placed while closed waits for the open.
    let (code, o) = fake.order("weekend", "KO", "buy", "1", None).await;
    assert_eq!((code, o["status"].clone()), (200, json!("accepted")));
    let (code, _) = fake
        .post("/_fake/clock", json!({"at": "2026-12-07T15:00:00Z"}))
        .await;
    assert_eq!(code, 200);
    let (_, c) = fake.get("/v2/clock").await;
    assert_eq!(c["is_open"], true);
    fake.wait_order("weekend", |o| o["status"] == "filled").await;
    // A day order left resting expires at the close.
    fake.order("expire-me", "KO", "buy", "1", Some("1.00")).await;
    fake.post("/_fake/clock", json!({"at": "2026-12-07T21:00:01Z"}))
        .await;
    fake.wait_order("expire-me", |o| o["status"] == "expired").await;
}

#[tokio::test]
async fn daily_bars_page_with_next_page_token() {
    let fake = Fake::start(&["--at", OPEN_AT]);
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let mut path = "/v2/stocks/bars?symbols=MSFT,AAPL&timeframe=1Day&start=2026-11-02&end=2026-11-30&limit=7&feed=iex".to_string();
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let (code, page) = fake.get(&path).await;
        assert_eq!(code, 200, "{page}");
        for (sym, bars) in page["bars"].as_object().unwrap() {
            for b in bars.as_array().unwrap() {
                assert!(b["c"].is_number());
                all.push((sym.clone(), b["t"].as_str().unwrap().to_string()));
            }
        }
        token = page["next_page_token"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    // November 2026: 20 sessions (Thanksgiving closed), for each symbol, once.
    assert_eq!(all.len(), 40, "{all:?}");
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 40);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted by symbol then time");
}

async fn ws_connect(
    fake: &Fake,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, _) = tokio_tungstenite::connect_async(fake.ws_url())
        .await
        .expect("ws connect");
    ws
}

/// The next data frame as JSON, insisting it is binary.
async fn next_binary<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame");
        match msg {
            Message::Binary(b) => return serde_json::from_slice(&b).expect("JSON inside"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

async fn authenticate<S>(ws: &mut S)
where
    S: futures_util::Sink<Message>
        + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    <S as futures_util::Sink<Message>>::Error: std::fmt::Debug,
{
    let auth = json!({"action": "authenticate", "data": {"key_id": "k", "secret_key": "s"}});
    ws.send(Message::Text(auth.to_string().into())).await.unwrap();
    let a = next_binary(ws).await;
    assert_eq!(a["stream"], "authorization");
    assert_eq!(a["data"]["status"], "authorized");
    let listen = json!({"action": "listen", "data": {"streams": ["trade_updates"]}});
    ws.send(Message::Text(listen.to_string().into())).await.unwrap();
    let l = next_binary(ws).await;
    assert_eq!(
        l,
        json!({"stream": "listening", "data": {"streams": ["trade_updates"]}})
    );
}

#[tokio::test]
async fn stream_authenticates_sends_binary_trade_updates_and_evicts() {
    let fake = Fake::start(&["--at", OPEN_AT, "--partial-fill-prob", "0"]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    let (code, _) = fake.order("s-1", "AAPL", "buy", "4", None).await;
    assert_eq!(code, 200);
    let new = next_binary(&mut ws).await;
    assert_eq!(new["stream"], "trade_updates");
    assert_eq!(new["data"]["event"], "new");
    assert_eq!(new["data"]["order"]["client_order_id"], "s-1");
    let fill = next_binary(&mut ws).await;
    let d = &fill["data"];
    assert_eq!(d["event"], "fill");
    assert_eq!(d["qty"], "4");
    assert_eq!(d["position_qty"], "4");
    assert_eq!(d["order"]["filled_qty"], "4");
    assert!(d["execution_id"].as_str().is_some_and(|s| s.len() == 36));
    assert!(d["price"].is_string() && d["timestamp"].is_string());
    let (_, fills) = fake.get("/v2/account/activities/FILL").await;
    assert_eq!(fills[0]["price"], d["price"]);

    // A second connection for the key evicts the first.
    let mut ws2 = ws_connect(&fake).await;
    authenticate(&mut ws2).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the first connection was closed");
    fake.order("s-2", "AAPL", "buy", "1", None).await;
    assert_eq!(
        next_binary(&mut ws2).await["data"]["order"]["client_order_id"],
        "s-2"
    );

    // Bad credentials: unauthorized, then closed.
    let mut bad = ws_connect(&fake).await;
    let auth = json!({"action": "authenticate", "data": {"key_id": "", "secret_key": "s"}});
    bad.send(Message::Text(auth.to_string().into())).await.unwrap();
    let a = next_binary(&mut bad).await;
    assert_eq!(a["data"]["status"], "unauthorized");
}

#[tokio::test]
async fn stream_duplicate_fault_sends_every_event_twice() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--partial-fill-prob",
        "0",
        "--fault-profile",
        "stream_dup=1",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    fake.order("d-1", "AAPL", "buy", "1", None).await;
    let a = next_binary(&mut ws).await;
    let b = next_binary(&mut ws).await;
    assert_eq!(a, b);
    assert_eq!(a["data"]["event"], "new");
    let c = next_binary(&mut ws).await;
    let d = next_binary(&mut ws).await;
    assert_eq!(c, d);
    assert_eq!(c["data"]["event"], "fill");
}

#[tokio::test]
async fn bad_flags_exit_2_with_a_message() {
    for args in [
        vec!["--faults", "some"],
        vec!["--fault-profile", "submit_504=2"],
        vec!["--at", "yesterday"],
        vec!["--cash", "-5"],
        vec!["--requests-per-minute", "0"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_alpaca-fake"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn stream_reorder_fault_delivers_the_held_event_after_the_next() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--partial-fill-prob",
        "0",
        "--fault-profile",
        "stream_reorder=1",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    fake.order("r-1", "AAPL", "buy", "1", None).await;
    // `new` is held; `fill` goes out first, then the held `new`.
    let first = next_binary(&mut ws).await;
    let second = next_binary(&mut ws).await;
    assert_eq!(first["data"]["event"], "fill");
    assert_eq!(second["data"]["event"], "new");
    assert_eq!(first["data"]["order"]["id"], second["data"]["order"]["id"]);
}

async fn closed_within<S>(ws: &mut S, secs: u64) -> bool
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn stream_drop_fault_closes_the_socket_and_rest_still_has_the_fill() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--partial-fill-prob",
        "0",
        "--fault-profile",
        "stream_drop=1",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    fake.order("x-1", "AAPL", "buy", "1", None).await;
    assert!(closed_within(&mut ws, 5).await, "dropped on the first event");
    // No replay: the fill is only in REST.
    fake.wait_order("x-1", |o| o["status"] == "filled").await;
    let (_, fills) = fake.get("/v2/account/activities?activity_types=FILL").await;
    assert_eq!(fills.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn stream_silent_fault_keeps_the_socket_open_and_sends_nothing() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--partial-fill-prob",
        "0",
        "--fault-profile",
        "stream_silent=1",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    fake.order("q-1", "AAPL", "buy", "1", None).await;
    fake.wait_order("q-1", |o| o["status"] == "filled").await;
    let got = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await;
    assert!(got.is_err(), "silent: no frame and no close, got {got:?}");
    // A new connection replaces the silent one, which is then closed.
    fake.post("/_fake/faults", json!({})).await;
    let mut ws2 = ws_connect(&fake).await;
    authenticate(&mut ws2).await;
    assert!(closed_within(&mut ws, 5).await);
    fake.order("q-2", "AAPL", "buy", "1", None).await;
    assert_eq!(
        next_binary(&mut ws2).await["data"]["order"]["client_order_id"],
        "q-2"
    );
}

#[tokio::test]
async fn fake_stream_drop_closes_connections_and_text_frames_on_request() {
    let fake = Fake::start(&["--stream-text"]);
    let mut ws = ws_connect(&fake).await;
    let auth = json!({"action": "authenticate", "data": {"key_id": "k", "secret_key": "s"}});
    ws.send(Message::Binary(auth.to_string().into_bytes().into()))
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(msg, Message::Text(_)),
        "text frames with --stream-text: {msg:?}"
    );
    let (code, _) = fake.post("/_fake/stream/drop", json!({})).await;
    assert_eq!(code, 200);
    assert!(closed_within(&mut ws, 5).await);
}

#[tokio::test]
async fn a_paced_client_stays_within_a_strict_budget_and_a_hasty_one_does_not() {
    // 60/min with no burst: one request per second.
    let fake = Fake::start(&["--requests-per-minute", "60", "--burst", "1"]);
    for i in 0..3 {
        let (code, _) = fake.get("/v2/clock").await;
        assert_eq!(code, 200, "paced request {i}");
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    let (a, _) = fake.get("/v2/clock").await;
    let (b, _) = fake.get("/v2/clock").await;
    assert_eq!((a, b), (200, 429), "the second of two back-to-back requests");
    let (_, state) = fake.get("/_fake/state").await;
    assert_eq!(state["counters"]["rate_limited"], 1);
}

#[tokio::test]
async fn ioc_fok_and_a_blocked_account() {
    let fake = Fake::start(&["--at", OPEN_AT, "--partial-fill-prob", "0"]);
    let tif = |cid: &str, tif: &str, limit: &str| {
        json!({"symbol": "KO", "qty": "2", "side": "buy", "type": "limit",
               "time_in_force": tif, "limit_price": limit, "client_order_id": cid})
    };
    // Not marketable: ioc and fok cancel instead of resting.
    let (code, _) = fake.post("/v2/orders", tif("ioc-far", "ioc", "1.00")).await;
    assert_eq!(code, 200);
    fake.wait_order("ioc-far", |o| o["status"] == "canceled").await;
    let (code, _) = fake.post("/v2/orders", tif("fok-far", "fok", "1.00")).await;
    assert_eq!(code, 200);
    fake.wait_order("fok-far", |o| o["status"] == "canceled" && o["filled_qty"] == "0")
        .await;
    // Marketable: they fill.
    let (code, _) = fake.post("/v2/orders", tif("fok-near", "fok", "1000")).await;
    assert_eq!(code, 200);
    fake.wait_order("fok-near", |o| o["status"] == "filled").await;
    // extended_hours only for day limits.
    let mut gtc = tif("ext", "gtc", "1.00");
    gtc["extended_hours"] = json!(true);
    let (code, _) = fake.post("/v2/orders", gtc).await;
    assert_eq!(code, 422);
    // A blocked account takes no orders and says so.
    let (_, acct) = fake
        .post("/_fake/account", json!({"trading_blocked": true}))
        .await;
    assert_eq!(acct["trading_blocked"], true);
    let (code, e) = fake.post("/v2/orders", tif("blocked", "day", "1.00")).await;
    assert_eq!(code, 403, "{e}");
    let (_, acct) = fake.get("/v2/account").await;
    assert_eq!(acct["trading_blocked"], true);
}

#[tokio::test]
async fn reject_after_accept_fault_and_pending_cancel() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--fault-profile",
        "reject_after_accept=1",
        "--cancel-delay-ms",
        "800",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    let (code, o) = fake.order("rej-1", "AAPL", "buy", "1", None).await;
    assert_eq!((code, o["status"].clone()), (200, json!("new")));
    let rejected = fake.wait_order("rej-1", |o| o["status"] == "rejected").await;
    assert!(rejected["failed_at"].is_string());
    assert_eq!(rejected["filled_qty"], "0");
    assert_eq!(next_binary(&mut ws).await["data"]["event"], "new");
    assert_eq!(next_binary(&mut ws).await["data"]["event"], "rejected");

    // A cancel is pending for a while, then done.
    fake.post("/_fake/faults", json!({})).await;
    let (_, o) = fake.order("pc-1", "KO", "buy", "1", Some("1.00")).await;
    let id = o["id"].as_str().unwrap().to_string();
    let (code, _) = fake.delete(&format!("/v2/orders/{id}")).await;
    assert_eq!(code, 204);
    let (_, now) = fake.get(&format!("/v2/orders/{id}")).await;
    assert_eq!(now["status"], "pending_cancel");
    let (_, open) = fake.get("/v2/orders?status=open").await;
    assert_eq!(open[0]["id"], json!(id), "a pending cancel is still open");
    fake.wait_order("pc-1", |o| o["status"] == "canceled").await;
    let events: Vec<Value> = vec![
        next_binary(&mut ws).await,
        next_binary(&mut ws).await,
        next_binary(&mut ws).await,
    ];
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["new", "pending_cancel", "canceled"]);
}

#[tokio::test]
async fn stream_skip_fault_loses_events_on_a_live_connection() {
    let fake = Fake::start(&[
        "--at",
        OPEN_AT,
        "--partial-fill-prob",
        "0",
        "--fault-profile",
        "stream_skip=1",
    ]);
    let mut ws = ws_connect(&fake).await;
    authenticate(&mut ws).await;
    fake.order("sk-1", "AAPL", "buy", "1", None).await;
    fake.wait_order("sk-1", |o| o["status"] == "filled").await;
    let got = tokio::time::timeout(Duration::from_millis(800), ws.next()).await;
    assert!(got.is_err(), "no event and no close: {got:?}");
    // The connection is alive: once the fault is off, events flow again.
    fake.post("/_fake/faults", json!({})).await;
    fake.order("sk-2", "AAPL", "buy", "1", None).await;
    let e = next_binary(&mut ws).await;
    assert_eq!(e["data"]["order"]["client_order_id"], "sk-2");
}

#[tokio::test]
async fn hostile_quantities_and_prices_are_refused_not_panicked_on() {
    let fake = Fake::start(&["--at", OPEN_AT, "--shorting"]);
    let huge = "79228162514264337593543950335";
    for (cid, side, qty, limit) in [
        ("h-1", "buy", huge, None),
        ("h-2", "buy", "1", Some(huge)),
        ("h-3", "sell", huge, None),
        ("h-4", "sell", "1000000000", Some(huge)),
        ("h-5", "buy", "792281625142643375935439503350", None),
        ("h-6", "buy", "-1", None),
        ("h-7", "buy", "0", None),
        ("h-8", "buy", "1.0000000001", None),
        ("h-9", "buy", "1", Some("190.123")),
        ("h-10", "buy", "1e3", None),
    ] {
        let (code, e) = fake.order(cid, "AAPL", side, qty, limit).await;
        assert!(code == 403 || code == 422, "{cid}: {code} {e}");
        assert!(e["message"].is_string(), "{cid}: {e}");
    }
    let (code, e) = fake.order("h-sub", "AAPL", "buy", "1", Some("190.123")).await;
    assert_eq!(code, 422);
    assert!(e["message"].as_str().unwrap().contains("sub-penny"), "{e}");
    let (code, _) = fake.order("h-ok", "PFE", "buy", "1", Some("0.5012")).await;
    assert_eq!(code, 200, "below $1, four decimals are fine");
    // Still serving, state intact.
    let (code, acct) = fake.get("/v2/account").await;
    assert_eq!((code, acct["cash"].clone()), (200, json!("1000000")));
    for path in [
        "/v2/orders?limit=abc",
        "/v2/orders?status=bogus",
        "/v2/orders?after=yesterday",
        "/v2/calendar?start=x",
    ] {
        let (code, e) = fake.get(path).await;
        assert_eq!(code, 422, "{path}: {e}");
    }
    let r = fake
        .client
        .post(fake.url("/v2/orders"))
        .header("APCA-API-KEY-ID", "k")
        .header("APCA-API-SECRET-KEY", "s")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn order_listing_filters_pages_and_sorts() {
    let fake = Fake::start(&["--at", OPEN_AT]);
    let mut created = Vec::new();
    for (i, sym) in ["KO", "PG", "KO"].iter().enumerate() {
        let (code, o) = fake.order(&format!("l-{i}"), sym, "buy", "1", Some("1.00")).await;
        assert_eq!(code, 200);
        created.push(o["created_at"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["client_order_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, desc) = fake.get("/v2/orders?limit=2").await;
    assert_eq!(cids(&desc), ["l-2", "l-1"], "newest first by default");
    let (_, asc) = fake.get("/v2/orders?limit=2&direction=asc").await;
    assert_eq!(cids(&asc), ["l-0", "l-1"]);
    let (_, after) = fake
        .get(&format!(
            "/v2/orders?status=all&direction=asc&after={}",
            created[0].replace(':', "%3A")
        ))
        .await;
    assert_eq!(cids(&after), ["l-1", "l-2"], "after is exclusive");
    let (_, ko) = fake.get("/v2/orders?symbols=KO&direction=asc").await;
    assert_eq!(cids(&ko), ["l-0", "l-2"]);
    let (_, closed) = fake.get("/v2/orders?status=closed").await;
    assert_eq!(cids(&closed), Vec::<String>::new());
}
