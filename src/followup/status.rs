//! The clerks' status file of an application (`status/<item>.txt` in the
//! clerks' share): where it is now, the court's receipt (签收) time, what the
//! court asked for and by when, which notifications went out or failed, and
//! what the clerk must do — Chinese first, English below each line. Rewritten
//! atomically at every event, so a clerk never needs a terminal.

use std::fmt::Write as _;

use crate::cases::{CaseFile, CaseView, Entry, Step};
use crate::event::{Event, FieldValue};
use crate::notify::{Channel, CourtInfo};
use crate::types::{printable, Timestamp};

fn t(at: Timestamp) -> String {
    at.beijing()
}

/// One line of a value a court or an applicant wrote: shown, never obeyed.
fn shown(s: &str) -> String {
    printable(s).into_owned()
}

/// A multi-line value, indented under its label.
fn block(s: &str, indent: &str) -> String {
    s.trim_end()
        .split('\n')
        .map(|l| format!("{indent}{}", shown(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kind_names(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "received" => ("法院已收到", "received by the court"),
        "accepted" => ("法院已立案", "accepted by the court"),
        "materials-required" => ("需补充材料", "materials required"),
        "appointment" => ("约见/联系", "appointment"),
        "ruling-issued" => ("裁定已作出", "ruling issued"),
        "rejected" => ("法院不予受理", "rejected by the court"),
        "completed" => ("已办结", "completed"),
        _ => ("法院通知", "court event"),
    }
}

fn channel_names(c: &str) -> (&'static str, &'static str) {
    match c {
        "sms" => ("短信", "SMS"),
        _ => ("电子邮件", "e-mail"),
    }
}

fn about(event_key: &str, view: &CaseView) -> (String, String) {
    if event_key.starts_with("delivered/") {
        return ("法院已签收".into(), "the court signed for it".into());
    }
    let id = event_key.strip_prefix("event/").unwrap_or(event_key);
    let kind = view
        .events
        .iter()
        .find(|e| e.event.event_id.as_str() == id)
        .map(|e| e.event.details.kind())
        .unwrap_or("");
    let (zh, en) = kind_names(kind);
    (zh.into(), en.into())
}

/// What the timeline entry says, in Chinese and in English.
fn describe(e: &Entry, view: &CaseView) -> (String, String) {
    match &e.step {
        Step::Accepted { .. } => (
            "材料已接收（校验通过）".into(),
            "accepted (checks passed)".into(),
        ),
        Step::Sealed { bundle_id } => (
            format!("已签名加密，等待法院取件（{bundle_id}）"),
            format!("signed and encrypted, waiting for the court ({bundle_id})"),
        ),
        Step::Fetched { .. } => ("法院已下载".into(), "downloaded by the court".into()),
        Step::Delivered { received_at, .. } => (
            format!("法院已签收，签收时间 {}", t(*received_at)),
            format!("the court signed for it at {}", t(*received_at)),
        ),
        Step::PushFailed {
            attempts, error, ..
        } => (
            format!(
                "向法院投递失败（第 {attempts} 次），将自动重试：{}",
                shown(error)
            ),
            format!(
                "delivery to the court failed (attempt {attempts}), retried automatically: {}",
                shown(error)
            ),
        ),
        Step::Dead { reason, .. } => (
            format!("投递已停止：{}", shown(reason)),
            format!("delivery given up: {}", shown(reason)),
        ),
        Step::Cancelled { reason, .. } => (
            format!("投递已撤回：{}", shown(reason)),
            format!("delivery withdrawn: {}", shown(reason)),
        ),
        Step::Retried { .. } => ("重新投递".into(), "offered to the court again".into()),
        Step::FollowUp { kind, .. } => {
            let (zh, en) = kind_names(kind);
            (format!("法院通知：{zh}"), format!("from the court: {en}"))
        }
        Step::NotificationSent {
            event_key,
            channel,
            recipient,
        } => {
            let (czh, cen) = channel_names(channel);
            let (azh, aen) = about(event_key, view);
            (
                format!("已{czh}通知申请人（{azh}）：{}", shown(recipient)),
                format!("applicant notified by {cen} ({aen}): {}", shown(recipient)),
            )
        }
        Step::NotificationRetrying {
            event_key,
            channel,
            recipient,
            error,
            next_at,
        } => {
            let (czh, cen) = channel_names(channel);
            let (azh, aen) = about(event_key, view);
            (
                format!(
                    "{czh}通知（{azh}）暂未发出，将于 {} 重试：{}",
                    t(*next_at),
                    shown(error)
                ),
                format!(
                    "{cen} notice ({aen}) not sent yet, retried at {} ({}): {}",
                    t(*next_at),
                    shown(recipient),
                    shown(error)
                ),
            )
        }
        Step::NotificationFailed {
            event_key,
            channel,
            recipient,
            error,
        } => {
            let (czh, cen) = channel_names(channel);
            let (azh, aen) = about(event_key, view);
            (
                format!(
                    "{czh}通知（{azh}）发送失败：{}（{}）",
                    shown(error),
                    shown(recipient)
                ),
                format!(
                    "{cen} notice ({aen}) FAILED: {} ({})",
                    shown(error),
                    shown(recipient)
                ),
            )
        }
    }
}

/// What the court asked, as lines (Chinese and English labels).
fn event_lines(out: &mut String, e: &Event, received_at: Timestamp) {
    let (zh, en) = kind_names(e.details.kind());
    let _ = writeln!(out, "  【{zh} / {en}】 {}", t(received_at));
    for field in e.details.fields() {
        let label = format!("{} / {}", field.zh, field.en);
        let _ = match field.value {
            FieldValue::Line(v) => writeln!(out, "    {label}: {}", shown(v)),
            FieldValue::Text(v) => writeln!(out, "    {label}:\n{}", block(v, "      ")),
            FieldValue::Time(at) => {
                writeln!(out, "    {label}: {}（北京时间 / Beijing time）", t(at))
            }
            FieldValue::List(items) => {
                let _ = writeln!(out, "    {label}:");
                for i in items {
                    let _ = writeln!(out, "      - {}", shown(i));
                }
                Ok(())
            }
        };
    }
    for a in &e.attachments {
        let _ = writeln!(
            out,
            "    附件 / Attached: {} ({} bytes, sha256 {})",
            shown(&a.name),
            a.size,
            a.sha256
        );
    }
    if let Some(c) = &e.contact {
        let _ = writeln!(
            out,
            "    联系人 / Contact: {}  {}{}",
            shown(&c.name),
            shown(&c.phone),
            c.email
                .as_deref()
                .map(|m| format!("  {}", shown(m)))
                .unwrap_or_default()
        );
    }
    if let Some(n) = &e.note {
        let _ = writeln!(out, "    附言 / Note:\n{}", block(n, "      "));
    }
}

/// The status file's text.
pub fn render(
    view: &CaseView,
    file: &CaseFile,
    court: &CourtInfo,
    channels: &[Channel],
    now: Timestamp,
) -> String {
    let mut s = String::new();
    s.push_str("申请进度 / APPLICATION STATUS\n");
    s.push_str("================================\n\n");
    let _ = writeln!(
        s,
        "案号 / Case:            {}",
        shown(view.case_number.as_str())
    );
    let _ = writeln!(s, "申请人 / Applicant:     {}", shown(&file.applicant.name));
    let _ = writeln!(
        s,
        "法院 / Court:           {} ({})",
        court.name_zh, court.name_en
    );
    if let Some(src) = &file.source {
        let _ = writeln!(s, "材料 / Item:            {}", shown(src));
    }
    let _ = writeln!(
        s,
        "更新于 / Updated:       {}（北京时间 / Beijing time）\n",
        t(now)
    );

    // Where it is now.
    let last_bundle = view.bundles.last();
    let delivered = view.timeline.iter().rev().find_map(|e| match &e.step {
        Step::Delivered {
            received_at,
            receipt_sha256,
            ..
        } => Some((*received_at, *receipt_sha256)),
        _ => None,
    });
    let last_event = view.events.last();
    let (now_zh, now_en) = match (last_event, delivered, last_bundle.map(|b| b.state.as_str())) {
        (Some(e), _, _) => {
            let (zh, en) = kind_names(e.event.details.kind());
            (
                format!("法院已签收，最新法院通知：{zh}（见下文）。"),
                format!("The court has signed for it; its latest word: {en} (see below)."),
            )
        }
        (None, Some((at, _)), _) => (
            format!("法院已于 {} 签收，等待法院进一步通知。", t(at)),
            format!(
                "The court signed for it at {}; waiting for the court's next word.",
                t(at)
            ),
        ),
        (None, None, Some("fetched")) => (
            "法院已下载，等待法院签收回执。".into(),
            "The court has downloaded it; waiting for its signed receipt.".into(),
        ),
        (None, None, Some("dead")) => (
            "投递已停止，法院未签收（见“需要您做什么”）。".into(),
            "Delivery was given up; the court has NOT signed for it (see \"What you need to do\")."
                .into(),
        ),
        (None, None, Some("cancelled")) => {
            ("投递已撤回。".into(), "Delivery was withdrawn.".into())
        }
        (None, None, Some("failed")) => (
            "向法院投递暂时失败，系统会自动重试。".into(),
            "Delivery to the court failed for now; it is retried automatically.".into(),
        ),
        _ => (
            "已签名加密，等待法院取件，法院尚未签收。".into(),
            "Signed and encrypted, waiting for the court; the court has not signed for it yet."
                .into(),
        ),
    };
    let _ = writeln!(s, "现在 / Now:\n  {now_zh}\n  {now_en}\n");

    match delivered {
        Some((at, digest)) => {
            let _ = writeln!(s, "法院签收 / Court's receipt (签收):\n  {}（北京时间 / Beijing time）\n  回执摘要 / receipt digest: sha256 {digest}\n  送达证明 / proof of delivery: 本文件夹中与本文件同名的 .送达证明.html（可打印）和 .送达证明.zip（可验证）\n    the .送达证明.html (printable) and .送达证明.zip (verifiable) of the same name in this folder\n", t(at));
        }
        None => {
            let _ = writeln!(
                s,
                "法院签收 / Court's receipt (签收):\n  尚未签收 / not yet\n"
            );
        }
    }

    if !view.events.is_empty() {
        s.push_str("法院要求与通知 / What the court said:\n");
        for e in &view.events {
            event_lines(&mut s, &e.event, e.received_at);
        }
        s.push('\n');
    }

    // Notifications.
    s.push_str("通知申请人 / Notifications to the applicant:\n");
    if channels.is_empty() {
        s.push_str("  本节点未配置申请人通知：系统不会通知申请人，请按现行方式告知申请人。\n  Notifications are not configured on this node: the applicant is NOT told by this system; tell them as you do today.\n");
    } else {
        let names: Vec<_> = channels.iter().map(|c| channel_names(c.name())).collect();
        let _ = writeln!(
            s,
            "  已配置 / configured: {} / {}",
            names.iter().map(|n| n.0).collect::<Vec<_>>().join("、"),
            names.iter().map(|n| n.1).collect::<Vec<_>>().join(", ")
        );
        let mut any = false;
        for e in &view.timeline {
            if matches!(
                e.step,
                Step::NotificationSent { .. }
                    | Step::NotificationFailed { .. }
                    | Step::NotificationRetrying { .. }
            ) {
                let (zh, en) = describe(e, view);
                let _ = writeln!(s, "  {}  {zh}\n                    {en}", t(e.at));
                any = true;
            }
        }
        if !any {
            s.push_str("  尚未发送通知 / none sent yet\n");
        }
    }
    s.push('\n');

    // What the clerk must do.
    s.push_str("需要您做什么 / What you need to do:\n");
    let mut todo: Vec<(String, String)> = Vec::new();
    if matches!(last_bundle.map(|b| b.state.as_str()), Some("dead")) {
        todo.push((
            "投递已停止，法院没有收到：请联系信息科（运维可用 sealpost ctl retry 重新投递）。".into(),
            "Delivery was given up and the court did not receive it: contact IT (an operator can run `sealpost ctl retry`).".into(),
        ));
    }
    let failed: Vec<_> = view
        .timeline
        .iter()
        .filter(|e| matches!(e.step, Step::NotificationFailed { .. }))
        .collect();
    if !failed.is_empty() {
        todo.push((
            "有通知未能送达申请人（见上）：请电话联系申请人，告知法院的要求，并核对其电子邮箱。".into(),
            "A notification could not reach the applicant (see above): phone the applicant, tell them what the court needs, and check their e-mail address.".into(),
        ));
    }
    if channels.is_empty() && !view.events.is_empty() {
        todo.push((
            "本系统不通知申请人：请把上面的法院要求告知申请人。".into(),
            "This system does not notify the applicant: tell them what the court said above."
                .into(),
        ));
    }
    if todo.is_empty() {
        s.push_str("  无需操作。 / Nothing.\n");
    } else {
        for (zh, en) in todo {
            let _ = writeln!(s, "  ! {zh}\n    {en}");
        }
    }
    s.push('\n');

    s.push_str("经过 / Timeline (北京时间 / Beijing time):\n");
    for e in &view.timeline {
        let (zh, en) = describe(e, view);
        let _ = writeln!(s, "  {}  {zh}\n                    {en}", t(e.at));
    }
    s
}
