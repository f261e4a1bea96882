//! What clerks (and their copy tools) really do, against the real daemon: write
//! `READY` first, keep copying after it, drop what the node may not move, give
//! folders names with control characters — and what they then read.

mod common;

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{tiny_app, wait_until, Net, COMMITTEE, FUTIAN};
use sealpost::outbox::Outbox;

const FAST: &[(&str, &str)] = &[
    ("SEALPOST_INTAKE__SETTLE", "1s"),
    ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
];

fn clerk_root(net: &Net) -> std::path::PathBuf {
    net.agency(COMMITTEE).dir.join("data/clerk")
}

/// The sealed bytes of the document `file` in the only delivery of the outbox
/// (opened as the court would), and the archived original's bytes.
fn sealed_and_archived(net: &Net, item: &str, file: &str) -> (Vec<u8>, Vec<u8>) {
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let d = outbox.list().expect("list").pop().expect("one delivery");
    let court = net.config(FUTIAN);
    let out = net.out(&format!("opened-{}", d.id));
    sealpost::bundle::Verifier::for_node(&court)
        .open(&outbox.bundle_path(&d.id), &court.keys.encryption, &out)
        .expect("the bundle opens");
    let sealed = fs::read(out.join("documents").join(file)).expect("sealed document");
    let archived = fs::read(
        clerk_root(net)
            .join("archive")
            .join(d.id.as_str())
            .join(item)
            .join(file),
    )
    .expect("archived original");
    (sealed, archived)
}

/// A folder whose `READY` marker is written first, and one document still
/// open for writing by its copier when the folder lands in `intake/`.
fn ready_first(net: &Net, name: &str, case: &str) -> (std::path::PathBuf, fs::File, Vec<u8>) {
    let staging = net.out(&format!("staging-{name}"));
    tiny_app(&staging, case, FUTIAN);
    fs::write(staging.join("READY"), b"").expect("READY first");
    let doc = staging.join("财产保全申请书.pdf");
    let mut writer = fs::File::create(&doc).expect("create");
    let mut written = b"%PDF-1.7\n".to_vec();
    writer.write_all(&written).expect("write");
    let dest = clerk_root(net).join("intake").join(name);
    fs::rename(&staging, &dest).expect("drop");
    (dest, writer, std::mem::take(&mut written))
}

#[test]
fn a_clerk_who_writes_ready_first_gets_the_final_bytes_sealed_and_archived_not_a_prefix() {
    let net = Net::new();
    let root = clerk_root(&net);
    let mut node = common::spawn_run(&net, COMMITTEE, FAST, Stdio::null());
    node.wait_ready();
    let (_, mut writer, mut written) = ready_first(&net, "ready-first", "深劳人仲案〔2026〕9201号");
    // The copier goes on writing (through the file it holds open, wherever
    // the folder has been moved to) for about two seconds.
    let piece = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        writer.write_all(&piece).expect("write");
        written.extend_from_slice(&piece);
        assert!(
            !root.join("accepted/ready-first.txt").exists(),
            "accepted while the document was still being written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.write_all(b"\n%%EOF\n").expect("write");
    written.extend_from_slice(b"\n%%EOF\n");
    drop(writer);
    wait_until(
        Duration::from_secs(20),
        "the application to be accepted",
        || root.join("accepted/ready-first.txt").is_file(),
    );
    node.stop();
    let (sealed, archived) = sealed_and_archived(&net, "ready-first", "财产保全申请书.pdf");
    assert_eq!(sealed.len(), written.len(), "a partial document was sealed");
    assert!(
        sealed == written,
        "the sealed bytes are not the clerk's final bytes"
    );
    assert!(
        archived == written,
        "the archived bytes are not the clerk's final bytes"
    );
}

#[test]
fn a_copier_that_never_finishes_is_rejected_as_still_being_written() {
    let net = Net::new();
    let root = clerk_root(&net);
    let mut env = FAST.to_vec();
    env.push(("SEALPOST_INTAKE__WRITE_TIMEOUT", "2s"));
    let mut node = common::spawn_run(&net, COMMITTEE, &env, Stdio::null());
    node.wait_ready();
    let (_, mut writer, _) = ready_first(&net, "never-done", "深劳人仲案〔2026〕9202号");
    let rejected = root.join("rejected/never-done/REJECTED.txt");
    let started = Instant::now();
    while !rejected.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a folder being written for ever was never rejected"
        );
        writer.write_all(b"x").expect("write");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(writer);
    let text = fs::read_to_string(&rejected).expect("REJECTED.txt");
    assert!(text.contains("[still-being-written]"), "{text}");
    assert!(text.contains("最后再放 READY"), "{text}");
    assert!(text.contains("write READY last"), "{text}");
    assert!(
        !root.join("accepted/never-done.txt").exists(),
        "it was accepted"
    );
    node.stop();
}

#[test]
fn without_leases_a_ready_drop_waits_until_it_stops_changing_after_the_claim() {
    let net = Net::new();
    let root = clerk_root(&net);
    let mut env = FAST.to_vec();
    env.push(("SEALPOST_INTAKE__USE_LEASES", "false"));
    let mut node = common::spawn_run(&net, COMMITTEE, &env, Stdio::null());
    node.wait_ready();
    let (_, mut writer, mut written) = ready_first(&net, "no-leases", "深劳人仲案〔2026〕9203号");
    // Pauses shorter than the settle time: the item keeps changing.
    for _ in 0..6 {
        writer.write_all(b"chunk of a slow copy\n").expect("write");
        written.extend_from_slice(b"chunk of a slow copy\n");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !root.join("accepted/no-leases.txt").exists(),
            "accepted while still changing"
        );
    }
    writer.write_all(b"%%EOF\n").expect("write");
    written.extend_from_slice(b"%%EOF\n");
    drop(writer);
    wait_until(
        Duration::from_secs(20),
        "the application to be accepted",
        || root.join("accepted/no-leases.txt").is_file(),
    );
    node.stop();
    let (sealed, archived) = sealed_and_archived(&net, "no-leases", "财产保全申请书.pdf");
    assert!(
        sealed == written && archived == written,
        "not the final bytes"
    );
}

#[test]
fn a_copy_cut_short_after_ready_is_rejected_saying_it_was_still_being_written() {
    // The copier wrote READY first, was still writing one file when the folder
    // was complete by its marker, and never got to the last file.
    let net = Net::new();
    let root = clerk_root(&net);
    let mut node = common::spawn_run(&net, COMMITTEE, FAST, Stdio::null());
    node.wait_ready();
    let staging = net.out("staging-cut");
    tiny_app(&staging, "深劳人仲案〔2026〕9204号", FUTIAN);
    fs::remove_file(staging.join("受理通知书.pdf")).expect("not copied yet");
    fs::write(staging.join("READY"), b"").expect("READY first");
    let mut writer = fs::File::create(staging.join("财产保全申请书.pdf")).expect("create");
    writer.write_all(b"%PDF-1.7\n").expect("write");
    fs::rename(&staging, root.join("intake/cut-short")).expect("drop");
    std::thread::sleep(Duration::from_millis(500));
    writer.write_all(b"%%EOF\n").expect("write");
    drop(writer);
    let rejected = root.join("rejected/cut-short/REJECTED.txt");
    wait_until(Duration::from_secs(20), "the rejection", || {
        rejected.exists()
    });
    let text = fs::read_to_string(&rejected).expect("REJECTED.txt");
    assert!(text.contains("[still-being-written]"), "{text}");
    assert!(text.contains("[document-missing]"), "{text}");
    assert!(
        text.contains("copy may not have finished") || text.contains("copy had not finished"),
        "{text}"
    );
    node.stop();
}

#[test]
fn a_drop_the_node_may_not_move_is_retried_with_backoff_noted_for_the_clerk_and_blocks_nothing() {
    let net = Net::new();
    let root = clerk_root(&net);
    let mut node = common::spawn_run(&net, COMMITTEE, FAST, Stdio::null());
    node.wait_ready();
    // A folder the node cannot move (immutable: "Operation not permitted"
    // even for root). Made in place without READY, so that it is immutable
    // well before it settles and is claimed.
    let stuck = root.join("intake/stuck");
    tiny_app(&stuck, "深劳人仲案〔2026〕9301号", FUTIAN);
    let guard = common::Immutable::set(&stuck);
    let note = root.join("problems/stuck.txt");
    wait_until(Duration::from_secs(10), "the clerks' note", || {
        note.is_file()
    });
    // Meanwhile other drops are taken as usual.
    let other = net.out("staging-other");
    tiny_app(&other, "深劳人仲案〔2026〕9302号", FUTIAN);
    fs::write(other.join("READY"), b"").expect("marker");
    fs::rename(&other, root.join("intake/other")).expect("drop");
    wait_until(Duration::from_secs(10), "the other drop", || {
        root.join("accepted/other.txt").is_file()
    });
    // Six seconds of a stuck item: a handful of attempts, not thousands.
    std::thread::sleep(Duration::from_secs(6));
    let log = node.stderr_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("cannot take this item"))
        .count();
    assert!(
        (2..=6).contains(&lines),
        "{lines} log lines for one stuck item in about 7 s:\n{log}"
    );
    let text = fs::read_to_string(&note).expect("note");
    assert!(text.contains("权限"), "{text}");
    assert!(text.contains("permission"), "{text}");
    assert!(text.contains("stuck"), "{text}");
    // Once IT fixes it, the item is taken on its next attempt and the note goes.
    drop(guard);
    wait_until(
        Duration::from_secs(20),
        "the fixed drop to be taken",
        || root.join("accepted/stuck.txt").is_file(),
    );
    wait_until(Duration::from_secs(5), "the note to be removed", || {
        !note.exists()
    });
    node.stop();
}

#[test]
fn a_drop_named_with_escape_and_line_feed_cannot_forge_a_log_line_or_a_note() {
    let net = Net::new();
    let root = clerk_root(&net);
    let mut node = common::spawn_run(&net, COMMITTEE, FAST, Stdio::piped());
    let stdout = node.take_stdout();
    let lines = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut s);
        s
    });
    node.wait_ready();
    let name = "evil\u{1b}[31m\n2026-01-01T00:00:00Z ERROR forged: disk wiped";
    let staging = net.out("staging-evil");
    tiny_app(&staging, "深劳人仲案〔2026〕9401号", FUTIAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    fs::rename(&staging, root.join("intake").join(name)).expect("drop");
    let note = root.join("accepted").join(format!("{name}.txt"));
    wait_until(Duration::from_secs(20), "the acceptance", || note.is_file());
    node.stop();
    let log = node.stderr_text();
    let out = lines.join().expect("stdout");
    for (what, text) in [("the log", &log), ("stdout", &out)] {
        assert!(!text.contains('\u{1b}'), "{what} holds a raw ESC:\n{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")),
            "{what} holds a forged line:\n{text}"
        );
        assert!(
            text.contains("evil\\u{1b}[31m\\u{a}2026"),
            "{what}:\n{text}"
        );
    }
    let text = fs::read_to_string(&note).expect("note");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("evil\\u{1b}[31m\\u{a}"), "{text}");
}

// ---------------------------------------------------------------- what clerks read

/// Drops `make`'s folder into a fresh intake (library, no daemon) and returns
/// the text of its `REJECTED.txt`.
fn rejected_text(net: &Net, name: &str, make: impl FnOnce(&std::path::Path)) -> String {
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake =
        sealpost::intake::Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let dir = intake.dirs().intake.join(name);
    tiny_app(&dir, "深劳人仲案〔2026〕9601号", FUTIAN);
    make(&dir);
    match intake
        .take(&[std::ffi::OsString::from(name)])
        .pop()
        .expect("one")
        .expect("no intake error")
    {
        sealpost::intake::Outcome::Rejected { dir, .. } => {
            fs::read_to_string(dir.join("REJECTED.txt")).expect("REJECTED.txt")
        }
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn a_folder_with_ten_thousand_stray_files_gets_a_short_rejection_note() {
    let net = Net::new();
    let text = rejected_text(&net, "many", |dir| {
        for i in 0..10_000 {
            fs::write(dir.join(format!("scan-{i:05}.tmp")), b"x").expect("write");
        }
    });
    assert!(
        text.len() < 16 * 1024,
        "REJECTED.txt is {} bytes for one problem repeated",
        text.len()
    );
    assert_eq!(text.matches("[document-unlisted]").count(), 20, "{text}");
    assert!(text.contains("以及另外 9980 项"), "{text}");
    assert!(text.contains("and 9980 more"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(
        &fs::read(
            net.agency(COMMITTEE)
                .dir
                .join("data/clerk/rejected/many/rejection.json"),
        )
        .expect("rejection.json"),
    )
    .expect("json");
    assert_eq!(json["reasons"].as_array().map(Vec::len), Some(10_000));
}

#[test]
fn one_byte_over_a_limit_is_shown_in_exact_bytes() {
    let net = Net::new();
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        format!("{text}\n[limits]\nmax_document_size = \"64 MiB\"\nmax_total_size = \"1 GiB\"\n"),
    )
    .expect("write");
    let text = rejected_text(&net, "one-over", |dir| {
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize((64 << 20) + 1 - 6, b'x');
        pdf.extend_from_slice(b"%%EOF\n");
        fs::write(dir.join("证据.pdf"), pdf).expect("write");
        let manifest = dir.join("application.toml");
        let m = fs::read_to_string(&manifest).expect("manifest");
        fs::write(
            manifest,
            format!("{m}\n[[documents]]\nfile = \"证据.pdf\"\nrole = \"evidence\"\n"),
        )
        .expect("write");
    });
    assert!(text.contains("67,108,865 bytes"), "{text}");
    assert!(text.contains("67,108,864 bytes"), "{text}");
    assert!(
        !text.contains("64.0 MiB, over the limit of 64.0 MiB"),
        "{text}"
    );
}

#[test]
fn a_manifest_parser_error_is_explained_in_chinese_with_the_english_beside_it() {
    let net = Net::new();
    let text = rejected_text(&net, "typo", |dir| {
        let manifest = dir.join("application.toml");
        let m = fs::read_to_string(&manifest).expect("manifest");
        fs::write(
            manifest,
            m.replace("claim_amount = \"1000.00\"", "claim_amount = 1000.00"),
        )
        .expect("write");
    });
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains("[manifest-invalid]"))
        .unwrap_or_else(|| panic!("{text}"));
    let (zh, en) = (lines[i + 1], lines[i + 2]);
    assert!(zh.contains("类型不对"), "{zh}");
    for english in ["invalid type", "expected", "string"] {
        assert!(
            !zh.contains(english),
            "English parser words in the Chinese line: {zh}"
        );
    }
    assert!(en.contains("invalid type"), "{en}");
}
