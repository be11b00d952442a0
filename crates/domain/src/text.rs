//! Operator text (kill reasons, file names, messages from outside) made safe
//! to log: one line, no terminal control sequences, bounded length.

use std::fmt;

/// Longest operator text written to a log line, in characters.
pub const MAX_LOGGED_CHARS: usize = 1_000;

/// Displays `s` escaped for a log line: newlines, carriage returns, ANSI
/// escapes and every other control or bidirectional-override character are
/// written as `\n`, `\r` or `\u{..}`, so a reason cannot forge a second log
/// line or recolour a terminal; text beyond [`MAX_LOGGED_CHARS`] is cut with `…`.
pub fn log_safe(s: &str) -> LogSafe<'_> {
    LogSafe(s)
}

/// See [`log_safe`].
#[derive(Clone, Copy)]
pub struct LogSafe<'a>(&'a str);

/// Characters that reorder or hide text on display (Trojan Source).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i >= MAX_LOGGED_CHARS {
                return f.write_str("…");
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || is_bidi_control(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_line_breaks_and_ansi() {
        let s = "fat finger\n2026-12-01T00:00:00Z  INFO kill switch released\x1b[2J\r\u{202e}x";
        let out = log_safe(s).to_string();
        assert_eq!(
            out,
            "fat finger\\n2026-12-01T00:00:00Z  INFO kill switch released\\u{1b}[2J\\r\\u{202e}x"
        );
        assert_eq!(
            log_safe("plain reason: Ünïcode ok").to_string(),
            "plain reason: Ünïcode ok"
        );
        assert_eq!(
            log_safe("a\\nb").to_string(),
            "a\\\\nb",
            "a literal backslash-n stays distinguishable"
        );
    }

    #[test]
    fn bounded() {
        let long = "x".repeat(10 * MAX_LOGGED_CHARS);
        assert_eq!(log_safe(&long).to_string().chars().count(), MAX_LOGGED_CHARS + 1);
    }

    proptest! {
        #[test]
        fn never_a_control_character(s in any::<String>()) {
            let out = log_safe(&s).to_string();
            prop_assert!(!out.chars().any(|c| c.is_control() || is_bidi_control(c)), "{out:?}");
        }
    }
}
