//! The committee's side of a case after acceptance: every delivery change and
//! every court event goes on the case's timeline, becomes a notification to
//! the applicant where one is due, and rewrites the clerks' status file.
//!
//! It is driven by three things: the outbox's events ([`Casework::on_delivery`],
//! subscribed to the outbox's bus), the court's events arriving over the API
//! ([`Casework::receive`]), and the notifier's outcomes
//! ([`Casework::on_notification`]). Each step is durable before the next is
//! taken; what a crash interrupts between the outbox's change and the case's
//! timeline is caught up at start ([`Casework::reconcile`]), and notifications
//! are idempotent by their key, so a caught-up step never notifies twice.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::status;
use crate::cases::{
    ApplicantView, BundleView, CaseFile, CaseView, Cases, CasesError, EventView, Step, Stored,
    StoredEvent,
};
use crate::config::{Config, Role};
use crate::event::{Event, EventError, Submission};
use crate::notify::{CourtInfo, Notice, NoticeAttachment, Notifier, Outcome, OutcomeKind, What};
use crate::outbox::{Change, Outbox};
use crate::types::{printable, AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// Why a court's event is refused (mapped to an HTTP answer by the API).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The caller is not a court.
    #[error("only courts post follow-up events")]
    NotACourt,
    /// The case or bundle is not the caller's (or does not exist): the same
    /// answer either way.
    #[error("not found")]
    NotFound,
    /// The event does not verify or breaks a rule.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// The event names another court, committee or case than the request.
    #[error("{detail}")]
    Mismatch {
        /// Stable code.
        code: &'static str,
        /// What differs.
        detail: String,
    },
    /// The id is taken by another event.
    #[error("event {0} was recorded before with other content")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(CasesError),
    /// The applicant's notification could not be queued; nothing is
    /// answered, so the court posts again.
    #[error(transparent)]
    Queue(crate::notify::NotifyError),
}

/// What the API answers for a recorded event.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// The event.
    pub event_id: String,
    /// When this node recorded it (the first time).
    pub recorded_at: Timestamp,
    /// Whether it was recorded before (an identical repeat).
    #[serde(skip)]
    pub repeat: bool,
}

/// The committee's casework.
#[derive(Debug, Clone)]
pub struct Casework {
    inner: Arc<Inner>,
}

struct Inner {
    cases: Cases,
    outbox: Outbox,
    notifier: Option<Notifier>,
    config: RwLock<Arc<Config>>,
    audit: std::sync::OnceLock<crate::audit::Audit>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Casework")
            .field("notifier", &self.notifier.is_some())
            .finish_non_exhaustive()
    }
}

impl Casework {
    /// Casework over `cases` and `outbox`, notifying through `notifier` (if any).
    pub fn new(
        config: Arc<Config>,
        outbox: Outbox,
        cases: Cases,
        notifier: Option<Notifier>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cases,
                outbox,
                notifier,
                config: RwLock::new(config),
                audit: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Appends `followup-received`, `notification-sent` and
    /// `notification-failed` records to `audit` from now on.
    pub fn audit_to(&self, audit: crate::audit::Audit) {
        let _ = self.inner.audit.set(audit);
    }

    fn audit(&self, entry: crate::audit::Entry) {
        if let Some(a) = self.inner.audit.get() {
            if let Err(e) = a.append(entry) {
                tracing::error!(error = %e, "cannot append to the audit log");
            }
        }
    }

    /// Puts a proof of delivery beside the case's status file in the clerks'
    /// share: `status/<item>.送达证明.zip` and the printable
    /// `status/<item>.送达证明.html`, replacing an older one.
    pub fn share_proof(&self, bundle: &BundleId, zip: &[u8], html: &str) {
        let file = match self.inner.cases.case_of(bundle) {
            Ok(Some(case)) => match self.inner.cases.get(&case) {
                Ok(Some(f)) => f,
                _ => return,
            },
            _ => return,
        };
        let status = self.status_path(&file);
        let stem = status
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| bundle.to_string());
        let dir = crate::fsutil::parent_of(&status).to_owned();
        let result = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                crate::fsutil::write_replace_atomic(&dir.join(format!("{stem}.送达证明.zip")), zip)
            })
            .and_then(|()| {
                crate::fsutil::write_replace_atomic(
                    &dir.join(format!("{stem}.送达证明.html")),
                    html.as_bytes(),
                )
            });
        if let Err(e) = result {
            tracing::error!(bundle = %bundle, dir = %dir.display(), error = %e, "cannot put the proof of delivery in the clerks' share");
        }
    }

    /// Uses `next` from now on (reload).
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

    /// The case files.
    pub fn cases(&self) -> &Cases {
        &self.inner.cases
    }

    /// Subscribes this casework to the outbox's events and the notifier's
    /// outcomes.
    pub fn subscribe(&self) {
        let me = self.clone();
        self.inner
            .outbox
            .bus()
            .subscribe(Arc::new(move |e| me.on_delivery(e)));
        if let Some(n) = &self.inner.notifier {
            let me = self.clone();
            n.subscribe(Arc::new(move |o| me.on_notification(o)));
        }
    }

    fn court_info(&self, court: &AgencyId) -> CourtInfo {
        let config = self.config();
        let peer = config.directory.get(court);
        CourtInfo {
            id: court.clone(),
            name_zh: peer
                .map(|p| p.name_zh.clone())
                .unwrap_or_else(|| court.to_string()),
            name_en: peer
                .map(|p| p.name_en.clone())
                .unwrap_or_else(|| court.to_string()),
            phone: peer.and_then(|p| p.contact_phone.clone()),
            email: peer.and_then(|p| p.contact_email.clone()),
        }
    }

    /// Queues the applicant's notice (durably, idempotent by its key), for
    /// a step that is recorded only once this has returned `Ok`: a crash or
    /// an error in between leaves the step unrecorded, and it is done again
    /// — and queued again, which changes nothing — when it is caught up.
    fn notify(
        &self,
        file: &CaseFile,
        bundle: BundleId,
        event_key: String,
        what: What,
        attachments: Vec<NoticeAttachment>,
    ) -> Result<(), crate::notify::NotifyError> {
        let Some(n) = &self.inner.notifier else {
            return Ok(());
        };
        let notice = Notice {
            event_key,
            case_number: file.case_number.clone(),
            bundle_id: bundle,
            language: match file.applicant.language {
                crate::application::Language::Zh => crate::notify::Language::Zh,
                crate::application::Language::En => crate::notify::Language::En,
            },
            applicant_name: file.applicant.name.clone(),
            email: Some(file.applicant.email.clone()),
            mobile: file.applicant.mobile.clone(),
            court: self.court_info(&file.court),
            what,
            attachments,
        };
        // Marked first: a crash after the queue records an outcome and
        // before the timeline does is caught up at start, for marked cases only.
        if let Err(e) = self.inner.cases.set_notifying(&file.case_number, true) {
            tracing::error!(case = %printable(file.case_number.as_str()), error = %e, "cannot mark the case's notifications");
        }
        n.enqueue(&notice).map(drop)
    }

    /// The timeline step for a delivery change, reading the stored receipt for
    /// a delivery.
    fn step_of(&self, bundle: BundleId, change: &Change) -> Option<Step> {
        Some(match change {
            Change::Queued => Step::Sealed { bundle_id: bundle },
            Change::Fetched => Step::Fetched { bundle_id: bundle },
            Change::Delivered => {
                let path = self.inner.outbox.receipt_path(&bundle);
                let bytes = std::fs::read(&path).ok()?;
                let signed: crate::receipt::SignedReceipt = serde_json::from_slice(&bytes).ok()?;
                Step::Delivered {
                    bundle_id: bundle,
                    received_at: signed.unverified_received_at()?,
                    receipt_sha256: Sha256::of(&bytes),
                }
            }
            Change::Failed {
                attempts, error, ..
            } => Step::PushFailed {
                bundle_id: bundle,
                attempts: *attempts,
                error: error.clone(),
            },
            Change::Dead { reason } => Step::Dead {
                bundle_id: bundle,
                reason: reason.clone(),
            },
            Change::Cancelled { reason } => Step::Cancelled {
                bundle_id: bundle,
                reason: reason.clone(),
            },
            Change::Retried | Change::Requeued { .. } => Step::Retried { bundle_id: bundle },
        })
    }

    /// An outbox event: timeline, notification (delivered), status file.
    pub fn on_delivery(&self, e: &crate::outbox::Event) {
        if let Err(err) = self.delivery_changed(e.id, e.at, &e.change) {
            tracing::error!(bundle = %e.id, error = %err, "cannot record the delivery on the case's timeline; it is caught up at the next start");
        }
    }

    fn delivery_changed(
        &self,
        bundle: BundleId,
        at: Timestamp,
        change: &Change,
    ) -> Result<(), CasesError> {
        let cases = &self.inner.cases;
        let Some(case) = cases.case_of(&bundle)? else {
            return Ok(()); // not an application accepted here (e.g. before case files existed)
        };
        let Some(step) = self.step_of(bundle, change) else {
            return Ok(());
        };
        let state = self
            .inner
            .outbox
            .get(&bundle)?
            .map(|d| d.state.name())
            .unwrap_or("unknown");
        // The applicant's notice is queued before the case file records the
        // delivery as seen: once it is seen, the catch-up at start passes it by.
        if let Step::Delivered {
            received_at,
            receipt_sha256,
            ..
        } = &step
        {
            if let Some(file) = cases.get(&case)? {
                if let Err(e) = self.notify(
                    &file,
                    bundle,
                    format!("delivered/{bundle}"),
                    What::Delivered {
                        received_at: *received_at,
                        receipt_sha256: *receipt_sha256,
                    },
                    vec![],
                ) {
                    tracing::error!(case = %printable(case.as_str()), %bundle, error = %e, "cannot queue the applicant's notification of the delivery; the delivery is recorded on the case, and the notification queued, at the next start");
                    return Ok(());
                }
            }
        }
        cases.append_delivery(&case, &bundle, state, at, step)?;
        self.write_status(&case);
        Ok(())
    }

    /// A notification's outcome: timeline and status file.
    pub fn on_notification(&self, o: &Outcome) {
        match &o.result {
            OutcomeKind::Sent { message_id, .. } => {
                self.audit(crate::audit::Entry::NotificationSent {
                    case_ref: o.case_number.clone(),
                    channel: o.channel.name().to_owned(),
                    about: o.event_key.clone(),
                    message_id: message_id.clone(),
                })
            }
            OutcomeKind::Failed { error, .. } => {
                self.audit(crate::audit::Entry::NotificationFailed {
                    case_ref: o.case_number.clone(),
                    channel: o.channel.name().to_owned(),
                    about: o.event_key.clone(),
                    error: error.clone(),
                })
            }
            OutcomeKind::Retrying { .. } => {}
        }
        let (at, step) = match &o.result {
            OutcomeKind::Sent { at, .. } => (
                *at,
                Step::NotificationSent {
                    event_key: o.event_key.clone(),
                    channel: o.channel.name().to_owned(),
                    recipient: o.recipient.clone(),
                },
            ),
            OutcomeKind::Retrying { at, error, next_at } => (
                *at,
                Step::NotificationRetrying {
                    event_key: o.event_key.clone(),
                    channel: o.channel.name().to_owned(),
                    recipient: o.recipient.clone(),
                    error: error.clone(),
                    next_at: *next_at,
                },
            ),
            OutcomeKind::Failed { at, error } => (
                *at,
                Step::NotificationFailed {
                    event_key: o.event_key.clone(),
                    channel: o.channel.name().to_owned(),
                    recipient: o.recipient.clone(),
                    error: error.clone(),
                },
            ),
        };
        // A retry is on the timeline once (its first failure), not at every attempt.
        if matches!(step, Step::NotificationRetrying { .. }) && o.attempts > 1 {
            return;
        }
        let last = !matches!(step, Step::NotificationRetrying { .. });
        match self.inner.cases.append(&o.case_number, at, step) {
            Ok(_) => {
                self.write_status(&o.case_number);
                if let (true, Some(n)) = (last, &self.inner.notifier) {
                    self.settle_notifying(n, &o.case_number);
                }
            }
            Err(e) => {
                tracing::error!(case = %printable(o.case_number.as_str()), error = %e, "cannot record a notification on the case's timeline")
            }
        }
    }

    /// Whether `peer` may see `case`: its court, or the platform that submitted it.
    pub fn concerns(
        &self,
        peer: &AgencyId,
        case: &CaseRef,
    ) -> Result<Option<CaseFile>, CasesError> {
        let Some(file) = self.inner.cases.get(case)? else {
            return Ok(None);
        };
        let court = file
            .bundles
            .iter()
            .any(|b| matches!(self.inner.outbox.get(b), Ok(Some(d)) if &d.peer == peer));
        if court || file.submitter.as_ref() == Some(peer) {
            Ok(Some(file))
        } else {
            Ok(None)
        }
    }

    /// A court's event for `case`, posted by `peer`: verified, checked against
    /// the case, stored, put on the timeline, notified, shown to the clerks.
    pub fn receive(
        &self,
        peer: &AgencyId,
        case: &CaseRef,
        submission: &Submission,
        now: Timestamp,
    ) -> Result<Recorded, Refusal> {
        let config = self.config();
        if config.directory.get(peer).map(|p| p.role) != Some(Role::Court) {
            return Err(Refusal::NotACourt);
        }
        let signed = submission.signed();
        let event = signed.verify(&config.trust, &config.directory, now)?;
        let data = submission.attachment_bytes()?;
        event.check_attachments(&data)?;
        if &event.court != peer {
            return Err(Refusal::Mismatch {
                code: "event-court-mismatch",
                detail: format!(
                    "the event is signed by court \"{}\" but posted over the connection of \"{peer}\"",
                    event.court
                ),
            });
        }
        if event.committee != config.node.id {
            return Err(Refusal::Mismatch {
                code: "event-committee-mismatch",
                detail: format!(
                    "the event is addressed to \"{}\", not to this node (\"{}\")",
                    event.committee, config.node.id
                ),
            });
        }
        if &event.case_number != case {
            return Err(Refusal::Mismatch {
                code: "event-case-mismatch",
                detail: "the event's case_number is not the case in the request path".into(),
            });
        }
        // The bundle must be one of this case's, addressed to this court and
        // in its hands (fetched, or signed for).
        let cases = &self.inner.cases;
        let file = cases.get(case).map_err(Refusal::Store)?;
        let theirs = file
            .as_ref()
            .is_some_and(|f| f.bundles.contains(&event.bundle_id))
            && matches!(
                self.inner.outbox.get(&event.bundle_id),
                Ok(Some(d)) if &d.peer == peer
                    && matches!(
                        d.state,
                        crate::outbox::State::Fetched { .. } | crate::outbox::State::Delivered { .. }
                    )
            );
        let Some(file) = file.filter(|_| theirs) else {
            return Err(Refusal::NotFound);
        };
        let bytes = signed.bytes()?;
        let stored = match cases.store_event(&signed, &bytes, &event, &data, now) {
            Ok(s) => s,
            Err(CasesError::Conflict(id)) => return Err(Refusal::Conflict(id.to_string())),
            Err(e) => return Err(Refusal::Store(e)),
        };
        let (stored, repeat) = match stored {
            Stored::New(s) => (s, false),
            Stored::Repeat(s) => (s, true),
        };
        if !repeat {
            tracing::info!(case = %printable(case.as_str()), court = %peer, event = %event.event_id, kind = event.details.kind(), "court event recorded");
            self.audit(crate::audit::Entry::FollowupReceived {
                event_id: event.event_id.to_string(),
                case_ref: case.clone(),
                court: peer.clone(),
                event_kind: event.details.kind().to_owned(),
                event_sha256: Sha256::of(&bytes),
            });
        }
        // Queued on a repeat too (idempotent by key): a crash or an error
        // after storing the event and before queuing its notification is
        // healed by the court posting it again, which it does until it has
        // an answer.
        self.notify_event(&file, &stored, event)
            .map_err(Refusal::Queue)?;
        if !repeat {
            self.write_status(case);
        }
        Ok(Recorded {
            event_id: stored.event_id.to_string(),
            recorded_at: stored.received_at,
            repeat,
        })
    }

    fn notify_event(
        &self,
        file: &CaseFile,
        stored: &StoredEvent,
        event: Event,
    ) -> Result<(), crate::notify::NotifyError> {
        let dir = self.inner.cases.event_dir(&stored.event_id);
        let attachments = event
            .attachments
            .iter()
            .map(|a| NoticeAttachment {
                name: a.name.clone(),
                media_type: a.media_type.clone(),
                path: dir.join(&a.name),
            })
            .collect();
        self.notify(
            file,
            stored.bundle_id,
            format!("event/{}", stored.event_id),
            What::FollowUp {
                event,
                received_at: stored.received_at,
            },
            attachments,
        )
    }

    /// The view of `case` (for its court, its platform, operators).
    pub fn view(&self, case: &CaseRef) -> Result<Option<CaseView>, CasesError> {
        match self.inner.cases.get(case)? {
            Some(file) => self.view_of(&file).map(Some),
            None => Ok(None),
        }
    }

    /// The view of the case whose file is `file`.
    fn view_of(&self, file: &CaseFile) -> Result<CaseView, CasesError> {
        let cases = &self.inner.cases;
        let case = &file.case_number;
        let mut bundles = Vec::new();
        for id in &file.bundles {
            if let Some(d) = self.inner.outbox.get(id)? {
                let receipt = std::fs::read(self.inner.outbox.receipt_path(id)).ok();
                bundles.push(BundleView {
                    id: *id,
                    state: d.state.name().to_owned(),
                    queued_at: d.queued_at,
                    delivered_at: match d.state {
                        crate::outbox::State::Delivered { at } => Some(at),
                        _ => None,
                    },
                    receipt_sha256: receipt.map(|b| Sha256::of(&b)),
                });
            }
        }
        let events = cases
            .events(case)?
            .into_iter()
            .map(|(s, event)| EventView {
                received_at: s.received_at,
                event,
            })
            .collect();
        Ok(CaseView {
            case_number: file.case_number.clone(),
            court: file.court.clone(),
            accepted_at: file.accepted_at,
            applicant: ApplicantView {
                name: file.applicant.name.clone(),
                language: file.applicant.language,
            },
            bundles,
            events,
            timeline: cases.timeline(case)?,
        })
    }

    /// Where the clerks' status file of a case is: `status/<item>.txt` beside
    /// `accepted/`, named like the clerks' item.
    pub fn status_path(&self, file: &CaseFile) -> PathBuf {
        let config = self.config();
        let dir = config.intake.root.join("status");
        let name = file
            .source
            .as_deref()
            .filter(|s| crate::event::check_attachment_name(s).is_ok())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                file.bundles
                    .first()
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "case".into())
            });
        dir.join(format!("{name}.txt"))
    }

    /// The text of `case`'s status file, as it would be written now.
    pub fn status_text(&self, case: &CaseRef) -> Result<Option<String>, CasesError> {
        match self.inner.cases.get(case)? {
            Some(file) => self.status_text_of(&file).map(Some),
            None => Ok(None),
        }
    }

    /// The status file's text for the case whose file is `file`.
    fn status_text_of(&self, file: &CaseFile) -> Result<String, CasesError> {
        let view = self.view_of(file)?;
        let channels = self
            .inner
            .notifier
            .as_ref()
            .map(|n| n.channels())
            .unwrap_or_default();
        Ok(status::render(
            &view,
            file,
            &self.court_info(&file.court),
            &channels,
            Timestamp::now(),
        ))
    }

    /// Rewrites the clerks' status file of `case` (atomically). Failures are
    /// logged: the file is rewritten at the case's next event and at start.
    pub fn write_status(&self, case: &CaseRef) {
        let result = (|| -> Result<(), String> {
            let Some(file) = self.inner.cases.get(case).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let text = self.status_text_of(&file).map_err(|e| e.to_string())?;
            let path = self.status_path(&file);
            std::fs::create_dir_all(crate::fsutil::parent_of(&path)).map_err(|e| e.to_string())?;
            crate::fsutil::write_replace_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())
        })();
        if let Err(e) = result {
            tracing::warn!(case = %printable(case.as_str()), error = %e, "cannot write the clerks' status file");
        }
    }

    /// Catches up what a crash left between a delivery change and its
    /// timeline entry (and notification), for every case not yet finished,
    /// and between a notification's final outcome (durable in the queue
    /// first) and its timeline entry, for every case with notifications in
    /// flight; rewrites their status
    /// files; removes status files half replaced. Returns how many steps were caught up.
    pub fn reconcile(&self) -> Result<usize, CasesError> {
        // A status file being replaced when the node was killed.
        let status = self.config().intake.root.join("status");
        if status.is_dir() {
            crate::fsutil::remove_stale_temps(&status).map_err(|source| CasesError::Io {
                context: format!("cannot clean {}", status.display()),
                source,
            })?;
        }
        let cases = &self.inner.cases;
        let mut caught = 0;
        if let Some(n) = &self.inner.notifier {
            for case in cases.notifying_cases()? {
                caught += self.catch_up_notifications(n, &case)?;
            }
        }
        for file in cases.open_cases()? {
            for id in &file.bundles {
                let Some(d) = self.inner.outbox.get(id)? else {
                    continue;
                };
                if file.seen.get(id).map(String::as_str) == Some(d.state.name()) {
                    continue;
                }
                let (at, change) = match &d.state {
                    crate::outbox::State::Queued => (d.queued_at, Change::Queued),
                    crate::outbox::State::Fetched { at } => (*at, Change::Fetched),
                    crate::outbox::State::Delivered { at } => (*at, Change::Delivered),
                    crate::outbox::State::Failed { error, retry_at } => (
                        d.updated_at,
                        Change::Failed {
                            attempts: d.attempts,
                            retry_at: *retry_at,
                            error: error.clone(),
                        },
                    ),
                    crate::outbox::State::Dead { at, reason } => (
                        *at,
                        Change::Dead {
                            reason: reason.clone(),
                        },
                    ),
                    crate::outbox::State::Cancelled { at, reason } => (
                        *at,
                        Change::Cancelled {
                            reason: reason.clone(),
                        },
                    ),
                };
                self.delivery_changed(*id, at, &change)?;
                caught += 1;
            }
            self.write_status(&file.case_number);
        }
        Ok(caught)
    }

    /// Puts on `case`'s timeline every final notification outcome (sent,
    /// failed) the queue holds and the timeline lacks: the node died after
    /// the queue recorded it and before the timeline did.
    fn catch_up_notifications(&self, n: &Notifier, case: &CaseRef) -> Result<usize, CasesError> {
        let records = match n.records_for_case(case) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(case = %printable(case.as_str()), error = %e, "cannot read the case's notifications to catch up its timeline");
                return Ok(0);
            }
        };
        let timeline = self.inner.cases.timeline(case)?;
        let mut caught = 0;
        for r in records {
            let (event_key, channel, recipient) =
                (r.event_key, r.channel.name().to_owned(), r.recipient);
            let (at, step) = match r.state {
                crate::notify::State::Sent { at, .. } => (
                    at,
                    Step::NotificationSent {
                        event_key,
                        channel,
                        recipient,
                    },
                ),
                crate::notify::State::Failed { at, error } => (
                    at,
                    Step::NotificationFailed {
                        event_key,
                        channel,
                        recipient,
                        error,
                    },
                ),
                _ => continue,
            };
            if !timeline.iter().any(|e| e.step == step) {
                self.inner.cases.append(case, at, step)?;
                caught += 1;
            }
        }
        if caught > 0 {
            self.write_status(case);
        }
        self.settle_notifying(n, case);
        Ok(caught)
    }

    /// Clears `case`'s "notifications in flight" mark once every one of its
    /// notifications has its final outcome (which is then on the timeline).
    fn settle_notifying(&self, n: &Notifier, case: &CaseRef) {
        let done = n.records_for_case(case).is_ok_and(|records| {
            records.iter().all(|r| {
                matches!(
                    r.state,
                    crate::notify::State::Sent { .. } | crate::notify::State::Failed { .. }
                )
            })
        });
        if done {
            if let Err(e) = self.inner.cases.set_notifying(case, false) {
                tracing::warn!(case = %printable(case.as_str()), error = %e, "cannot clear the case's notification mark");
            }
        }
    }
}
