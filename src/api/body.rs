//! Request bodies: the declared length, free room for them, and reading them
//! under the size limit and the minimum-rate rule (point 5 of the module doc
//! of [`super`]).

use std::io;
use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::problems::{insufficient_storage, internal, problem};
use super::ResBody;
use crate::config::ServerLimits as Limits;

/// The request's `Content-Length`, if it sent a valid one.
pub(super) fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Free space on the file system holding `dir`, minus what must stay free.
pub(super) fn room_for(dir: &std::path::Path, limits: &Limits) -> u64 {
    crate::fsutil::free_space(dir)
        .map(|free| free.saturating_sub(limits.min_free_space))
        .unwrap_or(u64::MAX)
}

/// Why a request body was not received.
#[derive(Debug)]
pub(super) enum BodyError {
    /// More than the allowed bytes.
    TooLarge(u64),
    /// It fell below the minimum rate (or never started).
    TooSlow,
    /// The connection broke, or fewer bytes came than declared.
    Incomplete(String),
    /// Writing it failed locally.
    Local(io::Error),
}

impl BodyError {
    pub(super) fn problem(&self, too_large_code: &'static str) -> Response<ResBody> {
        match self {
            BodyError::TooLarge(max) => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large_code,
                "Body too large",
                format!("at most {max} bytes are accepted here"),
            ),
            BodyError::TooSlow => problem(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Body too slow",
                "the request body did not arrive fast enough",
            ),
            BodyError::Incomplete(why) => problem(
                StatusCode::BAD_REQUEST,
                "body-incomplete",
                "Body incomplete",
                why.clone(),
            ),
            BodyError::Local(e) if crate::fsutil::is_disk_full(e) => insufficient_storage(0),
            BodyError::Local(e) => internal(e),
        }
    }
}

/// Reads a request body into `sink`: at most `max` bytes, arriving at an
/// average of at least `limits.min_body_rate` bytes per second once
/// `limits.body_grace` has passed (each byte received extends the deadline by
/// `1 / min_body_rate` seconds). Returns the byte count.
pub(super) async fn read_body<W: AsyncWrite + Unpin>(
    mut body: Incoming,
    sink: &mut W,
    max: u64,
    limits: &Limits,
) -> Result<u64, BodyError> {
    let start = tokio::time::Instant::now();
    let rate = limits.min_body_rate.max(1) as f64;
    let mut received: u64 = 0;
    loop {
        let deadline = start + limits.body_grace + Duration::from_secs_f64(received as f64 / rate);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Incomplete(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            if received > max {
                return Err(BodyError::TooLarge(max));
            }
            sink.write_all(data).await.map_err(BodyError::Local)?;
        }
    }
    Ok(received)
}

/// Streams a request body into a new file at `path` ([`read_body`]'s rules),
/// fsynced. On failure the file is removed.
pub(super) async fn receive_to_file(
    body: Incoming,
    path: &std::path::Path,
    max: u64,
    limits: &Limits,
) -> Result<u64, BodyError> {
    let written = async {
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(BodyError::Local)?;
        let n = read_body(body, &mut file, max, limits).await?;
        file.sync_all().await.map_err(BodyError::Local)?;
        Ok(n)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    written
}
