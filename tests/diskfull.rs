//! A full disk: intake pauses (one log line, no hot loop), the API goes on
//! serving, nothing is half-written, and intake resumes by itself when there is
//! room again. The node runs in a mount namespace of its own on a small tmpfs
//! (`unshare --user --map-root-user --mount`), so nothing of the host fills up;
//! the test reaches that file system through `/proc/<pid>/root`. Nothing is
//! corrupted: afterwards the outbox lists each application once, the bundles
//! verify and download whole, and the audit chain verifies.

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::node::*;
use common::{tiny_app, wait_until, Net, FUTIAN};

#[test]
fn a_full_disk_pauses_intake_once_while_serving_goes_on_and_intake_resumes_when_there_is_room() {
    let net = Net::new();
    let mnt = net.out("tmpfs");
    fs::create_dir(&mnt).expect("mkdir");
    let mnt_s = mnt.to_str().expect("utf-8").to_owned();
    let mut node = start_via(
        &net,
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=48m tmpfs \"$0\" && exec \"$@\"",
            &mnt_s,
        ],
        &[
            ("SEALPOST_NODE__DATA_DIR", &mnt_s),
            ("SEALPOST_INTAKE__MIN_FREE_SPACE", "2 MiB"),
        ],
    );
    node.child.wait_ready();
    // The node's view of its data directory.
    let data: PathBuf = PathBuf::from(format!("/proc/{}/root{}", node.child.id(), mnt_s));
    let clerk = data.join("clerk");
    wait_until(
        Duration::from_secs(10),
        "the intake folders on the tmpfs",
        || clerk.join("intake").is_dir(),
    );
    assert!(
        !mnt.join("clerk").exists(),
        "the tmpfs is not the node's own: the data went to the host's disk"
    );
    // One application accepted before the disk fills.
    drop_app_at(&clerk, &data, "early", "深劳人仲案〔2026〕9500号");
    let early = wait_line(&node, "ACCEPTED  early")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    // An application ready to drop, then the disk filled to the last byte.
    let staging = data.join("staging");
    tiny_app(&staging, "深劳人仲案〔2026〕9501号", FUTIAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    let filler = data.join("filler");
    {
        let mut f = fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    fs::rename(&staging, clerk.join("intake/full")).expect("drop");

    // Paused: the drop stays, one log line says why, nothing loops.
    wait_until(Duration::from_secs(10), "the pause to be logged", || {
        node.child
            .stderr_text()
            .contains("disk full: intake paused")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        clerk.join("intake/full").is_dir(),
        "taken while the disk was full"
    );
    let log = node.child.stderr_text();
    assert_eq!(
        log.matches("disk full: intake paused").count(),
        1,
        "the pause was logged more than once:\n{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .count()
            <= 2,
        "errors repeat while paused:\n{log}"
    );
    // Serving goes on.
    let (status, body) = curl(&net, &node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // Room again: intake resumes by itself and takes the drop, complete.
    fs::remove_file(&filler).expect("free the disk");
    wait_until(Duration::from_secs(15), "the drop to be accepted", || {
        clerk.join("accepted/full.txt").is_file()
    });
    assert!(node.child.stderr_text().contains("intake resumes"));
    let id = wait_line(&node, "ACCEPTED  full")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let cfg = net.config(FUTIAN);
    sealpost::bundle::Verifier::for_node(&cfg)
        .verify(&data.join(format!("outbox/bundles/{id}.sealpost")))
        .expect("the bundle sealed after the pause verifies");

    // Nothing corrupted: both are waiting for the court (the outbox's store
    // answers and holds each once), the one sealed before the disk filled
    // still verifies and downloads whole, and the audit chain verifies with
    // one acceptance each.
    let listed = listed_for(&net, &node, FUTIAN);
    let mut ids: Vec<&str> = listed
        .as_array()
        .expect("bundles")
        .iter()
        .map(|b| b["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut want = vec![early.as_str(), id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "{listed}");
    let bundle = data.join(format!("outbox/bundles/{early}.sealpost"));
    sealpost::bundle::Verifier::for_node(&cfg)
        .verify(&bundle)
        .expect("the bundle sealed before the disk filled verifies");
    let (status, body) = curl(&net, &node, FUTIAN, &format!("/v1/bundles/{early}"), &[]);
    assert_eq!(status, 200);
    assert_eq!(body, fs::read(&bundle).expect("bundle"), "downloaded whole");
    let (code, report, err) = common::audit_verify(&net, &data.join("audit"));
    assert_eq!(code, Some(0), "{report}{err}");
    let text = fs::read_to_string(data.join("audit/audit.log")).expect("audit log");
    for b in [&early, &id] {
        let n = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"application-accepted\"") && l.contains(b.as_str()))
            .count();
        assert_eq!(n, 1, "{b} accepted {n} times in the audit log");
    }
    node.child.stop();
}

/// Drops an application into the node's own intake folder (`clerk`), staged
/// beside it on the same file system (`data`).
fn drop_app_at(clerk: &std::path::Path, data: &std::path::Path, name: &str, case: &str) {
    let staging = data.join(format!("staging-{name}"));
    tiny_app(&staging, case, FUTIAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    fs::rename(&staging, clerk.join("intake").join(name)).expect("drop");
}
