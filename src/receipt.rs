//! Signed receipts: the recipient's proof of delivery (送达证明).
//!
//! A receipt is a small JSON document, signed with the receiver's Ed25519
//! signing key, naming the bundle and both of its digests. It travels and is
//! stored as a [`SignedReceipt`]: the exact receipt bytes, the signature and the
//! signer's certificate, each encoded so the whole fits in one JSON object that
//! anyone can verify offline with the exchange CA alone (`docs/receipt-format.md`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::bundle::MAX_CLOCK_SKEW_SECS;
use crate::config::Directory;
use crate::pki::{ExchangeCa, IssuanceError, SignerCert, SigningKey};
use crate::types::{AgencyId, BundleId, Sha256, Timestamp};

/// `format` of a version-1 receipt.
pub const RECEIPT_FORMAT: &str = "sealpost-receipt/1";

/// What the receiver attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The bundle received.
    pub bundle_id: BundleId,
    /// Its sender.
    pub sender: AgencyId,
    /// The receiver (who signs).
    pub receiver: AgencyId,
    /// SHA-256 of the bundle's `envelope.json` bytes.
    pub envelope_sha256: Sha256,
    /// SHA-256 of its `payload.age` (as in the envelope).
    pub payload_sha256: Sha256,
    /// When the receiver verified and stored it.
    pub received_at: Timestamp,
}

/// A receipt with its signature and signer certificate, as sent and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    /// Base64 of the exact receipt JSON bytes (the signed message).
    pub receipt: String,
    /// Base64 of the 64-byte Ed25519 signature over those bytes.
    pub signature: String,
    /// The signer's certificate, PEM.
    pub signer: String,
}

/// Why a receipt is refused. Each has a stable code for API problem details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a well-formed signed receipt.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// The signature does not verify with the enclosed certificate.
    #[error("the receipt signature does not verify")]
    BadSignature,
    /// The certificate is not a valid signing certificate of the exchange at `received_at`.
    #[error("the receipt's signer certificate is not acceptable: {0}")]
    Signer(String),
    /// The signer is not the receiver, or not registered for it.
    #[error("the receipt is not signed by the registered signing key of \"{0}\"")]
    NotReceiver(AgencyId),
    /// `received_at` lies further in the future than the allowed clock skew.
    #[error("the receipt says it was made at {received_at}, more than {} s after this node's time {now}", MAX_CLOCK_SKEW_SECS)]
    InFuture {
        /// The receipt's `received_at`.
        received_at: Timestamp,
        /// The verifier's current time.
        now: Timestamp,
    },
    /// The receipt names another bundle, sender, receiver or other digests.
    #[error("the receipt does not match the bundle: {0}")]
    Mismatch(String),
}

impl ReceiptError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptError::Malformed(_) => "receipt-malformed",
            ReceiptError::BadSignature => "receipt-signature-invalid",
            ReceiptError::Signer(_) => "receipt-signer-invalid",
            ReceiptError::NotReceiver(_) => "receipt-signer-not-receiver",
            ReceiptError::InFuture { .. } => "receipt-in-future",
            ReceiptError::Mismatch(_) => "receipt-mismatch",
        }
    }
}

impl Receipt {
    /// Signs this receipt with the receiver's key.
    pub fn sign(&self, key: &SigningKey) -> SignedReceipt {
        let bytes = serde_json::to_vec_pretty(self).expect("receipts serialise");
        SignedReceipt {
            receipt: B64.encode(&bytes),
            signature: B64.encode(key.sign(&bytes)),
            signer: key.cert().to_pem(),
        }
    }
}

impl SignedReceipt {
    /// Verifies signature, signer certificate (exchange CA, valid at
    /// `received_at`, registered in the directory for the receiver) and that
    /// `received_at` is not further than [`MAX_CLOCK_SKEW_SECS`] after `now`
    /// (the verifier's clock), and returns the receipt. Does not compare it
    /// with any bundle: see [`Receipt::check`].
    pub fn verify(
        &self,
        trust: &ExchangeCa,
        directory: &Directory,
        now: Timestamp,
    ) -> Result<Receipt, ReceiptError> {
        let bytes = B64
            .decode(&self.receipt)
            .map_err(|e| ReceiptError::Malformed(format!("receipt is not base64: {e}")))?;
        let sig = B64
            .decode(&self.signature)
            .map_err(|e| ReceiptError::Malformed(format!("signature is not base64: {e}")))?;
        let cert = SignerCert::from_pem(self.signer.as_bytes())
            .map_err(|e| ReceiptError::Signer(e.to_string()))?;
        cert.verify(&bytes, &sig)
            .map_err(|_| ReceiptError::BadSignature)?;
        let r: Receipt =
            serde_json::from_slice(&bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if r.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Malformed(format!(
                "unknown format {:?}",
                r.format
            )));
        }
        match trust.check_issued(cert.der(), r.received_at) {
            Ok(()) => {}
            Err(IssuanceError::UnknownIssuer) => {
                return Err(ReceiptError::Signer("not issued by the exchange CA".into()))
            }
            Err(e) => return Err(ReceiptError::Signer(e.to_string())),
        }
        if cert.agency() != &r.receiver
            || !directory
                .get(&r.receiver)
                .is_some_and(|p| p.has_signing_cert(&cert))
        {
            return Err(ReceiptError::NotReceiver(r.receiver.clone()));
        }
        // The receiver's own claim, but not one from the future: the same
        // clock-skew allowance as for a bundle's created_at.
        if r.received_at.unix() > now.unix() + MAX_CLOCK_SKEW_SECS {
            return Err(ReceiptError::InFuture {
                received_at: r.received_at,
                now,
            });
        }
        Ok(r)
    }
}

impl SignedReceipt {
    /// The receipt's `received_at`, read without any check: for this node's
    /// own stored receipts (`.done` records it).
    pub fn unverified_received_at(&self) -> Option<Timestamp> {
        let bytes = B64.decode(&self.receipt).ok()?;
        serde_json::from_slice::<Receipt>(&bytes)
            .ok()
            .map(|r| r.received_at)
    }
}

impl Receipt {
    /// Checks that this receipt is for `bundle` from `sender` to `receiver` with
    /// these digests.
    pub fn check(
        &self,
        bundle: &BundleId,
        sender: &AgencyId,
        receiver: &AgencyId,
        envelope_sha256: &Sha256,
        payload_sha256: &Sha256,
    ) -> Result<(), ReceiptError> {
        let m = |what: &str| Err(ReceiptError::Mismatch(format!("{what} differs")));
        if &self.bundle_id != bundle {
            return m("bundle_id");
        }
        if &self.sender != sender {
            return m("sender");
        }
        if &self.receiver != receiver {
            return m("receiver");
        }
        if &self.envelope_sha256 != envelope_sha256 {
            return m("envelope_sha256");
        }
        if &self.payload_sha256 != payload_sha256 {
            return m("payload_sha256");
        }
        Ok(())
    }
}
