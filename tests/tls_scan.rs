//! The TLS scan (`scripts/tls-scan`, sslyze from PyPI): a running node, with
//! the test PKI (server certificate with a CRL distribution point, living
//! 366 days), has no finding; a deliberately weak server (TLS 1.2 only, a CBC
//! suite, no client certificate required) is failed with those findings —
//! so the scan can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Net, COMMITTEE, FUTIAN};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn scan(target: &str, cert: &Path, key: &Path) -> (Option<i32>, String) {
    common::require_tools(&["sslyze", "openssl", "python3"]);
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tls-scan");
    let o = Command::new(script)
        .arg(target)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .output()
        .expect("scripts/tls-scan");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn wait_for_port(port: u16) {
    common::wait_until(Duration::from_secs(20), "the port to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

#[test]
fn a_running_node_passes_the_tls_scan() {
    let net = Net::new();
    let port = free_port();
    let path = net.config_path(COMMITTEE);
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&format!("\n[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&path, text).expect("config");
    let mut node = common::spawn_run(&net, COMMITTEE, &[], Stdio::null());
    node.wait_ready();
    let court = &net.agency(FUTIAN).dir;
    let (code, out) = scan(
        &format!("127.0.0.1:{port}"),
        &court.join("tls.pem"),
        &court.join("tls.key"),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(", 0 finding(s)"), "{out}");
    node.stop();
}

#[test]
fn a_weak_server_is_failed_with_its_findings() {
    let net = Net::new();
    let port = free_port();
    let me = &net.agency(COMMITTEE).dir;
    let server = common::KillOnDrop(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(me.join("tls.pem"))
            .arg("-key")
            .arg(me.join("tls.key"))
            .args(["-no_tls1_3", "-cipher", "ECDHE-ECDSA-AES128-SHA"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_for_port(port);
    let court = &net.agency(FUTIAN).dir;
    let (code, out) = scan(
        &format!("127.0.0.1:{port}"),
        &court.join("tls.pem"),
        &court.join("tls.key"),
    );
    drop(server);
    assert_eq!(code, Some(1), "{out}");
    for want in [
        "client certificate: not required",
        "tls_1_3: not supported",
        "ECDHE_ECDSA_WITH_AES_128_CBC_SHA is not AEAD",
    ] {
        assert!(out.contains(want), "{want} in:\n{out}");
    }
}
