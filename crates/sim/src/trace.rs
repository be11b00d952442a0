//! The recent-event trace printed with a violation: the last few things the
//! simulator did and the audit events they produced, oldest first.

use std::collections::VecDeque;

/// Lines kept; enough to see the step that failed and the one before it.
const KEEP: usize = 48;

#[derive(Debug)]
pub(crate) struct Trace {
    lines: VecDeque<String>,
    /// `KEEL_SIM_TRACE` set: echo every line to stderr as it happens.
    echo: bool,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            lines: VecDeque::new(),
            echo: std::env::var_os("KEEL_SIM_TRACE").is_some(),
        }
    }
}

impl Trace {
    pub fn push(&mut self, line: String) {
        if self.echo {
            eprintln!("{line}");
        }
        if self.lines.len() == KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}
