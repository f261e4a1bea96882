//! The composition root: [`run`] builds the node from a validated
//! configuration, starts every task under one supervisor, serves until told
//! to stop, and drains.
//!
//! ## Start
//!
//! 1. Log the version and a one-line summary of the configuration; log its
//!    warnings.
//! 2. Open the outbox; recover the inbox (before anything can touch it).
//! 3. Build the TLS configuration in force ([`Live`]); prepare intake (nodes
//!    that take applications in).
//! 4. Bind the listeners: the mTLS API (`server.listen`, announced on standard
//!    output as `LISTENING <addr>`), the loopback operations listener
//!    (`admin.listen`, announced as `ADMIN <addr>`) and the admin socket.
//!    A listener that cannot be bound is a start failure, not a silent gap.
//! 5. Start the tasks, each supervised ([`Supervisor`]): API, operations
//!    listener, admin socket, intake, checks, watchdog, and one poller or
//!    pusher per peer; on a court node with `[followup]`, the follow-up
//!    folder and the follow-up sender (restarted with the pollers on reload).
//! 6. `READY=1`.
//!
//! ## Reload (SIGHUP, `systemctl reload`, `sealpost ctl reload`, a CRL file changing)
//!
//! `RELOADING=1`; the configuration, peer directory, certificates and CRLs
//! are read again and validated in full. If anything is wrong the exact error
//! is logged and returned to `ctl`, and the old configuration stays in force.
//! Otherwise the new one is put in force for new work and new connections:
//! the API's TLS configuration is swapped and open connections whose peer was
//! removed or revoked are closed; intake takes the next items with it; the
//! pollers and pushers finish the item in hand and start again for the new
//! peer set. Then `READY=1`. Settings that only a restart can change
//! (listen addresses, folders, connection limits, logging) are named in a
//! warning; `node.id`, `node.role` and `node.data_dir` cannot change at all
//! while running (the reload is refused).
//!
//! ## Stop (SIGTERM, SIGINT)
//!
//! `STOPPING=1`; the listeners stop accepting; intake finishes the items in
//! hand; pollers and pushers finish theirs; open API connections finish their
//! request (at most 30 s).

mod checks;
mod supervise;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{Audit, Entry};
use crate::cases::Cases;
use crate::config::{Config, DeliveryMode, Role};
use crate::evidence::service::Evidence;
use crate::followup::casework::Casework;
use crate::intake::{Intake, Outcome, Wake};
use crate::ops;
use crate::outbox::{Change, Outbox};
use crate::status::{Counters, Health};
use crate::transport::tls::{Live, Shared};
use crate::types::{printable, Timestamp};

pub use checks::{expiring, warn_expiring, Expiring};
pub use supervise::Supervisor;

/// How long open connections and items in hand get to finish at stop.
const DRAIN: Duration = Duration::from_secs(30);
/// How long a reload waits for the old pollers and pushers to finish their item.
const PEER_HANDOVER: Duration = Duration::from_secs(60);

/// Why the node could not start (or stopped on its own).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration cannot be run (TLS configuration, a peer's client).
    #[error("{0}")]
    Config(String),
    /// The outbox cannot be opened.
    #[error("cannot open the outbox in {dir}: {source}")]
    Outbox {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<crate::outbox::OutboxError>,
    },
    /// The intake folders cannot be prepared.
    #[error("cannot prepare the intake folders: {0}")]
    Intake(#[source] crate::intake::IntakeError),
    /// The court's follow-up folder cannot be prepared.
    #[error("cannot prepare the follow-up folder: {0}")]
    Followup(#[source] crate::followup::folder::FolderError),
    /// A listener cannot be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// Which listener (`server.listen`, `admin.listen`, `admin.socket`).
        what: &'static str,
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Anything else the operating system refused.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Whether the configuration is at fault (exit 78: systemd must not
    /// restart-loop on it).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config(_))
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Runs the node until `shutdown` is cancelled or SIGTERM/SIGINT arrives.
pub fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sealpost")
        .enable_all()
        .build()
        .map_err(DaemonError::io("cannot start the runtime"))?;
    // The signal handlers are installed now, synchronously, before READY=1:
    // a SIGTERM that arrives once the node says it is ready must find them.
    let signals = {
        let _in = rt.enter();
        Signals::install().map_err(DaemonError::io("cannot install signal handlers"))?
    };
    let result = rt.block_on(serve(Arc::new(config), shutdown, signals));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// The one-line summary logged at start.
fn summary(c: &Config) -> String {
    let mut s = format!(
        "node {} ({}), data {}",
        c.node.id,
        c.node.role,
        c.node.data_dir.display()
    );
    if c.node.role != Role::Court {
        s.push_str(&format!(", intake {}", c.intake.root.display()));
    }
    if let Some(f) = &c.followup {
        s.push_str(&format!(", follow-up folder {}", f.root.display()));
    }
    if let Some(a) = c.server_listen {
        s.push_str(&format!(", API {a}"));
    }
    if let Some(a) = c.admin_listen {
        s.push_str(&format!(", metrics {a}"));
    }
    s.push_str(&format!(
        ", admin socket {}, {} peers, {} CRL file(s)",
        c.admin_socket.display(),
        c.directory.iter().count(),
        c.crl_files.len()
    ));
    s
}

/// What the running node is made of.
struct Node {
    live: Shared<Live>,
    outbox: Outbox,
    health: Health,
    supervisor: Supervisor,
    intake: Option<Arc<Intake>>,
    followup: Option<Arc<crate::followup::folder::Folder>>,
    api: Option<Arc<crate::api::Api>>,
    /// The committee's case files and notifications (not on courts).
    casework: Option<Casework>,
    notifier: Option<crate::notify::Notifier>,
    /// The audit log and proofs of delivery.
    evidence: Evidence,
    shutdown: CancellationToken,
    /// The pollers and pushers: stopped and started again on reload.
    peers: (CancellationToken, TaskTracker),
}

/// One task per peer this node polls or pushes to.
enum PeerTask {
    Poll(crate::inbox::poll::Poller),
    Push(crate::delivery::Pusher),
    /// The court's follow-up sender (one for all committees).
    Send(Arc<crate::followup::send::Sender>),
}

/// The pollers and pushers for `config` (built before anything is started,
/// so that a reload can be refused whole).
fn peer_tasks(
    config: &Arc<Config>,
    outbox: &Outbox,
    health: &Health,
    audit: &Audit,
) -> Result<Vec<(String, PeerTask)>, String> {
    let mut tasks = Vec::new();
    for peer in config
        .directory
        .iter()
        .filter(|p| p.delivery == DeliveryMode::Push && p.id != config.node.id)
    {
        let p = crate::delivery::Pusher::new(
            config.clone(),
            outbox.clone(),
            peer.clone(),
            crate::delivery::system_clock(),
        )
        .map_err(|e| format!("cannot push to {}: {e}", peer.id))?
        .reporting_to(health.clone());
        tasks.push((format!("pusher:{}", peer.id), PeerTask::Push(p)));
    }
    if config.node.role == Role::Court {
        for peer in config
            .directory
            .iter()
            .filter(|p| p.role == Role::Committee && p.endpoint.is_some())
        {
            let p =
                crate::inbox::poll::Poller::new(config.clone(), peer.clone(), config.client_wait)
                    .map_err(|e| format!("cannot poll {}: {e}", peer.id))?
                    .reporting_to(health.clone())
                    .auditing(audit.clone());
            tasks.push((format!("poller:{}", peer.id), PeerTask::Poll(p)));
        }
        if config.followup.is_some() {
            let s = crate::followup::send::Sender::new(config.clone())
                .map_err(|e| format!("cannot prepare the follow-up sender: {e}"))?
                .auditing(audit.clone());
            tasks.push(("followup-sender".to_owned(), PeerTask::Send(Arc::new(s))));
        }
    }
    Ok(tasks)
}

impl Node {
    fn start_peers(&self, tasks: Vec<(String, PeerTask)>) {
        let (stop, tracker) = &self.peers;
        for (name, task) in tasks {
            tracing::info!(task = %name, "starting");
            let stop2 = stop.clone();
            match task {
                PeerTask::Poll(p) => {
                    self.supervisor.spawn(tracker, name, stop.clone(), move || {
                        let (p, stop) = (p.clone(), stop2.clone());
                        async move {
                            p.run(stop).await;
                            Ok(())
                        }
                    })
                }
                PeerTask::Send(s) => {
                    self.supervisor.spawn(tracker, name, stop.clone(), move || {
                        let (s, stop) = (s.clone(), stop2.clone());
                        async move {
                            s.run(stop).await;
                            Ok(())
                        }
                    });
                }
                PeerTask::Push(p) => {
                    let p = Arc::new(p);
                    self.supervisor.spawn(tracker, name, stop.clone(), move || {
                        let (p, stop) = (p.clone(), stop2.clone());
                        async move {
                            p.run(stop).await;
                            Ok(())
                        }
                    });
                }
            }
        }
    }

    /// Reads the configuration again and puts it in force (see the module doc).
    async fn reload(&mut self) -> Result<String, String> {
        ops::systemd::reloading();
        let before = self.live.get().config.clone();
        let result = self.try_reload().await;
        let after = self.live.get().config.clone();
        let ev = self.evidence.clone();
        let recorded = result.clone();
        let _ = tokio::task::spawn_blocking(move || match &recorded {
            Ok(summary) => {
                for e in certificate_changes(&before, &after) {
                    ev.record(e);
                }
                ev.record(Entry::ConfigReloaded {
                    changes: vec![summary.clone()],
                });
            }
            Err(e) => ev.record(Entry::ConfigReloadFailed { error: e.clone() }),
        })
        .await;
        match &result {
            Ok(summary) => {
                tracing::info!(changes = %summary, "configuration reloaded");
                ops::systemd::ready(&format!("serving; reloaded at {}", Timestamp::now()));
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the previous configuration stays in force");
                ops::systemd::ready(&format!("serving; the last reload was refused: {e}"));
            }
        }
        result
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        let old = self.live.get().config.clone();
        let file = old.file.clone();
        let next = tokio::task::spawn_blocking(move || -> Result<Live, String> {
            let c = Config::load(&file).map_err(|e| e.to_string())?;
            Live::build(Arc::new(c)).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let new = next.config.clone();
        for (key, same) in [
            ("node.id", old.node.id == new.node.id),
            ("node.role", old.node.role == new.node.role),
            ("node.data_dir", old.node.data_dir == new.node.data_dir),
        ] {
            if !same {
                return Err(format!(
                    "{}: {key} cannot change while the node runs; restart it (systemctl restart sealpost)",
                    new.file.display()
                ));
            }
        }
        let tasks = peer_tasks(&new, &self.outbox, &self.health, self.evidence.audit())?;
        for w in &new.warnings {
            tracing::warn!(warning = %w, "configuration");
        }
        let restart_only: Vec<&str> = [
            ("server.listen", old.server_listen == new.server_listen),
            ("server limits", old.server_limits == new.server_limits),
            ("admin.listen", old.admin_listen == new.admin_listen),
            ("admin.socket", old.admin_socket == new.admin_socket),
            ("intake.root", old.intake.root == new.intake.root),
            (
                "followup.root",
                old.followup.as_ref().map(|f| &f.root) == new.followup.as_ref().map(|f| &f.root),
            ),
            ("log", old.log == new.log),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(k, _)| k)
        .collect();
        if !restart_only.is_empty() {
            tracing::warn!(settings = %restart_only.join(", "), "changed settings that take effect at the next restart");
        }
        // In force from here on.
        let closed = match &self.api {
            Some(api) => api.reload(next),
            None => {
                self.live.swap(Arc::new(next));
                0
            }
        };
        if let Some(i) = &self.intake {
            i.reconfigure(new.clone());
        }
        if let Some(c) = &self.casework {
            c.reconfigure(new.clone());
        }
        if let Some(n) = &self.notifier {
            n.reconfigure(new.notify.clone());
        }
        if let Some(f) = &self.followup {
            f.reconfigure(new.clone());
        }
        self.evidence.reconfigure(new.clone());
        let (stop, tracker) = std::mem::replace(
            &mut self.peers,
            (self.shutdown.child_token(), TaskTracker::new()),
        );
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(PEER_HANDOVER, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "a poller or pusher is still finishing its item; the new ones start meanwhile"
            );
        }
        self.health.remove_prefix("peer:");
        let peers = tasks.len();
        self.start_peers(tasks);
        // The conditions under the new configuration (certificates, CRLs,
        // disk thresholds), now rather than at the next periodic check.
        let (o, h) = (self.outbox.clone(), self.health.clone());
        let _ = tokio::task::spawn_blocking(move || checks::check(&new, &o, &h, Timestamp::now()))
            .await;
        let mut summary = format!(
            "{} peers in the directory, {peers} pollers/pushers started, {closed} connection(s) closed (peer removed or revoked)",
            self.live.get().config.directory.iter().count()
        );
        if !restart_only.is_empty() {
            summary.push_str(&format!(
                "; takes effect at the next restart: {}",
                restart_only.join(", ")
            ));
        }
        Ok(summary)
    }
}

/// The `certificate-changed` records for what a reload changed: this node's
/// signing and TLS certificates and the exchange CA.
fn certificate_changes(old: &Config, new: &Config) -> Vec<Entry> {
    let mut out = Vec::new();
    let (a, b) = (
        old.keys.signing.cert().summary(),
        new.keys.signing.cert().summary(),
    );
    if a.sha256 != b.sha256 {
        out.push(Entry::CertificateChanged {
            role: "signing".into(),
            sha256: b.sha256,
            subject: Some(b.subject.clone()),
        });
    }
    let (a, b) = (&old.keys.tls.summary, &new.keys.tls.summary);
    if a.sha256 != b.sha256 {
        out.push(Entry::CertificateChanged {
            role: "tls".into(),
            sha256: b.sha256,
            subject: Some(b.subject.clone()),
        });
    }
    let ca = |c: &Config| c.trust.summaries().map(|s| s.sha256).collect::<Vec<_>>();
    if ca(old) != ca(new) {
        for s in new.trust.summaries() {
            out.push(Entry::CertificateChanged {
                role: "ca".into(),
                sha256: s.sha256,
                subject: Some(s.subject.clone()),
            });
        }
    }
    out
}

/// A request to reload, with where to send the outcome.
type ReloadRequest = oneshot::Sender<Result<String, String>>;

async fn serve(
    config: Arc<Config>,
    shutdown: CancellationToken,
    mut signals: Signals,
) -> Result<(), DaemonError> {
    let started = Timestamp::now();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %config.file.display(), "sealpost starting: {}", summary(&config));
    for w in &config.warnings {
        tracing::warn!(warning = %w, "configuration");
    }

    let outbox = Outbox::open(&config.node.data_dir, config.outbox).map_err(|source| {
        DaemonError::Outbox {
            dir: config.node.data_dir.clone(),
            source: Box::new(source),
        }
    })?;
    let recovered =
        crate::inbox::recover(&config).map_err(DaemonError::io("cannot recover the inbox"))?;
    if recovered.removed + recovered.finished > 0 {
        tracing::info!(
            removed = recovered.removed,
            finished = recovered.finished,
            "inbox recovered after an interrupted run"
        );
    }
    // The audit log: repaired (a torn last record) before anything appends.
    let (audit, audit_recovery) = Audit::open(
        &crate::audit::dir_in(&config.node.data_dir),
        &config.node.id,
    )
    .map_err(|e| DaemonError::Config(format!("cannot open the audit log: {e}")))?;
    tracing::info!(records = audit_recovery.head_seq, "audit log opened");
    let evidence = Evidence::new(config.clone(), outbox.clone(), audit.clone());
    evidence.subscribe();
    let health = Health::default();
    let counters = Counters::default();
    let metrics = Arc::new(ops::metrics::Metrics::new());
    {
        let m = metrics.clone();
        outbox.bus().subscribe(Arc::new(move |e| {
            m.observe(e);
            if let Change::Dead { reason } = &e.change {
                tracing::error!(bundle = %e.id, peer = %e.peer, case = %printable(e.case_ref.as_str()), reason = %reason, "a delivery went dead: it will not be offered again unless an operator retries it (sealpost ctl retry)");
            }
        }));
    }
    let live = Shared::new(Arc::new(
        Live::build(config.clone()).map_err(|e| DaemonError::Config(e.to_string()))?,
    ));
    // The committee's case files, notifications and the clerks' status files.
    let (casework, notifier) = if config.node.role == Role::Court {
        (None, None)
    } else {
        let cases = Cases::open(&outbox, &config.node.data_dir)
            .map_err(|e| DaemonError::Config(format!("cannot open the case files: {e}")))?;
        let notifier = crate::notify::Notifier::open(
            &outbox,
            config.notify.clone(),
            config.node.id.clone(),
        )
        .map_err(|e| DaemonError::Config(format!("cannot open the notification queue: {e}")))?;
        let work = Casework::new(
            config.clone(),
            outbox.clone(),
            cases,
            Some(notifier.clone()),
        );
        work.subscribe();
        work.audit_to(audit.clone());
        let w = work.clone();
        let caught = tokio::task::spawn_blocking(move || w.reconcile())
            .await
            .map_err(|e| DaemonError::Config(e.to_string()))?
            .map_err(|e| DaemonError::Config(format!("cannot catch up the case files: {e}")))?;
        if caught > 0 {
            tracing::info!(
                steps = caught,
                "case timelines caught up after an interrupted run"
            );
        }
        (Some(work), Some(notifier))
    };
    let intake = if config.node.role == Role::Court {
        None
    } else {
        let mut i = Intake::new(config.clone(), outbox.clone())
            .and_then(|i| i.clean_uploads().map(|()| i))
            .map_err(DaemonError::Intake)?
            .reporting_to(health.clone());
        if let Some(w) = &casework {
            i = i.keeping_cases(w.cases().clone());
        }
        Some(Arc::new(i.auditing(audit.clone())))
    };
    let followup = match (&config.followup, config.node.role) {
        (Some(_), Role::Court) => Some(Arc::new(
            crate::followup::folder::Folder::new(config.clone()).map_err(DaemonError::Followup)?,
        )),
        _ => None,
    };
    let evidence = match &casework {
        Some(w) => {
            let w = w.clone();
            evidence.sharing(Arc::new(move |id, zip, html| w.share_proof(id, zip, html)))
        }
        None => evidence,
    };
    {
        let (ev, c) = (evidence.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            ev.record(Entry::NodeStarted {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                signing_cert_sha256: c.keys.signing.cert().summary().sha256,
                tls_cert_sha256: c.keys.tls.summary.sha256,
                ca_sha256: c.trust.summaries().map(|s| s.sha256).collect(),
            })
        })
        .await
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    }
    let evidence = evidence.reporting_to(health.clone());
    let supervisor = Supervisor::new(health.clone(), counters.clone());
    let tasks = peer_tasks(&config, &outbox, &health, &audit).map_err(DaemonError::Config)?;

    // Listeners.
    let api_listener = match config.server_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Bind {
                    what: "server.listen",
                    addr: addr.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let ops_listener = match config.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Bind {
                    what: "admin.listen",
                    addr: addr.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let admin_listener =
        ops::admin::bind(&config.admin_socket).map_err(|source| DaemonError::Bind {
            what: "admin.socket",
            addr: config.admin_socket.display().to_string(),
            source,
        })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Some(l) = &api_listener {
            let _ = writeln!(
                out,
                "LISTENING {}",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
        }
        if let Some(l) = &ops_listener {
            let _ = writeln!(
                out,
                "ADMIN {}",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
        }
        let _ = out.flush();
    }

    let mut node = Node {
        live: live.clone(),
        outbox: outbox.clone(),
        health: health.clone(),
        supervisor: supervisor.clone(),
        intake: intake.clone(),
        followup: followup.clone(),
        api: None,
        casework: casework.clone(),
        notifier: notifier.clone(),
        evidence: evidence.clone(),
        shutdown: shutdown.clone(),
        peers: (shutdown.child_token(), TaskTracker::new()),
    };
    let tracker = TaskTracker::new();

    // The mTLS API.
    if let Some(listener) = api_listener {
        let api = Arc::new(
            crate::api::Api::new(live.clone(), outbox.clone(), config.server_limits)
                .with_node(intake.clone(), counters.clone())
                .with_casework(casework.clone())
                .with_audit(audit.clone()),
        );
        node.api = Some(api.clone());
        let listener = Arc::new(listener);
        let stop = shutdown.clone();
        supervisor.spawn(&tracker, "api".into(), shutdown.clone(), move || {
            let (api, listener, stop) = (api.clone(), listener.clone(), stop.clone());
            async move {
                crate::api::serve_shared(listener, api, stop).await;
                Ok(())
            }
        });
    }

    // Metrics and health on loopback.
    if let Some(listener) = ops_listener {
        let state = Arc::new(ops::http::OpsState {
            live: live.clone(),
            outbox: outbox.clone(),
            counters: counters.clone(),
            health: health.clone(),
            metrics: metrics.clone(),
            notifier: notifier.clone(),
            evidence: Some(evidence.clone()),
        });
        let listener = Arc::new(listener);
        let stop = shutdown.clone();
        supervisor.spawn(&tracker, "metrics".into(), shutdown.clone(), move || {
            let (state, listener, stop) = (state.clone(), listener.clone(), stop.clone());
            async move {
                ops::http::serve(listener, state, stop).await;
                Ok(())
            }
        });
    }

    // Notifications to applicants.
    if let Some(n) = &notifier {
        let (n, stop) = (n.clone(), shutdown.clone());
        supervisor.spawn(&tracker, "notify".into(), shutdown.clone(), move || {
            let (n, stop) = (n.clone(), stop.clone());
            async move { n.run(stop).await.map_err(|e| e.to_string()) }
        });
    }

    // Proofs of delivery and periodic checkpoints.
    {
        let (ev, stop) = (evidence.clone(), shutdown.clone());
        supervisor.spawn(&tracker, "evidence".into(), shutdown.clone(), move || {
            let (ev, stop) = (ev.clone(), stop.clone());
            async move { ev.run(stop).await }
        });
    }

    // Reloads are done one at a time, here, whoever asks.
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(8);

    // The admin socket.
    {
        let tx = reload_tx.clone();
        let reload: ops::admin::Reloader = Arc::new(move || {
            let tx = tx.clone();
            Box::pin(async move {
                let (reply, answer) = oneshot::channel();
                tx.send(reply)
                    .await
                    .map_err(|_| "the node is stopping".to_owned())?;
                answer
                    .await
                    .map_err(|_| "the node is stopping".to_owned())?
            })
        });
        let (b_live, b_outbox) = (live.clone(), outbox.clone());
        let backup: ops::admin::Backup =
            Arc::new(move |dir| backup(&b_live.get().config, &b_outbox, dir));
        let ctx = ops::admin::Context {
            live: live.clone(),
            outbox: outbox.clone(),
            health: health.clone(),
            counters: counters.clone(),
            started,
            reload,
            backup,
            casework: casework.clone(),
            evidence: Some(evidence.clone()),
        };
        let listener = Arc::new(admin_listener);
        let stop = shutdown.clone();
        supervisor.spawn(&tracker, "admin".into(), shutdown.clone(), move || {
            let (ctx, listener, stop) = (ctx.clone(), listener.clone(), stop.clone());
            async move {
                ops::admin::serve(listener, ctx, stop).await;
                Ok(())
            }
        });
    }

    // Intake, on a blocking thread of its own.
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<Wake>();
    let _watcher = intake.as_ref().and_then(|i| {
        match crate::intake::watch(&i.dirs().intake, wake_tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the intake folder; relying on periodic scans");
                None
            }
        }
    });
    if let Some(intake) = &intake {
        let wake_rx = Arc::new(std::sync::Mutex::new(wake_rx));
        let intake = intake.clone();
        let counters = counters.clone();
        supervisor.spawn(&tracker, "intake".into(), shutdown.clone(), move || {
            let (intake, wake_rx, counters) = (intake.clone(), wake_rx.clone(), counters.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let rx = wake_rx.lock().unwrap_or_else(|p| p.into_inner());
                    crate::intake::run(&intake, &rx, |o| report_outcome(o, &counters))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
        });
    }

    // The court's follow-up folder, likewise on a blocking thread.
    let (followup_tx, followup_rx) = std::sync::mpsc::channel::<Wake>();
    let _followup_watcher = followup.as_ref().and_then(|f| {
        match crate::intake::watch(&f.dirs().drop, followup_tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the follow-up folder; relying on periodic scans");
                None
            }
        }
    });
    if let Some(folder) = &followup {
        let rx = Arc::new(std::sync::Mutex::new(followup_rx));
        let (folder, h) = (folder.clone(), health.clone());
        supervisor.spawn(&tracker, "followup".into(), shutdown.clone(), move || {
            let (folder, rx, h) = (folder.clone(), rx.clone(), h.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
                    crate::followup::folder::run(&folder, &rx, &h, report_followup)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
        });
    }

    // A CRL file that changes (the CA publishes a new one) reloads like SIGHUP.
    let _crl_watcher = watch_crls(&config.crl_files, reload_tx.clone());

    // Checks and the watchdog.
    {
        let (l, o, h, stop) = (
            live.clone(),
            outbox.clone(),
            health.clone(),
            shutdown.clone(),
        );
        supervisor.spawn(&tracker, "checks".into(), shutdown.clone(), move || {
            checks::run(l.clone(), o.clone(), h.clone(), stop.clone())
        });
    }
    if let Some(interval) = ops::systemd::watchdog_interval() {
        tracing::info!(interval = ?interval, "systemd watchdog enabled");
        let (h, stop) = (health.clone(), shutdown.clone());
        supervisor.spawn(&tracker, "watchdog".into(), shutdown.clone(), move || {
            checks::watchdog(interval, h.clone(), stop.clone())
        });
    }
    node.start_peers(tasks);

    ops::systemd::ready(&format!("serving: {}", summary(&config)));
    tracing::info!(node = %config.node.id, role = %config.node.role, "sealpost running");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let _ = node.reload().await;
            }
            Some(reply) = reload_rx.recv() => {
                let r = node.reload().await;
                let _ = reply.send(r);
            }
        }
    }

    tracing::info!("stopping: finishing the items in hand");
    ops::systemd::stopping();
    shutdown.cancel();
    let _ = wake_tx.send(Wake::Stop);
    let _ = followup_tx.send(Wake::Stop);
    let (peer_stop, peer_tracker) = &node.peers;
    peer_stop.cancel();
    peer_tracker.close();
    tracker.close();
    let drained = tokio::time::timeout(DRAIN, async {
        tracker.wait().await;
        peer_tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "work still in hand after 30 s; stopping anyway (it resumes at the next start)"
        );
    }
    // The last records of this run, signed.
    let ev = evidence.clone();
    let _ = tokio::task::spawn_blocking(move || {
        ev.record(Entry::NodeStopped);
        ev.checkpoint();
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// Counts and announces an intake outcome (standard output: one line per
/// application, for clerks' scripts and the demo).
fn report_outcome(o: &Outcome, counters: &Counters) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = match o {
        Outcome::Accepted { name, id } => {
            counters.accepted();
            writeln!(stdout, "ACCEPTED  {}  bundle {id}", printable(name))
        }
        Outcome::Rejected { name, codes, .. } => {
            counters.rejected();
            let codes: Vec<String> = codes.iter().map(|c| c.as_str()).collect();
            writeln!(
                stdout,
                "REJECTED  {}  [{}]",
                printable(name),
                codes.join(", ")
            )
        }
        Outcome::Held { .. } => Ok(()),
    };
    let _ = stdout.flush();
}

/// Announces a follow-up folder outcome on standard output (one line per
/// item, like intake's).
fn report_followup(o: &crate::followup::folder::Outcome) {
    use crate::followup::folder::Outcome as O;
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = match o {
        O::Accepted { name, id } => {
            writeln!(stdout, "EVENT ACCEPTED  {}  event {id}", printable(name))
        }
        O::Rejected { name, codes, .. } => {
            let codes: Vec<String> = codes.iter().map(|c| c.as_str()).collect();
            writeln!(
                stdout,
                "EVENT REJECTED  {}  [{}]",
                printable(name),
                codes.join(", ")
            )
        }
        O::Held { .. } => Ok(()),
    };
    let _ = stdout.flush();
}

/// `sealpost ctl backup DIR`: a consistent copy of the node's state — the
/// outbox (its index as of one instant, then the bundles and receipts it
/// refers to) and the inbox's complete folders with the `received/` index —
/// plus `backup.json` describing it. `dir` must not exist or be empty.
fn backup(
    config: &Config,
    outbox: &Outbox,
    dir: &std::path::Path,
) -> Result<serde_json::Value, String> {
    let show = |e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
    if let Ok(mut rd) = std::fs::read_dir(dir) {
        if rd.next().is_some() {
            return Err(format!("{}: not empty; give a new folder", dir.display()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| show(&e))?;
    let taken = Timestamp::now();
    let (records, bundles, receipts) = outbox.backup(dir).map_err(|e| show(&e))?;
    let inbox = crate::inbox::backup(config, dir).map_err(|e| show(&e))?;
    // The evidence: the audit chain (an append-only file: a copy is a prefix
    // of whole records), the proofs and the signed manifests they are made of.
    let mut evidence = serde_json::Map::new();
    for rel in ["audit", "proofs", "outbox/manifests"] {
        let from = config.node.data_dir.join(rel);
        if from.is_dir() {
            let n = crate::fsutil::copy_tree(&from, &dir.join(rel)).map_err(|e| show(&e))?;
            evidence.insert(rel.to_owned(), n.into());
        }
    }
    let manifest = serde_json::json!({
        "format": "sealpost-backup-1",
        "version": env!("CARGO_PKG_VERSION"),
        "node": config.node.id,
        "taken_at": taken,
        "outbox": {"deliveries": records, "bundles": bundles, "receipts": receipts},
        "inbox": inbox,
        "evidence": evidence,
        "restore": "stop the daemon; copy every folder here into node.data_dir (owned by the service user); start the daemon",
    });
    crate::fsutil::write_new_atomic(
        &dir.join("backup.json"),
        serde_json::to_string_pretty(&manifest)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| show(&e))?;
    tracing::info!(dir = %dir.display(), deliveries = records, bundles, receipts, inbox_folders = inbox.folders, "backup made");
    Ok(manifest)
}

/// Watches the folders of the CRL files and asks for a reload when one of
/// them is written, replaced or renamed into place.
fn watch_crls(
    files: &[std::path::PathBuf],
    reload: mpsc::Sender<ReloadRequest>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    if files.is_empty() {
        return None;
    }
    let names: Vec<std::path::PathBuf> = files.to_vec();
    let mut w = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        let relevant = matches!(
            ev.kind,
            notify::EventKind::Create(_) | notify::EventKind::Modify(_)
        ) && ev
            .paths
            .iter()
            .any(|p| names.iter().any(|n| p.file_name() == n.file_name()));
        if relevant {
            tracing::info!("a CRL file changed; reloading");
            let (tx, _rx) = oneshot::channel();
            // A reload already waiting covers this change too.
            let _ = reload.try_send(tx);
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the CRL files; reload them with SIGHUP");
            return None;
        }
    };
    let mut dirs: Vec<&std::path::Path> =
        files.iter().map(|f| crate::fsutil::parent_of(f)).collect();
    dirs.dedup();
    for d in dirs {
        if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch a CRL folder; reload with SIGHUP");
        }
    }
    Some(w)
}
