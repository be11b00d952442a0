//! Pieces every Alpaca call shares: keys, the request budget, retries, hosts
//! and exact number parsing.

pub mod credentials;
pub mod parse;
pub mod rate_limit;
pub mod retry;
pub mod urls;
