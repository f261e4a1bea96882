//! Answers: RFC 9457 problem documents with a stable `code`
//! ([`PROBLEM_CODES`] lists every one the server sends), JSON bodies, and the
//! few problems more than one handler answers with.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use super::ResBody;

/// Every problem `code` the server sends (besides the bundle-verification
/// codes of [`crate::bundle::BundleError::code`] on push, and the receipt codes of
/// [`crate::receipt::ReceiptError::code`], and the event codes of
/// [`crate::event::EventError::code`]). `docs/openapi.yaml` lists them all.
pub const PROBLEM_CODES: &[&str] = &[
    "bad-query",
    "not-found",
    "method-not-allowed",
    "body-timeout",
    "body-incomplete",
    "not-deliverable",
    "body-too-large",
    "bundle-too-large",
    "bad-range",
    "length-required",
    "push-not-allowed",
    "not-a-submitter",
    "bundle-id-conflict",
    "application-rejected",
    "insufficient-storage",
    "too-many-connections",
    "not-a-court",
    "event-court-mismatch",
    "event-committee-mismatch",
    "event-case-mismatch",
    "event-id-conflict",
    "internal",
];

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
}

pub(super) fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(super) fn problem(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: impl Into<String>,
) -> Response<ResBody> {
    let p = Problem {
        kind: format!("https://sealpost.invalid/problems/{code}"),
        title,
        status: status.as_u16(),
        detail: detail.into(),
        code,
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(full(serde_json::to_vec(&p).expect("problem serialises")))
        .expect("valid response")
}

pub(super) fn not_found() -> Response<ResBody> {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such bundle for this peer",
    )
}

pub(super) fn internal(e: impl std::fmt::Display) -> Response<ResBody> {
    tracing::error!(error = %e, "request failed");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the node could not complete the request; try again",
    )
}

pub(super) fn json(status: StatusCode, v: &impl Serialize) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(v).expect("json serialises")))
        .expect("valid response")
}

/// `507`: no room on the disk for `len` more bytes now.
pub(super) fn insufficient_storage(len: u64) -> Response<ResBody> {
    problem(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient-storage",
        "Insufficient storage",
        format!("this node has no room for {len} more bytes now; try again later"),
    )
}
