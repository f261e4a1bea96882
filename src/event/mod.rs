//! The court's follow-up event (`sealpost-event/1`): what the court tells the
//! committee — and through it the applicant — after it has received an
//! application: received, accepted, materials required, an appointment,
//! ruling issued, rejected, completed.
//!
//! An event is a small JSON document signed with the court's Ed25519 signing
//! key, like a receipt (`docs/event-format.md`). It travels and is stored as a
//! [`SignedEvent`] (the exact event bytes, the signature and the signer's
//! certificate); documents it carries (a ruling) travel beside it as
//! [`Submission::attachments`] and are bound to it by their SHA-256 digests in
//! the signed bytes. Anyone with the exchange CA certificate can verify an
//! event offline with stock tools.

mod submission;

pub use submission::VerifiedSubmission;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::bundle::MAX_CLOCK_SKEW_SECS;
use crate::config::Directory;
use crate::config::Role;
use crate::pki::{ExchangeCa, IssuanceError, SignerCert, SigningKey};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// `format` of a version-1 event.
pub const EVENT_FORMAT: &str = "sealpost-event/1";

/// An event's id: the same syntax as a bundle id (26 characters `a-z2-7`, 128
/// random bits), drawn by whoever makes the event. Events are idempotent by id.
pub type EventId = BundleId;

/// At most this many attachments per event.
pub const MAX_ATTACHMENTS: usize = 10;
/// The attachments of one event together are at most this many bytes (so that
/// the request that carries them, base64-encoded, stays within the
/// committee's body limit of 48 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 32 << 20;
/// At most this many items in a "materials required" list.
pub const MAX_ITEMS: usize = 30;
/// A one-line text field: at most this many characters.
pub const MAX_LINE_CHARS: usize = 200;
/// A multi-line text field: at most this many characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// What the court says, with the fields of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Details {
    /// 已收到: the court has the application (beyond the receipt: a person has
    /// looked at it).
    Received {},
    /// 已立案: the court accepted the application under its own case number.
    Accepted {
        /// The court's case number (e.g. `(2026)粤0304财保123号`).
        court_case_number: String,
    },
    /// 需补充材料: the applicant must hand in more materials.
    MaterialsRequired {
        /// What is needed, one item each (1 to [`MAX_ITEMS`]).
        items: Vec<String>,
        /// By when.
        deadline: Timestamp,
        /// Where to hand them in (address, counter, or an upload channel).
        place: String,
        /// How (in person, by post, originals or copies…); may span lines.
        how: String,
    },
    /// 约见/联系: an appointment or a request to get in touch.
    Appointment {
        /// When.
        at: Timestamp,
        /// Where.
        place: String,
        /// The officer (承办人) to ask for.
        officer: String,
        /// Their telephone.
        phone: String,
        /// What it is about; may span lines.
        purpose: String,
    },
    /// 裁定已作出: the ruling is issued; the ruling document is attached.
    RulingIssued {
        /// A short summary of the ruling; may span lines.
        summary: String,
    },
    /// 不予受理/驳回: the court rejected the application.
    Rejected {
        /// Why; may span lines.
        reason: String,
    },
    /// 已办结: the court has finished with the application.
    Completed {},
}

impl Details {
    /// The kind's name as in the JSON (`materials-required`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Details::Received {} => "received",
            Details::Accepted { .. } => "accepted",
            Details::MaterialsRequired { .. } => "materials-required",
            Details::Appointment { .. } => "appointment",
            Details::RulingIssued { .. } => "ruling-issued",
            Details::Rejected { .. } => "rejected",
            Details::Completed {} => "completed",
        }
    }

    /// Every kind's name.
    pub const KINDS: [&'static str; 7] = [
        "received",
        "accepted",
        "materials-required",
        "appointment",
        "ruling-issued",
        "rejected",
        "completed",
    ];
}

/// A value of one of a kind's fields, as it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// One line of text.
    Line(&'a str),
    /// Text that may span lines.
    Text(&'a str),
    /// A time.
    Time(Timestamp),
    /// A list of one-line texts.
    List(&'a [String]),
}

/// One field of a kind's details, labelled for people: the one place that
/// says what each field is called, for the clerks' status file, the
/// applicant's e-mail and `sealpost followup verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Its JSON member name (`deadline`).
    pub key: &'static str,
    /// Its label in Chinese.
    pub zh: &'static str,
    /// Its label in English.
    pub en: &'static str,
    /// Its value.
    pub value: FieldValue<'a>,
}

impl Details {
    /// The kind's fields, in the order of the format, labelled.
    pub fn fields(&self) -> Vec<Field<'_>> {
        use FieldValue::{Line, List, Text, Time};
        let f = |key, zh, en, value| Field { key, zh, en, value };
        match self {
            Details::Received {} | Details::Completed {} => vec![],
            Details::Accepted { court_case_number } => vec![f(
                "court_case_number",
                "法院案号",
                "Court case number",
                Line(court_case_number),
            )],
            Details::MaterialsRequired {
                items,
                deadline,
                place,
                how,
            } => vec![
                f("items", "所需材料", "Materials needed", List(items)),
                f("deadline", "截止时间", "Deadline", Time(*deadline)),
                f("place", "提交地点", "Where", Line(place)),
                f("how", "提交方式", "How", Text(how)),
            ],
            Details::Appointment {
                at,
                place,
                officer,
                phone,
                purpose,
            } => vec![
                f("at", "时间", "When", Time(*at)),
                f("place", "地点", "Where", Line(place)),
                f("officer", "承办人", "Officer", Line(officer)),
                f("phone", "电话", "Telephone", Line(phone)),
                f("purpose", "事由", "About", Text(purpose)),
            ],
            Details::RulingIssued { summary } => {
                vec![f("summary", "裁定摘要", "Summary", Text(summary))]
            }
            Details::Rejected { reason } => vec![f("reason", "理由", "Reason", Text(reason))],
        }
    }
}

/// A court officer or desk the applicant can contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Name or desk (e.g. 立案庭 / case-filing division).
    pub name: String,
    /// Telephone.
    pub phone: String,
    /// E-mail, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A document the event carries, bound by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// File name (1–100 characters; no `/`, `\`, control characters, leading dot).
    pub name: String,
    /// Its MIME type (`application/pdf`, `image/png`, `image/jpeg`).
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: Sha256,
}

/// A follow-up event, as signed by the court.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Always [`EVENT_FORMAT`].
    pub format: String,
    /// The event's id (idempotency key).
    pub event_id: EventId,
    /// The court, which signs.
    pub court: AgencyId,
    /// The committee the application came from (the bundle's sender).
    pub committee: AgencyId,
    /// The committee's case number (the bundle's case).
    pub case_number: CaseRef,
    /// The bundle the event concerns.
    pub bundle_id: BundleId,
    /// When the court issued the event.
    pub issued_at: Timestamp,
    /// What the court says.
    pub details: Details,
    /// Whom the applicant should contact about it, if not the court's general desk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// A free note to the applicant; may span lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Documents carried with the event (in this order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// An event with its signature and signer certificate, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEvent {
    /// Base64 of the exact event JSON bytes (the signed message).
    pub event: String,
    /// Base64 of the 64-byte Ed25519 signature over those bytes.
    pub signature: String,
    /// The signer's certificate, PEM.
    pub signer: String,
}

/// An attachment's bytes, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentData {
    /// Its name, as in the event.
    pub name: String,
    /// Base64 of the bytes.
    pub data: String,
}

/// What `POST /v1/cases/{case}/events` takes: the signed event and the bytes
/// of its attachments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Base64 of the exact event JSON bytes.
    pub event: String,
    /// Base64 of the Ed25519 signature over those bytes.
    pub signature: String,
    /// The signer's certificate, PEM.
    pub signer: String,
    /// Every attachment the event lists, by name.
    #[serde(default)]
    pub attachments: Vec<AttachmentData>,
}

impl Submission {
    /// The signed event without the attachments' bytes.
    pub fn signed(&self) -> SignedEvent {
        SignedEvent {
            event: self.event.clone(),
            signature: self.signature.clone(),
            signer: self.signer.clone(),
        }
    }
}

/// Why an event is refused. Each has a stable code for API problem details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not well-formed JSON of this format.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// `details.kind` names no kind of this format.
    #[error("unknown event kind {0:?} (known: received, accepted, materials-required, appointment, ruling-issued, rejected, completed)")]
    UnknownKind(String),
    /// A field breaks its rule (length, characters, count).
    #[error("event field `{field}`: {problem}")]
    Field {
        /// The field's path (`details.items[2]`).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The signature does not verify with the enclosed certificate.
    #[error("the event signature does not verify")]
    BadSignature,
    /// The certificate is not a valid signing certificate of the exchange at `issued_at`.
    #[error("the event's signer certificate is not acceptable: {0}")]
    Signer(String),
    /// The signer is not the court the event names, or not registered for it,
    /// or that agency is not a court.
    #[error("the event is not signed by the registered signing key of the court \"{0}\"")]
    NotCourt(AgencyId),
    /// `issued_at` lies further in the future than the allowed clock skew.
    #[error(
        "the event says it was issued at {issued_at}, more than {} s after this node's time {now}",
        MAX_CLOCK_SKEW_SECS
    )]
    InFuture {
        /// The event's `issued_at`.
        issued_at: Timestamp,
        /// The verifier's current time.
        now: Timestamp,
    },
    /// An attachment is missing, extra, or its bytes do not match the event.
    #[error("attachment {name:?}: {problem}")]
    Attachment {
        /// The attachment.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl EventError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Malformed(_) => "event-malformed",
            EventError::UnknownKind(_) => "event-kind-unknown",
            EventError::Field { .. } => "event-field-invalid",
            EventError::BadSignature => "event-signature-invalid",
            EventError::Signer(_) => "event-signer-invalid",
            EventError::NotCourt(_) => "event-signer-not-court",
            EventError::InFuture { .. } => "event-in-future",
            EventError::Attachment { .. } => "event-attachment-invalid",
        }
    }

    /// Every code, for documents and tests.
    pub const CODES: [&'static str; 8] = [
        "event-malformed",
        "event-kind-unknown",
        "event-field-invalid",
        "event-signature-invalid",
        "event-signer-invalid",
        "event-signer-not-court",
        "event-in-future",
        "event-attachment-invalid",
    ];
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> EventError {
    EventError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Characters no text field may hold: controls (a line feed only where a
/// field may span lines) and the invisible characters that reorder or hide text.
fn bad_char(c: char, multiline: bool) -> bool {
    (c.is_control() && !(multiline && c == '\n'))
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks one text field: not blank, at most `max` characters, no forbidden
/// character.
fn text(name: &str, value: &str, max: usize, multiline: bool) -> Result<(), EventError> {
    if value.trim().is_empty() {
        return Err(field(name, "is blank"));
    }
    let n = value.chars().count();
    if n > max {
        return Err(field(
            name,
            format!("is {n} characters long; at most {max} are allowed"),
        ));
    }
    if let Some(c) = value.chars().find(|&c| bad_char(c, multiline)) {
        return Err(field(
            name,
            format!(
                "contains the character U+{:04X}{}",
                c as u32,
                if multiline {
                    " (only a line feed is allowed)"
                } else {
                    " (it must be one line)"
                }
            ),
        ));
    }
    Ok(())
}

/// Whether `name` is an acceptable attachment name.
pub fn check_attachment_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err("must be 1 to 100 characters long".into());
    }
    if name.chars().any(|c| bad_char(c, false)) {
        return Err("contains a control or invisible character".into());
    }
    if name.contains(['/', '\\']) || name.starts_with('.') || name.trim() != name {
        return Err("must be a plain file name (no slash, no leading dot or space)".into());
    }
    Ok(())
}

/// The attachment media types an event may carry.
pub const MEDIA_TYPES: [&str; 3] = ["application/pdf", "image/png", "image/jpeg"];

impl Event {
    /// Checks every field's rule (lengths, characters, counts, kinds that need
    /// an attachment). Called by [`SignedEvent::verify`] and before signing.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.format != EVENT_FORMAT {
            return Err(EventError::Malformed(format!(
                "unknown format {:?}",
                self.format
            )));
        }
        match &self.details {
            Details::Received {} | Details::Completed {} => {}
            Details::Accepted { court_case_number } => text(
                "details.court_case_number",
                court_case_number,
                MAX_LINE_CHARS,
                false,
            )?,
            Details::MaterialsRequired {
                items,
                deadline: _,
                place,
                how,
            } => {
                if items.is_empty() || items.len() > MAX_ITEMS {
                    return Err(field(
                        "details.items",
                        format!("must list 1 to {MAX_ITEMS} items, not {}", items.len()),
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    text(
                        &format!("details.items[{i}]"),
                        item,
                        MAX_LINE_CHARS * 2,
                        false,
                    )?;
                }
                text("details.place", place, MAX_LINE_CHARS, false)?;
                text("details.how", how, MAX_TEXT_CHARS, true)?;
            }
            Details::Appointment {
                at: _,
                place,
                officer,
                phone,
                purpose,
            } => {
                text("details.place", place, MAX_LINE_CHARS, false)?;
                text("details.officer", officer, MAX_LINE_CHARS, false)?;
                text("details.phone", phone, 40, false)?;
                text("details.purpose", purpose, MAX_TEXT_CHARS, true)?;
            }
            Details::RulingIssued { summary } => {
                text("details.summary", summary, MAX_TEXT_CHARS, true)?;
                if self.attachments.is_empty() {
                    return Err(field(
                        "attachments",
                        "a ruling-issued event must carry the ruling document",
                    ));
                }
            }
            Details::Rejected { reason } => text("details.reason", reason, MAX_TEXT_CHARS, true)?,
        }
        if let Some(c) = &self.contact {
            text("contact.name", &c.name, MAX_LINE_CHARS, false)?;
            text("contact.phone", &c.phone, 40, false)?;
            if let Some(e) = &c.email {
                text("contact.email", e, MAX_LINE_CHARS, false)?;
                if e.parse::<lettre::Address>().is_err() {
                    return Err(field("contact.email", "is not an e-mail address"));
                }
            }
        }
        if let Some(n) = &self.note {
            text("note", n, MAX_TEXT_CHARS, true)?;
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(field(
                "attachments",
                format!("at most {MAX_ATTACHMENTS} attachments are allowed"),
            ));
        }
        let total: u64 = self
            .attachments
            .iter()
            .map(|a| a.size)
            .fold(0, u64::saturating_add);
        if total > MAX_ATTACHMENT_BYTES {
            return Err(field(
                "attachments",
                format!("together {total} bytes; at most {MAX_ATTACHMENT_BYTES} are allowed"),
            ));
        }
        for (i, a) in self.attachments.iter().enumerate() {
            check_attachment_name(&a.name)
                .map_err(|p| field(format!("attachments[{i}].name"), p))?;
            if self.attachments[..i].iter().any(|b| b.name == a.name) {
                return Err(field(
                    format!("attachments[{i}].name"),
                    format!("{:?} is listed twice", a.name),
                ));
            }
            if !MEDIA_TYPES.contains(&a.media_type.as_str()) {
                return Err(field(
                    format!("attachments[{i}].media_type"),
                    format!("must be one of {}", MEDIA_TYPES.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The exact bytes `sign` signs: serde_json's pretty form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("events serialise")
    }

    /// Signs this event with the court's key.
    pub fn sign(&self, key: &SigningKey) -> SignedEvent {
        let bytes = self.to_bytes();
        SignedEvent {
            event: B64.encode(&bytes),
            signature: B64.encode(key.sign(&bytes)),
            signer: key.cert().to_pem(),
        }
    }

    /// Checks `data` (name, bytes) against the attachments the event lists:
    /// every listed one present once with its size and digest, nothing extra.
    pub fn check_attachments(&self, data: &[(String, Vec<u8>)]) -> Result<(), EventError> {
        let bad = |name: &str, problem: &str| EventError::Attachment {
            name: name.to_owned(),
            problem: problem.to_owned(),
        };
        for (name, _) in data {
            if !self.attachments.iter().any(|a| &a.name == name) {
                return Err(bad(name, "is not listed in the event"));
            }
        }
        for a in &self.attachments {
            let mut found = data.iter().filter(|(n, _)| n == &a.name);
            let Some((_, bytes)) = found.next() else {
                return Err(bad(&a.name, "is listed in the event but was not sent"));
            };
            if found.next().is_some() {
                return Err(bad(&a.name, "was sent twice"));
            }
            if bytes.len() as u64 != a.size {
                return Err(bad(
                    &a.name,
                    &format!("is {} bytes, the event says {}", bytes.len(), a.size),
                ));
            }
            if Sha256::of(bytes) != a.sha256 {
                return Err(bad(&a.name, "does not match the digest in the event"));
            }
        }
        Ok(())
    }
}

/// Parses event bytes, telling an unknown kind from other malformations.
pub fn parse(bytes: &[u8]) -> Result<Event, EventError> {
    match serde_json::from_slice::<Event>(bytes) {
        Ok(e) => Ok(e),
        Err(e) => {
            let v: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
            if let Some(kind) = v
                .as_ref()
                .and_then(|v| v.get("details"))
                .and_then(|d| d.get("kind"))
                .and_then(|k| k.as_str())
            {
                if !Details::KINDS.contains(&kind) {
                    return Err(EventError::UnknownKind(kind.to_owned()));
                }
            }
            Err(EventError::Malformed(e.to_string()))
        }
    }
}

impl SignedEvent {
    /// The exact event bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, EventError> {
        B64.decode(&self.event)
            .map_err(|e| EventError::Malformed(format!("event is not base64: {e}")))
    }

    /// Verifies signature, signer certificate (exchange CA, valid at
    /// `issued_at`, registered in the directory for the event's court, which
    /// must be a court), the fields' rules, and that `issued_at` is not
    /// further than [`MAX_CLOCK_SKEW_SECS`] after `now`; returns the event.
    /// Does not check attachments ([`Event::check_attachments`]) nor whether
    /// the case is the court's (the receiving node's business).
    pub fn verify(
        &self,
        trust: &ExchangeCa,
        directory: &Directory,
        now: Timestamp,
    ) -> Result<Event, EventError> {
        let bytes = self.bytes()?;
        let sig = B64
            .decode(&self.signature)
            .map_err(|e| EventError::Malformed(format!("signature is not base64: {e}")))?;
        let cert = SignerCert::from_pem(self.signer.as_bytes())
            .map_err(|e| EventError::Signer(e.to_string()))?;
        cert.verify(&bytes, &sig)
            .map_err(|_| EventError::BadSignature)?;
        let ev = parse(&bytes)?;
        match trust.check_issued(cert.der(), ev.issued_at) {
            Ok(()) => {}
            Err(IssuanceError::UnknownIssuer) => {
                return Err(EventError::Signer("not issued by the exchange CA".into()))
            }
            Err(e) => return Err(EventError::Signer(e.to_string())),
        }
        if cert.agency() != &ev.court
            || !directory
                .get(&ev.court)
                .is_some_and(|p| p.role == Role::Court && p.has_signing_cert(&cert))
        {
            return Err(EventError::NotCourt(ev.court.clone()));
        }
        ev.validate()?;
        if ev.issued_at.unix() > now.unix() + MAX_CLOCK_SKEW_SECS {
            return Err(EventError::InFuture {
                issued_at: ev.issued_at,
                now,
            });
        }
        Ok(ev)
    }

    /// The event, read without any check: for this node's own stored events.
    pub fn unverified(&self) -> Option<Event> {
        parse(&self.bytes().ok()?).ok()
    }
}

impl Submission {
    /// The attachments' bytes, decoded.
    pub fn attachment_bytes(&self) -> Result<Vec<(String, Vec<u8>)>, EventError> {
        self.attachments
            .iter()
            .map(|a| {
                B64.decode(&a.data)
                    .map(|b| (a.name.clone(), b))
                    .map_err(|e| EventError::Attachment {
                        name: a.name.clone(),
                        problem: format!("data is not base64: {e}"),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "unit tests: a failed unwrap is the test failing"
)]
mod tests {
    use super::*;

    fn event(details: Details) -> Event {
        Event {
            format: EVENT_FORMAT.into(),
            event_id: BundleId::generate(),
            court: "sz-futian-court".parse().expect("valid"),
            committee: "sz-lac".parse().expect("valid"),
            case_number: "深劳人仲案〔2026〕1号".parse().expect("valid"),
            bundle_id: BundleId::generate(),
            issued_at: Timestamp::from_unix(1_800_000_000).expect("valid"),
            details,
            contact: None,
            note: None,
            attachments: vec![],
        }
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let t = Timestamp::from_unix(1_800_000_000).expect("valid");
        for d in [
            Details::Received {},
            Details::Accepted {
                court_case_number: "(2026)粤0304财保1号".into(),
            },
            Details::MaterialsRequired {
                items: vec!["身份证复印件".into()],
                deadline: t,
                place: "立案庭".into(),
                how: "现场提交".into(),
            },
            Details::Appointment {
                at: t,
                place: "第三法庭".into(),
                officer: "王法官".into(),
                phone: "0755-1234".into(),
                purpose: "询问".into(),
            },
            Details::Rejected { reason: "x".into() },
            Details::Completed {},
        ] {
            let e = event(d);
            e.validate().expect("valid");
            assert_eq!(parse(&e.to_bytes()).expect("valid"), e);
        }
    }

    #[test]
    fn unknown_kinds_and_fields_are_told_apart() {
        let e = event(Details::Received {});
        let mut v: serde_json::Value = serde_json::from_slice(&e.to_bytes()).expect("valid");
        v["details"]["kind"] = "summons".into();
        let err = parse(&serde_json::to_vec(&v).expect("valid")).expect_err("refused");
        assert_eq!(err.code(), "event-kind-unknown");
        v["details"] = serde_json::json!({"kind": "received", "extra": 1});
        let err = parse(&serde_json::to_vec(&v).expect("valid")).expect_err("refused");
        assert_eq!(err.code(), "event-malformed");
    }

    #[test]
    fn line_fields_refuse_line_breaks_and_text_fields_allow_only_line_feeds() {
        let mut e = event(Details::Rejected {
            reason: "a\nb".into(),
        });
        e.validate().expect("valid");
        e.details = Details::Rejected {
            reason: "a\r\nb".into(),
        };
        assert_eq!(
            e.validate().expect_err("refused").code(),
            "event-field-invalid"
        );
        e.details = Details::Accepted {
            court_case_number: "a\nb".into(),
        };
        assert_eq!(
            e.validate().expect_err("refused").code(),
            "event-field-invalid"
        );
    }

    #[test]
    fn a_ruling_needs_its_document() {
        let e = event(Details::RulingIssued {
            summary: "准予保全".into(),
        });
        assert!(e
            .validate()
            .expect_err("refused")
            .to_string()
            .contains("ruling"));
    }
}
