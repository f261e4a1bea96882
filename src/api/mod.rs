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
//!    connections in all and `max_connections_per_peer` per peer. A connection
//!    over either budget is answered `503 too-many-connections` and closed.
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
//!
//! ## Requests
//!
//! Every request acts for the connection's peer only: another peer's bundle and
//! a missing bundle are the same 404. Errors are RFC 9457 problem details with
//! a stable `code` ([`PROBLEM_CODES`] lists every one the server sends).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, DeliveryMode, Role, ServerLimits as Limits};
use crate::outbox::{Delivery, Outbox, OutboxError, State};
use crate::receipt::SignedReceipt;
use crate::status::Counters;
use crate::transport::tls::{identify, Live, Shared};
use crate::types::{printable, AgencyId, BundleId, Timestamp};

/// Every problem `code` the server sends (besides the bundle-verification
/// codes of [`crate::bundle::BundleError::code`] on push, and the receipt codes of
/// [`crate::receipt::ReceiptError::code`]). `docs/openapi.yaml` lists them all.
pub const PROBLEM_CODES: &[&str] = &[
    "bad-query",
    "not-found",
    "method-not-allowed",
    "body-timeout",
    "body-incomplete",
    "not-deliverable",
    "body-too-large",
    "bundle-too-large",
    "bad-range",
    "length-required",
    "push-not-allowed",
    "not-a-submitter",
    "bundle-id-conflict",
    "application-rejected",
    "insufficient-storage",
    "too-many-connections",
    "internal",
];

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

// ------------------------------------------------------------ handshake budget

/// Handshakes under way, oldest first, so that the oldest can be dropped when
/// the budget is full.
#[derive(Debug)]
struct Pending {
    cap: usize,
    per_address: usize,
    next: AtomicU64,
    queue: Mutex<VecDeque<(u64, IpAddr, CancellationToken)>>,
}

/// A handshake slot; dropping it frees the slot.
#[derive(Debug)]
struct Ticket {
    pending: Arc<Pending>,
    id: u64,
    evicted: CancellationToken,
}

impl Pending {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            per_address: (cap / 4).max(1),
            next: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
        })
    }

    /// A slot for a new connection from `ip`, dropping the oldest pending
    /// handshake (from `ip` if it holds its share, else overall) when full.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = q.iter().filter(|(_, a, _)| *a == ip).count();
        let victim = if from_ip >= self.per_address {
            q.iter().position(|(_, a, _)| *a == ip)
        } else if q.len() >= self.cap {
            Some(0)
        } else {
            None
        };
        if let Some(i) = victim {
            if let Some((_, _, t)) = q.remove(i) {
                t.cancel();
            }
        }
        q.push_back((id, ip, evicted.clone()));
        Ticket {
            pending: self.clone(),
            id,
            evicted,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut q = self.pending.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = q.iter().position(|(id, _, _)| *id == self.id) {
            q.remove(i);
        }
    }
}

// ------------------------------------------------------ authenticated budget

#[derive(Debug, Default)]
struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    next: u64,
    open: HashMap<u64, Entry>,
    per_peer: HashMap<AgencyId, usize>,
}

#[derive(Debug)]
struct Entry {
    peer: AgencyId,
    chain: Vec<CertificateDer<'static>>,
    revoked: CancellationToken,
}

/// An authenticated connection's place in the budget; dropping it frees it.
#[derive(Debug)]
struct Slot {
    registry: Arc<Registry>,
    id: u64,
    revoked: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
enum Busy {
    Node,
    Peer,
}

impl Registry {
    fn register(
        self: &Arc<Self>,
        peer: &AgencyId,
        chain: Vec<CertificateDer<'static>>,
        limits: &Limits,
    ) -> Result<Slot, Busy> {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if r.open.len() >= limits.max_connections {
            return Err(Busy::Node);
        }
        let n = r.per_peer.entry(peer.clone()).or_default();
        if *n >= limits.max_connections_per_peer {
            return Err(Busy::Peer);
        }
        *n += 1;
        r.next += 1;
        let id = r.next;
        let revoked = CancellationToken::new();
        r.open.insert(
            id,
            Entry {
                peer: peer.clone(),
                chain,
                revoked: revoked.clone(),
            },
        );
        Ok(Slot {
            registry: self.clone(),
            id,
            revoked,
        })
    }

    fn revalidate(&self, live: &Live) -> usize {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for e in r.open.values() {
            if !e.revoked.is_cancelled() && !live.still_admits(&e.chain, &e.peer) {
                tracing::warn!(peer = %e.peer, "closing an open connection: its certificate is no longer admitted (revoked, or the peer left the directory)");
                e.revoked.cancel();
                closed += 1;
            }
        }
        closed
    }

    fn total(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = r.open.remove(&self.id) {
            if let Some(n) = r.per_peer.get_mut(&e.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    r.per_peer.remove(&e.peer);
                }
            }
        }
    }
}

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
    let service = hyper::service::service_fn(move |req| {
        let api = svc_api.clone();
        let peer = svc_peer.clone();
        async move { Ok::<_, Infallible>(handle(&api, &peer, req).await) }
    });
    let conn = http().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%remote, %peer, error = %e, "connection ended with an error");
            }
        }
        _ = slot.revoked.cancelled() => {
            tracing::warn!(%remote, %peer, "connection closed: certificate no longer admitted");
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = slot.revoked.cancelled() => {}
            }
        }
    }
    drop(slot);
}

/// The request's `Content-Length`, if it sent a valid one.
fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
}

fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn problem(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: impl Into<String>,
) -> Response<ResBody> {
    let p = Problem {
        kind: format!("https://sealpost.invalid/problems/{code}"),
        title,
        status: status.as_u16(),
        detail: detail.into(),
        code,
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(full(serde_json::to_vec(&p).expect("problem serialises")))
        .expect("valid response")
}

fn not_found() -> Response<ResBody> {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such bundle for this peer",
    )
}

fn internal(e: impl std::fmt::Display) -> Response<ResBody> {
    tracing::error!(error = %e, "request failed");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the node could not complete the request; try again",
    )
}

fn json(status: StatusCode, v: &impl Serialize) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(v).expect("json serialises")))
        .expect("valid response")
}

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

async fn handle(api: &Arc<Api>, peer: &AgencyId, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match (req.method(), parts.as_slice()) {
        (&Method::GET, ["v1", "bundles"]) => list(api, peer, req.uri().query().unwrap_or("")).await,
        (&Method::POST, ["v1", "bundles"]) => push(api, peer, req).await,
        (&Method::POST, ["v1", "applications"]) => submit(api, peer, req).await,
        (&Method::GET | &Method::HEAD, ["v1", "bundles", id]) => match id.parse::<BundleId>() {
            Ok(id) => download(api, peer, id, &req).await,
            Err(_) => not_found(),
        },
        (&Method::POST, ["v1", "bundles", id, "receipt"]) => match id.parse::<BundleId>() {
            Ok(id) => receipt(api, peer, id, req).await,
            Err(_) => not_found(),
        },
        (_, ["v1", "bundles"]) => method_not_allowed(&method, &path, "GET, POST"),
        (_, ["v1", "bundles", _]) => method_not_allowed(&method, &path, "GET, HEAD"),
        (_, ["v1", "bundles", _, "receipt"] | ["v1", "applications"]) => {
            method_not_allowed(&method, &path, "POST")
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no endpoint {path}"),
        ),
    };
    tracing::info!(%peer, %method, path = %printable(&path), status = resp.status().as_u16(), "request");
    resp
}

fn method_not_allowed(method: &Method, path: &str, allow: &'static str) -> Response<ResBody> {
    let mut r = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}; allowed: {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

/// One waiting bundle in a listing.
#[derive(Debug, Serialize)]
struct Listed {
    id: BundleId,
    kind: crate::bundle::Kind,
    sender: AgencyId,
    case_ref: crate::types::CaseRef,
    size: u64,
    envelope_sha256: crate::types::Sha256,
    payload_sha256: crate::types::Sha256,
    queued_at: Timestamp,
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct Listing {
    bundles: Vec<Listed>,
    next_cursor: String,
}

/// The first value of `key` in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The longest `after` accepted (`docs/openapi.yaml`: `maxLength: 20`).
const MAX_CURSOR_LEN: usize = 20;

/// A non-negative whole number, saturating at `u64::MAX`; `None` if `s` is not
/// one or more ASCII digits.
fn saturating_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

async fn list(api: &Arc<Api>, peer: &AgencyId, query: &str) -> Response<ResBody> {
    let bad = |what: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Bad query",
            what.to_owned(),
        )
    };
    let after: u64 = match query_param(query, "after") {
        None => 0,
        Some(a) => match saturating_digits(&a) {
            Some(n) if a.len() <= MAX_CURSOR_LEN => n,
            _ => {
                return bad(&format!(
                    "after must be a cursor returned by a previous listing (at most {MAX_CURSOR_LEN} digits)"
                ))
            }
        },
    };
    let limit = match query_param(query, "limit").map(|l| saturating_digits(&l)) {
        None => 50,
        Some(Some(n)) if (1..=500).contains(&n) => n as usize,
        _ => return bad("limit must be a whole number from 1 to 500"),
    };
    let wait = match query_param(query, "wait") {
        None => Duration::ZERO,
        Some(w) => match saturating_digits(&w) {
            // Longer waits are clamped, as documented.
            Some(n) => Duration::from_secs(n).min(api.limits.max_wait),
            None => return bad("wait must be a whole number of seconds"),
        },
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register for the wake-up before looking, so a bundle queued between
        // the look and the wait is not missed.
        let notified = api.outbox.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // sled reads are in-memory lookups: done inline, not on the blocking pool.
        let found = api.outbox.waiting(peer, after, limit);
        let found = match found {
            Ok(f) => f,
            Err(e) => return internal(e),
        };
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map(|d| d.seq).unwrap_or(after);
            let me = api.live.get().config.node.id.clone();
            let bundles = found
                .into_iter()
                .map(|d| Listed {
                    id: d.id,
                    kind: d.kind,
                    sender: me.clone(),
                    case_ref: d.case_ref,
                    size: d.size,
                    envelope_sha256: d.envelope_sha256,
                    payload_sha256: d.payload_sha256,
                    queued_at: d.queued_at,
                    state: d.state.name(),
                })
                .collect();
            return json(
                StatusCode::OK,
                &Listing {
                    bundles,
                    next_cursor: next.to_string(),
                },
            );
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

async fn find(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
) -> Result<Option<Delivery>, OutboxError> {
    let d = api.outbox.get(&id)?;
    Ok(d.filter(|d| &d.peer == peer && !matches!(d.state, State::Cancelled { .. })))
}

/// Parses a single `bytes=` range against `len`: `Ok(None)` for no Range header.
fn parse_range(h: Option<&header::HeaderValue>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(h) = h else { return Ok(None) };
    let s = h.to_str().map_err(|_| ())?;
    let spec = s.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(()); // one range only
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (a, b) => (
            a.parse().map_err(|_| ())?,
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1)),
        ),
    };
    if start > end || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    let d = match find(api, peer, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    let etag = format!("\"{}\"", d.envelope_sha256);
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, &etag)
            .body(full(Bytes::new()))
            .expect("valid response");
    }
    if req.method() == Method::GET {
        api.counters.downloaded(peer);
    }
    let path = api.outbox.bundle_path(&id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return internal(format!("{}: {e}", path.display())),
    };
    let len = d.size;
    let range = match parse_range(req.headers().get(header::RANGE), len) {
        Ok(r) => r,
        Err(()) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .header(header::CONTENT_TYPE, "application/problem+json")
                .body(full(serde_json::to_vec(&serde_json::json!({"type": "https://sealpost.invalid/problems/bad-range", "title": "Range not satisfiable", "status": 416, "code": "bad-range", "detail": format!("the bundle is {len} bytes; send one range such as bytes=0-1023")})).expect("json")))
                .expect("valid response")
        }
    };
    let (start, count, status) = match range {
        Some((a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, len, StatusCode::OK),
    };
    if start > 0 {
        if let Err(e) = file.seek(io::SeekFrom::Start(start)).await {
            return internal(e);
        }
    }
    // Only the first fetch changes the state (and costs a durable write); a
    // resumed or repeated download of a fetched bundle changes nothing.
    if req.method() == Method::GET && matches!(d.state, State::Queued | State::Failed { .. }) {
        let outbox = api.outbox.clone();
        let policy = *api.outbox.policy();
        let now = Timestamp::now();
        if let Err(e) = blocking(move || {
            outbox.transition(&id, now, |d| match d.state {
                State::Queued | State::Failed { .. } | State::Fetched { .. } => {
                    d.fetch(now, &policy)
                }
                _ => Ok(()),
            })
        })
        .await
        {
            return internal(e);
        }
    }
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/vnd.sealpost.bundle+zip")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag);
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    let body = if req.method() == Method::HEAD {
        full(Bytes::new())
    } else {
        crate::transport::FileBody::new(file, count).boxed()
    };
    b.body(body).expect("valid response")
}

#[derive(Debug, Serialize)]
struct ReceiptAccepted<'a> {
    state: &'static str,
    receipt: &'a SignedReceipt,
}

async fn receipt(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let d = match find(api, peer, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!(
                "a receipt is at most {} bytes",
                api.limits.max_receipt_bytes
            ),
        )
    };
    if declared_length(&req).is_some_and(|n| n > api.limits.max_receipt_bytes as u64) {
        return too_large();
    }
    let mut body = Vec::new();
    if let Err(e) = read_body(
        req.into_body(),
        &mut body,
        api.limits.max_receipt_bytes as u64,
        &api.limits,
    )
    .await
    {
        return e.problem("body-too-large");
    }
    let live = api.live.get();
    let config = &live.config;
    let stored_path: PathBuf = api.outbox.receipt_path(&id);
    let signed: SignedReceipt = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt-malformed",
                "Receipt refused",
                e.to_string(),
            )
        }
    };
    let checked = signed
        .verify(&config.trust, &config.directory, Timestamp::now())
        .and_then(|r| {
            r.check(
                &id,
                &config.node.id,
                peer,
                &d.envelope_sha256,
                &d.payload_sha256,
            )
        });
    if let Err(e) = checked {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            "Receipt refused",
            e.to_string(),
        );
    }
    // Idempotent: once delivered, every valid receipt POST returns the original.
    if let State::Delivered { .. } = d.state {
        return match tokio::fs::read(&stored_path)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<SignedReceipt>(&b).ok())
        {
            Some(stored) => json(
                StatusCode::OK,
                &ReceiptAccepted {
                    state: "delivered",
                    receipt: &stored,
                },
            ),
            None => internal(format!(
                "delivered without a stored receipt at {}",
                stored_path.display()
            )),
        };
    }
    let outbox = api.outbox.clone();
    let bytes = serde_json::to_vec_pretty(&signed).expect("receipt serialises");
    let done = blocking(move || {
        match crate::fsutil::write_new_atomic(&stored_path, &bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(OutboxError::Io {
                    context: "cannot store the receipt".into(),
                    source: e,
                })
            }
        }
        let now = Timestamp::now();
        outbox.transition(&id, now, |d| d.deliver(now))?;
        let stored: SignedReceipt =
            serde_json::from_slice(&std::fs::read(&stored_path).map_err(|e| OutboxError::Io {
                context: "cannot read the stored receipt".into(),
                source: e,
            })?)
            .map_err(|e| OutboxError::Io {
                context: "stored receipt".into(),
                source: io::Error::other(e),
            })?;
        Ok(stored)
    })
    .await;
    match done {
        Ok(stored) => {
            tracing::info!(bundle = %id, %peer, "receipt verified; delivered");
            json(
                StatusCode::OK,
                &ReceiptAccepted {
                    state: "delivered",
                    receipt: &stored,
                },
            )
        }
        Err(OutboxError::Transition(e)) => problem(
            StatusCode::CONFLICT,
            "not-deliverable",
            "Not deliverable",
            e.to_string(),
        ),
        Err(e) if crate::fsutil::chain_is_disk_full(&e) => insufficient_storage(0),
        Err(e) => internal(e),
    }
}

/// Whether `caller` may push bundles to this node: only when this node's own
/// directory entry says `delivery = "push"` (the exchange delivers to it by
/// push), and only from a committee (the senders of applications).
fn may_push(config: &Config, caller: &AgencyId) -> bool {
    caller != &config.node.id
        && config.me().delivery == DeliveryMode::Push
        && config
            .directory
            .get(caller)
            .is_some_and(|p| p.role == Role::Committee)
}

/// Free space on the file system holding `dir`, minus what must stay free.
fn room_for(dir: &std::path::Path, limits: &Limits) -> u64 {
    crate::fsutil::free_space(dir)
        .map(|free| free.saturating_sub(limits.min_free_space))
        .unwrap_or(u64::MAX)
}

fn insufficient_storage(len: u64) -> Response<ResBody> {
    problem(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient-storage",
        "Insufficient storage",
        format!("this node has no room for {len} more bytes now; try again later"),
    )
}

/// `POST /v1/bundles`: a peer that may push ([`may_push`]) uploads a bundle
/// addressed to this node. Its declared length is checked against the limit and
/// the free disk before a byte is written; the body is streamed to a file under
/// `downloads/push/`, verified as sent by the caller, taken into the inbox once
/// ([`crate::inbox::deliver`]: a repeat is recognised by sender and id, a clash
/// of ids is `409`), and answered with this node's stored receipt — the same
/// bytes for every repeat.
async fn push(api: &Arc<Api>, peer: &AgencyId, req: Request<Incoming>) -> Response<ResBody> {
    let live = api.live.get();
    let config = live.config.clone();
    if !may_push(&config, peer) {
        return problem(
            StatusCode::FORBIDDEN,
            "push-not-allowed",
            "Push not allowed",
            "this node does not take bundles from this peer by push",
        );
    }
    let max = config.limits.max_bundle_size;
    let Some(len) = declared_length(&req) else {
        return problem(
            StatusCode::LENGTH_REQUIRED,
            "length-required",
            "Length required",
            "send the bundle's size in Content-Length",
        );
    };
    if len > max {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bundle-too-large",
            "Bundle too large",
            format!("bundles are at most {max} bytes"),
        );
    }
    let dir = crate::inbox::push_dir(&config);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return internal(e);
    }
    if len > room_for(&dir, &api.limits) {
        return insufficient_storage(len);
    }
    let file_path = dir.join(format!("{}.sealpost", BundleId::generate()));
    if let Err(refusal) = receive_to_file(req.into_body(), &file_path, len, &api.limits).await {
        return refusal.problem("bundle-too-large");
    }
    let outcome = {
        let from = peer.clone();
        let path = file_path.clone();
        tokio::task::spawn_blocking(move || crate::inbox::deliver(&config, &path, &from))
            .await
            .map_err(|e| crate::inbox::InboxError::Io {
                context: "push task".into(),
                source: io::Error::other(e.to_string()),
            })
            .and_then(|r| r)
    };
    let _ = tokio::fs::remove_file(&file_path).await;
    match outcome {
        Ok(stored) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(stored.receipt))
            .expect("valid response"),
        Err(e @ crate::inbox::InboxError::Conflict(_)) => problem(
            StatusCode::CONFLICT,
            e.code(),
            "Bundle id already used",
            "a different bundle with this id was already received; use a new id",
        ),
        Err(e) if e.is_bundle_fault() => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            "Bundle refused",
            e.to_string(),
        ),
        Err(e) => internal(e),
    }
}

/// `POST /v1/applications`: the committee's online platform (a peer with role
/// `platform`) submits an application as a zip — the same content a clerk drops
/// — and gets the outcome at once: 201 with the bundle id, or 422 with the same
/// reason codes and texts a clerk finds in `REJECTED.txt`.
async fn submit(api: &Arc<Api>, peer: &AgencyId, req: Request<Incoming>) -> Response<ResBody> {
    let live = api.live.get();
    let config = live.config.clone();
    if config.directory.get(peer).map(|p| p.role) != Some(Role::Platform) {
        return problem(
            StatusCode::FORBIDDEN,
            "not-a-submitter",
            "Not a submitter",
            "only the committee's online platform may submit applications",
        );
    }
    let max = config.limits.max_total_size + (1 << 20);
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > max) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("an application is at most {max} bytes"),
        );
    }
    let staging = crate::intake::Intake::uploads_dir(&config.intake.root);
    if let Err(e) = tokio::fs::create_dir_all(&staging).await {
        return internal(e);
    }
    // Room for the upload, its extraction and its sealed bundle.
    let need = declared.unwrap_or(0).saturating_mul(3);
    if need > room_for(&staging, &api.limits) {
        return insufficient_storage(need);
    }
    let short = BundleId::generate();
    let name = format!("online-{}.zip", &short.as_str()[..12]);
    let path = staging.join(&name);
    if let Err(refusal) = receive_to_file(req.into_body(), &path, max, &api.limits).await {
        return refusal.problem("body-too-large");
    }
    let outbox = api.outbox.clone();
    let item = name.clone();
    let shared = api.intake.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let intake = match shared {
            Some(i) => i,
            None => Arc::new(crate::intake::Intake::new(config, outbox)?),
        };
        intake.submit(&path, &item)
    })
    .await;
    match &outcome {
        Ok(Ok(crate::intake::Outcome::Accepted { .. })) => api.counters.accepted(),
        Ok(Ok(crate::intake::Outcome::Rejected { .. })) => api.counters.rejected(),
        _ => {}
    }
    match outcome {
        Ok(Ok(crate::intake::Outcome::Accepted { id, name })) => json(
            StatusCode::CREATED,
            &serde_json::json!({"id": id, "state": "queued", "item": name}),
        ),
        Ok(Ok(crate::intake::Outcome::Rejected { dir, name, .. })) => {
            let reasons = tokio::fs::read(dir.join("rejection.json"))
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|v| v["reasons"].clone())
                .unwrap_or(serde_json::Value::Null);
            let body = serde_json::json!({
                "type": "https://sealpost.invalid/problems/application-rejected",
                "title": "Application rejected",
                "status": 422,
                "code": "application-rejected",
                "detail": format!("the application was rejected and kept as rejected/{name}/ for the clerks"),
                "reasons": reasons,
            });
            Response::builder()
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .header(header::CONTENT_TYPE, "application/problem+json")
                .body(full(serde_json::to_vec(&body).expect("json")))
                .expect("valid response")
        }
        Ok(Ok(crate::intake::Outcome::Held { id, .. })) => internal(format!(
            "the upload for {id} kept changing while it was sealed"
        )),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// Why a request body was not received.
#[derive(Debug)]
enum BodyError {
    /// More than the allowed bytes.
    TooLarge(u64),
    /// It fell below the minimum rate (or never started).
    TooSlow,
    /// The connection broke, or fewer bytes came than declared.
    Incomplete(String),
    /// Writing it failed locally.
    Local(io::Error),
}

impl BodyError {
    fn problem(&self, too_large_code: &'static str) -> Response<ResBody> {
        match self {
            BodyError::TooLarge(max) => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large_code,
                "Body too large",
                format!("at most {max} bytes are accepted here"),
            ),
            BodyError::TooSlow => problem(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Body too slow",
                "the request body did not arrive fast enough",
            ),
            BodyError::Incomplete(why) => problem(
                StatusCode::BAD_REQUEST,
                "body-incomplete",
                "Body incomplete",
                why.clone(),
            ),
            BodyError::Local(e) if crate::fsutil::is_disk_full(e) => insufficient_storage(0),
            BodyError::Local(e) => internal(e),
        }
    }
}

/// Reads a request body into `sink`: at most `max` bytes, arriving at an
/// average of at least `limits.min_body_rate` bytes per second once
/// `limits.body_grace` has passed (each byte received extends the deadline by
/// `1 / min_body_rate` seconds). Returns the byte count.
async fn read_body<W: AsyncWrite + Unpin>(
    mut body: Incoming,
    sink: &mut W,
    max: u64,
    limits: &Limits,
) -> Result<u64, BodyError> {
    let start = tokio::time::Instant::now();
    let rate = limits.min_body_rate.max(1) as f64;
    let mut received: u64 = 0;
    loop {
        let deadline = start + limits.body_grace + Duration::from_secs_f64(received as f64 / rate);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Incomplete(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            if received > max {
                return Err(BodyError::TooLarge(max));
            }
            sink.write_all(data).await.map_err(BodyError::Local)?;
        }
    }
    Ok(received)
}

/// Streams a request body into a new file at `path` ([`read_body`]'s rules),
/// fsynced. On failure the file is removed.
async fn receive_to_file(
    body: Incoming,
    path: &std::path::Path,
    max: u64,
    limits: &Limits,
) -> Result<u64, BodyError> {
    let written = async {
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(BodyError::Local)?;
        let n = read_body(body, &mut file, max, limits).await?;
        file.sync_all().await.map_err(BodyError::Local)?;
        Ok(n)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    written
}
