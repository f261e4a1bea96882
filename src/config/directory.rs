//! The peer directory: every agency of the exchange, with its names, role,
//! TLS identity, signing certificates, encryption key, endpoint and delivery
//! mode (`[[peer]]` entries in their own TOML file).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::site::{ConfigError, OneOrMany, Site};
use crate::pki::{EncryptionRecipient, SignerCert};
use crate::types::{AgencyId, Sha256};

/// This node's role in the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// An arbitration committee: takes applications in, seals them for courts.
    Committee,
    /// A court: receives bundles, returns receipts and follow-ups.
    Court,
    /// The committee's online platform, which submits applications over the API.
    Platform,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Committee => "committee",
            Role::Court => "court",
            Role::Platform => "platform",
        })
    }
}

/// How bundles reach a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// The peer polls this node's API (the default: courts need no inbound port).
    Pull,
    /// This node pushes to the peer's endpoint.
    Push,
}

/// One agency in the peer directory.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its id.
    pub id: AgencyId,
    /// Display name, Chinese.
    pub name_zh: String,
    /// Display name, English.
    pub name_en: String,
    /// Its role.
    pub role: Role,
    /// TLS identity: URI SAN its client certificate must carry, if pinned by name.
    pub tls_uri: Option<String>,
    /// TLS identity: SHA-256 of its certificate's SubjectPublicKeyInfo, if pinned by key.
    pub tls_spki_sha256: Option<Sha256>,
    /// Its signing certificates (more than one during a rotation).
    pub signing_certs: Vec<SignerCert>,
    /// Its age public key; bundles for it are encrypted to this.
    pub encryption_key: EncryptionRecipient,
    /// Its HTTPS endpoint, for push delivery.
    pub endpoint: Option<http::Uri>,
    /// How bundles reach it.
    pub delivery: DeliveryMode,
    /// Contact telephone given to applicants.
    pub contact_phone: Option<String>,
    /// Contact e-mail given to applicants.
    pub contact_email: Option<String>,
}

impl Peer {
    /// "深圳市福田区人民法院 (Shenzhen Futian District People's Court)".
    pub fn display_name(&self) -> String {
        format!("{} ({})", self.name_zh, self.name_en)
    }
    /// Whether `cert` is one of this peer's registered signing certificates.
    pub fn has_signing_cert(&self, cert: &SignerCert) -> bool {
        self.signing_certs
            .iter()
            .any(|c| c.summary().sha256 == cert.summary().sha256)
    }
}

/// The peer directory: every agency this node knows.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    peers: BTreeMap<AgencyId, Peer>,
}

impl Directory {
    /// The peer with this id.
    pub fn get(&self, id: &AgencyId) -> Option<&Peer> {
        self.peers.get(id)
    }
    /// All peers, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectoryFile {
    #[serde(default)]
    peer: Vec<RawPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: String,
    name_zh: String,
    name_en: String,
    role: String,
    tls_uri: Option<String>,
    tls_spki_sha256: Option<String>,
    signing_cert: OneOrMany,
    encryption_key: String,
    endpoint: Option<String>,
    delivery: Option<String>,
    contact_phone: Option<String>,
    contact_email: Option<String>,
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "committee" => Ok(Role::Committee),
        "court" => Ok(Role::Court),
        "platform" => Ok(Role::Platform),
        other => Err(format!(
            "{other:?} is not a role; use committee, court or platform"
        )),
    }
}

/// Loads and validates a peer directory file.
pub fn load_directory(file: &Path) -> Result<Directory, ConfigError> {
    let whole = |message: String| ConfigError::whole_file(file, message);
    let text = std::fs::read_to_string(file)
        .map_err(|e| whole(format!("cannot read the peer directory: {e}")))?;
    let raw: RawDirectoryFile = toml::from_str(&text).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: e.span().map(|s| text[..s.start].matches('\n').count() + 1),
        key: None,
        message: e.message().to_owned(),
        env_var: None,
    })?;
    let site = Site {
        file,
        text: &text,
        env: Default::default(),
    };
    let mut peers = BTreeMap::new();
    for (i, p) in raw.peer.into_iter().enumerate() {
        let k = |leaf: &str| format!("peer[{i}].{leaf}");
        let id: AgencyId =
            p.id.parse()
                .map_err(|e| site.err(k("id"), format!("{e}")))?;
        let role = parse_role(&p.role).map_err(|m| site.err(k("role"), m))?;
        if p.name_zh.trim().is_empty() || p.name_en.trim().is_empty() {
            return Err(site.err(k("name_zh"), "both name_zh and name_en are required"));
        }
        if let Some(u) = &p.tls_uri {
            if AgencyId::from_urn(u).is_some_and(|a| a != id) {
                return Err(site.err(
                    k("tls_uri"),
                    format!("{u:?} names a different agency than id {:?}", id.as_str()),
                ));
            }
        }
        let tls_spki_sha256 = p
            .tls_spki_sha256
            .as_deref()
            .map(str::parse::<Sha256>)
            .transpose()
            .map_err(|e| site.err(k("tls_spki_sha256"), e.to_string()))?;
        if p.tls_uri.is_none() && tls_spki_sha256.is_none() {
            return Err(site.err(
                k("id"),
                "a peer needs tls_uri or tls_spki_sha256 (or both) so its TLS certificate can be recognised",
            ));
        }
        let mut signing_certs = Vec::new();
        for path in p.signing_cert.into_vec() {
            let cert = SignerCert::load(&site.resolve(&path))
                .map_err(|e| site.err(k("signing_cert"), e.to_string()))?;
            if cert.agency() != &id {
                return Err(site.err(
                    k("signing_cert"),
                    format!(
                        "{} names agency {:?}, not {:?}",
                        path.display(),
                        cert.agency().as_str(),
                        id.as_str()
                    ),
                ));
            }
            signing_certs.push(cert);
        }
        if signing_certs.is_empty() {
            return Err(site.err(
                k("signing_cert"),
                "at least one signing certificate is required",
            ));
        }
        let encryption_key: EncryptionRecipient = p
            .encryption_key
            .parse()
            .map_err(|e: crate::pki::CertProblem| site.err(k("encryption_key"), e.to_string()))?;
        let endpoint = p
            .endpoint
            .as_deref()
            .map(|s| {
                let uri: http::Uri = s
                    .parse()
                    .map_err(|_| site.err(k("endpoint"), format!("{s:?} is not a URL")))?;
                if uri.scheme_str() != Some("https") || uri.host().is_none() {
                    return Err(site.err(
                        k("endpoint"),
                        format!("{s:?} must be an https:// URL with a host"),
                    ));
                }
                Ok(uri)
            })
            .transpose()?;
        let delivery = match p.delivery.as_deref() {
            None | Some("pull") => DeliveryMode::Pull,
            Some("push") => DeliveryMode::Push,
            Some(other) => {
                return Err(site.err(k("delivery"), format!("{other:?} is not pull or push")))
            }
        };
        if delivery == DeliveryMode::Push && endpoint.is_none() {
            return Err(site.err(k("delivery"), "push delivery needs an endpoint"));
        }
        let peer = Peer {
            id: id.clone(),
            name_zh: p.name_zh,
            name_en: p.name_en,
            role,
            tls_uri: p.tls_uri,
            tls_spki_sha256,
            signing_certs,
            encryption_key,
            endpoint,
            delivery,
            contact_phone: p.contact_phone,
            contact_email: p.contact_email,
        };
        if peers.insert(id.clone(), peer).is_some() {
            return Err(site.err(k("id"), format!("{:?} is listed twice", id.as_str())));
        }
    }
    if peers.is_empty() {
        return Err(whole("the peer directory lists no [[peer]] entries".into()));
    }
    Ok(Directory { peers })
}
