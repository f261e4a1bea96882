//! The court's side with real daemons: a receipt is signed once and survives a
//! key rotation, one bad bundle does not hold up the others, and a restart
//! removes what an interrupted run left half done.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::node::*;
use common::{wait_until, Net, COMMITTEE, FUTIAN};
use sealpost::receipt::SignedReceipt;
use sealpost::types::Timestamp;

fn accepted_id(node: &Node, name: &str) -> String {
    wait_line(node, &format!("ACCEPTED  {name}"))
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned()
}

fn court_inbox(net: &Net) -> std::path::PathBuf {
    net.agency(FUTIAN).dir.join("data/inbox")
}

/// Replaces `from` by `to` in a text file (asserting `from` is there).
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    fs::write(path, text.replace(from, to)).expect("write");
}

/// Downloads bundle `id` as the court with curl and opens it into the court's
/// inbox with `sealpost open`, as an earlier run of the court would have.
fn place_in_inbox(net: &Net, node: &Node, id: &str, case: &str) -> std::path::PathBuf {
    let (status, bytes) = curl(net, node, FUTIAN, &format!("/v1/bundles/{id}"), &[]);
    assert_eq!(status, 200);
    let file = net.out(&format!("{id}.sealpost"));
    fs::write(&file, bytes).expect("write");
    let dest = court_inbox(net).join(case).join(id);
    fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let o = Command::new(common::bin())
        .args(["-c", net.config_path(FUTIAN).to_str().expect("utf-8")])
        .args(["open", file.to_str().expect("utf-8"), "-o"])
        .arg(&dest)
        .output()
        .expect("open");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dest
}

#[test]
fn a_receipt_is_signed_once_and_reposted_unchanged_after_a_signing_key_rotation() {
    let net = Net::new();
    let court_dir = net.agency(FUTIAN).dir.clone();
    // The committee's copy of the directory knows another signing certificate
    // for the court, so the court's first receipt is refused (as if its answer
    // never arrived) and stays stored at the court.
    let now = time::OffsetDateTime::now_utc();
    let (other_pem, _) = net.ca.signing_cert(
        FUTIAN,
        now - time::Duration::days(1),
        now + time::Duration::days(365),
    );
    fs::write(court_dir.join("sign-other.pem"), other_pem).expect("write");
    let committee_peers = net.path().join("committee-peers.toml");
    fs::copy(net.path().join("peers.toml"), &committee_peers).expect("copy");
    edit(
        &committee_peers,
        "signing_cert = \"sz-futian-court/sign.pem\"",
        "signing_cert = \"sz-futian-court/sign-other.pem\"",
    );
    let mut committee = start_with(
        &net,
        &[(
            "SEALPOST_DIRECTORY__FILE",
            committee_peers.to_str().expect("utf-8"),
        )],
    );
    set_committee_endpoint(&net, &committee.addr);
    drop_app(&net, "rotated", "深劳人仲案〔2026〕8100号");
    let id = accepted_id(&committee, "rotated");

    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::null());
    let dest = court_inbox(&net).join("深劳人仲案〔2026〕8100号").join(&id);
    wait_until(Duration::from_secs(20), "the bundle in the inbox", || {
        dest.join(".done").exists()
    });
    wait_until(
        Duration::from_secs(20),
        "the refused receipt to be logged",
        || court.stderr_text().contains("receipt-signer-not-receiver"),
    );
    let stored = fs::read(dest.join("receipt.json")).expect("receipt.json");
    let signed: SignedReceipt = serde_json::from_slice(&stored).expect("signed receipt");
    let signed_at = signed.unverified_received_at().expect("received_at");
    assert_eq!(
        fs::read_to_string(dest.join(".done"))
            .expect(".done")
            .trim(),
        signed_at.to_string(),
        ".done does not record the receipt's time"
    );
    court.kill9();

    // The court rotates its signing key: the new certificate becomes valid
    // after the stored receipt was signed (dates from the clock the
    // certificates are made with). Both directories list old and new.
    let not_before = time::OffsetDateTime::from_unix_timestamp(signed_at.unix() + 1).expect("time");
    let (new_pem, new_key) =
        net.ca
            .signing_cert(FUTIAN, not_before, not_before + time::Duration::days(365));
    fs::write(court_dir.join("sign2.pem"), new_pem).expect("write");
    fs::write(court_dir.join("sign2.key"), new_key).expect("write");
    wait_until(
        Duration::from_secs(5),
        "the clock to pass the new certificate's start",
        || Timestamp::now().unix() > signed_at.unix() + 1,
    );
    let both = "signing_cert = [\"sz-futian-court/sign.pem\", \"sz-futian-court/sign2.pem\"]";
    edit(
        &net.path().join("peers.toml"),
        "signing_cert = \"sz-futian-court/sign.pem\"",
        both,
    );
    edit(
        &committee_peers,
        "signing_cert = \"sz-futian-court/sign-other.pem\"",
        both,
    );
    edit(
        &net.config_path(FUTIAN),
        "signing_cert = \"sign.pem\"\nsigning_key = \"sign.key\"",
        "signing_cert = \"sign2.pem\"\nsigning_key = \"sign2.key\"",
    );
    committee.child.signal("HUP");
    wait_until(Duration::from_secs(10), "the committee to reload", || {
        committee.child.stderr_text().contains("reloaded")
    });

    // Restarted with the new key, the court posts the receipt it stored: the
    // same bytes, signed with the old key at the old time — and it is accepted.
    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::null());
    wait_none_listed(&net, &committee, "the stored receipt to be accepted");
    let at_committee = fs::read(
        net.agency(COMMITTEE)
            .dir
            .join(format!("data/outbox/receipts/{id}.json")),
    )
    .expect("committee's receipt");
    let at_committee: SignedReceipt = serde_json::from_slice(&at_committee).expect("json");
    assert_eq!(at_committee, signed, "the court sent another receipt");
    assert_eq!(
        at_committee.signer,
        fs::read_to_string(court_dir.join("sign.pem")).expect("old cert"),
        "not signed with the key in force when the bundle was stored"
    );
    assert_eq!(
        fs::read(dest.join("receipt.json")).expect("receipt.json"),
        stored,
        "the stored receipt changed"
    );
    court.stop();
    committee.child.stop();
}

#[test]
fn one_bundle_whose_receipt_is_refused_does_not_hold_up_the_others() {
    let net = Net::new();
    let mut committee = start(&net);
    set_committee_endpoint(&net, &committee.addr);
    // The first bundle in the queue is poisoned: the court holds it with a
    // receipt the committee refuses (its signature is not the court's).
    drop_app(&net, "poisoned", "深劳人仲案〔2026〕8200号");
    let bad = accepted_id(&committee, "poisoned");
    let dest = place_in_inbox(&net, &committee, &bad, "深劳人仲案〔2026〕8200号");
    let o = Command::new(common::bin())
        .args(["-c", net.config_path(FUTIAN).to_str().expect("utf-8")])
        .args(["receipt", "make"])
        .arg(net.out(&format!("{bad}.sealpost")))
        .output()
        .expect("receipt make");
    assert!(o.status.success());
    let mut receipt = json(&o.stdout);
    receipt["signature"] = serde_json::Value::String(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
            .into(),
    );
    fs::write(dest.join("receipt.json"), receipt.to_string()).expect("write");
    fs::write(dest.join(".done"), Timestamp::now().to_string()).expect("write");
    let good: Vec<(String, String)> = (1..=3)
        .map(|i| {
            let case = format!("深劳人仲案〔2026〕820{i}号");
            drop_app(&net, &format!("good-{i}"), &case);
            (accepted_id(&committee, &format!("good-{i}")), case)
        })
        .collect();

    let started = Instant::now();
    let court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__WAIT", "20s")],
        Stdio::null(),
    );
    wait_until(
        Duration::from_secs(15),
        "the three good bundles to be delivered",
        || {
            let listed = listed_for(&net, &committee, FUTIAN);
            let ids: Vec<&str> = listed
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|b| b["id"].as_str())
                .collect();
            good.iter().all(|(id, _)| !ids.contains(&id.as_str()))
        },
    );
    let took = started.elapsed();
    eprintln!("three good bundles delivered {took:?} after the court started");
    for (id, case) in &good {
        assert!(court_inbox(&net).join(case).join(id).join(".done").exists());
    }
    // The poisoned one is still waiting, retried on its own schedule, and each
    // failure is reported with its code.
    wait_until(
        Duration::from_secs(20),
        "a second attempt at the poisoned bundle",
        || {
            court.stderr_text().lines().any(|l| {
                l.contains(&bad)
                    && l.contains("attempt=2")
                    && l.contains("receipt-signature-invalid")
            })
        },
    );
    let listed = listed_for(&net, &committee, FUTIAN);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], bad.as_str());
    drop(court);
    committee.child.stop();
}

#[test]
fn a_restart_removes_partial_plaintext_and_stale_downloads_before_anything_runs() {
    let net = Net::new();
    let data = net.agency(FUTIAN).dir.join("data");
    // What a court killed while opening leaves: a hidden temporary folder of
    // partly decrypted documents, temporary files, pushes in flight, and
    // downloads (one for a bundle already in the inbox, one still resumable).
    let case = data.join("inbox/深劳人仲案〔2026〕8300号");
    let partial = case.join(".aaaaaaaaaaaaaaaaaaaaaaaaaa.tmp-bbbbbbbbbb");
    fs::create_dir_all(partial.join("documents")).expect("mkdir");
    fs::write(
        partial.join("documents/财产保全申请书.pdf"),
        b"%PDF-1.7 half",
    )
    .expect("write");
    let done_id = sealpost::types::BundleId::generate().to_string();
    let done = case.join(&done_id);
    fs::create_dir_all(&done).expect("mkdir");
    fs::write(done.join(".receipt.json.tmp-0123456789"), b"{").expect("write");
    fs::create_dir_all(data.join("received")).expect("mkdir");
    fs::write(
        data.join(format!("received/{done_id}.json")),
        format!(
            "{{\"bundle_id\":\"{done_id}\",\"sender\":\"sz-lac\",\"envelope_sha256\":\"{}\",\"case_ref\":\"深劳人仲案〔2026〕8300号\"}}",
            "0".repeat(64)
        ),
    )
    .expect("write");
    fs::write(done.join("receipt.json"), b"{}").expect("write");
    fs::write(done.join(".done"), b"x").expect("write");
    fs::create_dir_all(data.join("downloads/push")).expect("mkdir");
    fs::write(data.join("downloads/push/x.sealpost"), b"PK").expect("write");
    fs::create_dir_all(data.join("downloads/sz-lac")).expect("mkdir");
    fs::write(
        data.join(format!("downloads/sz-lac/{done_id}.sealpost")),
        b"PK",
    )
    .expect("write");
    let resumable = data.join(format!(
        "downloads/sz-lac/{}.sealpost",
        sealpost::types::BundleId::generate()
    ));
    fs::write(&resumable, b"PK").expect("write");

    // No committee endpoint: nothing polls; only recovery runs.
    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::null());
    court.wait_ready();
    assert!(!partial.exists(), "partial plaintext survived the restart");
    assert!(!done.join(".receipt.json.tmp-0123456789").exists());
    assert!(done.join(".done").exists(), "a complete folder was touched");
    assert!(
        !data.join("downloads/push").exists(),
        "a push in flight survived"
    );
    assert!(
        !data
            .join(format!("downloads/sz-lac/{done_id}.sealpost"))
            .exists(),
        "the download of a bundle already in the inbox survived"
    );
    assert!(resumable.exists(), "a resumable download was removed");
    court.stop();
}
