//! The mTLS HTTP API, version 1 (`docs/openapi.yaml`).
//!
//! ## Connections
//!
//! One TCP listener. The accept loop never waits for a free slot, so a flood
//! cannot keep a legitimate court out:
//!
//! 1. **Handshake budget.** A new connection gets a handshake slot at once. At
//!    most `max_handshakes` handshakes are under way (and at most a quarter of
//!    them from one address); when the budget is full, the oldest pending
//!    handshake (of that address, else overall) is dropped to make room. Every
//!    handshake must also finish within `handshake_timeout`. Idle TCP
//!    connections therefore cost nothing but churn.
//! 2. **Identity.** The client certificate (checked by rustls against the
//!    exchange CA and the CRLs) is mapped to exactly one peer
//!    ([`crate::transport::tls::identify`]) — or the connection is closed with nothing said.
//! 3. **Authenticated budget.** At most `max_connections` authenticated
//!    connections in all and `max_connections_per_peer` serving requests per
//!    peer. A connection over either budget is answered `503
//!    too-many-connections` and closed. A connection whose last answer is
//!    written (it only closes now, point 6) leaves its peer's serving share
//!    for a closing share of the same size, so that a client that closes and
//!    reconnects at once (no keep-alive) is not refused for a connection it
//!    has finished with; when that share is full it stays in the serving one.
//! 4. **Revocation reaches open connections.** Every authenticated connection
//!    is registered with its certificate chain. After a reload (SIGHUP, a CRL
//!    file replaced) each is checked again against the new CRLs and peer
//!    directory; one that no longer passes is closed at once, a long-poll
//!    included.
//! 5. **Bodies must keep moving.** A request body must arrive at an average of
//!    at least `min_body_rate` bytes per second after a grace of
//!    `body_timeout` (Apache's `mod_reqtimeout` MinRate rule), so a slow upload
//!    cannot hold a connection for as long as the size limit would allow.
//!    Request heads have `header_timeout` and a size cap.
//! 6. **Early answers are not lost.** An answer given before the request's
//!    body was read (`403`, `404`, `413`, ...) ends the connection; it is then
//!    half-closed and what the client still sends is read and thrown away, a
//!    few MiB and a few seconds at most, before the socket is closed, so that
//!    the client's kernel is not sent a reset that would destroy the answer
//!    ([`linger`], nginx's `lingering_close`). The connection keeps its place
//!    in the node's budget of point 3 meanwhile, and in its peer's (closing
//!    or serving) share, so one peer lingers at most twice its share's worth
//!    of connections. (The `503` of point 3 does not
//!    linger: the client is told to retry anyway, and an unbudgeted
//!    connection should not be held.)
//!
//! ## Requests
//!
//! Every request acts for the connection's peer only: another peer's bundle and
//! a missing bundle are the same 404. Errors are RFC 9457 problem details with
//! a stable `code` ([`PROBLEM_CODES`] lists every one the server sends).
//!
//! ## Files
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | [`Api`], the accept loop ([`serve`]) and each connection's life |
//! | `budget.rs` | the handshake and authenticated-connection budgets |
//! | `routes.rs` | paths and methods to handlers (a `matchit` router), `404` and `405` |
//! | `bundles.rs` | listing, download (with `Range`) and receipts of this node's bundles |
//! | `uploads.rs` | bundles pushed to this node and applications submitted to it |
//! | `body.rs` | request bodies: length, free room, size limit and minimum rate |
//! | `linger.rs` | the lingering close after the last answer |
//! | `problems.rs` | problem documents and JSON answers |

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerLimits as Limits;
use crate::outbox::{Outbox, OutboxError};
use crate::status::Counters;
use crate::transport::tls::{identify, Live, Shared};

mod body;
mod budget;
mod bundles;
mod cases;
mod linger;
mod problems;
mod routes;
mod uploads;

use budget::{Busy, Pending, Registry, Ticket};
pub use bundles::ListQuery;
use problems::problem;
pub use problems::PROBLEM_CODES;
pub use routes::{resolve, Answer, Resolved};

/// What request handlers need.
#[derive(Debug)]
pub struct Api {
    /// The configuration in force (replaced whole by a reload).
    pub live: Shared<Live>,
    /// The outbox.
    pub outbox: Outbox,
    /// Limits.
    pub limits: Limits,
    /// The node's intake, for applications uploaded online (one intake for
    /// the watched folder and the API; without it each upload prepares its own).
    pub intake: Option<Arc<crate::intake::Intake>>,
    /// Downloads per peer, intake outcomes (read by the metrics).
    pub counters: Counters,
    /// The committee's casework (case views, court events), if this node keeps cases.
    pub casework: Option<crate::followup::casework::Casework>,
    /// The node's audit log.
    pub audit: Option<crate::audit::Audit>,
    connections: Arc<Registry>,
}

impl Api {
    /// From the live configuration and an open outbox.
    pub fn new(live: Shared<Live>, outbox: Outbox, limits: Limits) -> Self {
        Self {
            live,
            outbox,
            limits,
            intake: None,
            counters: Counters::default(),
            casework: None,
            audit: None,
            connections: Arc::new(Registry::default()),
        }
    }

    /// Uses the node's intake for online uploads and counts into `counters`.
    #[must_use]
    pub fn with_node(
        mut self,
        intake: Option<Arc<crate::intake::Intake>>,
        counters: Counters,
    ) -> Self {
        self.intake = intake;
        self.counters = counters;
        self
    }

    /// Serves case views and takes court events through `casework`.
    #[must_use]
    pub fn with_casework(mut self, casework: Option<crate::followup::casework::Casework>) -> Self {
        self.casework = casework;
        self
    }

    /// Records pushed bundles taken in (`bundle-received`) in `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Puts a reloaded configuration in force: new handshakes and requests use
    /// it, and every open connection whose certificate it no longer admits
    /// (revoked, or its peer removed from the directory) is closed. Returns how
    /// many were closed.
    pub fn reload(&self, next: Live) -> usize {
        let next = Arc::new(next);
        self.live.swap(next.clone());
        self.connections.revalidate(&next)
    }

    /// Authenticated connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.total()
    }
}

type ResBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

// ------------------------------------------------------------------ serving

/// Serves until `shutdown` is cancelled, then stops accepting and lets open
/// connections finish their current request (hyper graceful shutdown).
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: CancellationToken) {
    serve_shared(Arc::new(listener), api, shutdown).await;
}

/// [`serve`] on a listener that outlives it (the daemon's supervisor starts
/// the accept loop again on the same socket if it ever ends).
pub async fn serve_shared(listener: Arc<TcpListener>, api: Arc<Api>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let pending = Pending::new(api.limits.max_handshakes);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: log, pause briefly, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ticket = pending.admit(remote.ip());
        tracker.spawn(connection(
            api.clone(),
            tcp,
            remote,
            ticket,
            shutdown.clone(),
        ));
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    api: Arc<Api>,
    tcp: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    ticket: Ticket,
    shutdown: CancellationToken,
) {
    // Responses are written whole by hyper (head and body in one vectored
    // write per frame): nothing is gained by Nagle's delay, as in nginx's
    // `tcp_nodelay on`.
    let _ = tcp.set_nodelay(true);
    let live = api.live.get();
    let acceptor = tokio_rustls::TlsAcceptor::from(live.server.clone());
    let handshake = tokio::time::timeout(api.limits.handshake, acceptor.accept(tcp));
    let stream = tokio::select! {
        _ = ticket.evicted.cancelled() => {
            tracing::debug!(%remote, "handshake dropped: too many handshakes under way");
            return;
        }
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(%remote, error = %e, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::info!(%remote, "TLS handshake timed out");
                return;
            }
        },
    };
    drop(ticket);
    let chain: Vec<CertificateDer<'static>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    let peer = match chain.first().map(|c| identify(c, &live.config.directory)) {
        Some(Ok(p)) => p.id.clone(),
        Some(Err(e)) => {
            tracing::warn!(%remote, error = %e, "authenticated client with no peer identity; closed");
            return;
        }
        None => return,
    };
    drop(live);
    let http = || {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(api.limits.header_read)
            // The header limit is its own setting: capping max_buf_size instead
            // would also cap the write buffer and slow every response down.
            .max_header_size(api.limits.max_header_bytes)
            .writev(true);
        b
    };
    let slot = match api.connections.register(&peer, chain, &api.limits) {
        Ok(slot) => slot,
        Err(busy) => {
            let why = match busy {
                Busy::Node => "the node has as many connections open as it serves at once",
                Busy::Peer => "this peer already has as many connections open as one peer may",
            };
            tracing::warn!(%remote, %peer, why, "connection refused: too many connections");
            let service = hyper::service::service_fn(move |_req| async move {
                let mut r = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too-many-connections",
                    "Too many connections",
                    why,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                Ok::<_, Infallible>(r)
            });
            let conn = http()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(api.limits.header_read, conn).await;
            return;
        }
    };
    let svc_api = api.clone();
    let svc_peer = peer.clone();
    // Boxed, so that the connection is `Unpin` and can be polled without
    // shutdown (below).
    let service = hyper::service::service_fn(move |req| {
        let api = svc_api.clone();
        let peer = svc_peer.clone();
        Box::pin(async move { Ok::<_, Infallible>(routes::handle(&api, &peer, req).await) })
            as Pin<Box<dyn Future<Output = Result<_, Infallible>> + Send>>
    });
    // Served without shutdown: when the last answer is written the socket
    // comes back, for a lingering close (point 6).
    let mut conn = http().serve_connection(TokioIo::new(stream), service);
    let served = tokio::select! {
        r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
        _ = slot.revoked.cancelled() => {
            tracing::warn!(%remote, %peer, "connection closed: certificate no longer admitted");
            return;
        }
        _ = shutdown.cancelled() => {
            Pin::new(&mut conn).graceful_shutdown();
            tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
                _ = slot.revoked.cancelled() => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(%remote, %peer, error = %e, "connection ended with an error");
        return;
    }
    slot.closing(&api.limits);
    let tls = conn.into_parts().io.into_inner();
    tokio::select! {
        (ended, thrown) = linger::close(tls) => {
            if thrown > 0 || ended != linger::Ended::ClientClosed {
                tracing::debug!(%remote, %peer, ?ended, thrown, "lingering close");
            }
        }
        _ = slot.revoked.cancelled() => {}
    }
    drop(slot);
}

/// Runs `f` on the blocking pool (sled writes and file system work).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(OutboxError::Io {
            context: "blocking task".into(),
            source: io::Error::other(e.to_string()),
        })
    })
}
