//! The court's sender: posts each signed event waiting in
//! `<data_dir>/followup/outgoing/` to the committee that sent the bundle it
//! is about, and records the answer.
//!
//! **Where to.** The committee is the event's own `committee` field, which
//! the folder took from the inbox's record of who delivered the bundle
//! (`received/<bundle-id>.json`). Its peer-directory entry gives the
//! `endpoint`; the request is `POST <endpoint>/v1/cases/<case>/events`, the
//! case number percent-encoded as one UTF-8 path segment, over mutual TLS
//! with this node's certificate ([`crate::transport::client`]: kept
//! connections, the `[client] proxy` if set). The body is the stored file,
//! byte for byte (a [`super::Submission`]).
//!
//! **Answers.**
//! - `201` (recorded) or `200` (the same event was already recorded): the
//!   file moves to `sent/`, the clerk's `accepted/<name>.txt` says when.
//! - `403`, `404`, `409`, `413`, `422` and other 4xx but `400` (the
//!   committee's `body-incomplete`), `408` and `429`: refused for good. The file moves to `failed/` beside
//!   `<id>.answer.json` (status, code, detail); the clerk gets
//!   `problems/<name>.txt` with the committee's code and detail. It is never
//!   sent again by itself.
//! - Anything else — no connection, TLS failure, `400`, `408`, `429`, `5xx`, no
//!   answer within [`ANSWER_TIMEOUT`], no endpoint for the committee in the
//!   directory: the event stays in `outgoing/` and is tried again on its own
//!   schedule (1 s doubling to 10 min, with jitter), one log line per
//!   attempt. The other events go on meanwhile: one bad event, or one
//!   unreachable committee, holds up nothing else.
//!
//! **Exactly once.** The event id is fixed when the clerk's item is claimed
//! and the file is written once; a repeat (an answer lost, a restart between
//! the answer and the move) is answered `200` by the committee with the
//! original result, so an event is recorded once however often it is sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio_util::sync::CancellationToken;

use super::spool::{self, Spool, Status};
use crate::config::Config;
use crate::event::{EventId, Submission};
use crate::transport::client::PeerClient;
use crate::types::{printable, AgencyId, CaseRef, Timestamp};

/// A path segment keeps only the unreserved characters of RFC 3986.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The committee's path for the events of `case`.
pub fn events_path(case: &CaseRef) -> String {
    format!(
        "/v1/cases/{}/events",
        utf8_percent_encode(case.as_str(), SEGMENT)
    )
}

/// First and longest wait before an event is tried again.
pub const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// How long an answer may take to come.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `outgoing/` is looked at when nothing is due.
const SCAN: Duration = Duration::from_millis(500);

/// What one attempt came to.
#[derive(Debug)]
enum Sent {
    /// Recorded (`recorded_at` as the committee said, if it did).
    Recorded(String),
    /// Refused for good.
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
}

#[derive(Debug)]
struct Failing {
    attempts: u32,
    next: tokio::time::Instant,
}

/// Sends the signed events of a court node (see the module doc).
#[derive(Debug)]
pub struct Sender {
    config: Arc<Config>,
    spool: Spool,
    clients: std::sync::Mutex<HashMap<AgencyId, PeerClient>>,
    audit: Option<crate::audit::Audit>,
}

impl Sender {
    /// A sender with `config` (a reload starts a new one).
    pub fn new(config: Arc<Config>) -> std::io::Result<Self> {
        let spool = Spool::of(&config);
        spool.create()?;
        Ok(Self {
            config,
            spool,
            clients: std::sync::Mutex::new(HashMap::new()),
            audit: None,
        })
    }

    /// Records each event the committee recorded (`followup-sent`) in `audit`.
    #[must_use]
    pub fn auditing(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    fn client(&self, committee: &AgencyId) -> Result<PeerClient, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(committee) {
            return Ok(c.clone());
        }
        let peer = self
            .config
            .directory
            .get(committee)
            .ok_or_else(|| format!("the committee {committee} is not in the peer directory"))?;
        if peer.endpoint.is_none() {
            return Err(format!(
                "the committee {committee} has no endpoint in the peer directory"
            ));
        }
        let c = PeerClient::new(&self.config, peer.clone()).map_err(|e| e.to_string())?;
        clients.insert(committee.clone(), c.clone());
        Ok(c)
    }

    /// The events waiting, oldest first (by name: ids are random, so by
    /// modification time).
    async fn waiting(&self) -> Vec<EventId> {
        let Ok(mut rd) = tokio::fs::read_dir(&self.spool.outgoing).await else {
            return Vec::new();
        };
        let mut v = Vec::new();
        while let Ok(Some(e)) = rd.next_entry().await {
            let id = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<EventId>().ok());
            if let Some(id) = id {
                let t = e.metadata().await.and_then(|m| m.modified()).ok();
                v.push((t, id));
            }
        }
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Sends until `shutdown`; an event being sent when it comes is finished.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut failing: HashMap<EventId, Failing> = HashMap::new();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let waiting = self.waiting().await;
            failing.retain(|id, _| waiting.contains(id));
            for id in waiting {
                if shutdown.is_cancelled() {
                    return;
                }
                if failing
                    .get(&id)
                    .is_some_and(|f| f.next > tokio::time::Instant::now())
                {
                    continue;
                }
                match self.send(&id).await {
                    Ok(()) => {
                        failing.remove(&id);
                    }
                    Err(e) => {
                        let f = failing.entry(id).or_insert(Failing {
                            attempts: 0,
                            next: tokio::time::Instant::now(),
                        });
                        let wait = crate::retry::delay(f.attempts, RETRY.0, RETRY.1);
                        f.attempts = f.attempts.saturating_add(1);
                        f.next = tokio::time::Instant::now() + wait;
                        tracing::warn!(event = %id, attempt = f.attempts, retry_in = ?wait, error = %e, "follow-up event not sent; the others go on, this one is tried again");
                    }
                }
            }
            let next = failing.values().map(|f| f.next).min();
            let wait = next
                .map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
                .unwrap_or(SCAN)
                .clamp(Duration::from_millis(20), SCAN);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at event `id`. `Err`: try again later.
    async fn send(&self, id: &EventId) -> Result<(), String> {
        let file = Spool::file(&self.spool.outgoing, id);
        let bytes = match tokio::fs::read(&file).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        let event = serde_json::from_slice::<Submission>(&bytes)
            .ok()
            .and_then(|s| s.signed().unverified());
        let Some(event) = event else {
            // Our own file, damaged: nothing a retry can mend.
            self.finish(
                id,
                None,
                Sent::Refused {
                    status: 0,
                    code: "local-file-damaged".into(),
                    detail: format!("{} cannot be read as a signed event", file.display()),
                },
            )
            .await;
            return Ok(());
        };
        let client = self.client(&event.committee)?;
        let path = events_path(&event.case_number);
        let answer = tokio::time::timeout(
            ANSWER_TIMEOUT,
            client.request_idempotent(
                Method::POST,
                &path,
                &[(header::CONTENT_TYPE, "application/json".into())],
                Bytes::from(bytes),
            ),
        )
        .await
        .map_err(|_| {
            format!(
                "no answer from {} within {ANSWER_TIMEOUT:?}",
                event.committee
            )
        })?
        .map_err(|e| e.to_string())?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let field = |k: &str| {
            json.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let sent = match status {
            StatusCode::OK | StatusCode::CREATED => {
                Sent::Recorded(field("recorded_at").unwrap_or_default())
            }
            // 400 is the committee's `body-incomplete` (the body was cut
            // short on the way): worth sending again, like 408 and 429.
            StatusCode::BAD_REQUEST
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS => {
                return Err(format!("{status} from {}", event.committee))
            }
            s if s.is_client_error() => Sent::Refused {
                status: s.as_u16(),
                code: field("code").unwrap_or_else(|| format!("http-{}", s.as_u16())),
                detail: field("detail")
                    .or_else(|| field("title"))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect()),
            },
            s => {
                return Err(format!(
                    "{s} from {} [{}]",
                    event.committee,
                    field("code").unwrap_or_default()
                ))
            }
        };
        self.finish(id, Some(&event.committee), sent).await;
        Ok(())
    }

    /// Moves the file to `sent/` or `failed/` and tells the clerk.
    async fn finish(&self, id: &EventId, committee: Option<&AgencyId>, sent: Sent) {
        let spool = self.spool.clone();
        let config = self.config.clone();
        let id = *id;
        let committee = committee.cloned();
        let audit = self.audit.clone();
        let done = tokio::task::spawn_blocking(move || {
            finish_blocking(&config, &spool, &id, committee.as_ref(), &sent)?;
            if let (Sent::Recorded(_), Some(a), Some(c)) = (&sent, &audit, &committee) {
                let event = std::fs::read(Spool::file(&spool.sent, &id))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Submission>(&b).ok())
                    .and_then(|s| s.signed().unverified());
                if let Some(event) = event {
                    if let Err(e) = a.append(crate::audit::Entry::FollowupSent {
                        event_id: id.to_string(),
                        case_ref: event.case_number.clone(),
                        committee: c.clone(),
                    }) {
                        tracing::error!(error = %e, "cannot append to the audit log");
                    }
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(event = %id, error = %e, "cannot record what the committee answered; the event is sent again later (the committee answers a repeat with the original)")
            }
            Err(e) => tracing::error!(event = %id, error = %e, "the recording task failed"),
        }
    }
}

fn finish_blocking(
    config: &Config,
    spool: &Spool,
    id: &EventId,
    committee: Option<&AgencyId>,
    sent: &Sent,
) -> std::io::Result<()> {
    let item = spool.item(id);
    let followup = config
        .followup
        .as_ref()
        .map(|f| super::folder::Dirs::under(&f.root));
    let peer = committee.and_then(|c| config.directory.get(c));
    match sent {
        Sent::Recorded(at) => {
            spool.settle(id, &spool.sent)?;
            tracing::info!(event = %id, committee = ?committee.map(AgencyId::as_str), recorded_at = %printable(at), "follow-up event recorded by the committee");
            if let (Some(item), Some(dirs)) = (&item, &followup) {
                let at = if at.is_empty() {
                    Timestamp::now().to_string()
                } else {
                    at.clone()
                };
                spool::write_accepted(&dirs.accepted, item, peer, &Status::Recorded(at))?;
            }
        }
        Sent::Refused {
            status,
            code,
            detail,
        } => {
            let answer = serde_json::json!({
                "event_id": id, "status": status, "code": code, "detail": detail,
                "at": Timestamp::now(),
            });
            let answer_file: PathBuf = spool.failed.join(format!("{id}.answer.json"));
            crate::fsutil::write_replace_atomic(
                &answer_file,
                &serde_json::to_vec_pretty(&answer).expect("json"),
            )?;
            spool.settle(id, &spool.failed)?;
            tracing::error!(event = %id, committee = ?committee.map(AgencyId::as_str), status, code = %printable(code), detail = %printable(detail), "follow-up event refused by the committee; moved to failed/ and the clerks told");
            if let (Some(item), Some(dirs)) = (&item, &followup) {
                let status_note = Status::Refused {
                    status: *status,
                    code: code.clone(),
                    detail: detail.clone(),
                };
                spool::write_accepted(&dirs.accepted, item, peer, &status_note)?;
                let [plain, _] = crate::intake::notes::candidate_names(&item.name, id, ".txt");
                crate::fsutil::write_replace_atomic(
                    &dirs.problems.join(plain),
                    spool::render_refused(item, *status, code, detail, Timestamp::now()).as_bytes(),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_is_one_percent_encoded_path_segment() {
        let case: CaseRef = "深劳人仲案〔2026〕3310号".parse().expect("case");
        let p = events_path(&case);
        assert!(p.starts_with("/v1/cases/%E6%B7%B1"), "{p}");
        assert!(p.ends_with("%E5%8F%B7/events"), "{p}");
        let odd: CaseRef = "A 1?#%".parse().expect("case");
        assert_eq!(events_path(&odd), "/v1/cases/A%201%3F%23%25/events");
    }
}
