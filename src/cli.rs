//! The `sealpost` command: argument definitions and one function per subcommand.
//!
//! `main` parses arguments, sets up logging and calls [`run`]; each subcommand
//! returns an [`Exit`] code from the BSD `sysexits` set, documented in `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::application::Application;
use crate::bundle::{self, ApplicationInfo, DocumentSource, Kind, SealInput, Verifier};
use crate::config::{Config, ConfigError};
use crate::types::{human_bytes, AgencyId, BundleId, Timestamp};

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
    /// An input file does not exist or cannot be read (EX_NOINPUT).
    NoInput = 66,
    /// The output cannot be created, e.g. it already exists (EX_CANTCREAT).
    CantCreat = 73,
    /// An I/O error (EX_IOERR).
    IoErr = 74,
    /// The configuration is invalid (EX_CONFIG).
    Config = 78,
}

const EXIT_HELP: &str = "\
Exit codes:
  0   success
  64  bad command line
  65  refused: the bundle failed verification, or the application was rejected
  66  an input file does not exist or cannot be read
  73  the output cannot be created (for example, it already exists)
  74  I/O error while reading or writing
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
    /// Run the node: watch the intake folder, seal and queue applications.
    /// Stops cleanly on SIGTERM or SIGINT (finishing the items in hand).
    #[command(after_help = EXIT_HELP)]
    Run,
    /// Make or check a signed receipt (proof of delivery).
    #[command(subcommand, after_help = EXIT_HELP)]
    Receipt(ReceiptCommand),
    /// Inspect and repair the outbox (with the daemon stopped).
    #[command(subcommand, after_help = EXIT_HELP)]
    Outbox(OutboxCommand),
    /// Walk the example applications end to end (committee seals, court verifies
    /// and opens) with the example PKI and configs from the source tree.
    Demo {
        /// Where to put the demo's files (default: a new directory under /tmp).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
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

/// Outbox subcommands.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List deliveries in queue order.
    List {
        /// Only deliveries in this state (queued, fetched, delivered, failed, dead, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one delivery.
    Show {
        /// Bundle id.
        id: String,
    },
    /// Offer a fetched, failed or dead delivery again (the deadline restarts).
    Retry {
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
    /// Recreate the index from the bundle files (every bundle queued again).
    Rebuild,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Exit {
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
        Command::Run => match Config::load(&cli.config) {
            Ok(c) => {
                for w in &c.warnings {
                    tracing::warn!(warning = %w, "configuration");
                }
                run_daemon(std::sync::Arc::new(c))
            }
            Err(e) => report_config_error(&e),
        },
        Command::Receipt(cmd) => with_config(&cli.config, |c| receipt_cmd(c, cmd, out)),
        Command::Outbox(cmd) => with_config(&cli.config, |c| outbox_cmd(c, cmd, out)),
        Command::Demo { dir } => demo(dir, out),
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

fn expiry(t: Timestamp) -> String {
    let d = days_until(t);
    let warn = if d < 0 {
        "  !! EXPIRED"
    } else if d < 30 {
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
        "listen        api {}   admin {}\n",
        listen(c.server_listen),
        listen(c.admin_listen)
    ));
    for ca in c.trust.summaries() {
        s.push_str(&format!(
            "exchange CA   {}  until {}\n",
            ca.subject,
            expiry(ca.not_after)
        ));
    }
    let t = &c.keys.tls.summary;
    s.push_str(&format!(
        "TLS cert      serial {}  until {}\n              SPKI sha256 {}\n",
        t.serial,
        expiry(t.not_after),
        t.spki_sha256
    ));
    let sg = c.keys.signing.cert().summary();
    s.push_str(&format!(
        "signing cert  serial {}  until {}\n",
        sg.serial,
        expiry(sg.not_after)
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
    for p in peers {
        let until = p
            .signing_certs
            .iter()
            .map(|c| c.summary().not_after)
            .max()
            .map(expiry)
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
    match seal_application(c, &app, recipient, output) {
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

/// Seals a validated application for `recipient` with this node's keys.
pub fn seal_application(
    c: &Config,
    app: &Application,
    recipient: &crate::config::Peer,
    output: &Path,
) -> Result<bundle::Sealed, bundle::SealError> {
    seal_application_as(
        c,
        app,
        recipient,
        output,
        BundleId::generate(),
        Timestamp::now(),
    )
}

/// Seals with a given bundle id and time (intake fixes the id when it claims).
pub fn seal_application_as(
    c: &Config,
    app: &Application,
    recipient: &crate::config::Peer,
    output: &Path,
    id: BundleId,
    created_at: Timestamp,
) -> Result<bundle::Sealed, bundle::SealError> {
    let input = SealInput {
        id,
        kind: Kind::PreservationApplication,
        created_at,
        sender: c.me(),
        signer: &c.keys.signing,
        recipient,
        archive: c.keys.archive.as_ref(),
        case_ref: app.case_number.clone(),
        refers_to: None,
        application: Some(ApplicationInfo::from(app)),
        body: None,
        documents: app.documents.iter().map(DocumentSource::from).collect(),
    };
    bundle::seal(&input, output)
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

/// `demo`: two nodes on loopback. A committee daemon (mTLS API on a free
/// port) and two court daemons (polling it) run as child processes with the
/// example PKI and configs; the example applications are dropped into the
/// committee's intake folder and followed into each court's inbox and back as
/// verified receipts.
pub fn demo(dir: Option<PathBuf>, out: &mut impl Write) -> Exit {
    match run_demo(dir, out) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("sealpost demo: {e}");
            Exit::IoErr
        }
    }
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.0.wait();
    }
}

fn run_demo(dir: Option<PathBuf>, out: &mut impl Write) -> Result<(), String> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "sealpost-demo-{}",
            &BundleId::generate().as_str()[..8]
        ))
    });
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let say = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    say(
        out,
        format!(
            "sealpost demo — two nodes on loopback, example PKI from {}\nwork dir: {}\n",
            src.display(),
            work.display()
        ),
    );

    // Private keys readable by their owner only, as check-config demands: a
    // copy of the example keys in the work directory (git does not keep modes).
    let private_keys = |agency: &str| -> Result<Vec<(String, PathBuf)>, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = work.join("keys").join(agency);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut env = Vec::new();
        for (file, key) in [
            ("tls.key", "SEALPOST_PKI__TLS_KEY"),
            ("sign.key", "SEALPOST_PKI__SIGNING_KEY"),
            ("age.key", "SEALPOST_PKI__ENCRYPTION_IDENTITY"),
        ] {
            let to = dir.join(file);
            std::fs::copy(src.join("certs-example").join(agency).join(file), &to)
                .map_err(|e| format!("{}: {e}", to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            env.push((key.to_owned(), to));
        }
        Ok(env)
    };

    // The committee: intake + mTLS API on a free port.
    let lac_dir = work.join("sz-lac");
    let mut committee = Command::new(&exe)
        .args([
            "-c",
            &src.join("config/sealpost.example.toml").to_string_lossy(),
            "run",
        ])
        .envs(private_keys("sz-lac")?)
        .env("SEALPOST_NODE__DATA_DIR", &lac_dir)
        .env("SEALPOST_INTAKE__ROOT", lac_dir.join("clerk"))
        .env("SEALPOST_SERVER__LISTEN", "127.0.0.1:0")
        .env("SEALPOST_INTAKE__SETTLE", "1s")
        .env("SEALPOST_INTAKE__SCAN_INTERVAL", "200ms")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the committee node: {e}"))?;
    let stdout = committee.stdout.take().ok_or("no stdout")?;
    let committee = Daemon(committee);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines
        .next()
        .and_then(Result::ok)
        .ok_or("the committee node did not start")?;
    let addr = first
        .strip_prefix("LISTENING ")
        .ok_or_else(|| format!("unexpected output {first:?}"))?
        .to_owned();
    let port = addr.rsplit(':').next().unwrap_or("0").to_owned();
    say(
        out,
        format!("committee  sz-lac            serving the mTLS API on {addr}"),
    );
    // Keep draining the committee's output so it never blocks.
    std::thread::spawn(move || for _ in lines {});

    // The courts' view of the directory: the committee at its real port.
    let peers_src = src.join("certs-example/peers.toml");
    let text =
        std::fs::read_to_string(&peers_src).map_err(|e| format!("{}: {e}", peers_src.display()))?;
    let abs = src.join("certs-example");
    let text = text
        .replace(
            "signing_cert = \"",
            &format!("signing_cert = \"{}/", abs.display()),
        )
        .replace(
            "endpoint = \"https://localhost:8443\"",
            &format!("endpoint = \"https://localhost:{port}\""),
        );
    let peers = work.join("peers.toml");
    std::fs::write(&peers, text).map_err(|e| e.to_string())?;
    let mut courts = Vec::new();
    for court in ["sz-futian-court", "sz-nanshan-court"] {
        let child = Command::new(&exe)
            .args([
                "-c",
                &src.join(format!("config/{court}.example.toml"))
                    .to_string_lossy(),
                "run",
            ])
            .env("SEALPOST_NODE__DATA_DIR", work.join(court))
            .envs(private_keys(court)?)
            .env("SEALPOST_DIRECTORY__FILE", &peers)
            .env("SEALPOST_CLIENT__WAIT", "30s")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {court}: {e}"))?;
        courts.push(Daemon(child));
        say(
            out,
            format!("court      {court:<17} polling https://localhost:{port} (long-poll)"),
        );
    }

    // Drop the example applications as a clerk would (each appears at once).
    let apps = src.join("fixtures/applications");
    let mut names: Vec<String> = std::fs::read_dir(&apps)
        .map_err(|e| format!("{}: {e}", apps.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let clerk = lac_dir.join("clerk");
    let staging = work.join("staging");
    let wait_for = |what: &str, mut cond: Box<dyn FnMut() -> bool + '_>| -> Result<(), String> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    wait_for(
        "the intake folder",
        Box::new(|| clerk.join("intake").is_dir()),
    )?;
    say(out, String::new());
    for name in &names {
        let from = apps.join(name);
        let to = staging.join(name);
        std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
        for f in std::fs::read_dir(&from)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            std::fs::copy(f.path(), to.join(f.file_name())).map_err(|e| e.to_string())?;
        }
        std::fs::write(to.join("READY"), b"").map_err(|e| e.to_string())?;
        let dropped = Instant::now();
        std::fs::rename(&to, clerk.join("intake").join(name)).map_err(|e| e.to_string())?;
        say(
            out,
            format!("── {name}: dropped into {}", clerk.join("intake").display()),
        );
        let note = clerk.join("accepted").join(format!("{name}.txt"));
        wait_for("the committee to accept it", Box::new(|| note.is_file()))?;
        let note_text = std::fs::read_to_string(&note).map_err(|e| e.to_string())?;
        let id = note_text
            .split_whitespace()
            .find_map(|w| w.parse::<BundleId>().ok())
            .ok_or("no bundle id in the acceptance note")?;
        let delivery = crate::outbox::Outbox::bundle_path_in(&lac_dir, &id);
        say(
            out,
            format!(
                "   1. committee accepted, sealed and queued it: bundle {id} ({})",
                human_bytes(std::fs::metadata(&delivery).map(|m| m.len()).unwrap_or(0))
            ),
        );
        let app = Application::load(
            &from,
            &crate::config::Limits::default(),
            &crate::config::load_directory(&peers).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let inbox = work
            .join(app.court.as_str())
            .join("inbox")
            .join(app.case_number.as_str())
            .join(id.as_str());
        wait_for(
            "the court's inbox",
            Box::new(|| inbox.join(".done").exists()),
        )?;
        say(
            out,
            format!(
                "   2. {} fetched it over mTLS, verified it and opened it into\n      {}",
                app.court,
                inbox.display()
            ),
        );
        for d in &app.documents {
            let same = std::fs::read(inbox.join("documents").join(&d.name)).ok()
                == std::fs::read(&d.path).ok();
            if !same {
                return Err(format!("{} differs from the original", d.name));
            }
        }
        say(out, format!("      ✓ {} documents byte-identical to the originals, 转办函 transfer-letter.txt included", app.documents.len()));
        let receipt = lac_dir.join("outbox/receipts").join(format!("{id}.json"));
        wait_for("the signed receipt", Box::new(|| receipt.is_file()))?;
        say(out, format!("   3. the court's signed receipt came back; delivered after {:.2} s\n      proof of delivery: {}", dropped.elapsed().as_secs_f64(), receipt.display()));
    }
    drop(courts);
    drop(committee);
    say(out, format!("\nAll example applications travelled sealed, were opened only by their court, and came back as signed receipts.\nEverything is in {}", work.display()));
    Ok(())
}

/// `run`: the daemon. Intake runs on this thread; the mTLS API (when
/// `server.listen` is set) and signal handling on a tokio runtime. SIGTERM or
/// SIGINT: intake finishes the items in hand, the API stops accepting and
/// drains; SIGHUP: the TLS configuration is rebuilt with the CRLs re-read and
/// swapped in for new connections.
pub fn run_daemon(config: std::sync::Arc<Config>) -> Exit {
    use crate::transport::{server, tls};
    let c = &*config;
    let outbox = match crate::outbox::Outbox::open(&c.node.data_dir, c.outbox) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "sealpost: cannot open the outbox in {}: {e}",
                c.node.data_dir.display()
            );
            return Exit::IoErr;
        }
    };
    // Before anything can touch the inbox: remove partial plaintext and
    // uploads left by an interrupted run, finish what was half stored.
    if let Err(e) = crate::transport::inbox::recover(c) {
        eprintln!("sealpost: cannot recover the inbox: {e}");
        return Exit::IoErr;
    }
    // Courts receive; only committee (and platform) nodes take applications in.
    let takes_applications = c.node.role != crate::config::Role::Court;
    let intake = if takes_applications {
        match crate::intake::Intake::new(c, &outbox).and_then(|i| i.clean_uploads().map(|()| i)) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("sealpost: cannot prepare the intake folders: {e}");
                return Exit::IoErr;
            }
        }
    } else {
        None
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sealpost: cannot start the runtime: {e}");
            return Exit::IoErr;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();

    // The mTLS API.
    let mut server_task = None;
    let mut reload: Option<std::sync::Arc<dyn Fn() + Send + Sync>> = None;
    if let Some(addr) = c.server_listen {
        let live = match tls::Live::build(config.clone()) {
            Ok(l) => tls::Shared::new(std::sync::Arc::new(l)),
            Err(e) => {
                eprintln!("sealpost: {e}");
                return Exit::Config;
            }
        };
        let listener = match rt.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sealpost: cannot listen on {addr}: {e}");
                return Exit::IoErr;
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!("LISTENING {local}");
        let api = std::sync::Arc::new(server::Api::new(live, outbox.clone(), c.server_limits));
        server_task = Some(rt.spawn(server::serve(listener, api.clone(), shutdown.clone())));
        let file = c.file.clone();
        reload = Some(std::sync::Arc::new(move || {
            // Rebuild from the files as they are now; keep serving on failure.
            let fresh = Config::load(&file)
                .map_err(|e| e.to_string())
                .and_then(|cfg| {
                    tls::Live::build(std::sync::Arc::new(cfg)).map_err(|e| e.to_string())
                });
            match fresh {
                Ok(next) => {
                    let closed = api.reload(next);
                    tracing::info!(
                        closed,
                        "configuration, peer directory, TLS configuration and CRLs reloaded"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; the previous configuration stays in force")
                }
            }
        }));
    }

    // A CRL file that changes (the CA publishes a new one) reloads like SIGHUP.
    let _crl_watcher = match (&reload, c.crl_files.is_empty()) {
        (Some(r), false) => watch_crls(&c.crl_files, r.clone()),
        _ => None,
    };

    // Signals. The handlers are installed here, synchronously, before READY=1
    // is announced: a SIGTERM that arrives once the node says it is ready must
    // find them (installed lazily inside the task, it could kill the process).
    {
        use tokio::signal::unix::{signal, SignalKind};
        let shutdown = shutdown.clone();
        let tx = tx.clone();
        let _in_runtime = rt.enter();
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("sealpost: cannot install signal handlers");
            return Exit::IoErr;
        };
        rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => {
                        if let Some(r) = &reload {
                            r();
                        }
                    }
                }
            }
            tracing::info!("stopping: finishing the items in hand");
            shutdown.cancel();
            let _ = tx.send(crate::intake::Wake::Stop);
        });
    }

    // Bundles for peers that take pushes are offered to them.
    for peer in c
        .directory
        .iter()
        .filter(|p| p.delivery == crate::config::DeliveryMode::Push && p.id != c.node.id)
    {
        match crate::transport::push::Pusher::new(
            config.clone(),
            outbox.clone(),
            peer.clone(),
            crate::transport::push::system_clock(),
        ) {
            Ok(p) => {
                tracing::info!(peer = %peer.id, "pushing");
                rt.spawn(p.run(shutdown.clone()));
            }
            Err(e) => {
                eprintln!("sealpost: cannot push to {}: {e}", peer.id);
                return Exit::Config;
            }
        }
    }
    // Court nodes poll every committee that has an endpoint.
    if c.node.role == crate::config::Role::Court {
        for peer in c
            .directory
            .iter()
            .filter(|p| p.role == crate::config::Role::Committee && p.endpoint.is_some())
        {
            match crate::transport::client::Poller::new(config.clone(), peer.clone(), c.client_wait)
            {
                Ok(p) => {
                    tracing::info!(peer = %peer.id, "polling");
                    rt.spawn(p.run(shutdown.clone()));
                }
                Err(e) => {
                    eprintln!("sealpost: cannot poll {}: {e}", peer.id);
                    return Exit::Config;
                }
            }
        }
    }
    let _watcher = intake.as_ref().and_then(|i| match crate::intake::watch(&i.dirs().intake, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the intake folder; relying on periodic scans");
            None
        }
    });
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(node = %c.node.id, role = %c.node.role, "sealpost running");
    let Some(intake) = intake else {
        // Nothing to do on this thread but wait for the stop signal.
        while !matches!(rx.recv(), Ok(crate::intake::Wake::Stop) | Err(_)) {}
        shutdown.cancel();
        rt.shutdown_timeout(std::time::Duration::from_secs(10));
        return Exit::Ok;
    };
    let result = crate::intake::run(&intake, &rx, |o| {
        let mut stdout = std::io::stdout().lock();
        let _ = match o {
            crate::intake::Outcome::Accepted { name, id } => {
                writeln!(
                    stdout,
                    "ACCEPTED  {}  bundle {id}",
                    crate::types::printable(name)
                )
            }
            crate::intake::Outcome::Rejected { name, codes, .. } => {
                let codes: Vec<String> = codes.iter().map(|c| c.as_str()).collect();
                writeln!(
                    stdout,
                    "REJECTED  {}  [{}]",
                    crate::types::printable(name),
                    codes.join(", ")
                )
            }
            crate::intake::Outcome::Held { .. } => Ok(()),
        };
    });
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    if let Some(task) = server_task {
        // The timer must be created inside the runtime, hence the async block.
        let drained = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), task).await
        });
        if drained.is_err() {
            tracing::warn!("connections still open after 30 s; closing them");
        }
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("sealpost: intake stopped: {e}");
            Exit::IoErr
        }
    }
}

fn outbox_error(e: &crate::outbox::OutboxError) -> Exit {
    use crate::outbox::OutboxError as E;
    eprintln!("sealpost: {e}");
    match e {
        E::NotFound(_) => Exit::NoInput,
        E::Transition(_) => Exit::DataErr,
        _ => Exit::IoErr,
    }
}

/// `outbox …` (offline: the daemon must be stopped; sled holds a lock).
pub fn outbox_cmd(c: &Config, cmd: OutboxCommand, out: &mut impl Write) -> Exit {
    use crate::outbox::Outbox;
    let now = Timestamp::now();
    if let OutboxCommand::Rebuild = cmd {
        return match Outbox::rebuild(&c.node.data_dir, c.outbox, now) {
            Ok(n) => {
                let _ = writeln!(
                    out,
                    "REBUILT  {n} bundles indexed, all queued; the old index was moved aside"
                );
                Exit::Ok
            }
            Err(e) => outbox_error(&e),
        };
    }
    let outbox = match Outbox::open(&c.node.data_dir, c.outbox) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "sealpost: cannot open the outbox (is the daemon running? stop it first): {e}"
            );
            return Exit::IoErr;
        }
    };
    let parse = |id: &str| -> Result<BundleId, Exit> {
        id.parse().map_err(|e| {
            eprintln!("sealpost: {e}");
            Exit::Usage
        })
    };
    let result = match cmd {
        OutboxCommand::List { state, json } => outbox.list().map(|list| {
            for d in list
                .iter()
                .filter(|d| state.as_deref().is_none_or(|s| s == d.state.name()))
            {
                let _ = if json {
                    writeln!(out, "{}", serde_json::to_string(d).unwrap_or_default())
                } else {
                    writeln!(
                        out,
                        "{:<26}  {:<9}  {:<18}  {}  {}  {}",
                        d.id,
                        d.state.name(),
                        d.peer.as_str(),
                        d.queued_at,
                        d.case_ref,
                        d.source.as_deref().unwrap_or("")
                    )
                };
            }
        }),
        OutboxCommand::Show { id } => {
            let id = match parse(&id) {
                Ok(id) => id,
                Err(e) => return e,
            };
            outbox
                .get(&id)
                .and_then(|d| d.ok_or(crate::outbox::OutboxError::NotFound(id)))
                .map(|d| {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&d).unwrap_or_default()
                    );
                })
        }
        OutboxCommand::Retry { id } | OutboxCommand::Cancel { id, .. } if parse(&id).is_err() => {
            return Exit::Usage
        }
        OutboxCommand::Retry { id } => {
            let id = parse(&id).expect("checked above");
            outbox
                .transition(&id, now, |d| d.retry(now, &c.outbox))
                .map(|d| {
                    let _ = writeln!(
                        out,
                        "QUEUED  {} is queued again (deadline {})",
                        d.id, d.deadline
                    );
                })
        }
        OutboxCommand::Cancel { id, reason } => {
            let id = parse(&id).expect("checked above");
            outbox
                .transition(&id, now, |d| d.cancel(now, reason.clone()))
                .map(|d| {
                    let _ = writeln!(out, "CANCELLED  {}", d.id);
                })
        }
        OutboxCommand::Rebuild => Ok(()),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => outbox_error(&e),
    }
}

/// `receipt make|verify`.
pub fn receipt_cmd(c: &Config, cmd: ReceiptCommand, out: &mut impl Write) -> Exit {
    use crate::transport::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT};
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

/// Watches the folders of the CRL files and calls `reload` when one of the
/// files is written, replaced or renamed into place.
fn watch_crls(
    files: &[PathBuf],
    reload: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let names: Vec<PathBuf> = files.to_vec();
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
            reload();
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the CRL files; reload them with SIGHUP");
            return None;
        }
    };
    let mut dirs: Vec<&Path> = files.iter().map(|f| crate::fsutil::parent_of(f)).collect();
    dirs.dedup();
    for d in dirs {
        if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch a CRL folder; reload with SIGHUP");
        }
    }
    Some(w)
}
