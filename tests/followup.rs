//! The whole follow-up story with two real nodes and a real SMTP relay: a
//! committee daemon (notifications over SMTP with STARTTLS and AUTH to
//! `tests/smtp/server.py`) and a court daemon (polling it, with a follow-up
//! folder) run as child processes. An application dropped into the
//! committee's intake reaches the court and comes back signed for; the court
//! clerk's folders reach the applicant's mailbox, the clerks' status file and
//! the case's timeline. Then the committee is killed with SIGKILL at random
//! moments around the send: no notification is lost, and a duplicate is only
//! ever the documented one, with the same `Message-ID`.
//!
//! Times come from the clock (`Timestamp::now()`), never from the calendar;
//! every wait has a timeout (`wait_until`), except the random kill delays,
//! which are the point.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::node::{self, curl_at, set_committee_endpoint, wait_line, Node};
use common::smtp::{attachments, header, text_part, Smtp};
use common::{copy_fixture, random_u64, wait_until, Net, COMMITTEE, FUTIAN};
use sealpost::notify::{message_id, record_id, Channel};
use sealpost::receipt::SignedReceipt;
use sealpost::types::{Sha256, Timestamp};
use serde_json::Value;

/// The fixture with an English-speaking applicant, and its case.
const FIXTURE: &str = "john-smith-futian";
const CASE: &str = "深劳人仲案〔2026〕3310号";
const APPLICANT: &str = "john.smith@example.com";
const WAIT: Duration = Duration::from_secs(30);

/// Two nodes' configuration and the relay they notify through.
struct Exchange {
    net: Net,
    smtp: Smtp,
    /// The committee's fixed API port (it keeps it across restarts).
    port: u16,
    /// The court's follow-up folder.
    followup: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn append(path: &Path, text: &str) {
    let old = fs::read_to_string(path).expect("config");
    fs::write(path, format!("{old}\n{text}")).expect("write config");
}

/// The standard exchange; the committee notifies by SMTP (STARTTLS, AUTH,
/// the relay's test CA only, rulings attached, fast retries) and serves on a
/// fixed port; the court has a follow-up folder.
fn exchange() -> Exchange {
    let net = Net::new();
    let smtp =
        common::smtp::notify_committee_through(&net.config_path(COMMITTEE), &net.out("smtp"));
    let port = free_port();
    append(
        &net.config_path(COMMITTEE),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    set_committee_endpoint(&net, &format!("127.0.0.1:{port}"));
    append(
        &net.config_path(FUTIAN),
        "[followup]\nroot = \"followup\"\n",
    );
    let followup = net.agency(FUTIAN).dir.join("followup");
    Exchange {
        net,
        smtp,
        port,
        followup,
    }
}

fn start_committee(x: &Exchange) -> Node {
    node::start(&x.net)
}

fn start_court(x: &Exchange) -> common::Daemon {
    common::spawn_run(
        &x.net,
        FUTIAN,
        &[
            ("SEALPOST_CLIENT__WAIT", "5s"),
            ("SEALPOST_FOLLOWUP__SETTLE", "200ms"),
            ("SEALPOST_FOLLOWUP__SCAN_INTERVAL", "50ms"),
        ],
        Stdio::null(),
    )
}

/// Drops the fixture into the committee's intake as a clerk would and waits
/// until the court has opened it and its signed receipt is back; returns the
/// bundle id and the stored receipt's bytes.
fn deliver(x: &Exchange, committee: &Node) -> (String, Vec<u8>) {
    let root = x.net.config(COMMITTEE).intake.root;
    let intake = root.join("intake");
    wait_until(WAIT, "the intake folder", || intake.is_dir());
    let staging = x.net.out("staging-app");
    copy_fixture(FIXTURE, &staging, FUTIAN);
    fs::write(staging.join("READY"), b"").expect("READY");
    fs::rename(&staging, intake.join(FIXTURE)).expect("drop");
    let id = wait_line(committee, &format!("ACCEPTED  {FIXTURE}"))
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let done = x
        .net
        .agency(FUTIAN)
        .dir
        .join("data/inbox")
        .join(CASE)
        .join(&id)
        .join(".done");
    wait_until(WAIT, "the court's inbox .done", || done.is_file());
    let receipt = x
        .net
        .config(COMMITTEE)
        .node
        .data_dir
        .join("outbox/receipts")
        .join(format!("{id}.json"));
    wait_until(WAIT, "the court's receipt back at the committee", || {
        receipt.is_file()
    });
    (id, fs::read(&receipt).expect("receipt"))
}

/// The `Message-ID` the committee gives the applicant's e-mail about `key`.
fn mid(key: &str) -> String {
    message_id(
        &record_id(key, Channel::Email, APPLICANT),
        &COMMITTEE.parse().expect("id"),
    )
}

/// The relay's messages carrying `Message-ID` `id`.
fn with_id(smtp: &Smtp, id: &str) -> Vec<Value> {
    smtp.messages()
        .into_iter()
        .filter(|m| header(m, "Message-ID") == [id])
        .collect()
}

/// Waits for the one message with `Message-ID` `id` and returns it.
fn the_message(smtp: &Smtp, id: &str, what: &str) -> Value {
    wait_until(WAIT, what, || !with_id(smtp, id).is_empty());
    let mut v = with_id(smtp, id);
    assert_eq!(v.len(), 1, "{what}: one message, got {v:#?}");
    v.remove(0)
}

/// Drops an event folder (`event.toml`, `files`, `READY` last) into the
/// court's `followup/drop/` as a clerk would; returns its event id once the
/// court has taken it.
fn drop_event(root: &Path, name: &str, form: &str, files: &[(&str, &[u8])]) -> String {
    let staging = root
        .parent()
        .expect("parent")
        .join(format!("staging-{name}"));
    fs::create_dir_all(&staging).expect("mkdir");
    fs::write(staging.join("event.toml"), form).expect("write");
    for (f, bytes) in files {
        fs::write(staging.join(f), bytes).expect("write");
    }
    fs::write(staging.join("READY"), b"").expect("READY");
    wait_until(WAIT, "the court's drop folder", || {
        root.join("drop").is_dir()
    });
    fs::rename(&staging, root.join("drop").join(name)).expect("drop");
    let note = root.join("accepted").join(format!("{name}.txt"));
    wait_until(WAIT, &format!("the court to take {name}"), || note.exists());
    fs::read_to_string(&note)
        .expect("note")
        .lines()
        .find_map(|l| l.strip_prefix("事件编号 / Event id:"))
        .expect("event id line")
        .trim()
        .to_owned()
}

fn enc(case: &str) -> String {
    percent_encoding::utf8_percent_encode(case, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The case as `sealpost ctl status CASE --json` shows it to the operator.
fn ctl_view(net: &Net) -> Value {
    let (code, out, err) = common::ctl(net, COMMITTEE, &["status", CASE, "--json"]);
    assert_eq!(code, Some(0), "ctl status --json: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// How often each (step, key) is on a timeline: `follow-up` by event id,
/// `notification-sent` by event key.
fn steps(view: &Value) -> BTreeMap<(String, String), usize> {
    let mut n = BTreeMap::new();
    for e in view["timeline"].as_array().expect("timeline") {
        let step = e["step"].as_str().expect("step").to_owned();
        let key = match step.as_str() {
            "follow-up" => e["event_id"].as_str().expect("event_id").to_owned(),
            "notification-sent" => e["event_key"].as_str().expect("event_key").to_owned(),
            _ => String::new(),
        };
        *n.entry((step, key)).or_default() += 1;
    }
    n
}

fn count(steps: &BTreeMap<(String, String), usize>, step: &str, key: &str) -> usize {
    steps
        .get(&(step.to_owned(), key.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// A deadline two weeks from now, 17:00 China Standard Time, as a clerk
/// writes it in event.toml (`+08:00`), and as a timestamp.
fn deadline() -> (String, Timestamp) {
    let cst = time::UtcOffset::from_hms(8, 0, 0).expect("UTC+8");
    let day = (Timestamp::now().datetime() + time::Duration::days(14)).to_offset(cst);
    let at = day
        .replace_time(time::Time::from_hms(17, 0, 0).expect("17:00"))
        .replace_offset(cst);
    (
        format!(
            "{}-{:02}-{:02}T17:00:00+08:00",
            at.year(),
            u8::from(at.month()),
            at.day()
        ),
        Timestamp::from_unix(at.unix_timestamp()).expect("time"),
    )
}

/// A small PDF with bytes of every value, so that any transfer-encoding slip shows.
fn ruling_pdf() -> Vec<u8> {
    let mut pdf = "%PDF-1.7\n% 民事裁定书 ruling\n".as_bytes().to_vec();
    pdf.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    pdf.extend_from_slice(b"\n%%EOF\n");
    pdf
}

#[test]
fn two_nodes_court_follow_up_reaches_the_applicant_by_mail_and_the_clerk_by_status_file() {
    let started = Instant::now();
    let x = exchange();
    let committee = start_committee(&x);
    let _court = start_court(&x);
    let (bundle, receipt) = deliver(&x, &committee);
    let item = x
        .net
        .config(COMMITTEE)
        .intake
        .root
        .join("status")
        .join(format!("{FIXTURE}.txt"));

    // Signed for: the applicant hears when, with the stored receipt's digest.
    let received_at = serde_json::from_slice::<SignedReceipt>(&receipt)
        .expect("receipt")
        .unverified_received_at()
        .expect("received_at");
    let digest = Sha256::of(&receipt).to_hex();
    let delivered_key = format!("delivered/{bundle}");
    let m = the_message(&x.smtp, &mid(&delivered_key), "the delivered e-mail");
    assert_eq!(m["rcpt_tos"], serde_json::json!([APPLICANT]));
    assert_eq!(
        (&m["tls"], &m["auth"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let text = text_part(&m, "text/plain");
    for want in [
        format!("{} China Standard Time (UTC+8)", received_at.beijing()),
        format!("{}（北京时间，UTC+8）", received_at.beijing()),
        digest.clone(),
        CASE.to_owned(),
        bundle.clone(),
    ] {
        assert!(
            text.contains(&want),
            "{want} in the delivered e-mail:\n{text}"
        );
    }

    // Materials required, from the court clerk's folder.
    let (deadline_toml, deadline) = deadline();
    let items = [
        "劳动合同原件 / the original employment contract",
        "近六个月工资流水 / bank statements of the last six months",
    ];
    let place = "福田区人民法院立案庭二楼 3 号窗口 / case-filing division, 2F window 3";
    let materials = drop_event(
        &x.followup,
        "materials",
        &format!(
            "case_number = \"{CASE}\"\nkind = \"materials-required\"\nitems = [\"{}\", \"{}\"]\ndeadline = {deadline_toml}\nplace = \"{place}\"\nhow = \"\"\"\n现场提交原件及复印件各一份。\nHand in the originals and one copy in person.\n\"\"\"\n\n[contact]\nname = \"立案庭 / case-filing division\"\nphone = \"0755-83000000\"\n",
            items[0], items[1]
        ),
        &[],
    );
    let m = the_message(
        &x.smtp,
        &mid(&format!("event/{materials}")),
        "the materials e-mail",
    );
    assert_eq!(m["rcpt_tos"], serde_json::json!([APPLICANT]));
    assert_eq!(
        (&m["tls"], &m["auth"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let subject = m["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("The court needs further materials from you")
            && subject.contains("法院要求补充材料")
            && subject.ends_with(&format!("[{CASE}]")),
        "English first, the case at the end: {subject}"
    );
    assert!(header(&m, "Content-Type")[0].starts_with("multipart/alternative"));
    assert!(attachments(&m).is_empty(), "nothing attached to this kind");
    let text = text_part(&m, "text/plain");
    let (en, zh) = (
        text.find("The court needs further materials")
            .expect("English"),
        text.find("法院要求补充材料").expect("Chinese"),
    );
    assert!(en < zh, "the applicant's language (English) first:\n{text}");
    for want in [
        items[0].to_owned(),
        items[1].to_owned(),
        format!("{} China Standard Time (UTC+8)", deadline.beijing()),
        format!("{}（北京时间，UTC+8）", deadline.beijing()),
        place.to_owned(),
        "Hand in the originals and one copy in person.".to_owned(),
        "0755-83000000".to_owned(),
        CASE.to_owned(),
        format!("Test agency {FUTIAN}"),
        format!("测试机构 {FUTIAN}"),
    ] {
        assert!(
            text.contains(&want),
            "{want} in the materials e-mail:\n{text}"
        );
    }
    assert!(
        deadline.beijing().ends_with(" 17:00"),
        "the clerk's 17:00+08:00 is 17:00 China Standard Time"
    );
    let html = text_part(&m, "text/html");
    assert!(html.find("The court needs further") < html.find("法院要求补充材料"));
    // The clerks read what is needed and by when; the court clerk reads that
    // the committee recorded it.
    wait_until(WAIT, "the status file shows the request", || {
        fs::read_to_string(&item).is_ok_and(|t| {
            t.contains("需补充材料")
                && items.iter().all(|i| t.contains(i))
                && t.contains(&deadline.beijing())
        })
    });
    let court_note = x.followup.join("accepted/materials.txt");
    wait_until(WAIT, "the court's note says recorded", || {
        fs::read_to_string(&court_note).is_ok_and(|t| t.contains("recorded this event"))
    });

    // The ruling, with its PDF.
    let pdf = ruling_pdf();
    let ruling = drop_event(
        &x.followup,
        "ruling",
        &format!("case_number = \"{CASE}\"\nkind = \"ruling-issued\"\nsummary = \"准予财产保全。The application for property preservation is granted.\"\n\n[[attachments]]\nfile = \"民事裁定书.pdf\"\n"),
        &[("民事裁定书.pdf", &pdf)],
    );
    let m = the_message(
        &x.smtp,
        &mid(&format!("event/{ruling}")),
        "the ruling e-mail",
    );
    assert!(header(&m, "Content-Type")[0].starts_with("multipart/mixed"));
    let att = attachments(&m);
    assert_eq!(att.len(), 1, "{m:#?}");
    assert_eq!(att[0]["filename"], "民事裁定书.pdf");
    assert_eq!(att[0]["type"], "application/pdf");
    assert_eq!(att[0]["size"], pdf.len());
    assert_eq!(
        att[0]["sha256"],
        Sha256::of(&pdf).to_hex(),
        "the same bytes, as Python decodes them"
    );
    let text = text_part(&m, "text/plain");
    assert!(
        text.find("The court has issued its preservation ruling")
            < text.find("法院已作出财产保全裁定"),
        "{text}"
    );
    assert!(text.contains("The application for property preservation is granted."));
    wait_until(WAIT, "the status file shows the ruling", || {
        fs::read_to_string(&item)
            .is_ok_and(|t| t.contains("裁定已作出") && t.contains("准予财产保全"))
    });

    // The timeline, as the operator sees it: both events once, every
    // notification sent once.
    let keys = [
        delivered_key.clone(),
        format!("event/{materials}"),
        format!("event/{ruling}"),
    ];
    wait_until(WAIT, "every notification on the timeline", || {
        let s = steps(&ctl_view(&x.net));
        keys.iter().all(|k| count(&s, "notification-sent", k) == 1)
    });
    let s = steps(&ctl_view(&x.net));
    for id in [&materials, &ruling] {
        assert_eq!(count(&s, "follow-up", id), 1, "{id}: {s:?}");
    }
    let (code, text, err) = common::ctl(&x.net, COMMITTEE, &["status", CASE]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "需补充材料",
        "materials required",
        "裁定已作出",
        "ruling issued",
        "applicant notified by e-mail",
        digest.as_str(),
    ] {
        assert!(text.contains(want), "{want} in ctl status:\n{text}");
    }

    // The same, as the court reads it over mTLS (addresses masked).
    let port = x.port.to_string();
    let (st, body) = curl_at(
        &x.net,
        &port,
        FUTIAN,
        &format!("/v1/cases/{}", enc(CASE)),
        &[],
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let view: Value = serde_json::from_slice(&body).expect("json");
    let s = steps(&view);
    for id in [&materials, &ruling] {
        assert_eq!(count(&s, "follow-up", id), 1, "{id}: {s:?}");
    }
    for k in &keys {
        assert_eq!(count(&s, "notification-sent", k), 1, "{k}: {s:?}");
    }
    let events: BTreeSet<&str> = view["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"]["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        events,
        BTreeSet::from([materials.as_str(), ruling.as_str()])
    );
    assert_eq!(view["bundles"][0]["receipt_sha256"], digest);
    let delivered = view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["step"] == "delivered")
        .expect("delivered on the timeline");
    assert_eq!(delivered["receipt_sha256"], digest);
    assert_eq!(delivered["received_at"], received_at.to_rfc3339());
    assert!(!body
        .windows(APPLICANT.len())
        .any(|w| w == APPLICANT.as_bytes()));

    // Exactly one message per event on the relay, each acknowledged.
    let msgs = x.smtp.messages();
    let ids: Vec<&str> = msgs.iter().map(|m| header(m, "Message-ID")[0]).collect();
    let want: Vec<String> = keys.iter().map(|k| mid(k)).collect();
    assert_eq!(ids, want, "one message per event, in order");
    let replies = x.smtp.entries("reply");
    assert!(
        replies.len() == 3
            && replies
                .iter()
                .all(|r| r["code"] == 250 && r["client_gone"] == false),
        "{replies:#?}"
    );
    check_evidence(&x, &bundle, &receipt);
    eprintln!(
        "two nodes: 3 messages (delivered, materials-required, ruling-issued) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `zip` with one byte of `entry` flipped (the other entries as they were).
fn rewrite_entry(zip: &[u8], entry: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut r = ::zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
    let mut w = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..r.len() {
        let mut f = r.by_index(i).expect("entry");
        let name = f.name().expect("name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        if name == entry {
            let n = data.len() / 2;
            data[n] ^= 0x20;
        }
        let opts = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored);
        w.start_file(name, opts).expect("start");
        w.write_all(&data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// The evidence both nodes keep: the proof of delivery in the clerks' share
/// (verified with the CA alone, and exported again with `sealpost proof`),
/// and both audit chains, which verify while the nodes run and hold what
/// each side did.
fn check_evidence(x: &Exchange, bundle: &str, receipt: &[u8]) {
    let ca = x.net.path().join("ca.pem");
    let status = x.net.config(COMMITTEE).intake.root.join("status");
    let zip = status.join(format!("{FIXTURE}.送达证明.zip"));
    let html = status.join(format!("{FIXTURE}.送达证明.html"));
    wait_until(WAIT, "the proof of delivery in the clerks' share", || {
        zip.is_file() && html.is_file()
    });
    let (code, out, err) = common::sealpost(&[
        "verify-proof",
        zip.to_str().expect("utf-8"),
        "--ca",
        ca.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["view"]["bundle_id"], bundle);
    assert_eq!(v["view"]["case_number"], CASE);
    let signed: SignedReceipt = serde_json::from_slice(receipt).expect("receipt");
    assert_eq!(
        v["view"]["received_at"],
        signed.unverified_received_at().expect("time").to_rfc3339()
    );
    assert!(v["view"]["fetched_at"].is_string(), "{v}");
    let page = fs::read_to_string(&html).expect("html");
    assert!(page.contains(CASE) && page.contains("送达证明"));

    // The clerks' printable page, printed by a real browser on A4.
    let pdf = x.net.out("proof.pdf");
    common::browser::print_to_pdf(&html, &pdf).expect("chromium prints the page");
    assert!(
        common::browser::pdf_info(&pdf).contains("A4"),
        "{}",
        common::browser::pdf_info(&pdf)
    );
    let text: String = common::browser::pdf_text(&pdf)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(text.contains("送达证明") && text.contains(bundle), "{text}");

    // Tampering with any part is named: the proof's own digests catch it first.
    let original = fs::read(&zip).expect("zip");
    for (entry, part) in [
        ("receipt.json", "receipt.json"),
        ("envelope.json", "envelope.json"),
        ("audit.jsonl", "audit.jsonl"),
        ("proof.html", "proof.html"),
    ] {
        let bad = x.net.out(&format!("tampered-{entry}.zip"));
        fs::write(&bad, rewrite_entry(&original, entry)).expect("write");
        let (code, out, _) = common::sealpost(&[
            "verify-proof",
            bad.to_str().expect("utf-8"),
            "--ca",
            ca.to_str().expect("utf-8"),
            "--json",
        ]);
        assert_eq!(code, Some(65), "{entry}: {out}");
        let v: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(v["code"], "proof-entry-digest-mismatch", "{entry}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(part),
            "{entry}: the entry is named: {v}"
        );
    }

    // Exported again through the running daemon: the same bytes.
    let exported = x.net.out("exported-proof.zip");
    let (code, _, err) = common::sealpost(&[
        "-c",
        x.net.config_path(COMMITTEE).to_str().expect("utf-8"),
        "proof",
        bundle,
        "-o",
        exported.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        fs::read(&exported).expect("exported"),
        fs::read(&zip).expect("zip")
    );

    // Both chains verify, and hold what each side did.
    for (agency, kinds) in [
        (
            COMMITTEE,
            &[
                "node-started",
                "application-accepted",
                "bundle-sealed",
                "bundle-fetched",
                "receipt-stored",
                "checkpoint",
                "followup-received",
                "notification-sent",
            ][..],
        ),
        (
            FUTIAN,
            &["node-started", "bundle-received", "followup-sent"][..],
        ),
    ] {
        let (code, out, err) = common::sealpost(&[
            "-c",
            x.net.config_path(agency).to_str().expect("utf-8"),
            "audit",
            "verify",
        ]);
        assert_eq!(code, Some(0), "{agency}: {out}{err}");
        assert!(out.contains("INTACT"), "{out}");
        let log = fs::read_to_string(x.net.config(agency).node.data_dir.join("audit/audit.log"))
            .expect("log");
        for k in kinds {
            assert!(
                log.contains(&format!("\"kind\":\"{k}\"")),
                "{agency}: no {k} record in\n{log}"
            );
        }
        assert!(
            !log.contains(APPLICANT),
            "{agency}: the applicant's address is not in the audit log"
        );
    }
}

/// One event of the kill test, as the court made it.
struct Posted {
    id: String,
    file: PathBuf,
    /// A line of its note, to find its messages by their text.
    tag: String,
    answered: bool,
}

/// `sealpost followup make` on the court's node: a signed submission of
/// `kind` with a note naming event `n`.
fn make_event(net: &Net, bundle: &str, n: usize) -> Posted {
    let file = net.out(&format!("event-{n}.json"));
    let tag = format!("Test event {n} of the kill test.");
    let cfg = net.config_path(FUTIAN);
    let mut args: Vec<String> = [
        "-c",
        cfg.to_str().expect("utf-8"),
        "followup",
        "make",
        "--case",
        CASE,
        "--bundle",
        bundle,
        "--note",
        &tag,
        "-o",
        file.to_str().expect("utf-8"),
        "--kind",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let at = Timestamp::from_unix(Timestamp::now().unix() + 3 * 86_400).expect("time");
    match n % 4 {
        0 => args.push("received".into()),
        1 => args.extend([
            "accepted".to_owned(),
            "--court-case-number".to_owned(),
            format!("(2026)粤0304财保{n}号"),
        ]),
        2 => args.extend(
            [
                "appointment",
                "--place",
                "第三法庭",
                "--officer",
                "王法官",
                "--phone",
                "0755-1111",
                "--purpose",
                "询问保全财产线索",
                "--at",
            ]
            .map(String::from)
            .into_iter()
            .chain([at.to_rfc3339()]),
        ),
        _ => args.push("completed".into()),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = common::sealpost(&args);
    assert_eq!(code, Some(0), "followup make: {err}");
    let sub: sealpost::event::Submission =
        serde_json::from_slice(&fs::read(&file).expect("submission")).expect("a submission");
    let event: Value = {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&sub.event)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("the event's JSON")
    };
    Posted {
        id: event["event_id"].as_str().expect("event id").to_owned(),
        file,
        tag,
        answered: false,
    }
}

/// POSTs a submission as the court with curl: the HTTP status, 0 when the
/// connection failed (the committee was down or killed mid-request).
fn post(net: &Net, port: &str, file: &Path) -> u16 {
    let (st, body) = curl_at(
        net,
        port,
        FUTIAN,
        &format!("/v1/cases/{}/events", enc(CASE)),
        &[
            "--max-time",
            "10",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", file.display()),
        ],
    );
    assert!(
        matches!(st, 0 | 200 | 201),
        "the committee refused an event: {st} {}",
        String::from_utf8_lossy(&body)
    );
    st
}

#[test]
fn a_committee_killed_around_the_send_never_loses_a_notification_and_duplicates_only_with_the_same_message_id(
) {
    let started = Instant::now();
    let kills: usize = std::env::var("SEALPOST_NOTIFY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let x = exchange();
    let port = x.port.to_string();
    let mut committee = start_committee(&x);
    let (bundle, _) = {
        let mut court = start_court(&x);
        let delivered = deliver(&x, &committee);
        court.stop();
        delivered
    };
    let delivered_key = format!("delivered/{bundle}");
    the_message(&x.smtp, &mid(&delivered_key), "the delivered e-mail");
    // A slow relay: every reply to DATA comes 300 ms after the message, so
    // that kills land between the relay taking a message and the node
    // recording it sent.
    x.smtp
        .set_control(serde_json::json!({"delay_after_data_ms": 300}));

    let mut events: Vec<Posted> = Vec::new();
    for round in 0..kills {
        for _ in 0..1 + random_u64() % 2 {
            events.push(make_event(&x.net, &bundle, events.len()));
        }
        // The court posts what has no answer yet (as its sender does) while
        // the committee sends; the kill comes at a random moment.
        let delay = random_u64() % 900;
        let answers: Vec<(usize, u16)> = std::thread::scope(|s| {
            let waiting: Vec<(usize, &Path)> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.answered)
                .map(|(i, e)| (i, e.file.as_path()))
                .collect();
            let (net, port) = (&x.net, &port);
            let poster = s.spawn(move || {
                waiting
                    .into_iter()
                    .map(|(i, f)| (i, post(net, port, f)))
                    .collect::<Vec<_>>()
            });
            std::thread::sleep(Duration::from_millis(delay));
            if let Some(status) = committee.child.try_wait() {
                panic!(
                    "round {round}: the committee exited by itself ({status}): {}",
                    committee.child.stderr_text()
                );
            }
            committee.child.kill9();
            poster.join().expect("poster")
        });
        let answered = answers.iter().filter(|(_, st)| *st != 0).count();
        for (i, st) in answers {
            events[i].answered |= st != 0;
        }
        eprintln!(
            "round {round}: killed after {delay} ms; {answered} posts answered; {} messages on the relay",
            x.smtp.messages().len()
        );
        committee = start_committee(&x);
    }

    // The last run: the court posts until every event has its answer …
    wait_until(Duration::from_secs(60), "an answer to every event", || {
        for e in events.iter_mut().filter(|e| !e.answered) {
            e.answered = post(&x.net, &port, &e.file) != 0;
        }
        events.iter().all(|e| e.answered)
    });
    // … and every notification reaches the relay and is recorded sent.
    let keys: Vec<String> = std::iter::once(delivered_key.clone())
        .chain(events.iter().map(|e| format!("event/{}", e.id)))
        .collect();
    let missing = || {
        let s = steps(&ctl_view(&x.net));
        keys.iter()
            .filter(|k| count(&s, "notification-sent", k) == 0)
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !missing().is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for every notification sent and on the timeline; missing {:?} (record ids {:?}); messages {:#?}",
            missing(),
            missing().iter().map(|k| record_id(k, Channel::Email, APPLICANT)).collect::<Vec<_>>(),
            x.smtp.messages().iter().map(|m| (m["n"].clone(), header(m, "Message-ID")[0].to_owned())).collect::<Vec<_>>(),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let view = ctl_view(&x.net);
    committee.child.stop();

    // Every event's notification arrived at least once, acknowledged by
    // the relay; a duplicate only ever with the same Message-ID.
    let msgs = x.smtp.messages();
    let heard: BTreeSet<u64> = x
        .smtp
        .entries("reply")
        .iter()
        .filter(|r| r["code"] == 250 && r["client_gone"] == false)
        .filter_map(|r| r["n"].as_u64())
        .collect();
    let mut duplicates = 0;
    for e in &events {
        let want = mid(&format!("event/{}", e.id));
        let mine: Vec<&Value> = msgs
            .iter()
            .filter(|m| text_part(m, "text/plain").contains(&e.tag))
            .collect();
        assert!(!mine.is_empty(), "event {}: no message at all", e.id);
        let ids: BTreeSet<&str> = mine.iter().map(|m| header(m, "Message-ID")[0]).collect();
        assert_eq!(
            ids,
            BTreeSet::from([want.as_str()]),
            "event {}: every copy with its one Message-ID",
            e.id
        );
        assert!(
            mine.iter()
                .any(|m| m["n"].as_u64().is_some_and(|n| heard.contains(&n))),
            "event {}: no copy was acknowledged to the committee",
            e.id
        );
        duplicates += mine.len() - 1;
    }
    let known: BTreeSet<String> = keys.iter().map(|k| mid(k)).collect();
    for m in &msgs {
        let id = header(m, "Message-ID")[0];
        assert!(known.contains(id), "a message for no event: {id}");
    }
    assert_eq!(with_id(&x.smtp, &mid(&delivered_key)).len(), 1);

    // The timeline: every event exactly once, every notification sent once.
    let s = steps(&view);
    for e in &events {
        assert_eq!(count(&s, "follow-up", &e.id), 1, "event {}: {s:?}", e.id);
    }
    for k in &keys {
        assert_eq!(count(&s, "notification-sent", k), 1, "{k}: {s:?}");
    }
    assert_eq!(
        view["events"].as_array().map(Vec::len),
        Some(events.len()),
        "the case's events"
    );
    eprintln!(
        "{kills} kills, {} events, {} messages on the relay ({duplicates} duplicates, each with its first copy's Message-ID), in {:.1} s",
        events.len(),
        msgs.len(),
        started.elapsed().as_secs_f64()
    );
}
