//! Helpers of tests/observe.rs: the real Prometheus server and promtool (Debian package
//! `prometheus`, installed by scripts/test), its HTTP query API, and the shipped deploy files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's root (tests run with the crate as their working directory).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file under `deploy/`.
pub fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

/// Runs `promtool args..` with `stdin` piped in; panics with its output on failure.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not runnable ({e}); scripts/test installs the Debian package prometheus")
        });
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("promtool stdin");
        }
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `GET path` with extra request headers over plain TCP: (status, headers, body).
pub fn get_with(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let out = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (code, head.to_owned(), body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server on a free loopback port, with its own data directory, killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second as job `retail-etl`, with the shipped
    /// alert rules evaluated every second.
    pub fn scraping(target: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        let rules = deploy("prometheus/alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: retail-etl\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .expect("write config");
        promtool(&["check", "config", &config.display().to_string()], None);
        let port = crate::common::free_port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus not runnable ({e}); scripts/test installs the Debian package prometheus")
            });
        let p = Self {
            child,
            addr,
            _dir: dir,
        };
        p.wait_for(Duration::from_secs(30), "Prometheus ready", |p| {
            get_with(p.addr, "/-/ready", &[]).0 == 200
        });
        p
    }

    /// Polls `check` every 250 ms until it holds; panics naming `what` (and Prometheus's log)
    /// after `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let ok = std::net::TcpStream::connect(self.addr).is_ok() && check(self);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\nPrometheus log:\n{}",
                std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `GET /api/v1/<path>` as JSON.
    pub fn api(&self, path: &str) -> Value {
        let (code, _, body) = get_with(self.addr, &format!("/api/v1/{path}"), &[]);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /api/v1/{path}: {code} {e}: {body}"))
    }

    /// An instant query: Prometheus's whole answer (status, data or error).
    pub fn query(&self, promql: &str) -> Value {
        self.api(&format!("query?query={}", encode(promql)))
    }

    /// The result vector of a successful instant query; panics on an error.
    pub fn vector(&self, promql: &str) -> Vec<Value> {
        let v = self.query(promql);
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of the first sample of an instant query, if any.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        self.vector(promql)
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped dashboards, parsed.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = deploy("grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), json));
        }
    }
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// Every panel (rows' nested panels included) of a dashboard.
pub fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        for nested in p["panels"].as_array().into_iter().flatten() {
            out.push(nested.clone());
        }
    }
    out
}

/// `(panel title, query)` of every target whose datasource is of `kind` (`prometheus` or
/// `grafana-postgresql-datasource`).
pub fn queries(kind: &str) -> Vec<(String, String)> {
    let field = if kind == "prometheus" { "expr" } else { "rawSql" };
    let mut out = Vec::new();
    for (_, d) in dashboards() {
        for p in panels(&d) {
            if p["type"] == "row" {
                continue;
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let ds = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &p["datasource"]
                };
                if ds["type"] == kind {
                    let q = t[field]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: target without {field}", p["title"]));
                    out.push((p["title"].as_str().unwrap_or("").to_owned(), q.to_owned()));
                }
            }
        }
    }
    out
}

/// A PromQL query with Grafana's interval variables replaced by what a 1 s scrape supports.
pub fn expand_promql(q: &str) -> String {
    q.replace("$__rate_interval", "10s")
        .replace("$__interval", "5s")
        .replace("$__range", "1m")
}

/// A SQL panel's query with the Grafana PostgreSQL macros it uses expanded the way Grafana
/// expands them, over the time range `[from, to]` (RFC 3339). Panics on a macro it does not
/// know, so a new one cannot slip through untested.
pub fn expand_sql(q: &str, from: &str, to: &str) -> String {
    let mut s = q.to_owned();
    while let Some(start) = s.find("$__") {
        let name_end = s[start + 3..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(s.len(), |i| start + 3 + i);
        let name = &s[start + 3..name_end];
        let (args, end) = if s[name_end..].starts_with('(') {
            let close = name_end + s[name_end..].find(')').expect("macro without ')'");
            (s[name_end + 1..close].to_owned(), close + 1)
        } else {
            (String::new(), name_end)
        };
        let args: Vec<String> = args
            .split(',')
            .map(|a| a.trim().trim_matches('\'').to_owned())
            .collect();
        let replacement = match name {
            "timeFilter" => format!("{} BETWEEN '{from}' AND '{to}'", args[0]),
            "timeFrom" => format!("'{from}'"),
            "timeTo" => format!("'{to}'"),
            "timeGroupAlias" => format!(
                "floor(extract(epoch from {})/{})*{} AS \"time\"",
                args[0],
                seconds(&args[1]),
                seconds(&args[1])
            ),
            "timeGroup" => format!(
                "floor(extract(epoch from {})/{})*{}",
                args[0],
                seconds(&args[1]),
                seconds(&args[1])
            ),
            other => panic!("Grafana macro $__{other} is not expanded by this test: add it"),
        };
        s.replace_range(start..end, &replacement);
    }
    s
}

fn seconds(interval: &str) -> u64 {
    let (n, unit) = interval.split_at(interval.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("interval {interval}"));
    match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => panic!("interval {interval}"),
    }
}
