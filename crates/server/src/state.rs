//! State shared by every handler.

use crate::cache::Cache;
use crate::control::ControlPort;
use keel_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    cache: Arc<Cache>,
    control: Option<Arc<dyn ControlPort>>,
    token_digest: Option<[u8; 32]>,
    metrics: Option<PrometheusHandle>,
    refresh_secs: u64,
    venue: String,
    auth_failures: crate::control::AuthFailures,
}

impl AppState {
    /// Builds the state; `token` is reduced to its digest at once so the
    /// plain token is not kept in the server's memory longer than needed.
    pub fn new(
        store: Arc<dyn Store>,
        control: Option<Arc<dyn ControlPort>>,
        token: Option<&str>,
        metrics: Option<PrometheusHandle>,
        refresh_secs: u64,
        venue: String,
    ) -> Self {
        Self(Arc::new(Inner {
            cache: Arc::new(Cache::new(store.clone())),
            store,
            control,
            token_digest: token.map(crate::control::token_digest),
            metrics,
            refresh_secs,
            venue,
            auth_failures: crate::control::AuthFailures::default(),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The head-keyed cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.0.cache
    }

    /// The control port, when the control API is on.
    pub fn control(&self) -> Option<&Arc<dyn ControlPort>> {
        self.0.control.as_ref()
    }

    /// Digest of the control token, when one is configured.
    pub fn token_digest(&self) -> Option<&[u8; 32]> {
        self.0.token_digest.as_ref()
    }

    /// The Prometheus handle for worker-emitted metrics.
    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.0.metrics.as_ref()
    }

    /// Failed control-API authentications, for aggregated warnings.
    pub(crate) fn auth_failures(&self) -> &crate::control::AuthFailures {
        &self.0.auth_failures
    }

    /// Seconds between dashboard refreshes.
    pub fn refresh_secs(&self) -> u64 {
        self.0.refresh_secs
    }

    /// The venue mode shown on every page (`PAPER (embedded)`, `LIVE (alpaca)`, ...).
    pub fn venue(&self) -> &str {
        &self.0.venue
    }
}
