//! E-mail: the message (lettre's builder: every header through its encoders,
//! the recipient only as a parsed [`lettre::Address`]), and its transport —
//! an SMTP relay (STARTTLS or implicit TLS with rustls and ring, optional
//! AUTH, optional relay CA) or a folder of `.eml` files.
//!
//! The file transport is ours, not lettre's: lettre's names each file with a
//! random UUID and writes it in place, so an attempt repeated after a crash
//! would leave two files, and a crash mid-write half a file. Ours writes
//! `<record id>.eml` atomically (temporary name, fsync, rename, fsync of the
//! folder): a repeat replaces the same file.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{self, Docs};
use super::{Record, SendError};
use crate::config::{EmailSettings, EmailTransport, NotifySettings, SmtpTls};

/// A built e-mail transport.
pub(crate) struct Mailer {
    settings: EmailSettings,
    kind: Kind,
}

enum Kind {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        timeout: Duration,
    },
    File(PathBuf),
}

impl Mailer {
    /// Builds the transport (no connection is made yet).
    pub(crate) fn new(settings: &EmailSettings) -> Result<Self, String> {
        let kind = match &settings.transport {
            EmailTransport::File { dir } => Kind::File(dir.clone()),
            EmailTransport::Smtp(s) => {
                let params = || -> Result<TlsParameters, String> {
                    let mut b = TlsParameters::builder(s.host.clone());
                    match &s.ca_pem {
                        Some(pem) => {
                            b = b.certificate_store(CertificateStore::None);
                            let cert = Certificate::from_pem(pem)
                                .map_err(|e| format!("notify.email.ca_file: {e}"))?;
                            b = b.add_root_certificate(cert);
                        }
                        None => b = b.certificate_store(CertificateStore::WebpkiRoots),
                    }
                    b.build_rustls()
                        .map_err(|e| format!("TLS for the SMTP relay {}: {e}", s.host))
                };
                let tls = match s.tls {
                    SmtpTls::StartTls => Tls::Required(params()?),
                    SmtpTls::Implicit => Tls::Wrapper(params()?),
                    SmtpTls::None => Tls::None,
                };
                let domain = settings.from.email.domain().to_owned();
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                    .port(s.port)
                    .tls(tls)
                    .timeout(Some(s.timeout))
                    .hello_name(ClientId::Domain(domain));
                if let Some((user, password)) = &s.credentials {
                    let password = std::str::from_utf8(password.expose())
                        .map_err(|_| "notify.email.password_file is not UTF-8".to_owned())?;
                    b = b
                        .credentials(Credentials::new(user.clone(), password.to_owned()))
                        .authentication(vec![Mechanism::Plain, Mechanism::Login]);
                }
                Kind::Smtp {
                    transport: b.build(),
                    timeout: s.timeout,
                }
            }
        };
        Ok(Self {
            settings: settings.clone(),
            kind,
        })
    }
}

/// Reply codes that say the relay refuses *us* (authentication), not the
/// message: a configuration problem, retried like a 4xx.
const AUTH_CODES: [&str; 4] = ["530", "534", "535", "538"];

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    let msg = message::line(&msg);
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if e.is_permanent() && !AUTH_CODES.contains(&code.as_str()) {
        SendError::Permanent(format!("the relay refused the message: {msg}"))
    } else {
        SendError::Transient(msg)
    }
}

/// An attachment: file name, type, bytes.
type Part = (String, ContentType, Vec<u8>);

/// What to say about documents, and the parts to attach.
fn documents(settings: &NotifySettings, record: &Record) -> Result<(Docs, Vec<Part>), SendError> {
    let n = &record.notice;
    if n.attachments.is_empty() || !settings.attach.contains(&record.kind) {
        return Ok((Docs::NotAttached, Vec::new()));
    }
    let names: Vec<String> = n
        .attachments
        .iter()
        .map(|a| message::line(&a.name))
        .collect();
    let mut total = 0u64;
    for a in &n.attachments {
        let len = std::fs::metadata(&a.path)
            .map_err(|e| SendError::Transient(format!("attachment {}: {e}", a.path.display())))?
            .len();
        total = total.saturating_add(len);
    }
    if total > settings.max_attachment_bytes {
        return Ok((Docs::TooLarge(names), Vec::new()));
    }
    let mut parts = Vec::new();
    for (a, name) in n.attachments.iter().zip(&names) {
        let bytes = std::fs::read(&a.path)
            .map_err(|e| SendError::Transient(format!("attachment {}: {e}", a.path.display())))?;
        let ct = ContentType::parse(&a.media_type)
            .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid"));
        parts.push((name.clone(), ct, bytes));
    }
    Ok((Docs::Attached(names), parts))
}

/// The message of `record`.
pub(crate) fn build(
    email: &EmailSettings,
    settings: &NotifySettings,
    record: &Record,
) -> Result<Message, SendError> {
    let to: lettre::Address = record.recipient.parse().map_err(|e| {
        SendError::Permanent(format!(
            "{:?} is not an e-mail address: {e}",
            message::line(&record.recipient)
        ))
    })?;
    let (docs, parts) = documents(settings, record)?;
    let rendered = message::render(&record.notice, &docs);
    let mut b = Message::builder()
        .from(email.from.clone())
        .to(Mailbox::new(None, to))
        .subject(rendered.subject)
        .message_id(Some(record.message_id.clone()))
        .date_now();
    if let Some(r) = &email.reply_to {
        b = b.reply_to(r.clone());
    }
    let alt = MultiPart::alternative_plain_html(rendered.text, rendered.html);
    let body = if parts.is_empty() {
        alt
    } else {
        let mut mixed = MultiPart::mixed().multipart(alt);
        for (name, ct, bytes) in parts {
            mixed = mixed.singlepart(Attachment::new(name).body(bytes, ct));
        }
        mixed
    };
    b.multipart(body)
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

/// Sends `record` once; its `Message-ID` when accepted.
pub(crate) async fn send(
    mailer: &Mailer,
    settings: &NotifySettings,
    record: &Record,
) -> Result<String, SendError> {
    let msg = build(&mailer.settings, settings, record)?;
    match &mailer.kind {
        Kind::Smtp { transport, timeout } => {
            // lettre bounds each command; this bounds the whole conversation.
            let whole = timeout.saturating_mul(6);
            match tokio::time::timeout(whole, transport.send(msg)).await {
                Ok(Ok(_)) => Ok(record.message_id.clone()),
                Ok(Err(e)) => Err(classify(e)),
                Err(_) => Err(SendError::Transient(format!(
                    "the SMTP conversation took longer than {whole:?}"
                ))),
            }
        }
        Kind::File(dir) => {
            let dir = dir.clone();
            let path = dir.join(format!("{}.eml", record.id));
            let bytes = msg.formatted();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                crate::fsutil::write_replace_atomic(&path, &bytes)
            })
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?
            .map_err(|e| SendError::Transient(format!("cannot write the .eml file: {e}")))?;
            Ok(record.message_id.clone())
        }
    }
}
