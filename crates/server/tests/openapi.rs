//! `openapi.json` documents exactly the routes the router mounts: every
//! route is in the spec, every spec operation is a route, and each one
//! answers (no 404/405) on a seeded store.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use keel_server::{router_with_table, ControlPort, RouteInfo, ServerConfig, OPENAPI_JSON};
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "spec-test-token-0123456789";

/// (METHOD, path, is control) for every operation in the spec.
fn spec_operations() -> BTreeSet<(String, String, bool)> {
    let spec: serde_json::Value =
        serde_json::from_str(OPENAPI_JSON).unwrap_or_else(|e| panic!("openapi.json is not JSON: {e}"));
    assert_eq!(spec["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let ops = item.as_object().cloned().unwrap_or_default();
        for (method, op) in ops {
            if !["get", "post", "put", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                continue;
            }
            assert!(op["responses"].is_object(), "{method} {path}: no responses");
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .map_or(vec![], |t| t.iter().filter_map(|x| x.as_str()).collect());
            let control = tags.contains(&"control");
            // Exactly the control operations require the bearer token.
            assert_eq!(
                op.get("security").is_some(),
                control,
                "{method} {path}: security vs control tag"
            );
            if control {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: 401 undocumented"
                );
            }
            out.insert((method.to_uppercase(), path.clone(), control));
        }
    }
    out
}

fn table_set(t: &[RouteInfo]) -> BTreeSet<(String, String, bool)> {
    t.iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.control))
        .collect()
}

#[tokio::test]
async fn spec_and_router_agree() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = common::open_store(dir.path()).await;
    let seeded = common::seed(store.as_ref()).await;
    let port: Arc<dyn ControlPort> = Arc::new(common::StoreControl { store: store.clone() });
    let cfg = ServerConfig {
        control_token: Some(TOKEN.into()),
        ..ServerConfig::default()
    };
    let (app, table) = router_with_table(store.clone(), Some(port), &cfg, None);
    let spec = spec_operations();
    let routes = table_set(&table);
    let missing_in_spec: Vec<_> = routes.difference(&spec).collect();
    let missing_in_router: Vec<_> = spec.difference(&routes).collect();
    assert!(
        missing_in_spec.is_empty(),
        "routes not in openapi.json: {missing_in_spec:?}"
    );
    assert!(
        missing_in_router.is_empty(),
        "openapi.json operations not routed: {missing_in_router:?}"
    );
    assert_eq!(table.len(), routes.len(), "a route is registered twice");

    // Without a token the router is the spec minus the control operations.
    let (_, read_only) = router_with_table(store.clone(), None, &ServerConfig::default(), None);
    let expect: BTreeSet<_> = spec.iter().filter(|r| !r.2).cloned().collect();
    assert_eq!(table_set(&read_only), expect);

    // Every documented operation answers on the real router.
    let cycle = seeded.cycles[0].replace('#', "%23");
    for (method, path, control) in &spec {
        let uri = path.replace("{cycle_id}", &cycle).replace("{day}", "2026-11-24");
        let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let mut req = Request::builder().method(m).uri(&uri);
        if *control {
            // Unauthenticated on purpose: 401 proves the route exists without acting.
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap_or_default())
            .await
            .unwrap_or_else(|e| match e {});
        let expect = if *control {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(resp.status(), expect, "{method} {uri}");
    }
}

#[tokio::test]
async fn served_spec_is_the_file() {
    let store = Arc::new(
        keel_store::SqliteStore::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let app = keel_server::router(store, None, &ServerConfig::default(), None);
    let resp = app
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(resp.status(), StatusCode::OK);
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap_or_default();
    assert_eq!(on_disk, OPENAPI_JSON);
}
