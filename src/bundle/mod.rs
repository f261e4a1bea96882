//! The sealed bundle, format version 1 — the electronic sealed envelope.
//!
//! The normative description is `docs/bundle-format.md`; this module is that
//! document in code. In short, a bundle is a zip file of exactly four stored
//! entries, in this order:
//!
//! | entry | content |
//! |---|---|
//! | `payload.age` | the payload (a tar archive) encrypted with age v1 to the recipient's X25519 key |
//! | `envelope.json` | the cleartext routing envelope ([`Envelope`]), UTF-8 JSON |
//! | `envelope.sig` | 64-byte raw Ed25519 signature over the exact bytes of `envelope.json` |
//! | `signer.pem` | the signer's X.509 certificate, issued by the exchange CA |
//!
//! The payload comes first so that sealing is a single streaming pass: the
//! envelope, which carries the payload's length and SHA-256, is written once the
//! payload is complete. Inside the payload: `documents/*`, `transfer-letter.txt`
//! (for applications), `manifest.json` ([`Manifest`], with every document's
//! SHA-256), `manifest.sig`, `signer.pem` and `SHA256SUMS`.
//!
//! [`seal()`] writes a bundle; [`Verifier`] checks one with public keys alone and
//! [`Verifier::open`] decrypts it into a directory that appears only if every
//! check passed.

mod container;
mod error;
mod letter;
mod open;
mod pipe;
mod seal;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub use container::{ContainerWriter, ENTRY_ORDER};
pub use error::{BundleError, SealError};
pub use letter::transfer_letter;
pub use open::{inspect, Opened, Verified, Verifier};
pub use seal::{seal, DocumentSource, SealInput, Sealed};

use crate::application::{Applicant, Respondent};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// `envelope.json`'s `format` value for this version.
pub const FORMAT: &str = "sealpost-bundle/1";
/// `manifest.json`'s `format` value for this version.
pub const MANIFEST_FORMAT: &str = "sealpost-manifest/1";
/// Entry names in the container.
pub const PAYLOAD_ENTRY: &str = "payload.age";
/// Entry name of the envelope.
pub const ENVELOPE_ENTRY: &str = "envelope.json";
/// Entry name of the envelope signature.
pub const SIGNATURE_ENTRY: &str = "envelope.sig";
/// Entry name of the signer certificate.
pub const SIGNER_ENTRY: &str = "signer.pem";
/// Largest `envelope.json` accepted.
pub const MAX_ENVELOPE_BYTES: u64 = 16 * 1024;
/// Largest `signer.pem` accepted.
pub const MAX_SIGNER_BYTES: u64 = 16 * 1024;
/// Largest `manifest.json`, `SHA256SUMS` or transfer letter accepted.
pub const MAX_META_BYTES: u64 = 1024 * 1024;
/// How far in the future `created_at` may lie (clock skew between agencies).
pub const MAX_CLOCK_SKEW_SECS: i64 = 600;

/// Payload entry names (inside the tar).
pub mod payload {
    /// Directory holding the documents.
    pub const DOCUMENTS_DIR: &str = "documents/";
    /// The transfer letter (转办函), applications only.
    pub const LETTER: &str = "transfer-letter.txt";
    /// The signed manifest.
    pub const MANIFEST: &str = "manifest.json";
    /// Its signature.
    pub const MANIFEST_SIG: &str = "manifest.sig";
    /// The signer certificate (same as the container's).
    pub const SIGNER: &str = "signer.pem";
    /// `sha256sum -c` compatible list of every other payload file.
    pub const SHA256SUMS: &str = "SHA256SUMS";
}

/// What a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A property-preservation application, committee → court.
    PreservationApplication,
    /// A follow-up (materials required, hearing, ruling…), court → committee.
    FollowUp,
    /// A signed receipt (proof of delivery).
    Receipt,
}

impl Kind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PreservationApplication => "preservation-application",
            Kind::FollowUp => "follow-up",
            Kind::Receipt => "receipt",
        }
    }
}

/// The payload's size and digest, as recorded in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadInfo {
    /// Length of `payload.age`, bytes.
    pub length: u64,
    /// SHA-256 of `payload.age`.
    pub sha256: Sha256,
}

/// The cleartext routing envelope (`envelope.json`). Signed by the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`FORMAT`].
    pub format: String,
    /// The bundle id.
    pub id: BundleId,
    /// What it carries.
    pub kind: Kind,
    /// Sending agency.
    pub sender: AgencyId,
    /// Receiving agency.
    pub recipient: AgencyId,
    /// The case (案号).
    pub case_ref: CaseRef,
    /// When sealed (and signed).
    pub created_at: Timestamp,
    /// For follow-ups and receipts: the bundle this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<BundleId>,
    /// SHA-256 of the DER signer certificate (`signer.pem`).
    pub signer_cert_sha256: Sha256,
    /// The encrypted payload.
    pub payload: PayloadInfo,
}

/// One file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path inside the payload (`documents/财产保全申请书.pdf`).
    pub path: String,
    /// Role (`preservation-application`, …); see `docs/application-format.md`.
    pub role: String,
    /// MIME type by content.
    pub media_type: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: Sha256,
}

/// The application's particulars, as carried in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationInfo {
    /// 案号.
    pub case_number: CaseRef,
    /// The court (peer id).
    pub court: AgencyId,
    /// Claim amount.
    pub claim_amount: String,
    /// Currency of the claim amount; always `CNY` for now.
    pub currency: String,
    /// Resubmission of a case already sent.
    pub resubmission: bool,
    /// 申请人.
    pub applicant: Applicant,
    /// 被申请人.
    pub respondent: Respondent,
}

/// The signed manifest inside the payload (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Same as the envelope's `id`.
    pub bundle_id: BundleId,
    /// Same as the envelope's.
    pub kind: Kind,
    /// Same as the envelope's.
    pub sender: AgencyId,
    /// Same as the envelope's.
    pub recipient: AgencyId,
    /// Same as the envelope's.
    pub case_ref: CaseRef,
    /// Same as the envelope's.
    pub created_at: Timestamp,
    /// Same as the envelope's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<BundleId>,
    /// For applications: the particulars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationInfo>,
    /// For follow-ups and receipts: the kind-specific body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// The documents, in payload order.
    pub documents: Vec<ManifestFile>,
    /// The transfer letter, for applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_letter: Option<ManifestFile>,
}

impl Manifest {
    /// The `SHA256SUMS` text implied by this manifest: one `<hex>  <path>` line per
    /// document, then the transfer letter, in payload order.
    pub fn sha256sums(&self) -> String {
        self.documents
            .iter()
            .chain(self.transfer_letter.as_ref())
            .map(|f| format!("{}  {}\n", f.sha256, f.path))
            .collect()
    }
}

/// A writer that counts and SHA-256-hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    ctx: ring::digest::Context,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            count: 0,
        }
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Bytes written and their digest, and the inner writer.
    pub fn finish(self) -> (W, u64, Sha256) {
        (self.inner, self.count, Sha256::from_ring(self.ctx.finish()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts and SHA-256-hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    ctx: ring::digest::Context,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Bytes read and their digest.
    pub fn finish(self) -> (u64, Sha256) {
        (self.count, Sha256::from_ring(self.ctx.finish()))
    }
    /// Bytes read, their digest, and the inner reader.
    pub fn finish_with_inner(self) -> (u64, Sha256, R) {
        (self.count, Sha256::from_ring(self.ctx.finish()), self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<W> std::fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingWriter")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<R> std::fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingReader")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl From<&crate::application::Application> for ApplicationInfo {
    fn from(app: &crate::application::Application) -> Self {
        Self {
            case_number: app.case_number.clone(),
            court: app.court.clone(),
            claim_amount: app.claim_amount.clone(),
            currency: "CNY".into(),
            resubmission: app.resubmission,
            applicant: app.applicant.clone(),
            respondent: app.respondent.clone(),
        }
    }
}

impl From<&crate::application::Document> for DocumentSource {
    fn from(d: &crate::application::Document) -> Self {
        Self {
            name: d.name.clone(),
            role: d.role.as_str().to_owned(),
            media_type: d.media_type.mime().to_owned(),
            path: d.path.clone(),
        }
    }
}
