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
//! archive/<bundle-id>/ originals of accepted applications
//! ```
//!
//! ## Life of an item
//!
//! 1. **Complete?** A folder with a `READY` file is complete. Otherwise an item
//!    is complete when its file set, sizes and modification times are unchanged
//!    for `intake.settle` across two scans ([`Scanner`]). inotify has no "copy
//!    finished" event, so events only trigger scans; a periodic scan catches
//!    anything an event missed.
//! 2. **Claim.** A fresh bundle id is drawn, `.work/<id>/.claim.json` written and
//!    fsynced, then the item renamed into `.work/<id>/` and both directories
//!    fsynced. The rename is atomic: the item is in `intake/` or in `.work/`,
//!    never both, and a second instance cannot take it too. The id is fixed from
//!    here on, so a resumed item can never become two bundles.
//! 3. **Validate** ([`Application::load`]); a zip is checked entry by entry
//!    (names, links, duplicates, sizes, ratio, overlap, time) before a byte is
//!    extracted, into `.work/<id>/.extracted/`.
//! 4. **Reject**: reasons are written into `.work/<id>/`, which is then renamed
//!    to `rejected/<name>/`. Nothing is deleted or changed.
//! 5. **Accept**: seal to `outbox/bundles/<id>.sealpost` (atomic), queue it in
//!    the outbox (durable), write `accepted/<name>.txt`, rename `.work/<id>` to
//!    `archive/<id>`.
//!
//! ## Recovery
//!
//! At start every `.work/<id>/` is resumed: without the item (the claim rename
//! never happened) it is removed; otherwise processing restarts at step 3 and
//! every step skips what is already done (bundle file present, record present,
//! accepted note present). Each application is therefore always in exactly one
//! place: `intake/`, `.work/`, `rejected/`, or outbox + `archive/`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::application::{Application, Reason, ReasonCode, Rejection};
use crate::config::Config;
use crate::fsutil::{rename_noreplace, sync_dir, write_new_atomic};
use crate::outbox::{Outbox, OutboxError};
use crate::types::{BundleId, Timestamp};

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
        }
    }

    /// The layout under `root`, created if missing.
    pub fn create(root: &Path) -> Result<Self, IntakeError> {
        let d = Self::under(root);
        for p in [&d.intake, &d.work, &d.accepted, &d.rejected, &d.archive] {
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

/// Decides when an item is complete (see the module doc).
#[derive(Debug, Default)]
pub struct Scanner {
    seen: HashMap<OsString, (Snapshot, Instant)>,
}

/// File set, sizes and modification times of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot(Vec<(OsString, u64, i64, i64, bool)>);

fn snapshot(path: &Path) -> io::Result<Snapshot> {
    let meta = fs::symlink_metadata(path)?;
    let mut v = vec![(
        OsString::new(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.is_dir(),
    )];
    if meta.is_dir() {
        for e in fs::read_dir(path)? {
            let e = e?;
            let m = e.metadata()?;
            v.push((
                e.file_name(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.is_dir(),
            ));
        }
    }
    v.sort();
    Ok(Snapshot(v))
}

impl Scanner {
    /// Items in `intake/` that are complete now. Call once per scan.
    pub fn ready(
        &mut self,
        intake: &Path,
        settle: Duration,
        now: Instant,
    ) -> io::Result<Vec<OsString>> {
        let mut ready = Vec::new();
        let mut present = Vec::new();
        for e in fs::read_dir(intake)? {
            let e = e?;
            let name = e.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue; // hidden: partial uploads by some clients (.~lock, .tmp)
            }
            present.push(name.clone());
            let path = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && path.join(READY).symlink_metadata().is_ok() {
                ready.push(name);
                continue;
            }
            let Ok(snap) = snapshot(&path) else { continue };
            match self.seen.get(&name) {
                Some((prev, since)) if *prev == snap => {
                    if now.duration_since(*since) >= settle {
                        ready.push(name);
                    }
                }
                _ => {
                    self.seen.insert(name, (snap, now));
                }
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        for r in &ready {
            self.seen.remove(r);
        }
        ready.sort();
        Ok(ready)
    }
}

/// Takes applications from `intake/` into the outbox.
#[derive(Debug)]
pub struct Intake<'a> {
    config: &'a Config,
    outbox: &'a Outbox,
    dirs: Dirs,
}

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

impl<'a> Intake<'a> {
    /// Prepares the folders.
    pub fn new(config: &'a Config, outbox: &'a Outbox) -> Result<Self, IntakeError> {
        let dirs = Dirs::create(&config.intake.root)?;
        crate::fsutil::remove_stale_temps(&dirs.accepted)
            .map_err(io_err("cannot clean accepted/"))?;
        Ok(Self {
            config,
            outbox,
            dirs,
        })
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
                    out.push(self.process(id, &claim.name)?);
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
                        tracing::warn!(dir = %dir.display(), "unexpected entry in .work; left alone");
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
        let Some(keep) = self.config.intake.archive_retention else {
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
    pub fn take(&self, names: &[OsString]) -> Vec<Result<Outcome, IntakeError>> {
        let queue = Mutex::new(names.iter().collect::<Vec<_>>());
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..self.config.intake.workers.min(names.len().max(1)) {
                s.spawn(|| loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(name) = next else { break };
                    let r = match self.claim(name) {
                        Ok(Some((id, name))) => self.process(id, &name),
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    };
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                });
            }
        });
        results.into_inner().unwrap_or_default()
    }

    /// Moves `intake/<name>` into `.work/<new id>/<name>`. `None` if it vanished.
    fn claim(&self, os_name: &OsStr) -> Result<Option<(BundleId, String)>, IntakeError> {
        self.claim_from(&self.dirs.intake.join(os_name), os_name)
    }

    /// Takes an application uploaded over the API (a zip, already written to
    /// `upload` on this file system) through the same claim, validation and
    /// accept/reject path as a drop.
    pub fn submit(&self, upload: &Path, name: &str) -> Result<Outcome, IntakeError> {
        match self.claim_from(upload, OsStr::new(name))? {
            Some((id, name)) => self.process(id, &name),
            None => Err(IntakeError::Io {
                context: format!("the upload {} vanished", upload.display()),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
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
        let dir = Self::uploads_dir(&self.config.intake.root);
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
            io_err(format!("{what} {name}"))(e)
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
        sync_dir(crate::fsutil::parent_of(src)).map_err(io_err("cannot sync the source folder"))?;
        sync_dir(&work).map_err(io_err("cannot sync the work folder"))?;
        Ok(Some((id, name)))
    }

    /// Validates a claimed item and accepts or rejects it. Idempotent.
    fn process(&self, id: BundleId, name: &str) -> Result<Outcome, IntakeError> {
        let work = self.dirs.work.join(id.as_str());
        crate::fsutil::remove_stale_temps(&work).map_err(io_err("cannot clean the work folder"))?;
        let item = work.join(name);
        let app = match self.validate(&work, &item, name) {
            Ok(app) => app,
            Err(rejection) => return self.reject(id, name, rejection),
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
                return self.reject(
                    id,
                    name,
                    Rejection {
                        reasons: vec![reason],
                    },
                );
            }
        }
        self.accept(id, name, &app)
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
                format!("无法读取（{e}）。"),
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
            let dest = work.join(EXTRACTED);
            let _ = fs::remove_dir_all(&dest);
            extract_zip(item, &dest, &self.config.limits, name)?
        } else {
            return Err(one(
                ReasonCode::NotAnApplication,
                "这不是申请文件夹或 .zip 压缩包。请把申请材料和 application.toml 放在一个文件夹里再放入。".into(),
                "This is neither an application folder nor a .zip. Put the documents and application.toml in one folder and drop that.".into(),
            ));
        };
        Application::load(&folder, &self.config.limits, &self.config.directory)
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
        rename_noreplace(&work, &dest)
            .map_err(io_err(format!("cannot move {name} to rejected/")))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.rejected).map_err(io_err("cannot sync rejected/"))?;
        tracing::info!(item = name, bundle = %id, codes = ?rejection.codes(), "application rejected");
        Ok(Outcome::Rejected {
            name: name.to_owned(),
            dir: dest,
            codes: rejection.codes(),
        })
    }

    fn accept(&self, id: BundleId, name: &str, app: &Application) -> Result<Outcome, IntakeError> {
        let work = self.dirs.work.join(id.as_str());
        let bundle = self.outbox.bundle_path(&id);
        let now = Timestamp::now();
        if self.outbox.get(&id)?.is_none() {
            let (envelope, bytes, size) = if bundle.exists() {
                crate::bundle::inspect(&bundle).map_err(|e| IntakeError::Io {
                    context: format!("cannot read back {}", bundle.display()),
                    source: io::Error::other(e.to_string()),
                })?
            } else {
                let recipient = self
                    .config
                    .directory
                    .get(&app.court)
                    .expect("validated: the court is in the directory");
                let sealed =
                    crate::cli::seal_application_as(self.config, app, recipient, &bundle, id, now)
                        .map_err(|source| IntakeError::Seal {
                            name: name.to_owned(),
                            source,
                        })?;
                (sealed.envelope, sealed.envelope_bytes, sealed.size)
            };
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
        let court = self
            .config
            .directory
            .get(&app.court)
            .expect("validated court");
        let note = render_acceptance(name, &id, now, app, court);
        if !accepted_note_exists(&self.dirs.accepted, name, &id) {
            let dest = free_name(&self.dirs.accepted, name, &id, ".txt");
            write_new_atomic(&dest, note.as_bytes())
                .map_err(io_err("cannot write the acceptance note"))?;
        }
        let archived = self.dirs.archive.join(id.as_str());
        rename_noreplace(&work, &archived).map_err(io_err(format!("cannot archive {name}")))?;
        sync_dir(&self.dirs.work).map_err(io_err("cannot sync .work"))?;
        sync_dir(&self.dirs.archive).map_err(io_err("cannot sync archive/"))?;
        tracing::info!(item = name, bundle = %id, court = %app.court, case = %app.case_number, "application accepted and queued");
        Ok(Outcome::Accepted {
            name: name.to_owned(),
            id,
        })
    }
}

fn reason_file_names(item: &str) -> (&'static str, &'static str) {
    if item == "REJECTED.txt" || item == "rejection.json" {
        ("REJECTED (sealpost).txt", "rejection (sealpost).json")
    } else {
        ("REJECTED.txt", "rejection.json")
    }
}

/// Appended to the claim name of an item whose name is not UTF-8.
const INVALID_NAME: &str = ".invalid-name";

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The two names a note or folder for `name` may take in `dir`: `<name><suffix>`,
/// or `<name> (<short id>)<suffix>` when that is taken. Long names are shortened
/// so that either fits the 255-byte limit of file names.
fn candidate_names(name: &str, id: &BundleId, suffix: &str) -> [String; 2] {
    let short = &id.as_str()[..8];
    let stem = truncate_utf8(name, 255 - suffix.len() - short.len() - 3);
    let plain = if name.len() + suffix.len() <= 255 {
        name
    } else {
        stem
    };
    [
        format!("{plain}{suffix}"),
        format!("{stem} ({short}){suffix}"),
    ]
}

/// The first free candidate name in `dir` (see [`candidate_names`]).
fn free_name(dir: &Path, name: &str, id: &BundleId, suffix: &str) -> PathBuf {
    let [plain, tagged] = candidate_names(name, id, suffix);
    let plain = dir.join(plain);
    if plain.symlink_metadata().is_err() {
        return plain;
    }
    dir.join(tagged)
}

fn accepted_note_exists(dir: &Path, name: &str, id: &BundleId) -> bool {
    candidate_names(name, id, ".txt")
        .iter()
        .any(|f| fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains(id.as_str())))
}

fn beijing(t: Timestamp) -> String {
    let b = t
        .datetime()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("UTC+8"));
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        b.year(),
        u8::from(b.month()),
        b.day(),
        b.hour(),
        b.minute()
    )
}

/// The clerk's `REJECTED.txt`.
pub fn render_rejection(name: &str, id: &BundleId, now: Timestamp, r: &Rejection) -> String {
    let mut s = String::new();
    s.push_str("申请未被接收 / APPLICATION NOT ACCEPTED\n");
    s.push_str("==========================================\n\n");
    s.push_str(&format!("材料 / Item:      {name}\n"));
    s.push_str(&format!(
        "时间 / Time:      {}（北京时间 / Beijing time）\n",
        beijing(now)
    ));
    s.push_str(&format!("退件编号 / Ref:   {id}\n\n"));
    s.push_str(&format!(
        "发现以下问题（共 {} 项） / Problems found ({}):\n\n",
        r.reasons.len(),
        r.reasons.len()
    ));
    for (i, reason) in r.reasons.iter().enumerate() {
        let file = reason
            .file
            .as_deref()
            .map(|f| format!(" — {f}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "{}. [{}]{file}\n   {}\n   {}\n\n",
            i + 1,
            reason.code.as_str(),
            reason.zh,
            reason.en
        ));
    }
    s.push_str("怎样处理：按上面的说明改正后，把整个文件夹重新放入 intake 文件夹。\n");
    s.push_str(&format!(
        "原件完整保存在本文件夹的 “{name}” 中，未作任何改动。\n\n"
    ));
    s.push_str("What to do: correct the problems as described above and drop the whole folder into the intake folder again.\n");
    s.push_str(&format!(
        "The original is kept, unchanged, in \"{name}\" inside this folder.\n"
    ));
    s
}

/// The clerk's `accepted/<name>.txt`.
pub fn render_acceptance(
    name: &str,
    id: &BundleId,
    now: Timestamp,
    app: &Application,
    court: &crate::config::Peer,
) -> String {
    format!(
        "申请已接收 / APPLICATION ACCEPTED\n==========================================\n\n\
材料 / Item:          {name}\n\
案号 / Case:          {case}\n\
受理法院 / Court:     {zh}\n                      {en}\n\
电子文件编号 / Bundle: {id}\n\
接收时间 / Accepted:  {time}（北京时间 / Beijing time）\n\n\
下一步：申请已签名并加密，只有{zh}能够打开，正在等待法院系统取件。法院签收后，系统会发送电子邮件通知申请人（{email}）。原件已归档在 archive/{id}/。\n\n\
Next: the application is signed and encrypted so that only the court can open it, and waits for the court's system to collect it. When the court signs for it, the applicant ({email}) is told by e-mail. The originals are archived in archive/{id}/.\n",
        case = app.case_number,
        zh = court.name_zh,
        en = court.name_en,
        time = beijing(now),
        email = app.applicant.email,
    )
}

/// Checks a dropped zip and extracts it into `dest` (a new folder), refusing
/// hostile archives before a byte is written. Returns the application folder:
/// `dest` itself, or the single top-level folder the zip contains.
fn extract_zip(
    zip_path: &Path,
    dest: &Path,
    limits: &crate::config::Limits,
    name: &str,
) -> Result<PathBuf, Rejection> {
    use ReasonCode as C;
    let reject = |code, zh: String, en: String| Rejection {
        reasons: vec![Reason::new(code, Some(name), zh, en)],
    };
    let bomb = |why: &str| {
        reject(
            C::ZipBomb,
            format!("压缩包异常（{why}），可能是“压缩炸弹”，已拒收。请直接放入文件夹。"),
            format!("The zip is abnormal ({why}) and may be a decompression bomb. Drop a plain folder instead."),
        )
    };
    let file = crate::fsutil::open_regular_nofollow(zip_path).map_err(|e| {
        reject(
            C::Unreadable,
            format!("无法读取（{e}）。"),
            format!("Cannot be read ({e})."),
        )
    })?;
    let compressed_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut z = zip::ZipArchive::new(file).map_err(|e| {
        reject(
            C::ZipInvalid,
            format!("不是有效的 zip 压缩包（{e}）。请重新压缩，或直接放入文件夹。"),
            format!("Not a valid zip archive ({e}). Zip it again, or drop a plain folder."),
        )
    })?;
    if z.has_duplicate_names() {
        return Err(reject(
            C::ZipDuplicateEntry,
            "压缩包里有重名的文件。".into(),
            "The zip contains two entries with the same name.".into(),
        ));
    }
    let max_entries = limits.max_documents + 8;
    if z.len() > max_entries {
        return Err(bomb(&format!("{} entries", z.len())));
    }
    // Pass 1: names, types, declared sizes, overlap. Nothing written yet.
    let mut declared_total: u64 = 0;
    let mut ranges = Vec::new();
    let mut plan = Vec::new();
    let mut top_dirs = std::collections::BTreeSet::new();
    for i in 0..z.len() {
        let f = z.by_index_raw(i).map_err(|e| {
            reject(
                C::ZipInvalid,
                format!("压缩包损坏（{e}）。"),
                format!("The zip is damaged ({e})."),
            )
        })?;
        let raw = f.name_raw().to_vec();
        let entry = String::from_utf8(raw).map_err(|_| {
            reject(C::ZipUnsafeEntry, "压缩包里的文件名不是 UTF-8 编码。请用支持 UTF-8 的工具重新压缩。".into(), "An entry name in the zip is not UTF-8. Zip it again with a tool that writes UTF-8 names.".into())
        })?;
        if entry.starts_with("__MACOSX/") {
            continue; // resource forks that macOS Finder adds to every zip: not content
        }
        let unsafe_name = entry.is_empty()
            || entry.trim_end_matches('/').split('/').any(str::is_empty)
            || entry.starts_with('/')
            || entry.contains('\\')
            || entry.as_bytes().get(1) == Some(&b':')
            || entry.split('/').any(|c| c == ".." || c == ".")
            || entry.chars().any(char::is_control);
        if unsafe_name {
            return Err(reject(
                C::ZipUnsafeEntry,
                format!("压缩包里的 “{}” 路径不安全（绝对路径、盘符、反斜杠或 ..）。", entry.escape_debug()),
                format!("The zip entry {entry:?} has an unsafe path (absolute, drive letter, backslash or ..)."),
            ));
        }
        if f.is_symlink() {
            return Err(reject(
                C::ZipSymlink,
                format!("压缩包里的 “{entry}” 是符号链接。"),
                format!("The zip entry {entry:?} is a symbolic link."),
            ));
        }
        let parts: Vec<&str> = entry.trim_end_matches('/').split('/').collect();
        if parts.len() > 2 {
            return Err(reject(
                C::NotARegularFile,
                format!("压缩包里的 “{entry}” 嵌套过深。材料应直接放在压缩包（或其中一个文件夹）里。"),
                format!("The zip entry {entry:?} is nested too deep; put documents at the top level (or in one folder)."),
            ));
        }
        if parts.len() == 2 || f.is_dir() {
            top_dirs.insert(parts[0].to_owned());
        }
        if f.is_dir() {
            continue;
        }
        let size = f.size();
        let csize = f.compressed_size().max(1);
        if size
            > limits
                .max_document_size
                .max(crate::application::MAX_MANIFEST_BYTES)
        {
            return Err(bomb(&format!("{entry} would expand to {size} bytes")));
        }
        if size / csize > 200 && size > 1 << 20 {
            return Err(bomb(&format!("{entry} expands {}-fold", size / csize)));
        }
        declared_total = declared_total.saturating_add(size);
        if let Some(start) = f.data_start() {
            ranges.push((start, start + f.compressed_size(), entry.clone()));
        }
        plan.push((i, entry, size));
    }
    if declared_total > limits.max_total_size + crate::application::MAX_MANIFEST_BYTES {
        return Err(bomb(&format!("{declared_total} bytes in total")));
    }
    if declared_total > compressed_len.saturating_mul(1000).max(64 << 20) {
        return Err(bomb("compression ratio over 1000:1"));
    }
    ranges.sort();
    if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(bomb("entries overlap each other"));
    }
    if top_dirs.len() > 1 || (top_dirs.len() == 1 && plan.iter().any(|(_, e, _)| !e.contains('/')))
    {
        return Err(reject(
            C::NotARegularFile,
            "压缩包里有多个文件夹，或文件夹外还有文件。一个压缩包只能装一份申请。".into(),
            "The zip holds several folders, or files beside a folder. One zip holds one application.".into(),
        ));
    }
    // Pass 2: extract with hard caps (declared sizes may lie) and a time budget.
    let started = Instant::now();
    let budget = Duration::from_secs(60);
    let io_fail = |e: io::Error| {
        reject(
            C::Unreadable,
            format!("无法解压（{e}）。"),
            format!("Cannot extract ({e})."),
        )
    };
    fs::create_dir(dest).map_err(io_fail)?;
    for (i, entry, size) in plan {
        let target = dest.join(&entry);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_fail)?;
        }
        let mut f = z.by_index(i).map_err(|e| {
            reject(
                C::ZipInvalid,
                format!("压缩包损坏（{e}）。"),
                format!("The zip is damaged ({e})."),
            )
        })?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags_nofollow()
            .open(&target)
            .map_err(io_fail)?;
        let mut limited = (&mut f).take(size + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            let n = limited.read(&mut buf).map_err(|e| {
                reject(
                    C::ZipInvalid,
                    format!("压缩包损坏（{e}）。"),
                    format!("The zip is damaged ({e})."),
                )
            })?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > size {
                return Err(bomb(&format!("{entry} expands beyond its declared size")));
            }
            out.write_all(&buf[..n]).map_err(io_fail)?;
            if started.elapsed() > budget {
                return Err(bomb("extraction takes too long"));
            }
        }
    }
    Ok(match top_dirs.into_iter().next() {
        Some(top) => dest.join(top),
        None => dest.to_owned(),
    })
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}
impl NoFollow for fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
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
pub fn watch(
    dir: &Path,
    tx: std::sync::mpsc::Sender<Wake>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wake = match res {
            Ok(ev) if ev.need_rescan() => Wake::Rescan,
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
/// Items being processed when Stop arrives are finished first.
pub fn run(
    intake: &Intake<'_>,
    wake: &std::sync::mpsc::Receiver<Wake>,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<(), IntakeError> {
    use std::sync::mpsc::RecvTimeoutError;
    for o in intake.recover()? {
        on_outcome(&o);
    }
    let settings = &intake.config.intake;
    // Scan often enough that a settled drop is taken within about one interval.
    let tick = settings
        .scan_interval
        .min((settings.settle / 2).max(Duration::from_millis(100)));
    let mut scanner = Scanner::default();
    let mut last_prune: Option<Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            if let Err(e) = intake.prune_archive(Timestamp::now()) {
                tracing::warn!(error = %e, "archive pruning failed; retried in an hour");
            }
            if let Err(e) = intake.outbox.sweep(Timestamp::now()) {
                tracing::warn!(error = %e, "outbox sweep failed; retried in an hour");
            }
            last_prune = Some(Instant::now());
        }
        let ready = scanner
            .ready(&intake.dirs.intake, settings.settle, Instant::now())
            .map_err(io_err("cannot scan intake/"))?;
        for r in intake.take(&ready) {
            match r {
                Ok(o) => on_outcome(&o),
                Err(e) => {
                    tracing::error!(error = %e, "intake failed; the item stays and is retried")
                }
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
