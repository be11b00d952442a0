//! Planning cost for large books: `plan` with every guard enabled.
//!
//! The worlds live in `tests/support/bench_world.rs` (shared with the golden
//! test, which pins their plans byte for byte). Two worlds per size:
//! * `steady`: a book already near its targets (±3% drift per name, some
//!   working orders, cooldowns, ADV for all names) whose targets changed for
//!   one name in ten: the daily case, where most deltas die in the no-trade
//!   band and about a tenth of the book trades;
//! * `build`: the same targets from all cash, so every symbol becomes an
//!   order that runs the whole pipeline (the worst case).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keel_planner::{plan, Outcome};
use std::hint::black_box;

#[path = "../tests/support/bench_world.rs"]
mod bench_world;
use bench_world::world;

fn bench_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    for n in [500usize, 3_000] {
        for (name, invested) in [("steady", true), ("build", false)] {
            let w = world(n, invested);
            let input = w.input();
            let sample = plan(&input, &w.cfg);
            let mut reasons = std::collections::BTreeMap::<String, usize>::new();
            for d in &sample.decisions {
                let key = match &d.outcome {
                    Outcome::Pass => "pass".to_string(),
                    Outcome::Resize { reason, .. } => format!("resize:{reason}"),
                    Outcome::Block { reason, .. } => format!("block:{reason}"),
                };
                *reasons.entry(key).or_default() += 1;
            }
            eprintln!("plan/{name}/{n}: {reasons:?}");
            eprintln!(
                "plan/{name}/{n}: {} decisions, {} orders, vol_scale {}",
                sample.decisions.len(),
                sample.orders.len(),
                sample.vol_scale
            );
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| plan(black_box(&input), black_box(&w.cfg)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
