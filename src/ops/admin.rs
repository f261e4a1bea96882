//! The admin socket: a Unix socket (mode 0600) served by the running daemon,
//! the only way to change the node while it runs (`sealpost ctl`). There is
//! no network-facing admin surface.
//!
//! * **Who may connect**: the kernel's peer credentials (`SO_PEERCRED`) are
//!   checked on every connection: root or the user the daemon runs as. Others
//!   are answered `forbidden` and closed, whatever the socket's mode.
//! * **Protocol**: one JSON [`Request`] per line; the daemon answers one JSON
//!   [`Reply`] line and closes. `socat - UNIX-CONNECT:/run/sealpost/admin.sock`
//!   is a working client: `{"command":"status"}`.
//! * Every change made here is an outbox transition, so it raises the same
//!   event (metrics, later the audit chain) as the node's own changes, and is
//!   logged with the operator's uid.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outbox::{Outbox, OutboxError};
use crate::status::{Counters, Health};
use crate::transport::tls::{Live, Shared};
use crate::types::{printable, BundleId, Timestamp};

/// A command for the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// The node: version, uptime, readiness of every part, queue depths.
    Status,
    /// Deliveries in queue order.
    List {
        /// Only this state (queued, fetched, delivered, failed, dead, cancelled).
        #[serde(default)]
        state: Option<String>,
        /// Only deliveries for this peer.
        #[serde(default)]
        peer: Option<String>,
    },
    /// One delivery.
    Show {
        /// The bundle.
        id: BundleId,
    },
    /// Offer a fetched, failed or dead delivery again, at its old position.
    Retry {
        /// The bundle.
        id: BundleId,
    },
    /// Offer a delivery again at the end of the queue (a new position).
    Requeue {
        /// The bundle.
        id: BundleId,
    },
    /// Withdraw a delivery that has not been delivered.
    Cancel {
        /// The bundle.
        id: BundleId,
        /// Why (recorded in the delivery).
        reason: String,
    },
    /// Copy the state consistently into a new folder.
    Backup {
        /// The folder to create (absolute; must not exist or be empty).
        dir: PathBuf,
    },
    /// Reload the configuration, peer directory, certificates and CRLs.
    Reload,
    /// The proof of delivery (送达证明) of a delivered application: made if
    /// missing, and its path returned.
    Proof {
        /// The bundle.
        id: BundleId,
    },
    /// One case: its bundles, the court's events, its timeline (committees).
    Case {
        /// The case number.
        case: String,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// On failure, a stable code (`not-found`, `refused`, `forbidden`,
    /// `bad-request`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// On failure, what went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On success, the result.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    /// `ok`, or the failure's code (for the audit log).
    fn outcome(&self) -> String {
        if self.ok {
            "ok".into()
        } else {
            self.code.clone().unwrap_or_else(|| "failed".into())
        }
    }

    fn ok(data: serde_json::Value) -> Self {
        Self {
            ok: true,
            code: None,
            error: None,
            data,
        }
    }

    fn err(code: &str, error: impl std::fmt::Display) -> Self {
        Self {
            ok: false,
            code: Some(code.to_owned()),
            error: Some(error.to_string()),
            data: serde_json::Value::Null,
        }
    }
}

/// A reload in progress: a summary of what changed, or the exact error.
pub type ReloadFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>;

/// Reloads the node's configuration (the same path as SIGHUP).
pub type Reloader = Arc<dyn Fn() -> ReloadFuture + Send + Sync>;

/// Copies the node's state into a folder; returns what it copied.
pub type Backup = Arc<dyn Fn(&Path) -> Result<serde_json::Value, String> + Send + Sync>;

/// What the admin socket serves from.
#[derive(Clone)]
pub struct Context {
    /// The configuration in force.
    pub live: Shared<Live>,
    /// The outbox.
    pub outbox: Outbox,
    /// Readiness of every part.
    pub health: Health,
    /// Service counters.
    pub counters: Counters,
    /// When the daemon started.
    pub started: Timestamp,
    /// Reloads the configuration (the same path as SIGHUP).
    pub reload: Reloader,
    /// Makes a backup.
    pub backup: Backup,
    /// The committee's case files (`ctl status CASE`), if this node keeps them.
    pub casework: Option<crate::followup::casework::Casework>,
    /// The audit log and proofs of delivery.
    pub evidence: Option<crate::evidence::service::Evidence>,
}

impl Context {
    /// Records an operator's action in the audit log.
    fn audit(&self, uid: u32, action: &str, target: Option<String>, reply: &Reply) {
        if let Some(e) = &self.evidence {
            e.record(crate::audit::Entry::OperatorAction {
                action: action.to_owned(),
                target,
                uid,
                outcome: reply.outcome(),
            });
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Binds the admin socket at `path`: refuses if a daemon already answers
/// there, replaces a stale socket file, and makes it 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another sealpost daemon answers on this admin socket",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether the peer of `stream` may use the socket: root or our own user.
fn allowed(stream: &UnixStream) -> Result<u32, String> {
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let uid = cred.uid.as_raw();
    if uid == 0 || uid == rustix::process::geteuid().as_raw() {
        Ok(uid)
    } else {
        Err(format!(
            "uid {uid} may not use the admin socket (root or uid {} only)",
            rustix::process::geteuid().as_raw()
        ))
    }
}

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// Serves the socket until `shutdown`.
pub async fn serve(listener: Arc<UnixListener>, ctx: Context, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        tracker.spawn(async move {
            if let Err(e) =
                tokio::time::timeout(Duration::from_secs(600), session(stream, ctx)).await
            {
                tracing::warn!(error = %e, "admin socket: a session took too long; closed");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn session(stream: UnixStream, ctx: Context) {
    let uid = allowed(&stream);
    let (read, mut write) = stream.into_split();
    let reply = match uid {
        Err(why) => {
            tracing::warn!(why, "admin socket: connection refused");
            Reply::err("forbidden", why)
        }
        Ok(uid) => {
            let mut line = Vec::new();
            let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64 + 1);
            match tokio::time::timeout(Duration::from_secs(10), reader.read_until(b'\n', &mut line))
                .await
            {
                Err(_) => Reply::err("bad-request", "no request within 10 s"),
                Ok(Err(e)) => Reply::err("bad-request", e),
                Ok(Ok(_)) if line.len() > MAX_REQUEST => {
                    Reply::err("bad-request", "the request is too long")
                }
                Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
                    Err(e) => Reply::err("bad-request", format!("not a request: {e}")),
                    Ok(req) => execute(&ctx, req, uid).await,
                },
            }
        }
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = write.write_all(&out).await;
    let _ = write.shutdown().await;
}

fn outbox_reply(e: &OutboxError) -> Reply {
    match e {
        OutboxError::NotFound(_) => Reply::err("not-found", e),
        OutboxError::Transition(_) => Reply::err("refused", e),
        _ => Reply::err("failed", e),
    }
}

async fn execute(ctx: &Context, req: Request, uid: u32) -> Reply {
    match req {
        Request::Reload => {
            tracing::info!(uid, "admin: reload requested");
            let reply = match (ctx.reload)().await {
                Ok(summary) => Reply::ok(serde_json::json!({ "reloaded": summary })),
                Err(e) => Reply::err("refused", e),
            };
            ctx.audit(uid, "reload", None, &reply);
            reply
        }
        Request::Backup { dir } => {
            if !dir.is_absolute() {
                return Reply::err(
                    "bad-request",
                    format!(
                        "{}: give an absolute path (the daemon's working directory is not yours)",
                        dir.display()
                    ),
                );
            }
            tracing::info!(uid, dir = %dir.display(), "admin: backup requested");
            let backup = ctx.backup.clone();
            let target = Some(dir.display().to_string());
            let reply = match tokio::task::spawn_blocking(move || backup(&dir)).await {
                Ok(Ok(v)) => Reply::ok(v),
                Ok(Err(e)) => Reply::err("failed", e),
                Err(e) => Reply::err("failed", e),
            };
            ctx.audit(uid, "backup", target, &reply);
            reply
        }
        req => {
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || execute_blocking(&ctx, req, uid))
                .await
                .unwrap_or_else(|e| Reply::err("failed", e))
        }
    }
}

fn execute_blocking(ctx: &Context, req: Request, uid: u32) -> Reply {
    // What changes something is recorded in the audit log; reads are not.
    let action = match &req {
        Request::Retry { id } => Some(("retry", *id)),
        Request::Requeue { id } => Some(("requeue", *id)),
        Request::Cancel { id, .. } => Some(("cancel", *id)),
        Request::Proof { id } => Some(("proof", *id)),
        _ => None,
    };
    let reply = execute_read_or_change(ctx, req, uid);
    if let Some((what, id)) = action {
        ctx.audit(uid, what, Some(id.to_string()), &reply);
    }
    reply
}

fn execute_read_or_change(ctx: &Context, req: Request, uid: u32) -> Reply {
    let now = Timestamp::now();
    let outbox = &ctx.outbox;
    let change = |what: &str, id: BundleId, r: Result<_, OutboxError>| match r {
        Ok((d, _)) => {
            tracing::info!(uid, bundle = %id, what, "admin: delivery changed");
            Reply::ok(serde_json::to_value::<&crate::outbox::Delivery>(&d).unwrap_or_default())
        }
        Err(e) => outbox_reply(&e),
    };
    match req {
        Request::Status => Reply::ok(status(ctx)),
        Request::Case { case } => {
            let Ok(case) = case.parse::<crate::types::CaseRef>() else {
                return Reply::err(
                    "bad-request",
                    format!("{:?} is not a case number", printable(&case)),
                );
            };
            let Some(work) = &ctx.casework else {
                return Reply::err(
                    "not-found",
                    "this node keeps no case files (it is not a committee)",
                );
            };
            match (work.view(&case), work.status_text(&case)) {
                (Ok(Some(view)), Ok(Some(text))) => {
                    Reply::ok(serde_json::json!({"view": view, "text": text}))
                }
                (Ok(None), _) | (_, Ok(None)) => {
                    Reply::err("not-found", format!("no case {}", printable(case.as_str())))
                }
                (Err(e), _) | (_, Err(e)) => Reply::err("failed", e),
            }
        }
        Request::List { state, peer } => {
            if let Some(s) = &state {
                if !crate::outbox::State::NAMES.contains(&s.as_str()) {
                    return Reply::err(
                        "bad-request",
                        format!(
                            "no state {:?}; one of {}",
                            printable(s),
                            crate::outbox::State::NAMES.join(", ")
                        ),
                    );
                }
            }
            match outbox.list() {
                Ok(list) => Reply::ok(serde_json::Value::Array(
                    list.iter()
                        .filter(|d| state.as_deref().is_none_or(|s| s == d.state.name()))
                        .filter(|d| peer.as_deref().is_none_or(|p| p == d.peer.as_str()))
                        .filter_map(|d| serde_json::to_value(d).ok())
                        .collect(),
                )),
                Err(e) => outbox_reply(&e),
            }
        }
        Request::Show { id } => match outbox.get(&id) {
            Ok(Some(d)) => Reply::ok(serde_json::to_value(&d).unwrap_or_default()),
            Ok(None) => outbox_reply(&OutboxError::NotFound(id)),
            Err(e) => outbox_reply(&e),
        },
        Request::Retry { id } => {
            let policy = *outbox.policy();
            change(
                "retry",
                id,
                outbox.transition(&id, now, |d| d.retry(now, &policy)),
            )
        }
        Request::Requeue { id } => change("requeue", id, outbox.requeue(&id, now)),
        Request::Cancel { id, reason } => {
            if reason.trim().is_empty() {
                return Reply::err("bad-request", "give a reason for the cancellation");
            }
            change(
                "cancel",
                id,
                outbox.transition(&id, now, |d| {
                    d.cancel(now, format!("{reason} (operator uid {uid})"))
                }),
            )
        }
        Request::Proof { id } => {
            let Some(evidence) = &ctx.evidence else {
                return Reply::err("not-found", "this node keeps no proofs of delivery");
            };
            tracing::info!(uid, bundle = %id, "admin: proof of delivery requested");
            match evidence.make_proof(&id) {
                Ok(path) => Reply::ok(serde_json::json!({ "bundle": id, "proof": path })),
                Err(crate::evidence::service::EvidenceError::NotDelivered(why)) => {
                    Reply::err("not-found", why)
                }
                Err(e) => Reply::err("failed", e),
            }
        }
        Request::Reload | Request::Backup { .. } => Reply::err("failed", "not a blocking command"),
    }
}

fn status(ctx: &Context) -> serde_json::Value {
    let live = ctx.live.get();
    let c = &live.config;
    let mut queues: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    if let Ok(counts) = ctx.outbox.counts() {
        for (state, peer, n) in counts {
            queues.entry(peer.to_string()).or_default().insert(state, n);
        }
    }
    let (accepted, rejected) = ctx.counters.intake();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "node": c.node.id,
        "role": c.node.role.to_string(),
        "config": c.file,
        "started": ctx.started,
        "uptime_seconds": Timestamp::now().unix() - ctx.started.unix(),
        "ready": ctx.health.is_ready(),
        "alive": ctx.health.is_alive(),
        "parts": ctx.health.parts(),
        "deliveries": queues,
        "intake": {"accepted": accepted, "rejected": rejected},
        "downloads": ctx.counters.downloads(),
        "restarts": ctx.counters.restarts(),
    })
}

// ------------------------------------------------------------------- client

/// Why `sealpost ctl` could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("cannot reach the daemon at {path}: {source} (is `sealpost run` running, and is this its configuration?)")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The conversation failed.
    #[error("admin socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon's answer was not a reply.
    #[error("admin socket {path}: the daemon's answer is not a reply: {source}")]
    Garbled {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Sends `req` to the daemon listening on `path` and returns its reply
/// (blocking; for the CLI).
pub fn call(path: &Path, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).unwrap_or_default();
    line.push(b'\n');
    // The daemon may answer (e.g. `forbidden`) and close before reading the
    // request: its answer matters more than our write error.
    let written = stream.write_all(&line);
    let mut answer = String::new();
    let read = BufReader::new(stream).read_line(&mut answer);
    match (serde_json::from_str(&answer), written, read) {
        (Ok(reply), _, _) => Ok(reply),
        (Err(_), Err(e), _) | (Err(_), Ok(()), Err(e)) => Err(io(e)),
        (Err(source), Ok(()), Ok(_)) => Err(ClientError::Garbled {
            path: path.to_owned(),
            source,
        }),
    }
}
