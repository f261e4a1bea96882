//! The HTTPS client for peers: mutual TLS with this node's certificate, the
//! peer's server certificate checked against the exchange CA. Used by the
//! court's poller ([`crate::inbox::poll`]) and by pushes ([`crate::delivery`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::config::{Config, Peer};
use crate::types::BundleId;

/// Client failures (each is logged and retried with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The peer cannot be reached at all: no TCP connection, or the TLS
    /// handshake failed. The whole peer waits.
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

fn unreachable(e: impl std::fmt::Display) -> ClientError {
    ClientError::Unreachable(e.to_string())
}

/// An HTTPS client for one peer: mutual TLS with this node's certificate,
/// the peer verified against the exchange CA.
#[derive(Debug, Clone)]
pub struct PeerClient {
    /// The peer.
    pub peer: Peer,
    tls: Arc<rustls::ClientConfig>,
}

type ReqBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl PeerClient {
    /// A client for `peer` with `config`'s TLS identity.
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
            tls: Arc::new(tls),
        })
    }

    /// One request on a fresh connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: ReqBody,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let endpoint = self
            .peer
            .endpoint
            .as_ref()
            .ok_or_else(|| transport(format!("{} has no endpoint", self.peer.id)))?;
        let host = endpoint
            .host()
            .ok_or_else(|| transport("endpoint without host"))?
            .to_owned();
        let port = endpoint.port_u16().unwrap_or(443);
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| unreachable(format!("connecting to {host}:{port} timed out")))?
        .map_err(|e| unreachable(format!("cannot connect to {host}:{port}: {e}")))?;
        let name = ServerName::try_from(host.clone()).map_err(transport)?;
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| unreachable(format!("TLS with {host}: handshake timed out")))?
        .map_err(|e| unreachable(format!("TLS with {host}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(transport)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(body).map_err(transport)?;
        sender.send_request(req).await.map_err(transport)
    }
}

/// A small in-memory request body.
pub fn bytes_body(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An unexpected answer as an error, with the problem document it carried.
pub async fn fail_status(what: String, resp: http::Response<hyper::body::Incoming>) -> ClientError {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    ClientError::Status { what, status, body }
}
