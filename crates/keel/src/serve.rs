//! Wiring of the dashboard (keel-server) to the store and, when a control
//! token is configured, to the worker through [`ControlPort`].

use crate::commands::Env;
use crate::error::{input, CliError};
use anyhow::Context;
use async_trait::async_trait;
use keel_domain::{Clock, KillSource};
use keel_intake::IntakeConfig;
use keel_server::{ControlError, ControlPort, ServerConfig};
use keel_store::Store;
use keel_worker::{SubmitOutcome, Worker};
use std::future::Future;
use std::sync::Arc;

/// Control actions over the real worker; every one is audited by the worker's events.
pub struct WorkerControl {
    worker: Arc<Worker>,
    intake: IntakeConfig,
    clock: Arc<dyn Clock>,
}

impl WorkerControl {
    /// Control over `worker`, validating submitted sets with `intake`.
    pub fn new(worker: Arc<Worker>, intake: IntakeConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            worker,
            intake,
            clock,
        }
    }
}

#[async_trait]
impl ControlPort for WorkerControl {
    async fn engage_kill(&self, reason: &str) -> Result<(), ControlError> {
        self.worker
            .engage_kill(reason, KillSource::Http)
            .await
            .map_err(|e| ControlError::internal(e.to_string()))
    }

    async fn release_kill(&self, reason: &str) -> Result<bool, ControlError> {
        self.worker
            .release_kill(reason, KillSource::Http)
            .await
            .map_err(|e| ControlError::internal(e.to_string()))
    }

    async fn submit_target_set(
        &self,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<String, ControlError> {
        if content_type.is_some_and(|c| c.contains("csv")) {
            return Err(ControlError::bad_request(
                "CSV needs an id: send the JSON target-set format over HTTP",
            ));
        }
        let set = keel_intake::parse_json("http request body", body, &self.intake, self.clock.now())
            .map_err(|e| ControlError::bad_request(e.to_string()))?;
        let id = set.id.clone();
        match self.worker.submit_target_set(set).await {
            Ok(SubmitOutcome::Queued) => Ok(id),
            Ok(SubmitOutcome::AlreadyKnown(status)) => Err(ControlError {
                status: 409,
                message: format!("id = {id:?}: already submitted (status: {status}); nothing changed"),
            }),
            Err(e) => Err(ControlError::internal(e.to_string())),
        }
    }
}

/// The server settings: bind address from config, control token from the
/// `KEEL_CONTROL_TOKEN` environment variable or the file named in config.
pub fn server_config(env: &Env) -> Result<ServerConfig, CliError> {
    let s = &env.cfg.server;
    let bind = s.bind.parse().map_err(|e| {
        input(format!(
            "server.bind = {:?}: not an address like 127.0.0.1:8080 ({e})",
            s.bind
        ))
    })?;
    let env_token = std::env::var("KEEL_CONTROL_TOKEN").ok();
    let token = keel_server::load_control_token(env_token.as_deref(), s.control_token_file.as_deref())
        .map_err(|e| input(e.to_string()))?;
    Ok(ServerConfig {
        bind,
        control_token: token,
        refresh_secs: s.refresh_secs,
        venue: env.cfg.broker.mode().label().to_string(),
        allowed_hosts: s.allowed_hosts.clone(),
        limits: keel_server::ConnLimits {
            max_connections: usize::try_from(s.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: std::time::Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(s.idle_timeout_secs),
        },
    })
}

/// Serves the dashboard until `shutdown`; control routes only with a token and a worker.
pub async fn serve(
    env: &Env,
    store: Arc<dyn Store>,
    worker: Option<Arc<Worker>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let cfg = server_config(env)?;
    let control: Option<Arc<dyn ControlPort>> = match (&cfg.control_token, worker) {
        (Some(_), Some(w)) => Some(Arc::new(WorkerControl::new(
            w,
            env.cfg.intake.clone(),
            env.clock.clone(),
        ))),
        _ => None,
    };
    let metrics = match keel_server::install_metrics_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics serves store gauges only");
            None
        }
    };
    eprintln!(
        "keel: dashboard on http://{}/ (control API {})",
        cfg.bind,
        if control.is_some() { "on" } else { "off" }
    );
    keel_server::serve(cfg, store, control, metrics, shutdown)
        .await
        .context("dashboard server")?;
    Ok(())
}
