//! The receiving side's inbox, shared by polling ([`super::client`]) and push
//! (`POST /v1/bundles`): a verified bundle is opened into
//! `<data_dir>/inbox/<case>/<bundle-id>/` exactly once, `.done` is written last
//! (for the court's case system), and this node's signed receipt is derived
//! from what is in the inbox — so asking again returns the same receipt.

use std::path::{Path, PathBuf};

use super::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT};
use crate::bundle::{BundleError, Envelope, Verifier, ENVELOPE_ENTRY};
use crate::config::Config;
use crate::types::{AgencyId, Sha256, Timestamp};

/// Where this node's inbox is.
pub fn root(config: &Config) -> PathBuf {
    config.node.data_dir.join("inbox")
}

/// Where downloads and pushed uploads wait until verified: outside the inbox,
/// so that not one unverified byte is ever under it.
pub fn downloads(config: &Config) -> PathBuf {
    config.node.data_dir.join("downloads")
}

/// Verifies `file` (addressed to this node, sent by `from` if given) and opens it
/// into the inbox unless it is already there. Returns the inbox folder.
pub fn deliver(
    config: &Config,
    file: &Path,
    from: Option<&AgencyId>,
) -> Result<PathBuf, BundleError> {
    let v = Verifier::for_node(config);
    let verified = v.verify(file)?;
    if let Some(from) = from {
        if &verified.envelope.sender != from {
            return Err(BundleError::SignerIdentityMismatch {
                cert: from.clone(),
                sender: verified.envelope.sender.clone(),
            });
        }
    }
    let dest = root(config)
        .join(verified.envelope.case_ref.as_str())
        .join(verified.envelope.id.as_str());
    if dest.join(".done").exists() {
        return Ok(dest);
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(BundleError::Output)?;
    }
    if !dest.exists() {
        v.open(file, &config.keys.encryption, &dest)?;
    }
    match crate::fsutil::write_new_atomic(
        &dest.join(".done"),
        Timestamp::now().to_rfc3339().as_bytes(),
    ) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(BundleError::Output(e)),
    }
    tracing::info!(bundle = %verified.envelope.id, case = %verified.envelope.case_ref, dir = %dest.display(), "bundle verified and delivered into the inbox");
    Ok(dest)
}

/// This node's signed receipt for the bundle in inbox folder `dest`; the
/// receipt time is the time `.done` records.
pub fn receipt_for(config: &Config, dest: &Path) -> std::io::Result<SignedReceipt> {
    let envelope = std::fs::read(dest.join(ENVELOPE_ENTRY))?;
    let env: Envelope = serde_json::from_slice(&envelope).map_err(std::io::Error::other)?;
    let received_at = std::fs::read_to_string(dest.join(".done"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(Timestamp::now);
    let r = Receipt {
        format: RECEIPT_FORMAT.to_owned(),
        bundle_id: env.id,
        sender: env.sender,
        receiver: config.node.id.clone(),
        envelope_sha256: Sha256::of(&envelope),
        payload_sha256: env.payload.sha256,
        received_at,
    };
    Ok(r.sign(&config.keys.signing))
}
