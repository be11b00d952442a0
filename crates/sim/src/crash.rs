//! Worker crashes at any I/O boundary.
//!
//! Every store and broker call the worker makes passes through a
//! [`CrashSwitch`]. When armed at call `n`, the `n`-th call of the step either
//! never happens (the process died before it) or happens and its answer is
//! lost (the process died right after a commit or a send). From then on every
//! call fails, so the dead worker can change nothing more; the simulator then
//! drops it and starts a new one from the persisted store, as a restart after
//! `kill -9` would.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Calls and wall time by call name, with `KEEL_SIM_PROFILE` (reporting only).
    profile: BTreeMap<String, (u64, Duration)>,
}

/// The shared crash trigger of the worker (reset for each incarnation).
#[derive(Debug)]
pub(crate) struct CrashSwitch {
    state: Mutex<State>,
    /// `KEEL_SIM_PROFILE` set: count and time every call.
    profiling: bool,
}

impl Default for CrashSwitch {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            profiling: std::env::var_os("KEEL_SIM_PROFILE").is_some(),
        }
    }
}

/// The call name without its detail (`store.append order_intent` -> `store.append`).
fn name(what: &str) -> &str {
    what.split(' ').next().unwrap_or(what)
}

impl CrashSwitch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere; the counters are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        let profile = std::mem::take(&mut s.profile);
        *s = State {
            profile,
            ..State::default()
        };
    }

    /// Where the worker died, if it has.
    pub fn died(&self) -> Option<String> {
        self.state().died.clone()
    }

    /// Called on entry to every wrapped call named `what`; `mutating` calls
    /// can die after taking effect, reads only before.
    pub fn enter(&self, what: &str, mutating: bool) -> Gate {
        let mut s = self.state();
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

    /// Records a completed call's wall time (profiling only).
    pub fn timed(&self, what: &str, since: Instant) {
        if self.profiling {
            let e = since.elapsed();
            let mut s = self.state();
            let p = s.profile.entry(name(what).to_string()).or_default();
            p.0 += 1;
            p.1 += e;
        }
    }

    /// Calls and wall time by call name so far (profiling only).
    pub fn profile(&self) -> BTreeMap<String, (u64, Duration)> {
        self.state().profile.clone()
    }
}

/// The message every call of a dead worker fails with.
pub(crate) const DEAD: &str = "worker process crashed (simulated)";
