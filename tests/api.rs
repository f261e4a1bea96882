//! The mTLS API with the real daemon and stock `curl` as the court's client,
//! as `docs/court-integration.md` shows it.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{tiny_app, Net, COMMITTEE, FUTIAN, NANSHAN};

struct Node {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

fn start(net: &Net) -> Node {
    start_with(net, &[])
}

fn start_with(net: &Net, env: &[(&str, &str)]) -> Node {
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
    let mut child = common::spawn_run(net, COMMITTEE, &all, Stdio::piped());
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
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

fn wait_line(node: &Node, prefix: &str) -> String {
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
fn curl(net: &Net, node: &Node, court: &str, path: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    curl_at(
        net,
        node.addr.rsplit(':').next().expect("port"),
        court,
        path,
        extra,
    )
}

/// curl as agency `court` against the node listening on localhost:`port`.
fn curl_at(net: &Net, port: &str, court: &str, path: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let dir = &net.agency(court).dir;
    let out = net.out(&format!("curl-{}", common::random_u64()));
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

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

fn drop_app(net: &Net, name: &str, case: &str) {
    let staging = net.out(&format!("staging-{name}"));
    tiny_app(&staging, case, FUTIAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    let intake = net.agency(COMMITTEE).dir.join("data/clerk/intake");
    fs::rename(&staging, intake.join(name)).expect("drop");
}

#[test]
fn a_court_polls_downloads_and_signs_for_a_bundle_with_curl() {
    let net = Net::new();
    let mut node = start(&net);
    drop_app(&net, "first", "深劳人仲案〔2026〕5001号");
    let accepted = wait_line(&node, "ACCEPTED  first");
    let id = accepted.rsplit(' ').next().expect("id").to_owned();

    // List: the court sees its bundle; the other court sees nothing.
    let (status, body) = curl(&net, &node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listing = json(&body);
    assert_eq!(listing["bundles"][0]["id"], id.as_str());
    assert_eq!(listing["bundles"][0]["state"], "queued");
    let cursor = listing["next_cursor"].as_str().expect("cursor").to_owned();
    let (status, body) = curl(&net, &node, NANSHAN, "/v1/bundles", &[]);
    assert_eq!(status, 200);
    assert_eq!(json(&body)["bundles"], serde_json::json!([]));

    // Another court's bundle is a 404, like a bundle that does not exist.
    for path in [
        format!("/v1/bundles/{id}"),
        "/v1/bundles/aaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
    ] {
        let (status, body) = curl(&net, &node, NANSHAN, &path, &[]);
        assert_eq!(status, 404, "{path}");
        assert_eq!(json(&body)["code"], "not-found");
    }
    let (status, _) = curl(
        &net,
        &node,
        NANSHAN,
        &format!("/v1/bundles/{id}/receipt"),
        &["-X", "POST", "-d", "{}"],
    );
    assert_eq!(status, 404);

    // Download: a range, then the whole file; both match the outbox file.
    let stored = fs::read(
        net.agency(COMMITTEE)
            .dir
            .join(format!("data/outbox/bundles/{id}.sealpost")),
    )
    .expect("bundle");
    let (status, part) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/bundles/{id}"),
        &["-H", "Range: bytes=0-99"],
    );
    assert_eq!((status, part.as_slice()), (206, &stored[..100]));
    let (status, whole) = curl(&net, &node, FUTIAN, &format!("/v1/bundles/{id}"), &[]);
    assert_eq!(status, 200);
    assert_eq!(whole, stored);
    let (status, _) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/bundles/{id}"),
        &["-H", &format!("Range: bytes={}-", stored.len() + 5)],
    );
    assert_eq!(status, 416);
    let bundle = net.out("downloaded.sealpost");
    fs::write(&bundle, &whole).expect("write");

    // The court verifies and opens it, then signs a receipt with its own key.
    let court_cfg = net.config_path(FUTIAN);
    let o = Command::new(common::bin())
        .args([
            "-c",
            court_cfg.to_str().expect("utf-8"),
            "open",
            bundle.to_str().expect("utf-8"),
            "-o",
        ])
        .arg(net.out("inbox"))
        .output()
        .expect("open");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(common::bin())
        .args([
            "-c",
            court_cfg.to_str().expect("utf-8"),
            "receipt",
            "make",
            bundle.to_str().expect("utf-8"),
        ])
        .output()
        .expect("receipt make");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let receipt_path = net.out("receipt.json");
    fs::write(&receipt_path, &o.stdout).expect("write");
    let receipt = json(&o.stdout);

    // Refused receipts: a forged signature, and a correctly signed one for other digests.
    let post = |file: &Path| {
        curl(
            &net,
            &node,
            FUTIAN,
            &format!("/v1/bundles/{id}/receipt"),
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &format!("@{}", file.display()),
            ],
        )
    };
    let mut forged = receipt.clone();
    let sig = forged["signature"].as_str().expect("sig").to_owned();
    // Replace one base64 character by a different one (never a no-op).
    let swap = if &sig[10..11] == "A" { "B" } else { "A" };
    forged["signature"] = serde_json::Value::String(format!("{}{swap}{}", &sig[..10], &sig[11..]));
    let forged_path = net.out("forged.json");
    fs::write(&forged_path, serde_json::to_vec(&forged).expect("json")).expect("write");
    let (status, body) = post(&forged_path);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("receipt-signature-invalid"))
    );
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let inner: serde_json::Value = serde_json::from_slice(
            &b64.decode(receipt["receipt"].as_str().expect("r"))
                .expect("b64"),
        )
        .expect("json");
        let mut wrong: sealpost::transport::receipt::Receipt =
            serde_json::from_value(inner).expect("receipt");
        wrong.payload_sha256 = sealpost::types::Sha256([7; 32]);
        let signed = wrong.sign(&net.config(FUTIAN).keys.signing);
        let p = net.out("wrong-digest.json");
        fs::write(&p, serde_json::to_vec(&signed).expect("json")).expect("write");
        let (status, body) = post(&p);
        assert_eq!(
            (status, json(&body)["code"].as_str()),
            (422, Some("receipt-mismatch"))
        );
        // Signed by the other court's key: not the receiver.
        let mut theirs: sealpost::transport::receipt::Receipt = serde_json::from_slice(
            &b64.decode(receipt["receipt"].as_str().expect("r"))
                .expect("b64"),
        )
        .expect("json");
        theirs.receiver = NANSHAN.parse().expect("id");
        let signed = theirs.sign(&net.config(NANSHAN).keys.signing);
        fs::write(&p, serde_json::to_vec(&signed).expect("json")).expect("write");
        let (status, body) = post(&p);
        assert_eq!(
            (status, json(&body)["code"].as_str()),
            (422, Some("receipt-mismatch"))
        );
        // The right receipt, dated an hour ahead of the committee's clock.
        let mut future: sealpost::transport::receipt::Receipt = serde_json::from_slice(
            &b64.decode(receipt["receipt"].as_str().expect("r"))
                .expect("b64"),
        )
        .expect("json");
        future.received_at =
            sealpost::types::Timestamp::from_unix(sealpost::types::Timestamp::now().unix() + 3600)
                .expect("time");
        let signed = future.sign(&net.config(FUTIAN).keys.signing);
        fs::write(&p, serde_json::to_vec(&signed).expect("json")).expect("write");
        let (status, body) = post(&p);
        assert_eq!(
            (status, json(&body)["code"].as_str()),
            (422, Some("receipt-in-future"))
        );
    }

    // The valid receipt: delivered; a repeat returns the original, not an error.
    let (status, body) = post(&receipt_path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let accepted = json(&body);
    assert_eq!(accepted["state"], "delivered");
    assert_eq!(accepted["receipt"], receipt);
    let (status, body) = post(&receipt_path);
    assert_eq!(
        (status, json(&body)["receipt"].clone()),
        (200, receipt.clone())
    );
    a_receipt_posted_again_is_still_verified(&net, &post, &forged_path);
    let (_, body) = curl(&net, &node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(
        json(&body)["bundles"],
        serde_json::json!([]),
        "a delivered bundle is no longer listed"
    );

    // Long-poll: a bundle queued while the court waits arrives at once, not at the next poll.
    let port = node.addr.rsplit(':').next().expect("port").to_owned();
    let poll_path = format!("/v1/bundles?after={cursor}&wait=20");
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let (net, port, poll_path) = (&net, &port, &poll_path);
        scope.spawn(move || {
            let _ = tx.send(curl_at(net, port, FUTIAN, poll_path, &[]));
        });
        // Nothing new yet: the server must hold the request, not answer empty.
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_err(),
            "a long-poll with nothing new was answered at once"
        );
        let dropped = Instant::now();
        drop_app(net, "second", "深劳人仲案〔2026〕5002号");
        let second = wait_line(&node, "ACCEPTED  second");
        let (status, body) = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the long-poll answered");
        assert_eq!(status, 200);
        assert_eq!(
            json(&body)["bundles"][0]["id"],
            second.rsplit(' ').next().expect("id")
        );
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the long-poll answered {:?} after the drop",
            dropped.elapsed()
        );
    });

    // No client certificate: no answer at all.
    let port = node.addr.rsplit(':').next().expect("port");
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            net.path().join("ca.pem").to_str().expect("utf-8"),
        ])
        .arg(format!("https://localhost:{port}/v1/bundles"))
        .output()
        .expect("curl");
    assert!(
        !o.status.success(),
        "a client without a certificate got an answer"
    );

    common::sigterm(&node.child);
    let status = node.child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = node.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "did not stop cleanly: {status}: {err}");
    let o = Command::new(common::bin())
        .args([
            "-c",
            net.config_path(COMMITTEE).to_str().expect("utf-8"),
            "outbox",
            "show",
            &id,
        ])
        .output()
        .expect("outbox show");
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"state\": \"delivered\""));
    let stored_receipt = net
        .agency(COMMITTEE)
        .dir
        .join(format!("data/outbox/receipts/{id}.json"));
    let o = Command::new(common::bin())
        .args([
            "-c",
            net.config_path(NANSHAN).to_str().expect("utf-8"),
            "receipt",
            "verify",
        ])
        .arg(&stored_receipt)
        .output()
        .expect("receipt verify");
    assert!(
        o.status.success(),
        "the stored receipt does not verify offline: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Gives the committee an (empty) CRL file in its config; returns its path.
/// On a delivered bundle, a receipt POST is still verified
/// (`docs/receipt-format.md` §7): only a valid receipt for the delivery gets
/// the stored original (checked by the caller); garbage or a forged signature
/// is refused as on the first POST.
fn a_receipt_posted_again_is_still_verified(
    net: &Net,
    post: &impl Fn(&Path) -> (u16, Vec<u8>),
    forged: &Path,
) {
    let garbage = net.out("garbage.json");
    fs::write(&garbage, b"not a receipt at all").expect("write");
    let (status, body) = post(&garbage);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("receipt-malformed"))
    );
    let (status, body) = post(forged);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("receipt-signature-invalid"))
    );
}

fn with_empty_crl(net: &Net) -> std::path::PathBuf {
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

fn set_committee_endpoint(net: &Net, addr: &str) {
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
fn wait_none_listed(net: &Net, node: &Node, what: &str) {
    common::wait_until(Duration::from_secs(20), what, || {
        listed_for(net, node, FUTIAN)
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
}

fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

fn listed_for(net: &Net, node: &Node, court: &str) -> serde_json::Value {
    let (status, body) = curl(net, node, court, "/v1/bundles", &[]);
    assert_eq!(status, 200);
    json(&body)["bundles"].clone()
}

#[test]
fn two_nodes_committee_to_court_inbox_and_receipt_back() {
    let net = Net::new();
    let mut committee = start(&net);
    set_committee_endpoint(&net, &committee.addr);
    let court_inbox = net.agency(FUTIAN).dir.join("data/inbox");

    // 1. A bundle already in the court's inbox (.done written) whose receipt
    //    never arrived: simulated by placing it there by hand before the court
    //    node starts. The court must only re-post the receipt.
    drop_app(&net, "lost-receipt", "深劳人仲案〔2026〕6000号");
    let first = wait_line(&committee, "ACCEPTED  lost-receipt")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let (_, bytes) = curl(
        &net,
        &committee,
        FUTIAN,
        &format!("/v1/bundles/{first}"),
        &[],
    );
    let file = net.out("lost.sealpost");
    fs::write(&file, bytes).expect("write");
    let pre = court_inbox.join("深劳人仲案〔2026〕6000号").join(&first);
    fs::create_dir_all(pre.parent().expect("parent")).expect("mkdir");
    let o = Command::new(common::bin())
        .args([
            "-c",
            net.config_path(FUTIAN).to_str().expect("utf-8"),
            "open",
            file.to_str().expect("utf-8"),
            "-o",
            pre.to_str().expect("utf-8"),
        ])
        .output()
        .expect("open");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // `.done` holds the receipt time: now, not a date literal (the test PKI's
    // certificates are valid from a day ago only, and the receipt made from it
    // must be signed within their validity whatever day the test runs).
    fs::write(
        pre.join(".done"),
        sealpost::types::Timestamp::now().to_rfc3339(),
    )
    .expect("done");
    let before = mtime(&pre.join("documents/财产保全申请书.pdf"));

    // 2. The court node starts polling; a new application follows.
    let mut court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__WAIT", "20s")],
        Stdio::null(),
    );
    wait_none_listed(&net, &committee, "the lost receipt to be re-posted");
    let after = mtime(&pre.join("documents/财产保全申请书.pdf"));
    assert_eq!(
        before, after,
        "the bundle was written into the inbox a second time"
    );
    assert_eq!(
        common::listing(&court_inbox.join("深劳人仲案〔2026〕6000号")),
        vec![first.clone()]
    );

    let dropped = Instant::now();
    drop_app(&net, "live", "深劳人仲案〔2026〕6001号");
    let id = wait_line(&committee, "ACCEPTED  live")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let done = court_inbox
        .join("深劳人仲案〔2026〕6001号")
        .join(&id)
        .join(".done");
    common::wait_until(
        Duration::from_secs(20),
        "the bundle in the court's inbox",
        || done.exists(),
    );
    let latency = dropped.elapsed();
    let inbox = done.parent().expect("dir");
    for f in [
        "documents/财产保全申请书.pdf",
        "documents/仲裁申请书.pdf",
        "documents/受理通知书.pdf",
        "transfer-letter.txt",
        "manifest.json",
        "envelope.json",
    ] {
        assert!(inbox.join(f).is_file(), "{f} missing from the court inbox");
    }
    wait_none_listed(&net, &committee, "the receipt to deliver it");
    eprintln!("drop → court inbox (.done): {latency:?}");
    assert!(
        latency < Duration::from_secs(5),
        "drop to court inbox took {latency:?}"
    );

    common::sigterm(&court);
    assert!(court.wait().expect("wait").success());
    common::sigterm(&committee.child);
    assert!(committee.child.wait().expect("wait").success());
    for bundle in [&first, &id] {
        let o = Command::new(common::bin())
            .args([
                "-c",
                net.config_path(COMMITTEE).to_str().expect("utf-8"),
                "outbox",
                "show",
                bundle,
            ])
            .output()
            .expect("show");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("\"state\": \"delivered\""),
            "{bundle} not delivered"
        );
    }
}

#[test]
fn the_api_refuses_what_it_must() {
    let net = Net::new();
    // Start with an empty CRL; revoke the court's TLS certificate later.
    let crl = with_empty_crl(&net);
    let mut node = start_with(&net, &[("SEALPOST_SERVER__HEADER_TIMEOUT", "1s")]);
    drop_app(&net, "x", "深劳人仲案〔2026〕7001号");
    let id = wait_line(&node, "ACCEPTED  x")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    assert_eq!(curl(&net, &node, FUTIAN, "/v1/bundles", &[]).0, 200);

    // Oversized headers: 431 (or the connection is closed), never served.
    let big = format!("X-Padding: {}", "a".repeat(40 * 1024));
    let (status, _) = curl(&net, &node, FUTIAN, "/v1/bundles", &["-H", &big]);
    assert!(
        status == 431 || status == 0,
        "oversized headers got {status}"
    );
    // Oversized body: 413 with a problem document.
    let body = net.out("big-body.json");
    fs::write(&body, vec![b' '; 100 * 1024]).expect("write");
    let (status, resp) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/bundles/{id}/receipt"),
        &[
            "-X",
            "POST",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", body.display()),
        ],
    );
    // The server answers before reading the whole upload and closes; curl may
    // then lose the problem body, but never gets anything but 413.
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&resp));
    if !resp.is_empty() {
        assert_eq!(json(&resp)["code"], "body-too-large");
    }
    // Garbage JSON: 422, and the bundle is untouched.
    let (status, resp) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/bundles/{id}/receipt"),
        &["-X", "POST", "--data-binary", "not json"],
    );
    assert_eq!(
        (status, json(&resp)["code"].as_str()),
        (422, Some("receipt-malformed"))
    );
    // Unknown endpoint and wrong method: problem documents.
    assert_eq!(curl(&net, &node, FUTIAN, "/v2/everything", &[]).0, 404);
    assert_eq!(
        curl(&net, &node, FUTIAN, "/v1/bundles", &["-X", "DELETE"]).0,
        405
    );
    assert_eq!(curl(&net, &node, FUTIAN, "/v1/bundles?limit=0", &[]).0, 400);

    // Slow-loris: headers that never finish are cut off after the header
    // timeout. `openssl s_client` sends half a request and keeps its stdin
    // open; it exits when the server hangs up.
    let port: u16 = node
        .addr
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port");
    let dir = net.agency(FUTIAN).dir.clone();
    let mut slow = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-cert",
            dir.join("tls.pem").to_str().expect("utf-8"),
            "-key",
            dir.join("tls.key").to_str().expect("utf-8"),
        ])
        .args([
            "-CAfile",
            net.path().join("ca.pem").to_str().expect("utf-8"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = slow.stdin.take().expect("stdin");
    std::io::Write::write_all(
        &mut stdin,
        b"GET /v1/bundles HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    )
    .expect("write");
    std::io::Write::flush(&mut stdin).expect("flush");
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(8);
    while slow.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if slow.try_wait().ok().flatten().is_none() {
        let _ = node.child.kill();
        let mut err = String::new();
        if let Some(mut e) = node.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("the slow client was not cut off; daemon log:\n{err}");
    }
    let cut_after = started.elapsed();
    drop(stdin);
    let out = slow.wait_with_output().expect("s_client");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("200 OK"),
        "a half-sent request was served"
    );
    assert!(
        cut_after < Duration::from_secs(4),
        "cut off only after {cut_after:?}"
    );

    // TLS 1.1 is refused by the server (the client is allowed to try).
    let o = Command::new("openssl")
        .args([
            "s_client",
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-cert",
            dir.join("tls.pem").to_str().expect("utf-8"),
            "-key",
            dir.join("tls.key").to_str().expect("utf-8"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "TLS 1.1 handshake succeeded:\n{out}");
    // openssl prints the protocol it tried; what matters is that no cipher
    // was ever negotiated: the server answered with an alert.
    assert!(out.contains("Cipher is (NONE)"), "{out}");

    // Revocation: a new CRL and SIGHUP; the court is refused from then on,
    // the other court is not.
    fs::write(&crl, net.ca.crl(&[common::serial_of(&dir.join("tls.pem"))])).expect("crl");
    let ok = Command::new("kill")
        .args(["-HUP", &node.child.id().to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok);
    common::wait_until(
        Duration::from_secs(10),
        "the revocation to take effect",
        || curl(&net, &node, FUTIAN, "/v1/bundles", &[]).0 == 0,
    );
    assert_eq!(
        curl(&net, &node, NANSHAN, "/v1/bundles", &[]).0,
        200,
        "an unrevoked peer was refused"
    );

    common::sigterm(&node.child);
    assert!(node.child.wait().expect("wait").success());
}

#[test]
fn push_delivers_into_the_courts_inbox_and_repeats_return_the_same_receipt() {
    let net = Net::new();
    // The court runs a server and takes pushes.
    let court_cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&court_cfg).expect("config");
    fs::write(
        &court_cfg,
        format!("{text}\n[server]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write");
    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::piped());
    let out = court.stdout.take().expect("stdout");
    let first = BufReader::new(out)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let court_addr = first
        .strip_prefix("LISTENING ")
        .expect("LISTENING")
        .to_owned();
    let port = court_addr.rsplit(':').next().expect("port");
    let peers = net.path().join("peers.toml");
    let marker = "signing_cert = \"sz-futian-court/sign.pem\"";
    let text = fs::read_to_string(&peers).expect("peers");
    fs::write(
        &peers,
        text.replace(
            marker,
            &format!("{marker}\nendpoint = \"https://localhost:{port}\"\ndelivery = \"push\""),
        ),
    )
    .expect("write");

    let mut committee = start(&net);
    drop_app(&net, "pushed", "深劳人仲案〔2026〕6100号");
    let id = wait_line(&committee, "ACCEPTED  pushed")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    let inbox = net
        .agency(FUTIAN)
        .dir
        .join("data/inbox/深劳人仲案〔2026〕6100号")
        .join(&id);
    common::wait_until(
        Duration::from_secs(20),
        "the pushed bundle in the court's inbox",
        || inbox.join(".done").exists(),
    );
    wait_none_listed(&net, &committee, "the committee to record delivery");

    // The same bundle pushed again (as a committee whose answer got lost would):
    // the same receipt, nothing written twice.
    let before = mtime(&inbox.join("manifest.json"));
    let bundle = net
        .agency(COMMITTEE)
        .dir
        .join(format!("data/outbox/bundles/{id}.sealpost"));
    let push_as = |who: &str| {
        curl_at(
            &net,
            port,
            who,
            "/v1/bundles",
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/vnd.sealpost.bundle+zip",
                "--data-binary",
                &format!("@{}", bundle.display()),
            ],
        )
    };
    let again = |_: u8| {
        let (status, body) = push_as(COMMITTEE);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        json(&body)
    };
    let r1 = again(1);
    let r2 = again(2);
    assert_eq!(r1, r2, "a repeated push got a different receipt");
    assert!(r1["signature"].is_string(), "{r1}");
    let stored: serde_json::Value = serde_json::from_slice(
        &fs::read(
            net.agency(COMMITTEE)
                .dir
                .join(format!("data/outbox/receipts/{id}.json")),
        )
        .expect("receipt"),
    )
    .expect("json");
    assert_eq!(stored, r1, "the committee stored a different receipt");
    assert_eq!(mtime(&inbox.join("manifest.json")), before);

    // A bundle pushed by a peer that is not its sender is refused.
    let (status, body) = push_as(NANSHAN);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("signer-identity-mismatch"))
    );

    common::sigterm(&committee.child);
    assert!(committee.child.wait().expect("wait").success());
    common::sigterm(&court);
    assert!(court.wait().expect("wait").success());
}

fn zip_dir(dir: &Path) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            z.start_file(
                n.to_string_lossy().as_ref(),
                zip::write::SimpleFileOptions::default(),
            )
            .expect("entry");
            z.write_all(&fs::read(dir.join(&n)).expect("read"))
                .expect("write");
        }
        z.finish().expect("finish");
    }
    out.into_inner()
}

#[test]
fn the_online_platform_submits_applications_and_gets_the_clerks_reasons() {
    const PORTAL: &str = "sz-lac-portal";
    let net = Net::with(&[
        (COMMITTEE, "committee"),
        (FUTIAN, "court"),
        (NANSHAN, "court"),
        (PORTAL, "platform"),
    ]);
    let mut node = start(&net);
    let post = |who: &str, zip: &Path| {
        curl(
            &net,
            &node,
            who,
            "/v1/applications",
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/zip",
                "--data-binary",
                &format!("@{}", zip.display()),
            ],
        )
    };
    let good = net.out("good");
    tiny_app(&good, "深劳人仲案〔2026〕7101号", FUTIAN);
    let good_zip = net.out("good.zip");
    fs::write(&good_zip, zip_dir(&good)).expect("zip");
    let (status, body) = post(PORTAL, &good_zip);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let id = json(&body)["id"].as_str().expect("id").to_owned();
    // It is queued like a dropped folder: the court sees it.
    assert_eq!(listed_for(&net, &node, FUTIAN)[0]["id"], id.as_str());

    let bad = net.out("bad");
    tiny_app(&bad, "深劳人仲案〔2026〕7102号", FUTIAN);
    fs::remove_file(bad.join("受理通知书.pdf")).expect("rm");
    let bad_zip = net.out("bad.zip");
    fs::write(&bad_zip, zip_dir(&bad)).expect("zip");
    let (status, body) = post(PORTAL, &bad_zip);
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let problem = json(&body);
    assert_eq!(problem["code"], "application-rejected");
    let reasons = problem["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|r| r["code"] == "document-missing" && r["file"] == "受理通知书.pdf"),
        "{problem}"
    );
    assert!(
        reasons
            .iter()
            .all(|r| r["zh"].is_string() && r["en"].is_string()),
        "{problem}"
    );
    // The same case again, not marked as a resubmission: the clerk's code.
    let (status, body) = post(PORTAL, &good_zip);
    assert_eq!(status, 422);
    assert_eq!(json(&body)["reasons"][0]["code"], "case-already-queued");

    // Only the platform may submit.
    let (status, body) = post(FUTIAN, &good_zip);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (403, Some("not-a-submitter"))
    );

    common::sigterm(&node.child);
    assert!(node.child.wait().expect("wait").success());
}

#[test]
fn a_new_crl_file_takes_effect_without_a_signal() {
    let net = Net::new();
    let crl = with_empty_crl(&net);
    let mut node = start(&net);
    assert_eq!(curl(&net, &node, FUTIAN, "/v1/bundles", &[]).0, 200);
    // The CA publishes a new CRL: written to a temporary name, renamed into place.
    let serial = common::serial_of(&net.agency(FUTIAN).dir.join("tls.pem"));
    let tmp = net.path().join(".crl.pem.new");
    fs::write(&tmp, net.ca.crl(&[serial])).expect("write");
    fs::rename(&tmp, &crl).expect("rename");
    common::wait_until(
        Duration::from_secs(10),
        "the new CRL to take effect",
        || curl(&net, &node, FUTIAN, "/v1/bundles", &[]).0 == 0,
    );
    assert_eq!(curl(&net, &node, NANSHAN, "/v1/bundles", &[]).0, 200);
    common::sigterm(&node.child);
    assert!(node.child.wait().expect("wait").success());
}

#[test]
fn an_interrupted_download_is_resumed_and_a_bad_partial_is_recovered_from() {
    let net = Net::new();
    let mut committee = start(&net);
    set_committee_endpoint(&net, &committee.addr);
    let downloads = net.agency(FUTIAN).dir.join("data/downloads");
    fs::create_dir_all(&downloads).expect("mkdir");
    // Two bundles; the court "was interrupted" while downloading them.
    drop_app(&net, "good-partial", "深劳人仲案〔2026〕6201号");
    let good = wait_line(&committee, "ACCEPTED  good-partial")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    drop_app(&net, "bad-partial", "深劳人仲案〔2026〕6202号");
    let bad = wait_line(&committee, "ACCEPTED  bad-partial")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();
    // A correct first half for one (resumed with Range), garbage for the other.
    let (status, half) = curl(
        &net,
        &committee,
        FUTIAN,
        &format!("/v1/bundles/{good}"),
        &["-H", "Range: bytes=0-999"],
    );
    assert_eq!(status, 206);
    fs::write(downloads.join(format!("{good}.sealpost")), &half).expect("write");
    fs::write(downloads.join(format!("{bad}.sealpost")), vec![b'X'; 1000]).expect("write");

    let mut court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__WAIT", "20s")],
        Stdio::null(),
    );
    for (id, case) in [
        (&good, "深劳人仲案〔2026〕6201号"),
        (&bad, "深劳人仲案〔2026〕6202号"),
    ] {
        let done = net
            .agency(FUTIAN)
            .dir
            .join("data/inbox")
            .join(case)
            .join(id)
            .join(".done");
        common::wait_until(Duration::from_secs(20), "the bundle in the inbox", || {
            done.exists()
        });
    }
    wait_none_listed(&net, &committee, "both receipts");
    assert!(
        common::listing(&downloads).is_empty(),
        "partial downloads left behind"
    );
    common::sigterm(&court);
    assert!(court.wait().expect("wait").success());
    common::sigterm(&committee.child);
    assert!(committee.child.wait().expect("wait").success());
}
