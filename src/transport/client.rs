//! The court side: the reference client that polls a committee node.
//!
//! For each committee peer with an endpoint: long-poll the list of waiting
//! bundles, download each (resuming a partial download with `Range`), verify
//! and open it into `<data_dir>/inbox/<case>/<bundle-id>/` — which appears only
//! when everything verified — write `.done` there last for the court's case
//! system, then sign and POST the receipt.
//!
//! Exactly once into the inbox: a bundle whose inbox folder already has
//! `.done` is never written again; if the receipt's response was lost, the
//! bundle is listed again and only the receipt is re-posted (the committee
//! answers a repeat with the original).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Peer};
use crate::types::{BundleId, CaseRef};

/// Client failures (each is logged and retried with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Network, TLS or HTTP trouble.
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
    /// The bundle was refused by verification (not retried until it changes).
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

fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

#[derive(Debug, Deserialize)]
struct Listed {
    id: BundleId,
    case_ref: CaseRef,
    size: u64,
}

#[derive(Debug, Deserialize)]
struct Listing {
    bundles: Vec<Listed>,
    next_cursor: String,
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
        .map_err(|_| transport(format!("connecting to {host}:{port} timed out")))?
        .map_err(|e| transport(format!("cannot connect to {host}:{port}: {e}")))?;
        let name = ServerName::try_from(host.clone()).map_err(transport)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| transport(format!("TLS with {host}: {e}")))?;
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

/// Polls one committee peer.
#[derive(Debug, Clone)]
pub struct Poller {
    config: Arc<Config>,
    peer: Peer,
    client: PeerClient,
    inbox: PathBuf,
    wait: Duration,
}

impl Poller {
    /// A poller for `peer`, which must have an endpoint.
    pub fn new(config: Arc<Config>, peer: Peer, wait: Duration) -> Result<Self, ClientError> {
        let client = PeerClient::new(&config, peer.clone())?;
        let inbox = super::inbox::root(&config);
        std::fs::create_dir_all(super::inbox::downloads(&config))?;
        Ok(Self {
            config,
            peer,
            client,
            inbox,
            wait,
        })
    }

    /// Where a bundle lands: `inbox/<case>/<bundle-id>/`.
    pub fn inbox_dir(&self, case: &CaseRef, id: &BundleId) -> PathBuf {
        self.inbox.join(case.as_str()).join(id.as_str())
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        self.client
            .request(method, path, headers, bytes_body(body))
            .await
    }

    pub(super) async fn fail_status(
        what: String,
        resp: http::Response<hyper::body::Incoming>,
    ) -> ClientError {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        ClientError::Status { what, status, body }
    }

    async fn list_now(&self) -> Result<Listing, ClientError> {
        self.get_listing("/v1/bundles?limit=500".to_owned()).await
    }

    async fn list(&self, after: &str) -> Result<Listing, ClientError> {
        self.get_listing(format!(
            "/v1/bundles?after={after}&wait={}",
            self.wait.as_secs()
        ))
        .await
    }

    async fn get_listing(&self, path: String) -> Result<Listing, ClientError> {
        let resp = self.request(Method::GET, &path, &[], Bytes::new()).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::fail_status(path, resp).await);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| transport(format!("listing: {e}")))
    }

    /// Downloads into `<data_dir>/downloads/<id>.sealpost`, resuming what is there.
    async fn download(&self, b: &Listed) -> Result<PathBuf, ClientError> {
        let part = super::inbox::downloads(&self.config).join(format!("{}.sealpost", b.id));
        let have = tokio::fs::metadata(&part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if have == b.size {
            return Ok(part);
        }
        let headers = if have > 0 && have < b.size {
            vec![(header::RANGE, format!("bytes={have}-"))]
        } else {
            vec![]
        };
        let path = format!("/v1/bundles/{}", b.id);
        let resp = self
            .request(Method::GET, &path, &headers, Bytes::new())
            .await?;
        let mut file = match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                tokio::fs::OpenOptions::new()
                    .append(true)
                    .open(&part)
                    .await?
            }
            StatusCode::OK => tokio::fs::File::create(&part).await?,
            _ => return Err(Self::fail_status(path, resp).await),
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(transport)?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await?;
            }
        }
        file.sync_all().await?;
        Ok(part)
    }

    /// One bundle: into the inbox (once), then the receipt.
    async fn take(&self, b: &Listed) -> Result<(), ClientError> {
        let part = super::inbox::downloads(&self.config).join(format!("{}.sealpost", b.id));
        // The listing's case only locates an earlier delivery; where a bundle
        // goes is decided by its verified envelope.
        let mut dest = self.inbox_dir(&b.case_ref, &b.id);
        if !dest.join(".done").exists() {
            // A download resumed from a kept partial file is retried once from
            // scratch if it fails verification: the partial may have been bad.
            let resumed = tokio::fs::metadata(&part).await.is_ok_and(|m| m.len() > 0);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let file = self.download(b).await?;
                let config = self.config.clone();
                let from = self.peer.id.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    super::inbox::deliver(&config, &file, Some(&from))
                })
                .await
                .map_err(transport)?;
                match opened {
                    Ok(d) => {
                        dest = d;
                        break;
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        if resumed && attempt == 1 && e.is_bundle_fault() {
                            tracing::warn!(bundle = %b.id, code = e.code(), "a resumed download failed verification; downloading it again");
                            continue;
                        }
                        return Err(ClientError::Refused {
                            id: b.id,
                            code: e.code(),
                            detail: e.to_string(),
                        });
                    }
                }
            }
        }
        self.post_receipt(b, &dest).await?;
        let _ = tokio::fs::remove_file(&part).await;
        Ok(())
    }

    async fn post_receipt(&self, b: &Listed, dest: &Path) -> Result<(), ClientError> {
        let config = self.config.clone();
        let dir = dest.to_owned();
        let signed = tokio::task::spawn_blocking(move || super::inbox::receipt_for(&config, &dir))
            .await
            .map_err(transport)??;
        let path = format!("/v1/bundles/{}/receipt", b.id);
        let body = Bytes::from(serde_json::to_vec(&signed).map_err(transport)?);
        let resp = self
            .request(
                Method::POST,
                &path,
                &[(header::CONTENT_TYPE, "application/json".into())],
                body,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::fail_status(path, resp).await);
        }
        tracing::info!(bundle = %b.id, "receipt accepted");
        Ok(())
    }

    /// Polls until `shutdown`; failures back off exponentially (1 s … 5 min, with jitter).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut cursor = "0".to_owned();
        let mut backoff = Duration::from_secs(1);
        let mut refused: std::collections::HashSet<BundleId> = Default::default();
        loop {
            let round = async {
                // Every round starts with a full listing (a bundle an operator
                // re-offered keeps its old position); then a long-poll past the
                // newest one waits for news.
                let full = self.list_now().await?;
                let mut listing = if full.bundles.iter().any(|b| !refused.contains(&b.id)) {
                    full
                } else {
                    self.list(&cursor).await?
                };
                listing.bundles.retain(|b| !refused.contains(&b.id));
                for b in &listing.bundles {
                    match self.take(b).await {
                        Ok(()) => {}
                        Err(ClientError::Refused { id, code, detail }) => {
                            tracing::error!(bundle = %id, code, detail, "bundle refused; not retried");
                            refused.insert(id);
                        }
                        Err(e) => return Err(e),
                    }
                }
                if listing.next_cursor.parse::<u64>().unwrap_or(0)
                    > cursor.parse::<u64>().unwrap_or(0)
                {
                    cursor = listing.next_cursor;
                }
                Ok::<(), ClientError>(())
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = round => r,
            };
            match result {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => {
                    let jitter = Duration::from_millis(
                        crate::types::BundleId::generate()
                            .as_str()
                            .bytes()
                            .map(u64::from)
                            .sum::<u64>()
                            % 500,
                    );
                    tracing::warn!(peer = %self.peer.id, error = %e, retry_in = ?(backoff + jitter), "poll failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff + jitter) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
    }
}
