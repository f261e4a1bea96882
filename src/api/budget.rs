//! Connection budgets: how many TLS handshakes may be under way (and from one
//! address), and how many authenticated connections the node and each peer
//! may hold open. Both are admission decisions taken without waiting, so the
//! accept loop never blocks on a full budget (see the module doc of
//! [`super`], points 1, 3 and 4).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::config::ServerLimits as Limits;
use crate::transport::tls::Live;
use crate::types::AgencyId;

// ------------------------------------------------------------ handshake budget

/// Handshakes under way, oldest first, so that the oldest can be dropped when
/// the budget is full.
#[derive(Debug)]
pub(super) struct Pending {
    cap: usize,
    per_address: usize,
    next: AtomicU64,
    queue: Mutex<VecDeque<(u64, IpAddr, CancellationToken)>>,
}

/// A handshake slot; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct Ticket {
    pending: Arc<Pending>,
    id: u64,
    pub(super) evicted: CancellationToken,
}

impl Pending {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            per_address: (cap / 4).max(1),
            next: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
        })
    }

    /// A slot for a new connection from `ip`, dropping the oldest pending
    /// handshake (from `ip` if it holds its share, else overall) when full.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = q.iter().filter(|(_, a, _)| *a == ip).count();
        let victim = if from_ip >= self.per_address {
            q.iter().position(|(_, a, _)| *a == ip)
        } else if q.len() >= self.cap {
            Some(0)
        } else {
            None
        };
        if let Some(i) = victim {
            if let Some((_, _, t)) = q.remove(i) {
                t.cancel();
            }
        }
        q.push_back((id, ip, evicted.clone()));
        Ticket {
            pending: self.clone(),
            id,
            evicted,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut q = self.pending.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = q.iter().position(|(id, _, _)| *id == self.id) {
            q.remove(i);
        }
    }
}

// ------------------------------------------------------ authenticated budget

#[derive(Debug, Default)]
pub(super) struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    next: u64,
    open: HashMap<u64, Entry>,
    /// Per peer: its connections that serve requests, and those that only
    /// close now (a lingering close, `super::linger`).
    per_peer: HashMap<AgencyId, Shares>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Shares {
    serving: usize,
    closing: usize,
}

/// Which of its peer's shares a connection is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    Serving,
    Closing,
}

#[derive(Debug)]
struct Entry {
    peer: AgencyId,
    chain: Vec<CertificateDer<'static>>,
    revoked: CancellationToken,
    share: Share,
}

/// An authenticated connection's place in the budget; dropping it frees it.
#[derive(Debug)]
pub(super) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    pub(super) revoked: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Busy {
    Node,
    Peer,
}

impl Registry {
    pub(super) fn register(
        self: &Arc<Self>,
        peer: &AgencyId,
        chain: Vec<CertificateDer<'static>>,
        limits: &Limits,
    ) -> Result<Slot, Busy> {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if r.open.len() >= limits.max_connections {
            return Err(Busy::Node);
        }
        let n = r.per_peer.entry(peer.clone()).or_default();
        if n.serving >= limits.max_connections_per_peer {
            return Err(Busy::Peer);
        }
        n.serving += 1;
        r.next += 1;
        let id = r.next;
        let revoked = CancellationToken::new();
        r.open.insert(
            id,
            Entry {
                peer: peer.clone(),
                chain,
                revoked: revoked.clone(),
                share: Share::Serving,
            },
        );
        Ok(Slot {
            registry: self.clone(),
            id,
            revoked,
        })
    }

    pub(super) fn revalidate(&self, live: &Live) -> usize {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for e in r.open.values() {
            if !e.revoked.is_cancelled() && !live.still_admits(&e.chain, &e.peer) {
                tracing::warn!(peer = %e.peer, "closing an open connection: its certificate is no longer admitted (revoked, or the peer left the directory)");
                e.revoked.cancel();
                closed += 1;
            }
        }
        closed
    }

    pub(super) fn total(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

impl RegistryInner {
    fn release(&mut self, id: u64) {
        let Some(e) = self.open.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_peer.get_mut(&e.peer) {
            match e.share {
                Share::Serving => n.serving = n.serving.saturating_sub(1),
                Share::Closing => n.closing = n.closing.saturating_sub(1),
            }
            if n.serving == 0 && n.closing == 0 {
                self.per_peer.remove(&e.peer);
            }
        }
    }
}

impl Slot {
    /// The connection will serve no more requests (its last answer is
    /// written; it only closes now). It moves from its peer's serving share
    /// to its closing share, if that has room (as many as may serve), so that
    /// a client that reconnects at once is not refused for a connection it
    /// has finished with; a peer with that many closing already keeps this
    /// one in its serving share until it is gone. Either way it counts
    /// against the node's total until then.
    pub(super) fn closing(&self, limits: &Limits) {
        let mut r = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let RegistryInner { open, per_peer, .. } = &mut *r;
        let Some(e) = open.get_mut(&self.id) else {
            return;
        };
        let Some(n) = per_peer.get_mut(&e.peer) else {
            return;
        };
        if e.share == Share::Serving && n.closing < limits.max_connections_per_peer {
            e.share = Share::Closing;
            n.serving = n.serving.saturating_sub(1);
            n.closing += 1;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut r = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        r.release(self.id);
    }
}
