//! The compatibility matrix: every mode against every kind of change, with the verdicts
//! Confluent documents (schema evolution and compatibility, "Summary" table), written out as
//! data rather than derived from the code under test.

use super::*;

/// One kind of change: the schema before and after.
struct Case {
    name: &'static str,
    old: &'static str,
    new: &'static str,
}

/// `Order { id: string, qty: int }` and the changes a producer team might make to it.
const CASES: &[Case] = &[
    Case {
        name: "add field with default",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"},{"name":"note","type":"string","default":""}]}"#,
    },
    Case {
        name: "add field without default",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"},{"name":"note","type":"string"}]}"#,
    },
    Case {
        name: "remove field with default",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#,
    },
    Case {
        name: "remove field without default",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#,
    },
    Case {
        name: "int -> long (promotion)",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"long"}]}"#,
    },
    Case {
        name: "long -> int",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"long"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
    },
    Case {
        // The reader's alias finds the writer's old name; the old reader has no alias for the
        // new name, so only the new schema can read both.
        name: "rename via alias",
        old: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#,
        new: r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"quantity","type":"int","aliases":["qty"]}]}"#,
    },
];

const OK: bool = true;
const NO: bool = false;

/// Columns, in `Compatibility::ALL` order.
const MODES: [Compatibility; 7] = Compatibility::ALL;

/// History `[old]`, candidate `new`: transitive and plain modes agree on a single version.
///  backward = new reads old; forward = old reads new.
#[rustfmt::skip]
const AGAINST_LATEST: &[(&str, [bool; 7])] = &[
    //                                 BACK  BACK_T FWD  FWD_T FULL  FULL_T NONE
    ("add field with default",       [OK,   OK,    OK,   OK,   OK,   OK,    OK]),
    ("add field without default",    [NO,   NO,    OK,   OK,   NO,   NO,    OK]),
    ("remove field with default",    [OK,   OK,    OK,   OK,   OK,   OK,    OK]),
    ("remove field without default", [OK,   OK,    NO,   NO,   NO,   NO,    OK]),
    ("int -> long (promotion)",      [OK,   OK,    NO,   NO,   NO,   NO,    OK]),
    ("long -> int",                  [NO,   NO,    OK,   OK,   NO,   NO,    OK]),
    ("rename via alias",             [OK,   OK,    NO,   NO,   NO,   NO,    OK]),
];

/// History `[old, new', new'']` (the candidate with a different doc), candidate `new`: only the
/// oldest version breaks, so only the transitive modes see it.
#[rustfmt::skip]
const ONLY_OLDEST_BREAKS: &[(&str, [bool; 7])] = &[
    //                                 BACK  BACK_T FWD  FWD_T FULL  FULL_T NONE
    ("add field with default",       [OK,   OK,    OK,   OK,   OK,   OK,    OK]),
    ("add field without default",    [OK,   NO,    OK,   OK,   OK,   NO,    OK]),
    ("remove field with default",    [OK,   OK,    OK,   OK,   OK,   OK,    OK]),
    ("remove field without default", [OK,   OK,    OK,   NO,   OK,   NO,    OK]),
    ("int -> long (promotion)",      [OK,   OK,    OK,   NO,   OK,   NO,    OK]),
    ("long -> int",                  [OK,   NO,    OK,   OK,   OK,   NO,    OK]),
    ("rename via alias",             [OK,   OK,    OK,   NO,   OK,   NO,    OK]),
];

fn parse(text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("test schema does not parse: {e}\n{text}"))
}

/// The candidate again with a doc on the record: a distinct version, equally compatible.
fn with_doc(text: &str, doc: &str) -> String {
    text.replacen(
        r#""name":"Order","#,
        &format!(r#""name":"Order","doc":"{doc}","#),
        1,
    )
}

fn run(table: &[(&str, [bool; 7])], history: impl Fn(&Case) -> Vec<String>) {
    assert_eq!(table.len(), CASES.len(), "one row per case");
    let mut wrong = Vec::new();
    for (case, (name, expected)) in CASES.iter().zip(table) {
        assert_eq!(case.name, *name, "the table's rows follow CASES");
        let texts = history(case);
        let schemas: Vec<Schema> = texts.iter().map(|t| parse(t)).collect();
        let existing: Vec<(u32, &Schema)> = (1..).zip(schemas.iter()).collect();
        let candidate = parse(case.new);
        for (mode, &ok) in MODES.iter().zip(expected) {
            let verdict = check(*mode, &candidate, &existing);
            if verdict.is_ok() != ok {
                wrong.push(format!(
                    "{name} under {mode}: expected {}, got {verdict:?}",
                    if ok { "compatible" } else { "incompatible" }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "verdicts differ from the table:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_mode_against_the_latest_version() {
    run(AGAINST_LATEST, |case| vec![case.old.to_owned()]);
}

#[test]
fn transitive_modes_check_every_version_and_the_others_only_the_latest() {
    run(ONLY_OLDEST_BREAKS, |case| {
        vec![
            case.old.to_owned(),
            with_doc(case.new, "v2"),
            with_doc(case.new, "v3"),
        ]
    });
}

#[test]
fn a_first_schema_is_compatible_under_every_mode() {
    let schema = parse(CASES[0].new);
    for mode in MODES {
        assert_eq!(check(mode, &schema, &[]), Ok(()), "{mode}");
    }
}

#[test]
fn a_missing_default_names_the_field_and_the_version() {
    let old = parse(CASES[1].old);
    let new = parse(CASES[1].new);
    let refused = check(Compatibility::Backward, &new, &[(1, &old)]).expect_err("refused");
    assert_eq!(
        refused.messages,
        ["the new schema can not read data written with version 1: reader field `note` has no default and is missing in the writer's schema (version 1)"]
    );
}

#[test]
fn a_type_change_names_the_field_both_types_and_the_version() {
    let old = parse(CASES[5].old);
    let new = parse(CASES[5].new);
    let refused = check(Compatibility::Backward, &new, &[(3, &old)]).expect_err("refused");
    assert_eq!(
        refused.messages,
        ["the new schema can not read data written with version 3: field `qty` is `long` in the writer's schema (version 3) and `int` in the reader's schema (the new schema), and Avro can not read the one as the other"]
    );
}

#[test]
fn a_nested_field_is_named_by_its_path() {
    let old = parse(
        r#"{"type":"record","name":"Order","fields":[{"name":"line","type":{"type":"record","name":"Line","fields":[{"name":"sku","type":"string"}]}}]}"#,
    );
    let new = parse(
        r#"{"type":"record","name":"Order","fields":[{"name":"line","type":{"type":"record","name":"Line","fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}]}"#,
    );
    let refused = check(Compatibility::Full, &new, &[(2, &old)]).expect_err("refused");
    assert_eq!(refused.messages.len(), 1, "{refused}");
    assert!(
        refused.messages[0].contains(
            "reader field `line.qty` has no default and is missing in the writer's schema (version 2)"
        ),
        "{refused}"
    );
}

#[test]
fn a_removed_enum_symbol_is_named() {
    let old = parse(
        r#"{"type":"record","name":"Order","fields":[{"name":"state","type":{"type":"enum","name":"State","symbols":["OPEN","PAID","SHIPPED"]}}]}"#,
    );
    let new = parse(
        r#"{"type":"record","name":"Order","fields":[{"name":"state","type":{"type":"enum","name":"State","symbols":["OPEN","PAID"]}}]}"#,
    );
    let refused = check(Compatibility::Backward, &new, &[(1, &old)]).expect_err("refused");
    assert!(
        refused.messages[0]
            .contains(r#"field `state`: the reader's enum (the new schema) lacks the symbols ["SHIPPED"]"#),
        "{refused}"
    );
}

#[test]
fn modes_round_trip_through_confluent_names() {
    for mode in MODES {
        assert_eq!(mode.as_str().parse::<Compatibility>(), Ok(mode));
        assert_eq!(
            serde_json::to_value(mode).ok(),
            Some(serde_json::Value::String(mode.as_str().to_owned()))
        );
        assert_eq!(mode.to_string(), mode.as_str());
    }
    assert_eq!("full_transitive".parse(), Ok(Compatibility::FullTransitive));
    assert_eq!(Compatibility::default(), Compatibility::Backward);
    let unknown = "SIDEWAYS".parse::<Compatibility>().expect_err("refused");
    assert!(unknown.to_string().contains("`SIDEWAYS`"), "{unknown}");
}
