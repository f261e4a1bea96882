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

/// One follow-up event the court's clerk dropped during the kill run.
struct Dropped {
    /// The folder's name in `followup/drop/`.
    name: String,
    case: String,
    bundle: String,
    /// The applicant's address (one per application).
    email: String,
}

/// The event id the court gave a dropped folder, from its `accepted/` note.
fn event_id(followup: &Path, name: &str) -> Option<String> {
    fs::read_to_string(followup.join("accepted").join(format!("{name}.txt")))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("事件编号 / Event id:"))
        .map(|s| s.trim().to_owned())
}

/// The `Message-ID` of the applicant's e-mail about `key`.
fn message_id(key: &str, email: &str) -> String {
    sealpost::notify::message_id(
        &sealpost::notify::record_id(key, sealpost::notify::Channel::Email, email),
        &COMMITTEE.parse().expect("id"),
    )
}

/// The whole exchange under fire (issue 11): a committee and a court run as
/// real processes while applications and the court's follow-up events stream
/// in; either node, or both, is SIGKILLed at a random moment and restarted —
/// `SEALPOST_EXCHANGE_KILLS` kills in all (default 30; the full run is 200).
/// Afterwards: every valid application is in the court's inbox exactly once
/// with the receipt the committee holds, which verifies; every proof of
/// delivery verifies; every follow-up event is on its case exactly once;
/// every applicant has exactly one e-mail per step (counted on a real SMTP
/// relay), or a repeat with the same `Message-ID` from the documented
/// duplicate window (`docs/notifications.md`), at most one per committee
/// kill; both audit chains verify; nothing is left half-done, no temporary
/// plaintext, no notification or event waiting.
#[test]
fn both_nodes_killed_at_random_moments_deliver_notify_and_record_everything_exactly_once() {
    let started = std::time::Instant::now();
    let target_kills: usize = std::env::var("SEALPOST_EXCHANGE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let net = Net::new();
    let smtp =
        common::smtp::notify_committee_through(&net.config_path(COMMITTEE), &net.out("smtp"));
    let port = free_port();
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(
        &cfg,
        format!("{text}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("write");
    common::node::set_committee_endpoint(&net, &format!("127.0.0.1:{port}"));
    let court_cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&court_cfg).expect("config");
    fs::write(
        &court_cfg,
        format!("{text}\n[followup]\nroot = \"followup\"\n"),
    )
    .expect("write");
    let followup = net.agency(FUTIAN).dir.join("followup");
    let committee_env = [
        ("SEALPOST_INTAKE__SETTLE", "300ms"),
        ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
    ];
    let court_env = [
        ("SEALPOST_CLIENT__WAIT", "5s"),
        ("SEALPOST_FOLLOWUP__SETTLE", "200ms"),
        ("SEALPOST_FOLLOWUP__SCAN_INTERVAL", "50ms"),
    ];
    let start_committee = || common::spawn_run(&net, COMMITTEE, &committee_env, Stdio::null());
    let start_court = || common::spawn_run(&net, FUTIAN, &court_env, Stdio::null());
    let committee_data = net.agency(COMMITTEE).dir.join("data");
    let court_data = net.agency(FUTIAN).dir.join("data");
    let intake = committee_data.join("clerk/intake");
    let staging = net.out("staging");
    fs::create_dir_all(&staging).expect("mkdir");

    // Applications with documents of 0.5–4 MiB, so that opening one takes long
    // enough to be killed in the middle; every seventh is broken. Each has an
    // applicant of its own, so that every e-mail can be told apart.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    let mut applicants: BTreeMap<String, (String, String)> = BTreeMap::new(); // case → (name, e-mail)
    let mut next = 0usize;
    let mut make = |n: usize,
                    expected: &mut BTreeMap<String, bool>,
                    applicants: &mut BTreeMap<String, (String, String)>|
     -> Vec<String> {
        (0..n)
            .map(|_| {
                next += 1;
                let name = format!("app-{next:04}");
                let dir = staging.join(&name);
                let case = format!("深劳人仲案〔2026〕{}号", 20_000 + next);
                let email = format!("applicant-{next}@example.com");
                tiny_app(&dir, &case, FUTIAN);
                let form = fs::read_to_string(dir.join("application.toml")).expect("form");
                fs::write(
                    dir.join("application.toml"),
                    form.replace("applicant@example.com", &email),
                )
                .expect("form");
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
                applicants.insert(case, (name.clone(), email));
                name
            })
            .collect()
    };

    // The court's clerk answers delivered applications: up to two events per
    // bundle, dropped into the follow-up folder (by rename, as a cut and paste
    // on the share does) whether or not the court is up.
    let mut dropped: Vec<Dropped> = Vec::new();
    let drop_events = |dropped: &mut Vec<Dropped>,
                       applicants: &BTreeMap<String, (String, String)>| {
        let inbox = court_data.join("inbox");
        let mut fresh = 0;
        for case in names(&inbox) {
            for bundle in names(&inbox.join(&case)) {
                if !inbox.join(&case).join(&bundle).join(".done").is_file() {
                    continue;
                }
                let made = dropped.iter().filter(|d| d.bundle == bundle).count();
                if made >= 2 || fresh >= 2 || random_u64() % 2 == 0 {
                    continue;
                }
                let n = dropped.len();
                let name = format!("ev-{n:04}");
                let kind = match n % 3 {
                    0 => "kind = \"received\"".to_owned(),
                    1 => format!(
                        "kind = \"accepted\"\ncourt_case_number = \"(2026)粤0304财保{n}号\""
                    ),
                    _ => "kind = \"completed\"".to_owned(),
                };
                let dir = staging.join(&name);
                fs::create_dir_all(&dir).expect("mkdir");
                fs::write(
                    dir.join("event.toml"),
                    format!(
                        "case_number = \"{case}\"\nbundle_id = \"{bundle}\"\n{kind}\nnote = \"Crash test event {n}.\"\n"
                    ),
                )
                .expect("event.toml");
                fs::write(dir.join("READY"), b"").expect("READY");
                fs::rename(&dir, followup.join("drop").join(&name)).expect("drop the event");
                dropped.push(Dropped {
                    name,
                    case: case.clone(),
                    bundle: bundle.clone(),
                    email: applicants[&case].1.clone(),
                });
                fresh += 1;
            }
        }
    };

    let mut committee = start_committee();
    let mut court = start_court();
    wait_until(
        Duration::from_secs(20),
        "the intake and follow-up folders",
        || intake.is_dir() && followup.join("drop").is_dir(),
    );
    let mut killed = (0usize, 0usize);
    // What each node logged before it was killed, to explain a failure.
    let mut logs = (String::new(), String::new());
    let mut rounds = 0;
    while killed.0 + killed.1 < target_kills {
        rounds += 1;
        for name in make(
            1 + (random_u64() % 3) as usize,
            &mut expected,
            &mut applicants,
        ) {
            fs::rename(staging.join(&name), intake.join(&name)).expect("drop");
        }
        drop_events(&mut dropped, &applicants);
        std::thread::sleep(Duration::from_millis(random_u64() % 600));
        for (node, who) in [(&mut committee, "committee"), (&mut court, "court")] {
            if let Some(status) = node.try_wait() {
                panic!(
                    "round {rounds}: the {who} exited by itself ({status}): {}",
                    node.stderr_text()
                );
            }
        }
        let which = random_u64() % 3;
        if which != 1 {
            committee.kill9();
            logs.0.push_str(&committee.stderr_text());
            committee = start_committee();
            killed.0 += 1;
        }
        if which != 0 {
            court.kill9();
            logs.1.push_str(&court.stderr_text());
            court = start_court();
            killed.1 += 1;
        }
    }

    // Let both finish: everything accepted is delivered, receipts back …
    let good = expected.values().filter(|g| **g).count();
    let cfg = net.config(COMMITTEE);
    let state = || {
        let receipts = names(&committee_data.join("outbox/receipts")).len();
        let intake_left = names(&intake);
        let downloads = names(&court_data.join(format!("downloads/{COMMITTEE}")));
        // The court forgets a download once the bundle is no longer
        // listed (at its next round, at most a long-poll later).
        let done = intake_left.is_empty() && receipts == good && downloads.is_empty();
        (
            done,
            format!(
                "{receipts} receipts of {good}; intake {intake_left:?}; court downloads {downloads:?}; .work {:?}",
                names(&committee_data.join("clerk/.work"))
            ),
        )
    };
    // The backlog of a long run takes a while: the wait fails only when
    // nothing moves for two minutes.
    let mut deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while !state().0 {
        let (_, now) = state();
        if now != last {
            last = now;
            deadline = std::time::Instant::now() + Duration::from_secs(120);
        }
        if std::time::Instant::now() > deadline {
            let (_, now) = state();
            let (_, list, _) = common::ctl(&net, COMMITTEE, &["list"]);
            eprintln!("--- the committee's outbox ---\n{list}");
            let all = format!("{}{}", logs.0, committee.stderr_text());
            eprintln!("--- the committee's warnings and errors ---");
            for l in all
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            {
                eprintln!("{l}");
            }
            let all = format!("{}{}", logs.1, court.stderr_text());
            eprintln!("--- the court's warnings and errors ---");
            for l in all
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            {
                eprintln!("{l}");
            }
            panic!("timed out waiting for every application delivered: {now}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // … one last event for a bundle that had none, dropped with both nodes up …
    drop_events(&mut dropped, &applicants);
    // … every event taken by the court and recorded by the committee …
    wait_until(
        Duration::from_secs(120),
        "every event taken by the court and sent",
        || {
            dropped
                .iter()
                .all(|d| event_id(&followup, &d.name).is_some())
                && names(&court_data.join("followup/sent")).len() == dropped.len()
        },
    );
    // … every proof of delivery made, even when a kill came between the
    // receipt and the proof …
    wait_until(
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
    // … and every applicant's e-mail on the relay: one for the delivery of
    // each application, one for each event.
    let mut keys: BTreeMap<String, (String, String)> = BTreeMap::new(); // Message-ID → (case, key)
    for case in names(&court_data.join("inbox")) {
        for bundle in names(&court_data.join("inbox").join(&case)) {
            let key = format!("delivered/{bundle}");
            keys.insert(message_id(&key, &applicants[&case].1), (case.clone(), key));
        }
    }
    let mut events: BTreeMap<String, &Dropped> = BTreeMap::new();
    for d in &dropped {
        let id = event_id(&followup, &d.name).expect("taken");
        let key = format!("event/{id}");
        keys.insert(message_id(&key, &d.email), (d.case.clone(), key));
        events.insert(id, d);
    }
    let missing = || {
        let heard: BTreeSet<String> = smtp
            .messages()
            .iter()
            .map(|m| common::smtp::header(m, "Message-ID")[0].to_owned())
            .collect();
        keys.iter()
            .filter(|(id, _)| !heard.contains(*id))
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !missing().is_empty() {
        if std::time::Instant::now() > deadline {
            let all = format!("{}{}", logs.0, committee.stderr_text());
            for (case, key) in missing() {
                let bundle = key.rsplit('/').next().unwrap_or_default();
                eprintln!("--- the committee's log lines about {case} / {bundle} ---");
                for l in all.lines().filter(|l| {
                    l.contains(case.as_str())
                        || l.contains(bundle)
                        || l.contains("starting")
                        || l.contains("ERROR")
                }) {
                    eprintln!("{l}");
                }
            }
            panic!(
                "timed out waiting for every e-mail on the relay; missing {:?}",
                missing()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The committee's timelines: each event once, each notification recorded
    // sent once (the committee records `sent` after the relay's 250).
    let mut cases: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (case, key) in keys.values() {
        cases.entry(case).or_default().push(key);
    }
    wait_until(
        Duration::from_secs(60),
        "every notification recorded sent",
        || {
            cases.iter().all(|(case, want)| {
                let (code, out, _) = common::ctl(&net, COMMITTEE, &["status", case, "--json"]);
                code == Some(0)
                    && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|v| {
                        let sent: Vec<&str> = v["timeline"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|e| e["step"] == "notification-sent")
                            .filter_map(|e| e["event_key"].as_str())
                            .collect();
                        want.iter().all(|k| sent.contains(k))
                    })
            })
        },
    );
    for (case, want) in &cases {
        let (code, out, err) = common::ctl(&net, COMMITTEE, &["status", case, "--json"]);
        assert_eq!(code, Some(0), "ctl status {case}: {err}");
        let view: serde_json::Value = serde_json::from_str(&out).expect("json");
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in view["timeline"].as_array().expect("timeline") {
            let step = e["step"].as_str().expect("step").to_owned();
            let key = match step.as_str() {
                "follow-up" => e["event_id"].as_str().expect("event_id").to_owned(),
                "notification-sent" => e["event_key"].as_str().expect("event_key").to_owned(),
                _ => continue,
            };
            *seen.entry((step, key)).or_default() += 1;
        }
        for key in want {
            assert_eq!(
                seen.get(&("notification-sent".to_owned(), (*key).to_owned())),
                Some(&1),
                "{case}: {key} on the timeline: {seen:?}"
            );
            if let Some(id) = key.strip_prefix("event/") {
                assert_eq!(
                    seen.get(&("follow-up".to_owned(), id.to_owned())),
                    Some(&1),
                    "{case}: event {id} on the timeline: {seen:?}"
                );
            }
        }
        assert_eq!(
            view["events"].as_array().map(Vec::len),
            Some(want.iter().filter(|k| k.starts_with("event/")).count()),
            "{case}: the case's events"
        );
    }
    court.stop();
    committee.stop();

    // The relay: every message is for a known step, to its own applicant;
    // a step mailed twice only with its one Message-ID, at most one repeat
    // per committee kill (the window between the relay's 250 and `sent`).
    let msgs = smtp.messages();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &msgs {
        let id = common::smtp::header(m, "Message-ID")[0].to_owned();
        let (case, key) = keys
            .get(&id)
            .unwrap_or_else(|| panic!("a message for no step: {id}"));
        let email = &applicants[case.as_str()].1;
        assert_eq!(
            m["rcpt_tos"],
            serde_json::json!([email]),
            "{key}: sent to its applicant only"
        );
        *per_id.entry(id).or_default() += 1;
    }
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= killed.0,
        "{duplicates} repeated e-mails, more than the committee's {} kills could cause: {per_id:?}",
        killed.0
    );

    // Both audit chains verify (the kills left at most torn tails, which the
    // restarts repaired and recorded), and every proof verifies offline.
    let mut chains = Vec::new();
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
        chains.push(format!(
            "{agency}: {} records, {} checkpoints",
            report.records, report.checkpoints
        ));
    }
    for p in names(&committee_data.join("proofs")) {
        let bytes = fs::read(committee_data.join("proofs").join(&p)).expect("proof");
        sealpost::evidence::proof::verify(&bytes, &cfg.trust)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }

    // Every application in exactly one place; every valid one delivered
    // once, with the receipt both sides hold, and the same bytes.
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
    let mut delivered = 0;
    for (name, good) in &expected {
        let Some(d) = by_source.get(name) else {
            assert!(!good, "{name}: valid but never queued");
            continue;
        };
        assert!(good, "{name}: broken but queued");
        assert_eq!(d.state.name(), "delivered", "{name}: {:?}", d.state);
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
    assert_eq!(
        names(&court_data.join("inbox"))
            .iter()
            .map(|c| names(&court_data.join("inbox").join(c)).len())
            .sum::<usize>(),
        delivered,
        "the court's inbox holds more bundles than were delivered"
    );
    // Nothing waiting: no notification pending or sending, no event
    // outgoing or refused, no follow-up folder rejected or in a problem.
    let notify = outbox.tree("notify").expect("notify tree");
    let waiting: Vec<String> = notify
        .scan_prefix(b"q/")
        .keys()
        .map(|k| String::from_utf8_lossy(&k.expect("key")).into_owned())
        .collect();
    assert!(
        waiting.is_empty(),
        "notifications still waiting: {waiting:?}"
    );
    drop(notify);
    drop(outbox);
    for dir in [
        court_data.join("followup/outgoing"),
        court_data.join("followup/failed"),
        followup.join("drop"),
        followup.join("rejected"),
        followup.join("problems"),
    ] {
        assert_eq!(names(&dir), BTreeSet::new(), "{}", dir.display());
    }
    assert_eq!(names(&followup.join("archive")).len(), dropped.len());
    // Nothing half-done on either side, no temporary plaintext.
    let mut left = leftovers(&committee_data);
    left.extend(leftovers(&court_data));
    left.extend(leftovers(&followup));
    assert!(left.is_empty(), "temporary leftovers: {left:#?}");
    for dir in [
        court_data.join(format!("downloads/{COMMITTEE}")),
        court_data.join("downloads/push"),
        committee_data.join("clerk/.work"),
        followup.join(".work"),
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
    eprintln!(
        "{} kills in {rounds} rounds (committee {}, court {}) in {:.0} s: {} applications, {delivered} delivered exactly once with verified receipts and proofs, {} rejected; {} follow-up events, each recorded once; {} e-mails on the relay for {} steps ({duplicates} repeats, each with its first copy's Message-ID); audit chains verified — {}",
        killed.0 + killed.1,
        killed.0,
        killed.1,
        started.elapsed().as_secs_f64(),
        expected.len(),
        expected.len() - delivered,
        events.len(),
        msgs.len(),
        keys.len(),
        chains.join("; ")
    );
}
