//! The outbox at scale: start-up time and `GET /v1/bundles` latency with a
//! long delivery history, against the same node with no history.
//!
//! `cargo bench --bench outbox_scale` (env `RECORDS`, default 100000;
//! `WAITING`, default 10; `REQUESTS`, default 1000). Needs `eatmydata`
//! (Debian package) to write the history quickly.
//!
//! For each of two outboxes — one with no history, one with `RECORDS`
//! delivered deliveries — plus `WAITING` deliveries queued for the court:
//!
//! 1. the history is written through the outbox's own API (enqueue, fetch,
//!    deliver, settle: the real records and indexes), by a child process of this
//!    bench run under `eatmydata` so that writing it does not take an hour of
//!    fsyncs (the daemon measured afterwards runs normally);
//! 2. start-up: the real `sealpost run` (release build), from spawn to
//!    `READY=1` on its `NOTIFY_SOCKET`, five times, median;
//! 3. listing: `REQUESTS` sequential `GET /v1/bundles` by the court over mTLS
//!    with the node's own client (after 20 to warm up), p50/p90/p99; then as
//!    many `HEAD /v1/bundles/<id>` of the first waiting bundle, p50/p99;
//! 4. memory: the daemon's RSS (`VmRSS`) once idle after `READY=1` (before
//!    any request), and after the listings and `HEAD`s; and the peak RSS
//!    (`VmHWM`) of the process that wrote the history, which is what a node
//!    that recorded it all in one long run would hold (sled's page cache is
//!    bounded, `outbox::CACHE_BYTES`).
//!
//! The waiting deliveries are indexed by peer (`w/<peer>\0<seq>`), so both
//! should cost the same with and without the history: the ratio column is
//! the figure to watch.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use sealpost::bundle::{Envelope, Kind, PayloadInfo, FORMAT};
use sealpost::outbox::Outbox;
use sealpost::types::{BundleId, Sha256, Timestamp};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Child mode: write `records` delivered and `waiting` queued deliveries
/// into the outbox of the node configured in `config`.
fn populate(config: &Path, records: usize, waiting: usize) {
    let cfg = sealpost::config::Config::load_with_env(config, Default::default()).expect("config");
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let court: sealpost::types::AgencyId = common::FUTIAN.parse().expect("id");
    let policy = cfg.outbox;
    let started = Instant::now();
    for n in 0..records + waiting {
        let now = Timestamp::now();
        let envelope = Envelope {
            format: FORMAT.to_owned(),
            id: BundleId::generate(),
            kind: Kind::PreservationApplication,
            sender: cfg.node.id.clone(),
            recipient: court.clone(),
            case_ref: format!("深劳人仲案〔2026〕{}号", 100_000 + n)
                .parse()
                .expect("case"),
            created_at: now,
            refers_to: None,
            signer_cert_sha256: Sha256::of(b"bench"),
            payload: PayloadInfo {
                length: 4096,
                sha256: Sha256::of(&n.to_le_bytes()),
            },
        };
        let bytes = serde_json::to_vec(&envelope).expect("json");
        let d = outbox
            .enqueue(
                &envelope,
                &bytes,
                8192,
                Some(format!("bench-{n}")),
                false,
                now,
            )
            .expect("enqueue");
        if n >= records {
            // A waiting bundle's file, as intake would have published it.
            std::fs::write(outbox.bundle_path(&d.id), vec![0u8; 8192]).expect("bundle file");
        }
        if n < records {
            outbox
                .transition(&d.id, now, |d| d.fetch(now, &policy))
                .expect("fetch");
            outbox
                .transition(&d.id, now, |d| d.deliver(now))
                .expect("deliver");
            // Its proof of delivery made, as a node's evidence service
            // leaves every delivered application.
            outbox.settle(&d.id).expect("settle");
        }
        if n > 0 && n % 20_000 == 0 {
            eprintln!("  … {n} records ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    eprintln!(
        "  wrote {records} delivered + {waiting} waiting in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The memory of a process that wrote the whole history itself (a node
    // that has run for years), for the parent to report.
    let peak = std::fs::read_to_string("/proc/self/status")
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    println!("{peak}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Figures {
    startup: Duration,
    list: [Duration; 3],
    head: [Duration; 2],
    listed: usize,
    idle_rss_kib: u64,
    rss_kib: u64,
    writer_peak_kib: u64,
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn measure(records: usize, waiting: usize, requests: usize) -> Figures {
    let net = common::Net::new();
    let cfg = net.config_path(common::COMMITTEE);
    let me = std::env::current_exe().expect("exe");
    let out = std::process::Command::new("eatmydata")
        .arg(&me)
        .args(["populate", cfg.to_str().expect("utf-8")])
        .arg(records.to_string())
        .arg(waiting.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("eatmydata (Debian package eatmydata)");
    assert!(out.status.success(), "populating failed");
    let writer_peak_kib: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the writer's peak RSS");
    // What eatmydata left dirty is written back now, not under the measurements.
    assert!(
        std::process::Command::new("sync")
            .status()
            .expect("sync")
            .success(),
        "sync failed"
    );

    // Start-up, five times.
    let mut startups = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = common::node::start(&net);
        n.child.wait_ready();
        startups.push(t.elapsed());
        n.child.stop();
    }
    startups.sort();
    let startup = startups[startups.len() / 2];

    // Listing latency, with the court's client on a running node.
    let mut n = common::node::start(&net);
    n.child.wait_ready();
    // Idle: give the start-up's background work (recovery, first scans) a moment.
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_kib = rss_kib(n.child.id());
    common::node::set_committee_endpoint(&net, &n.addr);
    let court = net.config(common::FUTIAN);
    let peer = court
        .directory
        .get(&common::COMMITTEE.parse().expect("id"))
        .expect("committee")
        .clone();
    let client = sealpost::transport::client::PeerClient::new(&court, peer).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut times, mut heads, listed) = rt.block_on(async {
        use http_body_util::BodyExt;
        let mut times = Vec::new();
        let mut heads = Vec::new();
        let mut listed = 0;
        let mut first_id = String::new();
        for i in 0..requests + 20 {
            let t = Instant::now();
            let resp = client
                .request(
                    http::Method::GET,
                    "/v1/bundles",
                    &[],
                    sealpost::transport::client::bytes_body(bytes::Bytes::new()),
                )
                .await
                .expect("list");
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let took = t.elapsed();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            listed = v["bundles"].as_array().map_or(0, Vec::len);
            first_id = v["bundles"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if i >= 20 {
                times.push(took);
            }
        }
        let path = format!("/v1/bundles/{first_id}");
        for i in 0..requests + 20 {
            let t = Instant::now();
            let resp = client
                .request(
                    http::Method::HEAD,
                    &path,
                    &[],
                    sealpost::transport::client::bytes_body(bytes::Bytes::new()),
                )
                .await
                .expect("head");
            assert_eq!(resp.status(), 200, "HEAD {path}");
            resp.into_body().collect().await.expect("body");
            if i >= 20 {
                heads.push(t.elapsed());
            }
        }
        (times, heads, listed)
    });
    let rss_kib = rss_kib(n.child.id());
    n.child.stop();
    times.sort();
    heads.sort();
    Figures {
        startup,
        list: [
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99),
        ],
        head: [percentile(&heads, 0.5), percentile(&heads, 0.99)],
        listed,
        idle_rss_kib,
        rss_kib,
        writer_peak_kib,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("populate") {
        populate(
            Path::new(&args[2]),
            args[3].parse().expect("records"),
            args[4].parse().expect("waiting"),
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("outbox_scale: bench");
        return;
    }
    let records = env_usize("RECORDS", 100_000);
    let waiting = env_usize("WAITING", 10);
    let requests = env_usize("REQUESTS", 1000);
    eprintln!("no history …");
    let empty = measure(0, waiting, requests);
    eprintln!("{records} delivered records of history …");
    let full = measure(records, waiting, requests);
    assert_eq!(empty.listed, waiting);
    assert_eq!(full.listed, waiting);
    println!("| | no history | {records} delivered | ratio |");
    println!("|---|---|---|---|");
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
    println!(
        "| start-up to READY=1 (median of 5) | {} | {} | {:.2} |",
        ms(empty.startup),
        ms(full.startup),
        ratio(empty.startup, full.startup)
    );
    for (i, name) in ["p50", "p90", "p99"].iter().enumerate() {
        println!(
            "| GET /v1/bundles {name} ({waiting} waiting) | {} | {} | {:.2} |",
            ms(empty.list[i]),
            ms(full.list[i]),
            ratio(empty.list[i], full.list[i])
        );
    }
    for (i, name) in ["p50", "p99"].iter().enumerate() {
        println!(
            "| HEAD /v1/bundles/<id> {name} | {} | {} | {:.2} |",
            ms(empty.head[i]),
            ms(full.head[i]),
            ratio(empty.head[i], full.head[i])
        );
    }
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    println!(
        "| RSS idle after READY=1 | {} | {} | {:.2} |",
        mib(empty.idle_rss_kib),
        mib(full.idle_rss_kib),
        full.idle_rss_kib as f64 / empty.idle_rss_kib.max(1) as f64
    );
    println!(
        "| RSS after the listings and HEADs | {} | {} | {:.2} |",
        mib(empty.rss_kib),
        mib(full.rss_kib),
        full.rss_kib as f64 / empty.rss_kib.max(1) as f64
    );
    println!(
        "| peak RSS of the process that wrote the history through the outbox | {} | {} | {:.2} |",
        mib(empty.writer_peak_kib),
        mib(full.writer_peak_kib),
        full.writer_peak_kib as f64 / empty.writer_peak_kib.max(1) as f64
    );
}
