//! Applicant notifications against real parts: a real SMTP server on loopback
//! (Python's aiosmtpd, `tests/smtp/server.py`: STARTTLS or implicit TLS with a
//! test CA made here, AUTH, fault modes; it records every command line and
//! every message, decoded by Python's `email` package), and a real HTTP
//! receiver for the SMS webhook. Retries use a 50 ms backoff; tests wait for
//! outcomes with a timeout, never on the calendar.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::smtp::{header, text_part, Mode, Smtp, PASSWORD, USER};
use sealpost::config::{
    EmailSettings, EmailTransport, NotifySettings, OutboxPolicy, Secret, SmsSettings, SmtpSettings,
    SmtpTls,
};
use sealpost::event::{Contact, Details, Event, EVENT_FORMAT};
use sealpost::notify::{
    Channel, CourtInfo, Language, Notice, NoticeAttachment, Notifier, Outcome, OutcomeKind, State,
    What,
};
use sealpost::outbox::Outbox;
use sealpost::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "sz-lac";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

// ------------------------------------------------------------ notices

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn court() -> CourtInfo {
    CourtInfo {
        id: "sz-futian-court".parse().expect("id"),
        name_zh: "深圳市福田区人民法院".into(),
        name_en: "Futian District People's Court of Shenzhen".into(),
        phone: Some("0755-8888 0000".into()),
        email: Some("lian@futian-court.example.cn".into()),
    }
}

fn event(details: Details, case: &CaseRef, bundle: &BundleId) -> Event {
    Event {
        format: EVENT_FORMAT.into(),
        event_id: BundleId::generate(),
        court: "sz-futian-court".parse().expect("id"),
        committee: NODE.parse().expect("id"),
        case_number: case.clone(),
        bundle_id: *bundle,
        issued_at: t("2026-03-02T01:30:00Z"),
        details,
        contact: None,
        note: None,
        attachments: vec![],
    }
}

fn notice(what: What, language: Language, email: &str) -> Notice {
    let (case, bundle) = match &what {
        What::FollowUp { event, .. } => (event.case_number.clone(), event.bundle_id),
        What::Delivered { .. } => (
            "深劳人仲案〔2026〕17号".parse().expect("case"),
            BundleId::generate(),
        ),
    };
    let event_key = match &what {
        What::FollowUp { event, .. } => format!("event/{}", event.event_id),
        What::Delivered { .. } => format!("delivered/{bundle}"),
    };
    Notice {
        event_key,
        case_number: case,
        bundle_id: bundle,
        language,
        applicant_name: "张三".into(),
        email: Some(email.into()),
        mobile: None,
        court: court(),
        what,
        attachments: vec![],
    }
}

fn delivered(language: Language, email: &str) -> Notice {
    notice(
        What::Delivered {
            received_at: t("2026-03-01T08:15:00Z"),
            receipt_sha256: Sha256::of(b"receipt"),
        },
        language,
        email,
    )
}

fn follow_up(details: Details, language: Language, email: &str) -> Notice {
    let case: CaseRef = "深劳人仲案〔2026〕17号".parse().expect("case");
    let ev = event(details, &case, &BundleId::generate());
    notice(
        What::FollowUp {
            event: ev,
            received_at: t("2026-03-02T01:31:00Z"),
        },
        language,
        email,
    )
}

// ------------------------------------------------------------ the notifier

fn settings(email: Option<EmailSettings>, sms: Option<SmsSettings>) -> NotifySettings {
    NotifySettings {
        email,
        sms,
        attach: vec!["ruling-issued".into()],
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(200),
        max_attempts: 1000,
        ..NotifySettings::default()
    }
}

fn smtp_settings(port: u16, tls: SmtpTls, ca: Option<&Path>, auth: bool) -> EmailSettings {
    EmailSettings {
        transport: EmailTransport::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls,
            ca_pem: ca.map(|p| fs::read(p).expect("ca")),
            credentials: auth.then(|| (USER.to_owned(), Secret::new(PASSWORD.as_bytes().to_vec()))),
            timeout: Duration::from_secs(10),
        }),
        from: "深圳市劳动人事争议仲裁委员会 <noreply@lac.example.org>"
            .parse()
            .expect("from"),
        reply_to: None,
    }
}

struct Node {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    outbox: Outbox,
}

fn node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let outbox = Outbox::open(&path.join("data"), OutboxPolicy::default()).expect("outbox");
    Node {
        _dir: dir,
        dir: path,
        outbox,
    }
}

fn node_id() -> AgencyId {
    NODE.parse().expect("id")
}

/// A notifier whose outcomes arrive on the returned receiver.
fn notifier(node: &Node, s: NotifySettings) -> (Notifier, mpsc::UnboundedReceiver<Outcome>) {
    let n = Notifier::open(&node.outbox, s, node_id()).expect("open notifier");
    let (tx, rx) = mpsc::unbounded_channel();
    n.subscribe(Arc::new(move |o: &Outcome| {
        let _ = tx.send(o.clone());
    }));
    (n, rx)
}

/// Runs the notifier until the guard is dropped.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

fn run(n: &Notifier) -> Running {
    let stop = CancellationToken::new();
    let (n, s) = (n.clone(), stop.clone());
    let task = tokio::spawn(async move {
        n.run(s).await.expect("run");
    });
    Running { stop, task }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Outcome {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an outcome in time")
        .expect("outcomes")
}

/// Waits until `n` outcomes are Sent; returns every outcome seen.
async fn until_sent(rx: &mut mpsc::UnboundedReceiver<Outcome>, n: usize) -> Vec<Outcome> {
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|o: &&Outcome| matches!(o.result, OutcomeKind::Sent { .. }))
        .count()
        < n
    {
        seen.push(next(rx).await);
    }
    seen
}

fn expected_message_id(n: &Notice, recipient: &str) -> String {
    let id = sealpost::notify::record_id(&n.event_key, Channel::Email, recipient);
    sealpost::notify::message_id(&id, &node_id())
}

// ------------------------------------------------------------ tests: content

#[tokio::test]
async fn starttls_with_auth_sends_both_languages_applicants_first_with_a_stable_message_id() {
    let node = node();
    let pki_dir = node.dir.join("pki");
    fs::create_dir_all(&pki_dir).expect("mkdir");
    let smtp = Smtp::start(&pki_dir, Mode::StartTls, true, 0);
    let ca = pki_dir.join("ca.pem");
    let s = settings(
        Some(smtp_settings(smtp.port, SmtpTls::StartTls, Some(&ca), true)),
        None,
    );
    let (n, mut rx) = notifier(&node, s);
    let mut materials = follow_up(
        Details::MaterialsRequired {
            items: vec!["身份证复印件 / copy of ID card".into(), "银行流水".into()],
            deadline: t("2026-03-10T09:00:00Z"),
            place: "福田法院立案庭 3 号窗口".into(),
            how: "现场提交原件\n并附复印件".into(),
        },
        Language::Zh,
        "zhang.san@example.org",
    );
    if let What::FollowUp { event, .. } = &mut materials.what {
        event.contact = Some(Contact {
            name: "立案庭 李书记员".into(),
            phone: "0755-1234 5678".into(),
            email: None,
        });
    }
    let delivered = delivered(Language::En, "lee@example.org");
    assert_eq!(n.enqueue(&materials).expect("enqueue"), 1);
    assert_eq!(n.enqueue(&delivered).expect("enqueue"), 1);
    assert_eq!(n.enqueue(&materials).expect("again"), 0, "idempotent");
    let _run = run(&n);
    until_sent(&mut rx, 2).await;

    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    for m in &msgs {
        assert_eq!(m["auth"], true, "authenticated");
        assert_eq!(m["tls"], true, "over TLS");
        assert_eq!(m["rcpt_tos"].as_array().map(Vec::len), Some(1));
    }
    let lines = smtp.lines();
    let pos = |p: &str| {
        lines
            .iter()
            .position(|l| l.to_ascii_uppercase().starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in {lines:#?}"))
    };
    assert!(
        pos("STARTTLS") < pos("AUTH"),
        "AUTH only after STARTTLS: {lines:#?}"
    );

    // The Chinese-speaking applicant's message.
    let zh = msgs
        .iter()
        .find(|m| m["rcpt_tos"][0] == "zhang.san@example.org")
        .expect("zh message");
    let subject_raw = header(zh, "Subject")[0];
    assert!(subject_raw.contains("=?utf-8?"), "RFC 2047: {subject_raw}");
    assert_eq!(
        zh["subject"],
        "法院要求补充材料 / The court needs further materials from you [深劳人仲案〔2026〕17号]"
    );
    assert_eq!(
        header(zh, "Message-ID"),
        [expected_message_id(&materials, "zhang.san@example.org").as_str()]
    );
    assert_eq!(header(zh, "To"), ["zhang.san@example.org"]);
    assert!(header(zh, "From")[0].contains("noreply@lac.example.org"));
    assert!(header(zh, "Content-Type")[0].starts_with("multipart/alternative"));
    let text = text_part(zh, "text/plain");
    let html = text_part(zh, "text/html");
    let (zh_at, en_at) = (
        text.find("法院要求补充材料").expect("zh"),
        text.find("The court needs further materials").expect("en"),
    );
    assert!(zh_at < en_at, "the applicant's language first:\n{text}");
    for want in [
        "深劳人仲案〔2026〕17号",
        "深圳市福田区人民法院",
        "Futian District People's Court of Shenzhen",
        "立案庭 李书记员",
        "0755-1234 5678",
        "身份证复印件",
        "2026-03-10 17:00（北京时间，UTC+8）",
        "2026-03-10 17:00 China Standard Time (UTC+8)",
        "福田法院立案庭 3 号窗口",
    ] {
        assert!(text.contains(want), "{want} in text:\n{text}");
    }
    assert!(
        html.contains("Futian District People&#39;s Court of Shenzhen"),
        "{html}"
    );
    assert!(html.find("法院要求补充材料") < html.find("The court needs further"));
    assert!(!zh["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .any(|p| !p["filename"].is_null()));

    // The English-speaking applicant's: English first; the court's own
    // phone/e-mail as the contact (no event contact).
    let en = msgs
        .iter()
        .find(|m| m["rcpt_tos"][0] == "lee@example.org")
        .expect("en message");
    let text = text_part(en, "text/plain");
    assert!(
        text.find("has been delivered to the court") < text.find("已送达法院"),
        "{text}"
    );
    for want in [
        "2026-03-01 16:15 China Standard Time (UTC+8)",
        &Sha256::of(b"receipt").to_hex(),
        "0755-8888 0000",
        "lian@futian-court.example.cn",
        "深劳人仲案〔2026〕17号",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }

    let recs = n
        .records_for_case(&"深劳人仲案〔2026〕17号".parse().expect("case"))
        .expect("records");
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| matches!(r.state, State::Sent { .. })));
    let st = n.stats(Timestamp::now()).expect("stats");
    assert_eq!(st.by_channel[&Channel::Email].sent, 2);
    assert_eq!(st.by_channel[&Channel::Email].pending, 0);
}

#[tokio::test]
async fn implicit_tls_attaches_documents_only_for_the_configured_kinds() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Implicit, true, 0);
    let ca = node.dir.join("ca.pem");
    let s = settings(
        Some(smtp_settings(smtp.port, SmtpTls::Implicit, Some(&ca), true)),
        None,
    );
    let (n, mut rx) = notifier(&node, s);
    let pdf = node.dir.join("ruling.pdf");
    fs::write(&pdf, b"%PDF-1.7\n% a ruling\n%%EOF\n").expect("pdf");
    let doc = NoticeAttachment {
        name: "民事裁定书 ruling.pdf".into(),
        media_type: "application/pdf".into(),
        path: pdf,
    };
    let mut ruling = follow_up(
        Details::RulingIssued {
            summary: "准予诉前财产保全".into(),
        },
        Language::Zh,
        "a@example.org",
    );
    ruling.attachments = vec![doc.clone()];
    let mut appointment = follow_up(
        Details::Appointment {
            at: t("2026-03-05T02:00:00Z"),
            place: "第三法庭".into(),
            officer: "王法官".into(),
            phone: "0755-1111".into(),
            purpose: "询问保全财产线索".into(),
        },
        Language::En,
        "b@example.org",
    );
    appointment.attachments = vec![doc];
    n.enqueue(&ruling).expect("enqueue");
    n.enqueue(&appointment).expect("enqueue");
    let _run = run(&n);
    until_sent(&mut rx, 2).await;
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2);
    let by = |to: &str| {
        msgs.iter()
            .find(|m| m["rcpt_tos"][0] == to)
            .expect("message")
    };
    let r = by("a@example.org");
    assert_eq!(r["tls"], true);
    assert!(header(r, "Content-Type")[0].starts_with("multipart/mixed"));
    let att: Vec<&Value> = r["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| !p["filename"].is_null())
        .collect();
    assert_eq!(att.len(), 1, "{r:#?}");
    assert_eq!(att[0]["filename"], "民事裁定书 ruling.pdf");
    assert_eq!(att[0]["type"], "application/pdf");
    assert_eq!(att[0]["size"], 26);
    assert!(text_part(r, "text/plain").contains("准予诉前财产保全"));
    let a = by("b@example.org");
    assert!(header(a, "Content-Type")[0].starts_with("multipart/alternative"));
    let text = text_part(a, "text/plain");
    for want in [
        "2026-03-05 10:00 China Standard Time (UTC+8)",
        "第三法庭",
        "王法官",
        "0755-1111",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
}

#[tokio::test]
async fn file_transport_writes_one_eml_per_notification_even_when_repeated() {
    let node = node();
    let dir = node.dir.join("mail");
    let email = EmailSettings {
        transport: EmailTransport::File { dir: dir.clone() },
        from: "noreply@lac.example.org".parse().expect("from"),
        reply_to: Some("office@lac.example.org".parse().expect("reply-to")),
    };
    let (n, mut rx) = notifier(&node, settings(Some(email), None));
    let d = delivered(Language::Zh, "a@example.org");
    n.enqueue(&d).expect("enqueue");
    let _run = run(&n);
    until_sent(&mut rx, 1).await;
    let files: Vec<_> = fs::read_dir(&dir).expect("dir").flatten().collect();
    assert_eq!(files.len(), 1);
    let eml = fs::read_to_string(files[0].path()).expect("eml");
    assert!(eml.contains(&format!(
        "Message-ID: {}",
        expected_message_id(&d, "a@example.org")
    )));
    assert!(eml.contains("Reply-To: office@lac.example.org"));
}

// ------------------------------------------------------------ tests: injection

#[tokio::test]
async fn injection_in_every_field_gives_one_message_to_one_recipient_and_no_extra_command() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    let (n, mut rx) = notifier(
        &node,
        settings(
            Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
            None,
        ),
    );
    let long = "x".repeat(2000);
    let evil = format!(
        "A\r\nBcc: evil@x.example\r\n\r\n.\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<evil@x.example>\nSubject: x\rTo: evil@x.example\n{long}\r\n.\r\n"
    );
    let one_line = "Bcc: evil@x.example Subject: x";
    let mut notices = Vec::new();
    for kind in 0..3 {
        let details = match kind {
            0 => Details::MaterialsRequired {
                items: vec![evil.clone(), long.clone()],
                deadline: t("2026-03-10T09:00:00Z"),
                place: evil.clone(),
                how: evil.clone(),
            },
            1 => Details::Appointment {
                at: t("2026-03-05T02:00:00Z"),
                place: evil.clone(),
                officer: evil.clone(),
                phone: evil.clone(),
                purpose: evil.clone(),
            },
            _ => Details::Accepted {
                court_case_number: evil.clone(),
            },
        };
        let mut nt = follow_up(details, Language::Zh, "victim@example.org");
        nt.case_number = format!("{one_line} {}", "y".repeat(60))
            .parse()
            .expect("case");
        nt.applicant_name = evil.clone();
        nt.court.name_zh = evil.clone();
        nt.court.name_en = evil.clone();
        nt.court.phone = Some(evil.clone());
        nt.court.email = Some(evil.clone());
        if let What::FollowUp { event, .. } = &mut nt.what {
            event.note = Some(evil.clone());
            event.contact = Some(Contact {
                name: evil.clone(),
                phone: evil.clone(),
                email: Some(evil.clone()),
            });
        }
        notices.push(nt);
    }
    for nt in &notices {
        assert_eq!(n.enqueue(nt).expect("enqueue"), 1);
    }
    let _run = run(&n);
    until_sent(&mut rx, 3).await;

    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 3, "exactly one message per notice");
    let allowed: BTreeSet<&str> = [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "Date",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    .into();
    for m in &msgs {
        assert_eq!(m["rcpt_tos"], serde_json::json!(["victim@example.org"]));
        for (name, _) in m["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| (h[0].as_str().unwrap_or_default(), h[1].as_str()))
        {
            assert!(allowed.contains(name), "unexpected header {name:?}");
        }
        assert_eq!(header(m, "To"), ["victim@example.org"]);
        let subject = m["subject"].as_str().expect("subject");
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert!(subject.contains(one_line), "{subject:?}");
        // The text went where it belongs: the body.
        assert!(text_part(m, "text/plain").contains("Bcc: evil@x.example"));
        assert!(text_part(m, "text/html").contains("Bcc: evil@x.example"));
        assert!(
            !text_part(m, "text/html").contains("<evil@x.example>"),
            "escaped"
        );
    }
    // On the wire: per connection EHLO, MAIL, RCPT, DATA (and QUIT) only.
    let lines = smtp.lines();
    let verb = |l: &String| {
        l.split_whitespace()
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
    };
    let count = |v: &str| lines.iter().filter(|l| verb(l) == v).count();
    for l in &lines {
        assert!(
            ["EHLO", "MAIL", "RCPT", "DATA", "QUIT", "RSET", "NOOP"].contains(&verb(l).as_str()),
            "unexpected command line {l:?} in {lines:#?}"
        );
    }
    assert_eq!(count("MAIL"), 3, "{lines:#?}");
    assert_eq!(count("RCPT"), 3, "{lines:#?}");
    assert_eq!(count("DATA"), 3, "{lines:#?}");
    assert!(lines
        .iter()
        .filter(|l| verb(l) == "RCPT")
        .all(|l| l.contains("<victim@example.org>")));
}

#[tokio::test]
async fn a_malformed_recipient_address_fails_permanently_without_touching_the_relay() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    let (n, mut rx) = notifier(
        &node,
        settings(
            Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
            None,
        ),
    );
    n.enqueue(&delivered(
        Language::Zh,
        "victim@example.org\r\nRCPT TO:<evil@x.example>",
    ))
    .expect("enqueue");
    let _run = run(&n);
    let o = next(&mut rx).await;
    match &o.result {
        OutcomeKind::Failed { error, .. } => {
            assert!(error.contains("not an e-mail address"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(o.attempts, 1);
    assert!(smtp.lines().is_empty(), "no connection at all");
    assert_eq!(
        n.stats(Timestamp::now()).expect("stats").by_channel[&Channel::Email].failed,
        1
    );
}

// ------------------------------------------------------------ tests: failures

#[tokio::test]
async fn relay_down_for_a_while_then_back_delivers_each_message_exactly_once() {
    let node = node();
    let port = free_port();
    let (n, mut rx) = notifier(
        &node,
        settings(Some(smtp_settings(port, SmtpTls::None, None, false)), None),
    );
    let notices: Vec<Notice> = (0..3)
        .map(|i| delivered(Language::Zh, &format!("a{i}@example.org")))
        .collect();
    for nt in &notices {
        n.enqueue(nt).expect("enqueue");
    }
    let _run = run(&n);
    // Every one of them has failed at least once while the relay is down.
    let mut retried = BTreeSet::new();
    while retried.len() < 3 {
        let o = next(&mut rx).await;
        match &o.result {
            OutcomeKind::Retrying { error, .. } => {
                assert!(!error.is_empty());
                retried.insert(o.recipient.clone());
            }
            other => panic!("relay is down, yet {other:?}"),
        }
    }
    let stats = n.stats(Timestamp::now()).expect("stats");
    assert_eq!(stats.by_channel[&Channel::Email].pending, 3);
    assert!(stats.by_channel[&Channel::Email]
        .oldest_pending_age_secs
        .is_some());
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, port);
    until_sent(&mut rx, 3).await;
    let msgs = smtp.messages();
    let mut to: Vec<String> = msgs
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["a0@example.org", "a1@example.org", "a2@example.org"]);
    let stats = n.stats(Timestamp::now()).expect("stats");
    assert_eq!(stats.by_channel[&Channel::Email].sent, 3);
    assert_eq!(stats.by_channel[&Channel::Email].pending, 0);
    assert_eq!(
        stats.by_channel[&Channel::Email].oldest_pending_age_secs,
        None
    );
}

#[tokio::test]
async fn temporary_4xx_is_retried_then_sent_with_the_same_message_id() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    smtp.set_control(serde_json::json!({"fail_first": 2}));
    let (n, mut rx) = notifier(
        &node,
        settings(
            Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
            None,
        ),
    );
    let d = delivered(Language::En, "a@example.org");
    n.enqueue(&d).expect("enqueue");
    let _run = run(&n);
    let seen = until_sent(&mut rx, 1).await;
    let kinds: Vec<&str> = seen
        .iter()
        .map(|o| match &o.result {
            OutcomeKind::Sent { .. } => "sent",
            OutcomeKind::Retrying { error, .. } => {
                assert!(error.contains("451"), "{error}");
                "retrying"
            }
            OutcomeKind::Failed { .. } => "failed",
        })
        .collect();
    assert_eq!(kinds, ["retrying", "retrying", "sent"]);
    assert_eq!(seen[2].attempts, 3);
    let ids: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| header(m, "Message-ID")[0].to_owned())
        .collect();
    assert_eq!(ids, vec![expected_message_id(&d, "a@example.org"); 3]);
}

#[tokio::test]
async fn permanent_5xx_fails_with_the_servers_reply() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    smtp.set_control(serde_json::json!({"reject": ["gone@example.org"]}));
    let (n, mut rx) = notifier(
        &node,
        settings(
            Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
            None,
        ),
    );
    n.enqueue(&delivered(Language::Zh, "gone@example.org"))
        .expect("enqueue");
    let _run = run(&n);
    let o = next(&mut rx).await;
    match &o.result {
        OutcomeKind::Failed { error, .. } => {
            assert!(error.contains("550"), "{error}");
            assert!(error.contains("no such mailbox here"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(o.attempts, 1);
    let recs = n.records_for_case(&o.case_number).expect("records");
    assert!(matches!(recs[0].state, State::Failed { .. }));
    // Final: nothing more is tried.
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_connection_dropped_after_data_is_retried_with_the_same_message_id() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    smtp.set_control(serde_json::json!({"drop_after_data": 1}));
    let (n, mut rx) = notifier(
        &node,
        settings(
            Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
            None,
        ),
    );
    let d = delivered(Language::Zh, "a@example.org");
    n.enqueue(&d).expect("enqueue");
    let _run = run(&n);
    let seen = until_sent(&mut rx, 1).await;
    assert!(matches!(seen[0].result, OutcomeKind::Retrying { .. }));
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "the duplicate window, recognisable:");
    assert_eq!(
        header(&msgs[0], "Message-ID"),
        header(&msgs[1], "Message-ID")
    );
}

// ------------------------------------------------------------ tests: restarts

#[tokio::test]
async fn a_queue_reopened_after_a_restart_sends_each_notice_once() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    let s = settings(
        Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
        None,
    );
    let d = delivered(Language::Zh, "a@example.org");
    {
        let (n, _rx) = notifier(&node, s.clone());
        assert_eq!(n.enqueue(&d).expect("enqueue"), 1);
    } // "restart": the notifier is gone before it ran
    let (n, mut rx) = notifier(&node, s.clone());
    assert_eq!(n.enqueue(&d).expect("again"), 0);
    {
        let _run = run(&n);
        until_sent(&mut rx, 1).await;
    }
    drop(n);
    let (n, mut rx) = notifier(&node, s);
    assert_eq!(n.enqueue(&d).expect("once more"), 0, "sent is final");
    let _run = run(&n);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "nothing more to send"
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_record_left_sending_by_a_kill_is_resent_with_the_same_message_id() {
    let node = node();
    let smtp = Smtp::start(&node.dir, Mode::Plain, false, 0);
    // The relay takes the message and never answers: the node is "killed"
    // in the window between the relay's acceptance and its own record.
    smtp.set_control(serde_json::json!({"hang_after_data": 1}));
    let s = settings(
        Some(smtp_settings(smtp.port, SmtpTls::None, None, false)),
        None,
    );
    let d = delivered(Language::Zh, "a@example.org");
    {
        let (n, _rx) = notifier(&node, s.clone());
        n.enqueue(&d).expect("enqueue");
        let running = run(&n);
        tokio::time::timeout(WAIT, async {
            while smtp.messages().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the relay got the message");
        drop(running); // the kill: the attempt is abandoned mid-way
        let recs = n.records_for_case(&d.case_number).expect("records");
        assert!(
            matches!(recs[0].state, State::Sending { .. }),
            "durably sending: {:?}",
            recs[0].state
        );
    }
    let (n, mut rx) = notifier(&node, s);
    let _run = run(&n);
    let seen = until_sent(&mut rx, 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].attempts, 2);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2);
    let want = expected_message_id(&d, "a@example.org");
    assert_eq!(header(&msgs[0], "Message-ID"), [want.as_str()]);
    assert_eq!(header(&msgs[1], "Message-ID"), [want.as_str()]);
}

// ------------------------------------------------------------ tests: SMS webhook

/// The requests a receiver got: headers and body.
type Got = Arc<Mutex<Vec<(http::HeaderMap, Vec<u8>)>>>;

struct Hook {
    url: String,
    got: Got,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        self._task.abort();
    }
}

/// A receiver answering with `statuses` in turn (then 200).
async fn hook(statuses: Vec<u16>) -> Hook {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/sms/hook?v=1",
        listener.local_addr().expect("addr")
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(std::collections::VecDeque::from(statuses)));
    let g = got.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (g, statuses) = (g.clone(), statuses.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (g, statuses) = (g.clone(), statuses.clone());
                        async move {
                            assert_eq!(req.method(), http::Method::POST);
                            assert_eq!(req.uri().path(), "/sms/hook");
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            g.lock().expect("lock").push((headers, body));
                            let code = statuses.lock().expect("lock").pop_front().unwrap_or(200);
                            Ok::<_, hyper::Error>(
                                http::Response::builder()
                                    .status(code)
                                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                        b"{\"error\":\"test answer\"}",
                                    )))
                                    .expect("response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Hook {
        url,
        got,
        _task: task,
    }
}

const HMAC_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn sms_settings(url: &str) -> SmsSettings {
    SmsSettings {
        url: url.parse().expect("url"),
        hmac_key: Secret::new(HMAC_KEY.to_vec()),
        ca_pem: None,
        timeout: Duration::from_secs(10),
    }
}

fn sms_notice(mobile: &str) -> Notice {
    let mut nt = follow_up(
        Details::Accepted {
            court_case_number: "(2026)粤0304财保123号".into(),
        },
        Language::Zh,
        "unused@example.org",
    );
    nt.email = None;
    nt.mobile = Some(mobile.into());
    nt
}

#[tokio::test]
async fn sms_webhook_is_signed_retried_after_500_and_accepted_exactly_once() {
    let node = node();
    let h = hook(vec![500]).await;
    let (n, mut rx) = notifier(&node, settings(None, Some(sms_settings(&h.url))));
    assert_eq!(n.channels(), [Channel::Sms]);
    let nt = sms_notice("+86 138 0000 0000");
    assert_eq!(n.enqueue(&nt).expect("enqueue"), 1);
    let _run = run(&n);
    let seen = until_sent(&mut rx, 1).await;
    assert_eq!(seen.len(), 2);
    match &seen[0].result {
        OutcomeKind::Retrying { error, .. } => assert!(error.contains("500"), "{error}"),
        other => panic!("{other:?}"),
    }
    let got = h.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    let record_id = sealpost::notify::record_id(&nt.event_key, Channel::Sms, "+86 138 0000 0000");
    for (headers, body) in &got {
        let ts = headers["x-sealpost-timestamp"].to_str().expect("ts");
        ts.parse::<i64>().expect("unix seconds");
        let sig = headers["x-sealpost-signature"].to_str().expect("sig");
        let tag = hex_decode(sig.strip_prefix("sha256=").expect("sha256="));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HMAC_KEY);
        let signed = [ts.as_bytes(), b".", body.as_slice()].concat();
        ring::hmac::verify(&key, &signed, &tag).expect("the signature verifies");
        assert_eq!(headers["idempotency-key"], record_id.as_str());
        assert_eq!(headers["content-type"], "application/json");
        let v: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(v["to"], "+86 138 0000 0000");
        assert_eq!(v["language"], "zh");
        assert_eq!(v["kind"], "accepted");
        assert_eq!(v["case_number"], "深劳人仲案〔2026〕17号");
        assert_eq!(v["court"]["id"], "sz-futian-court");
        assert_eq!(v["event_key"], nt.event_key);
        assert_eq!(v["idempotency_key"], record_id);
        let text = v["text"].as_str().expect("text");
        assert!(text.contains("(2026)粤0304财保123号"), "{text}");
        assert!(text.contains("深劳人仲案〔2026〕17号"), "{text}");
    }
    // A tampered body would not verify.
    let (headers, body) = &got[0];
    let mut tampered = body.clone();
    tampered[0] = b' ';
    let ts = headers["x-sealpost-timestamp"].to_str().expect("ts");
    let tag = hex_decode(&headers["x-sealpost-signature"].to_str().expect("sig")[7..]);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HMAC_KEY);
    assert!(ring::hmac::verify(&key, &[ts.as_bytes(), b".", &tampered].concat(), &tag).is_err());
    match &seen[1].result {
        OutcomeKind::Sent { message_id, .. } => assert_eq!(message_id, &record_id),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "accepted once, nothing more"
    );
    assert_eq!(h.got.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn sms_webhook_400_is_a_permanent_failure_and_429_is_not() {
    let node = node();
    let h = hook(vec![429, 400]).await;
    let (n, mut rx) = notifier(&node, settings(None, Some(sms_settings(&h.url))));
    n.enqueue(&sms_notice("13800000000")).expect("enqueue");
    let _run = run(&n);
    assert!(matches!(
        next(&mut rx).await.result,
        OutcomeKind::Retrying { .. }
    ));
    let o = next(&mut rx).await;
    match &o.result {
        OutcomeKind::Failed { error, .. } => {
            assert!(error.contains("400"), "{error}");
            assert!(error.contains("test answer"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        n.stats(Timestamp::now()).expect("stats").by_channel[&Channel::Sms].failed,
        1
    );
}

#[tokio::test]
async fn no_channel_configured_queues_nothing() {
    let node = node();
    let (n, _rx) = notifier(&node, NotifySettings::default());
    assert!(n.channels().is_empty());
    assert_eq!(
        n.enqueue(&delivered(Language::Zh, "a@example.org"))
            .expect("enqueue"),
        0
    );
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
