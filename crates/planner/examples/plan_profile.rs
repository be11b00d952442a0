//! Runs `plan` on one benchmark world in a loop, for profilers that count
//! instructions (`valgrind --tool=callgrind`), which load from other
//! processes does not disturb:
//!
//! ```text
//! cargo build --profile bench -p keel-planner --example plan_profile
//! valgrind --tool=callgrind --toggle-collect='keel_planner::planner::plan' \
//!     target/release/examples/plan_profile steady 3000 10
//! ```
//!
//! Arguments: `steady` or `build`, the number of symbols, the number of plans.

use keel_planner::plan;
use std::hint::black_box;

#[path = "../tests/support/bench_world.rs"]
mod bench_world;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let invested = args.get(1).map_or(true, |k| k != "build");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let iters: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let w = bench_world::world(n, invested);
    let input = w.input();
    let mut decisions = 0;
    for _ in 0..iters {
        decisions += black_box(plan(black_box(&input), black_box(&w.cfg))).decisions.len();
    }
    println!("{decisions} decisions over {iters} plans");
}
