//! Test support: a complete exchange (CA, agencies, keys, peer directory, node
//! configs) generated at run time with rcgen, in a temp dir of the test's own.
//! Certificates are valid from yesterday for a year, so nothing ever expires.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod browser;
pub mod node;
pub mod smtp;
pub mod systemd;

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use sealpost::config::Config;
use time::{Duration, OffsetDateTime};

/// A certificate authority that can issue agency certificates.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(cn: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self::valid(cn, now - Duration::days(1), now + Duration::days(365))
    }

    pub fn valid(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before;
        params.not_after = not_after;
        let pem = params.self_signed(&key).expect("self-sign").pem();
        Self { params, key, pem }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An Ed25519 signing certificate for `agency`, valid in [not_before, not_after].
    /// Returns (cert PEM, PKCS#8 key PEM).
    pub fn signing_cert(
        &self,
        agency: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ED25519).expect("ed25519 key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{agency} signing key"));
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:sealpost:agency:{agency}")
                .try_into()
                .expect("ia5"),
        )];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer()).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// A P-256 TLS certificate (client + server auth) for `agency`.
    pub fn tls_cert(&self, agency: &str) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        self.tls_cert_valid(agency, now - Duration::days(1), now + Duration::days(365))
    }

    pub fn tls_cert_valid(
        &self,
        agency: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("p256 key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.subject_alt_names.push(SanType::URI(
            format!("urn:sealpost:agency:{agency}")
                .try_into()
                .expect("ia5"),
        ));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agency);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // Where the exchange CA publishes its CRL (a deployment's TLS
        // certificates say so; the nodes load the CRL files they are given).
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec!["http://crl.sealpost.test/exchange-ca.crl".to_owned()],
        }];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer()).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// One agency's files.
pub struct Agency {
    pub id: String,
    pub role: String,
    pub dir: PathBuf,
    pub age_public: String,
}

/// A whole exchange on disk.
pub struct Net {
    pub root: tempfile::TempDir,
    pub ca: Ca,
    pub agencies: Vec<Agency>,
}

pub const COMMITTEE: &str = "sz-lac";
pub const FUTIAN: &str = "sz-futian-court";
pub const NANSHAN: &str = "sz-nanshan-court";

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes a private key readable by its owner only, as a real deployment does.
fn write_key(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    write(path, text);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

impl Net {
    /// The standard exchange: committee sz-lac, courts sz-futian-court and sz-nanshan-court.
    pub fn new() -> Self {
        Self::with(&[
            (COMMITTEE, "committee"),
            (FUTIAN, "court"),
            (NANSHAN, "court"),
        ])
    }

    pub fn with(agencies: &[(&str, &str)]) -> Self {
        Self::valid_for(agencies, Duration::days(365))
    }

    /// The standard exchange with every agency's certificates expiring
    /// `left` from now (by the clock they are made with).
    pub fn expiring_in(left: Duration) -> Self {
        Self::valid_for(
            &[
                (COMMITTEE, "committee"),
                (FUTIAN, "court"),
                (NANSHAN, "court"),
            ],
            left,
        )
    }

    fn valid_for(agencies: &[(&str, &str)], left: Duration) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let ca = Ca::new("sealpost TEST exchange CA");
        let agencies = write_exchange(
            root.path(),
            &ca,
            agencies,
            now - Duration::days(1),
            now + left,
        );
        Self { root, ca, agencies }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn agency(&self, id: &str) -> &Agency {
        self.agencies
            .iter()
            .find(|a| a.id == id)
            .expect("known agency")
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.agency(id).dir.join("sealpost.toml")
    }

    pub fn config(&self, id: &str) -> Config {
        Config::load_with_env(&self.config_path(id), Default::default())
            .unwrap_or_else(|e| panic!("config for {id}: {e}"))
    }

    /// A fresh path for a test artefact (not created).
    pub fn out(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

/// The repository's fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Copies a fixture application to `dest`, rewriting its court to `court`.
pub fn copy_fixture(name: &str, dest: &Path, court: &str) {
    let src = fixtures().join("applications").join(name);
    fs::create_dir_all(dest).expect("mkdir");
    for e in fs::read_dir(&src).expect("fixture") {
        let e = e.expect("entry");
        let to = dest.join(e.file_name());
        if e.file_name() == "application.toml" {
            let text = fs::read_to_string(e.path()).expect("read manifest");
            let text = text
                .lines()
                .map(|l| {
                    if l.starts_with("court") {
                        format!("court = \"{court}\"")
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            write(&to, &text);
        } else {
            fs::copy(e.path(), &to).expect("copy");
        }
    }
}

/// Writes a whole exchange into `root`: ca.pem, peers.toml, and per agency its keys,
/// certificates (valid in [not_before, not_after]) and `sealpost.toml`.
pub fn write_exchange(
    root: &Path,
    ca: &Ca,
    agencies: &[(&str, &str)],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Vec<Agency> {
    write(&root.join("ca.pem"), &ca.pem);
    let mut out = Vec::new();
    let mut peers = String::new();
    for (id, role) in agencies {
        let dir = root.join(id);
        fs::create_dir_all(dir.join("data")).expect("mkdir");
        let (sign_pem, sign_key) = ca.signing_cert(id, not_before, not_after);
        write(&dir.join("sign.pem"), &sign_pem);
        write_key(&dir.join("sign.key"), &sign_key);
        let (tls_pem, tls_key) = ca.tls_cert_valid(id, not_before, not_after);
        write(&dir.join("tls.pem"), &tls_pem);
        write_key(&dir.join("tls.key"), &tls_key);
        let identity = age::x25519::Identity::generate();
        let age_public = identity.to_public().to_string();
        {
            use age::secrecy::ExposeSecret;
            write_key(
                &dir.join("age.key"),
                &format!("# test key\n{}\n", identity.to_string().expose_secret()),
            );
        }
        write(
            &dir.join("sealpost.toml"),
            &format!(
                "[node]\nid = \"{id}\"\nrole = \"{role}\"\ndata_dir = \"data\"\n\n[pki]\nexchange_ca = \"../ca.pem\"\ntls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\nsigning_cert = \"sign.pem\"\nsigning_key = \"sign.key\"\nencryption_identity = \"age.key\"\n\n[directory]\nfile = \"../peers.toml\"\n"
            ),
        );
        peers.push_str(&format!(
            "[[peer]]\nid = \"{id}\"\nname_zh = \"测试机构 {id}\"\nname_en = \"Test agency {id}\"\nrole = \"{role}\"\ntls_uri = \"urn:sealpost:agency:{id}\"\nsigning_cert = \"{id}/sign.pem\"\nencryption_key = \"{age_public}\"\ncontact_phone = \"0755-12345678\"\n\n"
        ));
        out.push(Agency {
            id: id.to_string(),
            role: role.to_string(),
            dir,
            age_public,
        });
    }
    write(&root.join("peers.toml"), &peers);
    out
}

/// Names in a directory, sorted (for "nothing was written" assertions).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Path to the built `sealpost` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sealpost"))
}

/// `sealpost -c <config of agency> ctl <args>` against that agency's running
/// daemon: (exit code, standard output, standard error).
pub fn ctl(net: &Net, agency: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let config = net.config_path(agency);
    let mut all = vec!["-c", config.to_str().expect("utf-8"), "ctl"];
    all.extend_from_slice(args);
    sealpost(&all)
}

/// `sealpost <args>`: (exit code, standard output, standard error).
pub fn sealpost(args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("run sealpost");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a small valid application for `court` with case number `case` into
/// `dir` (created): three tiny PDFs and an `application.toml`.
pub fn tiny_app(dir: &Path, case: &str, court: &str) {
    fs::create_dir_all(dir).expect("mkdir");
    for (f, what) in [
        ("财产保全申请书.pdf", "preservation application"),
        ("仲裁申请书.pdf", "arbitration application"),
        ("受理通知书.pdf", "acceptance notice"),
    ] {
        write(
            &dir.join(f),
            &format!("%PDF-1.7\n% {what} for {case}\n%%EOF\n"),
        );
    }
    write(
        &dir.join("application.toml"),
        &format!(
            r#"format = "sealpost-application/1"
case_number = "{case}"
court = "{court}"
claim_amount = "1000.00"

[applicant]
name = "测试申请人"
email = "applicant@example.com"
language = "zh"

[respondent]
name = "测试被申请人有限公司"

[[documents]]
file = "财产保全申请书.pdf"
role = "preservation-application"

[[documents]]
file = "仲裁申请书.pdf"
role = "arbitration-application"

[[documents]]
file = "受理通知书.pdf"
role = "acceptance-notice"
"#
        ),
    );
}

/// A random u64 from the system CSPRNG (for random kill moments; the test
/// prints its choices so a failure can be replayed by reading the log).
pub fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut b).expect("rng");
    u64::from_le_bytes(b)
}

/// Waits until `cond` holds, polling every 20 ms, for at most `timeout`.
pub fn wait_until(timeout: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `sealpost run` child process, owned by a test.
///
/// * It is killed (SIGKILL) and reaped when dropped — also when the test
///   panics — so a failing test never leaves a daemon behind.
/// * Its standard error is drained by a thread from the start (a chatty daemon
///   must never block on a full pipe) and kept, to be shown when a test fails.
/// * It reports readiness as under systemd: `READY=1` on the `NOTIFY_SOCKET`
///   created for it ([`Daemon::wait_ready`]).
pub struct Daemon {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    drain: Option<std::thread::JoinHandle<()>>,
    notify: Notifications,
    label: String,
}

/// Every line the daemon sent to its `NOTIFY_SOCKET`, in order, collected by
/// a thread (the socket's folder lives as long as the collector).
#[derive(Clone)]
pub struct Notifications {
    lines: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Notifications {
    fn start(dir: tempfile::TempDir, sock: std::os::unix::net::UnixDatagram) -> Self {
        let lines =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let sink = lines.clone();
        sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Until the last handle on the lines is gone (the daemon's guard dropped).
            while std::sync::Arc::strong_count(&sink) > 1 {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let (m, c) = &*sink;
                let mut v = m.lock().expect("notify lines");
                v.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_owned),
                );
                c.notify_all();
            }
        });
        Self {
            lines,
            _dir: std::sync::Arc::new(dir),
        }
    }

    /// How many lines so far (a mark for [`Notifications::wait_after`]).
    pub fn mark(&self) -> usize {
        self.lines.0.lock().expect("notify lines").len()
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.0.lock().expect("notify lines").clone()
    }

    /// Waits until a line at index ≥ `mark` satisfies `pred`; returns its index.
    pub fn wait_after(
        &self,
        mark: usize,
        timeout: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<usize, Vec<String>> {
        let deadline = std::time::Instant::now() + timeout;
        let (m, c) = &*self.lines;
        let mut v = m.lock().expect("notify lines");
        loop {
            if let Some(i) = v.iter().skip(mark).position(|l| pred(l)) {
                return Ok(mark + i);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(v.clone());
            }
            v = c.wait_timeout(v, left).expect("notify lines").0;
        }
    }
}

impl Daemon {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Takes the piped standard output (when spawned with `Stdio::piped()`).
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout was piped")
    }

    /// What the daemon wrote to standard error so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned()
    }

    /// Waits (at most 20 s) until the daemon has sent `READY=1`: its signal
    /// handlers are installed and it is serving.
    pub fn wait_ready(&mut self) {
        if let Err(seen) = self
            .notify
            .wait_after(0, std::time::Duration::from_secs(20), |l| l == "READY=1")
        {
            panic!(
                "{}: no READY=1 within 20 s (it sent {seen:?}); its log:\n{}",
                self.label,
                self.stderr_text()
            );
        }
    }

    /// What it sent to its `NOTIFY_SOCKET`.
    pub fn notifications(&self) -> &Notifications {
        &self.notify
    }

    /// Waits until the daemon is ready, then sends it `signal` with the stock
    /// `kill` command (std can only SIGKILL a child).
    pub fn signal(&mut self, signal: &str) {
        self.wait_ready();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// SIGTERM once ready.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// SIGKILL now, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it has exited (without waiting).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for it to exit; returns the status and everything it wrote to
    /// standard error.
    pub fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        if let Some(t) = self.drain.take() {
            let _ = t.join();
        }
        (status, self.stderr_text())
    }

    /// SIGTERM, wait, and assert a clean exit (status 0).
    pub fn stop(&mut self) {
        self.sigterm();
        let (status, err) = self.wait();
        assert!(
            status.success(),
            "{} did not stop cleanly: {status}; its log:\n{err}",
            self.label
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let running = matches!(self.child.try_wait(), Ok(None));
        if running {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(t) = self.drain.take() {
            let _ = t.join();
        }
        if std::thread::panicking() {
            let log = self.stderr_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- last lines of {} (pid {}) ---",
                self.label,
                self.child.id()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Starts `sealpost run` for `agency` with extra environment (e.g. short settle
/// times). The returned guard kills the daemon when dropped.
pub fn spawn_run(
    net: &Net,
    agency: &str,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
) -> Daemon {
    spawn_daemon(&net.config_path(agency), agency, env, stdout)
}

/// Starts `sealpost -c <config> run` (see [`spawn_run`]).
pub fn spawn_daemon(
    config: &Path,
    label: &str,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
) -> Daemon {
    spawn_daemon_via(&[], config, label, env, stdout)
}

/// Like [`spawn_daemon`], with the daemon started by `prefix` (a command that
/// ends by exec'ing its arguments, so the daemon keeps the child's pid).
pub fn spawn_daemon_via(
    prefix: &[&str],
    config: &Path,
    label: &str,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("notify socket");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(bin());
            c
        }
        None => std::process::Command::new(bin()),
    };
    cmd.args(["-c", config.to_str().expect("utf-8"), "run"]);
    cmd.env("NOTIFY_SOCKET", &path);
    cmd.env("SEALPOST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sealpost run");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut pipe = child.stderr.take().expect("stderr piped");
    let sink = stderr.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match std::io::Read::read(&mut pipe, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut v) = sink.lock() {
                        v.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    });
    Daemon {
        child,
        stderr,
        drain: Some(drain),
        notify: Notifications::start(dir, sock),
        label: format!("sealpost run ({label})"),
    }
}

impl Ca {
    /// A CRL (PEM) from this CA revoking the given serial numbers (raw bytes).
    pub fn crl(&self, revoked: &[Vec<u8>]) -> String {
        self.crl_until(revoked, OffsetDateTime::now_utc() + Duration::days(7))
    }

    /// [`Ca::crl`] whose `nextUpdate` is `next_update`.
    pub fn crl_until(&self, revoked: &[Vec<u8>], next_update: OffsetDateTime) -> String {
        use rcgen::{
            CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
            SerialNumber,
        };
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update,
            crl_number: SerialNumber::from(now.unix_timestamp() as u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer())
            .expect("crl")
            .pem()
            .expect("pem")
    }
}

/// The raw serial number of the certificate in a PEM file.
pub fn serial_of(pem_file: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(pem_file).expect("cert");
    let hex = sealpost::pki::summarize(&der).expect("summary").serial;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Where the first age STREAM chunk of an age v1 file starts: the text header
/// ends with the "--- <mac>" line, then a 16-byte nonce follows.
pub fn age_first_chunk(age: &[u8]) -> usize {
    let mac_line = age
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("age header MAC line");
    let header_end = mac_line
        + 1
        + age[mac_line + 1..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("end of the MAC line")
        + 1;
    header_end + 16
}

/// The size of an encrypted age STREAM chunk: 64 KiB of plaintext + a 16-byte tag.
pub const AGE_CHUNK: usize = 64 * 1024 + 16;

/// Sets the immutable attribute on a file or folder until dropped: even root
/// can then neither rename it nor write into it (`chattr +i`, e2fsprogs).
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(path: &Path) -> Self {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr (e2fsprogs) is installed by scripts/test")
            .success();
        assert!(
            ok,
            "chattr +i failed: this test needs root (CAP_LINUX_IMMUTABLE) on a file system with immutable files (ext4, xfs, btrfs)"
        );
        Self(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, even when the
/// test panics.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fenced code block between `<!-- {marker}:begin -->` and
/// `<!-- {marker}:end -->` in the repository file `doc` (a script the docs
/// show and a test runs verbatim).
pub fn doc_block(doc: &str, marker: &str) -> String {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc))
        .unwrap_or_else(|e| panic!("{doc}: {e}"));
    let start = text
        .find(&format!("<!-- {marker}:begin -->"))
        .unwrap_or_else(|| panic!("{doc}: no {marker}:begin marker"));
    let end = text[start..]
        .find(&format!("<!-- {marker}:end -->"))
        .unwrap_or_else(|| panic!("{doc}: no {marker}:end marker"))
        + start;
    let block = &text[start..end];
    let fence = block.find("```").expect("a fenced block");
    let body_start = block[fence..].find('\n').expect("fence line") + fence + 1;
    let body_end = block[body_start..].find("```").expect("closing fence") + body_start;
    block[body_start..body_end].to_owned()
}

/// Fails (never skips) when one of `tools` is not on the PATH.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is not installed; run scripts/test (as root it installs the stock tools)"
        );
    }
}

/// `sealpost audit verify --json --ca <the exchange CA>` on the audit log in
/// `audit_dir` (`<data_dir>/audit`): the exit code, the JSON report and the
/// standard error.
pub fn audit_verify(net: &Net, audit_dir: &Path) -> (Option<i32>, serde_json::Value, String) {
    let log = audit_dir.join(sealpost::audit::LOG_FILE);
    let ca = net.path().join("ca.pem");
    let (code, out, err) = sealpost(&[
        "audit",
        "verify",
        "--log",
        log.to_str().expect("utf-8"),
        "--ca",
        ca.to_str().expect("utf-8"),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (code, v, err)
}

/// The resident memory (VmRSS) of process `pid`, KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
