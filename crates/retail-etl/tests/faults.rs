//! The fault suite (issue 18, "Must show"), through the real binary: each case asserts that
//! nothing acknowledged is lost and nothing is applied twice.
//!
//! - PostgreSQL itself stopped (`fast`, then `immediate`) and started again mid-run: a private
//!   cluster this test creates with `initdb` on a free port, never the shared one;
//! - the log's disk full for real (a small tmpfs the test mounts; `pwrite` returns ENOSPC), then
//!   space freed;
//! - `SIGTERM` at random moments under full load;
//! - poison events of every kind among good ones, sent to the webhook, on PostgreSQL;
//! - `replay` beside a live `run` on the same configuration.
//!
//! Mounting a tmpfs needs root. Without root the disk-full cases print why and pass, unless
//! `RETAIL_TEST_REQUIRE_ROOT=1` (set by `scripts/test`), which makes them fail. The private
//! cluster runs as the user `postgres` under root, as this process's user otherwise. (Two
//! processes on one data directory: tests/lock.rs.)

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{demo_args, oracle, pg_admin, summary, Run, Running, TestStore, BIN};
use rand::Rng;
use serde_json::Value;

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fails (under `RETAIL_TEST_REQUIRE_ROOT=1`) or says why the case is skipped.
fn cannot(why: &str) {
    assert!(
        std::env::var("RETAIL_TEST_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{why}. Run the tests as root (or unset RETAIL_TEST_REQUIRE_ROOT to skip this case)"
    );
    eprintln!("SKIPPED: {why}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Waits for the process to exit by itself within `limit`; its status, stdout and stderr.
fn wait_exit(mut demo: Running, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if demo.child.try_wait().expect("try_wait").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retail-etl (pid {}) did not exit within {limit:?}",
            demo.child.id()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    demo.collect()
}

/// Sends `signal` (`TERM`, `INT`) to the process.
fn signal(demo: &Running, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &demo.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} failed");
}

fn sales_landed(demo: &Running) -> f64 {
    demo.metric("retail_landing_rows_total{table=\"sales_raw\"}")
}

fn component(demo: &Running, name: &str) -> (String, String) {
    let health = demo.ok("/health");
    let c = &health["components"][name];
    (
        c["state"].as_str().unwrap_or_default().to_owned(),
        c["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. PostgreSQL stopped and started again mid-run.

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster of this test's own (initdb into a temporary directory, trust auth,
/// listening on 127.0.0.1:`port` and a socket in its directory), stopped and removed when
/// dropped. PostgreSQL refuses to run as root: as root the directory is given to the user
/// `postgres` and the tools run as that user (`runuser`); otherwise as this process's user.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    root: bool,
}

impl PrivatePg {
    /// `None` after saying why when the PostgreSQL server programs are missing.
    fn create() -> Option<Self> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            cannot(&format!(
                "{PG_BIN}/initdb is missing (Debian package postgresql-15)"
            ));
            return None;
        }
        let root = is_root();
        Self::remove_stale(root);
        let dir = common::owned_tempdir(PG_PREFIX);
        if root {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let pg = Self {
            dir,
            port: common::free_port(),
            root,
        };
        let data = pg.data().display().to_string();
        pg.as_postgres(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        Some(pg)
    }

    /// Stops and removes the clusters of earlier runs that were killed before their `Drop`
    /// ran (a nextest timeout): `pg_ctl` detaches the postmaster, so it outlives the test.
    fn remove_stale(root: bool) {
        for dir in common::stale_tempdirs(PG_PREFIX) {
            eprintln!("stopping the cluster a killed run left in {}", dir.display());
            stop_cluster(&dir.join("data"), root);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tool args`, as the user `postgres` when this process is root.
    fn command(&self, tool: &str) -> Command {
        pg_command(tool, self.root)
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (
            self.data().display().to_string(),
            self.dir.path().join("server.log").display().to_string(),
        );
        self.as_postgres(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    /// `pg_ctl stop -m <mode>`: `fast` (sessions terminated, clean shutdown) or `immediate`
    /// (every server process killed, crash recovery at the next start).
    fn stop(&self, mode: &str) {
        let data = self.data().display().to_string();
        self.as_postgres("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"]);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    /// Also on a panic (unwinding runs this).
    fn drop(&mut self) {
        stop_cluster(&self.data(), self.root);
    }
}

/// Prefix of the private clusters' directories, for finding those a killed run left.
const PG_PREFIX: &str = "retail-faults-pg-";

/// `tool`, as the user `postgres` when this process is root.
fn pg_command(tool: &str, root: bool) -> Command {
    let program = Path::new(PG_BIN).join(tool);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// `pg_ctl stop -m immediate` of the cluster in `data`, if one runs there.
fn stop_cluster(data: &Path, root: bool) {
    let _ = pg_command("pg_ctl", root)
        .args(["-D", &data.display().to_string(), "-m", "immediate", "-w", "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The dead letters the generator's malformed records must become: one per log record that
/// does not decode, computed here with the same deterministic generator.
fn expected_dead_letters(run: &Run) -> i64 {
    use retail_source::generator::{EventGenerator, GeneratorConfig};
    let config = GeneratorConfig {
        seed: run.seed,
        events: Some(run.events),
        rate: run.rate,
        duplicate_fraction: run.duplicate_fraction,
        malformed_fraction: run.malformed_fraction,
        ..GeneratorConfig::default()
    };
    let g = EventGenerator::new(&config).expect("generator config");
    let n = g
        .filter(|item| !item.catalog)
        .filter(|item| retail_core::decode(&item.record.value).is_err())
        .count();
    i64::try_from(n).expect("count")
}

/// The server itself goes away twice while `demo` generates at a steady rate: a `fast` stop
/// (sessions terminated, clean shutdown) and an `immediate` one (crash recovery at restart).
/// `/health` shows the landing `retrying` while it is down, nothing lands meanwhile, and at the
/// end every generated sale is one row, every malformed record one dead letter, and the
/// aggregates equal SQL over the raw rows.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_and_restarted_mid_run_loses_and_doubles_nothing() {
    let Some(pg) = PrivatePg::create() else {
        return;
    };
    pg.start();
    let db = "retail_faults";
    pg_admin(&pg.admin_url())
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create database");
    let store = TestStore::Postgres {
        dir: tempfile::tempdir().expect("tempdir"),
        admin_url: pg.admin_url(),
        db: db.to_owned(),
    };
    let mut run = Run {
        seed: 21,
        events: 0, // set from the summary: the run goes on until it is interrupted
        rate: 1_000.0,
        duplicate_fraction: 0.02,
        malformed_fraction: 0.005,
    };
    // No event limit: a fixed count at this rate (~20 s) could be used up before two outages
    // with waits of up to ~50 s each are over, and the run would end under the test.
    let mut args = run.args(&store);
    let at = args.iter().position(|a| a == "--events").expect("--events");
    args.drain(at..at + 2);
    let demo = Running::start(&args);
    for mode in ["fast", "immediate"] {
        let before = sales_landed(&demo);
        wait_until("rows to land", Duration::from_secs(30), || {
            sales_landed(&demo) > before + 500.0
        });
        pg.stop(mode);
        let stopped = Instant::now();
        wait_until(
            &format!("the landing to report retrying after a {mode} stop"),
            Duration::from_secs(20),
            || component(&demo, "landing").0 == "retrying",
        );
        let during = sales_landed(&demo);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            sales_landed(&demo),
            during,
            "nothing lands while the server is down"
        );
        assert!(demo.metric("retail_landing_retries_total") > 0.0);
        pg.start();
        eprintln!("{mode} stop: server down for {:?}", stopped.elapsed());
        wait_until("the landing to land again", Duration::from_secs(30), || {
            sales_landed(&demo) > during
        });
        let (state, detail) = component(&demo, "landing");
        assert_ne!(state, "failed", "{detail}");
    }
    let after = sales_landed(&demo);
    wait_until("rows to land after the restarts", Duration::from_secs(30), || {
        sales_landed(&demo) > after + 500.0
    });
    // Ctrl-C lands everything acknowledged; the expected ids are the seed's first `generated`.
    let s = demo.interrupt_to_summary();
    run.events = s["generated"].parse().expect("generated");
    eprintln!(
        "generated {} events across two server restarts: {s:?}",
        run.events
    );

    let expected = run.expected_sale_ids();
    let landed = store.sales_ids().await;
    assert_eq!(landed.len(), expected.len(), "one row per generated sale");
    assert_eq!(landed, expected, "the landed sale ids are the generated ones");
    let (dead, distinct) = store.dead_letters().await;
    assert_eq!(dead, distinct, "a log record was dead-lettered twice");
    assert_eq!(
        dead,
        expected_dead_letters(&run),
        "one dead letter per malformed record"
    );
    assert!(oracle::assert_aggregates_match_sql(&store).await > 0);
    drop(pg);
}

// ---------------------------------------------------------------------------------------------
// 2. The log's disk full.

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped (also on a panic),
/// and by the next run when this one was killed first.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Prefix of the tmpfs mount points' parent directories.
const DISK_PREFIX: &str = "retail-faults-disk-";

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        for stale in common::stale_tempdirs(DISK_PREFIX) {
            eprintln!("unmounting the tmpfs a killed run left in {}", stale.display());
            let _ = Command::new("umount").arg("-l").arg(stale.join("mnt")).status();
            let _ = std::fs::remove_dir_all(&stale);
        }
        let dir = common::owned_tempdir(DISK_PREFIX);
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Self { path, _dir: dir }),
            Ok(o) => format!(
                "mount -t tmpfs -o size={size} tmpfs {} failed ({}): {}",
                path.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("could not run mount: {e}"),
        };
        cannot(&format!(
            "a real full disk needs a small filesystem of the test's own, and {why}"
        ));
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// NDJSON sales without event ids (the receiver derives them from the bytes), distinct per
/// `batch`.
fn sales_batch(batch: u32, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"type\":\"sale\",\"store_id\":{},\"sku\":{},\"qty\":{},\"unit_price\":\"2.50\",\"seller_id\":3,\"ts\":{}}}\n",
                1 + i % 7,
                1000 + i,
                1 + batch % 5,
                1_723_456_789_000_i64 + i64::from(batch) * 1000 + i64::from(i)
            )
        })
        .collect()
}

async fn post(demo: &Running, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/ingest/pos", demo.http))
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("json answer"))
}

fn event_ids(v: &Value) -> Vec<String> {
    v["event_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no event_ids in {v}"))
        .iter()
        .map(|i| i.as_str().expect("id").to_owned())
        .collect()
}

/// The data directory (embedded log included) on an 8 MiB tmpfs mostly taken by a filler file:
/// webhook posts fill it until the log's `pwrite` fails with ENOSPC. Those posts get 503 (never
/// 202), the process keeps running and `/health` says why; once the filler is removed posts are
/// accepted again, and the store holds exactly the events that got a 202 (the refused requests
/// are not sent again).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_log_disk_answers_503_until_space_is_freed_and_loses_nothing() {
    full_log_disk(None).await;
}

/// The same with 4 KiB segments, so that every append rolls segments and the disk always fills
/// in a round that rolled: the log must take appends again without a restart (before ADR 0021
/// such a failure stopped its writer for good). The test then does what a sender must do with a
/// 503, sends the refused requests again: each lands once, and nothing that no 202 named lands
/// (a failed round, one that rolled included, keeps nothing of itself).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_log_disk_at_segment_rolls_takes_appends_again_without_a_restart() {
    full_log_disk(Some(4096)).await;
}

async fn full_log_disk(segment_bytes: Option<u64>) {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let store = TestStore::postgres().await;
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![7u8; 6 * 1024 * 1024 + 512 * 1024]).expect("filler file");
    let data = disk.path.join("data");
    let mut args = demo_args(&store, 0, 1);
    let at = args.iter().position(|a| a == "--data-dir").expect("--data-dir") + 1;
    args[at] = data.display().to_string();
    if let Some(bytes) = segment_bytes {
        let config = store.data_dir().join("small-segments.toml");
        std::fs::write(&config, format!("[log.embedded]\nsegment_bytes = {bytes}\n")).expect("config");
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    let mut demo = Running::start(&args);

    let mut acked: Vec<String> = Vec::new();
    let mut refused = None;
    for batch in 0..400 {
        let (code, v) = post(&demo, &sales_batch(batch, 200)).await;
        match code {
            202 => acked.extend(event_ids(&v)),
            503 => {
                refused = Some((batch, v));
                break;
            }
            other => panic!("batch {batch}: {other} {v}"),
        }
    }
    let (full_at, answer) = refused.expect("400 batches of 200 events cannot fit in about 1.5 MiB");
    assert!(!acked.is_empty(), "the disk filled before the first batch");
    assert_eq!(answer["error"]["code"], "log_unavailable", "{answer}");
    // The answer says how to resend so that the request lands once.
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("kept none of this request") && message.contains("same Idempotency-Key"),
        "{answer}"
    );
    eprintln!(
        "disk full after {} acknowledged events ({full_at} batches)",
        acked.len()
    );

    // Still full: still 503, the process runs, /health names the cause.
    let still = sales_batch(10_000, 200);
    let (code, v) = post(&demo, &still).await;
    assert_eq!(code, 503, "{v}");
    assert!(
        demo.child.try_wait().expect("try_wait").is_none(),
        "the process exited on a full disk"
    );
    let (state, detail) = component(&demo, "pos");
    assert_eq!(
        state, "retrying",
        "/health of the webhook while the disk is full: {detail}"
    );
    assert!(
        detail.contains("No space left on device") && detail.contains(&data.display().to_string()),
        "/health must say the log's disk is full and where: {detail}"
    );

    std::fs::remove_file(&filler).expect("remove the filler");
    let mut batch = 20_000;
    wait_until_async(&demo, &mut acked, &mut batch).await;
    let (state, detail) = component(&demo, "pos");
    assert_eq!(state, "running", "{detail}");
    if segment_bytes.is_some() {
        for body in [sales_batch(full_at, 200), still] {
            let (code, v) = post(&demo, &body).await;
            assert_eq!(code, 202, "a refused request sent again: {v}");
            acked.extend(event_ids(&v));
        }
    }
    for _ in 0..5 {
        batch += 1;
        let (code, v) = post(&demo, &sales_batch(batch, 200)).await;
        assert_eq!(code, 202, "{v}");
        acked.extend(event_ids(&v));
    }

    let s = demo.interrupt_to_summary();
    let expected: HashSet<String> = acked.iter().cloned().collect();
    assert_eq!(expected.len(), acked.len(), "the receiver gave one id twice");
    let landed = store.sales_ids().await;
    assert_eq!(
        landed.len(),
        expected.len(),
        "exactly the acknowledged events land: {s:?}"
    );
    assert_eq!(landed, expected);
    store.drop().await;
    drop(disk);
}

/// Posts until one is accepted again (at most 10 s), keeping what was acknowledged.
async fn wait_until_async(demo: &Running, acked: &mut Vec<String>, batch: &mut u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        *batch += 1;
        let (code, v) = post(demo, &sales_batch(*batch, 200)).await;
        if code == 202 {
            acked.extend(event_ids(&v));
            return;
        }
        assert_eq!(code, 503, "{v}");
        assert!(
            Instant::now() < deadline,
            "posts still refused 10 s after space was freed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. SIGTERM under full load.

/// `demo --events N` at 10,000 events/s, stopped by SIGTERM at a random moment, three times with
/// the same seed: each stop exits 0 within 30 s with everything it acknowledged processed (landed,
/// or found already landed by an earlier run), and the store then holds exactly the first
/// `max(generated)` sales of the seed, once each.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_full_load_exits_cleanly_and_lands_everything_acknowledged() {
    let store = TestStore::postgres().await;
    let full = full_run();
    let catalog = catalog_records(&full);
    let mut rng = rand::rng();
    let mut most = 0_u64;
    for round in 0..3 {
        let demo = Running::start(&full.args(&store));
        wait_until("rows to land", Duration::from_secs(30), || {
            sales_landed(&demo) > 0.0
        });
        let after = Duration::from_millis(rng.random_range(200..2_500));
        std::thread::sleep(after);
        signal(&demo, "TERM");
        let sent = Instant::now();
        let out = wait_exit(demo, Duration::from_secs(30));
        let took = sent.elapsed();
        assert!(
            out.status.success(),
            "round {round}: exit after SIGTERM: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary(&out);
        let n = |k: &str| s[k].parse::<u64>().unwrap_or_else(|_| panic!("{k} in {s:?}"));
        let generated = n("generated");
        assert!(
            generated < full.events,
            "round {round}: it finished before the signal"
        );
        // Each record the run appended was processed before the exit: a sale landed, or was
        // already in from an earlier round (a duplicate); the catalog (stores, sellers,
        // products: not counted as generated) is appended again by every run.
        assert_eq!(
            n("landed") + n("duplicates_skipped") + n("other_events"),
            generated + catalog,
            "round {round}: everything acknowledged before SIGTERM is processed before exit: {s:?}"
        );
        most = most.max(generated);
        let expected = Run {
            events: most,
            ..full_run()
        }
        .expected_sale_ids();
        let landed = store.sales_ids().await;
        assert_eq!(landed.len(), expected.len(), "round {round}");
        assert_eq!(
            landed, expected,
            "round {round}: the first {most} sales of the seed, once each"
        );
        eprintln!(
            "round {round}: SIGTERM after {after:?}, exit 0 after {took:?}, generated {generated}, {s:?}"
        );
    }
    store.drop().await;
}

/// The generator's catalog records (stores, sellers, products) of `run`'s seed.
fn catalog_records(run: &Run) -> u64 {
    use retail_source::generator::{EventGenerator, GeneratorConfig};
    let config = GeneratorConfig {
        seed: run.seed,
        events: Some(1),
        ..GeneratorConfig::default()
    };
    let g = EventGenerator::new(&config).expect("generator config");
    g.filter(|item| item.catalog).count() as u64
}

/// The run SIGTERM interrupts: more events than it can generate before the signal, at a rate
/// that keeps the landing busy. (Unlimited, the generator outruns the landing by hundreds of
/// thousands of records, and the exit waits for all of them: 15 s in a debug build.)
fn full_run() -> Run {
    Run {
        seed: 31,
        events: 2_000_000,
        rate: 10_000.0,
        duplicate_fraction: 0.0,
        malformed_fraction: 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Poison events among good ones.

/// Every kind of poison value of issue 18 item 1, one line each, with the field and the
/// message its refusal must give.
const POISON: [(&str, &str, &str); 7] = [
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":10000000000,"seller_id":3,"ts":1723456789000}"#,
        "unit_price",
        "must be below 10000000000",
    ),
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":"12345678901.50","seller_id":3,"ts":1723456789000}"#,
        "unit_price",
        "must be below 10000000000",
    ),
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":99999999999,"unit_price":"9999999999.99","seller_id":3,"ts":1723456789000}"#,
        "qty",
        "must be a non-zero integer",
    ),
    (
        r#"{"type":"inventory","store_id":1,"sku":2,"on_hand":9223372036854775807,"ts":1723456789000}"#,
        "on_hand",
        "must be at most 1000000000000",
    ),
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":"1.00","seller_id":3,"ts":1723456789000,"source":"po\u0000s"}"#,
        "source",
        "must not contain U+0000",
    ),
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":"1.00","seller_id":3,"ts":1723456789000,"note":"x\u0000"}"#,
        "",
        "contains \\u0000 (U+0000), which PostgreSQL text and jsonb refuse",
    ),
    (
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":"1.00","seller_id":3,"ts":1723456789000,"note":"\ud800"}"#,
        "",
        "lone surrogate",
    ),
];

/// The biggest values that are not poison: a price just under 1e10 times the largest `qty`,
/// several in one window and store, so `unit_price * qty` and the sums are at their largest.
fn extremes() -> Vec<String> {
    (0..4)
        .map(|i| {
            format!(
                r#"{{"type":"sale","store_id":9,"sku":{},"qty":2147483647,"unit_price":"9999999999.99","seller_id":3,"ts":{}}}"#,
                50 + i,
                1_723_456_789_000_i64 + i
            )
        })
        .collect()
}

/// Poison events of every kind between good ones, in one webhook request (`partial = true`),
/// on PostgreSQL: the good ones land (the largest values too, with aggregates equal to SQL),
/// each poison one is a dead letter with its reason, and the answer lists each problem.
#[tokio::test(flavor = "multi_thread")]
async fn poison_events_among_good_ones_become_dead_letters_and_the_good_ones_land() {
    let store = TestStore::postgres().await;
    let config = store.data_dir().join("partial.toml");
    std::fs::write(
        &config,
        "[[sources]]\ntype = \"webhook\"\nname = \"pos\"\npath = \"pos\"\npartial = true\n",
    )
    .expect("config");
    let mut args = demo_args(&store, 0, 1);
    args.extend(["--config".to_owned(), config.display().to_string()]);
    let demo = Running::start(&args);

    let good = sales_batch(1, 12);
    let good: Vec<&str> = good.lines().collect();
    let extremes = extremes();
    let mut lines: Vec<&str> = Vec::new();
    for (i, (poison, _, _)) in POISON.iter().enumerate() {
        lines.push(good[i]);
        lines.push(poison);
    }
    lines.extend(good[POISON.len()..].iter().copied());
    lines.extend(extremes.iter().map(String::as_str));
    let body = lines.join("\n") + "\n";
    let (code, answer) = post(&demo, &body).await;
    assert_eq!(code, 202, "{answer}");
    let ids = event_ids(&answer);
    assert_eq!(ids.len(), good.len() + extremes.len(), "{answer}");
    assert_eq!(answer["rejected"], POISON.len(), "{answer}");
    let problems = answer["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), POISON.len(), "{answer}");
    for (i, (_, path, message)) in POISON.iter().enumerate() {
        // Line numbers of the request are 1-based; each poison line follows a good one.
        let p = &problems[i];
        assert!(
            p["line"] == 2 * i + 2
                && p["path"] == *path
                && p["message"].as_str().is_some_and(|m| m.contains(message)),
            "problem {i} must be line {} {path:?}: {message:?}; got {p}",
            2 * i + 2
        );
    }

    wait_until("the good events to land", Duration::from_secs(30), || {
        sales_landed(&demo) >= ids.len() as f64
    });
    let s = demo.interrupt_to_summary();
    assert_eq!(s["dead_letters"], POISON.len().to_string(), "{s:?}");

    let landed = store.sales_ids().await;
    assert_eq!(
        landed,
        ids.iter().cloned().collect::<HashSet<_>>(),
        "the good events, once each"
    );
    let letters = pg_admin(&store.url())
        .await
        .query("SELECT reason, convert_from(raw, 'UTF8') FROM dead_letters", &[])
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), POISON.len());
    let all: Vec<(String, String)> = letters.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (line, path, message) in POISON {
        let found = all
            .iter()
            .any(|(reason, raw)| raw.trim_end() == line && reason.contains(path) && reason.contains(message));
        assert!(
            found,
            "no dead letter of {line} naming {path:?} and {message:?}: {all:#?}"
        );
    }
    assert!(oracle::assert_aggregates_match_sql(&store).await > 0);
    store.drop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. A replay beside a live run.

/// `retail-etl replay` on the configuration of a live `run` is refused by the embedded log's
/// directory lock, naming the directory and the live process; nothing of the replay is created,
/// and the live run keeps landing: at its stop the store holds exactly what it generated.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_beside_a_live_run_is_refused_and_the_run_lands_exactly_once() {
    let store = TestStore::postgres().await;
    let dir = store.data_dir().join("data");
    let config = store.data_dir().join("run.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[store]\nurl = {:?}\n[serve]\nlisten = \"127.0.0.1:0\"\n\
             [[sources]]\ntype = \"generator\"\nname = \"generator\"\nseed = 41\nrate = 1500.0\n",
            dir.display().to_string(),
            store.url()
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let live = Running::start(&["run".to_owned(), "--config".to_owned(), config.clone()]);
    wait_until("rows to land", Duration::from_secs(30), || {
        sales_landed(&live) > 0.0
    });

    let out = Command::new(BIN)
        .args(["replay", "--config", &config])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run replay");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a replay beside the live run ran: {err}");
    let log_dir = dir.join("log").display().to_string();
    assert!(
        err.contains(&log_dir),
        "the refusal must name the log directory {log_dir}: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", live.child.id())),
        "the refusal must name the live process (pid {}): {err}",
        live.child.id()
    );
    let client = pg_admin(&store.url()).await;
    let replay_table: Option<String> = client
        .query_one("SELECT to_regclass('sales_agg_minute_replay')::text", &[])
        .await
        .expect("to_regclass")
        .get(0);
    assert_eq!(replay_table, None, "a refused replay creates nothing");

    let after = sales_landed(&live);
    wait_until("the live run to keep landing", Duration::from_secs(30), || {
        sales_landed(&live) > after + 1_000.0
    });
    let s = live.interrupt_to_summary();
    let generated: u64 = s["generated"].parse().expect("generated");
    assert_eq!(s["landed"], s["generated"], "{s:?}");
    let expected = Run {
        seed: 41,
        events: generated,
        rate: 1_500.0,
        duplicate_fraction: 0.0,
        malformed_fraction: 0.0,
    }
    .expected_sale_ids();
    assert_eq!(
        store.sales_ids().await,
        expected,
        "the live run's sales, once each"
    );
    store.drop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. What a failed or killed test leaves behind.

/// The pid of a process that has exited: what `owner.pid` holds after a run was killed.
fn a_dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// A run killed (a nextest timeout) before its guards ran leaves its private cluster running
/// (`pg_ctl` detaches the postmaster) and its tmpfs mounted: the next run stops, unmounts and
/// removes them. Simulated by forgetting the guards and naming a dead owner.
#[test]
fn a_cluster_and_a_mount_left_by_a_killed_run_are_removed_by_the_next_run() {
    let Some(pg) = PrivatePg::create() else {
        return;
    };
    pg.start();
    let dir = pg.dir.path().to_path_buf();
    let pid_file = std::fs::read_to_string(pg.data().join("postmaster.pid")).expect("postmaster.pid");
    let postmaster = pid_file.lines().next().expect("pid line").trim().to_owned();
    std::fs::write(dir.join("owner.pid"), a_dead_pid().to_string()).expect("owner.pid");
    std::mem::forget(pg);
    let next = PrivatePg::create().expect("a new cluster");
    wait_until(
        "the left cluster's postmaster to stop",
        Duration::from_secs(20),
        || !Path::new(&format!("/proc/{postmaster}")).exists(),
    );
    wait_until(
        &format!("{} to be removed", dir.display()),
        Duration::from_secs(10),
        || !dir.exists(),
    );
    drop(next);

    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let (mnt, parent) = (disk.path.clone(), disk._dir.path().to_path_buf());
    let mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .expect("/proc/mounts")
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(mnt.to_str().expect("utf-8")))
    };
    // Checked before it is marked stale: a test running beside this one may clean it up.
    assert!(mounted(), "{} should be mounted", mnt.display());
    std::fs::write(parent.join("owner.pid"), a_dead_pid().to_string()).expect("owner.pid");
    std::mem::forget(disk);
    assert!(
        mounted(),
        "{} should be mounted before the next run",
        mnt.display()
    );
    let next = SmallDisk::mount("1m").expect("a new tmpfs");
    assert!(!mounted(), "{} is still mounted", mnt.display());
    wait_until(
        &format!("{} to be removed", parent.display()),
        Duration::from_secs(10),
        || !parent.exists(),
    );
    drop(next);
}

/// A test that panics still drops its PostgreSQL database (the store's `Drop` runs while
/// unwinding), instead of leaving it on the shared server.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_test_drops_its_database() {
    let store = TestStore::postgres().await;
    let (admin, db) = match &store {
        TestStore::Postgres { admin_url, db, .. } => (admin_url.clone(), db.clone()),
        TestStore::Sqlite { .. } => unreachable!("a PostgreSQL store"),
    };
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _store = store;
        panic!("a test failing with its store in scope");
    }));
    assert!(panicked.is_err());
    let left: i64 = pg_admin(&admin)
        .await
        .query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&db])
        .await
        .expect("query")
        .get(0);
    assert_eq!(left, 0, "database {db} outlived the panicking test");
}
