//! The court's follow-up folder: court clerks drop one folder per event
//! (`event.toml` and the files it lists); the node checks it, signs the
//! event with the court's key and leaves it for the sender ([`super::send`]).
//! The clerk's guide is `docs/followup-folder.md`.
//!
//! ## Folders (all under `followup.root`, one file system)
//!
//! ```text
//! drop/                clerks drop an event folder here
//! .work/<event-id>/    claimed items: <name> and .claim.json
//! accepted/<name>.txt  what was sent, to whom, and whether the committee recorded it
//! rejected/<name>/     the original, untouched, beside REJECTED.txt and rejection.json
//! problems/<name>.txt  an item that cannot be handled yet (this node's trouble), or
//!                      an event the committee refused
//! archive/<event-id>/  originals of accepted events
//! ```
//!
//! ## Life of an item — the rules of intake ([`crate::intake`]), reused
//!
//! 1. **Complete?** `READY` in the folder, or the file set, sizes and times
//!    unchanged for `followup.settle` ([`crate::intake::Scanner`]). A folder
//!    with a file still open for writing (file leases) is not taken yet.
//! 2. **Claim.** A fresh event id is drawn, `.work/<id>/.claim.json` written,
//!    then the item renamed into `.work/<id>/`. The id is fixed from here on:
//!    a resumed item never becomes two events.
//! 3. **Quiet?** A read lease on every file (or, without leases, an item taken
//!    by `READY` stays unchanged for `settle`); still being written after
//!    `followup.write_timeout`: rejected.
//! 4. **Validate** ([`super::form`]): the form, the case and bundle in this
//!    court's inbox (delivered: `.done`), the committee that sent it, every
//!    listed attachment present and nothing unlisted, sizes, types by content,
//!    and the event's own rules.
//! 5. **Reject**: reasons written beside the item, `.work/<id>` renamed to
//!    `rejected/<name>/`.
//! 6. **Accept**: the event is signed (`issued_at` now), the bytes read are
//!    checked unchanged (leases intact, same snapshot), `items/<id>.json` and
//!    then `outgoing/<id>.json` written durably ([`super::spool`]), the
//!    clerk's note written, `.work/<id>` renamed to `archive/<id>`.
//!
//! ## Recovery
//!
//! At start every `.work/<id>/` is resumed: without its item it is removed;
//! an item whose event is already signed (in `outgoing/`, `sent/` or
//! `failed/`) is only noted and archived — never signed again, since a
//! second signature (another `issued_at`) under the same id is a different
//! event to the committee.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::form::{self, Code, Form, Reason, FORM};
use super::spool::{self, Item, Spool, Status};
use crate::config::{Config, FollowupSettings, Role};
use crate::event::{Attachment, AttachmentData, Event, EventId, Submission, EVENT_FORMAT};
use crate::fsutil::{rename_noreplace, sync_dir, write_new_atomic};
use crate::intake::notes::{beijing, free_name, reason_file_names, truncate_utf8, INVALID_NAME};
use crate::intake::scan::{snapshot, Snapshot};
use crate::intake::{Scanner, Wake, READY};
use crate::types::{printable, BundleId, CaseRef, Sha256, Timestamp};

const CLAIM: &str = ".claim.json";

/// What the folder did with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Signed and left for the sender.
    Accepted {
        /// The item's name.
        name: String,
        /// Its event id.
        id: EventId,
    },
    /// Moved to `rejected/`.
    Rejected {
        /// The item's name.
        name: String,
        /// Where it went.
        dir: PathBuf,
        /// Why.
        codes: Vec<Code>,
    },
    /// Claimed but still being written: tried again shortly.
    Held {
        /// The item's name.
        name: String,
        /// Its event id.
        id: EventId,
    },
}

/// Failures that are not the item's fault (disk, permissions). The item
/// stays where it is and is retried on its own schedule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// File-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The node is not configured for a follow-up folder.
    #[error("no [followup] section for this court node")]
    NotConfigured,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> FolderError {
    let context = context.into();
    move |source| FolderError::Io { context, source }
}

/// The folders under `followup.root`.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Where clerks drop.
    pub drop: PathBuf,
    /// Claimed items.
    pub work: PathBuf,
    /// Clerk notes for accepted items.
    pub accepted: PathBuf,
    /// Rejected items with reasons.
    pub rejected: PathBuf,
    /// Originals of accepted items.
    pub archive: PathBuf,
    /// Notes about trouble.
    pub problems: PathBuf,
}

impl Dirs {
    /// The layout under `root` (paths only).
    pub fn under(root: &Path) -> Self {
        Self {
            drop: root.join("drop"),
            work: root.join(".work"),
            accepted: root.join("accepted"),
            rejected: root.join("rejected"),
            archive: root.join("archive"),
            problems: root.join("problems"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [
            &self.drop,
            &self.work,
            &self.accepted,
            &self.rejected,
            &self.archive,
            &self.problems,
        ]
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    name: String,
    claimed_at: Timestamp,
}

#[derive(Debug)]
struct Retry {
    name: String,
    attempts: u32,
    next: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Claimed items waiting in `.work/` (held or failed).
    claimed: BTreeMap<EventId, Retry>,
    /// Items in `drop/` that could not be claimed.
    unclaimed: HashMap<OsString, Retry>,
    /// Items in `drop/` complete but with a file open for writing, since when.
    writing: HashMap<OsString, Instant>,
    /// Claimed items watched for `settle` (no leases), and whether they changed.
    settling: HashMap<EventId, (Snapshot, Instant)>,
    /// Claimed items seen still being written (for the rejection's reason).
    was_busy: std::collections::HashSet<EventId>,
}

/// Retry schedule of an item that failed for a local reason.
const FAILED_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));
/// Retry schedule of an item still being written.
const HELD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
/// More files than an event may carry, plus its form and marker: not leased.
const MAX_LEASED: usize = 64;

/// The health part of the folder loop.
pub const HEALTH_PART: &str = "followup";

/// The follow-up folder of a court node.
#[derive(Debug)]
pub struct Folder {
    config: RwLock<Arc<Config>>,
    dirs: Dirs,
    spool: Spool,
    state: Mutex<State>,
}

/// Files of a quiet item: leases held until dropped.
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

/// A validated item: the form, where it points, and the attachments read.
#[derive(Debug)]
struct Checked {
    form: Form,
    bundle_id: BundleId,
    committee: crate::types::AgencyId,
    files: Vec<(String, Vec<u8>, &'static str)>,
}

impl Folder {
    /// Prepares the folders (court nodes with `[followup]` only).
    pub fn new(config: Arc<Config>) -> Result<Self, FolderError> {
        let settings = config.followup.clone().ok_or(FolderError::NotConfigured)?;
        if config.node.role != Role::Court {
            return Err(FolderError::NotConfigured);
        }
        let dirs = Dirs::under(&settings.root);
        for d in dirs.all() {
            fs::create_dir_all(d).map_err(io_err(format!("cannot create {}", d.display())))?;
        }
        sync_dir(&settings.root).map_err(io_err("cannot sync the follow-up root"))?;
        crate::fsutil::remove_stale_temps(&dirs.accepted)
            .map_err(io_err("cannot clean accepted/"))?;
        let spool = Spool::of(&config);
        spool
            .create()
            .map_err(io_err("cannot prepare <data_dir>/followup"))?;
        Ok(Self {
            config: RwLock::new(config),
            dirs,
            spool,
            state: Mutex::new(State::default()),
        })
    }

    /// The folders.
    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn settings(&self) -> FollowupSettings {
        self.config()
            .followup
            .clone()
            .expect("checked at construction; a reload keeps the role")
    }

    /// Puts a reloaded configuration in force for the next items (the peer
    /// directory, keys, timings). A new `followup.root` needs a restart; a
    /// configuration without `[followup]` is ignored here.
    pub fn reconfigure(&self, next: Arc<Config>) {
        if next.followup.is_some() {
            *self.config.write().unwrap_or_else(|p| p.into_inner()) = next;
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resumes everything an interrupted run left in `.work/`.
    pub fn recover(&self) -> Result<Vec<Outcome>, FolderError> {
        let mut out = Vec::new();
        let mut dirs: Vec<PathBuf> = fs::read_dir(&self.dirs.work)
            .map_err(io_err("cannot list .work"))?
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let id: Option<EventId> = dir
                .file_name()
                .and_then(OsStr::to_str)
                .and_then(|s| s.parse().ok());
            let claim: Option<Claim> = fs::read(dir.join(CLAIM))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match (id, claim) {
                (Some(id), Some(c)) if dir.join(&c.name).symlink_metadata().is_ok() => {
                    match self.attempt(id, &c.name) {
                        Ok(o) => out.push(o),
                        Err(e) => {
                            tracing::error!(item = %printable(&c.name), event = %id, error = %e, "resuming a follow-up item failed; it stays and is retried")
                        }
                    }
                }
                (Some(_), _) => fs::remove_dir_all(&dir)
                    .map_err(io_err(format!("cannot remove {}", dir.display())))?,
                (None, _) => {}
            }
        }
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        Ok(out)
    }

    /// Claims and processes complete items of `drop/`.
    pub fn take(&self, names: &[OsString]) -> Vec<Result<Outcome, FolderError>> {
        let mut out = Vec::new();
        for os_name in names {
            if self
                .state()
                .unclaimed
                .get(os_name)
                .is_some_and(|r| r.next > Instant::now())
            {
                continue;
            }
            let path = self.dirs.drop.join(os_name);
            let busy_since = if self.settings().use_leases && writer_in(&path) {
                let since = *self
                    .state()
                    .writing
                    .entry(os_name.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() < self.settings().write_timeout {
                    continue;
                }
                Some(since)
            } else {
                self.state().writing.remove(os_name)
            };
            match self.claim(os_name) {
                Ok(None) => {
                    self.state().unclaimed.remove(os_name);
                }
                Ok(Some((id, name))) => {
                    let mut st = self.state();
                    st.unclaimed.remove(os_name);
                    st.writing.remove(os_name);
                    if busy_since.is_some() {
                        st.was_busy.insert(id);
                    }
                    drop(st);
                    out.push(self.attempt(id, &name));
                }
                Err(e) => {
                    let name = os_name.to_string_lossy().into_owned();
                    let mut st = self.state();
                    let r = st.unclaimed.entry(os_name.clone()).or_insert(Retry {
                        name: name.clone(),
                        attempts: 0,
                        next: Instant::now(),
                    });
                    let wait = crate::retry::delay(r.attempts, FAILED_RETRY.0, FAILED_RETRY.1);
                    r.attempts = r.attempts.saturating_add(1);
                    r.next = Instant::now() + wait;
                    let attempt = r.attempts;
                    drop(st);
                    tracing::warn!(item = %printable(&name), attempt, retry_in = ?wait, error = %e, "cannot take this follow-up item; it stays in drop/ and is tried again");
                    self.write_problem(&name, &e, attempt, wait);
                    out.push(Err(e));
                }
            }
        }
        out
    }

    /// Tries again every claimed item whose retry is due.
    pub fn retry_due(&self) -> Vec<Result<Outcome, FolderError>> {
        let now = Instant::now();
        let due: Vec<(EventId, String)> = self
            .state()
            .claimed
            .iter()
            .filter(|(_, r)| r.next <= now)
            .map(|(id, r)| (*id, r.name.clone()))
            .collect();
        due.into_iter()
            .filter_map(|(id, name)| {
                if self
                    .dirs
                    .work
                    .join(id.as_str())
                    .join(&name)
                    .symlink_metadata()
                    .is_err()
                {
                    self.state().claimed.remove(&id);
                    return None;
                }
                Some(self.attempt(id, &name))
            })
            .collect()
    }

    fn next_retry(&self) -> Option<Instant> {
        let st = self.state();
        st.claimed
            .values()
            .chain(st.unclaimed.values())
            .map(|r| r.next)
            .min()
    }

    fn attempt(&self, id: EventId, name: &str) -> Result<Outcome, FolderError> {
        let r = self.process(id, name);
        let mut st = self.state();
        match &r {
            Ok(Outcome::Held { .. }) => {
                let e = st.claimed.entry(id).or_insert(Retry {
                    name: name.to_owned(),
                    attempts: 0,
                    next: Instant::now(),
                });
                e.next = Instant::now()
                    + crate::retry::exponential(e.attempts, HELD_RETRY.0, HELD_RETRY.1);
                e.attempts = e.attempts.saturating_add(1);
            }
            Ok(_) => {
                st.claimed.remove(&id);
                st.settling.remove(&id);
                st.was_busy.remove(&id);
                drop(st);
                self.remove_problem(name);
            }
            Err(e) => {
                let r = st.claimed.entry(id).or_insert(Retry {
                    name: name.to_owned(),
                    attempts: 0,
                    next: Instant::now(),
                });
                let wait = crate::retry::delay(r.attempts, FAILED_RETRY.0, FAILED_RETRY.1);
                r.attempts = r.attempts.saturating_add(1);
                r.next = Instant::now() + wait;
                let attempt = r.attempts;
                drop(st);
                tracing::warn!(item = %printable(name), event = %id, attempt, retry_in = ?wait, error = %e, "handling a follow-up item failed; it stays in .work/ and is tried again");
                self.write_problem(name, e, attempt, wait);
            }
        }
        r
    }

    fn claim(&self, os_name: &OsStr) -> Result<Option<(EventId, String)>, FolderError> {
        let src = self.dirs.drop.join(os_name);
        let id = EventId::generate();
        let work = self.dirs.work.join(id.as_str());
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
            &serde_json::to_vec(&claim).expect("claims serialise"),
        )
        .map_err(|e| abandon(e, "cannot write the claim for"))?;
        match rename_noreplace(&src, &work.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&work);
                return Ok(None);
            }
            Err(e) => return Err(abandon(e, "cannot claim")),
        }
        sync_dir(&self.dirs.drop).map_err(io_err("cannot sync drop/"))?;
        sync_dir(&work).map_err(io_err("cannot sync the work folder"))?;
        Ok(Some((id, name)))
    }

    /// Validates a claimed item, then accepts or rejects it (or holds it
    /// while it is being written). Idempotent.
    fn process(&self, id: EventId, name: &str) -> Result<Outcome, FolderError> {
        let work = self.dirs.work.join(id.as_str());
        crate::fsutil::remove_stale_temps(&work).map_err(io_err("cannot clean the work folder"))?;
        let item = work.join(name);
        if self.spool.has(&id) {
            // Signed by an earlier run: never again (see Recovery).
            return self.archive(id, name, None);
        }
        let settings = self.settings();
        let quiet = match self.quiet(&id, &item, &settings)? {
            Some(q) => q,
            None => {
                let claimed_at = fs::read(work.join(CLAIM))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Claim>(&b).ok())
                    .map_or_else(Timestamp::now, |c| c.claimed_at);
                let waited = Timestamp::now().unix() - claimed_at.unix();
                if u64::try_from(waited).unwrap_or(0) >= settings.write_timeout.as_secs() {
                    return self.reject(id, name, vec![still_being_written(name, &settings)]);
                }
                return Ok(Outcome::Held {
                    name: name.to_owned(),
                    id,
                });
            }
        };
        let checked = match self.validate(&item, name, &settings) {
            Ok(c) => c,
            Err(mut reasons) => {
                if self.state().was_busy.contains(&id) {
                    reasons.insert(0, still_being_written(name, &settings));
                }
                drop(quiet);
                return self.reject(id, name, reasons);
            }
        };
        let config = self.config();
        let base = Event {
            format: EVENT_FORMAT.to_owned(),
            event_id: id,
            court: config.node.id.clone(),
            committee: checked.committee.clone(),
            case_number: checked.form.case_number.clone(),
            bundle_id: checked.bundle_id,
            issued_at: Timestamp::now(),
            details: checked.form.details.clone(),
            contact: None,
            note: None,
            attachments: checked
                .files
                .iter()
                .map(|(n, bytes, media)| Attachment {
                    name: n.clone(),
                    media_type: (*media).to_owned(),
                    size: bytes.len() as u64,
                    sha256: Sha256::of(bytes),
                })
                .collect(),
        };
        let event = match form::finish(&checked.form, base) {
            Ok(e) => e,
            Err(reason) => {
                drop(quiet);
                return self.reject(id, name, vec![reason]);
            }
        };
        // The bytes read are the bytes that will be archived.
        if !quiet
            .unchanged()
            .map_err(io_err("cannot re-read a claimed item"))?
        {
            self.state().was_busy.insert(id);
            tracing::warn!(item = %printable(name), event = %id, "the item changed while it was read; it waits");
            return Ok(Outcome::Held {
                name: name.to_owned(),
                id,
            });
        }
        let signed = event.sign(&config.keys.signing);
        let submission = Submission {
            event: signed.event,
            signature: signed.signature,
            signer: signed.signer,
            attachments: checked
                .files
                .iter()
                .map(|(n, bytes, _)| AttachmentData {
                    name: n.clone(),
                    data: B64.encode(bytes),
                })
                .collect(),
        };
        let record = Item {
            name: name.to_owned(),
            event_id: id,
            case_number: event.case_number.clone(),
            bundle_id: event.bundle_id,
            committee: event.committee.clone(),
            kind: event.details.kind().to_owned(),
            accepted_at: event.issued_at,
        };
        crate::fsutil::write_replace_atomic(
            &Spool::file(&self.spool.items, &id),
            &serde_json::to_vec_pretty(&record).expect("records serialise"),
        )
        .map_err(io_err("cannot record the item"))?;
        match write_new_atomic(
            &Spool::file(&self.spool.outgoing, &id),
            &serde_json::to_vec_pretty(&submission).expect("submissions serialise"),
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("cannot write the signed event")(e)),
        }
        tracing::info!(item = %printable(name), event = %id, kind = event.details.kind(), case = %printable(event.case_number.as_str()), bundle = %event.bundle_id, committee = %event.committee, "follow-up event signed; waiting to be sent");
        self.archive(id, name, Some(quiet))
    }

    /// The clerk's note, then `.work/<id>` to `archive/<id>`.
    fn archive(
        &self,
        id: EventId,
        name: &str,
        quiet: Option<Quiet>,
    ) -> Result<Outcome, FolderError> {
        let config = self.config();
        if let Some(item) = self.spool.item(&id) {
            // Once sent or refused, the sender has written the note with the
            // committee's answer; only a waiting event's note is ours to write.
            if spool::accepted_note(&self.dirs.accepted, name, &id).is_none()
                && Spool::file(&self.spool.outgoing, &id).exists()
            {
                spool::write_accepted(
                    &self.dirs.accepted,
                    &item,
                    config.directory.get(&item.committee),
                    &Status::Waiting,
                )
                .map_err(io_err("cannot write the acceptance note"))?;
            }
        }
        let work = self.dirs.work.join(id.as_str());
        rename_noreplace(&work, &self.dirs.archive.join(id.as_str()))
            .map_err(io_err(format!("cannot archive {}", printable(name))))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.archive).map_err(io_err("cannot sync archive/"))?;
        drop(quiet);
        Ok(Outcome::Accepted {
            name: name.to_owned(),
            id,
        })
    }

    fn reject(
        &self,
        id: EventId,
        name: &str,
        reasons: Vec<Reason>,
    ) -> Result<Outcome, FolderError> {
        let work = self.dirs.work.join(id.as_str());
        let now = Timestamp::now();
        let (txt, json) = reason_file_names(name);
        let codes: Vec<Code> = reasons.iter().map(|r| r.code).collect();
        let record = serde_json::json!({
            "item": name, "id": id, "rejected_at": now, "reasons": reasons,
        });
        for (file, bytes) in [
            (txt, render_rejection(name, &id, now, &reasons).into_bytes()),
            (json, serde_json::to_vec_pretty(&record).expect("json")),
        ] {
            let p = work.join(file);
            let _ = fs::remove_file(&p);
            write_new_atomic(&p, &bytes).map_err(io_err("cannot write the rejection note"))?;
        }
        let dest = free_name(&self.dirs.rejected, name, &id, "");
        rename_noreplace(&work, &dest).map_err(io_err(format!(
            "cannot move {} to rejected/",
            printable(name)
        )))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.rejected).map_err(io_err("cannot sync rejected/"))?;
        let shown: Vec<String> = codes.iter().map(|c| c.as_str()).collect();
        tracing::info!(item = %printable(name), event = %id, codes = ?shown, "follow-up item rejected");
        Ok(Outcome::Rejected {
            name: name.to_owned(),
            dir: dest,
            codes,
        })
    }

    /// `None`: still being written (or, without leases, still settling).
    fn quiet(
        &self,
        id: &EventId,
        item: &Path,
        settings: &FollowupSettings,
    ) -> Result<Option<Quiet>, FolderError> {
        use crate::fsutil::lease::{self, Probe};
        let files: Vec<PathBuf> = match fs::symlink_metadata(item) {
            Ok(m) if m.is_dir() => fs::read_dir(item)
                .map_err(io_err("cannot list a claimed item"))?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect(),
            _ => Vec::new(),
        };
        let mut leases = Vec::new();
        let mut watch = !settings.use_leases;
        if !watch && files.len() <= MAX_LEASED {
            for f in &files {
                match lease::probe(f) {
                    Ok(Probe::Quiet(l)) => leases.push(l),
                    Ok(Probe::Busy) => {
                        self.state().was_busy.insert(*id);
                        return Ok(None);
                    }
                    Ok(Probe::Unsupported(_)) => {
                        leases.clear();
                        watch = true;
                        break;
                    }
                    Err(_) => {} // validation explains
                }
            }
        }
        let snap = snapshot(item).map_err(io_err("cannot read a claimed item"))?;
        if watch && item.join(READY).symlink_metadata().is_ok() {
            let mut st = self.state();
            match st.settling.get(id) {
                Some((prev, since)) if *prev == snap => {
                    if since.elapsed() < settings.settle {
                        return Ok(None);
                    }
                }
                prev => {
                    if prev.is_some() {
                        st.was_busy.insert(*id);
                    }
                    st.settling.insert(*id, (snap, Instant::now()));
                    return Ok(None);
                }
            }
        }
        Ok(Some(Quiet {
            item: item.to_owned(),
            leases,
            snapshot: snap,
        }))
    }

    fn validate(
        &self,
        item: &Path,
        name: &str,
        settings: &FollowupSettings,
    ) -> Result<Checked, Vec<Reason>> {
        let config = self.config();
        let one =
            |code, at: Option<&str>, zh: String, en: String| vec![Reason::new(code, at, zh, en)];
        if name.ends_with(INVALID_NAME) {
            return Err(one(
                Code::NotAFolder,
                None,
                "名称不是有效的 UTF-8 文字，无法识别。请重命名后重新放入。".into(),
                "The name is not valid UTF-8 text. Rename it and drop it again.".into(),
            ));
        }
        match fs::symlink_metadata(item) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(one(
                    Code::NotAFolder,
                    None,
                    format!("这不是一个文件夹。请把 {FORM} 和附件放在一个文件夹里再放入 drop。"),
                    format!("This is not a folder. Put {FORM} and its attachments in one folder and drop that."),
                ))
            }
            Err(e) => {
                return Err(one(
                    Code::Unreadable,
                    None,
                    format!("无法读取（{}）。", crate::application::zh_io(&e)),
                    format!("Cannot be read ({e})."),
                ))
            }
        }
        let text = match read_form(&item.join(FORM)) {
            Ok(t) => t,
            Err(r) => return Err(vec![r]),
        };
        let form = form::parse(&text)?;
        let mut reasons = Vec::new();

        // Attachments and the folder's other files.
        let mut files = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (i, f) in form.attachments.iter().enumerate() {
            let at = format!("attachments[{i}]");
            if let Some(p) = form::attachment_name_problem(f) {
                reasons.push(Reason::new(
                    Code::AttachmentNameInvalid,
                    Some(&at),
                    format!(
                        "附件名 “{}” 不可用（{p}）。请改用普通文件名。",
                        printable(f)
                    ),
                    format!(
                        "The attachment name \"{}\" cannot be used: {p}.",
                        printable(f)
                    ),
                ));
                continue;
            }
            if seen.iter().any(|s| s.to_lowercase() == f.to_lowercase()) {
                reasons.push(Reason::new(
                    Code::AttachmentNameInvalid,
                    Some(&at),
                    format!("附件 “{}” 列了两次。", printable(f)),
                    format!("The attachment \"{}\" is listed twice.", printable(f)),
                ));
                continue;
            }
            seen.push(f.clone());
            match read_attachment(&item.join(f), f, settings.max_attachment_size) {
                Ok((bytes, media)) => files.push((f.clone(), bytes, media)),
                Err(r) => reasons.push(r),
            }
        }
        let total: u64 = files.iter().map(|(_, b, _)| b.len() as u64).sum();
        if total > crate::event::MAX_ATTACHMENT_BYTES {
            let (size, max) =
                crate::types::size_vs_limit(total, crate::event::MAX_ATTACHMENT_BYTES);
            reasons.push(Reason::new(
                Code::AttachmentTooLarge,
                None,
                format!("所有附件合计 {size}，超过了一个事件 {max} 的上限。请压缩附件，或分成几个事件发送。"),
                format!("The attachments together are {size}, over the limit of {max} for one event. Make them smaller or send them in several events."),
            ));
        }
        match fs::read_dir(item) {
            Ok(rd) => {
                let mut extra: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != FORM && n != READY && !seen.contains(n))
                    .collect();
                extra.sort();
                for n in extra {
                    reasons.push(Reason::new(
                        Code::FileUnlisted,
                        Some(&n),
                        format!("文件 “{}” 没有在 {FORM} 的 [[attachments]] 中列出。请列出它，或把它从文件夹中移走。", printable(&n)),
                        format!("The file \"{}\" is not listed under [[attachments]] in {FORM}. List it or take it out of the folder.", printable(&n)),
                    ));
                }
            }
            Err(e) => reasons.push(Reason::new(
                Code::Unreadable,
                None,
                format!("无法列出文件夹内容（{}）。", crate::application::zh_io(&e)),
                format!("The folder cannot be listed ({e})."),
            )),
        }

        // The case and bundle in this court's inbox, and who sent it.
        let target = locate(&config, &form.case_number, form.bundle_id.as_ref());
        let (bundle_id, committee) = match target {
            Ok(t) => t,
            Err(r) => {
                reasons.insert(0, r);
                return Err(reasons);
            }
        };
        if !reasons.is_empty() {
            return Err(reasons);
        }
        Ok(Checked {
            form,
            bundle_id,
            committee,
            files,
        })
    }

    /// Writes `problems/<name>.txt` about this node's trouble with an item.
    fn write_problem(&self, name: &str, e: &FolderError, attempt: u32, wait: Duration) {
        let now = Timestamp::now();
        let next = Timestamp::from_unix(now.unix() + i64::try_from(wait.as_secs()).unwrap_or(0))
            .unwrap_or(now);
        let text = format!(
            "暂时无法处理 / NOT HANDLED YET\n==========================================\n\n\
材料 / Item:      {shown}\n\
时间 / Time:      {time}（北京时间 / Beijing time）\n\
已尝试 / Tries:   {attempt}\n\
下次重试 / Next:  {next}（北京时间 / Beijing time）\n\n\
问题：处理时服务器出错（例如权限或磁盘），系统会自动重试。如果一直出现，请联系信息科。\n\n\
Problem: the node failed while handling this item (permissions or disk, for example) and will try again by itself. If this persists, ask IT.\n\
Detail: {detail}\n\n\
材料原样留在原处，不需要重新放入。处理成功后本说明会自动删除。\n\
The item stays where it is; there is no need to drop it again. This note is removed once the item is handled.\n",
            shown = printable(name),
            time = beijing(now),
            next = beijing(next),
            detail = printable(&e.to_string()),
        );
        let path = self.problem_path(name);
        if let Err(err) = crate::fsutil::write_replace_atomic(&path, text.as_bytes()) {
            tracing::debug!(error = %err, "cannot write the clerks' note");
        }
    }

    fn problem_path(&self, name: &str) -> PathBuf {
        let [plain, _] = crate::intake::notes::candidate_names(
            name,
            &EventId::from_random_bytes([0; 16]),
            ".txt",
        );
        self.dirs.problems.join(plain)
    }

    /// Removes a "not handled yet" note of ours (not a refusal by the committee).
    fn remove_problem(&self, name: &str) {
        let p = self.problem_path(name);
        if fs::read_to_string(&p).is_ok_and(|t| t.starts_with("暂时无法处理")) {
            let _ = fs::remove_file(p);
        }
    }
}

/// Whether a file of `item` is open for writing (leases; `false` when they cannot tell).
fn writer_in(item: &Path) -> bool {
    use crate::fsutil::lease::{self, Probe};
    let Ok(rd) = fs::read_dir(item) else {
        return false;
    };
    let files: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .take(MAX_LEASED + 1)
        .collect();
    if files.len() > MAX_LEASED {
        return false;
    }
    files
        .iter()
        .any(|f| matches!(lease::probe(f), Ok(Probe::Busy)))
}

fn still_being_written(name: &str, settings: &FollowupSettings) -> Reason {
    Reason::new(
        Code::StillBeingWritten,
        None,
        format!(
            "“{}” 在被接收后仍在被写入，等待 {} 秒后仍未完成。请先把所有文件复制完，最后再放 READY 文件。",
            printable(name),
            settings.write_timeout.as_secs()
        ),
        format!(
            "\"{}\" was still being written after it was taken, and not finished within {} s. Copy every file first and write READY last.",
            printable(name),
            settings.write_timeout.as_secs()
        ),
    )
}

fn read_form(path: &Path) -> Result<String, Reason> {
    let mut f = match crate::fsutil::open_regular_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Reason::new(
                Code::EventFileMissing,
                Some(FORM),
                format!("文件夹中没有 {FORM}。请按 docs/followup-folder.md 填写 {FORM} 后重新放入。"),
                format!("The folder has no {FORM}. Fill one in as docs/followup-folder.md shows and drop the folder again."),
            ))
        }
        Err(e) => {
            return Err(Reason::new(
                Code::Unreadable,
                Some(FORM),
                format!("{FORM} 无法读取（{}）。", crate::application::zh_io(&e)),
                format!("{FORM} cannot be read ({e})."),
            ))
        }
    };
    let mut bytes = Vec::new();
    let read = (&mut f)
        .take(form::MAX_FORM_BYTES + 1)
        .read_to_end(&mut bytes);
    if read.is_err() || bytes.len() as u64 > form::MAX_FORM_BYTES {
        return Err(Reason::new(
            Code::EventFileInvalid,
            Some(FORM),
            format!("{FORM} 无法读取或太大（最多 64 KiB）。"),
            format!("{FORM} cannot be read or is too large (at most 64 KiB)."),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        Reason::new(
            Code::EventFileInvalid,
            Some(FORM),
            format!("{FORM} 不是 UTF-8 编码的文字。请用 UTF-8 保存。"),
            format!("{FORM} is not UTF-8 text. Save it as UTF-8."),
        )
    })
}

/// Reads one attachment: a regular file, not empty, within the limit, PDF,
/// PNG or JPEG by content (matching its extension), not cut short.
fn read_attachment(path: &Path, name: &str, limit: u64) -> Result<(Vec<u8>, &'static str), Reason> {
    use crate::application::{looks_truncated, sniff, MediaType};
    let shown = printable(name);
    let r = |code, zh: String, en: String| Reason::new(code, Some(name), zh, en);
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(r(
                Code::AttachmentMissing,
                format!("{FORM} 列出了附件 “{shown}”，但文件夹中没有这个文件（请检查文件名，包括扩展名）。"),
                format!("{FORM} lists the attachment \"{shown}\", but the folder has no such file (check the name, extension included)."),
            ))
        }
        Err(e) => {
            return Err(r(
                Code::Unreadable,
                format!("附件 “{shown}” 无法读取（{}）。", crate::application::zh_io(&e)),
                format!("The attachment \"{shown}\" cannot be read ({e})."),
            ))
        }
    };
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(r(
            Code::NotARegularFile,
            format!("“{shown}” 不是普通文件（可能是快捷方式、文件夹或硬链接）。请放入文件本身。"),
            format!("\"{shown}\" is not a plain file (a link, a folder or a hard link). Put the file itself."),
        ));
    }
    if meta.len() == 0 {
        return Err(r(
            Code::AttachmentEmpty,
            format!("附件 “{shown}” 是空文件。"),
            format!("The attachment \"{shown}\" is empty."),
        ));
    }
    if meta.len() > limit {
        let (size, max) = crate::types::size_vs_limit(meta.len(), limit);
        return Err(r(
            Code::AttachmentTooLarge,
            format!("附件 “{shown}” 有 {size}，超过了 {max} 的上限。请压缩后重新放入。"),
            format!("The attachment \"{shown}\" is {size}, over the limit of {max}. Make it smaller and drop it again."),
        ));
    }
    let unreadable = |e: io::Error| {
        r(
            Code::Unreadable,
            format!(
                "附件 “{shown}” 无法读取（{}）。",
                crate::application::zh_io(&e)
            ),
            format!("The attachment \"{shown}\" cannot be read ({e})."),
        )
    };
    let mut file = crate::fsutil::open_regular_nofollow(path).map_err(unreadable)?;
    let media = match sniff(&mut file).map_err(unreadable)? {
        Some(m @ (MediaType::Pdf | MediaType::Png | MediaType::Jpeg)) => m,
        _ => {
            return Err(r(
                Code::AttachmentTypeNotAllowed,
                format!("附件 “{shown}” 的内容不是 PDF、PNG 或 JPEG（按文件内容判断，与扩展名无关）。请另存为 PDF 后重新放入。"),
                format!("The content of \"{shown}\" is not PDF, PNG or JPEG (judged by content, not by name). Save it as PDF and drop it again."),
            ))
        }
    };
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let fits = match media {
        MediaType::Pdf => ext.as_deref() == Some("pdf"),
        MediaType::Png => ext.as_deref() == Some("png"),
        _ => matches!(ext.as_deref(), Some("jpg" | "jpeg")),
    };
    if !fits {
        return Err(r(
            Code::AttachmentTypeMismatch,
            format!("附件 “{shown}” 的内容是 {}，但扩展名不符。请改正扩展名。", media.mime()),
            format!("The content of \"{shown}\" is {}, but its extension says otherwise. Correct the extension.", media.mime()),
        ));
    }
    if looks_truncated(&mut file, meta.len(), media).map_err(unreadable)? {
        return Err(r(
            Code::AttachmentTruncated,
            format!("附件 “{shown}” 不完整（文件结尾缺失，可能没有复制完）。请重新复制后放入。"),
            format!("The attachment \"{shown}\" ends early (its end is missing; the copy may not have finished). Copy it again."),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok((bytes, media.mime()))
}

/// The delivered bundle the event is about, and the committee that sent it.
fn locate(
    config: &Config,
    case: &CaseRef,
    bundle: Option<&BundleId>,
) -> Result<(BundleId, crate::types::AgencyId), Reason> {
    let case_dir = crate::inbox::root(config).join(case.as_str());
    let shown = printable(case.as_str());
    let unknown = || {
        Reason::new(
            Code::CaseUnknown,
            Some("case_number"),
            format!("本院收件箱中没有案号为 “{shown}” 的已签收案件。请核对案号（应与 inbox 中案件文件夹的名称完全一致）。"),
            format!("This court's inbox holds no delivered case \"{shown}\". Check the case number (exactly as the case folder in inbox/ is named)."),
        )
    };
    let delivered: Vec<BundleId> = match fs::read_dir(&case_dir) {
        Ok(rd) => {
            let mut v: Vec<BundleId> = rd
                .flatten()
                .filter(|e| e.path().join(crate::inbox::DONE_FILE).is_file())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            v.sort_by(|a: &BundleId, b| a.as_str().cmp(b.as_str()));
            v
        }
        Err(_) => return Err(unknown()),
    };
    let id = match bundle {
        Some(b) if delivered.contains(b) => *b,
        Some(b) => {
            return Err(Reason::new(
                Code::BundleUnknown,
                Some("bundle_id"),
                format!("案件 “{shown}” 中没有已签收的电子文件 {b}。请核对 bundle_id（inbox/{shown}/ 下的文件夹名）。"),
                format!("Case \"{shown}\" has no delivered bundle {b}. Check bundle_id (a folder name under inbox/{shown}/)."),
            ))
        }
        None => match delivered.as_slice() {
            [] => return Err(unknown()),
            [one] => *one,
            many => {
                let list: Vec<&str> = many.iter().map(BundleId::as_str).collect();
                return Err(Reason::new(
                    Code::BundleAmbiguous,
                    Some("bundle_id"),
                    format!("案件 “{shown}” 有多份电子文件（{}），请用 bundle_id 写明是哪一份。", list.join("、")),
                    format!("Case \"{shown}\" has several bundles ({}); say which with bundle_id.", list.join(", ")),
                ));
            }
        },
    };
    let sender = crate::inbox::sender_of(config, &id).ok().flatten();
    match sender {
        Some((committee, recorded_case)) if &recorded_case == case => {
            if config
                .directory
                .get(&committee)
                .is_some_and(|p| p.role == Role::Committee)
            {
                Ok((id, committee))
            } else {
                Err(Reason::new(
                    Code::CommitteeUnknown,
                    Some("case_number"),
                    format!("发来这份电子文件的仲裁委（{committee}）已不在本节点的对端目录中，无法发送。请联系信息科。"),
                    format!("The committee that sent this bundle ({committee}) is no longer in this node's peer directory. Ask IT."),
                ))
            }
        }
        _ => Err(unknown()),
    }
}

/// The clerk's `REJECTED.txt`.
pub fn render_rejection(name: &str, id: &EventId, now: Timestamp, reasons: &[Reason]) -> String {
    let name = printable(name);
    let mut s = String::new();
    s.push_str("后续事件未被发送 / EVENT NOT SENT\n");
    s.push_str("==========================================\n\n");
    s.push_str(&format!("材料 / Item:      {name}\n"));
    s.push_str(&format!(
        "时间 / Time:      {}（北京时间 / Beijing time）\n",
        beijing(now)
    ));
    s.push_str(&format!("退件编号 / Ref:   {id}\n\n"));
    s.push_str(&format!(
        "发现以下问题（共 {n} 项） / Problems found ({n}):\n\n",
        n = reasons.len()
    ));
    for (i, r) in reasons.iter().enumerate() {
        let at =
            r.at.as_deref()
                .map(|f| format!(" — {}", printable(f)))
                .unwrap_or_default();
        s.push_str(&format!(
            "{}. [{}]{at}\n   {}\n   {}\n\n",
            i + 1,
            r.code.as_str(),
            printable(&r.zh),
            printable(&r.en)
        ));
    }
    s.push_str("怎样处理：按上面的说明改正后，把整个文件夹重新放入 drop 文件夹。\n");
    s.push_str(&format!(
        "原件完整保存在本文件夹的 “{name}” 中，未作任何改动。\n\n"
    ));
    s.push_str("What to do: correct the problems as described above and drop the whole folder into drop/ again.\n");
    s.push_str(&format!(
        "The original is kept, unchanged, in \"{name}\" inside this folder.\n"
    ));
    s
}

/// The folder loop: recover, then scan on every wake-up and at least every
/// `followup.scan_interval`, until [`Wake::Stop`] (or the sender is dropped).
pub fn run(
    folder: &Folder,
    wake: &std::sync::mpsc::Receiver<Wake>,
    health: &crate::status::Health,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<(), FolderError> {
    use std::sync::mpsc::RecvTimeoutError;
    for o in folder.recover()? {
        on_outcome(&o);
    }
    let mut scanner = Scanner::default();
    let mut scan_failed = 0u32;
    loop {
        let settings = folder.settings();
        let mut tick = settings
            .scan_interval
            .min((settings.settle / 2).max(Duration::from_millis(100)));
        for o in folder.retry_due().into_iter().flatten() {
            on_outcome(&o);
        }
        match scanner.ready(&folder.dirs.drop, settings.settle, Instant::now()) {
            Ok(ready) => {
                scan_failed = 0;
                health.set(HEALTH_PART, true, "watching the follow-up folder");
                let present = scanner.present();
                {
                    let mut st = folder.state();
                    st.writing.retain(|k, _| present.contains(k));
                    st.unclaimed.retain(|k, _| present.contains(k));
                }
                for o in folder.take(&ready).into_iter().flatten() {
                    on_outcome(&o);
                }
            }
            Err(e) => {
                let wait = crate::retry::delay(scan_failed, FAILED_RETRY.0, FAILED_RETRY.1);
                scan_failed = scan_failed.saturating_add(1);
                tracing::error!(error = %e, attempt = scan_failed, retry_in = ?wait, "cannot scan the follow-up folder");
                health.set(
                    HEALTH_PART,
                    false,
                    format!("cannot scan the follow-up folder: {e}"),
                );
                tick = tick.max(wait);
            }
        }
        if let Some(next) = folder.next_retry() {
            tick = tick.min(
                next.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(20)),
            );
        }
        match wake.recv_timeout(tick) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {
                while let Ok(w) = wake.try_recv() {
                    if w == Wake::Stop {
                        return Ok(());
                    }
                }
            }
        }
    }
}
