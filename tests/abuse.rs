//! The mTLS API under abuse, with the real daemon: a peer holding slow uploads
//! and a flood of idle TCP connections do not keep a valid court out, and a
//! revoked (or removed) court loses the connections it already has.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::node::*;
use common::{Net, FUTIAN, NANSHAN};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;

fn port_of(node: &Node) -> u16 {
    node.addr
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port")
}

fn client_config(net: &Net, agency: &str) -> Arc<rustls::ClientConfig> {
    let dir = &net.agency(agency).dir;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(net.path().join("ca.pem")).expect("ca"))
        .expect("root");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("tls.pem"))
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).expect("key");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client cert"),
    )
}

async fn tls(
    net: &Net,
    agency: &str,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tokio_rustls::TlsConnector::from(client_config(net, agency))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A kept-alive HTTP/1.1 connection as `agency`; the task driving it ends when
/// the server closes it.
async fn connection(net: &Net, agency: &str, port: u16) -> (Sender, tokio::task::JoinHandle<()>) {
    let stream = tls(net, agency, port).await;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("http handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

async fn get(sender: &mut Sender, path: &str) -> Result<(u16, Bytes), hyper::Error> {
    let req = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_court_is_served_at_once_while_another_peer_holds_slow_uploads_and_idle_connections_flood_the_port(
) {
    let net = Net::new();
    let mut node = start_with(
        &net,
        &[
            ("SEALPOST_SERVER__MAX_CONNECTIONS_PER_PEER", "4"),
            ("SEALPOST_SERVER__MAX_HANDSHAKES", "32"),
            ("SEALPOST_SERVER__BODY_TIMEOUT", "5s"),
        ],
    );
    let port = port_of(&node);
    // Nanshan gets a bundle of its own, whose receipt endpoint it abuses.
    let staging = net.out("staging-nanshan");
    common::tiny_app(&staging, "深劳人仲案〔2026〕9101号", NANSHAN);
    fs::write(staging.join("READY"), b"").expect("marker");
    fs::rename(
        &staging,
        net.agency(common::COMMITTEE)
            .dir
            .join("data/clerk/intake/nanshan-own"),
    )
    .expect("drop");
    let nanshan_id = wait_line(&node, "ACCEPTED  nanshan-own")
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned();

    // Nanshan (authenticated) starts eight slow receipt uploads: one byte a
    // second of a declared 60 000. Four fit its per-peer budget, the rest are
    // turned away with 503.
    let mut slow = Vec::new();
    let mut turned_away = 0;
    for _ in 0..8 {
        let mut s = tls(&net, NANSHAN, port).await;
        let head = format!(
            "POST /v1/bundles/{nanshan_id}/receipt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.expect("write");
        s.flush().await.expect("flush");
        slow.push(s);
    }
    // The idle TCP flood: connections that never say a word.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    // A valid court lists, on new connections, while both go on.
    let dribble = tokio::spawn(async move {
        for _ in 0..9 {
            for s in slow.iter_mut() {
                let _ = s.write_all(b" ").await;
                let _ = s.flush().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        slow
    });
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let (mut sender, _task) = connection(&net, FUTIAN, port).await;
        let (status, _) = get(&mut sender, "/v1/bundles").await.expect("list");
        let took = started.elapsed();
        assert_eq!(status, 200);
        worst = worst.max(took);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("worst list latency under slow uploads and 300 idle connections: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a valid court waited {worst:?}"
    );
    // The slow uploads are cut off for being too slow (the grace is 5 s and
    // one byte a second is far below the minimum rate).
    let slow = dribble.await.expect("dribbler");
    drop(slow);
    drop(idle);
    let log = node.child.stderr_text();
    for line in log.lines().filter(|l| l.contains("too many connections")) {
        assert!(line.contains(NANSHAN), "{line}");
        turned_away += 1;
    }
    assert_eq!(
        turned_away, 4,
        "expected four connections over Nanshan's budget:\n{log}"
    );
    let timed_out = log
        .lines()
        .filter(|l| l.contains("receipt") && l.contains("status=408"))
        .count();
    assert!(
        timed_out >= 4,
        "the slow uploads were not cut off for being too slow:\n{log}"
    );
    node.child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_court_loses_its_open_connections_and_a_removed_peer_too() {
    let net = Net::new();
    let crl = with_empty_crl(&net);
    let mut node = start(&net);
    let port = port_of(&node);

    // Futian: a kept-alive connection and a long-poll in progress.
    let (mut kept, kept_task) = connection(&net, FUTIAN, port).await;
    assert_eq!(get(&mut kept, "/v1/bundles").await.expect("list").0, 200);
    let (mut polling, poll_task) = connection(&net, FUTIAN, port).await;
    let long_poll = tokio::spawn(async move { get(&mut polling, "/v1/bundles?wait=55").await });
    // Nanshan: a kept-alive connection that must survive Futian's revocation.
    let (mut other, _other_task) = connection(&net, NANSHAN, port).await;
    assert_eq!(get(&mut other, "/v1/bundles").await.expect("list").0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!long_poll.is_finished(), "the long-poll did not wait");

    // The CA revokes Futian's TLS certificate; the node reloads.
    fs::write(
        &crl,
        net.ca
            .crl(&[common::serial_of(&net.agency(FUTIAN).dir.join("tls.pem"))]),
    )
    .expect("crl");
    let revoked_at = Instant::now();
    node.child.signal("HUP");
    let answer = tokio::time::timeout(Duration::from_secs(10), long_poll)
        .await
        .expect("the long-poll was not ended by the revocation")
        .expect("task");
    assert!(answer.is_err(), "a revoked court got an answer: {answer:?}");
    tokio::time::timeout(Duration::from_secs(10), kept_task)
        .await
        .expect("the kept-alive connection was not closed")
        .expect("task");
    tokio::time::timeout(Duration::from_secs(1), poll_task)
        .await
        .expect("closed")
        .expect("task");
    eprintln!(
        "open connections closed {:?} after SIGHUP",
        revoked_at.elapsed()
    );
    assert!(
        get(&mut kept, "/v1/bundles").await.is_err(),
        "the revoked court's kept-alive connection still works"
    );
    assert_eq!(
        get(&mut other, "/v1/bundles").await.expect("other court").0,
        200,
        "an unrevoked court lost its connection"
    );

    // A peer removed from the directory loses its open connection too.
    let peers = net.path().join("peers.toml");
    let text = fs::read_to_string(&peers).expect("peers");
    let start = text
        .find("[[peer]]\nid = \"sz-nanshan-court\"")
        .expect("nanshan entry");
    let end = text[start + 8..]
        .find("[[peer]]")
        .map(|i| start + 8 + i)
        .unwrap_or(text.len());
    fs::write(&peers, format!("{}{}", &text[..start], &text[end..])).expect("write");
    node.child.signal("HUP");
    let mut closed = false;
    for _ in 0..50 {
        if get(&mut other, "/v1/bundles").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "a removed peer kept its connection");
    node.child.stop();
}

/// A push by a court that gets its `403` from the head alone while the client
/// goes on sending its (declared 100 MB) body, a KiB every 100 ms, for ever:
/// the connection lingers (`src/api/linger.rs`). Returns the sending task
/// (which ends, with the time, when the node cuts it off) and when the
/// answer had arrived.
async fn lingering_push(net: &Net, port: u16) -> (tokio::task::JoinHandle<Instant>, Instant) {
    let stream = tls(net, FUTIAN, port).await;
    let (mut rd, mut wr) = tokio::io::split(stream);
    wr.write_all(
        b"POST /v1/bundles HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n",
    )
    .await
    .expect("head");
    let sender = tokio::spawn(async move {
        let chunk = [b'x'; 1024];
        loop {
            if wr.write_all(&chunk).await.is_err() || wr.flush().await.is_err() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let _ = rd.read_to_end(&mut answer).await;
    })
    .await
    .expect("the answer did not end");
    let answered = Instant::now();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("push-not-allowed"),
        "{answer}"
    );
    (sender, answered)
}

/// An early answer is followed by a lingering close (`src/api/linger.rs`).
/// A connection that only closes leaves its peer's serving share for a
/// closing share of the same size, so a client that reconnects at once is
/// served; once that share is full, a lingering connection keeps its serving
/// place. A client that goes on sending for ever is cut off when the linger's
/// time (5 s) is up, and its place is then free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_connection_is_bounded_in_its_peers_budget_and_cut_off_in_time() {
    let net = Net::new();
    let mut node = start_with(&net, &[("SEALPOST_SERVER__MAX_CONNECTIONS_PER_PEER", "1")]);
    let port = port_of(&node);

    // A lingers in Futian's closing share: B is admitted beside it, and
    // lingers in the serving share (the closing one is full) ...
    let (a, a_answered) = lingering_push(&net, port).await;
    let (b, b_answered) = lingering_push(&net, port).await;
    // ... so C finds Futian's one serving place taken.
    let (mut c, _task) = connection(&net, FUTIAN, port).await;
    assert_eq!(
        get(&mut c, "/v1/bundles").await.expect("answer").0,
        503,
        "a lingering connection beyond the closing share was not counted in its peer's budget"
    );
    assert!(
        !a.is_finished() && !b.is_finished(),
        "a linger ended at once"
    );

    // Both senders are cut off when the linger's 5 s are up ...
    for (sender, answered) in [(a, a_answered), (b, b_answered)] {
        let cut = tokio::time::timeout(Duration::from_secs(15), sender)
            .await
            .expect("a client sending for ever was never cut off")
            .expect("task");
        let lingered = cut.duration_since(answered);
        eprintln!("a client sending for ever was cut off {lingered:?} after the answer");
        assert!(lingered < Duration::from_secs(8), "lingered {lingered:?}");
    }
    // ... and the place is free again.
    let (mut again, _task) = connection(&net, FUTIAN, port).await;
    assert_eq!(get(&mut again, "/v1/bundles").await.expect("answer").0, 200);
    node.child.stop();
}

/// Without keep-alive (`Connection: close`, as `curl` in a loop or `oha
/// --disable-keepalive` send), a client opens its next connection as soon as
/// it has its answer, often before it has closed the last one: a connection
/// that was only still closing does not take its peer's place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_keep_alive_is_not_refused_for_a_connection_it_has_not_yet_closed() {
    use tokio::io::AsyncReadExt;
    let net = Net::new();
    let mut node = start_with(&net, &[("SEALPOST_SERVER__MAX_CONNECTIONS_PER_PEER", "1")]);
    let port = port_of(&node);
    let mut kept = Vec::new();
    // Futian may serve on one connection, and close one more meanwhile; a
    // third left open by the client takes the serving place (the bound).
    for round in 0..3 {
        let mut stream = tls(&net, FUTIAN, port).await;
        stream
            .write_all(b"GET /v1/bundles HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        // The whole answer, up to the node's close_notify; this side stays open.
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the answer did not end")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        let want = if round < 2 {
            "HTTP/1.1 200"
        } else {
            "HTTP/1.1 503"
        };
        assert!(
            answer.starts_with(want),
            "round {round}, with {round} finished connection(s) not yet closed by the client: {answer}"
        );
        kept.push(stream);
    }
    drop(kept);
    node.child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_a_thousand_idle_connections_and_a_court_is_still_served() {
    // This test holds a thousand sockets: lift the soft limit to the hard one.
    if let Some(l) = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(l),
                maximum: Some(l),
            },
        );
    }
    let net = Net::new();
    let node = start(&net);
    let port = port_of(&node);
    let pid = node.child.id();
    // Warm: one court's request served, then the baseline.
    {
        let (mut sender, _task) = connection(&net, FUTIAN, port).await;
        assert_eq!(get(&mut sender, "/v1/bundles").await.expect("list").0, 200);
    }
    let before = common::rss_kib(pid);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    let (mut sender, _task) = connection(&net, FUTIAN, port).await;
    let (status, _) = get(&mut sender, "/v1/bundles").await.expect("list");
    assert_eq!(status, 200, "a court is served during the flood");
    let during = common::rss_kib(pid);
    drop(idle);
    eprintln!(
        "RSS: {} KiB before, {} KiB with 1000 idle connections open",
        before, during
    );
    assert!(
        during <= before + 16 * 1024,
        "RSS grew from {before} KiB to {during} KiB under 1000 idle connections"
    );
}

/// CPU time (user + system) of a process so far, in clock ticks, from `/proc`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// An idle node sleeps: a committee watching its intake folder and a court
/// watching its follow-up folder use next to no CPU once nothing happens —
/// no scan wakes the next one (notify reports the scan's own opening of the
/// folder, which once kept both nodes at 60% of a CPU for ever).
#[test]
fn an_idle_node_uses_next_to_no_cpu() {
    let net = Net::new();
    let cfg = net.config_path(FUTIAN);
    let text = fs::read_to_string(&cfg).expect("config");
    fs::write(&cfg, format!("{text}\n[followup]\nroot = \"followup\"\n")).expect("config");
    let mut committee = common::node::start_with(&net, &[("SEALPOST_INTAKE__SCAN_INTERVAL", "1s")]);
    let court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_FOLLOWUP__SCAN_INTERVAL", "1s")],
        std::process::Stdio::null(),
    );
    let intake = net.agency(common::COMMITTEE).dir.join("data/clerk/intake");
    let followup = net.agency(FUTIAN).dir.join("followup/drop");
    common::wait_until(Duration::from_secs(20), "both folders watched", || {
        intake.is_dir() && followup.is_dir()
    });
    // One application through, so that every part has run once.
    common::node::drop_app(&net, "idle-check", "深劳人仲案〔2026〕77号");
    common::node::wait_line(&committee, "ACCEPTED  idle-check");
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_s = rustix::param::clock_ticks_per_second();
    let (c0, k0) = (cpu_ticks(committee.child.id()), cpu_ticks(court.id()));
    let window = Duration::from_secs(4);
    std::thread::sleep(window);
    let (c1, k1) = (cpu_ticks(committee.child.id()), cpu_ticks(court.id()));
    let share = |ticks: u64| ticks as f64 / ticks_per_s as f64 / window.as_secs_f64();
    eprintln!(
        "idle CPU over {window:?}: committee {:.1}%, court {:.1}%",
        share(c1 - c0) * 100.0,
        share(k1 - k0) * 100.0
    );
    for (who, ticks) in [("committee", c1 - c0), ("court", k1 - k0)] {
        assert!(
            share(ticks) < 0.05,
            "the idle {who} used {:.0}% of a CPU",
            share(ticks) * 100.0
        );
    }
    committee.child.stop();
}
