//! Worker crashes at any I/O boundary.
//!
//! Every store and broker call the worker makes passes through a
//! [`CrashSwitch`]. When armed at call `n`, the `n`-th call of the step either
//! never happens (the process died before it) or happens and its answer is
//! lost (the process died right after a commit or a send). From then on every
//! call fails, so the dead worker can change nothing more; the simulator then
//! drops it and starts a new one from the persisted store, as a restart after
//! `kill -9` would.

use std::sync::Mutex;

/// What a wrapped call must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Carry on normally.
    Pass,
    /// Die before the call: it never happens.
    Before,
    /// Make the call, then die: its effect stands, its answer is lost.
    After,
    /// Already dead.
    Dead,
}

#[derive(Debug, Default)]
struct State {
    /// Calls seen since the last arm.
    calls: u64,
    /// Die at this call.
    at: Option<u64>,
    /// Die after (true) or before (false) that call.
    after: bool,
    /// Where it died, once it has.
    died: Option<String>,
    /// Calls by name (profiling).
    pub by_name: std::collections::BTreeMap<String, u64>,
    /// Wall time by name (profiling).
    pub time_by_name: std::collections::BTreeMap<String, std::time::Duration>,
}

/// The shared crash trigger of one worker incarnation.
#[derive(Debug, Default)]
pub(crate) struct CrashSwitch(Mutex<State>);

impl CrashSwitch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere; the counters are still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms a crash at the `at`-th call from now.
    pub fn arm(&self, at: u64, after: bool) {
        let mut s = self.state();
        s.calls = 0;
        s.at = Some(at);
        s.after = after;
    }

    /// Disarms without crashing.
    pub fn disarm(&self) {
        self.state().at = None;
    }

    /// Back to life (a new incarnation after restart).
    pub fn reset(&self) {
        let mut s = self.state();
        let by_name = std::mem::take(&mut s.by_name);
        let time_by_name = std::mem::take(&mut s.time_by_name);
        *s = State::default();
        s.by_name = by_name;
        s.time_by_name = time_by_name;
    }

    /// Adds the wall time of a call (profiling).
    pub fn timed(&self, what: &str, since: std::time::Instant) {
        let key = what.split(' ').next().unwrap_or(what).to_string();
        *self.state().time_by_name.entry(key).or_default() += since.elapsed();
    }

    /// Wall time by call name so far (profiling).
    pub fn time_by_name(&self) -> std::collections::BTreeMap<String, std::time::Duration> {
        self.state().time_by_name.clone()
    }

    /// Calls by name so far (profiling).
    pub fn calls_by_name(&self) -> std::collections::BTreeMap<String, u64> {
        self.state().by_name.clone()
    }

    /// Where the worker died, if it has.
    pub fn died(&self) -> Option<String> {
        self.state().died.clone()
    }

    /// Called on entry to every wrapped call named `what`; `mutating` calls
    /// can die after taking effect, reads only before.
    pub fn enter(&self, what: &str, mutating: bool) -> Gate {
        let mut s = self.state();
        if std::env::var_os("KEEL_SIM_PROFILE").is_some() {
            let key = what.split(' ').next().unwrap_or(what).to_string();
            *s.by_name.entry(key).or_default() += 1;
        }
        if s.died.is_some() {
            return Gate::Dead;
        }
        let n = s.calls;
        s.calls += 1;
        if s.at != Some(n) {
            return Gate::Pass;
        }
        let after = s.after && mutating;
        s.died = Some(format!(
            "{} {what} (call {n} of the step)",
            if after { "after" } else { "before" }
        ));
        s.at = None;
        if after {
            Gate::After
        } else {
            Gate::Before
        }
    }
}

/// The message every call of a dead worker fails with.
pub(crate) const DEAD: &str = "worker process crashed (simulated)";
