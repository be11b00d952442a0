//! Security properties: the control API needs the exact token and changes
//! nothing without it; the read-only routes refuse every other method; data
//! is never rendered into HTML by the server; secrets never leak.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{seed, StoreControl, HOSTILE};
use http_body_util::BodyExt;
use keel_server::{router_with_table, ControlPort, ServerConfig};
use keel_store::{SqliteStore, Store};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "correct-horse-battery-staple-42";

async fn setup(
    token: Option<&str>,
    with_port: bool,
) -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    axum::Router,
    Vec<keel_server::RouteInfo>,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = common::open_store(dir.path()).await;
    seed(store.as_ref()).await;
    let port: Option<Arc<dyn ControlPort>> = if with_port {
        Some(Arc::new(StoreControl { store: store.clone() }))
    } else {
        None
    };
    let cfg = ServerConfig {
        control_token: token.map(str::to_string),
        ..ServerConfig::default()
    };
    let (app, table) = router_with_table(store.clone(), port, &cfg, None);
    (dir, store, app, table)
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap_or_default())
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn target_set_json(id: &str) -> String {
    serde_json::json!({
        "id": id, "as_of": "2026-01-12T15:00:00Z", "valid_until": null,
        "targets": [{"symbol": "AAPL", "weight": "0.1"}], "liquidate": false
    })
    .to_string()
}

/// Every control route, with a valid body.
fn control_calls() -> Vec<(&'static str, String)> {
    vec![
        (
            "/api/v1/control/kill",
            r#"{"reason":"operator test"}"#.to_string(),
        ),
        (
            "/api/v1/control/resume",
            r#"{"reason":"operator test"}"#.to_string(),
        ),
        ("/api/v1/control/target-sets", target_set_json("http-set-1")),
    ]
}

#[tokio::test]
async fn control_without_or_with_wrong_token_is_401_and_changes_nothing() {
    let (_dir, store, app, _) = setup(Some(TOKEN), true).await;
    let head = store.audit_head().await.unwrap_or_default();
    let kill = store.kill_switch().await.unwrap_or_default();
    let wrong = [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some(format!("Token {TOKEN}")),
    ];
    for (uri, body) in control_calls() {
        for auth in &wrong {
            let (status, headers, text) = call(&app, Method::POST, uri, auth.as_deref(), &body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with {auth:?}: {text}");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
            assert!(!text.contains(TOKEN), "the token leaked into a response");
        }
    }
    assert_eq!(
        store.audit_head().await.unwrap_or_default(),
        head,
        "a rejected request changed the audit log"
    );
    assert_eq!(store.kill_switch().await.unwrap_or_default(), kill);
}

#[tokio::test]
async fn control_with_token_acts_through_the_port_and_is_audited() {
    let (_dir, store, app, _) = setup(Some(TOKEN), true).await;
    let bearer = format!("Bearer {TOKEN}");
    let (seq0, _) = store.audit_head().await.unwrap_or_default();

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/api/v1/control/resume",
        Some(&bearer),
        r#"{"reason":"checked the loss"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"released\":true"));
    assert!(store.kill_switch().await.unwrap_or_default().is_none());

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/api/v1/control/kill",
        Some(&bearer),
        r#"{"reason":"manual stop"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let k = store.kill_switch().await.unwrap_or_default();
    assert_eq!(
        k.map(|k| (k.reason, k.source)),
        Some(("manual stop".to_string(), keel_domain::KillSource::Http))
    );

    let (status, _, body) = call(
        &app,
        Method::POST,
        "/api/v1/control/target-sets",
        Some(&bearer),
        &target_set_json("http-set-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains("http-set-1"));
    // The port's error status and message come through (a replay is a conflict).
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/api/v1/control/target-sets",
        Some(&bearer),
        &target_set_json("http-set-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Every successful action is one audit row.
    let (seq1, _) = store.audit_head().await.unwrap_or_default();
    assert_eq!(seq1, seq0 + 3);
    let rows = store.audit_page(seq0, 10).await.unwrap_or_default();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["kill_switch_released", "kill_switch_engaged", "target_set_queued"]
    );

    // Bad input is refused before the port is called.
    for body in [
        "",
        "{}",
        r#"{"reason":""}"#,
        r#"{"reason":"x","force":true}"#,
        "reason=x",
    ] {
        let (status, _, _) = call(&app, Method::POST, "/api/v1/control/kill", Some(&bearer), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/control/target-sets",
        Some(&bearer),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = "x".repeat(keel_server::MAX_CONTROL_BODY + 1);
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/control/target-sets",
        Some(&bearer),
        &huge,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(store.audit_head().await.map(|h| h.0).unwrap_or_default(), seq1);
}

#[tokio::test]
async fn control_api_is_absent_without_a_token() {
    for (token, port) in [(None, true), (Some(""), true), (Some(TOKEN), false)] {
        let (_dir, store, app, table) = setup(token, port).await;
        assert!(table.iter().all(|r| !r.control), "{token:?} {port}");
        let head = store.audit_head().await.unwrap_or_default();
        for (uri, body) in control_calls() {
            let (status, _, _) = call(&app, Method::POST, uri, Some(&format!("Bearer {TOKEN}")), &body).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{uri} with token {token:?}, port {port}"
            );
        }
        assert_eq!(store.audit_head().await.unwrap_or_default(), head);
    }
}

#[tokio::test]
async fn read_only_routes_reject_other_methods() {
    let (_dir, store, app, table) = setup(Some(TOKEN), true).await;
    let head = store.audit_head().await.unwrap_or_default();
    let read: Vec<_> = table.iter().filter(|r| !r.control).collect();
    assert!(read.len() > 20);
    for r in read {
        assert_eq!(r.method, "GET", "{r:?}: read-only routes are GET only");
        let uri = r
            .path
            .replace("{cycle_id}", "alloc-2026-01-05%230")
            .replace("{day}", "2026-01-05");
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            // Even with the right token: the token opens the control routes only.
            let (status, _, _) = call(&app, m.clone(), &uri, Some(&format!("Bearer {TOKEN}")), "{}").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
        }
        let (status, _, _) = call(&app, Method::GET, &uri, None, "").await;
        assert_eq!(status, StatusCode::OK, "GET {uri}");
    }
    // Control routes are POST only.
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/api/v1/control/kill",
        Some(&format!("Bearer {TOKEN}")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(store.audit_head().await.unwrap_or_default(), head);
}

#[tokio::test]
async fn server_never_renders_data_into_html() {
    let (_dir, _store, app, table) = setup(None, false).await;
    for r in table
        .iter()
        .filter(|r| !r.path.starts_with("/api") && !r.path.starts_with("/assets") && r.path != "/metrics")
    {
        let (status, headers, html) = call(&app, Method::GET, r.path, None, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html"));
        assert!(!html.contains("pwned"), "{}: store data in server HTML", r.path);
        assert!(!html.contains("<script>"), "{}: inline script", r.path);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    }
    // The API carries the markup as JSON string data, labelled as JSON.
    let (status, headers, body) = call(&app, Method::GET, "/api/v1/overview", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(
        v["kill_switch"]["reason"].as_str(),
        Some(format!("daily loss limit {HOSTILE}").as_str())
    );
    // Query values echoed in errors stay inside JSON.
    let (status, headers, _) = call(&app, Method::GET, "/api/v1/orders?symbol=%3Cscript%3E", None, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn token_is_never_in_debug_output() {
    let cfg = ServerConfig {
        control_token: Some(TOKEN.to_string()),
        ..ServerConfig::default()
    };
    let s = format!("{cfg:?}");
    assert!(!s.contains(TOKEN), "{s}");
    assert!(s.contains("redacted"));
    assert_eq!(cfg.bind.to_string(), "127.0.0.1:8080");
}

#[tokio::test]
async fn default_bind_is_loopback_and_serve_shuts_down() {
    assert!(ServerConfig::default().bind.ip().is_loopback());
    // Serving on an ephemeral loopback port and shutting down cleanly.
    let store = Arc::new(
        SqliteStore::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keel_server::serve_listener(
        listener,
        ServerConfig::default(),
        store,
        None,
        None,
        async {
            let _ = rx.await;
        },
    ));
    let _ = tx.send(());
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
}
