//! `[notify]`: how applicants are told what happened (`docs/notifications.md`).
//!
//! ```toml
//! [notify]
//! attach = ["ruling-issued"]        # event kinds whose documents go with the e-mail
//! retry_base = "30s"                # first retry delay, doubling …
//! retry_cap = "1h"                  # … up to this
//! max_attempts = 50                 # then the notification fails for good
//!
//! [notify.email]
//! transport = "smtp"                # or "file": .eml files in `dir` (the demo)
//! host = "smtp.example.org"
//! port = 587                        # default: 587 (starttls), 465 (implicit), 25 (none)
//! tls = "starttls"                  # "implicit", or "none" (loopback hosts only)
//! ca_file = "/etc/sealpost/smtp-ca.pem"   # optional: trust only this CA for the relay
//! username = "sealpost"             # optional AUTH (PLAIN or LOGIN) …
//! password_file = "/etc/sealpost/smtp-password"   # … with the secret in a file
//! from = "深圳市劳动人事争议仲裁委员会 <noreply@lac.example.org>"
//! reply_to = "office@lac.example.org"     # optional
//! timeout = "30s"
//!
//! [notify.sms]
//! url = "https://sms-gateway.example/hook"  # http:// only to a loopback host
//! hmac_key_file = "/etc/sealpost/sms-hmac.key"
//! ca_file = "/etc/sealpost/sms-ca.pem"      # optional
//! timeout = "30s"
//! ```
//!
//! Without `[notify]` (or with neither `email` nor `sms`) no channel is
//! configured and nothing is queued.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::parse_duration;
use super::site::Site;
use super::ConfigError;

/// The follow-up event kinds `attach` may name: those of
/// `crate::event::Details::KINDS` (a format above this floor;
/// `notify`'s tests check the two lists agree).
pub const EVENT_KINDS: [&str; 7] = [
    "received",
    "accepted",
    "materials-required",
    "appointment",
    "ruling-issued",
    "rejected",
    "completed",
];

/// A secret read from a file: never displayed or logged, wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then `STARTTLS` (required: no fallback to plain text).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS at all: only to a relay on this machine (loopback).
    None,
}

/// SMTP relay settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Relay host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// PEM of the CA certificate(s) to trust for the relay instead of the
    /// public web PKI (read at load time).
    pub ca_pem: Option<Vec<u8>>,
    /// `AUTH` user name and password, if the relay wants them.
    pub credentials: Option<(String, Secret)>,
    /// Connect and per-command timeout.
    pub timeout: Duration,
}

/// Where e-mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTransport {
    /// An SMTP relay.
    Smtp(SmtpSettings),
    /// `.eml` files written atomically into a folder (the demo).
    File {
        /// The folder.
        dir: PathBuf,
    },
}

/// `[notify.email]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// Relay or folder.
    pub transport: EmailTransport,
    /// `From:` (display name and address; checked by lettre's parser).
    pub from: lettre::message::Mailbox,
    /// `Reply-To:`, if any.
    pub reply_to: Option<lettre::message::Mailbox>,
}

/// `[notify.sms]`: an HTTP(S) webhook of an SMS gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    /// Where to POST.
    pub url: http::Uri,
    /// Key of the HMAC-SHA256 signature over each request.
    pub hmac_key: Secret,
    /// PEM of the CA certificate(s) to trust for the gateway instead of the
    /// public web PKI.
    pub ca_pem: Option<Vec<u8>>,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// The validated `[notify]` section. The default configures no channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// E-mail, if configured.
    pub email: Option<EmailSettings>,
    /// SMS webhook, if configured.
    pub sms: Option<SmsSettings>,
    /// Event kinds (`ruling-issued`, …) whose documents are attached to the e-mail.
    pub attach: Vec<String>,
    /// Largest total size of the documents attached to one e-mail; beyond
    /// it the e-mail says where to get them instead.
    pub max_attachment_bytes: u64,
    /// First retry delay (doubling, with jitter).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// Attempts before a notification that keeps failing temporarily fails
    /// for good.
    pub max_attempts: u32,
}

impl NotifySettings {
    /// Whether any channel is configured (the clerks' notes say only what is true).
    pub fn is_configured(&self) -> bool {
        self.email.is_some() || self.sms.is_some()
    }
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            email: None,
            sms: None,
            attach: Vec::new(),
            max_attachment_bytes: 15 << 20,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            max_attempts: 50,
        }
    }
}

// ---------------------------------------------------------------- phase one

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    #[serde(default)]
    attach: Vec<String>,
    max_attachment_size: Option<String>,
    retry_base: Option<String>,
    retry_cap: Option<String>,
    max_attempts: Option<u32>,
    email: Option<RawEmail>,
    sms: Option<RawSms>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    transport: String,
    dir: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    reply_to: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    url: String,
    hmac_key_file: PathBuf,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
}

// ---------------------------------------------------------------- phase two

/// Whether `host` (a name or an IP literal, brackets allowed) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_file(site: &Site<'_>, key: &str, p: &Path) -> Result<Vec<u8>, ConfigError> {
    let path = site.resolve(p);
    std::fs::read(&path).map_err(|e| site.err(key, format!("cannot read {}: {e}", path.display())))
}

fn read_ca(site: &Site<'_>, key: &str, p: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read_file(site, key, p)?;
    use rustls_pki_types::pem::PemObject as _;
    let n = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|_| ()))
        .collect::<Result<Vec<()>, _>>()
        .map_err(|e| site.err(key, format!("not a PEM certificate file: {e:?}")))?
        .len();
    if n == 0 {
        return Err(site.err(key, "holds no PEM certificate"));
    }
    Ok(pem)
}

fn duration(
    site: &Site<'_>,
    v: &Option<String>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => match parse_duration(s) {
            Ok(d) if d.is_zero() => Err(site.err(key, "must be greater than zero")),
            Ok(d) => Ok(d),
            Err(m) => Err(site.err(key, m)),
        },
    }
}

fn mailbox(site: &Site<'_>, key: &str, s: &str) -> Result<lettre::message::Mailbox, ConfigError> {
    s.parse::<lettre::message::Mailbox>().map_err(|e| {
        site.err(
            key,
            format!("{s:?} is not an e-mail address such as \"Name <user@example.org>\": {e}"),
        )
    })
}

pub(super) fn validate(raw: &RawNotify, site: &Site<'_>) -> Result<NotifySettings, ConfigError> {
    let d = NotifySettings::default();
    for kind in &raw.attach {
        if !EVENT_KINDS.contains(&kind.as_str()) {
            return Err(site.err(
                "notify.attach",
                format!(
                    "{kind:?} is not an event kind (known: {})",
                    EVENT_KINDS.join(", ")
                ),
            ));
        }
    }
    let max_attachment_bytes = match &raw.max_attachment_size {
        None => d.max_attachment_bytes,
        Some(s) => crate::types::parse_byte_size(s)
            .map_err(|e| site.err("notify.max_attachment_size", e.to_string()))?,
    };
    let retry_base = duration(site, &raw.retry_base, "notify.retry_base", d.retry_base)?;
    let retry_cap = duration(site, &raw.retry_cap, "notify.retry_cap", d.retry_cap)?;
    if retry_cap < retry_base {
        return Err(site.err("notify.retry_cap", "is shorter than notify.retry_base"));
    }
    let max_attempts = match raw.max_attempts {
        Some(0) => return Err(site.err("notify.max_attempts", "must be at least 1")),
        Some(n) => n,
        None => d.max_attempts,
    };
    let email = raw.email.as_ref().map(|e| email(e, site)).transpose()?;
    let sms = raw.sms.as_ref().map(|s| sms(s, site)).transpose()?;
    Ok(NotifySettings {
        email,
        sms,
        attach: raw.attach.clone(),
        max_attachment_bytes,
        retry_base,
        retry_cap,
        max_attempts,
    })
}

fn email(raw: &RawEmail, site: &Site<'_>) -> Result<EmailSettings, ConfigError> {
    let from = mailbox(site, "notify.email.from", &raw.from)?;
    let reply_to = raw
        .reply_to
        .as_deref()
        .map(|r| mailbox(site, "notify.email.reply_to", r))
        .transpose()?;
    let smtp_only = |key: &str, set: bool| {
        if set {
            Err(site.err(
                format!("notify.email.{key}"),
                "applies to transport = \"smtp\" only",
            ))
        } else {
            Ok(())
        }
    };
    let transport = match raw.transport.as_str() {
        "file" => {
            smtp_only("host", raw.host.is_some())?;
            smtp_only("port", raw.port.is_some())?;
            smtp_only("tls", raw.tls.is_some())?;
            smtp_only("ca_file", raw.ca_file.is_some())?;
            smtp_only("username", raw.username.is_some())?;
            smtp_only("password_file", raw.password_file.is_some())?;
            let dir = raw.dir.as_deref().ok_or_else(|| {
                site.err(
                    "notify.email.dir",
                    "transport = \"file\" needs dir, the folder the .eml files go to",
                )
            })?;
            EmailTransport::File {
                dir: site.resolve(dir),
            }
        }
        "smtp" => {
            if raw.dir.is_some() {
                return Err(site.err("notify.email.dir", "applies to transport = \"file\" only"));
            }
            let host = raw
                .host
                .clone()
                .filter(|h| !h.trim().is_empty())
                .ok_or_else(|| {
                    site.err(
                        "notify.email.host",
                        "transport = \"smtp\" needs host, the relay",
                    )
                })?;
            if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(site.err("notify.email.host", format!("{host:?} is not a host name")));
            }
            let tls = match raw.tls.as_deref() {
                None | Some("starttls") => SmtpTls::StartTls,
                Some("implicit") => SmtpTls::Implicit,
                Some("none") => SmtpTls::None,
                Some(other) => {
                    return Err(site.err(
                        "notify.email.tls",
                        format!("{other:?} is not starttls, implicit or none"),
                    ))
                }
            };
            if tls == SmtpTls::None && !is_loopback_host(&host) {
                return Err(site.err(
                    "notify.email.tls",
                    format!("\"none\" (no encryption) is allowed only to a relay on this machine (localhost, 127.0.0.1, ::1), not {host:?}"),
                ));
            }
            if tls == SmtpTls::None && raw.ca_file.is_some() {
                return Err(site.err("notify.email.ca_file", "has no use with tls = \"none\""));
            }
            let port = raw.port.unwrap_or(match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Implicit => 465,
                SmtpTls::None => 25,
            });
            if port == 0 {
                return Err(site.err("notify.email.port", "must not be 0"));
            }
            let ca_pem = raw
                .ca_file
                .as_deref()
                .map(|p| read_ca(site, "notify.email.ca_file", p))
                .transpose()?;
            let credentials = match (&raw.username, &raw.password_file) {
                (None, None) => None,
                (Some(_), None) => {
                    return Err(site.err(
                        "notify.email.username",
                        "needs password_file, the file holding the password",
                    ))
                }
                (None, Some(_)) => {
                    return Err(site.err("notify.email.password_file", "needs username"))
                }
                (Some(u), Some(p)) => {
                    let mut bytes = read_file(site, "notify.email.password_file", p)?;
                    // One trailing line break is the file's, not the password's.
                    if bytes.ends_with(b"\n") {
                        bytes.pop();
                        if bytes.ends_with(b"\r") {
                            bytes.pop();
                        }
                    }
                    let secret = Secret::new(bytes);
                    if std::str::from_utf8(secret.expose()).is_err() || secret.expose().is_empty() {
                        return Err(site.err(
                            "notify.email.password_file",
                            "must hold the password as UTF-8 text (one line)",
                        ));
                    }
                    Some((u.clone(), secret))
                }
            };
            EmailTransport::Smtp(SmtpSettings {
                host,
                port,
                tls,
                ca_pem,
                credentials,
                timeout: duration(
                    site,
                    &raw.timeout,
                    "notify.email.timeout",
                    Duration::from_secs(30),
                )?,
            })
        }
        other => {
            return Err(site.err(
                "notify.email.transport",
                format!("{other:?} is not smtp or file"),
            ))
        }
    };
    Ok(EmailSettings {
        transport,
        from,
        reply_to,
    })
}

fn sms(raw: &RawSms, site: &Site<'_>) -> Result<SmsSettings, ConfigError> {
    let key = "notify.sms.url";
    let url: http::Uri = raw
        .url
        .parse()
        .map_err(|_| site.err(key, format!("{:?} is not a URL", raw.url)))?;
    let host = url
        .host()
        .ok_or_else(|| site.err(key, "must name a host (https://host/path)"))?;
    match url.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback_host(host) => {}
        Some("http") => {
            return Err(site.err(
                key,
                format!("plain http:// is allowed only to this machine (loopback), not {host:?}; use https://"),
            ))
        }
        _ => return Err(site.err(key, "must be an https:// URL")),
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(site.err(
            key,
            "must not carry credentials; requests are signed with hmac_key_file",
        ));
    }
    let key_bytes = read_file(site, "notify.sms.hmac_key_file", &raw.hmac_key_file)?;
    let trimmed: Vec<u8> = key_bytes.trim_ascii_end().to_vec();
    drop(Zeroizing::new(key_bytes));
    let hmac_key = Secret::new(trimmed);
    if hmac_key.expose().len() < 16 {
        return Err(site.err(
            "notify.sms.hmac_key_file",
            "the key must be at least 16 bytes (e.g. `openssl rand -hex 32 > file`)",
        ));
    }
    let ca_pem = raw
        .ca_file
        .as_deref()
        .map(|p| read_ca(site, "notify.sms.ca_file", p))
        .transpose()?;
    if ca_pem.is_some() && url.scheme_str() != Some("https") {
        return Err(site.err("notify.sms.ca_file", "has no use with an http:// URL"));
    }
    Ok(SmsSettings {
        url,
        hmac_key,
        ca_pem,
        timeout: duration(
            site,
            &raw.timeout,
            "notify.sms.timeout",
            Duration::from_secs(30),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates the `[notify]` of `text` as if it were `dir/sealpost.toml`.
    fn check(dir: &Path, text: &str) -> Result<NotifySettings, ConfigError> {
        #[derive(Deserialize)]
        struct Whole {
            #[serde(default)]
            notify: RawNotify,
        }
        let file = dir.join("sealpost.toml");
        let site = Site {
            file: &file,
            text,
            env: Default::default(),
        };
        let whole: Whole = toml::from_str(text).map_err(|e| site.err("notify", e.to_string()))?;
        validate(&whole.notify, &site)
    }

    #[test]
    fn no_section_means_no_channel() {
        let dir = tempfile::tempdir().expect("test value");
        let s = check(dir.path(), "").expect("test value");
        assert_eq!(s, NotifySettings::default());
        assert!(s.email.is_none() && s.sms.is_none());
    }

    #[test]
    fn a_full_section_is_read_with_secrets_from_files() {
        let dir = tempfile::tempdir().expect("test value");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("test value");
        std::fs::write(dir.path().join("hmac"), "0123456789abcdef0123\n").expect("test value");
        let text = r#"
[notify]
attach = ["ruling-issued"]
retry_base = "10s"
[notify.email]
transport = "smtp"
host = "smtp.example.org"
tls = "implicit"
username = "u"
password_file = "pw"
from = "委员会 <noreply@lac.example.org>"
[notify.sms]
url = "https://sms.example/hook"
hmac_key_file = "hmac"
"#;
        let s = check(dir.path(), text).expect("test value");
        let Some(EmailSettings {
            transport: EmailTransport::Smtp(smtp),
            from,
            ..
        }) = &s.email
        else {
            panic!("{s:?}")
        };
        assert_eq!(smtp.port, 465, "the implicit-TLS default");
        assert_eq!(
            smtp.credentials.as_ref().expect("test value").1.expose(),
            b"s3cret"
        );
        assert_eq!(from.email.to_string(), "noreply@lac.example.org");
        assert_eq!(
            s.sms.as_ref().expect("test value").hmac_key.expose(),
            b"0123456789abcdef0123"
        );
        assert_eq!(s.retry_base, Duration::from_secs(10));
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secrets are not printed"
        );
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let dir = tempfile::tempdir().expect("test value");
        let cases = [
            (
                "[notify]\n[notify.email]\ntransport = \"smtp\"\nhost = \"smtp.example.org\"\ntls = \"none\"\nfrom = \"a@b.org\"\n",
                5,
                "notify.email.tls",
                "only to a relay on this machine",
            ),
            (
                "[notify]\nattach = [\"ruling\"]\n",
                2,
                "notify.attach",
                "not an event kind",
            ),
            (
                "[notify.email]\ntransport = \"file\"\ndir = \"m\"\nfrom = \"not an address\"\n",
                4,
                "notify.email.from",
                "not an e-mail address",
            ),
            (
                "[notify.sms]\nurl = \"http://sms.example/hook\"\nhmac_key_file = \"k\"\n",
                2,
                "notify.sms.url",
                "loopback",
            ),
            (
                "[notify.sms]\nurl = \"https://sms.example/hook\"\nhmac_key_file = \"missing\"\n",
                3,
                "notify.sms.hmac_key_file",
                "cannot read",
            ),
            (
                "[notify.email]\ntransport = \"smtp\"\nhost = \"h\"\nusername = \"u\"\nfrom = \"a@b.org\"\n",
                4,
                "notify.email.username",
                "password_file",
            ),
        ];
        for (text, line, key, what) in cases {
            let e = check(dir.path(), text).expect_err(text);
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.contains(what), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("sealpost.toml:{line}: key `{key}`")),
                "{e}"
            );
        }
        // Plain SMTP and http:// are fine to this machine.
        std::fs::write(dir.path().join("k"), "0123456789abcdef").expect("test value");
        check(
            dir.path(),
            "[notify.email]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"a@b.org\"\n[notify.sms]\nurl = \"http://[::1]:8080/hook\"\nhmac_key_file = \"k\"\n",
        )
        .expect("test value");
    }
}
