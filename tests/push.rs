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

#[tokio::test(start_paused = true)]
async fn an_unreachable_peer_is_retried_with_backoff_until_the_deadline() {
    let net = Net::new();
    // Futian takes pushes at an address where nothing listens.
    let peers = net.path().join("peers.toml");
    let text = std::fs::read_to_string(&peers).expect("peers");
    let marker = "signing_cert = \"sz-futian-court/sign.pem\"";
    std::fs::write(
        &peers,
        text.replace(
            marker,
            &format!("{marker}\nendpoint = \"https://localhost:9\"\ndelivery = \"push\""),
        ),
    )
    .expect("write");
    let env = std::collections::HashMap::from([(
        "SEALPOST_OUTBOX__DEADLINE".to_owned(),
        "2h".to_owned(),
    )]);
    let cfg = Arc::new(
        sealpost::config::Config::load_with_env(&net.config_path(COMMITTEE), env).expect("config"),
    );
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let id = {
        let intake = Intake::new(cfg.clone(), outbox.clone()).expect("intake");
        tiny_app(
            &intake.dirs().intake.join("p"),
            "深劳人仲案〔2026〕8801号",
            FUTIAN,
        );
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
    // The pusher's clock follows tokio's (paused) clock from the real start time.
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
    let pusher = Pusher::new(cfg.clone(), outbox.clone(), peer, clock).expect("pusher");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { pusher.run(stop).await });

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
