//! `GET /v1/cases/{case}` and `POST /v1/cases/{case}/events`: a case's
//! timeline for the peers it concerns, and the court's follow-up events.
//!
//! A case that does not exist and a case that is not the caller's get the
//! same `404 not-found`, so nobody learns which case numbers exist.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{declared_length, read_body};
use super::problems::{internal, json, problem};
use super::{Api, ResBody};
use crate::event::Submission;
use crate::followup::casework::Refusal;
use crate::types::{AgencyId, CaseRef, Timestamp};

/// The case in a request path, percent-decoded; `None` if it is not a case number.
pub(super) fn case_of(raw: Option<&str>) -> Option<CaseRef> {
    let raw = raw?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    decoded.parse().ok()
}

pub(super) fn no_case() -> Response<ResBody> {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such case for this peer",
    )
}

/// `GET /v1/cases/{case}`: the case's bundles, the court's events and the
/// timeline, for its court and the platform that submitted it.
pub(super) async fn get(api: &Arc<Api>, peer: &AgencyId, case: CaseRef) -> Response<ResBody> {
    let Some(work) = api.casework.clone() else {
        return no_case();
    };
    let peer = peer.clone();
    let found = tokio::task::spawn_blocking(move || {
        if work.concerns(&peer, &case)?.is_none() {
            return Ok(None);
        }
        work.view(&case)
    })
    .await;
    match found {
        Ok(Ok(Some(mut view))) => {
            // Addresses stay with the committee.
            for e in &mut view.timeline {
                use crate::cases::Step;
                match &mut e.step {
                    Step::NotificationSent { recipient, .. } => *recipient = mask(recipient),
                    Step::NotificationRetrying {
                        recipient, error, ..
                    }
                    | Step::NotificationFailed {
                        recipient, error, ..
                    } => {
                        // A relay's reply often quotes the address.
                        *error = error.replace(recipient.as_str(), &mask(recipient));
                        *recipient = mask(recipient);
                    }
                    _ => {}
                }
            }
            json(StatusCode::OK, &view)
        }
        Ok(Ok(None)) => no_case(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// `a***@example.com`, `+86 1***`: enough to tell which, not enough to use.
fn mask(recipient: &str) -> String {
    match recipient.split_once('@') {
        Some((local, domain)) => {
            format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
        }
        None => format!("{}***", recipient.chars().take(4).collect::<String>()),
    }
}

/// Largest event body: the event and its attachments, base64-encoded.
pub const MAX_EVENT_BYTES: u64 = 48 << 20;

/// `POST /v1/cases/{case}/events`: a court's follow-up event.
pub(super) async fn post_event(
    api: &Arc<Api>,
    peer: &AgencyId,
    case: CaseRef,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let Some(work) = api.casework.clone() else {
        return no_case();
    };
    // Who may post, before a byte of the body is read.
    if api.live.get().config.directory.get(peer).map(|p| p.role) != Some(crate::config::Role::Court)
    {
        return problem(
            StatusCode::FORBIDDEN,
            "not-a-court",
            "Not a court",
            "only courts post follow-up events",
        );
    }
    if declared_length(&req).is_some_and(|n| n > MAX_EVENT_BYTES) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("an event with its attachments is at most {MAX_EVENT_BYTES} bytes"),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = read_body(req.into_body(), &mut body, MAX_EVENT_BYTES, &api.limits).await {
        return e.problem("body-too-large");
    }
    let submission: Submission = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "event-malformed",
                "Event refused",
                format!("the body is not a submission: {e}"),
            )
        }
    };
    drop(body);
    let peer = peer.clone();
    let done = tokio::task::spawn_blocking(move || {
        work.receive(&peer, &case, &submission, Timestamp::now())
    })
    .await;
    match done {
        Ok(Ok(r)) => json(
            if r.repeat {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &r,
        ),
        Ok(Err(Refusal::NotACourt)) => problem(
            StatusCode::FORBIDDEN,
            "not-a-court",
            "Not a court",
            "only courts post follow-up events",
        ),
        Ok(Err(Refusal::NotFound)) => no_case(),
        Ok(Err(Refusal::Invalid(e))) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            "Event refused",
            e.to_string(),
        ),
        Ok(Err(Refusal::Mismatch { code, detail })) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "Event refused",
            detail,
        ),
        Ok(Err(Refusal::Conflict(id))) => problem(
            StatusCode::CONFLICT,
            "event-id-conflict",
            "Event id conflict",
            format!(
                "event {id} was recorded before with other content; a new event needs a new id"
            ),
        ),
        Ok(Err(Refusal::Store(e))) => internal(e),
        Ok(Err(Refusal::Queue(e))) => internal(e),
        Err(e) => internal(e),
    }
}
