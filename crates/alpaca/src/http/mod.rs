//! REST: the HTTP client, Alpaca's models and the outcome classification.

pub mod client;
pub mod models;
pub mod parse;
