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
        let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
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

async fn require(state: &ServeState, role: Role, request: Request, next: Next) -> Response {
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
    let token = request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))?;
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
        assert!(Access::default().check(None, Role::Admin).is_ok());
        assert!(!same("abc", "abd") && !same("abc", "ab") && same("abc", "abc"));
        assert!(!format!("{a:?}").contains('"'), "Debug must not print tokens");
    }
}
