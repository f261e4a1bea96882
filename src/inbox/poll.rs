//! The court side: the reference client that polls a committee node.
//!
//! For each committee peer with an endpoint, every round: list everything
//! waiting, then take each bundle that is due — download it (resuming a
//! partial download with `Range`), verify and open it into the inbox
//! ([`crate::inbox::deliver`]: exactly once, with this node's receipt signed
//! once and kept beside `.done`), and POST that stored receipt. When nothing is
//! due, a long-poll past the newest bundle waits for news.
//!
//! **One bundle never holds up the others.** A bundle that fails — download,
//! verification, or a receipt the committee refuses — gets its own failure
//! record and backoff (1 s doubling to 10 min) and is retried and logged at
//! each step while the round goes on with the rest. Only a committee that
//! cannot be reached at all (connection or TLS handshake refused) pauses the
//! whole peer, with its own backoff (1 s … 5 min).
//!
//! A receipt whose answer was lost is simply posted again: the same bytes,
//! from `receipt.json` (the committee answers a repeat with the original).
//!
//! The poller's requests follow one another on one kept TLS connection (see
//! [`crate::transport::client`]; through the `[client] proxy` if one is set),
//! and each may be repeated once if the connection closed before an answer.
//! Each must begin to be answered within the long-poll wait plus 30 s, and a
//! download that stalls for a minute is given up and resumed later.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Peer};
use crate::status::Health;
use crate::transport::client::{transport, ClientError, PeerBody, PeerClient};
use crate::types::{BundleId, CaseRef};

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

/// Polls one committee peer.
#[derive(Debug, Clone)]
pub struct Poller {
    config: Arc<Config>,
    peer: Peer,
    client: PeerClient,
    wait: Duration,
    health: Health,
    audit: Option<crate::audit::Audit>,
}

/// A bundle that failed: when to try it again, and why it failed last.
#[derive(Debug, Clone)]
struct Failing {
    attempts: u32,
    next: tokio::time::Instant,
}

/// First and longest wait before a failed bundle is tried again.
const BUNDLE_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// First and longest pause of a peer that cannot be reached.
const PEER_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));
/// Most bundles asked for in one full listing.
const FULL_LISTING: usize = 500;
/// How much longer than the long-poll wait an answer may take to begin.
const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// Longest pause in a download before it is given up (and resumed later).
const DOWNLOAD_STALL: Duration = Duration::from_secs(60);

impl Poller {
    /// A poller for `peer`, which must have an endpoint.
    pub fn new(config: Arc<Config>, peer: Peer, wait: Duration) -> Result<Self, ClientError> {
        let client = PeerClient::new(&config, peer.clone())?;
        std::fs::create_dir_all(crate::inbox::downloads(&config).join(peer.id.as_str()))?;
        Ok(Self {
            config,
            peer,
            client,
            wait,
            health: Health::default(),
            audit: None,
        })
    }

    /// Records each bundle taken in (`bundle-received`) in `audit`.
    #[must_use]
    pub fn auditing(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Reports whether the committee answers (part `peer:<id>`, a condition)
    /// into `health`.
    #[must_use]
    pub fn reporting_to(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// One request (all of the poller's are safe to repeat), answered within
    /// the long-poll wait plus [`ANSWER_GRACE`].
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
    ) -> Result<http::Response<PeerBody>, ClientError> {
        let within = self.wait + ANSWER_GRACE;
        tokio::time::timeout(
            within,
            self.client
                .request_idempotent(method.clone(), path, headers, body),
        )
        .await
        .map_err(|_| {
            transport(format!(
                "no answer from {} to {method} {path} within {within:?}",
                self.peer.id
            ))
        })?
    }

    async fn list_now(&self) -> Result<Listing, ClientError> {
        self.get_listing(format!("/v1/bundles?limit={FULL_LISTING}"))
            .await
    }

    async fn list(&self, after: u64, wait: Duration) -> Result<Listing, ClientError> {
        self.get_listing(format!(
            "/v1/bundles?after={after}&wait={}",
            wait.as_secs().max(1)
        ))
        .await
    }

    async fn get_listing(&self, path: String) -> Result<Listing, ClientError> {
        let resp = self.request(Method::GET, &path, &[], Bytes::new()).await?;
        if resp.status() != StatusCode::OK {
            return Err(crate::transport::client::fail_status(path, resp).await);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| transport(format!("listing: {e}")))
    }

    fn download_path(&self, id: &BundleId) -> PathBuf {
        crate::inbox::download_path(&self.config, &self.peer.id, id)
    }

    /// Downloads into `downloads/<peer>/<id>.sealpost`, resuming what is there.
    async fn download(&self, b: &Listed) -> Result<PathBuf, ClientError> {
        let part = self.download_path(&b.id);
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
            _ => return Err(crate::transport::client::fail_status(path, resp).await),
        };
        let mut body = resp.into_body();
        loop {
            let frame = tokio::time::timeout(DOWNLOAD_STALL, body.frame())
                .await
                .map_err(|_| {
                    transport(format!(
                        "the download of {} stalled for {DOWNLOAD_STALL:?}",
                        b.id
                    ))
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(transport)?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await?;
            }
        }
        file.sync_all().await?;
        Ok(part)
    }

    /// One bundle: into the inbox (once), then its stored receipt.
    async fn take(&self, b: &Listed) -> Result<(), ClientError> {
        let part = self.download_path(&b.id);
        // The listing's case only locates an earlier delivery; where a bundle
        // goes is decided by its verified envelope.
        let hint = crate::inbox::dir_for(&self.config, &b.case_ref, &b.id);
        let stored = match crate::inbox::stored(&hint)? {
            Some(s) => s,
            None => self.fetch_and_store(b).await?,
        };
        self.post_receipt(b, stored.receipt).await?;
        let _ = tokio::fs::remove_file(&part).await;
        Ok(())
    }

    async fn fetch_and_store(&self, b: &Listed) -> Result<crate::inbox::Stored, ClientError> {
        let part = self.download_path(&b.id);
        // A download resumed from a kept partial file is retried once from
        // scratch if it fails verification: the partial may have been bad.
        let resumed = tokio::fs::metadata(&part).await.is_ok_and(|m| m.len() > 0);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let file = self.download(b).await?;
            let config = self.config.clone();
            let from = self.peer.id.clone();
            let audit = self.audit.clone();
            let taken = tokio::task::spawn_blocking(move || {
                crate::inbox::deliver_recorded(
                    &config,
                    &file,
                    &from,
                    audit.as_ref(),
                    crate::audit::Via::Poll,
                )
            })
            .await
            .map_err(transport)?;
            match taken {
                Ok(stored) => return Ok(stored),
                Err(crate::inbox::InboxError::Io { context, source }) => {
                    return Err(ClientError::Io(std::io::Error::new(
                        source.kind(),
                        format!("{context}: {source}"),
                    )))
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&part).await;
                    if resumed && attempt == 1 {
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

    async fn post_receipt(&self, b: &Listed, receipt: Vec<u8>) -> Result<(), ClientError> {
        let path = format!("/v1/bundles/{}/receipt", b.id);
        let resp = self
            .request(
                Method::POST,
                &path,
                &[(header::CONTENT_TYPE, "application/json".into())],
                Bytes::from(receipt),
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(crate::transport::client::fail_status(path, resp).await);
        }
        // Read to its end, so that the connection is kept for the next
        // request (an unread answer closes it).
        resp.into_body().collect().await.map_err(transport)?;
        tracing::info!(peer = %self.peer.id, bundle = %b.id, "receipt accepted");
        Ok(())
    }

    /// Polls until `shutdown`. A bundle being taken in when `shutdown` comes
    /// is finished first (its download, verification and receipt); a wait for
    /// news is cut short.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut cursor = 0u64;
        let mut peer_failures = 0u32;
        let mut failing: HashMap<BundleId, Failing> = HashMap::new();
        let part = format!("peer:{}", self.peer.id);
        if let Some(proxy) = self.client.proxy() {
            tracing::info!(peer = %self.peer.id, %proxy, "polling through the proxy");
        }
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let result = self.round(&mut cursor, &mut failing, &shutdown).await;
            match result {
                Ok(()) => {
                    peer_failures = 0;
                    self.health.set(&part, true, "answers");
                }
                Err(e) => {
                    self.health
                        .set(&part, false, format!("cannot poll the committee: {e}"));
                    let wait = crate::retry::delay(peer_failures, PEER_RETRY.0, PEER_RETRY.1);
                    peer_failures = peer_failures.saturating_add(1);
                    tracing::warn!(peer = %self.peer.id, error = %e, attempt = peer_failures, retry_in = ?wait, "cannot poll the committee; the whole peer waits");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One round (see the module doc). Fails only when the peer cannot be
    /// listed or reached.
    async fn round(
        &self,
        cursor: &mut u64,
        failing: &mut HashMap<BundleId, Failing>,
        shutdown: &CancellationToken,
    ) -> Result<(), ClientError> {
        // Every round starts with a full listing (a bundle an operator
        // re-offered keeps its old position).
        let full = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = self.list_now() => r?,
        };
        let complete = full.bundles.len() < FULL_LISTING;
        if complete {
            failing.retain(|id, _| full.bundles.iter().any(|b| &b.id == id));
            self.forget_downloads(&full.bundles).await;
        }
        let due = |b: &&Listed, failing: &HashMap<BundleId, Failing>| {
            failing
                .get(&b.id)
                .is_none_or(|f| f.next <= tokio::time::Instant::now())
        };
        let mut todo: Vec<&Listed> = full.bundles.iter().filter(|b| due(b, failing)).collect();
        let polled;
        if todo.is_empty() {
            // Nothing due: wait for news, but not past the next retry.
            let next_retry = failing.values().map(|f| f.next).min();
            let wait = next_retry
                .map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
                .unwrap_or(self.wait)
                .min(self.wait);
            polled = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.list(*cursor, wait) => r?,
            };
            todo = polled.bundles.iter().filter(|b| due(b, failing)).collect();
            bump(cursor, &polled.next_cursor);
        }
        bump(cursor, &full.next_cursor);
        for b in todo {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match self.take(b).await {
                Ok(()) => {
                    if failing.remove(&b.id).is_some() {
                        tracing::info!(peer = %self.peer.id, bundle = %b.id, "a bundle that had failed is delivered now");
                    }
                }
                Err(e @ ClientError::Unreachable(_)) => return Err(e),
                Err(e) => {
                    let f = failing.entry(b.id).or_insert(Failing {
                        attempts: 0,
                        next: tokio::time::Instant::now(),
                    });
                    let wait = crate::retry::delay(f.attempts, BUNDLE_RETRY.0, BUNDLE_RETRY.1);
                    f.attempts = f.attempts.saturating_add(1);
                    f.next = tokio::time::Instant::now() + wait;
                    let code = match &e {
                        ClientError::Refused { code, .. } => (*code).to_owned(),
                        ClientError::Status { status, body, .. } => problem_code(*status, body),
                        ClientError::Io(_) => "local-io".to_owned(),
                        _ => "transport".to_owned(),
                    };
                    tracing::error!(peer = %self.peer.id, bundle = %b.id, attempt = f.attempts, code = %code, error = %e, retry_in = ?wait, "bundle failed; the others go on, this one is retried");
                }
            }
        }
        Ok(())
    }

    /// Removes partial downloads of bundles that are no longer waiting.
    async fn forget_downloads(&self, listed: &[Listed]) {
        let dir = crate::inbox::downloads(&self.config).join(self.peer.id.as_str());
        let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
            return;
        };
        while let Ok(Some(e)) = rd.next_entry().await {
            let name = e.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".sealpost"))
                .and_then(|n| n.parse::<BundleId>().ok());
            if id.is_some_and(|id| !listed.iter().any(|b| b.id == id)) {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
}

fn bump(cursor: &mut u64, next: &str) {
    if let Ok(n) = next.parse::<u64>() {
        *cursor = (*cursor).max(n);
    }
}

/// The `code` of a problem document (or the status), for the log.
fn problem_code(status: StatusCode, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("http-{}", status.as_u16()))
}
