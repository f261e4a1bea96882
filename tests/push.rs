//! Push delivery's retry schedule, on paused tokio time: an unreachable peer is
//! retried with growing, jittered backoff, and the delivery is dead-lettered at
//! its deadline. No real waiting.

mod common;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use common::{tiny_app, Net, COMMITTEE, FUTIAN};
use sealpost::delivery::{backoff, Clock, Pusher};
use sealpost::intake::{Intake, Outcome};
use sealpost::outbox::Outbox;
use sealpost::types::Timestamp;

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(backoff(0), Duration::from_secs(1));
    assert_eq!(backoff(3), Duration::from_secs(8));
    assert_eq!(backoff(40), Duration::from_secs(3600));
}

/// A committee pushing one accepted application to Futian, whose directory
/// entry says it takes pushes at `port` on localhost, with the outbox's
/// `deadline`; the pusher runs on tokio's (paused) clock.
struct Pushing {
    net: Net,
    outbox: Outbox,
    id: sealpost::types::BundleId,
    /// The pusher's clock: tokio's, from the real start time.
    clock: Clock,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn pushing(port: u16, deadline: &str, case: &str) -> Pushing {
    let net = Net::new();
    let peers = net.path().join("peers.toml");
    let text = std::fs::read_to_string(&peers).expect("peers");
    let marker = "signing_cert = \"sz-futian-court/sign.pem\"";
    std::fs::write(
        &peers,
        text.replace(
            marker,
            &format!("{marker}\nendpoint = \"https://localhost:{port}\"\ndelivery = \"push\""),
        ),
    )
    .expect("write");
    let env = std::collections::HashMap::from([(
        "SEALPOST_OUTBOX__DEADLINE".to_owned(),
        deadline.to_owned(),
    )]);
    let cfg = Arc::new(
        sealpost::config::Config::load_with_env(&net.config_path(COMMITTEE), env).expect("config"),
    );
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let id = {
        let intake = Intake::new(cfg.clone(), outbox.clone()).expect("intake");
        tiny_app(&intake.dirs().intake.join("p"), case, FUTIAN);
        match intake
            .take(&[OsString::from("p")])
            .pop()
            .expect("one")
            .expect("ok")
        {
            Outcome::Accepted { id, .. } => id,
            other => panic!("{other:?}"),
        }
    };
    let start_real = Timestamp::now();
    let start_virtual = tokio::time::Instant::now();
    let clock: Clock = Arc::new(move || {
        Timestamp::from_unix(start_real.unix() + start_virtual.elapsed().as_secs() as i64)
            .expect("time")
    });
    let peer = cfg
        .directory
        .get(&FUTIAN.parse().expect("id"))
        .expect("peer")
        .clone();
    let pusher = Pusher::new(cfg.clone(), outbox.clone(), peer, clock.clone()).expect("pusher");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { pusher.run(stop).await });
    Pushing {
        net,
        outbox,
        id,
        clock,
        shutdown,
        task,
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_peer_is_retried_with_backoff_until_the_deadline() {
    // Futian takes pushes at an address where nothing listens.
    let Pushing {
        outbox,
        id,
        shutdown,
        task,
        ..
    } = pushing(9, "2h", "深劳人仲案〔2026〕8801号");

    // Ten virtual minutes: several attempts, each further apart, still failing.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let d = outbox.get(&id).expect("get").expect("present");
    assert_eq!(d.state.name(), "failed", "{:?}", d.state);
    assert!(
        (4..=10).contains(&d.attempts),
        "{} attempts in 10 minutes",
        d.attempts
    );

    // Past the two-hour deadline: dead-lettered, and no more attempts.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let d = outbox.get(&id).expect("get").expect("present");
    assert_eq!(d.state.name(), "dead", "{:?}", d.state);
    let attempts = d.attempts;
    assert!(
        attempts <= 14,
        "{attempts} attempts in three hours: backoff not growing"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        outbox.get(&id).expect("get").expect("present").attempts,
        attempts,
        "a dead delivery was retried"
    );

    shutdown.cancel();
    task.await.expect("pusher task");
}

/// A court's push endpoint unreachable for six hours, then back (issue 11):
/// on paused time the committee's pusher retries with capped backoff — no
/// hot loop, the delivery never dead-lettered before its deadline — and once
/// a real court node listens again, the next attempt delivers the bundle
/// exactly once, with its receipt.
#[tokio::test(start_paused = true)]
async fn a_peer_unreachable_for_hours_gets_the_bundle_once_when_it_is_back() {
    // A port nothing listens on yet: connections are refused at once, so no
    // real waiting happens while time is paused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let case = "深劳人仲案〔2026〕8802号";
    let Pushing {
        net,
        outbox,
        id,
        clock,
        shutdown,
        task,
    } = pushing(port, "2d", case);

    // Six virtual hours down: backoff doubles from 1 s to its one-hour cap,
    // so about a dozen quick attempts and then one an hour.
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    let d = outbox.get(&id).expect("get").expect("present");
    let sealpost::outbox::State::Failed { retry_at, .. } = d.state else {
        panic!("after six hours: {:?}", d.state);
    };
    let down_attempts = d.attempts;
    assert!(
        (10..=22).contains(&down_attempts),
        "{down_attempts} attempts in six hours (a hot loop, or no retrying)"
    );

    // The court is back: a real node listening on that port.
    let court_cfg = net.config_path(FUTIAN);
    let text = std::fs::read_to_string(&court_cfg).expect("config");
    std::fs::write(
        &court_cfg,
        format!("{text}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("write");
    let mut court = common::spawn_run(&net, FUTIAN, &[], std::process::Stdio::null());
    court.wait_ready();
    // Up to the next attempt on paused time, then on with real time for the
    // real connection.
    // At most the cap (an hour) plus its jitter (up to a quarter, `src/retry.rs`).
    let wait = (retry_at.unix() - clock().unix()).max(0) as u64;
    assert!(
        wait <= 3600 + 900,
        "the next attempt {wait} s away, beyond the cap and its jitter"
    );
    tokio::time::advance(Duration::from_secs(wait + 1)).await;
    tokio::time::resume();
    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let d = outbox.get(&id).expect("get").expect("present");
            if d.state.name() == "delivered" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not delivered once the court was back: {}",
            court.stderr_text()
        )
    });
    // `attempts` counts the failed ones: none once the court was back.
    assert_eq!(
        delivered.attempts, down_attempts,
        "delivered by the first attempt after the court came back"
    );
    assert!(outbox.receipt_path(&id).is_file(), "the receipt is stored");
    let inbox = net.agency(FUTIAN).dir.join("data/inbox").join(case);
    assert_eq!(common::listing(&inbox), vec![id.to_string()]);
    assert!(inbox.join(id.as_str()).join(".done").is_file());
    eprintln!(
        "six hours down: {down_attempts} failed attempts; delivered by the next once the court was back"
    );
    shutdown.cancel();
    task.await.expect("pusher task");
    court.stop();
}
