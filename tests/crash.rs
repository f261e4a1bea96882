//! Crash safety of intake + outbox (invariant 1): a child `sealpost run` is
//! killed with SIGKILL at random moments while applications stream in — 50
//! times by default, `SEALPOST_CRASH_KILLS=N` for more. After each restart, and
//! at the end, every application must be in exactly one place (intake/, .work/
//! → resumed, outbox + archive/, or rejected/), no application is queued twice,
//! and the sled index opens cleanly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{random_u64, tiny_app, wait_until, Net, COMMITTEE, FUTIAN, NANSHAN};
use sealpost::outbox::Outbox;

fn start(net: &Net) -> common::Daemon {
    common::spawn_run(
        net,
        COMMITTEE,
        &[
            ("SEALPOST_INTAKE__SETTLE", "300ms"),
            ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
            ("SEALPOST_INTAKE__WORKERS", "2"),
        ],
        Stdio::null(),
    )
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let kills: usize = std::env::var("SEALPOST_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let net = Net::new();
    let root = net.agency(COMMITTEE).dir.join("data/clerk");
    let staging = net.out("staging");
    // Every fifth application is broken (no acceptance notice) and must be rejected.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    let mut next = 0usize;
    let mut make = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                next += 1;
                let name = format!("app-{next:04}");
                let dir = staging.join(&name);
                let court = if next % 2 == 0 { FUTIAN } else { NANSHAN };
                tiny_app(&dir, &format!("深劳人仲案〔2026〕{next}号"), court);
                let good = next % 5 != 0;
                if !good {
                    fs::remove_file(dir.join("受理通知书.pdf")).expect("break it");
                }
                if next % 3 == 0 {
                    fs::write(dir.join("READY"), b"").expect("marker");
                }
                expected.insert(name.clone(), good);
                name
            })
            .collect()
    };
    let intake = root.join("intake");

    let mut child = start(&net);
    wait_until(Duration::from_secs(20), "the intake folder", || {
        intake.is_dir()
    });
    for round in 0..kills {
        // Drop 1–4 applications (each appears atomically, by rename), then kill
        // at a random moment 0–400 ms later.
        for name in make(1 + (random_u64() % 4) as usize) {
            fs::rename(staging.join(&name), intake.join(&name)).expect("drop");
        }
        let delay = random_u64() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(status) = child.try_wait() {
            panic!(
                "round {round}: sealpost exited by itself ({status}): {}",
                child.stderr_text()
            );
        }
        child.kill9();
        // Between runs: sled must open cleanly, and no record may be duplicated.
        let cfg = net.config(COMMITTEE);
        let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).unwrap_or_else(|e| {
            panic!("round {round} (kill after {delay} ms): outbox does not reopen: {e}")
        });
        let list = outbox.list().expect("list");
        let sources: BTreeSet<_> = list.iter().filter_map(|d| d.source.clone()).collect();
        assert_eq!(
            sources.len(),
            list.len(),
            "round {round}: an application was queued twice"
        );
        drop(outbox);
        child = start(&net);
    }

    // Let the last run finish everything, then stop it cleanly.
    wait_until(
        Duration::from_secs(60),
        "intake/ and .work/ to empty",
        || names(&intake).is_empty() && names(&root.join(".work")).is_empty(),
    );
    child.stop();

    let cfg = net.config(COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox reopens");
    let list = outbox.list().expect("list");
    let queued: BTreeMap<String, _> = list
        .iter()
        .map(|d| (d.source.clone().expect("source"), d))
        .collect();
    assert_eq!(queued.len(), list.len(), "an application was queued twice");
    let rejected = names(&root.join("rejected"));
    let archived = names(&root.join("archive"));
    for (name, good) in &expected {
        let in_outbox = queued.contains_key(name);
        let in_rejected = rejected.contains(name);
        assert!(
            in_outbox ^ in_rejected,
            "{name}: expected in exactly one place, outbox={in_outbox} rejected={in_rejected}"
        );
        assert_eq!(
            in_outbox,
            *good,
            "{name}: accepted={in_outbox}, but it is {}",
            if *good { "valid" } else { "broken" }
        );
        if let Some(d) = queued.get(name) {
            assert!(
                archived.contains(d.id.as_str()),
                "{name}: originals not archived"
            );
            assert!(root
                .join("archive")
                .join(d.id.as_str())
                .join(name)
                .join("application.toml")
                .is_file());
            let bundle = outbox.bundle_path(&d.id);
            let (env, _, _) = sealpost::bundle::inspect(&bundle)
                .unwrap_or_else(|e| panic!("{name}: bundle unreadable: {e}"));
            assert_eq!(env.id, d.id);
        } else {
            assert!(
                root.join("rejected")
                    .join(name)
                    .join(name)
                    .join("application.toml")
                    .is_file(),
                "{name}: original not kept intact"
            );
            assert!(root
                .join("rejected")
                .join(name)
                .join("REJECTED.txt")
                .is_file());
        }
    }
    assert_eq!(
        archived.len(),
        queued.len(),
        "archive/ holds something that is not queued"
    );
    let bundles = names(&cfg.node.data_dir.join("outbox/bundles"));
    assert_eq!(
        bundles.len(),
        queued.len(),
        "bundle files without a record (or the reverse): {bundles:?}"
    );
    eprintln!(
        "{kills} kills, {} applications: {} queued, {} rejected",
        expected.len(),
        queued.len(),
        rejected.len()
    );
}

/// A free TCP port on loopback (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Every path under `dir` whose name marks something half-done.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.contains(".tmp-") || name.ends_with(".pending") || name == ".extracted" {
            out.push(path.display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(leftovers(&path));
        }
    }
    out
}

#[test]
fn both_nodes_killed_at_random_moments_deliver_every_application_exactly_once() {
    let kills: usize = std::env::var("SEALPOST_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        / 2;
    let net = Net::new();
    let port = free_port();
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        format!("{text}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("write");
    common::node::set_committee_endpoint(&net, &format!("127.0.0.1:{port}"));
    let committee_env = [
        ("SEALPOST_INTAKE__SETTLE", "300ms"),
        ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
    ];
    let court_env = [("SEALPOST_CLIENT__WAIT", "5s")];
    let start_committee = || common::spawn_run(&net, COMMITTEE, &committee_env, Stdio::null());
    let start_court = || common::spawn_run(&net, FUTIAN, &court_env, Stdio::null());
    let committee_data = net.agency(COMMITTEE).dir.join("data");
    let court_data = net.agency(FUTIAN).dir.join("data");
    let intake = committee_data.join("clerk/intake");
    let staging = net.out("staging");

    // Applications with documents of 0.5–4 MiB, so that opening one takes long
    // enough to be killed in the middle; every seventh is broken.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    let mut next = 0usize;
    let mut make = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                next += 1;
                let name = format!("app-{next:04}");
                let dir = staging.join(&name);
                tiny_app(
                    &dir,
                    &format!("深劳人仲案〔2026〕{}号", 20_000 + next),
                    FUTIAN,
                );
                let size = (512 << 10) + (random_u64() % (3584 << 10)) as usize;
                let mut pdf = b"%PDF-1.7\n".to_vec();
                pdf.extend((0..size).map(|i| (i as u8).wrapping_mul(next as u8 | 1)));
                pdf.extend_from_slice(b"\n%%EOF\n");
                fs::write(dir.join("财产保全申请书.pdf"), pdf).expect("write");
                let good = next % 7 != 0;
                if !good {
                    fs::remove_file(dir.join("受理通知书.pdf")).expect("break it");
                }
                fs::write(dir.join("READY"), b"").expect("marker");
                expected.insert(name.clone(), good);
                name
            })
            .collect()
    };

    let mut committee = start_committee();
    let mut court = start_court();
    wait_until(Duration::from_secs(20), "the intake folder", || {
        intake.is_dir()
    });
    let mut killed = (0, 0);
    for round in 0..kills {
        for name in make(1 + (random_u64() % 3) as usize) {
            fs::rename(staging.join(&name), intake.join(&name)).expect("drop");
        }
        std::thread::sleep(Duration::from_millis(random_u64() % 600));
        for (node, who) in [(&mut committee, "committee"), (&mut court, "court")] {
            if let Some(status) = node.try_wait() {
                panic!(
                    "round {round}: the {who} exited by itself ({status}): {}",
                    node.stderr_text()
                );
            }
        }
        match random_u64() % 3 {
            0 => {
                committee.kill9();
                committee = start_committee();
                killed.0 += 1;
            }
            1 => {
                court.kill9();
                court = start_court();
                killed.1 += 1;
            }
            _ => {
                committee.kill9();
                court.kill9();
                committee = start_committee();
                court = start_court();
                killed = (killed.0 + 1, killed.1 + 1);
            }
        }
    }

    // Let both finish: everything accepted is delivered, receipts back.
    let good = expected.values().filter(|g| **g).count();
    let cfg = net.config(COMMITTEE);
    wait_until(
        Duration::from_secs(120),
        "every application delivered",
        || {
            if !intake.read_dir().is_ok_and(|mut d| d.next().is_none()) {
                return false;
            }
            let receipts = fs::read_dir(committee_data.join("outbox/receipts"))
                .map(|d| d.flatten().count())
                .unwrap_or(0);
            // The court forgets a download once the bundle is no longer
            // listed (at its next round, at most a long-poll later).
            receipts == good && names(&court_data.join(format!("downloads/{COMMITTEE}"))).is_empty()
        },
    );
    // Every delivered application gets its proof of delivery, even when a
    // kill came between the receipt and the proof.
    common::wait_until(
        Duration::from_secs(120),
        "a proof of delivery for every receipt",
        || {
            names(&committee_data.join("proofs"))
                .iter()
                .filter(|n| n.starts_with("proof-") && n.ends_with(".zip"))
                .count()
                == good
        },
    );
    court.stop();
    committee.stop();

    // Both audit chains verify (the kills left at most torn tails, which the
    // restarts repaired and recorded), and every proof verifies offline.
    for (agency, data) in [(COMMITTEE, &committee_data), (FUTIAN, &court_data)] {
        let dir = sealpost::audit::dir_in(data);
        let report = sealpost::audit::verify_log(
            std::io::BufReader::new(fs::File::open(dir.join("audit.log")).expect("audit log")),
            Some(&cfg.trust),
            sealpost::audit::Witness::load(&dir)
                .expect("witness")
                .as_ref(),
        )
        .expect("read");
        assert!(report.ok(), "{agency}: {:?}", report.problem);
        eprintln!(
            "{agency}: audit chain of {} records, {} checkpoints, verified",
            report.records, report.checkpoints
        );
    }
    for p in names(&committee_data.join("proofs")) {
        let bytes = fs::read(committee_data.join("proofs").join(&p)).expect("proof");
        sealpost::evidence::proof::verify(&bytes, &cfg.trust)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }

    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let list = outbox.list().expect("list");
    let by_source: BTreeMap<String, _> = list
        .iter()
        .map(|d| (d.source.clone().expect("source"), d))
        .collect();
    assert_eq!(
        by_source.len(),
        list.len(),
        "an application was queued twice"
    );
    let court_cfg = net.config(FUTIAN);
    let mut delivered = 0;
    for (name, good) in &expected {
        let Some(d) = by_source.get(name) else {
            assert!(!good, "{name}: valid but never queued");
            continue;
        };
        assert!(good, "{name}: broken but queued");
        assert_eq!(d.state.name(), "delivered", "{name}: {:?}", d.state);
        // Exactly one inbox folder for it, complete, with the receipt the
        // committee holds.
        let case = court_data.join("inbox").join(d.case_ref.as_str());
        assert_eq!(
            common::listing(&case),
            vec![d.id.to_string()],
            "{name}: the court's case folder"
        );
        let dest = case.join(d.id.as_str());
        assert!(dest.join(".done").is_file(), "{name}: no .done");
        let at_court: sealpost::receipt::SignedReceipt =
            serde_json::from_slice(&fs::read(dest.join("receipt.json")).expect("receipt.json"))
                .expect("receipt");
        let at_committee: sealpost::receipt::SignedReceipt = serde_json::from_slice(
            &fs::read(outbox.receipt_path(&d.id)).expect("committee's receipt"),
        )
        .expect("receipt");
        assert_eq!(at_court, at_committee, "{name}: the receipts differ");
        at_committee
            .verify(
                &cfg.trust,
                &cfg.directory,
                sealpost::types::Timestamp::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: the receipt does not verify: {e}"));
        let original = committee_data
            .join("clerk/archive")
            .join(d.id.as_str())
            .join(name)
            .join("财产保全申请书.pdf");
        assert!(
            fs::read(&original).expect("archived")
                == fs::read(dest.join("documents/财产保全申请书.pdf")).expect("delivered"),
            "{name}: the delivered document differs from the original"
        );
        delivered += 1;
    }
    let _ = court_cfg;
    // Nothing half-done on either side.
    let mut left = leftovers(&committee_data);
    left.extend(leftovers(&court_data));
    assert!(left.is_empty(), "temporary leftovers: {left:#?}");
    for dir in [
        court_data.join(format!("downloads/{COMMITTEE}")),
        court_data.join("downloads/push"),
        committee_data.join("clerk/.work"),
    ] {
        let names = names(&dir);
        assert!(
            names
                .iter()
                .all(|n| n.starts_with('.') && !n.contains("tmp")),
            "{}: {names:?}",
            dir.display()
        );
    }
    assert_eq!(
        names(&court_data.join("inbox"))
            .iter()
            .map(|c| names(&court_data.join("inbox").join(c)).len())
            .sum::<usize>(),
        delivered,
        "the court's inbox holds more bundles than were delivered"
    );
    eprintln!(
        "{} rounds: committee killed {} times, court {} times; {} applications, {delivered} delivered exactly once, {} rejected",
        kills,
        killed.0,
        killed.1,
        expected.len(),
        expected.len() - delivered
    );
}
