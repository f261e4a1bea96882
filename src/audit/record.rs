//! The audit record, version 1 (`docs/audit-format.md`): what a line holds,
//! how a record is chained to the one before it, and what a checkpoint signs.
//!
//! A record is one line of compact JSON. Its first five members are always
//! `seq`, `at`, `node`, `prev` and `kind`; the rest depend on the kind. The
//! chain hash of a record is
//!
//! ```text
//! hash = SHA-256( prev ‖ " " ‖ SHA-256(line) )      (both digests as lowercase hex)
//! ```
//!
//! so that a record can be left out of an excerpt (a proof of delivery carries
//! only its own bundle's records) and still be chained: its `seq`, `prev` and
//! line digest are enough to compute its hash.

use serde::{Deserialize, Serialize};

use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// `prev` of the first record: 64 zeros.
pub const GENESIS: Sha256 = Sha256([0; 32]);

/// The prefix of the statement a checkpoint signs.
pub const CHECKPOINT_STATEMENT: &str = "sealpost-audit-checkpoint/1";

/// The chain hash of a record whose line is `line` (without its line feed)
/// and whose predecessor's chain hash is `prev`.
pub fn chain_hash(prev: &Sha256, line: &[u8]) -> Sha256 {
    link(prev, &Sha256::of(line))
}

/// The chain hash from the predecessor's hash and the line's digest.
pub fn link(prev: &Sha256, line_sha256: &Sha256) -> Sha256 {
    Sha256::of(format!("{} {}", prev.to_hex(), line_sha256.to_hex()).as_bytes())
}

/// The exact bytes a checkpoint's signature covers: `node` declares that its
/// chain's record `head_seq` has chain hash `head`, at `at`.
pub fn checkpoint_statement(
    node: &AgencyId,
    head_seq: u64,
    head: &Sha256,
    at: Timestamp,
) -> String {
    format!(
        "{CHECKPOINT_STATEMENT} {} {head_seq} {} {at}",
        node.as_str(),
        head.to_hex()
    )
}

/// How a bundle reached a receiving node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The node fetched it from the sender (poll).
    Poll,
    /// The sender pushed it.
    Push,
}

/// What a record says happened. Serialised as the record's `kind` and the
/// members after it. Records carry ids, digests and codes — no applicant's
/// name or address: the log is kept for years and shown in excerpts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Entry {
    /// The daemon started (after recovery, before serving).
    NodeStarted {
        /// sealpost's version.
        version: String,
        /// SHA-256 (DER) of the signing certificate in force.
        signing_cert_sha256: Sha256,
        /// SHA-256 (DER) of the TLS certificate in force.
        tls_cert_sha256: Sha256,
        /// SHA-256 (DER) of each exchange CA certificate trusted.
        ca_sha256: Vec<Sha256>,
    },
    /// The daemon stopped in order (drained).
    NodeStopped,
    /// A clerk's application passed validation and gets this bundle.
    ApplicationAccepted {
        /// The bundle made for it.
        bundle_id: BundleId,
        /// 案号.
        case_ref: CaseRef,
        /// Its court.
        court: AgencyId,
        /// SHA-256 of the clerks' item name (the name itself may hold a person's name).
        item_sha256: Sha256,
    },
    /// A clerk's application was refused.
    ApplicationRejected {
        /// SHA-256 of the clerks' item name.
        item_sha256: Sha256,
        /// The reasons' codes, as in the rejection note.
        reasons: Vec<String>,
    },
    /// A bundle was sealed, signed and queued for its recipient.
    BundleSealed {
        /// The bundle.
        bundle_id: BundleId,
        /// Its recipient.
        peer: AgencyId,
        /// Its case.
        case_ref: CaseRef,
        /// SHA-256 of `envelope.json`.
        envelope_sha256: Sha256,
        /// SHA-256 of `payload.age`.
        payload_sha256: Sha256,
        /// The bundle file's size.
        size: u64,
    },
    /// The recipient downloaded it for the first time.
    BundleFetched {
        /// The bundle.
        bundle_id: BundleId,
        /// Who fetched it (authenticated by its certificate).
        peer: AgencyId,
    },
    /// The recipient's signed receipt was verified and stored.
    ReceiptStored {
        /// The bundle.
        bundle_id: BundleId,
        /// Who signed it.
        peer: AgencyId,
        /// SHA-256 of the exact receipt bytes (`receipt.json` in a proof).
        receipt_sha256: Sha256,
        /// The receipt's `received_at`.
        received_at: Timestamp,
    },
    /// A delivery changed otherwise: failed, dead, cancelled, retried, requeued.
    DeliveryChanged {
        /// The bundle.
        bundle_id: BundleId,
        /// Its recipient.
        peer: AgencyId,
        /// The change (`failed`, `dead`, `cancelled`, `retried`, `requeued`).
        change: String,
        /// Why, when there is a reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A receiving node stored a bundle and signed its receipt.
    BundleReceived {
        /// The bundle.
        bundle_id: BundleId,
        /// Its sender.
        sender: AgencyId,
        /// Its case.
        case_ref: CaseRef,
        /// SHA-256 of `envelope.json`.
        envelope_sha256: Sha256,
        /// SHA-256 of `payload.age`.
        payload_sha256: Sha256,
        /// SHA-256 of the receipt bytes signed for it.
        receipt_sha256: Sha256,
        /// How it came.
        via: Via,
    },
    /// The court's signed follow-up event was verified and stored (committee).
    FollowupReceived {
        /// The event's id.
        event_id: String,
        /// Its case.
        case_ref: CaseRef,
        /// The court that signed it.
        court: AgencyId,
        /// What it says (`materials-required`, …).
        event_kind: String,
        /// SHA-256 of the stored `event.json` (the SignedEvent as received).
        event_sha256: Sha256,
    },
    /// A follow-up event was signed and accepted by the committee (court).
    FollowupSent {
        /// The event's id.
        event_id: String,
        /// Its case.
        case_ref: CaseRef,
        /// The committee it went to.
        committee: AgencyId,
    },
    /// An applicant's notification was handed to the mail server or webhook.
    NotificationSent {
        /// Its case.
        case_ref: CaseRef,
        /// `email` or `sms`.
        channel: String,
        /// What it told (`delivered`, `materials-required`, …).
        about: String,
        /// Its stable message id.
        message_id: String,
    },
    /// An applicant's notification was given up.
    NotificationFailed {
        /// Its case.
        case_ref: CaseRef,
        /// `email` or `sms`.
        channel: String,
        /// What it was to tell.
        about: String,
        /// Why.
        error: String,
    },
    /// An operator acted through `sealpost ctl`.
    OperatorAction {
        /// The command (`retry`, `cancel`, `reload`, …).
        action: String,
        /// Its target (bundle id, peer…), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// The operator's uid (from the admin socket's peer credentials).
        uid: u32,
        /// `ok` or the error's code.
        outcome: String,
    },
    /// The configuration was reloaded (SIGHUP or `ctl reload`).
    ConfigReloaded {
        /// What changed, in words.
        changes: Vec<String>,
    },
    /// A reload was refused; the running configuration stays.
    ConfigReloadFailed {
        /// Why.
        error: String,
    },
    /// One of this node's certificates (or the CA, or a CRL) changed.
    CertificateChanged {
        /// `tls`, `signing`, `ca` or `crl`.
        role: String,
        /// SHA-256 of the new DER (or CRL file).
        sha256: Sha256,
        /// The new certificate's subject, if a certificate.
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// At start, the log ended in an incomplete line (a write cut short by a
    /// crash); it was moved aside and the chain goes on from the last whole record.
    TornTailRemoved {
        /// Where the incomplete line began.
        offset: u64,
        /// Its length.
        length: u64,
        /// SHA-256 of its bytes.
        sha256: Sha256,
        /// Where its bytes were kept (relative to the audit directory).
        kept_as: String,
    },
    /// At start, the log did not hold the last checkpoint recorded in the
    /// witness file: records were removed or altered while the node was down.
    WitnessMismatch {
        /// The checkpoint the witness names.
        expected_seq: u64,
        /// Its chain hash.
        expected_hash: Sha256,
        /// What the log holds instead.
        found: String,
    },
    /// An `fdatasync` (or a write) of the log failed while the node ran; the
    /// records written since the last durable one were never acknowledged to
    /// their callers, so the log was cut back to that record (the bytes kept
    /// under `torn/`) and the chain goes on from it. The first record after
    /// the recovery.
    SyncFailed {
        /// The first record number that was discarded (and is now reused).
        discarded_from_seq: u64,
        /// How many records were discarded (their callers were told they failed).
        discarded_records: u64,
        /// The byte offset the log was cut back to.
        offset: u64,
        /// How many bytes were cut.
        length: u64,
        /// SHA-256 of those bytes.
        sha256: Sha256,
        /// Where they are kept (a path under the audit directory).
        kept_as: String,
        /// The error that made them unreliable.
        error: String,
    },
    /// The chain head signed with this node's signing key.
    Checkpoint {
        /// The record signed (the one before this).
        head_seq: u64,
        /// Its chain hash (equal to this record's `prev`).
        head: Sha256,
        /// The signer's certificate, PEM.
        signer: String,
        /// Base64 of the Ed25519 signature over [`checkpoint_statement`].
        signature: String,
    },
}

impl Entry {
    /// The bundle a record is about, if any.
    pub fn bundle_id(&self) -> Option<&BundleId> {
        match self {
            Entry::ApplicationAccepted { bundle_id, .. }
            | Entry::BundleSealed { bundle_id, .. }
            | Entry::BundleFetched { bundle_id, .. }
            | Entry::ReceiptStored { bundle_id, .. }
            | Entry::DeliveryChanged { bundle_id, .. }
            | Entry::BundleReceived { bundle_id, .. } => Some(bundle_id),
            _ => None,
        }
    }
}

/// The members every record has, in this order.
#[derive(Debug, Serialize)]
pub(crate) struct Line<'a> {
    pub seq: u64,
    pub at: Timestamp,
    pub node: &'a AgencyId,
    pub prev: Sha256,
    #[serde(flatten)]
    pub entry: &'a Entry,
}

impl Line<'_> {
    /// The line's bytes, without the line feed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit records serialise")
    }
}

/// The common members of a record, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Head {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// The node whose chain it is.
    pub node: AgencyId,
    /// The chain hash of the record before (64 zeros for the first).
    pub prev: Sha256,
    /// What happened.
    pub kind: String,
}

/// A checkpoint's own members, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckpointFields {
    /// The record signed.
    pub head_seq: u64,
    /// Its chain hash.
    pub head: Sha256,
    /// The signer's certificate, PEM.
    pub signer: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

/// A record left out of an excerpt: enough to chain it, nothing of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redacted {
    /// Its position.
    pub seq: u64,
    /// Its `prev`.
    pub prev: Sha256,
    /// SHA-256 of its line.
    pub redacted: Sha256,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_begins_with_the_common_members_in_order() {
        let node: AgencyId = "sz-lac".parse().expect("id");
        let e = Entry::BundleFetched {
            bundle_id: "uc76d4bkxezrdd5apooog3owpm".parse().expect("id"),
            peer: "sz-futian-court".parse().expect("id"),
        };
        let l = Line {
            seq: 7,
            at: "2026-11-23T21:31:16Z".parse().expect("time"),
            node: &node,
            prev: GENESIS,
            entry: &e,
        };
        let s = String::from_utf8(l.to_bytes()).expect("utf-8");
        assert_eq!(
            s,
            format!(
                r#"{{"seq":7,"at":"2026-11-23T21:31:16Z","node":"sz-lac","prev":"{}","kind":"bundle-fetched","bundle_id":"uc76d4bkxezrdd5apooog3owpm","peer":"sz-futian-court"}}"#,
                "0".repeat(64)
            )
        );
        // The hash is the documented one.
        let d = Sha256::of(s.as_bytes()).to_hex();
        let expect = Sha256::of(format!("{} {d}", "0".repeat(64)).as_bytes());
        assert_eq!(chain_hash(&GENESIS, s.as_bytes()), expect);
    }
}
