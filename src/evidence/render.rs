//! TEMPORARY stand-in for the printable page of a proof of delivery, with the
//! interface of branch `render` (`ProofView`, `render_html`); replaced by that
//! branch's `render.rs` when it is merged.

use serde::{Deserialize, Serialize};

/// What the page shows: plain, already-validated data taken from the signed
/// envelope, the court's signed receipt and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofView {
    /// The bundle's id: 26 characters of lower-case base32.
    pub bundle_id: String,
    /// 案号: the case number, e.g. `深劳人仲案〔2026〕1234号`.
    pub case_number: String,
    /// 申请人: the applicant's name.
    pub applicant: String,
    /// The sending committee's agency id, e.g. `sz-lac`.
    pub sender: String,
    /// The subject DN of the sender's signing certificate.
    pub sender_subject: String,
    /// The receiving court's agency id, e.g. `sz-futian-court`.
    pub court: String,
    /// The subject DN of the certificate the court signed its receipt with.
    pub court_subject: String,
    /// SHA-256 (64 lower-case hex digits) of that certificate's DER.
    pub court_cert_sha256: String,
    /// The documents sealed in the bundle, in their order.
    pub documents: Vec<DocumentLine>,
    /// SHA-256 of the transfer letter (转办函), for bundles that carry one.
    pub transfer_letter_sha256: Option<String>,
    /// SHA-256 of the bundle's `envelope.json` bytes.
    pub envelope_sha256: String,
    /// SHA-256 of the bundle's `payload.age`.
    pub payload_sha256: String,
    /// Length of `payload.age` in bytes.
    pub payload_length: u64,
    /// When the committee sealed and sent the bundle (`YYYY-MM-DDTHH:MM:SSZ`, UTC).
    pub sent_at: String,
    /// When the court downloaded it (same form), if it fetched rather than
    /// being pushed to.
    pub fetched_at: Option<String>,
    /// When the court received it, as stated in its signed receipt (same form).
    pub received_at: String,
    /// Where the delivery stands in the audit log.
    pub audit: AuditSummary,
    /// When this proof was made (same form).
    pub issued_at: String,
    /// The proof file's name, e.g. `proof-<bundle_id>.zip` (named in the
    /// how-to-verify text).
    pub proof_file: String,
}

/// One sealed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    /// Its file name, e.g. `财产保全申请书.pdf`.
    pub name: String,
    /// Its role id (`docs/application-format.md` §3), e.g.
    /// `preservation-application`; shown by its Chinese and English names
    /// where it is a known role, as it is otherwise.
    pub role: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes (64 lower-case hex digits).
    pub sha256: String,
}

/// The delivery's records in the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Sequence number of the delivery's first record.
    pub first_seq: u64,
    /// Sequence number of its last record (the receipt).
    pub last_seq: u64,
    /// Sequence number of the signed checkpoint that covers them.
    pub checkpoint_seq: u64,
    /// The chain's head hash at that checkpoint (64 lower-case hex digits).
    pub head: String,
    /// When the checkpoint was signed (`YYYY-MM-DDTHH:MM:SSZ`, UTC).
    pub checkpoint_at: String,
}

/// The proof of delivery as an HTML document (stand-in: every field, escaped).
pub fn render_html(v: &ProofView) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head><meta charset=\"utf-8\"><title>送达证明 / Proof of Delivery</title></head>\n<body>\n<h1>送达证明 / Proof of Delivery</h1>\n");
    let json = serde_json::to_string_pretty(v).unwrap_or_default();
    h.push_str("<pre>");
    h.push_str(&esc(&json));
    h.push_str("</pre>\n</body>\n</html>\n");
    h
}
