//! `Worker::dry_run` against the cycle that follows it at the same instant,
//! over seeded random histories (target sets, partial fills, time steps,
//! kill switch): whenever the dry run says the cycle would send, the cycle
//! sends exactly its orders (client order ids, sides, quantities, limit
//! prices); when it says it would not, the cycle sends nothing. The dry run
//! never writes to the store.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{PaperBroker, PaperConfig};
use keel_domain::{Clock, Decimal, FixedClock, KillSource, Symbol, Target, TargetSet};
use keel_planner::RiskConfig;
use keel_store::{SqliteStore, Store};
use keel_worker::{KillSwitchConfig, Worker, WorkerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

const NAMES: &[&str] = &["AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO", "PG", "WMT"];

/// SplitMix64: a tiny seeded generator, enough for scenario choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = keel_broker::universe::splitmix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type Sent = BTreeMap<String, (String, Decimal, Option<Decimal>)>;

async fn venue_orders(b: &PaperBroker) -> Sent {
    b.orders()
        .await
        .unwrap()
        .into_iter()
        .map(|o| {
            (
                o.client_order_id,
                (o.side.as_str().to_string(), o.qty, o.limit_price),
            )
        })
        .collect()
}

fn random_set(rng: &mut Rng, id: &str, now: DateTime<Utc>) -> TargetSet {
    let mut targets: Vec<Target> = Vec::new();
    for n in NAMES {
        if rng.below(3) > 0 {
            let w = Decimal::new(rng.below(14) as i64 + 4, 2); // 0.04 ..= 0.17
            targets.push(Target {
                symbol: Symbol::new(n).unwrap(),
                weight: w,
            });
        }
    }
    if targets.len() < 4 {
        targets = NAMES[..5]
            .iter()
            .map(|n| Target {
                symbol: Symbol::new(n).unwrap(),
                weight: Decimal::new(15, 2),
            })
            .collect();
    }
    TargetSet {
        id: id.to_string(),
        as_of: now - Duration::seconds(30),
        valid_until: None,
        targets,
        liquidate: false,
    }
}

async fn scenario(seed: u64) -> (u32, u32) {
    let mut rng = Rng(seed);
    let session = keel_calendar::session_containing("2026-11-24T15:00:00Z".parse().unwrap()).unwrap();
    let mut now = session.open + Duration::minutes(20);
    let clock = Arc::new(FixedClock::new(now));
    let paper = Arc::new(
        PaperBroker::open_in_memory(
            PaperConfig {
                account_id: "dry".into(),
                seed,
                partial_fill_prob: 0.4,
                ..Default::default()
            },
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .unwrap(),
    );
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let worker = Worker::new(
        "dry",
        store.clone(),
        paper.clone(),
        paper.clone(),
        clock.clone(),
        RiskConfig::default(),
        WorkerConfig {
            retry_backoff_ms: 1,
            ..Default::default()
        },
        KillSwitchConfig::default(),
    );
    let (mut sending, mut checked) = (0, 0);
    let mut next_set = 0;
    for _step in 0..14 {
        now += Duration::seconds(30 + rng.below(600) as i64);
        if now > session.close - Duration::minutes(20) {
            break;
        }
        clock.set(now);
        match rng.below(10) {
            0..=3 => {
                let set = random_set(&mut rng, &format!("s{seed}-{next_set}"), now);
                next_set += 1;
                worker.submit_target_set(set).await.unwrap();
            }
            4 if store.kill_switch().await.unwrap().is_none() => {
                // Recorded first; a cancel racing a fill may then fail, as at any venue.
                let _ = worker.engage_kill("scenario", KillSource::Cli).await;
            }
            5 if store.kill_switch().await.unwrap().is_some() => {
                worker.release_kill("scenario", KillSource::Cli).await.unwrap();
            }
            _ => {}
        }
        let Some(set) = store.queued_target_sets().await.unwrap().into_iter().next() else {
            continue;
        };
        let head = store.audit_head().await.unwrap();
        let dry = worker.dry_run(&set).await.unwrap();
        assert_eq!(
            store.audit_head().await.unwrap(),
            head,
            "seed {seed}: the dry run wrote"
        );
        let before = venue_orders(&paper).await;
        let outcome = worker.cycle().await;
        let sent: Sent = venue_orders(&paper)
            .await
            .into_iter()
            .filter(|(id, _)| !before.contains_key(id))
            .collect();
        let planned: Sent = if dry.would_send {
            dry.plan
                .orders
                .iter()
                .map(|o| {
                    (
                        o.client_order_id.clone(),
                        (o.side.as_str().to_string(), o.qty, o.limit_price),
                    )
                })
                .collect()
        } else {
            Sent::new()
        };
        assert_eq!(
            sent, planned,
            "seed {seed} at {now}: cycle {outcome:?} sent other orders than the dry run said \
             (holds {:?}, notes {:?})",
            dry.holds, dry.notes
        );
        checked += 1;
        if dry.would_send {
            sending += 1;
        }
    }
    (checked, sending)
}

#[tokio::test]
async fn the_cycle_sends_exactly_what_the_dry_run_said() {
    let (mut checked, mut sending) = (0, 0);
    for seed in 0..12 {
        let (c, s) = scenario(seed).await;
        checked += c;
        sending += s;
    }
    println!("{checked} dry runs checked against their cycle, {sending} with orders");
    assert!(
        checked >= 40 && sending >= 10,
        "{checked} checked, {sending} sending"
    );
}
