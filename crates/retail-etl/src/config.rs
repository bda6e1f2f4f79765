//! The configuration: one TOML file, every key documented on its field, layered as built-in
//! defaults, then the file, then `RETAIL__<SECTION>__<KEY>` environment variables
//! (`RETAIL__STORE__URL=postgres://...`). A bad value is an error naming the key and the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use retail_core::redact;
use retail_log::embedded::EmbeddedConfig;
use retail_log::{KafkaConfig, LogUrl};
use retail_process::aggregate::{self, AggregateSpec, Compiled, ProcessingConfig};
use retail_process::LandingConfig;
use retail_sink::StoreUrl;
use retail_source::demo::{demo_sources, DemoFlags};
use retail_source::SourceConfig;
use serde::{Deserialize, Serialize};

use crate::cli::DemoArgs;
use crate::lineage::LineageConfig;

/// Everything `retail-etl run` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the embedded log and the default SQLite file.
    pub data_dir: PathBuf,
    /// The durable log between sources and processing.
    pub log: LogConfig,
    /// Where everything lands.
    pub store: StoreConfig,
    /// The raw landing from log to store.
    pub landing: LandingConfig,
    /// Watermarks, idleness and the catalog join (`[processing]`).
    pub processing: ProcessingConfig,
    /// Your own aggregates, each a `[[aggregates]]` block (see `config/retail.example.toml`),
    /// run besides the built-in four unless `processing.builtin_aggregates = false`. Kept as
    /// raw tables here so an error can name the aggregate, not its position.
    pub aggregates: Vec<figment::value::Dict>,
    /// The HTTP server.
    pub serve: ServeConfig,
    /// Sources, each a `[[sources]]` block with a `type`.
    pub sources: Vec<SourceConfig>,
    /// OpenLineage run events of the pipeline's jobs (`[lineage]`); off unless a `url` or a
    /// `file` is set. `GET /api/v1/lineage` serves the lineage graph either way.
    pub lineage: LineageConfig,
    /// Notification fan-out of the retail pipelines' alerts (`[notifications]` with
    /// `[[notifications.channels]]`, ADR 0026).
    pub notifications: retail_notify::NotifyConfig,
    /// The file this was loaded from, for messages.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `embedded://<dir>` or `kafka://host:port`. Default: `embedded://<data_dir>/log`.
    pub url: Option<String>,
    /// Partitions per topic, used when a topic is created (and checked when it exists).
    pub partitions: i32,
    /// Settings of the embedded backend (`[log.embedded]`).
    pub embedded: EmbeddedConfig,
    /// Settings of the Kafka backend (`[log.kafka]`): replication factor, timeouts, and
    /// librdkafka properties passed through (`${VAR}` read from the environment).
    pub kafka: KafkaConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            url: None,
            partitions: 4,
            embedded: EmbeddedConfig::default(),
            kafka: KafkaConfig::default(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://<path>` or `postgres://user@host:port/db`. Default: `sqlite://<data_dir>/retail.db`.
    pub url: Option<String>,
}

/// `[serve]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address of the HTTP server: `/health`, `/metrics`, the REST API under `/api/v1`,
    /// `/api/openapi.json` and the docs at `/docs`. Must be a loopback address unless tokens
    /// are configured.
    pub listen: SocketAddr,
    /// Bearer tokens that may call the read endpoints of the API (`Authorization: Bearer
    /// <token>`). Each at least 16 characters, no whitespace.
    pub read_tokens: Vec<String>,
    /// Bearer tokens that may call every endpoint, including control (pause, resume, rate) and
    /// resubmitting dead letters. With no read and no admin token, the API is open to anyone
    /// who can connect, so the server then refuses to listen anywhere but on loopback.
    pub admin_tokens: Vec<String>,
    /// Connections served at once. More wait in the kernel's listen backlog (not accepted, not
    /// refused) until one closes (ADR 0016).
    pub max_connections: usize,
    /// Milliseconds from a new connection (or a later request's first byte) to a complete
    /// request head, a TLS handshake included; then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a keep-alive connection may wait silently for its next request.
    pub idle_timeout_ms: u64,
    /// Milliseconds an API request may take (503 after). Not the live stream
    /// (`/api/v1/live`), not `/ingest`.
    pub request_timeout_ms: u64,
    /// HTTPS (`[serve.tls]`): a certificate chain and its private key, PEM files. Without it
    /// the server speaks plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `[serve.jwt]`: also accept JWT bearer tokens (ADR 0017). Configured, it makes the API
    /// require tokens exactly as static tokens do.
    pub jwt: Option<JwtConfig>,
}

/// `[serve.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file with the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file with its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[serve.jwt]`: JWT bearer tokens signed with HS256 (a shared secret) or with the keys of a
/// JWKS file (RS256, ES256, ...: each key pinned to one algorithm, picked by the token's `kid`).
/// Every token must carry `exp` and `aud`; its role claim grants `read` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The HS256 shared secret, at least 32 bytes; `${VAR}` reads it from the environment
    /// variable VAR at start. Absent: HS256 tokens are refused.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// A JWKS file (`{"keys": [...]}`) with the public keys of asymmetrically signed tokens.
    /// Every key needs a `kid`; its `alg` (or, without one, its type: RSA RS256, P-256 ES256)
    /// is the only algorithm it verifies. Read once at start.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The audience every token's `aud` must name (required).
    pub audience: String,
    /// The issuer every token's `iss` must be, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The claim with the roles: an array of strings or a space-separated string (as OAuth's
    /// `scope`). `read` grants the read endpoints, `admin` every endpoint; other values grant
    /// nothing. Default `roles`.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`. Default 30.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
}

fn default_role_claim() -> String {
    "roles".to_owned()
}

const fn default_leeway_secs() -> u64 {
    30
}

impl JwtConfig {
    /// Reads the secret and the JWKS file and loads the keys; errors name the key.
    pub fn verifier(&self) -> Result<retail_serve::access::Jwt> {
        let hs256_secret = self
            .hs256_secret
            .as_deref()
            .map(|v| retail_source::secret::secret(v, "key serve.jwt.hs256_secret"))
            .transpose()?
            .map(String::into_bytes);
        let jwks = self
            .jwks_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("key serve.jwt.jwks_file: cannot read {}", p.display()))
            })
            .transpose()?;
        retail_serve::access::Jwt::new(retail_serve::access::JwtOptions {
            hs256_secret,
            jwks,
            audience: self.audience.clone(),
            issuer: self.issuer.clone(),
            role_claim: self.role_claim.clone(),
            leeway_secs: self.leeway_secs,
        })
        .map_err(|e| anyhow::anyhow!("key serve.jwt.{e}"))
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        let d = retail_serve::ServeOptions::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            read_tokens: Vec::new(),
            admin_tokens: Vec::new(),
            max_connections: d.max_connections,
            header_read_timeout_ms: millis(d.header_read_timeout),
            idle_timeout_ms: millis(d.idle_timeout),
            request_timeout_ms: millis(d.request_timeout),
            tls: None,
            jwt: None,
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `serve.max_connections`, lowered to what the open-files limit leaves after a reserve for the
/// log's segments, the store's connections and the sources: a connection cap the process
/// cannot hold would fail elsewhere first (a log segment that cannot be created stops the log
/// writer). The binary raises the soft limit to the hard one at start (`main.rs`).
fn within_open_files_limit(wanted: usize) -> usize {
    const RESERVE: u64 = 256;
    let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return wanted;
    };
    let room = soft.saturating_sub(RESERVE).max(soft / 2).max(1);
    if wanted as u64 <= room {
        return wanted;
    }
    tracing::warn!(
        message = "serve.max_connections lowered to fit the open files limit",
        configured = wanted,
        open_files_limit = soft,
        max_connections = room,
    );
    usize::try_from(room).unwrap_or(wanted)
}

/// The most clock skew accepted on a JWT's `exp` and `nbf`.
const MAX_JWT_LEEWAY_SECS: u64 = 300;

/// The shortest token accepted: guessing 16 random characters is out of reach.
const MIN_TOKEN_CHARS: usize = 16;

impl ServeConfig {
    /// Whether no token and no JWT is configured (the API is open, loopback only).
    pub fn is_open(&self) -> bool {
        self.read_tokens.is_empty() && self.admin_tokens.is_empty() && self.jwt.is_none()
    }

    /// Who may call the API: the static tokens and, if configured, JWTs.
    pub fn access(&self) -> Result<retail_serve::Access> {
        let access = retail_serve::Access::new(self.read_tokens.clone(), self.admin_tokens.clone());
        Ok(match &self.jwt {
            Some(jwt) => access.with_jwt(jwt.verifier()?),
            None => access,
        })
    }

    /// The server's options: the cap, the timeouts, and TLS read from its files.
    pub fn options(&self) -> Result<retail_serve::ServeOptions> {
        let mut options = self.options_in("the configuration")?;
        options.max_connections = within_open_files_limit(options.max_connections);
        Ok(options)
    }

    /// [`ServeConfig::options`], an error naming the key, `file` and the PEM file.
    fn options_in(&self, file: &str) -> Result<retail_serve::ServeOptions> {
        use std::time::Duration;
        let tls = match &self.tls {
            None => None,
            Some(t) => Some(
                retail_serve::TlsConfig::from_pem_files(&t.cert, &t.key).map_err(|e| {
                    anyhow::anyhow!(
                        "key serve.tls.{} in {file}: {}: {}",
                        e.key,
                        e.path.display(),
                        e.message
                    )
                })?,
            ),
        };
        Ok(retail_serve::ServeOptions {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            tls,
        })
    }

    /// Tokens long enough and without whitespace; an open server only on loopback; limits
    /// above zero; TLS files that exist, parse and go together.
    fn validate(&self, file: &str) -> Result<()> {
        for (key, value) in [
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if value == 0 {
                bail!("key serve.{key} in {file}: must be at least 1");
            }
        }
        self.options_in(file)?;
        for (key, tokens) in [
            ("read_tokens", &self.read_tokens),
            ("admin_tokens", &self.admin_tokens),
        ] {
            for (i, t) in tokens.iter().enumerate() {
                if t.chars().count() < MIN_TOKEN_CHARS || t.chars().any(char::is_whitespace) {
                    bail!(
                        "key serve.{key}[{i}] in {file}: a token must be at least {MIN_TOKEN_CHARS} characters \
                         without whitespace (got {} characters)",
                        t.chars().count()
                    );
                }
            }
        }
        if let Some(jwt) = &self.jwt {
            if jwt.audience.is_empty() {
                bail!("key serve.jwt.audience in {file}: must name the audience tokens are issued for");
            }
            // Seconds, not milliseconds: a leeway in ms by mistake would accept expired tokens
            // for hours (and one past the epoch underflows the library's subtraction).
            if jwt.leeway_secs > MAX_JWT_LEEWAY_SECS {
                bail!(
                    "key serve.jwt.leeway_secs in {file}: at most {MAX_JWT_LEEWAY_SECS} seconds of clock skew \
                     (got {}; it is in seconds, not milliseconds)",
                    jwt.leeway_secs
                );
            }
            if jwt.hs256_secret.is_none() && jwt.jwks_file.is_none() {
                bail!("[serve.jwt] in {file}: set hs256_secret, jwks_file or both");
            }
            if let Some(secret) = jwt.hs256_secret.as_deref() {
                let min = retail_serve::access::MIN_HS256_SECRET_BYTES;
                if retail_source::secret::env_var(secret).is_none() && secret.len() < min {
                    bail!(
                        "key serve.jwt.hs256_secret in {file}: must be at least {min} bytes (got {})",
                        secret.len()
                    );
                }
            }
        }
        if self.is_open() && !self.listen.ip().is_loopback() {
            bail!(
                "key serve.listen in {file}: {} is not a loopback address, and no serve.read_tokens, \
                 serve.admin_tokens or [serve.jwt] are configured, so the API (including pause and resume) would be open \
                 to the network. Configure tokens, or listen on 127.0.0.1",
                self.listen
            );
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./retail-data"),
            log: LogConfig::default(),
            store: StoreConfig::default(),
            landing: LandingConfig::default(),
            processing: ProcessingConfig::default(),
            aggregates: Vec::new(),
            serve: ServeConfig::default(),
            sources: Vec::new(),
            lineage: LineageConfig::default(),
            notifications: retail_notify::NotifyConfig::default(),
            source_file: None,
        }
    }
}

impl Config {
    /// Defaults, then `file` if given, then `RETAIL__...` variables.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("RETAIL__").split("__"));
        let mut config: Self = figment.extract().map_err(|e| {
            let mut msg = String::new();
            for err in e {
                msg.push_str(&format!("\n  {err}"));
            }
            anyhow::anyhow!("invalid configuration:{msg}")
        })?;
        config.source_file = file.map(Path::to_path_buf);
        config.validate()?;
        Ok(config)
    }

    /// The configuration file if any, then the `--data-dir`, `--store` and `--log` flags that
    /// every command running against a log and a store takes.
    pub fn load_with_overrides(
        file: Option<&Path>,
        data_dir: Option<&Path>,
        store: Option<&str>,
        log: Option<&str>,
    ) -> Result<Self> {
        let mut config = Self::load(file)?;
        if let Some(dir) = data_dir {
            config.data_dir = dir.to_path_buf();
        }
        if let Some(url) = store {
            config.store.url = Some(url.to_owned());
        }
        if let Some(url) = log {
            config.log.url = Some(url.to_owned());
        }
        Ok(config)
    }

    /// `demo`: the configuration file if any, a generator source, then the flags.
    pub fn for_demo(args: &DemoArgs) -> Result<Self> {
        let mut config = Self::load_with_overrides(
            args.config.as_deref(),
            args.data_dir.as_deref(),
            args.store.as_deref(),
            args.log.as_deref(),
        )?;
        if let Some(listen) = args.listen {
            config.serve.listen = listen;
        }
        if args.rate == Some(0.0) && args.events.is_some() {
            bail!(
                "--rate 0 switches the generator off, so --events {} would never be reached; leave \
                 --rate out to generate them as fast as the pipeline goes",
                args.events.unwrap_or_default()
            );
        }
        demo_sources(
            &mut config.sources,
            &DemoFlags {
                rate: args.rate,
                events: args.events,
                seed: args.seed,
                duplicate_fraction: args.duplicate_fraction,
                malformed_fraction: args.malformed_fraction,
                out_of_order_fraction: args.out_of_order_fraction,
                late_fraction: args.late_fraction,
                sales_only: args.sales_only,
            },
        );
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URLs, ranges.
    pub fn validate(&self) -> Result<()> {
        let file = self
            .source_file
            .as_ref()
            .map_or_else(|| "the defaults".to_owned(), |p| p.display().to_string());
        self.log_url().with_context(|| format!("key log.url in {file}"))?;
        self.store_url()
            .with_context(|| format!("key store.url in {file}"))?;
        if !(1..=1024).contains(&self.log.partitions) {
            bail!(
                "key log.partitions in {file}: must be between 1 and 1024, got {}",
                self.log.partitions
            );
        }
        self.log
            .embedded
            .validate()
            .map_err(|e| anyhow::anyhow!("key {e} in {file}"))?;
        self.log
            .kafka
            .validate()
            .map_err(|e| anyhow::anyhow!("key {e} in {file}"))?;
        self.serve.validate(&file)?;
        self.landing
            .validate()
            .map_err(|e| anyhow::anyhow!("key {e} in {file}"))?;
        self.check_raw_retention()
            .map_err(|e| anyhow::anyhow!("key {e} in {file}"))?;
        SourceConfig::validate_all(&self.sources).with_context(|| format!("in {file}"))?;
        self.lineage
            .validate()
            .map_err(|e| anyhow::anyhow!("key {e:#} in {file}"))?;
        self.aggregates()
            .with_context(|| format!("[[aggregates]] in {file}"))?;
        self.processing
            .fraud
            .compile()
            .map_err(|e| anyhow::anyhow!("{e} in {file}"))?;
        self.notifications
            .check()
            .map_err(|e| anyhow::anyhow!("key {e} in {file}"))?;
        Ok(())
    }

    /// Refuses a raw retention that would change the inventory pipeline's rows (ADR 0028): a
    /// series' first snapshot reads `sales_raw` back `processing.stock.velocity_days` from its
    /// own time, and a snapshot can land as old as the dedup horizon allows; without a horizon,
    /// one of any age can.
    fn check_raw_retention(&self) -> std::result::Result<(), String> {
        let (raw, horizon) = (self.landing.raw_retention_days, self.landing.dedup_horizon_days);
        let stock = &self.processing.stock;
        if raw == 0 || !stock.enabled {
            return Ok(());
        }
        let velocity = stock.velocity_days.max(1);
        if horizon == 0 {
            return Err(format!(
                "landing.raw_retention_days: {raw} days needs landing.dedup_horizon_days set while \
                 processing.stock is enabled: without a horizon an inventory snapshot of any age can \
                 land, and its series reads sales_raw back {velocity} days (processing.stock.velocity_days) \
                 from its time; set the horizon, switch processing.stock off, or keep raw rows (0)"
            ));
        }
        let needed = u64::from(horizon) + u64::from(velocity);
        if u64::from(raw) < needed {
            return Err(format!(
                "landing.raw_retention_days: {raw} days is shorter than what the inventory pipeline \
                 reads back: landing.dedup_horizon_days ({horizon}) + processing.stock.velocity_days \
                 ({velocity}) = {needed} days; raise it to at least {needed}, or 0 to keep raw rows"
            ));
        }
        Ok(())
    }

    /// The aggregates to run: the built-in four (unless switched off), then `[[aggregates]]`,
    /// compiled and checked.
    pub fn aggregates(&self) -> Result<Vec<Compiled>> {
        let mut specs = if self.processing.builtin_aggregates {
            aggregate::spec::builtin()
        } else {
            Vec::new()
        };
        for (i, raw) in self.aggregates.iter().enumerate() {
            let name = match raw.get("name") {
                Some(figment::value::Value::String(_, n)) => format!("{n:?}"),
                _ => format!("#{i} (it has no name)"),
            };
            let spec: AggregateSpec =
                figment::value::Value::from(raw.clone())
                    .deserialize()
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "aggregate {name}: {}",
                            e.to_string().replace(" for key \"default\"", "")
                        )
                    })?;
            specs.push(spec);
        }
        aggregate::compile(&specs).map_err(|e| anyhow::anyhow!(e))
    }

    /// The log URL, defaulting to the embedded log under `data_dir`. A parse error shows the
    /// URL with its credentials masked.
    pub fn log_url(&self) -> Result<LogUrl> {
        match &self.log.url {
            Some(u) => u.parse().map_err(|e: retail_log::Error| {
                anyhow::anyhow!(e.to_string().replace(u.as_str(), &redact::url(u)))
            }),
            None => Ok(LogUrl::Embedded(self.data_dir.join("log"))),
        }
    }

    /// The log URL as start-up lines and errors show it: credentials masked.
    pub fn shown_log_url(&self) -> String {
        match &self.log.url {
            Some(u) => redact::url(u),
            None => format!("embedded://{}", self.data_dir.join("log").display()),
        }
    }

    /// The store URL, defaulting to the SQLite file under `data_dir`.
    pub fn store_url(&self) -> Result<StoreUrl> {
        match &self.store.url {
            Some(u) => Ok(u.parse()?),
            None => Ok(StoreUrl::Sqlite(self.data_dir.join("retail.db"))),
        }
    }

    /// How the store keeps its dedup ledger and its retention: every command that opens the
    /// store must pass the same, or opening it with another horizon or retention would drop
    /// ledger days or rows the landing still keeps (ADR 0022, 0028).
    pub const fn store_options(&self) -> retail_sink::StoreOptions {
        retail_sink::StoreOptions {
            dedup_horizon_days: self.landing.dedup_horizon_days,
            raw_retention_days: self.landing.raw_retention_days,
            late_events_retention_days: self.landing.late_events_retention_days,
            dead_letters_retention_days: self.landing.dead_letters_retention_days,
        }
    }

    /// The effective configuration as JSON, for `check-config`.
    /// API tokens are shown as `"<redacted>"` and URLs without their credentials:
    /// `check-config` output ends up in terminals, tickets and CI logs.
    pub fn to_json(&self) -> Result<String> {
        let mut shown = self.clone();
        for url in [&mut shown.store.url, &mut shown.log.url].into_iter().flatten() {
            *url = redact::url(url);
        }
        for t in shown
            .serve
            .read_tokens
            .iter_mut()
            .chain(shown.serve.admin_tokens.iter_mut())
        {
            *t = "<redacted>".to_owned();
        }
        if let Some(secret) = shown.serve.jwt.as_mut().and_then(|j| j.hs256_secret.as_mut()) {
            if retail_source::secret::env_var(secret).is_none() {
                *secret = "<redacted>".to_owned();
            }
        }
        // librdkafka secrets (SASL passwords, key passwords) likewise.
        shown.log.kafka = shown.log.kafka.redacted();
        // Notification webhooks' signing secrets, and any credentials in their URLs.
        for channel in &mut shown.notifications.channels {
            if let retail_notify::Target::Webhook { url, secret } = &mut channel.target {
                *url = redact::url(url);
                if let Some(s) = secret
                    .as_mut()
                    .filter(|s| retail_source::secret::env_var(s).is_none())
                {
                    *s = "<redacted>".to_owned();
                }
            }
        }
        let mut value = serde_json::to_value(&shown)?;
        // Source secrets (webhook tokens and signing secrets, broker passwords) too, unless they only name an
        // environment variable.
        if let Some(sources) = value.get_mut("sources").and_then(|s| s.as_array_mut()) {
            for source in sources {
                for key in ["hmac_secret", "bearer_tokens", "password"] {
                    if let Some(v) = source.get_mut(key) {
                        redact(v);
                    }
                }
                // A CDC source's database URL, a SOAP source's endpoint may carry a password.
                for key in ["url", "endpoint"] {
                    if let Some(serde_json::Value::String(u)) = source.get_mut(key) {
                        *u = redact::url(u);
                    }
                }
            }
        }
        Ok(serde_json::to_string_pretty(&value)?)
    }
}

/// Replaces every string in `v` that is not a `${VAR}` reference with `<redacted>`.
fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if !(s.starts_with("${") && s.ends_with('}')) => {
            *s = "<redacted>".to_owned();
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config")
            .join(name)
    }

    #[test]
    fn every_shipped_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(Some(&path)).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no example configs in {}", dir.display());
    }

    #[test]
    fn a_raw_retention_shorter_than_the_inventory_backfill_is_refused_naming_the_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("retention.toml");
        let load = |toml: &str| {
            std::fs::write(&file, toml).expect("write");
            Config::load(Some(&file)).map_err(|e| format!("{e:#}"))
        };
        let err = load("[landing]\nraw_retention_days = 30\n").expect_err("no horizon");
        assert!(
            err.contains("landing.raw_retention_days")
                && err.contains("landing.dedup_horizon_days")
                && err.contains("retention.toml"),
            "{err}"
        );
        let err =
            load("[landing]\nraw_retention_days = 10\ndedup_horizon_days = 7\n").expect_err("7 + 7 > 10");
        assert!(
            err.contains("landing.raw_retention_days: 10") && err.contains("at least 14"),
            "{err}"
        );
        let ok = load(
            "[landing]\nraw_retention_days = 14\ndedup_horizon_days = 7\n\
             late_events_retention_days = 3\ndead_letters_retention_days = 90\n",
        )
        .expect("14 covers 7 + 7");
        let options = ok.store_options();
        assert_eq!(
            (
                options.raw_retention_days,
                options.late_events_retention_days,
                options.dead_letters_retention_days
            ),
            (14, 3, 90)
        );
        load("[landing]\nraw_retention_days = 1\n[processing.stock]\nenabled = false\n")
            .expect("nothing reads old raw rows without the inventory pipeline");
        assert_eq!(
            Config::load(None).expect("defaults").store_options(),
            retail_sink::StoreOptions::default(),
            "by default everything is kept"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[log]\npartitons = 4\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&bad)).expect_err("typo must fail"));
        assert!(err.contains("partitons") && err.contains("bad.toml"), "{err}");

        std::fs::write(&bad, "[store]\nurl = \"mysql://x\"\n").expect("write");
        let err = format!(
            "{:#}",
            Config::load(Some(&bad)).expect_err("bad scheme must fail")
        );
        assert!(
            err.contains("store.url") && err.contains("bad.toml") && err.contains("unknown scheme"),
            "{err}"
        );

        std::fs::write(
            &bad,
            "[[sources]]\ntype = \"generator\"\nduplicate_fraction = 2.0\n",
        )
        .expect("write");
        let err = format!(
            "{:#}",
            Config::load(Some(&bad)).expect_err("fraction > 1 must fail")
        );
        assert!(
            err.contains("block 0") && err.contains("duplicate_fraction"),
            "{err}"
        );

        let missing = Config::load(Some(&dir.path().join("nope.toml"))).expect_err("missing file");
        assert!(missing.to_string().contains("does not exist"));
    }

    #[test]
    fn a_bad_aggregate_fails_at_start_naming_the_aggregate_and_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("agg.toml");
        let block = |body: &str| {
            format!("[[aggregates]]\nname = \"per_sku\"\ngroup_by = [\"sku\"]\n{body}\nmeasures = [{{ name = \"n\", fn = \"count\" }}]\n")
        };
        std::fs::write(
            &bad,
            block("window = { kind = \"tumbling\", size = \"1m\" }\ngrup = 1"),
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&bad)).expect_err("unknown key"));
        assert!(
            err.contains("aggregate \"per_sku\"") && err.contains("grup") && err.contains("agg.toml"),
            "{err}"
        );

        std::fs::write(&bad, block("window = { kind = \"sliding\", size = \"1m\" }")).expect("write");
        let err = format!("{:#}", Config::load(Some(&bad)).expect_err("bad window kind"));
        assert!(
            err.contains("aggregate \"per_sku\"") && err.contains("sliding"),
            "{err}"
        );

        std::fs::write(&bad, block("window = { kind = \"tumbling\", size = \"0s\" }")).expect("write");
        let err = format!("{:#}", Config::load(Some(&bad)).expect_err("zero window"));
        assert!(err.contains("aggregate \"per_sku\": window.size"), "{err}");

        std::fs::write(&bad, block("window = { kind = \"tumbling\", size = \"1m\" }")).expect("write");
        let ok = Config::load(Some(&bad)).expect("a good aggregate loads");
        let names: Vec<String> = ok
            .aggregates()
            .expect("compiles")
            .iter()
            .map(|a| a.name.to_string())
            .collect();
        assert_eq!(names.last().map(String::as_str), Some("per_sku"));
        assert_eq!(names.len(), 5, "the four built-ins come first");
    }

    #[test]
    fn an_open_api_listens_only_on_loopback_and_tokens_must_be_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, "[serve]\nlisten = \"0.0.0.0:8080\"\n").expect("write");
        let err = format!(
            "{:#}",
            Config::load(Some(&file)).expect_err("open on every interface")
        );
        assert!(
            err.contains("serve.listen") && err.contains("serve.toml") && err.contains("not a loopback"),
            "{err}"
        );
        std::fs::write(
            &file,
            "[serve]\nlisten = \"0.0.0.0:8080\"\nadmin_tokens = [\"0123456789abcdef\"]\n",
        )
        .expect("write");
        let c = Config::load(Some(&file)).expect("tokens make every interface fine");
        assert!(!c.serve.is_open());
        assert!(
            !c.to_json().expect("json").contains("0123456789abcdef"),
            "check-config must not print tokens"
        );
        std::fs::write(&file, "[serve]\nread_tokens = [\"short\"]\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("short token"));
        assert!(
            err.contains("serve.read_tokens[0]") && err.contains("16"),
            "{err}"
        );
        std::fs::write(&file, "[serve]\nlisten = \"[::1]:8080\"\n").expect("write");
        assert!(Config::load(Some(&file)).expect("IPv6 loopback").serve.is_open());
    }

    #[test]
    fn a_jwt_section_closes_the_api_needs_an_audience_and_its_keys_load_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("jwt.toml");
        let jwks = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../retail-serve/tests/keys/jwks.json"
        );
        std::fs::write(
            &file,
            format!(
                "[serve]\nlisten = \"0.0.0.0:8080\"\n[serve.jwt]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n\
                 jwks_file = \"{jwks}\"\naudience = \"retail-api\"\n"
            ),
        )
        .expect("write");
        let c = Config::load(Some(&file)).expect("a JWT config makes every interface fine");
        assert!(!c.serve.is_open());
        let jwt = c.serve.jwt.as_ref().expect("jwt");
        assert_eq!((jwt.role_claim.as_str(), jwt.leeway_secs), ("roles", 30));
        assert!(!c.serve.access().expect("keys load").is_open());
        assert!(
            !c.to_json()
                .expect("json")
                .contains("0123456789abcdef0123456789abcdef"),
            "check-config must not print the HS256 secret"
        );
        std::fs::write(
            &file,
            "[serve.jwt]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("no audience"));
        assert!(err.contains("audience") && err.contains("jwt.toml"), "{err}");
        std::fs::write(
            &file,
            "[serve.jwt]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\naudience = \"a\"\nleeway_secs = 30000\n",
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("leeway in ms"));
        assert!(
            err.contains("serve.jwt.leeway_secs") && err.contains("300"),
            "{err}"
        );
        std::fs::write(&file, "[serve.jwt]\nhs256_secret = \"short\"\naudience = \"a\"\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("short secret"));
        assert!(
            err.contains("serve.jwt.hs256_secret") && err.contains("32"),
            "{err}"
        );
        std::fs::write(
            &file,
            "[serve.jwt]\nhs256_secret = \"${RETAIL_TEST_SURELY_UNSET_JWT_SECRET}\"\njwks_file = \"/nonexistent/jwks.json\"\naudience = \"a\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&file)).expect("references are resolved at start");
        assert!(c
            .to_json()
            .expect("json")
            .contains("${RETAIL_TEST_SURELY_UNSET_JWT_SECRET}"));
        let err = format!("{:#}", c.serve.access().expect_err("unset variable"));
        assert!(
            err.contains("serve.jwt.hs256_secret") && err.contains("RETAIL_TEST_SURELY_UNSET_JWT_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn check_config_redacts_webhook_secrets_but_shows_env_references() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hooks.toml");
        std::fs::write(
            &file,
            "[[sources]]\ntype = \"webhook\"\nname = \"pay\"\nbearer_tokens = [\"till-token-0123456789\", \"${TILL_TOKEN}\"]\nhmac_secret = \"whsec_0123456789abcdef\"\n\
             [[sources]]\ntype = \"mqtt\"\nname = \"lanes\"\nusername = \"retail\"\npassword = \"broker-pass-42\"\n\
             [[sources.topics]]\npattern = \"stores/{store_id}/lanes/{device_id}/status\"\n",
        )
        .expect("write");
        let json = Config::load(Some(&file)).expect("loads").to_json().expect("json");
        assert!(
            !json.contains("till-token-0123456789")
                && !json.contains("whsec_0123456789abcdef")
                && !json.contains("broker-pass-42"),
            "{json}"
        );
        assert!(json.contains("${TILL_TOKEN}"), "{json}");
    }

    #[test]
    fn check_config_redacts_notification_webhook_secrets_and_refuses_bad_channels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("notify.toml");
        std::fs::write(
            &file,
            "[[notifications.channels]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://u:pw-77@127.0.0.1:9/h\"\nsecret = \"whsec_notify_42\"\n\
             [[notifications.channels]]\nname = \"env\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"${OPS_SECRET}\"\n",
        )
        .expect("write");
        let json = Config::load(Some(&file)).expect("loads").to_json().expect("json");
        assert!(
            !json.contains("whsec_notify_42") && !json.contains("pw-77"),
            "{json}"
        );
        assert!(json.contains("${OPS_SECRET}"), "{json}");
        std::fs::write(
            &file,
            "[[notifications.channels]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nkinds = [\"fruad\"]\n",
        )
        .expect("write");
        let e = format!("{:#}", Config::load(Some(&file)).expect_err("unknown kind"));
        assert!(
            e.contains("notifications.channels[0] (\"ops\")") && e.contains("\"fruad\""),
            "{e}"
        );
    }

    #[test]
    fn check_config_masks_the_password_of_a_cdc_source_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cdc.toml");
        std::fs::write(
            &file,
            "[[sources]]\ntype = \"postgres_cdc\"\nname = \"erp\"\nurl = \"postgres://cdc:pw-0123456789@db.example/erp\"\n[[sources.tables]]\ntable = \"public.sales\"\nevent_type = \"sale\"\n",
        )
        .expect("write");
        let json = Config::load(Some(&file)).expect("loads").to_json().expect("json");
        assert!(!json.contains("pw-0123456789"), "{json}");
        assert!(json.contains("db.example/erp"), "{json}");
    }

    #[test]
    fn check_config_masks_soap_credentials_but_shows_env_references() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("soap.toml");
        std::fs::write(
            &file,
            "[[sources]]\ntype = \"soap\"\nname = \"payments\"\nendpoint = \"http://svc:url-pw-0123456789@pay.example/ws\"\n\
             username = \"svc\"\npassword = \"basic-pw-0123456789\"\n\
             request = \"<x><pw>${WSS_PASSWORD}</pw>{cursor_ts}{cursor_id}{limit}</x>\"\n\
             [[sources]]\ntype = \"soap\"\nname = \"refunds\"\nendpoint = \"http://pay.example/ws\"\n\
             username = \"svc\"\npassword = \"${SOAP_PASSWORD}\"\nrequest = \"<x>{cursor_ts}{cursor_id}{limit}</x>\"\n",
        )
        .expect("write");
        let json = Config::load(Some(&file)).expect("loads").to_json().expect("json");
        assert!(
            !json.contains("url-pw-0123456789") && !json.contains("basic-pw-0123456789"),
            "{json}"
        );
        assert!(json.contains("svc:***@pay.example/ws"), "{json}");
        assert!(
            json.contains("${WSS_PASSWORD}") && json.contains("${SOAP_PASSWORD}"),
            "{json}"
        );
    }

    #[test]
    fn check_config_redacts_kafka_secrets_and_loads_kafka_settings_in_every_build() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("kafka.toml");
        std::fs::write(
            &file,
            "[log]\nurl = \"kafka://k1:9092,k2:9092\"\npartitions = 8\n[log.kafka]\nreplication_factor = 3\n[log.kafka.properties]\n\"sasl.username\" = \"etl\"\n\"sasl.password\" = \"hunter2-secret\"\n\"ssl.key.password\" = \"${KEY_PW}\"\n",
        )
        .expect("write");
        let config = Config::load(Some(&file)).expect("loads");
        assert_eq!(
            config.log_url().expect("url"),
            LogUrl::Kafka("k1:9092,k2:9092".into())
        );
        assert_eq!(config.log.kafka.replication_factor, 3);
        let json = config.to_json().expect("json");
        assert!(!json.contains("hunter2-secret"), "{json}");
        assert!(json.contains("${KEY_PW}") && json.contains("\"etl\""), "{json}");
        std::fs::write(&file, "[log.kafka]\nreplication_factor = 0\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("bad factor"));
        assert!(err.contains("log.kafka.replication_factor"), "{err}");
    }

    #[test]
    fn check_config_and_url_errors_mask_store_and_log_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pg.toml");
        std::fs::write(&file, "[store]\nurl = \"postgres://etl:s3cret@db:5432/retail\"\n").expect("write");
        let c = Config::load(Some(&file)).expect("loads");
        let json = c.to_json().expect("json");
        assert!(
            !json.contains("s3cret") && json.contains("postgres://etl:***@db:5432/retail"),
            "{json}"
        );
        std::fs::write(&file, "[log]\nurl = \"kafak://etl:s3cret@broker:9092\"\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("unknown log scheme"));
        assert!(
            err.contains("log.url") && err.contains("etl:***@broker") && !err.contains("s3cret"),
            "{err}"
        );
    }

    #[test]
    fn landing_topics_and_group_are_checked_at_load_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("landing.toml");
        let refused = |body: &str| {
            std::fs::write(&file, format!("[landing]\n{body}\n")).expect("write");
            format!("{:#}", Config::load(Some(&file)).expect_err(body))
        };
        let e = refused("topics = [\"sale\"]");
        assert!(
            e.contains("landing.topics[0]") && e.contains("\"sale\"") && e.contains("landing.toml"),
            "{e}"
        );
        let e = refused("topics = [\"sales\", \"sales\"]");
        assert!(e.contains("landing.topics[1]") && e.contains("twice"), "{e}");
        let e = refused("topics = []");
        assert!(e.contains("landing.topics") && e.contains("no data topic"), "{e}");
        let e = refused("topics = [\"catalog\"]");
        assert!(e.contains("no data topic"), "{e}");
        let e = refused("topics = [\"dead-letters\"]");
        assert!(e.contains("not a data topic"), "{e}");
        let e = refused("group = \"\"");
        assert!(e.contains("landing.group") && e.contains("landing.toml"), "{e}");
        let e = refused("group = \"a/b\"");
        assert!(e.contains("landing.group") && e.contains("\"a/b\""), "{e}");
        let e = refused("max_batch_records = 0");
        assert!(e.contains("landing.max_batch_records"), "{e}");
        let e = refused("max_batch_bytes = 0");
        assert!(e.contains("landing.max_batch_bytes"), "{e}");
        std::fs::write(
            &file,
            "[landing]\ngroup = \"eu-1.landing\"\ntopics = [\"sales\", \"catalog\"]\n",
        )
        .expect("write");
        Config::load(Some(&file)).expect("a good landing loads");
    }

    #[test]
    fn two_sources_with_one_name_or_one_path_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dup.toml");
        std::fs::write(
            &file,
            "[[sources]]\ntype = \"webhook\"\nname = \"a\"\npath = \"pos\"\n[[sources]]\ntype = \"webhook\"\nname = \"b\"\npath = \"pos\"\n",
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("same path"));
        assert!(err.contains("block 1") && err.contains("/ingest/pos"), "{err}");
        std::fs::write(
            &file,
            "[[sources]]\ntype = \"csv\"\nname = \"x\"\n[[sources]]\ntype = \"webhook\"\nname = \"x\"\n",
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("same name"));
        assert!(err.contains("already called \"x\""), "{err}");
        std::fs::write(&file, "[[sources]]\ntype = \"ftp\"\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("unknown type"));
        assert!(err.contains("ftp"), "{err}");
    }

    #[test]
    fn the_example_config_enables_every_source_type() {
        let c = Config::load(Some(&example("retail.example.toml"))).expect("example");
        let kinds: Vec<&str> = c.sources.iter().map(SourceConfig::kind).collect();
        assert_eq!(kinds, vec!["generator", "webhook", "csv", "mqtt", "soap"]);
    }

    #[test]
    fn defaults_put_everything_under_the_data_dir() {
        let c = Config::load(Some(&example("retail.example.toml"))).expect("example");
        assert_eq!(
            Config::default().log_url().expect("url"),
            LogUrl::Embedded(PathBuf::from("./retail-data/log"))
        );
        assert!(matches!(c.store_url().expect("url"), StoreUrl::Sqlite(_)));
    }

    #[test]
    fn serve_limits_and_tls_files_are_checked_at_load_naming_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tls.toml");
        let missing = dir.path().join("missing-cert.pem");
        std::fs::write(
            &file,
            format!(
                "[serve.tls]\ncert = {:?}\nkey = {:?}\n",
                missing.display().to_string(),
                dir.path().join("key.pem").display().to_string()
            ),
        )
        .expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("missing cert file"));
        assert!(
            err.contains("serve.tls.cert") && err.contains("tls.toml") && err.contains("missing-cert.pem"),
            "{err}"
        );

        // A real pair loads, and the options carry it; a missing key is named as the key.
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("cert");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("key");
        let tls = |cert: &Path, key: &Path| {
            format!(
                "[serve]\nmax_connections = 8\nidle_timeout_ms = 5000\n[serve.tls]\ncert = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            )
        };
        std::fs::write(&file, tls(&cert, &key)).expect("write");
        let c = Config::load(Some(&file)).expect("a valid pair");
        let options = c.serve.options().expect("options");
        assert!(options.tls.is_some());
        assert_eq!(options.max_connections, 8);
        assert_eq!(options.idle_timeout, std::time::Duration::from_secs(5));
        std::fs::write(&file, tls(&cert, &dir.path().join("gone.pem"))).expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("missing key"));
        assert!(err.contains("serve.tls.key") && err.contains("gone.pem"), "{err}");

        std::fs::write(&file, "[serve]\nheader_read_timeout_ms = 0\n").expect("write");
        let err = format!("{:#}", Config::load(Some(&file)).expect_err("zero timeout"));
        assert!(
            err.contains("serve.header_read_timeout_ms") && err.contains("tls.toml"),
            "{err}"
        );
    }
}
