//! A whole [`Submission`] checked in one call: the signed event first
//! ([`SignedEvent::verify`](super::SignedEvent::verify)), then the
//! attachments' bytes against the digests it signs
//! ([`Event::check_attachments`]). This is what the receiving node, and
//! `sealpost followup verify`, do with the body of `POST /v1/cases/{case}/events`
//! (`docs/event-format.md` §6).

use super::{Event, EventError, Submission};
use crate::config::Directory;
use crate::pki::ExchangeCa;
use crate::types::Timestamp;

/// A submission whose event and attachments all verified.
#[derive(Debug, Clone)]
pub struct VerifiedSubmission {
    /// The event.
    pub event: Event,
    /// The exact event bytes (what idempotency by `event_id` compares).
    pub event_bytes: Vec<u8>,
    /// Each attachment's name and bytes, in the order they were sent.
    pub attachments: Vec<(String, Vec<u8>)>,
}

impl Submission {
    /// Parses a submission body: exactly the members `event`, `signature`,
    /// `signer` (strings) and optionally `attachments`; anything else is
    /// `event-malformed`.
    pub fn from_json(bytes: &[u8]) -> Result<Submission, EventError> {
        serde_json::from_slice(bytes)
            .map_err(|e| EventError::Malformed(format!("not a submission: {e}")))
    }

    /// Verifies the signed event (signature, signer, fields, clock) and then
    /// the attachments: each one's base64, and the set against the event's
    /// list (names, sizes, SHA-256). Stops at the first failure.
    pub fn verify(
        &self,
        trust: &ExchangeCa,
        directory: &Directory,
        now: Timestamp,
    ) -> Result<VerifiedSubmission, EventError> {
        let signed = self.signed();
        let event = signed.verify(trust, directory, now)?;
        let attachments = self.attachment_bytes()?;
        event.check_attachments(&attachments)?;
        Ok(VerifiedSubmission {
            event,
            event_bytes: signed.bytes()?,
            attachments,
        })
    }
}
