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

use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::config::{Config, Directory, Peer};
use crate::pki::{summarize, CertProblem};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A CRL file could not be read or parsed.
    #[error("{0}")]
    Crl(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client-certificate check: chained to the exchange CA, clientAuth,
/// within validity, not revoked by the given CRLs.
pub fn client_verifier(
    config: &Config,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in config.trust.der_certs() {
        roots
            .add(CertificateDer::from(der.to_vec()))
            .map_err(|e| TlsError::Rustls(format!("exchange CA: {e}")))?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(Arc::new(Naming { inner }))
}

/// The client-certificate check that says, when it refuses one, whose
/// certificate it was and its validity: rustls's error alone gives the
/// times but not the certificate, and a refused handshake has no peer yet.
#[derive(Debug)]
struct Naming {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for Naming {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &r {
            match summarize(end_entity) {
                Ok(c) => tracing::warn!(
                    subject = %crate::types::printable(&c.subject),
                    agency = %c.agency.as_ref().map_or("(none)", |a| a.as_str()),
                    serial = %c.serial,
                    not_before = %c.not_before,
                    not_after = %c.not_after,
                    error = %e,
                    "a client certificate was refused"
                ),
                Err(p) => {
                    tracing::warn!(error = %e, problem = %p, "an unreadable client certificate was refused")
                }
            }
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Builds the server configuration from this node's TLS identity, the exchange
/// CA and the given CRLs.
pub fn server_config(
    config: &Config,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(config, client_verifier(config, crls)?)
}

fn server_config_with(
    config: &Config,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
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

/// A value swapped whole on reload (SIGHUP, CRL change): whoever took the old
/// one keeps it (a connection keeps the TLS configuration it started with),
/// new takers get the new one.
#[derive(Debug)]
pub struct Shared<T> {
    current: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
        }
    }
}

impl<T> Shared<T> {
    /// Starts with `initial`.
    pub fn new(initial: Arc<T>) -> Self {
        Self {
            current: Arc::new(RwLock::new(initial)),
        }
    }
    /// The current value.
    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    /// Replaces the value for new takers.
    pub fn swap(&self, next: Arc<T>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// The server's TLS configuration, swapped whole on reload.
pub type Reloadable = Shared<ServerConfig>;

/// What the API serves with, replaced whole by a reload: the validated
/// configuration (peer directory, trust, keys), the TLS configuration built
/// from it with the CRLs as they were read, and the client-certificate check
/// itself (used again on established connections after a reload).
pub struct Live {
    /// The configuration.
    pub config: Arc<Config>,
    /// The TLS configuration for new handshakes.
    pub server: Arc<ServerConfig>,
    /// The client-certificate check it contains.
    pub verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("node", &self.config.node.id)
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Builds from a validated configuration, reading its CRL files now.
    pub fn build(config: Arc<Config>) -> Result<Self, TlsError> {
        let crls =
            crate::pki::load_crls(&config.crl_files).map_err(|e| TlsError::Crl(e.to_string()))?;
        let verifier = client_verifier(&config, crls)?;
        let server = server_config_with(&config, verifier.clone())?;
        Ok(Self {
            config,
            server,
            verifier,
        })
    }

    /// Whether a client certificate chain that was accepted earlier still
    /// passes the client-certificate check and maps to `peer`.
    pub fn still_admits(
        &self,
        chain: &[CertificateDer<'static>],
        peer: &crate::types::AgencyId,
    ) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        let now = rustls::pki_types::UnixTime::now();
        self.verifier
            .verify_client_cert(end_entity, intermediates, now)
            .is_ok()
            && identify(end_entity, &self.config.directory).is_ok_and(|p| &p.id == peer)
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
