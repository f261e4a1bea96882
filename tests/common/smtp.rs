//! The test SMTP relay: `tests/smtp/server.py` (Python's aiosmtpd) as a child
//! process on loopback, with a test CA and server certificate made at run
//! time. It records every command line, every message (decoded by Python's
//! `email` package) and every reply to DATA as JSON lines; fault modes come
//! from a control file (see the script's header).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

/// The AUTH user the server wants (with `auth`).
pub const USER: &str = "sealpost";
/// Its password.
pub const PASSWORD: &str = "test-password-1";

/// The Python with aiosmtpd: Debian's (`python3-aiosmtpd`, installed by
/// scripts/test), which a pyenv `python3` earlier on PATH may not see.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// How the relay protects connections.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS.
    Plain,
    /// STARTTLS (required).
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// The relay's test PKI.
pub struct Pki {
    /// The CA certificate the client trusts (`ca_file`).
    pub ca: PathBuf,
    /// The server certificate (127.0.0.1).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// A test CA and a server certificate for 127.0.0.1, made now.
pub fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "notify test CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().expect("ip"))];
    let issuer = Issuer::from_params(&ca, &ca_key);
    let cert = p.signed_by(&key, &issuer).expect("cert");
    let out = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    fs::write(&out.ca, ca_cert.pem()).expect("write");
    fs::write(&out.cert, cert.pem()).expect("write");
    fs::write(&out.key, key.serialize_pem()).expect("write");
    out
}

/// The running server; killed and reaped when dropped (even on panic). Its
/// standard output is drained by a thread, its standard error goes to
/// `smtp.stderr` in its folder.
pub struct Smtp {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The JSON-lines log.
    pub log: PathBuf,
    /// The control file (fault modes).
    pub control: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    /// Starts the server with its files in `dir` (port 0: any free port);
    /// returns once it accepts connections.
    pub fn start(dir: &Path, mode: Mode, auth: bool, port: u16) -> Self {
        let log = dir.join("smtp.jsonl");
        let control = dir.join("control.json");
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py"))
            .arg("--log")
            .arg(&log)
            .arg("--control")
            .arg(&control)
            .arg("--port")
            .arg(port.to_string());
        if mode != Mode::Plain {
            let p = pki(dir);
            cmd.arg("--tls")
                .arg(if mode == Mode::StartTls {
                    "starttls"
                } else {
                    "implicit"
                })
                .arg("--cert")
                .arg(&p.cert)
                .arg("--key")
                .arg(&p.key);
        }
        if auth {
            cmd.arg("--auth").arg(format!("{USER}:{PASSWORD}"));
        }
        let stderr = fs::File::create(dir.join("smtp.stderr")).expect("stderr file");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tests/smtp/server.py (needs python3-aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            // Drain the rest so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let mut server = Smtp {
            child,
            port: 0,
            log,
            control,
        };
        let first = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        server.port = first
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let err = fs::read_to_string(dir.join("smtp.stderr")).unwrap_or_default();
                panic!("the SMTP server did not start: {first:?} {err}")
            });
        server
    }

    /// Replaces the fault modes (read again for every message).
    pub fn set_control(&self, v: Value) {
        fs::write(&self.control, v.to_string()).expect("control");
    }

    /// The log entries of `kind` (`line`, `message`, `reply`), in order.
    pub fn entries(&self, kind: &str) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    /// Every message received, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.entries("message")
    }

    /// Every command line received, in order.
    pub fn lines(&self) -> Vec<String> {
        self.entries("line")
            .iter()
            .map(|v| v["line"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The values of header `name` of a logged message.
pub fn header<'a>(msg: &'a Value, name: &str) -> Vec<&'a str> {
    msg["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().unwrap_or_default())
        .collect()
}

/// The decoded text of the message's first part of type `ty`.
pub fn text_part<'a>(msg: &'a Value, ty: &str) -> &'a str {
    msg["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["type"] == ty)
        .and_then(|p| p["text"].as_str())
        .unwrap_or_else(|| panic!("no {ty} part in {msg}"))
}

/// The message's attachments (parts with a file name).
pub fn attachments(msg: &Value) -> Vec<&Value> {
    msg["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| !p["filename"].is_null())
        .collect()
}

/// Starts a relay (STARTTLS, AUTH) with its files in `dir` and appends to
/// the committee's configuration the `[notify]` sections that send through
/// it: the relay's test CA only, rulings attached, fast retries (100 ms to
/// 1 s). The caller appends any other sections after it.
pub fn notify_committee_through(config: &Path, dir: &Path) -> Smtp {
    fs::create_dir_all(dir).expect("mkdir");
    let smtp = Smtp::start(dir, Mode::StartTls, true, 0);
    let password = dir.join("password");
    fs::write(&password, format!("{PASSWORD}\n")).expect("password");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let old = fs::read_to_string(config).expect("config");
    fs::write(
        config,
        format!(
            "{old}\n[notify]\nattach = [\"ruling-issued\"]\nretry_base = \"100ms\"\nretry_cap = \"1s\"\n\n[notify.email]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nca_file = \"{ca}\"\nusername = \"{USER}\"\npassword_file = \"{password}\"\nfrom = \"深圳市劳动人事争议仲裁委员会 <noreply@lac.example.org>\"\ntimeout = \"10s\"\n",
            port = smtp.port,
            ca = dir.join("ca.pem").display(),
            password = password.display(),
        ),
    )
    .expect("write config");
    smtp
}
