//! The schema registry's rows in the store (issue 16): what a registry wrote is what a
//! restarted registry finds, and a save is all or nothing.

use std::sync::Arc;

use retail_schema::{
    Change, Compatibility, ConfigRow, Deleted, Rows, SchemaRegistry, SchemaRow, VersionRef, VersionRow,
};
use retail_sink::{RegistryTables, Store};

use crate::common::Fixture;

const ORDER: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
/// ORDER with a field added with a default: BACKWARD compatible.
const ORDER_2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"channel","type":"string","default":"web"}]}"#;
const PAYMENT: &str = r#"{"type":"record","name":"Payment","fields":[{"name":"order","type":"string"}]}"#;
const PAYMENT_2: &str = r#"{"type":"record","name":"Payment","fields":[{"name":"order","type":"string"},{"name":"cents","type":"long","default":0}]}"#;
const REFUND: &str = r#"{"type":"record","name":"Refund","fields":[{"name":"order","type":"string"}]}"#;

async fn registry(store: &Arc<dyn Store>) -> SchemaRegistry {
    SchemaRegistry::open(Arc::new(RegistryTables(Arc::clone(store))), &[])
        .await
        .expect("the registry opens on the store's rows")
}

/// The rows in a fixed order (a store may return them in any).
async fn rows(store: &dyn Store) -> Rows {
    let mut rows = store.load_schema_registry().await.expect("load");
    rows.schemas.sort_by_key(|s| s.id);
    rows.versions
        .sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
    rows.configs.sort_by(|a, b| a.subject.cmp(&b.subject));
    rows
}

/// What a registry answers: each `(subject, version, id, deleted)`, each subject's own mode, and
/// the global mode.
type Seen = (
    Vec<(String, u32, u32, bool)>,
    Vec<(String, Option<Compatibility>)>,
    Compatibility,
);

async fn seen(registry: &SchemaRegistry) -> Seen {
    let mut versions = Vec::new();
    let mut modes = Vec::new();
    for subject in registry.subjects(Deleted::Included).await {
        let live = registry
            .versions(&subject, Deleted::Hidden)
            .await
            .unwrap_or_default();
        for v in registry
            .versions(&subject, Deleted::Included)
            .await
            .expect("versions")
        {
            let r = registry
                .version(&subject, VersionRef::Number(v), Deleted::Included)
                .await
                .expect("version");
            versions.push((subject.clone(), v, r.id, !live.contains(&v)));
        }
        modes.push((subject.clone(), registry.subject_compatibility(&subject).await));
    }
    (versions, modes, registry.compatibility(None).await)
}

fn schema(id: u32, text: &str) -> SchemaRow {
    SchemaRow {
        id,
        schema_type: "AVRO".into(),
        text: text.into(),
    }
}

fn version(subject: &str, version: u32, schema_id: u32, deleted: bool) -> VersionRow {
    VersionRow {
        subject: subject.into(),
        version,
        schema_id,
        deleted,
    }
}

/// A registry writes schemas, versions, soft and permanent deletes and modes through the
/// store; after the store is closed and opened again, a new registry finds the same ids,
/// versions, deleted flags and modes, and its next schema gets the next id (none reused).
/// A save that fails midway (a version naming a schema that does not exist) leaves nothing.
pub async fn schema_registry_rows_survive_a_reopen(f: Fixture) {
    let before = {
        let store = f.open().await;
        let registry = registry(&store).await;
        let a = registry
            .register("orders-value", ORDER, None)
            .await
            .expect("orders v1");
        let b = registry
            .register("orders-copy-value", ORDER, None)
            .await
            .expect("the same schema under a second subject");
        assert_eq!(
            (a.id, a.version, b.id, b.version),
            (1, 1, 1, 1),
            "one schema, one id"
        );
        let a2 = registry
            .register("orders-value", ORDER_2, None)
            .await
            .expect("orders v2");
        assert_eq!((a2.id, a2.version), (2, 2));
        registry
            .register("payments-value", PAYMENT, None)
            .await
            .expect("payments v1");
        let p2 = registry
            .register("payments-value", PAYMENT_2, None)
            .await
            .expect("payments v2");
        assert_eq!((p2.id, p2.version), (4, 2));

        registry
            .delete_version("orders-value", VersionRef::Number(1), false)
            .await
            .expect("soft delete");
        registry
            .delete_version("payments-value", VersionRef::Number(1), false)
            .await
            .expect("soft delete before the permanent one");
        registry
            .delete_version("payments-value", VersionRef::Number(1), true)
            .await
            .expect("permanent delete");

        registry
            .set_compatibility(None, Compatibility::Forward)
            .await
            .expect("global");
        registry
            .set_compatibility(None, Compatibility::FullTransitive)
            .await
            .expect("global replaced");
        registry
            .set_compatibility(Some("orders-value"), Compatibility::None)
            .await
            .expect("subject mode");
        registry
            .set_compatibility(Some("payments-value"), Compatibility::Full)
            .await
            .expect("subject mode");
        registry
            .clear_compatibility(Some("payments-value"))
            .await
            .expect("subject mode cleared");

        let stored = rows(&*store).await;
        assert_eq!(
            stored,
            Rows {
                schemas: vec![
                    schema(1, ORDER),
                    schema(2, ORDER_2),
                    schema(3, PAYMENT),
                    schema(4, PAYMENT_2)
                ],
                versions: vec![
                    version("orders-copy-value", 1, 1, false),
                    version("orders-value", 1, 1, true),
                    version("orders-value", 2, 2, false),
                    version("payments-value", 2, 4, false),
                ],
                configs: vec![
                    ConfigRow {
                        subject: None,
                        compatibility: Compatibility::FullTransitive
                    },
                    ConfigRow {
                        subject: Some("orders-value".into()),
                        compatibility: Compatibility::None
                    },
                ],
            },
            "the tables hold what the registry did"
        );
        (stored, seen(&registry).await)
        // The registry and the store are dropped here: the SQLite thread joins, the
        // PostgreSQL session closes.
    };

    let store = f.open().await;
    assert_eq!(rows(&*store).await, before.0, "the rows survive a reopen");
    let registry = registry(&store).await;
    assert_eq!(
        seen(&registry).await,
        before.1,
        "a new registry answers as the old one did"
    );
    assert_eq!(
        registry
            .versions("orders-value", Deleted::Hidden)
            .await
            .expect("live"),
        [2],
        "the soft-deleted version stays hidden"
    );
    let refund = registry
        .register("refunds-value", REFUND, None)
        .await
        .expect("new schema");
    assert_eq!(
        (refund.id, refund.version),
        (5, 1),
        "ids go on after the highest, none reused"
    );
    let p3 = registry
        .register("payments-value", PAYMENT, None)
        .await
        .expect("the permanently deleted schema again");
    assert_eq!(
        (p3.id, p3.version),
        (3, 3),
        "its schema kept its id; versions go on"
    );
    let after = rows(&*store).await;

    // A save whose last change fails (schema 98 does not exist) writes none of its changes.
    let broken = [
        Change::NewSchema(schema(6, r#"{"type":"record","name":"Ghost","fields":[]}"#)),
        Change::Config(ConfigRow {
            subject: None,
            compatibility: Compatibility::None,
        }),
        Change::DeleteVersion(retail_schema::DeleteRow {
            subject: "orders-value".into(),
            version: 2,
            permanent: false,
        }),
        Change::NewVersion(version("ghost-value", 1, 98, false)),
    ];
    let error = store
        .save_schema_registry(&broken)
        .await
        .expect_err("a version naming no schema is refused");
    assert!(error.is_refused() && !error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("INSERT INTO schema_registry_versions"),
        "the last change failed, after the others were written: {error}"
    );
    let through = retail_schema::RegistryStore::save(&RegistryTables(Arc::clone(&store)), &broken)
        .await
        .expect_err("refused through the registry's trait too");
    assert!(!through.retryable, "{through}");
    assert_eq!(
        rows(&*store).await,
        after,
        "a failed save leaves the rows as they were"
    );

    // The empty subject is the global mode's row: no subject may take it.
    let empty = store
        .save_schema_registry(&[Change::Config(ConfigRow {
            subject: Some(String::new()),
            compatibility: Compatibility::None,
        })])
        .await
        .expect_err("an empty subject is refused");
    assert!(empty.is_refused(), "{empty}");
    assert_eq!(rows(&*store).await, after);
}
