//! The outbox's events: one per committed state change, handed to every
//! subscriber of the [`Bus`] in the thread that made the change, after the
//! change is durable. The daemon subscribes metrics and logging; the audit
//! chain and notifications subscribe the same way.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::state::{Delivery, State};
use crate::bundle::Kind;
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// What happened to a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Change {
    /// Sealed and queued for its recipient.
    Queued,
    /// Downloaded by its recipient for the first time.
    Fetched,
    /// The recipient's signed receipt was verified and stored.
    Delivered,
    /// A push attempt failed; it is retried at `retry_at`.
    Failed {
        /// Failed attempts so far.
        attempts: u32,
        /// When it is tried again.
        retry_at: Timestamp,
        /// What went wrong.
        error: String,
    },
    /// Given up (deadline passed or attempts exhausted).
    Dead {
        /// Why.
        reason: String,
    },
    /// Withdrawn by an operator.
    Cancelled {
        /// The operator's words.
        reason: String,
    },
    /// Offered again by an operator (retry), at the same position.
    Retried,
    /// Offered again by an operator at the end of the queue (requeue).
    Requeued {
        /// Its new position.
        seq: u64,
    },
}

/// One committed change of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The bundle.
    pub id: BundleId,
    /// Its recipient.
    pub peer: AgencyId,
    /// Its case.
    pub case_ref: CaseRef,
    /// What it carries.
    pub kind: Kind,
    /// SHA-256 of its envelope.
    pub envelope_sha256: Sha256,
    /// SHA-256 of its payload.
    pub payload_sha256: Sha256,
    /// The bundle file's size.
    pub size: u64,
    /// When the change was made.
    pub at: Timestamp,
    /// The change.
    #[serde(flatten)]
    pub change: Change,
}

impl Event {
    /// The event of a transition from `old` to `new`, if the state changed
    /// (a repeated receipt or a second download changes nothing).
    pub fn between(old: &Delivery, new: &Delivery, at: Timestamp) -> Option<Self> {
        let change = match (&old.state, &new.state) {
            (State::Failed { .. }, State::Failed { retry_at, error })
                if old.attempts != new.attempts =>
            {
                Change::Failed {
                    attempts: new.attempts,
                    retry_at: *retry_at,
                    error: error.clone(),
                }
            }
            (_, State::Queued) if old.seq != new.seq => Change::Requeued { seq: new.seq },
            (a, b) if a.name() == b.name() => return None,
            (_, State::Queued) => Change::Retried,
            (_, State::Fetched { .. }) => Change::Fetched,
            (_, State::Delivered { .. }) => Change::Delivered,
            (_, State::Failed { retry_at, error }) => Change::Failed {
                attempts: new.attempts,
                retry_at: *retry_at,
                error: error.clone(),
            },
            (_, State::Dead { reason, .. }) => Change::Dead {
                reason: reason.clone(),
            },
            (_, State::Cancelled { reason, .. }) => Change::Cancelled {
                reason: reason.clone(),
            },
        };
        Some(Self::of(new, at, change))
    }

    /// An event about `d`.
    pub fn of(d: &Delivery, at: Timestamp, change: Change) -> Self {
        Self {
            id: d.id,
            peer: d.peer.clone(),
            case_ref: d.case_ref.clone(),
            kind: d.kind,
            envelope_sha256: d.envelope_sha256,
            payload_sha256: d.payload_sha256,
            size: d.size,
            at,
            change,
        }
    }

    /// The change's name (`queued`, `fetched`, …), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self.change {
            Change::Queued => "queued",
            Change::Fetched => "fetched",
            Change::Delivered => "delivered",
            Change::Failed { .. } => "failed",
            Change::Dead { .. } => "dead",
            Change::Cancelled { .. } => "cancelled",
            Change::Retried => "retried",
            Change::Requeued { .. } => "requeued",
        }
    }
}

/// A subscriber: called once per event, after the change is durable. It must
/// be quick and must not call back into the outbox.
pub type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

/// The subscribers of one outbox.
#[derive(Clone, Default)]
pub struct Bus {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.subscribers.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("Bus").field("subscribers", &n).finish()
    }
}

impl Bus {
    /// Adds a subscriber for every later event.
    pub fn subscribe(&self, s: Subscriber) {
        match self.subscribers.write() {
            Ok(mut v) => v.push(s),
            Err(p) => p.into_inner().push(s),
        }
    }

    /// Hands `e` to every subscriber.
    pub fn publish(&self, e: &Event) {
        let subs = match self.subscribers.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for s in subs {
            s(e);
        }
    }
}
