//! Verifying a chain — a whole log, or an excerpt in a proof of delivery —
//! and naming the first bad record.
//!
//! The verifier reads the log as a stream (memory does not grow with its
//! length) with one record of look-ahead, which is what it needs to tell an
//! edited record from an edited link, a reordering from a deletion, and an
//! inserted record from the genuine one after it.

use std::io::{self, BufRead};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;

use super::record::{checkpoint_statement, link, CheckpointFields, Head, Redacted, GENESIS};
use super::Witness;
use crate::pki::{ExchangeCa, SignerCert};
use crate::types::{AgencyId, Sha256, Timestamp};

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable code: `record-malformed`, `record-truncated`, `record-edited`,
    /// `record-missing`, `record-inserted`, `record-out-of-order`,
    /// `record-redacted`, `checkpoint-invalid`, `checkpoint-signer-invalid`,
    /// `log-truncated`, `witness-mismatch`, `excerpt-unsigned`.
    pub code: &'static str,
    /// The record named (its sequence number), when there is one.
    pub seq: Option<u64>,
    /// The line (from 1) where it was found.
    pub line: u64,
    /// That line's byte offset.
    pub offset: u64,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(
                f,
                "record {s} (line {}, offset {}): {} [{}]",
                self.line, self.offset, self.message, self.code
            ),
            None => write!(
                f,
                "line {} (offset {}): {} [{}]",
                self.line, self.offset, self.message, self.code
            ),
        }
    }
}

/// What verifying a chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Report {
    /// The node whose chain it is (from its first record).
    pub node: Option<AgencyId>,
    /// Records read before the first problem (or all).
    pub records: u64,
    /// Valid checkpoints among them.
    pub checkpoints: u64,
    /// The last valid checkpoint: its seq and time.
    pub last_checkpoint: Option<(u64, Timestamp)>,
    /// Records after the last valid checkpoint (not yet signed).
    pub unsigned: u64,
    /// The last good record: its seq and chain hash.
    pub head: Option<(u64, Sha256)>,
    /// Whether checkpoint signers were checked against an exchange CA.
    pub signers_checked: bool,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the chain verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// One record as read.
struct Item {
    line: u64,
    offset: u64,
    terminated: bool,
    parsed: Result<Parsed, String>,
}

struct Parsed {
    seq: u64,
    prev: Sha256,
    hash: Sha256,
    /// `None` for a redacted record.
    full: Option<Full>,
}

struct Full {
    head: Head,
    value: serde_json::Value,
}

/// The largest `seq` a record may have: one less than `u64::MAX`, so that
/// the record after any record has a number (a log never comes near it).
const MAX_SEQ: u64 = u64::MAX - 1;

fn check_seq(seq: u64) -> Result<u64, String> {
    if (1..=MAX_SEQ).contains(&seq) {
        Ok(seq)
    } else {
        Err(format!("seq {seq} is out of range (1 to {MAX_SEQ})"))
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON record: {e}"))?;
    if value.get("redacted").is_some() {
        let r: Redacted =
            serde_json::from_value(value).map_err(|e| format!("not a redacted record: {e}"))?;
        check_seq(r.seq)?;
        return Ok(Parsed {
            seq: r.seq,
            prev: r.prev,
            hash: link(&r.prev, &r.redacted),
            full: None,
        });
    }
    let head: Head =
        serde_json::from_value(value.clone()).map_err(|e| format!("not an audit record: {e}"))?;
    check_seq(head.seq)?;
    Ok(Parsed {
        seq: head.seq,
        prev: head.prev,
        hash: link(&head.prev, &Sha256::of(bytes)),
        full: Some(Full { head, value }),
    })
}

/// Reads records from `r`, one per line.
struct Items<R> {
    r: R,
    line: u64,
    offset: u64,
}

impl<R: BufRead> Iterator for Items<R> {
    type Item = io::Result<Item>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match self.r.read_until(b'\n', &mut buf) {
            Err(e) => Some(Err(e)),
            Ok(0) => None,
            Ok(n) => {
                let terminated = buf.last() == Some(&b'\n');
                if terminated {
                    buf.pop();
                }
                self.line += 1;
                let item = Item {
                    line: self.line,
                    offset: self.offset,
                    terminated,
                    parsed: parse(&buf),
                };
                self.offset += n as u64;
                Some(Ok(item))
            }
        }
    }
}

/// A whole log (from record 1) or an excerpt (from any record, with records
/// left out, ending in a checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Log,
    Excerpt,
}

/// Verifies a whole log read from `r`: the chain from record 1, every
/// checkpoint's signature (and, with `trust`, its signer's certificate), and,
/// with a `witness`, that the log still holds the last checkpoint recorded
/// beside it. Stops at the first problem.
pub fn verify_log<R: BufRead>(
    r: R,
    trust: Option<&ExchangeCa>,
    witness: Option<&Witness>,
) -> io::Result<Report> {
    let (report, _) = walk(r, trust, witness, Mode::Log, |_| {})?;
    Ok(report)
}

/// What an excerpt shows once verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Excerpt {
    /// The node whose chain it is.
    pub node: AgencyId,
    /// First and last record.
    pub first_seq: u64,
    /// The last record: the closing checkpoint.
    pub last_seq: u64,
    /// The closing checkpoint's time.
    pub checkpoint_at: Timestamp,
    /// The chain hash it signs (of record `last_seq - 1`).
    pub head: Sha256,
    /// The records shown in full, in order.
    pub records: Vec<serde_json::Value>,
}

/// Verifies an excerpt (lines of a log, some redacted), which must be one
/// unbroken run of records ending in a checkpoint whose signer the exchange CA
/// issued. The first record's `prev` is taken as given: the checkpoint's
/// signature covers it through every hash after it.
pub fn verify_excerpt(bytes: &[u8], trust: &ExchangeCa) -> Result<Excerpt, Problem> {
    let mut records = Vec::new();
    let (report, last) = walk(bytes, Some(trust), None, Mode::Excerpt, |v| {
        records.push(v.clone())
    })
    .map_err(|e| Problem {
        code: "record-malformed",
        seq: None,
        line: 0,
        offset: 0,
        message: e.to_string(),
    })?;
    if let Some(p) = report.problem {
        return Err(p);
    }
    let unsigned = |message: String| Problem {
        code: "excerpt-unsigned",
        seq: report.head.map(|h| h.0),
        line: 0,
        offset: 0,
        message,
    };
    let Some(last) = last else {
        return Err(unsigned("the excerpt is empty".into()));
    };
    let (Some(node), Some((cp_seq, cp_at)), Some((head_seq, _))) =
        (report.node.clone(), report.last_checkpoint, report.head)
    else {
        return Err(unsigned(
            "the excerpt has no checkpoint that signs its records".into(),
        ));
    };
    if cp_seq != head_seq {
        return Err(unsigned(format!(
            "the excerpt does not end with a checkpoint: records {}..{head_seq} after checkpoint {cp_seq} are not signed",
            cp_seq + 1
        )));
    }
    Ok(Excerpt {
        node,
        first_seq: last.0,
        last_seq: cp_seq,
        checkpoint_at: cp_at,
        head: last.1,
        records,
    })
}

/// The walk shared by both: returns the report and, for an excerpt, the first
/// record's seq and the closing checkpoint's signed head.
fn walk<R: BufRead>(
    r: R,
    trust: Option<&ExchangeCa>,
    witness: Option<&Witness>,
    mode: Mode,
    mut shown: impl FnMut(&serde_json::Value),
) -> io::Result<(Report, Option<(u64, Sha256)>)> {
    let mut report = Report {
        signers_checked: trust.is_some(),
        ..Report::default()
    };
    let mut items = Items {
        r,
        line: 0,
        offset: 0,
    }
    .peekable();
    // The last good record: seq, its prev, its hash, its line and offset.
    let mut last: Option<(u64, Sha256, Sha256, u64, u64)> = None;
    let mut first_seq = None;
    let mut signed_head = None;
    let mut witness_seen = false;
    while let Some(cur) = items.next() {
        let cur = cur?;
        let next = match items.peek() {
            Some(Ok(n)) => n.parsed.as_ref().ok().map(|p| (p.seq, p.prev)),
            Some(Err(_)) | None => None,
        };
        let at_end = items.peek().is_none();
        let fail = |code, seq, message: String| Problem {
            code,
            seq,
            line: cur.line,
            offset: cur.offset,
            message,
        };
        let expected_seq = last.map(|l| l.0 + 1);
        let p = match &cur.parsed {
            Ok(p) => p,
            Err(e) => {
                let (code, message) = if !cur.terminated && at_end {
                    (
                        "record-truncated",
                        format!("the last line is incomplete (no line feed; a write cut short, or the file was cut): {e}"),
                    )
                } else {
                    ("record-malformed", e.clone())
                };
                report.problem = Some(fail(code, expected_seq, message));
                break;
            }
        };
        if !cur.terminated {
            report.problem = Some(fail(
                "record-truncated",
                Some(p.seq),
                "the last line has no line feed: the record may be cut short".into(),
            ));
            break;
        }
        if p.full.is_none() && mode == Mode::Log {
            report.problem = Some(fail(
                "record-redacted",
                Some(p.seq),
                "a log holds every record in full; this one is redacted".into(),
            ));
            break;
        }
        let (exp_seq, exp_prev) = match (last, mode) {
            (Some((s, _, h, _, _)), _) => (s + 1, h),
            (None, Mode::Log) => (1, GENESIS),
            (None, Mode::Excerpt) => (p.seq, p.prev),
        };
        if p.seq != exp_seq || p.prev != exp_prev {
            let linked_forward = next.is_some_and(|(_, np)| np == p.hash);
            let problem = match last {
                // Two records claim the same predecessor: one was inserted;
                // the genuine one is linked to the record after it.
                Some((ls, lprev, _, lline, loffset)) if p.prev == lprev => {
                    if linked_forward {
                        Problem {
                            code: "record-inserted",
                            seq: Some(ls),
                            line: lline,
                            offset: loffset,
                            message: format!("this record was inserted: it and the record after it (line {}) both follow record {}", cur.line, ls.saturating_sub(1)),
                        }
                    } else {
                        fail(
                            "record-inserted",
                            Some(p.seq),
                            format!("this record was inserted: it follows record {} as the record before it (seq {ls}) does", ls.saturating_sub(1)),
                        )
                    }
                }
                _ if p.seq < exp_seq => fail(
                    "record-out-of-order",
                    Some(p.seq),
                    format!("record {} comes after record {}", p.seq, exp_seq - 1),
                ),
                _ if p.seq > exp_seq => {
                    if next.is_some_and(|(ns, _)| ns == exp_seq) {
                        fail(
                            "record-out-of-order",
                            Some(p.seq),
                            format!("records {exp_seq} and {} are out of order", p.seq),
                        )
                    } else {
                        fail(
                            "record-missing",
                            Some(exp_seq),
                            format!(
                                "record {exp_seq} is missing (deleted): the log goes from record {} to record {}",
                                exp_seq - 1,
                                p.seq
                            ),
                        )
                    }
                }
                // Right place, wrong link: either the record before was edited
                // (this one still links to what it was), or this one's `prev`.
                None => fail(
                    "record-edited",
                    Some(p.seq),
                    "the first record does not begin the chain (its prev is not 64 zeros)".into(),
                ),
                Some((ls, _, _, lline, loffset)) if linked_forward || next.is_none() => Problem {
                    code: "record-edited",
                    seq: Some(ls),
                    line: lline,
                    offset: loffset,
                    message: format!(
                        "record {ls} was altered: its hash no longer matches the one record {} recorded",
                        p.seq
                    ),
                },
                Some(_) => fail(
                    "record-edited",
                    Some(p.seq),
                    format!(
                        "record {} was altered: its prev no longer names record {}",
                        p.seq,
                        p.seq - 1
                    ),
                ),
            };
            report.problem = Some(problem);
            break;
        }
        if let Some(full) = &p.full {
            match &report.node {
                None => report.node = Some(full.head.node.clone()),
                Some(n) if *n != full.head.node => {
                    report.problem = Some(fail(
                        "record-edited",
                        Some(p.seq),
                        format!(
                            "record {} names node {} in a chain of {}",
                            p.seq, full.head.node, n
                        ),
                    ));
                    break;
                }
                Some(_) => {}
            }
            if full.head.kind == "checkpoint" {
                if let Err((code, message)) = check_checkpoint(full, trust) {
                    let since = match report.last_checkpoint {
                        Some((s, _)) => format!("after checkpoint {s}"),
                        None => "from the start".into(),
                    };
                    report.problem = Some(fail(
                        code,
                        Some(p.seq),
                        format!(
                            "checkpoint {}: {message} (records {since} up to it cannot be trusted)",
                            p.seq
                        ),
                    ));
                    break;
                }
                report.checkpoints += 1;
                report.last_checkpoint = Some((p.seq, full.head.at));
                signed_head = Some(full.head.prev);
            }
            shown(&full.value);
        }
        if let Some(w) = witness {
            if w.seq == p.seq {
                witness_seen = true;
                if w.hash != p.hash {
                    report.problem = Some(fail(
                        "witness-mismatch",
                        Some(p.seq),
                        format!(
                            "the witness file says checkpoint {} has hash {}, the log's record {} has {}: the log was rewritten",
                            w.seq, w.hash, p.seq, p.hash
                        ),
                    ));
                    break;
                }
            }
        }
        first_seq.get_or_insert(p.seq);
        report.records += 1;
        last = Some((p.seq, p.prev, p.hash, cur.line, cur.offset));
        report.head = Some((p.seq, p.hash));
    }
    if report.problem.is_none() {
        if let Some(w) = witness {
            if !witness_seen {
                let end = report.head.map(|h| h.0).unwrap_or(0);
                report.problem = Some(Problem {
                    code: "log-truncated",
                    seq: Some(end + 1),
                    line: report.records + 1,
                    offset: 0,
                    message: format!(
                        "the log ends at record {end}, but checkpoint {} was written (witness file): records {}..{} were removed",
                        w.seq,
                        end + 1,
                        w.seq
                    ),
                });
            }
        }
    }
    report.unsigned = match (report.head, report.last_checkpoint) {
        (Some((h, _)), Some((c, _))) => h - c,
        (Some((h, _)), None) => h - first_seq.unwrap_or(1) + 1,
        _ => 0,
    };
    Ok((report, first_seq.zip(signed_head)))
}

fn check_checkpoint(full: &Full, trust: Option<&ExchangeCa>) -> Result<(), (&'static str, String)> {
    let bad = |m: String| ("checkpoint-invalid", m);
    let cp: CheckpointFields =
        serde_json::from_value(full.value.clone()).map_err(|e| bad(format!("malformed: {e}")))?;
    let h = &full.head;
    if cp.head_seq.checked_add(1) != Some(h.seq) || cp.head != h.prev {
        return Err(bad(format!(
            "it signs record {} with hash {}, not the record before it",
            cp.head_seq, cp.head
        )));
    }
    let cert = SignerCert::from_pem(cp.signer.as_bytes())
        .map_err(|e| ("checkpoint-signer-invalid", e.to_string()))?;
    let sig = B64
        .decode(&cp.signature)
        .map_err(|e| bad(format!("the signature is not base64: {e}")))?;
    let statement = checkpoint_statement(&h.node, cp.head_seq, &cp.head, h.at);
    cert.verify(statement.as_bytes(), &sig)
        .map_err(|_| bad("the signature does not verify".into()))?;
    if cert.agency() != &h.node {
        return Err((
            "checkpoint-signer-invalid",
            format!("signed by {}, not by the node {}", cert.agency(), h.node),
        ));
    }
    if let Some(ca) = trust {
        ca.check_issued(cert.der(), h.at)
            .map_err(|e| ("checkpoint-signer-invalid", e.to_string()))?;
    }
    Ok(())
}
