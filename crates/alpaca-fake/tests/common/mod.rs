//! Spawns the real `alpaca-fake` binary and talks to it over loopback.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A trading session instant (Tuesday 2026-12-01, 10:00 New York).
pub const OPEN_AT: &str = "2026-12-01T15:00:00Z";

pub struct Fake {
    child: Child,
    pub addr: String,
    pub client: reqwest::Client,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fake {
    pub fn start(args: &[&str]) -> Fake {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alpaca-fake"))
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn alpaca-fake");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("alpaca-fake listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Fake { child, addr, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/stream", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .header("APCA-API-KEY-ID", "key")
            .header("APCA-API-SECRET-KEY", "secret")
            .send()
            .await
            .expect("GET");
        read(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("APCA-API-KEY-ID", "key")
            .header("APCA-API-SECRET-KEY", "secret")
            .json(&body)
            .send()
            .await
            .expect("POST");
        read(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .header("APCA-API-KEY-ID", "key")
            .header("APCA-API-SECRET-KEY", "secret")
            .send()
            .await
            .expect("DELETE");
        read(r).await
    }

    pub async fn order(
        &self,
        cid: &str,
        symbol: &str,
        side: &str,
        qty: &str,
        limit: Option<&str>,
    ) -> (u16, Value) {
        let mut body = serde_json::json!({
            "symbol": symbol, "qty": qty, "side": side,
            "type": if limit.is_some() { "limit" } else { "market" },
            "time_in_force": "day", "client_order_id": cid,
        });
        if let Some(l) = limit {
            body["limit_price"] = Value::String(l.to_string());
        }
        self.post("/v2/orders", body).await
    }

    /// Polls the order until `pred` holds (or panics after about 10 s).
    pub async fn wait_order(&self, cid: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let (code, o) = self
                .get(&format!("/v2/orders:by_client_order_id?client_order_id={cid}"))
                .await;
            if code == 200 && pred(&o) {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("order {cid} never reached the expected state");
    }
}

async fn read(r: reqwest::Response) -> (u16, Value) {
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (code, v)
}
