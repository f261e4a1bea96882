//! The SMS webhook: one signed JSON `POST` per notification to the gateway
//! (format: `docs/notifications.md`).
//!
//! Headers: `X-Sealpost-Timestamp` (Unix seconds), `X-Sealpost-Signature:
//! sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">` with the key of
//! `hmac_key_file`, and `Idempotency-Key` (the record id: the same on every
//! attempt). Answers: 2xx sent; 4xx other than 408 and 429 permanent; anything
//! else, or no answer, retried. A fresh connection per request (one request
//! per notification; nothing to keep), plain HTTP only to loopback (checked
//! in the configuration), HTTPS with rustls and ring.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::net::TcpStream;

use super::message;
use super::{Record, SendError};
use crate::config::SmsSettings;
use crate::types::Timestamp;

/// Largest answer body read (for the error message).
const ANSWER_LIMIT: usize = 4096;

/// A configured webhook.
pub(crate) struct Webhook {
    url: Uri,
    key: ring::hmac::Key,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

/// The JSON body.
#[derive(Debug, Serialize)]
struct Body<'a> {
    format: &'static str,
    idempotency_key: &'a str,
    event_key: &'a str,
    kind: &'a str,
    to: &'a str,
    language: &'static str,
    text: String,
    case_number: &'a str,
    bundle_id: String,
    court: Court<'a>,
}

#[derive(Debug, Serialize)]
struct Court<'a> {
    id: &'a str,
    name_zh: String,
    name_en: String,
}

/// The signature header's value for `timestamp` and `body`.
pub fn signature(key: &ring::hmac::Key, timestamp: &str, body: &[u8]) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", crate::types::hex(ctx.sign().as_ref()))
}

impl Webhook {
    pub(crate) fn new(s: &SmsSettings) -> Result<Self, String> {
        let tls = if s.url.scheme_str() == Some("https") {
            let mut roots = rustls::RootCertStore::empty();
            match &s.ca_pem {
                Some(pem) => {
                    use rustls::pki_types::pem::PemObject as _;
                    for c in CertificateDer::pem_slice_iter(pem) {
                        let c = c.map_err(|e| format!("notify.sms.ca_file: {e:?}"))?;
                        roots
                            .add(c)
                            .map_err(|e| format!("notify.sms.ca_file: {e}"))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            url: s.url.clone(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.hmac_key.expose()),
            tls,
            timeout: s.timeout,
        })
    }

    fn body(record: &Record) -> Vec<u8> {
        let n = &record.notice;
        let body = Body {
            format: "sealpost-sms/1",
            idempotency_key: &record.id,
            event_key: &record.event_key,
            kind: &record.kind,
            to: &record.recipient,
            language: n.language.code(),
            text: message::sms(n),
            case_number: n.case_number.as_str(),
            bundle_id: n.bundle_id.to_string(),
            court: Court {
                id: n.court.id.as_str(),
                name_zh: message::line(&n.court.name_zh),
                name_en: message::line(&n.court.name_en),
            },
        };
        serde_json::to_vec(&body).expect("the body serialises")
    }

    /// Sends `record` once; its idempotency key when accepted.
    pub(crate) async fn send(&self, record: &Record) -> Result<String, SendError> {
        let mobile = record.recipient.as_str();
        let digits = mobile.chars().filter(char::is_ascii_digit).count();
        if !(5..=20).contains(&digits)
            || !mobile
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
        {
            return Err(SendError::Permanent(format!(
                "{:?} is not a mobile number",
                message::line(mobile)
            )));
        }
        let body = Self::body(record);
        let ts = Timestamp::now().unix().to_string();
        let sig = signature(&self.key, &ts, &body);
        match tokio::time::timeout(self.timeout, self.post(body, &ts, &sig, &record.id)).await {
            Ok(Ok(())) => Ok(record.id.clone()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendError::Transient(format!(
                "the SMS gateway did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn post(&self, body: Vec<u8>, ts: &str, sig: &str, key: &str) -> Result<(), SendError> {
        let t = |e: &dyn std::fmt::Display| SendError::Transient(format!("SMS gateway: {e}"));
        let host = self.url.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let https = self.tls.is_some();
        let port = self.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((bare, port)).await.map_err(|e| t(&e))?;
        let _ = tcp.set_nodelay(true);
        let authority = self
            .url
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = self
            .url
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sealpost/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Sealpost-Timestamp", ts)
            .header("X-Sealpost-Signature", sig)
            .header("Idempotency-Key", key)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| t(&e))?;
        let resp = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(bare.to_owned()).map_err(|e| t(&e))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| t(&e))?;
                exchange(TokioIo::new(stream), req).await?
            }
            None => exchange(TokioIo::new(tcp), req).await?,
        };
        let (status, answer) = resp;
        if status.is_success() {
            Ok(())
        } else if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            Err(SendError::Permanent(format!(
                "the SMS gateway refused the message: {status}: {answer}"
            )))
        } else {
            Err(SendError::Transient(format!(
                "the SMS gateway answered {status}: {answer}"
            )))
        }
    }
}

async fn exchange<S>(
    io: TokioIo<S>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, String), SendError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let t = |e: &dyn std::fmt::Display| SendError::Transient(format!("SMS gateway: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| t(&e))?;
    // The connection is driven beside the request and ends with it (this
    // function's future owns it: no task outlives the attempt).
    let drive = async move {
        let _ = conn.await;
    };
    let request = async move {
        let resp = sender.send_request(req).await.map_err(|e| t(&e))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut answer = Vec::new();
        while answer.len() < ANSWER_LIMIT {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        answer.extend_from_slice(d);
                    }
                }
                _ => break,
            }
        }
        answer.truncate(ANSWER_LIMIT);
        Ok::<_, SendError>((status, message::line(&String::from_utf8_lossy(&answer))))
    };
    tokio::pin!(drive);
    tokio::pin!(request);
    tokio::select! {
        r = &mut request => r,
        _ = &mut drive => request.await,
    }
}
