//! The `sealpost` command: argument definitions and one function per
//! subcommand. It parses and dispatches: the daemon is [`crate::daemon`], the
//! demo [`crate::demo`], and `ctl` talks to the running daemon through its
//! admin socket ([`crate::ops::admin`]).
//!
//! `main` parses arguments and calls [`run`], which sets up logging (from the
//! configuration, for `run`); each subcommand returns an [`Exit`] code from the
//! BSD `sysexits` set, documented in `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::application::Application;
use crate::bundle::{self, Verifier};
use crate::config::{Config, ConfigError};
use crate::types::{human_bytes, printable, AgencyId, BundleId, Timestamp};

/// Exit codes (BSD sysexits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Bad command line (EX_USAGE).
    Usage = 64,
    /// The input was refused: a bundle failed verification or an application was rejected (EX_DATAERR).
    DataErr = 65,
    /// An input file does not exist or cannot be read, or no such delivery (EX_NOINPUT).
    NoInput = 66,
    /// The daemon cannot be reached (EX_UNAVAILABLE).
    Unavailable = 69,
    /// The output cannot be created, e.g. it already exists (EX_CANTCREAT).
    CantCreat = 73,
    /// An I/O error (EX_IOERR).
    IoErr = 74,
    /// Not allowed: the admin socket is for root and the service user (EX_NOPERM).
    NoPerm = 77,
    /// The configuration is invalid (EX_CONFIG).
    Config = 78,
}

const EXIT_HELP: &str = "\
Exit codes:
  0   success
  64  bad command line
  65  refused: the bundle failed verification, the application was rejected,
      or the daemon refused the change (for example, retrying a delivered bundle)
  66  an input file does not exist or cannot be read; no such delivery
  69  the daemon cannot be reached (ctl: is `sealpost run` running?)
  73  the output cannot be created (for example, it already exists)
  74  I/O error while reading or writing
  77  not allowed (ctl: root or the service user only)
  78  the configuration is invalid (the message names file, line and key)";

/// sealpost — signed, end-to-end encrypted exchange of property-preservation
/// applications (财产保全) between arbitration committees and courts.
#[derive(Debug, Parser)]
#[command(name = "sealpost", version, after_help = EXIT_HELP)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "SEALPOST_CONFIG",
        default_value = "/etc/sealpost/sealpost.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and check the configuration, keys, certificates and peer directory;
    /// print a one-screen summary of this node.
    #[command(after_help = EXIT_HELP)]
    CheckConfig,
    /// Seal an application folder into a bundle for a court.
    #[command(after_help = EXIT_HELP)]
    Seal {
        /// The application folder (application.toml + documents).
        #[arg(short, long)]
        input: PathBuf,
        /// The recipient court's peer id (must match the manifest's court).
        #[arg(long)]
        to: String,
        /// The bundle file to write (must not exist).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Verify a bundle with public keys only: container, signature, signer
    /// certificate, peer directory, recipient, payload digest.
    #[command(after_help = EXIT_HELP)]
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// Accept a bundle addressed to any agency (for third-party checks of a proof).
        #[arg(long)]
        any_recipient: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify, decrypt and unpack a bundle addressed to this node. The output
    /// directory appears only if every check passed.
    #[command(after_help = EXIT_HELP)]
    Open {
        /// The bundle file.
        file: PathBuf,
        /// The directory to create.
        #[arg(short, long)]
        output: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node (the daemon): intake, the mTLS API, polling or pushing,
    /// metrics and the admin socket. SIGHUP reloads the configuration;
    /// SIGTERM or SIGINT stops it cleanly (finishing the items in hand).
    #[command(after_help = EXIT_HELP)]
    Run,
    /// Talk to the running daemon through its admin socket: status, the
    /// deliveries, retries, backups, reload.
    #[command(after_help = EXIT_HELP)]
    Ctl {
        /// The admin socket (default: `[admin] socket` of the configuration).
        #[arg(long, global = true, env = "SEALPOST_ADMIN_SOCKET")]
        socket: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Make or check a signed receipt (proof of delivery).
    #[command(subcommand, after_help = EXIT_HELP)]
    Receipt(ReceiptCommand),
    /// Make or check a court's signed follow-up event (`docs/event-format.md`).
    #[command(subcommand, after_help = EXIT_HELP)]
    Followup(FollowupCommand),
    /// Export the proof of delivery (送达证明) of a delivered application: the
    /// running daemon makes it if it is missing (through the admin socket);
    /// with the daemon stopped, the stored proof is copied. It is verified
    /// before it is written.
    #[command(after_help = EXIT_HELP)]
    Proof {
        /// The bundle id.
        bundle: String,
        /// The file to write (must not exist).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Verify a proof of delivery offline with the exchange CA certificate
    /// alone: signatures, certificates at the times the proof states, the
    /// receipt against the envelope, the audit excerpt and its signed
    /// checkpoint, and the printable page against the data (`docs/proof-format.md`).
    #[command(name = "verify-proof", after_help = EXIT_HELP)]
    VerifyProof {
        /// The proof file (`proof-<bundle>.zip`).
        file: PathBuf,
        /// The exchange CA certificate(s) to trust (default: the configuration's;
        /// with `--ca` no configuration is needed).
        #[arg(long)]
        ca: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the node's hash-chained audit log offline (`docs/audit-format.md`).
    #[command(subcommand, after_help = EXIT_HELP)]
    Audit(AuditCommand),
    /// Repair the outbox with the daemon stopped (`ctl` does everything else,
    /// with the daemon running).
    #[command(subcommand, after_help = EXIT_HELP)]
    Outbox(OutboxCommand),
    /// Walk the example applications end to end (committee seals, court verifies
    /// and opens) with the example PKI and configs (installed with the package,
    /// or from the source tree).
    Demo {
        /// Where to put the demo's files (default: a new directory under /tmp).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write the man page and shell completions into a folder (for packaging).
    #[command(hide = true)]
    Assets {
        /// The folder (created).
        dir: PathBuf,
    },
}

/// `ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The node: version, uptime, readiness of every part, queue depths.
    Status {
        /// One case (committees): its bundles, what the court said, the
        /// notifications and the timeline, as the clerks' status file shows it.
        case: Option<String>,
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List deliveries in queue order.
    List {
        /// Only deliveries in this state (queued, fetched, delivered, failed, dead, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only deliveries for this peer.
        #[arg(long)]
        peer: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one delivery (JSON).
    Show {
        /// Bundle id.
        id: String,
    },
    /// Offer a fetched, failed or dead delivery again at its old position
    /// (the deadline restarts).
    Retry {
        /// Bundle id.
        id: String,
    },
    /// Offer a delivery again at the end of the queue (a new position, so a
    /// recipient polling with a cursor sees it again).
    Requeue {
        /// Bundle id.
        id: String,
    },
    /// Withdraw a delivery that has not been delivered.
    Cancel {
        /// Bundle id.
        id: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
    /// Copy the node's state (outbox store, bundles, receipts, inbox)
    /// consistently into a new folder while the daemon runs.
    Backup {
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
    },
    /// Reload the configuration, peer directory, certificates and CRLs (as
    /// SIGHUP does), and report the outcome.
    Reload,
}

/// Receipt subcommands.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a bundle addressed to this node and print this node's signed
    /// receipt for it (JSON, ready to POST to /v1/bundles/{id}/receipt).
    Make {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// Check a signed receipt offline (signature, signer, directory) and print it.
    Verify {
        /// The receipt file (JSON).
        receipt: PathBuf,
    },
}

/// Follow-up event subcommands.
#[derive(Debug, Subcommand)]
pub enum FollowupCommand {
    /// Make this court's signed event about a bundle and write it as a
    /// submission (JSON, ready to POST to /v1/cases/{case}/events with
    /// `curl --data-binary @FILE`).
    Make(Box<FollowupMake>),
    /// Check a submission offline (signature, signer, fields, attachments)
    /// and print the event.
    Verify {
        /// The submission file (JSON).
        file: PathBuf,
    },
}

/// `followup make` options. Which details a kind needs: accepted
/// --court-case-number; materials-required --item… --deadline --place --how;
/// appointment --at --place --officer --phone --purpose; ruling-issued
/// --summary --attach; rejected --reason; received and completed none.
#[derive(Debug, clap::Args)]
pub struct FollowupMake {
    /// The committee's case number (the bundle's case).
    #[arg(long)]
    case: String,
    /// The bundle id the event concerns.
    #[arg(long)]
    bundle: String,
    /// received, accepted, materials-required, appointment, ruling-issued, rejected or completed.
    #[arg(long)]
    kind: String,
    /// A required item (materials-required; repeat for each).
    #[arg(long = "item", value_name = "TEXT")]
    items: Vec<String>,
    /// Deadline, `YYYY-MM-DDTHH:MM:SSZ` (materials-required).
    #[arg(long, value_name = "TIME")]
    deadline: Option<String>,
    /// Where (materials-required, appointment).
    #[arg(long)]
    place: Option<String>,
    /// How to hand in the materials; may span lines (materials-required).
    #[arg(long)]
    how: Option<String>,
    /// When, `YYYY-MM-DDTHH:MM:SSZ` (appointment).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The officer to ask for (appointment).
    #[arg(long)]
    officer: Option<String>,
    /// The officer's telephone (appointment).
    #[arg(long)]
    phone: Option<String>,
    /// What it is about; may span lines (appointment).
    #[arg(long)]
    purpose: Option<String>,
    /// Summary of the ruling; may span lines (ruling-issued).
    #[arg(long)]
    summary: Option<String>,
    /// Why; may span lines (rejected).
    #[arg(long)]
    reason: Option<String>,
    /// The court's own case number (accepted).
    #[arg(long)]
    court_case_number: Option<String>,
    /// A note to the applicant; may span lines.
    #[arg(long)]
    note: Option<String>,
    /// Whom the applicant should contact: name or desk.
    #[arg(long)]
    contact_name: Option<String>,
    /// Their telephone.
    #[arg(long)]
    contact_phone: Option<String>,
    /// Their e-mail.
    #[arg(long)]
    contact_email: Option<String>,
    /// A document to carry (PDF, PNG or JPEG; repeat for each, at most 10).
    #[arg(long, value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// The committee (default: the only committee in the peer directory).
    #[arg(long)]
    committee: Option<String>,
    /// The submission file to write (must not exist).
    #[arg(short, long)]
    output: PathBuf,
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the chain: every record's link, every checkpoint's signature
    /// (and its signer against the exchange CA), and that the log still holds
    /// the last checkpoint its witness file records. Names the first bad
    /// record; exit 65 if there is one. Safe while the daemon runs.
    Verify {
        /// The log (default: `<data_dir>/audit/audit.log` of the configuration).
        /// Its witness (`head.json` beside it) is used when present.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Exchange CA certificate(s) to check checkpoint signers with
        /// (default: the configuration's). With `--log` no configuration is
        /// needed; without a CA the signatures are checked but not who
        /// issued the signers' certificates, and the report says so.
        #[arg(long)]
        ca: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Outbox subcommands (daemon stopped).
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Recreate the index from the bundle files (every bundle queued again).
    Rebuild,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Exit {
    if let Command::Run = cli.command {
        // Logs as configured; its threads write to standard output, so it
        // must not be locked here.
        return run_daemon(&cli.config);
    }
    // Warnings and errors on standard error.
    crate::ops::logging::init(crate::config::LogFormat::Text, "warn");
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::CheckConfig => check_config(&cli.config, out),
        Command::Seal { input, to, output } => {
            with_config(&cli.config, |c| seal(c, &input, &to, &output, out))
        }
        Command::Verify {
            file,
            any_recipient,
            json,
        } => with_config(&cli.config, |c| verify(c, &file, any_recipient, json, out)),
        Command::Open { file, output, json } => {
            with_config(&cli.config, |c| open(c, &file, &output, json, out))
        }
        Command::Run => unreachable!("dispatched above"),
        Command::Ctl { socket, command } => ctl(&cli.config, socket, command, out),
        Command::Receipt(cmd) => with_config(&cli.config, |c| receipt_cmd(c, cmd, out)),
        Command::Followup(cmd) => with_config(&cli.config, |c| followup_cmd(c, cmd, out)),
        Command::Outbox(cmd) => with_config(&cli.config, |c| outbox_cmd(c, cmd, out)),
        Command::Audit(cmd) => audit_cmd(&cli.config, cmd, out),
        Command::Proof { bundle, output } => proof_cmd(&cli.config, &bundle, &output, out),
        Command::VerifyProof { file, ca, json } => verify_proof(&cli.config, &file, &ca, json, out),
        Command::Demo { dir } => {
            if crate::demo::demo(dir, out) {
                Exit::Ok
            } else {
                Exit::IoErr
            }
        }
        Command::Assets { dir } => assets(&dir, out),
    }
}

/// `run`: loads the configuration, sets up logging as it says, and runs the
/// daemon until SIGTERM.
fn run_daemon(path: &Path) -> Exit {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    crate::ops::logging::init(config.log.format, &config.log.level);
    match crate::daemon::run(config, tokio_util::sync::CancellationToken::new()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!(error = %e, "sealpost cannot run");
            eprintln!("sealpost: {e}");
            if e.is_config() {
                Exit::Config
            } else {
                Exit::IoErr
            }
        }
    }
}

/// The hidden `assets` command: `sealpost.1` and completions for bash, zsh
/// and fish, generated from these definitions.
fn assets(dir: &Path, out: &mut impl Write) -> Exit {
    use clap::CommandFactory;
    let write = || -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let cmd = Cli::command();
        let man = dir.join("sealpost.1");
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
        std::fs::write(&man, buf)?;
        written.push(man);
        for (shell, name) in [
            (clap_complete::Shell::Bash, "sealpost.bash"),
            (clap_complete::Shell::Zsh, "_sealpost"),
            (clap_complete::Shell::Fish, "sealpost.fish"),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), "sealpost", &mut buf);
            let path = dir.join(name);
            std::fs::write(&path, buf)?;
            written.push(path);
        }
        Ok(written)
    };
    match write() {
        Ok(files) => {
            for f in files {
                let _ = writeln!(out, "{}", f.display());
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("sealpost: cannot write into {}: {e}", dir.display());
            Exit::CantCreat
        }
    }
}

fn with_config(path: &Path, f: impl FnOnce(&Config) -> Exit) -> Exit {
    match Config::load(path) {
        Ok(c) => f(&c),
        Err(e) => report_config_error(&e),
    }
}

fn report_config_error(e: &ConfigError) -> Exit {
    eprintln!("sealpost: configuration error: {e}");
    Exit::Config
}

fn days_until(t: Timestamp) -> i64 {
    (t.unix() - Timestamp::now().unix()).div_euclid(86_400)
}

/// A date with the days left, flagged when it is past or within the
/// configured warning window (`[alerts] expiry_warning_days`).
fn expiry(t: Timestamp, window: u32) -> String {
    let d = days_until(t);
    let warn = if d < 0 {
        "  !! EXPIRED"
    } else if d < i64::from(window) {
        "  !! expires soon"
    } else {
        ""
    };
    format!("{} ({d} days){warn}", &t.to_rfc3339()[..10])
}

/// `check-config`.
pub fn check_config(path: &Path, out: &mut impl Write) -> Exit {
    let c = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    let me = c.me();
    let mut s = String::new();
    s.push_str(&format!("OK  {}\n", c.file.display()));
    for w in &c.warnings {
        s.push_str(&format!("WARNING  {w}\n"));
    }
    s.push('\n');
    s.push_str(&format!(
        "node          {}  {}  role {}\n",
        c.node.id,
        me.display_name(),
        c.node.role
    ));
    s.push_str(&format!("data dir      {}\n", c.node.data_dir.display()));
    s.push_str(&format!(
        "intake        {}  (settle {:?}, scan every {:?}, {} workers, archive kept {})\n",
        c.intake.root.display(),
        c.intake.settle,
        c.intake.scan_interval,
        c.intake.workers,
        c.intake
            .archive_retention
            .map(|d| format!("{} days after delivery", d.as_secs() / 86_400))
            .unwrap_or_else(|| "forever".into())
    ));
    s.push_str(&format!(
        "outbox        fetch within {} days, receipt within {} days, overdue after {} h, {} attempts\n",
        c.outbox.deadline.as_secs() / 86_400,
        c.outbox.receipt_deadline.as_secs() / 86_400,
        c.outbox.warn_after.as_secs() / 3600,
        c.outbox.max_attempts
    ));
    let listen =
        |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "off".into());
    s.push_str(&format!(
        "listen        api {}   metrics {}\nadmin socket  {}\nlog           {}, level {}\n",
        listen(c.server_listen),
        listen(c.admin_listen),
        c.admin_socket.display(),
        format!("{:?}", c.log.format).to_lowercase(),
        c.log.level
    ));
    for ca in c.trust.summaries() {
        s.push_str(&format!(
            "exchange CA   {}  until {}\n",
            ca.subject,
            expiry(ca.not_after, c.expiry_warning_days)
        ));
    }
    let t = &c.keys.tls.summary;
    s.push_str(&format!(
        "TLS cert      serial {}  until {}\n              SPKI sha256 {}\n",
        t.serial,
        expiry(t.not_after, c.expiry_warning_days),
        t.spki_sha256
    ));
    let sg = c.keys.signing.cert().summary();
    s.push_str(&format!(
        "signing cert  serial {}  until {}\n",
        sg.serial,
        expiry(sg.not_after, c.expiry_warning_days)
    ));
    s.push_str(&format!(
        "encryption    {}\n",
        c.keys.encryption.recipient()
    ));
    s.push_str(&format!(
        "archive key   {}\n",
        c.keys
            .archive
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(none)".into())
    ));
    let l = &c.limits;
    s.push_str(&format!(
        "limits        {} documents, {} each, {} total; bundles up to {}\n",
        l.max_documents,
        human_bytes(l.max_document_size),
        human_bytes(l.max_total_size),
        human_bytes(l.max_bundle_size)
    ));
    let peers: Vec<_> = c.directory.iter().filter(|p| p.id != c.node.id).collect();
    s.push_str(&format!(
        "\npeers ({}, from {})\n",
        peers.len(),
        c.directory_file.display()
    ));
    let window = c.expiry_warning_days;
    for p in peers {
        let until = p
            .signing_certs
            .iter()
            .map(|c| c.summary().not_after)
            .max()
            .map(|t| expiry(t, window))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {:<20} {:<9} {:<4}  {}\n  {:<20} signing cert until {}\n",
            p.id.as_str(),
            p.role.to_string(),
            match p.delivery {
                crate::config::DeliveryMode::Pull => "pull",
                crate::config::DeliveryMode::Push => "push",
            },
            p.display_name(),
            "",
            until
        ));
    }
    let _ = out.write_all(s.as_bytes());
    Exit::Ok
}

/// `seal`.
pub fn seal(c: &Config, input: &Path, to: &str, output: &Path, out: &mut impl Write) -> Exit {
    if !input.is_dir() {
        eprintln!("sealpost: {} is not a folder", input.display());
        return Exit::NoInput;
    }
    let Ok(to) = to.parse::<AgencyId>() else {
        eprintln!("sealpost: --to {to:?} is not a valid agency id");
        return Exit::Usage;
    };
    let Some(recipient) = c.directory.get(&to) else {
        eprintln!(
            "sealpost: --to {to}: no such peer in {}",
            c.directory_file.display()
        );
        return Exit::Usage;
    };
    let app = match Application::load(input, &c.limits, &c.directory) {
        Ok(a) => a,
        Err(rej) => {
            eprintln!("REJECTED  {}\n", input.display());
            for r in &rej.reasons {
                eprintln!(
                    "  [{}]{}",
                    r.code.as_str(),
                    r.file.as_ref().map(|f| format!(" {f}")).unwrap_or_default()
                );
                eprintln!("    {}", r.zh);
                eprintln!("    {}", r.en);
            }
            return Exit::DataErr;
        }
    };
    if app.court != to {
        eprintln!(
            "sealpost: the application is for {} but --to says {}; correct one of them",
            app.court, to
        );
        return Exit::Usage;
    }
    match crate::intake::seal_application(c, &app, recipient, output) {
        Ok(s) => {
            let _ = writeln!(
                out,
                "SEALED  {}\n  bundle   {}\n  case     {}\n  to       {} {}\n  size     {}\n  payload  sha256 {}",
                s.path.display(),
                s.envelope.id,
                s.envelope.case_ref,
                recipient.id,
                recipient.display_name(),
                human_bytes(s.size),
                s.envelope.payload.sha256
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("sealpost: cannot seal: {e}");
            match e {
                bundle::SealError::OutputExists(_) => Exit::CantCreat,
                bundle::SealError::DocumentChanged(_) => Exit::DataErr,
                _ => Exit::IoErr,
            }
        }
    }
}

fn verifier(c: &Config, any_recipient: bool) -> Verifier<'_> {
    let v = Verifier::for_node(c);
    if any_recipient {
        v.any_recipient()
    } else {
        v
    }
}

fn refused(file: &Path, e: &bundle::BundleError, json: bool, out: &mut impl Write) -> Exit {
    if json {
        let v = serde_json::json!({"ok": false, "file": file, "code": e.code(), "message": e.to_string()});
        let _ = writeln!(out, "{v}");
    } else {
        eprintln!("REFUSED  {}\n  [{}] {e}", file.display(), e.code());
    }
    match e {
        bundle::BundleError::Io(err) if err.kind() == std::io::ErrorKind::NotFound => Exit::NoInput,
        bundle::BundleError::Io(_) => Exit::IoErr,
        bundle::BundleError::OutputExists(_) => Exit::CantCreat,
        bundle::BundleError::Output(_) => Exit::IoErr,
        _ => Exit::DataErr,
    }
}

fn describe(c: &Config, v: &bundle::Verified) -> String {
    let e = &v.envelope;
    let name = |id: &AgencyId| {
        c.directory
            .get(id)
            .map(|p| p.display_name())
            .unwrap_or_default()
    };
    let s = v.signer.summary();
    format!(
        "  bundle   {} ({})\n  from     {} {}\n  to       {} {}\n  case     {}\n  signed   {} by {} (cert serial {}, issued by the exchange CA)\n  payload  {} bytes, sha256 {}",
        e.id,
        e.kind.as_str(),
        e.sender,
        name(&e.sender),
        e.recipient,
        name(&e.recipient),
        e.case_ref,
        e.created_at,
        v.signer.agency().urn(),
        s.serial,
        e.payload.length,
        e.payload.sha256
    )
}

/// `verify`.
pub fn verify(
    c: &Config,
    file: &Path,
    any_recipient: bool,
    json: bool,
    out: &mut impl Write,
) -> Exit {
    match verifier(c, any_recipient).verify(file) {
        Ok(v) => {
            if json {
                let j = serde_json::json!({"ok": true, "file": file, "envelope": v.envelope, "signer_serial": v.signer.summary().serial});
                let _ = writeln!(out, "{j}");
            } else {
                let _ = writeln!(out, "VERIFIED  {}\n{}", file.display(), describe(c, &v));
            }
            Exit::Ok
        }
        Err(e) => refused(file, &e, json, out),
    }
}

/// `open`.
pub fn open(c: &Config, file: &Path, output: &Path, json: bool, out: &mut impl Write) -> Exit {
    match verifier(c, false).open(file, &c.keys.encryption, output) {
        Ok(o) => {
            if json {
                let j = serde_json::json!({"ok": true, "file": file, "dir": o.dir, "envelope": o.verified.envelope, "manifest": o.manifest});
                let _ = writeln!(out, "{j}");
            } else {
                let mut s = format!("OPENED  {} -> {}\n{}\n  documents (each SHA-256 verified against the signed manifest):\n", file.display(), o.dir.display(), describe(c, &o.verified));
                for d in &o.manifest.documents {
                    s.push_str(&format!(
                        "    {:<28} {:>10}  {}  {}\n",
                        d.role,
                        human_bytes(d.size),
                        d.sha256,
                        d.path
                    ));
                }
                if let Some(l) = &o.manifest.transfer_letter {
                    s.push_str(&format!(
                        "  transfer letter (转办函): {}\n",
                        o.dir.join(&l.path).display()
                    ));
                }
                let _ = out.write_all(s.as_bytes());
            }
            Exit::Ok
        }
        Err(e) => refused(file, &e, json, out),
    }
}

/// `proof`.
pub fn proof_cmd(config: &Path, bundle: &str, output: &Path, out: &mut impl Write) -> Exit {
    use crate::evidence::{proof, service};
    use crate::ops::admin::{call, Request};
    let id: BundleId = match bundle.parse() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("sealpost: {e}");
            return Exit::Usage;
        }
    };
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return report_config_error(&e),
    };
    let stored = service::proofs_dir(&c.node.data_dir).join(proof::file_name(&id));
    // The daemon makes a missing proof; without it, the stored one is used.
    let path = match call(
        &c.admin_socket,
        &Request::Proof { id },
        std::time::Duration::from_secs(120),
    ) {
        Ok(r) if r.ok => r.data["proof"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or(stored),
        Ok(r) => {
            eprintln!(
                "sealpost: [{}] {}",
                r.code.as_deref().unwrap_or("failed"),
                r.error.as_deref().unwrap_or("the daemon refused")
            );
            return if r.code.as_deref() == Some("not-found") {
                Exit::NoInput
            } else {
                Exit::IoErr
            };
        }
        Err(_) => stored,
    };
    let bytes = match proof::read_file(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "sealpost: no proof of delivery for {id} at {} ({e}); the daemon makes it when the court's receipt is stored (is it delivered? sealpost ctl show {id})",
                path.display()
            );
            return Exit::NoInput;
        }
    };
    if let Err(e) = proof::verify(&bytes, &c.trust) {
        eprintln!(
            "sealpost: the stored proof {} does not verify: {e}",
            path.display()
        );
        return Exit::DataErr;
    }
    match crate::fsutil::write_new_atomic(output, &bytes) {
        Ok(()) => {
            let _ = writeln!(out, "{}", output.display());
            Exit::Ok
        }
        Err(e) => {
            eprintln!("sealpost: cannot write {}: {e}", output.display());
            Exit::CantCreat
        }
    }
}

/// `verify-proof`.
pub fn verify_proof(
    config: &Path,
    file: &Path,
    ca: &[PathBuf],
    json: bool,
    out: &mut impl Write,
) -> Exit {
    use crate::evidence::proof;
    let trust = if ca.is_empty() {
        match Config::load(config) {
            Ok(c) => c.trust,
            Err(e) => return report_config_error(&e),
        }
    } else {
        match crate::pki::ExchangeCa::load(ca) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("sealpost: cannot load the exchange CA: {e}");
                return Exit::NoInput;
            }
        }
    };
    let bytes = match proof::read_file(file) {
        Ok(b) => b,
        Err(e) if e.code() == "proof-file-unreadable" => {
            eprintln!("sealpost: {e}");
            return Exit::NoInput;
        }
        Err(e) => return refused_proof(file, &e, json, out),
    };
    match proof::verify(&bytes, &trust) {
        Ok(v) => {
            if json {
                let j = serde_json::json!({"ok": true, "file": file, "view": v.view});
                let _ = writeln!(out, "{j}");
            } else {
                let _ = writeln!(out, "{}\n{}", file.display(), proof::report_text(&v));
            }
            Exit::Ok
        }
        Err(e) => refused_proof(file, &e, json, out),
    }
}

fn refused_proof(
    file: &Path,
    e: &crate::evidence::proof::ProofError,
    json: bool,
    out: &mut impl Write,
) -> Exit {
    if json {
        let j = serde_json::json!({"ok": false, "file": file, "code": e.code(), "part": e.part(), "error": e.to_string()});
        let _ = writeln!(out, "{j}");
    } else {
        let _ = writeln!(
            out,
            "REFUSED  {}\n  [{}] {}: {e}",
            file.display(),
            e.code(),
            e.part()
        );
    }
    Exit::DataErr
}

/// `audit verify`.
pub fn audit_cmd(config: &Path, cmd: AuditCommand, out: &mut impl Write) -> Exit {
    use crate::audit::{verify_log, Witness};
    use crate::pki::ExchangeCa;
    let AuditCommand::Verify { log, ca, json } = cmd;
    // The configuration only when something must come from it.
    // The configuration when something must come from it: the log's place
    // (required), or the CA (used if there is one: an auditor holding only a
    // copy of the log still gets the chain and the signatures checked).
    let loaded = match (&log, ca.is_empty()) {
        (None, _) => match Config::load(config) {
            Ok(c) => Some(c),
            Err(e) => return report_config_error(&e),
        },
        (Some(_), true) => Config::load(config).ok(),
        (Some(_), false) => None,
    };
    let log = match (log, &loaded) {
        (Some(l), _) => l,
        (None, Some(c)) => crate::audit::dir_in(&c.node.data_dir).join(crate::audit::LOG_FILE),
        (None, None) => unreachable!("loaded above"),
    };
    let trust = if ca.is_empty() {
        loaded.map(|c| c.trust)
    } else {
        match ExchangeCa::load(&ca) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("sealpost: cannot load the exchange CA: {e}");
                return Exit::NoInput;
            }
        }
    };
    let dir = crate::fsutil::parent_of(&log);
    let witness = match Witness::load(dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("sealpost: {e}");
            return Exit::DataErr;
        }
    };
    let file = match std::fs::File::open(&log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sealpost: cannot read {}: {e}", log.display());
            return Exit::NoInput;
        }
    };
    let report = match verify_log(
        std::io::BufReader::new(file),
        trust.as_ref(),
        witness.as_ref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealpost: cannot read {}: {e}", log.display());
            return Exit::IoErr;
        }
    };
    if json {
        let j = serde_json::json!({"ok": report.ok(), "log": log, "report": report});
        let _ = writeln!(out, "{j}");
    } else {
        let node = report
            .node
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into());
        let mut s = format!("audit log {} of {node}\n", log.display());
        s.push_str(&format!("  records      {}\n", report.records));
        match report.last_checkpoint {
            Some((seq, at)) => s.push_str(&format!(
                "  checkpoints  {}, the last at record {seq} ({at})\n",
                report.checkpoints
            )),
            None => s.push_str("  checkpoints  none\n"),
        }
        s.push_str(&format!(
            "  unsigned     {} record(s) after the last checkpoint\n",
            report.unsigned
        ));
        s.push_str(if report.signers_checked {
            "  signers      checked against the exchange CA\n"
        } else {
            "  signers      NOT checked against an exchange CA (give --ca)\n"
        });
        match &witness {
            Some(w) => s.push_str(&format!(
                "  witness      checkpoint {} ({})\n",
                w.seq, w.hash
            )),
            None => s.push_str("  witness      none (no checkpoint written yet)\n"),
        }
        match &report.problem {
            None => s.push_str("INTACT  the chain verifies\n"),
            Some(p) => s.push_str(&format!("BROKEN  {p}\n")),
        }
        let _ = out.write_all(s.as_bytes());
    }
    if report.ok() {
        Exit::Ok
    } else {
        Exit::DataErr
    }
}

/// `outbox rebuild` (offline: the daemon must be stopped; sled holds a lock).
pub fn outbox_cmd(c: &Config, cmd: OutboxCommand, out: &mut impl Write) -> Exit {
    use crate::outbox::Outbox;
    let OutboxCommand::Rebuild = cmd;
    match Outbox::rebuild(&c.node.data_dir, c.outbox, Timestamp::now()) {
        Ok(n) => {
            let _ = writeln!(
                out,
                "REBUILT  {n} bundles indexed, all queued; the old index was moved aside"
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("sealpost: {e} (is the daemon running? stop it first)");
            Exit::IoErr
        }
    }
}

/// `ctl …`: one request to the running daemon over its admin socket.
pub fn ctl(config: &Path, socket: Option<PathBuf>, cmd: CtlCommand, out: &mut impl Write) -> Exit {
    use crate::ops::admin::{call, Request};
    let socket = match socket.map_or_else(|| crate::config::admin_socket_of(config), Ok) {
        Ok(s) => s,
        Err(e) => return report_config_error(&e),
    };
    let id = |s: &str| -> Result<BundleId, Exit> {
        s.parse().map_err(|e| {
            eprintln!("sealpost: {e}");
            Exit::Usage
        })
    };
    let req = match &cmd {
        CtlCommand::Status { case: None, .. } => Request::Status,
        CtlCommand::Status { case: Some(c), .. } => Request::Case { case: c.clone() },
        CtlCommand::List { state, peer, .. } => Request::List {
            state: state.clone(),
            peer: peer.clone(),
        },
        CtlCommand::Show { id: s } => match id(s) {
            Ok(id) => Request::Show { id },
            Err(e) => return e,
        },
        CtlCommand::Retry { id: s } => match id(s) {
            Ok(id) => Request::Retry { id },
            Err(e) => return e,
        },
        CtlCommand::Requeue { id: s } => match id(s) {
            Ok(id) => Request::Requeue { id },
            Err(e) => return e,
        },
        CtlCommand::Cancel { id: s, reason } => match id(s) {
            Ok(id) => Request::Cancel {
                id,
                reason: reason.clone(),
            },
            Err(e) => return e,
        },
        CtlCommand::Backup { dir } => match std::path::absolute(dir) {
            Ok(dir) => Request::Backup { dir },
            Err(e) => {
                eprintln!("sealpost: {}: {e}", dir.display());
                return Exit::Usage;
            }
        },
        CtlCommand::Reload => Request::Reload,
    };
    // A backup or a reload may take a while; the rest answers at once.
    let timeout = std::time::Duration::from_secs(match req {
        Request::Backup { .. } | Request::Reload => 3600,
        _ => 60,
    });
    let reply = match call(&socket, &req, timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealpost: {e}");
            return match e {
                crate::ops::admin::ClientError::Connect { .. } => Exit::Unavailable,
                _ => Exit::IoErr,
            };
        }
    };
    if !reply.ok {
        let code = reply.code.as_deref().unwrap_or("failed");
        eprintln!(
            "sealpost: [{code}] {}",
            reply.error.as_deref().unwrap_or("the daemon refused")
        );
        return match code {
            "not-found" => Exit::NoInput,
            "refused" => Exit::DataErr,
            "bad-request" => Exit::Usage,
            "forbidden" => Exit::NoPerm,
            _ => Exit::IoErr,
        };
    }
    let d = &reply.data;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let _ = match cmd {
        CtlCommand::Status {
            json: false,
            case: None,
        } => writeln!(out, "{}", render_status(d)),
        CtlCommand::Status {
            json: false,
            case: Some(_),
        } => write!(out, "{}", s(&d["text"])),
        CtlCommand::Status { json: true, case: Some(_) } => writeln!(out, "{}", d["view"]),
        CtlCommand::List { json: false, .. } => {
            for x in d.as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "{:<26}  {:<9}  {:<18}  {}  {}  {}",
                    s(&x["id"]),
                    s(&x["state"]["state"]),
                    s(&x["peer"]),
                    s(&x["queued_at"]),
                    s(&x["case_ref"]),
                    printable(&s(&x["source"]))
                );
            }
            Ok(())
        }
        CtlCommand::List { json: true, .. } => {
            for x in d.as_array().into_iter().flatten() {
                let _ = writeln!(out, "{x}");
            }
            Ok(())
        }
        CtlCommand::Retry { .. } | CtlCommand::Requeue { .. } => writeln!(
            out,
            "QUEUED  {} is queued again (position {}, deadline {})",
            s(&d["id"]),
            d["seq"],
            s(&d["deadline"])
        ),
        CtlCommand::Cancel { .. } => writeln!(out, "CANCELLED  {}", s(&d["id"])),
        CtlCommand::Backup { .. } => writeln!(
            out,
            "BACKED UP  {} deliveries, {} bundles, {} receipts, {} inbox folders into {}\n  restore: {}",
            d["outbox"]["deliveries"],
            d["outbox"]["bundles"],
            d["outbox"]["receipts"],
            d["inbox"]["folders"],
            match &req {
                Request::Backup { dir } => dir.display().to_string(),
                _ => String::new(),
            },
            s(&d["restore"])
        ),
        CtlCommand::Reload => writeln!(out, "RELOADED  {}", s(&d["reloaded"])),
        _ => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(d).unwrap_or_default()
        ),
    };
    Exit::Ok
}

/// `ctl status` for people.
fn render_status(d: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let up = d["uptime_seconds"].as_u64().unwrap_or(0);
    let mut t = format!(
        "sealpost {} · node {} ({}) · pid {} · up {}\nconfig {}\n",
        s(&d["version"]),
        s(&d["node"]),
        s(&d["role"]),
        d["pid"],
        humantime::format_duration(std::time::Duration::from_secs(up)),
        s(&d["config"]),
    );
    let ready = d["ready"].as_bool().unwrap_or(false);
    t.push_str(if ready { "ready: yes\n" } else { "ready: NO\n" });
    for (name, p) in d["parts"].as_object().into_iter().flatten() {
        let mark = if p["ok"].as_bool().unwrap_or(false) {
            "ok  "
        } else {
            "FAIL"
        };
        t.push_str(&format!(
            "  {mark}  {name:<28} {}  (since {})\n",
            printable(&s(&p["detail"])),
            s(&p["since"])
        ));
    }
    t.push_str("deliveries:\n");
    let deliveries = d["deliveries"].as_object();
    if deliveries.is_none_or(|m| m.is_empty()) {
        t.push_str("  none yet\n");
    }
    for (peer, states) in deliveries.into_iter().flatten() {
        let counts: Vec<String> = states
            .as_object()
            .into_iter()
            .flatten()
            .map(|(state, n)| format!("{state} {n}"))
            .collect();
        t.push_str(&format!("  {peer:<20} {}\n", counts.join(", ")));
    }
    t.push_str(&format!(
        "intake since start: {} accepted, {} rejected",
        d["intake"]["accepted"], d["intake"]["rejected"]
    ));
    t
}

/// `receipt make|verify`.
pub fn receipt_cmd(c: &Config, cmd: ReceiptCommand, out: &mut impl Write) -> Exit {
    use crate::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT};
    match cmd {
        ReceiptCommand::Make { bundle } => match verifier(c, false).verify(&bundle) {
            Ok(v) => {
                let r = Receipt {
                    format: RECEIPT_FORMAT.to_owned(),
                    bundle_id: v.envelope.id,
                    sender: v.envelope.sender.clone(),
                    receiver: c.node.id.clone(),
                    envelope_sha256: crate::types::Sha256::of(&v.envelope_bytes),
                    payload_sha256: v.envelope.payload.sha256,
                    received_at: Timestamp::now(),
                };
                let signed = r.sign(&c.keys.signing);
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&signed).unwrap_or_default()
                );
                Exit::Ok
            }
            Err(e) => refused(&bundle, &e, false, out),
        },
        ReceiptCommand::Verify { receipt } => {
            let bytes = match std::fs::read(&receipt) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("sealpost: cannot read {}: {e}", receipt.display());
                    return Exit::NoInput;
                }
            };
            let signed: SignedReceipt = match serde_json::from_slice(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("REFUSED  {}\n  [receipt-malformed] {e}", receipt.display());
                    return Exit::DataErr;
                }
            };
            match signed.verify(&c.trust, &c.directory, Timestamp::now()) {
                Ok(r) => {
                    let _ = writeln!(
                        out,
                        "VERIFIED RECEIPT  {}\n  bundle    {}\n  from      {}\n  received  {} by {}\n  envelope  sha256 {}\n  payload   sha256 {}",
                        receipt.display(),
                        r.bundle_id,
                        r.sender,
                        r.received_at,
                        r.receiver,
                        r.envelope_sha256,
                        r.payload_sha256
                    );
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("REFUSED  {}\n  [{}] {e}", receipt.display(), e.code());
                    Exit::DataErr
                }
            }
        }
    }
}

/// `followup make|verify`.
pub fn followup_cmd(c: &Config, cmd: FollowupCommand, out: &mut impl Write) -> Exit {
    use crate::event::Submission;
    use crate::followup::make::{make, MakeError, Options};
    match cmd {
        FollowupCommand::Make(m) => {
            let FollowupMake {
                case,
                bundle,
                kind,
                items,
                deadline,
                place,
                how,
                at,
                officer,
                phone,
                purpose,
                summary,
                reason,
                court_case_number,
                note,
                contact_name,
                contact_phone,
                contact_email,
                attach,
                committee,
                output,
            } = *m;
            let o = Options {
                case,
                bundle,
                kind,
                committee,
                items,
                deadline,
                place,
                how,
                at,
                officer,
                phone,
                purpose,
                summary,
                reason,
                court_case_number,
                note,
                contact_name,
                contact_phone,
                contact_email,
                attach,
            };
            let sub = match make(c, o, Timestamp::now()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sealpost: no event made: {e}");
                    return match e {
                        MakeError::Usage(_) => Exit::Usage,
                        MakeError::Read { .. } => Exit::NoInput,
                        MakeError::Refused(_) => Exit::DataErr,
                    };
                }
            };
            let mut json = serde_json::to_string_pretty(&sub).unwrap_or_default();
            json.push('\n');
            if let Err(e) = crate::fsutil::write_new_atomic(&output, json.as_bytes()) {
                eprintln!("sealpost: cannot write {}: {e}", output.display());
                return if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Exit::CantCreat
                } else {
                    Exit::IoErr
                };
            }
            let ev = sub.signed().unverified().expect("just made");
            let _ = writeln!(
                out,
                "MADE EVENT  {}\n{}",
                output.display(),
                describe_event(&ev)
            );
            Exit::Ok
        }
        FollowupCommand::Verify { file } => {
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("sealpost: cannot read {}: {e}", file.display());
                    return Exit::NoInput;
                }
            };
            match Submission::from_json(&bytes)
                .and_then(|s| s.verify(&c.trust, &c.directory, Timestamp::now()))
            {
                Ok(v) => {
                    let _ = writeln!(
                        out,
                        "VERIFIED EVENT  {}\n{}",
                        file.display(),
                        describe_event(&v.event)
                    );
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("REFUSED  {}\n  [{}] {e}", file.display(), e.code());
                    Exit::DataErr
                }
            }
        }
    }
}

/// An event for people: one line per field, texts escaped with [`printable`]
/// (multi-line texts line by line).
fn describe_event(e: &crate::event::Event) -> String {
    use crate::event::FieldValue;
    let mut s = format!(
        "  event      {} ({})\n  court      {}, issued {}\n  committee  {}\n  case       {}\n  bundle     {}\n",
        e.event_id,
        e.details.kind(),
        e.court,
        e.issued_at,
        e.committee,
        printable(e.case_number.as_str()),
        e.bundle_id
    );
    let mut line = |label: &str, text: &str| {
        for (i, l) in text.split('\n').enumerate() {
            let label = if i == 0 { label } else { "" };
            s.push_str(&format!("  {label:<10} {}\n", printable(l)));
        }
    };
    for field in e.details.fields() {
        match field.value {
            FieldValue::Line(v) | FieldValue::Text(v) => line(field.key, v),
            FieldValue::Time(at) => line(field.key, &at.to_string()),
            FieldValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    line(&format!("{} {}", field.key, i + 1), item);
                }
            }
        }
    }
    if let Some(c) = &e.contact {
        let email = c
            .email
            .as_deref()
            .map(|m| format!(", {m}"))
            .unwrap_or_default();
        line("contact", &format!("{}, {}{email}", c.name, c.phone));
    }
    if let Some(n) = &e.note {
        line("note", n);
    }
    for a in &e.attachments {
        line(
            "attached",
            &format!(
                "{} ({}, {} bytes, sha256 {})",
                a.name, a.media_type, a.size, a.sha256
            ),
        );
    }
    s.pop();
    s
}
