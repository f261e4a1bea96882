//! The court's client against real parts: a committee daemon, a TCP relay in
//! front of it that counts the connections it carries, a TLS server that
//! echoes what it received, and a stock proxy (Debian's `tinyproxy`).
//!
//! * the poller keeps one connection for many polls and deliveries;
//! * a connection the server closed while idle, or that closed just as a
//!   request went out, is replaced without an error;
//! * `Host` carries the port, SNI the bare host name;
//! * through a proxy, `CONNECT` opens the tunnel (with Basic credentials that
//!   never reach a log), and a proxy that refuses is a clear error that pauses
//!   the peer.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::node::*;
use common::{wait_until, Net, COMMITTEE, FUTIAN};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use sealpost::config::Config;
use sealpost::transport::client::{ClientError, PeerClient};

// ------------------------------------------------------------------ helpers

/// A TCP relay from a loopback port to `target`: counts the connections it
/// accepts, reports each one's end, and can break the connections open so
/// far at the next bytes a client sends (dropped, never forwarded).
struct Relay {
    port: u16,
    accepted: Arc<AtomicUsize>,
    break_upto: Arc<AtomicUsize>,
    closed: mpsc::Receiver<usize>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let break_upto = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, closed) = mpsc::channel();
        let target = target.to_owned();
        let (acc, brk, stp) = (accepted.clone(), break_upto.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let id = acc.fetch_add(1, Ordering::SeqCst) + 1;
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (brk, tx) = (brk.clone(), tx.clone());
                std::thread::spawn(move || {
                    pump_pair(id, client, server, &brk);
                    let _ = tx.send(id);
                });
            }
        });
        Self {
            port,
            accepted,
            break_upto,
            closed,
            stop,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The connections accepted so far are broken at the next bytes their
    /// client sends: as if the server had closed them just then.
    fn break_open_connections(&self) {
        self.break_upto.store(self.accepted(), Ordering::SeqCst);
    }

    /// Waits (at most 20 s) for connection `id` to end.
    fn wait_closed(&self, id: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.closed.recv_timeout(left) {
                Ok(n) if n == id => return,
                Ok(_) => {}
                Err(_) => panic!("relayed connection {id} did not end within 20 s"),
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Carries bytes both ways until either side closes (or the connection is
/// broken on purpose, see [`Relay::break_open_connections`]).
fn pump_pair(id: usize, client: TcpStream, server: TcpStream, break_upto: &AtomicUsize) {
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let back = std::thread::spawn({
        let (mut s_read, mut c_write) = (server, client);
        move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match s_read.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = c_write.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if c_write.write_all(&buf[..n]).is_err() {
                            let _ = s_read.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                }
            }
        }
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        match c_read.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = s_write.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                if id <= break_upto.load(Ordering::SeqCst) {
                    let _ = c_read.shutdown(Shutdown::Both);
                    let _ = s_write.shutdown(Shutdown::Both);
                    break;
                }
                if s_write.write_all(&buf[..n]).is_err() {
                    let _ = c_read.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
    }
    let _ = back.join();
}

/// A stock `tinyproxy` on a free loopback port, allowing `CONNECT` to
/// `connect_ports` only, optionally requiring Basic credentials. Killed when
/// dropped.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    fn start(dir: &Path, connect_ports: &[u16], basic_auth: Option<(&str, &str)>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(dir).expect("mkdir");
        let log = dir.join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 600\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\nAllow 127.0.0.1\n",
            log.display()
        );
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        if let Some((user, password)) = basic_auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_file = dir.join("tinyproxy.conf");
        std::fs::write(&conf_file, conf).expect("write tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (Debian package tinyproxy, installed by scripts/test)");
        let proxy = Self { child, port, log };
        wait_until(Duration::from_secs(10), "tinyproxy to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        proxy
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `CONNECT` requests tinyproxy logged.
    fn connects(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor "))
            .filter_map(|(_, r)| r.split_once("): CONNECT "))
            .map(|(_, target)| target.to_owned())
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- tinyproxy log ---\n{}", self.log_text());
        }
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn accepted_id(node: &Node, name: &str) -> String {
    wait_line(node, &format!("ACCEPTED  {name}"))
        .rsplit(' ')
        .next()
        .expect("id")
        .to_owned()
}

/// The court's configuration (with `env` overrides) and its client for the
/// committee.
fn court_client(net: &Net, env: &[(&str, &str)]) -> PeerClient {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::load_with_env(&net.config_path(FUTIAN), env).expect("court config");
    let committee = config
        .directory
        .get(&COMMITTEE.parse().expect("id"))
        .expect("committee in the directory")
        .clone();
    PeerClient::new(&config, committee).expect("client")
}

/// GET `path` as the court; the status and body.
async fn get(client: &PeerClient, path: &str) -> Result<(StatusCode, Vec<u8>), ClientError> {
    let resp = client
        .request_idempotent(Method::GET, path, &[], bytes::Bytes::new())
        .await?;
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Ok((status, body.to_vec()))
}

/// A committee daemon, reached by the courts through a relay that counts
/// their connections.
fn committee_behind_relay(net: &Net) -> (Node, Relay) {
    let committee = start(net);
    let relay = Relay::start(&committee.addr);
    set_committee_endpoint(net, &format!("127.0.0.1:{}", relay.port));
    (committee, relay)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

// -------------------------------------------------------------------- tests

#[test]
fn a_hundred_polls_use_one_connection() {
    let net = Net::new();
    let (mut committee, relay) = committee_behind_relay(&net);
    let client = court_client(&net, &[]);
    let rt = runtime();
    let started = Instant::now();
    for i in 0..100 {
        let (status, body) = rt
            .block_on(get(&client, "/v1/bundles?limit=500"))
            .unwrap_or_else(|e| panic!("poll {i}: {e}"));
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let took = started.elapsed();
    eprintln!(
        "100 polls: {} TCP connection(s), {took:?}",
        relay.accepted()
    );
    assert_eq!(
        relay.accepted(),
        1,
        "the polls did not share one connection"
    );
    drop(rt);
    committee.child.stop();
}

#[test]
fn a_polling_court_delivers_over_one_kept_connection() {
    let net = Net::new();
    let (mut committee, relay) = committee_behind_relay(&net);
    let mut court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__WAIT", "1s")],
        Stdio::null(),
    );
    let mut ids = Vec::new();
    for i in 1..=2 {
        let case = format!("深劳人仲案〔2026〕840{i}号");
        drop_app(&net, &format!("kept-{i}"), &case);
        let id = accepted_id(&committee, &format!("kept-{i}"));
        ids.push((id, case));
    }
    let inbox = net.agency(FUTIAN).dir.join("data/inbox");
    wait_until(Duration::from_secs(30), "both receipts accepted", || {
        court.stderr_text().matches("receipt accepted").count() >= 2
    });
    for (id, case) in &ids {
        assert!(inbox.join(case).join(id).join(".done").exists());
    }
    // Keep polling: long-polls of 1 s, one after another, all on the
    // connection the deliveries used.
    let polls = || {
        committee
            .child
            .stderr_text()
            .lines()
            .filter(|l| l.contains("peer=sz-futian-court") && l.contains("path=/v1/bundles "))
            .count()
    };
    let before = polls();
    wait_until(Duration::from_secs(30), "ten more polls", || {
        polls() >= before + 10
    });
    let requests = committee
        .child
        .stderr_text()
        .lines()
        .filter(|l| l.contains("peer=sz-futian-court") && l.contains(" request"))
        .count();
    eprintln!(
        "{requests} requests (2 deliveries) over {} connection(s)",
        relay.accepted()
    );
    assert_eq!(
        relay.accepted(),
        1,
        "the court opened more than one connection"
    );
    court.stop();
    committee.child.stop();
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
    let net = Net::new();
    // The committee closes a connection that sends nothing for a second.
    let mut committee = start_with(&net, &[("SEALPOST_SERVER__HEADER_TIMEOUT", "1s")]);
    let relay = Relay::start(&committee.addr);
    set_committee_endpoint(&net, &format!("127.0.0.1:{}", relay.port));
    let client = court_client(&net, &[]);
    let rt = runtime();
    let (status, _) = rt.block_on(get(&client, "/v1/bundles")).expect("first");
    assert_eq!(status, StatusCode::OK);
    relay.wait_closed(1);
    let (status, _) = rt
        .block_on(get(&client, "/v1/bundles"))
        .expect("after the server closed the idle connection");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(relay.accepted(), 2);
    drop(rt);
    committee.child.stop();
}

#[test]
fn a_request_lost_with_a_closing_connection_is_sent_once_more_on_a_fresh_one() {
    let net = Net::new();
    let (mut committee, relay) = committee_behind_relay(&net);
    let client = court_client(&net, &[]);
    let rt = runtime();
    let (status, _) = rt.block_on(get(&client, "/v1/bundles")).expect("first");
    assert_eq!(status, StatusCode::OK);
    let logged = |c: &Node| {
        c.child
            .stderr_text()
            .lines()
            .filter(|l| l.contains("peer=sz-futian-court") && l.contains(" request"))
            .count()
    };
    wait_until(Duration::from_secs(10), "the request in the log", || {
        logged(&committee) == 1
    });
    // The kept connection swallows the next request and closes, as when the
    // server closes an idle connection just as a request goes out.
    relay.break_open_connections();
    let (status, _) = rt
        .block_on(get(&client, "/v1/bundles?limit=5"))
        .expect("sent again on a fresh connection");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(relay.accepted(), 2);
    wait_until(
        Duration::from_secs(10),
        "the second request in the log",
        || logged(&committee) >= 2,
    );
    assert_eq!(
        logged(&committee),
        2,
        "the server did not see the request once"
    );
    drop(rt);
    committee.child.stop();
}

#[test]
fn host_carries_the_port_and_sni_the_bare_host() {
    use rustls_pki_types::pem::PemObject;
    let net = Net::new();
    let rt = runtime();
    // A TLS server with the committee's certificate that answers with the
    // Host header and the server name it was asked for.
    let dir = &net.agency(COMMITTEE).dir;
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("tls.pem"))
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("tls.key")).expect("key");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                    .unwrap_or_default();
                let body = format!("{host}\n{sni}");
                async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service),
            );
        }
    });
    set_committee_endpoint(&net, &format!("localhost:{port}"));
    let client = court_client(&net, &[]);
    let (status, body) = rt.block_on(get(&client, "/v1/bundles")).expect("echo");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("localhost:{port}\nlocalhost")
    );
}

#[test]
fn a_court_behind_a_proxy_gets_its_bundles_through_connect() {
    let net = Net::new();
    let mut committee = start(&net);
    set_committee_endpoint(&net, &committee.addr);
    let port = port_of(&committee.addr);
    let password = "pw-9f4e1c2b";
    let proxy = Tinyproxy::start(&net.out("proxy"), &[port], Some(("court", password)));
    let url = format!("http://court:{password}@127.0.0.1:{}", proxy.port);
    let mut court = common::spawn_run(
        &net,
        FUTIAN,
        &[
            ("SEALPOST_CLIENT__PROXY", url.as_str()),
            ("SEALPOST_CLIENT__WAIT", "1s"),
            ("SEALPOST_LOG", "debug"),
        ],
        Stdio::null(),
    );
    drop_app(&net, "proxied", "深劳人仲案〔2026〕8500号");
    let id = accepted_id(&committee, "proxied");
    let done = net
        .agency(FUTIAN)
        .dir
        .join("data/inbox/深劳人仲案〔2026〕8500号")
        .join(&id)
        .join(".done");
    wait_until(Duration::from_secs(30), "the bundle in the inbox", || {
        done.exists()
    });
    wait_until(Duration::from_secs(20), "the receipt accepted", || {
        court.stderr_text().contains("receipt accepted")
    });
    let connects = proxy.connects();
    eprintln!("tinyproxy saw {connects:?}");
    assert!(
        connects
            .iter()
            .any(|t| *t == format!("localhost:{port} HTTP/1.1")),
        "no CONNECT to the committee in tinyproxy's log: {connects:?}"
    );
    assert_eq!(
        connects.len(),
        1,
        "the tunnel was not kept for the polls that followed"
    );
    let log = court.stderr_text();
    assert!(
        log.contains(&format!("proxy=http://127.0.0.1:{}", proxy.port)),
        "the court does not say it polls through the proxy"
    );
    assert!(!log.contains(password), "the proxy password was logged");
    court.stop();
    assert!(
        !court.stderr_text().contains(password),
        "the proxy password was logged"
    );
    committee.child.stop();
}

#[test]
fn a_proxy_that_refuses_the_tunnel_is_a_clear_error_that_pauses_the_peer() {
    let net = Net::new();
    let mut committee = start(&net);
    set_committee_endpoint(&net, &committee.addr);
    let port = port_of(&committee.addr);
    // CONNECT is allowed to another port only: tinyproxy answers 403.
    let other = if port == 1 { 2 } else { 1 };
    let proxy = Tinyproxy::start(&net.out("proxy"), &[other], None);
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let court = common::spawn_run(
        &net,
        FUTIAN,
        &[("SEALPOST_CLIENT__PROXY", url.as_str())],
        Stdio::null(),
    );
    let expected = format!("the proxy {url} refused CONNECT localhost:{port}: 403 Forbidden");
    wait_until(Duration::from_secs(20), "the refusal in the log", || {
        court
            .stderr_text()
            .lines()
            .any(|l| l.contains(&expected) && l.contains("the whole peer waits"))
    });
    assert!(proxy
        .connects()
        .contains(&format!("localhost:{port} HTTP/1.1")));
    drop(court);

    // A proxy that wants credentials (407), asked without and with wrong ones.
    let auth = Tinyproxy::start(&net.out("proxy-auth"), &[port], Some(("court", "right")));
    let rt = runtime();
    // (tinyproxy answers wrong credentials with 401, where RFC 9110 says 407.)
    for (url, answer) in [
        (
            format!("http://127.0.0.1:{}", auth.port),
            "407 Proxy Authentication Required (it wants credentials",
        ),
        (
            format!("http://court:wrong@127.0.0.1:{}", auth.port),
            "401 Unauthorized (it did not accept the credentials",
        ),
    ] {
        let client = court_client(&net, &[("SEALPOST_CLIENT__PROXY", &url)]);
        match rt.block_on(get(&client, "/v1/bundles")) {
            Err(ClientError::Unreachable(e)) => {
                assert!(
                    e.contains(&format!(
                        "the proxy http://127.0.0.1:{} refused CONNECT localhost:{port}: {answer}",
                        auth.port
                    )),
                    "{e}"
                );
                assert!(!e.contains("wrong"), "{e}");
            }
            other => panic!("expected the peer to be unreachable, got {other:?}"),
        }
    }
    // And with the right ones, the same client code gets through.
    let client = court_client(
        &net,
        &[(
            "SEALPOST_CLIENT__PROXY",
            &format!("http://court:right@127.0.0.1:{}", auth.port),
        )],
    );
    let (status, _) = rt.block_on(get(&client, "/v1/bundles")).expect("through");
    assert_eq!(status, StatusCode::OK);
    drop(rt);
    committee.child.stop();
}

#[test]
fn a_proxy_setting_that_is_not_http_host_port_is_refused_naming_the_variable() {
    let net = Net::new();
    for (value, why) in [
        ("https://proxy.example:3128", "not supported"),
        ("http://court:hunter2@proxy.example", "has no port"),
        ("http://proxy.example:3128/path", "no path or query"),
    ] {
        let env = HashMap::from([("SEALPOST_CLIENT__PROXY".to_owned(), value.to_owned())]);
        let e = Config::load_with_env(&net.config_path(FUTIAN), env)
            .expect_err(value)
            .to_string();
        assert!(e.contains(why), "{value}: {e}");
        assert!(e.contains("SEALPOST_CLIENT__PROXY"), "{value}: {e}");
        assert!(!e.contains("hunter2"), "{value}: {e}");
    }
    // Empty: no proxy (so the variable can switch a file's setting off).
    let env = HashMap::from([("SEALPOST_CLIENT__PROXY".to_owned(), String::new())]);
    let config = Config::load_with_env(&net.config_path(FUTIAN), env).expect("valid");
    assert!(config.client_proxy.is_none());
}
