//! The mTLS HTTP API, version 1 (`docs/openapi.yaml`).
//!
//! One TCP listener; every connection is accepted under a connection limit,
//! TLS-handshaken with a timeout, its client certificate mapped to exactly one
//! peer ([`super::tls::identify`]) — or the connection is closed with nothing
//! said — and then served by hyper's HTTP/1.1 with a header-read timeout (hyper
//! is given a timer, without which that timeout panics) and a header size cap.
//! Every request acts for that peer only: another peer's bundle and a missing
//! bundle are the same 404. Errors are RFC 9457 problem details.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;

use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::AsyncSeekExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::receipt::SignedReceipt;
use super::tls::{identify, Reloadable};
use crate::config::{Config, Directory};
use crate::outbox::{Delivery, Outbox, OutboxError, State};
use crate::pki::ExchangeCa;
use crate::types::{AgencyId, BundleId, Timestamp};

/// Server limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TLS handshake must complete within this.
    pub handshake: Duration,
    /// Request headers must arrive within this (slow-loris).
    pub header_read: Duration,
    /// A request body must arrive within this.
    pub body_read: Duration,
    /// Simultaneous connections; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Request head buffer (hyper's minimum is 8 KiB).
    pub max_header_bytes: usize,
    /// Largest receipt body.
    pub max_receipt_bytes: usize,
    /// Longest long-poll.
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_receipt_bytes: 64 * 1024,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What request handlers need.
#[derive(Debug)]
pub struct Api {
    /// This node's configuration (keys: pushed bundles are opened and receipted).
    pub config: Arc<Config>,
    /// This node's agency id.
    pub me: AgencyId,
    /// The exchange CA (receipt signers).
    pub trust: ExchangeCa,
    /// The peer directory (client identities, receipt signers).
    pub directory: Directory,
    /// The outbox.
    pub outbox: Outbox,
    /// Limits.
    pub limits: Limits,
}

impl Api {
    /// From a validated configuration and an open outbox.
    pub fn new(config: Arc<Config>, outbox: Outbox, limits: Limits) -> Self {
        Self {
            config: config.clone(),
            me: config.node.id.clone(),
            trust: config.trust.clone(),
            directory: config.directory.clone(),
            outbox,
            limits,
        }
    }
}

type ResBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// Serves until `shutdown` is cancelled, then stops accepting and lets open
/// connections finish their current request (hyper graceful shutdown).
pub async fn serve(
    listener: TcpListener,
    tls: Reloadable,
    api: Arc<Api>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(api.limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.get());
        let api = api.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(api.limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            let peer = match cert.as_deref().map(|c| identify(c, &api.directory)) {
                Some(Ok(p)) => p.id.clone(),
                Some(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "authenticated client with no peer identity; closed");
                    return;
                }
                None => return,
            };
            let svc_api = api.clone();
            let svc_peer = peer.clone();
            let service = hyper::service::service_fn(move |req| {
                let api = svc_api.clone();
                let peer = svc_peer.clone();
                async move { Ok::<_, Infallible>(handle(&api, &peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(api.limits.header_read)
                // The header limit is its own setting: capping max_buf_size instead
                // would also cap the write buffer and slow every response down.
                .max_header_size(api.limits.max_header_bytes)
                .writev(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, %peer, error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
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
        (
            _,
            ["v1", "bundles"]
            | ["v1", "bundles", _]
            | ["v1", "bundles", _, "receipt"]
            | ["v1", "applications"],
        ) => problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{} is not allowed on {path}", req.method()),
        ),
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no endpoint {path}"),
        ),
    };
    tracing::info!(%peer, %method, path, status = resp.status().as_u16(), "request");
    resp
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

fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn waiting_for(d: &Delivery, peer: &AgencyId) -> bool {
    &d.peer == peer
        && matches!(
            d.state,
            State::Queued | State::Fetched { .. } | State::Failed { .. }
        )
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
    let after: u64 = match query_param(query, "after").map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("after must be a cursor returned by a previous listing"),
    };
    let limit: usize = match query_param(query, "limit").map(str::parse) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        _ => return bad("limit must be 1 to 500"),
    };
    let wait = match query_param(query, "wait").map(str::parse::<u64>) {
        None => Duration::ZERO,
        Some(Ok(n)) => Duration::from_secs(n).min(api.limits.max_wait),
        Some(Err(_)) => return bad("wait must be whole seconds"),
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register for the wake-up before looking, so a bundle queued between
        // the look and the wait is not missed.
        let notified = api.outbox.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // sled reads are in-memory lookups: done inline, not on the blocking pool.
        let found = api.outbox.list().map(|all| {
            all.into_iter()
                .filter(|d| d.seq > after && waiting_for(d, peer))
                .take(limit)
                .collect::<Vec<_>>()
        });
        let found = match found {
            Ok(f) => f,
            Err(e) => return internal(e),
        };
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map(|d| d.seq).unwrap_or(after);
            let me = api.me.clone();
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
        super::FileBody::new(file, count).boxed()
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
    let limited = Limited::new(req.into_body(), api.limits.max_receipt_bytes);
    let body = match tokio::time::timeout(api.limits.body_read, limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return problem(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Body too slow",
                "the request body did not arrive in time",
            )
        }
    };
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
        .verify(&api.trust, &api.directory, Timestamp::now())
        .and_then(|r| r.check(&id, &api.me, peer, &d.envelope_sha256, &d.payload_sha256));
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
        Err(e) => internal(e),
    }
}

/// `POST /v1/bundles`: a peer pushes a bundle addressed to this node. It is
/// streamed to a temporary file (size-capped), verified as sent by the caller,
/// opened into the inbox once (a repeat is recognised by its id), and answered
/// with this node's signed receipt — the same receipt for every repeat.
async fn push(api: &Arc<Api>, peer: &AgencyId, req: Request<Incoming>) -> Response<ResBody> {
    let max = api.config.limits.max_bundle_size;
    if declared_length(&req).is_some_and(|n| n > max) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bundle-too-large",
            "Bundle too large",
            format!("bundles are at most {max} bytes"),
        );
    }
    let partial = super::inbox::downloads(&api.config);
    if let Err(e) = tokio::fs::create_dir_all(&partial).await {
        return internal(e);
    }
    let file_path = partial.join(format!("push-{}.sealpost", BundleId::generate()));
    if let Err(refusal) =
        receive_to_file(req.into_body(), &file_path, max, "bundle-too-large").await
    {
        return refusal;
    }
    let outcome = {
        let config = api.config.clone();
        let from = peer.clone();
        let path = file_path.clone();
        tokio::task::spawn_blocking(move || {
            super::inbox::deliver(&config, &path, Some(&from))
                .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))
                .and_then(|dest| {
                    super::inbox::receipt_for(&config, &dest)
                        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
                })
        })
        .await
        .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())))
    };
    let _ = tokio::fs::remove_file(&file_path).await;
    match outcome {
        Ok(receipt) => json(StatusCode::OK, &receipt),
        Err((status, code, detail)) if status == StatusCode::INTERNAL_SERVER_ERROR => {
            internal(format!("{code}: {detail}"))
        }
        Err((status, code, detail)) => problem(status, code, "Bundle refused", detail),
    }
}

/// `POST /v1/applications`: the committee's online platform (a peer with role
/// `platform`) submits an application as a zip — the same content a clerk drops
/// — and gets the outcome at once: 201 with the bundle id, or 422 with the same
/// reason codes and texts a clerk finds in `REJECTED.txt`.
async fn submit(api: &Arc<Api>, peer: &AgencyId, req: Request<Incoming>) -> Response<ResBody> {
    if api.directory.get(peer).map(|p| p.role) != Some(crate::config::Role::Platform) {
        return problem(
            StatusCode::FORBIDDEN,
            "not-a-submitter",
            "Not a submitter",
            "only the committee's online platform may submit applications",
        );
    }
    let max = api.config.limits.max_total_size + (1 << 20);
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("an application is at most {max} bytes"),
        )
    };
    if declared_length(&req).is_some_and(|n| n > max) {
        return too_large();
    }
    let staging = crate::intake::Intake::uploads_dir(&api.config.intake.root);
    if let Err(e) = tokio::fs::create_dir_all(&staging).await {
        return internal(e);
    }
    let short = BundleId::generate();
    let name = format!("online-{}.zip", &short.as_str()[..12]);
    let path = staging.join(&name);
    if let Err(refusal) = receive_to_file(req.into_body(), &path, max, "body-too-large").await {
        return refusal;
    }
    let config = api.config.clone();
    let outbox = api.outbox.clone();
    let item = name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let intake = crate::intake::Intake::new(&config, &outbox)?;
        intake.submit(&path, &item)
    })
    .await;
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
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// Streams a request body into a new file at `path`: at most `max` bytes, within
/// a generous time budget (the largest allowed body at 1 MiB/s, plus a minute),
/// fsynced. On failure the file is removed and the problem response to send is
/// returned (`too_large_code` names the 413 for this endpoint).
async fn receive_to_file(
    body: Incoming,
    path: &std::path::Path,
    max: u64,
    too_large_code: &'static str,
) -> Result<(), Response<ResBody>> {
    let written = async {
        let mut file = tokio::fs::File::create(path).await?;
        let mut body = body;
        let mut total: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(io::Error::other)?;
            if let Some(data) = frame.data_ref() {
                total += data.len() as u64;
                if total > max {
                    return Err(io::Error::new(io::ErrorKind::FileTooLarge, "too large"));
                }
                tokio::io::AsyncWriteExt::write_all(&mut file, data).await?;
            }
        }
        file.sync_all().await
    };
    let refusal =
        match tokio::time::timeout(Duration::from_secs(60 + max / (1 << 20)), written).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::FileTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large_code,
                "Body too large",
                format!("at most {max} bytes are accepted here"),
            ),
            Ok(Err(e)) => problem(
                StatusCode::BAD_REQUEST,
                "body-incomplete",
                "Body incomplete",
                e.to_string(),
            ),
            Err(_) => problem(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Body too slow",
                "the body did not arrive in time",
            ),
        };
    let _ = tokio::fs::remove_file(path).await;
    Err(refusal)
}
