//! Faults on a real running daemon (issue 11, "Crash and fault"): write and
//! sync errors injected at run time with libfiu (`fiu-run -x` preloads its
//! POSIX wrappers, `fiu-ctrl` switches a failure point on and off in the
//! running process). With the fault on nothing is acknowledged, `/readyz`
//! names the failing part, a metric counts it and nothing panics; when it
//! clears the node recovers by itself and every held application is
//! accepted exactly once, with an audit chain that verifies.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::node::*;
use common::{require_tools, wait_until, Net, COMMITTEE, FUTIAN};

/// A committee daemon started under `fiu-run -x`, with its operations
/// listener, and the prefix of its libfiu control pipes.
struct Faulty {
    node: Node,
    ops: String,
    fifo: String,
}

fn start_faulty(net: &Net, env: &[(&str, &str)]) -> Faulty {
    require_tools(&["fiu-run", "fiu-ctrl", "curl"]);
    let fifo = net.out("fiu-ctrl").to_str().expect("utf-8").to_owned();
    let mut all = vec![("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(env);
    let mut node = start_via(net, &["fiu-run", "-x", "-f", &fifo], &all);
    let ops = wait_line(&node, "ADMIN ")["ADMIN ".len()..].to_owned();
    node.child.wait_ready();
    Faulty { node, ops, fifo }
}

impl Faulty {
    /// `fiu-ctrl -c <command>` on the running daemon.
    fn fiu(&self, command: &str) {
        let o = Command::new("fiu-ctrl")
            .args(["-f", &self.fifo, "-c", command])
            .arg(self.node.child.id().to_string())
            .output()
            .expect("fiu-ctrl is installed (scripts/test installs fiu-utils)");
        assert!(
            o.status.success(),
            "fiu-ctrl -c {command:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn log(&self) -> String {
        self.node.child.stderr_text()
    }

    /// Plain HTTP on the operations listener: (status, body).
    fn http(&self, path: &str) -> (u16, String) {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.ops))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.http("/metrics");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }
}

/// Every `ACCEPTED` line the daemon printed so far, as (item, bundle id).
fn accepted_lines(node: &Node, seen: &mut Vec<(String, String)>) {
    while let Ok(l) = node.lines.try_recv() {
        if let Some(rest) = l.strip_prefix("ACCEPTED  ") {
            let (name, id) = rest.split_once("  bundle ").expect("ACCEPTED line");
            seen.push((name.to_owned(), id.to_owned()));
        }
    }
}

/// The audit log's records, parsed.
fn records(data: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(data.join("audit/audit.log"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

/// Drops one application per name, numbered from case `first`.
fn drop_each(net: &Net, names: &[impl AsRef<str>], first: usize) {
    for (i, name) in names.iter().enumerate() {
        drop_app(
            net,
            name.as_ref(),
            &format!("深劳人仲案〔2026〕{}号", first + i),
        );
    }
}

/// Waits until the log has, for every held item, a line that `failed` says
/// tells of its failure.
fn wait_each_failed(f: &Faulty, held: &[&str], what: &str, failed: impl Fn(&str) -> bool) {
    wait_until(Duration::from_secs(30), what, || {
        let log = f.log();
        held.iter().all(|n| {
            log.lines()
                .any(|l| failed(l) && l.contains(&format!("item={n}")))
        })
    });
}

/// Waits until every held application is accepted, then checks each was
/// accepted exactly once and that only `listed` bundles wait for the court.
fn assert_each_accepted_once(
    f: &Faulty,
    net: &Net,
    seen: &mut Vec<(String, String)>,
    held: &[&str],
    listed: usize,
) {
    wait_until(
        Duration::from_secs(120),
        "the held applications to be accepted",
        || {
            accepted_lines(&f.node, seen);
            seen.len() >= held.len()
        },
    );
    wait_none_listed_but(net, &f.node, listed);
    let mut names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, held, "each held application accepted exactly once");
}

fn assert_no_panic(log: &str) {
    assert!(
        !log.contains("panicked"),
        "the daemon panicked under the fault:\n{log}"
    );
}

#[test]
fn a_failing_fdatasync_holds_applications_degrades_readyz_and_the_node_recovers_when_it_clears() {
    let net = Net::new();
    let mut f = start_faulty(&net, &[]);
    let data = net.agency(COMMITTEE).dir.join("data");
    let mut seen = Vec::new();
    drop_app(&net, "before", "深劳人仲案〔2026〕7001号");
    let before = wait_line(&f.node, "ACCEPTED  before");
    assert!(before.contains("bundle "), "{before}");
    assert_eq!(f.http("/readyz").0, 200);

    // Every fdatasync fails with EIO from now on: the audit log's appends.
    f.fiu("enable name=posix/io/sync/fdatasync,failinfo=5");
    let held = ["held-0", "held-1", "held-2"];
    drop_each(&net, &held, 7010);
    wait_each_failed(
        &f,
        &held,
        "each held application to fail on the audit log",
        |l| l.contains("cannot record the acceptance in the audit log"),
    );
    // Nothing acknowledged: no ACCEPTED line, nothing queued for the court,
    // each item kept (claimed, tried again) and its clerk told why.
    accepted_lines(&f.node, &mut seen);
    assert!(seen.is_empty(), "acknowledged under the fault: {seen:?}");
    let clerk = data.join("clerk");
    for name in held {
        assert!(!clerk.join(format!("accepted/{name}.txt")).exists());
        let note = clerk.join(format!("problems/{name}.txt"));
        wait_until(Duration::from_secs(10), "the clerk's note", || {
            fs::read_to_string(&note).is_ok_and(|t| t.contains("audit log"))
        });
    }
    // The court can still poll what was queued before.
    let listed = listed_for(&net, &f.node, FUTIAN);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // Not ready, naming the audit log; the failures counted; no panic.
    wait_until(
        Duration::from_secs(10),
        "/readyz to name the audit log",
        || {
            let (status, body) = f.http("/readyz");
            status == 503 && json(body.as_bytes())["parts"]["audit"]["ok"] == false
        },
    );
    let (status, body) = f.http("/readyz");
    assert_eq!(status, 503, "{body}");
    let ready = json(body.as_bytes());
    assert_eq!(ready["parts"]["audit"]["ok"], false, "{body}");
    assert_eq!(ready["parts"]["intake"]["ok"], false, "{body}");
    assert_eq!(f.metric("sealpost_part_ok{part=\"audit\"}"), 0.0);
    assert!(
        f.metric("sealpost_audit_append_failures_total") >= 3.0,
        "the failures are not counted"
    );
    assert_no_panic(&f.log());

    // The fault clears: the node recovers by itself.
    f.fiu("disable name=posix/io/sync/fdatasync");
    wait_until(Duration::from_secs(30), "/readyz to be ready again", || {
        f.http("/readyz").0 == 200
    });
    assert_each_accepted_once(&f, &net, &mut seen, &held, 4);
    assert!(f
        .log()
        .contains("the audit log recovered from a failed write or sync"));
    assert_no_panic(&f.log());
    f.node.child.stop();

    // The chain verifies, says what was cut, and holds one acceptance each.
    let (code, report, _) = common::audit_verify(&net, &data.join("audit"));
    assert_eq!(code, Some(0), "{report}");
    let recs = records(&data);
    let cut: Vec<_> = recs.iter().filter(|r| r["kind"] == "sync-failed").collect();
    assert!(!cut.is_empty(), "no sync-failed record");
    assert!(
        cut[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("fdatasync")),
        "{}",
        cut[0]
    );
    assert!(data
        .join("audit")
        .join(cut[0]["kept_as"].as_str().expect("kept_as"))
        .is_file());
    for (name, id) in &seen {
        let n = recs
            .iter()
            .filter(|r| r["kind"] == "application-accepted" && r["bundle_id"] == id.as_str())
            .count();
        assert_eq!(n, 1, "{name} ({id}) accepted {n} times in the audit log");
    }
}

/// Waits until the court lists exactly `n` bundles.
fn wait_none_listed_but(net: &Net, node: &Node, n: usize) {
    wait_until(Duration::from_secs(20), "the bundles to be listed", || {
        listed_for(net, node, FUTIAN)
            .as_array()
            .is_some_and(|a| a.len() == n)
    });
}

#[test]
fn a_failing_fsync_holds_applications_and_every_store_recovers_when_it_clears() {
    let net = Net::new();
    let mut f = start_faulty(&net, &[]);
    let data = net.agency(COMMITTEE).dir.join("data");
    let mut seen = Vec::new();
    drop_app(&net, "before", "深劳人仲案〔2026〕7101号");
    wait_line(&f.node, "ACCEPTED  before");

    // Every fsync fails with EIO: bundle files, directories, the outbox's
    // store, case files, notes.
    f.fiu("enable name=posix/io/sync/fsync,failinfo=5");
    let held = ["fs-0", "fs-1"];
    drop_each(&net, &held, 7110);
    wait_each_failed(&f, &held, "each held application to fail", |l| {
        l.contains("processing failed") || l.contains("cannot take this item")
    });
    // Not ready, naming intake and why; the part's metric says so too.
    wait_until(Duration::from_secs(10), "/readyz to name intake", || {
        let (status, body) = f.http("/readyz");
        status == 503 && json(body.as_bytes())["parts"]["intake"]["ok"] == false
    });
    let (_, body) = f.http("/readyz");
    let intake = &json(body.as_bytes())["parts"]["intake"]["detail"];
    assert!(
        intake
            .as_str()
            .is_some_and(|d| d.contains("Input/output error")),
        "{body}"
    );
    assert_eq!(f.metric("sealpost_part_ok{part=\"intake\"}"), 0.0);
    // Nothing acknowledged, nothing queued; the court still polls the rest.
    accepted_lines(&f.node, &mut seen);
    assert!(seen.is_empty(), "acknowledged under the fault: {seen:?}");
    assert_eq!(
        listed_for(&net, &f.node, FUTIAN).as_array().map(Vec::len),
        Some(1)
    );
    assert_no_panic(&f.log());

    f.fiu("disable name=posix/io/sync/fsync");
    assert_each_accepted_once(&f, &net, &mut seen, &held, 3);
    wait_until(Duration::from_secs(30), "/readyz to be ready again", || {
        f.http("/readyz").0 == 200
    });
    assert_no_panic(&f.log());
    f.node.child.stop();
    let (code, report, _) = common::audit_verify(&net, &data.join("audit"));
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn random_sync_errors_lose_and_duplicate_nothing_once_they_clear() {
    let net = Net::new();
    let mut f = start_faulty(&net, &[]);
    let data = net.agency(COMMITTEE).dir.join("data");
    // A third of the syncs fail (EIO), at random, while eight applications
    // are dropped: whatever step each failure hits
    // (claim, seal, bundle file, outbox, case file, audit log, notes), the
    // item is either taken whole later or not yet.
    let points = [
        ("posix/io/sync/fsync", "0.3"),
        ("posix/io/sync/fdatasync", "0.3"),
    ];
    for (name, p) in points {
        f.fiu(&format!(
            "enable_random name={name},probability={p},failinfo=5"
        ));
    }
    let names: Vec<String> = (0..8).map(|i| format!("rnd-{i}")).collect();
    drop_each(&net, &names, 7200);
    // The faults stay on until they have struck (the injected EIO in the
    // log, a few times), not for a time that hopes they did.
    wait_until(
        Duration::from_secs(60),
        "the random faults to strike",
        || f.log().matches("Input/output error").count() >= 3,
    );
    for (name, _) in points {
        f.fiu(&format!("disable name={name}"));
    }
    // Each is accepted once (its clerk's note, and one bundle for the court).
    let clerk = data.join("clerk");
    wait_until(
        Duration::from_secs(180),
        "every application to be accepted",
        || {
            names
                .iter()
                .all(|n| clerk.join(format!("accepted/{n}.txt")).is_file())
        },
    );
    wait_until(Duration::from_secs(60), "/readyz to be ready again", || {
        f.http("/readyz").0 == 200
    });
    let listed = listed_for(&net, &f.node, FUTIAN);
    let ids: Vec<&str> = listed
        .as_array()
        .expect("bundles")
        .iter()
        .map(|b| b["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), names.len(), "{listed}");
    assert!(common::listing(&clerk.join("intake")).is_empty());
    assert_no_panic(&f.log());
    f.node.child.stop();

    // Nothing corrupted: every bundle verifies, the chain verifies and holds
    // one acceptance per bundle.
    let court = net.config(FUTIAN);
    let verifier = sealpost::bundle::Verifier::for_node(&court);
    for id in &ids {
        verifier
            .verify(&data.join(format!("outbox/bundles/{id}.sealpost")))
            .unwrap_or_else(|e| panic!("bundle {id}: {e}"));
    }
    let (code, report, _) = common::audit_verify(&net, &data.join("audit"));
    assert_eq!(code, Some(0), "{report}");
    let recs = records(&data);
    for id in &ids {
        let n = recs
            .iter()
            .filter(|r| r["kind"] == "application-accepted" && r["bundle_id"] == *id)
            .count();
        assert_eq!(n, 1, "{id} accepted {n} times in the audit log");
    }
}

#[test]
fn certificates_and_a_crl_that_expire_while_the_node_runs_are_refused_named_and_alarmed() {
    let net = Net::new();
    // Valid for a few more seconds by the clock they are made with: the
    // court's TLS certificate, the committee's signing certificate and the
    // committee's CRL.
    let made = time::OffsetDateTime::now_utc();
    let until = made + time::Duration::seconds(4);
    let court = net.agency(FUTIAN).dir.clone();
    let (pem, key) = net
        .ca
        .tls_cert_valid(FUTIAN, made - time::Duration::days(1), until);
    fs::write(court.join("tls.pem"), pem).expect("write");
    fs::write(court.join("tls.key"), key).expect("write");
    let committee = net.agency(COMMITTEE).dir.clone();
    let (pem, key) = net
        .ca
        .signing_cert(COMMITTEE, made - time::Duration::days(1), until);
    fs::write(committee.join("sign.pem"), pem).expect("write");
    fs::write(committee.join("sign.key"), key).expect("write");
    let crl = with_empty_crl(&net);
    fs::write(&crl, net.ca.crl_until(&[], until)).expect("crl");

    let mut f = start_faulty(&net, &[]);
    let (status, _) = curl(&net, &f.node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(status, 200, "in date: served");
    assert_eq!(f.http("/readyz").0, 200);
    let until_unix = until.unix_timestamp() as f64;
    assert_eq!(
        f.metric("sealpost_certificate_expiry_timestamp_seconds{certificate=\"signing\"}"),
        until_unix
    );

    let past = sealpost::types::Timestamp::from_unix(until.unix_timestamp() + 1).expect("time");
    wait_until(
        Duration::from_secs(20),
        "the certificates to expire",
        || sealpost::types::Timestamp::now() > past,
    );
    // The court's expired certificate is refused at the handshake, and the
    // node's log says it was expired and since when.
    let (status, _) = curl(&net, &f.node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(status, 0, "an expired client certificate was served");
    wait_until(Duration::from_secs(10), "the refusal to be logged", || {
        f.log().lines().any(|l| {
            l.contains("a client certificate was refused")
                && l.contains(&format!("agency={FUTIAN}"))
                && l.contains(&format!("not_after={}", until_ts(until)))
                && l.contains("certificate expired")
        })
    });
    // The node's own signing certificate and its CRL: not ready (the
    // periodic check, within 30 s), naming each and when.
    // A reload is refused while this node's own certificate is out of date,
    // saying which and when.
    f.node.child.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload to be refused", || {
        f.log().lines().any(|l| {
            l.contains("reload refused")
                && l.contains("the signing certificate is not valid at")
                && l.contains(&until_ts(until).to_string())
        })
    });
    wait_until(Duration::from_secs(45), "/readyz to name them", || {
        let (status, body) = f.http("/readyz");
        let v = json(body.as_bytes());
        status == 503
            && v["parts"]["certificates"]["ok"] == false
            && v["parts"]["crls"]["ok"] == false
    });
    let (_, body) = f.http("/readyz");
    let v = json(body.as_bytes());
    let certs = v["parts"]["certificates"]["detail"]
        .as_str()
        .expect("detail");
    assert!(
        certs.contains("the signing certificate expired on"),
        "{certs}"
    );
    let crls = v["parts"]["crls"]["detail"].as_str().expect("detail");
    assert!(crls.contains("past its nextUpdate"), "{crls}");
    assert_eq!(f.metric("sealpost_part_ok{part=\"certificates\"}"), 0.0);
    assert_eq!(f.metric("sealpost_part_ok{part=\"crls\"}"), 0.0);
    assert!(
        f.metric("sealpost_certificate_expiry_timestamp_seconds{certificate=\"signing\"}")
            < sealpost::types::Timestamp::now().unix() as f64
    );
    assert_no_panic(&f.log());
}

/// `at` as the node writes times.
fn until_ts(at: time::OffsetDateTime) -> sealpost::types::Timestamp {
    sealpost::types::Timestamp::from_unix(at.unix_timestamp()).expect("time")
}
