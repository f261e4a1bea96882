//! The HTTPS client for peers: mutual TLS with this node's certificate, the
//! peer's server certificate checked against the exchange CA. Used by the
//! court's poller ([`crate::inbox::poll`]) and by pushes ([`crate::delivery`]).
//!
//! **Connections are kept.** A [`PeerClient`] keeps a small pool of HTTP/1.1
//! connections to its one peer. A request takes the most recently used idle
//! connection, or opens one (TCP, optionally a `CONNECT` tunnel through the
//! configured proxy, then TLS with this node's rustls configuration — the ring
//! provider only); the connection goes back to the pool the moment its
//! response body has been read to the end, so the next request finds it there.
//! A poller's requests (listings, long-polls, downloads, receipts) thus follow
//! one another on one TLS connection instead of a handshake each. At most
//! [`MAX_IDLE`] idle connections are kept, each for at most [`IDLE_TIMEOUT`]
//! (then closed); a response whose body is dropped unread closes its
//! connection. Clones of a client share its pool; when the last one is dropped
//! the idle connections close.
//!
//! (hyper-util's pooling client was tried first: it returns a connection to
//! its pool from a spawned task, so a request that follows a response at once
//! often starts a second connection in the background — two or more
//! connections where one does, and a new handshake in most rounds of a
//! long-polling court. Our callers send one request at a time to one peer;
//! this pool is built for that.)
//!
//! **A connection the peer closed is replaced without an error.** An idle
//! connection found closed is dropped and the next one (or a new one) taken.
//! A request that could not be written because its kept connection closed
//! first is sent again, once, on a fresh connection — whatever its body, since
//! none of it was sent. Requests sent with [`PeerClient::request_idempotent`]
//! (listings, downloads, receipts: all safe to repeat) are also sent once
//! more, on a fresh connection, when a kept connection closed after the
//! request went out but before any answer came — the race with a server that
//! closes an idle connection. A push uses
//! [`PeerClient::request_repeatable`] for the same (the receiving node answers
//! a repeated push with the original receipt), streaming the file again from
//! its start. No request is sent more than twice.
//!
//! **Host and server name.** `Host` is the endpoint's host, with its port when
//! the port is not 443 (RFC 9110 §7.2); TLS sends the host alone as SNI and
//! checks the server's certificate against it.
//!
//! **Proxy.** With `[client] proxy = "http://host:port"` every connection
//! starts as `CONNECT peer-host:port` to the proxy (with Basic credentials if
//! the setting has them); only a 2xx answer opens the tunnel. A proxy that
//! cannot be reached or refuses (407, 403, 502 …) is reported naming the proxy
//! and its answer, as [`ClientError::Unreachable`]: the peer cannot be reached.
//!
//! **Timeouts.** Connecting (to the peer or the proxy), the proxy's answer to
//! `CONNECT`, and the TLS handshake each have [`CONNECT_TIMEOUT`]. Requests
//! themselves have none here: a long-poll legitimately waits (the poller
//! bounds each of its requests by its wait plus a margin), and a push's answer
//! comes only once the whole bundle is uploaded and verified.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::{Config, Peer, ProxySettings};
use crate::types::BundleId;

/// Client failures (each is logged and retried with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The peer cannot be reached at all: no TCP connection, the proxy cannot
    /// be reached or refused the tunnel, or the TLS handshake failed. The
    /// whole peer waits.
    #[error("{0}")]
    Unreachable(String),
    /// Network or HTTP trouble in the middle of a request.
    #[error("{0}")]
    Transport(String),
    /// The peer answered with an unexpected status.
    #[error("{status} from {what}: {body}")]
    Status {
        /// The request.
        what: String,
        /// The status.
        status: StatusCode,
        /// The problem document, if any.
        body: String,
    },
    /// The bundle was refused by verification (or clashes with another
    /// bundle's id); retried with backoff in case it is replaced.
    #[error("bundle {id} refused: [{code}] {detail}")]
    Refused {
        /// The bundle.
        id: BundleId,
        /// The bundle-error code.
        code: &'static str,
        /// The message.
        detail: String,
    },
    /// Local disk trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// How long connecting, the proxy's answer to `CONNECT`, and the TLS
/// handshake may each take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept for the next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle connections kept per client (one peer). A poller and a pusher
/// send one request at a time, so one is normally all there is.
pub const MAX_IDLE: usize = 2;
/// Largest answer to `CONNECT` read from a proxy that refuses.
const PROXY_ANSWER_LIMIT: usize = 8 * 1024;

/// A request body: in memory ([`bytes_body`]) or streamed (a
/// [`crate::transport::FileBody`], boxed).
pub type ReqBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An HTTPS client for one peer: mutual TLS with this node's certificate,
/// the peer verified against the exchange CA, connections kept (see the
/// module doc).
#[derive(Clone)]
pub struct PeerClient {
    /// The peer.
    pub peer: Peer,
    connector: Connector,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("peer", &self.peer.id)
            .field("endpoint", &self.peer.endpoint)
            .field(
                "proxy",
                &self.connector.proxy.as_ref().map(|p| p.to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl PeerClient {
    /// A client for `peer` with `config`'s TLS identity (and its
    /// `[client] proxy`, if set).
    pub fn new(config: &Config, peer: Peer) -> Result<Self, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        for der in config.trust.der_certs() {
            roots
                .add(CertificateDer::from(der.to_vec()))
                .map_err(transport)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(transport)?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                config.keys.tls.chain.clone(),
                config.keys.tls.key.clone_key(),
            )
            .map_err(transport)?;
        Ok(Self {
            peer,
            connector: Connector {
                tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                proxy: config.client_proxy.clone().map(Arc::new),
            },
            pool: Arc::new(Pool::default()),
        })
    }

    /// The proxy connections go through, if any.
    pub fn proxy(&self) -> Option<&ProxySettings> {
        self.connector.proxy.as_deref()
    }

    /// One request, on a kept connection if there is one. `path` is the
    /// path and query on the peer's endpoint.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: ReqBody,
    ) -> Result<http::Response<PeerBody>, ClientError> {
        let req = self.build(method, path, headers, body)?;
        self.send(req, None).await
    }

    /// One request that is safe to repeat (a GET, or a POST the peer answers
    /// a repeat of with the original result), with a small body: also sent
    /// once more, on a fresh connection, if a kept connection closed after
    /// the request went out but before any answer came.
    pub async fn request_idempotent(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
    ) -> Result<http::Response<PeerBody>, ClientError> {
        self.request_repeatable(method, path, headers, &|| Ok(bytes_body(body.clone())))
            .await
    }

    /// [`PeerClient::request_idempotent`] with a body that `body` makes
    /// (again, for the second sending: e.g. a file streamed from its start).
    pub async fn request_repeatable(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: &(dyn Fn() -> Result<ReqBody, ClientError> + Sync),
    ) -> Result<http::Response<PeerBody>, ClientError> {
        let again = || self.build(method.clone(), path, headers, body()?);
        self.send(again()?, Some(&again)).await
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: ReqBody,
    ) -> Result<Request<ReqBody>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host_header(self.endpoint()?)?);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(body).map_err(transport)
    }

    fn endpoint(&self) -> Result<&Uri, ClientError> {
        self.peer
            .endpoint
            .as_ref()
            .ok_or_else(|| transport(format!("{} has no endpoint", self.peer.id)))
    }

    /// Sends `req` on a kept connection (or a new one), and once more on a
    /// fresh connection when the kept one turns out closed: always if the
    /// request was not written, and, if `again` can make it anew, when the
    /// connection closed before any answer.
    async fn send(
        &self,
        mut req: Request<ReqBody>,
        mut again: Option<&(dyn Fn() -> Result<Request<ReqBody>, ClientError> + Sync)>,
    ) -> Result<http::Response<PeerBody>, ClientError> {
        let mut fresh = false;
        loop {
            let (mut sender, reused) = self.checkout(fresh).await?;
            let mut e = match sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = Arc::downgrade(&self.pool);
                    return Ok(resp.map(|body| PeerBody::new(body, sender, pool)));
                }
                Err(e) => e,
            };
            if reused {
                if let Some(unsent) = e.take_message() {
                    tracing::debug!(peer = %self.peer.id, error = %chain(e.error()), "a kept connection closed before the request was written; sending it on a new one");
                    req = unsent;
                    fresh = true;
                    continue;
                }
                if closed_before_answer(e.error()) {
                    if let Some(make) = again.take() {
                        tracing::debug!(peer = %self.peer.id, error = %chain(e.error()), "a kept connection closed before an answer; sending the request again on a new one");
                        req = make()?;
                        fresh = true;
                        continue;
                    }
                }
            }
            return Err(ClientError::Transport(format!(
                "request to {} failed: {}",
                self.peer.id,
                chain(&e.into_error())
            )));
        }
    }

    /// A connection ready for a request, and whether it was kept from an
    /// earlier one. `fresh` asks for a new one.
    async fn checkout(&self, fresh: bool) -> Result<(SendRequest<ReqBody>, bool), ClientError> {
        if !fresh {
            while let Some(mut sender) = self.pool.take() {
                // Normally at once: a connection goes back to the pool only
                // when its last answer has been read.
                match tokio::time::timeout(CONNECT_TIMEOUT, sender.ready()).await {
                    Ok(Ok(())) => return Ok((sender, true)),
                    _ => continue, // closed meanwhile: the next one
                }
            }
        }
        let stream = self
            .connector
            .connect(self.endpoint()?)
            .await
            .map_err(|e| ClientError::Unreachable(e.0))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(stream)
            .await
            .map_err(|e| ClientError::Unreachable(format!("HTTP with {}: {e}", self.peer.id)))?;
        let peer = self.peer.id.clone();
        // The connection's own task: it ends when the connection closes —
        // the pool dropped its sender, the peer closed it, or the runtime
        // stops — so it needs no tracker of its own.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %chain(&e), "connection ended with an error");
            }
        });
        Ok((sender, false))
    }
}

/// The `Host` header for `endpoint`: the host, with the port unless it is
/// 443, the default for https (RFC 9110 §7.2).
fn host_header(endpoint: &Uri) -> Result<HeaderValue, ClientError> {
    let host = endpoint
        .host()
        .ok_or_else(|| transport("endpoint without host"))?;
    let value = match endpoint.port_u16() {
        Some(port) if port != 443 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&value).map_err(transport)
}

/// Whether a request failed because its connection closed (or was reset)
/// before any answer came, rather than for anything the peer said.
fn closed_before_answer(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

/// An error and its causes, `: `-separated (hyper's own messages are terse).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

// ---------------------------------------------------------------- the pool

/// The idle connections of one [`PeerClient`] (and its clones), the most
/// recently used last.
#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Idle>,
    /// Whether a task is closing connections idle for [`IDLE_TIMEOUT`].
    reaping: bool,
}

struct Idle {
    sender: SendRequest<ReqBody>,
    since: Instant,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that is still open and has
    /// not been idle too long.
    fn take(&self) -> Option<SendRequest<ReqBody>> {
        let mut state = self.lock();
        while let Some(idle) = state.idle.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT {
                return Some(idle.sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request (dropping the oldest beyond
    /// [`MAX_IDLE`]), and makes sure a task closes it once idle too long.
    fn put(self: &Arc<Self>, sender: SendRequest<ReqBody>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime to close it later: dropping it closes it now
        };
        let mut state = self.lock();
        state.idle.retain(|i| !i.sender.is_closed());
        state.idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        while state.idle.len() > MAX_IDLE {
            state.idle.remove(0);
        }
        if !state.reaping {
            state.reaping = true;
            runtime.spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Closes (drops) connections idle for [`IDLE_TIMEOUT`], until none is idle
/// or the pool is gone.
async fn reap(pool: Weak<Pool>) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let mut state = pool.lock();
            let now = Instant::now();
            state
                .idle
                .retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < IDLE_TIMEOUT);
            match state.idle.iter().map(|i| i.since).min() {
                Some(oldest) => oldest + IDLE_TIMEOUT,
                None => {
                    state.reaping = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next).await;
    }
}

/// A response body from a [`PeerClient`]. Read to its end, it puts its
/// connection back into the client's pool for the next request; dropped
/// before, it closes the connection.
pub struct PeerBody {
    inner: Incoming,
    back: Option<(SendRequest<ReqBody>, Weak<Pool>)>,
}

impl std::fmt::Debug for PeerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl PeerBody {
    fn new(inner: Incoming, sender: SendRequest<ReqBody>, pool: Weak<Pool>) -> Self {
        let mut body = Self {
            inner,
            back: Some((sender, pool)),
        };
        if body.inner.is_end_stream() {
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            if let Some(pool) = pool.upgrade() {
                pool.put(sender);
            }
        }
    }
}

impl Body for PeerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Err(_)) => this.back = None,
            None => this.give_back(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.give_back(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PeerBody {
    fn drop(&mut self) {
        // Read to its end but not polled once more: the connection is free.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

// ---------------------------------------------------------- new connections

/// Why a new connection could not be made, in words (it becomes
/// [`ClientError::Unreachable`]).
#[derive(Debug)]
struct ConnectError(String);

/// Makes new connections: TCP (directly or through a `CONNECT` tunnel), then
/// TLS.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
    proxy: Option<Arc<ProxySettings>>,
}

impl Connector {
    async fn connect(&self, endpoint: &Uri) -> Result<PeerStream, ConnectError> {
        let host = endpoint
            .host()
            .ok_or_else(|| ConnectError("the endpoint has no host".into()))?;
        let port = endpoint.port_u16().unwrap_or(443);
        let stream = match &self.proxy {
            None => Tunnel::Direct(
                tcp(host, port)
                    .await
                    .map_err(|e| ConnectError(format!("cannot connect to {host}:{port}: {e}")))?,
            ),
            Some(proxy) => Tunnel::Proxied(connect_tunnel(proxy, host, port).await?),
        };
        // SNI and the certificate check use the endpoint's host alone.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|e| ConnectError(format!("{host:?} is not a server name: {e}")))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, stream))
            .await
            .map_err(|_| ConnectError(format!("TLS with {host}: handshake timed out")))?
            .map_err(|e| ConnectError(format!("TLS with {host}: {e}")))?;
        match &self.proxy {
            None => tracing::debug!(peer = %format_args!("{host}:{port}"), "connected"),
            Some(p) => {
                tracing::debug!(peer = %format_args!("{host}:{port}"), proxy = %p, "connected through the proxy")
            }
        }
        Ok(TokioIo::new(tls))
    }
}

/// One connection: TLS over a [`Tunnel`], as hyper's I/O.
type PeerStream = TokioIo<tokio_rustls::client::TlsStream<Tunnel>>;

/// A TCP connection to `host:port` (host as in a URL: an IPv6 address in
/// brackets), within [`CONNECT_TIMEOUT`].
async fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((bare, port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
    // Requests are small and each is flushed whole: no reason to wait for
    // an acknowledgement before sending the next one.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A tunnel to `host:port` through `proxy`: `CONNECT`, and only a 2xx
/// answer opens it.
async fn connect_tunnel(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, ConnectError> {
    let target = format!("{host}:{port}");
    let tcp = tcp(proxy.connect_host(), proxy.port())
        .await
        .map_err(|e| ConnectError(format!("cannot connect to the proxy {proxy}: {e}")))?;
    let failed = |what: &str, e: &dyn std::error::Error| {
        ConnectError(format!(
            "the proxy {proxy} failed while asked for a tunnel to {target}: {what}: {}",
            chain(e)
        ))
    };
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(target.as_str())
        .header(header::HOST, target.as_str());
    if let Some(c) = proxy.credentials() {
        let mut value = header::HeaderValue::from_str(c.basic().as_str())
            .map_err(|_| ConnectError("the proxy credentials cannot be sent in a header".into()))?;
        value.set_sensitive(true);
        req = req.header(header::PROXY_AUTHORIZATION, value);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed("bad request", &e))?;
    let exchange = async {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| failed("handshake", &e))?;
        // The connection is driven here, beside the request, until it hands
        // its socket over to the tunnel (it ends on a 2xx answer).
        let conn = conn.with_upgrades();
        tokio::pin!(conn);
        let mut conn_ended = None;
        let answer = send.send_request(req);
        tokio::pin!(answer);
        let resp = loop {
            tokio::select! {
                r = answer.as_mut() => break r.map_err(|e| failed("no answer", &e))?,
                r = conn.as_mut(), if conn_ended.is_none() => conn_ended = Some(r),
            }
        };
        let status = resp.status();
        if !status.is_success() {
            // Read (a bounded part of) the refusal so the proxy sees a
            // complete exchange; its text is not needed.
            let body = http_body_util::Limited::new(resp.into_body(), PROXY_ANSWER_LIMIT);
            if conn_ended.is_none() {
                tokio::select! {
                    _ = body.collect() => {}
                    _ = conn.as_mut() => {}
                }
            }
            let hint = match (status, proxy.credentials()) {
                (StatusCode::PROXY_AUTHENTICATION_REQUIRED, None) => {
                    " (it wants credentials: give them as http://user:password@host:port in [client] proxy)"
                }
                // Some proxies (tinyproxy) answer wrong credentials with 401.
                (StatusCode::PROXY_AUTHENTICATION_REQUIRED | StatusCode::UNAUTHORIZED, Some(_)) => {
                    " (it did not accept the credentials in [client] proxy)"
                }
                _ => "",
            };
            return Err(ConnectError(format!(
                "the proxy {proxy} refused CONNECT {target}: {status}{hint}"
            )));
        }
        let done = match conn_ended {
            Some(r) => r,
            None => conn.await,
        };
        done.map_err(|e| failed("tunnel", &e))?;
        hyper::upgrade::on(resp)
            .await
            .map_err(|e| failed("tunnel", &e))
    };
    let upgraded = tokio::time::timeout(CONNECT_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            ConnectError(format!(
                "the proxy {proxy} did not open a tunnel to {target} within {CONNECT_TIMEOUT:?}"
            ))
        })??;
    Ok(TokioIo::new(upgraded))
}

/// The byte stream under TLS: a TCP connection to the peer, or a tunnel
/// through the proxy.
enum Tunnel {
    Direct(TcpStream),
    Proxied(TokioIo<hyper::upgrade::Upgraded>),
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Tunnel::Proxied(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Tunnel::Proxied(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Direct(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Tunnel::Proxied(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Tunnel::Direct(s) => s.is_write_vectored(),
            Tunnel::Proxied(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(s) => Pin::new(s).poll_flush(cx),
            Tunnel::Proxied(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Direct(s) => Pin::new(s).poll_shutdown(cx),
            Tunnel::Proxied(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A small in-memory request body.
pub fn bytes_body(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An unexpected answer as an error, with the problem document it carried.
pub async fn fail_status(what: String, resp: http::Response<PeerBody>) -> ClientError {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    ClientError::Status { what, status, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_has_the_port_unless_it_is_the_default() {
        for (endpoint, host) in [
            ("https://committee.example:8443", "committee.example:8443"),
            ("https://committee.example:443", "committee.example"),
            ("https://committee.example", "committee.example"),
            (
                "https://committee.example:8443/base",
                "committee.example:8443",
            ),
            ("https://[2001:db8::1]:8443", "[2001:db8::1]:8443"),
            ("https://10.1.2.3", "10.1.2.3"),
        ] {
            let uri: Uri = endpoint.parse().expect("uri");
            assert_eq!(host_header(&uri).expect("host"), host, "{endpoint}");
        }
    }
}
