//! Property tests: intake never panics, accepts exactly what was meant, and
//! never turns damaged input into a different accepted portfolio.

mod common;

use chrono::TimeDelta;
use common::*;
use keel_domain::{Decimal, Symbol, Target, TargetSet};
use keel_intake::{parse_csv, parse_json, IntakeConfig};
use proptest::prelude::*;

/// Every accepted set, whatever the input, must satisfy the intake rules.
fn assert_invariants(set: &TargetSet, cfg: &IntakeConfig) {
    assert!(!set.id.is_empty() && set.id.len() <= 64);
    assert!(
        set.targets.windows(2).all(|w| w[0].symbol < w[1].symbol),
        "sorted, unique"
    );
    assert!(set.targets.len() <= cfg.max_targets);
    for t in &set.targets {
        assert!(t.weight.abs() <= Decimal::ONE);
        assert!(cfg.allow_short || !t.weight.is_sign_negative() || t.weight.is_zero());
    }
    assert!(set.gross() <= cfg.max_gross);
    assert!(set.liquidate || set.gross() >= cfg.liquidate_floor);
}

/// A generated target set: its JSON text and the set it must parse to.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    expected: TargetSet,
}

/// How one weight is written; all must parse to the same exact value.
fn write_weight(w: Decimal, mantissa: i64, style: u8) -> String {
    match style {
        0 => w.to_string(),                    // plain number, trailing zeros kept (0.050000)
        1 => format!("\"{}\"", w.normalize()), // decimal string
        2 => format!("{mantissa}e-6"),         // exponent number
        _ => format!("\"{mantissa}E-6\""),     // exponent string
    }
}

prop_compose! {
    fn generated(force_liquidate: bool)(
        id in "[A-Za-z0-9._:-]{1,64}",
        as_of_offset in -3600i64..=60,
        valid_for in proptest::option::of(0i64..10_000),
        liquidate in proptest::option::of(any::<bool>()),
        entries in proptest::collection::btree_map("[A-Z][A-Z0-9.-]{0,11}", (0i64..=50_000, 0u8..4), 0..20),
        pretty in any::<bool>(),
        seed in any::<u64>(),
    ) -> Generated {
        let liquidate = if force_liquidate { Some(true) } else { liquidate };
        let as_of = now() + TimeDelta::seconds(as_of_offset);
        let valid_until = valid_for.map(|s| as_of.max(now()) + TimeDelta::seconds(s));
        let mut items: Vec<(String, String)> = entries
            .iter()
            .map(|(sym, (m, style))| (sym.clone(), write_weight(Decimal::new(*m, 6), *m, *style)))
            .collect();
        // Deterministic shuffle so the input order differs from the sorted output.
        let n = items.len();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            items.swap(i, (s >> 33) as usize % (i + 1));
        }
        let sep = if pretty { ",\n    " } else { "," };
        let targets: Vec<String> = items
            .iter()
            .map(|(sym, w)| format!(r#"{{"symbol":"{sym}","weight":{w}}}"#))
            .collect();
        let mut fields = vec![
            format!(r#""id": "{id}""#),
            format!(r#""as_of": "{}""#, as_of.to_rfc3339()),
            format!(r#""targets": [{}]"#, targets.join(sep)),
        ];
        if let Some(v) = valid_until {
            fields.push(format!(r#""valid_until": "{}""#, v.to_rfc3339()));
        }
        if let Some(l) = liquidate {
            fields.push(format!(r#""liquidate": {l}"#));
        }
        let text = if pretty {
            format!("{{\n  {}\n}}\n", fields.join(",\n  "))
        } else {
            format!("{{{}}}", fields.join(","))
        };
        let expected = TargetSet {
            id,
            as_of,
            valid_until,
            targets: entries
                .iter()
                .map(|(sym, (m, _))| Target { symbol: Symbol::new(sym).unwrap(), weight: Decimal::new(*m, 6) })
                .collect(),
            liquidate: liquidate.unwrap_or(false),
        };
        Generated { text, expected }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let short = IntakeConfig { allow_short: true, ..IntakeConfig::default() };
        for cfg in [cfg(), short] {
            if let Ok(set) = parse_json("fuzz", &bytes, &cfg, now()) {
                assert_invariants(&set, &cfg);
            }
            if let Ok(set) = parse_csv("fuzz", &bytes, "id", &cfg, now()) {
                assert_invariants(&set, &cfg);
            }
        }
    }

    #[test]
    fn json_like_text_never_panics(text in r#"[\[\]{}",:0-9a-zA-Z.eE+\- \n\\]{0,300}"#) {
        let _ = parse_json("fuzz", text.as_bytes(), &cfg(), now());
        let _ = parse_csv("fuzz", text.as_bytes(), "id", &cfg(), now());
    }

    #[test]
    fn generated_sets_round_trip(g in generated(false)) {
        let result = parse_json("gen", g.text.as_bytes(), &cfg(), now());
        let gross: Decimal = g.expected.gross();
        if gross >= cfg().liquidate_floor || g.expected.liquidate {
            let set = result.map_err(|e| TestCaseError::fail(format!("{e}\n{}", g.text)))?;
            prop_assert_eq!(&set, &g.expected);
            // Same value, same bytes: weights come out normalised whatever their spelling.
            for (got, want) in set.targets.iter().zip(&g.expected.targets) {
                prop_assert_eq!(got.weight.to_string(), want.weight.normalize().to_string());
            }
            assert_invariants(&set, &cfg());
            // A serialised TargetSet is itself valid intake and reads back unchanged.
            let bytes = serde_json::to_vec(&set).unwrap();
            prop_assert_eq!(parse_json("again", &bytes, &cfg(), now()).unwrap(), set);
        } else {
            let e = result.expect_err("near-empty set without liquidate must be refused");
            prop_assert_eq!(e.field.as_str(), "targets");
            prop_assert!(e.reason.contains("near-empty"));
        }
    }

    #[test]
    fn csv_of_generated_sets_matches_json(g in generated(true)) {
        let mut csv = String::from("symbol,weight\n");
        for t in &g.expected.targets {
            csv.push_str(&format!("{},{}\n", t.symbol, t.weight));
        }
        match parse_csv("gen.csv", csv.as_bytes(), "id", &cfg(), now()) {
            Ok(set) => {
                prop_assert_eq!(&set.targets, &g.expected.targets);
                prop_assert!(g.expected.gross() >= cfg().liquidate_floor);
            }
            Err(e) => prop_assert!(e.reason.contains("CSV target sets cannot liquidate"), "{}", e),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn truncation_never_yields_a_different_set(g in generated(true)) {
        let full = parse_json("gen", g.text.as_bytes(), &cfg(), now())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bytes = g.text.as_bytes();
        let closing = bytes.iter().rposition(|&b| b == b'}').unwrap();
        for cut in 0..bytes.len() {
            match parse_json("cut", &bytes[..cut], &cfg(), now()) {
                Err(_) => {}
                Ok(set) => {
                    // Only trailing whitespace may be lost, and then nothing changes.
                    prop_assert!(cut > closing, "accepted a prefix of {} bytes", cut);
                    prop_assert_eq!(&set, &full);
                }
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic_or_break_invariants(
        g in generated(false),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = g.text.into_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(set) = parse_json("corrupt", &bytes, &cfg(), now()) {
            assert_invariants(&set, &cfg());
        }
    }
}
