//! The committee's casework, through a real daemon: a court's follow-up
//! events over mTLS (stock curl) land on the case's timeline, in the clerks'
//! status file, in `sealpost ctl status CASE` and in the applicant's e-mail
//! (the file transport: `.eml` files); who may post or read what.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::node::{self, curl, wait_line, Node};
use common::{tiny_app, wait_until, Net, COMMITTEE, FUTIAN, NANSHAN};
use sealpost::event::{Attachment, Details, Event, EVENT_FORMAT};
use sealpost::event::{SignedEvent, Submission};
use sealpost::pki::SigningKey;
use sealpost::types::{BundleId, Sha256, Timestamp};

const CASE: &str = "深劳人仲案〔2026〕7001号";

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

fn enc(case: &str) -> String {
    percent_encoding::utf8_percent_encode(case, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Turns notifications on (file transport into `<net>/mail`, rulings attached).
fn with_mail(net: &Net) -> PathBuf {
    let mail = net.out("mail");
    fs::create_dir_all(&mail).expect("mkdir");
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        format!(
            "{text}\n[notify]\nattach = [\"ruling-issued\"]\n\n[notify.email]\ntransport = \"file\"\ndir = \"{}\"\nfrom = \"深圳市劳动人事争议仲裁委员会 <noreply@lac.example.org>\"\n",
            mail.display()
        ),
    )
    .expect("write");
    mail
}

fn mails(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .map(|e| fs::read_to_string(e.path()).expect("eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn status_file(net: &Net) -> PathBuf {
    net.config(COMMITTEE)
        .intake
        .root
        .join("status")
        .join("app-7001.txt")
}

/// Drops the application, has Futian fetch it and sign for it; returns its id.
fn deliver(net: &Net, node: &Node) -> String {
    deliver_with(net, node, |_| {})
}

/// [`deliver`], the application changed by `edit` before it is dropped.
fn deliver_with(net: &Net, node: &Node, edit: impl Fn(&Path)) -> String {
    let root = net.config(COMMITTEE).intake.root;
    let staging = net.out("staging-app-7001");
    tiny_app(&staging, CASE, FUTIAN);
    edit(&staging);
    fs::write(staging.join("READY"), "").expect("ready");
    fs::rename(&staging, root.join("intake").join("app-7001")).expect("drop");
    let id = wait_line(node, "ACCEPTED  app-7001")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let bundle = net.out("b.sealpost");
    let (status, bytes) = curl(net, node, FUTIAN, &format!("/v1/bundles/{id}"), &[]);
    assert_eq!(status, 200);
    fs::write(&bundle, bytes).expect("write");
    let o = Command::new(common::bin())
        .arg("-c")
        .arg(net.config_path(FUTIAN))
        .args(["receipt", "make"])
        .arg(&bundle)
        .output()
        .expect("receipt make");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let receipt = net.out("receipt.json");
    fs::write(&receipt, &o.stdout).expect("write");
    let (status, body) = curl(
        net,
        node,
        FUTIAN,
        &format!("/v1/bundles/{id}/receipt"),
        &[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", receipt.display()),
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    id
}

fn key_of(net: &Net, agency: &str) -> SigningKey {
    let dir = &net.agency(agency).dir;
    SigningKey::load(&dir.join("sign.key"), &dir.join("sign.pem")).expect("signing key")
}

/// An event of `court` about the delivered bundle, issued one minute ago.
fn event(court: &str, bundle: &str, details: Details) -> Event {
    Event {
        format: EVENT_FORMAT.into(),
        event_id: BundleId::generate(),
        court: court.parse().expect("id"),
        committee: COMMITTEE.parse().expect("id"),
        case_number: CASE.parse().expect("case"),
        bundle_id: bundle.parse().expect("bundle id"),
        issued_at: Timestamp::from_unix(Timestamp::now().unix() - 60).expect("time"),
        details,
        contact: None,
        note: None,
        attachments: vec![],
    }
}

fn submission(signed: SignedEvent, attachments: &[(&str, &[u8])]) -> Submission {
    use base64::Engine as _;
    Submission {
        event: signed.event,
        signature: signed.signature,
        signer: signed.signer,
        attachments: attachments
            .iter()
            .map(|(n, d)| sealpost::event::AttachmentData {
                name: (*n).to_owned(),
                data: base64::engine::general_purpose::STANDARD.encode(d),
            })
            .collect(),
    }
}

/// POSTs `s` to the case's events as `as_peer`: (status, body).
fn post(
    net: &Net,
    node: &Node,
    as_peer: &str,
    case: &str,
    s: &Submission,
) -> (u16, serde_json::Value) {
    let file = net.out(&format!("event-{}.json", common::random_u64()));
    fs::write(&file, serde_json::to_vec(s).expect("json")).expect("write");
    let (status, body) = curl(
        net,
        node,
        as_peer,
        &format!("/v1/cases/{}/events", enc(case)),
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", file.display()),
        ],
    );
    (status, json(&body))
}

fn ctl(net: &Net, args: &[&str]) -> String {
    let (code, out, err) = common::ctl(net, COMMITTEE, args);
    assert_eq!(code, Some(0), "ctl {args:?}: {err}");
    out
}

#[test]
fn a_courts_events_reach_the_timeline_the_status_file_and_the_applicants_mail() {
    let net = Net::new();
    let mail = with_mail(&net);
    let node = node::start(&net);
    let id = deliver(&net, &node);

    // Signed for: the status file says so, and the applicant has an e-mail
    // with the receipt's digest.
    let status = status_file(&net);
    wait_until(
        Duration::from_secs(20),
        "the status file shows the receipt",
        || {
            fs::read_to_string(&status)
                .is_ok_and(|t| t.contains("法院已于") && t.contains("receipt digest"))
        },
    );
    let receipt = fs::read(
        net.config(COMMITTEE)
            .node
            .data_dir
            .join("outbox/receipts")
            .join(format!("{id}.json")),
    )
    .expect("stored receipt");
    let digest = Sha256::of(&receipt).to_hex();
    wait_until(Duration::from_secs(20), "the delivered e-mail", || {
        mails(&mail).iter().any(|m| m.contains(&digest))
    });

    // Materials required: 201, then the same again: 200 and nothing new.
    let key = key_of(&net, FUTIAN);
    let deadline = Timestamp::from_unix(Timestamp::now().unix() + 14 * 86_400).expect("time");
    let mut ev = event(
        FUTIAN,
        &id,
        Details::MaterialsRequired {
            items: vec![
                "身份证复印件 / copy of ID card".into(),
                "劳动合同原件".into(),
            ],
            deadline,
            place: "福田法院立案庭 3 号窗口".into(),
            how: "现场提交原件及复印件各一份\n也可邮寄".into(),
        },
    );
    ev.note = Some("请按时提交。".into());
    let sub = submission(ev.sign(&key), &[]);
    let before = mails(&mail).len();
    let (st, body) = post(&net, &node, FUTIAN, CASE, &sub);
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["event_id"], ev.event_id.as_str());
    let (st, again) = post(&net, &node, FUTIAN, CASE, &sub);
    assert_eq!((st, &again["recorded_at"]), (200, &body["recorded_at"]));

    // The same id with other content is a conflict.
    let mut other = ev.clone();
    other.note = Some("改过的内容".into());
    let (st, body) = post(
        &net,
        &node,
        FUTIAN,
        CASE,
        &submission(other.sign(&key), &[]),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("event-id-conflict"))
    );

    // Another court, for this case: the same 404 as a case that does not exist.
    let nanshan = key_of(&net, NANSHAN);
    let theirs = event(NANSHAN, &id, Details::Received {});
    let (st, not_theirs) = post(
        &net,
        &node,
        NANSHAN,
        CASE,
        &submission(theirs.sign(&nanshan), &[]),
    );
    let mut ghost = event(NANSHAN, &id, Details::Received {});
    ghost.case_number = "深劳人仲案〔2026〕9999号".parse().expect("case");
    let (st2, unknown) = post(
        &net,
        &node,
        NANSHAN,
        "深劳人仲案〔2026〕9999号",
        &submission(ghost.sign(&nanshan), &[]),
    );
    assert_eq!((st, st2), (404, 404));
    assert_eq!(
        not_theirs, unknown,
        "a case that is not the court's looks like no case"
    );
    // Signed by Futian but posted over Nanshan's connection.
    let (st, body) = post(
        &net,
        &node,
        NANSHAN,
        CASE,
        &submission(event(FUTIAN, &id, Details::Received {}).sign(&key), &[]),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (422, Some("event-court-mismatch"))
    );
    // Not a court at all.
    let (st, body) = post(&net, &node, COMMITTEE, CASE, &sub);
    assert_eq!((st, body["code"].as_str()), (403, Some("not-a-court")));
    // A forged signature.
    let mut forged = sub.clone();
    forged.signature = {
        let s = &sub.signature;
        let swap = if &s[5..6] == "A" { "B" } else { "A" };
        format!("{}{swap}{}", &s[..5], &s[6..])
    };
    let (st, body) = post(&net, &node, FUTIAN, CASE, &forged);
    assert_eq!(
        (st, body["code"].as_str()),
        (422, Some("event-signature-invalid"))
    );

    // The applicant's e-mail carries the items and the deadline (Beijing time).
    wait_until(Duration::from_secs(20), "the materials e-mail", || {
        mails(&mail)
            .iter()
            .any(|m| m.contains("劳动合同原件") || m.contains("=E5=8A=B3"))
    });
    assert_eq!(
        mails(&mail).len(),
        before + 1,
        "one e-mail per event, repeats send nothing"
    );
    // The clerks' status file shows what the court asked for and by when.
    wait_until(
        Duration::from_secs(20),
        "the status file shows the request",
        || {
            fs::read_to_string(&status).is_ok_and(|t| {
                t.contains("需补充材料")
                    && t.contains("劳动合同原件")
                    && t.contains(&deadline.beijing())
                    && t.contains("Materials needed")
            })
        },
    );

    // Ruling issued, with the ruling attached (configured for this kind).
    let pdf = b"%PDF-1.7\n% ruling\n%%EOF\n".to_vec();
    let mut ruling = event(
        FUTIAN,
        &id,
        Details::RulingIssued {
            summary: "准予财产保全。".into(),
        },
    );
    ruling.attachments = vec![Attachment {
        name: "裁定书.pdf".into(),
        media_type: "application/pdf".into(),
        size: pdf.len() as u64,
        sha256: Sha256::of(&pdf),
    }];
    // Without its document it is refused; with a wrong one too.
    let (st, body) = post(
        &net,
        &node,
        FUTIAN,
        CASE,
        &submission(ruling.sign(&key), &[]),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (422, Some("event-attachment-invalid"))
    );
    let (st, body) = post(
        &net,
        &node,
        FUTIAN,
        CASE,
        &submission(ruling.sign(&key), &[("裁定书.pdf", b"%PDF-other")]),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (422, Some("event-attachment-invalid"))
    );
    let (st, body) = post(
        &net,
        &node,
        FUTIAN,
        CASE,
        &submission(ruling.sign(&key), &[("裁定书.pdf", &pdf)]),
    );
    assert_eq!(st, 201, "{body}");
    wait_until(
        Duration::from_secs(20),
        "the ruling e-mail with its attachment",
        || {
            mails(&mail)
                .iter()
                .any(|m| m.contains("attachment") && m.contains("application/pdf"))
        },
    );
    let stored = net
        .config(COMMITTEE)
        .node
        .data_dir
        .join("cases/events")
        .join(ruling.event_id.as_str())
        .join("裁定书.pdf");
    assert_eq!(fs::read(stored).expect("stored ruling"), pdf);

    // The case as its court sees it (once the ruling's notification is on
    // the timeline too), and as another court does not.
    let mut view = serde_json::Value::Null;
    wait_until(
        Duration::from_secs(20),
        "three notifications on the timeline",
        || {
            let (st, body) = curl(
                &net,
                &node,
                FUTIAN,
                &format!("/v1/cases/{}", enc(CASE)),
                &[],
            );
            assert_eq!(st, 200);
            view = json(&body);
            view["timeline"].as_array().is_some_and(|t| {
                t.iter()
                    .filter(|e| e["step"] == "notification-sent")
                    .count()
                    == 3
            })
        },
    );
    let steps: Vec<&str> = view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["step"].as_str().expect("step"))
        .collect();
    for want in [
        "accepted",
        "sealed",
        "fetched",
        "delivered",
        "follow-up",
        "notification-sent",
    ] {
        assert!(steps.contains(&want), "{want} missing from {steps:?}");
    }
    assert_eq!(view["events"].as_array().map(Vec::len), Some(2));
    assert!(
        !view.to_string().contains("applicant@example.com"),
        "addresses stay with the committee"
    );
    let (st, _) = curl(
        &net,
        &node,
        NANSHAN,
        &format!("/v1/cases/{}", enc(CASE)),
        &[],
    );
    assert_eq!(st, 404);

    // Operators see the same as the clerks.
    let text = ctl(&net, &["status", CASE]);
    assert!(
        text.contains("裁定已作出") && text.contains("ruling issued"),
        "{text}"
    );

    // A restart sends nothing again and keeps the timeline: the next event's
    // e-mail is the only new one.
    let sent = mails(&mail).len();
    drop(node);
    let node = node::start(&net);
    let (st, view2) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/cases/{}", enc(CASE)),
        &[],
    );
    assert_eq!(st, 200);
    assert_eq!(json(&view2)["timeline"], view["timeline"]);
    let (st, _) = post(&net, &node, FUTIAN, CASE, &sub);
    assert_eq!(st, 200);
    let done = event(FUTIAN, &id, Details::Completed {});
    let (st, _) = post(&net, &node, FUTIAN, CASE, &submission(done.sign(&key), &[]));
    assert_eq!(st, 201);
    wait_until(Duration::from_secs(20), "the completed e-mail", || {
        mails(&mail).len() > sent
    });
    ctl(&net, &["status"]);
    assert_eq!(
        mails(&mail).len(),
        sent + 1,
        "nothing is sent twice after a restart"
    );
}

#[test]
fn without_notifications_the_status_file_and_the_note_say_so() {
    let net = Net::new();
    let node = node::start(&net);
    let id = deliver(&net, &node);
    let root = net.config(COMMITTEE).intake.root;
    let note = fs::read_to_string(root.join("accepted/app-7001.txt")).expect("accepted note");
    assert!(
        note.contains("未配置申请人通知") && note.contains("not configured"),
        "{note}"
    );
    let key = key_of(&net, FUTIAN);
    let ev = event(
        FUTIAN,
        &id,
        Details::Appointment {
            at: Timestamp::from_unix(Timestamp::now().unix() + 86_400).expect("t"),
            place: "第三法庭".into(),
            officer: "王法官".into(),
            phone: "0755-8888 0000".into(),
            purpose: "询问财产线索".into(),
        },
    );
    let (st, _) = post(&net, &node, FUTIAN, CASE, &submission(ev.sign(&key), &[]));
    assert_eq!(st, 201);
    let status = status_file(&net);
    wait_until(Duration::from_secs(20), "the status file", || {
        fs::read_to_string(&status).is_ok_and(|t| t.contains("王法官"))
    });
    let text = fs::read_to_string(&status).expect("status");
    assert!(text.contains("本系统不通知申请人"), "{text}");
    assert!(text.contains("does not notify the applicant"), "{text}");
}

/// A stand-in SMS gateway (a seam not under test): answers every request
/// with `status` and counts them.
fn gateway(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().expect("addr").port()
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Refused\r\nContent-Length: 18\r\nConnection: close\r\n\r\nunknown subscriber"
            );
        }
    });
    (url, hits)
}

#[test]
fn a_notification_refused_for_good_is_on_the_timeline_and_tells_the_clerk_to_phone_the_applicant() {
    let net = Net::new();
    let (url, hits) = gateway(400);
    let key = net.out("sms.key");
    fs::write(&key, "0123456789abcdef0123456789abcdef").expect("key");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        format!(
            "{text}\n[notify]\nretry_base = \"50ms\"\n\n[notify.sms]\nurl = \"{url}\"\nhmac_key_file = \"{}\"\n",
            key.display()
        ),
    )
    .expect("write");
    let node = node::start(&net);
    // The applicant has a mobile number (texts go there).
    let id = deliver_with(&net, &node, |app| {
        let toml = fs::read_to_string(app.join("application.toml")).expect("toml");
        fs::write(
            app.join("application.toml"),
            toml.replace(
                "language = \"zh\"",
                "mobile = \"+86 139 0000 0000\"\nlanguage = \"zh\"",
            ),
        )
        .expect("write");
    });
    let status = status_file(&net);
    wait_until(
        Duration::from_secs(20),
        "the failure in the status file",
        || {
            fs::read_to_string(&status)
                .is_ok_and(|t| t.contains("FAILED") && t.contains("请电话联系申请人"))
        },
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a 400 is not retried"
    );
    let out = ctl(&net, &["status", CASE, "--json"]);
    let view: serde_json::Value = serde_json::from_str(&out).expect("json");
    let failed: Vec<_> = view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["step"] == "notification-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{view}");
    assert_eq!(failed[0]["channel"], "sms");
    assert_eq!(failed[0]["event_key"], format!("delivered/{id}"));
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("400")),
        "{view}"
    );
}
