//! Sealing a validated application with this node's keys: one bundle for its
//! court, addressed and signed as this node.

use std::path::Path;

use crate::application::Application;
use crate::bundle::{self, ApplicationInfo, DocumentSource, Kind, SealInput};
use crate::config::Config;
use crate::types::{BundleId, Timestamp};

/// Seals a validated application for `recipient` with this node's keys.
pub fn seal_application(
    c: &Config,
    app: &Application,
    recipient: &crate::config::Peer,
    output: &Path,
) -> Result<bundle::Sealed, bundle::SealError> {
    seal_application_as(
        c,
        app,
        recipient,
        output,
        BundleId::generate(),
        Timestamp::now(),
    )
}

/// Seals with a given bundle id and time (intake fixes the id when it claims).
pub fn seal_application_as(
    c: &Config,
    app: &Application,
    recipient: &crate::config::Peer,
    output: &Path,
    id: BundleId,
    created_at: Timestamp,
) -> Result<bundle::Sealed, bundle::SealError> {
    let input = SealInput {
        id,
        kind: Kind::PreservationApplication,
        created_at,
        sender: c.me(),
        signer: &c.keys.signing,
        recipient,
        archive: c.keys.archive.as_ref(),
        case_ref: app.case_number.clone(),
        refers_to: None,
        application: Some(ApplicationInfo::from(app)),
        body: None,
        documents: app.documents.iter().map(DocumentSource::from).collect(),
    };
    bundle::seal(&input, output)
}
