//! Serving connections with bounds: a header-read timeout, an idle timeout
//! and a connection limit.
//!
//! `axum::serve` keeps every accepted connection for as long as the client
//! likes: 2,000 idle sockets were never closed, and 20,000 made the control
//! API unreachable and took the file descriptors `keel run` needs for its
//! store and broker. Here each connection is served by hyper's HTTP/1 server
//! with a header-read timeout, watched by an idle timer (no byte read or
//! written for `idle_timeout` while no request is in flight: closed), and
//! counted against `max_connections`. At the limit a new connection is not
//! refused: the connection idle the longest is closed instead, so a flood of
//! idle or half-sent requests cannot lock an operator out of the control API,
//! and the number of open sockets stays at the limit.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Bounds on client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a connection may stay silent between requests.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// How long shutdown waits for in-flight requests before dropping connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One live connection as the accept loop sees it.
struct Live {
    /// Milliseconds since the server started at the last byte read or written.
    last_ms: AtomicU64,
    /// Requests being handled.
    busy: AtomicUsize,
    /// Wakes the connection's task to close it (evicted at the limit).
    evict: Notify,
}

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Live>>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn insert(&self, live: Arc<Live>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.conns.lock() {
            c.insert(id, live);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&id);
        }
    }

    /// Closes the connection idle the longest (not one handling a request);
    /// false when every connection is busy.
    fn evict_idlest(&self) -> bool {
        let Ok(mut c) = self.conns.lock() else {
            return false;
        };
        let victim = c
            .iter()
            .filter(|(_, l)| l.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, l)| l.last_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match victim.and_then(|id| c.remove(&id)) {
            Some(l) => {
                l.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A TCP stream that stamps its [`Live`] on every byte moved.
struct Tracked {
    inner: TcpStream,
    live: Arc<Live>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.live.last_ms.store(ms_since(self.epoch), Ordering::Relaxed);
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decrements the in-flight count when a request's future ends (or is dropped).
struct BusyGuard(Arc<Live>, Instant);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.last_ms.store(ms_since(self.1), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept errors (EMFILE above all) are logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` under `limits` until `shutdown`.
pub(crate) async fn serve_bounded<F>(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let registry = Arc::new(Registry::default());
    let epoch = Instant::now();
    let max = limits.max_connections.max(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let mut last_accept_error: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors (or a transient error): make room and
                // back off instead of spinning on a failing accept.
                if last_accept_error.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                    tracing::warn!(error = %e, open = registry.len(), "dashboard: accept failed; closing the idlest connection");
                    last_accept_error = Some(Instant::now());
                }
                registry.evict_idlest();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if registry.len() >= max && !registry.evict_idlest() {
            // Every slot is handling a request: this one waits its turn closed.
            drop(stream);
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let live = Arc::new(Live {
            last_ms: AtomicU64::new(ms_since(epoch)),
            busy: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        let id = registry.insert(live.clone());
        open.fetch_add(1, Ordering::SeqCst);
        let task = ConnTask {
            stream,
            live,
            epoch,
            app: app.clone(),
            limits,
            stop: stop_rx.clone(),
        };
        let (registry, open, drained) = (registry.clone(), open.clone(), drained.clone());
        tokio::spawn(async move {
            task.run().await;
            registry.remove(id);
            if open.fetch_sub(1, Ordering::SeqCst) == 1 {
                drained.notify_waiters();
            }
        });
    }
    let _ = stop_tx.send(true);
    let wait = async {
        while open.load(Ordering::SeqCst) > 0 {
            let n = drained.notified();
            if open.load(Ordering::SeqCst) == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), n).await;
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), wait).await;
    Ok(())
}

struct ConnTask {
    stream: TcpStream,
    live: Arc<Live>,
    epoch: Instant,
    app: Router,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
}

impl ConnTask {
    async fn run(self) {
        let ConnTask {
            stream,
            live,
            epoch,
            app,
            limits,
            mut stop,
        } = self;
        let io = TokioIo::new(Tracked {
            inner: stream,
            live: live.clone(),
            epoch,
        });
        let svc_live = live.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            svc_live.busy.fetch_add(1, Ordering::Relaxed);
            let guard = BusyGuard(svc_live.clone(), epoch);
            let mut app = app.clone();
            async move {
                let _guard = guard;
                use tower::Service as _;
                app.call(req).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        loop {
            let idle_deadline = {
                let last = Duration::from_millis(live.last_ms.load(Ordering::Relaxed));
                tokio::time::Instant::from_std(epoch + last + limits.idle_timeout)
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "dashboard connection ended with an error");
                    }
                    return;
                }
                () = live.evict.notified() => return,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                    return;
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    let silent = Duration::from_millis(ms_since(epoch).saturating_sub(live.last_ms.load(Ordering::Relaxed)));
                    if live.busy.load(Ordering::Relaxed) == 0 && silent >= limits.idle_timeout {
                        return;
                    }
                }
            }
        }
    }
}
