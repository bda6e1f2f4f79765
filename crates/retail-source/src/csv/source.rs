//! The folder watcher: lists the folder every `poll_ms`, takes each complete file in name
//! order, and ingests it exactly once (see `ledger.rs` for how a crash mid-file is resumed
//! without repeating or losing a row), then moves it to `processed/`, or to `failed/` with an
//! `.error` file beside it when it cannot be read at all. Bad rows are carried through the log
//! to the landing, which dead-letters them with the file name, the line and the reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use retail_core::event::topics;
use retail_core::health::State;
use retail_core::TopicPartition;
use retail_log::{ConsumerEvent, ProducerRecord};
use sha2::Digest;
use tracing::{info, warn};

use super::config::{CsvConfig, Readiness};
use super::ledger::{FileState, Ledger, Pending};
use super::parse::{parse, Row};
use crate::record::{event_record, header, headers, reject};
use crate::runtime::SourceRuntime;
use crate::{Error, Result};

/// The header carrying the checksum of the file a record came from (recovery reads it).
pub const CSV_FILE: &str = "csv_file";

/// A watched folder.
#[derive(Debug)]
pub struct Inbox {
    config: CsvConfig,
    dir: PathBuf,
    ledger: Ledger,
    runtime: SourceRuntime,
    partitions: i32,
    /// Size and mtime last seen per file, and since when unchanged.
    seen: HashMap<PathBuf, (u64, SystemTime, Instant)>,
}

impl Inbox {
    /// Opens the ledger in `state_dir` for the folder `dir`.
    pub fn open(
        config: CsvConfig,
        dir: PathBuf,
        state_dir: &Path,
        runtime: SourceRuntime,
        partitions: i32,
    ) -> Result<Self> {
        Ok(Self {
            ledger: Ledger::open(state_dir)?,
            config,
            dir,
            runtime,
            partitions,
            seen: HashMap::new(),
        })
    }

    /// Watches until shutdown. A file that fails to move, or a log that refuses for good,
    /// ends the task with the error; a log that refuses for now is retried.
    pub async fn run(mut self) -> Result<()> {
        let result = self.watch().await;
        if let Err(e) = &result {
            self.runtime.set_state(State::Failed, e.to_string());
        }
        result
    }

    async fn watch(&mut self) -> Result<()> {
        if !self.runtime.ensure_topics(&topics::ALL, self.partitions).await? {
            return Ok(());
        }
        self.runtime
            .set_state(State::Running, format!("watching {}", self.dir.display()));
        let poll = Duration::from_millis(self.config.poll_ms);
        loop {
            if !self.runtime.wait_unpaused().await {
                return Ok(());
            }
            for file in self.ready_files()? {
                if self.runtime.shutdown().is_triggered() || self.runtime.is_paused() {
                    break;
                }
                self.ingest(&file).await?;
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = self.runtime.shutdown().wait() => return Ok(()),
            }
        }
    }

    /// Files that are complete, in name order.
    fn ready_files(&mut self) -> Result<Vec<PathBuf>> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        let mut ready = Vec::new();
        let mut present = HashSet::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || name.starts_with('.') || name.ends_with(".done") || name.ends_with(".error")
            {
                continue;
            }
            present.insert(path.clone());
            let is_ready = match self.config.ready {
                Readiness::Marker => marker(&path).exists(),
                Readiness::Stable => {
                    let now = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                    let since = match self.seen.get(&path) {
                        Some(&(len, mtime, since)) if (len, mtime) == now => since,
                        _ => Instant::now(),
                    };
                    self.seen.insert(path.clone(), (now.0, now.1, since));
                    since.elapsed() >= Duration::from_millis(self.config.stable_ms)
                }
            };
            if is_ready {
                ready.push(path);
            } else if self.config.ready == Readiness::Stable {
                self.runtime
                    .set_state(State::Running, format!("waiting for {name} to stop changing"));
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        ready.sort();
        Ok(ready)
    }

    /// Ingests one complete file and moves it away.
    async fn ingest(&mut self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match std::fs::metadata(path) {
            Ok(m) if m.len() > self.config.max_file_bytes => {
                return self.fail(
                    path,
                    &format!(
                        "the file is {} bytes, over max_file_bytes = {}",
                        m.len(),
                        self.config.max_file_bytes
                    ),
                );
            }
            _ => tokio::fs::read(path)
                .await
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
        };
        let checksum = hex::encode(sha2::Sha256::digest(&bytes));
        let mut state = match self.ledger.get(&checksum) {
            Some(s) if s.finished => {
                info!(message = "file already ingested (same content), moving it to processed/", source = %self.runtime.name(), file = %name);
                return self.finish(path);
            }
            Some(s) => s.clone(),
            None => FileState {
                name: name.clone(),
                done_through: 1,
                pending: None,
                finished: false,
            },
        };
        let config = self.config.clone();
        let seed = format!("{}|csv|{checksum}", self.config.name);
        let parsed = tokio::task::spawn_blocking(move || parse(&config, &bytes, &seed))
            .await
            .map_err(|e| Error::Config(format!("parsing {name}: {e}")))?;
        let rows = match parsed {
            Ok(rows) => rows,
            Err(reason) => return self.fail(path, &reason),
        };
        if state.done_through == 1 && state.pending.is_none() {
            self.runtime.received(rows.len() as u64);
            self.runtime
                .rejected(rows.iter().filter(|r| matches!(r, Row::Bad { .. })).count() as u64);
        }
        self.runtime
            .set_state(State::Running, format!("ingesting {name} ({} rows)", rows.len()));

        if let Some(pending) = state.pending.take() {
            let already = self.lines_on_log(&pending, &checksum).await?;
            let rows: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    (pending.from_line..=pending.to_line).contains(&r.line()) && !already.contains(&r.line())
                })
                .collect();
            info!(
                message = "resuming a file after a crash",
                source = %self.runtime.name(), file = %name,
                batch_lines = format!("{}..={}", pending.from_line, pending.to_line),
                already_on_log = already.len(), appending = rows.len(),
            );
            if !self.append(&rows, &name, &checksum).await? {
                return Ok(());
            }
            state.done_through = pending.to_line;
            self.ledger.set(&checksum, state.clone())?;
        }
        let todo: Vec<&Row> = rows.iter().filter(|r| r.line() > state.done_through).collect();
        for batch in todo.chunks(self.config.batch_rows) {
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                continue;
            };
            let Some(ends) = self.ends().await? else {
                return Ok(()); // shutdown: the file is taken up again at the next start
            };
            state.pending = Some(Pending {
                from_line: first.line(),
                to_line: last.line(),
                ends,
            });
            self.ledger.set(&checksum, state.clone())?;
            if !self.append(batch, &name, &checksum).await? {
                return Ok(()); // shutdown while the log refused: resumed from `pending` next time
            }
            state.pending = None;
            state.done_through = last.line();
            self.ledger.set(&checksum, state.clone())?;
        }
        state.finished = true;
        self.ledger.set(&checksum, state)?;
        info!(message = "file ingested", source = %self.runtime.name(), file = %name, rows = rows.len());
        self.finish(path)
    }

    /// Appends rows through the durable path. `false` if shutdown came while retrying.
    async fn append(&self, rows: &[&Row], file: &str, checksum: &str) -> Result<bool> {
        let records: Vec<ProducerRecord> = rows.iter().map(|r| self.record(r, file, checksum)).collect();
        let good = rows.iter().filter(|r| matches!(r, Row::Event { .. })).count() as u64;
        Ok(self
            .runtime
            .append_counted(|| records.clone(), Some(good))
            .await?
            .is_some())
    }

    fn record(&self, row: &Row, file: &str, checksum: &str) -> ProducerRecord {
        let line = row.line().to_string();
        match row {
            Row::Event { event, .. } => {
                let mut r = event_record(event);
                r.headers.push(header(CSV_FILE, checksum.as_bytes()));
                r.headers.push(header(reject::LINE, line.as_bytes()));
                r
            }
            Row::Bad { reason, raw, .. } => ProducerRecord {
                topic: topics::SALES.to_owned(),
                partition: None,
                key: None,
                value: raw.clone(),
                headers: vec![
                    header(headers::SOURCE, self.runtime.name().as_bytes()),
                    header(reject::REASON, reason.as_bytes()),
                    header(reject::KIND, b"csv_row"),
                    header(reject::FILE, file.as_bytes()),
                    header(reject::LINE, line.as_bytes()),
                    header(CSV_FILE, checksum.as_bytes()),
                ],
                timestamp_ms: None,
            },
        }
    }

    /// The end of every partition now; `None` if shutdown came while the log refused.
    async fn ends(&self) -> Result<Option<BTreeMap<String, i64>>> {
        let log = self.runtime.log();
        let mut ends = BTreeMap::new();
        for topic in topics::ALL {
            for p in 0..self.partitions {
                let tp = TopicPartition::new(topic, p);
                let read = self
                    .runtime
                    .retry("reading the log's end", || log.watermarks(&tp));
                let Some((_, high)) = read.await? else {
                    return Ok(None);
                };
                ends.insert(tp.to_string(), high);
            }
        }
        Ok(Some(ends))
    }

    /// The lines of this file (by checksum) on the log after `pending.ends`: what of the
    /// pending batch the append before the crash already wrote.
    async fn lines_on_log(&self, pending: &Pending, checksum: &str) -> Result<HashSet<u64>> {
        let log = self.runtime.log().clone();
        let group = format!("{}.recovery", self.runtime.name());
        let mut consumer = log.consumer(&group, &topics::ALL).await?;
        let mut targets: HashMap<TopicPartition, i64> = HashMap::new();
        let mut lines = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                return Err(Error::Config(format!(
                    "recovering file {checksum}: reading the log back took over 60 s"
                )));
            }
            match consumer.poll(10_000, Duration::from_millis(200)).await? {
                ConsumerEvent::Assigned(tps) => {
                    for tp in tps {
                        let from = pending.ends.get(&tp.to_string()).copied().unwrap_or(0);
                        let high = log.watermarks(&tp).await?.1;
                        if from < high {
                            consumer.seek(&tp, from)?;
                            targets.insert(tp, high);
                        }
                    }
                    if targets.is_empty() {
                        return Ok(lines);
                    }
                }
                ConsumerEvent::Revoked(_) => {}
                ConsumerEvent::Records(records) => {
                    for r in records {
                        let get = |k: &str| r.headers.iter().find(|h| h.key == k).map(|h| h.value.as_slice());
                        if get(CSV_FILE) == Some(checksum.as_bytes()) {
                            if let Some(line) = get(reject::LINE)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse().ok())
                            {
                                lines.insert(line);
                            }
                        }
                        let tp = TopicPartition::new(r.topic.clone(), r.partition);
                        if targets.get(&tp).is_some_and(|&end| r.offset + 1 >= end) {
                            targets.remove(&tp);
                        }
                    }
                    if targets.is_empty() {
                        return Ok(lines);
                    }
                }
            }
        }
    }

    /// Moves a file that was ingested to `processed/`.
    fn finish(&self, path: &Path) -> Result<()> {
        let _ = std::fs::remove_file(marker(path));
        let to = free_name(&self.dir.join("processed"), path);
        std::fs::rename(path, &to)
            .map_err(|e| Error::io(format!("moving {} to {}", path.display(), to.display()), e))?;
        self.runtime
            .set_state(State::Running, format!("watching {}", self.dir.display()));
        Ok(())
    }

    /// Moves a file that cannot be read to `failed/`, with an `.error` file saying why.
    fn fail(&self, path: &Path, reason: &str) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        warn!(message = "CSV file refused", source = %self.runtime.name(), file = %name, reason);
        self.runtime.rejected(1);
        let _ = std::fs::remove_file(marker(path));
        let to = free_name(&self.dir.join("failed"), path);
        std::fs::rename(path, &to)
            .map_err(|e| Error::io(format!("moving {} to {}", path.display(), to.display()), e))?;
        let mut error = to.clone().into_os_string();
        error.push(".error");
        std::fs::write(&error, format!("{name}: {reason}\n"))
            .map_err(|e| Error::io(format!("writing {}", PathBuf::from(&error).display()), e))?;
        self.runtime
            .set_state(State::Running, format!("{name} failed: {reason}"));
        Ok(())
    }
}

/// The marker file of `path`: `<path>.done`.
fn marker(path: &Path) -> PathBuf {
    let mut m = path.to_path_buf().into_os_string();
    m.push(".done");
    PathBuf::from(m)
}

/// `dir/<file name>`, or with a numeric suffix when that name is taken.
fn free_name(dir: &Path, path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut to = dir.join(&name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    to
}
