//! What peers send to this node: bundles pushed by a committee
//! (`POST /v1/bundles`) and applications submitted by the online platform
//! (`POST /v1/applications`). Each body is checked against its limit and the
//! free disk before a byte is written, then streamed to a file.

use std::io;
use std::sync::Arc;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{declared_length, receive_to_file, room_for};
use super::problems::{full, insufficient_storage, internal, json, problem};
use super::{Api, ResBody};
use crate::config::{Config, DeliveryMode, Role};
use crate::types::{AgencyId, BundleId};

/// Whether `caller` may push bundles to this node: only when this node's own
/// directory entry says `delivery = "push"` (the exchange delivers to it by
/// push), and only from a committee (the senders of applications).
fn may_push(config: &Config, caller: &AgencyId) -> bool {
    caller != &config.node.id
        && config.me().delivery == DeliveryMode::Push
        && config
            .directory
            .get(caller)
            .is_some_and(|p| p.role == Role::Committee)
}

/// `POST /v1/bundles`: a peer that may push ([`may_push`]) uploads a bundle
/// addressed to this node. Its declared length is checked against the limit and
/// the free disk before a byte is written; the body is streamed to a file under
/// `downloads/push/`, verified as sent by the caller, taken into the inbox once
/// ([`crate::inbox::deliver`]: a repeat is recognised by sender and id, a clash
/// of ids is `409`), and answered with this node's stored receipt — the same
/// bytes for every repeat.
pub(super) async fn push(
    api: &Arc<Api>,
    peer: &AgencyId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let live = api.live.get();
    let config = live.config.clone();
    if !may_push(&config, peer) {
        return problem(
            StatusCode::FORBIDDEN,
            "push-not-allowed",
            "Push not allowed",
            "this node does not take bundles from this peer by push",
        );
    }
    let max = config.limits.max_bundle_size;
    let Some(len) = declared_length(&req) else {
        return problem(
            StatusCode::LENGTH_REQUIRED,
            "length-required",
            "Length required",
            "send the bundle's size in Content-Length",
        );
    };
    if len > max {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bundle-too-large",
            "Bundle too large",
            format!("bundles are at most {max} bytes"),
        );
    }
    let dir = crate::inbox::push_dir(&config);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return internal(e);
    }
    if len > room_for(&dir, &api.limits) {
        return insufficient_storage(len);
    }
    let file_path = dir.join(format!("{}.sealpost", BundleId::generate()));
    if let Err(refusal) = receive_to_file(req.into_body(), &file_path, len, &api.limits).await {
        return refusal.problem("bundle-too-large");
    }
    let outcome = {
        let from = peer.clone();
        let path = file_path.clone();
        let audit = api.audit.clone();
        tokio::task::spawn_blocking(move || {
            crate::inbox::deliver_recorded(
                &config,
                &path,
                &from,
                audit.as_ref(),
                crate::audit::Via::Push,
            )
        })
        .await
        .map_err(|e| crate::inbox::InboxError::Io {
            context: "push task".into(),
            source: io::Error::other(e.to_string()),
        })
        .and_then(|r| r)
    };
    let _ = tokio::fs::remove_file(&file_path).await;
    match outcome {
        Ok(stored) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(stored.receipt))
            .expect("valid response"),
        Err(e @ crate::inbox::InboxError::Conflict(_)) => problem(
            StatusCode::CONFLICT,
            e.code(),
            "Bundle id already used",
            "a different bundle with this id was already received; use a new id",
        ),
        Err(e) if e.is_bundle_fault() => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.code(),
            "Bundle refused",
            e.to_string(),
        ),
        Err(e) => internal(e),
    }
}

/// `POST /v1/applications`: the committee's online platform (a peer with role
/// `platform`) submits an application as a zip — the same content a clerk drops
/// — and gets the outcome at once: 201 with the bundle id, or 422 with the same
/// reason codes and texts a clerk finds in `REJECTED.txt`.
pub(super) async fn submit(
    api: &Arc<Api>,
    peer: &AgencyId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let live = api.live.get();
    let config = live.config.clone();
    if config.directory.get(peer).map(|p| p.role) != Some(Role::Platform) {
        return problem(
            StatusCode::FORBIDDEN,
            "not-a-submitter",
            "Not a submitter",
            "only the committee's online platform may submit applications",
        );
    }
    let max = config.limits.max_total_size + (1 << 20);
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > max) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("an application is at most {max} bytes"),
        );
    }
    let staging = crate::intake::Intake::uploads_dir(&config.intake.root);
    if let Err(e) = tokio::fs::create_dir_all(&staging).await {
        return internal(e);
    }
    // Room for the upload, its extraction and its sealed bundle.
    let need = declared.unwrap_or(0).saturating_mul(3);
    if need > room_for(&staging, &api.limits) {
        return insufficient_storage(need);
    }
    let short = BundleId::generate();
    let name = format!("online-{}.zip", &short.as_str()[..12]);
    let path = staging.join(&name);
    if let Err(refusal) = receive_to_file(req.into_body(), &path, max, &api.limits).await {
        return refusal.problem("body-too-large");
    }
    let outbox = api.outbox.clone();
    let item = name.clone();
    let shared = api.intake.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let intake = match shared {
            Some(i) => i,
            None => Arc::new(crate::intake::Intake::new(config, outbox)?),
        };
        intake.submit(&path, &item)
    })
    .await;
    if let (Ok(Ok(crate::intake::Outcome::Accepted { id, .. })), Some(work)) =
        (&outcome, &api.casework)
    {
        if let Err(e) = work.cases().set_submitter(id, peer) {
            tracing::warn!(bundle = %id, error = %e, "cannot note the submitting platform on the case");
        }
    }
    match &outcome {
        Ok(Ok(crate::intake::Outcome::Accepted { .. })) => api.counters.accepted(),
        Ok(Ok(crate::intake::Outcome::Rejected { .. })) => api.counters.rejected(),
        _ => {}
    }
    match outcome {
        Ok(Ok(crate::intake::Outcome::Accepted { id, name })) => json(
            StatusCode::CREATED,
            &serde_json::json!({"id": id, "state": "queued", "item": name}),
        ),
        Ok(Ok(crate::intake::Outcome::Rejected { dir, name, .. })) => {
            let reasons = tokio::fs::read(dir.join("rejection.json"))
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|v| v["reasons"].clone())
                .unwrap_or(serde_json::Value::Null);
            let body = serde_json::json!({
                "type": "https://sealpost.invalid/problems/application-rejected",
                "title": "Application rejected",
                "status": 422,
                "code": "application-rejected",
                "detail": format!("the application was rejected and kept as rejected/{name}/ for the clerks"),
                "reasons": reasons,
            });
            Response::builder()
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .header(header::CONTENT_TYPE, "application/problem+json")
                .body(full(serde_json::to_vec(&body).expect("json")))
                .expect("valid response")
        }
        Ok(Ok(crate::intake::Outcome::Held { id, .. })) => internal(format!(
            "the upload for {id} kept changing while it was sealed"
        )),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}
