//! Intake: the watched folder where clerks drop applications.
//!
//! ## Folders (all under `intake.root`, one file system)
//!
//! ```text
//! intake/            clerks drop a folder or a .zip here
//! .work/<bundle-id>/ claimed items being processed: <name> and .claim.json
//! accepted/<name>.txt  what happened and what comes next (Chinese, then English)
//! rejected/<name>/   the original, untouched, as rejected/<name>/<name>, beside
//!                    REJECTED.txt (reasons for the clerk) and rejection.json (codes)
//! problems/<name>.txt  an item that cannot be taken yet, why, and when it is
//!                    tried again; removed once the item is taken
//! archive/<bundle-id>/ originals of accepted applications
//! ```
//!
//! ## Life of an item
//!
//! 1. **Complete?** A folder with a `READY` file is complete. Otherwise an item
//!    is complete when its file set, sizes and modification times are unchanged
//!    for `intake.settle` across two scans ([`Scanner`]). inotify has no "copy
//!    finished" event, so events only trigger scans; a periodic scan catches
//!    anything an event missed. A copy that pauses for longer than `settle`
//!    can be taken unfinished: step 3 then finds it still being written, or
//!    step 4 finds files missing or cut short, and it is rejected with a reason
//!    that says so — never sealed.
//!    An item that is complete by these rules but has a file open for
//!    writing (asked with a file lease, see step 3) is not taken yet: the
//!    copier can finish where it writes. After `intake.write_timeout` it is
//!    taken anyway and rejected as still being written.
//! 2. **Claim.** A fresh bundle id is drawn, `.work/<id>/.claim.json` written and
//!    fsynced, then the item renamed into `.work/<id>/` and both directories
//!    fsynced. The rename is atomic: the item is in `intake/` or in `.work/`,
//!    never both, and a second instance cannot take it too. The id is fixed from
//!    here on, so a resumed item can never become two bundles.
//! 3. **Quiet?** A rename does not stop a writer that holds a file open. So the
//!    node takes a read lease on every file of the item ([`crate::fsutil::lease`]):
//!    the kernel grants it only while nobody has the file open for writing, and
//!    reports any attempt to open it for writing while it is held. An item with
//!    a writer waits (`Held`, tried again within a second) — for at most
//!    `intake.write_timeout` after its claim, then it is rejected as still being
//!    written. Where leases are unavailable (some network file systems, or
//!    `intake.use_leases = false`), an item taken by its `READY` marker must
//!    instead stay unchanged for `intake.settle` after the claim.
//! 4. **Validate** ([`Application::load`]); a zip is checked entry by entry
//!    (names, links, duplicates, sizes, ratio, overlap, time) before a byte is
//!    extracted, into `.work/<id>/.extracted/`.
//! 5. **Reject**: reasons are written into `.work/<id>/`, which is then renamed
//!    to `rejected/<name>/`. Nothing is deleted or changed.
//! 6. **Accept**: seal to a hidden pending file in the outbox; check that no
//!    lease was broken and that sizes, times and the file set are unchanged —
//!    so the bytes sealed are the bytes that will be archived; publish the
//!    bundle as `outbox/bundles/<id>.sealpost`, queue it (durable), write
//!    `accepted/<name>.txt`, rename `.work/<id>` to `archive/<id>` (leases are
//!    held until then). If anything changed, the pending file is removed and
//!    the item waits as in step 3.
//!
//! ## When things fail
//!
//! A failure that is not the item's fault (permissions, I/O, the outbox) leaves
//! the item where it is and gives it its own retry schedule (1 s doubling to
//! 5 min, with jitter), one log line per attempt, and a note for the clerks in
//! `problems/<name>.txt` (where one can be written). A full disk — seen as an
//! error, or as less than `intake.min_free_space` free on the intake root or the
//! data directory — pauses intake altogether (one log line); serving goes on,
//! and intake resumes by itself when there is room again.
//!
//! ## Recovery
//!
//! At start every `.work/<id>/` is resumed: without the item (the claim rename
//! never happened) it is removed; otherwise processing restarts at step 3 and
//! every step skips what is already done (bundle published, record present,
//! accepted note present). Each application is therefore always in exactly one
//! place: `intake/`, `.work/`, `rejected/`, or outbox + `archive/`.

pub(crate) mod notes;
pub(crate) mod scan;
mod seal;
mod zipdrop;

use notes::*;
pub use notes::{render_acceptance, render_rejection, MAX_LISTED_REASONS};
pub use scan::Scanner;
use scan::{snapshot, Snapshot};
pub use seal::{seal_application, seal_application_as};

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::application::{Application, Reason, ReasonCode, Rejection};
use crate::config::Config;
use crate::fsutil::{rename_noreplace, sync_dir, write_new_atomic};
use crate::outbox::{Outbox, OutboxError};
use crate::status::Health;
use crate::types::{printable, BundleId, Timestamp};

/// Marker a producer may write last to say "this folder is complete".
pub const READY: &str = "READY";
const CLAIM: &str = ".claim.json";
const EXTRACTED: &str = ".extracted";

/// What intake did with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sealed and queued.
    Accepted {
        /// The item's name.
        name: String,
        /// Its bundle.
        id: BundleId,
    },
    /// Moved to `rejected/`.
    Rejected {
        /// The item's name.
        name: String,
        /// Where it went.
        dir: PathBuf,
        /// Why.
        codes: Vec<ReasonCode>,
    },
    /// Claimed, but still being written (or changed while it was sealed): it
    /// waits in `.work/` and is tried again shortly.
    Held {
        /// The item's name.
        name: String,
        /// Its bundle id (fixed at the claim).
        id: BundleId,
    },
}

/// Intake failures that are not the item's fault (disk, outbox). The item stays
/// where it is (in `intake/` or `.work/`) and is retried at the next scan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// File-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Sealing failed for a local reason.
    #[error("sealing {name}: {source}")]
    Seal {
        /// The item.
        name: String,
        /// Why.
        #[source]
        source: crate::bundle::SealError,
    },
}

impl IntakeError {
    /// Whether the disk (or a quota) is full, anywhere in the error's chain.
    pub fn is_disk_full(&self) -> bool {
        crate::fsutil::chain_is_disk_full(self)
    }

    fn is_permission_denied(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::PermissionDenied)
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> IntakeError {
    let context = context.into();
    move |source| IntakeError::Io { context, source }
}

/// The folders.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Where clerks drop.
    pub intake: PathBuf,
    /// Claimed items.
    pub work: PathBuf,
    /// Clerk notes for accepted items.
    pub accepted: PathBuf,
    /// Rejected items with reasons.
    pub rejected: PathBuf,
    /// Originals of accepted items.
    pub archive: PathBuf,
    /// Notes about items that cannot be taken yet.
    pub problems: PathBuf,
}

impl Dirs {
    /// The layout under `root` (paths only, nothing touched).
    pub fn under(root: &Path) -> Self {
        Self {
            intake: root.join("intake"),
            work: root.join(".work"),
            accepted: root.join("accepted"),
            rejected: root.join("rejected"),
            archive: root.join("archive"),
            problems: root.join("problems"),
        }
    }

    /// The layout under `root`, created if missing.
    pub fn create(root: &Path) -> Result<Self, IntakeError> {
        let d = Self::under(root);
        for p in [
            &d.intake,
            &d.work,
            &d.accepted,
            &d.rejected,
            &d.archive,
            &d.problems,
        ] {
            fs::create_dir_all(p).map_err(io_err(format!("cannot create {}", p.display())))?;
        }
        sync_dir(root).map_err(io_err("cannot sync the intake root"))?;
        Ok(d)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    name: String,
    claimed_at: Timestamp,
}

/// Takes applications from `intake/` into the outbox.
#[derive(Debug)]
pub struct Intake {
    /// The configuration in force; a reload replaces it ([`Intake::reconfigure`]).
    config: RwLock<Arc<Config>>,
    outbox: Outbox,
    dirs: Dirs,
    state: Mutex<State>,
    health: Health,
    cases: Option<crate::cases::Cases>,
    audit: Option<crate::audit::Audit>,
}

/// The name intake reports its health under.
pub const HEALTH_PART: &str = "intake";

/// Retry schedules, per item, and the disk-full pause.
#[derive(Debug, Default)]
struct State {
    /// Items in `intake/` that could not be claimed.
    unclaimed: HashMap<OsString, Retry>,
    /// Claimed items waiting in `.work/`: held (still being written) or failed.
    claimed: std::collections::BTreeMap<BundleId, Retry>,
    /// Claimed items seen still being written, and (without leases) the
    /// snapshot that must stay unchanged for `settle`.
    watched: HashMap<BundleId, Watch>,
    /// Intake is paused for want of disk space, since then.
    paused: Option<Instant>,
    /// Items in `intake/` that were complete by their marker or settle time
    /// but still had a file open for writing, since when.
    writing: HashMap<OsString, Instant>,
    /// Claimed items whose `application-accepted` record is durable (so a
    /// retry after a later step failed does not record it twice).
    recorded: std::collections::HashSet<BundleId>,
}

#[derive(Debug, Clone)]
struct Retry {
    name: String,
    attempts: u32,
    next: Instant,
    /// The clerk's note in `problems/`, if one was written.
    note: Option<PathBuf>,
    /// Why the last attempt failed (none: waiting for the item to be complete).
    error: Option<String>,
}

impl Retry {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            attempts: 0,
            next: Instant::now(),
            note: None,
            error: None,
        }
    }

    /// Counts a failed attempt (keeping why) and schedules the next one;
    /// returns the attempt number and the wait.
    fn failed(&mut self, why: &impl std::fmt::Display) -> (u32, Duration) {
        self.error = Some(why.to_string());
        let wait = crate::retry::delay(self.attempts, FAILED_RETRY.0, FAILED_RETRY.1);
        self.attempts = self.attempts.saturating_add(1);
        self.next = Instant::now() + wait;
        (self.attempts, wait)
    }
}

#[derive(Debug, Default)]
struct Watch {
    was_busy: bool,
    /// Since when it has been seen still being written (before or after its claim).
    busy_since: Option<Instant>,
    settling: Option<(Snapshot, Instant)>,
}

/// Why a claimed item is not quiet yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Busy {
    /// This file is open for writing.
    Writing(String),
    /// Its files keep changing (no leases: watched for `settle`).
    Changing,
}

/// A claimed item nobody is writing: its leases are held until this is
/// dropped, and [`Quiet::unchanged`] tells whether that is still so.
#[derive(Debug)]
struct Quiet {
    item: PathBuf,
    leases: Vec<crate::fsutil::lease::Lease>,
    snapshot: Snapshot,
}

impl Quiet {
    fn unchanged(&self) -> io::Result<bool> {
        Ok(self.leases.iter().all(crate::fsutil::lease::Lease::intact)
            && snapshot(&self.item)? == self.snapshot)
    }
}

/// Files of one item that are leased; beyond this the item has more files than
/// any application may (validation rejects it) and is not leased.
const MAX_LEASED: usize = 256;
/// Retry schedule of an item that failed: first and longest wait.
const FAILED_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));
/// Retry schedule of an item still being written.
const HELD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
/// How often a paused intake looks for free space again.
const PAUSE_CHECK: Duration = Duration::from_secs(2);

/// Cases being checked and queued right now, process-wide: parallel workers,
/// and a folder drop racing an online submission, must not both pass the
/// duplicate-case check for the same case.
type CaseSet = (
    Mutex<std::collections::HashSet<crate::types::CaseRef>>,
    std::sync::Condvar,
);
static IN_FLIGHT: std::sync::LazyLock<CaseSet> = std::sync::LazyLock::new(Default::default);

/// Holds a case in [`IN_FLIGHT`] until dropped.
struct CaseLock {
    set: &'static CaseSet,
    case: crate::types::CaseRef,
}

impl Drop for CaseLock {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.0.lock() {
            s.remove(&self.case);
        }
        self.set.1.notify_all();
    }
}

impl Intake {
    /// Prepares the folders.
    pub fn new(config: Arc<Config>, outbox: Outbox) -> Result<Self, IntakeError> {
        let dirs = Dirs::create(&config.intake.root)?;
        crate::fsutil::remove_stale_temps(&dirs.accepted)
            .map_err(io_err("cannot clean accepted/"))?;
        Ok(Self {
            config: RwLock::new(config),
            outbox,
            dirs,
            state: Mutex::new(State::default()),
            health: Health::default(),
            cases: None,
            audit: None,
        })
    }

    /// Records every accepted application in `cases` (its applicant, for
    /// notifications; its timeline; the clerks' status file).
    #[must_use]
    pub fn keeping_cases(mut self, cases: crate::cases::Cases) -> Self {
        self.cases = Some(cases);
        self
    }

    /// Appends `application-accepted` and `application-rejected` records to
    /// the node's audit log.
    #[must_use]
    pub fn auditing(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    fn audit(&self, entry: crate::audit::Entry) {
        if let Some(a) = &self.audit {
            if let Err(e) = a.append(entry) {
                tracing::error!(error = %e, "cannot append to the audit log");
            }
        }
    }

    /// Reports the loop's health (scanning, paused, failing) to `health`.
    #[must_use]
    pub fn reporting_to(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a reloaded configuration in force for the items taken from now
    /// on (limits, the peer directory, keys, timings). The folders stay where
    /// they are: a new `intake.root` takes effect at the next start.
    pub fn reconfigure(&self, next: Arc<Config>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The folders.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// Resumes everything left in `.work/` by an interrupted run.
    pub fn recover(&self) -> Result<Vec<Outcome>, IntakeError> {
        let mut out = Vec::new();
        let mut ids: Vec<PathBuf> = fs::read_dir(&self.dirs.work)
            .map_err(io_err("cannot list .work"))?
            .flatten()
            .map(|e| e.path())
            .collect();
        ids.sort();
        for dir in ids {
            let id: Option<BundleId> = dir
                .file_name()
                .and_then(OsStr::to_str)
                .and_then(|s| s.parse().ok());
            let claim: Option<Claim> = fs::read(dir.join(CLAIM))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match (id, claim) {
                (Some(id), Some(claim)) if dir.join(&claim.name).symlink_metadata().is_ok() => {
                    match self.attempt(id, &claim.name) {
                        Ok(o) => out.push(o),
                        Err(e) => {
                            tracing::error!(item = %printable(&claim.name), bundle = %id, error = %e, "resuming an item failed; it stays and is retried")
                        }
                    }
                }
                (Some(_), _) => {
                    // The claim rename never happened: the claim file is written
                    // (atomically) before the item is moved in, so without a complete
                    // claim there is no item here, and with a claim but no item the
                    // item is still in intake/. Only our own files remain.
                    fs::remove_dir_all(&dir)
                        .map_err(io_err(format!("cannot remove {}", dir.display())))?;
                }
                (None, _) => {
                    if !dir
                        .file_name()
                        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
                    {
                        tracing::warn!(dir = %printable(&dir.to_string_lossy()), "unexpected entry in .work; left alone");
                    }
                }
            }
        }
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        Ok(out)
    }

    /// Removes archived originals older than `intake.archive_retention` whose
    /// delivery is final (delivered or cancelled). Never touches anything whose
    /// delivery is still under way. Returns how many were removed.
    pub fn prune_archive(&self, now: Timestamp) -> Result<usize, IntakeError> {
        let Some(keep) = self.config().intake.archive_retention else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in fs::read_dir(&self.dirs.archive)
            .map_err(io_err("cannot list archive/"))?
            .flatten()
        {
            let Some(id) = e
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<BundleId>().ok())
            else {
                continue;
            };
            let claim: Option<Claim> = fs::read(e.path().join(CLAIM))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(claim) = claim else { continue };
            let age = now.unix() - claim.claimed_at.unix();
            if age < i64::try_from(keep.as_secs()).unwrap_or(i64::MAX) {
                continue;
            }
            if self.outbox.get(&id)?.is_some_and(|d| d.state.is_final()) {
                fs::remove_dir_all(e.path())
                    .map_err(io_err(format!("cannot prune {}", e.path().display())))?;
                tracing::info!(bundle = %id, "archived originals pruned after the retention period");
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dirs.archive).map_err(io_err("cannot sync archive/"))?;
        }
        Ok(removed)
    }

    /// Claims and processes the given items (names in `intake/`), up to
    /// `intake.workers` at a time. An item that vanished meanwhile is skipped.
    /// Failures are also recorded for their item's retry schedule.
    pub fn take(&self, names: &[OsString]) -> Vec<Result<Outcome, IntakeError>> {
        self.in_parallel(names, |name| self.take_one(name))
    }

    /// Tries again every claimed item whose retry is due (held or failed).
    pub fn retry_due(&self) -> Vec<Result<Outcome, IntakeError>> {
        let now = Instant::now();
        let due: Vec<(BundleId, String)> = self
            .state()
            .claimed
            .iter()
            .filter(|(_, r)| r.next <= now)
            .map(|(id, r)| (*id, r.name.clone()))
            .collect();
        self.in_parallel(&due, |(id, name)| {
            if self
                .dirs
                .work
                .join(id.as_str())
                .join(name)
                .symlink_metadata()
                .is_err()
            {
                self.forget_claimed(id);
                return None;
            }
            Some(self.attempt(*id, name))
        })
    }

    /// Runs `f` over `items` on up to `intake.workers` threads.
    fn in_parallel<T: Sync>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Option<Result<Outcome, IntakeError>> + Sync,
    ) -> Vec<Result<Outcome, IntakeError>> {
        let queue = Mutex::new(items.iter().collect::<Vec<_>>());
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..self.config().intake.workers.min(items.len().max(1)) {
                s.spawn(|| loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(item) = next else { break };
                    if let Some(r) = f(item) {
                        if let Ok(mut v) = results.lock() {
                            v.push(r);
                        }
                    }
                });
            }
        });
        results.into_inner().unwrap_or_default()
    }

    fn take_one(&self, os_name: &OsString) -> Option<Result<Outcome, IntakeError>> {
        // Complete by its marker or its settle time, but a file still open for
        // writing: not taken yet, so that the copier can finish where it is
        // writing (for at most `write_timeout`; then it is claimed and rejected
        // as still being written).
        let busy_since = match self.writer_in(&self.dirs.intake.join(os_name)) {
            Some(file) => {
                let since = *self
                    .state()
                    .writing
                    .entry(os_name.clone())
                    .or_insert_with(|| {
                        tracing::info!(item = %printable(&os_name.to_string_lossy()), file = %printable(&file), "complete by its marker or settle time, but a file is still open for writing: not taken yet");
                        Instant::now()
                    });
                if since.elapsed() < self.config().intake.write_timeout {
                    return None;
                }
                Some(since)
            }
            None => self.state().writing.remove(os_name),
        };
        match self.claim(os_name) {
            Ok(None) => {
                self.forget_unclaimed(os_name);
                None
            }
            Ok(Some((id, name))) => {
                self.forget_unclaimed(os_name);
                if let Some(since) = busy_since {
                    let mut st = self.state();
                    st.writing.remove(os_name);
                    let w = st.watched.entry(id).or_default();
                    w.was_busy = true;
                    w.busy_since = Some(since);
                }
                Some(self.attempt(id, &name))
            }
            Err(e) => {
                self.unclaimed_failed(os_name, &e);
                Some(Err(e))
            }
        }
    }

    /// The name of a file of `item` that someone has open for writing, if
    /// leases can tell (`None` also when they cannot).
    fn writer_in(&self, item: &Path) -> Option<String> {
        use crate::fsutil::lease::{self, Probe};
        if !self.config().intake.use_leases {
            return None;
        }
        let meta = fs::symlink_metadata(item).ok()?;
        let files: Vec<PathBuf> = if meta.is_file() {
            vec![item.to_owned()]
        } else if meta.is_dir() {
            fs::read_dir(item)
                .ok()?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .take(MAX_LEASED + 1)
                .collect()
        } else {
            return None;
        };
        if files.len() > MAX_LEASED {
            return None;
        }
        for f in files {
            match lease::probe(&f) {
                Ok(Probe::Busy) => {
                    return Some(
                        f.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    )
                }
                Ok(Probe::Unsupported(_)) => return None,
                // Quiet (the probe's lease ends here), or unreadable: the
                // claim and validation deal with it.
                _ => {}
            }
        }
        None
    }

    /// Processes a claimed item and keeps its retry schedule.
    fn attempt(&self, id: BundleId, name: &str) -> Result<Outcome, IntakeError> {
        let r = self.process(id, name);
        match &r {
            Ok(Outcome::Held { .. }) => self.held(id, name),
            Ok(_) => self.forget_claimed(&id),
            Err(e) => self.claimed_failed(id, name, e),
        }
        r
    }

    /// Items whose last attempt failed (each tried again later), in words:
    /// how many and the latest reason. `None` when every item goes through.
    fn failing(&self) -> Option<String> {
        let st = self.state();
        let failed: Vec<&Retry> = st
            .claimed
            .values()
            .chain(st.unclaimed.values())
            .filter(|r| r.error.is_some())
            .collect();
        let last = failed.iter().max_by_key(|r| r.next)?;
        Some(format!(
            "{} item(s) cannot be taken and are tried again; {}: {}",
            failed.len(),
            printable(&last.name),
            last.error.as_deref().unwrap_or_default()
        ))
    }

    /// When the next claimed item's retry falls due.
    fn next_retry(&self) -> Option<Instant> {
        self.state().claimed.values().map(|r| r.next).min()
    }

    /// Whether an item in `intake/` may be tried now (not waiting out a retry).
    pub fn due(&self, name: &OsStr) -> bool {
        self.state()
            .unclaimed
            .get(name)
            .is_none_or(|r| r.next <= Instant::now())
    }

    /// Forgets retry schedules (and removes notes) of items no longer in
    /// `intake/` (`present`: what is there now).
    fn forget_vanished(&self, present: &[OsString]) {
        let gone: Vec<(OsString, Retry)> = {
            let mut st = self.state();
            st.writing.retain(|k, _| present.contains(k));
            let names: Vec<OsString> = st
                .unclaimed
                .keys()
                .filter(|k| !present.contains(k))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|k| st.unclaimed.remove(&k).map(|r| (k, r)))
                .collect()
        };
        for (_, r) in gone {
            remove_note(r.note.as_deref());
        }
    }

    fn forget_unclaimed(&self, name: &OsStr) {
        let r = self.state().unclaimed.remove(name);
        if let Some(r) = r {
            remove_note(r.note.as_deref());
        }
    }

    fn forget_claimed(&self, id: &BundleId) {
        let r = {
            let mut st = self.state();
            st.watched.remove(id);
            st.recorded.remove(id);
            st.claimed.remove(id)
        };
        if let Some(r) = r {
            remove_note(r.note.as_deref());
        }
    }

    fn held(&self, id: BundleId, name: &str) {
        let mut st = self.state();
        let r = st.claimed.entry(id).or_insert_with(|| Retry::new(name));
        if r.attempts == 0 {
            tracing::info!(item = %printable(name), bundle = %id, "still being written; waiting until it is complete");
        }
        r.next = Instant::now() + crate::retry::exponential(r.attempts, HELD_RETRY.0, HELD_RETRY.1);
        r.attempts = r.attempts.saturating_add(1);
    }

    fn unclaimed_failed(&self, os_name: &OsStr, e: &IntakeError) {
        let name = os_name.to_string_lossy().into_owned();
        if e.is_disk_full() {
            self.pause(e);
            return;
        }
        let (attempt, wait) = self
            .state()
            .unclaimed
            .entry(os_name.to_owned())
            .or_insert_with(|| Retry::new(&name))
            .failed(e);
        tracing::warn!(item = %printable(&name), attempt, retry_in = ?wait, error = %e, "cannot take this item; it stays in intake/ and is tried again");
        let note = self.write_note(&name, e, attempt, wait);
        if let Some(r) = self.state().unclaimed.get_mut(os_name) {
            r.note = note.or(r.note.take());
        }
    }

    fn claimed_failed(&self, id: BundleId, name: &str, e: &IntakeError) {
        if e.is_disk_full() {
            self.pause(e);
            // Tried again as soon as intake resumes.
            self.state()
                .claimed
                .entry(id)
                .or_insert_with(|| Retry::new(name));
            return;
        }
        let (attempt, wait) = self
            .state()
            .claimed
            .entry(id)
            .or_insert_with(|| Retry::new(name))
            .failed(e);
        tracing::warn!(item = %printable(name), bundle = %id, attempt, retry_in = ?wait, error = %e, "processing failed; the item stays in .work/ and is tried again");
        let note = self.write_note(name, e, attempt, wait);
        if let Some(r) = self.state().claimed.get_mut(&id) {
            r.note = note.or(r.note.take());
        }
    }

    /// Writes (or replaces) `problems/<name>.txt`; `None` if it cannot.
    fn write_note(
        &self,
        name: &str,
        e: &IntakeError,
        attempt: u32,
        wait: Duration,
    ) -> Option<PathBuf> {
        let [plain, _] = candidate_names(name, &BundleId::from_random_bytes([0; 16]), ".txt");
        let path = self.dirs.problems.join(plain);
        let text = render_problem(name, e, attempt, Timestamp::now(), wait);
        match crate::fsutil::write_replace_atomic(&path, text.as_bytes()) {
            Ok(()) => Some(path),
            Err(err) => {
                tracing::debug!(error = %err, "cannot write the clerks' note");
                None
            }
        }
    }

    /// Pauses intake for want of disk space (logged once).
    fn pause(&self, e: &dyn std::fmt::Display) {
        let mut st = self.state();
        if st.paused.is_none() {
            st.paused = Some(Instant::now());
            tracing::error!(error = %e, min_free = %crate::types::human_bytes(self.config().intake.min_free_space), "disk full: intake paused (the API goes on serving); it resumes by itself when there is room again");
        }
    }

    /// Whether intake is paused now. A paused intake checks the free space
    /// (every couple of seconds) and resumes when there is room.
    pub fn is_paused(&self) -> bool {
        let since = self.state().paused;
        let Some(since) = since else {
            if !self.has_room() {
                self.pause(&"less free space than intake.min_free_space");
                return true;
            }
            return false;
        };
        if !self.has_room() {
            return true;
        }
        let mut st = self.state();
        st.paused = None;
        for r in st.claimed.values_mut() {
            r.next = Instant::now();
        }
        drop(st);
        tracing::warn!(paused_for = ?since.elapsed(), "there is room on the disk again: intake resumes");
        false
    }

    /// Whether the intake root and the data directory have at least
    /// `intake.min_free_space` free.
    fn has_room(&self) -> bool {
        let min = self.config().intake.min_free_space;
        [&self.config().intake.root, &self.config().node.data_dir]
            .iter()
            .all(|p| crate::fsutil::free_space(p).map_or(true, |free| free >= min))
    }

    /// Moves `intake/<name>` into `.work/<new id>/<name>`. `None` if it vanished.
    fn claim(&self, os_name: &OsStr) -> Result<Option<(BundleId, String)>, IntakeError> {
        self.claim_from(&self.dirs.intake.join(os_name), os_name)
    }

    /// Takes an application uploaded over the API (a zip, already written to
    /// `upload` on this file system) through the same claim, validation and
    /// accept/reject path as a drop.
    pub fn submit(&self, upload: &Path, name: &str) -> Result<Outcome, IntakeError> {
        let Some((id, name)) = self.claim_from(upload, OsStr::new(name))? else {
            return Err(IntakeError::Io {
                context: format!("the upload {} vanished", upload.display()),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        };
        // The upload is this node's own file: nobody writes it. Should it be
        // held all the same, give it a few seconds before answering.
        for _ in 0..50 {
            match self.process(id, &name)? {
                Outcome::Held { .. } => std::thread::sleep(Duration::from_millis(100)),
                done => return Ok(done),
            }
        }
        Ok(Outcome::Held { name, id })
    }

    /// The folder where API uploads are staged under `root` (same file system
    /// as `.work/`, so claiming an upload is a rename). Pure path arithmetic.
    pub fn uploads_dir(root: &Path) -> PathBuf {
        Dirs::under(root).work.join(".uploads")
    }

    /// Removes online submissions whose upload was interrupted by a crash
    /// (never claimed: the platform got no answer and submits again). Call once
    /// at start, before the API serves.
    pub fn clean_uploads(&self) -> Result<(), IntakeError> {
        let dir = Self::uploads_dir(&self.config().intake.root);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot clean the upload folder")(e)),
        }
    }

    fn claim_from(
        &self,
        src: &Path,
        os_name: &OsStr,
    ) -> Result<Option<(BundleId, String)>, IntakeError> {
        let id = BundleId::generate();
        let work = self.dirs.work.join(id.as_str());
        // A name that is not UTF-8 cannot be reported or sealed; it is claimed
        // under a (shortened) lossy rendering of itself so that it can be rejected.
        let name = match os_name.to_str() {
            Some(s) => s.to_owned(),
            None => format!(
                "{}{INVALID_NAME}",
                truncate_utf8(&os_name.to_string_lossy(), 120)
            ),
        };
        fs::create_dir(&work).map_err(io_err("cannot create a work folder"))?;
        let abandon = |e: io::Error, what: &str| {
            let _ = fs::remove_dir_all(&work);
            io_err(format!("{what} {}", printable(&name)))(e)
        };
        let claim = Claim {
            name: name.clone(),
            claimed_at: Timestamp::now(),
        };
        write_new_atomic(
            &work.join(CLAIM),
            &serde_json::to_vec(&claim).expect("claim serialises"),
        )
        .map_err(|e| abandon(e, "cannot write the claim for"))?;
        match rename_noreplace(src, &work.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&work);
                return Ok(None);
            }
            Err(e) => return Err(abandon(e, "cannot claim")),
        }
        let synced = sync_dir(crate::fsutil::parent_of(src))
            .map_err(|e| (e, "cannot sync the source folder"))
            .and_then(|()| sync_dir(&work).map_err(|e| (e, "cannot sync the work folder")));
        if let Err((e, what)) = synced {
            // The claim is not durable: undo it, so that the item is where it
            // was and tried again from there (not left in .work/ unseen until
            // the next start). If even that fails the item is claimed, and
            // tried again from .work/ like any claimed item.
            return match rename_noreplace(&work.join(&name), src) {
                Ok(()) => {
                    let _ = fs::remove_dir_all(&work);
                    Err(io_err(what)(e))
                }
                Err(undo) => {
                    tracing::warn!(item = %printable(&name), bundle = %id, error = %undo, "cannot undo a claim whose folder sync failed; the item is processed from .work/");
                    let e = io_err(what)(e);
                    self.claimed_failed(id, &name, &e);
                    Ok(None)
                }
            };
        }
        Ok(Some((id, name)))
    }

    /// Validates a claimed item and accepts or rejects it, or holds it while
    /// it is still being written. Idempotent.
    fn process(&self, id: BundleId, name: &str) -> Result<Outcome, IntakeError> {
        let work = self.dirs.work.join(id.as_str());
        crate::fsutil::remove_stale_temps(&work).map_err(io_err("cannot clean the work folder"))?;
        let item = work.join(name);
        let quiet = match self.quiet(&id, &item)? {
            Ok(q) => q,
            Err(busy) => {
                let claimed_at = fs::read(work.join(CLAIM))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Claim>(&b).ok())
                    .map(|c| c.claimed_at)
                    .unwrap_or_else(Timestamp::now);
                let since_claim = u64::try_from(Timestamp::now().unix() - claimed_at.unix())
                    .map(Duration::from_secs)
                    .unwrap_or_default();
                let since_busy = self
                    .state()
                    .watched
                    .get(&id)
                    .and_then(|w| w.busy_since)
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                if since_claim.max(since_busy) >= self.config().intake.write_timeout {
                    let rejection = Rejection {
                        reasons: vec![still_being_written(
                            name,
                            &busy,
                            self.config().intake.write_timeout,
                        )],
                    };
                    return self.reject(id, name, rejection);
                }
                return Ok(Outcome::Held {
                    name: name.to_owned(),
                    id,
                });
            }
        };
        let app = match self.validate(&work, &item, name) {
            Ok(app) => app,
            Err(mut rejection) => {
                if self.state().watched.get(&id).is_some_and(|w| w.was_busy) {
                    rejection.reasons.insert(
                        0,
                        still_being_written(
                            name,
                            &Busy::Changing,
                            self.config().intake.write_timeout,
                        ),
                    );
                }
                drop(quiet);
                return self.reject(id, name, rejection);
            }
        };
        let _case = self.lock_case(&app.case_number);
        if let Some(prior) = self.outbox.active_case(&app.case_number, Some(&id))? {
            if !app.resubmission {
                let reason = Reason::new(
                    ReasonCode::CaseAlreadyQueued,
                    Some(crate::application::MANIFEST_NAME),
                    format!(
                        "案号 {} 已经在发送队列中（电子文件编号 {}，状态 {}）。如确需重新提交，请在 application.toml 中加上 resubmission = true。",
                        app.case_number, prior.id, prior.state.name()
                    ),
                    format!(
                        "Case {} is already queued (bundle {}, {}). To send it again on purpose, add resubmission = true to application.toml.",
                        app.case_number, prior.id, prior.state.name()
                    ),
                );
                drop(quiet);
                return self.reject(
                    id,
                    name,
                    Rejection {
                        reasons: vec![reason],
                    },
                );
            }
        }
        self.accept(id, name, &app, quiet)
    }

    /// Whether nobody is writing the claimed `item` (see step 3 of the module
    /// doc). `Ok(Err(busy))`: not yet.
    fn quiet(&self, id: &BundleId, item: &Path) -> Result<Result<Quiet, Busy>, IntakeError> {
        use crate::fsutil::lease::{self, Probe};
        let Ok(meta) = fs::symlink_metadata(item) else {
            // Unreadable or gone: validation says why.
            return Ok(Ok(Quiet {
                item: item.to_owned(),
                leases: Vec::new(),
                snapshot: Snapshot(Vec::new()),
            }));
        };
        let mut files = Vec::new();
        if meta.is_file() {
            files.push(item.to_owned());
        } else if meta.is_dir() {
            for e in fs::read_dir(item)
                .map_err(io_err("cannot list a claimed item"))?
                .flatten()
            {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    files.push(e.path());
                }
            }
            if files.len() > MAX_LEASED {
                files.clear();
            }
        }
        let mut leases = Vec::new();
        let mut watch_instead = !self.config().intake.use_leases;
        if !watch_instead {
            for f in &files {
                match lease::probe(f) {
                    Ok(Probe::Quiet(l)) => leases.push(l),
                    Ok(Probe::Busy) => {
                        let mut st = self.state();
                        let w = st.watched.entry(*id).or_default();
                        w.was_busy = true;
                        w.busy_since.get_or_insert_with(Instant::now);
                        drop(st);
                        let shown = f
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        return Ok(Err(Busy::Writing(shown)));
                    }
                    Ok(Probe::Unsupported(e)) => {
                        static WARNED: std::sync::Once = std::sync::Once::new();
                        WARNED.call_once(|| tracing::warn!(error = %e, "file leases are not available for the intake folder; READY drops wait `intake.settle` after they are claimed"));
                        leases.clear();
                        watch_instead = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    // Anything else (permissions, a FIFO…) is for validation to explain.
                    Err(_) => {}
                }
            }
        }
        let snap = snapshot(item).map_err(io_err("cannot read a claimed item"))?;
        let taken_by_marker = meta.is_dir() && item.join(READY).symlink_metadata().is_ok();
        if watch_instead && taken_by_marker {
            let settle = self.config().intake.settle;
            let mut st = self.state();
            let w = st.watched.entry(*id).or_default();
            match &w.settling {
                Some((prev, since)) if *prev == snap => {
                    if since.elapsed() < settle {
                        return Ok(Err(Busy::Changing));
                    }
                }
                prev => {
                    if prev.is_some() {
                        w.was_busy = true;
                    }
                    w.settling = Some((snap, Instant::now()));
                    return Ok(Err(Busy::Changing));
                }
            }
        }
        Ok(Ok(Quiet {
            item: item.to_owned(),
            leases,
            snapshot: snap,
        }))
    }

    /// Waits until no other worker is checking or queuing `case`, then holds it.
    fn lock_case(&self, case: &crate::types::CaseRef) -> CaseLock {
        let (set, cv) = &*IN_FLIGHT;
        let mut guard = set.lock().unwrap_or_else(|p| p.into_inner());
        while guard.contains(case) {
            guard = cv.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        guard.insert(case.clone());
        CaseLock {
            set: &IN_FLIGHT,
            case: case.clone(),
        }
    }

    fn validate(&self, work: &Path, item: &Path, name: &str) -> Result<Application, Rejection> {
        let one = |code, zh: String, en: String| Rejection {
            reasons: vec![Reason::new(code, Some(name), zh, en)],
        };
        let meta = fs::symlink_metadata(item).map_err(|e| {
            one(
                ReasonCode::Unreadable,
                format!("无法读取（{}）。", crate::application::zh_io(&e)),
                format!("Cannot be read ({e})."),
            )
        })?;
        if name.ends_with(INVALID_NAME) {
            return Err(one(
                ReasonCode::UnsafeFileName,
                "名称不是有效的 UTF-8 文字，无法识别。请重命名后重新放入。".into(),
                "The name is not valid UTF-8 text. Rename it and drop it again.".into(),
            ));
        }
        let folder = if meta.is_dir() {
            item.to_owned()
        } else if meta.is_file() && name.to_ascii_lowercase().ends_with(".zip") {
            if meta.nlink() > 1 {
                return Err(one(
                    ReasonCode::HardLinkedFile,
                    "这个 .zip 是硬链接，可能在处理中被他处修改。请复制一份真实文件放入。".into(),
                    "This .zip is a hard link and could change behind our back. Drop a real copy of the file.".into(),
                ));
            }
            let dest = work.join(EXTRACTED);
            let _ = fs::remove_dir_all(&dest);
            zipdrop::extract_zip(item, &dest, &self.config().limits, name)?
        } else {
            return Err(one(
                ReasonCode::NotAnApplication,
                "这不是申请文件夹或 .zip 压缩包。请把申请材料和 application.toml 放在一个文件夹里再放入。".into(),
                "This is neither an application folder nor a .zip. Put the documents and application.toml in one folder and drop that.".into(),
            ));
        };
        Application::load(&folder, &self.config().limits, &self.config().directory)
    }

    fn reject(
        &self,
        id: BundleId,
        name: &str,
        rejection: Rejection,
    ) -> Result<Outcome, IntakeError> {
        let work = self.dirs.work.join(id.as_str());
        let _ = fs::remove_dir_all(work.join(EXTRACTED));
        let now = Timestamp::now();
        let (txt, json) = reason_file_names(name);
        let text = render_rejection(name, &id, now, &rejection);
        let record = serde_json::json!({
            "item": name, "id": id, "rejected_at": now, "reasons": rejection.reasons,
        });
        for (file, bytes) in [
            (txt, text.into_bytes()),
            (json, serde_json::to_vec_pretty(&record).expect("json")),
        ] {
            let p = work.join(file);
            let _ = fs::remove_file(&p); // from an interrupted earlier attempt
            write_new_atomic(&p, &bytes).map_err(io_err("cannot write the rejection note"))?;
        }
        let dest = free_name(&self.dirs.rejected, name, &id, "");
        rename_noreplace(&work, &dest).map_err(io_err(format!(
            "cannot move {} to rejected/",
            printable(name)
        )))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.rejected).map_err(io_err("cannot sync rejected/"))?;
        self.audit(crate::audit::Entry::ApplicationRejected {
            item_sha256: crate::types::Sha256::of(name.as_bytes()),
            reasons: rejection.codes().into_iter().map(|c| c.as_str()).collect(),
        });
        tracing::info!(item = %printable(name), bundle = %id, codes = ?rejection.codes(), "application rejected");
        Ok(Outcome::Rejected {
            name: name.to_owned(),
            dir: dest,
            codes: rejection.codes(),
        })
    }

    fn accept(
        &self,
        id: BundleId,
        name: &str,
        app: &Application,
        quiet: Quiet,
    ) -> Result<Outcome, IntakeError> {
        let work = self.dirs.work.join(id.as_str());
        let bundle = self.outbox.bundle_path(&id);
        let now = Timestamp::now();
        // One configuration for the whole item, even if a reload lands now.
        let config = self.config();
        let Some(court) = config.directory.get(&app.court) else {
            // The court left the directory in a reload since validation: the
            // item waits and is validated again (and rejected) next time.
            return Err(IntakeError::Io {
                context: format!("{} is no longer in the peer directory", app.court),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        };
        // The case file first (idempotent), so that the queue's event finds it.
        if let Some(cases) = &self.cases {
            cases
                .record_accepted(
                    &app.case_number,
                    &app.court,
                    &app.applicant,
                    id,
                    Some(name.to_owned()),
                    now,
                )
                .map_err(|e| IntakeError::Io {
                    context: "cannot record the case".into(),
                    source: io::Error::other(e.to_string()),
                })?;
        }
        if self.outbox.get(&id)?.is_none() {
            let (envelope, bytes, size) = if bundle.exists() {
                // Published by an earlier run, after its own unchanged-check.
                crate::bundle::inspect(&bundle).map_err(|e| IntakeError::Io {
                    context: format!("cannot read back {}", bundle.display()),
                    source: io::Error::other(e.to_string()),
                })?
            } else {
                let recipient = court;
                let pending = self.outbox.pending_path(&id);
                let _ = fs::remove_file(&pending);
                let sealed = match seal_application_as(&config, app, recipient, &pending, id, now) {
                    Ok(s) => s,
                    Err(crate::bundle::SealError::DocumentChanged(_)) => {
                        return Ok(self.changed_while_sealing(id, name, &pending));
                    }
                    Err(source) => {
                        let _ = fs::remove_file(&pending);
                        return Err(IntakeError::Seal {
                            name: printable(name).into_owned(),
                            source,
                        });
                    }
                };
                // The bytes sealed must be the bytes archived: nothing written,
                // no lease broken, nothing added or removed while sealing.
                if !quiet
                    .unchanged()
                    .map_err(io_err("cannot re-read a claimed item"))?
                {
                    return Ok(self.changed_while_sealing(id, name, &pending));
                }
                // The signed manifest, kept for the proof of delivery; durable
                // before the bundle is published.
                self.outbox
                    .keep_manifest(&id, &sealed.manifest_bytes, &sealed.manifest_sig)?;
                self.outbox.publish(&id)?;
                (sealed.envelope, sealed.envelope_bytes, sealed.size)
            };
            // The acceptance is evidence: durable before the bundle is
            // queued. If the log refuses it (a failed write or sync), the item
            // stays claimed and is tried again; nothing is acknowledged
            // meanwhile. Recorded once per item in this run, however many
            // times a later step fails and is tried again.
            if let Some(a) = &self.audit {
                if !self.state().recorded.contains(&id) {
                    a.append(crate::audit::Entry::ApplicationAccepted {
                        bundle_id: id,
                        case_ref: app.case_number.clone(),
                        court: app.court.clone(),
                        item_sha256: crate::types::Sha256::of(name.as_bytes()),
                    })
                    .map_err(|e| IntakeError::Io {
                        context: "cannot record the acceptance in the audit log".into(),
                        source: io::Error::other(e.to_string()),
                    })?;
                    self.state().recorded.insert(id);
                }
            }
            self.outbox.enqueue(
                &envelope,
                &bytes,
                size,
                Some(name.to_owned()),
                app.resubmission,
                now,
            )?;
        }
        let _ = fs::remove_dir_all(work.join(EXTRACTED));
        let note = render_acceptance(name, &id, now, app, court, config.notify.is_configured());
        if !accepted_note_exists(&self.dirs.accepted, name, &id) {
            let dest = free_name(&self.dirs.accepted, name, &id, ".txt");
            write_new_atomic(&dest, note.as_bytes())
                .map_err(io_err("cannot write the acceptance note"))?;
        }
        let archived = self.dirs.archive.join(id.as_str());
        rename_noreplace(&work, &archived)
            .map_err(io_err(format!("cannot archive {}", printable(name))))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.archive).map_err(io_err("cannot sync archive/"))?;
        drop(quiet);
        tracing::info!(item = %printable(name), bundle = %id, court = %app.court, case = %printable(app.case_number.as_str()), "application accepted and queued");
        Ok(Outcome::Accepted {
            name: name.to_owned(),
            id,
        })
    }

    fn changed_while_sealing(&self, id: BundleId, name: &str, pending: &Path) -> Outcome {
        let _ = fs::remove_file(pending);
        self.state().watched.entry(id).or_default().was_busy = true;
        tracing::warn!(item = %printable(name), bundle = %id, "the item changed while it was being sealed; the seal is discarded and the item waits");
        Outcome::Held {
            name: name.to_owned(),
            id,
        }
    }
}

/// What wakes the intake loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed in `intake/`.
    Changed,
    /// The watcher lost events: scan everything.
    Rescan,
    /// Finish the current items and return.
    Stop,
}

/// Watches `intake/` (non-recursive) and forwards events as [`Wake`]s.
///
/// Access events are not forwarded: notify 8 watches `IN_OPEN` too, and every
/// scan opens the folder, so a scan would wake the next one, for ever (a node
/// found spinning at 60% of a CPU while idle).
pub fn watch(
    dir: &Path,
    tx: std::sync::mpsc::Sender<Wake>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wake = match res {
            Ok(ev) if ev.need_rescan() => Wake::Rescan,
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return,
            Ok(_) => Wake::Changed,
            Err(_) => Wake::Rescan,
        };
        let _ = tx.send(wake);
    })?;
    w.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(w)
}

/// The intake loop: recover, then scan on every wake-up and at least every
/// `intake.scan_interval`, until [`Wake::Stop`] (or the sender is dropped).
/// Items being processed when Stop arrives are finished first. Items that
/// failed or are still being written are tried again on their own schedule;
/// while the disk is full nothing is taken (see the module doc).
pub fn run(
    intake: &Intake,
    wake: &std::sync::mpsc::Receiver<Wake>,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<(), IntakeError> {
    use std::sync::mpsc::RecvTimeoutError;
    for o in intake.recover()? {
        on_outcome(&o);
    }
    let mut scanner = Scanner::default();
    let mut last_prune: Option<Instant> = None;
    let mut scan_failed = 0u32;
    loop {
        // Read each round: a reload may have changed the timings.
        let config = intake.config();
        let settings = &config.intake;
        // Scan often enough that a settled drop is taken within about one interval.
        let mut tick = settings
            .scan_interval
            .min((settings.settle / 2).max(Duration::from_millis(100)));
        if intake.is_paused() {
            intake.health.set(
                HEALTH_PART,
                false,
                "paused: not enough free disk space (see intake.min_free_space)",
            );
            tick = tick.max(PAUSE_CHECK);
        } else {
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                if let Err(e) = intake.prune_archive(Timestamp::now()) {
                    tracing::warn!(error = %e, "archive pruning failed; retried in an hour");
                }
                last_prune = Some(Instant::now());
            }
            for o in intake.retry_due().into_iter().flatten() {
                on_outcome(&o);
            }
            match scanner.ready(&intake.dirs.intake, settings.settle, Instant::now()) {
                Ok(ready) => {
                    scan_failed = 0;
                    intake.forget_vanished(&scanner.present());
                    let due: Vec<OsString> = ready.into_iter().filter(|n| intake.due(n)).collect();
                    for o in intake.take(&due).into_iter().flatten() {
                        on_outcome(&o);
                    }
                    match intake.failing() {
                        None => intake.health.set(HEALTH_PART, true, "watching intake/"),
                        Some(why) => intake.health.set(HEALTH_PART, false, why),
                    }
                }
                Err(e) => {
                    // The folder itself is unreadable (a share gone away): one
                    // line per attempt, further and further apart.
                    let wait = crate::retry::delay(scan_failed, FAILED_RETRY.0, FAILED_RETRY.1);
                    scan_failed = scan_failed.saturating_add(1);
                    tracing::error!(error = %e, attempt = scan_failed, retry_in = ?wait, "cannot scan intake/");
                    intake
                        .health
                        .set(HEALTH_PART, false, format!("cannot scan intake/: {e}"));
                    tick = tick.max(wait);
                }
            }
            // Wake up in time for the next retry that falls due.
            if let Some(next) = intake.next_retry() {
                tick = tick.min(
                    next.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(20)),
                );
            }
        }
        match wake.recv_timeout(tick) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {
                // Coalesce a burst of events into one scan.
                while let Ok(w) = wake.try_recv() {
                    if w == Wake::Stop {
                        return Ok(());
                    }
                }
            }
        }
    }
}
