//! The receiving side's inbox, shared by polling ([`poll`]) and push
//! (`POST /v1/bundles`). The module doc is the specification; keep it true.
//!
//! ## On disk
//!
//! ```text
//! <data_dir>/inbox/<case>/<bundle-id>/      one verified, opened bundle:
//!     documents/…, transfer-letter.txt,       the payload (see docs/bundle-format.md)
//!     manifest.json, manifest.sig, signer.pem,
//!     SHA256SUMS, envelope.json, envelope.sig
//!     receipt.json                            this node's signed receipt, made once
//!     .done                                   written last: the receipt's time
//! <data_dir>/received/<bundle-id>.json       who sent this id, with which envelope
//! <data_dir>/downloads/<peer>/<bundle-id>.sealpost   pulls being downloaded (resumable)
//! <data_dir>/downloads/push/<random>.sealpost         pushes being received
//! ```
//!
//! Downloads and uploads wait outside the inbox, so that not one unverified
//! byte is ever under it.
//!
//! ## Taking a bundle in ([`deliver`])
//!
//! 1. Verify it completely (public keys); its sender must be the peer it came from.
//! 2. **Claim the id** in `received/`: the first bundle with an id that
//!    passes step 1 fixes its sender and envelope digest (even if opening it
//!    then fails: a writer draws a fresh id for every bundle it seals). The same (sender, envelope) again is a repeat
//!    and continues below; anything else with that id is a clash
//!    ([`InboxError::Conflict`]) and learns nothing about the first.
//! 3. Open it into `inbox/<case>/<bundle-id>/` (the folder appears only when
//!    everything verified; see [`crate::bundle::Verifier::open`]).
//! 4. **Sign the receipt once**: `receipt.json` is made with this node's
//!    signing key at the current time and written atomically; from then on the
//!    same bytes are sent for every retry, whatever key is configured later.
//! 5. Write `.done` last: the court's case system takes the folder from then on.
//!
//! Each step skips what is already done, so a repeat, or a run interrupted at
//! any point, ends in the same place.
//!
//! ## Recovery ([`recover`], at start, before anything else runs)
//!
//! A node killed while opening leaves a hidden temporary folder of partly
//! decrypted documents (`inbox/<case>/.<bundle-id>.tmp-*`): removed, as are
//! temporary files of `receipt.json`, `.done` and `received/`. An opened folder
//! without its receipt or `.done` is finished. Pushes in flight are removed (the
//! sender pushes again); a pull's partial download is kept for resumption unless
//! the bundle is already in the inbox.

pub mod poll;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::{BundleError, Envelope, Verifier, ENVELOPE_ENTRY};
use crate::config::Config;
use crate::fsutil::write_new_atomic;
use crate::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT};
use crate::types::{printable, AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// This node's signed receipt, kept in the bundle's inbox folder.
pub const RECEIPT_FILE: &str = "receipt.json";
/// Written last into an inbox folder: the folder is complete.
pub const DONE_FILE: &str = ".done";

/// Where this node's inbox is.
pub fn root(config: &Config) -> PathBuf {
    config.node.data_dir.join("inbox")
}

/// Where downloads and pushed uploads wait until verified.
pub fn downloads(config: &Config) -> PathBuf {
    config.node.data_dir.join("downloads")
}

/// Where a pull from `peer` is downloaded to.
pub fn download_path(config: &Config, peer: &AgencyId, id: &BundleId) -> PathBuf {
    downloads(config)
        .join(peer.as_str())
        .join(format!("{id}.sealpost"))
}

/// Where pushed bundles are received (one fresh file per request).
pub fn push_dir(config: &Config) -> PathBuf {
    downloads(config).join("push")
}

fn received_dir(config: &Config) -> PathBuf {
    config.node.data_dir.join("received")
}

/// The inbox folder of bundle `id` of `case`.
pub fn dir_for(config: &Config, case: &CaseRef, id: &BundleId) -> PathBuf {
    root(config).join(case.as_str()).join(id.as_str())
}

/// Why a bundle was not taken in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The bundle failed verification (its code says which check).
    #[error(transparent)]
    Refused(BundleError),
    /// Another bundle with this id was already received from another sender
    /// or with another envelope. Nothing about the first is revealed.
    #[error("a different bundle with the id {0} was already received")]
    Conflict(BundleId),
    /// Local trouble (disk, keys); the bundle is not at fault.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl InboxError {
    /// Stable code (API problem details, logs).
    pub fn code(&self) -> &'static str {
        match self {
            InboxError::Refused(e) => e.code(),
            InboxError::Conflict(_) => "bundle-id-conflict",
            InboxError::Io { .. } => "internal",
        }
    }
    /// Whether the bundle (rather than this node) is at fault.
    pub fn is_bundle_fault(&self) -> bool {
        match self {
            InboxError::Refused(e) => e.is_bundle_fault(),
            InboxError::Conflict(_) => true,
            InboxError::Io { .. } => false,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> InboxError {
    let context = context.into();
    move |source| InboxError::Io { context, source }
}

impl From<BundleError> for InboxError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::Io(source) | BundleError::Output(source) => InboxError::Io {
                context: "bundle".into(),
                source,
            },
            BundleError::OutputExists(p) => InboxError::Io {
                context: format!("{} already exists", p.display()),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            },
            other => InboxError::Refused(other),
        }
    }
}

/// A bundle held in the inbox, with this node's receipt for it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its inbox folder.
    pub dir: PathBuf,
    /// The exact bytes of `receipt.json`: what is sent to the sender, every time.
    pub receipt: Vec<u8>,
}

impl Stored {
    /// The receipt, parsed.
    pub fn signed(&self) -> Result<SignedReceipt, serde_json::Error> {
        serde_json::from_slice(&self.receipt)
    }
}

/// What `received/<id>.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Received {
    bundle_id: BundleId,
    sender: AgencyId,
    envelope_sha256: Sha256,
    case_ref: CaseRef,
}

/// Verifies `file` (addressed to this node, sent by `from`) and takes it into
/// the inbox unless it is already there (see the module doc). Returns the
/// folder and this node's receipt.
pub fn deliver(config: &Config, file: &Path, from: &AgencyId) -> Result<Stored, InboxError> {
    deliver_recorded(config, file, from, None, crate::audit::Via::Poll)
}

/// [`deliver`], appending a `bundle-received` record to `audit` when the
/// bundle is taken in (not for a repeat).
pub fn deliver_recorded(
    config: &Config,
    file: &Path,
    from: &AgencyId,
    audit: Option<&crate::audit::Audit>,
    via: crate::audit::Via,
) -> Result<Stored, InboxError> {
    let v = Verifier::for_node(config);
    let verified = v.verify(file)?;
    let env = &verified.envelope;
    if &env.sender != from {
        return Err(InboxError::Refused(BundleError::SignerIdentityMismatch {
            cert: from.clone(),
            sender: env.sender.clone(),
        }));
    }
    claim(
        config,
        &Received {
            bundle_id: env.id,
            sender: env.sender.clone(),
            envelope_sha256: Sha256::of(&verified.envelope_bytes),
            case_ref: env.case_ref.clone(),
        },
    )?;
    let dest = dir_for(config, &env.case_ref, &env.id);
    if let Some(done) = stored(&dest).map_err(io_err("cannot read the inbox"))? {
        return Ok(done);
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err("cannot create the case folder"))?;
    }
    if !dest.exists() {
        match v.open(file, &config.keys.encryption, &dest) {
            Ok(_) => {}
            // A concurrent repeat (the same push twice at once) got there first.
            Err(BundleError::OutputExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let done = finish(config, &dest)?;
    if let Some(a) = audit {
        let receipt_sha256 = done
            .signed()
            .ok()
            .and_then(|s| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(s.receipt)
                    .ok()
            })
            .map(|raw| Sha256::of(&raw))
            .unwrap_or_else(|| Sha256::of(&done.receipt));
        if let Err(e) = a.append(crate::audit::Entry::BundleReceived {
            bundle_id: env.id,
            sender: env.sender.clone(),
            case_ref: env.case_ref.clone(),
            envelope_sha256: Sha256::of(&verified.envelope_bytes),
            payload_sha256: env.payload.sha256,
            receipt_sha256,
            via,
        }) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }
    tracing::info!(bundle = %env.id, case = %printable(env.case_ref.as_str()), sender = %env.sender, dir = %printable(&dest.to_string_lossy()), "bundle verified and delivered into the inbox");
    Ok(done)
}

/// Claims `r.bundle_id` for (sender, envelope) in `received/`.
fn claim(config: &Config, r: &Received) -> Result<(), InboxError> {
    let dir = received_dir(config);
    fs::create_dir_all(&dir).map_err(io_err("cannot create received/"))?;
    let path = dir.join(format!("{}.json", r.bundle_id));
    let bytes = serde_json::to_vec_pretty(r).expect("records serialise");
    match write_new_atomic(&path, &bytes) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("cannot record the bundle id")(e)),
    }
    let first: Received =
        serde_json::from_slice(&fs::read(&path).map_err(io_err("cannot read received/"))?)
            .map_err(|e| io_err(format!("{} is damaged", path.display()))(io::Error::other(e)))?;
    if first.sender == r.sender && first.envelope_sha256 == r.envelope_sha256 {
        Ok(())
    } else {
        tracing::warn!(bundle = %r.bundle_id, sender = %r.sender, first_sender = %first.sender, "a different bundle with an id already received was refused");
        Err(InboxError::Conflict(r.bundle_id))
    }
}

/// The bundle in inbox folder `dir`, if it is complete (receipt and `.done`).
pub fn stored(dir: &Path) -> io::Result<Option<Stored>> {
    if !dir.join(DONE_FILE).exists() {
        return Ok(None);
    }
    match fs::read(dir.join(RECEIPT_FILE)) {
        Ok(receipt) => Ok(Some(Stored {
            dir: dir.to_owned(),
            receipt,
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Steps 4 and 5 for an opened folder: the receipt (signed now, once) and `.done`.
fn finish(config: &Config, dest: &Path) -> Result<Stored, InboxError> {
    let receipt_path = dest.join(RECEIPT_FILE);
    let receipt = match fs::read(&receipt_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes = sign_receipt(config, dest)?;
            match write_new_atomic(&receipt_path, &bytes) {
                Ok(()) => bytes,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::read(&receipt_path).map_err(io_err("cannot read the receipt"))?
                }
                Err(e) => return Err(io_err("cannot store the receipt")(e)),
            }
        }
        Err(e) => return Err(io_err("cannot read the receipt")(e)),
    };
    let signed: SignedReceipt = serde_json::from_slice(&receipt).map_err(|e| {
        io_err(format!("{} is damaged", receipt_path.display()))(io::Error::other(e))
    })?;
    let received_at = signed
        .unverified_received_at()
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    match write_new_atomic(&dest.join(DONE_FILE), received_at.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("cannot write .done")(e)),
    }
    Ok(Stored {
        dir: dest.to_owned(),
        receipt,
    })
}

/// This node's receipt for the opened bundle in `dest`, signed now.
fn sign_receipt(config: &Config, dest: &Path) -> Result<Vec<u8>, InboxError> {
    let envelope =
        fs::read(dest.join(ENVELOPE_ENTRY)).map_err(io_err("cannot read envelope.json"))?;
    let env: Envelope = serde_json::from_slice(&envelope)
        .map_err(|e| io_err("envelope.json in the inbox")(io::Error::other(e)))?;
    let r = Receipt {
        format: RECEIPT_FORMAT.to_owned(),
        bundle_id: env.id,
        sender: env.sender,
        receiver: config.node.id.clone(),
        envelope_sha256: Sha256::of(&envelope),
        payload_sha256: env.payload.sha256,
        received_at: Timestamp::now(),
    };
    Ok(serde_json::to_vec_pretty(&r.sign(&config.keys.signing)).expect("receipts serialise"))
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Temporary files and folders removed (partial plaintext included).
    pub removed: usize,
    /// Opened folders given their receipt and `.done`.
    pub finished: usize,
}

/// Cleans up after an interrupted run (see the module doc). Run at start,
/// before any poller, pusher or API request can touch the inbox.
pub fn recover(config: &Config) -> io::Result<Recovered> {
    let mut report = Recovered::default();
    let inbox = root(config);
    for case in read_dir_if_exists(&inbox)? {
        let case = case?;
        if !case.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(case.path())? {
            let entry = entry?;
            let path = entry.path();
            if is_temp_name(&entry.file_name()) {
                // A folder being opened when the node died: partial plaintext.
                remove_any(&path)?;
                tracing::warn!(path = %printable(&path.to_string_lossy()), "removed a partly opened bundle left by an interrupted run");
                report.removed += 1;
                continue;
            }
            if !entry.file_type()?.is_dir() {
                continue;
            }
            report.removed += crate::fsutil::remove_stale_temps(&path)?;
            if !path.join(DONE_FILE).exists() || !path.join(RECEIPT_FILE).exists() {
                match finish(config, &path) {
                    Ok(_) => report.finished += 1,
                    Err(e) => {
                        tracing::error!(path = %printable(&path.to_string_lossy()), error = %e, "cannot finish an inbox folder left by an interrupted run")
                    }
                }
            }
        }
        crate::fsutil::sync_dir(&case.path())?;
    }
    let received = received_dir(config);
    if received.is_dir() {
        report.removed += crate::fsutil::remove_stale_temps(&received)?;
    }
    let downloads = downloads(config);
    for entry in read_dir_if_exists(&downloads)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name == "push" || !entry.file_type()?.is_dir() {
            // Pushes in flight (the sender pushes again), and files of the old
            // flat layout.
            remove_any(&path)?;
            report.removed += 1;
            continue;
        }
        for f in fs::read_dir(&path)? {
            let f = f?;
            let done_already = f
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sealpost"))
                .and_then(|id| id.parse::<BundleId>().ok())
                .is_some_and(|id| is_complete(config, &id));
            if done_already || is_temp_name(&f.file_name()) {
                remove_any(&f.path())?;
                report.removed += 1;
            }
        }
    }
    if report != Recovered::default() {
        tracing::info!(
            removed = report.removed,
            finished = report.finished,
            "inbox recovered after an interrupted run"
        );
    }
    Ok(report)
}

/// Whether bundle `id` is complete in the inbox (per `received/`).
pub fn is_complete(config: &Config, id: &BundleId) -> bool {
    let Ok(bytes) = fs::read(received_dir(config).join(format!("{id}.json"))) else {
        return false;
    };
    let Ok(r) = serde_json::from_slice::<Received>(&bytes) else {
        return false;
    };
    dir_for(config, &r.case_ref, id).join(DONE_FILE).exists()
}

/// Who sent bundle `id` and under which case, as recorded in `received/`
/// when it was taken in (`None`: never received here). The court's
/// follow-up events go back to this sender.
pub fn sender_of(config: &Config, id: &BundleId) -> io::Result<Option<(AgencyId, CaseRef)>> {
    let bytes = match fs::read(received_dir(config).join(format!("{id}.json"))) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let r: Received = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
    Ok(Some((r.sender, r.case_ref)))
}

/// What [`backup`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backed {
    /// Complete inbox folders (each with its receipt and `.done`).
    pub folders: usize,
    /// Entries of the `received/` index.
    pub received: usize,
}

/// Copies the inbox's complete folders (those with `.done`: they never change
/// again) and the `received/` index into `dest/inbox` and `dest/received`.
/// Folders still being opened are left out (they are finished again from the
/// download after a restore). Restore by copying both into a data directory.
pub fn backup(config: &Config, dest: &Path) -> io::Result<Backed> {
    let mut report = Backed::default();
    let from = received_dir(config);
    if from.is_dir() {
        report.received = crate::fsutil::copy_tree(&from, &dest.join("received"))?;
    }
    for case in read_dir_if_exists(&root(config))? {
        let case = case?;
        if !case.file_type()?.is_dir() {
            continue;
        }
        for item in read_dir_if_exists(&case.path())? {
            let item = item?;
            if item.file_type()?.is_dir() && item.path().join(DONE_FILE).is_file() {
                crate::fsutil::copy_tree(
                    &item.path(),
                    &dest
                        .join("inbox")
                        .join(case.file_name())
                        .join(item.file_name()),
                )?;
                report.folders += 1;
            }
        }
    }
    Ok(report)
}

fn read_dir_if_exists(dir: &Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.starts_with(b".") && b.windows(5).any(|w| w == b".tmp-")
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}
