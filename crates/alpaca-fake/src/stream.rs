//! The `trade_updates` websocket at `/stream`: authenticate, listen, then
//! every order event of the account, in binary frames like Alpaca's paper
//! venue (text with `--stream-text`). One connection per key: a newly
//! authenticated one closes the others. No replay: events that happen while
//! nobody listens are gone, as with Alpaca.

use crate::app::{lock, App};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub async fn upgrade(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    ws.on_upgrade(move |socket| run(socket, app))
}

fn frame(app: &App, v: &Value) -> Message {
    let text = v.to_string();
    if app.stream_text {
        Message::Text(text.into())
    } else {
        Message::Binary(text.into_bytes().into())
    }
}

fn frame_str(app: &App, text: String) -> Message {
    if app.stream_text {
        Message::Text(text.into())
    } else {
        Message::Binary(text.into_bytes().into())
    }
}

/// The JSON of a text or binary frame; `None` for anything else.
fn decode(msg: &Message) -> Option<Value> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        Message::Binary(b) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

async fn next_event(rx: &mut Option<broadcast::Receiver<String>>) -> Option<String> {
    match rx {
        Some(r) => loop {
            match r.recv().await {
                Ok(s) => return Some(s),
                // A slow reader loses events, like a real socket would.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        },
        None => std::future::pending().await,
    }
}

async fn run(mut socket: WebSocket, app: Arc<App>) {
    // Authenticate first, within a bounded wait.
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let authed = match first {
        Ok(Some(Ok(msg))) => decode(&msg).is_some_and(|v| {
            let d = &v["data"];
            v["action"] == "authenticate"
                && d["key_id"].as_str().is_some_and(|s| !s.is_empty())
                && d["secret_key"].as_str().is_some_and(|s| !s.is_empty())
        }),
        _ => false,
    };
    let status = if authed { "authorized" } else { "unauthorized" };
    let reply = json!({"stream": "authorization", "data": {"status": status, "action": "authenticate"}});
    if socket.send(frame(&app, &reply)).await.is_err() || !authed {
        let _ = socket.send(Message::Close(None)).await;
        return;
    }
    // This connection now owns the key's stream; older ones close.
    let mut my_gen = 0;
    app.stream_gen.send_modify(|g| {
        *g += 1;
        my_gen = *g;
    });
    {
        let mut c = lock(&app.counters);
        c.stream_connections += 1;
        if my_gen > 1 {
            c.stream_evictions += 1;
        }
    }
    let mut gen_rx = app.stream_gen.subscribe();
    let mut events: Option<broadcast::Receiver<String>> = None;
    // An event held back by the reorder fault, and when to flush it anyway.
    let mut held: Option<(String, tokio::time::Instant)> = None;
    let ping_every = Duration::from_secs(app.stream_ping_secs.max(1));
    let mut next_ping = tokio::time::Instant::now() + ping_every;
    loop {
        let flush_at = held
            .as_ref()
            .map(|h| h.1)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            changed = gen_rx.changed() => {
                if changed.is_err() || *gen_rx.borrow() != my_gen {
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: "connection replaced".into(),
                    }))).await;
                    return;
                }
            }
            incoming = socket.recv() => {
                let msg = match incoming {
                    Some(Ok(m)) => m,
                    _ => return,
                };
                if matches!(msg, Message::Close(_)) {
                    return;
                }
                let Some(v) = decode(&msg) else { continue };
                if v["action"] == "listen" {
                    let wanted: Vec<&str> = v["data"]["streams"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let listening = wanted.contains(&"trade_updates");
                    if listening && events.is_none() {
                        events = Some(app.events.subscribe());
                    } else if !listening {
                        events = None;
                    }
                    let streams: Vec<&str> = if listening { vec!["trade_updates"] } else { vec![] };
                    let ack = json!({"stream": "listening", "data": {"streams": streams}});
                    if socket.send(frame(&app, &ack)).await.is_err() {
                        return;
                    }
                }
            }
            ev = next_event(&mut events) => {
                let Some(ev) = ev else { return };
                let faults = *lock(&app.faults);
                if app.chance(faults.stream_drop) {
                    // Gone without a close frame, like a dropped TCP link.
                    return;
                }
                if app.chance(faults.stream_silent) {
                    silent(&mut gen_rx, my_gen).await;
                    return;
                }
                if app.chance(faults.stream_skip) {
                    continue;
                }
                let mut out = Vec::with_capacity(3);
                if held.is_none() && app.chance(faults.stream_reorder) {
                    held = Some((ev, tokio::time::Instant::now() + Duration::from_secs(1)));
                    continue;
                }
                out.push(ev.clone());
                if let Some((h, _)) = held.take() {
                    out.push(h);
                }
                if app.chance(faults.stream_dup) {
                    out.push(ev);
                }
                for e in out {
                    if socket.send(frame_str(&app, e)).await.is_err() {
                        return;
                    }
                }
            }
            _ = tokio::time::sleep_until(next_ping), if app.stream_ping_secs > 0 => {
                next_ping = tokio::time::Instant::now() + ping_every;
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(flush_at), if held.is_some() => {
                if let Some((h, _)) = held.take() {
                    if socket.send(frame_str(&app, h)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A silent socket: open, reading and sending nothing (not even pongs), until
/// a newer connection replaces it or ten minutes pass.
async fn silent(gen_rx: &mut tokio::sync::watch::Receiver<u64>, my_gen: u64) {
    let wait = async {
        loop {
            if gen_rx.changed().await.is_err() || *gen_rx.borrow() != my_gen {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(600), wait).await;
}
