//! The one error type of intake: every refusal says where (source and field),
//! what (the offending value) and why, so an operator can fix the allocator's
//! output without reading keel's source.

use std::fmt;

/// Longest rendering of an offending value; a 16 MiB string in an error
/// message would bury the reason and flood logs.
const MAX_VALUE_CHARS: usize = 80;
/// Longest rendering of a field path (keys are user data and can be huge too).
const MAX_FIELD_CHARS: usize = 120;
/// Reasons are ours, but may quote user data; cap them as a backstop.
const MAX_REASON_CHARS: usize = 400;

/// A refused target set.
///
/// Displays as `{source}: {field} = {value}: {reason}`. All parts are
/// sanitised: control and invisible formatting characters are escaped, so a
/// hostile file cannot rewrite the operator's terminal, and `value` is
/// truncated to about 80 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeError {
    /// Where the set came from: a file path, `<stdin>`, `http`, ….
    pub source: String,
    /// Which part is at fault, as a JSON path (`targets[3].weight`), a CSV
    /// location (`line 4.weight`), an option (`--id`) or a text position.
    pub field: String,
    /// The offending value as written (JSON strings keep their quotes), or
    /// `(missing)`.
    pub value: String,
    /// Why it was refused and, where possible, how to fix it.
    pub reason: String,
}

impl IntakeError {
    /// Builds a sanitised error.
    pub(crate) fn new(
        source: &str,
        field: impl AsRef<str>,
        value: impl AsRef<str>,
        reason: impl AsRef<str>,
    ) -> Self {
        Self {
            source: sanitize(source, usize::MAX),
            field: sanitize(field.as_ref(), MAX_FIELD_CHARS),
            value: sanitize(value.as_ref(), MAX_VALUE_CHARS),
            reason: sanitize(reason.as_ref(), MAX_REASON_CHARS),
        }
    }
}

impl fmt::Display for IntakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} = {}: {}",
            self.source, self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for IntakeError {}

/// Characters that do not print but change how a terminal shows the text
/// around them (bidi overrides, zero-width characters, BOM).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Escapes control and invisible characters and truncates to `max` chars.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push_str("...");
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_format() {
        let e = IntakeError::new("t.json", "targets[3].weight", "\"five\"", "not a number");
        assert_eq!(
            e.to_string(),
            "t.json: targets[3].weight = \"five\": not a number"
        );
    }

    #[test]
    fn escapes_and_truncates() {
        let long = "x".repeat(500);
        let e = IntakeError::new("s", "f\u{1b}[2J", format!("a\nb\u{202e}{long}"), "r\u{7}");
        assert_eq!(e.field, "f\\u{001b}[2J");
        assert!(e.value.starts_with("a\\nb\\u{202e}x"));
        assert!(e.value.ends_with("..."));
        assert!(e.value.chars().count() <= MAX_VALUE_CHARS + 20);
        assert_eq!(e.reason, "r\\u{0007}");
        assert!(!e.to_string().chars().any(char::is_control));
    }
}
