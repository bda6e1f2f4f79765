//! Query and path parameters, parsed and checked by hand so that every 400 names the parameter
//! and says what was expected: axum's extractors would answer with their own plain-text
//! messages. Unknown and repeated parameters are refused too, so a typo (`limt=5`) is an error
//! rather than a silently ignored filter.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use chrono::{DateTime, NaiveDate, Utc};
use retail_sink::read::PageRequest;

use super::error::{ApiError, ApiResult};

/// The extractor handlers take: the raw pairs, or why the query string could not be read.
pub type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Rows per page when `limit` is absent.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest `limit` of a paged list.
pub const MAX_PAGE: u32 = 500;
/// The largest `offset` of a paged list: deeper pages cost a long scan; narrow the filter.
pub const MAX_OFFSET: u64 = 1_000_000;

/// The checked query parameters of one request.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Reads the query, refusing names outside `allowed` and names given twice.
    pub fn parse(raw: RawParams, allowed: &[&str]) -> ApiResult<Self> {
        let Query(pairs) =
            raw.map_err(|e| ApiError::invalid("query", format!("unreadable query string: {e}")))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                let expected = if allowed.is_empty() {
                    "this endpoint takes no query parameters".to_owned()
                } else {
                    format!("expected one of: {}", allowed.join(", "))
                };
                return Err(ApiError::invalid(
                    name,
                    format!("unknown parameter {name:?}; {expected}"),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::invalid(
                    name,
                    format!("parameter {name:?} is given more than once"),
                ));
            }
        }
        Ok(Self { pairs })
    }

    /// The raw value, if given (an empty value counts as given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A calendar day `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> ApiResult<Option<NaiveDate>> {
        self.get(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                    ApiError::invalid(name, format!("{name} must be a date YYYY-MM-DD, got {v:?}"))
                })
            })
            .transpose()
    }

    /// An instant in RFC 3339 (`2026-11-21T10:00:00Z`, any offset).
    pub fn time(&self, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
        self.get(name).map(|v| parse_time(name, v)).transpose()
    }

    /// An integer within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        self.get(name).map(|v| parse_int(name, v, min, max)).transpose()
    }

    /// `true` or `false`, exactly.
    pub fn flag(&self, name: &str) -> ApiResult<Option<bool>> {
        self.get(name)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::invalid(
                    name,
                    format!("{name} must be true or false, got {v:?}"),
                )),
            })
            .transpose()
    }

    /// One of `values`, exactly.
    pub fn one_of(&self, name: &str, values: &[&str]) -> ApiResult<Option<String>> {
        self.get(name)
            .map(|v| {
                if values.contains(&v) {
                    Ok(v.to_owned())
                } else {
                    Err(ApiError::invalid(
                        name,
                        format!("{name} must be one of {}, got {v:?}", values.join(", ")),
                    ))
                }
            })
            .transpose()
    }

    /// An id as text: [`parse_id`].
    pub fn id(&self, name: &str) -> ApiResult<Option<String>> {
        self.get(name).map(|v| parse_id(name, v)).transpose()
    }

    /// A UUID in its hyphenated form (either case), as lower case: [`parse_uuid`].
    pub fn uuid(&self, name: &str) -> ApiResult<Option<String>> {
        self.get(name).map(|v| parse_uuid(name, v)).transpose()
    }

    /// A plain identifier (lower-case letters, digits, `_`, not starting with a digit; at most
    /// 63 bytes), as aggregate and alert kind names are: [`IDENTIFIER_PATTERN`].
    pub fn identifier(&self, name: &str, what: &str) -> ApiResult<Option<String>> {
        self.get(name)
            .map(|v| {
                let plain = !v.is_empty()
                    && v.len() <= 63
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !v.as_bytes()[0].is_ascii_digit();
                if plain {
                    Ok(v.to_owned())
                } else {
                    Err(ApiError::invalid(
                        name,
                        format!("{name} must be {what} (lower-case letters, digits, _), got {v:?}"),
                    ))
                }
            })
            .transpose()
    }

    /// `from` and `to` as filters, each optional; when both are given `from` must be before
    /// `to`. No span limit: the page bounds what is returned.
    pub fn optional_range(&self) -> ApiResult<OptionalRange> {
        let (from, to) = (self.time("from")?, self.time("to")?);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(ApiError::invalid(
                    "from",
                    format!("from ({}) must be before to ({})", f.to_rfc3339(), t.to_rfc3339()),
                ));
            }
        }
        Ok((from, to))
    }

    /// `limit`, `1..=max`, `default` when absent.
    pub fn limit(&self, default: u32, max: u32) -> ApiResult<u32> {
        Ok(self
            .int("limit", 1, i64::from(max))?
            .map_or(default, |v| u32::try_from(v).unwrap_or(max)))
    }

    /// `limit` and `offset` of a paged list.
    pub fn page(&self) -> ApiResult<PageRequest> {
        Ok(PageRequest {
            limit: self.limit(DEFAULT_PAGE, MAX_PAGE)?,
            offset: self
                .int("offset", 0, MAX_OFFSET as i64)?
                .map_or(0, |v| u64::try_from(v).unwrap_or(0)),
        })
    }

    /// `from` and `to` with their defaults (`to` = now, `from` = `to - default_span`),
    /// checked: `from < to`, at most `max_span` apart.
    pub fn range(
        &self,
        default_span: chrono::TimeDelta,
        max_span: chrono::TimeDelta,
    ) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
        self.range_from(|to| to - default_span, max_span)
    }

    /// [`Self::range`] with the default `from` computed from `to`.
    pub fn range_from(
        &self,
        default_from: impl FnOnce(DateTime<Utc>) -> DateTime<Utc>,
        max_span: chrono::TimeDelta,
    ) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
        let to = self.time("to")?.unwrap_or_else(Utc::now);
        let from = match self.time("from")? {
            Some(f) => f,
            None => default_from(to),
        };
        if from >= to {
            return Err(ApiError::invalid(
                "from",
                format!(
                    "from ({}) must be before to ({})",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            ));
        }
        if to - from > max_span {
            return Err(ApiError::invalid(
                "to",
                format!(
                    "the range from {} to {} is longer than the {} hours this endpoint serves at once",
                    from.to_rfc3339(),
                    to.to_rfc3339(),
                    max_span.num_hours()
                ),
            ));
        }
        Ok((from, to))
    }
}

/// `from` and `to` of a filter, each optional.
pub type OptionalRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The OpenAPI pattern of [`Params::identifier`].
pub const IDENTIFIER_PATTERN: &str = "^[a-z_][a-z0-9_]{0,62}$";
/// The longest id [`parse_id`] takes, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// An id as the sources send it (order, customer, alert subject): 1 to [`MAX_ID_CHARS`]
/// characters, no control characters (a store cannot hold every one of them, and no source
/// sends them); OpenAPI pattern `^[^\x00-\x1f\x7f]{1,256}$`.
pub fn parse_id(name: &str, v: &str) -> ApiResult<String> {
    let chars = v.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(ApiError::invalid(
            name,
            format!("{name} must be 1 to {MAX_ID_CHARS} characters, got {chars}"),
        ));
    }
    if v.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}') {
        return Err(ApiError::invalid(
            name,
            format!("{name} must not contain control characters, got {v:?}"),
        ));
    }
    Ok(v.to_owned())
}

/// The OpenAPI pattern of [`parse_uuid`].
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A UUID as the store writes ids (alerts, deliveries): 8-4-4-4-12 hex digits, either case,
/// returned in lower case; exactly [`UUID_PATTERN`] (no braces, no `urn:uuid:`, no unhyphenated
/// form), so what the document allows and what the server takes are the same.
pub fn parse_uuid(name: &str, v: &str) -> ApiResult<String> {
    let hyphenated = v.len() == 36
        && v.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if hyphenated {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid(
            name,
            format!("{name} must be a UUID like 0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c, got {v:?}"),
        ))
    }
}

/// Parses an RFC 3339 instant, naming `name` on failure.
pub fn parse_time(name: &str, v: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(
                name,
                format!("{name} must be an RFC 3339 time like 2026-11-21T10:00:00Z, got {v:?}"),
            )
        })
}

/// Parses an integer within `min..=max`, naming `name` on failure.
pub fn parse_int(name: &str, v: &str, min: i64, max: i64) -> ApiResult<i64> {
    match v.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err(ApiError::invalid(
            name,
            format!("{name} must be between {min} and {max}, got {n}"),
        )),
        Err(_) => Err(ApiError::invalid(
            name,
            format!("{name} must be an integer, got {v:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)], allowed: &[&str]) -> ApiResult<Params> {
        let pairs = q
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        Params::parse(Ok(Query(pairs)), allowed)
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = params(&[("limt", "5")], &["limit"]).expect_err("unknown");
        assert_eq!(e.parameter.as_deref(), Some("limt"));
        let e = params(&[("limit", "5"), ("limit", "6")], &["limit"]).expect_err("repeated");
        assert!(e.message.contains("more than once"), "{}", e.message);
    }

    #[test]
    fn a_uuid_is_hyphenated_hex_in_either_case() {
        let id = "0B7E6C3A-52b8-5a3c-9d55-0d1e2f3a4b5c";
        assert_eq!(
            parse_uuid("alert_id", id).expect("uuid"),
            "0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c"
        );
        for bad in [
            "",
            "nope",
            "0b7e6c3a52b85a3c9d550d1e2f3a4b5c",
            "{0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c}",
            "0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5g",
            "0b7e6c3a-52b8-5a3c-9d55_0d1e2f3a4b5c",
            "0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c ",
        ] {
            let e = parse_uuid("alert_id", bad).expect_err(bad);
            assert_eq!(e.parameter.as_deref(), Some("alert_id"), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        let p = params(&[("limit", "501")], &["limit"]).expect("parse");
        let e = p.page().expect_err("too large");
        assert_eq!(e.parameter.as_deref(), Some("limit"));
        assert!(e.message.contains("between 1 and 500"), "{}", e.message);
        let p = params(&[("limit", "ten")], &["limit"]).expect("parse");
        assert!(p.limit(10, 100).is_err());
        let p = params(&[], &["limit"]).expect("parse");
        assert_eq!(p.page().expect("default"), PageRequest { limit: 50, offset: 0 });
    }

    #[test]
    fn a_range_must_run_forward_and_not_too_far() {
        let hour = chrono::TimeDelta::hours(1);
        let p = params(
            &[("from", "2026-11-21T10:00:00Z"), ("to", "2026-11-21T09:00:00Z")],
            &["from", "to"],
        )
        .expect("parse");
        assert_eq!(
            p.range(hour, hour * 24)
                .expect_err("backwards")
                .parameter
                .as_deref(),
            Some("from")
        );
        let p = params(
            &[
                ("from", "2026-11-01T10:00:00Z"),
                ("to", "2026-11-21T09:00:00+01:00"),
            ],
            &["from", "to"],
        )
        .expect("parse");
        assert_eq!(
            p.range(hour, hour * 24)
                .expect_err("too long")
                .parameter
                .as_deref(),
            Some("to")
        );
        let p = params(&[("from", "yesterday")], &["from", "to"]).expect("parse");
        assert_eq!(
            p.range(hour, hour * 24).expect_err("bad").parameter.as_deref(),
            Some("from")
        );
    }
}
