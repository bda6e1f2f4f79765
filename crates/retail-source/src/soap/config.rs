//! Settings of one SOAP payments poller: the endpoint, the SOAP version, the request template
//! and its placeholders, the paging and timing, and the element names of the answer.

use quick_xml::escape::escape;
use retail_core::redact;
use serde::{Deserialize, Serialize};

use super::source::Poller;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// The placeholders of [`SoapConfig::request`], each replaced by its XML-escaped value.
pub const PLACEHOLDERS: [&str; 3] = ["{cursor_ts}", "{cursor_id}", "{limit}"];

/// Which SOAP the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `Content-Type: text/xml`, the action in a `SOAPAction` header.
    #[serde(rename = "1.1")]
    V11,
    /// SOAP 1.2: `Content-Type: application/soap+xml`, the action as its `action` parameter.
    #[serde(rename = "1.2")]
    V12,
}

impl SoapVersion {
    /// `1.1` or `1.2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V11 => "1.1",
            Self::V12 => "1.2",
        }
    }
}

/// Local names (any namespace, any prefix) of the elements read from an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Elements {
    /// One payment confirmation; found at any depth inside the SOAP `Body`.
    pub record: String,
    /// The payment id (a child of `record`, as are the fields below).
    pub payment_id: String,
    /// The order it pays for.
    pub order_id: String,
    /// The amount, a decimal number as text (kept exact, never through a float).
    pub amount: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// `authorized`, `captured`, `failed` or `refunded`, in any letter case.
    pub status: String,
    /// When the payment reached this status: RFC 3339 (`xsd:dateTime` with a zone) or epoch ms.
    pub timestamp: String,
}

impl Default for Elements {
    fn default() -> Self {
        Self {
            record: "Payment".to_owned(),
            payment_id: "PaymentId".to_owned(),
            order_id: "OrderId".to_owned(),
            amount: "Amount".to_owned(),
            currency: "Currency".to_owned(),
            status: "Status".to_owned(),
            timestamp: "Timestamp".to_owned(),
        }
    }
}

/// A SOAP payments poller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoapConfig {
    /// Source name: metrics label, `/health` component, the events' `source`, and part of every
    /// derived event id (renaming the source lands already-landed payments again).
    pub name: String,
    /// The service's URL (`http://`; this build's HTTP client has no TLS). Shown everywhere
    /// with a password in it masked; prefer `username` and `password`.
    pub endpoint: String,
    /// HTTP Basic auth user, sent with `password`.
    pub username: Option<String>,
    /// HTTP Basic auth password: `${VAR}` is read from the environment when the source starts
    /// (never printed).
    pub password: Option<String>,
    /// `"1.1"` or `"1.2"`.
    pub soap_version: SoapVersion,
    /// The operation's action: the `SOAPAction` header (1.1) or the `action` parameter of the
    /// content type (1.2). Unset: an empty `SOAPAction` (1.1), no parameter (1.2).
    pub soap_action: Option<String>,
    /// The whole request envelope, with `{cursor_ts}`, `{cursor_id}` and `{limit}` where the
    /// service wants them. The service must answer the payments whose (timestamp, payment id)
    /// comes strictly after (`{cursor_ts}`, `{cursor_id}`), in that order, at most `{limit}`.
    /// `${VAR}` anywhere in it (a WS-Security password) is replaced, XML-escaped, by that
    /// environment variable when the source starts; the template is only ever shown as written.
    pub request: String,
    /// Pause between polls once the service has nothing more, ms. A full page is followed at
    /// once by the next.
    pub interval_ms: u64,
    /// Payments asked for per request (`{limit}`).
    pub page_size: u32,
    /// The cursor's timestamp before the first payment (`{cursor_ts}` of the first request).
    pub start: String,
    /// Per request, ms.
    pub timeout_ms: u64,
    /// First wait after a failed poll, ms; doubles per failure up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Longest wait between failed polls, ms.
    pub backoff_max_ms: u64,
    /// Larger answers are refused (and retried), bytes.
    pub max_answer_bytes: u64,
    /// Element names of the answer.
    pub elements: Elements,
}

impl Default for SoapConfig {
    fn default() -> Self {
        Self {
            name: "soap".to_owned(),
            endpoint: String::new(),
            username: None,
            password: None,
            soap_version: SoapVersion::V11,
            soap_action: None,
            request: String::new(),
            interval_ms: 60_000,
            page_size: 500,
            start: "2000-01-01T00:00:00Z".to_owned(),
            timeout_ms: 30_000,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
            max_answer_bytes: 16 * 1024 * 1024,
            elements: Elements::default(),
        }
    }
}

#[async_trait::async_trait]
impl BuildSource for SoapConfig {
    const KIND: &'static str = "soap";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("soap.{key}: {why}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        match reqwest::Url::parse(&self.endpoint) {
            Ok(u) if u.scheme() == "http" && u.has_host() => {}
            Ok(u) => {
                return bad(
                    "endpoint",
                    format!(
                        "must be an http:// URL (this build has no TLS), got {:?}",
                        redact::url(u.as_str())
                    ),
                )
            }
            Err(e) => {
                return bad(
                    "endpoint",
                    format!("not a URL ({e}): {:?}", redact::url(&self.endpoint)),
                )
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("password", "a password needs a username".to_owned());
        }
        if let Err(var) = env_refs(&self.request, |_| Some(String::new())) {
            return bad("request", format!("{var}: not a ${{VAR}} reference"));
        }
        for p in PLACEHOLDERS {
            if !self.request.contains(p) {
                return bad(
                    "request",
                    format!(
                        "the template must contain {p} (placeholders: {})",
                        PLACEHOLDERS.join(", ")
                    ),
                );
            }
        }
        if self.page_size == 0 || self.page_size > 10_000 {
            return bad("page_size", format!("must be 1..=10000, got {}", self.page_size));
        }
        for (key, v) in [
            ("interval_ms", self.interval_ms),
            ("timeout_ms", self.timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1".to_owned());
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return bad(
                "backoff_max_ms",
                format!(
                    "must be at least backoff_initial_ms ({}), got {}",
                    self.backoff_initial_ms, self.backoff_max_ms
                ),
            );
        }
        if self.max_answer_bytes < 1024 {
            return bad(
                "max_answer_bytes",
                format!("must be at least 1024, got {}", self.max_answer_bytes),
            );
        }
        if super::xml::parse_ts(&self.start).is_none() {
            return bad(
                "start",
                format!(
                    "must be an RFC 3339 timestamp or epoch milliseconds, got {:?}",
                    self.start
                ),
            );
        }
        let e = &self.elements;
        for (key, v) in [
            ("record", &e.record),
            ("payment_id", &e.payment_id),
            ("order_id", &e.order_id),
            ("amount", &e.amount),
            ("currency", &e.currency),
            ("status", &e.status),
            ("timestamp", &e.timestamp),
        ] {
            if v.trim().is_empty() || v.contains([':', '<', '>', ' ']) {
                return bad(
                    &format!("elements.{key}"),
                    format!("must be an element's local name (no prefix), got {v:?}"),
                );
            }
        }
        Ok(())
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        let mut config = self.clone();
        let what = |key: &str| format!("soap {:?}: {key}", self.name);
        config.request = env_refs(&self.request, |var| {
            std::env::var(var).ok().map(|v| escape(&v).into_owned())
        })
        .map_err(|var| {
            Error::Config(format!(
                "{}: environment variable {var} is not set",
                what("request")
            ))
        })?;
        if let Some(p) = config.password.as_mut() {
            *p = crate::secret::secret(p, &what("password"))?;
        }
        let state = cx.state_dir(&self.name)?;
        let runtime = cx.runtime(&self.name, Self::KIND);
        runtime.set_description(format!(
            "polls {} (SOAP {}) every {} ms, {} payments a page",
            redact::url(&self.endpoint),
            self.soap_version.as_str(),
            self.interval_ms,
            self.page_size
        ));
        let poller = Poller::open(config, &state, runtime.clone(), cx.partitions)?;
        let handle = runtime.handle();
        Ok(BuiltSource {
            handle,
            task: Box::pin(poller.run()),
        })
    }
}

/// `text` with every `${VAR}` replaced by `value(VAR)`; the name of the first variable without
/// a value, or of a `${` that is not a reference (an empty or non-identifier name, no `}`).
fn env_refs(text: &str, value: impl Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("${{{}", after.chars().take(20).collect::<String>()));
        };
        let var = &after[..end];
        let ident = var
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!("${{{var}}}"));
        }
        out.push_str(&value(var).ok_or_else(|| var.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceConfig;

    /// The `[[sources]]` block of type `soap` in `config/retail.example.toml`.
    fn example_block() -> SourceConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/retail.example.toml");
        let text = std::fs::read_to_string(path).expect("the example config");
        let doc: toml::Table = toml::from_str(&text).expect("the example is TOML");
        let sources = doc["sources"].as_array().expect("[[sources]]");
        let block = sources
            .iter()
            .find(|s| s.get("type").and_then(|t| t.as_str()) == Some("soap"))
            .expect("a soap block in the example");
        block.clone().try_into().expect("the soap block parses")
    }

    #[test]
    fn the_example_block_parses_and_validates() {
        let SourceConfig::Soap(c) = example_block() else {
            panic!("not a soap block");
        };
        c.validate().expect("valid");
        assert_eq!(c.soap_version, SoapVersion::V11);
        assert!(c.endpoint.starts_with("http://"));
        assert_eq!(c.elements, Elements::default());
    }

    fn valid() -> SoapConfig {
        SoapConfig {
            endpoint: "http://127.0.0.1:8088/payments".to_owned(),
            request: "<x>{cursor_ts}{cursor_id}{limit}</x>".to_owned(),
            ..SoapConfig::default()
        }
    }

    #[test]
    fn errors_name_the_key() {
        valid().validate().expect("valid");
        type Change = fn(&mut SoapConfig);
        let cases: [(Change, &str); 8] = [
            (
                |c| c.endpoint = "https://pay.example/ws".to_owned(),
                "soap.endpoint",
            ),
            (|c| c.endpoint = "nope".to_owned(), "soap.endpoint"),
            (
                |c| c.request = "<x>{cursor_ts}{limit}</x>".to_owned(),
                "{cursor_id}",
            ),
            (|c| c.page_size = 0, "soap.page_size"),
            (|c| c.password = Some("p".to_owned()), "soap.password"),
            (
                |c| c.request = "<x>{cursor_ts}{cursor_id}{limit}${1X}</x>".to_owned(),
                "soap.request",
            ),
            (|c| c.start = "yesterday".to_owned(), "soap.start"),
            (
                |c| c.elements.amount = "p:Amount".to_owned(),
                "soap.elements.amount",
            ),
        ];
        for (change, key) in cases {
            let mut c = valid();
            change(&mut c);
            let e = c.validate().expect_err(key).to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn env_references_in_the_request_are_replaced() {
        let env = |v: &str| (v == "WSS_PASS").then(|| "s3cr&t".to_owned());
        assert_eq!(
            env_refs("<p>${WSS_PASS}</p><u>${WSS_PASS}</u>", env).as_deref(),
            Ok("<p>s3cr&t</p><u>s3cr&t</u>")
        );
        assert_eq!(env_refs("<p>${NOPE}</p>", env), Err("NOPE".to_owned()));
        assert_eq!(
            env_refs("no refs {limit} $x", env).as_deref(),
            Ok("no refs {limit} $x")
        );
    }

    #[test]
    fn versions_are_written_as_numbers() {
        let c: SoapConfig = serde_json::from_str(r#"{"soap_version":"1.2"}"#).expect("parses");
        assert_eq!(c.soap_version, SoapVersion::V12);
        assert!(serde_json::from_str::<SoapConfig>(r#"{"soap_version":"2"}"#).is_err());
    }
}
