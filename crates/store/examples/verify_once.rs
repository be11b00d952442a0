//! Times `verify_log` over a store file, in full and then from the verified
//! state the full run returns (what start-up does), for profiling:
//! `cargo run --release -p keel-store --example verify_once -- PATH`.
use keel_store::{SqliteStore, Store};
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: verify_once PATH");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = SqliteStore::open(&path).await.expect("open");
        let (seq, head) = s.audit_head().await.expect("head");
        let cp = keel_store::Checkpoint::new(None, "bench", seq, &head, chrono::DateTime::UNIX_EPOCH);
        let t = Instant::now();
        let (r, state) = s.verify_log_from(Some(&cp), None).await.expect("verify");
        eprintln!(
            "full: {:.2} s, ok={} events={} failures={:?}",
            t.elapsed().as_secs_f64(),
            r.is_ok(),
            r.events,
            r.failures()
        );
        let runs: usize = std::env::var("RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        for _ in 0..runs {
            let t = Instant::now();
            let (r, _) = s
                .verify_log_from(Some(&cp), state.as_ref())
                .await
                .expect("verify");
            eprintln!(
                "from state: {:.2} s, ok={} replayed_from={}",
                t.elapsed().as_secs_f64(),
                r.is_ok(),
                r.replayed_from
            );
        }
        s.close().await;
    });
}
