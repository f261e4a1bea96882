//! The evidence service: puts the outbox's changes in the audit log, signs
//! checkpoints periodically and at stop, and writes the proof of delivery
//! (送达证明) of every application whose receipt is stored.
//!
//! ```text
//! <data_dir>/proofs/proof-<bundle-id>.zip    the proof, as `sealpost proof` exports it
//! ```
//!
//! The proof is also handed to a *share* (the daemon passes the committee's
//! casework, which puts it beside the clerks' status file).
//!
//! A receipt stored, then a crash before its `receipt-stored` record or its
//! proof: at start every delivered application without a proof is queued
//! again, and a missing `receipt-stored` record is appended before the proof
//! is made (`docs/audit-format.md` §8).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use super::proof::{self, ProofParts};
use crate::audit::{Audit, AuditError, Entry};
use crate::bundle::Kind;
use crate::config::Config;
use crate::fsutil::write_replace_atomic;
use crate::outbox::{Change, Event, Outbox, State};
use crate::pki::pem_encode;
use crate::receipt::SignedReceipt;
use crate::types::{printable, AgencyId, BundleId, Sha256, Timestamp};

/// How often a checkpoint is signed when records were added.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// How often a wedged audit log is tried again (see [`crate::audit::Audit::recover`]).
const RECOVER_EVERY: Duration = Duration::from_secs(2);

/// The name the audit log reports its health under.
pub const HEALTH_PART: &str = "audit";

/// First retry delay for a proof that could not be made.
const PROOF_RETRY: Duration = Duration::from_secs(30);
/// Longest retry delay for a proof.
const PROOF_RETRY_CAP: Duration = Duration::from_secs(3600);

/// Receives each new proof: the bundle, the zip and its printable page.
pub type Share = Arc<dyn Fn(&BundleId, &[u8], &str) + Send + Sync>;

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// No such delivery, or not delivered yet.
    #[error("{0}")]
    NotDelivered(String),
    /// The audit log refused.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// A file the proof needs is missing or unreadable.
    #[error("{context}: {source}")]
    Io {
        /// What was read or written.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The proof could not be built (or did not verify).
    #[error("the proof does not come together: {0}")]
    Proof(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvidenceError {
    let context = context.into();
    move |source| EvidenceError::Io { context, source }
}

struct Inner {
    config: RwLock<Arc<Config>>,
    outbox: Outbox,
    audit: Audit,
    share: OnceLock<Share>,
    health: OnceLock<crate::status::Health>,
    pending: Mutex<BTreeSet<BundleId>>,
    wake: tokio::sync::Notify,
    written: AtomicU64,
    failed: AtomicU64,
}

/// The evidence service. Cheap to clone.
#[derive(Clone)]
pub struct Evidence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("audit", &self.inner.audit)
            .finish()
    }
}

/// Where proofs are kept under `data_dir`.
pub fn proofs_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("proofs")
}

impl Evidence {
    /// The service for this node's outbox and audit log.
    pub fn new(config: Arc<Config>, outbox: Outbox, audit: Audit) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: RwLock::new(config),
                outbox,
                audit,
                share: OnceLock::new(),
                health: OnceLock::new(),
                pending: Mutex::new(BTreeSet::new()),
                wake: tokio::sync::Notify::new(),
                written: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        }
    }

    /// Hands every new proof to `share` as well.
    pub fn sharing(self, share: Share) -> Self {
        let _ = self.inner.share.set(share);
        self
    }

    /// The configuration a reload put in force (the signing key may change).
    pub fn reconfigure(&self, next: Arc<Config>) {
        *self.inner.config.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    fn config(&self) -> Arc<Config> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The audit log.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// The bundles whose proofs are waiting to be made.
    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<BundleId>> {
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Proofs written and failed attempts, for metrics.
    pub fn counts(&self) -> (u64, u64, usize) {
        (
            self.inner.written.load(Ordering::Relaxed),
            self.inner.failed.load(Ordering::Relaxed),
            self.pending().len(),
        )
    }

    /// Appends `entry`, logging a failure (the caller's work is done and
    /// durable; the log's own health shows the failure).
    pub fn record(&self, entry: Entry) {
        let health = self.inner.health.get();
        match self.inner.audit.append(entry) {
            Ok(_) => {
                if let Some(h) = health {
                    if h.parts().get(HEALTH_PART).is_some_and(|p| !p.ok) {
                        h.set(HEALTH_PART, true, "appending");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot append to the audit log");
                if let Some(h) = health {
                    h.set(HEALTH_PART, false, e.to_string());
                }
            }
        }
    }

    /// Sets the `audit` part from the log's own state (a failed fsync by
    /// any appender breaks it).
    fn report_health(&self) {
        if let Some(h) = self.inner.health.get() {
            let broken = self.inner.audit.stats().broken;
            h.set(
                HEALTH_PART,
                !broken,
                if broken {
                    "a write or fdatasync of the audit log failed: appends are refused until it is cut back to its last durable record (retried every few seconds)"
                } else {
                    "appending"
                },
            );
        }
    }

    /// Reports the audit log's health (part `audit`) into `health`.
    pub fn reporting_to(self, health: crate::status::Health) -> Self {
        health.set(HEALTH_PART, !self.inner.audit.stats().broken, "appending");
        let _ = self.inner.health.set(health);
        self
    }

    /// Subscribes to the outbox's events.
    pub fn subscribe(&self) {
        let me = self.clone();
        self.inner
            .outbox
            .bus()
            .subscribe(Arc::new(move |e| me.on_delivery(e)));
    }

    fn on_delivery(&self, e: &Event) {
        let changed = |change: &str, detail: Option<String>| Entry::DeliveryChanged {
            bundle_id: e.id,
            peer: e.peer.clone(),
            change: change.to_owned(),
            detail,
        };
        let entry = match &e.change {
            Change::Queued => Entry::BundleSealed {
                bundle_id: e.id,
                peer: e.peer.clone(),
                case_ref: e.case_ref.clone(),
                envelope_sha256: e.envelope_sha256,
                payload_sha256: e.payload_sha256,
                size: e.size,
            },
            Change::Fetched => Entry::BundleFetched {
                bundle_id: e.id,
                peer: e.peer.clone(),
            },
            Change::Delivered => match self.receipt_entry(&e.id, &e.peer) {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::error!(bundle = %e.id, error = %err, "cannot read the stored receipt for the audit log; the proof's catch-up records it");
                    return self.queue_proof(e.id, e.kind);
                }
            },
            Change::Failed {
                attempts, error, ..
            } => changed("failed", Some(format!("attempt {attempts}: {error}"))),
            Change::Dead { reason } => changed("dead", Some(reason.clone())),
            Change::Cancelled { reason } => changed("cancelled", Some(reason.clone())),
            Change::Retried => changed("retried", None),
            Change::Requeued { seq } => changed("requeued", Some(format!("position {seq}"))),
        };
        self.record(entry);
        if matches!(e.change, Change::Delivered) {
            self.queue_proof(e.id, e.kind);
        }
    }

    fn queue_proof(&self, id: BundleId, kind: Kind) {
        if kind != Kind::PreservationApplication {
            // Nothing to prove: settled at once.
            return self.settle(&id);
        }
        self.pending().insert(id);
        self.inner.wake.notify_one();
    }

    /// The stored receipt of `id`: its exact bytes and the signed form.
    fn stored_receipt(&self, id: &BundleId) -> Result<(SignedReceipt, Vec<u8>), EvidenceError> {
        let path = self.inner.outbox.receipt_path(id);
        let bytes =
            std::fs::read(&path).map_err(io_err(format!("cannot read {}", path.display())))?;
        let signed: SignedReceipt = serde_json::from_slice(&bytes)
            .map_err(|e| EvidenceError::Proof(format!("{}: {e}", path.display())))?;
        let raw = B64
            .decode(&signed.receipt)
            .map_err(|e| EvidenceError::Proof(format!("{}: {e}", path.display())))?;
        Ok((signed, raw))
    }

    fn receipt_entry(&self, id: &BundleId, peer: &AgencyId) -> Result<Entry, EvidenceError> {
        let (signed, raw) = self.stored_receipt(id)?;
        Ok(Entry::ReceiptStored {
            bundle_id: *id,
            peer: peer.clone(),
            receipt_sha256: Sha256::of(&raw),
            received_at: signed
                .unverified_received_at()
                .ok_or_else(|| EvidenceError::Proof("the stored receipt has no time".into()))?,
        })
    }

    /// Tells the outbox that `id` needs no more after-delivery work; a failure
    /// only means the next start's catch-up looks at it again.
    fn settle(&self, id: &BundleId) {
        if let Err(e) = self.inner.outbox.settle(id) {
            tracing::warn!(bundle = %id, error = %e, "cannot mark the proof of delivery as settled; the next start checks it again");
        }
    }

    /// Where the proof of `id` is kept.
    pub fn proof_path(&self, id: &BundleId) -> PathBuf {
        proofs_dir(&self.config().node.data_dir).join(proof::file_name(id))
    }

    /// Makes (or finds) the proof of delivery of `id` and returns its path.
    /// Blocking: signs a checkpoint and reads the audit log.
    pub fn make_proof(&self, id: &BundleId) -> Result<PathBuf, EvidenceError> {
        let config = self.config();
        let path = self.proof_path(id);
        if path.exists() {
            self.settle(id);
            return Ok(path);
        }
        let d = self
            .inner
            .outbox
            .get(id)
            .map_err(|e| EvidenceError::NotDelivered(e.to_string()))?
            .ok_or_else(|| {
                EvidenceError::NotDelivered(format!("no delivery {id} in the outbox"))
            })?;
        if !matches!(d.state, State::Delivered { .. }) {
            return Err(EvidenceError::NotDelivered(format!(
                "bundle {id} is {}, not delivered: there is no receipt to prove delivery with",
                d.state.name()
            )));
        }
        let (signed, raw) = self.stored_receipt(id)?;
        let audit = &self.inner.audit;
        let key = &config.keys.signing;
        let needle = format!("\"receipt_sha256\":\"{}\"", Sha256::of(&raw));
        // Through a checkpoint covering the receipt's record, whatever else
        // is appended meanwhile.
        let excerpt = |audit: &Audit| -> Result<Option<Vec<u8>>, EvidenceError> {
            match audit.checkpoint_covering(key)? {
                Some(through) => Ok(audit.excerpt(id, through)?),
                None => Ok(None),
            }
        };
        let mut ex = excerpt(audit)?;
        let sealed_needle = format!("\"kind\":\"bundle-sealed\",\"bundle_id\":\"{id}\"");
        let holds = |ex: &Option<Vec<u8>>, needle: &str| {
            ex.as_deref()
                .is_some_and(|b| String::from_utf8_lossy(b).contains(needle))
        };
        // A record lost in a crash between a durable change and its record
        // (`docs/audit-format.md` §8) is recorded now, from the outbox's
        // state, so that the proof can be made; its time shows it came late.
        let mut recorded = false;
        if !holds(&ex, &sealed_needle) {
            tracing::warn!(bundle = %id, "the audit log has no record of this bundle's sealing (a crash in between); recording it now");
            self.record(Entry::BundleSealed {
                bundle_id: d.id,
                peer: d.peer.clone(),
                case_ref: d.case_ref.clone(),
                envelope_sha256: d.envelope_sha256,
                payload_sha256: d.payload_sha256,
                size: d.size,
            });
            recorded = true;
        }
        if !holds(&ex, &needle) {
            tracing::warn!(bundle = %id, "the audit log has no record of this receipt (a crash in between); recording it now");
            self.record(self.receipt_entry(id, &d.peer)?);
            recorded = true;
        }
        if recorded {
            ex = excerpt(audit)?;
        }
        let ex = ex.ok_or_else(|| {
            EvidenceError::Proof(format!("the audit log has no record of bundle {id}"))
        })?;
        let bundle_file = self.inner.outbox.bundle_path(id);
        let bp =
            proof::bundle_parts(&bundle_file).map_err(|e| EvidenceError::Proof(e.to_string()))?;
        let mpath = self.inner.outbox.manifest_path(id);
        let manifest_json =
            std::fs::read(&mpath).map_err(io_err(format!("cannot read {}", mpath.display())))?;
        let spath = mpath.with_extension("sig");
        let manifest_sig =
            std::fs::read(&spath).map_err(io_err(format!("cannot read {}", spath.display())))?;
        let ca_pem: String = config
            .trust
            .der_certs()
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect();
        let parts = ProofParts {
            envelope_json: &bp.envelope_json,
            envelope_sig: &bp.envelope_sig,
            envelope_signer_pem: &bp.signer_pem,
            manifest_json: &manifest_json,
            manifest_sig: &manifest_sig,
            receipt: &signed,
            audit_excerpt: &ex,
            exchange_ca_pem: ca_pem.as_bytes(),
            made_at: Timestamp::now(),
            signer: key,
        };
        let (bytes, html) = proof::build_with_page(&parts, &config.trust)
            .map_err(|e| EvidenceError::Proof(e.to_string()))?;
        let dir = proofs_dir(&config.node.data_dir);
        std::fs::create_dir_all(&dir)
            .map_err(io_err(format!("cannot create {}", dir.display())))?;
        write_replace_atomic(&path, &bytes)
            .map_err(io_err(format!("cannot write {}", path.display())))?;
        self.settle(id);
        self.inner.written.fetch_add(1, Ordering::Relaxed);
        tracing::info!(bundle = %id, case = %printable(d.case_ref.as_str()), proof = %path.display(), "proof of delivery written");
        if let Some(share) = self.inner.share.get() {
            share(id, &bytes, &html);
        }
        Ok(path)
    }

    /// Queues every delivered application that has no proof yet (after a crash).
    fn catch_up(&self) -> Result<usize, EvidenceError> {
        // A proof being written when the node was killed.
        let dir = proofs_dir(&self.config().node.data_dir);
        match crate::fsutil::remove_stale_temps(&dir) {
            Ok(n) if n > 0 => tracing::info!(removed = n, "unfinished proof files removed"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot clean the proofs folder")
            }
        }
        // Only the deliveries not yet settled (the outbox's `p/` index), not
        // the whole history: a start stays O(unsettled).
        let outbox = &self.inner.outbox;
        let not_delivered =
            |e: crate::outbox::OutboxError| EvidenceError::NotDelivered(e.to_string());
        let unsettled: Vec<BundleId> = outbox
            .unsettled()
            .collect::<Result<_, _>>()
            .map_err(not_delivered)?;
        let mut n = 0;
        for id in unsettled {
            let owed = outbox.get(&id).map_err(not_delivered)?.filter(|d| {
                matches!(d.state, State::Delivered { .. })
                    && d.kind == Kind::PreservationApplication
            });
            match owed {
                Some(d) if !self.proof_path(&d.id).exists() => {
                    self.queue_proof(d.id, d.kind);
                    n += 1;
                }
                _ => self.settle(&id),
            }
        }
        Ok(n)
    }

    /// Signs a checkpoint if records were added since the last one.
    pub fn checkpoint(&self) {
        let config = self.config();
        if let Err(e) = self.inner.audit.checkpoint(&config.keys.signing) {
            tracing::error!(error = %e, "cannot sign an audit checkpoint");
        }
    }

    /// Makes the queued proofs, signs periodic checkpoints; until `stop`.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), String> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.catch_up()).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(proofs = n, "delivered applications without a proof of delivery (an interrupted run): making them")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot look for missing proofs"),
            _ => {}
        }
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut retry_at: Option<tokio::time::Instant> = None;
        // Failed rounds in a row: the retry backs off (30 s doubling to 1 h).
        let mut attempts: u32 = 0;
        loop {
            let retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.checkpoint()).await;
                    self.report_health();
                    continue;
                }
                // A failed write or sync wedged the log: try to recover
                // every few seconds (an append tries too), so that the node
                // is ready again soon after the fault clears.
                _ = tokio::time::sleep(RECOVER_EVERY) => {
                    if self.inner.audit.stats().broken {
                        let audit = self.inner.audit.clone();
                        let _ = tokio::task::spawn_blocking(move || audit.recover()).await;
                    }
                    self.report_health();
                    continue;
                }
                _ = self.inner.wake.notified() => {}
                _ = retry => { retry_at = None; }
            }
            let ids: Vec<BundleId> = std::mem::take(&mut *self.pending()).into_iter().collect();
            for id in ids {
                let me = self.clone();
                let r = tokio::task::spawn_blocking(move || me.make_proof(&id)).await;
                let failed = match r {
                    Ok(Ok(_)) => false,
                    Ok(Err(EvidenceError::NotDelivered(why))) => {
                        tracing::warn!(bundle = %id, why = %why, "no proof of delivery to make");
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::error!(bundle = %id, error = %e, "cannot make the proof of delivery; retrying later");
                        true
                    }
                    Err(e) => {
                        tracing::error!(bundle = %id, error = %e, "the proof task failed");
                        true
                    }
                };
                if failed {
                    self.inner.failed.fetch_add(1, Ordering::Relaxed);
                    self.pending().insert(id);
                    attempts += 1;
                    retry_at = Some(
                        tokio::time::Instant::now()
                            + crate::retry::delay(attempts, PROOF_RETRY, PROOF_RETRY_CAP),
                    );
                } else {
                    attempts = 0;
                }
            }
        }
    }
}
