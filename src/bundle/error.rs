//! Bundle errors: one variant per check, each with a stable code.

use std::path::PathBuf;

use crate::pki::{CertProblem, IssuanceError};
use crate::types::{AgencyId, Timestamp};

/// Why a bundle was refused. Every check has its own variant and a stable
/// [`BundleError::code`], so a court system, a log query or a test can tell a
/// truncated download from a forged signature. Decryption failures are the one
/// opaque variant: which part of age failed is no one's business.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle file could not be read.
    #[error("cannot read the bundle: {0}")]
    Io(#[source] std::io::Error),
    /// Larger than `limits.max_bundle_size`.
    #[error("the bundle is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// Not a readable zip container.
    #[error("not a valid bundle container: {0}")]
    ContainerInvalid(String),
    /// Bytes after the end of the zip structure.
    #[error("the bundle has extra bytes after its end")]
    TrailingData,
    /// Two entries with the same name.
    #[error("the bundle contains duplicate entry names")]
    DuplicateEntry,
    /// An entry name that escapes the extraction directory.
    #[error("unsafe entry name {0:?} (absolute or containing \"..\")")]
    UnsafeEntryName(String),
    /// A symbolic-link entry.
    #[error("entry {0:?} is a symbolic link")]
    SymlinkEntry(String),
    /// An entry that format version 1 does not have.
    #[error("unexpected entry {0:?}")]
    UnexpectedEntry(String),
    /// A required entry is absent.
    #[error("missing entry {0}")]
    MissingEntry(&'static str),
    /// An entry is compressed or encrypted at the zip level.
    #[error("entry {0:?} is not stored uncompressed")]
    EntryNotStored(String),
    /// An entry is larger than its format limit.
    #[error("entry {name:?} is {size} bytes, over its limit of {limit}")]
    EntryTooLarge {
        /// Entry.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Entries out of order, gaps, overlaps, data before the first entry.
    #[error("container layout is not canonical: {0}")]
    ContainerLayout(String),
    /// A local file header disagrees with its central-directory record (name,
    /// method, flags, CRC-32 or sizes), so tools reading the local headers
    /// would see another container than the central directory describes.
    #[error("a local file header disagrees with the central directory: {0}")]
    LocalHeaderMismatch(#[source] crate::zipcheck::ZipCheckError),
    /// `envelope.json` is not a valid envelope.
    #[error("malformed envelope: {0}")]
    EnvelopeMalformed(String),
    /// `format` is not one this version understands.
    #[error("unsupported bundle format {0:?} (this version reads sealpost-bundle/1)")]
    UnsupportedFormat(String),
    /// `signer.pem` is not a usable signing certificate.
    #[error("the signer certificate is unusable: {0}")]
    SignerCertInvalid(CertProblem),
    /// The envelope signature does not verify with the signer certificate.
    #[error("the envelope signature does not verify")]
    EnvelopeSignatureInvalid,
    /// The signer certificate was not issued by the exchange CA.
    #[error("the signer certificate was not issued by the exchange CA")]
    SignerUntrusted,
    /// The signer certificate was not valid when the bundle was signed.
    #[error("the signer certificate was not valid at signing time: {0}")]
    SignerNotValidAtSigningTime(IssuanceError),
    /// The certificate names a different agency than the envelope's sender.
    #[error("the signer certificate belongs to \"{cert}\", but the envelope says the sender is \"{sender}\"")]
    SignerIdentityMismatch {
        /// The agency in the certificate.
        cert: AgencyId,
        /// The envelope's sender.
        sender: AgencyId,
    },
    /// `signer_cert_sha256` does not match `signer.pem`.
    #[error("the envelope's signer_cert_sha256 does not match signer.pem")]
    SignerCertDigestMismatch,
    /// The sender is not in the peer directory.
    #[error("the sender \"{0}\" is not in the peer directory")]
    SenderUnknown(AgencyId),
    /// The certificate is valid but is not one the directory lists for the sender.
    #[error("the signer certificate is not registered for \"{0}\" in the peer directory")]
    SignerNotInDirectory(AgencyId),
    /// `created_at` lies in the future beyond clock skew.
    #[error("the bundle claims to be created at {0}, in the future")]
    CreatedInFuture(Timestamp),
    /// Addressed to another agency.
    #[error("the bundle is addressed to \"{recipient}\", not to this node (\"{me}\")")]
    WrongRecipient {
        /// The envelope's recipient.
        recipient: AgencyId,
        /// This node.
        me: AgencyId,
    },
    /// `payload.age` length differs from the envelope.
    #[error("the payload is {actual} bytes, but the envelope says {declared}")]
    PayloadLengthMismatch {
        /// Envelope.
        declared: u64,
        /// Actual.
        actual: u64,
    },
    /// `payload.age` digest differs from the envelope.
    #[error("the payload's SHA-256 does not match the envelope")]
    PayloadDigestMismatch,
    /// The payload cannot be decrypted with this node's key.
    #[error("the payload cannot be decrypted with this node's key")]
    DecryptionFailed,
    /// The decrypted payload is not a valid payload archive.
    #[error("malformed payload: {0}")]
    PayloadMalformed(String),
    /// `manifest.json` is not a valid manifest.
    #[error("malformed manifest: {0}")]
    ManifestMalformed(String),
    /// `manifest.sig` does not verify.
    #[error("the manifest signature does not verify")]
    ManifestSignatureInvalid,
    /// The manifest is bound to a different bundle than its envelope.
    #[error("the manifest does not match the envelope: {0}")]
    ManifestMismatch(String),
    /// A document's size or SHA-256 differs from the manifest.
    #[error("{0:?} does not match its size and SHA-256 in the manifest")]
    DocumentDigestMismatch(String),
    /// The output directory already exists.
    #[error("the output {0} already exists")]
    OutputExists(PathBuf),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl BundleError {
    /// The stable code, as used in test vectors, logs and API problem details.
    pub fn code(&self) -> &'static str {
        use BundleError as E;
        match self {
            E::Io(_) => "bundle-unreadable",
            E::TooLarge { .. } => "bundle-too-large",
            E::ContainerInvalid(_) => "container-invalid",
            E::TrailingData => "trailing-data",
            E::DuplicateEntry => "duplicate-entry",
            E::UnsafeEntryName(_) => "unsafe-entry-name",
            E::SymlinkEntry(_) => "symlink-entry",
            E::UnexpectedEntry(_) => "unexpected-entry",
            E::MissingEntry(_) => "missing-entry",
            E::EntryNotStored(_) => "entry-not-stored",
            E::EntryTooLarge { .. } => "entry-too-large",
            E::ContainerLayout(_) => "container-layout",
            E::LocalHeaderMismatch(_) => "local-header-mismatch",
            E::EnvelopeMalformed(_) => "envelope-malformed",
            E::UnsupportedFormat(_) => "unsupported-format",
            E::SignerCertInvalid(_) => "signer-cert-invalid",
            E::EnvelopeSignatureInvalid => "envelope-signature-invalid",
            E::SignerUntrusted => "signer-untrusted",
            E::SignerNotValidAtSigningTime(_) => "signer-cert-not-valid-at-signing-time",
            E::SignerIdentityMismatch { .. } => "signer-identity-mismatch",
            E::SignerCertDigestMismatch => "signer-cert-digest-mismatch",
            E::SenderUnknown(_) => "sender-unknown",
            E::SignerNotInDirectory(_) => "signer-not-in-directory",
            E::CreatedInFuture(_) => "created-in-future",
            E::WrongRecipient { .. } => "wrong-recipient",
            E::PayloadLengthMismatch { .. } => "payload-length-mismatch",
            E::PayloadDigestMismatch => "payload-digest-mismatch",
            E::DecryptionFailed => "decryption-failed",
            E::PayloadMalformed(_) => "payload-malformed",
            E::ManifestMalformed(_) => "manifest-malformed",
            E::ManifestSignatureInvalid => "manifest-signature-invalid",
            E::ManifestMismatch(_) => "manifest-mismatch",
            E::DocumentDigestMismatch(_) => "document-digest-mismatch",
            E::OutputExists(_) => "output-exists",
            E::Output(_) => "output-failed",
        }
    }

    /// Whether the fault is in the bundle (as opposed to local I/O or output).
    pub fn is_bundle_fault(&self) -> bool {
        !matches!(
            self,
            BundleError::Io(_) | BundleError::OutputExists(_) | BundleError::Output(_)
        )
    }
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Reading a document or writing the bundle failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document changed size while it was being sealed.
    #[error("{0:?} changed while it was being sealed; nothing was written")]
    DocumentChanged(String),
    /// A document name is not safe to put in a payload.
    #[error("document name {0:?} is unsafe: {1}")]
    UnsafeName(String, &'static str),
    /// The signing key does not belong to the sender.
    #[error("the signing certificate names \"{cert}\", not the sender \"{sender}\"")]
    SignerIsNotSender {
        /// Agency in the certificate.
        cert: AgencyId,
        /// The sender.
        sender: AgencyId,
    },
    /// The output file already exists.
    #[error("the output {0} already exists")]
    OutputExists(PathBuf),
    /// Encryption setup failed.
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
}
