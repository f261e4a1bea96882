//! How the node is doing, in plain data: the readiness of each of its parts
//! ([`Health`]) and the counters the services keep ([`Counters`]). Services
//! write here; the operations surface (`crate::ops`: `/readyz`, `/healthz`,
//! `/metrics`, the watchdog, `sealpost ctl status`) reads it. Nothing here
//! knows about Prometheus or HTTP.
//!
//! A part is in one of two scopes:
//!
//! * **process** — the node's own machinery: a supervised task running, the
//!   store answering. When one fails, restarting the process may help, so
//!   `/healthz` fails and the systemd watchdog stops being pinged.
//! * **conditions** — what the node depends on: free disk, certificates and
//!   CRLs in date, the clerks' share readable, peers reachable. When one
//!   fails, the node is not ready (`/readyz` answers 503 naming it) but
//!   restarting would not help, so the watchdog goes on being pinged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::types::{AgencyId, Timestamp};

/// One part of the node as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Whether it is working.
    pub ok: bool,
    /// What is wrong (or what it is doing), in words.
    pub detail: String,
    /// Since when it has been in this state.
    pub since: Timestamp,
    /// The node's own machinery (true) or a condition it depends on (false).
    pub process: bool,
}

/// The readiness of every part of the node, by name (`api`, `intake`,
/// `poller:sz-lac`, `disk`, `certificates`, …).
#[derive(Debug, Clone, Default)]
pub struct Health {
    parts: Arc<RwLock<BTreeMap<String, Part>>>,
}

impl Health {
    /// Reports the condition `name` as met (`ok`) or not, with a word on why.
    pub fn set(&self, name: &str, ok: bool, detail: impl Into<String>) {
        self.put(name, ok, detail.into(), false);
    }

    /// Reports the node's own part `name` (a task, the store) as working or not.
    pub fn set_process(&self, name: &str, ok: bool, detail: impl Into<String>) {
        self.put(name, ok, detail.into(), true);
    }

    fn put(&self, name: &str, ok: bool, detail: String, process: bool) {
        let mut parts = self.parts.write().unwrap_or_else(|p| p.into_inner());
        match parts.get_mut(name) {
            Some(p) if p.ok == ok => {
                p.detail = detail;
                p.process = process;
            }
            _ => {
                parts.insert(
                    name.to_owned(),
                    Part {
                        ok,
                        detail,
                        since: Timestamp::now(),
                        process,
                    },
                );
            }
        }
    }

    /// Forgets `name` (a poller for a peer that left the directory).
    pub fn remove(&self, name: &str) {
        self.parts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Forgets every part whose name starts with `prefix`.
    pub fn remove_prefix(&self, prefix: &str) {
        self.parts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(prefix));
    }

    /// Every part, by name.
    pub fn parts(&self) -> BTreeMap<String, Part> {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The parts that are not working.
    pub fn problems(&self) -> Vec<(String, Part)> {
        self.parts().into_iter().filter(|(_, p)| !p.ok).collect()
    }

    /// Whether every part is working and every condition met (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.parts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(|p| p.ok)
    }

    /// Whether the node's own machinery works (`/healthz`, the watchdog),
    /// whatever the conditions around it.
    pub fn is_alive(&self) -> bool {
        self.parts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .all(|p| p.ok || !p.process)
    }
}

/// Counters kept by the services (the outbox keeps its own, per state).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    inner: Arc<CountersInner>,
}

#[derive(Debug, Default)]
struct CountersInner {
    accepted: AtomicU64,
    rejected: AtomicU64,
    downloads: Mutex<BTreeMap<AgencyId, u64>>,
    restarts: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// An application accepted by intake.
    pub fn accepted(&self) {
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
    }
    /// An application rejected by intake.
    pub fn rejected(&self) {
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
    }
    /// A bundle download (every GET, not only the first) by `peer`.
    pub fn downloaded(&self, peer: &AgencyId) {
        *self
            .inner
            .downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer.clone())
            .or_default() += 1;
    }
    /// A supervised task restarted.
    pub fn restarted(&self, task: &str) {
        *self
            .inner
            .restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task.to_owned())
            .or_default() += 1;
    }
    /// (accepted, rejected) since start.
    pub fn intake(&self) -> (u64, u64) {
        (
            self.inner.accepted.load(Ordering::Relaxed),
            self.inner.rejected.load(Ordering::Relaxed),
        )
    }
    /// Downloads per peer since start.
    pub fn downloads(&self) -> BTreeMap<AgencyId, u64> {
        self.inner
            .downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Restarts per task since start.
    pub fn restarts(&self) -> BTreeMap<String, u64> {
        self.inner
            .restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_the_conjunction_of_the_parts() {
        let h = Health::default();
        assert!(h.is_ready(), "no parts: ready");
        h.set("api", true, "serving");
        h.set("disk", false, "3 MiB free");
        assert!(!h.is_ready());
        assert_eq!(h.problems()[0].0, "disk");
        h.set("disk", true, "enough");
        assert!(h.is_ready());
        h.set("poller:sz-lac", false, "unreachable");
        assert!(
            !h.is_ready() && h.is_alive(),
            "a condition: not ready, alive"
        );
        h.remove_prefix("poller:");
        assert!(h.is_ready());
        h.set_process("task:api", false, "restarting");
        assert!(!h.is_alive() && !h.is_ready());
    }
}
