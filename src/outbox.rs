//! The outbox: sealed bundles waiting for their recipient, with their delivery
//! state. The module doc is the specification; keep it true.
//!
//! ## On disk
//!
//! ```text
//! <data_dir>/outbox/bundles/<bundle-id>.sealpost   the bundle bytes (the source of truth)
//! <data_dir>/outbox/index/                          sled database (small records only)
//! ```
//!
//! Bundle files are written by [`crate::bundle::seal`] atomically (temporary
//! name, fsync, rename, fsync of the directory) *before* a record refers to
//! them. Intake seals to a hidden pending name first (`.<id>.sealpost.pending`)
//! and publishes it ([`Outbox::publish`]) only once it has checked that the
//! originals did not change while they were sealed; a pending file found at
//! start is removed. sled holds only small records, in its default tree:
//!
//! | key | value |
//! |---|---|
//! | `d/<bundle-id>` | [`Delivery`] as JSON (< 1 KiB) |
//! | `s/<seq: u64 big-endian>` | bundle id (listing order, API cursors) |
//! | `c/<case-ref>\0<bundle-id>` | empty (duplicate-case check) |
//! | `meta/seq` | last sequence number, u64 big-endian |
//!
//! ## Durability
//!
//! sled's `flush` uses `sync_file_range`, which is not a durability barrier, and
//! never syncs its blob files. So every change is applied as one atomic batch,
//! then `flush`ed, then every file and directory under `index/` is fsynced
//! ([`Outbox::commit`]) before the change is acknowledged to anyone or acted on.
//!
//! ## States
//!
//! ```text
//!            fetch                 receipt
//!  queued ──────────► fetched ───────────────► delivered
//!    │ ▲  ◄──────────── │ (requeue)               (final)
//!    │ │ retry          │ fail
//!    │ │                ▼
//!    │ └────────────  failed ──(attempts or deadline exhausted)──► dead
//!    │                  │                                            │ retry
//!    └──── cancel ──────┴──────────── cancel ────────────────────────┴──► cancelled (final)
//! ```
//!
//! Each waiting state has a deadline: `queued`/`failed` must be fetched within
//! `deadline` of queuing, `fetched` must be receipted within `receipt_deadline`
//! of the fetch; past it [`Outbox::sweep`] moves the delivery to `dead`, and past
//! `warn_at` it is reported overdue.
//!
//! Invariants: a delivery is `delivered` at most once and then never changes;
//! `cancelled` is final; `dead` and `failed` come back only by an operator's
//! `retry`; every transition is one of the named methods on [`Delivery`].
//!
//! ## Recovery
//!
//! If the index is lost or corrupt, `sealpost outbox rebuild` recreates it from
//! the bundle files ([`Outbox::rebuild`]): every bundle becomes `queued` again.
//! Re-offering a bundle is safe: the recipient deduplicates by bundle id and a
//! repeated receipt returns the original.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::{self, Envelope, Kind};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// Delivery deadlines (one per waiting state) and retry limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `queued`/`failed`: a bundle not fetched (or pushed) this long after
    /// queuing goes `dead`.
    pub deadline: Duration,
    /// `fetched`: a bundle whose receipt has not arrived this long after the
    /// fetch goes `dead` (the court downloaded it but never signed for it).
    pub receipt_deadline: Duration,
    /// In either state, after this long the delivery is reported as overdue.
    pub warn_after: Duration,
    /// Failed attempts before a delivery goes `dead`.
    pub max_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(7 * 86_400),
            receipt_deadline: Duration::from_secs(2 * 86_400),
            warn_after: Duration::from_secs(86_400),
            max_attempts: 20,
        }
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Waiting for the recipient to fetch it (or for a push attempt).
    Queued,
    /// Downloaded by the recipient; waiting for its signed receipt.
    Fetched {
        /// When it was (last) fetched.
        at: Timestamp,
    },
    /// The recipient's receipt was verified. Final.
    Delivered {
        /// When the receipt was accepted.
        at: Timestamp,
    },
    /// A push attempt failed; retried at `retry_at`.
    Failed {
        /// When to try again.
        retry_at: Timestamp,
        /// What went wrong last.
        error: String,
    },
    /// Given up: deadline passed or attempts exhausted. An operator may retry.
    Dead {
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
    /// Withdrawn by an operator. Final.
    Cancelled {
        /// When.
        at: Timestamp,
        /// Why (the operator's words).
        reason: String,
    },
}

impl State {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Fetched { .. } => "fetched",
            State::Delivered { .. } => "delivered",
            State::Failed { .. } => "failed",
            State::Dead { .. } => "dead",
            State::Cancelled { .. } => "cancelled",
        }
    }
    /// Whether nothing more will happen without an operator.
    pub fn is_final(&self) -> bool {
        matches!(self, State::Delivered { .. } | State::Cancelled { .. })
    }
    /// Whether the delivery still counts as "this case is in the queue".
    pub fn is_active(&self) -> bool {
        !matches!(self, State::Cancelled { .. } | State::Dead { .. })
    }
}

/// One bundle's delivery record (kept small: it lives in sled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The bundle.
    pub id: BundleId,
    /// Queue order.
    pub seq: u64,
    /// The recipient.
    pub peer: AgencyId,
    /// What the bundle carries.
    pub kind: Kind,
    /// The case.
    pub case_ref: CaseRef,
    /// Marked as a resubmission of a case already sent.
    pub resubmission: bool,
    /// The intake item (folder or zip name) it came from, if any.
    pub source: Option<String>,
    /// SHA-256 of the payload (from the envelope).
    pub payload_sha256: Sha256,
    /// SHA-256 of the envelope bytes.
    pub envelope_sha256: Sha256,
    /// Bundle file size.
    pub size: u64,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Delivery must complete by then, or it goes dead.
    pub deadline: Timestamp,
    /// Reported as overdue from then on.
    pub warn_at: Timestamp,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Where it is.
    pub state: State,
}

/// A transition that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a delivery that is {from}")]
pub struct TransitionError {
    /// The attempted transition.
    pub action: &'static str,
    /// The state it was in.
    pub from: &'static str,
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix(
        t.unix()
            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    )
    .unwrap_or(t)
}

impl Delivery {
    fn refuse(&self, action: &'static str) -> Result<(), TransitionError> {
        Err(TransitionError {
            action,
            from: self.state.name(),
        })
    }

    /// The recipient downloaded it; its receipt is now awaited within
    /// `policy.receipt_deadline`.
    pub fn fetch(&mut self, now: Timestamp, policy: &Policy) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. } => {
                self.state = State::Fetched { at: now };
                self.deadline = later(now, policy.receipt_deadline);
                self.warn_at = later(now, policy.warn_after.min(policy.receipt_deadline / 2));
                Ok(())
            }
            _ => self.refuse("fetch"),
        }
    }

    /// Whether the delivery is waiting past its warning time.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        !self.state.is_final() && !matches!(self.state, State::Dead { .. }) && now >= self.warn_at
    }

    /// The recipient's receipt verified. Idempotent once delivered.
    pub fn deliver(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        match self.state {
            State::Delivered { .. } => Ok(()),
            State::Queued | State::Fetched { .. } | State::Failed { .. } | State::Dead { .. } => {
                self.state = State::Delivered { at: now };
                Ok(())
            }
            State::Cancelled { .. } => self.refuse("deliver"),
        }
    }

    /// A push attempt failed: retry after `backoff`, or go dead when attempts or
    /// the deadline are exhausted.
    pub fn fail(
        &mut self,
        now: Timestamp,
        error: String,
        backoff: Duration,
        policy: &Policy,
    ) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. } => {
                self.attempts += 1;
                let retry_at = later(now, backoff);
                self.state = if self.attempts >= policy.max_attempts {
                    State::Dead {
                        at: now,
                        reason: format!("{} attempts failed; last: {error}", self.attempts),
                    }
                } else if retry_at >= self.deadline {
                    State::Dead {
                        at: now,
                        reason: format!("deadline {} passed; last error: {error}", self.deadline),
                    }
                } else {
                    State::Failed { retry_at, error }
                };
                Ok(())
            }
            _ => self.refuse("fail"),
        }
    }

    /// The deadline passed without delivery.
    pub fn expire(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. }
                if now >= self.deadline =>
            {
                self.state = State::Dead {
                    at: now,
                    reason: format!("not delivered by the deadline {}", self.deadline),
                };
                Ok(())
            }
            _ => self.refuse("expire"),
        }
    }

    /// Operator: offer it again (from fetched, failed or dead); the deadline
    /// restarts from now.
    pub fn retry(&mut self, now: Timestamp, policy: &Policy) -> Result<(), TransitionError> {
        match self.state {
            State::Fetched { .. } | State::Failed { .. } | State::Dead { .. } => {
                self.state = State::Queued;
                self.attempts = 0;
                self.deadline = later(now, policy.deadline);
                self.warn_at = later(now, policy.warn_after);
                Ok(())
            }
            _ => self.refuse("retry"),
        }
    }

    /// Operator: withdraw it. Never after delivery.
    pub fn cancel(&mut self, now: Timestamp, reason: String) -> Result<(), TransitionError> {
        match self.state {
            State::Delivered { .. } | State::Cancelled { .. } => self.refuse("cancel"),
            _ => {
                self.state = State::Cancelled { at: now, reason };
                Ok(())
            }
        }
    }
}

/// Outbox failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// File-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// sled failed (corruption shows up here; try `sealpost outbox rebuild`).
    #[error("outbox index: {0}")]
    Store(#[from] sled::Error),
    /// A record could not be decoded.
    #[error("outbox index record {key}: {detail} (try `sealpost outbox rebuild`)")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// No such bundle in the outbox.
    #[error("no bundle {0} in the outbox")]
    NotFound(BundleId),
    /// The transition is not allowed.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A bundle file could not be read back.
    #[error("bundle {path}: {source}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: bundle::BundleError,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> OutboxError {
    let context = context.into();
    move |source| OutboxError::Io { context, source }
}

/// The outbox of one node.
#[derive(Debug, Clone)]
pub struct Outbox {
    bundles: PathBuf,
    index: PathBuf,
    db: sled::Db,
    policy: Policy,
    changed: std::sync::Arc<tokio::sync::Notify>,
}

fn key_d(id: &BundleId) -> Vec<u8> {
    [b"d/".as_slice(), id.as_str().as_bytes()].concat()
}
fn key_s(seq: u64) -> Vec<u8> {
    [b"s/".as_slice(), &seq.to_be_bytes()].concat()
}
fn key_c(case: &CaseRef, id: &BundleId) -> Vec<u8> {
    [
        b"c/".as_slice(),
        case.as_str().as_bytes(),
        b"\0",
        id.as_str().as_bytes(),
    ]
    .concat()
}
const KEY_SEQ: &[u8] = b"meta/seq";

impl Outbox {
    /// Opens (creating if needed) the outbox under `data_dir`.
    pub fn open(data_dir: &Path, policy: Policy) -> Result<Self, OutboxError> {
        let root = data_dir.join("outbox");
        let bundles = root.join("bundles");
        let index = root.join("index");
        fs::create_dir_all(&bundles)
            .map_err(io_err(format!("cannot create {}", bundles.display())))?;
        fs::create_dir_all(root.join("receipts"))
            .map_err(io_err("cannot create outbox/receipts"))?;
        // Leftovers of a seal interrupted by a crash (never referenced by a record),
        // and of a receipt being stored.
        crate::fsutil::remove_stale_temps(&bundles).map_err(io_err("cannot clean the outbox"))?;
        for e in fs::read_dir(&bundles)
            .map_err(io_err("cannot list the outbox"))?
            .flatten()
        {
            if e.file_name()
                .as_encoded_bytes()
                .ends_with(b".sealpost.pending")
            {
                fs::remove_file(e.path()).map_err(io_err("cannot clean the outbox"))?;
            }
        }
        crate::fsutil::remove_stale_temps(&root.join("receipts"))
            .map_err(io_err("cannot clean outbox/receipts"))?;
        let db = sled::Config::new()
            .path(&index)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let outbox = Self {
            bundles,
            index,
            db,
            policy,
            changed: std::sync::Arc::new(tokio::sync::Notify::new()),
        };
        crate::fsutil::sync_dir(&root).map_err(io_err("cannot sync the outbox directory"))?;
        Ok(outbox)
    }

    /// The delivery policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Notified after every committed change (long-polling listeners wait on it).
    pub fn changed(&self) -> &tokio::sync::Notify {
        &self.changed
    }

    /// Where receipts for delivered bundles are kept (`outbox/receipts/<id>.json`).
    pub fn receipt_path(&self, id: &BundleId) -> PathBuf {
        crate::fsutil::parent_of(&self.bundles)
            .join("receipts")
            .join(format!("{id}.json"))
    }

    /// Where bundle `id`'s file lives under `data_dir`, without opening the outbox.
    pub fn bundle_path_in(data_dir: &Path, id: &BundleId) -> PathBuf {
        data_dir
            .join("outbox/bundles")
            .join(format!("{id}.sealpost"))
    }

    /// Where bundle `id`'s file lives (it may not exist yet).
    pub fn bundle_path(&self, id: &BundleId) -> PathBuf {
        self.bundles.join(format!("{id}.sealpost"))
    }

    /// Where bundle `id` is sealed before it is published ([`Outbox::publish`]):
    /// a hidden name in the same directory, removed at start if a crash left it.
    pub fn pending_path(&self, id: &BundleId) -> PathBuf {
        self.bundles.join(format!(".{id}.sealpost.pending"))
    }

    /// Publishes the sealed bundle at [`Outbox::pending_path`] under its final
    /// name (rename, never replacing; fsync of the directory).
    pub fn publish(&self, id: &BundleId) -> Result<(), OutboxError> {
        crate::fsutil::rename_noreplace(&self.pending_path(id), &self.bundle_path(id))
            .map_err(io_err(format!("cannot publish bundle {id}")))?;
        crate::fsutil::sync_dir(&self.bundles).map_err(io_err("cannot sync the outbox"))
    }

    /// Makes every change so far durable: sled `flush`, then fsync of every file
    /// and directory of the index (see the module doc for why both).
    pub fn commit(&self) -> Result<(), OutboxError> {
        self.db.flush()?;
        sync_tree(&self.index).map_err(io_err("cannot fsync the outbox index"))?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// The record for `id`.
    pub fn get(&self, id: &BundleId) -> Result<Option<Delivery>, OutboxError> {
        self.db
            .get(key_d(id))?
            .map(|v| decode(&key_d(id), &v))
            .transpose()
    }

    /// All records in queue order.
    pub fn list(&self) -> Result<Vec<Delivery>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(b"s/") {
            let (_, id) = kv?;
            let id: BundleId = std::str::from_utf8(&id)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| OutboxError::Corrupt {
                    key: "s/…".into(),
                    detail: "not a bundle id".into(),
                })?;
            if let Some(d) = self.get(&id)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Another active delivery of the same case, if any (`except` excludes one id).
    pub fn active_case(
        &self,
        case: &CaseRef,
        except: Option<&BundleId>,
    ) -> Result<Option<Delivery>, OutboxError> {
        let prefix = [b"c/".as_slice(), case.as_str().as_bytes(), b"\0"].concat();
        for kv in self.db.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let id: Option<BundleId> = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok());
            let Some(id) = id else { continue };
            if Some(&id) == except {
                continue;
            }
            if let Some(d) = self.get(&id)? {
                if d.state.is_active() {
                    return Ok(Some(d));
                }
            }
        }
        Ok(None)
    }

    /// Queues a bundle whose file already lies at [`Outbox::bundle_path`].
    /// Idempotent: queuing the same id again returns the existing record.
    /// Durable when it returns.
    pub fn enqueue(
        &self,
        envelope: &Envelope,
        envelope_bytes: &[u8],
        size: u64,
        source: Option<String>,
        resubmission: bool,
        now: Timestamp,
    ) -> Result<Delivery, OutboxError> {
        if let Some(existing) = self.get(&envelope.id)? {
            return Ok(existing);
        }
        let seq = self.db.update_and_fetch(KEY_SEQ, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        let seq = seq
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| OutboxError::Corrupt {
                key: "meta/seq".into(),
                detail: "not a u64".into(),
            })?;
        let d = Delivery {
            id: envelope.id,
            seq,
            peer: envelope.recipient.clone(),
            kind: envelope.kind,
            case_ref: envelope.case_ref.clone(),
            resubmission,
            source,
            payload_sha256: envelope.payload.sha256,
            envelope_sha256: Sha256::of(envelope_bytes),
            size,
            queued_at: now,
            updated_at: now,
            deadline: later(now, self.policy.deadline),
            warn_at: later(now, self.policy.warn_after),
            attempts: 0,
            state: State::Queued,
        };
        let mut batch = sled::Batch::default();
        batch.insert(key_d(&d.id), encode(&d));
        batch.insert(key_s(seq), d.id.as_str().as_bytes());
        batch.insert(key_c(&d.case_ref, &d.id), b"".as_slice());
        self.db.apply_batch(batch)?;
        self.commit()?;
        Ok(d)
    }

    /// Applies a named transition to `id` and makes it durable.
    pub fn transition(
        &self,
        id: &BundleId,
        now: Timestamp,
        f: impl Fn(&mut Delivery) -> Result<(), TransitionError>,
    ) -> Result<Delivery, OutboxError> {
        loop {
            let key = key_d(id);
            let old = self.db.get(&key)?.ok_or(OutboxError::NotFound(*id))?;
            let mut d = decode(&key, &old)?;
            f(&mut d)?;
            d.updated_at = now;
            let swapped = self
                .db
                .compare_and_swap(&key, Some(old), Some(encode(&d)))?;
            if swapped.is_ok() {
                self.commit()?;
                return Ok(d);
            }
        }
    }

    /// Expires every waiting delivery past its deadline, and returns the ones
    /// now overdue (for warnings and metrics). Run periodically by the daemon.
    pub fn sweep(&self, now: Timestamp) -> Result<Sweep, OutboxError> {
        let mut report = Sweep::default();
        for d in self.list()? {
            let waiting = matches!(
                d.state,
                State::Queued | State::Fetched { .. } | State::Failed { .. }
            );
            if waiting && now >= d.deadline {
                let d = self.transition(&d.id, now, |x| x.expire(now))?;
                tracing::warn!(bundle = %d.id, peer = %d.peer, case = %d.case_ref, "delivery dead: deadline passed");
                report.expired.push(d.id);
            } else if d.is_overdue(now) {
                tracing::warn!(bundle = %d.id, peer = %d.peer, state = d.state.name(), deadline = %d.deadline, "delivery overdue");
                report.overdue.push(d.id);
            }
        }
        Ok(report)
    }

    /// Recreates the index from the bundle files: every bundle is queued again.
    /// Returns how many were indexed. Run with the daemon stopped.
    pub fn rebuild(data_dir: &Path, policy: Policy, now: Timestamp) -> Result<usize, OutboxError> {
        let root = data_dir.join("outbox");
        let index = root.join("index");
        if index.exists() {
            let aside = root.join(format!("index.broken-{}", now.unix()));
            fs::rename(&index, &aside).map_err(io_err("cannot move the old index aside"))?;
        }
        let outbox = Self::open(data_dir, policy)?;
        let mut files: Vec<PathBuf> = fs::read_dir(&outbox.bundles)
            .map_err(io_err("cannot list the outbox"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sealpost"))
            .collect();
        files.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
        let mut n = 0;
        for path in files {
            let (envelope, bytes, size) =
                bundle::inspect(&path).map_err(|source| OutboxError::Bundle {
                    path: path.clone(),
                    source,
                })?;
            outbox.enqueue(&envelope, &bytes, size, None, false, now)?;
            n += 1;
        }
        outbox.commit()?;
        Ok(n)
    }
}

/// What a [`Outbox::sweep`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Deliveries that went dead now.
    pub expired: Vec<BundleId>,
    /// Deliveries past their warning time, still waiting.
    pub overdue: Vec<BundleId>,
}

fn encode(d: &Delivery) -> Vec<u8> {
    serde_json::to_vec(d).expect("delivery records serialise")
}

fn decode(key: &[u8], v: &[u8]) -> Result<Delivery, OutboxError> {
    serde_json::from_slice(v).map_err(|e| OutboxError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            sync_tree(&entry.path())?;
        } else if ft.is_file() {
            fs::File::open(entry.path())?.sync_all()?;
        }
    }
    crate::fsutil::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(state: State) -> Delivery {
        let now = Timestamp::from_unix(1_800_000_000).expect("time");
        Delivery {
            id: BundleId::generate(),
            seq: 1,
            peer: "sz-futian-court".parse().expect("id"),
            kind: Kind::PreservationApplication,
            case_ref: "深劳人仲案〔2026〕1号".parse().expect("case"),
            resubmission: false,
            source: None,
            payload_sha256: Sha256([0; 32]),
            envelope_sha256: Sha256([0; 32]),
            size: 1,
            queued_at: now,
            updated_at: now,
            deadline: later(now, Duration::from_secs(3600)),
            warn_at: later(now, Duration::from_secs(600)),
            attempts: 0,
            state,
        }
    }

    #[test]
    fn delivered_and_cancelled_are_final() {
        let t = Timestamp::from_unix(1_800_000_100).expect("time");
        let p = Policy::default();
        let mut d = delivery(State::Delivered { at: t });
        assert!(d.cancel(t, "x".into()).is_err());
        assert!(d.retry(t, &p).is_err());
        assert!(d.fetch(t, &p).is_err());
        assert!(d.deliver(t).is_ok(), "a repeated receipt is not an error");
        let mut d = delivery(State::Cancelled {
            at: t,
            reason: "x".into(),
        });
        assert!(d.deliver(t).is_err());
        assert!(d.retry(t, &p).is_err());
    }

    #[test]
    fn failures_go_dead_after_max_attempts_or_deadline() {
        let t = Timestamp::from_unix(1_800_000_100).expect("time");
        let p = Policy {
            max_attempts: 3,
            ..Policy::default()
        };
        let mut d = delivery(State::Queued);
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        assert_eq!(d.state.name(), "failed");
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        assert_eq!(d.state.name(), "dead");
        let mut d = delivery(State::Queued);
        d.fail(t, "e".into(), Duration::from_secs(7200), &p)
            .expect("fail");
        assert_eq!(
            d.state.name(),
            "dead",
            "a retry after the deadline is pointless"
        );
        d.retry(t, &p).expect("operator retry");
        assert_eq!((d.state.name(), d.attempts), ("queued", 0));
    }
}
