//! The audit record parser and chain verifier. The first byte picks a mode:
//!
//! - even: the rest is a log or an excerpt, verified every way
//!   (`verify_log` with and without the exchange CA, `verify_excerpt`) —
//!   a report or a problem, never a panic;
//! - odd: a tamper. A log written by the library (`Audit`, signed with the
//!   vector committee's key, ending in a checkpoint) has bytes spliced into
//!   the part its last checkpoint signs: bytes 1..5 are the offset, byte 5
//!   how many bytes to remove, the rest what to insert. The verifier must
//!   never accept the tampered log.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealpost::audit::{verify_excerpt, verify_log, Audit, Entry};
use sealpost::types::Sha256;
use sealpost_fuzz::{committee, scratch};

/// The genuine log, and the offset of its last line (the closing checkpoint).
fn genuine() -> &'static (Vec<u8>, usize) {
    static G: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    G.get_or_init(|| {
        let c = committee();
        let dir = scratch().join("audit");
        let (audit, _) = Audit::open(&dir, &c.node.id).expect("open the audit log");
        audit
            .append(Entry::NodeStarted {
                version: "0.1.0".into(),
                signing_cert_sha256: Sha256::of(b"signing"),
                tls_cert_sha256: Sha256::of(b"tls"),
                ca_sha256: vec![Sha256::of(b"ca")],
            })
            .expect("append");
        audit
            .append(Entry::ApplicationRejected {
                item_sha256: Sha256::of("张伟".as_bytes()),
                reasons: vec!["document-missing".into(), "manifest-unknown-key".into()],
            })
            .expect("append");
        audit.checkpoint(&c.keys.signing).expect("checkpoint");
        audit.append(Entry::NodeStopped).expect("append");
        audit.checkpoint(&c.keys.signing).expect("checkpoint");
        let log = std::fs::read(audit.log_path()).expect("read the log");
        let body = &log[..log.len() - 1];
        let last = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let report = verify_log(&log[..], Some(&c.trust), None).expect("verify");
        assert!(report.ok(), "the genuine log does not verify: {report:?}");
        (log, last)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let trust = &committee().trust;
    if mode % 2 == 0 {
        for t in [Some(trust), None] {
            let report = verify_log(rest, t, None).expect("reading a slice cannot fail");
            if let Some(p) = &report.problem {
                assert!(!p.code.is_empty() && !p.message.is_empty());
            }
            assert!(report.records <= rest.split(|&b| b == b'\n').count() as u64);
        }
        match verify_excerpt(rest, trust) {
            Ok(x) => assert!(x.first_seq <= x.last_seq),
            Err(p) => assert!(!p.code.is_empty()),
        }
        return;
    }
    let (log, signed_end) = genuine();
    if rest.len() < 5 || *signed_end == 0 {
        return;
    }
    let at = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize % signed_end;
    let remove = (rest[4] as usize).min(signed_end - at);
    let insert = &rest[5..];
    let mut tampered = Vec::with_capacity(log.len() + insert.len());
    tampered.extend_from_slice(&log[..at]);
    tampered.extend_from_slice(insert);
    tampered.extend_from_slice(&log[at + remove..]);
    if &tampered == log {
        return;
    }
    let report = verify_log(&tampered[..], Some(trust), None).expect("verify");
    assert!(
        !report.ok(),
        "a tampered log verified: {}",
        String::from_utf8_lossy(&tampered)
    );
});
