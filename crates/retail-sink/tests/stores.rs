//! The store behaviour suite against every backend (Tansu style: `behaviour::x` once, a test
//! per backend), plus the checks only one backend can answer (partitions, a killed backend,
//! the on-disk text formats).

mod behaviour;
mod common;

macro_rules! suite {
    ($fixture:expr) => {
        #[tokio::test]
        async fn lands_a_whole_batch() {
            crate::behaviour::lands_a_whole_batch($fixture).await
        }
        #[tokio::test]
        async fn duplicates_land_once() {
            crate::behaviour::duplicates_land_once($fixture).await
        }
        #[tokio::test]
        async fn fencing_refuses_a_moved_offset() {
            crate::behaviour::fencing_refuses_a_moved_offset($fixture).await
        }
        #[tokio::test]
        async fn a_failed_batch_leaves_nothing() {
            crate::behaviour::a_failed_batch_leaves_nothing($fixture).await
        }
        #[tokio::test]
        async fn migrations_are_idempotent() {
            crate::behaviour::migrations_are_idempotent($fixture).await
        }
        #[tokio::test]
        async fn days_far_apart_land() {
            crate::behaviour::days_far_apart_land($fixture).await
        }
        #[tokio::test]
        async fn concurrent_writers_one_wins() {
            crate::behaviour::concurrent_writers_one_wins($fixture).await
        }
        #[tokio::test]
        async fn aggregates_take_each_event_once() {
            crate::behaviour::aggregates_take_each_event_once($fixture).await
        }
        #[tokio::test]
        async fn refused_rows_become_dead_letters_and_the_rest_lands() {
            crate::behaviour::refused_rows_become_dead_letters_and_the_rest_lands($fixture).await
        }
        #[tokio::test]
        async fn reopen_keeps_data() {
            crate::behaviour::reopen_keeps_data($fixture).await
        }
        #[tokio::test]
        async fn money_is_exact_in_raw_rows_and_aggregates() {
            crate::behaviour::money_is_exact_in_raw_rows_and_aggregates($fixture).await
        }
        #[tokio::test]
        async fn order_lifecycle_joins_payments_and_alerts_once() {
            crate::behaviour::order_lifecycle_joins_payments_and_alerts_once($fixture).await
        }
        #[tokio::test]
        async fn notification_outbox_routes_dedups_and_finishes_once() {
            crate::behaviour::notification_outbox_routes_dedups_and_finishes_once($fixture).await
        }
        #[tokio::test]
        async fn schema_registry_rows_survive_a_reopen() {
            crate::behaviour::schema_registry_rows_survive_a_reopen($fixture).await
        }
        #[tokio::test]
        async fn inventory_risks_backfill_order_and_alert_once() {
            crate::behaviour::inventory_risks_backfill_order_and_alert_once($fixture).await
        }
        #[tokio::test]
        async fn a_duplicate_inside_the_horizon_is_skipped() {
            crate::behaviour::a_duplicate_inside_the_horizon_is_skipped($fixture).await
        }
        #[tokio::test]
        async fn ledger_days_older_than_the_horizon_are_dropped() {
            crate::behaviour::ledger_days_older_than_the_horizon_are_dropped($fixture).await
        }
        #[tokio::test]
        async fn an_event_older_than_the_horizon_is_a_too_old_dead_letter() {
            crate::behaviour::an_event_older_than_the_horizon_is_a_too_old_dead_letter($fixture).await
        }
        #[tokio::test]
        async fn the_legacy_ledger_dedups_until_the_horizon_passes_it() {
            crate::behaviour::the_legacy_ledger_dedups_until_the_horizon_passes_it($fixture).await
        }
        #[tokio::test]
        async fn bare_load_in_chunks_loads_what_one_call_loads() {
            crate::behaviour::bare_load_in_chunks_loads_what_one_call_loads($fixture).await
        }
        #[tokio::test]
        async fn raw_rows_and_late_events_past_their_retention_are_dropped() {
            crate::behaviour::raw_rows_and_late_events_past_their_retention_are_dropped($fixture).await
        }
        #[tokio::test]
        async fn retention_zero_keeps_everything() {
            crate::behaviour::retention_zero_keeps_everything($fixture).await
        }
        #[tokio::test]
        async fn dead_letters_past_their_retention_are_dropped_by_wall_clock() {
            crate::behaviour::dead_letters_past_their_retention_are_dropped_by_wall_clock($fixture).await
        }
        #[tokio::test]
        async fn named_dead_letters_are_kept_once() {
            crate::behaviour::named_dead_letters_are_kept_once($fixture).await
        }
    };
}

mod pg {
    use retail_core::TopicPartition;
    use retail_sink::{LandingBatch, Table};

    use crate::common::{self, dead_letter, ids, order, range, sale, ts};

    suite!(common::pg().await);

    /// The values PostgreSQL itself refuses (issue 18, item 1), each among good rows: a NUL in
    /// `source`, a price past numeric(12,2), U+0000 and a lone surrogate in a jsonb payload.
    /// The decoder keeps them out of the landing; if one still reaches the store, it becomes a
    /// dead letter with the server's message and SQLSTATE, and the rest lands.
    #[tokio::test]
    async fn values_postgres_refuses_become_dead_letters() {
        let f = common::pg().await;
        let store = f.open().await;
        let p = TopicPartition::new("sales", 0);
        let id = ids(8);
        let at = ts("2026-11-21T10:00:00Z");
        let mut nul_source = sale(id[1], at, 1, 1);
        nul_source.source = "po\0s".into();
        let mut huge_price = sale(id[2], at, 1, 1);
        huge_price.sale.unit_price = Some(rust_decimal::Decimal::new(10_000_000_000, 0));
        let mut nul_payload = order(id[4], at);
        nul_payload.payload = r#"{"type":"order","note":"a\u0000b"}"#.into();
        let mut surrogate = order(id[5], at);
        surrogate.payload = r#"{"type":"order","note":"\ud800"}"#.into();
        let batch = LandingBatch {
            group: "landing".into(),
            sales: vec![
                sale(id[0], at, 1, 1),
                nul_source,
                huge_price,
                sale(id[3], at, 2, 1),
            ],
            events: vec![nul_payload, order(id[6], at), surrogate],
            offsets: vec![range(&p, 0, 7)],
            ..Default::default()
        };
        let err = store.write_batch(&batch).await.expect_err("refused");
        assert!(err.is_refused(), "{err}");
        let done = retail_sink::isolate::write_isolating(&*store, &batch, err)
            .await
            .expect("isolate");
        let reasons: Vec<&str> = done.refused.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(reasons[0].contains("SQLSTATE 22021"), "{reasons:#?}"); // NUL in text
        assert!(reasons[1].contains("SQLSTATE 22003"), "{reasons:#?}"); // numeric overflow
        assert!(reasons[2].contains("SQLSTATE 22P05"), "{reasons:#?}"); // \u0000 in jsonb
        assert!(
            reasons[3].contains("SQLSTATE 22P05") || reasons[3].contains("SQLSTATE 22P02"),
            "{reasons:#?}"
        );
        assert_eq!(store.count(Table::SalesRaw).await.expect("count"), 2);
        assert_eq!(store.count(Table::EventsRaw).await.expect("count"), 1);
        assert_eq!(store.count(Table::DeadLetters).await.expect("count"), 4);
        assert_eq!(store.offsets("landing").await.expect("offsets"), vec![(p, 7)]);
    }

    /// `sales_raw` really is partitioned, by UTC day, with partitions created on demand even
    /// by two stores racing for the same new day; migrations are recorded once.
    #[tokio::test]
    async fn sales_raw_is_partitioned_by_day() {
        let f = common::pg().await;
        // No dedup horizon: the ledger must still hold the 2024 ids at the end (ADR 0022).
        let (a, b) = (f.open_with_horizon(0).await, f.open_with_horizon(0).await);
        let day = |i: usize, p: i32, at| LandingBatch {
            group: format!("g{p}"),
            sales: vec![sale(ids(1)[0], ts(at), 1, 1)],
            offsets: vec![range(&TopicPartition::new("sales", p), i as i64, i as i64 + 1)],
            ..Default::default()
        };
        let (da, db) = (
            day(0, 0, "2024-08-12T10:00:00Z"),
            day(0, 1, "2024-08-12T11:00:00Z"),
        );
        let (ra, rb) = tokio::join!(a.write_batch(&da), b.write_batch(&db));
        ra.expect("store a");
        rb.expect("store b");
        a.write_batch(&day(1, 0, "2026-11-21T13:43:53.488Z"))
            .await
            .expect("far day");

        let client = f.pg.as_ref().expect("pg fixture").client().await;
        let kind: i8 = client
            .query_one(
                "SELECT relkind::\"char\" FROM pg_class WHERE relname = 'sales_raw'",
                &[],
            )
            .await
            .expect("pg_class")
            .get(0);
        assert_eq!(kind as u8, b'p', "sales_raw must be a partitioned table");
        let parts: Vec<String> = client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'sales_raw'::regclass ORDER BY 1",
                &[],
            )
            .await
            .expect("pg_inherits")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(parts, vec!["sales_raw_20240812", "sales_raw_20261121"]);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM sales_raw_20240812", &[])
            .await
            .expect("count partition")
            .get(0);
        assert_eq!(rows, 2);
        let indexed: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'sales_raw_20261121' \
                 AND indexdef LIKE '%(store_id, ts)%'",
                &[],
            )
            .await
            .expect("pg_indexes")
            .get(0);
        assert_eq!(indexed, 1, "each partition carries the (store_id, ts) index");
        let versions: i64 = client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .expect("migrations")
            .get(0);
        assert_eq!(
            versions, 8,
            "0001_init, 0002_processing, 0003_dead_letter_resubmitted, 0004_retail_pipelines, \
             0005_ledger_by_event_day, 0006_notification_deliveries, 0007_schema_registry and \
             0008_retention_by_day, each recorded once"
        );
        let ledger: i64 = client
            .query_one("SELECT count(*) FROM landed_event_ids", &[])
            .await
            .expect("ledger")
            .get(0);
        assert_eq!(ledger, a.count(Table::SalesRaw).await.expect("count"));
    }

    /// A database from before the dedup horizon (migrations 1 to 3) with ids in its ledger
    /// migrates (0005): the old ledger becomes `landed_event_ids_legacy`, dated the day of the
    /// migration, and its ids stay duplicates; the new ledger is partitioned by day (ADR 0022).
    #[tokio::test]
    async fn an_old_ledger_migrates_and_keeps_deduplicating() {
        let f = common::pg().await;
        let old = ids(1)[0];
        let client = f.pg.as_ref().expect("pg fixture").client().await;
        client
            .batch_execute(concat!(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
                include_str!("../migrations/postgres/0001_init.sql"),
                include_str!("../migrations/postgres/0002_processing.sql"),
                include_str!("../migrations/postgres/0003_dead_letter_resubmitted.sql"),
                "INSERT INTO schema_migrations (version) VALUES (1), (2), (3);",
            ))
            .await
            .expect("an older binary's database");
        client
            .execute("INSERT INTO landed_event_ids (event_id) VALUES ($1)", &[&old])
            .await
            .expect("an id in the old ledger");
        let store = f.open().await;
        let legacy: i64 = client
            .query_one(
                "SELECT count(*) FROM landed_event_ids_legacy \
                 WHERE (SELECT legacy_until FROM ledger_horizon) = current_date",
                &[],
            )
            .await
            .expect("the legacy ledger, dated today")
            .get(0);
        assert_eq!(legacy, 1);
        let kind: i8 = client
            .query_one(
                "SELECT relkind::\"char\" FROM pg_class WHERE relname = 'landed_event_ids'",
                &[],
            )
            .await
            .expect("pg_class")
            .get(0);
        assert_eq!(kind as u8, b'p', "the ledger must be partitioned");
        let now = chrono::Utc::now();
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(old, now, 1, 1), sale(ids(1)[0], now, 1, 1)],
            offsets: vec![range(&TopicPartition::new("sales", 0), 0, 2)],
            ..Default::default()
        };
        let o = store.write_batch(&batch).await.expect("re-send of an old id");
        assert_eq!((o.sales_inserted, o.sales_duplicates), (1, 1), "{o:?}");
    }

    /// A database from before migration 0008 with rows in the unpartitioned `events_raw`,
    /// `late_events` and `dead_letters` migrates (ADR 0028): each old table becomes one
    /// `<table>_legacy` partition, every row stays readable (dead letters by id through the
    /// API's reader, and resubmittable), new rows go to day partitions, dead-letter ids go on
    /// from the same sequence, and the legacy partition is dropped whole once its last day is
    /// past the retention.
    #[tokio::test]
    async fn old_unpartitioned_tables_migrate_and_stay_readable() {
        use chrono::{Duration, Utc};
        use retail_sink::read::{Claim, PageRequest};
        use retail_sink::StoreOptions;

        let f = common::pg().await;
        let client = f.pg.as_ref().expect("pg fixture").client().await;
        client
            .batch_execute(concat!(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
                include_str!("../migrations/postgres/0001_init.sql"),
                include_str!("../migrations/postgres/0002_processing.sql"),
                include_str!("../migrations/postgres/0003_dead_letter_resubmitted.sql"),
                include_str!("../migrations/postgres/0004_retail_pipelines.sql"),
                include_str!("../migrations/postgres/0005_ledger_by_event_day.sql"),
                include_str!("../migrations/postgres/0006_notification_deliveries.sql"),
                include_str!("../migrations/postgres/0007_schema_registry.sql"),
                "INSERT INTO schema_migrations (version) VALUES (1), (2), (3), (4), (5), (6), (7);",
                "INSERT INTO events_raw (event_id, event_type, ts, source, partition_key, payload) \
                 VALUES (gen_random_uuid(), 'order', '2026-11-01T10:00:00Z', 'pos', 'o-1', '{}'), \
                        (gen_random_uuid(), 'order', '2026-11-02T10:00:00Z', 'pos', 'o-2', '{}');",
                "INSERT INTO late_events (aggregate, event_id, window_start, window_end, event_ts, watermark, \
                 reason, topic, \"partition\", \"offset\") VALUES ('agg', gen_random_uuid(), '2026-11-01T10:00:00Z', \
                 '2026-11-01T10:01:00Z', '2026-11-01T10:00:30Z', '2026-11-01T11:00:00Z', 'late', 'sales', 0, 1);",
                "INSERT INTO dead_letters (raw, reason, kind, source, rejected_at) VALUES \
                 ('\\x7b7d', 'qty: is required', 'invalid', 'pos', now() - interval '2 days'), \
                 ('\\x7b7d', 'sku: is required', 'invalid', 'pos', now() - interval '1 day');",
            ))
            .await
            .expect("an older binary's database, with rows");
        let store = f.open().await;
        assert_eq!(store.count(Table::EventsRaw).await.expect("count"), 2);
        assert_eq!(store.count(Table::LateEvents).await.expect("count"), 1);
        assert_eq!(store.count(Table::DeadLetters).await.expect("count"), 2);
        for parent in ["events_raw", "late_events", "dead_letters"] {
            let kind: i8 = client
                .query_one(
                    "SELECT relkind::\"char\" FROM pg_class WHERE relname = $1",
                    &[&parent],
                )
                .await
                .expect("pg_class")
                .get(0);
            assert_eq!(kind as u8, b'p', "{parent} must be partitioned");
            assert_eq!(f.partitions(parent).await, [format!("{parent}_legacy")]);
        }

        // The API's reads and resubmit work on the old rows.
        let reader = retail_sink::open_reader(&f.url).await.expect("reader");
        let page = reader
            .dead_letters(PageRequest { limit: 10, offset: 0 })
            .await
            .expect("list dead letters");
        assert_eq!(page.items.len(), 2);
        let newest = page.items[0].id;
        let detail = reader.dead_letter(newest).await.expect("get").expect("exists");
        assert_eq!(detail.summary.reason, "sku: is required");
        assert!(matches!(
            reader.claim_dead_letter(newest).await.expect("claim"),
            Claim::Claimed(_)
        ));
        assert!(matches!(
            reader.claim_dead_letter(newest).await.expect("claim"),
            Claim::AlreadyResubmitted(_)
        ));

        // New rows land in day partitions; ids go on from the old sequence.
        let p = TopicPartition::new("sales", 0);
        let later = Utc::now() + Duration::days(3);
        let batch = LandingBatch {
            group: "g".into(),
            events: vec![order(ids(1)[0], later)],
            dead_letters: vec![dead_letter(&p, 0, "store_id: is required")],
            offsets: vec![range(&p, 0, 2)],
            ..Default::default()
        };
        store
            .write_batch(&batch)
            .await
            .expect("a batch after the migration");
        let page = reader
            .dead_letters(PageRequest { limit: 10, offset: 0 })
            .await
            .expect("list dead letters");
        assert_eq!(page.items.len(), 3);
        assert!(page.items[0].id > newest, "{:?}", page.items);
        assert_eq!(store.count(Table::EventsRaw).await.expect("count"), 3);
        assert_eq!(f.partitions("events_raw").await.len(), 2);
        drop(store);

        // The newest event day is three days on: a retention of one day has passed every day
        // of the legacy partition (today and before), which goes whole.
        let store = f
            .open_with(StoreOptions {
                raw_retention_days: 1,
                late_events_retention_days: 1,
                ..StoreOptions::default()
            })
            .await;
        assert_eq!(store.count(Table::EventsRaw).await.expect("count"), 1);
        assert_eq!(store.count(Table::LateEvents).await.expect("count"), 0);
        assert_eq!(
            store.count(Table::DeadLetters).await.expect("count"),
            3,
            "kept: no retention"
        );
        assert_eq!(f.partitions("events_raw").await.len(), 1);
        assert!(f.partitions("late_events").await.is_empty());
        // The new dead letter was rejected on 2026-11-21, a day the legacy partition holds.
        assert_eq!(f.partitions("dead_letters").await, ["dead_letters_legacy"]);
        let legacy: Vec<String> = f.texts("SELECT parent FROM retention_legacy").await;
        assert_eq!(legacy, ["dead_letters"]);
    }

    /// After its backend is killed, the store answers a retryable error at most once, then
    /// reconnects and carries on.
    #[tokio::test]
    async fn reconnects_after_its_backend_is_killed() {
        let f = common::pg().await;
        let store = f.open().await;
        let p = TopicPartition::new("sales", 0);
        let at = ts("2026-11-21T10:00:00Z");
        let batch = |first: i64| LandingBatch {
            group: "g".into(),
            sales: vec![sale(ids(1)[0], at, 1, 1)],
            offsets: vec![range(&p, first, first + 1)],
            ..Default::default()
        };
        store.write_batch(&batch(0)).await.expect("before the kill");

        let db = f.pg.as_ref().expect("pg fixture");
        let admin = db.client().await;
        let killed: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
                &[],
            )
            .await
            .expect("pg_terminate_backend")
            .get(0);
        assert!(killed >= 1, "the store's backend should have been found");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let next = batch(1);
        match store.write_batch(&next).await {
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_retryable(), "a killed connection is retryable: {e}");
                store.write_batch(&next).await.expect("retry after reconnect");
            }
        }
        store.ping().await.expect("ping after reconnect");
        assert_eq!(store.count(Table::SalesRaw).await.expect("count"), 2);
        assert_eq!(store.offsets("g").await.expect("offsets"), vec![(p, 2)]);
    }

    /// A COPY failing after the ledger and the sales went in (a dead letter whose text
    /// PostgreSQL refuses) rolls everything back, and says which table failed.
    #[tokio::test]
    async fn a_copy_failing_midway_rolls_back() {
        let f = common::pg().await;
        let store = f.open().await;
        let p = TopicPartition::new("sales", 0);
        let at = ts("2026-11-21T10:00:00Z");
        let id = ids(2);
        let bad = LandingBatch {
            group: "g".into(),
            sales: vec![sale(id[0], at, 1, 1)],
            events: vec![order(id[1], at)],
            dead_letters: vec![dead_letter(&p, 0, "nul \0 in text")],
            offsets: vec![range(&p, 0, 1)],
            ..Default::default()
        };
        let err = store
            .write_batch(&bad)
            .await
            .expect_err("NUL in text must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("COPY dead_letters") && msg.contains("SQLSTATE"),
            "unhelpful error: {msg}"
        );
        assert!(!err.is_retryable());
        for t in [Table::SalesRaw, Table::EventsRaw, Table::DeadLetters] {
            assert_eq!(store.count(t).await.expect("count"), 0, "{t:?}");
        }
        assert!(store.offsets("g").await.expect("offsets").is_empty());
        let good = LandingBatch {
            dead_letters: vec![dead_letter(&p, 0, "fine")],
            ..bad
        };
        let o = store
            .write_batch(&good)
            .await
            .expect("the same batch without the NUL");
        assert_eq!((o.sales_inserted, o.events_inserted, o.dead_letters), (1, 1, 1));

        // What landed is what was sent.
        let client = f.pg.as_ref().expect("pg fixture").client().await;
        let row = client
            .query_one(
                "SELECT raw, reason, kind, source, topic, \"partition\", \"offset\", file, line, \
                 rejected_at = '2026-11-21T13:43:53.488Z'::timestamptz FROM dead_letters",
                &[],
            )
            .await
            .expect("dead letter row");
        assert_eq!(row.get::<_, Vec<u8>>(0), good.dead_letters[0].raw);
        assert_eq!(row.get::<_, &str>(1), "fine");
        assert_eq!(row.get::<_, &str>(2), "invalid_field");
        assert_eq!(row.get::<_, &str>(3), "csv");
        assert_eq!(row.get::<_, Option<&str>>(4), Some("sales"));
        assert_eq!(row.get::<_, Option<i32>>(5), Some(0));
        assert_eq!(row.get::<_, Option<i64>>(6), Some(0));
        assert_eq!(row.get::<_, Option<&str>>(7), Some("erp/2026-11-21.csv"));
        assert_eq!(row.get::<_, Option<i64>>(8), Some(17));
        assert!(row.get::<_, bool>(9));
        let payload: i64 = client
            .query_one(
                "SELECT count(*) FROM events_raw WHERE payload->>'status' = 'paid'",
                &[],
            )
            .await
            .expect("jsonb payload")
            .get(0);
        assert_eq!(payload, 1);
    }

    /// An offset row another writer inserts while our batch is in flight (invisible to our
    /// fencing read, committed before our upsert) is caught by the upsert's re-check: the batch
    /// is refused whole.
    #[tokio::test]
    async fn fencing_rechecks_offsets_created_meanwhile() {
        let f = common::pg().await;
        let store = f.open().await;
        let other = f.pg.as_ref().expect("pg fixture").client().await;
        other
            .batch_execute(
                "BEGIN; INSERT INTO consumer_offsets (group_id, topic, \"partition\", next_offset) \
                 VALUES ('g', 'sales', 0, 5)",
            )
            .await
            .expect("other writer's uncommitted offset");
        let p = TopicPartition::new("sales", 0);
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(ids(1)[0], ts("2026-11-21T10:00:00Z"), 1, 1)],
            offsets: vec![range(&p, 0, 1)],
            ..Default::default()
        };
        let write = tokio::spawn(async move { store.write_batch(&batch).await.map(|_| store) });
        // Our upsert now waits on the other writer's row.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        other
            .batch_execute("COMMIT")
            .await
            .expect("commit the other writer");
        match write.await.expect("join") {
            Err(retail_sink::Error::OffsetConflict {
                tp,
                stored: 5,
                batch_first: 0,
            }) => assert_eq!(tp, p),
            Err(e) => panic!("expected an offset conflict, got {e}"),
            Ok(_) => panic!("expected an offset conflict, the batch landed"),
        }
        let rows: i64 = other
            .query_one("SELECT count(*) FROM sales_raw", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows, 0);
    }

    /// A server that is not there is a retryable error naming it, not a hang or a panic.
    #[tokio::test]
    async fn an_unreachable_server_is_retryable() {
        let err = retail_sink::postgres::PostgresStore::connect("postgres://postgres@127.0.0.1:1/nope")
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1/nope"), "{err}");
    }
}

mod sqlite {
    use retail_sink::LandingBatch;

    use crate::common::{self, ids, range, sale, ts};

    suite!(common::sqlite());

    /// A file an older binary made (migrations 1 to 3, money as REAL) is refused at open with a
    /// message saying what to do, and left as it was (ADR 0020).
    #[tokio::test]
    async fn a_file_that_keeps_money_as_real_is_refused() {
        let f = common::sqlite();
        let retail_sink::StoreUrl::Sqlite(path) = &f.url else {
            panic!("sqlite fixture")
        };
        let conn = rusqlite::Connection::open(path).expect("create file");
        conn.execute_batch(concat!(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '');",
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_processing.sql"),
            include_str!("../migrations/sqlite/0003_dead_letter_resubmitted.sql"),
            "INSERT INTO schema_migrations (version) VALUES (1), (2), (3);",
            "INSERT INTO sales_raw (event_id, kind, store_id, sku, qty, unit_price, ts, source) \
             VALUES ('x', 'sale', 1, 2, 1, 19.99, '2026-11-21T10:00:00.000Z', 'pos');"
        ))
        .expect("an older binary's file");
        drop(conn);
        let err = match retail_sink::open(&f.url).await {
            Ok(_) => panic!("a file with money as REAL must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("older retail-etl") && err.contains("REAL") && err.contains("fresh one"),
            "unhelpful refusal: {err}"
        );
        let conn = rusqlite::Connection::open(path).expect("reopen");
        let price: f64 = conn
            .query_row("SELECT unit_price FROM sales_raw", [], |r| r.get(0))
            .expect("the old row is still there");
        assert!((price - 19.99).abs() < 1e-9);
    }

    /// A file from before the dedup horizon (migrations 1 to 4) with ids in its ledger
    /// migrates (0006): the old ledger becomes `landed_event_ids_legacy` and its ids stay
    /// duplicates; new ids go to the table of their event day (ADR 0022).
    #[tokio::test]
    async fn an_old_ledger_migrates_and_keeps_deduplicating() {
        let f = common::sqlite();
        let retail_sink::StoreUrl::Sqlite(path) = &f.url else {
            panic!("sqlite fixture")
        };
        let old = ids(1)[0];
        let conn = rusqlite::Connection::open(path).expect("create file");
        conn.execute_batch(concat!(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '');",
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_processing.sql"),
            include_str!("../migrations/sqlite/0003_dead_letter_resubmitted.sql"),
            include_str!("../migrations/sqlite/0004_money_in_cents.sql"),
            "INSERT INTO schema_migrations (version) VALUES (1), (2), (3), (4);",
        ))
        .expect("an older binary's file");
        conn.execute(
            "INSERT INTO landed_event_ids (event_id) VALUES (?1)",
            [old.hyphenated().to_string()],
        )
        .expect("an id in the old ledger");
        drop(conn);
        let store = f.open().await;
        let at = ts("2026-11-30T10:00:00Z");
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(old, at, 1, 1), sale(ids(1)[0], at, 1, 1)],
            offsets: vec![range(&retail_core::TopicPartition::new("sales", 0), 0, 2)],
            ..Default::default()
        };
        let o = store.write_batch(&batch).await.expect("re-send of an old id");
        assert_eq!((o.sales_inserted, o.sales_duplicates), (1, 1), "{o:?}");
        assert_eq!(
            f.texts("SELECT name FROM sqlite_master WHERE name LIKE 'landed_event_ids%' AND type = 'table'")
                .await,
            ["landed_event_ids_20261130", "landed_event_ids_legacy"]
        );
    }

    /// Money SQLite cannot hold exactly is refused, never rounded (PostgreSQL keeps all of it
    /// in `numeric`): a sum past i64 cents (SQLite's `+` would silently make it a REAL), an
    /// integer sum past i64, an aggregate input with more than two decimals, and a raw price
    /// with more than two decimals, which becomes a dead letter while the rest lands.
    #[tokio::test]
    async fn money_without_an_exact_place_is_refused_not_rounded() {
        use retail_sink::derived::{
            AggregateTable, ColumnType, Contribution, Derived, KeyColumn, MeasureColumn, Merge, Value,
        };
        use retail_sink::Table;
        use rust_decimal::Decimal;
        use std::sync::Arc;

        let f = common::sqlite();
        let store = f.open().await;
        let table = AggregateTable {
            name: "agg_money".into(),
            keys: vec![KeyColumn {
                name: "store_id".into(),
                ty: ColumnType::Int,
            }],
            measures: vec![
                MeasureColumn {
                    name: "revenue".into(),
                    input: ColumnType::Decimal,
                    merge: Merge::Sum,
                },
                MeasureColumn {
                    name: "units".into(),
                    input: ColumnType::Int,
                    merge: Merge::Sum,
                },
            ],
            rank: None,
        };
        store
            .prepare_aggregates(std::slice::from_ref(&table))
            .await
            .expect("prepare");
        let p = retail_core::TopicPartition::new("sales", 0);
        let at = ts("2026-11-21T10:00:00Z");
        let batch = |offset: i64, revenue: Decimal, units: i64| {
            let id = ids(1)[0];
            LandingBatch {
                group: "g".into(),
                sales: vec![sale(id, at, 1, 1)],
                offsets: vec![range(&p, offset, offset + 1)],
                derived: Arc::new(Derived {
                    contributions: vec![Contribution {
                        event_id: id,
                        table: 0,
                        window_start: 0,
                        window_end: 60_000,
                        key: vec![Value::Int(1)],
                        values: vec![Value::Decimal(revenue), Value::Int(units)],
                    }]
                    .into(),
                    ..Derived::default()
                }),
                ..Default::default()
            }
        };
        // 5e16 (5e18 cents) fits; twice that does not fit i64 cents.
        let half = Decimal::new(50_000_000_000_000_000, 0);
        store.write_batch(&batch(0, half, 1)).await.expect("first half");
        let err = store
            .write_batch(&batch(1, half, 1))
            .await
            .expect_err("a sum past i64 cents must be refused");
        assert!(
            err.is_refused() && err.to_string().contains("CHECK constraint failed"),
            "{err}"
        );
        let err = store
            .write_batch(&batch(1, Decimal::ONE, i64::MAX))
            .await
            .expect_err("an integer sum past i64 must be refused");
        assert!(
            err.is_refused() && err.to_string().contains("CHECK constraint failed"),
            "{err}"
        );
        let err = store
            .write_batch(&batch(1, Decimal::new(1125, 3), 1))
            .await
            .expect_err("1.125 has no place in cents");
        assert!(
            err.is_refused()
                && err
                    .to_string()
                    .contains("revenue = 1.125 is not a whole number of cents"),
            "{err}"
        );
        assert_eq!(
            f.texts("SELECT CAST(revenue AS TEXT) || '|' || units FROM agg_money")
                .await,
            ["5000000000000000000|1"]
        );

        // A raw price of 1.125 becomes a dead letter naming it; the other sale lands.
        let id = ids(2);
        let mut fine = sale(id[0], at, 2, 1);
        fine.sale.unit_price = Some(Decimal::new(10, 2));
        let mut finer = sale(id[1], at, 2, 1);
        finer.sale.unit_price = Some(Decimal::new(1125, 3));
        let raw = LandingBatch {
            group: "g".into(),
            sales: vec![fine, finer],
            offsets: vec![range(&p, 1, 3)],
            ..Default::default()
        };
        let err = store.write_batch(&raw).await.expect_err("1.125 refused");
        assert!(err.is_refused(), "{err}");
        let done = retail_sink::isolate::write_isolating(&*store, &raw, err)
            .await
            .expect("isolate");
        assert_eq!(done.refused.len(), 1, "{:?}", done.refused);
        assert!(
            done.refused[0].reason.contains("unit_price 1.125 of event"),
            "{:?}",
            done.refused[0].reason
        );
        assert_eq!(store.count(Table::SalesRaw).await.expect("count"), 2);
        assert_eq!(
            f.money("SELECT unit_price FROM sales_raw WHERE store_id = 2")
                .await,
            [Decimal::new(10, 2)]
        );
    }

    /// Ids are hyphenated text and timestamps RFC 3339 UTC with milliseconds and `Z`.
    #[tokio::test]
    async fn stores_text_ids_and_millisecond_timestamps() {
        let f = common::sqlite();
        let store = f.open().await;
        let id = ids(1)[0];
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(id, ts("2026-11-21T14:43:53.488999+01:00"), 1, 1)],
            offsets: vec![range(&retail_core::TopicPartition::new("sales", 0), 0, 1)],
            ..Default::default()
        };
        store.write_batch(&batch).await.expect("write");
        drop(store);
        let retail_sink::StoreUrl::Sqlite(path) = &f.url else {
            panic!("sqlite fixture")
        };
        let conn = rusqlite::Connection::open(path).expect("open file");
        let (event_id, at, price): (String, String, i64) = conn
            .query_row("SELECT event_id, ts, unit_price FROM sales_raw", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("row");
        assert_eq!(event_id, id.hyphenated().to_string());
        assert_eq!(at, "2026-11-21T13:43:53.488Z");
        assert_eq!(price, 1999, "unit_price 19.99 in integer cents (ADR 0020)");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }
}
