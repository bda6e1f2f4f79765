//! The oracle of the aggregates: each built-in aggregate table must equal the same aggregate
//! computed with plain SQL over `sales_raw` (joined to the catalog dimensions), leaving out the
//! events `late_events` lists for that aggregate; and `late_events` must list exactly the events
//! an independent reading of the log finds late. Both checks read the store with independent
//! clients and the log with the log crate, never through the processing code.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use retail_core::{decode, EventBody, TopicPartition};
use retail_log::{ConsumerEvent, Log};

use super::TestStore;

/// The built-in aggregates as the oracle sees them: name, window (ms), grace (ms).
pub const BUILTINS: [(&str, i64, i64); 4] = [
    ("sales_agg_minute", 60_000, 30_000),
    ("sales_agg_hour", 3_600_000, 60_000),
    ("top_sales_by_city", 86_400_000, 300_000),
    ("top_salesman_by_country", 30 * 86_400_000, 300_000),
];

/// The default allowed out-of-orderness.
pub const OUT_OF_ORDERNESS_MS: i64 = 5_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Pg,
    Lite,
}

fn money(d: Dialect, e: &str) -> String {
    match d {
        Dialect::Pg => format!("coalesce(round({e}, 2)::text, 'null')"),
        // SQLite keeps money as integer cents (ADR 0020): shown as the exact decimal.
        Dialect::Lite => format!(
            "(CASE WHEN {e} IS NULL THEN 'null' ELSE printf('%s%d.%02d', CASE WHEN {e} < 0 THEN '-' ELSE '' END, \
             abs({e}) / 100, abs({e}) % 100) END)"
        ),
    }
}

fn window_col(d: Dialect) -> &'static str {
    match d {
        Dialect::Pg => "to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')",
        Dialect::Lite => "substr(window_start, 1, 19)",
    }
}

/// The window start of `s.ts` for a window of `size` ms, as text.
fn window_of(d: Dialect, size: i64) -> String {
    match (d, size) {
        (Dialect::Pg, 60_000) => "to_char(date_trunc('minute', s.ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS')".into(),
        (Dialect::Pg, 3_600_000) => "to_char(date_trunc('hour', s.ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS')".into(),
        (Dialect::Pg, 86_400_000) => "to_char(date_trunc('day', s.ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS')".into(),
        (Dialect::Pg, n) => format!(
            "to_char(to_timestamp(floor(extract(epoch FROM s.ts) / {secs}) * {secs}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')",
            secs = n / 1000
        ),
        (Dialect::Lite, 60_000) => "strftime('%Y-%m-%dT%H:%M:00', s.ts)".into(),
        (Dialect::Lite, 3_600_000) => "strftime('%Y-%m-%dT%H:00:00', s.ts)".into(),
        (Dialect::Lite, 86_400_000) => "strftime('%Y-%m-%dT00:00:00', s.ts)".into(),
        (Dialect::Lite, n) => format!(
            "strftime('%Y-%m-%dT%H:%M:%S', (unixepoch(s.ts) / {secs}) * {secs}, 'unixepoch')",
            secs = n / 1000
        ),
    }
}

fn count_if(d: Dialect, cond: &str) -> String {
    match d {
        Dialect::Pg => format!("count(*) FILTER (WHERE {cond})"),
        Dialect::Lite => format!("sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"),
    }
}

/// `(rows of the table, rows of the oracle)`, each row one `|`-joined text.
fn queries(d: Dialect, name: &str, size: i64) -> (String, String) {
    let not_late = format!(
        "NOT EXISTS (SELECT 1 FROM late_events l WHERE l.aggregate = '{name}' AND l.event_id = s.event_id)"
    );
    let w = window_of(d, size);
    let wc = window_col(d);
    let (table_cols, oracle_cols, from, group) = match name {
        "sales_agg_minute" | "sales_agg_hour" => (
            format!("{wc} || '|' || store_id || '|' || units || '|' || {} || '|' || sales || '|' || returns", money(d, "revenue")),
            format!(
                "{w} || '|' || s.store_id || '|' || sum(s.qty) || '|' || {} || '|' || {} || '|' || {}",
                money(d, "sum(s.qty * s.unit_price)"),
                count_if(d, "s.kind = 'sale'"),
                count_if(d, "s.kind = 'return'")
            ),
            "sales_raw s".to_owned(),
            format!("{w}, s.store_id"),
        ),
        "top_sales_by_city" => (
            format!("{wc} || '|' || country || '|' || city || '|' || {} || '|' || units || '|' || sales", money(d, "revenue")),
            format!(
                "{w} || '|' || coalesce(d.country, 'unknown') || '|' || coalesce(d.city, 'unknown') || '|' || {} || '|' || sum(s.qty) || '|' || {}",
                money(d, "sum(s.qty * s.unit_price)"),
                count_if(d, "s.kind = 'sale'")
            ),
            "sales_raw s LEFT JOIN store_dim d ON d.store_id = s.store_id".to_owned(),
            format!("{w}, coalesce(d.country, 'unknown'), coalesce(d.city, 'unknown')"),
        ),
        "top_salesman_by_country" => (
            format!(
                "{wc} || '|' || country || '|' || seller_id || '|' || seller_name || '|' || {} || '|' || units || '|' || sales",
                money(d, "revenue")
            ),
            format!(
                "{w} || '|' || coalesce(d.country, 'unknown') || '|' || s.seller_id || '|' || coalesce(p.name, 'unknown') || '|' || {} || '|' || sum(s.qty) || '|' || {}",
                money(d, "sum(s.qty * s.unit_price)"),
                count_if(d, "s.kind = 'sale'")
            ),
            "sales_raw s LEFT JOIN store_dim d ON d.store_id = s.store_id LEFT JOIN seller_dim p ON p.seller_id = s.seller_id"
                .to_owned(),
            format!("{w}, coalesce(d.country, 'unknown'), s.seller_id, coalesce(p.name, 'unknown')"),
        ),
        other => panic!("no oracle for {other}"),
    };
    let seller = if name == "top_salesman_by_country" {
        " AND s.seller_id IS NOT NULL"
    } else {
        ""
    };
    (
        format!("SELECT {table_cols} FROM {name}"),
        format!("SELECT {oracle_cols} FROM {from} WHERE {not_late}{seller} GROUP BY {group}"),
    )
}

async fn rows(store: &TestStore, sql: &str) -> Vec<String> {
    let mut out: Vec<String> = match store {
        TestStore::Sqlite { dir } => {
            let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open sqlite");
            let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
            rows.map(|r| r.expect("row")).collect()
        }
        TestStore::Postgres { .. } => {
            let client = super::pg_admin(&store.url()).await;
            client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect()
        }
    };
    out.sort();
    out
}

/// Asserts every built-in aggregate table equals its SQL recomputation; returns the number of
/// aggregate rows checked. A failure shows the first differing rows of each side.
pub async fn assert_aggregates_match_sql(store: &TestStore) -> usize {
    let d = match store {
        TestStore::Sqlite { .. } => Dialect::Lite,
        TestStore::Postgres { .. } => Dialect::Pg,
    };
    let mut checked = 0;
    for (name, size, _) in BUILTINS {
        let (table_sql, oracle_sql) = queries(d, name, size);
        let table = rows(store, &table_sql).await;
        let oracle = rows(store, &oracle_sql).await;
        assert!(
            !oracle.is_empty(),
            "{name}: the oracle found no rows; is sales_raw empty?"
        );
        if table != oracle {
            let t: BTreeSet<&String> = table.iter().collect();
            let o: BTreeSet<&String> = oracle.iter().collect();
            let only_table: Vec<_> = t.difference(&o).take(5).collect();
            let only_oracle: Vec<_> = o.difference(&t).take(5).collect();
            panic!(
                "{name}: {} rows in the table, {} by SQL over sales_raw\n  only in the table: {only_table:#?}\n  only by SQL:       {only_oracle:#?}\n  (columns: window_start|keys...|measures...)",
                table.len(),
                oracle.len()
            );
        }
        checked += table.len();
    }
    checked
}

/// The rows of built-in `aggregate`'s table as stored in `table` (e.g. a replay's copy), money
/// rounded to cents as the oracle compares it.
pub async fn aggregate_rows(store: &TestStore, aggregate: &str, table: &str) -> Vec<String> {
    let d = match store {
        TestStore::Sqlite { .. } => Dialect::Lite,
        TestStore::Postgres { .. } => Dialect::Pg,
    };
    let (_, size, _) = BUILTINS
        .iter()
        .find(|(n, _, _)| *n == aggregate)
        .unwrap_or_else(|| panic!("{aggregate} is not built in"));
    let (sql, _) = queries(d, aggregate, *size);
    let sql = sql.replace(&format!("FROM {aggregate}"), &format!("FROM {table}"));
    rows(store, &sql).await
}

/// `(aggregate, event_id)` of every row of `late_events`.
pub async fn late_events(store: &TestStore) -> BTreeSet<(String, String)> {
    let sql = "SELECT aggregate || '|' || event_id FROM late_events";
    rows(store, sql)
        .await
        .into_iter()
        .map(|r| {
            let (a, id) = r.split_once('|').expect("two columns");
            (a.to_owned(), id.to_owned())
        })
        .collect()
}

/// The `(aggregate, event_id)` pairs a log reading finds late for the built-in aggregates: per
/// sales partition in offset order, an event is late for an aggregate when its window's end
/// plus grace is at or before the partition's largest earlier event time minus the allowed
/// out-of-orderness. Only the first copy of an event id counts. Reads the embedded log under
/// `data_dir` (the binary must have exited).
pub async fn expected_late_from_log(data_dir: &Path, partitions: i32) -> BTreeSet<(String, String)> {
    let log = retail_log::embedded::EmbeddedLog::open(&data_dir.join("log"), Default::default())
        .await
        .expect("open the embedded log");
    let mut consumer = log
        .consumer(&format!("oracle-{}", rand::random::<u32>()), &["sales"])
        .await
        .expect("consumer");
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new("sales", p);
        ends.insert(tp.clone(), log.watermarks(&tp).await.expect("watermarks").1);
    }
    let mut positions: HashMap<TopicPartition, i64> = HashMap::new();
    let mut max_ts: HashMap<i32, i64> = HashMap::new();
    let mut seen: HashSet<uuid::Uuid> = HashSet::new();
    let mut late = BTreeSet::new();
    while ends
        .iter()
        .any(|(tp, end)| positions.get(tp).copied().unwrap_or(0) < *end)
    {
        match consumer
            .poll(10_000, Duration::from_millis(200))
            .await
            .expect("poll")
        {
            ConsumerEvent::Assigned(tps) => {
                for tp in tps {
                    consumer.seek(&tp, retail_log::OFFSET_BEGINNING).expect("seek");
                }
            }
            ConsumerEvent::Revoked(_) => {}
            ConsumerEvent::Records(records) => {
                for rec in records {
                    positions.insert(
                        TopicPartition::new(rec.topic.clone(), rec.partition),
                        rec.offset + 1,
                    );
                    let Ok(event) = decode(&rec.value) else { continue };
                    let EventBody::Sale(sale) = &event.body else {
                        continue;
                    };
                    let ts = event.ts.timestamp_millis();
                    let before = max_ts.get(&rec.partition).copied();
                    if seen.insert(event.event_id) {
                        if let Some(max) = before {
                            let watermark = max - OUT_OF_ORDERNESS_MS;
                            for (name, size, grace) in BUILTINS {
                                if name == "top_salesman_by_country" && sale.seller_id.is_none() {
                                    continue;
                                }
                                let end = ts.div_euclid(size) * size + size;
                                if end + grace <= watermark {
                                    late.insert((name.to_owned(), event.event_id.to_string()));
                                }
                            }
                        }
                    }
                    let m = max_ts.entry(rec.partition).or_insert(ts);
                    *m = (*m).max(ts);
                }
            }
        }
    }
    drop(consumer);
    log.close().await.expect("close log");
    late
}
