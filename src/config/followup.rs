//! `[followup]`: the court's follow-up folder, where court clerks drop the
//! events (materials required, appointments, rulings …) that the node signs
//! and sends to the committee a bundle came from (`docs/followup-folder.md`).
//!
//! Court nodes only; without the section there is no follow-up folder. The
//! completeness and quiet-check knobs default to `[intake]`'s, so one setting
//! of the share's behaviour serves both folders.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::site::{ConfigError, Site};
use super::{parse_duration, IntakeSettings, Role};
use crate::types::parse_byte_size;

/// The validated `[followup]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowupSettings {
    /// Holds `drop/`, `accepted/`, `rejected/`, `archive/`, `problems/` and
    /// the hidden `.work/`; one file system, so every move is a rename.
    pub root: PathBuf,
    /// A drop without `READY` is taken once unchanged for this long
    /// (default: `intake.settle`).
    pub settle: Duration,
    /// Periodic rescan (default: `intake.scan_interval`).
    pub scan_interval: Duration,
    /// A claimed item still being written after this long is rejected
    /// (default: `intake.write_timeout`).
    pub write_timeout: Duration,
    /// Ask the kernel with file leases whether a file is still open for
    /// writing (default: `intake.use_leases`).
    pub use_leases: bool,
    /// Largest single attachment (default 20 MiB; the whole submission
    /// travels as one JSON document).
    pub max_attachment_size: u64,
}

/// Default largest attachment.
pub const DEFAULT_MAX_ATTACHMENT: u64 = 20 << 20;
/// No attachment may be larger than this, whatever the setting: the
/// submission is built in memory.
pub const MAX_ATTACHMENT_CEILING: u64 = 100 << 20;

/// Phase one: the section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFollowup {
    root: Option<PathBuf>,
    settle: Option<String>,
    scan_interval: Option<String>,
    write_timeout: Option<String>,
    use_leases: Option<bool>,
    max_attachment_size: Option<String>,
}

/// Phase two.
pub(super) fn validate(
    raw: Option<RawFollowup>,
    role: Role,
    intake: &IntakeSettings,
    site: &Site<'_>,
) -> Result<Option<FollowupSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if role != Role::Court {
        return Err(site.err(
            "followup",
            "the follow-up folder is for court nodes only (node.role = \"court\"); remove the [followup] section",
        ));
    }
    let Some(root) = raw.root.as_deref() else {
        return Err(site.err(
            "followup.root",
            "is required: the folder where court clerks drop follow-up events (e.g. \"/srv/sealpost/followup\")",
        ));
    };
    let duration = |v: &Option<String>, key: &str, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|m| site.err(key, m)),
    };
    let max_attachment_size = match &raw.max_attachment_size {
        None => DEFAULT_MAX_ATTACHMENT,
        Some(s) => match parse_byte_size(s)
            .map_err(|e| site.err("followup.max_attachment_size", e.to_string()))?
        {
            0 => return Err(site.err("followup.max_attachment_size", "must be greater than zero")),
            n if n > MAX_ATTACHMENT_CEILING => {
                return Err(site.err(
                    "followup.max_attachment_size",
                    format!(
                        "at most {} is allowed (events travel as one JSON document)",
                        crate::types::human_bytes(MAX_ATTACHMENT_CEILING)
                    ),
                ))
            }
            n => n,
        },
    };
    let settings = FollowupSettings {
        root: site.resolve(root),
        settle: duration(&raw.settle, "followup.settle", intake.settle)?,
        scan_interval: duration(
            &raw.scan_interval,
            "followup.scan_interval",
            intake.scan_interval,
        )?,
        write_timeout: duration(
            &raw.write_timeout,
            "followup.write_timeout",
            intake.write_timeout,
        )?,
        use_leases: raw.use_leases.unwrap_or(intake.use_leases),
        max_attachment_size,
    };
    super::check_writable(&settings.root).map_err(|why| site.err("followup.root", why))?;
    Ok(Some(settings))
}
