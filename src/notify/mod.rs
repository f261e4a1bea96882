//! Applicant notifications: each step that matters to the applicant — the
//! court signed for the application, and each follow-up the court sent —
//! becomes an e-mail (SMTP with lettre, or `.eml` files for the demo) and, where
//! configured, an SMS through an HMAC-signed webhook. `docs/notifications.md`
//! is the operator's and integrator's view; this doc is the specification.
//!
//! ## The queue
//!
//! One record per (event key, channel, recipient), in the sled tree `notify`
//! of the outbox's store ([`Outbox::tree`]); its id is the hex SHA-256 of the
//! JSON array `[event_key, channel, recipient]`, and it is the idempotency
//! key everywhere (e-mail `Message-ID` `<id@node.sealpost>`, the webhook's
//! `Idempotency-Key`, the `.eml` file's name).
//!
//! | key | value |
//! |---|---|
//! | `r/<id>` | [`Record`] as JSON (with the [`Notice`] it renders) |
//! | `c/<case-ref>\0<id>` | empty: the records of a case ([`Notifier::records_for_case`]) |
//! | `q/<due: unix ms, u64 big-endian><id>` | empty, for every record `pending` or `sending`: what to try next, in order |
//! | `w/<channel>\0<created: unix s, u64 big-endian><id>` | empty, for every record not yet final: the oldest waiting ([`Notifier::stats`]) |
//! | `n/<state>/<channel>` | how many records are in `state`, u64 big-endian |
//!
//! A record and its index keys change together in one sled transaction.
//!
//! ## States
//!
//! ```text
//!   enqueue          attempt                 accepted
//!  ────────► pending ───────► sending ───────────────► sent (final)
//!               ▲               │ │  4xx / unreachable
//!               └───────────────┘ │  (attempts left)
//!                                 └──── 5xx, invalid address, out of attempts ──► failed (final)
//! ```
//!
//! ## Durability and the duplicate window
//!
//! Every change is committed ([`Outbox::commit`]: flush and fsync) before it
//! is acted on: the record is `sending` on disk before the first byte goes to
//! the relay or gateway, and `sent`/`failed` on disk before subscribers hear
//! of it. A record found `sending` at start was interrupted mid-attempt; it is
//! sent again — same `Message-ID`, same `Idempotency-Key` — so that the one
//! duplicate this can cause (the relay had answered `250` and the node died
//! before it wrote `sent`) is recognisable as one. The `.eml` file transport
//! writes the same file name again (no duplicate at all); a webhook that
//! honours `Idempotency-Key` sees no duplicate either.

mod email;
mod message;
mod queue;
mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use crate::config::NotifySettings;
use crate::outbox::{Outbox, OutboxError};
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};
pub use queue::{Record, State};
pub use webhook::signature as sms_signature;

/// The language an applicant reads; their messages put it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// 中文.
    Zh,
    /// English.
    En,
}

impl Language {
    /// The other one.
    pub fn other(self) -> Self {
        match self {
            Language::Zh => Language::En,
            Language::En => Language::Zh,
        }
    }
    /// `zh` / `en`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

/// The court, as the applicant should know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourtInfo {
    /// Its agency id.
    pub id: AgencyId,
    /// Name in Chinese.
    pub name_zh: String,
    /// Name in English.
    pub name_en: String,
    /// The court's general telephone, if known.
    pub phone: Option<String>,
    /// The court's general e-mail, if known.
    pub email: Option<String>,
}

/// What happened.
#[allow(
    clippy::large_enum_variant,
    reason = "a notice is made once per step and stored as JSON; boxing the event would only make callers' code noisier"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum What {
    /// The court signed for the application (签收); the receipt's digest is
    /// the evidence reference.
    Delivered {
        /// When the receipt arrived.
        received_at: Timestamp,
        /// SHA-256 of the signed receipt.
        receipt_sha256: Sha256,
    },
    /// A verified follow-up event of the court.
    FollowUp {
        /// The event.
        event: crate::event::Event,
        /// When it arrived.
        received_at: Timestamp,
    },
}

impl What {
    /// `delivered`, or the event's kind (`ruling-issued`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            What::Delivered { .. } => "delivered",
            What::FollowUp { event, .. } => event.details.kind(),
        }
    }
}

/// A document stored durably by the committee, which may go with the e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeAttachment {
    /// File name shown to the applicant.
    pub name: String,
    /// MIME type.
    pub media_type: String,
    /// Where the bytes are.
    pub path: PathBuf,
}

/// One thing to tell one applicant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `delivered/<bundle-id>` or `event/<event-id>`: part of the idempotency key.
    pub event_key: String,
    /// The committee's case number.
    pub case_number: CaseRef,
    /// The bundle the application travelled in.
    pub bundle_id: BundleId,
    /// The applicant's language.
    pub language: Language,
    /// The applicant's name.
    pub applicant_name: String,
    /// Their e-mail address, if any.
    pub email: Option<String>,
    /// Their mobile number, if any.
    pub mobile: Option<String>,
    /// The court.
    pub court: CourtInfo,
    /// What happened.
    pub what: What,
    /// All the event's documents; attached only for kinds in `[notify] attach`.
    #[serde(default)]
    pub attachments: Vec<NoticeAttachment>,
}

/// A way of reaching an applicant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail.
    Email,
    /// SMS through the webhook.
    Sms,
}

impl Channel {
    /// `email` / `sms`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of one attempt, handed to subscribers once it is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The notice's event key.
    pub event_key: String,
    /// The channel.
    pub channel: Channel,
    /// The address or number.
    pub recipient: String,
    /// The case.
    pub case_number: CaseRef,
    /// The bundle.
    pub bundle_id: BundleId,
    /// Attempts so far (this one included).
    pub attempts: u32,
    /// What happened.
    pub result: OutcomeKind,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// Accepted by the relay, gateway or folder.
    Sent {
        /// When.
        at: Timestamp,
        /// `Message-ID` (e-mail) or idempotency key (SMS).
        message_id: String,
    },
    /// A temporary failure; tried again at `next_at`.
    Retrying {
        /// When.
        at: Timestamp,
        /// Why.
        error: String,
        /// The next attempt.
        next_at: Timestamp,
    },
    /// A permanent failure (5xx, invalid address, out of attempts).
    Failed {
        /// When.
        at: Timestamp,
        /// Why (with the server's reply).
        error: String,
    },
}

/// Queue figures of one channel, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Records pending or being sent.
    pub pending: u64,
    /// Age of the oldest of them, seconds.
    pub oldest_pending_age_secs: Option<u64>,
    /// Records sent, ever.
    pub sent: u64,
    /// Records failed for good, ever.
    pub failed: u64,
}

/// Queue figures by channel (every channel present, configured or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// By channel.
    pub by_channel: BTreeMap<Channel, ChannelStats>,
}

/// Notification failures (of the queue, not of a message: those are
/// [`OutcomeKind`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The store failed.
    #[error("notification queue: {0}")]
    Store(#[from] sled::Error),
    /// Committing to the outbox's store failed.
    #[error("notification queue: {0}")]
    Outbox(#[from] OutboxError),
    /// A record could not be decoded.
    #[error("notification queue record {key}: {detail}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A channel could not be set up from the settings.
    #[error("notification settings: {0}")]
    Settings(String),
    /// [`Notifier::run`] is already running for this queue.
    #[error("the notification sender is already running")]
    AlreadyRunning,
}

type Subscriber = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// The channels built from one version of the settings.
struct Active {
    settings: NotifySettings,
    mailer: Option<email::Mailer>,
    webhook: Option<webhook::Webhook>,
}

impl Active {
    fn build(settings: NotifySettings) -> Result<Self, NotifyError> {
        let mailer = settings
            .email
            .as_ref()
            .map(email::Mailer::new)
            .transpose()
            .map_err(NotifyError::Settings)?;
        let webhook = settings
            .sms
            .as_ref()
            .map(webhook::Webhook::new)
            .transpose()
            .map_err(NotifyError::Settings)?;
        Ok(Self {
            settings,
            mailer,
            webhook,
        })
    }
}

struct Inner {
    outbox: Outbox,
    queue: queue::Queue,
    node: AgencyId,
    active: RwLock<Arc<Active>>,
    subscribers: RwLock<Vec<Subscriber>>,
    wake: tokio::sync::Notify,
    running: AtomicBool,
}

/// The notification queue and its sender. Clones share everything.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("node", &self.inner.node)
            .field("channels", &self.channels())
            .finish_non_exhaustive()
    }
}

/// Clears the running flag when [`Notifier::run`] ends, however it ends.
struct RunGuard<'a>(&'a AtomicBool);
impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The result of sending once.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Worth trying again later.
    Transient(String),
    /// Never going to work.
    Permanent(String),
}

impl Notifier {
    /// Opens the queue in `outbox`'s store and builds the configured
    /// channels (an SMTP transport, a webhook client). Records interrupted
    /// while `sending` are due at once when [`Notifier::run`] starts.
    pub fn open(
        outbox: &Outbox,
        settings: NotifySettings,
        node: AgencyId,
    ) -> Result<Self, NotifyError> {
        let queue = queue::Queue::open(outbox)?;
        let active = Active::build(settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                outbox: outbox.clone(),
                queue,
                node,
                active: RwLock::new(Arc::new(active)),
                subscribers: RwLock::new(Vec::new()),
                wake: tokio::sync::Notify::new(),
                running: AtomicBool::new(false),
            }),
        })
    }

    /// Takes new settings (reload). Channels that cannot be built from them
    /// keep the old settings, and the reason is logged.
    pub fn reconfigure(&self, settings: NotifySettings) {
        match Active::build(settings) {
            Ok(a) => {
                *self
                    .inner
                    .active
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(a);
                self.inner.wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, "notification settings not applied; the old ones stay")
            }
        }
    }

    fn active(&self) -> Arc<Active> {
        self.inner
            .active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The configured channels.
    pub fn channels(&self) -> Vec<Channel> {
        let a = self.active();
        let mut v = Vec::new();
        if a.settings.email.is_some() {
            v.push(Channel::Email);
        }
        if a.settings.sms.is_some() {
            v.push(Channel::Sms);
        }
        v
    }

    /// Queues `notice`: one record per configured channel for which the
    /// notice has an address, keyed by (event key, channel, recipient). A
    /// record that exists already is left as it is. Durable before it
    /// returns; returns how many records are new.
    pub fn enqueue(&self, notice: &Notice) -> Result<usize, NotifyError> {
        let channels = self.channels();
        let mut targets = Vec::new();
        for ch in channels {
            let addr = match ch {
                Channel::Email => notice.email.as_deref(),
                Channel::Sms => notice.mobile.as_deref(),
            };
            if let Some(a) = addr.map(str::trim).filter(|a| !a.is_empty()) {
                targets.push((ch, a.to_owned()));
            }
        }
        if targets.is_empty() {
            return Ok(0);
        }
        let n = self
            .inner
            .queue
            .insert(notice, &targets, &self.inner.node, Timestamp::now())?;
        if n > 0 {
            self.inner.outbox.commit()?;
            self.inner.wake.notify_one();
        }
        Ok(n)
    }

    /// Calls `f` with every outcome, after it is durable.
    pub fn subscribe(&self, f: Arc<dyn Fn(&Outcome) + Send + Sync>) {
        self.inner
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(f);
    }

    /// Every notification of `case`, with its state.
    pub fn records_for_case(&self, case: &CaseRef) -> Result<Vec<Record>, NotifyError> {
        self.inner.queue.for_case(case)
    }

    /// Queue figures at `now`.
    pub fn stats(&self, now: Timestamp) -> Result<Stats, NotifyError> {
        self.inner.queue.stats(now)
    }

    /// Sends what is due, one attempt at a time, until `shutdown` is
    /// cancelled (an attempt under way is finished first; each is bounded by
    /// its channel's timeout). Only one `run` per queue at a time.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), NotifyError> {
        if self.inner.running.swap(true, Ordering::SeqCst) {
            return Err(NotifyError::AlreadyRunning);
        }
        let _guard = RunGuard(&self.inner.running);
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let now = queue::now_ms();
            let wait = match self.inner.queue.next_due()? {
                Some((due, id)) if due <= now => {
                    self.attempt(&id).await?;
                    continue;
                }
                Some((due, _)) => Some(Duration::from_millis(due.saturating_sub(now))),
                None => None,
            };
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.inner.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// One attempt at record `id`.
    async fn attempt(&self, id: &str) -> Result<(), NotifyError> {
        let q = &self.inner.queue;
        let Some(mut record) = q.get(id)? else {
            q.drop_due(id)?;
            return Ok(());
        };
        let interrupted = matches!(record.state, State::Sending { .. });
        if !record.state.is_waiting() {
            q.drop_due(id)?;
            return Ok(());
        }
        // Durable "sending" before anything leaves the node.
        let old = record.clone();
        record.attempts = record.attempts.saturating_add(1);
        record.state = State::Sending {
            since: Timestamp::now(),
        };
        record.updated_at = Timestamp::now();
        q.put(Some(&old), &record)?;
        self.inner.outbox.commit()?;

        let active = self.active();
        let result = match record.channel {
            Channel::Email => match &active.mailer {
                Some(m) => email::send(m, &active.settings, &record).await,
                None => Err(SendError::Transient(
                    "e-mail is not configured (any more); waiting for [notify.email]".into(),
                )),
            },
            Channel::Sms => match &active.webhook {
                Some(w) => w.send(&record).await,
                None => Err(SendError::Transient(
                    "SMS is not configured (any more); waiting for [notify.sms]".into(),
                )),
            },
        };
        let now = Timestamp::now();
        let before = record.clone();
        let result = match result {
            Ok(message_id) => {
                tracing::info!(
                    channel = %record.channel,
                    id = %record.id,
                    case = %record.case_number,
                    kind = %record.kind,
                    attempt = record.attempts,
                    resent_after_interruption = interrupted,
                    "notification sent"
                );
                record.state = State::Sent {
                    at: now,
                    message_id: message_id.clone(),
                };
                record.last_error = None;
                OutcomeKind::Sent {
                    at: now,
                    message_id,
                }
            }
            Err(SendError::Transient(error)) if record.attempts < active.settings.max_attempts => {
                let delay = crate::retry::delay(
                    record.attempts - 1,
                    active.settings.retry_base,
                    active.settings.retry_cap,
                );
                let due_ms = queue::now_ms().saturating_add(delay.as_millis() as u64);
                let next_at = Timestamp::from_unix(due_ms.div_ceil(1000) as i64).unwrap_or(now);
                tracing::warn!(
                    channel = %record.channel,
                    id = %record.id,
                    case = %record.case_number,
                    attempt = record.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %error,
                    "notification not sent; will retry"
                );
                record.state = State::Pending { next_at, due_ms };
                record.last_error = Some(error.clone());
                OutcomeKind::Retrying {
                    at: now,
                    error,
                    next_at,
                }
            }
            Err(SendError::Transient(error)) => {
                let error = format!(
                    "gave up after {} attempts; last error: {error}",
                    record.attempts
                );
                tracing::error!(channel = %record.channel, id = %record.id, case = %record.case_number, attempt = record.attempts, error = %error, "notification failed");
                record.state = State::Failed {
                    at: now,
                    error: error.clone(),
                };
                record.last_error = Some(error.clone());
                OutcomeKind::Failed { at: now, error }
            }
            Err(SendError::Permanent(error)) => {
                tracing::error!(channel = %record.channel, id = %record.id, case = %record.case_number, attempt = record.attempts, error = %error, "notification failed permanently");
                record.state = State::Failed {
                    at: now,
                    error: error.clone(),
                };
                record.last_error = Some(error.clone());
                OutcomeKind::Failed { at: now, error }
            }
        };
        record.updated_at = now;
        q.put(Some(&before), &record)?;
        self.inner.outbox.commit()?;
        let outcome = Outcome {
            event_key: record.event_key.clone(),
            channel: record.channel,
            recipient: record.recipient.clone(),
            case_number: record.case_number.clone(),
            bundle_id: record.bundle_id,
            attempts: record.attempts,
            result,
        };
        let subs = self
            .inner
            .subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for s in subs {
            s(&outcome);
        }
        Ok(())
    }
}

/// The record id of (event key, channel, recipient): hex SHA-256 of the JSON
/// array of the three (unambiguous whatever the strings hold).
pub fn record_id(event_key: &str, channel: Channel, recipient: &str) -> String {
    let json =
        serde_json::to_vec(&(event_key, channel.name(), recipient)).expect("strings serialise");
    Sha256::of(&json).to_hex()
}

/// The stable `Message-ID` of a record: `<id@node.sealpost>`.
pub fn message_id(id: &str, node: &AgencyId) -> String {
    format!("<{id}@{node}.sealpost>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attachable_kinds_are_the_event_kinds() {
        assert_eq!(
            crate::config::NOTIFY_EVENT_KINDS,
            crate::event::Details::KINDS
        );
    }

    #[test]
    fn record_ids_are_unambiguous_and_message_ids_stable() {
        let a = record_id("event/a\"", Channel::Email, "x@y.org");
        let b = record_id("event/a", Channel::Email, "\"x@y.org");
        assert_ne!(a, b);
        assert_eq!(a, record_id("event/a\"", Channel::Email, "x@y.org"));
        assert_ne!(a, record_id("event/a\"", Channel::Sms, "x@y.org"));
        let node: AgencyId = "sz-lac".parse().expect("test value");
        assert_eq!(message_id(&a, &node), format!("<{a}@sz-lac.sealpost>"));
    }
}
