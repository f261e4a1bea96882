//! Committee drop → court inbox latency with two real nodes: a committee
//! `sealpost run` and a court `sealpost run` that pulls from it over mTLS
//! (long-poll), both release builds on loopback with a test PKI made now.
//!
//! `cargo bench --bench court_latency` (env `DROPS`, default 10).
//!
//! Each sample: a small application (three PDFs) is renamed into the
//! committee's intake folder (the clerk's `mv`), and the clock stops when the
//! court's `inbox/<case>/<id>/` folder appears (verified and opened) and when
//! its `.done` is written (receipt signed: the court's case system takes the
//! folder from then on). The folder is watched every millisecond. One drop
//! first, not counted, warms both nodes up (the court's first poll).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::node::{drop_app, set_committee_endpoint, start};
use common::{Net, FUTIAN};

fn opened(case_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(case_dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
}

/// Drops one application; (time to the opened folder, time to `.done`).
fn sample(net: &Net, n: usize) -> (Duration, Duration) {
    let case = format!("深劳人仲案〔2026〕{}号", 9000 + n);
    let case_dir = net.agency(FUTIAN).dir.join("data/inbox").join(&case);
    let t0 = Instant::now();
    drop_app(net, &format!("latency-{n}"), &case);
    let deadline = t0 + Duration::from_secs(60);
    let mut folder_at = None;
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "{case}: not in the court's inbox within 60 s"
        );
        if let Some(dir) = opened(&case_dir) {
            folder_at.get_or_insert(now - t0);
            if dir.join(".done").exists() {
                return (folder_at.unwrap_or(now - t0), now - t0);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("court_latency: bench");
        return;
    }
    let drops: usize = std::env::var("DROPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let net = Net::new();
    let mut committee = start(&net);
    committee.child.wait_ready();
    set_committee_endpoint(&net, &committee.addr);
    let mut court = common::spawn_run(&net, FUTIAN, &[], Stdio::null());
    court.wait_ready();
    sample(&net, 0); // warm-up
    let (mut folder, mut done): (Vec<_>, Vec<_>) = (1..=drops).map(|n| sample(&net, n)).unzip();
    court.stop();
    committee.child.stop();
    folder.sort();
    done.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "court_latency: {drops} drops (plus one warm-up), committee and court nodes on loopback"
    );
    println!();
    println!("| measure | p50 (ms) | p90 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        ("drop → court inbox folder opened", &folder),
        ("drop → court `.done` (receipt signed)", &done),
    ] {
        println!(
            "| {what} | {:.1} | {:.1} | {:.1} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(*v.last().expect("samples"))
        );
    }
}
