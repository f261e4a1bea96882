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
