//! Follow-up events (`sealpost-event/1`, `docs/event-format.md`).
//!
//! - **Vectors**: `tests/data/events/ok_*.json` must verify with their
//!   attachments; every `fail_<code>__<what>.json` must be refused with exactly
//!   `<code>` (rage style, one loop). They are signed with the committed vector
//!   PKI (`tests/data/vectors/pki/`) and checked at the vectors' own clock, never
//!   the wall clock. `event-id-conflict` is decided by whoever stored the first
//!   event with that id: the loop keeps a small store of its own, records every
//!   `ok_` event, and a conflict vector must verify and then be told apart from
//!   a repeat by its bytes. Regenerate with
//!   `cargo test --test events -- --ignored generate_event_vectors` (event ids
//!   and times are fixed and Ed25519 is deterministic, so only the vector
//!   signed by a freshly made foreign CA changes).
//! - **Stock tools**: the two recipes in `docs/event-format.md` run verbatim
//!   with the real `jq`, `base64`, `openssl` and `sha256sum`.
//! - **CLI**: `sealpost followup make|verify`, the real binary.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealpost::config::Config;
use sealpost::event::{Attachment, AttachmentData, Contact, EVENT_FORMAT};
use sealpost::event::{Details, Event, EventError, EventId, Submission, VerifiedSubmission};
use sealpost::followup::make::sniff_media_type;
use sealpost::pki::SigningKey;
use sealpost::types::{BundleId, Sha256, Timestamp};

use common::{Net, COMMITTEE, FUTIAN};

/// Every vector's `issued_at`, except the one dated in the future on purpose.
const VECTORS_ISSUED: &str = "2026-11-24T09:00:00Z";

fn edir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events")
}

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/pki")
}

fn load(node: &str) -> Config {
    Config::load_with_env(&pki().join(node).join("sealpost.toml"), Default::default())
        .unwrap_or_else(|e| panic!("vector config {node}: {e}"))
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("time")
}

// ------------------------------------------------------------------ the loop

/// The committee's side of idempotency: one event per id; the same id with
/// the same event bytes is a repeat, with other bytes a conflict.
#[derive(Default)]
struct Store(HashMap<EventId, Vec<u8>>);

#[derive(Debug, PartialEq)]
enum Stored {
    New,
    Repeat,
}

impl Store {
    fn record(&mut self, v: &VerifiedSubmission) -> Result<Stored, &'static str> {
        match self.0.get(&v.event.event_id) {
            None => {
                self.0.insert(v.event.event_id, v.event_bytes.clone());
                Ok(Stored::New)
            }
            Some(first) if *first == v.event_bytes => Ok(Stored::Repeat),
            Some(_) => Err("event-id-conflict"),
        }
    }
}

/// What the committee's node does with a posted body, short of storing it.
fn check(bytes: &[u8], c: &Config, now: Timestamp) -> Result<VerifiedSubmission, EventError> {
    Submission::from_json(bytes)?.verify(&c.trust, &c.directory, now)
}

fn vector_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = fs::read_dir(edir())
        .expect("tests/data/events")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            (name, fs::read(&p).expect("read vector"))
        })
        .collect()
}

#[test]
fn event_vectors() {
    // The vectors' own clock: a day after they were issued.
    check_vectors(Timestamp::from_unix(at(VECTORS_ISSUED).unix() + 86_400).expect("time"));
}

#[test]
fn event_vectors_do_not_depend_on_the_wall_clock() {
    // The same outcomes at the moment of issue and shortly before the vector
    // dated 2100 stops being in the future (the vector PKI is valid 2026–2126).
    for now in [VECTORS_ISSUED, "2099-12-31T23:00:00Z"] {
        check_vectors(at(now));
    }
}

fn check_vectors(now: Timestamp) {
    let lac = load("sz-lac");
    let files = vector_files();
    let mut store = Store::default();
    let mut kinds = Vec::new();
    // The ok_ ones first: they are what was stored before the conflicts came.
    for (name, bytes) in files.iter().filter(|(n, _)| n.starts_with("ok_")) {
        let v = check(bytes, &lac, now)
            .unwrap_or_else(|e| panic!("{name}: refused with [{}] {e}", e.code()));
        assert_eq!(
            v.attachments.len(),
            v.event.attachments.len(),
            "{name}: attachments"
        );
        for a in &v.event.attachments {
            let (_, data) = v
                .attachments
                .iter()
                .find(|(n, _)| *n == a.name)
                .unwrap_or_else(|| panic!("{name}: {} not sent", a.name));
            assert_eq!(Sha256::of(data), a.sha256, "{name}: {}", a.name);
            assert_eq!(data.len() as u64, a.size, "{name}: {}", a.name);
            assert_eq!(
                sniff_media_type(data),
                Some(a.media_type.as_str()),
                "{name}: {} is not what it says",
                a.name
            );
        }
        assert_eq!(store.record(&v), Ok(Stored::New), "{name}: id used twice");
        assert_eq!(store.record(&v), Ok(Stored::Repeat), "{name}: a repeat");
        kinds.push(v.event.details.kind());
    }
    for k in Details::KINDS {
        assert!(kinds.contains(&k), "no ok_ vector of kind {k}");
    }
    let mut codes = Vec::new();
    for (name, bytes) in files.iter().filter(|(n, _)| !n.starts_with("ok_")) {
        let want = name
            .strip_prefix("fail_")
            .and_then(|r| r.split("__").next())
            .unwrap_or_else(|| panic!("{name}: vector names start with ok_ or fail_"));
        let got = match check(bytes, &lac, now) {
            Ok(v) => match store.record(&v) {
                Ok(s) => panic!("{name}: accepted ({s:?}), expected [{want}]"),
                Err(code) => code.to_owned(),
            },
            Err(e) => {
                assert!(
                    EventError::CODES.contains(&e.code()),
                    "{name}: code {} not listed",
                    e.code()
                );
                e.code().to_owned()
            }
        };
        assert_eq!(got, want, "{name}: refused for the wrong reason");
        codes.push(got);
    }
    for c in EventError::CODES.iter().chain(&["event-id-conflict"]) {
        assert!(codes.iter().any(|x| x == c), "no fail_ vector for {c}");
    }
}

#[test]
fn every_vector_is_in_the_reference_layout() {
    // What `followup make` writes: the submission pretty-printed with a final
    // newline, the event bytes exactly `Event::to_bytes` (for the vectors made
    // from an Event; the hand-edited ones are exempt).
    for (name, bytes) in vector_files() {
        let Ok(sub) = serde_json::from_slice::<Submission>(&bytes) else {
            continue;
        };
        let mut again = serde_json::to_string_pretty(&sub).expect("json");
        again.push('\n');
        assert_eq!(again.as_bytes(), &bytes[..], "{name}: not pretty");
        if name.starts_with("ok_") {
            let ev = sub.signed().unverified().expect("parses");
            assert_eq!(
                ev.to_bytes(),
                sub.signed().bytes().expect("b64"),
                "{name}: event bytes not in the reference layout"
            );
        }
    }
}

#[test]
fn the_format_doc_shows_the_vectors_events() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event-format.md"))
            .expect("docs/event-format.md");
    for name in ["ok_ruling-issued", "ok_materials-required"] {
        let sub: Submission =
            serde_json::from_slice(&fs::read(edir().join(format!("{name}.json"))).expect("read"))
                .expect("json");
        let bytes = sub.signed().bytes().expect("b64");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(
            doc.contains(&format!("```json\n{text}\n```")),
            "docs/event-format.md does not show the event of {name} as signed"
        );
    }
}

#[test]
fn the_json_rules_are_as_documented() {
    // docs/event-format.md §2.4, pinned.
    use sealpost::event::parse;
    let e = event(1, Details::Received {});
    let text = String::from_utf8(e.to_bytes()).expect("utf-8");
    let code = |t: &str| parse(t.as_bytes()).map(|_| ()).map_err(|e| e.code());
    let before_details =
        |extra: &str| text.replacen("\"details\"", &format!("{extra},\n  \"details\""), 1);
    // Duplicate members, at the top level and in details.
    assert_eq!(
        code(&text.replacen(
            "\"court\"",
            "\"court\": \"sz-futian-court\",\n  \"court\"",
            1
        )),
        Err("event-malformed")
    );
    assert_eq!(
        code(&text.replacen(
            "\"kind\": \"received\"",
            "\"kind\": \"received\", \"kind\": \"received\"",
            1
        )),
        Err("event-malformed")
    );
    // null: absent for contact, contact.email and note; refused elsewhere.
    for extra in ["\"note\": null", "\"contact\": null", "\"attachments\": []"] {
        assert_eq!(
            parse(before_details(extra).as_bytes()).expect(extra),
            e,
            "{extra}"
        );
    }
    let with_email_null =
        before_details("\"contact\": {\"name\": \"n\", \"phone\": \"1\", \"email\": null}");
    assert_eq!(
        parse(with_email_null.as_bytes())
            .expect("email null")
            .contact
            .and_then(|c| c.email),
        None
    );
    for extra in ["\"attachments\": null", "\"priority\": 1"] {
        assert_eq!(
            code(&before_details(extra)),
            Err("event-malformed"),
            "{extra}"
        );
    }
    // A kind that is not a string is malformed; an unknown string, unknown.
    assert_eq!(
        code(&text.replacen("\"kind\": \"received\"", "\"kind\": 7", 1)),
        Err("event-malformed")
    );
    assert_eq!(
        code(&text.replacen("\"kind\": \"received\"", "\"kind\": \"Received\"", 1)),
        Err("event-kind-unknown")
    );
    // \u escapes are decoded before the text rules.
    let accepted = event(
        2,
        Details::Accepted {
            court_case_number: "ab".into(),
        },
    );
    let t = String::from_utf8(accepted.to_bytes())
        .expect("utf-8")
        .replacen("\"ab\"", "\"a\\u000ab\"", 1);
    let ev = parse(t.as_bytes()).expect("parses");
    assert_eq!(
        ev.validate().map_err(|e| e.code()),
        Err("event-field-invalid")
    );
}

// ------------------------------------------------------------------ generator

/// A tiny, well-formed one-page PDF (the ruling of the vectors).
fn tiny_pdf(title: &str) -> Vec<u8> {
    let content = format!("BT /F1 14 Tf 72 770 Td ({title}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

fn signing_key(cert_pem: &str, key_pem: &str) -> SigningKey {
    use rustls_pki_types::pem::PemObject;
    let cert = sealpost::pki::SignerCert::from_pem(cert_pem.as_bytes()).expect("cert");
    let key =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    SigningKey::from_pkcs8(key.secret_pkcs8_der(), cert).expect("pair")
}

/// An event of the vectors: fixed id, case, bundle and time.
fn event(n: u8, details: Details) -> Event {
    Event {
        format: EVENT_FORMAT.into(),
        event_id: BundleId::from_random_bytes([n; 16]),
        court: FUTIAN.parse().expect("id"),
        committee: COMMITTEE.parse().expect("id"),
        case_number: "深劳人仲案〔2026〕1234号".parse().expect("case"),
        bundle_id: BundleId::from_random_bytes([0xB0; 16]),
        issued_at: at(VECTORS_ISSUED),
        details,
        contact: None,
        note: None,
        attachments: vec![],
    }
}

/// `bytes` signed as they are (no re-serialisation), with `files` sent beside.
fn submit_raw(bytes: &[u8], key: &SigningKey, files: &[(&str, &[u8])]) -> Submission {
    Submission {
        event: B64.encode(bytes),
        signature: B64.encode(key.sign(bytes)),
        signer: key.cert().to_pem(),
        attachments: files
            .iter()
            .map(|(name, data)| AttachmentData {
                name: (*name).to_owned(),
                data: B64.encode(data),
            })
            .collect(),
    }
}

fn submit(ev: &Event, key: &SigningKey, files: &[(&str, &[u8])]) -> Submission {
    submit_raw(&ev.to_bytes(), key, files)
}

fn attach(ev: &mut Event, name: &str, data: &[u8]) {
    ev.attachments.push(Attachment {
        name: name.into(),
        media_type: sniff_media_type(data).expect("typed").into(),
        size: data.len() as u64,
        sha256: Sha256::of(data),
    });
}

/// The event as JSON, edited by `f`, in the reference layout.
fn edited(ev: &Event, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&ev.to_bytes()).expect("json");
    f(&mut v);
    serde_json::to_vec_pretty(&v).expect("json")
}

#[test]
#[ignore = "regenerates the committed event vectors; run when the format changes"]
fn generate_event_vectors() {
    use time::macros::datetime;
    let dir = edir();
    fs::create_dir_all(&dir).expect("mkdir");
    for e in fs::read_dir(&dir).expect("dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            fs::remove_file(e.path()).expect("rm old vector");
        }
    }
    let put = |name: &str, s: &Submission| {
        let mut json = serde_json::to_string_pretty(s).expect("json");
        json.push('\n');
        fs::write(dir.join(format!("{name}.json")), json).expect("write vector");
    };
    let futian = load(FUTIAN).keys.signing;
    let nanshan = load("sz-nanshan-court").keys.signing;
    let lac = load(COMMITTEE).keys.signing;
    let ruling = tiny_pdf("Civil ruling (TEST VECTOR)");
    let ruling_name = "民事裁定书.pdf";

    // ---- ok: every kind
    put(
        "ok_received",
        &submit(&event(1, Details::Received {}), &futian, &[]),
    );
    let accepted = event(
        2,
        Details::Accepted {
            court_case_number: "(2026)粤0304财保123号".into(),
        },
    );
    put("ok_accepted", &submit(&accepted, &futian, &[]));
    let materials = |items: Vec<String>, place: &str| {
        let mut e = event(
            3,
            Details::MaterialsRequired {
                items,
                deadline: at("2026-12-01T09:00:00Z"),
                place: place.into(),
                how: "现场提交原件，复印件一份。\n也可邮寄至上述地址（请注明案号）。".into(),
            },
        );
        e.note = Some("逾期未补充的，本院将依法处理。".into());
        e
    };
    let items = vec![
        "申请人身份证复印件".to_owned(),
        "担保书原件".to_owned(),
        "被申请人财产线索（银行账户、不动产）".to_owned(),
    ];
    put(
        "ok_materials-required",
        &submit(
            &materials(items.clone(), "深圳市福田区人民法院立案庭 3 号窗口"),
            &futian,
            &[],
        ),
    );
    let mut appointment = event(
        4,
        Details::Appointment {
            at: at("2026-11-30T02:30:00Z"),
            place: "深圳市福田区人民法院 第三调解室".into(),
            officer: "王法官".into(),
            phone: "0755-83000000".into(),
            purpose: "询问申请人财产保全担保事宜。\n请携带身份证原件。".into(),
        },
    );
    appointment.contact = Some(Contact {
        name: "立案庭".into(),
        phone: "0755-83000001".into(),
        email: Some("lian@futian-court.example".into()),
    });
    put("ok_appointment", &submit(&appointment, &futian, &[]));
    let mut ruled = event(
        5,
        Details::RulingIssued {
            summary: "准予财产保全。\n冻结被申请人银行存款人民币 50,000 元。".into(),
        },
    );
    attach(&mut ruled, ruling_name, &ruling);
    put(
        "ok_ruling-issued",
        &submit(&ruled, &futian, &[(ruling_name, &ruling)]),
    );
    put(
        "ok_rejected",
        &submit(
            &event(
                6,
                Details::Rejected {
                    reason: "申请不符合财产保全的条件。\n详见不予受理通知书。".into(),
                },
            ),
            &futian,
            &[],
        ),
    );
    put(
        "ok_completed",
        &submit(&event(7, Details::Completed {}), &futian, &[]),
    );

    // ---- signature and signer
    let bytes = accepted.to_bytes();
    let mut sub = submit_raw(&bytes, &futian, &[]);
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(text.contains("123号"));
    sub.event = B64.encode(text.replace("123号", "124号"));
    put(
        "fail_event-signature-invalid__tampered-court-case-number",
        &sub,
    );
    {
        let (nb, na) = (
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2126-01-01 0:00 UTC),
        );
        let other = common::Ca::valid("another CA (not the exchange's)", nb, na);
        let (c, k) = other.signing_cert(FUTIAN, nb, na);
        put(
            "fail_event-signer-invalid__issued-by-another-ca",
            &submit(&event(20, Details::Received {}), &signing_key(&c, &k), &[]),
        );
    }
    put(
        "fail_event-signer-not-court__nanshan-key-signs-for-futian",
        &submit(&event(21, Details::Received {}), &nanshan, &[]),
    );
    let mut as_court = event(22, Details::Received {});
    as_court.court = COMMITTEE.parse().expect("id");
    put(
        "fail_event-signer-not-court__committee-key-signs-as-court",
        &submit(&as_court, &lac, &[]),
    );

    // ---- the event's JSON
    let base = event(23, Details::Received {});
    put(
        "fail_event-kind-unknown__summons",
        &submit_raw(
            &edited(&base, |v| {
                v["details"] = serde_json::json!({"kind": "summons"})
            }),
            &futian,
            &[],
        ),
    );
    put(
        "fail_event-malformed__unknown-member",
        &submit_raw(
            &edited(&base, |v| v["priority"] = "urgent".into()),
            &futian,
            &[],
        ),
    );
    put(
        "fail_event-malformed__missing-bundle-id",
        &submit_raw(
            &edited(&base, |v| {
                v.as_object_mut().expect("object").remove("bundle_id");
            }),
            &futian,
            &[],
        ),
    );
    let mut v2 = base.clone();
    v2.format = "sealpost-event/2".into();
    put(
        "fail_event-malformed__format-version-2",
        &submit(&v2, &futian, &[]),
    );
    let mut sub = submit(&base, &futian, &[]);
    sub.event.insert(10, '*');
    put("fail_event-malformed__event-not-base64", &sub);

    // ---- field rules
    put(
        "fail_event-field-invalid__line-break-in-place",
        &submit(&materials(items.clone(), "立案庭\n3 号窗口"), &futian, &[]),
    );
    put(
        "fail_event-field-invalid__31-items",
        &submit(
            &materials((1..=31).map(|i| format!("材料 {i}")).collect(), "立案庭"),
            &futian,
            &[],
        ),
    );
    let mut bidi = base.clone();
    bidi.note = Some("请于 \u{202E}01-21\u{202C} 前联系".into());
    put(
        "fail_event-field-invalid__bidi-override-in-note",
        &submit(&bidi, &futian, &[]),
    );
    let mut bare = ruled.clone();
    bare.attachments.clear();
    put(
        "fail_event-field-invalid__ruling-without-document",
        &submit(&bare, &futian, &[]),
    );

    // ---- attachments
    let mut other = ruling.clone();
    let last = other.len() - 2;
    other[last] ^= 0x20;
    put(
        "fail_event-attachment-invalid__digest-mismatch",
        &submit(&ruled, &futian, &[(ruling_name, &other)]),
    );
    put(
        "fail_event-attachment-invalid__attachment-missing",
        &submit(&ruled, &futian, &[]),
    );
    let extra = tiny_pdf("Not listed");
    put(
        "fail_event-attachment-invalid__attachment-extra",
        &submit(
            &ruled,
            &futian,
            &[(ruling_name, &ruling), ("附件.pdf", &extra)],
        ),
    );
    let mut sub = submit(&ruled, &futian, &[(ruling_name, &ruling)]);
    sub.attachments[0].data.insert(8, '*');
    put("fail_event-attachment-invalid__data-not-base64", &sub);

    // ---- time and identity
    let mut future = event(24, Details::Received {});
    future.issued_at = at("2100-01-01T00:00:00Z");
    put(
        "fail_event-in-future__issued-2100",
        &submit(&future, &futian, &[]),
    );
    let mut again = accepted.clone();
    again.details = Details::Accepted {
        court_case_number: "(2026)粤0304财保999号".into(),
    };
    put(
        "fail_event-id-conflict__accepted-id-with-another-court-case-number",
        &submit(&again, &futian, &[]),
    );
}

// ------------------------------------------------------------------ stock tools

/// The `sh` block between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->`
/// in `docs/event-format.md`.
fn recipe(marker: &str) -> String {
    common::doc_block("docs/event-format.md", marker)
}

fn require_tools() {
    common::require_tools(&[
        "sh",
        "jq",
        "base64",
        "base32",
        "openssl",
        "sha256sum",
        "date",
        "grep",
        "tr",
        "wc",
    ]);
}

/// Runs the verification recipe on `submission` in a fresh directory;
/// returns (success, output, directory).
fn stock_verify(
    submission: &Path,
    ca: &Path,
    court_cert: &Path,
) -> (bool, String, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    let o = Command::new("sh")
        .arg("-c")
        .arg(recipe("event-verify"))
        .current_dir(work.path())
        .env("SUBMISSION", submission)
        .env("CA", ca)
        .env("COURT_CERT", court_cert)
        .output()
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success() && text.contains("EVENT OK"), text, work)
}

#[test]
fn the_documented_recipe_verifies_an_event_with_stock_tools() {
    require_tools();
    let ca = pki().join("ca.pem");
    let futian_cert = pki().join(FUTIAN).join("sign.pem");
    let ok = edir().join("ok_ruling-issued.json");
    let (passed, text, work) = stock_verify(&ok, &ca, &futian_cert);
    assert!(passed, "the recipe failed on a good event:\n{text}");
    assert!(text.contains("Signature Verified Successfully"), "{text}");
    // The attachment it wrote is the ruling, byte for byte.
    let sub: Submission = serde_json::from_slice(&fs::read(&ok).expect("read")).expect("json");
    assert_eq!(
        fs::read(work.path().join("attachment-0")).expect("attachment written"),
        B64.decode(&sub.attachments[0].data).expect("b64")
    );
    for name in ["ok_received", "ok_appointment", "ok_materials-required"] {
        let (passed, text, _) =
            stock_verify(&edir().join(format!("{name}.json")), &ca, &futian_cert);
        assert!(passed, "the recipe failed on {name}:\n{text}");
    }

    // What the recipe can see fails it, as it fails sealpost.
    for name in [
        "fail_event-signature-invalid__tampered-court-case-number",
        "fail_event-signer-invalid__issued-by-another-ca",
        "fail_event-signer-not-court__nanshan-key-signs-for-futian",
        "fail_event-malformed__format-version-2",
        "fail_event-malformed__event-not-base64",
        "fail_event-attachment-invalid__digest-mismatch",
        "fail_event-attachment-invalid__attachment-missing",
        "fail_event-attachment-invalid__attachment-extra",
        "fail_event-attachment-invalid__data-not-base64",
    ] {
        let (passed, text, _) =
            stock_verify(&edir().join(format!("{name}.json")), &ca, &futian_cert);
        assert!(!passed, "the recipe accepted {name}:\n{text}");
    }

    // Tampering with a good one: one byte of the event, one of the ruling.
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut ev = B64.decode(&sub.event).expect("b64");
    let i = ev.len() / 2;
    ev[i] ^= 0x01;
    let mut evil = sub.clone();
    evil.event = B64.encode(&ev);
    let path = scratch.path().join("tampered-event.json");
    fs::write(&path, serde_json::to_vec(&evil).expect("json")).expect("write");
    let (passed, text, _) = stock_verify(&path, &ca, &futian_cert);
    assert!(!passed, "the recipe accepted a tampered event:\n{text}");

    let mut pdf = B64.decode(&sub.attachments[0].data).expect("b64");
    pdf[20] ^= 0x01;
    let mut evil = sub.clone();
    evil.attachments[0].data = B64.encode(&pdf);
    let path = scratch.path().join("tampered-ruling.json");
    fs::write(&path, serde_json::to_vec(&evil).expect("json")).expect("write");
    let (passed, text, _) = stock_verify(&path, &ca, &futian_cert);
    assert!(!passed, "the recipe accepted a tampered ruling:\n{text}");
    assert!(text.contains("FAILED"), "sha256sum should say so:\n{text}");
}

/// The same Ed25519 key as PKCS#8 v1 (RFC 5208, the seed only), as
/// `openssl genpkey -algorithm ed25519` writes it: rcgen writes v2 (RFC 5958,
/// with the public key), which OpenSSL 3.0 cannot read.
fn pkcs8_v1(key_pem: &str) -> String {
    let der = B64
        .decode(
            key_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("pem");
    let at = der
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("the seed's OCTET STRING")
        + 4;
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&der[at..at + 32]);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        B64.encode(v1)
    )
}

#[test]
fn the_documented_recipe_makes_an_event_without_sealpost() {
    require_tools();
    let net = Net::new();
    let court = net.agency(FUTIAN);
    let work = tempfile::tempdir().expect("tempdir");
    let key = work.path().join("sign.key");
    fs::write(
        &key,
        pkcs8_v1(&fs::read_to_string(court.dir.join("sign.key")).expect("key")),
    )
    .expect("write key");
    let ruling = work.path().join("民事裁定书.pdf");
    fs::write(&ruling, tiny_pdf("Made with openssl")).expect("write");
    let bundle = BundleId::generate();
    let summary = "准予财产保全。\n冻结被申请人银行存款 \"50,000\" 元 \\ 以 openssl 制作。";
    let o = Command::new("sh")
        .arg("-c")
        .arg(recipe("event-make"))
        .current_dir(work.path())
        .env("SIGN_KEY", &key)
        .env("SIGN_CERT", court.dir.join("sign.pem"))
        .env("ME", FUTIAN)
        .env("COMMITTEE", COMMITTEE)
        .env("CASE", "深劳人仲案〔2026〕77号")
        .env("BUNDLE_ID", bundle.as_str())
        .env("SUMMARY", summary)
        .env("RULING", &ruling)
        .output()
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "the make recipe failed:\n{text}");

    // sealpost accepts what openssl made, as the committee's node would.
    let made = work.path().join("event.json");
    let lac = net.config(COMMITTEE);
    let sub = Submission::from_json(&fs::read(&made).expect("event.json")).expect("submission");
    let ev = sub
        .signed()
        .verify(&lac.trust, &lac.directory, Timestamp::now())
        .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    ev.check_attachments(&sub.attachment_bytes().expect("b64"))
        .expect("attachments");
    assert_eq!(ev.bundle_id, bundle);
    assert_eq!(ev.case_number.as_str(), "深劳人仲案〔2026〕77号");
    assert_eq!(
        ev.details,
        Details::RulingIssued {
            summary: summary.into()
        }
    );
    assert_eq!(ev.attachments[0].name, "民事裁定书.pdf");
    // And so does the CLI, and the stock verification recipe.
    let config = net.config_path(COMMITTEE);
    let (code, out, err) = common::sealpost(&[
        "-c",
        config.to_str().expect("utf-8"),
        "followup",
        "verify",
        made.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (passed, text, _) = stock_verify(
        &made,
        &net.path().join("ca.pem"),
        &court.dir.join("sign.pem"),
    );
    assert!(passed, "the verify recipe refused the made event:\n{text}");
}

// ------------------------------------------------------------------ CLI

fn followup(net: &Net, agency: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let config = net.config_path(agency);
    let mut all = vec!["-c", config.to_str().expect("utf-8"), "followup"];
    all.extend_from_slice(args);
    common::sealpost(&all)
}

#[test]
fn followup_make_signs_an_event_that_verifies() {
    let net = Net::new();
    let pdf = net.out("裁定书.pdf");
    fs::write(&pdf, tiny_pdf("CLI")).expect("write");
    let bundle = BundleId::generate();
    let out = net.out("event.json");
    let o = out.to_str().expect("utf-8");
    let (code, stdout, stderr) = followup(
        &net,
        FUTIAN,
        &[
            "make",
            "--case",
            "深劳人仲案〔2026〕5号",
            "--bundle",
            bundle.as_str(),
            "--kind",
            "ruling-issued",
            "--summary",
            "准予保全。\n冻结存款。",
            "--attach",
            pdf.to_str().expect("utf-8"),
            "--contact-name",
            "立案庭",
            "--contact-phone",
            "0755-1234",
            "--note",
            "第一行\n第二行",
            "-o",
            o,
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("MADE EVENT"), "{stdout}");

    // The file is a Submission the committee accepts, with the PDF typed.
    let lac = net.config(COMMITTEE);
    let bytes = fs::read(&out).expect("written");
    assert!(bytes.ends_with(b"}\n"));
    let v = check(&bytes, &lac, Timestamp::now()).unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert_eq!(v.event.court.as_str(), FUTIAN);
    assert_eq!(v.event.committee.as_str(), COMMITTEE, "the only committee");
    assert_eq!(v.event.bundle_id, bundle);
    assert_eq!(v.event.attachments[0].media_type, "application/pdf");
    assert_eq!(v.event.attachments[0].name, "裁定书.pdf");
    assert_eq!(v.event_bytes, v.event.to_bytes(), "reference layout");

    let (code, stdout, stderr) = followup(&net, COMMITTEE, &["verify", o]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("VERIFIED EVENT"), "{stdout}");
    for want in [
        v.event.event_id.as_str(),
        "(ruling-issued)",
        "准予保全。",
        "冻结存款。",
        "裁定书.pdf (application/pdf",
        "立案庭, 0755-1234",
    ] {
        assert!(stdout.contains(want), "{want:?} not in\n{stdout}");
    }

    // Two makes: two ids. The output is never replaced.
    let (code, _, stderr) = followup(
        &net,
        FUTIAN,
        &[
            "make",
            "--case",
            "c",
            "--bundle",
            bundle.as_str(),
            "--kind",
            "received",
            "-o",
            o,
        ],
    );
    assert_eq!(code, Some(73), "{stderr}");
    assert_eq!(fs::read(&out).expect("kept"), bytes);
    let second = net.out("second.json");
    let (code, _, stderr) = followup(
        &net,
        FUTIAN,
        &[
            "make",
            "--case",
            "c",
            "--bundle",
            bundle.as_str(),
            "--kind",
            "received",
            "-o",
            second.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let w = check(&fs::read(&second).expect("read"), &lac, Timestamp::now()).expect("verifies");
    assert_ne!(w.event.event_id, v.event.event_id);
}

#[test]
fn followup_make_refuses_bad_input_and_writes_nothing() {
    let net = Net::new();
    let bundle = BundleId::generate();
    let b = bundle.as_str();
    let text = net.out("note.txt");
    fs::write(&text, "not a pdf").expect("write");
    let t = text.to_str().expect("utf-8");
    let out = net.out("event.json");
    let o = out.to_str().expect("utf-8");
    let base = [
        "make",
        "--case",
        "深劳人仲案〔2026〕5号",
        "--bundle",
        b,
        "-o",
        o,
    ];
    let cases: &[(&str, &[&str], i32, &str)] = &[
        (
            "accepted without its number",
            &["--kind", "accepted"],
            64,
            "--court-case-number",
        ),
        (
            "an option of another kind",
            &["--kind", "received", "--item", "x"],
            64,
            "--item does not apply to --kind received",
        ),
        ("an unknown kind", &["--kind", "summons"], 64, "not a kind"),
        (
            "a bad deadline",
            &[
                "--kind",
                "materials-required",
                "--item",
                "x",
                "--deadline",
                "tomorrow",
                "--place",
                "p",
                "--how",
                "h",
            ],
            64,
            "--deadline",
        ),
        (
            "a ruling without its document",
            &["--kind", "ruling-issued", "--summary", "s"],
            64,
            "--attach",
        ),
        (
            "half a contact",
            &["--kind", "received", "--contact-name", "n"],
            64,
            "--contact-phone",
        ),
        (
            "an unknown committee",
            &["--kind", "received", "--committee", "sz-nobody"],
            64,
            "no such committee",
        ),
        (
            "a bad bundle id",
            &["--kind", "received", "--bundle", "nope"],
            64,
            "--bundle",
        ),
        (
            "a line break in a one-line field",
            &["--kind", "accepted", "--court-case-number", "a\nb"],
            65,
            "[event-field-invalid]",
        ),
        (
            "too many items",
            &[
                "--kind",
                "materials-required",
                "--deadline",
                "2026-12-01T00:00:00Z",
                "--place",
                "p",
                "--how",
                "h",
                "--item",
                "1",
                "--item",
                "2",
                "--item",
                "3",
                "--item",
                "4",
                "--item",
                "5",
                "--item",
                "6",
                "--item",
                "7",
                "--item",
                "8",
                "--item",
                "9",
                "--item",
                "10",
                "--item",
                "11",
                "--item",
                "12",
                "--item",
                "13",
                "--item",
                "14",
                "--item",
                "15",
                "--item",
                "16",
                "--item",
                "17",
                "--item",
                "18",
                "--item",
                "19",
                "--item",
                "20",
                "--item",
                "21",
                "--item",
                "22",
                "--item",
                "23",
                "--item",
                "24",
                "--item",
                "25",
                "--item",
                "26",
                "--item",
                "27",
                "--item",
                "28",
                "--item",
                "29",
                "--item",
                "30",
                "--item",
                "31",
            ],
            65,
            "[event-field-invalid]",
        ),
        (
            "a bad e-mail",
            &[
                "--kind",
                "received",
                "--contact-name",
                "n",
                "--contact-phone",
                "1",
                "--contact-email",
                "not-mail",
            ],
            65,
            "e-mail",
        ),
        (
            "an attachment that is not a PDF, PNG or JPEG",
            &["--kind", "received", "--attach", t],
            65,
            "[event-attachment-invalid]",
        ),
        (
            "an attachment that does not exist",
            &["--kind", "received", "--attach", "/nonexistent/x.pdf"],
            66,
            "cannot read",
        ),
    ];
    for (what, extra, want, says) in cases {
        // A later --bundle overrides the first one (clap keeps the last).
        let mut args: Vec<&str> = base.to_vec();
        if extra.contains(&"--bundle") {
            args.retain(|a| *a != b);
            args.retain(|a| *a != "--bundle");
        }
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = followup(&net, FUTIAN, &args);
        assert_eq!(code, Some(*want), "{what}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{what}: {says:?} not in {stderr}");
        assert!(!out.exists(), "{what}: wrote {o}");
    }
    // Only a court issues events.
    let (code, _, stderr) = followup(
        &net,
        COMMITTEE,
        &[&base[..], &["--kind", "received"]].concat(),
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("only a court"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn followup_verify_refuses_with_the_code() {
    let net = Net::new();
    let pdf = net.out("r.pdf");
    fs::write(&pdf, tiny_pdf("x")).expect("write");
    let good = net.out("good.json");
    let (code, _, stderr) = followup(
        &net,
        FUTIAN,
        &[
            "make",
            "--case",
            "深劳人仲案〔2026〕5号",
            "--bundle",
            BundleId::generate().as_str(),
            "--kind",
            "ruling-issued",
            "--summary",
            "s",
            "--attach",
            pdf.to_str().expect("utf-8"),
            "-o",
            good.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let sub: Submission = serde_json::from_slice(&fs::read(&good).expect("read")).expect("json");

    let mut other_pdf = sub.clone();
    other_pdf.attachments[0].data = B64.encode(tiny_pdf("y"));
    let mut none = sub.clone();
    none.attachments.clear();
    let mut forged = sub.clone();
    let mut ev = B64.decode(&sub.event).expect("b64");
    let n = ev.len();
    ev[n - 3] ^= 0x01;
    forged.event = B64.encode(&ev);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "tampered ruling",
            serde_json::to_vec(&other_pdf).expect("json"),
            "event-attachment-invalid",
        ),
        (
            "ruling not sent",
            serde_json::to_vec(&none).expect("json"),
            "event-attachment-invalid",
        ),
        (
            "tampered event",
            serde_json::to_vec(&forged).expect("json"),
            "event-signature-invalid",
        ),
        (
            "not a submission",
            b"{\"event\":1}".to_vec(),
            "event-malformed",
        ),
        ("not JSON", b"hello".to_vec(), "event-malformed"),
    ];
    for (what, bytes, want) in cases {
        let f = net.out("bad.json");
        fs::write(&f, bytes).expect("write");
        let (code, stdout, stderr) =
            followup(&net, COMMITTEE, &["verify", f.to_str().expect("utf-8")]);
        assert_eq!(code, Some(65), "{what}: {stdout}{stderr}");
        assert!(stderr.contains(&format!("[{want}]")), "{what}: {stderr}");
        assert!(stdout.is_empty(), "{what}: {stdout}");
    }
    let (code, _, _) = followup(&net, COMMITTEE, &["verify", "/nonexistent.json"]);
    assert_eq!(code, Some(66));
}
