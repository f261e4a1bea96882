//! TLS for the mTLS API.
//!
//! * rustls with the ring provider only; TLS 1.3 and 1.2, AEAD suites only (the
//!   ring provider offers no others).
//! * A client certificate is required. It must chain to the exchange CA, carry
//!   the clientAuth EKU, be within its validity and not be revoked by any
//!   configured CRL. rustls fixes the CRLs when the config is built, so a CRL
//!   update means building a new config and swapping it in ([`Reloadable`]).
//! * No session resumption (no tickets, no session cache): a resumed session
//!   would skip the revocation check, letting a revoked client back in.
//! * After the handshake, [`identify`] maps the end-entity certificate to
//!   exactly one peer by its URI SAN and/or SPKI pin; no match, or more than
//!   one, means the connection gets nothing.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::config::{Config, Directory, Peer};
use crate::pki::{summarize, CertProblem};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A CRL file could not be read or parsed.
    #[error("CRL {path}: {detail}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Reads every CRL in the given PEM files.
pub fn load_crls(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| TlsError::Crl {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let crls: Result<Vec<_>, _> =
            CertificateRevocationListDer::pem_slice_iter(&bytes).collect();
        let crls = crls.map_err(|e| TlsError::Crl {
            path: path.clone(),
            detail: format!("malformed PEM: {e}"),
        })?;
        if crls.is_empty() {
            return Err(TlsError::Crl {
                path: path.clone(),
                detail: "no \"-----BEGIN X509 CRL-----\" block".into(),
            });
        }
        out.extend(crls);
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration from this node's TLS identity, the exchange
/// CA and the given CRLs.
pub fn server_config(
    config: &Config,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in config.trust.der_certs() {
        roots
            .add(CertificateDer::from(der.to_vec()))
            .map_err(|e| TlsError::Rustls(format!("exchange CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut sc = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            config.keys.tls.chain.clone(),
            config.keys.tls.key.clone_key(),
        )
        .map_err(|e| TlsError::Rustls(format!("this node's TLS certificate and key: {e}")))?;
    // Resumption would skip the revocation check on the resumed session.
    sc.session_storage = Arc::new(NoServerSessionStorage {});
    sc.send_tls13_tickets = 0;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

/// The current server configuration, swapped whole on reload (SIGHUP, CRL
/// change). Connections already established keep the config they started with.
#[derive(Debug, Clone)]
pub struct Reloadable {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Reloadable {
    /// Starts with `initial`.
    pub fn new(initial: Arc<ServerConfig>) -> Self {
        Self {
            current: Arc::new(RwLock::new(initial)),
        }
    }
    /// The configuration new handshakes use.
    pub fn get(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    /// Replaces the configuration for new handshakes.
    pub fn swap(&self, next: Arc<ServerConfig>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// Why an authenticated certificate maps to no peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unidentified {
    /// The certificate could not be parsed.
    #[error("unparseable client certificate: {0}")]
    Malformed(CertProblem),
    /// No directory entry matches its URI SAN / SPKI pin.
    #[error("no peer in the directory has this certificate's identity")]
    Unknown,
    /// More than one entry matches (a directory error; refuse rather than guess).
    #[error("the certificate matches several peers: {0:?}")]
    Ambiguous(Vec<String>),
}

/// Maps an end-entity certificate to the one peer whose TLS identity it has.
/// A peer matches when every pin it lists (URI SAN, SPKI SHA-256) matches.
pub fn identify<'d>(cert: &[u8], directory: &'d Directory) -> Result<&'d Peer, Unidentified> {
    let s = summarize(cert).map_err(Unidentified::Malformed)?;
    let uri = s.agency.as_ref().map(crate::types::AgencyId::urn);
    let matches: Vec<&Peer> = directory
        .iter()
        .filter(|p| p.tls_uri.is_some() || p.tls_spki_sha256.is_some())
        .filter(|p| p.tls_uri.as_ref().is_none_or(|u| Some(u) == uri.as_ref()))
        .filter(|p| p.tls_spki_sha256.is_none_or(|pin| pin == s.spki_sha256))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Unidentified::Unknown),
        many => Err(Unidentified::Ambiguous(
            many.iter().map(|p| p.id.to_string()).collect(),
        )),
    }
}
