//! Who may call what: bearer tokens from the configuration, static ones or JWTs (ADR 0017).
//! Read endpoints take a read or an admin token, control endpoints and resubmitting a dead
//! letter take an admin token. With no static token and no JWT key configured at all
//! everything is open, and the binary then only listens on loopback (ADR 0005). `/health`,
//! `/metrics`, `/api/openapi.json` and `/docs` are always open: they carry no business data.
//!
//! A JWT is checked by [`Jwt`]: signature with a key pinned to one algorithm (HS256 with the
//! shared secret, or the JWKS key its `kid` names), `exp` and `aud` required, `iss` if
//! configured; its role claim grants `read` or `admin`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::api::error::ApiError;
use crate::server::ServeState;

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Access {
    read: Vec<String>,
    admin: Vec<String>,
    jwt: Option<std::sync::Arc<Jwt>>,
}

impl std::fmt::Debug for Access {
    // Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("read_tokens", &self.read.len())
            .field("admin_tokens", &self.admin.len())
            .field("jwt", &self.jwt)
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
            jwt: None,
        }
    }

    /// Also accepts JWTs that `jwt` verifies. The API is then not open, tokens or not.
    #[must_use]
    pub fn with_jwt(mut self, jwt: Jwt) -> Self {
        self.jwt = Some(std::sync::Arc::new(jwt));
        self
    }

    /// No tokens and no JWT keys configured: everything is open (loopback only).
    pub fn is_open(&self) -> bool {
        self.read.is_empty() && self.admin.is_empty() && self.jwt.is_none()
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
        let mut admin = self.admin.iter().any(|t| same(t, token));
        let mut read = admin || self.read.iter().any(|t| same(t, token));
        if !read {
            if let Some(jwt) = self.jwt.as_deref().filter(|_| looks_like_jwt(token)) {
                let grants = jwt.verify(token)?;
                (read, admin) = (grants.read || grants.admin, grants.admin);
                if !read {
                    return Err(ApiError::forbidden(format!(
                        "the JWT is valid but its claim {:?} grants neither \"read\" nor \"admin\"",
                        jwt.role_claim
                    )));
                }
            }
        }
        match (role, read, admin) {
            (_, false, _) => Err(ApiError::unauthorized("the API token is not valid")),
            (Role::Admin, true, false) => Err(ApiError::forbidden(
                "this endpoint changes the pipeline and needs an admin token; the token given may only read",
            )),
            _ => Ok(()),
        }
    }
}

/// Three base64url parts joined by dots: a JWT (JWS compact form), not a static token.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// The JWT settings, with secrets already read (see `[serve.jwt]` in the binary's config).
#[derive(Clone, Default)]
pub struct JwtOptions {
    /// The HS256 shared secret, if HS256 tokens are accepted.
    pub hs256_secret: Option<Vec<u8>>,
    /// A JWKS document (`{"keys": [...]}`) with the public keys of RS256/ES256/... tokens.
    pub jwks: Option<String>,
    /// The `aud` every token must name.
    pub audience: String,
    /// The `iss` every token must name, if set.
    pub issuer: Option<String>,
    /// The claim holding the roles: a string (space-separated, as OAuth's `scope`) or an array
    /// of strings; `read` and `admin` are the values that grant something.
    pub role_claim: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

impl std::fmt::Debug for JwtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtOptions")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("jwks", &self.jwks.as_ref().map(String::len))
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("role_claim", &self.role_claim)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// The shortest HS256 secret accepted: RFC 7518 3.2 asks for a key as long as the hash, 256 bits.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// One verification key, pinned to one algorithm: a token whose header names another algorithm
/// is refused before any signature check, so an RSA public key can never be used as an HMAC
/// secret and `alg: none` matches nothing.
struct PinnedKey {
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies JWTs: picks the key (the HS256 secret, or the JWKS key named by `kid`), checks the
/// signature, `exp`, `nbf`, `aud`, `iss`, and reads the roles.
pub struct Jwt {
    hs256: Option<PinnedKey>,
    by_kid: Vec<(String, PinnedKey)>,
    audience: String,
    issuer: Option<String>,
    role_claim: String,
    leeway_secs: u64,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("hs256", &self.hs256.is_some())
            .field(
                "kids",
                &self
                    .by_kid
                    .iter()
                    .map(|(k, p)| (k, p.algorithm))
                    .collect::<Vec<_>>(),
            )
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("role_claim", &self.role_claim)
            .finish()
    }
}

/// What a verified JWT grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// `read` among its roles.
    pub read: bool,
    /// `admin` among its roles.
    pub admin: bool,
}

impl Jwt {
    /// Loads the keys. The error names what is wrong (a JWKS key without `kid`, a symmetric key
    /// in the JWKS, an unsupported curve, a short secret).
    pub fn new(options: JwtOptions) -> Result<Self, String> {
        if options.audience.is_empty() {
            return Err("audience: must not be empty (tokens are checked for it)".into());
        }
        if options.hs256_secret.is_none() && options.jwks.is_none() {
            return Err("configure hs256_secret, jwks_file or both".into());
        }
        let validation = |algorithm: Algorithm| {
            let mut v = Validation::new(algorithm);
            v.set_audience(&[&options.audience]);
            let mut required = vec!["exp", "aud"];
            if let Some(iss) = &options.issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            v.set_required_spec_claims(&required);
            v.validate_nbf = true;
            v.leeway = options.leeway_secs;
            v
        };
        let hs256 = match &options.hs256_secret {
            Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(format!(
                    "hs256_secret: must be at least {MIN_HS256_SECRET_BYTES} bytes, got {}",
                    secret.len()
                ));
            }
            Some(secret) => Some(PinnedKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret).map_err(|e| format!("hs256_secret: {e}"))?,
                validation: validation(Algorithm::HS256),
            }),
            None => None,
        };
        let mut by_kid: Vec<(String, PinnedKey)> = Vec::new();
        if let Some(jwks) = &options.jwks {
            let set: JwkSet = serde_json::from_str(jwks)
                .map_err(|e| format!("jwks_file: not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
            if set.keys.is_empty() {
                return Err("jwks_file: the key set has no keys".into());
            }
            for (i, jwk) in set.keys.iter().enumerate() {
                let Some(kid) = jwk.common.key_id.clone() else {
                    return Err(format!(
                        "jwks_file: key {i} has no \"kid\"; tokens pick their key by kid"
                    ));
                };
                if by_kid.iter().any(|(k, _)| *k == kid) {
                    return Err(format!("jwks_file: kid {kid:?} appears twice"));
                }
                let algorithm = pinned_algorithm(jwk).map_err(|e| format!("jwks_file: key {kid:?}: {e}"))?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("jwks_file: key {kid:?}: {e}"))?;
                by_kid.push((
                    kid,
                    PinnedKey {
                        algorithm,
                        key,
                        validation: validation(algorithm),
                    },
                ));
            }
        }
        Ok(Self {
            hs256,
            by_kid,
            audience: options.audience,
            issuer: options.issuer,
            role_claim: options.role_claim,
            leeway_secs: options.leeway_secs,
        })
    }

    /// Verifies `token` and reads its roles; a 401 that says what was wrong otherwise. The
    /// token itself is never part of the message.
    pub fn verify(&self, token: &str) -> Result<Grants, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            ApiError::unauthorized(
                "the JWT's header could not be read or names an algorithm this server does not accept \
                 (unsigned tokens, alg \"none\", are refused)",
            )
        })?;
        let pinned = match (header.alg, header.kid.as_deref()) {
            (Algorithm::HS256, _) => self.hs256.as_ref().ok_or_else(|| {
                ApiError::unauthorized("the JWT is signed with HS256, and this server has no HS256 secret")
            })?,
            (_, None) => {
                return Err(ApiError::unauthorized(format!(
                    "the JWT ({:?}) has no \"kid\" header; this server picks JWKS keys by kid",
                    header.alg
                )))
            }
            (_, Some(kid)) => {
                let Some((_, pinned)) = self.by_kid.iter().find(|(k, _)| k == kid) else {
                    return Err(ApiError::unauthorized(format!(
                        "unknown kid {:?}: no key with that id in the JWKS file",
                        truncate(kid)
                    )));
                };
                pinned
            }
        };
        if header.alg != pinned.algorithm {
            return Err(ApiError::unauthorized(format!(
                "the JWT names algorithm {:?}, but its key is pinned to {:?}",
                header.alg, pinned.algorithm
            )));
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &pinned.key,
            &pinned.validation,
        )
        .map_err(|e| self.rejection(&e))?;
        Ok(roles(data.claims.get(&self.role_claim)))
    }

    /// The 401 for a failed check, in words.
    fn rejection(&self, e: &jsonwebtoken::errors::Error) -> ApiError {
        use jsonwebtoken::errors::ErrorKind;
        let message = match e.kind() {
            ErrorKind::ExpiredSignature => format!(
                "the JWT has expired (its exp is past, beyond the {} s leeway)",
                self.leeway_secs
            ),
            ErrorKind::ImmatureSignature => "the JWT is not valid yet (its nbf is in the future)".to_owned(),
            ErrorKind::InvalidAudience => {
                format!("wrong audience: the JWT's aud does not name {:?}", self.audience)
            }
            ErrorKind::InvalidIssuer => format!(
                "wrong issuer: the JWT's iss is not {:?}",
                self.issuer.as_deref().unwrap_or_default()
            ),
            ErrorKind::InvalidSignature => {
                "bad signature: the JWT was not signed by the configured key".to_owned()
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("the JWT lacks the required claim {claim:?}")
            }
            ErrorKind::InvalidAlgorithm => "the JWT's algorithm does not match its key".to_owned(),
            _ => "the JWT could not be read (malformed header, claims or signature)".to_owned(),
        };
        ApiError::unauthorized(message)
    }
}

/// A `kid` as given by the caller, cut short for the message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The algorithm a JWKS key is pinned to: its `alg`, or the usual one for its type and curve.
/// Symmetric keys are refused: the HS256 secret is configured on its own.
fn pinned_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not taken from the JWKS; set hs256_secret".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    let Some(alg) = jwk.common.key_algorithm else {
        return Ok(by_type);
    };
    let alg = Algorithm::try_from(alg).map_err(|_| format!("alg {alg} is not supported"))?;
    let family_ok = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => a.family() == jsonwebtoken::AlgorithmFamily::Rsa,
        (AlgorithmParameters::EllipticCurve(_), a) => a == by_type,
        (AlgorithmParameters::OctetKeyPair(_), a) => a == Algorithm::EdDSA,
        _ => false,
    };
    if family_ok {
        Ok(alg)
    } else {
        Err(format!("alg {alg:?} does not fit the key type"))
    }
}

/// The roles in the claim: a space-separated string or an array of strings.
fn roles(claim: Option<&serde_json::Value>) -> Grants {
    let has = |role: &str| match claim {
        Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().any(|r| r == role),
        Some(serde_json::Value::Array(a)) => a.iter().any(|r| r.as_str() == Some(role)),
        _ => false,
    };
    Grants {
        read: has("read"),
        admin: has("admin"),
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

    mod jwt {
        use axum::http::StatusCode;
        use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
        use serde_json::json;

        use super::super::*;

        const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
        const AUD: &str = "retail-api";

        fn options() -> JwtOptions {
            JwtOptions {
                hs256_secret: Some(SECRET.to_vec()),
                jwks: Some(include_str!("../tests/keys/jwks.json").to_owned()),
                audience: AUD.into(),
                issuer: Some("https://issuer.example".into()),
                role_claim: "roles".into(),
                leeway_secs: 5,
            }
        }

        fn access() -> Access {
            Access::new(vec!["static-read-0123456789".into()], Vec::new())
                .with_jwt(Jwt::new(options()).expect("keys"))
        }

        fn claims(roles: serde_json::Value) -> serde_json::Value {
            json!({
                "aud": AUD,
                "iss": "https://issuer.example",
                "exp": get_current_timestamp() + 300,
                "roles": roles,
            })
        }

        fn hs(claims: &serde_json::Value) -> String {
            let key = EncodingKey::from_secret(SECRET).expect("key");
            encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
        }

        fn signed(alg: Algorithm, kid: Option<&str>, pem: &str, claims: &serde_json::Value) -> String {
            let key = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
                _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
            }
            .expect("key");
            let mut header = Header::new(alg);
            header.kid = kid.map(str::to_owned);
            encode(&header, claims, &key).expect("sign")
        }

        /// The status and message of checking `token` for `role`.
        fn check(token: &str, role: Role) -> Result<(), (StatusCode, String)> {
            access()
                .check(Some(&format!("Bearer {token}")), role)
                .map_err(|e| (e.status, e.message))
        }

        fn refused(token: &str, words: &str) {
            let (status, message) = check(token, Role::Read).expect_err(words);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
            assert!(message.contains(words), "{message:?} should say {words:?}");
            assert!(
                !message.contains(token),
                "the token must not be echoed: {message}"
            );
        }

        #[test]
        fn roles_in_the_claim_grant_read_or_admin() {
            let read = hs(&claims(json!(["read"])));
            assert_eq!(check(&read, Role::Read), Ok(()));
            assert_eq!(
                check(&read, Role::Admin).map_err(|e| e.0),
                Err(StatusCode::FORBIDDEN)
            );
            let admin = hs(&claims(json!("openid admin")));
            assert_eq!(check(&admin, Role::Admin), Ok(()));
            assert_eq!(check(&admin, Role::Read), Ok(()));
            let none = hs(&claims(json!(["write"])));
            assert_eq!(
                check(&none, Role::Read).map_err(|e| e.0),
                Err(StatusCode::FORBIDDEN)
            );
            // Static tokens still work beside JWTs, and a JWT makes the API not open.
            assert!(access()
                .check(Some("Bearer static-read-0123456789"), Role::Read)
                .is_ok());
            assert!(!Access::default()
                .with_jwt(Jwt::new(options()).expect("keys"))
                .is_open());
        }

        #[test]
        fn rs256_and_es256_keys_come_from_the_jwks_by_kid() {
            let rsa = include_str!("../tests/keys/rsa.pem");
            let ec = include_str!("../tests/keys/ec.pem");
            let c = claims(json!(["admin"]));
            assert_eq!(
                check(&signed(Algorithm::RS256, Some("rsa-1"), rsa, &c), Role::Admin),
                Ok(())
            );
            assert_eq!(
                check(&signed(Algorithm::ES256, Some("ec-1"), ec, &c), Role::Admin),
                Ok(())
            );
            refused(
                &signed(Algorithm::RS256, Some("rsa-9"), rsa, &c),
                "unknown kid \"rsa-9\"",
            );
            refused(&signed(Algorithm::RS256, None, rsa, &c), "no \"kid\"");
            let other = include_str!("../tests/keys/rsa-other.pem");
            refused(
                &signed(Algorithm::RS256, Some("rsa-1"), other, &c),
                "bad signature",
            );
            // The EC key named with an RSA algorithm, the RSA key with PS256: pinned, refused.
            refused(
                &signed(Algorithm::RS256, Some("ec-1"), rsa, &c),
                "pinned to ES256",
            );
            refused(
                &signed(Algorithm::PS256, Some("rsa-1"), rsa, &c),
                "pinned to RS256",
            );
        }

        #[test]
        fn expiry_audience_issuer_signature_and_alg_none_are_401s_that_say_why() {
            let mut c = claims(json!(["read"]));
            c["exp"] = json!(get_current_timestamp() - 60);
            refused(&hs(&c), "expired");
            let mut c = claims(json!(["read"]));
            c["aud"] = json!("someone-else");
            refused(&hs(&c), "wrong audience");
            let mut c = claims(json!(["read"]));
            c.as_object_mut().expect("object").remove("aud");
            refused(&hs(&c), "lacks the required claim \"aud\"");
            let mut c = claims(json!(["read"]));
            c["iss"] = json!("https://evil.example");
            refused(&hs(&c), "wrong issuer");
            let mut c = claims(json!(["read"]));
            c["nbf"] = json!(get_current_timestamp() + 600);
            refused(&hs(&c), "not valid yet");
            let wrong = EncodingKey::from_secret(b"another-secret-another-secret-xx").expect("key");
            let t = encode(&Header::new(Algorithm::HS256), &claims(json!(["read"])), &wrong).expect("sign");
            refused(&t, "bad signature");
            // alg none: the header of an unsigned token, the payload of a valid one.
            let payload = hs(&claims(json!(["admin"])));
            let payload = payload.split('.').nth(1).expect("payload");
            refused(
                &format!("{}.{payload}.", base64_payload(r#"{"alg":"none","typ":"JWT"}"#)),
                "alg \"none\"",
            );
            // An RS256 public key used as an HS256 secret: the HS256 key is the secret only.
            let jwks: serde_json::Value =
                serde_json::from_str(include_str!("../tests/keys/jwks.json")).expect("jwks");
            let n = jwks["keys"][0]["n"].as_str().expect("n");
            let forged = EncodingKey::from_secret(n.as_bytes()).expect("key");
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rsa-1".into());
            let t = encode(&header, &claims(json!(["admin"])), &forged).expect("sign");
            refused(&t, "bad signature");
        }

        fn base64_payload(s: &str) -> String {
            // base64url without padding, enough for the short header above.
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
                for i in 0..=chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                }
            }
            out
        }

        #[test]
        fn bad_key_sets_are_refused_with_the_reason() {
            let err = |jwks: &str| {
                Jwt::new(JwtOptions {
                    jwks: Some(jwks.to_owned()),
                    ..options()
                })
                .expect_err(jwks)
            };
            assert!(err(r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#).contains("oct"));
            assert!(
                err(r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "", "y": ""}]}"#).contains("no \"kid\"")
            );
            assert!(err(r#"{"keys": []}"#).contains("no keys"));
            assert!(err("[]").contains("not a JWKS"));
            let short = Jwt::new(JwtOptions {
                hs256_secret: Some(b"short".to_vec()),
                ..options()
            })
            .expect_err("short");
            assert!(short.contains("at least 32 bytes"), "{short}");
            assert!(Jwt::new(JwtOptions {
                audience: String::new(),
                ..options()
            })
            .is_err());
            assert!(
                !format!("{:?}", options()).contains("0123456789abcdef"),
                "Debug must not print the secret"
            );
        }
    }
}
