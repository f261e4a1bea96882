//! The proof of delivery (送达证明), format `sealpost-proof/1`: one
//! self-contained zip file that shows a bundle was delivered, verifiable
//! offline by anyone who holds the exchange CA certificate (spec:
//! `docs/proof-format.md`; this module is that document in code).
//!
//! ## The file
//!
//! `proof-<bundle id>.zip`: a plain zip of stored entries, in this order,
//! every timestamp `made_at`, no extra fields, no comment ([`ENTRIES`]):
//!
//! | entry | content |
//! |---|---|
//! | `README.txt` | what the file is and how to verify it (中文 / English); informational |
//! | `proof.json` | [`ProofStatement`]: format, bundle id, the committee's agency id, `made_at` |
//! | `envelope.json`, `envelope.sig`, `envelope-signer.pem` | the bundle's signed envelope, exact bytes, its raw Ed25519 signature and signer |
//! | `manifest.json`, `manifest.sig` | the payload's signed manifest (document list), exact bytes, and its signature (same key) |
//! | `receipt.json`, `receipt.sig`, `receipt-signer.pem` | the court's signed receipt, exact bytes, signature and signer |
//! | `audit.jsonl` | the committee's audit excerpt for the bundle, ending in a signed checkpoint |
//! | `exchange-ca.pem` | the exchange CA certificate(s); informational — a verifier trusts its own copy |
//! | `proof.html` | the printable page: [`render_html`] of the view derived from the parts above |
//! | `SHA256SUMS` | `sha256sum` lines over every entry above, in this order |
//! | `SHA256SUMS.sig` | raw Ed25519 signature over `SHA256SUMS` by the committee's signing key |
//! | `proof-signer.pem` | that key's certificate |
//!
//! ## Building and verifying
//!
//! [`build`] assembles a proof from what the committee keeps (the bundle's
//! envelope parts, the manifest bytes kept at sealing, the stored
//! [`SignedReceipt`], an [`Audit::excerpt`](crate::audit::Audit::excerpt))
//! and verifies its own output with [`verify`] before handing it out: a proof
//! that does not verify is never returned. [`verify`] runs the checks of
//! `docs/proof-format.md` §5 in order and stops at the first failure, a
//! [`ProofError`] with a stable [`code`](ProofError::code) and the
//! [`part`](ProofError::part) it concerns; on success it returns a
//! [`VerifiedProof`] whose [`ProofView`] was derived only from verified data.
//!
//! Nothing here reads the clock. A proof is checked years after it was made,
//! when its certificates have long expired: each certificate is checked at
//! the time the data it signs states (`created_at`, `received_at`, the
//! checkpoint's `at`, `made_at`).

use std::fmt::Write as _;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use zip::{CompressionMethod, ZipArchive};

use super::render::{render_html, AuditSummary, DocumentLine, ProofView};
use crate::audit::{verify_excerpt, Excerpt, Problem};
use crate::bundle::{
    self, ContainerWriter, Envelope, Manifest, ENVELOPE_ENTRY, MANIFEST_FORMAT, MAX_ENVELOPE_BYTES,
    MAX_META_BYTES, MAX_SIGNER_BYTES, SIGNATURE_ENTRY, SIGNER_ENTRY,
};
use crate::fsutil::open_regular_nofollow;
use crate::pki::{pem_encode, CertSummary, ExchangeCa, IssuanceError, SignerCert, SigningKey};
use crate::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT};
use crate::types::{printable, AgencyId, BundleId, Sha256, Timestamp};
use crate::zipcheck;

/// `proof.json`'s `format` value for this version.
pub const PROOF_FORMAT: &str = "sealpost-proof/1";

/// Entry names in the proof file.
pub mod entry {
    /// What the file is and how to verify it, in Chinese and English.
    pub const README: &str = "README.txt";
    /// The proof statement ([`super::ProofStatement`]).
    pub const PROOF: &str = "proof.json";
    /// The bundle's envelope, exact bytes.
    pub const ENVELOPE: &str = "envelope.json";
    /// Its raw Ed25519 signature.
    pub const ENVELOPE_SIG: &str = "envelope.sig";
    /// The bundle's signer certificate (the bundle's `signer.pem`).
    pub const ENVELOPE_SIGNER: &str = "envelope-signer.pem";
    /// The payload's signed manifest, exact bytes.
    pub const MANIFEST: &str = "manifest.json";
    /// Its raw signature, by the envelope's signer.
    pub const MANIFEST_SIG: &str = "manifest.sig";
    /// The court's receipt, exact signed bytes.
    pub const RECEIPT: &str = "receipt.json";
    /// Its raw signature.
    pub const RECEIPT_SIG: &str = "receipt.sig";
    /// The court's signer certificate.
    pub const RECEIPT_SIGNER: &str = "receipt-signer.pem";
    /// The audit excerpt, ending in a signed checkpoint.
    pub const AUDIT: &str = "audit.jsonl";
    /// The exchange CA certificate(s), informational.
    pub const EXCHANGE_CA: &str = "exchange-ca.pem";
    /// The printable page.
    pub const HTML: &str = "proof.html";
    /// `sha256sum` lines over every entry above.
    pub const SHA256SUMS: &str = "SHA256SUMS";
    /// The committee's signature over `SHA256SUMS`.
    pub const SHA256SUMS_SIG: &str = "SHA256SUMS.sig";
    /// The certificate of the key that signed `SHA256SUMS`.
    pub const PROOF_SIGNER: &str = "proof-signer.pem";
}

/// Every entry of a version-1 proof, in container order.
pub const ENTRIES: [&str; 16] = [
    entry::README,
    entry::PROOF,
    entry::ENVELOPE,
    entry::ENVELOPE_SIG,
    entry::ENVELOPE_SIGNER,
    entry::MANIFEST,
    entry::MANIFEST_SIG,
    entry::RECEIPT,
    entry::RECEIPT_SIG,
    entry::RECEIPT_SIGNER,
    entry::AUDIT,
    entry::EXCHANGE_CA,
    entry::HTML,
    entry::SHA256SUMS,
    entry::SHA256SUMS_SIG,
    entry::PROOF_SIGNER,
];

/// How many of [`ENTRIES`], from the first, `SHA256SUMS` lists (all but
/// `SHA256SUMS`, its signature and the signer's certificate).
pub const SUMMED_ENTRIES: usize = 13;

/// The largest size of each entry, bytes (a larger one makes the container
/// invalid); 0 for a name that is not an entry. Signatures are exactly 64
/// bytes; a shorter one fails its check.
pub fn entry_limit(name: &str) -> u64 {
    const KIB: u64 = 1024;
    match name {
        entry::README => 64 * KIB,
        entry::PROOF => 4 * KIB,
        entry::ENVELOPE => MAX_ENVELOPE_BYTES,
        entry::ENVELOPE_SIG | entry::MANIFEST_SIG | entry::RECEIPT_SIG | entry::SHA256SUMS_SIG => {
            64
        }
        entry::ENVELOPE_SIGNER | entry::RECEIPT_SIGNER | entry::PROOF_SIGNER => MAX_SIGNER_BYTES,
        entry::MANIFEST => MAX_META_BYTES,
        entry::RECEIPT => 16 * KIB,
        entry::AUDIT => MAX_AUDIT_BYTES,
        entry::EXCHANGE_CA => 256 * KIB,
        entry::HTML => 4 * 1024 * KIB,
        entry::SHA256SUMS => 4 * KIB,
        _ => 0,
    }
}

/// The largest `audit.jsonl`: 64 MiB, some 300 000 redacted records between
/// an application's acceptance and the checkpoint after its receipt.
pub const MAX_AUDIT_BYTES: u64 = 64 * 1024 * 1024;

/// The largest proof file accepted: every entry at its limit, plus room for
/// the zip headers. Callers reading a proof file check its size against this
/// before reading it into memory.
pub const MAX_PROOF_BYTES: u64 = 70 * 1024 * 1024;

/// The proof file's name for `bundle`: `proof-<id>.zip`.
pub fn file_name(bundle: &BundleId) -> String {
    format!("proof-{}.zip", bundle.as_str())
}

/// `proof.json`: what the proof is about and who made it when. Signed, with
/// every other entry, through `SHA256SUMS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofStatement {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// The bundle delivered (the envelope's `id`).
    pub bundle_id: BundleId,
    /// The committee that made the proof: the bundle's sender, whose key
    /// signs `SHA256SUMS`.
    pub node: AgencyId,
    /// When the proof was made; the proof signer's certificate must be valid then.
    pub made_at: Timestamp,
}

/// Everything [`build`] needs: the committee's own records of a delivery.
#[derive(Debug, Clone, Copy)]
pub struct ProofParts<'a> {
    /// The bundle's `envelope.json`, exact bytes ([`bundle_parts`]).
    pub envelope_json: &'a [u8],
    /// The bundle's `envelope.sig`.
    pub envelope_sig: &'a [u8],
    /// The bundle's `signer.pem`.
    pub envelope_signer_pem: &'a [u8],
    /// The payload's `manifest.json`, exactly as signed
    /// ([`Sealed::manifest_bytes`](crate::bundle::Sealed::manifest_bytes)).
    pub manifest_json: &'a [u8],
    /// Its signature ([`Sealed::manifest_sig`](crate::bundle::Sealed::manifest_sig)).
    pub manifest_sig: &'a [u8],
    /// The court's receipt, as stored.
    pub receipt: &'a SignedReceipt,
    /// [`Audit::excerpt`](crate::audit::Audit::excerpt) for the bundle
    /// through a checkpoint made after its `receipt-stored` record.
    pub audit_excerpt: &'a [u8],
    /// The exchange CA certificate(s), PEM ([`exchange_ca_pem`]).
    pub exchange_ca_pem: &'a [u8],
    /// When the proof is made (`proof.json`'s `made_at`, every entry's time).
    pub made_at: Timestamp,
    /// The committee's current signing key: signs `SHA256SUMS`.
    pub signer: &'a SigningKey,
}

/// The three entries of a bundle file that a proof carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleParts {
    /// `envelope.json`, exact bytes.
    pub envelope_json: Vec<u8>,
    /// `envelope.sig`.
    pub envelope_sig: Vec<u8>,
    /// `signer.pem`.
    pub signer_pem: Vec<u8>,
}

/// A proof that verified, and what it shows. Only [`verify`] makes one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedProof {
    /// What the printable page shows, derived from the verified parts (and
    /// equal, byte for byte once rendered, to the proof's `proof.html`).
    pub view: ProofView,
    /// Whether every certificate in the proof's `exchange-ca.pem` is one of
    /// the verifier's own exchange CA certificates. Informational: the
    /// verification used the verifier's certificates only.
    pub embedded_ca_matches: bool,
    /// `proof.json`.
    pub statement: ProofStatement,
    /// The bundle's envelope.
    pub envelope: Envelope,
    /// The payload's signed manifest.
    pub manifest: Manifest,
    /// The court's receipt.
    pub receipt: Receipt,
    /// The verified audit excerpt.
    pub excerpt: Excerpt,
    /// The certificate that signed the proof (`proof-signer.pem`).
    pub proof_signer: CertSummary,
}

/// Why a proof cannot be made or is refused. Each variant has a stable
/// [`code`](ProofError::code) and names the [`part`](ProofError::part) of the
/// proof it concerns (`docs/proof-format.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// [`bundle_parts`]: the bundle file cannot be read as a bundle.
    #[error("cannot read the bundle {}: {reason}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Not a proof container: not a zip, a malformed or non-canonical one,
    /// an entry missing, extra, duplicated, out of order, compressed or too large.
    #[error("not a valid sealpost-proof/1 container: {0}")]
    Container(String),
    /// `SHA256SUMS` does not list exactly the summed entries, or an entry's
    /// SHA-256 differs from its line.
    #[error("{entry}: {detail}")]
    EntryDigest {
        /// The entry whose digest differs (`SHA256SUMS` when its lines are wrong).
        entry: &'static str,
        /// What differs.
        detail: String,
    },
    /// `proof.json` is malformed or of another format.
    #[error("proof.json is not a sealpost-proof/1 statement: {0}")]
    Statement(String),
    /// `proof-signer.pem` is not a signing certificate the exchange CA issued
    /// valid at `made_at`, or does not name the bundle's sender.
    #[error("the proof signer (proof-signer.pem) is not acceptable: {0}")]
    Signer(String),
    /// `SHA256SUMS.sig` does not verify. Deliberately without detail.
    #[error("SHA256SUMS.sig does not verify with proof-signer.pem")]
    Signature,
    /// The bundle's envelope does not verify, or is not the bundle `proof.json` names.
    #[error("the bundle's envelope does not verify: {0}")]
    Envelope(String),
    /// The manifest's signature does not verify, or it does not match the envelope.
    #[error("the signed manifest does not verify or does not match the envelope: {0}")]
    Manifest(String),
    /// The court's receipt does not verify, or is not a receipt for this bundle.
    #[error("the court's receipt does not verify or does not match the bundle: {0}")]
    Receipt(String),
    /// The audit excerpt does not verify as a chain ending in a signed checkpoint.
    #[error("the audit excerpt does not verify: {0}")]
    Audit(Problem),
    /// The audit excerpt verifies but does not record this delivery: another
    /// node, no matching `bundle-sealed` or `receipt-stored` record.
    #[error("the audit excerpt does not record this delivery: {0}")]
    AuditMismatch(String),
    /// `proof.html` is not the page the verified data renders.
    #[error("proof.html is not the page the verified data renders: {0}")]
    Rendering(String),
    /// [`build`]: the zip file could not be written.
    #[error("cannot write the proof: {0}")]
    Write(String),
    /// [`read_file`]: the proof file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ProofError {
    /// Stable code, as printed by `sealpost verify-proof`.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Bundle { .. } => "proof-bundle-unreadable",
            ProofError::Container(_) => "proof-container-invalid",
            ProofError::EntryDigest { .. } => "proof-entry-digest-mismatch",
            ProofError::Statement(_) => "proof-statement-invalid",
            ProofError::Signer(_) => "proof-signer-invalid",
            ProofError::Signature => "proof-signature-invalid",
            ProofError::Envelope(_) => "proof-envelope-invalid",
            ProofError::Manifest(_) => "proof-manifest-invalid",
            ProofError::Receipt(_) => "proof-receipt-invalid",
            ProofError::Audit(_) => "proof-audit-invalid",
            ProofError::AuditMismatch(_) => "proof-audit-mismatch",
            ProofError::Rendering(_) => "proof-rendering-mismatch",
            ProofError::Write(_) => "proof-write-failed",
            ProofError::Unreadable { .. } => "proof-file-unreadable",
        }
    }

    /// The part of the proof concerned: `bundle` (the input bundle file),
    /// `file` (the proof file, unreadable), `container`, the entry's name (for a digest mismatch), `statement`,
    /// `proof-signature`, `envelope`, `manifest`, `receipt`, `audit` or
    /// `rendering`.
    pub fn part(&self) -> &'static str {
        match self {
            ProofError::Bundle { .. } => "bundle",
            ProofError::Container(_) | ProofError::Write(_) => "container",
            ProofError::EntryDigest { entry, .. } => entry,
            ProofError::Statement(_) => "statement",
            ProofError::Signer(_) | ProofError::Signature => "proof-signature",
            ProofError::Envelope(_) => "envelope",
            ProofError::Manifest(_) => "manifest",
            ProofError::Receipt(_) => "receipt",
            ProofError::Audit(_) | ProofError::AuditMismatch(_) => "audit",
            ProofError::Rendering(_) => "rendering",
            ProofError::Unreadable { .. } => "file",
        }
    }
}

/// The exchange CA certificates as one PEM text (for `exchange-ca.pem`).
pub fn exchange_ca_pem(trust: &ExchangeCa) -> Vec<u8> {
    trust
        .der_certs()
        .map(|der| pem_encode("CERTIFICATE", der))
        .collect::<String>()
        .into_bytes()
}

/// Reads `envelope.json`, `envelope.sig` and `signer.pem` from a bundle file
/// (without checking them: [`build`] verifies everything it puts in a proof).
/// Only the zip's central directory and these three small entries are read,
/// whatever the size of the payload.
pub fn bundle_parts(bundle_file: &Path) -> Result<BundleParts, ProofError> {
    let fail = |reason: String| ProofError::Bundle {
        path: bundle_file.to_owned(),
        reason,
    };
    let file = open_regular_nofollow(bundle_file).map_err(|e| fail(e.to_string()))?;
    let mut zip = ZipArchive::new(file).map_err(|e| fail(format!("not a zip file: {e}")))?;
    let mut read = |name: &str, limit: u64| -> Result<Vec<u8>, ProofError> {
        let f = zip
            .by_name(name)
            .map_err(|e| fail(format!("no {name} entry: {e}")))?;
        if f.size() > limit {
            return Err(fail(format!(
                "{name} is {} bytes, more than {limit}",
                f.size()
            )));
        }
        let mut buf = Vec::new();
        f.take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| fail(format!("cannot read {name}: {e}")))?;
        Ok(buf)
    };
    Ok(BundleParts {
        envelope_json: read(ENVELOPE_ENTRY, MAX_ENVELOPE_BYTES)?,
        envelope_sig: read(SIGNATURE_ENTRY, 64)?,
        signer_pem: read(SIGNER_ENTRY, MAX_SIGNER_BYTES)?,
    })
}

/// Reads a proof file for [`verify`], refusing one larger than
/// [`MAX_PROOF_BYTES`] before reading it, so that memory stays bounded
/// whatever file is handed over (`proof-container-invalid`).
pub fn read_file(path: &Path) -> Result<Vec<u8>, ProofError> {
    let fail = |reason: String| ProofError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Container(format!(
            "the file is {} bytes, more than {MAX_PROOF_BYTES}",
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_PROOF_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(e.to_string()))?;
    Ok(buf)
}

/// The parts checked by [`check_parts`], wherever they come from.
struct Parts<'a> {
    envelope_json: &'a [u8],
    envelope_sig: &'a [u8],
    envelope_signer_pem: &'a [u8],
    manifest_json: &'a [u8],
    manifest_sig: &'a [u8],
    receipt_json: &'a [u8],
    receipt_sig: &'a [u8],
    receipt_signer_pem: &'a [u8],
    audit: &'a [u8],
}

/// What [`check_parts`] verified.
struct Checked {
    envelope: Envelope,
    manifest: Manifest,
    receipt: Receipt,
    excerpt: Excerpt,
    view: ProofView,
}

/// Assembles the proof of delivery for one bundle, then verifies it with
/// [`verify`] against `trust` and returns its bytes only if it verifies.
/// Inputs that would make a bad proof are refused with the error that
/// verifying such a proof would give.
pub fn build(parts: &ProofParts<'_>, trust: &ExchangeCa) -> Result<Vec<u8>, ProofError> {
    build_with_page(parts, trust).map(|(bytes, _)| bytes)
}

/// [`build`], also returning the printable page it holds (`proof.html`), for
/// whoever hands the page out beside the proof.
pub fn build_with_page(
    parts: &ProofParts<'_>,
    trust: &ExchangeCa,
) -> Result<(Vec<u8>, String), ProofError> {
    let receipt_json = B64
        .decode(&parts.receipt.receipt)
        .map_err(|e| ProofError::Receipt(format!("the stored receipt is not base64: {e}")))?;
    let receipt_sig = B64
        .decode(&parts.receipt.signature)
        .map_err(|e| ProofError::Receipt(format!("the stored signature is not base64: {e}")))?;
    let envelope: Envelope = serde_json::from_slice(parts.envelope_json)
        .map_err(|e| ProofError::Envelope(format!("envelope.json is not an envelope: {e}")))?;
    let statement = ProofStatement {
        format: PROOF_FORMAT.to_owned(),
        bundle_id: envelope.id,
        node: parts.signer.cert().agency().clone(),
        made_at: parts.made_at,
    };
    let statement_json = serde_json::to_vec_pretty(&statement)
        .map_err(|e| ProofError::Write(format!("proof.json: {e}")))?;
    let checked = check_parts(
        &Parts {
            envelope_json: parts.envelope_json,
            envelope_sig: parts.envelope_sig,
            envelope_signer_pem: parts.envelope_signer_pem,
            manifest_json: parts.manifest_json,
            manifest_sig: parts.manifest_sig,
            receipt_json: &receipt_json,
            receipt_sig: &receipt_sig,
            receipt_signer_pem: parts.receipt.signer.as_bytes(),
            audit: parts.audit_excerpt,
        },
        &statement,
        trust,
    )?;
    let html = render_html(&checked.view);
    let readme = readme_text(&statement);
    let summed: [&[u8]; SUMMED_ENTRIES] = [
        readme.as_bytes(),
        &statement_json,
        parts.envelope_json,
        parts.envelope_sig,
        parts.envelope_signer_pem,
        parts.manifest_json,
        parts.manifest_sig,
        &receipt_json,
        &receipt_sig,
        parts.receipt.signer.as_bytes(),
        parts.audit_excerpt,
        parts.exchange_ca_pem,
        html.as_bytes(),
    ];
    let sums = sha256sums(&summed);
    let sums_sig = parts.signer.sign(sums.as_bytes());
    let signer_pem = parts.signer.cert().to_pem();

    let write = |e: io::Error| ProofError::Write(e.to_string());
    let mut zip =
        ContainerWriter::new(Cursor::new(Vec::new()), parts.made_at, false).map_err(write)?;
    let tail: [&[u8]; 3] = [sums.as_bytes(), &sums_sig, signer_pem.as_bytes()];
    for (name, bytes) in ENTRIES.iter().zip(summed.iter().chain(tail.iter())) {
        zip.add(name, bytes).map_err(write)?;
    }
    let bytes = zip.finish().map_err(write)?.into_inner();
    verify(&bytes, trust)?;
    Ok((bytes, html))
}

/// Verifies a proof of delivery with public keys alone: `trust` is the
/// verifier's own copy of the exchange CA (never the proof's
/// `exchange-ca.pem`). Runs the checks of `docs/proof-format.md` §5 in order
/// and returns the first failure. Never compares a time with the clock.
pub fn verify(zip_bytes: &[u8], trust: &ExchangeCa) -> Result<VerifiedProof, ProofError> {
    // 1. The container.
    let e = read_container(zip_bytes)?;
    let get = |name: &str| -> &[u8] {
        ENTRIES
            .iter()
            .position(|n| *n == name)
            .map_or(&[][..], |i| e[i].as_slice())
    };
    // 2. SHA256SUMS.
    check_sums(&e)?;
    // 3. proof.json and the committee's signature over SHA256SUMS.
    let statement = parse_statement(get(entry::PROOF))?;
    let proof_signer = SignerCert::from_pem(get(entry::PROOF_SIGNER))
        .map_err(|p| ProofError::Signer(p.to_string()))?;
    trust
        .check_issued(proof_signer.der(), statement.made_at)
        .map_err(|e| ProofError::Signer(issuance("made_at", statement.made_at, &e)))?;
    proof_signer
        .verify(get(entry::SHA256SUMS), get(entry::SHA256SUMS_SIG))
        .map_err(|_| ProofError::Signature)?;
    if proof_signer.agency() != &statement.node {
        return Err(ProofError::Signer(format!(
            "it names agency {}, proof.json names node {}",
            proof_signer.agency(),
            statement.node
        )));
    }
    // 4–7. Envelope, manifest, receipt, audit excerpt.
    let checked = check_parts(
        &Parts {
            envelope_json: get(entry::ENVELOPE),
            envelope_sig: get(entry::ENVELOPE_SIG),
            envelope_signer_pem: get(entry::ENVELOPE_SIGNER),
            manifest_json: get(entry::MANIFEST),
            manifest_sig: get(entry::MANIFEST_SIG),
            receipt_json: get(entry::RECEIPT),
            receipt_sig: get(entry::RECEIPT_SIG),
            receipt_signer_pem: get(entry::RECEIPT_SIGNER),
            audit: get(entry::AUDIT),
        },
        &statement,
        trust,
    )?;
    // 8. The page.
    let html = render_html(&checked.view);
    let stored = get(entry::HTML);
    if html.as_bytes() != stored {
        let at = html
            .bytes()
            .zip(stored.iter())
            .position(|(a, b)| a != *b)
            .unwrap_or(html.len().min(stored.len()));
        return Err(ProofError::Rendering(format!(
            "it differs from the page rendered from the verified data at byte {at} ({} bytes stored, {} rendered)",
            stored.len(),
            html.len()
        )));
    }
    Ok(VerifiedProof {
        embedded_ca_matches: embedded_ca_matches(get(entry::EXCHANGE_CA), trust),
        view: checked.view,
        statement,
        envelope: checked.envelope,
        manifest: checked.manifest,
        receipt: checked.receipt,
        excerpt: checked.excerpt,
        proof_signer: proof_signer.summary().clone(),
    })
}

/// Step 1: the container, strictly; returns every entry's bytes in [`ENTRIES`] order.
fn read_container(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ProofError> {
    let bad = |m: String| ProofError::Container(m);
    let size = bytes.len() as u64;
    if size > MAX_PROOF_BYTES {
        return Err(bad(format!(
            "the file is {size} bytes, more than {MAX_PROOF_BYTES}"
        )));
    }
    // The end-of-central-directory record must be the last 22 bytes: no
    // archive comment, nothing appended.
    let tail = bytes
        .len()
        .checked_sub(22)
        .map(|at| &bytes[at..])
        .ok_or_else(|| bad("too short to be a zip file".into()))?;
    let mut zip =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(format!("not a zip file: {e}")))?;
    if tail[..4] != *b"PK\x05\x06" || tail[20..22] != [0, 0] {
        return Err(bad(
            "bytes after the zip structure, or an archive comment".into()
        ));
    }
    if zip.has_duplicate_names() {
        return Err(bad("an entry name occurs twice".into()));
    }
    if zipcheck::prefix_len(&zip) != 0 {
        return Err(bad("bytes before the first entry".into()));
    }
    let names: Vec<String> = (0..zip.len())
        .map(|i| {
            zip.by_index_raw(i)
                .map(|f| String::from_utf8_lossy(f.name_raw()).into_owned())
                .map_err(|e| bad(format!("entry #{i}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if names != ENTRIES {
        let missing: Vec<&str> = ENTRIES
            .iter()
            .filter(|n| !names.iter().any(|m| m == *n))
            .copied()
            .collect();
        let extra: Vec<&String> = names
            .iter()
            .filter(|m| !ENTRIES.contains(&m.as_str()))
            .collect();
        return Err(bad(if !missing.is_empty() {
            format!("missing entries {missing:?}")
        } else if !extra.is_empty() {
            format!("unexpected entries {extra:?}")
        } else {
            format!("the entries are in the order {names:?}, expected {ENTRIES:?}")
        }));
    }
    let mut expect = 0u64;
    for (i, name) in ENTRIES.iter().enumerate() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if f.is_dir() || f.is_symlink() {
            return Err(bad(format!("{name} is not a regular file")));
        }
        if f.compression() != CompressionMethod::Stored || f.encrypted() {
            return Err(bad(format!(
                "{name} is compressed or encrypted, not stored"
            )));
        }
        if f.compressed_size() != f.size() {
            return Err(bad(format!("{name} has inconsistent sizes")));
        }
        let limit = entry_limit(name);
        if f.size() > limit {
            return Err(bad(format!(
                "{name} is {} bytes, more than its limit of {limit}",
                f.size()
            )));
        }
        let data = f
            .data_start()
            .ok_or_else(|| bad(format!("{name} has no data offset")))?;
        if f.header_start() != expect || data < f.header_start() {
            return Err(bad(format!(
                "{name} does not follow the previous entry directly (gap or overlap)"
            )));
        }
        expect = data + f.size();
    }
    zipcheck::check_local_headers(&zip, &mut Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
    if expect != zip.central_directory_start() {
        return Err(bad(
            "bytes between the last entry and the central directory".into(),
        ));
    }
    let mut out = Vec::with_capacity(ENTRIES.len());
    for (i, name) in ENTRIES.iter().enumerate() {
        let mut f = zip.by_index(i).map_err(|e| bad(format!("{name}: {e}")))?;
        let mut buf = Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0));
        // The zip reader checks the CRC-32 at the end of the entry.
        f.read_to_end(&mut buf)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        out.push(buf);
    }
    Ok(out)
}

/// The `SHA256SUMS` text over `entries` (named by [`ENTRIES`], in order).
fn sha256sums(entries: &[&[u8]]) -> String {
    ENTRIES
        .iter()
        .zip(entries)
        .map(|(name, bytes)| format!("{}  {name}\n", Sha256::of(bytes)))
        .collect()
}

/// Step 2: `SHA256SUMS` lists exactly the summed entries, in order, each
/// with its digest.
fn check_sums(e: &[Vec<u8>]) -> Result<(), ProofError> {
    let sums_bad = |detail: String| ProofError::EntryDigest {
        entry: entry::SHA256SUMS,
        detail,
    };
    let text = std::str::from_utf8(&e[SUMMED_ENTRIES])
        .map_err(|_| sums_bad("SHA256SUMS is not UTF-8 text".into()))?;
    let Some(body) = text.strip_suffix('\n') else {
        return Err(sums_bad("SHA256SUMS does not end with a line feed".into()));
    };
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() != SUMMED_ENTRIES {
        return Err(sums_bad(format!(
            "SHA256SUMS has {} lines; it lists exactly the {SUMMED_ENTRIES} entries before it",
            lines.len()
        )));
    }
    for (i, line) in lines.iter().enumerate() {
        let name = ENTRIES[i];
        let listed = line
            .split_once("  ")
            .filter(|(_, n)| *n == name)
            .and_then(|(h, _)| {
                (h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then_some(h)
            })
            .ok_or_else(|| {
                sums_bad(format!(
                    "line {} of SHA256SUMS is {line:?}, expected \"<sha256>  {name}\"",
                    i + 1
                ))
            })?;
        let actual = Sha256::of(&e[i]).to_hex();
        if listed != actual {
            return Err(ProofError::EntryDigest {
                entry: name,
                detail: format!("SHA256SUMS lists {listed}, the entry's SHA-256 is {actual}"),
            });
        }
    }
    Ok(())
}

fn parse_statement(bytes: &[u8]) -> Result<ProofStatement, ProofError> {
    let s: ProofStatement =
        serde_json::from_slice(bytes).map_err(|e| ProofError::Statement(e.to_string()))?;
    if s.format != PROOF_FORMAT {
        return Err(ProofError::Statement(format!(
            "format is {:?}, not {PROOF_FORMAT:?}",
            s.format
        )));
    }
    Ok(s)
}

/// Why a certificate is not acceptable at `at`, in words.
fn issuance(what: &str, at: Timestamp, e: &IssuanceError) -> String {
    match e {
        IssuanceError::UnknownIssuer => "not issued by the exchange CA".into(),
        IssuanceError::NotValidAt { .. } => format!("{e} ({what})"),
        IssuanceError::Malformed(p) => format!("{p} (checked at {what} {at})"),
    }
}

/// Steps 4–7: envelope, manifest, receipt, audit excerpt; then the view.
fn check_parts(
    p: &Parts<'_>,
    statement: &ProofStatement,
    trust: &ExchangeCa,
) -> Result<Checked, ProofError> {
    // 4. The envelope.
    let bad = ProofError::Envelope;
    let signer = SignerCert::from_pem(p.envelope_signer_pem)
        .map_err(|e| bad(format!("envelope-signer.pem: {e}")))?;
    let envelope: Envelope = serde_json::from_slice(p.envelope_json)
        .map_err(|e| bad(format!("envelope.json is not an envelope: {e}")))?;
    if envelope.format != bundle::FORMAT {
        return Err(bad(format!(
            "envelope.json's format is {:?}, not {:?}",
            envelope.format,
            bundle::FORMAT
        )));
    }
    if envelope.signer_cert_sha256 != signer.summary().sha256 {
        return Err(bad(
            "envelope-signer.pem is not the certificate the envelope names (signer_cert_sha256)"
                .into(),
        ));
    }
    trust
        .check_issued(signer.der(), envelope.created_at)
        .map_err(|e| {
            bad(format!(
                "envelope-signer.pem: {}",
                issuance("created_at", envelope.created_at, &e)
            ))
        })?;
    if signer.agency() != &envelope.sender {
        return Err(bad(format!(
            "envelope-signer.pem names {}, the envelope's sender is {}",
            signer.agency(),
            envelope.sender
        )));
    }
    signer
        .verify(p.envelope_json, p.envelope_sig)
        .map_err(|_| bad("envelope.sig does not verify".into()))?;
    if statement.bundle_id != envelope.id {
        return Err(bad(format!(
            "proof.json names bundle {}, the envelope is bundle {}",
            statement.bundle_id, envelope.id
        )));
    }
    if statement.node != envelope.sender {
        return Err(ProofError::Signer(format!(
            "the proof is signed by {}, the bundle's sender is {}",
            statement.node, envelope.sender
        )));
    }

    // 5. The manifest.
    let bad = ProofError::Manifest;
    signer
        .verify(p.manifest_json, p.manifest_sig)
        .map_err(|_| bad("manifest.sig does not verify with the envelope's signer".into()))?;
    let manifest: Manifest = serde_json::from_slice(p.manifest_json)
        .map_err(|e| bad(format!("manifest.json is not a manifest: {e}")))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(bad(format!(
            "manifest.json's format is {:?}, not {MANIFEST_FORMAT:?}",
            manifest.format
        )));
    }
    let differs = [
        ("bundle_id", manifest.bundle_id == envelope.id),
        ("kind", manifest.kind == envelope.kind),
        ("sender", manifest.sender == envelope.sender),
        ("recipient", manifest.recipient == envelope.recipient),
        ("case_ref", manifest.case_ref == envelope.case_ref),
        ("created_at", manifest.created_at == envelope.created_at),
        ("refers_to", manifest.refers_to == envelope.refers_to),
    ]
    .into_iter()
    .find(|(_, same)| !same);
    if let Some((field, _)) = differs {
        return Err(bad(format!("its {field} differs from the envelope's")));
    }
    let mut documents = Vec::with_capacity(manifest.documents.len());
    for d in &manifest.documents {
        let name = d
            .path
            .strip_prefix(bundle::payload::DOCUMENTS_DIR)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "document path {:?} is not under documents/",
                    d.path
                ))
            })?;
        documents.push(DocumentLine {
            name: name.to_owned(),
            role: d.role.clone(),
            size: d.size,
            sha256: d.sha256.to_hex(),
        });
    }

    // 6. The receipt.
    let bad = ProofError::Receipt;
    let court = SignerCert::from_pem(p.receipt_signer_pem)
        .map_err(|e| bad(format!("receipt-signer.pem: {e}")))?;
    court
        .verify(p.receipt_json, p.receipt_sig)
        .map_err(|_| bad("receipt.sig does not verify with receipt-signer.pem".into()))?;
    let receipt: Receipt = serde_json::from_slice(p.receipt_json)
        .map_err(|e| bad(format!("receipt.json is not a receipt: {e}")))?;
    if receipt.format != RECEIPT_FORMAT {
        return Err(bad(format!(
            "receipt.json's format is {:?}, not {RECEIPT_FORMAT:?}",
            receipt.format
        )));
    }
    trust
        .check_issued(court.der(), receipt.received_at)
        .map_err(|e| {
            bad(format!(
                "receipt-signer.pem: {}",
                issuance("received_at", receipt.received_at, &e)
            ))
        })?;
    if court.agency() != &receipt.receiver {
        return Err(bad(format!(
            "receipt-signer.pem names {}, the receipt's receiver is {}",
            court.agency(),
            receipt.receiver
        )));
    }
    let envelope_sha256 = Sha256::of(p.envelope_json);
    receipt
        .check(
            &envelope.id,
            &envelope.sender,
            &envelope.recipient,
            &envelope_sha256,
            &envelope.payload.sha256,
        )
        .map_err(|e| bad(e.to_string()))?;

    // 7. The audit excerpt.
    let excerpt = verify_excerpt(p.audit, trust).map_err(ProofError::Audit)?;
    let seen = delivery_records(
        &excerpt,
        &envelope,
        &envelope_sha256,
        &receipt,
        &Sha256::of(p.receipt_json),
    )?;

    let view = ProofView {
        bundle_id: envelope.id.to_string(),
        case_number: envelope.case_ref.to_string(),
        applicant: manifest
            .application
            .as_ref()
            .map_or_else(|| "—".to_owned(), |a| a.applicant.name.clone()),
        sender: envelope.sender.to_string(),
        sender_subject: signer.summary().subject.clone(),
        court: envelope.recipient.to_string(),
        court_subject: court.summary().subject.clone(),
        court_cert_sha256: court.summary().sha256.to_hex(),
        documents,
        transfer_letter_sha256: manifest.transfer_letter.as_ref().map(|t| t.sha256.to_hex()),
        envelope_sha256: envelope_sha256.to_hex(),
        payload_sha256: envelope.payload.sha256.to_hex(),
        payload_length: envelope.payload.length,
        sent_at: envelope.created_at.to_string(),
        fetched_at: seen.fetched_at.map(|t| t.to_string()),
        received_at: receipt.received_at.to_string(),
        audit: AuditSummary {
            first_seq: excerpt.first_seq,
            last_seq: seen.receipt_seq,
            checkpoint_seq: excerpt.last_seq,
            head: excerpt.head.to_hex(),
            checkpoint_at: excerpt.checkpoint_at.to_string(),
        },
        issued_at: statement.made_at.to_string(),
        proof_file: file_name(&envelope.id),
    };
    Ok(Checked {
        envelope,
        manifest,
        receipt,
        excerpt,
        view,
    })
}

/// What the excerpt records about the delivery.
struct Seen {
    /// The `at` of the first `bundle-fetched` record, if any.
    fetched_at: Option<Timestamp>,
    /// The seq of the (last) `receipt-stored` record.
    receipt_seq: u64,
}

/// The members of the records a proof looks at, as far as it needs them.
#[derive(Deserialize)]
struct RecordFields {
    seq: u64,
    at: Timestamp,
    kind: String,
    #[serde(default)]
    bundle_id: Option<BundleId>,
    #[serde(default)]
    peer: Option<AgencyId>,
    #[serde(default)]
    envelope_sha256: Option<Sha256>,
    #[serde(default)]
    payload_sha256: Option<Sha256>,
    #[serde(default)]
    receipt_sha256: Option<Sha256>,
    #[serde(default)]
    received_at: Option<Timestamp>,
}

/// Step 7, after the chain verified: the excerpt is the sender's, and its
/// `bundle-sealed` and `receipt-stored` records for the bundle (at least one
/// each, and every one) name the envelope's digests and this receipt.
fn delivery_records(
    excerpt: &Excerpt,
    envelope: &Envelope,
    envelope_sha256: &Sha256,
    receipt: &Receipt,
    receipt_sha256: &Sha256,
) -> Result<Seen, ProofError> {
    let bad = ProofError::AuditMismatch;
    if excerpt.node != envelope.sender {
        return Err(bad(format!(
            "it is the chain of {}, the bundle's sender is {}",
            excerpt.node, envelope.sender
        )));
    }
    let (mut sealed, mut stored, mut fetched_at) = (false, None, None);
    for value in &excerpt.records {
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !matches!(kind, "bundle-sealed" | "bundle-fetched" | "receipt-stored") {
            continue;
        }
        let r: RecordFields = serde_json::from_value(value.clone())
            .map_err(|e| bad(format!("a {kind} record is malformed: {e}")))?;
        if r.bundle_id.as_ref() != Some(&envelope.id) {
            continue;
        }
        match r.kind.as_str() {
            "bundle-sealed" => {
                let ok = r.peer.as_ref() == Some(&envelope.recipient)
                    && r.payload_sha256.as_ref() == Some(&envelope.payload.sha256)
                    && r.envelope_sha256.as_ref() == Some(envelope_sha256);
                if !ok {
                    return Err(bad(format!(
                        "record {} (bundle-sealed) names another recipient or other digests than the envelope",
                        r.seq
                    )));
                }
                sealed = true;
            }
            "receipt-stored" => {
                let ok = r.receipt_sha256.as_ref() == Some(receipt_sha256)
                    && r.received_at == Some(receipt.received_at)
                    && r.peer.as_ref() == Some(&receipt.receiver);
                if !ok {
                    return Err(bad(format!(
                        "record {} (receipt-stored) names another receipt than receipt.json (its digest, received_at or peer differs)",
                        r.seq
                    )));
                }
                stored = Some(r.seq);
            }
            _ => {
                fetched_at = fetched_at.or(Some(r.at));
            }
        }
    }
    if !sealed {
        return Err(bad(format!(
            "it holds no bundle-sealed record for bundle {}",
            envelope.id
        )));
    }
    let Some(receipt_seq) = stored else {
        return Err(bad(format!(
            "it holds no receipt-stored record for bundle {}",
            envelope.id
        )));
    };
    Ok(Seen {
        fetched_at,
        receipt_seq,
    })
}

/// Whether `pem` holds at least one certificate and each is one of `trust`'s.
fn embedded_ca_matches(pem: &[u8], trust: &ExchangeCa) -> bool {
    let certs: Result<Vec<CertificateDer<'_>>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => certs
            .iter()
            .all(|c| trust.der_certs().any(|t| t == c.as_ref())),
        _ => false,
    }
}

/// `README.txt`: what the file is and how to verify it, in Chinese and
/// English. Informational (it is covered by `SHA256SUMS`, but not compared
/// with this text by [`verify`]).
pub fn readme_text(s: &ProofStatement) -> String {
    let file = file_name(&s.bundle_id);
    format!(
        "送达证明 / PROOF OF DELIVERY ({PROOF_FORMAT})
==============================================

文件 / File:              {file}
文书编号 / Bundle id:     {bundle}
出具方 / Made by:         {node}
出具时间 / Made at (UTC): {made_at}

这是什么
--------
本文件证明：劳动人事争议仲裁委员会（{node}）以电子方式发送的财产保全申请材料
（文书编号 {bundle}）已送达人民法院，并由法院签收。它包含委员会签名的信封
（envelope.json）和材料清单（manifest.json）、法院签名的回执（receipt.json）、
委员会审计日志的摘录（audit.jsonl，以签名检查点结束）、可打印的证明页
（proof.html），以及以上各文件的 SHA-256 清单（SHA256SUMS）和委员会对该清单的
签名（SHA256SUMS.sig）。任何人只需持有交换平台 CA 证书即可离线核验，无需联网，
也无需信任出具本文件的一方。proof.html 可用浏览器打开并打印；它的每一项内容都
可由上述签名文件核对。

What this is
------------
This file proves that a property-preservation application (财产保全) sent
electronically by a labor-arbitration committee ({node}) as bundle {bundle}
was delivered to a court and signed for by it. It holds the committee's signed
envelope (envelope.json) and document list (manifest.json), the court's signed
receipt (receipt.json), an excerpt of the committee's hash-chained audit log
ending in a signed checkpoint (audit.jsonl), a printable page (proof.html), a
SHA-256 list of all of these (SHA256SUMS) and the committee's signature over
that list (SHA256SUMS.sig). Anyone holding the exchange CA certificate can
verify it offline, without trusting whoever handed it over. Open proof.html in
a browser to read or print it; everything it shows is checked against the
signed files above.

如何核验 / How to verify
------------------------
1. 使用 sealpost / With sealpost:

       sealpost verify-proof {file} --ca exchange-ca.pem

   （exchange-ca.pem 应为您自己持有的交换平台 CA 证书 /
    exchange-ca.pem being your own copy of the exchange CA certificate)

2. 仅用标准工具 / With stock tools only (bash, unzip, sha256sum, openssl 3):
   按 sealpost 文档 docs/proof-format.md 中的核验脚本操作。
   Follow the verification script in sealpost's docs/proof-format.md.
   快速检查 / Quick check of the file list (not of the signatures):

       unzip {file} -d proof && cd proof && sha256sum -c SHA256SUMS

注意 / Note
-----------
exchange-ca.pem 仅供参考：核验时请使用您自己持有的、来源可信的 CA 证书。
exchange-ca.pem is informational only: verify against your own trusted copy of
the exchange CA certificate, never against the one in this file.
",
        bundle = s.bundle_id,
        node = s.node,
        made_at = s.made_at,
    )
}

/// What `sealpost verify-proof` prints for a proof that verified: a bilingual
/// summary, one fact per line, labels aligned for a terminal (a Chinese
/// character counts two columns). Texts from the proof (names, subjects) are
/// shown through [`printable`], so they cannot forge lines or move the cursor.
pub fn report_text(v: &VerifiedProof) -> String {
    /// Label column width, in terminal columns.
    const LABEL: usize = 30;
    let w = &v.view;
    let mut o = String::new();
    let mut line = |label: &str, value: &str| {
        let pad = LABEL.saturating_sub(columns(label));
        let _ = writeln!(o, "  {label}{:pad$} {value}", "");
    };
    let p = |s: &str| printable(s).into_owned();
    line("文书编号 / bundle", &w.bundle_id);
    line("案号 / case number", &p(&w.case_number));
    line("申请人 / applicant", &p(&w.applicant));
    line(
        "发送方 / sender",
        &format!("{} ({})", w.sender, p(&w.sender_subject)),
    );
    line(
        "接收法院 / court",
        &format!("{} ({})", w.court, p(&w.court_subject)),
    );
    line(
        "法院证书 / court certificate",
        &format!("sha256 {}", w.court_cert_sha256),
    );
    line("发送时间 / sent at", &w.sent_at);
    line(
        "下载时间 / fetched at",
        w.fetched_at
            .as_deref()
            .unwrap_or("—（未下载：推送送达 / not fetched: pushed)"),
    );
    line("签收时间 / received at", &w.received_at);
    line("信封 / envelope", &format!("sha256 {}", w.envelope_sha256));
    line(
        "密文 / payload",
        &format!("sha256 {} ({} bytes)", w.payload_sha256, w.payload_length),
    );
    let n = w.documents.len();
    line("材料 / documents", &format!("{n} 份 / {n} documents"));
    for (i, d) in w.documents.iter().enumerate() {
        line(
            "",
            &format!(
                "{}. {}  {}  {} bytes  sha256 {}",
                i + 1,
                p(&d.name),
                p(&d.role),
                d.size,
                d.sha256
            ),
        );
    }
    if let Some(t) = &w.transfer_letter_sha256 {
        line("转办函 / transfer letter", &format!("sha256 {t}"));
    }
    line(
        "审计日志 / audit log",
        &format!(
            "{} 审计链第 {}–{} 条 / records {}–{} of {}'s chain",
            w.sender,
            w.audit.first_seq,
            w.audit.last_seq,
            w.audit.first_seq,
            w.audit.last_seq,
            w.sender
        ),
    );
    line(
        "检查点 / checkpoint",
        &format!(
            "{} ({}), head {}",
            w.audit.checkpoint_seq, w.audit.checkpoint_at, w.audit.head
        ),
    );
    line(
        "出具 / proof made",
        &format!(
            "{} by {} ({})",
            w.issued_at,
            v.statement.node,
            p(&v.proof_signer.subject)
        ),
    );
    line(
        "内嵌 CA / embedded CA",
        if v.embedded_ca_matches {
            "与您的 CA 相同 / matches your CA"
        } else {
            "与您的 CA 不同（仅供参考，核验使用您的 CA）/ differs from your CA (informational; your CA was used)"
        },
    );
    format!(
        "送达证明核验通过 / PROOF OF DELIVERY VERIFIED  {}\n{o}",
        w.proof_file
    )
}

/// Terminal columns of `s`: two for East Asian wide characters, one otherwise.
fn columns(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_has_a_limit_within_the_file_limit() {
        let total: u64 = ENTRIES.iter().map(|n| entry_limit(n)).sum();
        assert!(ENTRIES.iter().all(|n| entry_limit(n) > 0));
        assert_eq!(entry_limit("other.txt"), 0);
        // Headers: a local header and a central record per entry, the end record.
        let headers: u64 = ENTRIES.iter().map(|n| 30 + 46 + 2 * n.len() as u64).sum();
        assert!(total + headers + 22 <= MAX_PROOF_BYTES, "{total}");
        assert_eq!(SUMMED_ENTRIES, ENTRIES.len() - 3);
        assert_eq!(ENTRIES[SUMMED_ENTRIES], entry::SHA256SUMS);
    }

    fn sums_of(entries: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let refs: Vec<&[u8]> = entries[..SUMMED_ENTRIES]
            .iter()
            .map(|e| e.as_slice())
            .collect();
        let mut all = entries.to_vec();
        all[SUMMED_ENTRIES] = sha256sums(&refs).into_bytes();
        all
    }

    #[test]
    fn sha256sums_is_sha256sum_output_and_names_what_differs() {
        let entries: Vec<Vec<u8>> = ENTRIES.iter().map(|n| n.as_bytes().to_vec()).collect();
        let good = sums_of(&entries);
        check_sums(&good).expect("consistent");
        let text = String::from_utf8(good[SUMMED_ENTRIES].clone()).expect("utf-8");
        assert_eq!(text.lines().count(), SUMMED_ENTRIES);
        assert_eq!(
            text.lines().next(),
            Some(format!("{}  README.txt", Sha256::of(b"README.txt")).as_str())
        );
        let mut bad = good.clone();
        bad[7].push(b'!');
        let e = check_sums(&bad).expect_err("receipt.json differs");
        assert_eq!(
            (e.code(), e.part()),
            ("proof-entry-digest-mismatch", "receipt.json")
        );
        for sums in [
            text.replace('\n', "\r\n"),
            text.trim_end().to_owned(),
            text.replacen("  README.txt", " *README.txt", 1),
            text.to_uppercase(),
            format!("{text}{}  extra\n", "0".repeat(64)),
        ] {
            let mut bad = good.clone();
            bad[SUMMED_ENTRIES] = sums.into_bytes();
            let e = check_sums(&bad).expect_err("malformed");
            assert_eq!(e.part(), "SHA256SUMS", "{e}");
        }
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            ProofError::Bundle {
                path: "b".into(),
                reason: String::new(),
            },
            ProofError::Container(String::new()),
            ProofError::EntryDigest {
                entry: entry::README,
                detail: String::new(),
            },
            ProofError::Statement(String::new()),
            ProofError::Signer(String::new()),
            ProofError::Signature,
            ProofError::Envelope(String::new()),
            ProofError::Manifest(String::new()),
            ProofError::Receipt(String::new()),
            ProofError::AuditMismatch(String::new()),
            ProofError::Rendering(String::new()),
            ProofError::Write(String::new()),
            ProofError::Unreadable {
                path: "p".into(),
                reason: String::new(),
            },
        ];
        let mut codes: Vec<&str> = all.iter().map(ProofError::code).collect();
        assert!(codes.iter().all(|c| c.starts_with("proof-")));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn the_readme_is_bilingual_and_names_the_file() {
        let s = ProofStatement {
            format: PROOF_FORMAT.into(),
            bundle_id: "uc76d4bkxezrdd5apooog3owpm".parse().expect("id"),
            node: "sz-lac".parse().expect("id"),
            made_at: "2026-11-24T09:12:40Z".parse().expect("time"),
        };
        let text = readme_text(&s);
        for want in [
            "送达证明",
            "PROOF OF DELIVERY",
            "proof-uc76d4bkxezrdd5apooog3owpm.zip",
            "2026-11-24T09:12:40Z",
            "sealpost verify-proof",
            "docs/proof-format.md",
            "sha256sum -c SHA256SUMS",
        ] {
            assert!(text.contains(want), "{want}");
        }
        assert!(!text.contains('\r'));
    }

    #[test]
    fn a_wide_label_takes_two_columns_per_character() {
        assert_eq!(columns("案号 / case"), 2 * 2 + 7);
        assert_eq!(columns("abc"), 3);
    }
}
