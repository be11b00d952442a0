//! JSON intake: one test per refusal rule, plus what must be accepted.

mod common;

use common::*;
use keel_domain::{Symbol, TargetSet};
use keel_intake::{parse_json, IntakeConfig};

// ---------- accepted ----------

#[test]
fn accepts_good_set_exactly_and_sorted() {
    let set = json_ok(
        r#"{
          "id": "2026-11-24-close",
          "as_of": "2026-11-24T20:40:00Z",
          "valid_until": "2026-11-24T20:58:00Z",
          "targets": [
            {"symbol": "MSFT", "weight": 0.2},
            {"symbol": "AAPL", "weight": "0.1"},
            {"symbol": "BRK.B", "weight": 0.3},
            {"symbol": "TSLA", "weight": 0}
          ]
        }"#,
    );
    assert_eq!(set.id, "2026-11-24-close");
    assert_eq!(set.as_of, ts("2026-11-24T20:40:00Z"));
    assert_eq!(set.valid_until, Some(ts("2026-11-24T20:58:00Z")));
    assert!(!set.liquidate);
    let symbols: Vec<&str> = set.targets.iter().map(|t| t.symbol.as_str()).collect();
    assert_eq!(symbols, ["AAPL", "BRK.B", "MSFT", "TSLA"]);
    let aapl = Symbol::new("AAPL").unwrap();
    let msft = Symbol::new("MSFT").unwrap();
    // Exact decimal arithmetic: no binary floating point anywhere on the way in.
    assert_eq!(set.weight(&aapl) + set.weight(&msft), dec("0.3"));
    assert_eq!((set.weight(&aapl) + set.weight(&msft)).to_string(), "0.3");
    assert_eq!(set.weight(&Symbol::new("BRK.B").unwrap()), dec("0.3"));
    // Zero weights are explicit exits and are kept.
    assert_eq!(set.weight(&Symbol::new("TSLA").unwrap()), dec("0"));
    assert_eq!(set.gross(), dec("0.6"));
}

#[test]
fn point_one_plus_point_two_is_point_three() {
    let set = json_ok(&with_targets(
        r#"[{"symbol": "A", "weight": 0.1}, {"symbol": "B", "weight": "0.2"}, {"symbol": "C", "weight": 0.3}]"#,
    ));
    let w = |s: &str| set.weight(&Symbol::new(s).unwrap());
    assert_eq!(w("A") + w("B"), w("C"));
    assert_eq!(set.net(), dec("0.6"));
}

#[test]
fn number_forms_are_exact_and_normalised() {
    let set = json_ok(&with_targets(
        r#"[{"symbol": "A", "weight": 5e-2}, {"symbol": "B", "weight": "0.050"},
            {"symbol": "C", "weight": 0.40000000000000000000000000000000000}, {"symbol": "D", "weight": "1E-1"},
            {"symbol": "E", "weight": -0}]"#,
    ));
    let shown: Vec<String> = set.targets.iter().map(|t| t.weight.to_string()).collect();
    assert_eq!(shown, ["0.05", "0.05", "0.4", "0.1", "0"]);
}

#[test]
fn same_portfolio_written_differently_gives_identical_bytes() {
    let a = json_ok(&with_targets(
        r#"[{"symbol": "B", "weight": 0.30}, {"symbol": "A", "weight": "0.3"}]"#,
    ));
    let b = json_ok(&with_targets(
        r#"[{"symbol": "A", "weight": 3e-1}, {"symbol": "B", "weight": "0.3"}]"#,
    ));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn accepts_bom_offsets_null_valid_until_and_liquidate() {
    let text = "\u{feff}{\"id\": \"x\", \"as_of\": \"2026-11-24T15:40:00-05:00\", \"valid_until\": null, \
                \"liquidate\": true, \"targets\": []}";
    let set = json_ok(text);
    assert_eq!(set.as_of, ts("2026-11-24T20:40:00Z"));
    assert_eq!(set.valid_until, None);
    assert!(set.liquidate);
    assert!(set.targets.is_empty());
}

#[test]
fn serialised_target_set_reads_back() {
    let set = json_ok(&with_extra(
        r#"[{"symbol": "MSFT", "weight": 0.5}, {"symbol": "AAPL", "weight": "0.25"}]"#,
        r#""valid_until": "2026-11-24T21:00:00Z""#,
    ));
    let bytes = serde_json::to_vec(&set).unwrap();
    let back = parse_json("roundtrip", &bytes, &cfg(), now()).unwrap();
    assert_eq!(back, set);
}

#[test]
fn as_of_boundaries_are_inclusive() {
    let at = |as_of: &str| format!(r#"{{"id": "x", "as_of": "{as_of}", "liquidate": true, "targets": []}}"#);
    json_ok(&at("2026-11-24T19:45:00Z")); // exactly max_target_age_secs old
    json_ok(&at("2026-11-24T20:46:00Z")); // exactly max_future_skew_secs ahead
    json_ok(&with_extra(
        "[]",
        r#""liquidate": true, "valid_until": "2026-11-24T20:45:00Z""#,
    )); // expires now
}

#[test]
fn shorts_accepted_when_allowed_and_counted_in_gross() {
    let cfg = IntakeConfig {
        allow_short: true,
        ..IntakeConfig::default()
    };
    let text = with_targets(r#"[{"symbol": "A", "weight": 0.5}, {"symbol": "B", "weight": "-0.4"}]"#);
    let set = parse_json("t.json", text.as_bytes(), &cfg, now()).unwrap();
    assert_eq!(set.weight(&Symbol::new("B").unwrap()), dec("-0.4"));
    // Market-neutral: net 0 but gross 0.6, which is not near-empty.
    let text = with_targets(r#"[{"symbol": "A", "weight": 0.3}, {"symbol": "B", "weight": "-0.3"}]"#);
    let set = parse_json("t.json", text.as_bytes(), &cfg, now()).unwrap();
    assert_eq!(set.net(), dec("0"));
    let text = with_targets(r#"[{"symbol": "A", "weight": 0.6}, {"symbol": "B", "weight": "-0.6"}]"#);
    let e = json_err_with(&text, &cfg);
    assert_refusal(&e, "targets", "gross 1.2", "exceeds max_gross (1)");
}

// ---------- refused: document level ----------

#[test]
fn refuses_non_utf8() {
    let mut bytes = weight_set("0.1").into_bytes();
    bytes.splice(10..10, [b'\n', 0xFF, 0xFE]);
    let e = parse_json("t.json", &bytes, &cfg(), now()).unwrap_err();
    assert_refusal(&e, "line 2 column 1 (byte 11)", "0xFF", "not valid UTF-8");
}

#[test]
fn refuses_malformed_json_with_line_and_column() {
    let e = json_err("{\n  \"id\": \"x\",\n  \"as_of\" \"2026-11-24T20:40:00Z\"\n}");
    assert_refusal(
        &e,
        "line 3 column 11",
        "  \"as_of\" \"2026-11-24T20:40:00",
        "malformed JSON: expected `:`",
    );
}

#[test]
fn refuses_truncated_json() {
    let e = json_err("{\"id\": \"x\", \"as_of\": \"2026-11-24T20:40:00Z\", \"targets\": [{\"symbol\": \"A\"");
    assert_refusal(
        &e,
        "line 1 column 71",
        "(end of input)",
        "truncated or incomplete JSON",
    );
    let e = json_err("");
    assert_refusal(&e, "line 1 column 0", "(end of input)", "truncated");
}

#[test]
fn refuses_trailing_garbage() {
    let e = json_err(&format!("{} {{}}", weight_set("0.1")));
    assert!(e.reason.contains("trailing characters"), "{e}");
}

#[test]
fn refuses_bare_nan_and_infinity_with_a_hint() {
    let e = json_err(&weight_set("NaN"));
    assert!(e.field.starts_with("line 1 column "), "{e}");
    assert!(e.value.contains("NaN"), "{e}");
    assert!(e.reason.contains("NaN and Infinity are not JSON numbers"), "{e}");
    let e = json_err(&weight_set("-Infinity"));
    assert!(
        e.value.contains("-Infinity") && e.reason.contains("Infinity"),
        "{e}"
    );
}

#[test]
fn refuses_non_object_top_level() {
    for (text, value) in [
        ("[]", "[]"),
        ("42", "42"),
        ("\"x\"", "\"x\""),
        ("null", "null"),
        ("true", "true"),
    ] {
        let e = json_err(text);
        assert_refusal(&e, "(top level)", value, "must be a JSON object");
    }
}

#[test]
fn refuses_unknown_top_level_field_with_hint() {
    let e = json_err(&with_extra("[]", r#""liquidiate": true"#));
    assert_refusal(
        &e,
        "liquidiate",
        "true",
        "unknown field (did you mean \"liquidate\"?)",
    );
    let e = json_err(&with_extra("[]", r#""comment": "hi""#));
    assert_refusal(
        &e,
        "comment",
        "\"hi\"",
        "unknown field; a target set has only id, as_of",
    );
}

#[test]
fn refuses_duplicate_json_keys() {
    let e = json_err(&with_extra("[]", r#""liquidate": false, "liquidate": true"#));
    assert_refusal(&e, "liquidate", "\"liquidate\"", "duplicate key");
    let e = json_err(&with_targets(
        r#"[{"symbol": "A", "weight": 0.9, "weight": 0.1}]"#,
    ));
    assert_refusal(&e, "targets[0].weight", "\"weight\"", "duplicate key");
}

#[test]
fn refuses_oversized_input() {
    let cfg = IntakeConfig {
        max_file_bytes: 10,
        ..IntakeConfig::default()
    };
    let e = json_err_with(&weight_set("0.1"), &cfg);
    assert_refusal(
        &e,
        "size",
        &format!("{} bytes", weight_set("0.1").len()),
        "max_file_bytes (10)",
    );
}

// ---------- refused: id ----------

#[test]
fn refuses_bad_ids() {
    let doc =
        |id: &str| format!(r#"{{{id} "as_of": "2026-11-24T20:40:00Z", "liquidate": true, "targets": []}}"#);
    assert_refusal(&json_err(&doc("")), "id", "(missing)", "required");
    assert_refusal(&json_err(&doc(r#""id": "","#)), "id", "\"\"", "must not be empty");
    assert_refusal(&json_err(&doc(r#""id": 7,"#)), "id", "7", "must be a string");
    assert_refusal(
        &json_err(&doc(r#""id": null,"#)),
        "id",
        "null",
        "must be a string",
    );
    let long = "a".repeat(65);
    assert_refusal(
        &json_err(&doc(&format!(r#""id": "{long}","#))),
        "id",
        &format!("\"{long}\""),
        "longer than 64",
    );
    assert_refusal(
        &json_err(&doc(r#""id": "a b","#)),
        "id",
        "\"a b\"",
        "contains ' '",
    );
    assert_refusal(
        &json_err(&doc(r#""id": "x/../y","#)),
        "id",
        "\"x/../y\"",
        "contains '/'",
    );
    assert_refusal(
        &json_err(&doc(r#""id": "a\u0007","#)),
        "id",
        "\"a\\u0007\"",
        "contains '\\u{7}'",
    );
}

// ---------- refused: timestamps ----------

#[test]
fn refuses_bad_as_of() {
    let doc = |as_of: &str| format!(r#"{{"id": "x", {as_of} "liquidate": true, "targets": []}}"#);
    assert_refusal(&json_err(&doc("")), "as_of", "(missing)", "required");
    assert_refusal(
        &json_err(&doc(r#""as_of": "yesterday","#)),
        "as_of",
        "\"yesterday\"",
        "RFC 3339",
    );
    assert_refusal(
        &json_err(&doc(r#""as_of": "2026-11-24","#)),
        "as_of",
        "\"2026-11-24\"",
        "RFC 3339",
    );
    assert_refusal(
        &json_err(&doc(r#""as_of": 1764016800,"#)),
        "as_of",
        "1764016800",
        "RFC 3339",
    );
    let e = json_err(&doc(r#""as_of": "2026-11-24T19:44:59Z","#));
    assert_refusal(
        &e,
        "as_of",
        "\"2026-11-24T19:44:59Z\"",
        "stale target set: computed 3601s before now",
    );
    let e = json_err(&doc(r#""as_of": "2026-11-24T20:46:01Z","#));
    assert_refusal(
        &e,
        "as_of",
        "\"2026-11-24T20:46:01Z\"",
        "future-dated target set: 61s after now",
    );
}

#[test]
fn refuses_bad_valid_until() {
    let doc = |vu: &str| with_extra("[]", &format!(r#""liquidate": true, "valid_until": {vu}"#));
    assert_refusal(&json_err(&doc("\"soon\"")), "valid_until", "\"soon\"", "RFC 3339");
    assert_refusal(&json_err(&doc("17")), "valid_until", "17", "RFC 3339");
    let e = json_err(&doc("\"2026-11-24T20:39:59Z\""));
    assert_refusal(&e, "valid_until", "\"2026-11-24T20:39:59Z\"", "before as_of");
    let e = json_err(&doc("\"2026-11-24T20:44:59Z\""));
    assert_refusal(&e, "valid_until", "\"2026-11-24T20:44:59Z\"", "expired");
}

// ---------- refused: targets list ----------

#[test]
fn refuses_missing_or_non_array_targets() {
    let e = json_err(r#"{"id": "x", "as_of": "2026-11-24T20:40:00Z"}"#);
    assert_refusal(&e, "targets", "(missing)", "required");
    let e = json_err(&with_targets(r#"{"AAPL": 0.5}"#));
    assert_refusal(&e, "targets", r#"{"AAPL":0.5}"#, "must be an array");
    let e = json_err(&with_targets("null"));
    assert_refusal(&e, "targets", "null", "must be an array");
}

#[test]
fn refuses_too_many_targets() {
    let cfg = IntakeConfig {
        max_targets: 2,
        ..IntakeConfig::default()
    };
    let text = with_targets(
        r#"[{"symbol": "A", "weight": 0.2}, {"symbol": "B", "weight": 0.2}, {"symbol": "C", "weight": 0.2}]"#,
    );
    assert_refusal(
        &json_err_with(&text, &cfg),
        "targets",
        "3 targets",
        "more than max_targets (2)",
    );
}

#[test]
fn refuses_malformed_target_entries() {
    let e = json_err(&with_targets(r#"[{"symbol": "A", "weight": 0.6}, "B"]"#));
    assert_refusal(&e, "targets[1]", "\"B\"", "must be an object");
    let e = json_err(&with_targets(r#"[["A", 0.6]]"#));
    assert_refusal(&e, "targets[0]", "[\"A\",0.6]", "must be an object");
    let e = json_err(&with_targets(r#"[{"weight": 0.6}]"#));
    assert_refusal(&e, "targets[0].symbol", "(missing)", "required");
    let e = json_err(&with_targets(r#"[{"symbol": "A"}]"#));
    assert_refusal(&e, "targets[0].weight", "(missing)", "required");
    let e = json_err(&with_targets(r#"[{"symbol": "A", "wieght": 0.6}]"#));
    assert_refusal(
        &e,
        "targets[0].wieght",
        "0.6",
        "unknown field (did you mean \"weight\"?); a target has only",
    );
    let e = json_err(&with_targets(
        r#"[{"symbol": "A", "weight": 0.6, "side": "buy"}]"#,
    ));
    assert_refusal(&e, "targets[0].side", "\"buy\"", "unknown field");
}

#[test]
fn refuses_bad_symbols() {
    let doc = |sym: &str| with_targets(&format!(r#"[{{"symbol": {sym}, "weight": 0.6}}]"#));
    assert_refusal(
        &json_err(&doc("\"aapl\"")),
        "targets[0].symbol",
        "\"aapl\"",
        "lowercase is refused",
    );
    assert_refusal(
        &json_err(&doc("\"\"")),
        "targets[0].symbol",
        "\"\"",
        "symbol is empty",
    );
    assert_refusal(
        &json_err(&doc("\"ABCDEFGHIJKLM\"")),
        "targets[0].symbol",
        "\"ABCDEFGHIJKLM\"",
        "longer than 12",
    );
    assert_refusal(
        &json_err(&doc("\"AA PL\"")),
        "targets[0].symbol",
        "\"AA PL\"",
        "not a valid symbol",
    );
    assert_refusal(
        &json_err(&doc("42")),
        "targets[0].symbol",
        "42",
        "must be a string",
    );
    assert_refusal(
        &json_err(&doc("null")),
        "targets[0].symbol",
        "null",
        "must be a string",
    );
}

#[test]
fn refuses_duplicate_symbols_naming_both() {
    let e = json_err(&with_targets(
        r#"[{"symbol": "A", "weight": 0.3}, {"symbol": "B", "weight": 0.2}, {"symbol": "A", "weight": 0.1}]"#,
    ));
    assert_refusal(
        &e,
        "targets[2].symbol",
        "\"A\"",
        "duplicate symbol: also at targets[0].symbol",
    );
}

// ---------- refused: weights ----------

#[test]
fn refuses_text_and_non_numeric_weights() {
    let f = "targets[1].weight";
    assert_refusal(
        &json_err(&weight_set("\"five\"")),
        f,
        "\"five\"",
        "not a decimal number",
    );
    assert_refusal(&json_err(&weight_set("\"\"")), f, "\"\"", "not a decimal number");
    assert_refusal(
        &json_err(&weight_set("\"5%\"")),
        f,
        "\"5%\"",
        "not a decimal number",
    );
    assert_refusal(
        &json_err(&weight_set("\" 0.1\"")),
        f,
        "\" 0.1\"",
        "not a decimal number",
    );
    assert_refusal(
        &json_err(&weight_set("true")),
        f,
        "true",
        "must be a number or a decimal string",
    );
    assert_refusal(
        &json_err(&weight_set("null")),
        f,
        "null",
        "must be a number or a decimal string",
    );
    assert_refusal(
        &json_err(&weight_set("[0.1]")),
        f,
        "[0.1]",
        "must be a number or a decimal string",
    );
    assert_refusal(
        &json_err(&weight_set("{\"v\": 0.1}")),
        f,
        "{\"v\":0.1}",
        "must be a number",
    );
}

#[test]
fn refuses_non_finite_and_unrepresentable_weights() {
    let f = "targets[1].weight";
    for text in [
        "\"NaN\"",
        "\"nan\"",
        "\"inf\"",
        "\"-inf\"",
        "\"Infinity\"",
        "\"-Infinity\"",
    ] {
        assert_refusal(&json_err(&weight_set(text)), f, text, "not a finite number");
    }
    // serde_json writes exponents as e+N / e-N; the value is the same number.
    assert_refusal(&json_err(&weight_set("1e308")), f, "1e+308", "out of range");
    assert_refusal(
        &json_err(&weight_set("\"1e308\"")),
        f,
        "\"1e308\"",
        "out of range",
    );
    assert_refusal(&json_err(&weight_set("-1E400")), f, "-1e+400", "out of range");
    assert_refusal(
        &json_err(&weight_set("1e-30")),
        f,
        "1e-30",
        "more than 28 decimal places",
    );
    let huge = "9".repeat(40);
    assert_refusal(&json_err(&weight_set(&huge)), f, &huge, "out of range");
}

#[test]
fn refuses_weights_above_one() {
    let f = "targets[1].weight";
    assert_refusal(&json_err(&weight_set("5")), f, "5", "above 1");
    assert_refusal(
        &json_err(&weight_set("\"1.0000001\"")),
        f,
        "\"1.0000001\"",
        "above 1",
    );
    let cfg = IntakeConfig {
        allow_short: true,
        max_gross: dec("10"),
        ..IntakeConfig::default()
    };
    assert_refusal(&json_err_with(&weight_set("-1.5"), &cfg), f, "-1.5", "above 1");
    // Exactly 1 is a single full position, allowed (gross is checked separately).
    let cfg = IntakeConfig {
        max_gross: dec("2"),
        ..IntakeConfig::default()
    };
    parse_json("t", weight_set("1").as_bytes(), &cfg, now()).unwrap();
}

#[test]
fn refuses_negative_weights_unless_short_allowed() {
    let f = "targets[1].weight";
    assert_refusal(&json_err(&weight_set("-0.1")), f, "-0.1", "allow_short is off");
    assert_refusal(
        &json_err(&weight_set("\"-0.1\"")),
        f,
        "\"-0.1\"",
        "allow_short is off",
    );
    json_ok(&weight_set("-0.0")); // negative zero is zero, not a short
}

// ---------- refused: whole-set rules ----------

#[test]
fn refuses_gross_above_max() {
    let e = json_err(&with_targets(
        r#"[{"symbol": "A", "weight": "0.6"}, {"symbol": "B", "weight": "0.4"}, {"symbol": "C", "weight": "0.0001"}]"#,
    ));
    assert_refusal(&e, "targets", "gross 1.0001", "exceeds max_gross (1)");
    json_ok(&with_targets(
        r#"[{"symbol": "A", "weight": "0.6"}, {"symbol": "B", "weight": "0.4"}]"#,
    ));
}

#[test]
fn refuses_near_empty_without_liquidate() {
    let e = json_err(&with_targets("[]"));
    assert_refusal(&e, "targets", "sum 0 (0 targets)", "near-empty target set");
    assert!(
        e.reason
            .ends_with("set \"liquidate\": true to liquidate deliberately"),
        "{e}"
    );
    let e = json_err(&with_targets(
        r#"[{"symbol": "A", "weight": 0.3}, {"symbol": "B", "weight": 0.1999}]"#,
    ));
    assert_refusal(
        &e,
        "targets",
        "sum 0.4999 (2 targets)",
        "below liquidate_floor (0.5)",
    );
    let e = json_err(&with_extra(
        r#"[{"symbol": "A", "weight": 0}]"#,
        r#""liquidate": false"#,
    ));
    assert_refusal(&e, "targets", "sum 0 (1 targets)", "near-empty");
    // Exactly at the floor is fine; below it with liquidate is a deliberate liquidation.
    json_ok(&with_targets(
        r#"[{"symbol": "A", "weight": 0.3}, {"symbol": "B", "weight": 0.2}]"#,
    ));
    let set = json_ok(&with_extra(
        r#"[{"symbol": "A", "weight": 0.1}]"#,
        r#""liquidate": true"#,
    ));
    assert!(set.liquidate);
}

#[test]
fn refuses_non_bool_liquidate() {
    for (text, value) in [("\"true\"", "\"true\""), ("1", "1"), ("null", "null")] {
        let e = json_err(&with_extra("[]", &format!(r#""liquidate": {text}"#)));
        assert_refusal(&e, "liquidate", value, "must be true or false");
    }
}

#[test]
fn error_values_are_sanitised_and_bounded() {
    let sym = format!("\u{1b}[31m{}", "X".repeat(10_000));
    let e = json_err(&with_targets(&format!(
        r#"[{{"symbol": "{}", "weight": 0.6}}]"#,
        sym.replace('\u{1b}', "\\u001b")
    )));
    assert_eq!(e.field, "targets[0].symbol");
    assert!(e.value.starts_with("\"\\u001b[31mXXX"), "{}", e.value);
    assert!(e.value.len() < 100 && e.value.ends_with("..."), "{}", e.value);
    assert!(!e.to_string().chars().any(char::is_control));
}

#[test]
fn display_names_source_field_value_reason() {
    let e = parse_json(
        "/srv/targets/today.json",
        weight_set("\"five\"").as_bytes(),
        &cfg(),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/targets/today.json: targets[1].weight = \"five\": not a decimal number: \
         write a JSON number or a decimal string such as \"0.05\""
    );
    let _: &dyn std::error::Error = &e;
}

#[test]
fn output_is_sorted_for_binary_search() {
    let set: TargetSet = json_ok(&with_targets(
        r#"[{"symbol": "Z", "weight": 0.1}, {"symbol": "B.A", "weight": 0.1}, {"symbol": "B", "weight": 0.1},
            {"symbol": "B-A", "weight": 0.1}, {"symbol": "A1", "weight": 0.1}, {"symbol": "A", "weight": 0.1}]"#,
    ));
    assert!(set.targets.windows(2).all(|w| w[0].symbol < w[1].symbol));
    for t in &set.targets {
        assert_eq!(set.weight(&t.symbol), t.weight);
    }
}

#[test]
fn deep_nesting_is_refused_without_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = json_err(&deep);
    assert!(e.reason.contains("recursion limit"), "{e}");
    let deep_value = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let e = json_err(&with_extra(
        "[]",
        &format!(r#""liquidate": true, "x": {deep_value}"#),
    ));
    assert_eq!(e.field, "x");
}
