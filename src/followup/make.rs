//! Making a signed event on a court's node (`sealpost followup make`): the
//! options of the command line become an [`Event`], its attachments are read
//! and typed by their first bytes, and the whole is signed with the node's
//! signing key into a [`Submission`] ready to be posted. The result is
//! verified as the committee will verify it before it is handed back.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::config::{Config, Role};
use crate::event::{
    Attachment, AttachmentData, Contact, Details, Event, EventError, Submission, EVENT_FORMAT,
};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// What the court says, as given on the command line (every text as typed;
/// which ones a kind needs is checked by [`make`]).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The committee's case number.
    pub case: String,
    /// The bundle the event concerns.
    pub bundle: String,
    /// The kind (`received`, `accepted`, …).
    pub kind: String,
    /// The committee (default: the only committee in the directory).
    pub committee: Option<String>,
    /// `materials-required`: the items.
    pub items: Vec<String>,
    /// `materials-required`: the deadline.
    pub deadline: Option<String>,
    /// `materials-required`, `appointment`: the place.
    pub place: Option<String>,
    /// `materials-required`: how.
    pub how: Option<String>,
    /// `appointment`: when.
    pub at: Option<String>,
    /// `appointment`: the officer.
    pub officer: Option<String>,
    /// `appointment`: their telephone.
    pub phone: Option<String>,
    /// `appointment`: what about.
    pub purpose: Option<String>,
    /// `ruling-issued`: the summary.
    pub summary: Option<String>,
    /// `rejected`: why.
    pub reason: Option<String>,
    /// `accepted`: the court's case number.
    pub court_case_number: Option<String>,
    /// A note to the applicant.
    pub note: Option<String>,
    /// Contact name.
    pub contact_name: Option<String>,
    /// Contact telephone.
    pub contact_phone: Option<String>,
    /// Contact e-mail.
    pub contact_email: Option<String>,
    /// Files to attach, in this order.
    pub attach: Vec<PathBuf>,
}

/// Why no event was made.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// The options do not fit together (missing, not for this kind, unparsable).
    #[error("{0}")]
    Usage(String),
    /// An attachment cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The event would be refused ([`EventError::code`] says why).
    #[error("[{code}] {0}", code = .0.code())]
    Refused(EventError),
}

/// The media type of `bytes` by its magic number, if it is one an event may
/// carry (`application/pdf`, `image/png`, `image/jpeg`).
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        Some("image/jpeg")
    } else {
        None
    }
}

fn usage(s: impl Into<String>) -> MakeError {
    MakeError::Usage(s.into())
}

/// Takes a required option of this kind.
fn need(kind: &str, flag: &str, v: &mut Option<String>) -> Result<String, MakeError> {
    v.take()
        .ok_or_else(|| usage(format!("--kind {kind} needs --{flag}")))
}

fn time(flag: &str, s: &str) -> Result<Timestamp, MakeError> {
    s.parse()
        .map_err(|e| usage(format!("--{flag}: {e} (write e.g. 2026-12-01T09:30:00Z)")))
}

/// The details of `o.kind` from the options, taking every option it uses out
/// of `o`; an option left over does not belong to this kind.
fn details(o: &mut Options) -> Result<Details, MakeError> {
    let kind = o.kind.clone();
    let k = kind.as_str();
    let d = match k {
        "received" => Details::Received {},
        "completed" => Details::Completed {},
        "accepted" => Details::Accepted {
            court_case_number: need(k, "court-case-number", &mut o.court_case_number)?,
        },
        "materials-required" => {
            if o.items.is_empty() {
                return Err(usage(
                    "--kind materials-required needs --item (once per item)",
                ));
            }
            Details::MaterialsRequired {
                items: std::mem::take(&mut o.items),
                deadline: time("deadline", &need(k, "deadline", &mut o.deadline)?)?,
                place: need(k, "place", &mut o.place)?,
                how: need(k, "how", &mut o.how)?,
            }
        }
        "appointment" => Details::Appointment {
            at: time("at", &need(k, "at", &mut o.at)?)?,
            place: need(k, "place", &mut o.place)?,
            officer: need(k, "officer", &mut o.officer)?,
            phone: need(k, "phone", &mut o.phone)?,
            purpose: need(k, "purpose", &mut o.purpose)?,
        },
        "ruling-issued" => {
            if o.attach.is_empty() {
                return Err(usage(
                    "--kind ruling-issued needs --attach with the ruling document",
                ));
            }
            Details::RulingIssued {
                summary: need(k, "summary", &mut o.summary)?,
            }
        }
        "rejected" => Details::Rejected {
            reason: need(k, "reason", &mut o.reason)?,
        },
        other => {
            return Err(usage(format!(
                "--kind {other:?}: not a kind of event (one of {})",
                Details::KINDS.join(", ")
            )))
        }
    };
    let left = [
        ("item", !o.items.is_empty()),
        ("deadline", o.deadline.is_some()),
        ("place", o.place.is_some()),
        ("how", o.how.is_some()),
        ("at", o.at.is_some()),
        ("officer", o.officer.is_some()),
        ("phone", o.phone.is_some()),
        ("purpose", o.purpose.is_some()),
        ("summary", o.summary.is_some()),
        ("reason", o.reason.is_some()),
        ("court-case-number", o.court_case_number.is_some()),
    ];
    if let Some((flag, _)) = left.iter().find(|(_, given)| *given) {
        return Err(usage(format!("--{flag} does not apply to --kind {k}")));
    }
    Ok(d)
}

/// Makes and signs the event `o` describes, issued `now` by this node (which
/// must be a court) with a fresh id, and checks it as the committee will.
pub fn make(c: &Config, mut o: Options, now: Timestamp) -> Result<Submission, MakeError> {
    if c.node.role != Role::Court {
        return Err(usage(format!(
            "this node ({}) is a {}; only a court issues follow-up events",
            c.node.id, c.node.role
        )));
    }
    let case_number: CaseRef = o.case.parse().map_err(|e| usage(format!("--case: {e}")))?;
    let bundle_id: BundleId = o
        .bundle
        .parse()
        .map_err(|e| usage(format!("--bundle: {e}")))?;
    let committee =
        match &o.committee {
            Some(s) => {
                let id: AgencyId = s.parse().map_err(|e| usage(format!("--committee: {e}")))?;
                match c.directory.get(&id) {
                    Some(p) if p.role == Role::Committee => id,
                    _ => {
                        return Err(usage(format!(
                            "--committee {id}: no such committee in the peer directory"
                        )))
                    }
                }
            }
            None => {
                let mut all = c.directory.iter().filter(|p| p.role == Role::Committee);
                match (all.next(), all.next()) {
                    (Some(p), None) => p.id.clone(),
                    (None, _) => return Err(usage("the peer directory lists no committee")),
                    (Some(_), Some(_)) => return Err(usage(
                        "the peer directory lists several committees; name one with --committee",
                    )),
                }
            }
        };
    let details = details(&mut o)?;
    let contact = match (o.contact_name, o.contact_phone, o.contact_email) {
        (None, None, None) => None,
        (Some(name), Some(phone), email) => Some(Contact { name, phone, email }),
        _ => return Err(usage(
            "a contact needs both --contact-name and --contact-phone (--contact-email is optional)",
        )),
    };
    let mut attachments = Vec::new();
    let mut data = Vec::new();
    for path in &o.attach {
        let bytes = std::fs::read(path).map_err(|source| MakeError::Read {
            path: path.clone(),
            source,
        })?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| usage(format!("{}: not a file name in UTF-8", path.display())))?
            .to_owned();
        let media_type = sniff_media_type(&bytes).ok_or_else(|| {
            MakeError::Refused(EventError::Attachment {
                name: name.clone(),
                problem: "is not a PDF, PNG or JPEG file (by its first bytes)".into(),
            })
        })?;
        attachments.push(Attachment {
            name: name.clone(),
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256::of(&bytes),
        });
        data.push(AttachmentData {
            name,
            data: B64.encode(&bytes),
        });
    }
    let event = Event {
        format: EVENT_FORMAT.to_owned(),
        event_id: BundleId::generate(),
        court: c.node.id.clone(),
        committee,
        case_number,
        bundle_id,
        issued_at: now,
        details,
        contact,
        note: o.note,
        attachments,
    };
    event.validate().map_err(MakeError::Refused)?;
    let signed = event.sign(&c.keys.signing);
    let submission = Submission {
        event: signed.event,
        signature: signed.signature,
        signer: signed.signer,
        attachments: data,
    };
    // As the committee will check it: a signing key that is not the one the
    // directory lists, say, is found here rather than there.
    submission
        .verify(&c.trust, &c.directory, now)
        .map_err(MakeError::Refused)?;
    Ok(submission)
}
