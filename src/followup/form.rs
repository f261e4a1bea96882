//! `event.toml`: what a court clerk writes to say something to the committee
//! (and through it the applicant), read into the parts of an [`Event`], with
//! every problem explained for the clerk in Chinese and English under a
//! stable code (`docs/followup-folder.md`).
//!
//! The form is read by hand from a TOML table rather than by serde, so that
//! each problem names its field in words a clerk understands: a field of
//! another kind, a deadline written as text, a list with a blank line.
//! The event's own rules ([`Event::validate`]) are then checked on the
//! finished event, so that the folder can never sign what a committee would
//! refuse for its fields.

use serde::Serialize;

use crate::event::{check_attachment_name, Contact, Details, Event, EventError, MAX_ATTACHMENTS};
use crate::types::{printable, BundleId, CaseRef, Timestamp};

/// The form's file name.
pub const FORM: &str = "event.toml";
/// Largest `event.toml` read.
pub const MAX_FORM_BYTES: u64 = 64 * 1024;

/// A stable, machine-readable reason code (`rejection.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// What was dropped is not a folder.
    NotAFolder,
    /// The folder has no `event.toml`.
    EventFileMissing,
    /// `event.toml` is not valid TOML, too large, or has an unknown key or a
    /// value of the wrong type.
    EventFileInvalid,
    /// `case_number` is not a valid case number.
    CaseNumberInvalid,
    /// No bundle of this case was delivered into this court's inbox.
    CaseUnknown,
    /// `bundle_id` names no delivered bundle of the case.
    BundleUnknown,
    /// The case has several bundles and `bundle_id` does not say which.
    BundleAmbiguous,
    /// The committee that sent the bundle is no longer in the peer directory.
    CommitteeUnknown,
    /// `kind` is not one of the event kinds.
    KindUnknown,
    /// A field the kind needs is absent.
    FieldMissing,
    /// A field that belongs to another kind.
    FieldNotAllowed,
    /// A text field is empty or only spaces.
    FieldBlank,
    /// A one-line field has a line break (or another control character).
    FieldNotOneLine,
    /// A text field is too long.
    FieldTooLong,
    /// Any other rule of a field (an e-mail address, a count, a character).
    FieldInvalid,
    /// A date-time field is not a TOML date-time with its offset.
    DatetimeInvalid,
    /// A listed attachment is not in the folder.
    AttachmentMissing,
    /// A file in the folder is not listed.
    FileUnlisted,
    /// An attachment's name is unsafe or listed twice.
    AttachmentNameInvalid,
    /// More attachments than an event may carry.
    TooManyAttachments,
    /// An attachment is empty.
    AttachmentEmpty,
    /// An attachment exceeds `followup.max_attachment_size`.
    AttachmentTooLarge,
    /// An attachment's content is not PDF, PNG or JPEG.
    AttachmentTypeNotAllowed,
    /// An attachment's extension does not match its content.
    AttachmentTypeMismatch,
    /// An attachment ends before its format says (a copy that did not finish).
    AttachmentTruncated,
    /// A link, folder or device where a file was expected, or a hard-linked file.
    NotARegularFile,
    /// A file could not be read.
    Unreadable,
    /// The item was still being written after it was taken.
    StillBeingWritten,
}

impl Code {
    /// The code as text.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One problem, explained for a clerk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable code.
    pub code: Code,
    /// The field or file at fault, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What is wrong and how to fix it, in Chinese.
    pub zh: String,
    /// The same in English.
    pub en: String,
}

impl Reason {
    /// A reason in both languages.
    pub fn new(code: Code, at: Option<&str>, zh: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            code,
            at: at.map(str::to_owned),
            zh: zh.into(),
            en: en.into(),
        }
    }
}

/// What the clerk's form says, before the case is looked up.
#[derive(Debug, Clone)]
pub struct Form {
    /// The committee's case number.
    pub case_number: CaseRef,
    /// The bundle, if given.
    pub bundle_id: Option<BundleId>,
    /// The kind and its fields.
    pub details: Details,
    /// A note to the applicant.
    pub note: Option<String>,
    /// Whom to contact.
    pub contact: Option<Contact>,
    /// Files listed as attachments, in order.
    pub attachments: Vec<String>,
}

/// The fields of each kind (other than `kind` itself).
fn kind_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "received" | "completed" => &[],
        "accepted" => &["court_case_number"],
        "materials-required" => &["items", "deadline", "place", "how"],
        "appointment" => &["at", "place", "officer", "phone", "purpose"],
        "ruling-issued" => &["summary"],
        "rejected" => &["reason"],
        _ => return None,
    })
}

const DETAIL_FIELDS: [&str; 11] = [
    "items",
    "deadline",
    "place",
    "how",
    "at",
    "officer",
    "phone",
    "purpose",
    "summary",
    "reason",
    "court_case_number",
];
const TOP_FIELDS: [&str; 7] = [
    "case_number",
    "bundle_id",
    "kind",
    "note",
    "contact",
    "attachments",
    "format",
];

fn invalid(at: &str, zh: String, en: String) -> Reason {
    Reason::new(Code::EventFileInvalid, Some(at), zh, en)
}

/// Reads the form's text. Every structural problem is reported at once;
/// the event's field rules are checked later, on the whole event
/// ([`explain`] turns their error into a reason).
pub fn parse(text: &str) -> Result<Form, Vec<Reason>> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!("{FORM}:{l}"));
            let where_zh = line.map(|l| format!("第 {l} 行")).unwrap_or_default();
            return Err(vec![Reason::new(
                Code::EventFileInvalid,
                at.as_deref().or(Some(FORM)),
                format!("{FORM} {where_zh}不是有效的 TOML 格式：{}。常见原因：文字没有加英文双引号，或用了中文引号。", printable(e.message())),
                format!("{FORM} is not valid TOML{}: {}. Text must be in straight double quotes.", line.map(|l| format!(" at line {l}")).unwrap_or_default(), printable(e.message())),
            )]);
        }
    };
    let mut reasons = Vec::new();
    for key in table.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) && !DETAIL_FIELDS.contains(&key.as_str()) {
            reasons.push(invalid(
                key,
                format!("{FORM} 中有无法识别的项目 “{}”。请检查拼写（见 docs/followup-folder.md）。", printable(key)),
                format!("{FORM} has an unknown key \"{}\". Check its spelling (see docs/followup-folder.md).", printable(key)),
            ));
        }
    }
    let text_of = |key: &str, reasons: &mut Vec<Reason>| -> Option<String> {
        match table.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            _ => {
                reasons.push(invalid(
                    key,
                    format!("“{key}” 必须是用英文双引号括起来的文字。"),
                    format!("\"{key}\" must be text in double quotes."),
                ));
                None
            }
        }
    };

    let case_number = match text_of("case_number", &mut reasons) {
        None if !table.contains_key("case_number") => {
            reasons.push(Reason::new(
                Code::FieldMissing,
                Some("case_number"),
                "缺少 case_number（仲裁委的案号，与 inbox 中案件文件夹的名称相同）。",
                "case_number is missing (the committee's case number, as the case folder in inbox/ is named).",
            ));
            None
        }
        None => None,
        Some(s) => match s.parse::<CaseRef>() {
            Ok(c) => Some(c),
            Err(e) => {
                reasons.push(Reason::new(
                    Code::CaseNumberInvalid,
                    Some("case_number"),
                    format!(
                        "案号 “{}” 无效（不能为空，不能含换行或斜杠）。",
                        printable(&s)
                    ),
                    format!("The case number \"{}\" is not valid: {e}.", printable(&s)),
                ));
                None
            }
        },
    };
    let bundle_id = text_of("bundle_id", &mut reasons).and_then(|s| match s.parse::<BundleId>() {
        Ok(b) => Some(b),
        Err(e) => {
            reasons.push(Reason::new(
                Code::BundleUnknown,
                Some("bundle_id"),
                format!("bundle_id “{}” 不是有效的电子文件编号（26 个字符，见 inbox 中的文件夹名）。", printable(&s)),
                format!("bundle_id \"{}\" is not a bundle id ({e}); copy it from the folder name in inbox/.", printable(&s)),
            ));
            None
        }
    });
    let kind = match text_of("kind", &mut reasons) {
        None if !table.contains_key("kind") => {
            reasons.push(Reason::new(
                Code::FieldMissing,
                Some("kind"),
                format!(
                    "缺少 kind（事件类型），应为以下之一：{}。",
                    Details::KINDS.join("、")
                ),
                format!(
                    "kind is missing; it must be one of {}.",
                    Details::KINDS.join(", ")
                ),
            ));
            None
        }
        None => None,
        Some(k) if kind_fields(&k).is_none() => {
            reasons.push(Reason::new(
                Code::KindUnknown,
                Some("kind"),
                format!(
                    "事件类型 “{}” 无法识别，应为以下之一：{}。",
                    printable(&k),
                    Details::KINDS.join("、")
                ),
                format!(
                    "The kind \"{}\" is unknown; it must be one of {}.",
                    printable(&k),
                    Details::KINDS.join(", ")
                ),
            ));
            None
        }
        Some(k) => Some(k),
    };
    if let Some(f) = text_of("format", &mut reasons) {
        if f != "sealpost-followup/1" {
            reasons.push(invalid(
                "format",
                format!(
                    "format 只能是 \"sealpost-followup/1\"（也可以省略），而不是 “{}”。",
                    printable(&f)
                ),
                format!(
                    "format may only be \"sealpost-followup/1\" (or left out), not \"{}\".",
                    printable(&f)
                ),
            ));
        }
    }
    let note = text_of("note", &mut reasons);

    let contact = match table.get("contact") {
        None => None,
        Some(toml::Value::Table(t)) => {
            let get = |k: &str, reasons: &mut Vec<Reason>| match t.get(k) {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    reasons.push(invalid(
                        &format!("contact.{k}"),
                        format!("[contact] 中的 “{k}” 必须是用英文双引号括起来的文字。"),
                        format!("\"{k}\" in [contact] must be text in double quotes."),
                    ));
                    None
                }
            };
            for k in t.keys() {
                if !["name", "phone", "email"].contains(&k.as_str()) {
                    reasons.push(invalid(
                        &format!("contact.{k}"),
                        format!(
                            "[contact] 中有无法识别的项目 “{}”（只能有 name、phone、email）。",
                            printable(k)
                        ),
                        format!(
                            "[contact] has an unknown key \"{}\" (only name, phone, email).",
                            printable(k)
                        ),
                    ));
                }
            }
            let (name, phone, email) = (
                get("name", &mut reasons),
                get("phone", &mut reasons),
                get("email", &mut reasons),
            );
            match (name, phone) {
                (Some(name), Some(phone)) => Some(Contact { name, phone, email }),
                _ => {
                    reasons.push(Reason::new(
                        Code::FieldMissing,
                        Some("contact"),
                        "[contact] 必须同时写明 name（联系人或部门）和 phone（电话）。",
                        "[contact] needs both name (person or desk) and phone.",
                    ));
                    None
                }
            }
        }
        Some(_) => {
            reasons.push(invalid(
                "contact",
                "contact 必须写成 [contact] 表格（name、phone、email）。".into(),
                "contact must be a [contact] table (name, phone, email).".into(),
            ));
            None
        }
    };

    let mut attachments = Vec::new();
    match table.get("attachments") {
        None => {}
        Some(toml::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                match v.as_table().and_then(|t| {
                    (t.len() == 1)
                        .then(|| t.get("file").and_then(|f| f.as_str()))
                        .flatten()
                }) {
                    Some(f) => attachments.push(f.to_owned()),
                    None => reasons.push(invalid(
                        &format!("attachments[{i}]"),
                        format!(
                            "第 {} 个 [[attachments]] 只能写一项 file = \"文件名\"。",
                            i + 1
                        ),
                        format!(
                            "[[attachments]] number {} must hold exactly file = \"name\".",
                            i + 1
                        ),
                    )),
                }
            }
        }
        Some(_) => reasons.push(invalid(
            "attachments",
            "附件要逐个写成 [[attachments]] 加 file = \"文件名\"。".into(),
            "Attachments are listed one by one as [[attachments]] with file = \"name\".".into(),
        )),
    }
    if attachments.len() > MAX_ATTACHMENTS {
        reasons.push(Reason::new(
            Code::TooManyAttachments,
            Some("attachments"),
            format!(
                "附件最多 {MAX_ATTACHMENTS} 个，这里列了 {} 个。",
                attachments.len()
            ),
            format!(
                "At most {MAX_ATTACHMENTS} attachments are allowed; {} are listed.",
                attachments.len()
            ),
        ));
    }

    let details = kind.and_then(|k| details(&table, &k, &mut reasons));
    match (case_number, details) {
        (Some(case_number), Some(details)) if reasons.is_empty() => Ok(Form {
            case_number,
            bundle_id,
            details,
            note,
            contact,
            attachments,
        }),
        _ => Err(reasons),
    }
}

/// The kind's fields: each present, nothing of another kind.
fn details(table: &toml::Table, kind: &str, reasons: &mut Vec<Reason>) -> Option<Details> {
    let wanted = kind_fields(kind)?;
    let before = reasons.len();
    for f in DETAIL_FIELDS {
        if table.contains_key(f) && !wanted.contains(&f) {
            reasons.push(Reason::new(
                Code::FieldNotAllowed,
                Some(f),
                format!(
                    "“{f}” 不属于事件类型 {kind}，请删除（{kind} 需要的项目：{}）。",
                    none_or(wanted)
                ),
                format!(
                    "\"{f}\" does not belong to the kind {kind}; remove it ({kind} takes: {}).",
                    none_or(wanted)
                ),
            ));
        }
    }
    for f in wanted {
        if !table.contains_key(*f) {
            reasons.push(Reason::new(
                Code::FieldMissing,
                Some(f),
                format!("事件类型 {kind} 必须写明 “{f}”。"),
                format!("The kind {kind} needs \"{f}\"."),
            ));
        }
    }
    if reasons.len() > before {
        return None;
    }
    let mut text = |k: &str| match table.get(k) {
        Some(toml::Value::String(s)) => Some(s.clone()),
        _ => {
            reasons.push(invalid(
                k,
                format!("“{k}” 必须是用英文双引号括起来的文字（多行文字用三个双引号 \"\"\"）。"),
                format!("\"{k}\" must be text in double quotes (\"\"\" for several lines)."),
            ));
            None
        }
    };
    let d = match kind {
        "received" => Some(Details::Received {}),
        "completed" => Some(Details::Completed {}),
        "accepted" => text("court_case_number").map(|c| Details::Accepted {
            court_case_number: c,
        }),
        "ruling-issued" => text("summary").map(|summary| Details::RulingIssued { summary }),
        "rejected" => text("reason").map(|reason| Details::Rejected { reason }),
        "materials-required" => {
            let (place, how) = (text("place"), text("how"));
            let items = match table.get("items") {
                Some(toml::Value::Array(a)) if a.iter().all(toml::Value::is_str) => Some(
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => {
                    reasons.push(invalid(
                        "items",
                        "items 必须是文字列表，例如 items = [\"身份证复印件\", \"劳动合同\"]。".into(),
                        "items must be a list of texts, e.g. items = [\"copy of ID card\", \"labour contract\"].".into(),
                    ));
                    None
                }
            };
            let deadline = datetime(table, "deadline", reasons);
            match (items, deadline, place, how) {
                (Some(items), Some(deadline), Some(place), Some(how)) => {
                    Some(Details::MaterialsRequired {
                        items,
                        deadline,
                        place,
                        how,
                    })
                }
                _ => None,
            }
        }
        "appointment" => {
            let (place, officer, phone, purpose) = (
                text("place"),
                text("officer"),
                text("phone"),
                text("purpose"),
            );
            let at = datetime(table, "at", reasons);
            match (at, place, officer, phone, purpose) {
                (Some(at), Some(place), Some(officer), Some(phone), Some(purpose)) => {
                    Some(Details::Appointment {
                        at,
                        place,
                        officer,
                        phone,
                        purpose,
                    })
                }
                _ => None,
            }
        }
        _ => None,
    };
    d.filter(|_| reasons.len() == before)
}

fn none_or(fields: &[&str]) -> String {
    if fields.is_empty() {
        "无 / none".to_owned()
    } else {
        fields.join(", ")
    }
}

/// A TOML date-time with its offset (`2026-12-20T17:00:00+08:00`), in UTC.
fn datetime(table: &toml::Table, key: &str, reasons: &mut Vec<Reason>) -> Option<Timestamp> {
    let bad = |reasons: &mut Vec<Reason>, what_zh: &str, what_en: &str| {
        reasons.push(Reason::new(
            Code::DatetimeInvalid,
            Some(key),
            format!("“{key}” {what_zh}。请写成不加引号的日期时间并带上时区，例如 {key} = 2026-12-20T17:00:00+08:00（北京时间）。"),
            format!("\"{key}\" {what_en}. Write a date and time with its offset and without quotes, e.g. {key} = 2026-12-20T17:00:00+08:00 (Beijing time)."),
        ));
        None
    };
    match table.get(key) {
        Some(toml::Value::Datetime(dt)) => {
            if dt.date.is_none() || dt.time.is_none() {
                return bad(reasons, "缺少日期或时间", "lacks its date or its time");
            }
            if dt.offset.is_none() {
                return bad(
                    reasons,
                    "没有写时区（例如 +08:00）",
                    "has no offset (such as +08:00)",
                );
            }
            let text = dt.to_string().replacen(' ', "T", 1);
            match time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => Timestamp::from_unix(t.unix_timestamp()),
                Err(_) => bad(
                    reasons,
                    "不是有效的日期时间",
                    "is not a valid date and time",
                ),
            }
        }
        Some(toml::Value::String(_)) => bad(
            reasons,
            "写成了带引号的文字，不是日期时间",
            "is text in quotes, not a date and time",
        ),
        _ => bad(reasons, "不是日期时间", "is not a date and time"),
    }
}

/// An attachment name's problem, if any (both the event's rule and the
/// stricter rule for files on every platform).
pub fn attachment_name_problem(name: &str) -> Option<String> {
    check_attachment_name(name).err().or_else(|| {
        crate::application::check_safe_name(name)
            .err()
            .map(str::to_owned)
    })
}

/// A field rule the finished event breaks, for the clerk. The event module's
/// English text is kept; the code and the Chinese are chosen by the kind of
/// problem (the event module's wording, pinned by its own tests).
pub fn explain(e: &EventError) -> Reason {
    match e {
        EventError::Field { field, problem } => {
            let at = field.strip_prefix("details.").unwrap_or(field);
            let (code, zh) = if problem == "is blank" {
                (Code::FieldBlank, format!("“{at}” 是空的，请填写内容。"))
            } else if problem.contains("must be one line") {
                (
                    Code::FieldNotOneLine,
                    format!("“{at}” 只能写一行，不能换行（多行内容请写在 how、purpose、summary、reason 或 note 中）。"),
                )
            } else if problem.contains("characters long") {
                (
                    Code::FieldTooLong,
                    format!("“{at}” 太长：{problem}。请缩短。"),
                )
            } else if problem.contains("only a line feed") {
                (
                    Code::FieldInvalid,
                    format!("“{at}” 含有不允许的控制字符（只允许普通换行）。"),
                )
            } else {
                (
                    Code::FieldInvalid,
                    format!("“{at}” 不符合要求：{problem}。"),
                )
            };
            Reason::new(code, Some(at), zh, format!("\"{at}\" {problem}."))
        }
        other => Reason::new(
            Code::FieldInvalid,
            None,
            format!("事件不符合格式要求：{other}。"),
            format!("The event breaks a rule of its format: {other}."),
        ),
    }
}

/// The event the form describes, once its case, bundle and committee are
/// known and its attachments described; checked with [`Event::validate`].
pub fn finish(form: &Form, base: Event) -> Result<Event, Reason> {
    let ev = Event {
        details: form.details.clone(),
        contact: form.contact.clone(),
        note: form.note.clone(),
        ..base
    };
    ev.validate().map_err(|e| explain(&e))?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<Code> {
        match parse(text) {
            Ok(_) => vec![],
            Err(r) => r.iter().map(|r| r.code).collect(),
        }
    }

    #[test]
    fn a_materials_request_with_an_offset_deadline_is_read_in_utc() {
        let f = parse(
            r#"case_number = "深劳人仲案〔2026〕3310号"
kind = "materials-required"
items = ["身份证复印件"]
deadline = 2026-12-20T17:00:00+08:00
place = "立案庭"
how = """现场提交
原件"""
"#,
        )
        .expect("valid");
        let Details::MaterialsRequired { deadline, .. } = f.details else {
            panic!("kind")
        };
        assert_eq!(deadline.to_string(), "2026-12-20T09:00:00Z");
    }

    #[test]
    fn deadlines_in_quotes_or_without_offset_are_not_datetimes() {
        for d in ["\"2026-12-20\"", "2026-12-20T17:00:00", "2026-12-20"] {
            let text = format!(
                "case_number = \"x\"\nkind = \"materials-required\"\nitems = [\"a\"]\ndeadline = {d}\nplace = \"p\"\nhow = \"h\"\n"
            );
            assert_eq!(codes(&text), vec![Code::DatetimeInvalid], "{d}");
        }
    }

    #[test]
    fn fields_of_another_kind_and_missing_fields_are_named() {
        assert_eq!(
            codes("case_number = \"x\"\nkind = \"rejected\"\nplace = \"p\"\n"),
            vec![Code::FieldNotAllowed, Code::FieldMissing]
        );
        assert_eq!(
            codes("case_number = \"x\"\nkind = \"summons\"\n"),
            vec![Code::KindUnknown]
        );
    }
}
