//! The committee's bundles as a peer sees them: the listing of those waiting
//! for it (`GET /v1/bundles`, with long-poll), the download of one, whole or
//! one byte range (`GET`/`HEAD /v1/bundles/{id}`), and the receipt that
//! completes its delivery (`POST /v1/bundles/{id}/receipt`). A peer only ever
//! sees its own bundles: another peer's and a missing one are the same `404`.

use std::io;
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;

use super::body::{declared_length, read_body};
use super::problems::{full, insufficient_storage, internal, json, not_found, problem};
use super::{blocking, Api, ResBody};
use crate::outbox::{Delivery, OutboxError, State};
use crate::receipt::SignedReceipt;
use crate::types::{AgencyId, BundleId, Timestamp};

/// One waiting bundle in a listing.
#[derive(Debug, Serialize)]
struct Listed {
    id: BundleId,
    kind: crate::bundle::Kind,
    sender: AgencyId,
    case_ref: crate::types::CaseRef,
    size: u64,
    envelope_sha256: crate::types::Sha256,
    payload_sha256: crate::types::Sha256,
    queued_at: Timestamp,
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct Listing {
    bundles: Vec<Listed>,
    next_cursor: String,
}

/// The first value of `key` in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The longest `after` accepted (`docs/openapi.yaml`: `maxLength: 20`).
const MAX_CURSOR_LEN: usize = 20;

/// A non-negative whole number, saturating at `u64::MAX`; `None` if `s` is not
/// one or more ASCII digits.
fn saturating_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// What a listing asks for (`GET /v1/bundles?after=&limit=&wait=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// The cursor: bundles queued after it.
    pub after: u64,
    /// At most this many, 1 to 500 (50 when not given).
    pub limit: usize,
    /// How long to wait for one when none is waiting, as asked (the handler
    /// clamps it to the configured maximum).
    pub wait: Duration,
}

impl ListQuery {
    /// Reads a listing's query string; `Err` says what is wrong (`400 bad-query`).
    pub fn parse(query: &str) -> Result<Self, String> {
        let after: u64 = match query_param(query, "after") {
            None => 0,
            Some(a) => match saturating_digits(&a) {
                Some(n) if a.len() <= MAX_CURSOR_LEN => n,
                _ => {
                    return Err(format!(
                        "after must be a cursor returned by a previous listing (at most {MAX_CURSOR_LEN} digits)"
                    ))
                }
            },
        };
        let limit = match query_param(query, "limit").map(|l| saturating_digits(&l)) {
            None => 50,
            Some(Some(n)) if (1..=500).contains(&n) => n as usize,
            _ => return Err("limit must be a whole number from 1 to 500".into()),
        };
        let wait = match query_param(query, "wait") {
            None => Duration::ZERO,
            Some(w) => match saturating_digits(&w) {
                Some(n) => Duration::from_secs(n),
                None => return Err("wait must be a whole number of seconds".into()),
            },
        };
        Ok(Self { after, limit, wait })
    }
}

pub(super) async fn list(api: &Arc<Api>, peer: &AgencyId, query: ListQuery) -> Response<ResBody> {
    let ListQuery { after, limit, wait } = query;
    // Longer waits are clamped, as documented.
    let wait = wait.min(api.limits.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register for the wake-up before looking, so a bundle queued between
        // the look and the wait is not missed.
        let notified = api.outbox.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // sled reads are in-memory lookups: done inline, not on the blocking pool.
        let found = api.outbox.waiting(peer, after, limit);
        let found = match found {
            Ok(f) => f,
            Err(e) => return internal(e),
        };
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map(|d| d.seq).unwrap_or(after);
            let me = api.live.get().config.node.id.clone();
            let bundles = found
                .into_iter()
                .map(|d| Listed {
                    id: d.id,
                    kind: d.kind,
                    sender: me.clone(),
                    case_ref: d.case_ref,
                    size: d.size,
                    envelope_sha256: d.envelope_sha256,
                    payload_sha256: d.payload_sha256,
                    queued_at: d.queued_at,
                    state: d.state.name(),
                })
                .collect();
            return json(
                StatusCode::OK,
                &Listing {
                    bundles,
                    next_cursor: next.to_string(),
                },
            );
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

async fn find(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
) -> Result<Option<Delivery>, OutboxError> {
    let d = api.outbox.get(&id)?;
    Ok(d.filter(|d| &d.peer == peer && !matches!(d.state, State::Cancelled { .. })))
}

/// The byte range a `Range` header asks for, within a bundle of `len` bytes:
/// `Ok(None)` without the header; `Err` for anything but one satisfiable
/// `bytes=` range (the API serves one range, never `multipart/byteranges`).
/// Parsed and checked by `http-range-header`, which follows RFC 9110: a last
/// position beyond the end is clamped, a suffix longer than the bundle is the
/// whole bundle, `bytes=-0` and a first position at or past the end are
/// unsatisfiable.
fn requested_range(
    h: Option<&header::HeaderValue>,
    len: u64,
) -> Result<Option<RangeInclusive<u64>>, ()> {
    let Some(h) = h else { return Ok(None) };
    let text = h.to_str().map_err(|_| ())?;
    // At most one range: a second one is refused while parsing.
    let ranges = http_range_header::parse_range_header_with_max_ranges(text, NonZeroUsize::MIN)
        .and_then(|r| r.validate(len))
        .map_err(|_| ())?;
    match <[_; 1]>::try_from(ranges) {
        Ok([r]) => Ok(Some(r)),
        // Nothing to send (an empty bundle): no part of it is satisfiable.
        Err(_) => Err(()),
    }
}

pub(super) async fn download(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    let d = match find(api, peer, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    let etag = format!("\"{}\"", d.envelope_sha256);
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, &etag)
            .body(full(Bytes::new()))
            .expect("valid response");
    }
    if req.method() == Method::GET {
        api.counters.downloaded(peer);
    }
    let len = d.size;
    let range = match requested_range(req.headers().get(header::RANGE), len) {
        Ok(r) => r,
        Err(()) => {
            let mut r = problem(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad-range",
                "Range not satisfiable",
                format!("the bundle is {len} bytes; send one range such as bytes=0-1023"),
            );
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                header::HeaderValue::from_str(&format!("bytes */{len}")).expect("ASCII digits"),
            );
            return r;
        }
    };
    let (start, count, status) = match range {
        Some(r) => (
            *r.start(),
            r.end() - r.start() + 1,
            StatusCode::PARTIAL_CONTENT,
        ),
        None => (0, len, StatusCode::OK),
    };
    // HEAD is answered from the outbox record alone. A GET opens the file
    // here (a lookup in the kernel's caches, done inline rather than on the
    // blocking pool) so that a missing file is a 500, not a cut body; the
    // body is read from `start` with positioned reads.
    let file = if req.method() == Method::GET {
        let path = api.outbox.bundle_path(&id);
        match std::fs::File::open(&path) {
            Ok(f) => Some(f),
            Err(e) => return internal(format!("{}: {e}", path.display())),
        }
    } else {
        None
    };
    // Only the first fetch changes the state (and costs a durable write); a
    // resumed or repeated download of a fetched bundle changes nothing.
    if req.method() == Method::GET && matches!(d.state, State::Queued | State::Failed { .. }) {
        let outbox = api.outbox.clone();
        let policy = *api.outbox.policy();
        let now = Timestamp::now();
        if let Err(e) = blocking(move || {
            outbox.transition(&id, now, |d| match d.state {
                State::Queued | State::Failed { .. } | State::Fetched { .. } => {
                    d.fetch(now, &policy)
                }
                _ => Ok(()),
            })
        })
        .await
        {
            return internal(e);
        }
    }
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/vnd.sealpost.bundle+zip")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag);
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    let body = match file {
        Some(file) => crate::transport::FileBody::at(file, start, count).boxed(),
        None => full(Bytes::new()),
    };
    b.body(body).expect("valid response")
}

#[derive(Debug, Serialize)]
struct ReceiptAccepted<'a> {
    state: &'static str,
    receipt: &'a SignedReceipt,
}

pub(super) async fn receipt(
    api: &Arc<Api>,
    peer: &AgencyId,
    id: BundleId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let d = match find(api, peer, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!(
                "a receipt is at most {} bytes",
                api.limits.max_receipt_bytes
            ),
        )
    };
    if declared_length(&req).is_some_and(|n| n > api.limits.max_receipt_bytes as u64) {
        return too_large();
    }
    let mut body = Vec::new();
    if let Err(e) = read_body(
        req.into_body(),
        &mut body,
        api.limits.max_receipt_bytes as u64,
        &api.limits,
    )
    .await
    {
        return e.problem("body-too-large");
    }
    let live = api.live.get();
    let config = &live.config;
    let stored_path: PathBuf = api.outbox.receipt_path(&id);
    let signed: SignedReceipt = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt-malformed",
                "Receipt refused",
                e.to_string(),
            )
        }
    };
    let checked = signed
        .verify(&config.trust, &config.directory, Timestamp::now())
        .and_then(|r| {
            r.check(
                &id,
                &config.node.id,
                peer,
                &d.envelope_sha256,
                &d.payload_sha256,
            )
        });
    if let Err(e) = checked {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            "Receipt refused",
            e.to_string(),
        );
    }
    // Idempotent: once delivered, every valid receipt POST returns the original.
    if let State::Delivered { .. } = d.state {
        return match tokio::fs::read(&stored_path)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<SignedReceipt>(&b).ok())
        {
            Some(stored) => json(
                StatusCode::OK,
                &ReceiptAccepted {
                    state: "delivered",
                    receipt: &stored,
                },
            ),
            None => internal(format!(
                "delivered without a stored receipt at {}",
                stored_path.display()
            )),
        };
    }
    let outbox = api.outbox.clone();
    let bytes = serde_json::to_vec_pretty(&signed).expect("receipt serialises");
    let done = blocking(move || {
        match crate::fsutil::write_new_atomic(&stored_path, &bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(OutboxError::Io {
                    context: "cannot store the receipt".into(),
                    source: e,
                })
            }
        }
        let now = Timestamp::now();
        outbox.transition(&id, now, |d| d.deliver(now))?;
        let stored: SignedReceipt =
            serde_json::from_slice(&std::fs::read(&stored_path).map_err(|e| OutboxError::Io {
                context: "cannot read the stored receipt".into(),
                source: e,
            })?)
            .map_err(|e| OutboxError::Io {
                context: "stored receipt".into(),
                source: io::Error::other(e),
            })?;
        Ok(stored)
    })
    .await;
    match done {
        Ok(stored) => {
            tracing::info!(bundle = %id, %peer, "receipt verified; delivered");
            json(
                StatusCode::OK,
                &ReceiptAccepted {
                    state: "delivered",
                    receipt: &stored,
                },
            )
        }
        Err(OutboxError::Transition(e)) => problem(
            StatusCode::CONFLICT,
            "not-deliverable",
            "Not deliverable",
            e.to_string(),
        ),
        Err(e) if crate::fsutil::chain_is_disk_full(&e) => insufficient_storage(0),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(h: &str, len: u64) -> Result<Option<RangeInclusive<u64>>, ()> {
        requested_range(Some(&header::HeaderValue::from_str(h).expect("ascii")), len)
    }

    #[test]
    fn one_satisfiable_byte_range_or_416() {
        assert_eq!(requested_range(None, 1000), Ok(None));
        for (h, want) in [
            ("bytes=0-99", 0..=99),
            ("bytes=990-", 990..=999),
            ("bytes=-10", 990..=999),
            // A suffix longer than the bundle is all of it; a last position
            // beyond the end is clamped.
            ("bytes=-5000", 0..=999),
            ("bytes=10-5000", 10..=999),
            ("bytes=999-999", 999..=999),
        ] {
            assert_eq!(range(h, 1000), Ok(Some(want)), "{h}");
        }
        for h in [
            "bytes=0-1,5-6",
            "bytes=0-1, 0-1",
            "bytes=1000-",
            "bytes=1000-1001",
            "bytes=-0",
            "bytes=5-4",
            "items=0-1",
            "bytes=abc",
            "bytes=",
            "0-1",
        ] {
            assert_eq!(range(h, 1000), Err(()), "{h}");
        }
        assert_eq!(range("bytes=-5", 0), Err(()), "nothing of an empty file");
    }
}
