//! `[lineage]`: where OpenLineage run events go, and how often a running job reports.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `[lineage]`. Events are emitted only when `url` or `file` is set; the graph at
/// `GET /api/v1/lineage` is served either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    /// Base URL of an OpenLineage HTTP endpoint, e.g. Marquez at `http://localhost:5000`:
    /// each event is POSTed as JSON to `<url>/<endpoint>`. `http://` only (this binary has no
    /// TLS client: put a TLS proxy in front of a remote endpoint) and no credentials in the URL.
    pub url: Option<String>,
    /// Path of the endpoint under `url`, as OpenLineage's HTTP transport has it.
    pub endpoint: String,
    /// A file events are appended to, one JSON event per line (NDJSON). Both `url` and `file`
    /// may be set.
    pub file: Option<PathBuf>,
    /// The OpenLineage namespace of the pipeline's jobs.
    pub namespace: String,
    /// Seconds between the RUNNING events (with counts so far) of each running job, 1 to 86400.
    pub interval_s: u64,
    /// Events waiting to be sent at most; when the endpoint is slower, newer events are
    /// dropped (and counted in `retail_lineage_failures_total{reason="dropped"}`) rather than
    /// slow the pipeline down. 1 to 100000.
    pub queue: usize,
    /// How long one HTTP request may take, in milliseconds, before it counts as failed.
    pub timeout_ms: u64,
}

impl LineageConfig {
    const fn defaults() -> (u64, usize, u64) {
        (60, 1_000, 5_000)
    }

    /// Whether events go anywhere.
    pub fn emits(&self) -> bool {
        self.url.is_some() || self.file.is_some()
    }

    /// The full endpoint URL events are POSTed to, checked.
    pub fn endpoint_url(&self) -> Result<Option<reqwest::Url>> {
        let Some(base) = &self.url else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(base)
            .map_err(|e| anyhow::anyhow!("lineage.url: {base:?} is not a URL ({e})"))?;
        if url.scheme() != "http" {
            bail!(
                "lineage.url: {} is not http:// (this binary sends without TLS; put a TLS-terminating \
                 proxy in front of a remote endpoint, or write events to lineage.file)",
                url.scheme()
            );
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("lineage.url: credentials in the URL are not supported (they would end up in logs)");
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("lineage.url: {base:?} has no host");
        }
        let joined = format!(
            "{}/{}",
            url.as_str().trim_end_matches('/'),
            self.endpoint.trim_start_matches('/')
        );
        Ok(Some(reqwest::Url::parse(&joined).map_err(|e| {
            anyhow::anyhow!("lineage.endpoint: {:?} does not make a URL ({e})", self.endpoint)
        })?))
    }

    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<()> {
        self.endpoint_url()?;
        if self.namespace.trim().is_empty() || self.namespace.chars().any(char::is_whitespace) {
            bail!(
                "lineage.namespace: must be non-empty without whitespace, got {:?}",
                self.namespace
            );
        }
        if !(1..=86_400).contains(&self.interval_s) {
            bail!(
                "lineage.interval_s: must be between 1 and 86400, got {}",
                self.interval_s
            );
        }
        if !(1..=100_000).contains(&self.queue) {
            bail!("lineage.queue: must be between 1 and 100000, got {}", self.queue);
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            bail!(
                "lineage.timeout_ms: must be between 100 and 600000, got {}",
                self.timeout_ms
            );
        }
        if self.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            bail!("lineage.file: must be a path");
        }
        Ok(())
    }
}

impl Default for LineageConfig {
    fn default() -> Self {
        let (interval_s, queue, timeout_ms) = Self::defaults();
        Self {
            url: None,
            endpoint: "api/v1/lineage".to_owned(),
            file: None,
            namespace: "retail-etl".to_owned(),
            interval_s,
            queue,
            timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> LineageConfig {
        LineageConfig {
            url: Some(url.to_owned()),
            ..LineageConfig::default()
        }
    }

    #[test]
    fn the_endpoint_joins_base_and_path_and_refuses_tls_and_credentials() {
        let url = with_url("http://marquez:5000/").endpoint_url().expect("ok");
        assert_eq!(
            url.map(|u| u.to_string()).as_deref(),
            Some("http://marquez:5000/api/v1/lineage")
        );
        for (bad, says) in [
            ("https://marquez", "not http://"),
            ("http://user:secret@marquez", "credentials"),
            ("marquez:5000", "not http://"),
            ("not a url", "not a URL"),
        ] {
            let err = format!("{:#}", with_url(bad).validate().expect_err(bad));
            assert!(err.contains("lineage.url") && err.contains(says), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
        assert!(!LineageConfig::default().emits());
        assert!(LineageConfig::default().validate().is_ok());
        let zero = LineageConfig {
            interval_s: 0,
            ..LineageConfig::default()
        };
        assert!(format!("{:#}", zero.validate().expect_err("0 s")).contains("lineage.interval_s"));
    }
}
