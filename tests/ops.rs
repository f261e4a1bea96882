//! The node as a sysadmin runs it, with real daemons: `sealpost ctl` over the
//! admin socket while the daemon runs, reload on SIGHUP and `ctl reload`,
//! metrics checked by `promtool`, `/healthz` and `/readyz`, the systemd
//! watchdog, logs to a real journald and as JSON, and a backup taken while
//! running and restored into a fresh data directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::node::*;
use common::{ctl, wait_until, Net, COMMITTEE, FUTIAN, NANSHAN};

/// Starts the daemon as systemd does with `WatchdogSec=`: `WATCHDOG_PID` is
/// its own pid (the shell's, kept by `exec`), `WATCHDOG_USEC` comes with the env.
const WITH_WATCHDOG: &[&str] = &["sh", "-c", "export WATCHDOG_PID=$$; exec \"$@\"", "sh"];

fn accepted_id(node: &Node, name: &str) -> String {
    wait_line(node, &format!("ACCEPTED  {name}"))
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned()
}

/// `sealpost ctl` with an explicit socket.
fn ctl_at(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["ctl", "--socket", socket.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    common::sealpost(&all)
}

/// Plain HTTP GET (or another method) on the loopback operations listener
/// with stock curl: (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The value of the sample `name{labels}` in a metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    fs::write(path, text.replace(from, to)).expect("write");
}

/// The `[[peer]]` block of `id` in the directory file.
fn peer_block(net: &Net, id: &str) -> String {
    let text = fs::read_to_string(net.path().join("peers.toml")).expect("peers");
    text.split("[[peer]]")
        .find(|b| b.contains(&format!("id = \"{id}\"")))
        .map(|b| format!("[[peer]]{b}"))
        .expect("peer block")
}

#[test]
fn ctl_lists_shows_retries_requeues_and_cancels_while_the_daemon_runs() {
    let net = Net::new();
    let mut node = start(&net);
    let names = ["op-0", "op-1", "op-2"];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        drop_app(&net, name, &format!("深劳人仲案〔2026〕{}号", 9100 + i));
        ids.push(accepted_id(&node, name));
    }
    // The court downloads the first: fetched.
    let (status, _) = curl(&net, &node, FUTIAN, &format!("/v1/bundles/{}", ids[0]), &[]);
    assert_eq!(status, 200);

    let (code, out, err) = ctl(&net, COMMITTEE, &["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.contains("fetched") && out.contains("queued") && out.contains("op-1"),
        "{out}"
    );
    let (code, out, _) = ctl(&net, COMMITTEE, &["list", "--state", "fetched", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one json line");
    assert_eq!(v["id"], ids[0].as_str());
    let (code, out, _) = ctl(&net, COMMITTEE, &["list", "--peer", NANSHAN]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "nothing for the other court"
    );
    let (code, _, err) = ctl(&net, COMMITTEE, &["list", "--state", "lost"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("one of queued, fetched"), "{err}");

    let (code, out, _) = ctl(&net, COMMITTEE, &["show", &ids[1]]);
    assert_eq!(code, Some(0), "{out}");
    let shown = json(out.as_bytes());
    assert_eq!(shown["state"]["state"], "queued", "{out}");
    let old_seq = shown["seq"].as_u64().expect("seq");

    // Retry the fetched one; retrying a queued one is refused, clearly.
    let (code, out, err) = ctl(&net, COMMITTEE, &["retry", &ids[0]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("QUEUED"), "{out}");
    let (code, _, err) = ctl(&net, COMMITTEE, &["retry", &ids[1]]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains("cannot retry a delivery that is queued"),
        "{err}"
    );
    // Requeue moves it to the end of the queue: a new, higher position.
    let (code, _, err) = ctl(&net, COMMITTEE, &["requeue", &ids[1]]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = ctl(&net, COMMITTEE, &["show", &ids[1]]);
    assert!(
        json(out.as_bytes())["seq"].as_u64().expect("seq") > old_seq,
        "{out}"
    );

    let (code, out, err) = ctl(
        &net,
        COMMITTEE,
        &["cancel", &ids[2], "--reason", "applicant withdrew"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("CANCELLED"), "{out}");
    let (_, out, _) = ctl(&net, COMMITTEE, &["show", &ids[2]]);
    assert!(out.contains("applicant withdrew (operator uid 0)"), "{out}");
    let (code, _, _) = ctl(&net, COMMITTEE, &["cancel", &ids[2], "--reason", "again"]);
    assert_eq!(code, Some(65));
    // The court no longer sees the cancelled one.
    let listed = listed_for(&net, &node, FUTIAN);
    assert!(!listed.to_string().contains(&ids[2]), "{listed}");

    let (code, _, _) = ctl(&net, COMMITTEE, &["show", "aaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert_eq!(code, Some(66));
    let (code, _, _) = ctl(&net, COMMITTEE, &["show", "not-an-id"]);
    assert_eq!(code, Some(64));

    let (code, out, err) = ctl(&net, COMMITTEE, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("node sz-lac (committee)") && out.contains("ready: yes"),
        "{out}"
    );
    assert!(out.contains(FUTIAN) && out.contains("cancelled 1"), "{out}");
    let (code, out, _) = ctl(&net, COMMITTEE, &["status", "--json"]);
    assert_eq!(code, Some(0));
    let status = json(out.as_bytes());
    assert_eq!(status["intake"]["accepted"], 3, "{status}");
    assert_eq!(status["deliveries"][FUTIAN]["queued"], 2, "{status}");
    assert_eq!(status["pid"], node.child.id(), "{status}");

    // With the daemon stopped, ctl says so (and how to fix it).
    node.child.stop();
    let (code, _, err) = ctl(&net, COMMITTEE, &["status"]);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("is `sealpost run` running"), "{err}");

    // Lose the index entirely (daemon stopped): rebuild recreates it from the
    // bundle files; the restarted daemon lists every bundle again.
    let index = net.agency(COMMITTEE).dir.join("data/outbox/index");
    fs::remove_dir_all(&index).expect("rm index");
    fs::create_dir(&index).expect("mkdir");
    fs::write(index.join("db"), b"garbage, not a sled database").expect("corrupt");
    let o = Command::new(common::bin())
        .args([
            "-c",
            net.config_path(COMMITTEE).to_str().expect("utf-8"),
            "outbox",
            "rebuild",
        ])
        .output()
        .expect("rebuild");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 bundles indexed"));
    let mut node = start(&net);
    node.child.wait_ready();
    let (code, out, err) = ctl(&net, COMMITTEE, &["list"]);
    assert_eq!(code, Some(0), "{err}");
    for id in &ids {
        assert!(
            out.contains(id.as_str()),
            "{id} missing after rebuild: {out}"
        );
    }
    node.child.stop();
}

#[test]
fn the_admin_socket_is_for_root_and_the_service_user_only() {
    let net = Net::new();
    let mut node = start(&net);
    node.child.wait_ready();
    let socket = net.agency(COMMITTEE).dir.join("data/admin.sock");
    let meta = fs::metadata(&socket).expect("socket");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    // A copy of the binary another user can run.
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("sealpost");
    fs::copy(common::bin(), &exe).expect("copy");
    for p in [dir.path(), exe.as_path()] {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    }
    let as_nobody = || {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(["ctl", "--socket", socket.to_str().expect("utf-8"), "status"])
            .output()
            .expect("setpriv (util-linux)");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // The socket's mode keeps others out …
    let (code, err) = as_nobody();
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    // … and if the mode is loosened, the daemon checks the peer's credentials.
    fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let dir_mode = fs::metadata(socket.parent().expect("dir"))
        .expect("dir")
        .permissions();
    fs::set_permissions(
        socket.parent().expect("dir"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    for up in socket.ancestors().skip(2) {
        if up == net.path().parent().expect("tmp") {
            break;
        }
        let _ = fs::set_permissions(up, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    }
    let (code, err) = as_nobody();
    assert_eq!(code, Some(77), "{err}");
    assert!(
        err.contains("[forbidden] uid 65534 may not use the admin socket"),
        "{err}"
    );
    fs::set_permissions(socket.parent().expect("dir"), dir_mode).expect("chmod");
    assert!(node
        .child
        .stderr_text()
        .contains("admin socket: connection refused"));
    // Garbage is answered, not crashed on.
    let o = Command::new("socat")
        .args(["-t5", "-", &format!("UNIX-CONNECT:{}", socket.display())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"{\"command\":\"format-disk\"}\n")?;
            c.wait_with_output()
        })
        .expect("socat");
    let reply = json(&o.stdout);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["code"], "bad-request", "{reply}");
    let (code, _, err) = ctl(&net, COMMITTEE, &["status"]);
    assert_eq!(code, Some(0), "still serving: {err}");
    node.child.stop();
}

#[test]
fn reload_applies_a_new_directory_and_refuses_a_broken_configuration() {
    let net = Net::new();
    let mut node = start(&net);
    node.child.wait_ready();
    let port = node.addr.rsplit(':').next().expect("port").to_owned();
    let ok_for = |court: &str| curl_at(&net, &port, court, "/v1/bundles", &[]).0 == 200;
    assert!(ok_for(NANSHAN) && ok_for(FUTIAN));

    // Remove a court from the directory; SIGHUP.
    let peers = net.path().join("peers.toml");
    let original_peers = fs::read_to_string(&peers).expect("peers");
    let nanshan = peer_block(&net, NANSHAN);
    fs::write(&peers, original_peers.replace(&nanshan, "")).expect("write");
    let notes = node.child.notifications().clone();
    let mark = notes.mark();
    node.child.signal("HUP");
    let reloading = notes
        .wait_after(mark, Duration::from_secs(20), |l| l == "RELOADING=1")
        .expect("RELOADING=1");
    notes
        .wait_after(reloading, Duration::from_secs(20), |l| l == "READY=1")
        .expect("READY=1 after RELOADING=1");
    assert!(
        notes.all()[reloading..]
            .iter()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{:?}",
        notes.all()
    );
    assert!(
        !ok_for(NANSHAN),
        "a court removed from the directory is refused"
    );
    assert!(ok_for(FUTIAN));

    // A broken configuration: refused with the exact error, the old one stays.
    let cfg = net.config_path(COMMITTEE);
    let good = fs::read_to_string(&cfg).expect("config");
    edit(
        &cfg,
        "role = \"committee\"",
        "role = \"committee\"\nbogus = 1",
    );
    let (code, _, err) = ctl(&net, COMMITTEE, &["reload"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains(&format!("{}:4: key `node.bogus`", cfg.display())),
        "the error names file, line and key: {err}"
    );
    assert!(
        ok_for(FUTIAN) && !ok_for(NANSHAN),
        "the previous configuration is in force"
    );
    let mark = notes.mark();
    node.child.signal("HUP");
    let r = notes
        .wait_after(mark, Duration::from_secs(20), |l| l == "RELOADING=1")
        .expect("RELOADING=1");
    notes
        .wait_after(r, Duration::from_secs(20), |l| l == "READY=1")
        .expect("READY=1 after a refused reload");
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        node.child
            .stderr_text()
            .contains("reload refused; the previous configuration stays in force")
    });
    assert!(ok_for(FUTIAN));

    // Fixed again, and the court back in the directory: `ctl reload` says what changed.
    fs::write(&cfg, good).expect("write");
    fs::write(&peers, &original_peers).expect("write");
    let (code, out, err) = ctl(&net, COMMITTEE, &["reload"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("RELOADED  3 peers in the directory"),
        "{out}"
    );
    assert!(ok_for(NANSHAN), "back in the directory: served again");

    // A setting only a restart can change is named, not silently ignored.
    edit(
        &cfg,
        "[server]\n",
        "[server]\nmax_connections_per_peer = 3\n",
    );
    let (code, out, _) = ctl(&net, COMMITTEE, &["reload"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("takes effect at the next restart: server limits"),
        "{out}"
    );
    // The data directory cannot change under a running node.
    edit(&cfg, "data_dir = \"data\"", "data_dir = \"data2\"");
    let socket = net.agency(COMMITTEE).dir.join("data/admin.sock");
    let (code, _, err) = ctl_at(&socket, &["reload"]);
    assert_eq!(code, Some(65));
    assert!(
        err.contains("node.data_dir cannot change while the node runs"),
        "{err}"
    );
    node.child.stop();
}

#[test]
fn metrics_pass_promtool_and_health_names_what_is_wrong() {
    let net = Net::new();
    let mut node = start_with(&net, &[("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0")]);
    let admin = wait_line(&node, "ADMIN ")["ADMIN ".len()..].to_owned();
    node.child.wait_ready();
    drop_app(&net, "m", "深劳人仲案〔2026〕9200号");
    let id = accepted_id(&node, "m");
    let (status, _) = curl(&net, &node, FUTIAN, &format!("/v1/bundles/{id}"), &[]);
    assert_eq!(status, 200);

    let (status, text) = http(&admin, "GET", "/metrics");
    assert_eq!(status, 200, "{text}");
    let file = net.out("metrics.txt");
    fs::write(&file, &text).expect("write");
    let o = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(fs::File::open(&file).expect("open"))
        .output()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    assert!(
        o.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let peer = format!("peer=\"{FUTIAN}\"");
    for (series, want) in [
        (
            format!("sealpost_deliveries{{state=\"fetched\",{peer}}}"),
            1.0,
        ),
        (format!("sealpost_downloads_total{{{peer}}}"), 1.0),
        (
            "sealpost_intake_total{outcome=\"accepted\"}".to_owned(),
            1.0,
        ),
        (
            "sealpost_intake_total{outcome=\"rejected\"}".to_owned(),
            0.0,
        ),
        (
            format!("sealpost_delivery_events_total{{change=\"queued\",{peer}}}"),
            1.0,
        ),
        (
            format!("sealpost_delivery_events_total{{change=\"fetched\",{peer}}}"),
            1.0,
        ),
        ("sealpost_ready".to_owned(), 1.0),
    ] {
        assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
    }
    let expiry = sample(
        &text,
        "sealpost_certificate_expiry_timestamp_seconds{certificate=\"tls\"}",
    )
    .expect("tls expiry");
    let tls =
        sealpost::pki::load_certs(&net.agency(COMMITTEE).dir.join("tls.pem")).expect("tls.pem");
    let not_after = sealpost::pki::summarize(&tls[0]).expect("cert").not_after;
    assert_eq!(
        expiry,
        not_after.unix() as f64,
        "the certificate's own notAfter"
    );
    let om = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Accept: application/openmetrics-text; version=1.0.0",
        ])
        .arg(format!("http://{admin}/metrics"))
        .output()
        .expect("curl");
    let om = String::from_utf8_lossy(&om.stdout);
    assert!(
        om.trim_end().ends_with("# EOF"),
        "OpenMetrics when asked for: {om}"
    );
    assert!(sample(&text, "sealpost_disk_free_bytes{path=\"data\"}").expect("disk") > 0.0);
    assert!(
        sample(&text, &format!("sealpost_oldest_waiting_seconds{{{peer}}}")).expect("age") >= 0.0
    );
    assert!(text.contains("sealpost_build_info{version=\""), "{text}");

    let (status, body) = http(&admin, "GET", "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&admin, "GET", "/readyz");
    assert_eq!(status, 200, "{body}");
    let ready = json(body.as_bytes());
    assert_eq!(ready["ready"], true);
    for part in [
        "task:api",
        "task:intake",
        "intake",
        "store",
        "disk",
        "certificates",
    ] {
        assert_eq!(ready["parts"][part]["ok"], true, "{part}: {body}");
    }
    assert_eq!(http(&admin, "GET", "/nope").0, 404);
    assert_eq!(http(&admin, "POST", "/metrics").0, 405);

    // A court whose disk is "full" (a threshold it cannot meet): not ready,
    // 503 naming the disk; still alive, so the watchdog goes on being pinged.
    let mut court = common::spawn_daemon_via(
        WITH_WATCHDOG,
        &net.config_path(FUTIAN),
        FUTIAN,
        &[
            ("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0"),
            ("SEALPOST_INTAKE__MIN_FREE_SPACE", "900000 GB"),
            ("WATCHDOG_USEC", "600000"),
        ],
        Stdio::piped(),
    );
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(court.take_stdout()));
    let court_admin = out
        .find_map(|l| l.ok()?.strip_prefix("ADMIN ").map(str::to_owned))
        .expect("ADMIN line");
    std::thread::spawn(move || for _ in out {});
    court.wait_ready();
    let (status, body) = http(&court_admin, "GET", "/readyz");
    assert_eq!(status, 503, "{body}");
    let v = json(body.as_bytes());
    assert_eq!(v["ready"], false);
    assert_eq!(v["problems"][0]["part"], "disk", "{body}");
    assert!(
        v["problems"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("below intake.min_free_space"),
        "{body}"
    );
    assert_eq!(http(&court_admin, "GET", "/healthz").0, 200);
    let notes = court.notifications().clone();
    let first = notes
        .wait_after(0, Duration::from_secs(10), |l| l == "WATCHDOG=1")
        .expect("watchdog pings");
    notes
        .wait_after(first + 1, Duration::from_secs(10), |l| l == "WATCHDOG=1")
        .expect("more watchdog pings");
    let (_, text) = http(&court_admin, "GET", "/metrics");
    assert_eq!(sample(&text, "sealpost_ready"), Some(0.0));
    assert_eq!(sample(&text, "sealpost_part_ok{part=\"disk\"}"), Some(0.0));

    court.stop();
    node.child.stop();
}

#[test]
fn a_failing_task_is_restarted_and_the_watchdog_waits_for_it() {
    let net = Net::new();
    // A leftover in intake's .work/ that cannot be removed: intake's recovery,
    // run at every (re)start of the intake task, fails until it can.
    let leftover = net
        .agency(COMMITTEE)
        .dir
        .join("data/clerk/.work/aaaaaaaaaaaaaaaaaaaaaaaaaa");
    fs::create_dir_all(&leftover).expect("mkdir");
    fs::write(leftover.join("junk"), b"x").expect("write");
    let frozen = common::Immutable::set(&leftover);
    let mut node = start_via(
        &net,
        WITH_WATCHDOG,
        &[
            ("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0"),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    let admin = wait_line(&node, "ADMIN ")["ADMIN ".len()..].to_owned();
    node.child.wait_ready();
    wait_until(
        Duration::from_secs(10),
        "/healthz to name the intake task",
        || {
            let (status, body) = http(&admin, "GET", "/healthz");
            status == 503 && body.contains("task:intake") && body.contains("cannot remove")
        },
    );
    let notes = node.child.notifications().clone();
    assert!(
        !notes.all().iter().any(|l| l == "WATCHDOG=1"),
        "pinged while a task fails: {:?}",
        notes.all()
    );
    let mark = notes.mark();
    assert!(
        notes
            .wait_after(mark, Duration::from_secs(1), |l| l == "WATCHDOG=1")
            .is_err(),
        "the watchdog is not pinged while the intake task fails"
    );
    let log = node.child.stderr_text();
    assert!(
        log.contains("a task of the node failed; restarting it"),
        "{log}"
    );
    assert!(log.contains("watchdog pings withheld"), "{log}");

    // Fixed: the task's next start recovers, the node is whole again.
    drop(frozen);
    notes
        .wait_after(mark, Duration::from_secs(20), |l| l == "WATCHDOG=1")
        .expect("pings resume once the task runs");
    assert_eq!(http(&admin, "GET", "/healthz").0, 200);
    assert!(!leftover.exists(), "recovered");
    let (_, text) = http(&admin, "GET", "/metrics");
    let restarts =
        sample(&text, "sealpost_task_restarts_total{task=\"intake\"}").expect("restarts");
    assert!(restarts >= 1.0, "{text}");
    // And it works: an application goes through.
    drop_app(&net, "after", "深劳人仲案〔2026〕9250号");
    accepted_id(&node, "after");
    node.child.stop();
}

#[test]
fn a_backup_taken_while_running_restores_into_a_fresh_data_directory() {
    let net = Net::new();
    let mut node = start(&net);
    set_committee_endpoint(&net, &node.addr);
    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::null());
    let mut ids = Vec::new();
    for (i, name) in ["b-0", "b-1"].iter().enumerate() {
        drop_app(&net, name, &format!("深劳人仲案〔2026〕{}号", 9300 + i));
        ids.push(accepted_id(&node, name));
    }
    let lac = net.agency(COMMITTEE).dir.join("data");
    for id in &ids {
        let r = lac.join(format!("outbox/receipts/{id}.json"));
        wait_until(Duration::from_secs(30), "the receipt", || r.is_file());
    }
    // One for the other court, which is not running: it stays queued.
    let staging = net.out("staging-n");
    common::tiny_app(&staging, "深劳人仲案〔2026〕9302号", NANSHAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    fs::rename(&staging, lac.join("clerk/intake/n")).expect("drop");
    ids.push(accepted_id(&node, "n"));

    let lac_backup = net.out("backup-lac");
    let (code, out, err) = ctl(
        &net,
        COMMITTEE,
        &["backup", lac_backup.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("3 deliveries, 3 bundles, 2 receipts"), "{out}");
    let manifest = json(&fs::read(lac_backup.join("backup.json")).expect("backup.json"));
    assert_eq!(manifest["node"], COMMITTEE);
    // Not into a folder that has something in it.
    let (code, _, err) = ctl(
        &net,
        COMMITTEE,
        &["backup", lac_backup.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(74), "{err}");
    assert!(err.contains("not empty"), "{err}");
    let court_backup = net.out("backup-court");
    let (code, out, err) = ctl(
        &net,
        FUTIAN,
        &["backup", court_backup.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 inbox folders"), "{out}");
    let (_, before, _) = ctl(&net, COMMITTEE, &["list", "--json"]);
    court.stop();
    node.child.stop();

    // Restore into a fresh data directory (the backup's folders copied in).
    let fresh = net.out("restored-lac");
    fs::create_dir_all(&fresh).expect("mkdir");
    let o = Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", lac_backup.display()),
            fresh.to_str().expect("utf-8"),
        ])
        .status()
        .expect("cp");
    assert!(o.success());
    let fresh_str = fresh.to_str().expect("utf-8").to_owned();
    let mut restored = start_with(
        &net,
        &[
            ("SEALPOST_NODE__DATA_DIR", fresh_str.as_str()),
            ("SEALPOST_INTAKE__ROOT", &format!("{fresh_str}/clerk")),
        ],
    );
    restored.child.wait_ready();
    let (code, after, err) = ctl_at(&fresh.join("admin.sock"), &["list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let strip = |text: &str| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = text.lines().map(|l| json(l.as_bytes())).collect();
        v.sort_by_key(|d| d["seq"].as_u64());
        v
    };
    assert_eq!(
        strip(&after),
        strip(&before),
        "the same deliveries, in the same states"
    );
    let states: Vec<String> = strip(&after)
        .iter()
        .map(|d| d["state"]["state"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(states, ["delivered", "delivered", "queued"]);
    for id in &ids[..2] {
        let name = format!("outbox/receipts/{id}.json");
        assert_eq!(
            fs::read(fresh.join(&name)).expect("restored receipt"),
            fs::read(lac.join(&name)).expect("original receipt")
        );
        let o = Command::new(common::bin())
            .args([
                "-c",
                net.config_path(COMMITTEE).to_str().expect("utf-8"),
                "receipt",
                "verify",
            ])
            .arg(fresh.join(&name))
            .output()
            .expect("receipt verify");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The restored node serves the queued one to its court.
    let (status, _) = curl(
        &net,
        &restored,
        NANSHAN,
        &format!("/v1/bundles/{}", ids[2]),
        &[],
    );
    assert_eq!(status, 200);
    restored.child.stop();

    // The court's backup holds its inbox folders, receipts and the received index.
    let court_data = net.agency(FUTIAN).dir.join("data");
    for (i, id) in ids[..2].iter().enumerate() {
        let rel: PathBuf = ["inbox", &format!("深劳人仲案〔2026〕{}号", 9300 + i), id]
            .iter()
            .collect();
        for f in [".done", "receipt.json", "transfer-letter.txt"] {
            assert_eq!(
                fs::read(court_backup.join(&rel).join(f)).expect("backed up"),
                fs::read(court_data.join(&rel).join(f)).expect("original"),
                "{f}"
            );
        }
        assert!(court_backup.join(format!("received/{id}.json")).is_file());
    }
}

/// Runs `sealpost run` in a private mount namespace with a real
/// systemd-journald of its own (storage in `journal`), standard error
/// announced as a journal stream as systemd does (`JOURNAL_STREAM`).
fn under_journald(net: &Net, journal: &Path, env: &[(&str, &str)]) -> common::Daemon {
    fs::create_dir_all(journal).expect("mkdir");
    let script = net.out("journald.sh");
    fs::write(
        &script,
        format!(
            r#"set -e
mount -t tmpfs tmpfs /run/systemd/journal 2>/dev/null || {{ mkdir -p /run/systemd/journal; mount -t tmpfs tmpfs /run/systemd/journal; }}
mkdir -p /run/log
mount --bind {journal} /run/log
/lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
echo $! > {journal}/journald.pid
i=0; while [ ! -S /run/systemd/journal/socket ]; do i=$((i+1)); [ $i -lt 200 ] || exit 70; sleep 0.05; done
export JOURNAL_STREAM="$(stat -L -c '%d:%i' /proc/self/fd/2)"
exec "$@"
"#,
            journal = journal.display()
        ),
    )
    .expect("script");
    let script = script.to_str().expect("utf-8").to_owned();
    common::spawn_daemon_via(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            &script,
        ],
        &net.config_path(COMMITTEE),
        COMMITTEE,
        env,
        Stdio::piped(),
    )
}

/// Entries of the journal in `journal` (as `journalctl -o json`), optionally
/// only at `priority` or more urgent.
fn journal_entries(journal: &Path, priority: Option<&str>) -> Vec<serde_json::Value> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["-D", journal.join("journal").to_str().expect("utf-8")])
        .args(["--no-pager", "-o", "json", "-t", "sealpost"]);
    if let Some(p) = priority {
        cmd.args(["-p", p]);
    }
    let o = cmd.output().expect("journalctl (package systemd)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn logs_go_to_journald_with_priorities_and_to_json_on_request() {
    // Certificates expiring in 10 days (by the clock they are made with):
    // within the default 30-day warning window.
    let net = Net::expiring_in(time::Duration::days(10));
    // A delivery with a short deadline; after it passes, the next start's
    // sweep makes it dead, which is logged at error priority.
    let mut node = start_with(&net, &[("SEALPOST_OUTBOX__DEADLINE", "2s")]);
    drop_app(&net, "late", "深劳人仲案〔2026〕9400号");
    let id = accepted_id(&node, "late");
    let (_, shown, _) = ctl(&net, COMMITTEE, &["show", &id]);
    let deadline: sealpost::types::Timestamp =
        serde_json::from_value(json(shown.as_bytes())["deadline"].clone()).expect("deadline");
    node.child.stop();
    wait_until(Duration::from_secs(10), "the deadline to pass", || {
        sealpost::types::Timestamp::now() > deadline
    });

    let journal = net.out("journal");
    let mut daemon = under_journald(
        &net,
        &journal,
        &[("SEALPOST_SERVER__LISTEN", "127.0.0.1:0")],
    );
    daemon.wait_ready();
    let pid_file = journal.join("journald.pid");
    let dead_logged = || {
        journal_entries(&journal, Some("err")).iter().any(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("a delivery went dead"))
        })
    };
    wait_until(
        Duration::from_secs(20),
        "the dead delivery in the journal",
        dead_logged,
    );
    daemon.sigterm();
    let (status, stderr) = daemon.wait();
    assert!(status.success(), "{stderr}");
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    assert!(
        !stderr.contains("sealpost starting"),
        "under journald nothing goes to standard error: {stderr}"
    );
    let all = journal_entries(&journal, None);
    let find = |needle: &str| {
        all.iter()
            .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle)))
            .unwrap_or_else(|| panic!("{needle:?} not in the journal: {all:#?}"))
    };
    let start = find("sealpost starting");
    // tracing-journald: ERROR 3, WARN 4, INFO 5 (notice), DEBUG 6, TRACE 7.
    assert_eq!(start["PRIORITY"], "5");
    assert_eq!(start["VERSION"], env!("CARGO_PKG_VERSION"));
    assert!(start["MESSAGE"]
        .as_str()
        .expect("m")
        .contains("node sz-lac (committee)"));
    assert_eq!(
        find("a certificate expires soon: renew it")["PRIORITY"],
        "4"
    );
    let dead = find("a delivery went dead");
    assert_eq!(dead["PRIORITY"], "3");
    assert_eq!(dead["BUNDLE"], id.as_str());
    for e in &all {
        let m = e["MESSAGE"].as_str().unwrap_or("");
        assert!(!m.contains('\u{1b}'), "colour codes in the journal: {m:?}");
        assert!(
            !m.contains("PRIVATE KEY") && !m.contains("AGE-SECRET-KEY"),
            "{m}"
        );
    }
    // `journalctl -p warning` shows the warnings and errors, not the rest.
    let warnings = journal_entries(&journal, Some("warning"));
    assert!(warnings.iter().all(|e| e["PRIORITY"].as_str() <= Some("4")));
    assert!(warnings.len() >= 2 && warnings.len() < all.len());

    // JSON on request: one object per line on standard error.
    let mut node = start_with(&net, &[("SEALPOST_LOG__FORMAT", "json")]);
    node.child.wait_ready();
    node.child.stop();
    let text = node.child.stderr_text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("sealpost starting"))
        })
        .expect("start line");
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["fields"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(lines.iter().any(|l| l["level"] == "WARN"
        && l["fields"]["message"] == "a certificate expires soon: renew it"));
}

#[test]
fn the_alert_rules_in_the_operations_guide_pass_promtool() {
    let guide =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .expect("docs/operations.md");
    let rules = guide
        .split("```yaml\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("a yaml block of rules");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sealpost.rules.yml");
    fs::write(&file, rules).expect("write");
    let o = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Every metric a rule names is one the node exports.
    let exported = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops/metrics.rs");
    let source = fs::read_to_string(exported).expect("metrics.rs");
    for name in rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sealpost_"))
    {
        let base = name
            .trim_start_matches("sealpost_")
            .trim_end_matches("_total");
        assert!(
            source.contains(&format!("\"{base}\"")),
            "{name} is not registered in src/ops/metrics.rs"
        );
    }
}
