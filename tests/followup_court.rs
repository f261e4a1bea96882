//! The court's follow-up folder and sender, with a real court daemon: clerks'
//! good and bad event folders, the signed submissions they become, and the
//! sender against a stand-in committee endpoint.
//!
//! The committee's `POST /v1/cases/{case}/events` is written in parallel; the
//! sender is tested here against a small mTLS server of the test's own (the
//! test PKI, a script of answers per event), a double at a seam this suite
//! does not test.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{tiny_app, wait_until, Net, COMMITTEE, FUTIAN};
use sealpost::event::{SignedEvent, Submission};
use sealpost::types::{BundleId, Timestamp};

const FAST: &[(&str, &str)] = &[
    ("SEALPOST_FOLLOWUP__SETTLE", "200ms"),
    ("SEALPOST_FOLLOWUP__SCAN_INTERVAL", "50ms"),
];
const CASE: &str = "深劳人仲案〔2026〕3310号";
const PDF: &[u8] = b"%PDF-1.7\n% ruling\n%%EOF\n";

/// Gives the court a follow-up folder (`<court>/followup`).
fn with_followup(net: &Net) -> PathBuf {
    let cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(&cfg, format!("{text}\n[followup]\nroot = \"followup\"\n")).expect("write");
    net.agency(FUTIAN).dir.join("followup")
}

/// Seals an application of `case` as the committee and takes it into the
/// court's inbox, as the court's poller would (`.done`, receipt, `received/`).
fn delivered(net: &Net, case: &str) -> BundleId {
    let dir = net.out(&format!("app-{}", common::random_u64()));
    tiny_app(&dir, case, FUTIAN);
    let committee = net.config(COMMITTEE);
    let app =
        sealpost::application::Application::load(&dir, &committee.limits, &committee.directory)
            .expect("a valid application");
    let court = committee
        .directory
        .get(&FUTIAN.parse().expect("id"))
        .expect("court")
        .clone();
    let file = net.out(&format!("bundle-{}.sealpost", common::random_u64()));
    let sealed =
        sealpost::intake::seal_application(&committee, &app, &court, &file).expect("sealed");
    let cfg = net.config(FUTIAN);
    sealpost::inbox::deliver(&cfg, &file, &COMMITTEE.parse().expect("id")).expect("delivered");
    sealed.envelope.id
}

/// Drops an event folder named `name` with `form` and `files`, `READY` last.
fn drop_event(root: &Path, name: &str, form: &str, files: &[(&str, &[u8])]) {
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
    fs::rename(&staging, root.join("drop").join(name)).expect("drop");
}

fn ruling(case: &str, note: &str) -> String {
    format!(
        "case_number = \"{case}\"\nkind = \"ruling-issued\"\nsummary = \"准予财产保全。\"\nnote = \"{note}\"\n\n[contact]\nname = \"立案庭\"\nphone = \"0755-88888888\"\n\n[[attachments]]\nfile = \"裁定书.pdf\"\n"
    )
}

fn materials(case: &str, items: &str, deadline: &str, place: &str) -> String {
    format!(
        "case_number = \"{case}\"\nkind = \"materials-required\"\nitems = {items}\ndeadline = {deadline}\nplace = {place}\nhow = \"\"\"现场提交原件，\n或邮寄复印件。\"\"\"\n"
    )
}

fn rejection_codes(root: &Path, name: &str) -> Vec<String> {
    let file = root.join("rejected").join(name).join("rejection.json");
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&file).expect("rejection.json")).expect("json");
    v["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().expect("code").to_owned())
        .collect()
}

fn outgoing(net: &Net) -> PathBuf {
    net.agency(FUTIAN).dir.join("data/followup/outgoing")
}

fn spool(net: &Net, which: &str, id: &str) -> PathBuf {
    net.agency(FUTIAN)
        .dir
        .join(format!("data/followup/{which}/{id}.json"))
}

/// The event id of an accepted item, from its clerk's note.
fn accepted_id(root: &Path, name: &str) -> String {
    let note = root.join("accepted").join(format!("{name}.txt"));
    wait_until(Duration::from_secs(20), &format!("{name} accepted"), || {
        note.exists()
    });
    let text = fs::read_to_string(&note).expect("note");
    text.lines()
        .find_map(|l| l.strip_prefix("事件编号 / Event id:"))
        .expect("event id line")
        .trim()
        .to_owned()
}

/// A bad drop: its name, its form, its files, and the one code it must get.
type BadDrop = (
    &'static str,
    String,
    Vec<(&'static str, &'static [u8])>,
    &'static str,
);

#[test]
fn bad_follow_up_folders_are_rejected_intact_with_a_specific_code_each() {
    let net = Net::new();
    let root = with_followup(&net);
    let bundle = delivered(&net, CASE);
    let mut court = common::spawn_run(&net, FUTIAN, FAST, Stdio::null());
    court.wait_ready();

    let good_deadline = "2026-12-20T17:00:00+08:00";
    let cases: Vec<BadDrop> = vec![
        (
            "unknown-case",
            ruling("深劳人仲案〔2026〕9999号", "x"),
            vec![("裁定书.pdf", PDF)],
            "case-unknown",
        ),
        (
            "unknown-bundle",
            format!(
                "bundle_id = \"{}\"\n{}",
                BundleId::generate(),
                ruling(CASE, "x")
            ),
            vec![("裁定书.pdf", PDF)],
            "bundle-unknown",
        ),
        (
            "missing-attachment",
            ruling(CASE, "x"),
            vec![],
            "attachment-missing",
        ),
        (
            "unlisted-file",
            ruling(CASE, "x"),
            vec![("裁定书.pdf", PDF), ("草稿.pdf", PDF)],
            "file-unlisted",
        ),
        (
            "bad-kind",
            format!("case_number = \"{CASE}\"\nkind = \"summons\"\n"),
            vec![],
            "kind-unknown",
        ),
        (
            "blank-item",
            materials(
                CASE,
                "[\"身份证复印件\", \"  \"]",
                good_deadline,
                "\"立案庭\"",
            ),
            vec![],
            "field-blank",
        ),
        (
            "deadline-text",
            materials(CASE, "[\"身份证复印件\"]", "\"12月20日前\"", "\"立案庭\""),
            vec![],
            "datetime-invalid",
        ),
        (
            "fake-pdf",
            ruling(CASE, "x"),
            vec![("裁定书.pdf", b"this is a Word file renamed to .pdf")],
            "attachment-type-not-allowed",
        ),
        (
            "line-break",
            materials(
                CASE,
                "[\"身份证复印件\"]",
                good_deadline,
                "\"\"\"立案庭\n二楼\"\"\"",
            ),
            vec![],
            "field-not-one-line",
        ),
        (
            "field-of-another-kind",
            format!(
                "case_number = \"{CASE}\"\nkind = \"rejected\"\nreason = \"r\"\nsummary = \"s\"\n"
            ),
            vec![],
            "field-not-allowed",
        ),
        (
            "not-toml",
            "case_number = 深劳\n".to_owned(),
            vec![],
            "event-file-invalid",
        ),
        ("no-form", String::new(), vec![], "event-file-missing"),
    ];
    for (name, form, files, _) in &cases {
        drop_event(&root, name, form, files);
        if *name == "no-form" {
            fs::remove_file(root.join("drop").join(name).join("event.toml")).expect("rm");
        }
    }
    for (name, form, files, code) in &cases {
        let dir = root.join("rejected").join(name);
        wait_until(
            Duration::from_secs(20),
            &format!("{name} to be rejected"),
            || dir.join("rejection.json").exists(),
        );
        let codes = rejection_codes(&root, name);
        assert_eq!(codes, vec![code.to_string()], "{name}");
        let note = fs::read_to_string(dir.join("REJECTED.txt")).expect("REJECTED.txt");
        assert!(note.contains(code), "{name}: {note}");
        // Chinese first, English beside it.
        assert!(note.contains("后续事件未被发送") && note.contains("EVENT NOT SENT"));
        // The original, intact.
        if !form.is_empty() {
            assert_eq!(
                fs::read_to_string(dir.join(name).join("event.toml")).expect("form"),
                *form
            );
        }
        for (f, bytes) in files {
            assert_eq!(fs::read(dir.join(name).join(f)).expect("file"), *bytes);
        }
    }
    assert!(
        common::listing(&outgoing(&net)).is_empty(),
        "something was signed"
    );
    assert!(common::listing(&root.join("drop")).is_empty());
    assert!(common::listing(&root.join(".work")).is_empty());
    let _ = bundle;
    court.stop();
}

#[test]
fn an_accepted_event_becomes_a_verifiable_submission_to_the_committee_that_sent_the_bundle() {
    let net = Net::new();
    let root = with_followup(&net);
    let bundle = delivered(&net, CASE);
    let mut court = common::spawn_run(&net, FUTIAN, FAST, Stdio::null());
    court.wait_ready();
    drop_event(
        &root,
        "ruling",
        &ruling(CASE, "请按裁定执行。"),
        &[("裁定书.pdf", PDF)],
    );
    drop_event(
        &root,
        "materials",
        &materials(
            CASE,
            "[\"身份证复印件\", \"劳动合同\"]",
            "2026-12-20T17:00:00+08:00",
            "\"立案庭二楼\"",
        ),
        &[],
    );
    let cfg = net.config(FUTIAN);
    for (name, kind) in [
        ("ruling", "ruling-issued"),
        ("materials", "materials-required"),
    ] {
        let id = accepted_id(&root, name);
        let file = spool(&net, "outgoing", &id);
        assert!(file.exists(), "{name}: no outgoing/{id}.json");
        let sub: Submission =
            serde_json::from_slice(&fs::read(&file).expect("read")).expect("a Submission");
        let ev = SignedEvent::verify(&sub.signed(), &cfg.trust, &cfg.directory, Timestamp::now())
            .expect("the signature verifies");
        ev.check_attachments(&sub.attachment_bytes().expect("base64"))
            .expect("attachments match the event");
        assert_eq!(ev.event_id.as_str(), id);
        assert_eq!(ev.court.as_str(), FUTIAN);
        assert_eq!(ev.committee.as_str(), COMMITTEE, "not the bundle's sender");
        assert_eq!(ev.case_number.as_str(), CASE);
        assert_eq!(ev.bundle_id, bundle, "the case's only bundle");
        assert_eq!(ev.details.kind(), kind);
        match &ev.details {
            sealpost::event::Details::MaterialsRequired {
                deadline, items, ..
            } => {
                assert_eq!(deadline.to_string(), "2026-12-20T09:00:00Z", "not in UTC");
                assert_eq!(items.len(), 2);
            }
            sealpost::event::Details::RulingIssued { .. } => {
                assert_eq!(ev.attachments.len(), 1);
                assert_eq!(ev.attachments[0].name, "裁定书.pdf");
                assert_eq!(ev.attachments[0].media_type, "application/pdf");
                assert_eq!(sub.attachment_bytes().expect("b64")[0].1, PDF);
                assert_eq!(ev.contact.as_ref().map(|c| c.name.as_str()), Some("立案庭"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // The originals archived under the event id (the last step, after
        // the note); the note is bilingual.
        let archived = root.join("archive").join(&id).join(name).join("event.toml");
        wait_until(Duration::from_secs(20), "the originals archived", || {
            archived.exists()
        });
        let note =
            fs::read_to_string(root.join("accepted").join(format!("{name}.txt"))).expect("note");
        assert!(note.contains("FOLLOW-UP EVENT ACCEPTED") && note.contains(CASE));
    }
    court.stop();
    // A restart resumes nothing twice: still two signed events.
    let mut court = common::spawn_run(&net, FUTIAN, FAST, Stdio::null());
    court.wait_ready();
    assert_eq!(common::listing(&outgoing(&net)).len(), 2);
    court.stop();
}

// ------------------------------------------------------------------ stand-in

mod standin {
    //! A committee's event endpoint, for the sender: mTLS with the test PKI;
    //! each event's `note` holds its script of answers (`script: 503,201`),
    //! the last repeated. Every request is recorded after its body verified.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use rustls_pki_types::pem::PemObject;
    use sealpost::event::Submission;

    use super::common::{Net, COMMITTEE};

    /// One request: event id, path, status answered.
    pub type Seen = Arc<Mutex<Vec<(String, String, u16)>>>;

    pub struct Committee {
        pub port: u16,
        pub seen: Seen,
        _runtime: tokio::runtime::Runtime,
    }

    impl Committee {
        pub fn posts(&self, id: &str) -> Vec<u16> {
            self.seen
                .lock()
                .expect("seen")
                .iter()
                .filter(|(e, _, _)| e == id)
                .map(|(_, _, s)| *s)
                .collect()
        }
    }

    pub fn start(net: &Net) -> Committee {
        let dir = net.agency(COMMITTEE).dir.clone();
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("tls.pem"))
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("tls.key")).expect("key");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls_pki_types::CertificateDer::from_pem_file(net.path().join("ca.pem"))
                    .expect("ca"),
            )
            .expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("verifier");
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let cfg = Arc::new(net.config(COMMITTEE));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Seen = Arc::default();
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (seen2, cfg2) = (seen.clone(), cfg.clone());
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, seen, counts, cfg) = (
                    acceptor.clone(),
                    seen2.clone(),
                    counts.clone(),
                    cfg2.clone(),
                );
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (seen, counts, cfg) = (seen.clone(), counts.clone(), cfg.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req, &seen, &counts, &cfg).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Committee {
            port,
            seen,
            _runtime: runtime,
        }
    }

    async fn answer(
        req: hyper::Request<hyper::body::Incoming>,
        seen: &Seen,
        counts: &Mutex<HashMap<String, usize>>,
        cfg: &sealpost::config::Config,
    ) -> hyper::Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let body = req.into_body().collect().await.expect("body").to_bytes();
        let respond = |status: u16, body: serde_json::Value| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("response")
        };
        let sub: Submission = match serde_json::from_slice(&body) {
            Ok(s) if method == hyper::Method::POST => s,
            _ => return respond(400, serde_json::json!({"code": "bad-request"})),
        };
        // What the real endpoint checks first: the signature and attachments.
        let ev = sub
            .signed()
            .verify(
                &cfg.trust,
                &cfg.directory,
                sealpost::types::Timestamp::now(),
            )
            .expect("the submission verifies at the committee");
        ev.check_attachments(&sub.attachment_bytes().expect("b64"))
            .expect("attachments match");
        let script: Vec<u16> = ev
            .note
            .as_deref()
            .and_then(|n| n.strip_prefix("script: "))
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().parse().expect("status"))
                    .collect()
            })
            .unwrap_or_else(|| vec![201]);
        let id = ev.event_id.to_string();
        let n = {
            let mut c = counts.lock().expect("counts");
            let e = c.entry(id.clone()).or_insert(0);
            *e += 1;
            *e - 1
        };
        let status = script[n.min(script.len() - 1)];
        seen.lock().expect("seen").push((id.clone(), path, status));
        match status {
            200 | 201 => respond(
                status,
                serde_json::json!({"event_id": id, "recorded_at": "2026-11-23T08:30:00Z"}),
            ),
            s => respond(
                s,
                serde_json::json!({
                    "type": "about:blank", "title": "refused", "status": s,
                    "code": if s == 422 { "event-field-invalid" } else { "unavailable" },
                    "detail": "details.items[0]: stand-in refusal",
                }),
            ),
        }
    }
}

/// A court with a follow-up folder, one delivered bundle, and a stand-in
/// committee at the committee's endpoint.
fn court_with_standin() -> (Net, PathBuf, standin::Committee, common::Daemon) {
    let net = Net::new();
    let root = with_followup(&net);
    delivered(&net, CASE);
    let committee = standin::start(&net);
    common::node::set_committee_endpoint(&net, &format!("127.0.0.1:{}", committee.port));
    let mut court = common::spawn_run(&net, FUTIAN, FAST, Stdio::null());
    court.wait_ready();
    (net, root, committee, court)
}

fn scripted(root: &Path, name: &str, script: &str) {
    drop_event(
        root,
        name,
        &ruling(CASE, &format!("script: {script}")),
        &[("裁定书.pdf", PDF)],
    );
}

#[test]
fn each_recorded_event_is_posted_once_moved_to_sent_and_the_clerk_is_told_when() {
    let (net, root, committee, mut court) = court_with_standin();
    scripted(&root, "first-time", "201");
    scripted(&root, "already-recorded", "200");
    for name in ["first-time", "already-recorded"] {
        let id = accepted_id(&root, name);
        wait_until(Duration::from_secs(20), &format!("{name} sent"), || {
            spool(&net, "sent", &id).exists()
        });
        assert!(!spool(&net, "outgoing", &id).exists());
        let note = root.join("accepted").join(format!("{name}.txt"));
        wait_until(Duration::from_secs(5), "the note to say recorded", || {
            fs::read_to_string(&note).is_ok_and(|t| t.contains("recorded this event"))
        });
        let text = fs::read_to_string(&note).expect("note");
        assert!(
            text.contains("仲裁委已记录本事件") && text.contains("2026-11-23 16:30"),
            "{text}"
        );
        let seen = committee.seen.lock().expect("seen").clone();
        let path = &seen.iter().find(|(e, _, _)| *e == id).expect("posted").1;
        assert!(
            path.starts_with("/v1/cases/%E6%B7%B1") && path.ends_with("/events"),
            "{path}"
        );
    }
    // Give the sender time to (wrongly) post again.
    std::thread::sleep(Duration::from_secs(2));
    for name in ["first-time", "already-recorded"] {
        let id = accepted_id(&root, name);
        assert_eq!(
            committee.posts(&id).len(),
            1,
            "{name} posted more than once"
        );
    }
    court.stop();
}

#[test]
fn a_refused_event_goes_to_failed_with_the_committees_code_for_the_clerk_and_is_not_sent_again() {
    let (net, root, committee, mut court) = court_with_standin();
    scripted(&root, "refused", "422");
    let id = accepted_id(&root, "refused");
    wait_until(Duration::from_secs(20), "the refusal recorded", || {
        spool(&net, "failed", &id).exists()
    });
    let problem = root.join("problems/refused.txt");
    wait_until(Duration::from_secs(5), "the clerk's problem note", || {
        problem.exists()
    });
    let text = fs::read_to_string(&problem).expect("note");
    assert!(text.contains("422 [event-field-invalid]"), "{text}");
    assert!(
        text.contains("stand-in refusal") && text.contains("仲裁委拒收"),
        "{text}"
    );
    let answer: serde_json::Value = serde_json::from_slice(
        &fs::read(
            net.agency(FUTIAN)
                .dir
                .join(format!("data/followup/failed/{id}.answer.json")),
        )
        .expect("answer"),
    )
    .expect("json");
    assert_eq!(answer["code"], "event-field-invalid");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(committee.posts(&id), vec![422], "a refusal was retried");
    assert!(!spool(&net, "outgoing", &id).exists());
    court.stop();
}

#[test]
fn a_503_is_retried_until_recorded_and_a_failing_event_holds_up_none_of_the_others() {
    let (net, root, committee, mut court) = court_with_standin();
    // Dropped first, failing for a long while.
    scripted(&root, "stuck", "503,503,503,503,503,503,503,503,201");
    let stuck = accepted_id(&root, "stuck");
    wait_until(
        Duration::from_secs(20),
        "a first attempt at the stuck one",
        || !committee.posts(&stuck).is_empty(),
    );
    scripted(&root, "flaky", "503,201");
    scripted(&root, "refused", "422");
    scripted(&root, "fine", "201");
    let flaky = accepted_id(&root, "flaky");
    let refused = accepted_id(&root, "refused");
    let fine = accepted_id(&root, "fine");
    wait_until(Duration::from_secs(20), "the others to be settled", || {
        spool(&net, "sent", &flaky).exists()
            && spool(&net, "failed", &refused).exists()
            && spool(&net, "sent", &fine).exists()
    });
    assert!(
        spool(&net, "outgoing", &stuck).exists(),
        "the stuck event should still be waiting"
    );
    assert_eq!(committee.posts(&flaky), vec![503, 201]);
    assert_eq!(committee.posts(&fine), vec![201]);
    assert_eq!(committee.posts(&refused), vec![422]);
    // Each failed attempt is logged, once per attempt, with its number.
    wait_until(
        Duration::from_secs(10),
        "the stuck one's second attempt",
        || {
            court
                .stderr_text()
                .lines()
                .any(|l| l.contains(&stuck) && l.contains("attempt=2"))
        },
    );
    court.stop();
}

#[test]
fn a_followup_section_is_for_courts_only_and_needs_its_root_with_errors_naming_file_line_and_key() {
    let net = Net::new();
    let load = |id: &str| {
        sealpost::config::Config::load_with_env(&net.config_path(id), Default::default())
    };
    let append = |id: &str, text: &str| {
        let cfg = net.config_path(id);
        let before = fs::read_to_string(&cfg).expect("config");
        fs::write(&cfg, format!("{before}\n{text}")).expect("write");
    };
    append(COMMITTEE, "[followup]\nroot = \"followup\"\n");
    let e = load(COMMITTEE).expect_err("a committee with [followup]");
    assert_eq!(e.key.as_deref(), Some("followup"), "{e}");
    assert!(e.line.is_some() && e.to_string().contains("court"), "{e}");

    append(FUTIAN, "[followup]\nsettle = \"1s\"\n");
    let e = load(FUTIAN).expect_err("no root");
    assert_eq!(e.key.as_deref(), Some("followup.root"), "{e}");

    let cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        text.replace("settle = \"1s\"", "root = \"f\"\nsettle = \"10M\""),
    )
    .expect("write");
    let e = load(FUTIAN).expect_err("ambiguous unit");
    assert_eq!(e.key.as_deref(), Some("followup.settle"), "{e}");
    assert!(e.line.is_some(), "{e}");

    fs::write(&cfg, text.replace("settle = \"1s\"", "root = \"f\"")).expect("write");
    let ok = load(FUTIAN).expect("valid");
    let f = ok.followup.expect("configured");
    assert_eq!(f.root, net.agency(FUTIAN).dir.join("f"));
    assert_eq!(f.settle, ok.intake.settle, "defaults to intake's");
}
