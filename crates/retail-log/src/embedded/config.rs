//! Configuration of the embedded log (`[log]` in the TOML file).

use serde::{Deserialize, Serialize};

/// When appended data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync every group-commit batch before acknowledging it: survives power loss.
    EveryBatch,
    /// Acknowledge once written to the OS, fsync every `fsync_interval_ms`: survives a killed
    /// process (the page cache outlives it), may lose the last interval on power loss.
    Interval,
}

/// Embedded log settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// When to fsync: `every_batch` (durable against power loss) or `interval`.
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: milliseconds between fsyncs.
    pub fsync_interval_ms: u64,
    /// A partition rolls to a new segment file when the active one reaches this size.
    pub segment_bytes: u64,
    /// Oldest segments of a partition are deleted while the partition is larger than this.
    /// 0 keeps everything. Never deletes what a consumer group has not consumed: see
    /// `retention_ms`.
    pub retention_bytes: u64,
    /// Sealed segments last appended to more than this many milliseconds ago are deleted.
    /// 0 keeps everything. The age is wall-clock time since the segment's last append (the
    /// file's modification time across restarts), not the records' timestamps: those are event
    /// times, and back-filled old events must not be deleted the moment they are appended.
    ///
    /// Neither limit deletes a segment holding an offset at or above the smallest offset any
    /// consumer group committed for the partition (`__consumer_offsets/<group>.json`): a group
    /// protects the data it has not consumed once it has committed once (the landing mirrors its
    /// stored offsets to the log about once a second while it lands, and the last commit stays in
    /// force while it is idle or down), so the partition may grow past both limits
    /// while a group lags. Partitions no group ever committed for get the limits as configured.
    /// A group that is gone for good holds data back until it expires: see
    /// `group_idle_expiry_ms`.
    pub retention_ms: u64,
    /// A consumer group with no consumer open in this process that has not committed for this
    /// many milliseconds (wall-clock time since its last commit, across restarts) no longer
    /// holds retention back, so a finished `replay` (group `replay<suffix>`) or a retired
    /// group stops pinning the log. Its committed offsets are kept: a consumer that comes back
    /// resumes from them, or is told they were deleted. The check at open lets every group
    /// hold, so a pipeline stopped for longer than this loses nothing at restart before its
    /// landing is back. 0 never expires. Default 7 days.
    pub group_idle_expiry_ms: u64,
    /// Largest record (key + value + headers) accepted by append.
    pub max_record_bytes: usize,
    /// Disk budget: once the bytes no consumer group has consumed yet (from each partition's
    /// smallest committed offset to its end; a partition no group committed for counts whole)
    /// reach this, appends are refused with a retryable error and the sources hold back (the
    /// webhook answers 503 with `Retry-After`; the others retry with backoff). Nothing is
    /// dropped, and appends are accepted again as soon as the landing commits past enough of
    /// the backlog. Consumed data still kept by `retention_ms` does not count. Appends to
    /// `dead-letters` and `alerts` are never refused (the landing writes them). The log may
    /// pass the budget by the appends already in flight when it is reached. 0 = no budget.
    /// Default 10 GiB.
    pub disk_budget_bytes: u64,
}

impl EmbeddedConfig {
    const fn defaults() -> Self {
        Self {
            fsync: FsyncPolicy::EveryBatch,
            fsync_interval_ms: 5,
            segment_bytes: 128 * 1024 * 1024,
            retention_bytes: 0,
            retention_ms: 7 * 24 * 3600 * 1000,
            group_idle_expiry_ms: 7 * 24 * 3600 * 1000,
            max_record_bytes: 1024 * 1024,
            disk_budget_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// Smallest segment accepted: smaller ones roll a new file every few records (file handles,
/// fsyncs and directory entries per record).
pub const MIN_SEGMENT_BYTES: u64 = 512;
/// Largest segment accepted (1 TiB).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 40;
/// Largest record limit accepted (256 MiB): each record is read into memory whole.
pub const MAX_RECORD_LIMIT: usize = 256 * 1024 * 1024;

impl EmbeddedConfig {
    /// Refuses settings that would make the log unusable or hang it, naming the key under
    /// `[log]` (issue 18, item 8). [`super::EmbeddedLog::open`] calls it; `check-config` should too.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(format!(
                "log.segment_bytes: must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        if !(1..=MAX_RECORD_LIMIT).contains(&self.max_record_bytes) {
            return Err(format!(
                "log.max_record_bytes: must be between 1 and {MAX_RECORD_LIMIT}, got {}",
                self.max_record_bytes
            ));
        }
        if self.fsync == FsyncPolicy::Interval && !(1..=60_000).contains(&self.fsync_interval_ms) {
            return Err(format!(
                "log.fsync_interval_ms: must be between 1 and 60000 with fsync = \"interval\", got {}",
                self.fsync_interval_ms
            ));
        }
        Ok(())
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_would_hang_the_log_are_refused_naming_the_key() {
        assert_eq!(EmbeddedConfig::default().validate(), Ok(()));
        let bad = |c: EmbeddedConfig| c.validate().expect_err("refused");
        let e = bad(EmbeddedConfig {
            segment_bytes: 0,
            ..EmbeddedConfig::default()
        });
        assert!(e.starts_with("log.segment_bytes: must be between 512"), "{e}");
        let e = bad(EmbeddedConfig {
            max_record_bytes: 0,
            ..EmbeddedConfig::default()
        });
        assert!(e.starts_with("log.max_record_bytes:"), "{e}");
        let e = bad(EmbeddedConfig {
            max_record_bytes: usize::MAX,
            ..EmbeddedConfig::default()
        });
        assert!(e.starts_with("log.max_record_bytes:"), "{e}");
        let e = bad(EmbeddedConfig {
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 0,
            ..EmbeddedConfig::default()
        });
        assert!(e.starts_with("log.fsync_interval_ms:"), "{e}");
    }
}
