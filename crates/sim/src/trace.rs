//! The recent-event trace printed with a violation: the last few things the
//! simulator did and the audit events they produced, oldest first. A step's
//! header is only kept when something happened in the step, so idle cycles
//! do not push the interesting lines out.

use std::collections::VecDeque;

/// Lines kept; enough to see the step that failed and the ones before it.
const KEEP: usize = 48;

/// Notable lines (faults, crashes, outages, operator actions) kept separately,
/// so a cause several steps back is still shown.
const KEEP_NOTABLE: usize = 12;

/// Prefixes of notable lines.
const NOTABLE: &[&str] = &["  fault:", "  CRASH", "  OUTAGE", "  operator", "  keel starts"];

#[derive(Debug)]
pub(crate) struct Trace {
    lines: VecDeque<String>,
    /// Notable lines with the step they happened in.
    notable: VecDeque<String>,
    /// The current step's header, until the step logs something.
    header: Option<String>,
    /// The current step's header, for notable lines.
    current: String,
    /// `KEEL_SIM_TRACE` set: echo every line to stderr as it happens.
    echo: bool,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            lines: VecDeque::new(),
            notable: VecDeque::new(),
            header: None,
            current: String::new(),
            echo: std::env::var_os("KEEL_SIM_TRACE").is_some(),
        }
    }
}

impl Trace {
    /// Starts a step.
    pub fn step(&mut self, header: String) {
        if self.echo {
            eprintln!("{header}");
        }
        self.header = Some(header);
        self.current = self.header.clone().unwrap_or_default();
    }

    /// Logs a line of the current step.
    pub fn push(&mut self, line: String) {
        if self.echo {
            eprintln!("{line}");
        }
        if NOTABLE.iter().any(|p| line.starts_with(p)) {
            if self.notable.len() == KEEP_NOTABLE {
                self.notable.pop_front();
            }
            self.notable
                .push_back(format!("{} {}", self.current, line.trim_start()));
        }
        if let Some(h) = self.header.take() {
            self.keep(h);
        }
        self.keep(line);
    }

    fn keep(&mut self, line: String) {
        if self.lines.len() == KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, oldest first, with the current step's header last if
    /// nothing was logged in it yet (it is where the violation happened).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.notable.is_empty() {
            out.push("notable events (faults, crashes, operator):".to_string());
            out.extend(self.notable.iter().map(|l| format!("  {l}")));
            out.push("last events:".to_string());
        }
        out.extend(self.lines.iter().cloned().chain(self.header.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_steps_leave_no_trace_but_the_last_one_shows() {
        let mut t = Trace::default();
        t.step("[1]".into());
        t.push("a".into());
        t.step("[2]".into());
        t.step("[3]".into());
        assert_eq!(t.lines(), vec!["[1]", "a", "[3]"]);
        t.push("  fault: x".into());
        assert_eq!(
            t.lines()[..3],
            [
                "notable events (faults, crashes, operator):",
                "  [3] fault: x",
                "last events:"
            ]
        );
        for i in 0..100 {
            t.push(format!("x{i}"));
        }
        assert_eq!(t.lines().len(), KEEP + 3);
        assert_eq!(t.lines().last().map(String::as_str), Some("x99"));
    }
}
