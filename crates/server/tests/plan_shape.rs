//! The guard-decision page reads the planner's `Plan` JSON field by field.
//! This pins the fixture (and so the page's parsing) to the real planner
//! types: every recorded plan must deserialise as `keel_planner::Plan`, and
//! the page's reduction of it must agree with the planner's own verdicts.

mod common;

use keel_planner::{Outcome, Plan};
use keel_store::Store;

#[tokio::test]
async fn recorded_plans_are_planner_plans() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = common::open_store(dir.path()).await;
    let seeded = common::seed(store.as_ref()).await;
    let cycles = store.cycles(100).await.unwrap_or_default();
    assert_eq!(cycles.len(), seeded.cycles.len());
    for c in cycles {
        let raw = store
            .guard_decisions(&c.cycle_id)
            .await
            .unwrap_or_default()
            .unwrap_or_else(|| panic!("{}: no decisions", c.cycle_id));
        let plan: Plan = serde_json::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("{}: not a planner Plan: {e}", c.cycle_id));
        // Round-trip through the planner's own serialisation, as the worker writes it.
        let written = serde_json::to_value(&plan).unwrap_or_default();
        let view = keel_server::CycleDecisions::from_plan(c.clone(), Some(&written));
        let blocked = plan
            .decisions
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Block { .. }))
            .count();
        let resized = plan
            .decisions
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Resize { .. }))
            .count();
        assert_eq!((view.blocked, view.resized), (blocked, resized), "{}", c.cycle_id);
        assert_eq!(view.passed + view.blocked + view.resized, plan.decisions.len());
        assert_eq!(view.actions.len(), blocked + resized + plan.plan_blocks.len());
        for a in view.actions.iter().filter(|a| a.action != "plan_block") {
            let d = plan
                .decisions
                .iter()
                .find(|d| Some(d.symbol.as_str()) == a.symbol.as_deref())
                .unwrap_or_else(|| panic!("{a:?}"));
            match &d.outcome {
                Outcome::Block { reason, detail, .. } | Outcome::Resize { reason, detail, .. } => {
                    assert_eq!(a.reason.as_deref(), Some(reason.as_str()));
                    assert_eq!(a.detail.as_deref(), Some(detail.as_str()));
                }
                Outcome::Pass => panic!("a pass listed as an action"),
            }
        }
    }
}
