//! What clerks read: `REJECTED.txt`, `accepted/<name>.txt`,
//! `problems/<name>.txt`, and the names those notes take.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Busy, IntakeError};
use crate::application::{Application, Reason, ReasonCode, Rejection};
use crate::types::{printable, BundleId, Timestamp};

/// The reason given when an item was still being written.
pub(super) fn still_being_written(name: &str, busy: &Busy, timeout: Duration) -> Reason {
    let shown = printable(name);
    let (zh_what, en_what) = match busy {
        Busy::Writing(f) => {
            let f = printable(f);
            (
                format!("文件 “{f}” 在被接收后仍在被写入"),
                format!("the file \"{f}\" was still being written after the item was taken"),
            )
        }
        Busy::Changing => (
            "材料在被接收后仍在变化（文件仍在复制或被修改）".to_owned(),
            "the item kept changing after it was taken (files still being copied or edited)"
                .to_owned(),
        ),
    };
    Reason::new(
        ReasonCode::StillBeingWritten,
        Some(name),
        format!(
            "“{shown}”：{zh_what}，等待 {} 秒后仍未完成，无法保证封装的就是最终内容。请先把所有文件复制完，最后再放 READY 文件（或整个文件夹复制完成后再放入 intake）。",
            timeout.as_secs()
        ),
        format!(
            "\"{shown}\": {en_what}, and it was not finished within {} s, so what would be sealed could not be guaranteed to be the final content. Copy every file first and write READY last (or move the finished folder into intake/ in one step).",
            timeout.as_secs()
        ),
    )
}

/// Removes a clerk's note, if there is one.
pub(super) fn remove_note(note: Option<&Path>) {
    if let Some(p) = note {
        let _ = fs::remove_file(p);
    }
}

/// The clerk's `problems/<name>.txt`.
pub(super) fn render_problem(
    name: &str,
    e: &IntakeError,
    attempt: u32,
    now: Timestamp,
    wait: Duration,
) -> String {
    let (zh, en) = if e.is_permission_denied() {
        (
            "系统没有权限移动或读取这份材料（权限不足）。请联系信息科检查共享文件夹的权限：sealpost 服务必须能移动放入 intake 的文件夹和文件。",
            "The node is not allowed to move or read this item (permission denied). Ask IT to check the share's permissions: the sealpost service must be able to move what is dropped into intake/.",
        )
    } else if e.is_disk_full() {
        (
            "服务器磁盘已满，暂停接收。请联系信息科。",
            "The server's disk is full; intake is paused. Ask IT.",
        )
    } else {
        (
            "处理时服务器出错，系统会自动重试。如果一直出现，请联系信息科。",
            "The node failed while handling this item and will try again by itself. If this persists, ask IT.",
        )
    };
    let next = Timestamp::from_unix(now.unix() + i64::try_from(wait.as_secs()).unwrap_or(0))
        .unwrap_or(now);
    let shown = printable(name);
    format!(
        "暂时无法处理 / NOT TAKEN YET\n==========================================\n\n\
材料 / Item:      {shown}\n\
时间 / Time:      {time}（北京时间 / Beijing time）\n\
已尝试 / Tries:   {attempt}\n\
下次重试 / Next:  {next}（北京时间 / Beijing time）\n\n\
问题：{zh}\n\n\
Problem: {en}\n\
Detail: {detail}\n\n\
材料原样留在原处，不需要重新放入。处理成功后本说明会自动删除。\n\
The item stays where it is; there is no need to drop it again. This note is removed once the item is taken.\n",
        time = beijing(now),
        next = beijing(next),
        detail = printable(&e.to_string()),
    )
}

pub(crate) fn reason_file_names(item: &str) -> (&'static str, &'static str) {
    if item == "REJECTED.txt" || item == "rejection.json" {
        ("REJECTED (sealpost).txt", "rejection (sealpost).json")
    } else {
        ("REJECTED.txt", "rejection.json")
    }
}

/// Appended to the claim name of an item whose name is not UTF-8.
pub(crate) const INVALID_NAME: &str = ".invalid-name";

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The two names a note or folder for `name` may take in `dir`: `<name><suffix>`,
/// or `<name> (<short id>)<suffix>` when that is taken. Long names are shortened
/// so that either fits the 255-byte limit of file names.
pub(crate) fn candidate_names(name: &str, id: &BundleId, suffix: &str) -> [String; 2] {
    let short = &id.as_str()[..8];
    let stem = truncate_utf8(name, 255 - suffix.len() - short.len() - 3);
    let plain = if name.len() + suffix.len() <= 255 {
        name
    } else {
        stem
    };
    [
        format!("{plain}{suffix}"),
        format!("{stem} ({short}){suffix}"),
    ]
}

/// The first free candidate name in `dir` (see [`candidate_names`]).
pub(crate) fn free_name(dir: &Path, name: &str, id: &BundleId, suffix: &str) -> PathBuf {
    let [plain, tagged] = candidate_names(name, id, suffix);
    let plain = dir.join(plain);
    if plain.symlink_metadata().is_err() {
        return plain;
    }
    dir.join(tagged)
}

pub(super) fn accepted_note_exists(dir: &Path, name: &str, id: &BundleId) -> bool {
    candidate_names(name, id, ".txt")
        .iter()
        .any(|f| fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains(id.as_str())))
}

pub(crate) fn beijing(t: Timestamp) -> String {
    t.beijing()
}

/// The most reasons `REJECTED.txt` lists; the rest are counted (all of them
/// are in `rejection.json`).
pub const MAX_LISTED_REASONS: usize = 20;

/// The clerk's `REJECTED.txt`.
pub fn render_rejection(name: &str, id: &BundleId, now: Timestamp, r: &Rejection) -> String {
    let name = printable(name);
    let mut s = String::new();
    s.push_str("申请未被接收 / APPLICATION NOT ACCEPTED\n");
    s.push_str("==========================================\n\n");
    s.push_str(&format!("材料 / Item:      {name}\n"));
    s.push_str(&format!(
        "时间 / Time:      {}（北京时间 / Beijing time）\n",
        beijing(now)
    ));
    s.push_str(&format!("退件编号 / Ref:   {id}\n\n"));
    s.push_str(&format!(
        "发现以下问题（共 {} 项） / Problems found ({}):\n\n",
        r.reasons.len(),
        r.reasons.len()
    ));
    for (i, reason) in r.reasons.iter().take(MAX_LISTED_REASONS).enumerate() {
        let file = reason
            .file
            .as_deref()
            .map(|f| format!(" — {}", printable(f)))
            .unwrap_or_default();
        s.push_str(&format!(
            "{}. [{}]{file}\n   {}\n   {}\n\n",
            i + 1,
            reason.code.as_str(),
            printable(&reason.zh),
            printable(&reason.en)
        ));
    }
    if r.reasons.len() > MAX_LISTED_REASONS {
        let more = r.reasons.len() - MAX_LISTED_REASONS;
        s.push_str(&format!(
            "……以及另外 {more} 项，完整列表见本文件夹中的 rejection.json。\n\
...and {more} more; rejection.json in this folder lists them all.\n\n"
        ));
    }
    s.push_str("怎样处理：按上面的说明改正后，把整个文件夹重新放入 intake 文件夹。\n");
    s.push_str(&format!(
        "原件完整保存在本文件夹的 “{name}” 中，未作任何改动。\n\n"
    ));
    s.push_str("What to do: correct the problems as described above and drop the whole folder into the intake folder again.\n");
    s.push_str(&format!(
        "The original is kept, unchanged, in \"{name}\" inside this folder.\n"
    ));
    s
}

/// The clerk's `accepted/<name>.txt`. It promises only what this node does:
/// whether the applicant is notified (`notifying`: a channel is configured),
/// and where the status file is.
pub fn render_acceptance(
    name: &str,
    id: &BundleId,
    now: Timestamp,
    app: &Application,
    court: &crate::config::Peer,
    notifying: bool,
) -> String {
    let (tell_zh, tell_en) = if notifying {
        (
            format!("法院签收及此后法院的每项要求，本系统都会通过电子邮件通知申请人（{}），进度见 status/ 文件夹中的状态文件。", printable(&app.applicant.email)),
            format!("The applicant is told by e-mail ({}) when the court signs for it and at each request of the court; the status file in status/ shows the progress.", printable(&app.applicant.email)),
        )
    } else {
        (
            "本系统未配置申请人通知，不会通知申请人，请按现行方式告知申请人；进度见 status/ 文件夹中的状态文件。".to_owned(),
            "Notifications are not configured on this node, so the applicant is not told by it: tell them as you do today; the status file in status/ shows the progress.".to_owned(),
        )
    };
    format!(
        "申请已接收 / APPLICATION ACCEPTED\n==========================================\n\n\
材料 / Item:          {name}\n\
案号 / Case:          {case}\n\
受理法院 / Court:     {zh}\n                      {en}\n\
电子文件编号 / Bundle: {id}\n\
接收时间 / Accepted:  {time}（北京时间 / Beijing time）\n\n\
下一步：申请已签名并加密，只有{zh}能够打开，正在等待法院系统取件；法院签收后，法院的签收回执会保存在本系统中。{tell_zh}原件已归档在 archive/{id}/。\n\n\
Next: the application is signed and encrypted so that only the court can open it, and waits for the court's system to collect it; when the court signs for it, its signed receipt is kept by this node. {tell_en} The originals are archived in archive/{id}/.\n",
        name = printable(name),
        case = printable(app.case_number.as_str()),
        zh = court.name_zh,
        en = court.name_en,
        time = beijing(now),
    )
}
