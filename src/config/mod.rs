//! Configuration: a TOML file plus `SEALPOST_SECTION__KEY` environment overrides,
//! loaded with the `config` crate in two phases.
//!
//! Phase one deserialises into `Raw*` structs (`deny_unknown_fields`, so a typo is
//! an error, not a silent default). Phase two turns them into [`Config`]: real
//! types, every path resolved relative to the config file, every key and
//! certificate loaded and cross-checked against the peer directory. Nothing binds a
//! port or touches the data directory before phase two has passed.
//!
//! Every error names the file, the line where it can be found, the key, and what is
//! wrong ([`ConfigError`]); `sealpost check-config` prints it and exits 78.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod directory;
mod followup;
mod notify;
mod proxy;
mod site;

use directory::parse_role;
pub use directory::{load_directory, DeliveryMode, Directory, Peer, Role};
pub use followup::FollowupSettings;
pub use notify::EVENT_KINDS as NOTIFY_EVENT_KINDS;
pub use notify::{
    is_loopback_host, EmailSettings, EmailTransport, NotifySettings, Secret, SmsSettings,
    SmtpSettings, SmtpTls,
};
pub use proxy::{ProxyCredentials, ProxySettings};
use site::Site;
pub use site::{locate_key, ConfigError};

use crate::pki::{
    EncryptionIdentity, EncryptionRecipient, ExchangeCa, PkiError, SigningKey, TlsIdentity,
};
use crate::types::{parse_byte_size, AgencyId};

/// Environment variables with this prefix override file keys:
/// `SEALPOST_NODE__DATA_DIR=/srv/sealpost` sets `node.data_dir`.
pub const ENV_PREFIX: &str = "SEALPOST";

/// Size and count limits, for applications and for bundles received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most documents in one application.
    pub max_documents: usize,
    /// Largest single document, bytes.
    pub max_document_size: u64,
    /// Largest sum of documents in one application, bytes.
    pub max_total_size: u64,
    /// Largest bundle file accepted, bytes.
    pub max_bundle_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_documents: 50,
            max_document_size: 2 << 30,
            max_total_size: 4 << 30,
            max_bundle_size: (4 << 30) + (64 << 20),
        }
    }
}

/// Delivery deadlines (one per waiting state) and retry limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// `queued`/`failed`: a bundle not fetched (or pushed) this long after
    /// queuing goes `dead`.
    pub deadline: Duration,
    /// `fetched`: a bundle whose receipt has not arrived this long after the
    /// fetch goes `dead` (the court downloaded it but never signed for it).
    pub receipt_deadline: Duration,
    /// In either state, after this long the delivery is reported as overdue.
    pub warn_after: Duration,
    /// Failed attempts before a delivery goes `dead`.
    pub max_attempts: u32,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(7 * 86_400),
            receipt_deadline: Duration::from_secs(2 * 86_400),
            warn_after: Duration::from_secs(86_400),
            max_attempts: 20,
        }
    }
}

/// Limits of the mTLS API server (`[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// TLS handshake must complete within this.
    pub handshake: Duration,
    /// Handshakes under way at once; beyond, the oldest is dropped.
    pub max_handshakes: usize,
    /// Request headers must arrive within this (slow-loris).
    pub header_read: Duration,
    /// Grace before a request body must reach `min_body_rate`.
    pub body_grace: Duration,
    /// Slowest average rate a request body may arrive at after the grace, bytes/s.
    pub min_body_rate: u64,
    /// Authenticated connections at once, all peers together.
    pub max_connections: usize,
    /// Authenticated connections at once, per peer.
    pub max_connections_per_peer: usize,
    /// Request head buffer (hyper's minimum is 8 KiB).
    pub max_header_bytes: usize,
    /// Largest receipt body.
    pub max_receipt_bytes: usize,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// Uploads are refused when they would leave less free disk than this.
    pub min_free_space: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            max_handshakes: 128,
            header_read: Duration::from_secs(10),
            body_grace: Duration::from_secs(10),
            min_body_rate: 16 * 1024,
            max_connections: 256,
            max_connections_per_peer: 16,
            max_header_bytes: 16 * 1024,
            max_receipt_bytes: 64 * 1024,
            max_wait: Duration::from_secs(60),
            min_free_space: 256 << 20,
        }
    }
}

/// Where the daemon's log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when started by systemd (stderr is the journal), else text.
    Auto,
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
    /// journald's native protocol, with priorities.
    Journald,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Where and how.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sealpost=debug,info`
    /// (`SEALPOST_LOG` in the environment takes precedence).
    pub level: String,
}

/// This node's identity and where it keeps its state.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its agency id (must be in the directory).
    pub id: AgencyId,
    /// Its role.
    pub role: Role,
    /// Where queues, stores and inboxes live.
    pub data_dir: PathBuf,
}

/// Where clerks drop applications, and how the watcher decides a drop is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSettings {
    /// Holds `intake/`, `accepted/`, `rejected/`, `archive/` and the hidden
    /// `.work/`; all on one file system so that every move is an atomic rename.
    pub root: PathBuf,
    /// A drop without a `READY` marker is taken once its files, sizes and
    /// modification times have not changed for this long, across two scans.
    pub settle: std::time::Duration,
    /// Periodic rescan, in case a file-system event was missed.
    pub scan_interval: std::time::Duration,
    /// Applications processed in parallel.
    pub workers: usize,
    /// Originals in `archive/` are removed this long after acceptance, once
    /// their delivery is final (delivered or cancelled). `None`: kept forever.
    pub archive_retention: Option<std::time::Duration>,
    /// A claimed item still being written after this long is rejected as
    /// still being written.
    pub write_timeout: std::time::Duration,
    /// Whether to ask the kernel (file leases) that no one has a claimed file
    /// open for writing. Without leases, an item taken by its `READY` marker
    /// must stay unchanged for `settle` after it is claimed.
    pub use_leases: bool,
    /// Intake pauses while the intake root or the data directory has less
    /// free space than this, and resumes when there is room again.
    pub min_free_space: u64,
}

/// A duration written for people, parsed by `humantime`: one or more
/// number-and-unit pairs such as `"500ms"`, `"10s"`, `"5m"`, `"1h 30m"`,
/// `"7d"` or `"2weeks"`. Units: `ms`, `s`, `m` (minutes), `h`, `d`, `w`, also
/// spelt out (`sec`, `min`, `hours`, `days`, `weeks` …); `"0"` alone is zero.
/// Units are case-sensitive. The capital `M` (months to `humantime`) is
/// refused, so that `"10M"` cannot silently mean ten months.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if t.split(|c: char| !c.is_alphabetic())
        .any(|unit| unit == "M")
    {
        return Err(format!(
            "{s:?}: \"M\" is ambiguous; write \"m\" or \"min\" for minutes, \"months\" for months"
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. \"10s\", \"5m\", \"1h 30m\" or \"7d\"")
    })
}

/// This node's private keys.
#[derive(Debug)]
pub struct NodeKeys {
    /// TLS certificate chain and key.
    pub tls: TlsIdentity,
    /// Ed25519 signing key and certificate.
    pub signing: SigningKey,
    /// age identity for receiving.
    pub encryption: EncryptionIdentity,
    /// Optional archive recipient: every bundle sealed here is also encrypted to it.
    pub archive: Option<EncryptionRecipient>,
}

/// A validated configuration, ready to run on.
#[derive(Debug)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// This node.
    pub node: Node,
    /// Private keys.
    pub keys: NodeKeys,
    /// Trusted exchange CA(s).
    pub trust: ExchangeCa,
    /// CRL files (PEM) checked for every client certificate; re-read on reload.
    pub crl_files: Vec<PathBuf>,
    /// The peer directory.
    pub directory: Directory,
    /// Where the directory was loaded from.
    pub directory_file: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// The watched folder and its siblings.
    pub intake: IntakeSettings,
    /// Court nodes: the follow-up folder (`[followup]`), if configured.
    pub followup: Option<FollowupSettings>,
    /// Delivery deadlines and retry limits.
    pub outbox: OutboxPolicy,
    /// Court nodes: how long each long-poll of a committee waits.
    pub client_wait: std::time::Duration,
    /// The HTTP proxy connections to peers go through (`CONNECT`), if any.
    pub client_proxy: Option<ProxySettings>,
    /// mTLS API listen address, if this node serves.
    pub server_listen: Option<SocketAddr>,
    /// mTLS API limits.
    pub server_limits: ServerLimits,
    /// Metrics and health listener (loopback only).
    pub admin_listen: Option<SocketAddr>,
    /// The admin socket `sealpost ctl` talks to.
    pub admin_socket: PathBuf,
    /// How the daemon logs.
    pub log: LogSettings,
    /// Certificates and CRLs expiring within this many days are warned about.
    pub expiry_warning_days: u32,
    /// Applicant notifications (`[notify]`; default: no channel).
    pub notify: NotifySettings,
    /// Things that work but should be fixed (a private key readable by
    /// others): printed by `check-config`, logged at start.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// This node's own directory entry (checked to exist at load time).
    pub fn me(&self) -> &Peer {
        self.directory
            .get(&self.node.id)
            .expect("validated: node.id is in the directory")
    }
}

// ---------------------------------------------------------------- phase one

use site::OneOrMany;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    pki: RawPki,
    directory: RawDirectory,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    intake: RawIntake,
    followup: Option<followup::RawFollowup>,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    client: RawClient,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    notify: notify::RawNotify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    role: String,
    data_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPki {
    exchange_ca: OneOrMany,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    signing_cert: PathBuf,
    signing_key: PathBuf,
    encryption_identity: PathBuf,
    archive_recipient: Option<String>,
    #[serde(default)]
    crls: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_documents: Option<usize>,
    max_document_size: Option<String>,
    max_total_size: Option<String>,
    max_bundle_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntake {
    root: Option<PathBuf>,
    settle: Option<String>,
    scan_interval: Option<String>,
    workers: Option<usize>,
    archive_retention: Option<String>,
    write_timeout: Option<String>,
    use_leases: Option<bool>,
    min_free_space: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    deadline: Option<String>,
    receipt_deadline: Option<String>,
    warn_after: Option<String>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    wait: Option<String>,
    proxy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    expiry_warning_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    handshake_timeout: Option<String>,
    max_handshakes: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    min_body_rate: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_peer: Option<usize>,
    min_free_space: Option<String>,
}

// ---------------------------------------------------------------- phase two

impl Config {
    /// Loads, overrides from the process environment, and validates.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")) && k.contains("__"))
            .collect();
        Self::load_with_env(file, env)
    }

    /// Loads with an explicit set of `SEALPOST_*` overrides (tests).
    pub fn load_with_env(
        file: &Path,
        env: std::collections::HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let whole_file = |message: String| ConfigError::whole_file(file, message);
        let text = std::fs::read_to_string(file)
            .map_err(|e| whole_file(format!("cannot read the configuration file: {e}")))?;
        // Syntax first, with toml's own line/column report.
        if let Err(e) = text.parse::<toml::Table>() {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            return Err(ConfigError {
                file: file.to_owned(),
                line,
                key: None,
                message: format!("not valid TOML: {}", e.message()),
                env_var: None,
            });
        }
        let env_keys: Vec<String> = env.keys().cloned().collect();
        let built = config::Config::builder()
            .add_source(config::File::from(file).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .source(Some(env)),
            )
            .build()
            .map_err(|e| whole_file(e.to_string()))?;
        let site = Site {
            file,
            text: &text,
            env: env_keys
                .iter()
                .map(|var| (env_key(var), var.clone()))
                .collect(),
        };
        let raw: RawConfig = built.try_deserialize().map_err(|e| {
            let msg = e.to_string();
            let key = unknown_field(&msg).or_else(|| backticked(&msg));
            // The environment is mentioned only when the key is not in the file.
            let in_file = key.as_ref().is_some_and(|k| locate_key(&text, k).is_some());
            let from_env = if env_keys.is_empty()
                || in_file
                || key.as_ref().is_some_and(|k| site.env.contains_key(k))
            {
                String::new()
            } else {
                format!(
                    " (environment overrides in effect: {})",
                    env_keys.join(", ")
                )
            };
            match key {
                Some(k) => site.err(k, format!("{msg}{from_env}")),
                None => whole_file(format!("{msg}{from_env}")),
            }
        })?;
        Self::validate(raw, &site)
    }

    fn validate(raw: RawConfig, site: &Site<'_>) -> Result<Self, ConfigError> {
        let id: AgencyId = raw
            .node
            .id
            .parse()
            .map_err(|e| site.err("node.id", format!("{e}")))?;
        let role = parse_role(&raw.node.role).map_err(|m| site.err("node.role", m))?;
        let data_dir = site.resolve(&raw.node.data_dir);

        let ca_paths: Vec<PathBuf> = raw
            .pki
            .exchange_ca
            .into_vec()
            .iter()
            .map(|p| site.resolve(p))
            .collect();
        if ca_paths.is_empty() {
            return Err(site.err(
                "pki.exchange_ca",
                "at least one CA certificate file is required",
            ));
        }
        let trust = ExchangeCa::load(&ca_paths).map_err(|e| site.pki("pki.exchange_ca", e))?;
        let tls = TlsIdentity::load(
            &site.resolve(&raw.pki.tls_cert),
            &site.resolve(&raw.pki.tls_key),
        )
        .map_err(|e| match &e {
            PkiError::Read { path, .. }
            | PkiError::Pem { path, .. }
            | PkiError::Unsuitable { path, .. }
                if *path == site.resolve(&raw.pki.tls_key) =>
            {
                site.pki("pki.tls_key", e)
            }
            _ => site.pki("pki.tls_cert", e),
        })?;
        let signing_cert_path = site.resolve(&raw.pki.signing_cert);
        let signing = SigningKey::load(&site.resolve(&raw.pki.signing_key), &signing_cert_path)
            .map_err(|e| match &e {
                PkiError::Read { path, .. }
                | PkiError::Pem { path, .. }
                | PkiError::Unsuitable { path, .. }
                    if *path == signing_cert_path =>
                {
                    site.pki("pki.signing_cert", e)
                }
                _ => site.pki("pki.signing_key", e),
            })?;
        let encryption = EncryptionIdentity::load(&site.resolve(&raw.pki.encryption_identity))
            .map_err(|e| site.pki("pki.encryption_identity", e))?;
        let archive = raw
            .pki
            .archive_recipient
            .map(|r| r.parse::<EncryptionRecipient>())
            .transpose()
            .map_err(|e| site.err("pki.archive_recipient", e.to_string()))?;

        let now = crate::types::Timestamp::now();
        trust.check_issued(signing.cert().der(), now).map_err(|e| {
            site.err(
                "pki.signing_cert",
                format!("the signing certificate is {e}"),
            )
        })?;
        for der in tls.chain.iter().take(1) {
            trust
                .check_issued(der.as_ref(), now)
                .map_err(|e| site.err("pki.tls_cert", format!("the TLS certificate is {e}")))?;
        }
        let crl_files: Vec<PathBuf> = raw.pki.crls.iter().map(|p| site.resolve(p)).collect();
        crate::pki::load_crls(&crl_files).map_err(|e| site.err("pki.crls", e.to_string()))?;
        let limits = parse_limits(&raw.limits, site)?;
        let duration = |v: &Option<String>, key: &str, default: std::time::Duration| match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|m| site.err(key, m)),
        };
        let intake = IntakeSettings {
            root: raw
                .intake
                .root
                .as_deref()
                .map(|p| site.resolve(p))
                .unwrap_or_else(|| data_dir.join("clerk")),
            settle: duration(
                &raw.intake.settle,
                "intake.settle",
                std::time::Duration::from_secs(10),
            )?,
            scan_interval: duration(
                &raw.intake.scan_interval,
                "intake.scan_interval",
                std::time::Duration::from_secs(5),
            )?,
            workers: match raw.intake.workers {
                Some(0) => return Err(site.err("intake.workers", "must be at least 1")),
                Some(n) => n,
                None => 4,
            },
            archive_retention: raw
                .intake
                .archive_retention
                .as_deref()
                .map(|s| parse_duration(s).map_err(|m| site.err("intake.archive_retention", m)))
                .transpose()?,
            write_timeout: duration(
                &raw.intake.write_timeout,
                "intake.write_timeout",
                std::time::Duration::from_secs(600),
            )?,
            use_leases: raw.intake.use_leases.unwrap_or(true),
            min_free_space: match &raw.intake.min_free_space {
                None => 256 << 20,
                Some(s) => parse_byte_size(s)
                    .map_err(|e| site.err("intake.min_free_space", e.to_string()))?,
            },
        };
        let followup = followup::validate(raw.followup, role, &intake, site)?;
        let client_wait = duration(
            &raw.client.wait,
            "client.wait",
            std::time::Duration::from_secs(55),
        )?;
        let client_proxy = raw
            .client
            .proxy
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| ProxySettings::parse(s).map_err(|m| site.err("client.proxy", m)))
            .transpose()?;
        let dl = ServerLimits::default();
        let at_least_one = |v: Option<usize>, key: &str, default: usize| match v {
            Some(0) => Err(site.err(key, "must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let bytes = |v: &Option<String>, key: &str, default: u64| match v {
            None => Ok(default),
            Some(s) => parse_byte_size(s).map_err(|e| site.err(key, e.to_string())),
        };
        let server_limits = ServerLimits {
            handshake: duration(
                &raw.server.handshake_timeout,
                "server.handshake_timeout",
                dl.handshake,
            )?,
            max_handshakes: at_least_one(
                raw.server.max_handshakes,
                "server.max_handshakes",
                dl.max_handshakes,
            )?,
            header_read: duration(
                &raw.server.header_timeout,
                "server.header_timeout",
                dl.header_read,
            )?,
            body_grace: duration(
                &raw.server.body_timeout,
                "server.body_timeout",
                dl.body_grace,
            )?,
            min_body_rate: match bytes(
                &raw.server.min_body_rate,
                "server.min_body_rate",
                dl.min_body_rate,
            )? {
                0 => {
                    return Err(site.err(
                        "server.min_body_rate",
                        "must be greater than zero (bytes per second)",
                    ))
                }
                n => n,
            },
            max_connections: at_least_one(
                raw.server.max_connections,
                "server.max_connections",
                dl.max_connections,
            )?,
            max_connections_per_peer: at_least_one(
                raw.server.max_connections_per_peer,
                "server.max_connections_per_peer",
                dl.max_connections_per_peer,
            )?,
            min_free_space: bytes(
                &raw.server.min_free_space,
                "server.min_free_space",
                dl.min_free_space,
            )?,
            ..dl
        };
        let default_policy = OutboxPolicy::default();
        let outbox = OutboxPolicy {
            deadline: duration(
                &raw.outbox.deadline,
                "outbox.deadline",
                default_policy.deadline,
            )?,
            receipt_deadline: duration(
                &raw.outbox.receipt_deadline,
                "outbox.receipt_deadline",
                default_policy.receipt_deadline,
            )?,
            warn_after: duration(
                &raw.outbox.warn_after,
                "outbox.warn_after",
                default_policy.warn_after,
            )?,
            max_attempts: match raw.outbox.max_attempts {
                Some(0) => return Err(site.err("outbox.max_attempts", "must be at least 1")),
                Some(n) => n,
                None => default_policy.max_attempts,
            },
        };
        // Folders the node must write: checked now, so that `check-config`
        // catches what `run` would otherwise fail on.
        check_writable(&data_dir).map_err(|why| site.err("node.data_dir", why))?;
        if role != Role::Court {
            let key = if raw.intake.root.is_some() {
                "intake.root"
            } else {
                "node.data_dir"
            };
            check_writable(&intake.root).map_err(|why| site.err(key, why))?;
        }
        let mut warnings = Vec::new();
        for (key, path) in [
            ("pki.tls_key", site.resolve(&raw.pki.tls_key)),
            ("pki.signing_key", site.resolve(&raw.pki.signing_key)),
            (
                "pki.encryption_identity",
                site.resolve(&raw.pki.encryption_identity),
            ),
        ] {
            if let Some(w) = key_exposure(&path) {
                warnings.push(site.err(key, w));
            }
        }
        let server_listen = parse_listen(raw.server.listen.as_deref(), "server.listen", site)?;
        let admin_listen = parse_listen(raw.admin.listen.as_deref(), "admin.listen", site)?;
        if admin_listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(site.err(
                "admin.listen",
                "metrics and health are served on a loopback address only (127.0.0.1 or [::1]); scrape them locally or through a proxy",
            ));
        }
        let admin_socket = raw
            .admin
            .socket
            .as_deref()
            .map(|p| site.resolve(p))
            .unwrap_or_else(|| data_dir.join("admin.sock"));
        let log = LogSettings {
            format: match raw.log.format.as_deref() {
                None | Some("auto") => LogFormat::Auto,
                Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some("journald") => LogFormat::Journald,
                Some(other) => {
                    return Err(site.err(
                        "log.format",
                        format!("{other:?} is not auto, text, json or journald"),
                    ))
                }
            },
            level: raw.log.level.clone().unwrap_or_else(|| "info".into()),
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log.level) {
            return Err(site.err(
                "log.level",
                format!("{:?} is not a log filter: {e}", log.level),
            ));
        }

        let notify = notify::validate(&raw.notify, site)?;

        let directory_file = site.resolve(&raw.directory.file);
        let directory = load_directory(&directory_file).map_err(|mut e| {
            if e.file == directory_file && e.key.is_none() && e.line.is_none() {
                e = site.err("directory.file", e.message);
            }
            e
        })?;

        // Cross-checks: this node's keys must be the ones its peers know it by.
        let me = directory.get(&id).ok_or_else(|| {
            site.err(
                "node.id",
                format!(
                    "{:?} is not in the peer directory {}; add a [[peer]] entry for this node",
                    id.as_str(),
                    directory_file.display()
                ),
            )
        })?;
        if signing.cert().agency() != &id {
            return Err(site.err(
                "pki.signing_cert",
                format!(
                    "the signing certificate names agency {:?}, but node.id is {:?}",
                    signing.cert().agency().as_str(),
                    id.as_str()
                ),
            ));
        }

        if me.role != role {
            return Err(site.err(
                "node.role",
                format!(
                    "is {role}, but the peer directory lists {:?} as {}",
                    id.as_str(),
                    me.role
                ),
            ));
        }
        if !me.has_signing_cert(signing.cert()) {
            return Err(site.err(
                "pki.signing_cert",
                format!(
                    "this certificate (sha256 {}) is not among the signing certificates the peer directory lists for {:?}; peers would refuse what this node signs",
                    signing.cert().summary().sha256,
                    id.as_str()
                ),
            ));
        }
        if me.encryption_key != encryption.recipient() {
            return Err(site.err(
                "pki.encryption_identity",
                format!(
                    "its public key {} differs from the encryption_key the peer directory lists for {:?}; peers would encrypt to a key this node cannot use",
                    encryption.recipient(),
                    id.as_str()
                ),
            ));
        }
        let tls_ok = me
            .tls_uri
            .as_ref()
            .is_none_or(|u| tls.summary.agency.as_ref().map(AgencyId::urn).as_ref() == Some(u))
            && me
                .tls_spki_sha256
                .is_none_or(|pin| pin == tls.summary.spki_sha256);
        if !tls_ok {
            return Err(site.err(
                "pki.tls_cert",
                format!(
                    "this certificate (URI {:?}, SPKI sha256 {}) does not match the TLS identity the peer directory lists for {:?}",
                    tls.summary.agency.as_ref().map(AgencyId::urn).unwrap_or_default(),
                    tls.summary.spki_sha256,
                    id.as_str()
                ),
            ));
        }

        Ok(Config {
            file: site.file.to_owned(),
            node: Node { id, role, data_dir },
            keys: NodeKeys {
                tls,
                signing,
                encryption,
                archive,
            },
            trust,
            crl_files,
            directory,
            directory_file,
            limits,
            intake,
            followup,
            outbox,
            client_wait,
            client_proxy,
            server_listen,
            server_limits,
            admin_listen,
            admin_socket,
            log,
            expiry_warning_days: raw.alerts.expiry_warning_days.unwrap_or(30),
            notify,
            warnings,
        })
    }
}

/// Whether this process can create and change files in `dir` (or, if it does
/// not exist yet, create it: its nearest existing ancestor must be writable).
/// The reason in words when it cannot.
fn check_writable(dir: &Path) -> Result<(), String> {
    use rustix::fs::{accessat, Access, AtFlags, CWD};
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a folder", p.display())),
            Ok(_) => {
                return accessat(CWD, p, Access::WRITE_OK | Access::EXEC_OK, AtFlags::EACCESS)
                    .map_err(|e| {
                        let what = if p == dir {
                            format!("{} is not writable", p.display())
                        } else {
                            format!(
                                "{} does not exist and cannot be created: {} is not writable",
                                dir.display(),
                                p.display()
                            )
                        };
                        format!(
                            "{what} by this user (uid {}): {}",
                            rustix::process::geteuid().as_raw(),
                            std::io::Error::from(e)
                        )
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => return Err(format!("{} cannot be created", dir.display())),
            },
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
}

/// A warning when a private key file may be read (or written) by others than
/// its owner.
fn key_exposure(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is a private key that group or others may access (mode {mode:04o}); make it readable by the sealpost user only: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// Where the admin socket of the node configured in `file` is, read without
/// loading keys or checking the rest (for `sealpost ctl`, which must work
/// while an edited configuration is still being fixed): `[admin] socket`, else
/// `<node.data_dir>/admin.sock`, with `SEALPOST_ADMIN__SOCKET` and
/// `SEALPOST_NODE__DATA_DIR` from the environment taking precedence.
pub fn admin_socket_of(file: &Path) -> Result<PathBuf, ConfigError> {
    let whole = |message: String| ConfigError::whole_file(file, message);
    let text = std::fs::read_to_string(file)
        .map_err(|e| whole(format!("cannot read the configuration file: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| whole(format!("not valid TOML: {}", e.message())))?;
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            crate::fsutil::parent_of(file).join(p)
        }
    };
    if let Ok(s) = std::env::var("SEALPOST_ADMIN__SOCKET") {
        return Ok(resolve(&s));
    }
    if let Some(s) = table
        .get("admin")
        .and_then(|a| a.get("socket"))
        .and_then(|s| s.as_str())
    {
        return Ok(resolve(s));
    }
    let data_dir = std::env::var("SEALPOST_NODE__DATA_DIR").ok().or_else(|| {
        table
            .get("node")
            .and_then(|n| n.get("data_dir"))
            .and_then(|d| d.as_str())
            .map(str::to_owned)
    });
    data_dir
        .map(|d| resolve(&d).join("admin.sock"))
        .ok_or_else(|| whole("neither admin.socket nor node.data_dir is set".into()))
}

/// The dotted key a `SEALPOST_SECTION__KEY` variable overrides (`section.key`).
fn env_key(var: &str) -> String {
    var.strip_prefix(ENV_PREFIX)
        .and_then(|v| v.strip_prefix('_'))
        .unwrap_or(var)
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// `table.field` of serde's "unknown field `field`, expected … for key
/// `table`" (the key of an unknown field, to locate it in the file).
fn unknown_field(msg: &str) -> Option<String> {
    let field = msg.split("unknown field `").nth(1)?.split('`').next()?;
    let table = msg.rsplit(" for key `").next()?.split('`').next()?;
    (msg.contains(" for key `") && !table.is_empty()).then(|| format!("{table}.{field}"))
}

fn backticked(msg: &str) -> Option<String> {
    // config's messages name keys as `node.id` or "node.id".
    let candidates = msg
        .split('`')
        .skip(1)
        .step_by(2)
        .chain(msg.split('"').skip(1).step_by(2));
    for c in candidates {
        if c.contains('.') && !c.contains(' ') && !c.contains('/') {
            return Some(c.to_owned());
        }
    }
    None
}

fn parse_listen(
    v: Option<&str>,
    key: &str,
    site: &Site<'_>,
) -> Result<Option<SocketAddr>, ConfigError> {
    v.map(|s| {
        s.parse::<SocketAddr>().map_err(|_| {
            site.err(
                key,
                format!("{s:?} is not an address:port such as 0.0.0.0:8443 or [::1]:9464"),
            )
        })
    })
    .transpose()
}

fn parse_limits(raw: &RawLimits, site: &Site<'_>) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let size = |v: &Option<String>, key: &str, default: u64| -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => match parse_byte_size(s) {
                Ok(0) => Err(site.err(key, "must be greater than zero")),
                Ok(n) => Ok(n),
                Err(e) => Err(site.err(key, e.to_string())),
            },
        }
    };
    let limits = Limits {
        max_documents: match raw.max_documents {
            Some(n) if n < 3 => {
                return Err(site.err(
                    "limits.max_documents",
                    format!("is {n}, but every application has at least 3 required documents"),
                ))
            }
            Some(n) => n,
            None => d.max_documents,
        },
        max_document_size: size(
            &raw.max_document_size,
            "limits.max_document_size",
            d.max_document_size,
        )?,
        max_total_size: size(
            &raw.max_total_size,
            "limits.max_total_size",
            d.max_total_size,
        )?,
        max_bundle_size: size(
            &raw.max_bundle_size,
            "limits.max_bundle_size",
            d.max_bundle_size,
        )?,
    };
    if limits.max_document_size > limits.max_total_size {
        return Err(site.err(
            "limits.max_document_size",
            "is larger than limits.max_total_size",
        ));
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("10s", s(10)),
            ("10m", s(600)),
            ("1h", s(3600)),
            ("1h 30m", s(5400)),
            ("7d", s(7 * 86_400)),
            ("2weeks", s(14 * 86_400)),
            (" 55s ", s(55)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "10", "ten s", "10 parsecs", "-1s", "10M", "1M 2d"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
