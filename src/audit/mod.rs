//! The audit log: an append-only, hash-chained record of everything the node
//! did that matters as evidence, with checkpoints signed by the node's signing
//! key (spec: `docs/audit-format.md`).
//!
//! ## On disk
//!
//! ```text
//! <data_dir>/audit/audit.log    the records, one JSON line each, in order
//! <data_dir>/audit/head.json    the witness: seq, chain hash and offset of the last checkpoint
//! <data_dir>/audit/torn/        incomplete last lines found at start, and records cut after a failed sync, kept as they were
//! ```
//!
//! ## Invariants
//!
//! - A record is appended with one `write` of its whole line (line feed
//!   last) and is acknowledged only after `fdatasync`; appenders that arrive
//!   while a sync runs share the next one (group commit). A process killed
//!   mid-append leaves at most an incomplete last line; power loss may leave
//!   a torn or zero-filled tail. Either way [`Audit::open`] moves the
//!   incomplete bytes to `torn/`, truncates to the last whole record and
//!   appends a `torn-tail-removed` record: visible, never silent.
//! - A failed write is cut back to the last whole record. A failed `fdatasync`
//!   (after which the kernel may have dropped the dirty pages while reporting
//!   the next sync as a success) wedges the log: the records written since
//!   the last successful sync are never acknowledged (every appender waiting
//!   for them is told it failed, even if a later sync would succeed), and
//!   nothing more is appended until a recovery, tried before the next append
//!   and every few seconds by the evidence service ([`Audit::recover`]),
//!   succeeds: it opens the file afresh, copies the unacknowledged bytes to
//!   `torn/`, cuts the log back to the end of the last durable record, syncs
//!   that, and appends a `sync-failed` record naming what was cut. Nothing
//!   acknowledged is ever cut; nothing cut was ever acknowledged.
//! - A checkpoint is a record like the others whose signature covers the
//!   chain hash of the record before it; after it is durable its seq, hash
//!   and offset are written to the witness file, which the next start and
//!   `sealpost audit verify` compare with the log (a log cut back behind its
//!   last checkpoint is detected).
//! - Records name ids, digests and codes — never an applicant's name or a
//!   clerk's item name (only its SHA-256): the log is kept for years, and a
//!   proof of delivery carries an excerpt of it.

mod record;
mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use record::{
    chain_hash, checkpoint_statement, link, CheckpointFields, Entry, Head, Redacted, Via,
    CHECKPOINT_STATEMENT, GENESIS,
};
pub use verify::{verify_excerpt, verify_log, Excerpt, Problem, Report};

use crate::fsutil::{write_new_atomic, write_replace_atomic};
use crate::pki::SigningKey;
use crate::types::{AgencyId, BundleId, Sha256, Timestamp};

/// The log file's name inside the audit directory.
pub const LOG_FILE: &str = "audit.log";
/// The witness file's name inside the audit directory.
pub const WITNESS_FILE: &str = "head.json";
/// Where incomplete tails are kept.
pub const TORN_DIR: &str = "torn";

/// The audit directory of a node whose data directory is `data_dir`.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// The last checkpoint, as recorded beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// The checkpoint's seq.
    pub seq: u64,
    /// Its chain hash.
    pub hash: Sha256,
    /// The byte offset of its line.
    pub offset: u64,
}

impl Witness {
    /// Reads the witness file of the audit directory `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Self>, AuditError> {
        let path = dir.join(WITNESS_FILE);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| AuditError::Damaged {
                    path,
                    offset: 0,
                    reason: format!("the witness file is not valid: {e}"),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("cannot read {}", path.display()))(e)),
        }
    }
}

/// Why the audit log cannot do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The log's last whole line is not a record: the node cannot tell where
    /// its chain stands, and does not guess.
    #[error("{}: the line at offset {offset} is not an audit record ({reason}); run `sealpost audit verify`, and to begin a new chain move the file aside (keep it: it is evidence)", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An `fdatasync` failed (this record's, or one before it was durable):
    /// the record is not in the log, and nothing is appended until the log
    /// has been cut back to its last durable record.
    #[error("the audit log refuses appends until it recovers from a failed write or sync: {0}")]
    Broken(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> AuditError {
    let context = context.into();
    move |source| AuditError::Io { context, source }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its seq.
    pub seq: u64,
    /// Its chain hash.
    pub hash: Sha256,
    /// The byte offset of its line.
    pub offset: u64,
}

/// What [`Audit::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records in the log when opened (the last seq).
    pub head_seq: u64,
    /// An incomplete last line that was moved aside: (offset, length, kept as).
    pub torn: Option<(u64, u64, String)>,
    /// The witness did not match the log: what was found.
    pub witness_mismatch: Option<String>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// The last record's seq.
    pub head_seq: u64,
    /// Records appended by this process.
    pub appended: u64,
    /// Appends that failed.
    pub failed: u64,
    /// Unix time of the last checkpoint written by this process (0: none yet).
    pub last_checkpoint_unix: u64,
    /// Whether the log refuses appends (a failed sync not yet recovered from).
    pub broken: bool,
    /// Recoveries from a failed write or sync done by this process.
    pub recovered: u64,
}

/// Where the chain stands after a record: what a recovery returns to.
#[derive(Debug, Clone, Copy)]
struct Mark {
    len: u64,
    seq: u64,
    head: Sha256,
    last_is_checkpoint: bool,
}

struct Writer {
    /// Shared with the syncer, which syncs without holding this lock (group
    /// commit); a recovery replaces it with a fresh open.
    file: Arc<File>,
    len: u64,
    seq: u64,
    head: Sha256,
    last_is_checkpoint: bool,
    /// The chain as of the last successful `fdatasync`.
    durable: Mark,
    /// Bumped by each recovery: a record's seq may be reused after one, so an
    /// appender checks that its record is still the one in the log.
    epoch: u64,
    /// Why appends are refused until a recovery succeeds.
    wedged: Option<String>,
    /// What a recovery under way has cut so far.
    pending: Option<Cut>,
}

/// Bytes a recovery cut from the log's end.
#[derive(Debug, Clone)]
struct Cut {
    from_seq: u64,
    records: u64,
    offset: u64,
    length: u64,
    sha256: Sha256,
    kept_as: String,
}

impl Writer {
    fn mark(&self) -> Mark {
        Mark {
            len: self.len,
            seq: self.seq,
            head: self.head,
            last_is_checkpoint: self.last_is_checkpoint,
        }
    }
}

struct Inner {
    dir: PathBuf,
    node: AgencyId,
    /// Lock order: `synced` before `writer`.
    writer: Mutex<Writer>,
    /// The highest seq known durable; held while syncing (group commit) and
    /// while recovering.
    synced: Mutex<u64>,
    appended: AtomicU64,
    failed: AtomicU64,
    recovered: AtomicU64,
    last_checkpoint: AtomicU64,
}

/// The node's audit log. Cheap to clone; appends from any thread.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("dir", &self.inner.dir)
            .field("node", &self.inner.node)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Finds the end of the last whole line: the offset just after the last line
/// feed (0 if there is none), reading backwards in blocks.
fn end_of_last_line(file: &File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The whole line (without its line feed) that ends just before `end`, and
/// its offset.
fn line_before(file: &File, end: u64) -> io::Result<(u64, Vec<u8>)> {
    debug_assert!(end > 0);
    let body_end = end - 1;
    let start = end_of_last_line(file, body_end)?;
    let mut line = vec![0u8; (body_end - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok((start, line))
}

/// The line at `offset` (without its line feed).
fn line_at(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut line = Vec::new();
    BufReader::new(f).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

fn parse_head(line: &[u8]) -> Result<Head, String> {
    serde_json::from_slice::<Head>(line).map_err(|e| e.to_string())
}

impl Audit {
    /// Opens (or begins) the log in `dir` for node `node`: moves an incomplete
    /// last line aside, finds the chain head, compares the witness. Records
    /// what it repaired or found (`torn-tail-removed`, `witness-mismatch`)
    /// as the first records of this run.
    pub fn open(dir: &Path, node: &AgencyId) -> Result<(Self, Recovery), AuditError> {
        fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        // A witness or torn tail being written when the node was killed.
        for d in [dir.to_owned(), dir.join(TORN_DIR)] {
            match crate::fsutil::remove_stale_temps(&d) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("cannot clean {}", d.display()))(e)),
            }
        }
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        // A log just created must survive power loss with its directory entry.
        crate::fsutil::sync_dir(dir).map_err(io_err(format!("cannot sync {}", dir.display())))?;
        let ctx = || format!("cannot read {}", path.display());
        let len = file.metadata().map_err(io_err(ctx()))?.len();
        let mut recovery = Recovery::default();
        let end = end_of_last_line(&file, len).map_err(io_err(ctx()))?;
        let mut torn = None;
        if end < len {
            let mut bytes = vec![0u8; (len - end) as usize];
            file.read_exact_at(&mut bytes, end).map_err(io_err(ctx()))?;
            let torn_dir = dir.join(TORN_DIR);
            fs::create_dir_all(&torn_dir)
                .map_err(io_err(format!("cannot create {}", torn_dir.display())))?;
            let name = format!("{TORN_DIR}/{end}-{}.bin", Timestamp::now().unix());
            let kept = dir.join(&name);
            match write_new_atomic(&kept, &bytes) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(format!("cannot keep {}", kept.display()))(e)),
            }
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(io_err(format!("cannot cut {} back", path.display())))?;
            tracing::warn!(
                file = %path.display(),
                offset = end,
                length = bytes.len(),
                kept = %kept.display(),
                "the audit log ended in an incomplete record (a write cut short by a crash); it was moved aside and the chain goes on from the last whole record"
            );
            recovery.torn = Some((end, bytes.len() as u64, name.clone()));
            torn = Some(Entry::TornTailRemoved {
                offset: end,
                length: bytes.len() as u64,
                sha256: Sha256::of(&bytes),
                kept_as: name,
            });
        }
        let (seq, head, last_is_checkpoint) = if end == 0 {
            (0, GENESIS, false)
        } else {
            let (offset, line) = line_before(&file, end).map_err(io_err(ctx()))?;
            let h = parse_head(&line).map_err(|reason| AuditError::Damaged {
                path: path.clone(),
                offset,
                reason,
            })?;
            (h.seq, chain_hash(&h.prev, &line), h.kind == "checkpoint")
        };
        recovery.head_seq = seq;
        let mismatch = match Witness::load(dir) {
            Ok(Some(w)) if w.seq > seq => Some((
                w,
                format!("the log ends at record {seq}; the witness names checkpoint beyond it"),
            )),
            Ok(Some(w)) => match line_at(&path, w.offset) {
                Ok(line) => match parse_head(&line) {
                    Ok(h) if h.seq == w.seq && chain_hash(&h.prev, &line) == w.hash => None,
                    Ok(h) => Some((
                        w,
                        format!("record {} at that offset, with another hash", h.seq),
                    )),
                    Err(e) => Some((w, format!("no record at that offset ({e})"))),
                },
                Err(e) => Some((w, format!("cannot read at that offset ({e})"))),
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "the audit witness file is unreadable");
                None
            }
        };
        let durable = Mark {
            len: end,
            seq,
            head,
            last_is_checkpoint,
        };
        let audit = Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                node: node.clone(),
                writer: Mutex::new(Writer {
                    file: Arc::new(file),
                    len: end,
                    seq,
                    head,
                    last_is_checkpoint,
                    durable,
                    epoch: 0,
                    wedged: None,
                    pending: None,
                }),
                synced: Mutex::new(seq),
                appended: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                recovered: AtomicU64::new(0),
                last_checkpoint: AtomicU64::new(0),
            }),
        };
        if let Some(e) = torn {
            audit.append(e)?;
        }
        if let Some((w, found)) = mismatch {
            tracing::error!(
                witness_seq = w.seq,
                witness_hash = %w.hash,
                found = %found,
                "the audit log does not hold its last checkpoint: it was cut back or rewritten while the node was down; run `sealpost audit verify`"
            );
            recovery.witness_mismatch = Some(found.clone());
            audit.append(Entry::WitnessMismatch {
                expected_seq: w.seq,
                expected_hash: w.hash,
                found,
            })?;
        }
        Ok((audit, recovery))
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.inner.dir.join(LOG_FILE)
    }

    /// The node whose chain this is.
    pub fn node(&self) -> &AgencyId {
        &self.inner.node
    }

    /// Appends a record and returns once it is durable.
    pub fn append(&self, entry: Entry) -> Result<Appended, AuditError> {
        self.append_with(|_, _, _, _| Some(entry))
            .map(|a| a.expect("always appended"))
    }

    /// Appends a checkpoint signing the chain head with `key`, unless the last
    /// record already is one (or the log is empty); then writes the witness.
    pub fn checkpoint(&self, key: &SigningKey) -> Result<Option<Appended>, AuditError> {
        self.checkpoint_noting(key, &std::cell::Cell::new(None))
    }

    /// The seq of a checkpoint that covers every record appended before this
    /// call: the head if it already is one, else a new one (`None` for an
    /// empty log). What a proof's excerpt ends with, even while other
    /// records are being appended.
    pub fn checkpoint_covering(&self, key: &SigningKey) -> Result<Option<u64>, AuditError> {
        let head = std::cell::Cell::new(None);
        Ok(match self.checkpoint_noting(key, &head)? {
            Some(a) => Some(a.seq),
            None => head.get(),
        })
    }

    /// [`Audit::checkpoint`], noting in `head` the seq of the checkpoint that
    /// is already the head when none is appended.
    fn checkpoint_noting(
        &self,
        key: &SigningKey,
        head: &std::cell::Cell<Option<u64>>,
    ) -> Result<Option<Appended>, AuditError> {
        let node = self.inner.node.clone();
        let done = self.append_with(|seq, prev, at, head_is_checkpoint| {
            let head_seq = seq - 1;
            if head_is_checkpoint || head_seq == 0 {
                head.set(Some(head_seq).filter(|&s| s > 0));
                return None;
            }
            let statement = checkpoint_statement(&node, head_seq, &prev, at);
            Some(Entry::Checkpoint {
                head_seq,
                head: prev,
                signer: key.cert().to_pem(),
                signature: B64.encode(key.sign(statement.as_bytes())),
            })
        });
        let Some(a) = done? else { return Ok(None) };
        self.inner
            .last_checkpoint
            .store(Timestamp::now().unix().max(0) as u64, Ordering::Relaxed);
        let w = Witness {
            seq: a.seq,
            hash: a.hash,
            offset: a.offset,
        };
        let path = self.inner.dir.join(WITNESS_FILE);
        let bytes = serde_json::to_vec(&w).expect("witness serialises");
        if let Err(e) = write_replace_atomic(&path, &bytes) {
            // The checkpoint itself is durable; an older witness only weakens
            // the truncation check until the next checkpoint.
            tracing::warn!(error = %e, file = %path.display(), "cannot update the audit witness");
        }
        tracing::info!(seq = a.seq, head = %a.hash, "audit checkpoint signed");
        Ok(Some(a))
    }

    /// Appends the record `make(seq, prev, at)` returns (none: nothing to do,
    /// which `checkpoint` uses when the head is already a checkpoint).
    fn append_with(
        &self,
        make: impl FnOnce(u64, Sha256, Timestamp, bool) -> Option<Entry>,
    ) -> Result<Option<Appended>, AuditError> {
        if lock(&self.inner.writer).wedged.is_some() {
            self.recover()?;
        }
        let (appended, epoch) = {
            let mut w = lock(&self.inner.writer);
            if let Some(why) = &w.wedged {
                // Wedged again since the recovery just above.
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::Broken(why.clone()));
            }
            let at = Timestamp::now();
            let Some(entry) = make(w.seq + 1, w.head, at, w.last_is_checkpoint) else {
                return Ok(None);
            };
            match self.write(&mut w, &entry, at) {
                Ok(a) => (a, w.epoch),
                Err(e) => {
                    self.inner.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        };
        self.sync_through(appended.seq, epoch)?;
        self.inner.appended.fetch_add(1, Ordering::Relaxed);
        Ok(Some(appended))
    }

    /// Writes `entry` as the next record (not yet synced). A failed write is
    /// cut back to the last whole record; if that fails too the log wedges.
    fn write(&self, w: &mut Writer, entry: &Entry, at: Timestamp) -> Result<Appended, AuditError> {
        let seq = w.seq + 1;
        let line = record::Line {
            seq,
            at,
            node: &self.inner.node,
            prev: w.head,
            entry,
        }
        .to_bytes();
        let hash = chain_hash(&w.head, &line);
        let mut bytes = line;
        bytes.push(b'\n');
        let offset = w.len;
        if let Err(e) = (&*w.file).write_all(&bytes) {
            // Cut back to the last whole record, so the next append does not
            // follow a partial line.
            if let Err(e2) = w.file.set_len(offset) {
                let why = format!("a write failed ({e}) and cutting it back failed too ({e2})");
                tracing::error!(error = %why, "audit log write failed: appends are refused until it is cut back");
                w.wedged = Some(why);
            }
            return Err(io_err("cannot append to the audit log")(e));
        }
        w.len += bytes.len() as u64;
        w.seq = seq;
        w.head = hash;
        w.last_is_checkpoint = matches!(entry, Entry::Checkpoint { .. });
        Ok(Appended { seq, hash, offset })
    }

    /// Makes every record up to `seq` (written in `epoch`) durable, sharing
    /// one `fdatasync` with whoever else is waiting.
    fn sync_through(&self, seq: u64, epoch: u64) -> Result<(), AuditError> {
        let mut synced = lock(&self.inner.synced);
        let (mark, file) = {
            let w = lock(&self.inner.writer);
            if w.epoch != epoch {
                // Cut back by a recovery: this record is not in the log.
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::Broken(
                    "an fdatasync failed before this record was durable; it was discarded".into(),
                ));
            }
            if *synced >= seq {
                return Ok(());
            }
            if let Some(why) = &w.wedged {
                // A sync failed after this record was written: whatever a
                // later sync says, its bytes may never reach the disk.
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::Broken(why.clone()));
            }
            (w.mark(), w.file.clone())
        };
        if let Err(e) = file.sync_data() {
            let why = format!("fdatasync failed: {e}");
            lock(&self.inner.writer).wedged = Some(why);
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, durable_seq = *synced, "audit log fdatasync failed: the records after the last durable one are not acknowledged, and appends are refused until the log is cut back to it");
            return Err(io_err("cannot make the audit log durable")(e));
        }
        // No recovery runs while `synced` is held: the epoch is unchanged.
        lock(&self.inner.writer).durable = mark;
        *synced = mark.seq;
        Ok(())
    }

    /// If a failed write or sync wedged the log, cuts it back to its last
    /// durable record, checks that syncing works again, and appends a
    /// durable `sync-failed` record saying what was cut; then appends
    /// resume. Returns whether a recovery was done; an error if the log is
    /// still wedged (the fault persists: tried again later).
    pub fn recover(&self) -> Result<bool, AuditError> {
        let mut synced = lock(&self.inner.synced);
        let mut w = lock(&self.inner.writer);
        let Some(why) = w.wedged.clone() else {
            return Ok(false);
        };
        let done = self.cut_back(&mut w, &why).and_then(|()| {
            w.file
                .sync_data()
                .map_err(|e| format!("fdatasync failed: {e}"))
        });
        if let Err(e) = done {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "the audit log cannot recover yet");
            return Err(AuditError::Broken(format!("{why}; not recovered yet: {e}")));
        }
        let cut = w.pending.take();
        w.durable = w.mark();
        w.wedged = None;
        *synced = w.seq;
        self.inner.recovered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            file = %self.log_path().display(),
            offset = cut.as_ref().map_or(w.durable.len, |c| c.offset),
            length = cut.as_ref().map_or(0, |c| c.length),
            discarded_records = cut.as_ref().map_or(0, |c| c.records),
            kept = cut.as_ref().map_or("", |c| c.kept_as.as_str()),
            error = %why,
            "the audit log recovered from a failed write or sync: it was cut back to its last durable record (nothing cut had been acknowledged) and appends resume"
        );
        Ok(true)
    }

    /// The steps of [`Audit::recover`] before the final sync.
    fn cut_back(&self, w: &mut Writer, why: &str) -> Result<(), String> {
        let path = self.log_path();
        // A fresh open: the old descriptor has reported its error once and
        // would report the next sync as a success.
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let d = w.durable;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len < d.len {
            return Err(format!(
                "{} holds {len} bytes but its last durable record ends at {}: it was cut behind the node's back; stop the node and run `sealpost audit verify`",
                path.display(),
                d.len
            ));
        }
        if len > d.len {
            // Keep what is cut (it is evidence of what was attempted), under
            // a name of its own.
            let mut bytes = vec![0u8; (len - d.len) as usize];
            file.read_exact_at(&mut bytes, d.len)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let torn_dir = self.inner.dir.join(TORN_DIR);
            fs::create_dir_all(&torn_dir)
                .map_err(|e| format!("cannot create {}: {e}", torn_dir.display()))?;
            let sha256 = Sha256::of(&bytes);
            let name = format!(
                "{TORN_DIR}/{}-{}-unsynced-{}.bin",
                d.len,
                Timestamp::now().unix(),
                &sha256.to_hex()[..16]
            );
            let kept = self.inner.dir.join(&name);
            match write_new_atomic(&kept, &bytes) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot keep {}: {e}", kept.display())),
            }
            file.set_len(d.len)
                .map_err(|e| format!("cannot cut {} back: {e}", path.display()))?;
            // The first cut is the one the `sync-failed` record describes (a
            // later one only holds that record, if its own sync failed).
            if w.pending.is_none() {
                w.pending = Some(Cut {
                    from_seq: d.seq + 1,
                    records: w.seq - d.seq,
                    offset: d.len,
                    length: bytes.len() as u64,
                    sha256,
                    kept_as: name,
                });
            }
        }
        if w.seq != d.seq || w.len != d.len {
            w.len = d.len;
            w.seq = d.seq;
            w.head = d.head;
            w.last_is_checkpoint = d.last_is_checkpoint;
            w.epoch += 1;
        }
        w.file = Arc::new(file);
        // Syncing works again (the cut, and both kinds of sync), or the log
        // stays wedged and nothing new is written.
        w.file
            .sync_all()
            .and_then(|()| w.file.sync_data())
            .map_err(|e| format!("cannot make the cut durable: {e}"))?;
        let entry = match &w.pending {
            Some(c) => Entry::SyncFailed {
                discarded_from_seq: c.from_seq,
                discarded_records: c.records,
                offset: c.offset,
                length: c.length,
                sha256: c.sha256,
                kept_as: c.kept_as.clone(),
                error: why.to_owned(),
            },
            None => Entry::SyncFailed {
                discarded_from_seq: d.seq + 1,
                discarded_records: 0,
                offset: d.len,
                length: 0,
                sha256: Sha256::of(b""),
                kept_as: String::new(),
                error: why.to_owned(),
            },
        };
        self.write(w, &entry, Timestamp::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Counters for metrics and health.
    pub fn stats(&self) -> AuditStats {
        let w = lock(&self.inner.writer);
        AuditStats {
            head_seq: w.seq,
            appended: self.inner.appended.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            last_checkpoint_unix: self.inner.last_checkpoint.load(Ordering::Relaxed),
            broken: w.wedged.is_some(),
            recovered: self.inner.recovered.load(Ordering::Relaxed),
        }
    }

    /// The excerpt a proof of delivery carries for `bundle`: every record from
    /// the first about it (its acceptance) through record `through` (a
    /// checkpoint), its own records and the node's neutral ones in full, the
    /// others redacted. `None` if no record names the bundle.
    pub fn excerpt(&self, bundle: &BundleId, through: u64) -> Result<Option<Vec<u8>>, AuditError> {
        let path = self.log_path();
        let ctx = || format!("cannot read {}", path.display());
        let Some(start) = first_offset_of(&path, bundle).map_err(io_err(ctx()))? else {
            return Ok(None);
        };
        let mut f = File::open(&path).map_err(io_err(ctx()))?;
        f.seek(SeekFrom::Start(start)).map_err(io_err(ctx()))?;
        let mut out = Vec::new();
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).map_err(io_err(ctx()))? == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                break;
            }
            line.pop();
            let Ok(head) = parse_head(&line) else { break };
            if keeps(&line, &head, bundle) {
                out.extend_from_slice(&line);
            } else {
                let r = Redacted {
                    seq: head.seq,
                    prev: head.prev,
                    redacted: Sha256::of(&line),
                };
                out.extend(serde_json::to_vec(&r).expect("serialises"));
            }
            out.push(b'\n');
            if head.seq >= through {
                break;
            }
        }
        Ok(Some(out))
    }
}

/// Kinds shown in full in any excerpt: they say nothing about a case.
const NEUTRAL: [&str; 9] = [
    "checkpoint",
    "sync-failed",
    "node-started",
    "node-stopped",
    "torn-tail-removed",
    "witness-mismatch",
    "config-reloaded",
    "config-reload-failed",
    "certificate-changed",
];

fn keeps(line: &[u8], head: &Head, bundle: &BundleId) -> bool {
    if NEUTRAL.contains(&head.kind.as_str()) {
        return true;
    }
    #[derive(Deserialize)]
    struct B {
        bundle_id: Option<BundleId>,
    }
    serde_json::from_slice::<B>(line).is_ok_and(|b| b.bundle_id.as_ref() == Some(bundle))
}

/// The offset of the first record naming `bundle`: the latest
/// `application-accepted` for it, else the earliest record that names it.
/// Reads backwards from the end (a proof is usually made soon after its
/// application was accepted).
fn first_offset_of(path: &Path, bundle: &BundleId) -> io::Result<Option<u64>> {
    let needle = format!("\"bundle_id\":\"{}\"", bundle.as_str());
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut found = None;
    let mut end = len;
    // Lines are read backwards: `tail` holds the start of a line whose
    // beginning is in an earlier block.
    let mut tail: Vec<u8> = Vec::new();
    let block = 256 * 1024u64;
    while end > 0 {
        let start = end.saturating_sub(block);
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        let mut stop = buf.len();
        // Every line that begins inside this block (after a line feed).
        while let Some(i) = buf[..stop].iter().rposition(|&b| b == b'\n') {
            let line = &buf[i + 1..stop];
            let off = start + i as u64 + 1;
            if contains(line, needle.as_bytes()) {
                found = Some(off);
                if contains(line, b"\"kind\":\"application-accepted\"") {
                    return Ok(found);
                }
            }
            stop = i;
        }
        tail = buf[..stop].to_vec();
        end = start;
    }
    if contains(&tail, needle.as_bytes()) {
        found = Some(0);
    }
    Ok(found)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
