//! The trade_updates stream: messages, decoding, the order/fill tracker it
//! feeds, and the connection loop (authenticate, listen, watchdog,
//! reconnect with backoff, REST backfill after every connect).

pub mod client;
pub mod handler;
pub mod messages;
pub mod parse;
