//! Who may call what: bearer tokens from the configuration. Read endpoints take a read or an
//! admin token, control endpoints and resubmitting a dead letter take an admin token. With no
//! token configured at all everything is open, and the binary then only listens on loopback
//! (ADR 0005). `/health`, `/metrics`, `/api/openapi.json` and `/docs` are always open: they
//! carry no business data.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::server::ServeState;

/// The configured tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Access {
    read: Vec<String>,
    admin: Vec<String>,
}

impl std::fmt::Debug for Access {
    // Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("read_tokens", &self.read.len())
            .field("admin_tokens", &self.admin.len())
            .finish()
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reading data.
    Read,
    /// Changing the pipeline.
    Admin,
}

impl Access {
    /// Tokens that may read, and tokens that may also act.
    pub fn new(read_tokens: Vec<String>, admin_tokens: Vec<String>) -> Self {
        Self {
            read: read_tokens,
            admin: admin_tokens,
        }
    }

    /// No tokens configured: everything is open (loopback only).
    pub fn is_open(&self) -> bool {
        self.read.is_empty() && self.admin.is_empty()
    }

    /// Checks an `Authorization` header value for `role`.
    pub fn check(&self, authorization: Option<&str>, role: Role) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let Some(value) = authorization else {
            return Err(ApiError::unauthorized(
                "this endpoint needs an API token: send the header Authorization: Bearer <token>",
            ));
        };
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        let Some(token) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .and_then(|_| value.get(7..))
            .map(str::trim)
        else {
            return Err(ApiError::unauthorized(
                "the Authorization header must be \"Bearer <token>\"",
            ));
        };
        let admin = self.admin.iter().any(|t| same(t, token));
        let read = admin || self.read.iter().any(|t| same(t, token));
        match (role, read, admin) {
            (_, false, _) => Err(ApiError::unauthorized("the API token is not valid")),
            (Role::Admin, true, false) => Err(ApiError::forbidden(
                "this endpoint changes the pipeline and needs an admin token; the token given may only read",
            )),
            _ => Ok(()),
        }
    }
}

/// Compares in time independent of where the strings differ, so response times do not leak a
/// token's prefix.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// What an open API (no tokens: loopback only) refuses, so that a web page the operator visits
/// cannot drive it. A browser attaches no bearer token by itself, so with tokens configured a
/// page cannot act without one and these checks are not needed.
/// - A `Host` that is not a loopback name or address: a page whose own name was made to resolve
///   to 127.0.0.1 (DNS rebinding) would otherwise read and control the pipeline as same-origin.
/// - On routes that change the pipeline, a cross-site request: an `Origin` that is not the
///   server's own (`null` included), or `Sec-Fetch-Site: cross-site`. A form or `fetch` from
///   another site can send a simple POST without a CORS preflight; curl and scripts send no
///   `Origin` and are not affected.
pub fn same_site(request: &Request, role: Role) -> Result<(), ApiError> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host {
        if !is_loopback_authority(host) {
            return Err(ApiError::forbidden(format!(
                "this API has no tokens and answers only requests to a loopback host, not to Host: {host}"
            )));
        }
    }
    if role == Role::Read {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("<not text>");
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let own = match (authority, host) {
            (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
            (Some(a), None) => is_loopback_authority(a),
            (None, _) => false,
        };
        if !own {
            return Err(ApiError::forbidden(format!(
                "cross-site request refused: Origin {origin} is not this server; change the pipeline from its own dashboard, curl or a script"
            )));
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(ApiError::forbidden(
            "cross-site request refused (Sec-Fetch-Site: cross-site); change the pipeline from its own dashboard, curl or a script",
        ));
    }
    Ok(())
}

/// Whether `authority` (`host[:port]`) names this machine: `localhost` (and its subdomains,
/// which resolve to loopback by RFC 6761), or a loopback IPv4 or IPv6 address.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                authority
            }
        }),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn require(state: &ServeState, role: Role, request: Request, next: Next) -> Response {
    if state.access.is_open() {
        if let Err(e) = same_site(&request, role) {
            return e.into_response();
        }
    }
    let from_query = live_stream_token(&request);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or(from_query.as_deref());
    match state.access.check(authorization, role) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// The browser's `EventSource` cannot send headers, so the live stream alone also takes its
/// token as `?access_token=` (as `Bearer <token>`). Only there: elsewhere a token in a URL
/// would end up in logs and browser history for no reason.
fn live_stream_token(request: &Request) -> Option<String> {
    if request.uri().path() != crate::api::LIVE_STREAM_PATH {
        return None;
    }
    // Percent-decoded: a token with `+`, `/` or `=` arrives encoded from `encodeURIComponent`.
    let query = request.uri().query()?;
    let token = form_urlencoded::parse(query.as_bytes())
        .find_map(|(key, value)| (key == "access_token").then_some(value))?;
    Some(format!("Bearer {token}"))
}

/// Middleware of read routes.
pub async fn require_read(State(state): State<ServeState>, request: Request, next: Next) -> Response {
    require(&state, Role::Read, request, next).await
}

/// Middleware of admin routes.
pub async fn require_admin(State(state): State<ServeState>, request: Request, next: Next) -> Response {
    require(&state, Role::Admin, request, next).await
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method("POST")
            .uri("/api/v1/control/landing/pause");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn an_open_api_refuses_foreign_hosts_and_cross_site_changes() {
        let status = |h: &[(&str, &str)], role| same_site(&request(h), role).map_err(|e| e.status);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "LOCALHOST",
            "127.1.2.3",
            "app.localhost:80",
        ] {
            assert_eq!(status(&[("host", host)], Role::Read), Ok(()), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "0.0.0.0:8080",
            "10.0.0.1",
        ] {
            assert_eq!(
                status(&[("host", host)], Role::Read),
                Err(StatusCode::FORBIDDEN),
                "{host}"
            );
        }
        // curl and scripts: no Origin.
        assert_eq!(status(&[("host", "127.0.0.1:8080")], Role::Admin), Ok(()));
        // The dashboard: its own origin.
        assert_eq!(
            status(
                &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")],
                Role::Admin
            ),
            Ok(())
        );
        for origin in ["http://evil.example", "http://127.0.0.1:3000", "null", "garbage"] {
            assert_eq!(
                status(&[("host", "127.0.0.1:8080"), ("origin", origin)], Role::Admin),
                Err(StatusCode::FORBIDDEN),
                "{origin}"
            );
            assert_eq!(
                status(&[("host", "127.0.0.1:8080"), ("origin", origin)], Role::Read),
                Ok(()),
                "reads are not refused for their origin: {origin}"
            );
        }
        assert_eq!(
            status(
                &[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")],
                Role::Admin
            ),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn the_live_stream_token_is_percent_decoded() {
        let r = axum::http::Request::builder()
            .uri(format!(
                "{}?x=1&access_token=a%2Bb%2Fc%3D",
                crate::api::LIVE_STREAM_PATH
            ))
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(live_stream_token(&r).as_deref(), Some("Bearer a+b/c="));
    }

    #[test]
    fn tokens_grant_what_their_list_says() {
        let a = Access::new(vec!["r".into()], vec!["a".into()]);
        assert!(a.check(Some("Bearer r"), Role::Read).is_ok());
        assert!(a.check(Some("Bearer a"), Role::Read).is_ok());
        assert!(a.check(Some("Bearer a"), Role::Admin).is_ok());
        assert_eq!(
            a.check(Some("Bearer r"), Role::Admin).map_err(|e| e.status),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            a.check(Some("Bearer x"), Role::Read).map_err(|e| e.status),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            a.check(None, Role::Read).map_err(|e| e.status),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            a.check(Some("r"), Role::Read).map_err(|e| e.status),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert!(
            a.check(Some("bearer r"), Role::Read).is_ok(),
            "the scheme is case-insensitive"
        );
        assert!(a.check(Some("BEARER a"), Role::Admin).is_ok());
        assert!(Access::default().check(None, Role::Admin).is_ok());
        assert!(!same("abc", "abd") && !same("abc", "ab") && same("abc", "abc"));
        assert!(!format!("{a:?}").contains('"'), "Debug must not print tokens");
    }
}
