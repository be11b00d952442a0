//! Runs `plan` on one benchmark world in a loop, for profilers that count
//! instructions (`valgrind --tool=callgrind`), which load from other
//! processes does not disturb, and prints the fastest and median wall time
//! per plan (a quick check next to `cargo bench`):
//!
//! ```text
//! cargo build --profile bench -p keel-planner --example plan_profile
//! valgrind --tool=callgrind --toggle-collect='plan_profile::run' \
//!     target/release/examples/plan_profile steady 3000 10
//! ```
//!
//! Arguments: `steady` or `build`, the number of symbols, the number of plans.
//! `run` includes dropping the plan, as the benchmark's timing does.

use keel_planner::{plan, PlanInput, RiskConfig};
use std::hint::black_box;
use std::time::Instant;

#[path = "../tests/support/bench_world.rs"]
mod bench_world;

#[inline(never)]
fn run(input: &PlanInput<'_>, cfg: &RiskConfig) -> usize {
    let p = plan(black_box(input), black_box(cfg));
    black_box(&p);
    p.decisions.len()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let invested = args.get(1).is_none_or(|k| k != "build");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let iters: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let w = bench_world::world(n, invested);
    let input = w.input();
    let mut times = Vec::with_capacity(iters);
    let mut decisions = 0;
    for _ in 0..iters {
        let t = Instant::now();
        decisions += run(&input, &w.cfg);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{decisions} decisions over {iters} plans; fastest {:?}, median {:?}",
        times[0],
        times[times.len() / 2]
    );
}
