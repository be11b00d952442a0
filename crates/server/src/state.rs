//! State shared by every handler.

use crate::cache::Cache;
use crate::control::ControlPort;
use keel_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// One account the server shows, as every account's state sees it (for the
/// all-accounts view).
#[derive(Clone)]
pub struct Peer {
    /// The configured account id (empty for an unnamed single store).
    pub id: String,
    /// Where its dashboard lives: `/a/<id>`, or "" for the root.
    pub base: String,
    /// Its cache.
    pub cache: Arc<Cache>,
}

struct Inner {
    store: Arc<dyn Store>,
    peers: Arc<Vec<Peer>>,
    cache: Arc<Cache>,
    control: Option<Arc<dyn ControlPort>>,
    token_digest: Option<[u8; 32]>,
    metrics: Option<PrometheusHandle>,
    refresh_secs: u64,
    auth_failures: crate::control::AuthFailures,
    venue: String,
}

impl AppState {
    /// The state of one account: `cache` is its own, `peers` lists every
    /// account (itself included) for the all-accounts view; `token` is reduced
    /// to its digest at once so the plain token is not kept in memory longer
    /// than needed.
    #[allow(clippy::too_many_arguments)]
    pub fn with_cache(
        store: Arc<dyn Store>,
        cache: Arc<Cache>,
        peers: Arc<Vec<Peer>>,
        control: Option<Arc<dyn ControlPort>>,
        token: Option<&str>,
        metrics: Option<PrometheusHandle>,
        refresh_secs: u64,
        venue: String,
    ) -> Self {
        Self(Arc::new(Inner {
            cache,
            peers,
            store,
            control,
            token_digest: token.map(crate::control::token_digest),
            metrics,
            refresh_secs,
            auth_failures: crate::control::AuthFailures::default(),
            venue,
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Every account this server shows, in configuration order.
    pub fn peers(&self) -> &Arc<Vec<Peer>> {
        &self.0.peers
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
