//! Intake throughput and latency, from a completed drop to a durable "queued".
//!
//! `cargo bench --bench intake` (env `APPS`, default 1000; `DOC_KB`, default 200).
//! Runs the real intake loop (inotify watcher + scans, claim by rename, seal,
//! sled commit with fsync) in-process with a PKI made at start, and prints:
//!
//! 1. burst: APPS applications appear at once (each folder renamed into
//!    intake/ with its READY marker inside): time until all are queued;
//! 2. paced: applications appear one at a time at 50/s: per-application
//!    latency from the rename into intake/ to the durable outbox record.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sealpost::intake::{self, Intake, Outcome, Wake};
use sealpost::outbox::Outbox;

fn make_app(dir: &Path, case: &str, doc_kb: usize, seed: u8) {
    common::tiny_app(dir, case, common::FUTIAN);
    for (i, f) in ["财产保全申请书.pdf", "仲裁申请书.pdf", "受理通知书.pdf"]
        .iter()
        .enumerate()
    {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.extend(
            (0..doc_kb * 1024).map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed ^ i as u8)),
        );
        bytes.extend_from_slice(b"\n%%EOF\n");
        fs::write(dir.join(f), bytes).expect("write doc");
    }
    fs::write(dir.join("READY"), b"").expect("marker");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let apps: usize = std::env::var("APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let doc_kb: usize = std::env::var("DOC_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let net = common::Net::new();
    let env = HashMap::from([
        ("SEALPOST_INTAKE__SETTLE".to_owned(), "10s".to_owned()),
        ("SEALPOST_INTAKE__SCAN_INTERVAL".to_owned(), "1s".to_owned()),
    ]);
    let cfg = std::sync::Arc::new(
        sealpost::config::Config::load_with_env(&net.config_path(common::COMMITTEE), env)
            .expect("config"),
    );
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    // As the daemon runs it: every accepted application gets its case file,
    // and the queue's event puts it on the timeline and writes the clerks'
    // status file.
    let cases = sealpost::cases::Cases::open(&outbox, &cfg.node.data_dir).expect("cases");
    sealpost::followup::casework::Casework::new(cfg.clone(), outbox.clone(), cases.clone(), None)
        .subscribe();
    let intake = Intake::new(cfg.clone(), outbox.clone())
        .expect("intake")
        .keeping_cases(cases);
    let staging = net.out("staging");
    let paced = 200.min(apps);
    eprintln!(
        "preparing {} applications of 3 × {doc_kb} KiB …",
        apps + paced
    );
    for i in 0..apps + paced {
        make_app(
            &staging.join(format!("app-{i:05}")),
            &format!("深劳人仲案〔2026〕{}号", 10_000 + i),
            doc_kb,
            i as u8,
        );
    }

    let (tx, rx) = mpsc::channel();
    let _watcher = intake::watch(&intake.dirs().intake, tx.clone()).expect("watch");
    let (done_tx, done_rx) = mpsc::channel::<(String, Instant)>();
    let dirs = intake.dirs().clone();
    let workers = cfg.intake.workers;
    let intake = &intake;
    std::thread::scope(|s| {
        s.spawn(move || {
            intake::run(intake, &rx, |o| {
                if let Outcome::Accepted { name, .. } = o {
                    let _ = done_tx.send((name.clone(), Instant::now()));
                }
            })
            .expect("intake loop");
        });

        // 1. Burst.
        let t0 = Instant::now();
        for i in 0..apps {
            let n = format!("app-{i:05}");
            fs::rename(staging.join(&n), dirs.intake.join(&n)).expect("drop");
        }
        for _ in 0..apps {
            done_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("burst outcome");
        }
        let burst = t0.elapsed();

        // 2. Paced, 50/s: latency per application.
        let mut dropped: HashMap<String, Instant> = HashMap::new();
        let mut lat = Vec::new();
        for i in apps..apps + paced {
            let n = format!("app-{i:05}");
            fs::rename(staging.join(&n), dirs.intake.join(&n)).expect("drop");
            dropped.insert(n, Instant::now());
            std::thread::sleep(Duration::from_millis(20));
            while let Ok((name, at)) = done_rx.try_recv() {
                lat.push(at - dropped[&name]);
            }
        }
        while lat.len() < paced {
            let (name, at) = done_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("paced outcome");
            lat.push(at - dropped[&name]);
        }
        tx.send(Wake::Stop).expect("stop");
        lat.sort();

        let rate = apps as f64 / burst.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!();
        println!("intake: {apps} + {paced} applications, 3 × {doc_kb} KiB each, {workers} workers, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        println!();
        println!("| measure | value | target | ratio to target |");
        println!("|---|---:|---:|---:|");
        println!(
            "| burst throughput (apps/s) | {rate:.0} | ≥ 100 | {:.2}× |",
            rate / 100.0
        );
        println!(
            "| burst: {apps} apps queued in (s) | {:.2} | | |",
            burst.as_secs_f64()
        );
        println!(
            "| paced latency p50 (ms) | {:.1} | | |",
            ms(percentile(&lat, 0.50))
        );
        println!(
            "| paced latency p90 (ms) | {:.1} | | |",
            ms(percentile(&lat, 0.90))
        );
        println!(
            "| paced latency p99 (ms) | {:.1} | ≤ 200 | {:.2}× |",
            ms(percentile(&lat, 0.99)),
            ms(percentile(&lat, 0.99)) / 200.0
        );
        println!(
            "| paced latency max (ms) | {:.1} | | |",
            ms(*lat.last().expect("latencies"))
        );
    });
    assert_eq!(outbox.list().expect("list").len(), apps + paced);
}
