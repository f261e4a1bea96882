//! What the applicant reads: subject, plain text, HTML and SMS text, in both
//! languages (the applicant's first). Every value that comes from the
//! applicant or the court is cleaned of control characters here and
//! HTML-escaped in the HTML part; nothing here goes into a header except the
//! subject, which lettre encodes (RFC 2047).

use std::fmt::Write as _;

use super::{Language, Notice, What};
use crate::event::{Details, Event, FieldValue};
use crate::types::Timestamp;

/// A rendered notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// One line, no control characters.
    pub subject: String,
    /// text/plain.
    pub text: String,
    /// text/html.
    pub html: String,
}

/// What the e-mail says about the documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Docs {
    /// Nothing to say (none, or not a kind whose documents are attached).
    NotAttached,
    /// These are attached.
    Attached(Vec<String>),
    /// They are too large to attach.
    TooLarge(Vec<String>),
}

/// One line of text: control characters (line breaks included) become spaces.
pub(crate) fn line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || is_invisible(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Text that may span lines: CR LF, CR and the Unicode line separators
/// become LF; other control characters become spaces.
fn multiline(s: &str) -> String {
    let s = s
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}'], "\n");
    s.chars()
        .map(|c| {
            if c == '\n' {
                c
            } else if c.is_control() || is_invisible(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// HTML-escapes text (element content and attribute values alike).
pub(crate) fn escape(s: &str) -> String {
    crate::types::html_escape(s)
}

/// `t` in China Standard Time, with the zone stated.
pub(crate) fn cst(t: Timestamp, lang: Language) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).expect("+08:00 is an offset");
    let d = t.datetime().to_offset(offset);
    let s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute()
    );
    match lang {
        Language::Zh => format!("{s}（北京时间，UTC+8）"),
        Language::En => format!("{s} China Standard Time (UTC+8)"),
    }
}

fn tr(lang: Language, zh: &str, en: &str) -> String {
    match lang {
        Language::Zh => zh.to_owned(),
        Language::En => en.to_owned(),
    }
}

/// A piece of a message.
enum Item {
    /// A paragraph.
    Para(String),
    /// Label and value (value may span lines).
    Field(String, String),
    /// Label and a list.
    List(String, Vec<String>),
}

/// The title of what happened.
pub(crate) fn title(what: &What, lang: Language) -> String {
    let (zh, en) = match what {
        What::Delivered { .. } => (
            "您的财产保全申请已送达法院",
            "Your property preservation application has been delivered to the court",
        ),
        What::FollowUp { event, .. } => match &event.details {
            Details::Received {} => (
                "法院已收到您的财产保全申请",
                "The court has received your application",
            ),
            Details::Accepted { .. } => (
                "法院已受理（立案）您的财产保全申请",
                "The court has accepted your application",
            ),
            Details::MaterialsRequired { .. } => (
                "法院要求补充材料",
                "The court needs further materials from you",
            ),
            Details::Appointment { .. } => ("法院约见通知", "Appointment with the court"),
            Details::RulingIssued { .. } => (
                "法院已作出财产保全裁定",
                "The court has issued its preservation ruling",
            ),
            Details::Rejected { .. } => (
                "法院未受理/驳回您的财产保全申请",
                "The court has rejected your application",
            ),
            Details::Completed {} => (
                "法院已办结您的财产保全申请",
                "The court has completed your application",
            ),
        },
    };
    tr(lang, zh, en)
}

/// Whom to contact: the event's contact, else the court's general phone/e-mail.
fn contact(n: &Notice, lang: Language) -> Option<String> {
    let ev_contact = match &n.what {
        What::FollowUp { event, .. } => event.contact.as_ref(),
        What::Delivered { .. } => None,
    };
    let parts: Vec<String> = match ev_contact {
        Some(c) => [Some(c.name.clone()), Some(c.phone.clone()), c.email.clone()]
            .into_iter()
            .flatten()
            .map(|s| line(&s))
            .collect(),
        None => [n.court.phone.clone(), n.court.email.clone()]
            .into_iter()
            .flatten()
            .map(|s| line(&s))
            .collect(),
    };
    (!parts.is_empty()).then(|| parts.join(if lang == Language::Zh { "，" } else { ", " }))
}

fn court_name(n: &Notice, lang: Language) -> String {
    match lang {
        Language::Zh => format!("{}（{}）", line(&n.court.name_zh), line(&n.court.name_en)),
        Language::En => format!("{} ({})", line(&n.court.name_en), line(&n.court.name_zh)),
    }
}

fn event_items(ev: &Event, lang: Language, items: &mut Vec<Item>) {
    let (zh, en) = match &ev.details {
        Details::Received {} => (
            "法院已收到并正在审查您的申请，暂无需您做任何事。",
            "The court has your application and is looking at it. Nothing is needed from you for now.",
        ),
        Details::Accepted { .. } => (
            "法院已受理您的申请。今后与法院联系时，请引用法院案号。",
            "The court has accepted your application. Quote the court's case number when you contact the court.",
        ),
        Details::MaterialsRequired { .. } => (
            "法院需要您补充以下材料，请在截止时间前提交：",
            "The court needs the following from you; please hand it in before the deadline:",
        ),
        Details::Appointment { .. } => (
            "法院约您面谈或联系，详情如下：",
            "The court asks to see you or to hear from you:",
        ),
        Details::RulingIssued { .. } => (
            "法院已就您的财产保全申请作出裁定。",
            "The court has ruled on your property preservation application.",
        ),
        Details::Rejected { .. } => (
            "法院未受理或驳回了您的申请。如有疑问，请联系法院或仲裁委。",
            "The court did not accept your application. If you have questions, contact the court or the arbitration committee.",
        ),
        Details::Completed {} => (
            "法院已办结您的财产保全申请。",
            "The court has finished with your property preservation application.",
        ),
    };
    items.push(Item::Para(tr(lang, zh, en)));
    for field in ev.details.fields() {
        let label = tr(lang, field.zh, field.en);
        items.push(match field.value {
            FieldValue::Line(v) => Item::Field(label, line(v)),
            FieldValue::Text(v) => Item::Field(label, multiline(v)),
            FieldValue::Time(at) => Item::Field(label, cst(at, lang)),
            FieldValue::List(v) => Item::List(label, v.iter().map(|s| line(s)).collect()),
        });
    }
    if let Some(note) = &ev.note {
        items.push(Item::Field(
            tr(lang, "法院附言", "Note from the court"),
            multiline(note),
        ));
    }
}

fn items(n: &Notice, lang: Language, docs: &Docs) -> Vec<Item> {
    let mut items = Vec::new();
    let f = |zh: &str, en: &str, v: String| Item::Field(tr(lang, zh, en), v);
    match &n.what {
        What::Delivered {
            received_at,
            receipt_sha256,
        } => {
            items.push(Item::Para(tr(
                lang,
                "仲裁委已将您的财产保全申请以电子方式送达法院，法院已签收。您无需再携带材料往返法院。",
                "The arbitration committee sent your property preservation application to the court electronically, and the court has signed for it. You need not carry any papers to the court.",
            )));
            items.push(f("签收时间", "Signed for at", cst(*received_at, lang)));
            items.push(f(
                "送达凭证编号（回执 SHA-256）",
                "Evidence reference (receipt SHA-256)",
                receipt_sha256.to_hex(),
            ));
        }
        What::FollowUp {
            event, received_at, ..
        } => {
            event_items(event, lang, &mut items);
            items.push(f(
                "法院通知时间",
                "Court notice issued",
                cst(event.issued_at, lang),
            ));
            items.push(f(
                "收到时间",
                "Received by the committee",
                cst(*received_at, lang),
            ));
        }
    }
    match docs {
        Docs::NotAttached => {}
        Docs::Attached(names) => items.push(Item::List(
            tr(lang, "附件", "Attached"),
            names.iter().map(|s| line(s)).collect(),
        )),
        Docs::TooLarge(names) => items.push(Item::List(
            tr(
                lang,
                "以下文件过大，未随邮件发送，请向仲裁委或法院索取",
                "These documents are too large to send by e-mail; ask the committee or the court for them",
            ),
            names.iter().map(|s| line(s)).collect(),
        )),
    }
    items.push(f("仲裁案号", "Case number", line(n.case_number.as_str())));
    items.push(f(
        "申请编号",
        "Application reference",
        n.bundle_id.to_string(),
    ));
    items.push(f("法院", "Court", court_name(n, lang)));
    if let Some(c) = contact(n, lang) {
        items.push(f("法院联系方式", "Court contact", c));
    }
    items
}

fn greeting(n: &Notice, lang: Language) -> String {
    match lang {
        Language::Zh => format!("尊敬的{}：", line(&n.applicant_name)),
        Language::En => format!("Dear {},", line(&n.applicant_name)),
    }
}

fn footer(lang: Language) -> String {
    tr(
        lang,
        "本邮件由系统自动发送，请勿直接回复。如需帮助，请联系仲裁委或上述法院。",
        "This message was sent automatically; please do not reply to it. For help, contact the arbitration committee or the court above.",
    )
}

fn text_section(n: &Notice, lang: Language, docs: &Docs, out: &mut String) {
    let _ = writeln!(out, "{}\n", title(&n.what, lang));
    let _ = writeln!(out, "{}\n", greeting(n, lang));
    for item in items(n, lang, docs) {
        match item {
            Item::Para(p) => {
                let _ = writeln!(out, "{p}\n");
            }
            Item::Field(label, value) => {
                let sep = if lang == Language::Zh { "：" } else { ": " };
                let mut lines = value.split('\n');
                let first = lines.next().unwrap_or_default();
                let _ = writeln!(out, "{label}{sep}{first}");
                for l in lines {
                    let _ = writeln!(out, "    {l}");
                }
            }
            Item::List(label, values) => {
                let sep = if lang == Language::Zh { "：" } else { ":" };
                let _ = writeln!(out, "{label}{sep}");
                for (i, v) in values.iter().enumerate() {
                    let _ = writeln!(out, "  {}. {v}", i + 1);
                }
            }
        }
    }
    let _ = writeln!(out, "\n{}", footer(lang));
}

fn html_section(n: &Notice, lang: Language, docs: &Docs, out: &mut String) {
    let _ = write!(
        out,
        "<section lang=\"{}\">\n<h2>{}</h2>\n<p>{}</p>\n",
        lang.code(),
        escape(&title(&n.what, lang)),
        escape(&greeting(n, lang))
    );
    let mut in_table = false;
    for item in items(n, lang, docs) {
        let is_field = matches!(item, Item::Field(..));
        if is_field && !in_table {
            out.push_str("<table>\n");
            in_table = true;
        } else if !is_field && in_table {
            out.push_str("</table>\n");
            in_table = false;
        }
        match item {
            Item::Para(p) => {
                let _ = writeln!(out, "<p>{}</p>", escape(&p));
            }
            Item::Field(label, value) => {
                let v: Vec<String> = value.split('\n').map(escape).collect();
                let _ = writeln!(
                    out,
                    "<tr><th align=\"left\" valign=\"top\">{}</th><td>{}</td></tr>",
                    escape(&label),
                    v.join("<br>")
                );
            }
            Item::List(label, values) => {
                let _ = writeln!(out, "<p>{}</p>\n<ol>", escape(&label));
                for v in values {
                    let _ = writeln!(out, "<li>{}</li>", escape(&v));
                }
                out.push_str("</ol>\n");
            }
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    let _ = write!(
        out,
        "<p><small>{}</small></p>\n</section>\n",
        escape(&footer(lang))
    );
}

/// Renders the e-mail: the applicant's language first, the other below.
pub(crate) fn render(n: &Notice, docs: &Docs) -> Rendered {
    let first = n.language;
    let second = first.other();
    let subject = line(&format!(
        "{} / {} [{}]",
        title(&n.what, first),
        title(&n.what, second),
        n.case_number.as_str()
    ));
    let mut text = String::new();
    text_section(n, first, docs, &mut text);
    text.push_str("\n----------------------------------------\n");
    text.push_str(&tr(second, "（中文版本）\n\n", "(English version)\n\n"));
    text_section(n, second, docs, &mut text);

    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n",
        first.code(),
        escape(&subject)
    );
    html_section(n, first, docs, &mut html);
    html.push_str("<hr>\n");
    html_section(n, second, docs, &mut html);
    html.push_str("</body>\n</html>\n");
    Rendered {
        subject,
        text,
        html,
    }
}

/// The SMS text: the applicant's language only, short.
pub(crate) fn sms(n: &Notice) -> String {
    let lang = n.language;
    let case = line(n.case_number.as_str());
    let detail = match &n.what {
        What::Delivered { received_at, .. } => match lang {
            Language::Zh => format!("法院已于{}签收", cst(*received_at, lang)),
            Language::En => format!("signed for by the court at {}", cst(*received_at, lang)),
        },
        What::FollowUp { event, .. } => match (&event.details, lang) {
            (Details::Accepted { court_case_number }, Language::Zh) => {
                format!("法院案号{}", line(court_case_number))
            }
            (Details::Accepted { court_case_number }, Language::En) => {
                format!("court case number {}", line(court_case_number))
            }
            (Details::MaterialsRequired { deadline, .. }, Language::Zh) => {
                format!("请于{}前补交材料，详见邮件", cst(*deadline, lang))
            }
            (Details::MaterialsRequired { deadline, .. }, Language::En) => format!(
                "hand in further materials by {}; see your e-mail",
                cst(*deadline, lang)
            ),
            (Details::Appointment { at, place, .. }, Language::Zh) => {
                format!("{}，{}", cst(*at, lang), line(place))
            }
            (Details::Appointment { at, place, .. }, Language::En) => {
                format!("{}, {}", cst(*at, lang), line(place))
            }
            (_, Language::Zh) => "详见邮件".to_owned(),
            (_, Language::En) => "see your e-mail".to_owned(),
        },
    };
    let contact = contact(n, lang);
    let text = match lang {
        Language::Zh => format!(
            "【财产保全】案件{case}：{}。{detail}。{}{}",
            title(&n.what, lang),
            line(&n.court.name_zh),
            contact.map(|c| format!("，联系：{c}")).unwrap_or_default()
        ),
        Language::En => format!(
            "[Preservation] Case {case}: {}. {detail}. {}{}",
            title(&n.what, lang),
            line(&n.court.name_en),
            contact
                .map(|c| format!(", contact: {c}"))
                .unwrap_or_default()
        ),
    };
    text.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::CourtInfo;
    use crate::types::{BundleId, Sha256};

    fn notice(lang: Language) -> Notice {
        Notice {
            event_key: "delivered/x".into(),
            case_number: "深劳人仲案〔2026〕1号".parse().expect("test value"),
            bundle_id: BundleId::generate(),
            language: lang,
            applicant_name: "<script>alert(1)</script>\r\nBcc: x".into(),
            email: None,
            mobile: None,
            court: CourtInfo {
                id: "sz-futian-court".parse().expect("test value"),
                name_zh: "福田法院".into(),
                name_en: "Futian & Co \"Court\"".into(),
                phone: Some("0755-1".into()),
                email: None,
            },
            what: What::Delivered {
                received_at: Timestamp::from_unix(1_772_323_200).expect("test value"), // 2026-03-01T00:00:00Z
                receipt_sha256: Sha256::of(b"r"),
            },
            attachments: vec![],
        }
    }

    #[test]
    fn times_are_china_standard_time_with_the_zone_stated() {
        let t = Timestamp::from_unix(1_772_323_200).expect("test value");
        assert_eq!(cst(t, Language::Zh), "2026-03-01 08:00（北京时间，UTC+8）");
        assert_eq!(
            cst(t, Language::En),
            "2026-03-01 08:00 China Standard Time (UTC+8)"
        );
    }

    #[test]
    fn every_value_is_escaped_in_html_and_one_line_in_the_subject() {
        let r = render(&notice(Language::En), &Docs::NotAttached);
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(r.html.contains("Futian &amp; Co &quot;Court&quot;"));
        assert!(!r.subject.contains(['\r', '\n']));
        assert!(
            !r.text.contains('\r'),
            "line breaks are the transport's business"
        );
        assert!(r.text.contains("Dear <script>alert(1)</script>  Bcc: x,"));
        assert!(
            r.text.find("Dear").expect("test value") < r.text.find("尊敬的").expect("test value")
        );
        let r = render(&notice(Language::Zh), &Docs::NotAttached);
        assert!(
            r.text.find("尊敬的").expect("test value") < r.text.find("Dear").expect("test value")
        );
        assert!(r.subject.starts_with("您的财产保全申请已送达法院 / Your"));
    }

    #[test]
    fn sms_text_is_short_and_in_the_applicants_language() {
        let s = sms(&notice(Language::Zh));
        assert!(
            s.contains("深劳人仲案〔2026〕1号") && s.contains("福田法院") && s.contains("0755-1"),
            "{s}"
        );
        assert!(!s.contains("Dear"));
        assert!(s.chars().count() <= 400);
    }
}
