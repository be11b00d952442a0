//! The binary's error: which exit code a failure maps to.

use std::fmt;

/// A failure of a `keel` command.
#[derive(Debug)]
pub enum CliError {
    /// Bad input or usage: exit code 2, nothing changed.
    Input(anyhow::Error),
    /// A runtime failure: exit code 1.
    Runtime(anyhow::Error),
    /// The kill switch stopped the cycle: exit code 3 (so a cron job sees
    /// that nothing was traded, and why).
    Killed(String),
}

/// Exit code of a cycle the kill switch stopped (README "Exit codes").
pub const EXIT_KILLED: u8 = 3;

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Runtime(_) => 1,
            CliError::Killed(_) => EXIT_KILLED,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Input(e) | CliError::Runtime(e) => write!(f, "{e:#}"),
            CliError::Killed(reason) => write!(
                f,
                "kill switch engaged ({reason}): the cycle sent nothing; `keel resume --reason ...` releases it"
            ),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Runtime(e)
    }
}

/// Shorthand for bad-input errors.
pub fn input(msg: impl fmt::Display) -> CliError {
    CliError::Input(anyhow::anyhow!("{msg}"))
}
