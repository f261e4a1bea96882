//! A committee node under test, and a court speaking to it with stock `curl`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{random_u64, tiny_app, wait_until, Daemon, Net, COMMITTEE, FUTIAN};

/// A committee daemon serving the API on a free port, with its stdout lines.
pub struct Node {
    pub child: Daemon,
    pub lines: mpsc::Receiver<String>,
    pub addr: String,
}

pub fn start(net: &Net) -> Node {
    start_with(net, &[])
}

pub fn start_with(net: &Net, env: &[(&str, &str)]) -> Node {
    start_via(net, &[], env)
}

/// [`start_with`], the daemon started through `prefix` (see
/// [`super::spawn_daemon_via`]).
pub fn start_via(net: &Net, prefix: &[&str], env: &[(&str, &str)]) -> Node {
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    if !text.contains("[server]") {
        fs::write(
            &cfg,
            format!("{text}\n[server]\nlisten = \"127.0.0.1:0\"\n"),
        )
        .expect("write");
    }
    let mut all = vec![
        ("SEALPOST_INTAKE__SETTLE", "200ms"),
        ("SEALPOST_INTAKE__SCAN_INTERVAL", "50ms"),
    ];
    all.extend_from_slice(env);
    let mut child = super::spawn_daemon_via(
        prefix,
        &net.config_path(COMMITTEE),
        COMMITTEE,
        &all,
        Stdio::piped(),
    );
    let (tx, lines) = mpsc::channel();
    let out = child.take_stdout();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the daemon says where it listens");
    let addr = first
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    Node { child, lines, addr }
}

pub fn wait_line(node: &Node, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let l = node
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line starting {prefix:?}"));
        if l.starts_with(prefix) {
            return l;
        }
    }
}

/// curl as a court: returns (HTTP status, body). `extra` are more curl arguments.
pub fn curl(net: &Net, node: &Node, court: &str, path: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    curl_at(
        net,
        node.addr.rsplit(':').next().expect("port"),
        court,
        path,
        extra,
    )
}

/// curl as agency `court` against the node listening on localhost:`port`.
pub fn curl_at(net: &Net, port: &str, court: &str, path: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let dir = &net.agency(court).dir;
    let out = net.out(&format!("curl-{}", random_u64()));
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            out.to_str().expect("utf-8"),
            "-w",
            "%{http_code}",
        ])
        .args(["--cert", dir.join("tls.pem").to_str().expect("utf-8")])
        .args(["--key", dir.join("tls.key").to_str().expect("utf-8")])
        .args([
            "--cacert",
            net.path().join("ca.pem").to_str().expect("utf-8"),
        ])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl is installed (scripts/test installs it)");
    let status = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, fs::read(&out).unwrap_or_default())
}

pub fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

pub fn drop_app(net: &Net, name: &str, case: &str) {
    let staging = net.out(&format!("staging-{name}"));
    tiny_app(&staging, case, FUTIAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    let intake = net.agency(COMMITTEE).dir.join("data/clerk/intake");
    fs::rename(&staging, intake.join(name)).expect("drop");
}

pub fn with_empty_crl(net: &Net) -> std::path::PathBuf {
    let crl = net.path().join("crl.pem");
    fs::write(&crl, net.ca.crl(&[])).expect("crl");
    let cfg = net.config_path(COMMITTEE);
    let text = fs::read_to_string(&cfg).expect("config");
    let with = text.replace(
        "encryption_identity = \"age.key\"",
        "encryption_identity = \"age.key\"\ncrls = [\"../crl.pem\"]",
    );
    fs::write(&cfg, with).expect("write");
    crl
}

pub fn set_committee_endpoint(net: &Net, addr: &str) {
    let port = addr.rsplit(':').next().expect("port");
    let peers = net.path().join("peers.toml");
    let text = fs::read_to_string(&peers).expect("peers");
    let marker = "signing_cert = \"sz-lac/sign.pem\"";
    assert!(text.contains(marker));
    fs::write(
        &peers,
        text.replace(
            marker,
            &format!("{marker}\nendpoint = \"https://localhost:{port}\""),
        ),
    )
    .expect("write");
}

/// Waits until the committee lists nothing waiting for FUTIAN (all delivered).
pub fn wait_none_listed(net: &Net, node: &Node, what: &str) {
    wait_until(Duration::from_secs(20), what, || {
        listed_for(net, node, FUTIAN)
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
}

pub fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

pub fn listed_for(net: &Net, node: &Node, court: &str) -> serde_json::Value {
    let (status, body) = curl(net, node, court, "/v1/bundles", &[]);
    assert_eq!(status, 200);
    json(&body)["bundles"].clone()
}
