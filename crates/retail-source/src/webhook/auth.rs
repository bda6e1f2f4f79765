//! Who may post: a bearer token from the configured list, and/or an HMAC-SHA256 signature over
//! timestamp and body with a shared secret (`t=<unix>,v1=<hex>`, as payment providers sign
//! their webhooks), whose timestamp must be inside the replay window. Comparisons of secrets
//! are constant-time.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a request is refused (401). The message is safe to return: it never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

/// Checks `Authorization` against `tokens` (none configured: anything passes). The scheme is
/// case-insensitive, as RFC 9110 says.
pub fn check_bearer(tokens: &[String], authorization: Option<&str>) -> Result<(), Unauthorized> {
    if tokens.is_empty() {
        return Ok(());
    }
    let Some(value) = authorization else {
        return Err(Unauthorized("missing Authorization: Bearer <token>".to_owned()));
    };
    let presented = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(Unauthorized("Authorization must be Bearer <token>".to_owned())),
    };
    let mut ok = false;
    for t in tokens {
        ok |= constant_time_eq(t.as_bytes(), presented.as_bytes());
    }
    if ok {
        Ok(())
    } else {
        Err(Unauthorized("unknown bearer token".to_owned()))
    }
}

/// Checks a `t=<unix seconds>,v1=<hex>` signature of `body` with `secret`, at `now` (unix
/// seconds). Several `v1=` entries are allowed (a sender rotating secrets); one must match.
pub fn check_signature(
    secret: &[u8],
    header_name: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
    window_s: u64,
) -> Result<(), Unauthorized> {
    let Some(header) = header else {
        return Err(Unauthorized(format!(
            "missing signature header {header_name}: t=<unix>,v1=<hex>"
        )));
    };
    let mut t: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let Some(t) = t else {
        return Err(Unauthorized(format!(
            "{header_name} has no valid t=<unix seconds>"
        )));
    };
    if signatures.is_empty() {
        return Err(Unauthorized(format!("{header_name} has no v1=<hex> signature")));
    }
    if now.abs_diff(t) > window_s {
        return Err(Unauthorized(format!(
            "{header_name} timestamp {t} is {} s from now, outside the {window_s} s replay window",
            now.abs_diff(t)
        )));
    }
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .map_err(|_| Unauthorized("the signature secret is unusable".to_owned()))?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matched = signatures
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .any(|s| constant_time_eq(&s, &expected));
    if matched {
        Ok(())
    } else {
        Err(Unauthorized(format!("{header_name} does not match the body")))
    }
}

/// The header value a sender computes: `t=<now>,v1=<hex>`. Used by tests and the benchmark.
pub fn sign(secret: &[u8], body: &[u8], now: i64) -> String {
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(now.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={now},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_0123456789abcdef";

    #[test]
    fn bearer_tokens_are_checked_with_any_case_of_the_scheme() {
        let tokens = vec!["till-token-0123456789".to_owned()];
        assert!(check_bearer(&tokens, Some("bearer till-token-0123456789")).is_ok());
        assert!(check_bearer(&tokens, Some("Bearer till-token-0123456789")).is_ok());
        assert!(check_bearer(&tokens, Some("Bearer nope")).is_err());
        assert!(check_bearer(&tokens, Some("Basic abc")).is_err());
        assert!(check_bearer(&tokens, None).is_err());
        assert!(check_bearer(&[], None).is_ok());
    }

    #[test]
    fn signatures_match_the_body_and_expire_outside_the_window() {
        let body = br#"{"store_id":1}"#;
        let header = sign(SECRET, body, 1_000_000);
        let check =
            |h: &str, body: &[u8], now| check_signature(SECRET, "Retail-Signature", Some(h), body, now, 300);
        assert!(check(&header, body, 1_000_100).is_ok());
        assert!(
            check(&header, b"{\"store_id\":2}", 1_000_100).is_err(),
            "another body"
        );
        let late = check(&header, body, 1_000_400).expect_err("expired");
        assert!(late.0.contains("replay window"), "{late:?}");
        assert!(check("v1=00", body, 1_000_000).is_err(), "no timestamp");
        assert!(check("t=1000000", body, 1_000_000).is_err(), "no signature");
        assert!(check_signature(SECRET, "Retail-Signature", None, body, 0, 300).is_err());
        let rotated = format!("{header},v1=deadbeef");
        assert!(
            check(&rotated, body, 1_000_000).is_ok(),
            "one of several v1 matches"
        );
    }
}
