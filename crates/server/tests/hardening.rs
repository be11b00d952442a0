//! HTTP hardening on real sockets: a bounded slowloris flood leaves the
//! control API and the dashboard answering and its connections get closed;
//! the Host allowlist; control-token rules.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::StoreControl;
use keel_server::{load_control_token, router, ConnLimits, ControlPort, ServerConfig, TokenError};
use keel_store::Store;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const TOKEN: &str = "correct-horse-battery-staple-42";

/// Raises the soft descriptor limit to the hard one; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        let want = rl.rlim_max.min(65_536);
        if rl.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                rl.rlim_cur = want;
            }
        }
    }
    rl.rlim_cur as u64
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// One HTTP/1.1 request on a fresh connection; (status, elapsed).
fn request(addr: SocketAddr, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, Duration) {
    let t0 = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        panic!("write: {e}");
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_flood_leaves_the_control_api_answering_and_is_closed_after_the_timeout() {
    let limit = raise_nofile();
    // ~2,500 attacker sockets, fewer when the hard limit is low (the server's
    // own descriptors and the test's need room).
    let n = 2_500usize.min(limit.saturating_sub(600) as usize);
    assert!(n >= 500, "RLIMIT_NOFILE too low for a meaningful flood: {limit}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = common::open_store(dir.path()).await;
    let port: Arc<dyn ControlPort> = Arc::new(StoreControl { store: store.clone() });
    let max_connections = 128;
    let cfg = ServerConfig {
        control_token: Some(TOKEN.into()),
        limits: ConnLimits {
            max_connections,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
        },
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keel_server::serve_listener(
        listener,
        cfg,
        store.clone(),
        Some(port),
        None,
        async {
            let _ = rx.await;
        },
    ));
    let fds_before = open_fds();

    let report = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        // Half the sockets say nothing; half send a request head that never ends.
        let mut held = Vec::with_capacity(n);
        let mut answers = Vec::new();
        for i in 0..n {
            if i % 500 == 250 {
                // Mid-flood, with hundreds of attacker sockets open.
                answers.push((
                    "GET /api/v1/health mid-flood",
                    request(addr, "GET", "/api/v1/health", "", None),
                ));
            }
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(mut s) => {
                    if i % 2 == 1 {
                        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
                    }
                    held.push(s);
                }
                Err(e) => panic!("attacker connect {i}: {e}"),
            }
        }
        let flood_secs = t0.elapsed().as_secs_f64();
        // While every attacker socket is still open on our side: the control
        // API and the dashboard answer, promptly.
        for _ in 0..5 {
            answers.push((
                "GET /api/v1/health",
                request(addr, "GET", "/api/v1/health", "", None),
            ));
            answers.push(("GET /", request(addr, "GET", "/", "", None)));
        }
        answers.push((
            "POST /api/v1/control/kill",
            request(
                addr,
                "POST",
                "/api/v1/control/kill",
                r#"{"reason":"slowloris drill"}"#,
                Some(TOKEN),
            ),
        ));
        let fds_during = open_fds();
        // Then every attacker connection is closed by the server within the
        // timeouts (plus scheduling slack), without any client action.
        for s in &held {
            let _ = s.set_nonblocking(true);
        }
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut open = held.len();
        let mut one = [0u8; 64];
        while open > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            open = held
                .iter_mut()
                .filter(|s| match (&**s).read(&mut one) {
                    Ok(0) => false,
                    Ok(_) => true, // an error response is not a close; keep polling
                    Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                    Err(_) => false,
                })
                .count();
        }
        (flood_secs, answers, fds_during, open, t0.elapsed())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (flood_secs, answers, fds_during, still_open, total) = report;
    eprintln!(
        "{n} attacker connections opened in {flood_secs:.2}s; fds before {fds_before}, during {fds_during}; \
         still open at the end: {still_open}; total {:.1}s",
        total.as_secs_f64()
    );
    for (what, (status, took)) in &answers {
        eprintln!("{what}: {status} in {} ms", took.as_millis());
        assert_eq!(*status, 200, "{what} answered {status} during the flood");
        assert!(
            *took < Duration::from_secs(2),
            "{what} took {took:?} during the flood"
        );
    }
    // The server holds at most its limit of sockets: the process has the n
    // client sockets, the server's (bounded) share, and a few of its own.
    assert!(
        fds_during <= fds_before + n + max_connections + 64,
        "server descriptors unbounded: {fds_during} open with {n} attackers and a limit of {max_connections}"
    );
    assert_eq!(
        still_open, 0,
        "idle / half-sent connections were not closed after the timeout"
    );
    assert!(
        store.kill_switch().await.ok().flatten().is_some(),
        "the kill request during the flood took effect"
    );
    let _ = tx.send(());
    let r = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "server did not shut down: {r:?}");
}

async fn status_for_host(cfg: &ServerConfig, host: Option<&str>) -> StatusCode {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = common::open_store(dir.path()).await;
    let app = router(store, None, cfg, None);
    let mut req = Request::get("/api/v1/health");
    if let Some(h) = host {
        req = req.header(header::HOST, h);
    }
    let req = req.body(Body::empty()).unwrap_or_else(|e| panic!("{e}"));
    match app.oneshot(req).await {
        Ok(r) => r.status(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn host_header_allowlist_refuses_rebinding() {
    let default = ServerConfig::default();
    for ok in [
        "127.0.0.1:8080",
        "localhost:8080",
        "LOCALHOST",
        "[::1]:8080",
        "127.0.0.1",
    ] {
        assert_eq!(status_for_host(&default, Some(ok)).await, StatusCode::OK, "{ok}");
    }
    for bad in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "attacker.localhost.example",
    ] {
        assert_eq!(
            status_for_host(&default, Some(bad)).await,
            StatusCode::MISDIRECTED_REQUEST,
            "{bad}"
        );
    }
    let custom = ServerConfig {
        allowed_hosts: vec!["keel.internal".into()],
        ..ServerConfig::default()
    };
    assert_eq!(
        status_for_host(&custom, Some("keel.internal:443")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_for_host(&custom, Some("localhost")).await,
        StatusCode::MISDIRECTED_REQUEST,
        "a configured list replaces the defaults"
    );
}

#[test]
fn control_token_rules() {
    // From the environment.
    assert!(matches!(
        load_control_token(Some("short"), None),
        Err(TokenError::TooShort { len: 5, .. })
    ));
    assert_eq!(
        load_control_token(Some("  0123456789abcdef  "), None)
            .ok()
            .flatten()
            .as_deref(),
        Some("0123456789abcdef")
    );
    assert_eq!(load_control_token(None, None), Ok(None));
    assert_eq!(
        load_control_token(Some("   "), None),
        Ok(None),
        "blank env = unset"
    );

    // From a file.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = dir.path().join("token");
    let write = |text: &str, mode: u32| {
        std::fs::write(&f, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
    };
    write(&format!("{TOKEN}\n"), 0o600);
    assert_eq!(
        load_control_token(None, Some(&f)).ok().flatten().as_deref(),
        Some(TOKEN)
    );
    for mode in [0o640, 0o604, 0o644, 0o660] {
        write(TOKEN, mode);
        let e = load_control_token(None, Some(&f));
        assert!(
            matches!(e, Err(TokenError::Exposed { .. })),
            "mode {mode:o}: {e:?}"
        );
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!msg.contains(TOKEN), "the token leaked into the error: {msg}");
    }
    write("short-token\n", 0o600);
    let e = load_control_token(None, Some(&f));
    assert!(matches!(e, Err(TokenError::TooShort { len: 11, .. })), "{e:?}");
    assert!(!e
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("short-token"));
    // The environment wins over the file, and must be long enough itself.
    assert!(matches!(
        load_control_token(Some("tiny"), Some(&f)),
        Err(TokenError::TooShort { .. })
    ));
    assert!(matches!(
        load_control_token(None, Some(dir.path())),
        Err(TokenError::Unreadable { .. })
    ));
}
