//! The server holds up (ADR 0016), over real sockets: a client that stops in the middle of a
//! request head is cut off, an idle keep-alive connection is closed, connections past the cap
//! wait until one closes, API bodies are bounded and API requests timed out (the live stream
//! and `/ingest` are not), and HTTPS from PEM files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_core::{Health, Metrics, Shutdown};
use retail_serve::{serve_with, Access, PipelineStatus, Probe, ServeOptions, ServeState, TlsConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::FakeSource;

const ADMIN: &str = "admin-token-0123456789";

struct Server {
    addr: SocketAddr,
    state: ServeState,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Server {
    /// Shuts down and waits for the server task: shutdown must end it.
    async fn stop(mut self) {
        self.shutdown.trigger();
        let task = self.task.take().expect("task");
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the server stops after shutdown")
            .expect("join")
            .expect("serve");
    }
}

async fn start(options: ServeOptions, access: Access) -> Server {
    let shutdown = Shutdown::new();
    let state = ServeState::new(Metrics::new(), Health::new(), access);
    let (addr, task) = serve_with(
        "127.0.0.1:0".parse().expect("addr"),
        state.clone(),
        options,
        shutdown.clone(),
    )
    .await
    .expect("bind");
    Server {
        addr,
        state,
        shutdown,
        task: Some(task),
    }
}

fn options() -> ServeOptions {
    ServeOptions::default()
}

/// Reads one response (head and a `content-length` body) from a keep-alive connection.
async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.expect("read head");
        assert!(
            n > 0,
            "connection closed mid-head: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("read body");
    (code, format!("{head}{}", String::from_utf8_lossy(&body)))
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
}

/// Waits up to `within` for the server to close `s`; returns when it did.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Instant> {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn half_a_request_head_is_cut_off_after_the_header_timeout() {
    let server = start(
        ServeOptions {
            header_read_timeout: Duration::from_millis(400),
            idle_timeout: Duration::from_secs(30),
            ..options()
        },
        Access::default(),
    )
    .await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let sent = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("write");
    let closed = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("a half-sent head is closed after the header timeout, not held");
    let after = closed - sent;
    assert!(after >= Duration::from_millis(350), "closed too early: {after:?}");

    // A client that says nothing at all gets the same header timeout from its accept.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await.is_some());

    // A whole head in time is answered.
    let mut ok = TcpStream::connect(server.addr).await.expect("connect");
    send(&mut ok, "/health").await;
    assert_eq!(read_response(&mut ok).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_the_header_timeout_does_not_run_while_idle() {
    let server = start(
        ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(1500),
            ..options()
        },
        Access::default(),
    )
    .await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    send(&mut s, "/health").await;
    assert_eq!(read_response(&mut s).await.0, 200);
    // Silent for longer than the header timeout but within the idle timeout: still open, and
    // the next request is answered (hyper's own header timer would have closed it by now).
    tokio::time::sleep(Duration::from_millis(700)).await;
    send(&mut s, "/health").await;
    assert_eq!(read_response(&mut s).await.0, 200);
    let answered = Instant::now();
    let closed = closed_within(&mut s, Duration::from_secs(6))
        .await
        .expect("an idle keep-alive connection is closed after the idle timeout");
    let after = closed - answered;
    assert!(
        after >= Duration::from_millis(1300),
        "closed before the idle timeout: {after:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_past_the_cap_waits_until_one_closes() {
    let server = start(
        ServeOptions {
            max_connections: 2,
            ..options()
        },
        Access::default(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        send(&mut s, "/health").await;
        assert_eq!(read_response(&mut s).await.0, 200);
        held.push(s);
    }
    // The third connects (the kernel's backlog takes it) but is not served.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    send(&mut third, "/health").await;
    let mut nothing = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(800), third.read(&mut nothing)).await;
    assert!(
        waited.is_err(),
        "the connection past the cap was served: {waited:?}"
    );
    // One held connection closes: the third is served.
    drop(held.remove(0));
    let (code, _) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third))
        .await
        .expect("served once a slot freed");
    assert_eq!(code, 200);
    drop(held);
    server.stop().await;
}

/// A source control whose rate setting is reachable, for a body to send it.
fn with_source(server: &Server) {
    server
        .state
        .controls
        .register("gen".to_owned(), Arc::new(FakeSource::default()));
}

async fn send_body(addr: SocketAddr, method: &str, path: &str, body: &[u8], chunked: bool) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n"
    )
    .into_bytes();
    if chunked {
        req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        req.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
    }
    // The server may answer 413 and close before reading all of it.
    let _ = s.write_all(&req).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {out:?}"));
    (code, out)
}

#[tokio::test]
async fn a_body_too_large_for_the_api_is_413_but_ingest_keeps_its_own_limit() {
    let server = start(options(), Access::new(Vec::new(), vec![ADMIN.to_owned()])).await;
    with_source(&server);
    let rate = "/api/v1/control/sources/gen/rate";
    // A real rate body is answered.
    let (code, out) = send_body(server.addr, "PUT", rate, br#"{"rate": 5}"#, false).await;
    assert_eq!(code, 200, "{out}");
    // 100 KiB, declared: 413 before it is read, the API's error body naming the body.
    let mut big = br#"{"rate": 5, "pad": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 100 * 1024));
    big.extend_from_slice(br#""}"#);
    let (code, out) = send_body(server.addr, "PUT", rate, &big, false).await;
    assert_eq!(code, 413, "{out}");
    assert!(
        out.contains(r#""code":"too_large""#) && out.contains(r#""parameter":"body""#),
        "{out}"
    );
    // The same, chunked (no length up front): cut where the handler reads it.
    let (code, out) = send_body(server.addr, "PUT", rate, &big, true).await;
    assert_eq!(code, 413, "{out}");
    // Resubmitting a dead letter is bounded the same way.
    let (code, out) = send_body(
        server.addr,
        "POST",
        "/api/v1/dead-letters/1/resubmit",
        &big,
        false,
    )
    .await;
    assert_eq!(code, 413, "{out}");

    // /ingest is the webhook's: its own 1 MiB limit here, not the API's.
    let ingest = axum::Router::new()
        .route(
            "/ingest/hook",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024));
    server.state.set_ingest(ingest);
    let (code, out) = send_body(server.addr, "POST", "/ingest/hook", &big, false).await;
    assert_eq!(code, 200, "{out}");
    assert!(out.ends_with(&big.len().to_string()), "{out}");
    server.stop().await;
}

/// A pipeline report that never comes.
#[derive(Debug)]
struct StuckProbe;

#[async_trait]
impl Probe for StuckProbe {
    async fn status(&self) -> PipelineStatus {
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_api_request_past_the_request_timeout_is_503_but_the_live_stream_stays_open() {
    let server = start(
        ServeOptions {
            request_timeout: Duration::from_millis(300),
            ..options()
        },
        Access::default(),
    )
    .await;
    server.state.set_probe(Arc::new(StuckProbe));
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let asked = Instant::now();
    send(&mut s, "/api/v1/status").await;
    let (code, out) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s))
        .await
        .expect("answered at the request timeout, not held");
    assert_eq!(code, 503, "{out}");
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "{:?}",
        asked.elapsed()
    );
    assert!(out.to_ascii_lowercase().contains("retry-after: 1"), "{out}");
    assert!(out.contains("request_timeout_ms"), "{out}");

    // The live stream runs far past the request timeout: three snapshots take over a second.
    let mut live = TcpStream::connect(server.addr).await.expect("connect");
    send(&mut live, "/api/v1/live").await;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while seen.matches("event: snapshot").count() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(5), live.read(&mut buf))
            .await
            .expect("the stream keeps sending")
            .expect("read");
        assert!(n > 0, "the stream was closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        started.elapsed() > Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    drop(live);
    server.stop().await;
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM files.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("rcgen");
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    (cert, key, cert_pem)
}

#[tokio::test]
async fn https_round_trip_and_plain_http_to_the_tls_port_fails() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, cert_pem) = self_signed(dir.path());
    let tls = TlsConfig::from_pem_files(&cert, &key).expect("load the PEM files");
    let server = start(
        ServeOptions {
            tls: Some(tls),
            ..options()
        },
        Access::default(),
    )
    .await;

    // rustls client trusting only that certificate.
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert"))
        .expect("root");
    let client =
        ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut s = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with the configured certificate");
    send(&mut s, "/health").await;
    let (code, out) = read_response(&mut s).await;
    assert_eq!(code, 200, "{out}");
    assert!(out.contains(r#""status":"ok""#), "{out}");
    // And keep-alive over TLS: a second request on the same connection.
    send(&mut s, "/api/openapi.json").await;
    assert_eq!(read_response(&mut s).await.0, 200);

    // curl, a client of its own, verifying against the certificate.
    let port = server.addr.port();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/health"))
            .output()
    })
    .await
    .expect("join");
    match out {
        Ok(out) => {
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "curl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(body.contains(r#""status":"ok""#), "{body}");
        }
        // No curl on this machine: the rustls client above is the proof.
        Err(e) => eprintln!("curl not run: {e}"),
    }

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    send(&mut plain, "/health").await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server must close a plain-HTTP connection");
    assert!(
        !String::from_utf8_lossy(&out).contains("200 OK"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&out)
    );
    server.stop().await;
}

#[test]
fn tls_files_that_are_missing_or_wrong_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, _) = self_signed(dir.path());
    let missing = dir.path().join("nope.pem");
    let e = TlsConfig::from_pem_files(&missing, &key).expect_err("missing cert");
    assert_eq!(e.key, "cert");
    assert!(e.to_string().contains("nope.pem"), "{e}");
    // The key where the certificate should be, and the other way round.
    let e = TlsConfig::from_pem_files(&key, &key).expect_err("a key is no certificate");
    assert_eq!(e.key, "cert", "{e}");
    let e = TlsConfig::from_pem_files(&cert, &cert).expect_err("a certificate is no key");
    assert_eq!(e.key, "key", "{e}");
    // A key of another certificate.
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_key, _) = self_signed(other.path());
    let e = TlsConfig::from_pem_files(&cert, &other_key).expect_err("a key that does not match");
    assert_eq!(e.key, "key", "{e}");
}
