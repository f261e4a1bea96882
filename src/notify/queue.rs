//! The notification queue's records and their keys (layout: the module doc
//! of [`crate::notify`]).

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{record_id, Channel, ChannelStats, Notice, NotifyError, Stats};
use crate::outbox::Outbox;
use crate::types::{AgencyId, BundleId, CaseRef, Timestamp};

/// Where a notification is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its (next) attempt.
    Pending {
        /// Not before (whole seconds, rounded up).
        next_at: Timestamp,
        /// Not before, Unix milliseconds (what the sender goes by).
        due_ms: u64,
    },
    /// An attempt started at `since`. Found at start: the attempt was
    /// interrupted; sent again with the same message id.
    Sending {
        /// When the attempt started.
        since: Timestamp,
    },
    /// Accepted (final).
    Sent {
        /// When.
        at: Timestamp,
        /// `Message-ID` or idempotency key.
        message_id: String,
    },
    /// Failed for good (final).
    Failed {
        /// When.
        at: Timestamp,
        /// Why.
        error: String,
    },
}

impl State {
    /// `pending`, `sending`, `sent`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending { .. } => "pending",
            State::Sending { .. } => "sending",
            State::Sent { .. } => "sent",
            State::Failed { .. } => "failed",
        }
    }
    /// Pending or sending: not final.
    pub fn is_waiting(&self) -> bool {
        matches!(self, State::Pending { .. } | State::Sending { .. })
    }
    /// When it is due (sending: at once).
    fn due_ms(&self) -> Option<u64> {
        match self {
            State::Pending { due_ms, .. } => Some(*due_ms),
            State::Sending { .. } => Some(0),
            _ => None,
        }
    }
}

/// One notification: a notice on one channel to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`record_id`] of (event key, channel, recipient).
    pub id: String,
    /// The notice's event key.
    pub event_key: String,
    /// The channel.
    pub channel: Channel,
    /// The address or number, as given (trimmed).
    pub recipient: String,
    /// The case.
    pub case_number: CaseRef,
    /// The bundle.
    pub bundle_id: BundleId,
    /// `delivered` or the event's kind.
    pub kind: String,
    /// E-mail `Message-ID` (stable: derived from the id and the node).
    pub message_id: String,
    /// Where it is.
    pub state: State,
    /// Attempts started.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// What it says.
    pub notice: Notice,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn key_r(id: &str) -> Vec<u8> {
    [b"r/".as_slice(), id.as_bytes()].concat()
}
fn key_c(case: &CaseRef, id: &str) -> Vec<u8> {
    [
        b"c/".as_slice(),
        case.as_str().as_bytes(),
        b"\0",
        id.as_bytes(),
    ]
    .concat()
}
fn key_q(due_ms: u64, id: &str) -> Vec<u8> {
    [b"q/".as_slice(), &due_ms.to_be_bytes(), id.as_bytes()].concat()
}
fn key_w(channel: Channel, created: &Timestamp, id: &str) -> Vec<u8> {
    [
        b"w/".as_slice(),
        channel.name().as_bytes(),
        b"\0",
        &(created.unix().max(0) as u64).to_be_bytes(),
        id.as_bytes(),
    ]
    .concat()
}
fn key_n(state: &str, channel: Channel) -> Vec<u8> {
    format!("n/{state}/{channel}").into_bytes()
}

fn u64_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

type Tx = Result<(), ConflictableTransactionError<String>>;

fn count(tx: &TransactionalTree, key: &[u8], delta: i64) -> Tx {
    let n = u64_of(tx.get(key)?).saturating_add_signed(delta);
    tx.insert(key, n.to_be_bytes().to_vec())?;
    Ok(())
}

fn put_tx(tx: &TransactionalTree, old: Option<&Record>, new: &Record) -> Tx {
    let json =
        serde_json::to_vec(new).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
    tx.insert(key_r(&new.id), json)?;
    if let Some(old) = old {
        if let Some(d) = old.state.due_ms() {
            tx.remove(key_q(d, &old.id))?;
        }
        if old.state.is_waiting() {
            tx.remove(key_w(old.channel, &old.created_at, &old.id))?;
        }
        count(tx, &key_n(old.state.name(), old.channel), -1)?;
    } else {
        tx.insert(key_c(&new.case_number, &new.id), b"".as_slice())?;
    }
    if let Some(d) = new.state.due_ms() {
        tx.insert(key_q(d, &new.id), b"".as_slice())?;
    }
    if new.state.is_waiting() {
        tx.insert(key_w(new.channel, &new.created_at, &new.id), b"".as_slice())?;
    }
    count(tx, &key_n(new.state.name(), new.channel), 1)?;
    Ok(())
}

fn unwrap_tx<T>(r: Result<T, TransactionError<String>>) -> Result<T, NotifyError> {
    match r {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(detail)) => Err(NotifyError::Corrupt {
            key: "(transaction)".into(),
            detail,
        }),
        Err(TransactionError::Storage(e)) => Err(NotifyError::Store(e)),
    }
}

/// The `notify` tree.
#[derive(Debug, Clone)]
pub(super) struct Queue {
    tree: sled::Tree,
}

impl Queue {
    pub(super) fn open(outbox: &Outbox) -> Result<Self, NotifyError> {
        Ok(Self {
            tree: outbox.tree("notify")?,
        })
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<Record, NotifyError> {
        serde_json::from_slice(v).map_err(|e| NotifyError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            detail: e.to_string(),
        })
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<Record>, NotifyError> {
        let k = key_r(id);
        self.tree.get(&k)?.map(|v| Self::decode(&k, &v)).transpose()
    }

    /// Inserts a pending record for each (channel, recipient) not there yet;
    /// how many are new. Not committed.
    pub(super) fn insert(
        &self,
        notice: &Notice,
        targets: &[(Channel, String)],
        node: &AgencyId,
        now: Timestamp,
    ) -> Result<usize, NotifyError> {
        let records: Vec<Record> = targets
            .iter()
            .map(|(channel, recipient)| {
                let id = record_id(&notice.event_key, *channel, recipient);
                Record {
                    message_id: super::message_id(&id, node),
                    id,
                    event_key: notice.event_key.clone(),
                    channel: *channel,
                    recipient: recipient.clone(),
                    case_number: notice.case_number.clone(),
                    bundle_id: notice.bundle_id,
                    kind: notice.what.kind().to_owned(),
                    state: State::Pending {
                        next_at: now,
                        due_ms: 0,
                    },
                    attempts: 0,
                    created_at: now,
                    updated_at: now,
                    last_error: None,
                    notice: notice.clone(),
                }
            })
            .collect();
        unwrap_tx(self.tree.transaction(|tx| {
            let mut n = 0usize;
            for r in &records {
                if tx.get(key_r(&r.id))?.is_none() {
                    put_tx(tx, None, r)?;
                    n += 1;
                }
            }
            Ok(n)
        }))
    }

    /// Replaces `old` by `new` (same id). Not committed.
    pub(super) fn put(&self, old: Option<&Record>, new: &Record) -> Result<(), NotifyError> {
        unwrap_tx(self.tree.transaction(|tx| put_tx(tx, old, new)))
    }

    /// The first record due, with its due time (ms).
    pub(super) fn next_due(&self) -> Result<Option<(u64, String)>, NotifyError> {
        let Some(kv) = self.tree.scan_prefix(b"q/").next() else {
            return Ok(None);
        };
        let (k, _) = kv?;
        let bad = || NotifyError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            detail: "malformed due-index key".into(),
        };
        let due = k
            .get(2..10)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(bad)?;
        let id = std::str::from_utf8(&k[10..]).map_err(|_| bad())?.to_owned();
        Ok(Some((due, id)))
    }

    /// Removes a stale due-index entry of `id` (a record that is gone or final).
    pub(super) fn drop_due(&self, id: &str) -> Result<(), NotifyError> {
        let mut stale = Vec::new();
        for kv in self.tree.scan_prefix(b"q/") {
            let (k, _) = kv?;
            if k.ends_with(id.as_bytes()) {
                stale.push(k);
            }
        }
        for k in stale {
            self.tree.remove(k)?;
        }
        Ok(())
    }

    pub(super) fn for_case(&self, case: &CaseRef) -> Result<Vec<Record>, NotifyError> {
        let prefix = [b"c/".as_slice(), case.as_str().as_bytes(), b"\0"].concat();
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if let Some(r) = self.get(&id)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| {
            (a.created_at, &a.event_key, a.channel).cmp(&(b.created_at, &b.event_key, b.channel))
        });
        Ok(out)
    }

    pub(super) fn stats(&self, now: Timestamp) -> Result<Stats, NotifyError> {
        let mut by_channel = std::collections::BTreeMap::new();
        for ch in [Channel::Email, Channel::Sms] {
            let n = |state: &str| -> Result<u64, NotifyError> {
                Ok(u64_of(self.tree.get(key_n(state, ch))?))
            };
            let prefix = [b"w/".as_slice(), ch.name().as_bytes(), b"\0"].concat();
            let oldest = match self.tree.scan_prefix(&prefix).next() {
                Some(kv) => {
                    let (k, _) = kv?;
                    k.get(prefix.len()..prefix.len() + 8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_be_bytes)
                        .map(|created| (now.unix().max(0) as u64).saturating_sub(created))
                }
                None => None,
            };
            by_channel.insert(
                ch,
                ChannelStats {
                    pending: n("pending")? + n("sending")?,
                    oldest_pending_age_secs: oldest,
                    sent: n("sent")?,
                    failed: n("failed")?,
                },
            );
        }
        Ok(Stats { by_channel })
    }
}
