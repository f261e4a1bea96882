//! Push delivery: for peers whose directory entry says `delivery = "push"`,
//! this node offers each due bundle to the peer's `POST /v1/bundles` and
//! accepts the signed receipt it answers with.
//!
//! * A refused or failed attempt is recorded (`fail`) with an exponential
//!   backoff (1 s, 2 s, 4 s … capped at 1 h) plus up to 25 % random jitter, so
//!   that many nodes do not retry in step.
//! * A peer that cannot be reached pauses the whole peer: the remaining
//!   bundles wait until it answers again instead of each burning an attempt.
//! * Past its deadline, or after `max_attempts`, a delivery goes `dead`
//!   (dead letter); an operator can `retry` it.
//!
//! Time comes from an injected [`Clock`] so tests can run the schedule on
//! paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Peer};
use crate::outbox::{Delivery, Outbox, State};
use crate::receipt::SignedReceipt;
use crate::status::Health;
use crate::transport::client::{ClientError, PeerClient};
use crate::types::Timestamp;

/// The current time, as the pusher sees it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// Backoff before attempt `attempts + 1`: 2^attempts seconds, capped at an hour.
pub fn backoff(attempts: u32) -> Duration {
    crate::retry::exponential(attempts, Duration::from_secs(1), Duration::from_secs(3600))
}

enum Failure {
    /// The peer could not be reached at all: pause the peer.
    Unreachable(String),
    /// The peer answered but did not accept: count an attempt.
    Refused(String),
}

/// Pushes this node's queued bundles to one peer.
pub struct Pusher {
    config: Arc<Config>,
    outbox: Outbox,
    client: PeerClient,
    clock: Clock,
    health: Health,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("peer", &self.client.peer.id)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher for `peer` (which must have an endpoint).
    pub fn new(
        config: Arc<Config>,
        outbox: Outbox,
        peer: Peer,
        clock: Clock,
    ) -> Result<Self, ClientError> {
        let client = PeerClient::new(&config, peer)?;
        Ok(Self {
            config,
            outbox,
            client,
            clock,
            health: Health::default(),
        })
    }

    /// Reports whether the peer takes pushes (part `peer:<id>`, a condition)
    /// into `health`.
    #[must_use]
    pub fn reporting_to(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    async fn push_one(&self, d: &Delivery) -> Result<SignedReceipt, Failure> {
        let path = self.outbox.bundle_path(&d.id);
        let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        // A bundle that cannot be read is this bundle's failure, not the peer's.
        let file = std::fs::File::open(&path).map_err(|e| Failure::Refused(cannot_read(e)))?;
        let first = std::sync::Mutex::new(Some(file));
        // The body, streamed from the file's start; made a second time (the
        // file opened again) only if a kept connection closed before any
        // answer, and the peer answers a repeated push with its receipt.
        let body = || {
            let file = match first.lock().ok().and_then(|mut f| f.take()) {
                Some(file) => file,
                None => std::fs::File::open(&path)
                    .map_err(|e| ClientError::Io(std::io::Error::new(e.kind(), cannot_read(e))))?,
            };
            Ok(crate::transport::FileBody::new(file, d.size).boxed())
        };
        let headers = [
            (
                header::CONTENT_TYPE,
                "application/vnd.sealpost.bundle+zip".to_owned(),
            ),
            (header::CONTENT_LENGTH, d.size.to_string()),
        ];
        let resp = self
            .client
            .request_repeatable(Method::POST, "/v1/bundles", &headers, &body)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        if resp.status() != StatusCode::OK {
            let e = crate::transport::client::fail_status("POST /v1/bundles".into(), resp).await;
            return Err(Failure::Refused(e.to_string()));
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?
            .to_bytes();
        let signed: SignedReceipt = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Refused(format!("the answer is not a receipt: {e}")))?;
        let receipt = signed
            .verify(&self.config.trust, &self.config.directory, Timestamp::now())
            .map_err(|e| Failure::Refused(format!("[{}] {e}", e.code())))?;
        receipt
            .check(
                &d.id,
                &self.config.node.id,
                &d.peer,
                &d.envelope_sha256,
                &d.payload_sha256,
            )
            .map_err(|e| Failure::Refused(format!("[{}] {e}", e.code())))?;
        Ok(signed)
    }

    async fn record<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Outbox) -> Result<T, crate::outbox::OutboxError> + Send + 'static,
    ) -> Option<T> {
        let outbox = self.outbox.clone();
        match tokio::task::spawn_blocking(move || f(&outbox)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "outbox update failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox task failed");
                None
            }
        }
    }

    /// Offers due bundles until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let peer = self.client.peer.id.clone();
        let part = format!("peer:{peer}");
        let policy = *self.outbox.policy();
        let mut peer_pause = Duration::ZERO;
        loop {
            let now = (self.clock)();
            let p = peer.clone();
            let due: Vec<Delivery> = self
                .record(move |o| o.waiting(&p, 0, usize::MAX))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|d| match &d.state {
                    State::Queued => true,
                    State::Failed { retry_at, .. } => *retry_at <= now,
                    _ => false,
                })
                .collect();
            let mut unreachable = false;
            for d in due {
                let now = (self.clock)();
                match self.push_one(&d).await {
                    Ok(signed) => {
                        let id = d.id;
                        let stored = self.outbox.receipt_path(&id);
                        let bytes = serde_json::to_vec_pretty(&signed).unwrap_or_default();
                        self.record(move |o| {
                            match crate::fsutil::write_new_atomic(&stored, &bytes) {
                                Ok(()) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                                Err(e) => {
                                    return Err(crate::outbox::OutboxError::Io {
                                        context: "cannot store the receipt".into(),
                                        source: e,
                                    })
                                }
                            }
                            o.transition(&id, now, |d| d.deliver(now))
                        })
                        .await;
                        tracing::info!(bundle = %id, %peer, "pushed; receipt verified; delivered");
                        peer_pause = Duration::ZERO;
                        self.health
                            .set(&part, true, format!("last push delivered at {now}"));
                    }
                    Err(failure) => {
                        let (error, down) = match failure {
                            Failure::Unreachable(e) => (e, true),
                            Failure::Refused(e) => (e, false),
                        };
                        let wait = crate::retry::with_jitter(backoff(d.attempts));
                        let id = d.id;
                        let err = error.clone();
                        let after = self
                            .record(move |o| {
                                o.transition(&id, now, |d| d.fail(now, err.clone(), wait, &policy))
                            })
                            .await;
                        tracing::warn!(bundle = %id, %peer, error, retry_in = ?wait, state = after.as_ref().map(|(d, _)| d.state.name()).unwrap_or("?"), "push failed");
                        if down {
                            self.health.set(
                                &part,
                                false,
                                format!("cannot reach the peer to push: {error}"),
                            );
                            unreachable = true;
                            peer_pause = if peer_pause.is_zero() {
                                wait
                            } else {
                                (peer_pause * 2).min(Duration::from_secs(3600))
                            };
                            break;
                        }
                    }
                }
            }
            // Sleep until the peer may be reachable again, the next retry is
            // due, or something new is queued.
            let p = peer.clone();
            let next_retry = self
                .record(move |o| o.waiting(&p, 0, usize::MAX))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| match d.state {
                    State::Failed { retry_at, .. } => Some(retry_at),
                    _ => None,
                })
                .min();
            let now = (self.clock)();
            let mut sleep = next_retry
                .map(|t| {
                    Duration::from_secs(u64::try_from(t.unix() - now.unix()).unwrap_or(0).max(1))
                })
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            if unreachable {
                sleep = sleep.max(peer_pause);
            }
            let changed = self.outbox.changed().notified();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(sleep) => {}
                _ = changed, if !unreachable => {}
            }
        }
    }
}
