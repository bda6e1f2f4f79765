use super::*;

const H: Deleted = Deleted::Hidden;

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
/// V1 with another spacing and key order: the same schema.
const V1_RESPACED: &str = r#"{ "name": "Order", "type": "record",
    "fields": [ { "type": "string", "name": "id" } ] }"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}]}"#;
/// V2 without the default: a different schema, and not backward compatible with V1.
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#;

/// Plans and applies, as the service does with a store that never fails.
fn register(state: &mut State, subject: &str, text: &str) -> Result<Registered> {
    let (registered, changes) = state.plan_register(subject, text, None)?;
    state.apply(&changes)?;
    Ok(registered)
}

fn registered(state: &mut State, subject: &str, text: &str) -> (u32, u32) {
    let r = register(state, subject, text).expect("registers");
    (r.id, r.version)
}

#[test]
fn ids_and_versions_start_at_one_and_count_up() {
    let mut state = State::default();
    assert_eq!(registered(&mut state, "orders-value", V1), (1, 1));
    assert_eq!(registered(&mut state, "orders-value", V2), (2, 2));
    assert_eq!(state.versions("orders-value", H).expect("subject"), [1, 2]);
}

#[test]
fn the_same_schema_twice_is_the_same_registration_and_saves_nothing() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    let (again, changes) = state
        .plan_register("orders-value", V1_RESPACED, Some("AVRO"))
        .expect("plans");
    assert_eq!((again.id, again.version), (1, 1));
    assert_eq!(again.text, V1, "the text as first registered");
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn an_earlier_version_sent_again_gets_its_own_version_back() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    assert_eq!(registered(&mut state, "orders-value", V1), (1, 1));
}

#[test]
fn one_schema_under_two_subjects_has_one_id_and_a_version_in_each() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    let (_, changes) = state.plan_register("returns-value", V2, None).expect("plans");
    assert!(
        matches!(changes.as_slice(), [Change::NewVersion(_)]),
        "no new schema row: {changes:?}"
    );
    assert_eq!(registered(&mut state, "returns-value", V2), (2, 1));
    assert_eq!(
        state.schema_versions(2, H).expect("schema 2"),
        [("orders-value".to_owned(), 2), ("returns-value".to_owned(), 1)]
    );
}

#[test]
fn a_default_makes_a_different_schema() {
    let mut state = State::default();
    state
        .apply(&[state.plan_config(None, Compatibility::None)])
        .expect("config");
    registered(&mut state, "orders-value", V2_NO_DEFAULT);
    assert_eq!(registered(&mut state, "orders-value", V2), (2, 2));
}

#[test]
fn a_first_registration_is_a_schema_row_and_a_version_row() {
    let state = State::default();
    let (_, changes) = state.plan_register("orders-value", V1, None).expect("plans");
    assert_eq!(
        changes,
        [
            Change::NewSchema(SchemaRow {
                id: 1,
                schema_type: "AVRO".to_owned(),
                text: V1.to_owned()
            }),
            Change::NewVersion(VersionRow {
                subject: "orders-value".to_owned(),
                version: 1,
                schema_id: 1,
                deleted: false,
            }),
        ]
    );
}

#[test]
fn an_incompatible_schema_is_refused_naming_subject_field_and_version() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    let error = register(&mut state, "orders-value", V2_NO_DEFAULT).expect_err("refused");
    assert_eq!(error.error_code(), 409);
    let message = error.to_string();
    assert!(message.contains("subject `orders-value`"), "{message}");
    assert!(
        message
            .contains("reader field `qty` has no default and is missing in the writer's schema (version 1)"),
        "{message}"
    );
    assert_eq!(state.versions("orders-value", H).expect("subject"), [1]);
}

#[test]
fn a_subject_mode_overrides_the_global_one() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "returns-value", V1);
    state
        .apply(&[state.plan_config(Some("orders-value"), Compatibility::None)])
        .expect("config");
    assert_eq!(state.compatibility(Some("orders-value")), Compatibility::None);
    assert_eq!(
        state.compatibility(Some("returns-value")),
        Compatibility::Backward
    );
    assert_eq!(state.subject_compatibility("returns-value"), None);
    assert!(register(&mut state, "orders-value", V2_NO_DEFAULT).is_ok());
    assert!(register(&mut state, "returns-value", V2_NO_DEFAULT).is_err());
}

#[test]
fn lookups_and_version_reads_say_what_is_missing() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    let found = state.lookup("orders-value", V1_RESPACED, None, H).expect("found");
    assert_eq!((found.id, found.version), (1, 1));
    let codes = [
        state.lookup("nope", V1, None, H).map(|_| ()),
        state.lookup("orders-value", V2, None, H).map(|_| ()),
        state
            .version("orders-value", VersionRef::Number(9), H)
            .map(|_| ()),
        state.versions("nope", H).map(|_| ()),
        state.lookup("orders-value", "{not json", None, H).map(|_| ()),
        state.lookup("orders-value", V1, Some("PROTOBUF"), H).map(|_| ()),
    ]
    .map(|r| r.expect_err("missing").error_code());
    assert_eq!(codes, [40401, 40403, 40402, 40401, 42201, 42201]);
    let latest = state
        .version("orders-value", VersionRef::Latest, H)
        .expect("latest");
    assert_eq!(latest.text, V1);
}

#[test]
fn versions_parse_as_confluent_spells_them() {
    assert_eq!("latest".parse::<VersionRef>().ok(), Some(VersionRef::Latest));
    assert_eq!("-1".parse::<VersionRef>().ok(), Some(VersionRef::Latest));
    assert_eq!("3".parse::<VersionRef>().ok(), Some(VersionRef::Number(3)));
    for bad in ["0", "-2", "x", "", "2147483648"] {
        let error = bad.parse::<VersionRef>().expect_err("invalid");
        assert_eq!(error.error_code(), 42202, "{bad}");
        assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
    }
}

#[test]
fn testing_compatibility_changes_nothing_and_names_the_version() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    let verdict = state
        .test_compatibility("orders-value", Some(VersionRef::Number(1)), V2_NO_DEFAULT, None)
        .expect("tested");
    assert!(!verdict.is_compatible);
    assert!(verdict.messages[0].contains("(version 1)"), "{verdict:?}");
    // Against the latest (V2, where qty has a default) the candidate is fine.
    let verdict = state
        .test_compatibility("orders-value", Some(VersionRef::Latest), V2_NO_DEFAULT, None)
        .expect("tested");
    assert_eq!(
        verdict,
        Verdict {
            is_compatible: true,
            messages: vec![]
        }
    );
    assert_eq!(state.versions("orders-value", H).expect("subject"), [1, 2]);
}

#[test]
fn transitive_modes_refuse_what_breaks_only_the_oldest_version() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    state
        .apply(&[state.plan_config(None, Compatibility::BackwardTransitive)])
        .expect("config");
    let error = register(&mut state, "orders-value", V2_NO_DEFAULT).expect_err("refused");
    assert!(error.to_string().contains("(version 1)"), "{error}");
}

#[test]
fn state_rebuilt_from_its_rows_is_the_same_state() {
    let mut state = State::default();
    let mut rows = Rows::default();
    let mut run = |state: &mut State, changes: Vec<Change>| {
        for change in &changes {
            rows.apply(change);
        }
        state.apply(&changes).expect("applies");
    };
    for (subject, text) in [("orders-value", V1), ("orders-value", V2), ("returns-value", V1)] {
        let (_, changes) = state.plan_register(subject, text, None).expect("plans");
        run(&mut state, changes);
    }
    let config = state.plan_config(Some("returns-value"), Compatibility::Full);
    run(&mut state, vec![config]);
    rows.versions.reverse(); // a store returns rows in any order

    let again = State::from_rows(&rows).expect("loads");
    assert_eq!(again.versions("orders-value", H).expect("subject"), [1, 2]);
    assert_eq!(
        again
            .version("returns-value", VersionRef::Latest, H)
            .expect("v")
            .id,
        1
    );
    assert_eq!(again.compatibility(Some("returns-value")), Compatibility::Full);
    let (next, _) = again
        .plan_register("new-value", V2_NO_DEFAULT, None)
        .expect("plans");
    assert_eq!(next.id, 3, "max + 1 from the rows");
}

#[test]
fn a_broken_row_is_named_when_loading() {
    let rows = Rows {
        versions: vec![VersionRow {
            subject: "orders-value".to_owned(),
            version: 1,
            schema_id: 7,
            deleted: false,
        }],
        ..Rows::default()
    };
    let error = State::from_rows(&rows).expect_err("broken");
    assert!(error.to_string().contains("names schema 7"), "{error}");
    let rows = Rows {
        schemas: vec![SchemaRow {
            id: 4,
            schema_type: "AVRO".to_owned(),
            text: "{".to_owned(),
        }],
        ..Rows::default()
    };
    let error = State::from_rows(&rows).expect_err("broken");
    assert!(error.to_string().contains("schema row 4"), "{error}");
}

/// Plans and applies a deletion; the rows follow, as a store's would.
fn delete(state: &mut State, rows: &mut Rows, changes: Vec<Change>) {
    for change in &changes {
        rows.apply(change);
    }
    state.apply(&changes).expect("applies");
}

#[test]
fn a_soft_deleted_version_is_hidden_but_its_number_and_schema_stay() {
    let mut state = State::default();
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    let (version, change) = state
        .plan_delete_version("orders-value", VersionRef::Latest, false)
        .expect("plans");
    assert_eq!(version, 2);
    state.apply(&[change]).expect("applies");

    assert_eq!(state.versions("orders-value", H).expect("subject"), [1]);
    assert_eq!(
        state
            .versions("orders-value", Deleted::Included)
            .expect("subject"),
        [1, 2]
    );
    assert_eq!(
        state
            .version("orders-value", VersionRef::Latest, H)
            .expect("latest")
            .version,
        1
    );
    let hidden = state
        .version("orders-value", VersionRef::Number(2), H)
        .expect_err("hidden");
    assert_eq!(hidden.error_code(), 40402);
    assert!(
        state.schema_by_id(2).is_some(),
        "messages written with it stay readable"
    );
    assert_eq!(
        state
            .lookup("orders-value", V2, None, H)
            .expect_err("hidden")
            .error_code(),
        40403
    );
    assert_eq!(
        state
            .lookup("orders-value", V2, None, Deleted::Included)
            .expect("found")
            .version,
        2
    );
    // Registered again: the same id, a new number, since numbers are never reused.
    assert_eq!(registered(&mut state, "orders-value", V2), (2, 3));
}

#[test]
fn compatibility_passes_soft_deleted_versions_by() {
    let mut state = State::default();
    state
        .apply(&[state.plan_config(None, Compatibility::BackwardTransitive)])
        .expect("config");
    registered(&mut state, "orders-value", V1);
    registered(&mut state, "orders-value", V2);
    assert!(register(&mut state, "orders-value", V2_NO_DEFAULT).is_err());
    let (_, change) = state
        .plan_delete_version("orders-value", VersionRef::Number(1), false)
        .expect("plans");
    state.apply(&[change]).expect("applies");
    assert_eq!(registered(&mut state, "orders-value", V2_NO_DEFAULT), (3, 3));
}

#[test]
fn deletes_follow_confluents_soft_then_permanent_order() {
    let mut state = State::default();
    let mut rows = Rows::default();
    for text in [V1, V2] {
        let (_, changes) = state.plan_register("orders-value", text, None).expect("plans");
        delete(&mut state, &mut rows, changes);
    }
    let code = |r: Result<(u32, Change)>| r.map(|_| ()).expect_err("refused").error_code();
    let permanent_first = state.plan_delete_version("orders-value", VersionRef::Number(1), true);
    assert_eq!(code(permanent_first), 40407);
    let (_, change) = state
        .plan_delete_version("orders-value", VersionRef::Number(1), false)
        .expect("plans");
    delete(&mut state, &mut rows, vec![change]);
    let again = state.plan_delete_version("orders-value", VersionRef::Number(1), false);
    assert_eq!(code(again), 40406);

    let subject_first = state.plan_delete_subject("orders-value", true).map(|_| ());
    assert_eq!(subject_first.expect_err("refused").error_code(), 40405);
    let (versions, changes) = state.plan_delete_subject("orders-value", false).expect("plans");
    assert_eq!(versions, [2], "version 1 was already soft-deleted");
    delete(&mut state, &mut rows, changes);
    assert!(state.subjects(H).is_empty());
    assert_eq!(state.subjects(Deleted::Included), ["orders-value"]);
    assert_eq!(
        state
            .versions("orders-value", H)
            .expect_err("hidden")
            .error_code(),
        40401
    );
    let twice = state.plan_delete_subject("orders-value", false).map(|_| ());
    assert_eq!(twice.expect_err("refused").error_code(), 40404);

    // A restart sees the soft deletes.
    let loaded = State::from_rows(&rows).expect("loads");
    assert_eq!(
        loaded.versions("orders-value", Deleted::Included).expect("kept"),
        [1, 2]
    );
    assert!(loaded.subjects(H).is_empty());

    let (versions, changes) = state.plan_delete_subject("orders-value", true).expect("plans");
    assert_eq!(versions, [1, 2]);
    delete(&mut state, &mut rows, changes);
    assert!(state.subjects(Deleted::Included).is_empty());
    assert!(rows.versions.is_empty());
    assert_eq!(rows.schemas.len(), 2, "schemas outlive their versions");
    // A subject deleted for good starts again at version 1, with the old id.
    assert_eq!(registered(&mut state, "orders-value", V2), (2, 1));
}

#[test]
fn clearing_a_subject_mode_falls_back_to_the_global_one() {
    let mut state = State::default();
    state
        .apply(&[state.plan_config(Some("orders-value"), Compatibility::None)])
        .expect("config");
    state
        .apply(&[state.plan_config(None, Compatibility::Full)])
        .expect("config");
    state
        .apply(&[state.plan_clear_config(Some("orders-value"))])
        .expect("clears");
    assert_eq!(state.compatibility(Some("orders-value")), Compatibility::Full);
    state.apply(&[state.plan_clear_config(None)]).expect("clears");
    assert_eq!(state.compatibility(None), Compatibility::Backward);
}
