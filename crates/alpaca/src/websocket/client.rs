//! The trade_updates connection loop.
//!
//! connect → authenticate → listen → REST backfill → read frames, with a
//! watchdog: we ping every third of the silence limit, and a socket that
//! delivers no frame at all (not even the pong) for the whole limit is
//! presumed dead and replaced. Reconnects back off exponentially (1 s to
//! 30 s). Until a connection's backfill has finished, [`StreamStatus::backfilled`]
//! is false, which `trading_blocks` reports and `submit` obeys.

use super::messages::{listen_message, AuthData, Authenticate, Incoming};
use super::parse::decode;
use crate::config::AlpacaConfig;
use crate::execution::Shared;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for the authorization and listening acknowledgements.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// What the stream task reports.
#[derive(Debug)]
pub struct StreamStatus {
    connects: AtomicU64,
    frames: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Since when no backfilled connection has been up; `None` exactly while
    /// the current connection is up and backfilled.
    down_since: Mutex<Option<Instant>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StreamStatus {
    /// Down from the start: nothing is backfilled before the first connection.
    fn new() -> Self {
        Self {
            connects: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            last_error: Mutex::new(None),
            down_since: Mutex::new(Some(Instant::now())),
            task: Mutex::new(None),
        }
    }

    fn down_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.down_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the current connection's REST backfill has completed.
    pub fn backfilled(&self) -> bool {
        self.down_since().is_none()
    }

    /// Successful connections so far (the first one included).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Why the last connection ended, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long the stream has been down (not connected, or not yet
    /// backfilled); `None` while it is up.
    pub fn down_for(&self) -> Option<Duration> {
        self.down_since().map(|t| t.elapsed())
    }

    /// Marks the stream down (keeping the start of an outage in progress).
    fn went_down(&self) {
        self.down_since().get_or_insert_with(Instant::now);
    }

    fn fail(&self, e: String) {
        self.went_down();
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    /// Stops the task (also done when the broker is dropped).
    pub fn stop(&self) {
        self.went_down();
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

/// Stops the stream task when the last broker handle goes away, so a new
/// worker's stream never fights an orphan for the key's single connection.
#[derive(Debug)]
pub(crate) struct StreamGuard(pub(crate) Arc<StreamStatus>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Starts the task; must be called inside a tokio runtime.
pub(crate) fn spawn(shared: Arc<Shared>, cfg: &AlpacaConfig) -> Arc<StreamStatus> {
    let status = Arc::new(StreamStatus::new());
    *shared.stream.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
    let url = cfg.stream_endpoint();
    let silence = Duration::from_secs(cfg.stream_silence_secs);
    let st = status.clone();
    let task = tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            let why = session(&shared, &url, silence, &st).await;
            st.fail(why.clone());
            if started.elapsed() >= STABLE {
                backoff = BACKOFF_MIN;
            }
            tracing::warn!(error = %why, retry_in = ?backoff, "alpaca trade_updates stream down; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    *status.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    status
}

fn payload(m: &Message) -> Option<&[u8]> {
    match m {
        Message::Text(t) => Some(t.as_bytes()),
        Message::Binary(b) => Some(b),
        _ => None,
    }
}

/// One connection, until it fails; returns why.
async fn session(shared: &Shared, url: &str, silence: Duration, st: &StreamStatus) -> String {
    let connect = tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(url)).await;
    let mut ws = match connect {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return format!("connect: {e}"),
        Err(_) => return "connect: timed out".into(),
    };
    let creds = shared.rest.credentials();
    let auth = Authenticate {
        action: "authenticate",
        data: AuthData {
            key_id: creds.key_id(),
            secret_key: creds.secret_key(),
        },
    };
    let auth = match serde_json::to_string(&auth) {
        Ok(a) => a,
        Err(e) => return format!("encoding authenticate: {e}"),
    };
    if let Err(e) = ws.send(Message::text(auth)).await {
        return format!("sending authenticate: {e}");
    }
    // Wait for authorization, then listen and wait for the acknowledgement.
    let mut listening_sent = false;
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return "no authorization/listening acknowledgement in time".into(),
            Ok(None) => return "closed during the handshake".into(),
            Ok(Some(Err(e))) => return format!("reading: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        st.frames.fetch_add(1, Ordering::Relaxed);
        let Some(bytes) = payload(&msg) else { continue };
        match decode(bytes) {
            Incoming::Authorized if !listening_sent => {
                if let Err(e) = ws.send(Message::text(listen_message())).await {
                    return format!("sending listen: {e}");
                }
                listening_sent = true;
            }
            Incoming::Unauthorized(why) => return format!("not authorized: {why}"),
            Incoming::Listening(s) if s.iter().any(|s| s == "trade_updates") => break,
            Incoming::Listening(_) => return "listening acknowledged without trade_updates".into(),
            _ => {}
        }
    }
    st.connects.fetch_add(1, Ordering::Relaxed);
    // Fills that happened while we were away exist only over REST.
    match shared.backfill().await {
        Ok(n) => tracing::info!(orders = n, "alpaca stream connected and backfilled"),
        Err(e) => return format!("backfill after connect: {e}"),
    }
    *st.down_since() = None;
    let ping_every = (silence / 3).max(Duration::from_millis(500));
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_frame = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if last_frame.elapsed() >= silence {
                    return format!("silent for {} s (watchdog)", silence.as_secs());
                }
                if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                    return format!("sending ping: {e}");
                }
            }
            msg = ws.next() => {
                let msg = match msg {
                    None => return "closed by the server".into(),
                    Some(Err(e)) => return format!("reading: {e}"),
                    Some(Ok(m)) => m,
                };
                last_frame = tokio::time::Instant::now();
                st.frames.fetch_add(1, Ordering::Relaxed);
                if let Message::Close(c) = &msg {
                    return format!("closed by the server ({c:?})");
                }
                let Some(bytes) = payload(&msg) else { continue };
                match decode(bytes) {
                    Incoming::Trade(u) => {
                        let gaps = {
                            let mut t = shared.tracker();
                            t.on_trade(&u, shared.clock.now());
                            !t.gaps().is_empty()
                        };
                        if gaps {
                            if let Err(e) = shared.fill_gaps().await {
                                tracing::warn!(error = %e, "attributing fills over REST failed; retried on the next event or lookup");
                            }
                        }
                    }
                    Incoming::BadTrade(e) => tracing::warn!(error = %e, "unreadable trade_updates payload ignored"),
                    Incoming::Unauthorized(why) => return format!("not authorized: {why}"),
                    _ => {}
                }
            }
        }
    }
}
