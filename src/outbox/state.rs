//! A delivery's record and its state machine: every transition is one of the
//! named methods on [`Delivery`] (see the diagram in [`super`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::Kind;
use crate::config::OutboxPolicy as Policy;
use crate::types::{AgencyId, BundleId, CaseRef, Sha256, Timestamp};

/// Where a delivery is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Waiting for the recipient to fetch it (or for a push attempt).
    Queued,
    /// Downloaded by the recipient; waiting for its signed receipt.
    Fetched {
        /// When it was (last) fetched.
        at: Timestamp,
    },
    /// The recipient's receipt was verified. Final.
    Delivered {
        /// When the receipt was accepted.
        at: Timestamp,
    },
    /// A push attempt failed; retried at `retry_at`.
    Failed {
        /// When to try again.
        retry_at: Timestamp,
        /// What went wrong last.
        error: String,
    },
    /// Given up: deadline passed or attempts exhausted. An operator may retry.
    Dead {
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
    /// Withdrawn by an operator. Final.
    Cancelled {
        /// When.
        at: Timestamp,
        /// Why (the operator's words).
        reason: String,
    },
}

impl State {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Fetched { .. } => "fetched",
            State::Delivered { .. } => "delivered",
            State::Failed { .. } => "failed",
            State::Dead { .. } => "dead",
            State::Cancelled { .. } => "cancelled",
        }
    }
    /// Whether nothing more will happen without an operator.
    pub fn is_final(&self) -> bool {
        matches!(self, State::Delivered { .. } | State::Cancelled { .. })
    }
    /// Whether the delivery still counts as "this case is in the queue".
    pub fn is_active(&self) -> bool {
        !matches!(self, State::Cancelled { .. } | State::Dead { .. })
    }
    /// Whether the delivery is waiting for its recipient: listed to it, pushed
    /// to it, and subject to a deadline. The one place that decides it.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            State::Queued | State::Fetched { .. } | State::Failed { .. }
        )
    }
    /// Every state's name, for counters and metrics.
    pub const NAMES: [&'static str; 6] = [
        "queued",
        "fetched",
        "delivered",
        "failed",
        "dead",
        "cancelled",
    ];
}

/// One bundle's delivery record (kept small: it lives in sled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The bundle.
    pub id: BundleId,
    /// Queue order.
    pub seq: u64,
    /// The recipient.
    pub peer: AgencyId,
    /// What the bundle carries.
    pub kind: Kind,
    /// The case.
    pub case_ref: CaseRef,
    /// Marked as a resubmission of a case already sent.
    pub resubmission: bool,
    /// The intake item (folder or zip name) it came from, if any.
    pub source: Option<String>,
    /// SHA-256 of the payload (from the envelope).
    pub payload_sha256: Sha256,
    /// SHA-256 of the envelope bytes.
    pub envelope_sha256: Sha256,
    /// Bundle file size.
    pub size: u64,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Delivery must complete by then, or it goes dead.
    pub deadline: Timestamp,
    /// Reported as overdue from then on.
    pub warn_at: Timestamp,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Where it is.
    pub state: State,
}

/// A transition that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a delivery that is {from}")]
pub struct TransitionError {
    /// The attempted transition.
    pub action: &'static str,
    /// The state it was in.
    pub from: &'static str,
}

pub(super) fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix(
        t.unix()
            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    )
    .unwrap_or(t)
}

impl Delivery {
    fn refuse(&self, action: &'static str) -> Result<(), TransitionError> {
        Err(TransitionError {
            action,
            from: self.state.name(),
        })
    }

    /// The recipient downloaded it; its receipt is now awaited within
    /// `policy.receipt_deadline`.
    pub fn fetch(&mut self, now: Timestamp, policy: &Policy) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. } => {
                self.state = State::Fetched { at: now };
                self.deadline = later(now, policy.receipt_deadline);
                self.warn_at = later(now, policy.warn_after.min(policy.receipt_deadline / 2));
                Ok(())
            }
            _ => self.refuse("fetch"),
        }
    }

    /// Whether the delivery is waiting past its warning time.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        !self.state.is_final() && !matches!(self.state, State::Dead { .. }) && now >= self.warn_at
    }

    /// The recipient's receipt verified. Idempotent once delivered.
    pub fn deliver(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        match self.state {
            State::Delivered { .. } => Ok(()),
            State::Queued | State::Fetched { .. } | State::Failed { .. } | State::Dead { .. } => {
                self.state = State::Delivered { at: now };
                Ok(())
            }
            State::Cancelled { .. } => self.refuse("deliver"),
        }
    }

    /// A push attempt failed: retry after `backoff`, or go dead when attempts or
    /// the deadline are exhausted.
    pub fn fail(
        &mut self,
        now: Timestamp,
        error: String,
        backoff: Duration,
        policy: &Policy,
    ) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. } => {
                self.attempts += 1;
                let retry_at = later(now, backoff);
                self.state = if self.attempts >= policy.max_attempts {
                    State::Dead {
                        at: now,
                        reason: format!("{} attempts failed; last: {error}", self.attempts),
                    }
                } else if retry_at >= self.deadline {
                    State::Dead {
                        at: now,
                        reason: format!("deadline {} passed; last error: {error}", self.deadline),
                    }
                } else {
                    State::Failed { retry_at, error }
                };
                Ok(())
            }
            _ => self.refuse("fail"),
        }
    }

    /// The deadline passed without delivery.
    pub fn expire(&mut self, now: Timestamp) -> Result<(), TransitionError> {
        match self.state {
            State::Queued | State::Fetched { .. } | State::Failed { .. }
                if now >= self.deadline =>
            {
                self.state = State::Dead {
                    at: now,
                    reason: format!("not delivered by the deadline {}", self.deadline),
                };
                Ok(())
            }
            _ => self.refuse("expire"),
        }
    }

    /// Operator: offer it again (from fetched, failed or dead); the deadline
    /// restarts from now.
    pub fn retry(&mut self, now: Timestamp, policy: &Policy) -> Result<(), TransitionError> {
        match self.state {
            State::Fetched { .. } | State::Failed { .. } | State::Dead { .. } => {
                self.state = State::Queued;
                self.attempts = 0;
                self.deadline = later(now, policy.deadline);
                self.warn_at = later(now, policy.warn_after);
                Ok(())
            }
            _ => self.refuse("retry"),
        }
    }

    /// Operator: offer it again at the end of the queue (a new position, so
    /// that a recipient polling with a cursor sees it again): from queued,
    /// fetched, failed or dead; the deadline restarts from now. The new
    /// position is given by the store ([`super::Outbox::requeue`]).
    pub fn requeue(&mut self, now: Timestamp, policy: &Policy) -> Result<(), TransitionError> {
        match self.state {
            State::Queued => {
                self.deadline = later(now, policy.deadline);
                self.warn_at = later(now, policy.warn_after);
                Ok(())
            }
            _ => self.retry(now, policy),
        }
    }

    /// Operator: withdraw it. Never after delivery.
    pub fn cancel(&mut self, now: Timestamp, reason: String) -> Result<(), TransitionError> {
        match self.state {
            State::Delivered { .. } | State::Cancelled { .. } => self.refuse("cancel"),
            _ => {
                self.state = State::Cancelled { at: now, reason };
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(state: State) -> Delivery {
        let now = Timestamp::from_unix(1_800_000_000).expect("time");
        Delivery {
            id: BundleId::generate(),
            seq: 1,
            peer: "sz-futian-court".parse().expect("id"),
            kind: Kind::PreservationApplication,
            case_ref: "深劳人仲案〔2026〕1号".parse().expect("case"),
            resubmission: false,
            source: None,
            payload_sha256: Sha256([0; 32]),
            envelope_sha256: Sha256([0; 32]),
            size: 1,
            queued_at: now,
            updated_at: now,
            deadline: later(now, Duration::from_secs(3600)),
            warn_at: later(now, Duration::from_secs(600)),
            attempts: 0,
            state,
        }
    }

    #[test]
    fn delivered_and_cancelled_are_final() {
        let t = Timestamp::from_unix(1_800_000_100).expect("time");
        let p = Policy::default();
        let mut d = delivery(State::Delivered { at: t });
        assert!(d.cancel(t, "x".into()).is_err());
        assert!(d.retry(t, &p).is_err());
        assert!(d.fetch(t, &p).is_err());
        assert!(d.deliver(t).is_ok(), "a repeated receipt is not an error");
        let mut d = delivery(State::Cancelled {
            at: t,
            reason: "x".into(),
        });
        assert!(d.deliver(t).is_err());
        assert!(d.retry(t, &p).is_err());
    }

    #[test]
    fn failures_go_dead_after_max_attempts_or_deadline() {
        let t = Timestamp::from_unix(1_800_000_100).expect("time");
        let p = Policy {
            max_attempts: 3,
            ..Policy::default()
        };
        let mut d = delivery(State::Queued);
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        assert_eq!(d.state.name(), "failed");
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        d.fail(t, "e".into(), Duration::from_secs(10), &p)
            .expect("fail");
        assert_eq!(d.state.name(), "dead");
        let mut d = delivery(State::Queued);
        d.fail(t, "e".into(), Duration::from_secs(7200), &p)
            .expect("fail");
        assert_eq!(
            d.state.name(),
            "dead",
            "a retry after the deadline is pointless"
        );
        d.retry(t, &p).expect("operator retry");
        assert_eq!((d.state.name(), d.attempts), ("queued", 0));
    }
}
