//! The mTLS API with the real daemon and stock `curl` as the court's client,
//! as `docs/court-integration.md` shows it.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::node::*;
use common::{tiny_app, Net, COMMITTEE, FUTIAN, NANSHAN};

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

    // HEAD, answered from the outbox record, gives the headers a GET gives
    // (whole and a range) and, unlike a GET, does not mark the bundle fetched.
    let headers = |extra: &[&str]| -> Vec<String> {
        let file = net.out(&format!("headers-{}", extra.len()));
        let mut args = vec!["-D", file.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        let (status, _) = curl(&net, &node, FUTIAN, &format!("/v1/bundles/{id}"), &args);
        let mut lines: Vec<String> = fs::read_to_string(&file)
            .expect("headers")
            .lines()
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty() && !l.starts_with("date:"))
            .collect();
        lines.sort();
        assert!(matches!(status, 200 | 206), "{status}: {lines:?}");
        lines
    };
    let head = headers(&["-I"]);
    let head_part = headers(&["-I", "-H", "Range: bytes=0-99"]);
    let (_, body) = curl(&net, &node, FUTIAN, "/v1/bundles", &[]);
    assert_eq!(json(&body)["bundles"][0]["state"], "queued");
    for h in [
        "content-length:",
        "etag:",
        "accept-ranges: bytes",
        "content-type:",
    ] {
        assert!(head.iter().any(|l| l.starts_with(h)), "{h} in {head:?}");
    }
    assert!(head_part
        .iter()
        .any(|l| l.starts_with("content-range: bytes 0-99/")));

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
    assert_eq!(headers(&[]), head);
    assert_eq!(headers(&["-H", "Range: bytes=0-99"]), head_part);
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
        let mut wrong: sealpost::receipt::Receipt = serde_json::from_value(inner).expect("receipt");
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
        let mut theirs: sealpost::receipt::Receipt = serde_json::from_slice(
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
        let mut future: sealpost::receipt::Receipt = serde_json::from_slice(
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

    let (code, out, err) = common::ctl(&net, COMMITTEE, &["show", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"state\": \"delivered\""), "{out}");
    node.child.stop();
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
    // What the court stored with it: its receipt, signed once (by `receipt
    // make`, at the time the certificates were made for), and `.done` last.
    let o = Command::new(common::bin())
        .args([
            "-c",
            net.config_path(FUTIAN).to_str().expect("utf-8"),
            "receipt",
            "make",
            file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("receipt make");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::write(pre.join("receipt.json"), &o.stdout).expect("receipt");
    let signed: sealpost::receipt::SignedReceipt =
        serde_json::from_slice(&o.stdout).expect("signed receipt");
    let received_at = signed.unverified_received_at().expect("received_at");
    fs::write(pre.join(".done"), received_at.to_string()).expect("done");
    let before = mtime(&pre.join("documents/财产保全申请书.pdf"));

    // 2. The court node starts polling; a new application follows.
    let mut court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__WAIT", "20s")],
        Stdio::null(),
    );
    wait_none_listed(&net, &committee, "the lost receipt to be re-posted");
    assert_eq!(
        json(
            &fs::read(
                net.agency(COMMITTEE)
                    .dir
                    .join(format!("data/outbox/receipts/{first}.json"))
            )
            .expect("stored receipt")
        ),
        json(&o.stdout),
        "the committee got another receipt than the one the court stored"
    );
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

    court.stop();
    for bundle in [&first, &id] {
        let (code, out, err) = common::ctl(&net, COMMITTEE, &["show", bundle]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("\"state\": \"delivered\""),
            "{bundle} not delivered: {out}"
        );
    }
    committee.child.stop();
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
    // 405 names what is allowed.
    let headers = net.out("405-headers");
    let (status, _) = curl(
        &net,
        &node,
        FUTIAN,
        &format!("/v1/bundles/{id}"),
        &["-X", "DELETE", "-D", headers.to_str().expect("utf-8")],
    );
    assert_eq!(status, 405);
    let head = fs::read_to_string(&headers)
        .expect("headers")
        .to_ascii_lowercase();
    assert!(head.contains("\nallow: get, head"), "{head}");
    // Query values are percent-decoded (`%31` is `1`), `after` longer than its
    // documented 20 digits is refused, and a `wait` beyond any number is
    // clamped, not refused (a bundle is waiting, so it answers at once).
    let (status, body) = curl(&net, &node, FUTIAN, "/v1/bundles?after=%31", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["bundles"], serde_json::json!([]));
    assert_eq!(json(&body)["next_cursor"], "1");
    let long = format!("/v1/bundles?after={}", "1".repeat(21));
    assert_eq!(curl(&net, &node, FUTIAN, &long, &[]).0, 400);
    let (status, body) = curl(
        &net,
        &node,
        FUTIAN,
        "/v1/bundles?wait=99999999999999999999999",
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["bundles"][0]["id"], id.as_str());
    // Nobody pushes to a node whose entry says `pull`.
    let (status, body) = curl(
        &net,
        &node,
        FUTIAN,
        "/v1/bundles",
        &["-X", "POST", "--data-binary", "x"],
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (403, Some("push-not-allowed"))
    );

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
        let _ = slow.kill();
        panic!("the slow client was not cut off");
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
    node.child.signal("HUP");
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

    node.child.stop();
}

/// The court's `[server]` on a free port; starts it and returns (daemon, port).
fn start_court_server(net: &Net, env: &[(&str, &str)]) -> (common::Daemon, String) {
    let court_cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&court_cfg).expect("config");
    if !text.contains("[server]") {
        fs::write(
            &court_cfg,
            format!("{text}\n[server]\nlisten = \"127.0.0.1:0\"\n"),
        )
        .expect("write");
    }
    let mut court = common::spawn_run(net, FUTIAN, env, Stdio::piped());
    let out = court.take_stdout();
    let first = BufReader::new(out)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let port = first
        .strip_prefix("LISTENING ")
        .expect("LISTENING")
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    (court, port)
}

const OTHER_COMMITTEE: &str = "sz-lac-b";

#[test]
fn push_delivers_into_the_courts_inbox_and_repeats_return_the_same_receipt() {
    let net = Net::with(&[
        (COMMITTEE, "committee"),
        (FUTIAN, "court"),
        (NANSHAN, "court"),
        (OTHER_COMMITTEE, "committee"),
    ]);
    // The court runs a server and takes pushes: its directory entry says so
    // (picked up by a reload once the port is known).
    let (mut court, port) = start_court_server(&net, &[]);
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
    court.signal("HUP");
    common::wait_until(Duration::from_secs(10), "the court to reload", || {
        court.stderr_text().contains("reloaded")
    });

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
    let push_file = |who: &str, port: &str, file: &Path, extra: &[&str]| {
        let mut args = vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/vnd.sealpost.bundle+zip",
        ];
        args.extend_from_slice(extra);
        let data = format!("@{}", file.display());
        args.extend_from_slice(&["--data-binary", &data]);
        curl_at(&net, port, who, "/v1/bundles", &args)
    };
    let again = |_: u8| {
        let (status, body) = push_file(COMMITTEE, &port, &bundle, &[]);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        body
    };
    let r1 = again(1);
    let r2 = again(2);
    assert_eq!(r1, r2, "a repeated push got a different receipt");
    assert!(json(&r1)["signature"].is_string());
    assert_eq!(
        fs::read(inbox.join("receipt.json")).expect("stored receipt"),
        r1,
        "the answer is not the receipt the court stored"
    );
    let stored = json(
        &fs::read(
            net.agency(COMMITTEE)
                .dir
                .join(format!("data/outbox/receipts/{id}.json")),
        )
        .expect("receipt"),
    );
    assert_eq!(
        stored,
        json(&r1),
        "the committee stored a different receipt"
    );
    assert_eq!(mtime(&inbox.join("manifest.json")), before);

    // Only peers allowed to push may: not a court.
    let (status, body) = push_file(NANSHAN, &port, &bundle, &[]);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (403, Some("push-not-allowed"))
    );
    // A committee that may push, but pushes a bundle it did not send.
    let (status, body) = push_file(OTHER_COMMITTEE, &port, &bundle, &[]);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("signer-identity-mismatch"))
    );
    // Its own bundle, but with the id of the first committee's: a clash, 409,
    // and nothing about the first bundle (no receipt, no digests) comes back.
    let other = net.config(OTHER_COMMITTEE);
    let app_dir = net.out("clash-app");
    tiny_app(&app_dir, "深劳人仲案〔2026〕6100号", FUTIAN);
    let app = sealpost::application::Application::load(&app_dir, &other.limits, &other.directory)
        .expect("valid application");
    let clash = net.out("clash.sealpost");
    sealpost::intake::seal_application_as(
        &other,
        &app,
        other
            .directory
            .get(&FUTIAN.parse().expect("id"))
            .expect("court"),
        &clash,
        id.parse().expect("bundle id"),
        sealpost::types::Timestamp::now(),
    )
    .expect("seal");
    let (status, body) = push_file(OTHER_COMMITTEE, &port, &clash, &[]);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (409, Some("bundle-id-conflict")),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let text = String::from_utf8_lossy(&body);
    let first = json(&r1);
    for secret in [
        first["receipt"].as_str().expect("receipt"),
        first["signature"].as_str().expect("signature"),
    ] {
        assert!(
            !text.contains(secret),
            "the clash revealed the first bundle's receipt"
        );
    }
    assert_eq!(
        common::listing(inbox.parent().expect("case")),
        vec![id.clone()],
        "the clashing bundle was stored"
    );
    // Without a declared length: 411 before a byte is stored.
    let (status, body) = push_file(
        COMMITTEE,
        &port,
        &bundle,
        &["-H", "Transfer-Encoding: chunked"],
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (411, Some("length-required"))
    );
    committee.child.stop();
    court.stop();

    // A court short of disk space refuses by the declared size, before a byte
    // is written.
    let (mut court, port) =
        start_court_server(&net, &[("SEALPOST_SERVER__MIN_FREE_SPACE", "1000000 GiB")]);
    let (status, body) = push_file(COMMITTEE, &port, &bundle, &[]);
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (507, Some("insufficient-storage"))
    );
    assert!(
        common::listing(&net.agency(FUTIAN).dir.join("data/downloads/push")).is_empty(),
        "something was written"
    );
    court.stop();
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
    // The platform that submitted it, and its court, may follow the case;
    // another court may not (the same 404 as no case at all).
    let case_path = format!(
        "/v1/cases/{}",
        percent_encoding::utf8_percent_encode(
            "深劳人仲案〔2026〕7101号",
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    for (who, want) in [(PORTAL, 200), (FUTIAN, 200), (NANSHAN, 404)] {
        let (status, body) = curl(&net, &node, who, &case_path, &[]);
        assert_eq!(status, want, "{who}: {}", String::from_utf8_lossy(&body));
        if want == 200 {
            assert_eq!(json(&body)["bundles"][0]["id"], id.as_str());
        }
    }

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

    node.child.stop();
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
    node.child.stop();
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
    let downloads = downloads.join(COMMITTEE);
    fs::create_dir_all(&downloads).expect("mkdir");
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
    // The court removes a download once its receipt is accepted, just after
    // the committee records the delivery.
    common::wait_until(
        Duration::from_secs(10),
        "no partial download left behind",
        || common::listing(&downloads).is_empty(),
    );
    court.stop();
    committee.child.stop();
}
