//! Keys and certificates: the exchange CA, an agency's Ed25519 signing key and its
//! certificate, its TLS identity, and its age (X25519) encryption key pair.
//!
//! Everything here is loaded and checked once, when the configuration is
//! validated; the rest of the daemon receives ready-to-use values. Private keys
//! live in types whose `Debug` never prints key material.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::types::{AgencyId, Sha256, Timestamp};

/// A key or certificate file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no usable PEM object of the expected kind.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected and not found.
        detail: String,
    },
    /// The certificate or key is readable but unsuitable.
    #[error("{path}: {problem}")]
    Unsuitable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        problem: CertProblem,
    },
}

/// Why a certificate cannot serve its purpose. Shown to operators and carried in
/// bundle-verification errors, so the text names the property that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertProblem(pub String);

fn problem(s: impl Into<String>) -> CertProblem {
    CertProblem(s.into())
}

fn read_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = read_file(path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(PkiError::Pem {
            path: path.to_owned(),
            detail: "no \"-----BEGIN CERTIFICATE-----\" block found".into(),
        }),
        Err(e) => Err(PkiError::Pem {
            path: path.to_owned(),
            detail: format!("malformed PEM: {e}"),
        }),
    }
}

/// Reads every CRL in the given PEM files.
pub fn load_crls(
    paths: &[PathBuf],
) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, PkiError> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| PkiError::Read {
            path: path.clone(),
            source: e,
        })?;
        let crls: Result<Vec<_>, _> =
            rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&bytes).collect();
        let crls = crls.map_err(|e| PkiError::Pem {
            path: path.clone(),
            detail: format!("malformed CRL PEM: {e}"),
        })?;
        if crls.is_empty() {
            return Err(PkiError::Pem {
                path: path.clone(),
                detail: "no \"-----BEGIN X509 CRL-----\" block".into(),
            });
        }
        out.extend(crls);
    }
    Ok(out)
}

/// When each CRL in a PEM file says the next one is due (`nextUpdate`); `None`
/// for a CRL without one.
pub fn crl_next_update(path: &Path) -> Result<Vec<Option<Timestamp>>, PkiError> {
    let mut out = Vec::new();
    for der in load_crls(&[path.to_owned()])? {
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(der.as_ref())
                .map_err(|e| PkiError::Pem {
                    path: path.to_owned(),
                    detail: format!("not a valid CRL: {e}"),
                })?;
        out.push(crl.next_update().map(asn1_to_ts));
    }
    Ok(out)
}

/// Facts common to every certificate we show or check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name, as text.
    pub subject: String,
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// SHA-256 of the DER certificate.
    pub sha256: Sha256,
    /// SHA-256 of the DER SubjectPublicKeyInfo (the TLS pin).
    pub spki_sha256: Sha256,
    /// The agency named by a `urn:sealpost:agency:<id>` URI SAN, if any.
    pub agency: Option<AgencyId>,
}

fn asn1_to_ts(t: x509_parser::time::ASN1Time) -> Timestamp {
    Timestamp::from_unix(t.timestamp()).unwrap_or_else(|| {
        // Dates beyond year 9999 cannot be represented; clamp rather than fail.
        Timestamp::from_unix(253_402_300_799).expect("year 9999 is representable")
    })
}

/// Parses a DER certificate, with a specific message on failure.
pub fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CertProblem> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(problem("trailing bytes after the certificate")),
        Err(e) => Err(problem(format!("not a valid X.509 certificate: {e}"))),
    }
}

/// The agency URIs (`urn:sealpost:agency:*`) in a certificate's SAN, and every URI SAN.
fn uri_sans<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, CertProblem> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| problem(format!("malformed subjectAltName: {e}")))?;
    Ok(san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Summarises a certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, CertProblem> {
    let cert = parse_cert(der)?;
    let uris = uri_sans(&cert)?;
    let agencies: Vec<AgencyId> = uris.iter().filter_map(|u| AgencyId::from_urn(u)).collect();
    if agencies.len() > 1 {
        return Err(problem(format!(
            "names {} agencies in its subjectAltName; exactly one is allowed",
            agencies.len()
        )));
    }
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: asn1_to_ts(cert.validity().not_before),
        not_after: asn1_to_ts(cert.validity().not_after),
        sha256: Sha256::of(der),
        spki_sha256: Sha256::of(cert.public_key().raw),
        agency: agencies.into_iter().next(),
    })
}

/// An agency's signing certificate: Ed25519 key, `digitalSignature` key usage, not
/// a CA, and exactly one `urn:sealpost:agency:<id>` URI SAN.
#[derive(Clone, PartialEq, Eq)]
pub struct SignerCert {
    der: Vec<u8>,
    summary: CertSummary,
    agency: AgencyId,
    public_key: [u8; 32],
}

impl fmt::Debug for SignerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerCert")
            .field("agency", &self.agency)
            .field("serial", &self.summary.serial)
            .field("sha256", &self.summary.sha256)
            .finish()
    }
}

impl SignerCert {
    /// Checks that a DER certificate is usable as a signing certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertProblem> {
        let summary = summarize(der)?;
        let cert = parse_cert(der)?;
        let spki = cert.public_key();
        if spki.algorithm.algorithm != OID_SIG_ED25519 {
            return Err(problem("its public key is not Ed25519"));
        }
        let public_key: [u8; 32] = spki
            .subject_public_key
            .data
            .as_ref()
            .try_into()
            .map_err(|_| problem("its Ed25519 public key is not 32 bytes"))?;
        let ku = cert
            .key_usage()
            .map_err(|e| problem(format!("malformed keyUsage: {e}")))?;
        if !ku.is_some_and(|k| k.value.digital_signature()) {
            return Err(problem("its keyUsage does not include digitalSignature"));
        }
        let bc = cert
            .basic_constraints()
            .map_err(|e| problem(format!("malformed basicConstraints: {e}")))?;
        if bc.is_some_and(|b| b.value.ca) {
            return Err(problem(
                "it is a CA certificate, not an agency signing certificate",
            ));
        }
        let agency = summary.agency.clone().ok_or_else(|| {
            problem("it has no urn:sealpost:agency:<id> URI in its subjectAltName")
        })?;
        Ok(Self {
            der: der.to_vec(),
            summary,
            agency,
            public_key,
        })
    }

    /// Parses the single certificate in a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertProblem> {
        let mut it = CertificateDer::pem_slice_iter(pem);
        let first = it
            .next()
            .ok_or_else(|| problem("no PEM certificate block"))?
            .map_err(|e| problem(format!("malformed PEM: {e}")))?;
        if it.next().is_some() {
            return Err(problem(
                "more than one certificate; exactly one is expected",
            ));
        }
        Self::from_der(first.as_ref())
    }

    /// Loads from a PEM file.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let bytes = read_file(path)?;
        Self::from_pem(&bytes).map_err(|problem| PkiError::Unsuitable {
            path: path.to_owned(),
            problem,
        })
    }

    /// The agency this certificate names.
    pub fn agency(&self) -> &AgencyId {
        &self.agency
    }
    /// Subject, serial, validity and digests.
    pub fn summary(&self) -> &CertSummary {
        &self.summary
    }
    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The certificate as PEM text (64-column base64, LF line ends).
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }
    /// Verifies an Ed25519 signature by this certificate's key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .map_err(|_| BadSignature)
    }
}

/// A signature did not verify. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// Encodes DER as PEM with the given label: RFC 7468 text, base64 in
/// 64-column lines, LF line ends (the `pem` crate).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// This node's Ed25519 signing key with its certificate.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    cert: SignerCert,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 Ed25519 key (as `openssl genpkey -algorithm ed25519` writes)
    /// and its certificate, and checks that they belong together.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Self, PkiError> {
        let cert = SignerCert::load(cert_path)?;
        let bytes = Zeroizing::new(read_file(key_path)?);
        let key = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|e| PkiError::Pem {
            path: key_path.to_owned(),
            detail: format!("expected a \"-----BEGIN PRIVATE KEY-----\" (PKCS#8) block: {e}"),
        })?;
        Self::from_pkcs8(key.secret_pkcs8_der(), cert).map_err(|problem| PkiError::Unsuitable {
            path: key_path.to_owned(),
            problem,
        })
    }

    /// Builds from PKCS#8 DER (v1 or v2) and the matching certificate.
    pub fn from_pkcs8(pkcs8: &[u8], cert: SignerCert) -> Result<Self, CertProblem> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| problem(format!("not an Ed25519 PKCS#8 private key ({e})")))?;
        if pair.public_key().as_ref() != cert.public_key {
            return Err(problem(format!(
                "this private key does not belong to the signing certificate (serial {})",
                cert.summary.serial
            )));
        }
        Ok(Self { pair, cert })
    }

    /// Signs `message`; returns the 64-byte Ed25519 signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair
            .sign(message)
            .as_ref()
            .try_into()
            .expect("Ed25519 signatures are 64 bytes")
    }

    /// The certificate for this key.
    pub fn cert(&self) -> &SignerCert {
        &self.cert
    }
}

/// The exchange CA(s) that issue every agency certificate. More than one may be
/// configured during a CA rollover.
#[derive(Clone)]
pub struct ExchangeCa {
    certs: Vec<(Vec<u8>, CertSummary)>,
}

impl fmt::Debug for ExchangeCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.certs.iter().map(|(_, s)| &s.subject))
            .finish()
    }
}

impl ExchangeCa {
    /// Loads CA certificates from PEM files; each must be a CA with keyCertSign.
    pub fn load(paths: &[PathBuf]) -> Result<Self, PkiError> {
        let mut certs = Vec::new();
        for path in paths {
            for der in load_certs(path)? {
                let check = || -> Result<CertSummary, CertProblem> {
                    let c = parse_cert(der.as_ref())?;
                    let bc = c
                        .basic_constraints()
                        .map_err(|e| problem(format!("malformed basicConstraints: {e}")))?;
                    if !bc.is_some_and(|b| b.value.ca) {
                        return Err(problem(
                            "not a CA certificate (basicConstraints CA:TRUE missing)",
                        ));
                    }
                    let ku = c
                        .key_usage()
                        .map_err(|e| problem(format!("malformed keyUsage: {e}")))?;
                    if ku.is_some_and(|k| !k.value.key_cert_sign()) {
                        return Err(problem("its keyUsage lacks keyCertSign"));
                    }
                    summarize(der.as_ref())
                };
                let summary = check().map_err(|problem| PkiError::Unsuitable {
                    path: path.clone(),
                    problem,
                })?;
                certs.push((der.as_ref().to_vec(), summary));
            }
        }
        Ok(Self { certs })
    }

    /// The CA certificates, DER.
    pub fn der_certs(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|(d, _)| d.as_slice())
    }

    /// Summaries of the CA certificates.
    pub fn summaries(&self) -> impl Iterator<Item = &CertSummary> {
        self.certs.iter().map(|(_, s)| s)
    }

    /// Checks that `cert_der` was issued by one of these CAs, and that both it and
    /// the issuing CA were valid at `at`.
    pub fn check_issued(&self, cert_der: &[u8], at: Timestamp) -> Result<(), IssuanceError> {
        let cert = parse_cert(cert_der).map_err(IssuanceError::Malformed)?;
        for (ca_der, ca_summary) in &self.certs {
            let ca = parse_cert(ca_der).map_err(IssuanceError::Malformed)?;
            if cert.issuer().as_raw() != ca.subject().as_raw() {
                continue;
            }
            if cert.verify_signature(Some(ca.public_key())).is_err() {
                continue;
            }
            let leaf = summarize(cert_der).map_err(IssuanceError::Malformed)?;
            if at < leaf.not_before || at > leaf.not_after {
                return Err(IssuanceError::NotValidAt {
                    at,
                    not_before: leaf.not_before,
                    not_after: leaf.not_after,
                });
            }
            if at < ca_summary.not_before || at > ca_summary.not_after {
                return Err(IssuanceError::NotValidAt {
                    at,
                    not_before: ca_summary.not_before,
                    not_after: ca_summary.not_after,
                });
            }
            return Ok(());
        }
        Err(IssuanceError::UnknownIssuer)
    }
}

/// Why a certificate does not chain to the exchange CA at a given time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuanceError {
    /// No configured CA issued (signed) it.
    #[error("not issued by the configured exchange CA")]
    UnknownIssuer,
    /// It, or its CA, was not valid at the time in question.
    #[error("not valid at {at} (valid from {not_before} to {not_after})")]
    NotValidAt {
        /// The time checked.
        at: Timestamp,
        /// Validity start.
        not_before: Timestamp,
        /// Validity end.
        not_after: Timestamp,
    },
    /// Unparseable.
    #[error("{0}")]
    Malformed(CertProblem),
}

/// This node's TLS certificate chain and private key, as rustls wants them.
pub struct TlsIdentity {
    /// End-entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// Facts about the end-entity certificate.
    pub summary: CertSummary,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads a PEM chain and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let chain = load_certs(cert_path)?;
        let summary = summarize(chain[0].as_ref()).map_err(|problem| PkiError::Unsuitable {
            path: cert_path.to_owned(),
            problem,
        })?;
        let bytes = Zeroizing::new(read_file(key_path)?);
        let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| PkiError::Pem {
            path: key_path.to_owned(),
            detail: format!("no private key block found: {e}"),
        })?;
        // The key must be the certificate's: otherwise the node would start,
        // fail every handshake (or the server would not start), and restart.
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
            PkiError::Unsuitable {
                path: key_path.to_owned(),
                problem: problem(format!("not a usable TLS private key: {e}")),
            }
        })?;
        let matches = signer
            .public_key()
            .is_some_and(|spki| Sha256::of(spki.as_ref()) == summary.spki_sha256);
        if !matches {
            return Err(PkiError::Unsuitable {
                path: key_path.to_owned(),
                problem: problem(format!(
                    "this private key does not belong to the TLS certificate {} (serial {})",
                    cert_path.display(),
                    summary.serial
                )),
            });
        }
        Ok(Self {
            chain,
            key,
            summary,
        })
    }
}

/// This node's age X25519 identity (the private key bundles are encrypted to).
pub struct EncryptionIdentity(age::x25519::Identity);

impl fmt::Debug for EncryptionIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionIdentity({})", self.recipient())
    }
}

impl EncryptionIdentity {
    /// Loads an identity file as `age-keygen` writes it (comment lines allowed).
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let bytes = Zeroizing::new(read_file(path)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| PkiError::Pem {
            path: path.to_owned(),
            detail: "not UTF-8 text".into(),
        })?;
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = keys.next().ok_or_else(|| PkiError::Pem {
            path: path.to_owned(),
            detail: "no AGE-SECRET-KEY-1… line found".into(),
        })?;
        if keys.next().is_some() {
            return Err(PkiError::Pem {
                path: path.to_owned(),
                detail: "more than one key line; exactly one identity is expected".into(),
            });
        }
        let id = age::x25519::Identity::from_str(line).map_err(|_| PkiError::Pem {
            path: path.to_owned(),
            detail: "the key line is not a valid age X25519 identity (AGE-SECRET-KEY-1…)".into(),
        })?;
        Ok(Self(id))
    }

    /// Wraps an identity (tests, key generation).
    pub fn from_age(id: age::x25519::Identity) -> Self {
        Self(id)
    }

    /// The public recipient for this identity.
    pub fn recipient(&self) -> EncryptionRecipient {
        EncryptionRecipient(self.0.to_public())
    }

    /// The age identity, for decryption.
    pub fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }
}

/// An age X25519 recipient (`age1…`): a public encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionRecipient(age::x25519::Recipient);

impl EncryptionRecipient {
    /// The age recipient, for encryption.
    pub fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl fmt::Debug for EncryptionRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionRecipient({})", self.0)
    }
}
impl fmt::Display for EncryptionRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl FromStr for EncryptionRecipient {
    type Err = CertProblem;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        age::x25519::Recipient::from_str(s)
            .map(Self)
            .map_err(|_| problem(format!("{s:?} is not an age X25519 recipient (age1…)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_output_is_what_stock_parsers_read() {
        // 0..=255 three times: every base64 symbol, several full lines and a
        // short last one.
        let der: Vec<u8> = (0..=255u8).cycle().take(3 * 256).collect();
        let text = pem_encode("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"), "{text}");
        assert!(text.ends_with("\n-----END CERTIFICATE-----\n"), "{text}");
        assert!(!text.contains('\r'));
        let body: Vec<&str> = text.lines().skip(1).collect();
        let body = &body[..body.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body[body.len() - 1].len() <= 64);
        // rustls-pki-types reads it back to the same DER.
        let parsed = CertificateDer::from_pem_slice(text.as_bytes()).expect("PEM parses");
        assert_eq!(parsed.as_ref(), der.as_slice());
        // The RFC 4648 test vectors, through a label of our own.
        for (i, o) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                pem_encode("X", i.as_bytes()),
                format!("-----BEGIN X-----\n{o}\n-----END X-----\n")
            );
        }
    }
}
