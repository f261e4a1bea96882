//! Intake and outbox behaviour: completeness detection, volume, restarts, and
//! the operator's outbox commands.

mod common;

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{tiny_app, wait_until, Net, COMMITTEE, FUTIAN, NANSHAN};
use sealpost::intake::{Intake, Outcome, Scanner};
use sealpost::outbox::Outbox;

/// Drops a small valid application named `name` for `court` and takes it;
/// returns its bundle id.
fn accept_one(intake: &Intake, name: &str, case: &str, court: &str) -> sealpost::types::BundleId {
    tiny_app(&intake.dirs().intake.join(name), case, court);
    match intake
        .take(&[OsString::from(name)])
        .pop()
        .expect("one")
        .expect("no intake error")
    {
        Outcome::Accepted { id, .. } => id,
        other => panic!("{name} not accepted: {other:?}"),
    }
}

#[test]
fn a_slow_writer_is_never_taken_early() {
    // The real daemon, a settle time of 1 s, and a writer that copies a 12 MiB
    // scan in 64 KiB pieces with pauses shorter than the settle time (as a slow
    // SMB copy does), for about 4 s in all.
    let net = Net::new();
    let root = net.agency(COMMITTEE).dir.join("data/clerk");
    let mut child = common::spawn_run(
        &net,
        COMMITTEE,
        &[
            ("SEALPOST_INTAKE__SETTLE", "1s"),
            ("SEALPOST_INTAKE__SCAN_INTERVAL", "100ms"),
        ],
        Stdio::null(),
    );
    wait_until(Duration::from_secs(20), "intake/", || {
        root.join("intake").is_dir()
    });
    let app = root.join("intake/slow-copy");
    tiny_app(&net.out("staging"), "深劳人仲案〔2026〕7001号", FUTIAN);
    fs::create_dir(&app).expect("mkdir");
    for f in ["application.toml", "仲裁申请书.pdf", "受理通知书.pdf"] {
        fs::copy(net.out("staging").join(f), app.join(f)).expect("copy");
    }
    let mut big = fs::File::create(app.join("财产保全申请书.pdf")).expect("create");
    big.write_all(b"%PDF-1.7\n").expect("write");
    let piece = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    for i in 0..192 {
        big.write_all(&piece).expect("write");
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
        assert!(
            root.join("intake/slow-copy").is_dir(),
            "taken after {:?}, while still being written",
            started.elapsed()
        );
    }
    big.write_all(b"\n%%EOF\n").expect("write");
    big.sync_all().expect("sync");
    drop(big);
    let written = fs::read(app.join("财产保全申请书.pdf")).expect("read");
    wait_until(
        Duration::from_secs(20),
        "the slow copy to be accepted",
        || root.join("accepted/slow-copy.txt").is_file(),
    );
    child.stop();
    // The sealed bundle holds the complete document, not a prefix.
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let d = outbox.list().expect("list").pop().expect("one delivery");
    let archived = root
        .join("archive")
        .join(d.id.as_str())
        .join("slow-copy/财产保全申请书.pdf");
    assert_eq!(fs::read(archived).expect("archived"), written);
    let court = net.config(FUTIAN);
    let v = sealpost::bundle::Verifier::for_node(&court);
    let opened = v
        .open(
            &outbox.bundle_path(&d.id),
            &court.keys.encryption,
            &net.out("opened"),
        )
        .expect("open");
    let doc = opened
        .manifest
        .documents
        .iter()
        .find(|x| x.path.ends_with("财产保全申请书.pdf"))
        .expect("doc");
    assert_eq!(doc.size, written.len() as u64, "a partial copy was sealed");
}

#[test]
fn scanner_needs_two_unchanged_scans_a_settle_time_apart() {
    // The completeness rule itself, with controlled time and no sleeping.
    let dir = tempfile::tempdir().expect("tempdir");
    let intake = dir.path();
    fs::create_dir(intake.join("a")).expect("mkdir");
    fs::write(intake.join("a/x.pdf"), b"1").expect("write");
    let settle = Duration::from_secs(10);
    let t0 = Instant::now();
    let mut s = Scanner::default();
    assert!(
        s.ready(intake, settle, t0).expect("scan").is_empty(),
        "first sight is never ready"
    );
    assert!(s
        .ready(intake, settle, t0 + Duration::from_secs(9))
        .expect("scan")
        .is_empty());
    // A change restarts the clock.
    fs::write(intake.join("a/x.pdf"), b"12").expect("write");
    assert!(s
        .ready(intake, settle, t0 + Duration::from_secs(11))
        .expect("scan")
        .is_empty());
    assert!(s
        .ready(intake, settle, t0 + Duration::from_secs(20))
        .expect("scan")
        .is_empty());
    assert_eq!(
        s.ready(intake, settle, t0 + Duration::from_secs(21))
            .expect("scan"),
        vec![OsString::from("a")]
    );
    // A READY marker short-cuts the wait.
    fs::create_dir(intake.join("b")).expect("mkdir");
    fs::write(intake.join("b/READY"), b"").expect("write");
    assert!(s
        .ready(intake, settle, t0)
        .expect("scan")
        .contains(&OsString::from("b")));
    // Hidden entries (partial uploads) are ignored.
    fs::write(intake.join(".~lock.x#"), b"").expect("write");
    assert!(!s
        .ready(intake, settle, t0 + Duration::from_secs(99))
        .expect("scan")
        .iter()
        .any(|n| n.to_string_lossy().starts_with('.')));
}

#[test]
fn two_hundred_drops_at_once_are_each_processed_exactly_once() {
    let net = Net::new();
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let mut names = Vec::new();
    for i in 0..200 {
        let name = format!("drop-{i:03}");
        tiny_app(
            &intake.dirs().intake.join(&name),
            &format!("深劳人仲案〔2026〕{}号", 8000 + i),
            if i % 2 == 0 { FUTIAN } else { NANSHAN },
        );
        names.push(OsString::from(name));
    }
    let results = intake.take(&names);
    assert_eq!(results.len(), 200);
    let mut ids = std::collections::BTreeSet::new();
    for r in results {
        match r.expect("no intake error") {
            Outcome::Accepted { id, .. } => assert!(ids.insert(id), "bundle id issued twice"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let list = outbox.list().expect("list");
    assert_eq!(list.len(), 200);
    let sources: std::collections::BTreeSet<_> =
        list.iter().filter_map(|d| d.source.clone()).collect();
    assert_eq!(sources.len(), 200, "an application was queued twice");
    assert!(common::listing(&intake.dirs().intake).is_empty());
    assert!(common::listing(&intake.dirs().work).is_empty());
    assert_eq!(common::listing(&intake.dirs().archive).len(), 200);
    assert_eq!(common::listing(&intake.dirs().accepted).len(), 200);
    // Taking the same names again finds nothing: they are gone from intake/.
    assert!(intake.take(&names).is_empty());
}

#[test]
fn a_drop_made_while_the_daemon_is_down_is_taken_at_start() {
    let net = Net::new();
    let root = net.agency(COMMITTEE).dir.join("data/clerk");
    fs::create_dir_all(root.join("intake")).expect("mkdir");
    tiny_app(
        &root.join("intake/while-down"),
        "深劳人仲案〔2026〕9001号",
        FUTIAN,
    );
    let mut child = common::spawn_run(
        &net,
        COMMITTEE,
        &[
            ("SEALPOST_INTAKE__SETTLE", "200ms"),
            ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
        ],
        Stdio::piped(),
    );
    let mut stdout = child.take_stdout();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    wait_until(Duration::from_secs(20), "the drop to be accepted", || {
        root.join("accepted/while-down.txt").is_file()
    });
    child.stop();
    let out = out.join().expect("stdout reader");
    assert!(out.contains("ACCEPTED  while-down"), "{out}");
}

#[test]
fn outbox_state_survives_reopening() {
    let net = Net::new();
    let cfg = std::sync::Arc::new(net.config(COMMITTEE));
    let id = {
        let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
        let intake = Intake::new(cfg.clone(), outbox.clone()).expect("intake");
        tiny_app(
            &intake.dirs().intake.join("x"),
            "深劳人仲案〔2026〕9200号",
            FUTIAN,
        );
        let Outcome::Accepted { id, .. } = intake
            .take(&[OsString::from("x")])
            .pop()
            .expect("one")
            .expect("ok")
        else {
            panic!("not accepted")
        };
        let now = sealpost::types::Timestamp::now();
        outbox
            .transition(&id, now, |d| d.fetch(now, &cfg.outbox))
            .expect("fetch");
        outbox
            .transition(&id, now, |d| d.deliver(now))
            .expect("deliver");
        id
    };
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("reopen");
    assert_eq!(
        outbox.get(&id).expect("get").expect("present").state.name(),
        "delivered"
    );
    // A delivered bundle can no longer be cancelled.
    let now = sealpost::types::Timestamp::now();
    assert!(outbox
        .transition(&id, now, |d| d.cancel(now, "late".into()))
        .is_err());
}

#[test]
fn archive_retention_prunes_only_finished_deliveries() {
    let net = Net::new();
    let env = std::collections::HashMap::from([(
        "SEALPOST_INTAKE__ARCHIVE_RETENTION".to_owned(),
        "1d".to_owned(),
    )]);
    let cfg =
        sealpost::config::Config::load_with_env(&net.config_path(COMMITTEE), env).expect("config");
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(accept_one(
            &intake,
            &format!("r{i}"),
            &format!("深劳人仲案〔2026〕{}号", 9300 + i),
            FUTIAN,
        ));
    }
    let now = sealpost::types::Timestamp::now();
    outbox
        .transition(&ids[0], now, |d| d.deliver(now))
        .expect("deliver");
    outbox
        .transition(&ids[1], now, |d| d.cancel(now, "withdrawn".into()))
        .expect("cancel");
    // Today nothing is old enough.
    assert_eq!(intake.prune_archive(now).expect("prune"), 0);
    // Two days on: the delivered and the cancelled ones go; the queued one stays.
    let later = sealpost::types::Timestamp::from_unix(now.unix() + 2 * 86_400).expect("time");
    assert_eq!(intake.prune_archive(later).expect("prune"), 2);
    let left = common::listing(&intake.dirs().archive);
    assert_eq!(left, vec![ids[2].to_string()]);
}

#[test]
fn each_waiting_state_has_its_deadline_and_warning() {
    let net = Net::new();
    let cfg = std::sync::Arc::new(net.config(COMMITTEE));
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(cfg.clone(), outbox.clone()).expect("intake");
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(accept_one(
            &intake,
            &format!("d{i}"),
            &format!("深劳人仲案〔2026〕{}号", 9400 + i),
            FUTIAN,
        ));
    }
    let t = |days: f64| {
        sealpost::types::Timestamp::from_unix(
            sealpost::types::Timestamp::now().unix() + (days * 86_400.0) as i64,
        )
        .expect("time")
    };
    let now = t(0.0);
    // ids[1] is fetched: its receipt is due within receipt_deadline (2 days by default).
    outbox
        .transition(&ids[1], now, |d| d.fetch(now, &cfg.outbox))
        .expect("fetch");
    let s = outbox.sweep(t(0.1)).expect("sweep");
    assert!(s.expired.is_empty() && s.overdue.is_empty(), "{s:?}");
    // After 1.5 days both are overdue (warn after 1 day), none dead.
    let s = outbox.sweep(t(1.5)).expect("sweep");
    assert_eq!((s.expired.len(), s.overdue.len()), (0, 2), "{s:?}");
    // After 3 days the fetched one missed its receipt deadline; the queued one waits.
    let s = outbox.sweep(t(3.0)).expect("sweep");
    assert_eq!(s.expired, vec![ids[1]]);
    assert_eq!(
        outbox
            .get(&ids[1])
            .expect("get")
            .expect("present")
            .state
            .name(),
        "dead"
    );
    // After 8 days the queued one missed its fetch deadline (7 days).
    let s = outbox.sweep(t(8.0)).expect("sweep");
    assert_eq!(s.expired, vec![ids[0]]);
    // Dead ones are neither expired again nor reported overdue.
    assert_eq!(outbox.sweep(t(9.0)).expect("sweep"), Default::default());
}

#[test]
fn a_second_instance_cannot_run_on_the_same_node() {
    // sled locks its database: a second daemon stops at once with a clear
    // message instead of processing the same items.
    let net = Net::new();
    let mut first = common::spawn_run(&net, COMMITTEE, &[], Stdio::null());
    let root = net.agency(COMMITTEE).dir.join("data/clerk");
    wait_until(Duration::from_secs(20), "the first daemon", || {
        root.join("intake").is_dir()
    });
    let mut second = common::spawn_run(&net, COMMITTEE, &[], Stdio::null());
    let (status, err) = second.wait();
    assert_eq!(status.code(), Some(74));
    assert!(err.contains("cannot open the outbox"), "{err}");
    first.stop();
}

#[test]
fn a_valid_application_with_a_very_long_folder_name_is_accepted_and_noted() {
    // Regression: 84 Chinese characters are 252 bytes; "<name>.txt" would exceed
    // the 255-byte file-name limit and the item used to stay in .work/ for ever.
    let net = Net::new();
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let name = "张".repeat(84);
    assert_eq!(name.len(), 252);
    tiny_app(
        &intake.dirs().intake.join(&name),
        "深劳人仲案〔2026〕9500号",
        FUTIAN,
    );
    let out = intake
        .take(&[OsString::from(&name)])
        .pop()
        .expect("one")
        .expect("no intake error");
    let Outcome::Accepted { id, .. } = out else {
        panic!("{out:?}")
    };
    let notes = common::listing(&intake.dirs().accepted);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].len() <= 255 && notes[0].ends_with(".txt"),
        "{notes:?}"
    );
    let note = fs::read_to_string(intake.dirs().accepted.join(&notes[0])).expect("note");
    assert!(note.contains(id.as_str()) && note.contains(&name));
    assert!(common::listing(&intake.dirs().work).is_empty());
}

#[test]
fn the_same_case_dropped_twice_at_once_is_queued_once() {
    // Regression: two workers could both pass the duplicate-case check.
    let net = Net::new();
    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let names: Vec<OsString> = (0..6)
        .map(|i| OsString::from(format!("twin-{i}")))
        .collect();
    for n in &names {
        tiny_app(
            &intake.dirs().intake.join(n),
            "深劳人仲案〔2026〕9600号",
            FUTIAN,
        );
    }
    let outcomes: Vec<Outcome> = intake
        .take(&names)
        .into_iter()
        .map(|r| r.expect("no intake error"))
        .collect();
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    for o in &outcomes {
        if let Outcome::Rejected { codes, .. } = o {
            assert_eq!(
                codes,
                &vec![sealpost::application::ReasonCode::CaseAlreadyQueued]
            );
        }
    }
    assert_eq!(outbox.list().expect("list").len(), 1);
}
