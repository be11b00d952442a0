//! Decoding frames. Paper sends binary frames with JSON inside, live may send
//! text; both go through the same decoder. Nothing here panics on input.

use super::messages::{Incoming, TradeUpdate};
use serde::Deserialize;

/// Longest frame decoded (an order update is a few KB).
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
}

/// Decodes one frame's bytes (binary or text).
pub fn decode(bytes: &[u8]) -> Incoming {
    if bytes.len() > MAX_FRAME {
        return Incoming::Other(format!("frame of {} bytes ignored", bytes.len()));
    }
    let env: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => return Incoming::Other(format!("not JSON: {e}")),
    };
    match env.stream.as_deref() {
        Some("authorization") => {
            let status = env.data.get("status").and_then(|s| s.as_str()).unwrap_or("");
            if status == "authorized" {
                Incoming::Authorized
            } else {
                let why = env
                    .data
                    .get("error")
                    .or_else(|| env.data.get("message"))
                    .and_then(|s| s.as_str())
                    .unwrap_or(status);
                Incoming::Unauthorized(why.chars().take(200).collect())
            }
        }
        Some("listening") => Incoming::Listening(
            env.data
                .get("streams")
                .and_then(|s| s.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        ),
        Some("trade_updates") => match TradeUpdate::deserialize(&env.data) {
            Ok(u) => Incoming::Trade(Box::new(u)),
            Err(e) => Incoming::BadTrade(e.to_string().chars().take(200).collect()),
        },
        other => Incoming::Other(format!("stream {:?}", other.unwrap_or(""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::messages::TradeEvent;

    fn update(event: &str) -> String {
        format!(
            r#"{{"stream":"trade_updates","data":{{"event":"{event}","execution_id":"x1","price":"190.12","qty":"2",
               "position_qty":"2","timestamp":"2026-12-01T15:00:00.123456Z","surprise":1,
               "order":{{"id":"o1","client_order_id":"c1","symbol":"AAPL","side":"buy","qty":"10","filled_qty":"2",
                        "filled_avg_price":"190.12","type":"limit","limit_price":"191","status":"partially_filled"}}}}}}"#
        )
    }

    #[test]
    fn every_documented_event_and_unknown_ones_decode_from_text_or_binary() {
        for (name, v) in TradeEvent::KNOWN {
            let text = update(name);
            for bytes in [text.as_bytes().to_vec(), text.clone().into_bytes()] {
                match decode(&bytes) {
                    Incoming::Trade(u) => {
                        assert_eq!(u.event, v);
                        assert_eq!(u.order.filled().to_string(), "2");
                        assert_eq!(u.price.unwrap().to_string(), "190.12");
                    }
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        match decode(update("warp_drive").as_bytes()) {
            Incoming::Trade(u) => assert_eq!(u.event, TradeEvent::Other("warp_drive".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn control_messages_and_garbage() {
        assert!(matches!(
            decode(br#"{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}"#),
            Incoming::Authorized
        ));
        assert!(matches!(
            decode(br#"{"stream":"authorization","data":{"status":"unauthorized","action":"authenticate"}}"#),
            Incoming::Unauthorized(_)
        ));
        match decode(br#"{"stream":"listening","data":{"streams":["trade_updates"]}}"#) {
            Incoming::Listening(s) => assert_eq!(s, vec!["trade_updates"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode(b"\xff\x00garbage"), Incoming::Other(_)));
        assert!(matches!(
            decode(br#"{"stream":"trade_updates","data":{"event":"fill"}}"#),
            Incoming::BadTrade(_)
        ));
        assert!(matches!(decode(&vec![b' '; MAX_FRAME + 1]), Incoming::Other(_)));
    }
}
