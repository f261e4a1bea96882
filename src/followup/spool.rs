//! Where signed events wait and end, under `<data_dir>/followup/`, and the
//! clerk's notes about them that both the folder and the sender write.
//!
//! ```text
//! outgoing/<event-id>.json   the Submission to POST (exact body), written once
//! sent/<event-id>.json       …moved here when the committee recorded it (200/201)
//! failed/<event-id>.json     …or here when it refused it for good (4xx)
//! failed/<event-id>.answer.json  the committee's status, code and detail
//! items/<event-id>.json      which clerk's item it came from ([`Item`])
//! ```
//!
//! Every file is written atomically and durably (tmp, fsync, rename, fsync
//! dir); a move is a rename followed by syncing both folders. An event id is
//! in exactly one of `outgoing/`, `sent/`, `failed/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::event::EventId;
use crate::intake::notes::{beijing, candidate_names, free_name};
use crate::types::{printable, AgencyId, BundleId, CaseRef, Timestamp};

/// The spool folders.
#[derive(Debug, Clone)]
pub struct Spool {
    /// Signed, waiting to be sent.
    pub outgoing: PathBuf,
    /// Recorded by the committee.
    pub sent: PathBuf,
    /// Refused by the committee.
    pub failed: PathBuf,
    /// Item records.
    pub items: PathBuf,
}

impl Spool {
    /// The layout under `<data_dir>/followup` (paths only).
    pub fn of(config: &Config) -> Self {
        let root = config.node.data_dir.join("followup");
        Self {
            outgoing: root.join("outgoing"),
            sent: root.join("sent"),
            failed: root.join("failed"),
            items: root.join("items"),
        }
    }

    /// Creates the folders if missing and removes temporary files of
    /// interrupted writes.
    pub fn create(&self) -> io::Result<()> {
        for d in [&self.outgoing, &self.sent, &self.failed, &self.items] {
            fs::create_dir_all(d)?;
            crate::fsutil::remove_stale_temps(d)?;
        }
        Ok(())
    }

    /// `<dir>/<id>.json`.
    pub fn file(dir: &Path, id: &EventId) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// Whether event `id` was already signed (in any of the three places).
    pub fn has(&self, id: &EventId) -> bool {
        [&self.outgoing, &self.sent, &self.failed]
            .iter()
            .any(|d| Self::file(d, id).exists())
    }

    /// The item record of `id`.
    pub fn item(&self, id: &EventId) -> Option<Item> {
        serde_json::from_slice(&fs::read(Self::file(&self.items, id)).ok()?).ok()
    }

    /// Moves `outgoing/<id>.json` to `to/<id>.json`, durably. A file already
    /// there (an earlier, interrupted move) wins; the outgoing one is removed.
    pub fn settle(&self, id: &EventId, to: &Path) -> io::Result<()> {
        let from = Self::file(&self.outgoing, id);
        let dest = Self::file(to, id);
        match crate::fsutil::rename_noreplace(&from, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(&from)?,
            Err(e) => return Err(e),
        }
        crate::fsutil::sync_dir(to)?;
        crate::fsutil::sync_dir(&self.outgoing)
    }
}

/// Which clerk's item an event came from, and what it says, for the notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The item's name in the folder.
    pub name: String,
    /// The event.
    pub event_id: EventId,
    /// The committee's case number.
    pub case_number: CaseRef,
    /// The bundle.
    pub bundle_id: BundleId,
    /// The committee it goes to.
    pub committee: AgencyId,
    /// Its kind.
    pub kind: String,
    /// When the folder accepted it.
    pub accepted_at: Timestamp,
}

/// Where the event stands, for the clerk's note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Signed, waiting to be sent (or being retried).
    Waiting,
    /// The committee recorded it (its time, as it said).
    Recorded(String),
    /// The committee refused it.
    Refused {
        /// HTTP status.
        status: u16,
        /// Its problem code.
        code: String,
        /// Its detail.
        detail: String,
    },
}

/// Chinese and English names of a kind.
pub fn kind_names(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "received" => ("已收到", "received"),
        "accepted" => ("已立案", "accepted"),
        "materials-required" => ("需补充材料", "materials required"),
        "appointment" => ("约见/联系", "appointment"),
        "ruling-issued" => ("裁定已作出", "ruling issued"),
        "rejected" => ("不予受理/驳回", "rejected"),
        "completed" => ("已办结", "completed"),
        _ => ("其他", "other"),
    }
}

/// The clerk's `accepted/<name>.txt`: what was sent, to whom, and whether
/// the committee recorded it.
pub fn render_accepted(
    item: &Item,
    committee: Option<&crate::config::Peer>,
    status: &Status,
) -> String {
    let (kzh, ken) = kind_names(&item.kind);
    let (czh, cen) = committee
        .map(|p| (p.name_zh.clone(), p.name_en.clone()))
        .unwrap_or_else(|| (item.committee.to_string(), item.committee.to_string()));
    let (szh, sen) = match status {
        Status::Waiting => (
            "已签名，正在发送给仲裁委（如暂时无法连接，系统会自动重试）。".to_owned(),
            "Signed; being sent to the committee (retried by itself if it cannot be reached)."
                .to_owned(),
        ),
        Status::Recorded(at) => {
            let shown = at
                .parse::<Timestamp>()
                .map(|t| format!("{}（北京时间 / Beijing time）", beijing(t)))
                .unwrap_or_else(|_| printable(at).into_owned());
            (
                format!("仲裁委已记录本事件，时间 {shown}。"),
                format!("The committee recorded this event at {shown}."),
            )
        }
        Status::Refused {
            status,
            code,
            detail,
        } => (
            format!(
                "仲裁委拒收了本事件（{status} {}），详见 problems 文件夹中的说明。",
                printable(code)
            ),
            format!(
                "The committee refused this event ({status} {}: {}); see the note in problems/.",
                printable(code),
                printable(detail)
            ),
        ),
    };
    format!(
        "后续事件已接收 / FOLLOW-UP EVENT ACCEPTED\n==========================================\n\n\
材料 / Item:          {name}\n\
事件 / Event:         {kzh} / {ken}\n\
案号 / Case:          {case}\n\
电子文件编号 / Bundle: {bundle}\n\
事件编号 / Event id:  {id}\n\
发送给 / To:          {czh}\n                      {cen}\n\
接收时间 / Accepted:  {time}（北京时间 / Beijing time）\n\n\
状态：{szh}\n\
Status: {sen}\n\n\
原件已归档在 archive/{id}/。\n\
The originals are archived in archive/{id}/.\n",
        name = printable(&item.name),
        case = printable(item.case_number.as_str()),
        bundle = item.bundle_id,
        id = item.event_id,
        time = beijing(item.accepted_at),
    )
}

/// The existing `accepted/<name>.txt` of event `id`, if any.
pub fn accepted_note(accepted: &Path, name: &str, id: &EventId) -> Option<PathBuf> {
    candidate_names(name, id, ".txt")
        .into_iter()
        .map(|f| accepted.join(f))
        .find(|p| fs::read_to_string(p).is_ok_and(|t| t.contains(id.as_str())))
}

/// Writes (or rewrites) the clerk's note for `item` in `accepted`. With
/// [`Status::Waiting`] an existing note is left alone: it can only say more
/// (the sender's answer may land between the folder's check and its write).
pub fn write_accepted(
    accepted: &Path,
    item: &Item,
    committee: Option<&crate::config::Peer>,
    status: &Status,
) -> io::Result<()> {
    let text = render_accepted(item, committee, status);
    let waiting = *status == Status::Waiting;
    match accepted_note(accepted, &item.name, &item.event_id) {
        Some(_) if waiting => Ok(()),
        Some(p) => crate::fsutil::write_replace_atomic(&p, text.as_bytes()),
        None => {
            let p = free_name(accepted, &item.name, &item.event_id, ".txt");
            match crate::fsutil::write_new_atomic(&p, text.as_bytes()) {
                // The folder and the sender wrote it at once: the newer status wins.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match accepted_note(accepted, &item.name, &item.event_id) {
                        Some(_) if waiting => Ok(()),
                        Some(p) => crate::fsutil::write_replace_atomic(&p, text.as_bytes()),
                        None => Err(e),
                    }
                }
                other => other,
            }
        }
    }
}

/// The clerk's `problems/<name>.txt` for an event the committee refused.
pub fn render_refused(
    item: &Item,
    status: u16,
    code: &str,
    detail: &str,
    now: Timestamp,
) -> String {
    let (kzh, ken) = kind_names(&item.kind);
    let (zh, en) = match status {
        404 => (
            "仲裁委找不到这个案件或电子文件（或它不是发给本院的）。请核对 case_number 和 bundle_id。",
            "The committee does not know this case or bundle (or it was not sent to this court). Check case_number and bundle_id.",
        ),
        409 => (
            "仲裁委已经收到过同一事件编号但内容不同的事件。请联系信息科。",
            "The committee already has a different event with this event id. Ask IT.",
        ),
        422 => (
            "仲裁委认为事件内容不符合要求（见下面的代码和说明）。请改正后作为新的事件重新放入。",
            "The committee found the event's content unacceptable (see the code and detail below). Correct it and drop it again as a new event.",
        ),
        403 => (
            "仲裁委不接受本院节点发送事件（证书或登记信息有误）。请联系信息科。",
            "The committee does not accept events from this node (certificate or registration). Ask IT.",
        ),
        413 => (
            "事件（含附件）太大，仲裁委不接受。请压缩附件后重新放入。",
            "The event with its attachments is too large for the committee. Make the attachments smaller and drop it again.",
        ),
        _ => (
            "仲裁委拒收了这个事件。请联系信息科。",
            "The committee refused this event. Ask IT.",
        ),
    };
    format!(
        "后续事件被仲裁委拒收 / EVENT REFUSED BY THE COMMITTEE\n==========================================\n\n\
材料 / Item:          {name}\n\
事件 / Event:         {kzh} / {ken}\n\
案号 / Case:          {case}\n\
事件编号 / Event id:  {id}\n\
时间 / Time:          {time}（北京时间 / Beijing time）\n\
答复 / Answer:        {status} [{code}]\n\
说明 / Detail:        {detail}\n\n\
问题：{zh}\n\n\
Problem: {en}\n\n\
本事件不会再自动发送。原件在 archive/{id}/。\n\
This event will not be sent again by itself. The originals are in archive/{id}/.\n",
        name = printable(&item.name),
        case = printable(item.case_number.as_str()),
        id = item.event_id,
        time = beijing(now),
        code = printable(code),
        detail = printable(detail),
    )
}
