//! JWT bearer tokens over real HTTP (ADR 0017): an HS256 read token reads but cannot pause, an
//! admin token can; expired, wrong audience, wrong key, `alg: none` and an unknown `kid` are
//! 401s that say why; RS256 and ES256 tokens verify against the committed JWKS file. The test
//! keys are pre-generated and committed under `tests/keys/` (see its README); the tokens are
//! signed here with `jsonwebtoken`'s encoder, an implementation independent of the checks.
//!
//! Also the OpenAPI document per mode: with tokens or JWTs every API operation requires the
//! bearer scheme, open (no tokens) none does.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use retail_core::{Health, Metrics, Shutdown};
use retail_serve::access::{Jwt, JwtOptions};
use retail_serve::{serve, Access, Controllable, ServeState};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::FakeLanding;

const SECRET: &[u8] = b"a-shared-secret-of-32-bytes-or-more";
const AUD: &str = "retail-api";
const STATUS: &str = "/api/v1/status";
const PAUSE: &str = "/api/v1/control/landing/pause";

struct Server {
    addr: SocketAddr,
    landing: Arc<FakeLanding>,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(access: Access) -> Server {
    let shutdown = Shutdown::new();
    let state = ServeState::new(Metrics::new(), Health::new(), access);
    let landing = Arc::new(FakeLanding::default());
    state.controls.register("landing", landing.clone());
    let (addr, _task) = serve("127.0.0.1:0".parse().expect("addr"), state, shutdown.clone())
        .await
        .expect("bind");
    Server {
        addr,
        landing,
        shutdown,
    }
}

fn jwt_access() -> Access {
    Access::default().with_jwt(
        Jwt::new(JwtOptions {
            hs256_secret: Some(SECRET.to_vec()),
            jwks: Some(include_str!("keys/jwks.json").to_owned()),
            audience: AUD.into(),
            issuer: None,
            role_claim: "roles".into(),
            leeway_secs: 0,
        })
        .expect("keys"),
    )
}

/// One request; the status and the JSON body.
async fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
    (code, body)
}

fn claims(roles: &[&str], exp_in: i64, aud: &str) -> Value {
    json!({
        "sub": "someone",
        "aud": aud,
        "exp": get_current_timestamp().saturating_add_signed(exp_in),
        "roles": roles,
    })
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("key"),
    )
    .expect("sign")
}

fn signed(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(include_bytes!("keys/ec.pem")),
        _ => EncodingKey::from_rsa_pem(include_bytes!("keys/rsa.pem")),
    }
    .expect("key");
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).expect("sign")
}

/// A 401 whose message says `why` and does not echo the token.
async fn refused(s: &Server, token: &str, why: &str) {
    let (code, body) = call(s.addr, "GET", STATUS, Some(token)).await;
    assert_eq!(code, 401, "{why}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains(why), "{message:?} should say {why:?}");
    assert!(!message.contains(token), "the token is echoed: {message}");
}

#[tokio::test]
async fn an_hs256_read_token_reads_and_only_an_admin_token_pauses() {
    let s = start(jwt_access()).await;
    let read = hs256(&claims(&["read"], 300, AUD), SECRET);
    let admin = hs256(&claims(&["admin"], 300, AUD), SECRET);
    assert_eq!(
        call(s.addr, "GET", STATUS, None).await.0,
        401,
        "a JWT config requires tokens"
    );
    assert_eq!(call(s.addr, "GET", STATUS, Some(&read)).await.0, 200);
    let (code, body) = call(s.addr, "POST", PAUSE, Some(&read)).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    assert!(!s.landing.is_paused());
    let (code, body) = call(s.addr, "POST", PAUSE, Some(&admin)).await;
    assert_eq!(code, 200, "{body}");
    assert!(s.landing.is_paused());
}

#[tokio::test]
async fn bad_jwts_are_401s_that_say_what_was_wrong() {
    let s = start(jwt_access()).await;
    refused(&s, &hs256(&claims(&["admin"], -60, AUD), SECRET), "expired").await;
    refused(
        &s,
        &hs256(&claims(&["admin"], 300, "other-api"), SECRET),
        "wrong audience",
    )
    .await;
    refused(
        &s,
        &hs256(
            &claims(&["admin"], 300, AUD),
            b"another-secret-of-32-bytes-or-more",
        ),
        "bad signature",
    )
    .await;
    // Unsigned: the header says alg none, the signature is empty.
    let valid = hs256(&claims(&["admin"], 300, AUD), SECRET);
    let payload = valid.split('.').nth(1).expect("payload");
    // {"alg":"none","typ":"JWT"} in base64url.
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    refused(&s, &none, "alg \"none\"").await;
    let rs = signed(Algorithm::RS256, "no-such-key", &claims(&["admin"], 300, AUD));
    refused(&s, &rs, "unknown kid").await;
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_the_jwks_file() {
    let s = start(jwt_access()).await;
    let rs = signed(Algorithm::RS256, "rsa-1", &claims(&["read"], 300, AUD));
    assert_eq!(call(s.addr, "GET", STATUS, Some(&rs)).await.0, 200);
    assert_eq!(call(s.addr, "POST", PAUSE, Some(&rs)).await.0, 403);
    let es = signed(Algorithm::ES256, "ec-1", &claims(&["admin"], 300, AUD));
    let (code, body) = call(s.addr, "POST", PAUSE, Some(&es)).await;
    assert_eq!(code, 200, "{body}");
    // The EC key's kid on an RS256 token: the key is pinned to ES256.
    let confused = signed(Algorithm::RS256, "ec-1", &claims(&["admin"], 300, AUD));
    refused(&s, &confused, "pinned to ES256").await;
}

#[tokio::test]
async fn the_document_requires_the_bearer_scheme_only_when_tokens_are_configured() {
    for (access, secured) in [
        (jwt_access(), true),
        (
            Access::new(vec!["read-token-0123456789".into()], Vec::new()),
            true,
        ),
        (Access::default(), false),
    ] {
        let s = start(access).await;
        let (code, doc) = call(s.addr, "GET", "/api/openapi.json", None).await;
        assert_eq!(code, 200);
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let security = op.get("security");
                assert_eq!(
                    security.is_some(),
                    secured,
                    "{method} {path}: security {security:?}"
                );
                assert_eq!(op["responses"].get("401").is_some(), secured, "{method} {path}");
            }
        }
    }
}
