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
//! | `w/<peer>\0<seq: u64 big-endian>` | bundle id, for every *waiting* delivery ([`State::is_waiting`]): what a peer's listing and its pusher read, in O(log n + results) however many deliveries the outbox has seen |
//! | `n/<state>/<peer>` | how many deliveries to `peer` are in `state`, u64 big-endian (metrics without a scan) |
//! | `c/<case-ref>\0<bundle-id>` | empty (duplicate-case check) |
//! | `p/<bundle-id>` | empty, for every `delivered` delivery whose after-delivery work (its proof of delivery) is not yet settled ([`Outbox::settle`]): what the evidence service's catch-up after a crash reads, so that a start costs O(unsettled), not O(history) |
//! | `meta/seq` | last sequence number, u64 big-endian |
//! | `meta/version` | layout version, u64 big-endian: 3 (`w/`, `n/` and `p/` exist; built at the first open of an older store, where every delivered record starts unsettled) |
//!
//! A record, its `s/`, `w/`, `c/` and `p/` keys and the counters change
//! together in one sled transaction. Settling (removing a `p/` key) is not
//! made durable on its own: one lost in a crash only means the catch-up looks
//! at that delivery once more and finds its proof.
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
//! `retry` or `requeue`; every transition is one of the named methods on
//! [`Delivery`], and [`Outbox::transition`] returns the [`Event`] it made (also
//! handed to every subscriber of the outbox's [`Bus`], after it is durable).
//!
//! ## Recovery
//!
//! If the index is lost or corrupt, `sealpost outbox rebuild` recreates it from
//! the bundle files ([`Outbox::rebuild`]): every bundle becomes `queued` again.
//! Re-offering a bundle is safe: the recipient deduplicates by bundle id and a
//! repeated receipt returns the original.

mod event;
mod state;

pub use event::{Bus, Change, Event, Subscriber};
use state::later;
pub use state::{Delivery, State, TransitionError};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::bundle::{self, Envelope};
use crate::config::OutboxPolicy as Policy;
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

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
    bus: Bus,
    /// Mutations hold it shared; a backup holds it exclusively for the moment
    /// it copies the index, so the copy is one consistent state.
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    /// Records decoded lately, each with the exact bytes it was decoded
    /// from: a lookup reads the record from sled every time and reuses the
    /// decoded copy only if those bytes are equal, so it can never be stale.
    /// Spares the JSON decoding on the API's hot paths (a listing, a `HEAD`).
    decoded: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<BundleId, (sled::IVec, Delivery)>>,
    >,
}

/// At most this many decoded records are kept ([`Outbox::get`]); when full,
/// the map starts over.
const DECODED_MAX: usize = 1024;

fn key_d(id: &BundleId) -> Vec<u8> {
    [b"d/".as_slice(), id.as_str().as_bytes()].concat()
}
fn key_s(seq: u64) -> Vec<u8> {
    [b"s/".as_slice(), &seq.to_be_bytes()].concat()
}
fn key_w(peer: &AgencyId, seq: u64) -> Vec<u8> {
    [
        b"w/".as_slice(),
        peer.as_str().as_bytes(),
        b"\0",
        &seq.to_be_bytes(),
    ]
    .concat()
}
fn key_p(id: &BundleId) -> Vec<u8> {
    [b"p/".as_slice(), id.as_str().as_bytes()].concat()
}
fn key_n(state: &str, peer: &AgencyId) -> Vec<u8> {
    format!("n/{state}/{peer}").into_bytes()
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
const KEY_VERSION: &[u8] = b"meta/version";
/// The time of the last store check ([`Outbox::probe`]).
const KEY_PROBE: &[u8] = b"meta/probe";
const VERSION: u64 = 3;
/// sled's page cache (its default is 1 GiB). The hot part of the store is
/// small — the waiting deliveries, their indexes, the counters — and the
/// history is read rarely, so a small cache keeps the daemon's memory flat
/// however many deliveries it has recorded (`benches/outbox_scale.rs`).
/// sled counts on-disk sizes; the memory it takes is a few times this.
const CACHE_BYTES: u64 = 8 << 20;

fn u64_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

type Tx = Result<(), ConflictableTransactionError<OutboxError>>;

/// Adds `delta` to a counter inside a transaction.
fn count(tx: &TransactionalTree, key: &[u8], delta: i64) -> Tx {
    let n = u64_of(tx.get(key)?);
    let n = n.saturating_add_signed(delta);
    tx.insert(key, n.to_be_bytes().to_vec())?;
    Ok(())
}

/// Writes `new` (replacing `old`, if any) with its indexes and counters.
fn put(tx: &TransactionalTree, old: Option<&Delivery>, new: &Delivery) -> Tx {
    tx.insert(key_d(&new.id), encode(new))?;
    if let Some(old) = old {
        if old.state.is_waiting() {
            tx.remove(key_w(&old.peer, old.seq))?;
        }
        if old.seq != new.seq {
            tx.remove(key_s(old.seq))?;
        }
        count(tx, &key_n(old.state.name(), &old.peer), -1)?;
    }
    tx.insert(key_s(new.seq), new.id.as_str().as_bytes())?;
    if new.state.is_waiting() {
        tx.insert(key_w(&new.peer, new.seq), new.id.as_str().as_bytes())?;
    }
    count(tx, &key_n(new.state.name(), &new.peer), 1)?;
    let delivered = |d: &Delivery| matches!(d.state, State::Delivered { .. });
    if delivered(new) && !old.is_some_and(delivered) {
        tx.insert(key_p(&new.id), b"".as_slice())?;
    }
    Ok(())
}

fn abort<T>(e: OutboxError) -> Result<T, ConflictableTransactionError<OutboxError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn unwrap_tx<T>(r: Result<T, TransactionError<OutboxError>>) -> Result<T, OutboxError> {
    match r {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(OutboxError::Store(e)),
    }
}

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
        fs::create_dir_all(root.join("manifests"))
            .map_err(io_err("cannot create outbox/manifests"))?;
        crate::fsutil::remove_stale_temps(&root.join("manifests"))
            .map_err(io_err("cannot clean outbox/manifests"))?;
        let db = sled::Config::new()
            .path(&index)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let outbox = Self {
            bundles,
            index,
            db,
            policy,
            changed: std::sync::Arc::new(tokio::sync::Notify::new()),
            bus: Bus::default(),
            gate: Default::default(),
            decoded: Default::default(),
        };
        if u64_of(outbox.db.get(KEY_VERSION)?) < VERSION {
            outbox.build_indexes()?;
        }
        crate::fsutil::sync_dir(&root).map_err(io_err("cannot sync the outbox directory"))?;
        Ok(outbox)
    }

    /// Builds the `w/` index and the `n/` counters from the records (a store
    /// written by an older version, or a rebuilt one). One pass over every record.
    fn build_indexes(&self) -> Result<(), OutboxError> {
        let mut batch = sled::Batch::default();
        for kv in self.db.scan_prefix(b"w/") {
            batch.remove(kv?.0);
        }
        for kv in self.db.scan_prefix(b"n/") {
            batch.remove(kv?.0);
        }
        for kv in self.db.scan_prefix(b"p/") {
            batch.remove(kv?.0);
        }
        let mut counts: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        for kv in self.db.scan_prefix(b"d/") {
            let (k, v) = kv?;
            let d = decode(&k, &v)?;
            if d.state.is_waiting() {
                batch.insert(key_w(&d.peer, d.seq), d.id.as_str().as_bytes());
            }
            if matches!(d.state, State::Delivered { .. }) {
                batch.insert(key_p(&d.id), b"".as_slice());
            }
            *counts.entry(key_n(d.state.name(), &d.peer)).or_default() += 1;
        }
        for (k, n) in counts {
            batch.insert(k, n.to_be_bytes().to_vec());
        }
        batch.insert(KEY_VERSION, VERSION.to_be_bytes().to_vec());
        self.db.apply_batch(batch)?;
        self.commit()
    }

    /// The subscribers of this outbox's events.
    pub fn bus(&self) -> &Bus {
        &self.bus
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

    /// Where bundle `id`'s signed manifest is kept (`.json`, and `.sig` beside
    /// it): the sender's own record of the documents, for the proof of delivery.
    pub fn manifest_path(&self, id: &BundleId) -> PathBuf {
        crate::fsutil::parent_of(&self.bundles)
            .join("manifests")
            .join(format!("{id}.json"))
    }

    /// Keeps bundle `id`'s signed manifest ([`Outbox::manifest_path`]),
    /// durably, replacing what an interrupted earlier attempt left.
    pub fn keep_manifest(
        &self,
        id: &BundleId,
        bytes: &[u8],
        sig: &[u8],
    ) -> Result<(), OutboxError> {
        let path = self.manifest_path(id);
        let dir = crate::fsutil::parent_of(&path).to_owned();
        std::fs::create_dir_all(&dir).map_err(io_err("cannot create outbox/manifests"))?;
        crate::fsutil::write_replace_atomic(&path.with_extension("sig"), sig)
            .and_then(|()| crate::fsutil::write_replace_atomic(&path, bytes))
            .map_err(io_err(format!("cannot keep the manifest of {id}")))
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

    /// Proves the store can still make a change durable: writes the time
    /// under `meta/probe` and commits (the daemon's periodic store check).
    pub fn probe(&self, now: Timestamp) -> Result<(), OutboxError> {
        self.db
            .insert(KEY_PROBE, now.unix().to_be_bytes().to_vec())?;
        self.commit()
    }

    /// A named tree in the outbox's store, for the records that live beside
    /// the deliveries (the case files, the notification queue). Changes to it
    /// are made durable by [`Outbox::commit`] like the outbox's own, and are
    /// part of [`Outbox::backup`].
    pub fn tree(&self, name: &str) -> Result<sled::Tree, OutboxError> {
        Ok(self.db.open_tree(name)?)
    }

    /// The record for `id`.
    pub fn get(&self, id: &BundleId) -> Result<Option<Delivery>, OutboxError> {
        let key = key_d(id);
        let Some(raw) = self.db.get(&key)? else {
            return Ok(None);
        };
        let lock = || self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((bytes, d)) = lock().get(id) {
            if *bytes == raw {
                return Ok(Some(d.clone()));
            }
        }
        let d = decode(&key, &raw)?;
        let mut decoded = lock();
        if decoded.len() >= DECODED_MAX {
            decoded.clear();
        }
        decoded.insert(*id, (raw, d.clone()));
        Ok(Some(d))
    }

    /// All records in queue order (every delivery ever queued: for operators,
    /// not for anything that runs often).
    pub fn list(&self) -> Result<Vec<Delivery>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(b"s/") {
            let (_, id) = kv?;
            if let Some(d) = self.get(&parse_id(&id)?)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The deliveries waiting for `peer` after position `after`, in queue
    /// order, at most `limit`: from the `w/` index, O(log n + results).
    pub fn waiting(
        &self,
        peer: &AgencyId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let prefix = [b"w/".as_slice(), peer.as_str().as_bytes(), b"\0"].concat();
        let start = key_w(peer, after.saturating_add(1));
        let mut out = Vec::new();
        if after == u64::MAX {
            return Ok(out);
        }
        for kv in self.db.range(start..) {
            let (k, id) = kv?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(d) = self.get(&parse_id(&id)?)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Every waiting delivery, all peers (deadlines, metrics): O(waiting).
    pub fn all_waiting(&self) -> Result<Vec<Delivery>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(b"w/") {
            let (_, id) = kv?;
            if let Some(d) = self.get(&parse_id(&id)?)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The delivered deliveries whose after-delivery work is not yet settled
    /// (the `p/` index), in id order: O(unsettled), however long the history.
    pub fn unsettled(&self) -> impl Iterator<Item = Result<BundleId, OutboxError>> + '_ {
        self.db.scan_prefix(b"p/").map(|kv| parse_id(&kv?.0[2..]))
    }

    /// Marks the after-delivery work of `id` done (its proof of delivery is
    /// stored, or it needs none). Not synced on its own (see the module doc).
    pub fn settle(&self, id: &BundleId) -> Result<(), OutboxError> {
        let _gate = self.gate();
        self.db.remove(key_p(id))?;
        Ok(())
    }

    /// How many deliveries are in each (state, peer), from the counters.
    pub fn counts(&self) -> Result<Vec<(String, AgencyId, u64)>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(b"n/") {
            let (k, v) = kv?;
            let text = String::from_utf8_lossy(&k[2..]).into_owned();
            let Some((state, peer)) = text.split_once('/') else {
                continue;
            };
            let Ok(peer) = peer.parse() else { continue };
            out.push((state.to_owned(), peer, u64_of(Some(v))));
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

    fn gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws the next position in the queue (inside a transaction).
    fn next_seq(tx: &TransactionalTree) -> Result<u64, ConflictableTransactionError<OutboxError>> {
        let seq = u64_of(tx.get(KEY_SEQ)?) + 1;
        tx.insert(KEY_SEQ, seq.to_be_bytes().to_vec())?;
        Ok(seq)
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
        let _gate = self.gate();
        let policy = self.policy;
        let made = self.db.transaction(|tx| {
            if let Some(v) = tx.get(key_d(&envelope.id))? {
                return Ok((decode(&key_d(&envelope.id), &v).or_else(abort)?, false));
            }
            let seq = Self::next_seq(tx)?;
            let d = Delivery {
                id: envelope.id,
                seq,
                peer: envelope.recipient.clone(),
                kind: envelope.kind,
                case_ref: envelope.case_ref.clone(),
                resubmission,
                source: source.clone(),
                payload_sha256: envelope.payload.sha256,
                envelope_sha256: Sha256::of(envelope_bytes),
                size,
                queued_at: now,
                updated_at: now,
                deadline: later(now, policy.deadline),
                warn_at: later(now, policy.warn_after),
                attempts: 0,
                state: State::Queued,
            };
            put(tx, None, &d)?;
            tx.insert(key_c(&d.case_ref, &d.id), b"".as_slice())?;
            Ok((d, true))
        });
        let (d, new) = unwrap_tx(made)?;
        if new {
            self.commit()?;
            self.bus.publish(&Event::of(&d, now, Change::Queued));
        }
        Ok(d)
    }

    /// Applies a named transition to `id` and makes it durable. Returns the
    /// record as it is now, and the event if the state changed.
    pub fn transition(
        &self,
        id: &BundleId,
        now: Timestamp,
        f: impl Fn(&mut Delivery) -> Result<(), TransitionError>,
    ) -> Result<(Delivery, Option<Event>), OutboxError> {
        self.change(id, now, false, f)
    }

    /// Operator: offers `id` again at the end of the queue, with a new
    /// position (see [`Delivery::requeue`]).
    pub fn requeue(
        &self,
        id: &BundleId,
        now: Timestamp,
    ) -> Result<(Delivery, Option<Event>), OutboxError> {
        let policy = self.policy;
        self.change(id, now, true, move |d| d.requeue(now, &policy))
    }

    fn change(
        &self,
        id: &BundleId,
        now: Timestamp,
        new_position: bool,
        f: impl Fn(&mut Delivery) -> Result<(), TransitionError>,
    ) -> Result<(Delivery, Option<Event>), OutboxError> {
        let _gate = self.gate();
        let done = self.db.transaction(|tx| {
            let key = key_d(id);
            let Some(raw) = tx.get(&key)? else {
                return abort(OutboxError::NotFound(*id));
            };
            let old = decode(&key, &raw).or_else(abort)?;
            let mut d = old.clone();
            if let Err(e) = f(&mut d) {
                return abort(OutboxError::Transition(e));
            }
            if new_position {
                d.seq = Self::next_seq(tx)?;
            }
            d.updated_at = now;
            put(tx, Some(&old), &d)?;
            Ok((old, d))
        });
        let (old, d) = unwrap_tx(done)?;
        self.commit()?;
        let event = Event::between(&old, &d, now);
        if let Some(e) = &event {
            self.bus.publish(e);
        }
        Ok((d, event))
    }

    /// Expires every waiting delivery past its deadline, and returns the ones
    /// now overdue (for warnings and metrics). Run periodically by the daemon.
    /// Reads only the waiting deliveries.
    pub fn sweep(&self, now: Timestamp) -> Result<Sweep, OutboxError> {
        let mut report = Sweep::default();
        for d in self.all_waiting()? {
            if now >= d.deadline {
                let (d, _) = self.transition(&d.id, now, |x| x.expire(now))?;
                report.expired.push(d.id);
            } else if d.is_overdue(now) {
                tracing::warn!(bundle = %d.id, peer = %d.peer, state = d.state.name(), deadline = %d.deadline, "delivery overdue");
                report.overdue.push(d.id);
            }
        }
        Ok(report)
    }

    /// Copies this outbox, consistently, into `dest` (a new folder): the index
    /// as it is at one instant (changes wait meanwhile), then the bundle and
    /// receipt files it refers to. Restore by copying `dest/outbox` into a
    /// data directory. Returns (records, bundles, receipts) copied.
    pub fn backup(&self, dest: &Path) -> Result<(usize, usize, usize), OutboxError> {
        let out = dest.join("outbox");
        fs::create_dir_all(out.join("bundles")).map_err(io_err("cannot create the backup"))?;
        fs::create_dir_all(out.join("receipts")).map_err(io_err("cannot create the backup"))?;
        let records = {
            let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
            let copy = sled::Config::new().path(out.join("index")).open()?;
            let mut n = 0;
            for kv in self.db.iter() {
                let (k, v) = kv?;
                if k.starts_with(b"d/") {
                    n += 1;
                }
                copy.insert(k, v)?;
            }
            // The other trees (case files, notifications) as of the same instant.
            for name in self.db.tree_names() {
                if name == b"__sled__default".as_slice() {
                    continue;
                }
                let (from, to) = (self.db.open_tree(&name)?, copy.open_tree(&name)?);
                for kv in from.iter() {
                    let (k, v) = kv?;
                    to.insert(k, v)?;
                }
            }
            copy.flush()?;
            drop(copy);
            sync_tree(&out.join("index")).map_err(io_err("cannot fsync the backup index"))?;
            n
        };
        let copy_dir = |from: &Path, to: &Path| -> Result<usize, OutboxError> {
            let mut n = 0;
            for e in fs::read_dir(from)
                .map_err(io_err("cannot list the outbox"))?
                .flatten()
            {
                let name = e.file_name();
                if name.as_encoded_bytes().starts_with(b".") {
                    continue;
                }
                let target = to.join(&name);
                fs::copy(e.path(), &target)
                    .and_then(|_| fs::File::open(&target)?.sync_all())
                    .map_err(io_err(format!("cannot copy {}", e.path().display())))?;
                n += 1;
            }
            crate::fsutil::sync_dir(to).map_err(io_err("cannot sync the backup"))?;
            Ok(n)
        };
        let bundles = copy_dir(&self.bundles, &out.join("bundles"))?;
        let receipts = copy_dir(
            &crate::fsutil::parent_of(&self.bundles).join("receipts"),
            &out.join("receipts"),
        )?;
        Ok((records, bundles, receipts))
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

fn parse_id(raw: &[u8]) -> Result<BundleId, OutboxError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| OutboxError::Corrupt {
            key: "s/, w/ or p/ index".into(),
            detail: "not a bundle id".into(),
        })
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
    use crate::bundle::{Kind, PayloadInfo, FORMAT};

    fn envelope(n: u64, kind: Kind) -> Envelope {
        Envelope {
            format: FORMAT.to_owned(),
            id: BundleId::generate(),
            kind,
            sender: "sz-lac".parse().expect("id"),
            recipient: "sz-futian-court".parse().expect("id"),
            case_ref: format!("深劳人仲案〔2026〕{n}号").parse().expect("case"),
            created_at: Timestamp::from_unix(1_800_000_000).expect("time"),
            refers_to: None,
            signer_cert_sha256: Sha256::of(b"signer"),
            payload: PayloadInfo {
                length: 1,
                sha256: Sha256::of(&n.to_be_bytes()),
            },
        }
    }

    fn unsettled(o: &Outbox) -> Vec<BundleId> {
        let mut v: Vec<BundleId> = o.unsettled().collect::<Result<_, _>>().expect("p/");
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v
    }

    /// A lookup reuses a decoded record only while its bytes in the store are
    /// the same: after any change, through this handle or another, the next
    /// lookup sees it.
    #[test]
    fn a_looked_up_record_is_never_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = Policy::default();
        let now = Timestamp::from_unix(1_800_000_100).expect("time");
        let o = Outbox::open(dir.path(), policy).expect("open");
        let e = envelope(1, Kind::PreservationApplication);
        o.enqueue(&e, b"{}", 1, None, false, now).expect("enqueue");
        let first = o.get(&e.id).expect("get").expect("record");
        assert_eq!(
            o.get(&e.id).expect("get"),
            Some(first.clone()),
            "the cached copy"
        );
        let other = o.clone();
        other
            .transition(&e.id, now, |d| d.fetch(now, &policy))
            .expect("fetch");
        let now_fetched = o.get(&e.id).expect("get").expect("record");
        assert_eq!(now_fetched.state.name(), "fetched");
        assert_ne!(now_fetched, first);
        // Many others looked up: the map starts over, lookups stay right.
        for n in 0..(DECODED_MAX as u64 + 5) {
            let e = envelope(100 + n, Kind::PreservationApplication);
            o.enqueue(&e, b"{}", 1, None, false, now).expect("enqueue");
            assert_eq!(o.get(&e.id).expect("get").expect("record").id, e.id);
        }
        assert!(o.decoded.lock().expect("lock").len() <= DECODED_MAX);
        assert_eq!(o.get(&e.id).expect("get"), Some(now_fetched));
    }

    /// The `p/` index holds exactly the delivered deliveries not yet settled:
    /// written with the transition, removed by `settle`, and rebuilt (every
    /// delivered record unsettled) when an older store is opened.
    #[test]
    fn delivered_deliveries_stay_unsettled_until_settled_and_an_upgrade_indexes_them_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = Policy::default();
        let now = Timestamp::from_unix(1_800_000_100).expect("time");
        let o = Outbox::open(dir.path(), policy).expect("open");
        let mut ids = Vec::new();
        for n in 0..4 {
            let kind = if n == 3 {
                Kind::FollowUp
            } else {
                Kind::PreservationApplication
            };
            let e = envelope(n, kind);
            o.enqueue(&e, b"{}", 1, None, false, now).expect("enqueue");
            ids.push(e.id);
        }
        assert!(unsettled(&o).is_empty(), "nothing is delivered yet");
        // 0, 1 and 3 delivered; 2 only fetched.
        for id in &ids {
            o.transition(id, now, |d| d.fetch(now, &policy))
                .expect("fetch");
        }
        for i in [0, 1, 3] {
            o.transition(&ids[i], now, |d| d.deliver(now))
                .expect("deliver");
        }
        // A repeated receipt changes nothing.
        o.transition(&ids[0], now, |d| d.deliver(now))
            .expect("again");
        let mut want = vec![ids[0], ids[1], ids[3]];
        want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(unsettled(&o), want);

        o.settle(&ids[0]).expect("settle");
        o.settle(&ids[0]).expect("settling twice is harmless");
        o.transition(&ids[0], now, |d| d.deliver(now))
            .expect("again");
        let mut want = vec![ids[1], ids[3]];
        want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(unsettled(&o), want, "a repeated receipt does not unsettle");
        o.commit().expect("commit");
        drop(o);

        // Reopened: the same. Then as a version-2 store: every delivered
        // record is unsettled again, the fetched one is not.
        let o = Outbox::open(dir.path(), policy).expect("reopen");
        assert_eq!(unsettled(&o), want);
        o.db.insert(KEY_VERSION, 2u64.to_be_bytes().to_vec())
            .expect("downgrade");
        o.commit().expect("commit");
        drop(o);
        let o = Outbox::open(dir.path(), policy).expect("upgrade");
        let mut want = vec![ids[0], ids[1], ids[3]];
        want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(unsettled(&o), want);
        assert_eq!(u64_of(o.db.get(KEY_VERSION).expect("version")), VERSION);
    }
}
