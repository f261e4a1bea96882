//! The fuzz targets' findings, pinned (`fuzz/`, `fuzz/README.md`): every input
//! a target crashed on is kept under `tests/data/fuzz/<target>/` and fed here
//! through the public API, which must answer it with a clear error.
//!
//! `cargo test --test fuzz_regressions -- --ignored write_fuzz_seeds` writes
//! the targets' seed inputs (made by the library from the repository's
//! fixtures and the vector PKI) into `fuzz/corpus/<target>/`.

use std::fs;
use std::path::{Path, PathBuf};

/// What the fuzz targets share (the vector PKI's nodes, their fixed clock,
/// the repository root): the same file, so a regression runs as its target did.
#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use targets::{committee, court, now, root};

/// The inputs kept for `target`, by name.
fn crashes(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("tests/data/fuzz").join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("input"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

// ------------------------------------------------------------------ seeds

fn seed_dir(target: &str) -> PathBuf {
    let dir = root().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    fs::write(seed_dir(target).join(name), bytes).expect("seed");
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().expect("stem").to_string_lossy().into_owned()
}

#[test]
#[ignore = "writes the fuzz targets' seeds into fuzz/corpus/"]
fn write_fuzz_seeds() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let vectors = root().join("tests/data/vectors");

    // Bundles: every vector, for the container reader and for opening.
    for p in files(&vectors, "sealpost") {
        let bytes = fs::read(&p).expect("vector");
        seed("zip_container", &stem(&p), &bytes);
        seed("bundle_open", &stem(&p), &bytes);
    }

    // Manifests: the example applications' and the hostile fixtures'.
    for group in ["fixtures/applications", "fixtures/hostile"] {
        for e in fs::read_dir(root().join(group))
            .expect("fixtures")
            .flatten()
        {
            let toml = e.path().join("application.toml");
            if toml.is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                seed("manifest", &name, &fs::read(&toml).expect("manifest"));
            }
        }
    }

    // File names: the documents of the examples, and names the rules refuse.
    let mut names: Vec<String> = Vec::new();
    for e in fs::read_dir(root().join("fixtures/applications"))
        .expect("fixtures")
        .flatten()
    {
        for d in fs::read_dir(e.path()).expect("fixture").flatten() {
            names.push(d.file_name().to_string_lossy().into_owned());
        }
    }
    names.extend(
        [
            "..",
            "a/b.pdf",
            "CON.pdf",
            "com1.txt",
            "evil\u{202E}fdp.exe",
            "e\u{301}.pdf",
            " x.pdf",
            "x.pdf.",
            "C:x.pdf",
        ]
        .map(String::from),
    );
    names.sort();
    for (i, n) in names.iter().enumerate() {
        seed("file_names", &format!("name-{i:02}"), n.as_bytes());
    }

    // Receipts: one signed by the Futian court for each ok vector, and its
    // inner document.
    let court = court();
    for p in files(&vectors, "sealpost") {
        if !stem(&p).starts_with("ok_") {
            continue;
        }
        let (envelope, envelope_bytes, _) = sealpost::bundle::inspect(&p).expect("ok vector");
        let receipt = sealpost::receipt::Receipt {
            format: sealpost::receipt::RECEIPT_FORMAT.into(),
            bundle_id: envelope.id,
            sender: envelope.sender.clone(),
            receiver: envelope.recipient.clone(),
            envelope_sha256: sealpost::types::Sha256::of(&envelope_bytes),
            payload_sha256: envelope.payload.sha256,
            received_at: now(),
        };
        let signed = receipt.sign(&court.keys.signing);
        let json = serde_json::to_vec_pretty(&signed).expect("json");
        seed("receipt", &format!("signed-{}", stem(&p)), &json);
        let inner = b64.decode(&signed.receipt).expect("base64");
        seed("receipt", &format!("receipt-{}", stem(&p)), &inner);
    }

    // Events: every event vector (a submission) and its decoded event.
    for p in files(&root().join("tests/data/events"), "json") {
        let bytes = fs::read(&p).expect("event vector");
        seed("event", &format!("submission-{}", stem(&p)), &bytes);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        if let Some(ev) = v
            .get("event")
            .and_then(|e| e.as_str())
            .and_then(|e| b64.decode(e).ok())
        {
            seed("event", &format!("event-{}", stem(&p)), &ev);
        }
    }

    // Audit: a log written by the library, and the excerpts of the proofs
    // (mode byte 0: verify as given).
    let committee = committee();
    let dir = tempfile::tempdir().expect("tempdir");
    let (audit, _) = sealpost::audit::Audit::open(dir.path(), &committee.node.id).expect("audit");
    audit
        .append(sealpost::audit::Entry::NodeStarted {
            version: "0.1.0".into(),
            signing_cert_sha256: sealpost::types::Sha256::of(b"signing"),
            tls_cert_sha256: sealpost::types::Sha256::of(b"tls"),
            ca_sha256: vec![sealpost::types::Sha256::of(b"ca")],
        })
        .expect("append");
    audit
        .checkpoint(&committee.keys.signing)
        .expect("checkpoint");
    audit
        .append(sealpost::audit::Entry::NodeStopped)
        .expect("append");
    let mut log = vec![0u8];
    log.extend(fs::read(audit.log_path()).expect("log"));
    seed("audit", "log", &log);
    for p in files(&root().join("tests/data/proofs"), "zip") {
        let mut zip = zip::ZipArchive::new(fs::File::open(&p).expect("proof")).expect("zip");
        if let Ok(mut f) = zip.by_name("audit.jsonl") {
            let mut bytes = vec![0u8];
            std::io::Read::read_to_end(&mut f, &mut bytes).expect("excerpt");
            seed("audit", &format!("excerpt-{}", stem(&p)), &bytes);
        };
    }
    // Mode byte 1: a tamper at offset 10 replacing 1 byte with "x".
    seed("audit", "tamper", b"\x01\x0a\x00\x00\x00\x01x");

    // Routes: a request line for every endpoint and some that are none.
    let id = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let case = "%E6%B7%B1%E5%8A%B3%E4%BA%BA%E4%BB%B2%E6%A1%88%E3%80%942026%E3%80%951234%E5%8F%B7";
    for (i, line) in [
        "GET /v1/bundles?after=3&limit=10&wait=30".to_owned(),
        "GET /v1/bundles?limit=0".to_owned(),
        "POST /v1/bundles".to_owned(),
        format!("GET /v1/bundles/{id}"),
        format!("HEAD /v1/bundles/{id}"),
        format!("POST /v1/bundles/{id}/receipt"),
        "POST /v1/applications".to_owned(),
        format!("GET /v1/cases/{case}"),
        format!("POST /v1/cases/{case}/events"),
        "DELETE /v1/bundles".to_owned(),
        "GET /v1/bundles/x/y".to_owned(),
        "GET /".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        seed("routes", &format!("line-{i:02}"), line.as_bytes());
    }
}

// ------------------------------------------------------------------ audit

/// The audit target's inputs: byte 0 picks the mode (even: verify the rest as
/// given). A `seq` or `head_seq` of `u64::MAX` overflowed the verifier's
/// `seq + 1` (a panic in debug builds, a wrapped record number in release
/// builds); such a record is now `record-malformed`, and a checkpoint naming
/// `head_seq` `u64::MAX` signs no record before it (`checkpoint-invalid`).
#[test]
fn audit_records_numbered_at_the_end_of_u64_are_refused() {
    let trust = &committee().trust;
    for (name, input) in crashes("audit") {
        let (mode, rest) = input.split_first().expect("a mode byte");
        assert_eq!(mode % 2, 0, "{name}: a verify-as-given input");
        let problem = sealpost::audit::verify_excerpt(rest, trust)
            .expect_err(&format!("{name}: an excerpt accepted"));
        let report = sealpost::audit::verify_log(rest, Some(trust), None).expect("read");
        let in_log = report.problem.expect("a log accepted");
        match name.as_str() {
            "seq-max-followed-by-a-record" => {
                assert_eq!(problem.code, "record-malformed", "{name}: {problem}");
                assert!(
                    problem.message.contains("out of range"),
                    "{name}: {problem}"
                );
                assert_eq!(in_log.code, "record-malformed", "{name}: {in_log}");
            }
            "checkpoint-head-seq-max" => {
                assert_eq!(problem.code, "checkpoint-invalid", "{name}: {problem}");
                assert!(
                    problem.message.contains("not the record before it"),
                    "{name}: {problem}"
                );
                // A log must begin with record 1.
                assert_eq!(in_log.code, "record-missing", "{name}: {in_log}");
            }
            other => panic!("{other}: no expectation for this input"),
        }
    }
}
