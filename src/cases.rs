//! The committee's case files: for each case, who the applicant is and how to
//! reach them, its bundles, the court's follow-up events, and the **timeline**
//! of everything that happened to it — accepted, sealed, fetched, delivered
//! (the receipt), each follow-up, each notification sent or failed — with times.
//!
//! Records live in the `cases` tree of the outbox's store (made durable by
//! [`Outbox::commit`], included in backups); the court's events, with their
//! attachments, as files:
//!
//! ```text
//! <data_dir>/cases/events/<event-id>/event.json   the SignedEvent, as received
//! <data_dir>/cases/events/<event-id>/<attachment> each attachment's bytes
//! ```
//!
//! Keys of the `cases` tree:
//!
//! ```text
//! f/<case>                 the case file (JSON)
//! b/<bundle-id>            its case
//! t/<case>\0<seq:u64 BE>   a timeline entry (JSON), in order
//! e/<case>\0<event-id>     a stored event's index record (JSON)
//! i/<event-id>             the event's case (an id is one event, whatever the case)
//! m/<case>                 a case with notifications in flight: queued, or
//!                          with an outcome not yet on its timeline
//! o/<case>                 an open case: some bundle's delivery is not yet
//!                          final on its timeline (start-up catches these up)
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::application::Applicant;
use crate::event::{Event, EventId, SignedEvent};
use crate::outbox::{Outbox, OutboxError};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// A case as the committee knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFile {
    /// 案号.
    pub case_number: CaseRef,
    /// The court it went to.
    pub court: AgencyId,
    /// The applicant and how to reach them.
    pub applicant: Applicant,
    /// The clerks' item (folder or zip name), or the online upload's name.
    pub source: Option<String>,
    /// The platform that submitted it online, if it came through the API.
    #[serde(default)]
    pub submitter: Option<AgencyId>,
    /// Its bundles, oldest first (more than one after a resubmission).
    pub bundles: Vec<BundleId>,
    /// When it was accepted (first bundle).
    pub accepted_at: Timestamp,
    /// The last delivery state the timeline has recorded, per bundle.
    #[serde(default)]
    pub seen: BTreeMap<BundleId, String>,
}

/// One step on a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The application passed validation.
    Accepted {
        /// Its bundle.
        bundle_id: BundleId,
        /// The clerks' item, if any.
        source: Option<String>,
    },
    /// Sealed for the court and queued.
    Sealed {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// The court downloaded it.
    Fetched {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// The court's signed receipt was verified and stored (签收).
    Delivered {
        /// The bundle.
        bundle_id: BundleId,
        /// When the court received it (from its receipt).
        received_at: Timestamp,
        /// SHA-256 of the stored signed receipt: the evidence reference.
        receipt_sha256: Sha256,
    },
    /// A push to the court failed; tried again.
    PushFailed {
        /// The bundle.
        bundle_id: BundleId,
        /// Failed attempts so far.
        attempts: u32,
        /// What went wrong.
        error: String,
    },
    /// The delivery was given up (deadline or attempts).
    Dead {
        /// The bundle.
        bundle_id: BundleId,
        /// Why.
        reason: String,
    },
    /// An operator withdrew the delivery.
    Cancelled {
        /// The bundle.
        bundle_id: BundleId,
        /// The operator's words.
        reason: String,
    },
    /// An operator offered the delivery again.
    Retried {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// The court's follow-up event, verified and stored.
    FollowUp {
        /// The event.
        event_id: EventId,
        /// The bundle it concerns.
        bundle_id: BundleId,
        /// Its kind.
        kind: String,
        /// When the court issued it.
        issued_at: Timestamp,
    },
    /// A notification reached the applicant's mail server or SMS gateway.
    NotificationSent {
        /// What it was about (`delivered/<bundle>`, `event/<event-id>`).
        event_key: String,
        /// `email` or `sms`.
        channel: String,
        /// The address or number.
        recipient: String,
    },
    /// A notification could not be sent yet; it is tried again.
    NotificationRetrying {
        /// What it was about.
        event_key: String,
        /// `email` or `sms`.
        channel: String,
        /// The address or number.
        recipient: String,
        /// What went wrong.
        error: String,
        /// When it is tried again.
        next_at: Timestamp,
    },
    /// A notification failed for good (refused address, permanent error).
    NotificationFailed {
        /// What it was about.
        event_key: String,
        /// `email` or `sms`.
        channel: String,
        /// The address or number.
        recipient: String,
        /// What went wrong.
        error: String,
    },
}

/// A timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub step: Step,
}

/// A case as shown to its court, its platform (`GET /v1/cases/{case}`) and
/// operators (`sealpost ctl status CASE`).
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    /// 案号.
    pub case_number: CaseRef,
    /// Its court.
    pub court: AgencyId,
    /// When it was accepted.
    pub accepted_at: Timestamp,
    /// The applicant's name and notice language.
    pub applicant: ApplicantView,
    /// Its bundles and where each is.
    pub bundles: Vec<BundleView>,
    /// The court's events, as the court signed them.
    pub events: Vec<EventView>,
    /// Everything that happened, in order.
    pub timeline: Vec<Entry>,
}

/// The applicant, as far as a view shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicantView {
    /// Name.
    pub name: String,
    /// `zh` or `en`.
    pub language: crate::application::Language,
}

/// One bundle of a case.
#[derive(Debug, Clone, Serialize)]
pub struct BundleView {
    /// Its id.
    pub id: BundleId,
    /// Its delivery state.
    pub state: String,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When the court's receipt was accepted, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    /// SHA-256 of the stored receipt, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_sha256: Option<Sha256>,
}

/// One court event of a case.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// When this node recorded it.
    pub received_at: Timestamp,
    /// The event as signed.
    pub event: Event,
}

/// A stored event's index record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event's id.
    pub event_id: EventId,
    /// The court.
    pub court: AgencyId,
    /// The bundle it concerns.
    pub bundle_id: BundleId,
    /// Its kind.
    pub kind: String,
    /// When the court issued it.
    pub issued_at: Timestamp,
    /// When this node verified and stored it.
    pub received_at: Timestamp,
    /// SHA-256 of the exact event bytes (what the signature covers).
    pub event_sha256: Sha256,
}

/// What storing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// First time: stored now.
    New(StoredEvent),
    /// The identical event was stored before.
    Repeat(StoredEvent),
}

/// Why the case files cannot do something.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] OutboxError),
    /// sled failed.
    #[error("case store: {0}")]
    Sled(#[from] sled::Error),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The event id is taken by an event with other content.
    #[error("event {0} was recorded before with other content")]
    Conflict(EventId),
    /// A record does not decode.
    #[error("corrupt case record {key}: {problem}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> CasesError {
    let context = context.into();
    move |source| CasesError::Io { context, source }
}

fn key_f(case: &CaseRef) -> Vec<u8> {
    [b"f/".as_slice(), case.as_str().as_bytes()].concat()
}
fn key_b(id: &BundleId) -> Vec<u8> {
    [b"b/".as_slice(), id.as_str().as_bytes()].concat()
}
fn prefix_t(case: &CaseRef) -> Vec<u8> {
    [b"t/".as_slice(), case.as_str().as_bytes(), b"\0"].concat()
}
fn prefix_e(case: &CaseRef) -> Vec<u8> {
    [b"e/".as_slice(), case.as_str().as_bytes(), b"\0"].concat()
}
fn key_o(case: &CaseRef) -> Vec<u8> {
    [b"o/".as_slice(), case.as_str().as_bytes()].concat()
}
fn key_m(case: &CaseRef) -> Vec<u8> {
    [b"m/".as_slice(), case.as_str().as_bytes()].concat()
}
fn key_i(id: &EventId) -> Vec<u8> {
    [b"i/".as_slice(), id.as_str().as_bytes()].concat()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T, CasesError> {
    serde_json::from_slice(v).map_err(|e| CasesError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        problem: e.to_string(),
    })
}

/// The committee's case files.
#[derive(Debug, Clone)]
pub struct Cases {
    outbox: Outbox,
    tree: sled::Tree,
    events_dir: PathBuf,
}

impl Cases {
    /// Opens the case files beside `outbox`, removing what a crash left half
    /// written under `<data_dir>/cases/events/`.
    pub fn open(outbox: &Outbox, data_dir: &Path) -> Result<Self, CasesError> {
        let events_dir = data_dir.join("cases").join("events");
        fs::create_dir_all(&events_dir).map_err(io_err("cannot create cases/events"))?;
        for e in fs::read_dir(&events_dir)
            .map_err(io_err("cannot list cases/events"))?
            .flatten()
        {
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                fs::remove_dir_all(e.path())
                    .or_else(|_| fs::remove_file(e.path()))
                    .map_err(io_err("cannot clean cases/events"))?;
            }
        }
        Ok(Self {
            outbox: outbox.clone(),
            tree: outbox.tree("cases")?,
            events_dir,
        })
    }

    fn commit(&self) -> Result<(), CasesError> {
        Ok(self.outbox.commit()?)
    }

    fn put_file(&self, f: &CaseFile) -> Result<(), CasesError> {
        self.tree.insert(
            key_f(&f.case_number),
            serde_json::to_vec(f).expect("case files serialise"),
        )?;
        Ok(())
    }

    /// Records an accepted application (before its bundle is queued, so that
    /// the queue's event finds the case). Idempotent; durable when it returns.
    /// A resubmission adds its bundle to the case's file.
    pub fn record_accepted(
        &self,
        case: &CaseRef,
        court: &AgencyId,
        applicant: &Applicant,
        bundle: BundleId,
        source: Option<String>,
        now: Timestamp,
    ) -> Result<(), CasesError> {
        let mut f = self.get(case)?.unwrap_or_else(|| CaseFile {
            case_number: case.clone(),
            court: court.clone(),
            applicant: applicant.clone(),
            source: source.clone(),
            submitter: None,
            bundles: Vec::new(),
            accepted_at: now,
            seen: BTreeMap::new(),
        });
        if f.bundles.contains(&bundle) {
            return Ok(());
        }
        f.bundles.push(bundle);
        // The latest submission's details are the ones to use.
        f.applicant = applicant.clone();
        f.court = court.clone();
        if source.is_some() {
            f.source = source.clone();
        }
        self.put_file(&f)?;
        self.tree.insert(key_b(&bundle), case.as_str().as_bytes())?;
        self.tree.insert(key_o(case), b"".as_slice())?;
        self.push(
            case,
            now,
            Step::Accepted {
                bundle_id: bundle,
                source,
            },
        )?;
        self.commit()
    }

    /// Notes the platform that submitted `bundle` online.
    pub fn set_submitter(&self, bundle: &BundleId, platform: &AgencyId) -> Result<(), CasesError> {
        let Some(case) = self.case_of(bundle)? else {
            return Ok(());
        };
        if let Some(mut f) = self.get(&case)? {
            f.submitter = Some(platform.clone());
            self.put_file(&f)?;
            self.commit()?;
        }
        Ok(())
    }

    /// The case file of `case`.
    pub fn get(&self, case: &CaseRef) -> Result<Option<CaseFile>, CasesError> {
        let k = key_f(case);
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// The case `bundle` belongs to.
    pub fn case_of(&self, bundle: &BundleId) -> Result<Option<CaseRef>, CasesError> {
        Ok(self
            .tree
            .get(key_b(bundle))?
            .and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())))
    }

    /// Every case file (operators and start-up reconciliation).
    pub fn all(&self) -> Result<Vec<CaseFile>, CasesError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"f/") {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Marks (or unmarks) `case` as having notifications in flight; durable
    /// when it returns. Only marked cases are caught up at start.
    pub fn set_notifying(&self, case: &CaseRef, on: bool) -> Result<(), CasesError> {
        let k = key_m(case);
        let present = self.tree.contains_key(&k)?;
        if present == on {
            return Ok(());
        }
        if on {
            self.tree.insert(k, b"".as_slice())?;
        } else {
            self.tree.remove(k)?;
        }
        self.commit()
    }

    /// The cases with notifications in flight.
    pub fn notifying_cases(&self) -> Result<Vec<CaseRef>, CasesError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"m/") {
            let (k, _) = kv?;
            if let Some(case) = std::str::from_utf8(&k[2..])
                .ok()
                .and_then(|s| s.parse::<CaseRef>().ok())
            {
                out.push(case);
            }
        }
        Ok(out)
    }

    /// The open cases' files: those with a delivery not yet final on their
    /// timeline.
    pub fn open_cases(&self) -> Result<Vec<CaseFile>, CasesError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"o/") {
            let (k, _) = kv?;
            let Some(case) = std::str::from_utf8(&k[2..])
                .ok()
                .and_then(|s| s.parse::<CaseRef>().ok())
            else {
                continue;
            };
            if let Some(f) = self.get(&case)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// A new timeline entry's key (drawing the next position) and value.
    fn entry(
        &self,
        case: &CaseRef,
        at: Timestamp,
        step: Step,
    ) -> Result<(Vec<u8>, Vec<u8>, Entry), CasesError> {
        let seq = self
            .tree
            .update_and_fetch(b"meta/seq", |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                Some((n + 1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let entry = Entry { at, step };
        let key = [prefix_t(case), seq.to_be_bytes().to_vec()].concat();
        let value = serde_json::to_vec(&entry).expect("entries serialise");
        Ok((key, value, entry))
    }

    fn push(&self, case: &CaseRef, at: Timestamp, step: Step) -> Result<Entry, CasesError> {
        let (key, value, entry) = self.entry(case, at, step)?;
        self.tree.insert(key, value)?;
        Ok(entry)
    }

    /// Appends `step` to the case's timeline; durable when it returns.
    pub fn append(&self, case: &CaseRef, at: Timestamp, step: Step) -> Result<Entry, CasesError> {
        let e = self.push(case, at, step)?;
        self.commit()?;
        Ok(e)
    }

    /// Appends a delivery step and records `state` as seen for `bundle`, in
    /// one durable change.
    pub fn append_delivery(
        &self,
        case: &CaseRef,
        bundle: &BundleId,
        state: &str,
        at: Timestamp,
        step: Step,
    ) -> Result<(), CasesError> {
        if let Some(mut f) = self.get(case)? {
            f.seen.insert(*bundle, state.to_owned());
            let finished = f.bundles.iter().all(|b| {
                matches!(
                    f.seen.get(b).map(String::as_str),
                    Some("delivered" | "cancelled")
                )
            });
            if finished {
                self.tree.remove(key_o(case))?;
            } else {
                self.tree.insert(key_o(case), b"".as_slice())?;
            }
            self.put_file(&f)?;
        }
        self.push(case, at, step)?;
        self.commit()
    }

    /// The case's timeline, in order.
    pub fn timeline(&self, case: &CaseRef) -> Result<Vec<Entry>, CasesError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(prefix_t(case)) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Where event `id`'s files are.
    pub fn event_dir(&self, id: &EventId) -> PathBuf {
        self.events_dir.join(id.as_str())
    }

    /// Stores a verified event and its (checked) attachments: files first
    /// (atomically, durably), then the index and the timeline entry, durable
    /// when it returns. The same event again is a [`Stored::Repeat`]; the same
    /// id with other bytes is [`CasesError::Conflict`].
    pub fn store_event(
        &self,
        signed: &SignedEvent,
        bytes: &[u8],
        event: &Event,
        attachments: &[(String, Vec<u8>)],
        now: Timestamp,
    ) -> Result<Stored, CasesError> {
        let digest = Sha256::of(bytes);
        if let Some(prev) = self.event(&event.event_id)? {
            return if prev.event_sha256 == digest {
                Ok(Stored::Repeat(prev))
            } else {
                Err(CasesError::Conflict(event.event_id))
            };
        }
        let dir = self.event_dir(&event.event_id);
        match fs::read(dir.join("event.json")) {
            // Files of an earlier attempt whose index was never written.
            Ok(prev) => {
                let prev: Option<SignedEvent> = serde_json::from_slice(&prev).ok();
                if prev.and_then(|p| p.bytes().ok()).map(|b| Sha256::of(&b)) != Some(digest) {
                    return Err(CasesError::Conflict(event.event_id));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let tmp = crate::fsutil::AtomicDir::create(&dir)
                    .map_err(io_err("cannot create the event's folder"))?;
                let write = |name: &str, data: &[u8]| -> io::Result<()> {
                    let mut f = fs::File::create_new(tmp.path().join(name))?;
                    f.write_all(data)?;
                    f.sync_all()
                };
                write(
                    "event.json",
                    &serde_json::to_vec_pretty(signed).expect("events serialise"),
                )
                .map_err(io_err("cannot write the event"))?;
                for (name, data) in attachments {
                    write(name, data).map_err(io_err(format!("cannot write attachment {name}")))?;
                }
                tmp.commit().map_err(io_err("cannot store the event"))?;
            }
            Err(e) => return Err(io_err("cannot read the event's folder")(e)),
        }
        let stored = StoredEvent {
            event_id: event.event_id,
            court: event.court.clone(),
            bundle_id: event.bundle_id,
            kind: event.details.kind().to_owned(),
            issued_at: event.issued_at,
            received_at: now,
            event_sha256: digest,
        };
        let case = &event.case_number;
        // The index, the id and the timeline entry in one atomic batch: an
        // event is recorded with its timeline entry or not at all.
        let (t_key, t_value, _) = self.entry(
            case,
            now,
            Step::FollowUp {
                event_id: event.event_id,
                bundle_id: event.bundle_id,
                kind: stored.kind.clone(),
                issued_at: event.issued_at,
            },
        )?;
        let mut batch = sled::Batch::default();
        batch.insert(
            [prefix_e(case), event.event_id.as_str().as_bytes().to_vec()].concat(),
            serde_json::to_vec(&stored).expect("records serialise"),
        );
        batch.insert(key_i(&event.event_id), case.as_str().as_bytes());
        batch.insert(t_key, t_value);
        self.tree.apply_batch(batch)?;
        self.commit()?;
        Ok(Stored::New(stored))
    }

    /// The stored event `id`, if any.
    pub fn event(&self, id: &EventId) -> Result<Option<StoredEvent>, CasesError> {
        let Some(case) = self.tree.get(key_i(id))? else {
            return Ok(None);
        };
        let Some(case) = std::str::from_utf8(&case)
            .ok()
            .and_then(|s| s.parse::<CaseRef>().ok())
        else {
            return Ok(None);
        };
        let k = [prefix_e(&case), id.as_str().as_bytes().to_vec()].concat();
        self.tree.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// The case's stored events, with the events themselves, in issue order.
    pub fn events(&self, case: &CaseRef) -> Result<Vec<(StoredEvent, Event)>, CasesError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(prefix_e(case)) {
            let (k, v) = kv?;
            let stored: StoredEvent = decode(&k, &v)?;
            let signed = fs::read(self.event_dir(&stored.event_id).join("event.json"))
                .map_err(io_err(format!("cannot read event {}", stored.event_id)))?;
            let event = serde_json::from_slice::<SignedEvent>(&signed)
                .ok()
                .and_then(|s| s.unverified())
                .ok_or_else(|| CasesError::Corrupt {
                    key: format!("cases/events/{}/event.json", stored.event_id),
                    problem: "not a signed event".into(),
                })?;
            out.push((stored, event));
        }
        out.sort_by_key(|(s, e)| (e.issued_at, s.received_at));
        Ok(out)
    }
}
