//! The audit log: append rate (one thread, and four sharing fsyncs), the cost
//! of a signed checkpoint, verification throughput, and the time to take a
//! proof's excerpt from a long log.
//!
//! `cargo bench --bench audit` (env `RECORDS`, default 100000: the size of the
//! log verified and excerpted; `APPENDS`, default 2000: durable appends timed).
//! Every append is acknowledged only after `fdatasync`, as in the daemon; the
//! log lives under `$TMPDIR` (default `/tmp`) on whatever disk that is.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufReader;
use std::time::Instant;

use sealpost::audit::{self, verify_log, Audit, Entry, Witness};
use sealpost::pki::ExchangeCa;
use sealpost::types::{BundleId, Sha256};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn fetched() -> Entry {
    Entry::BundleFetched {
        bundle_id: BundleId::generate(),
        peer: common::FUTIAN.parse().expect("id"),
    }
}

fn main() {
    let records = env("RECORDS", 100_000);
    let appends = env("APPENDS", 2_000);
    let net = common::Net::new();
    let key = net.config(common::COMMITTEE).keys.signing;
    let trust = ExchangeCa::load(&[net.path().join("ca.pem")]).expect("ca");
    let node = common::COMMITTEE.parse().expect("id");

    // Durable appends, one thread.
    let dir = net.out("one");
    let (log, _) = Audit::open(&dir, &node).expect("open");
    let t = Instant::now();
    for _ in 0..appends {
        log.append(fetched()).expect("append");
    }
    let one = appends as f64 / t.elapsed().as_secs_f64();

    // Four threads: their fsyncs are shared (group commit).
    let dir = net.out("four");
    let (log, _) = Audit::open(&dir, &node).expect("open");
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for _ in 0..appends / 4 {
                    log.append(fetched()).expect("append");
                }
            });
        }
    });
    let four = appends as f64 / t.elapsed().as_secs_f64();

    // Checkpoints (sign, append, fsync, witness).
    let t = Instant::now();
    let n_cp = 200;
    for _ in 0..n_cp {
        log.append(fetched()).expect("append");
        log.checkpoint(&key).expect("checkpoint");
    }
    let cp_ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(n_cp);

    // A long log: RECORDS records (written without waiting for each fsync
    // would be faster; this is the real path), one bundle's story at the
    // start, a checkpoint at the end.
    let dir = net.out("long");
    let (log, _) = Audit::open(&dir, &node).expect("open");
    let bundle = BundleId::generate();
    log.append(Entry::ApplicationAccepted {
        bundle_id: bundle,
        case_ref: "深劳人仲案〔2026〕1号".parse().expect("case"),
        court: common::FUTIAN.parse().expect("id"),
        item_sha256: Sha256::of(b"item"),
    })
    .expect("append");
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for _ in 0..records / 4 {
                    log.append(fetched()).expect("append");
                }
            });
        }
    });
    let fill = t.elapsed().as_secs_f64();
    let cp = log.checkpoint(&key).expect("checkpoint").expect("new");
    let size = std::fs::metadata(dir.join(audit::LOG_FILE))
        .expect("log")
        .len();

    let t = Instant::now();
    let report = verify_log(
        BufReader::new(std::fs::File::open(dir.join(audit::LOG_FILE)).expect("log")),
        Some(&trust),
        Witness::load(&dir).expect("witness").as_ref(),
    )
    .expect("read");
    let verify = t.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.problem);

    let t = Instant::now();
    let ex = log
        .excerpt(&bundle, cp.seq)
        .expect("excerpt")
        .expect("found");
    let excerpt = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let checked = audit::verify_excerpt(&ex, &trust).expect("excerpt verifies");
    let excerpt_verify = t.elapsed().as_secs_f64();
    assert_eq!(
        checked.records.len(),
        2,
        "its acceptance and the checkpoint"
    );

    println!("audit log: {appends} durable appends timed; a log of {records} records verified and excerpted; 2 cores\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| durable appends/s, one thread | {one:.0} |");
    println!("| durable appends/s, four threads (shared fsync) | {four:.0} |");
    println!("| signed checkpoint (ms) | {cp_ms:.2} |");
    println!(
        "| {records} records appended by four threads (s) | {fill:.2} ({:.0}/s) |",
        records as f64 / fill
    );
    println!(
        "| log size (MiB) / bytes per record | {:.1} / {} |",
        size as f64 / 1048576.0,
        size / (records as u64 + 2)
    );
    println!(
        "| verify the whole log (s) | {verify:.2} ({:.0} records/s) |",
        report.records as f64 / verify
    );
    println!(
        "| excerpt of the first bundle through the last checkpoint (s) | {excerpt:.2} ({:.1} MiB) |",
        ex.len() as f64 / 1048576.0
    );
    println!("| verify that excerpt (s) | {excerpt_verify:.2} |");
}
