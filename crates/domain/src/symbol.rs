//! Validated ticker symbols.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest symbol keel accepts; longer strings are far more likely to be a
/// column mix-up in the allocator's output than a real ticker.
pub const MAX_SYMBOL_LEN: usize = 12;

/// A ticker symbol: 1 to 12 characters of `A-Z`, `0-9`, `.` and `-`, starting
/// with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Symbol(String);

/// Why a string is not a [`Symbol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// The string was empty.
    #[error("symbol is empty")]
    Empty,
    /// The string was longer than [`MAX_SYMBOL_LEN`].
    #[error("symbol {0:?} is longer than {MAX_SYMBOL_LEN} characters")]
    TooLong(String),
    /// The string held a character outside `A-Z0-9.-`, or did not start with a letter.
    #[error("symbol {0:?} must be uppercase letters, digits, '.' or '-', starting with a letter")]
    BadChar(String),
}

impl Symbol {
    /// Validates `s` as a symbol. Lowercase is refused rather than folded: a
    /// silently rewritten symbol is a different instruction than the one sent.
    pub fn new(s: &str) -> Result<Self, SymbolError> {
        if s.is_empty() {
            return Err(SymbolError::Empty);
        }
        if s.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong(s.chars().take(40).collect()));
        }
        let ok_first = s.as_bytes()[0].is_ascii_uppercase();
        let ok_rest = s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok_first || !ok_rest {
            return Err(SymbolError::BadChar(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    /// The symbol text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl std::str::FromStr for Symbol {
    type Err = SymbolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::new(s)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Symbol::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_tickers() {
        for s in ["AAPL", "BRK.B", "BF-B", "A", "ABCDEFGHIJKL"] {
            assert!(Symbol::new(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn refuses_bad_tickers() {
        assert_eq!(Symbol::new(""), Err(SymbolError::Empty));
        assert!(matches!(
            Symbol::new("ABCDEFGHIJKLM"),
            Err(SymbolError::TooLong(_))
        ));
        for s in ["aapl", "AA PL", "1ABC", ".A", "A$", "<b>", "ÄBC"] {
            assert!(matches!(Symbol::new(s), Err(SymbolError::BadChar(_))), "{s}");
        }
    }
}
