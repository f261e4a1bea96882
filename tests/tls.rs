//! The mTLS layer, with real handshakes on loopback: who gets in, who does not,
//! and that a CRL swap takes effect for new connections without resumption
//! letting a revoked client back in.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Ca, Net, FUTIAN};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use sealpost::transport::tls::{identify, server_config, Reloadable};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A client TLS certificate with full control over its properties.
struct Spec<'a> {
    agency: &'a str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    eku: Vec<ExtendedKeyUsagePurpose>,
    serial: u64,
}

impl Spec<'_> {
    fn valid(agency: &str, serial: u64) -> Spec<'_> {
        let now = OffsetDateTime::now_utc();
        Spec {
            agency,
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(30),
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            serial,
        }
    }
    fn issue(&self, ca: &Ca) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.agency);
        p.distinguished_name = dn;
        p.subject_alt_names = vec![SanType::URI(
            format!("urn:sealpost:agency:{}", self.agency)
                .try_into()
                .expect("ia5"),
        )];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = self.eku.clone();
        p.not_before = self.not_before;
        p.not_after = self.not_after;
        p.serial_number = Some(SerialNumber::from(self.serial));
        let cert = p
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

fn crl(ca: &Ca, revoked: &[u64]) -> CertificateRevocationListDer<'static> {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - time::Duration::minutes(5),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let pem = params
        .signed_by(&Issuer::from_params(&ca.params, &ca.key))
        .expect("crl")
        .pem()
        .expect("pem");
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).expect("crl der")
}

/// A server that greets an identified peer with its id and says nothing to
/// anyone else.
async fn serve(net: &Net, tls: Reloadable) -> std::net::SocketAddr {
    let cfg = net.config(common::COMMITTEE);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.get());
            let directory = cfg.directory.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut conn)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await
                else {
                    return;
                };
                let cert = conn
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                if let Some(peer) = cert.as_deref().and_then(|c| identify(c, &directory).ok()) {
                    let _ = conn
                        .write_all(format!("hello {}\n", peer.id).as_bytes())
                        .await;
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

fn client_config(net: &Net, cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(net.path().join("ca.pem")).expect("ca") {
        roots.add(c.expect("cert")).expect("root");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let c = match cert {
        Some((pem, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .map(|c| c.expect("cert"))
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => b.with_no_client_auth(),
    };
    Arc::new(c)
}

/// Connects, returns what the server said ("" when refused, at any stage).
async fn greet(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> String {
    let stream = TcpStream::connect(addr).await.expect("tcp");
    let connector = tokio_rustls::TlsConnector::from(config);
    let Ok(mut tls) = connector
        .connect(ServerName::try_from("localhost").expect("name"), stream)
        .await
    else {
        return String::new();
    };
    // Under TLS 1.3 a refused client learns it on its first read, not at connect.
    let mut out = String::new();
    match tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out)).await {
        Ok(Ok(_)) => out,
        _ => String::new(),
    }
}

#[tokio::test]
async fn only_a_valid_known_client_certificate_gets_in() {
    let net = Net::new();
    let cfg = net.config(common::COMMITTEE);
    let tls = Reloadable::new(server_config(&cfg, vec![]).expect("server config"));
    let addr = serve(&net, tls).await;
    let now = OffsetDateTime::now_utc();
    let other_ca = Ca::new("some other CA");

    let futian_pem = std::fs::read_to_string(net.agency(FUTIAN).dir.join("tls.pem")).expect("pem");
    let futian_key = std::fs::read_to_string(net.agency(FUTIAN).dir.join("tls.key")).expect("key");
    assert_eq!(
        greet(addr, client_config(&net, Some((&futian_pem, &futian_key)))).await,
        "hello sz-futian-court\n"
    );

    let cases: Vec<(&str, Option<(String, String)>)> = vec![
        ("no client certificate", None),
        (
            "certificate from another CA",
            Some(Spec::valid(FUTIAN, 10).issue(&other_ca)),
        ),
        (
            "expired",
            Some(
                Spec {
                    not_before: now - time::Duration::days(30),
                    not_after: now - time::Duration::days(1),
                    ..Spec::valid(FUTIAN, 11)
                }
                .issue(&net.ca),
            ),
        ),
        (
            "not yet valid",
            Some(
                Spec {
                    not_before: now + time::Duration::days(1),
                    not_after: now + time::Duration::days(30),
                    ..Spec::valid(FUTIAN, 12)
                }
                .issue(&net.ca),
            ),
        ),
        (
            "wrong EKU (serverAuth only)",
            Some(
                Spec {
                    eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
                    ..Spec::valid(FUTIAN, 13)
                }
                .issue(&net.ca),
            ),
        ),
        (
            "CA certificate used as a client",
            Some((net.ca.pem.clone(), net.ca.key.serialize_pem())),
        ),
        (
            "known CA, unknown identity",
            Some(Spec::valid("sz-ghost-court", 14).issue(&net.ca)),
        ),
    ];
    for (what, cert) in cases {
        let config = client_config(&net, cert.as_ref().map(|(c, k)| (c.as_str(), k.as_str())));
        assert_eq!(greet(addr, config).await, "", "{what}: was let in");
    }
}

#[tokio::test]
async fn a_crl_swap_refuses_a_revoked_client_even_with_a_cached_session() {
    let net = Net::new();
    let cfg = net.config(common::COMMITTEE);
    let tls = Reloadable::new(server_config(&cfg, vec![crl(&net.ca, &[])]).expect("server config"));
    let addr = serve(&net, tls.clone()).await;
    // A valid court certificate with a known serial; the client keeps a session cache.
    let (pem, key) = Spec::valid(FUTIAN, 4242).issue(&net.ca);
    let client = client_config(&net, Some((&pem, &key)));
    assert_eq!(greet(addr, client.clone()).await, "hello sz-futian-court\n");
    assert_eq!(greet(addr, client.clone()).await, "hello sz-futian-court\n");
    // The CA revokes serial 4242; the node reloads (rebuild + swap).
    tls.swap(server_config(&cfg, vec![crl(&net.ca, &[4242])]).expect("reloaded config"));
    assert_eq!(
        greet(addr, client.clone()).await,
        "",
        "revoked client got in (resumed session?)"
    );
    // Another, unrevoked client is unaffected.
    let (pem2, key2) = Spec::valid(FUTIAN, 4343).issue(&net.ca);
    assert_eq!(
        greet(addr, client_config(&net, Some((&pem2, &key2)))).await,
        "hello sz-futian-court\n"
    );
}

#[test]
fn a_certificate_is_mapped_by_uri_and_spki_pin() {
    let net = Net::new();
    let cfg = net.config(common::COMMITTEE);
    let der = |pem: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("der")
            .to_vec()
    };
    let (pem, _) = Spec::valid(FUTIAN, 1).issue(&net.ca);
    assert_eq!(
        identify(&der(&pem), &cfg.directory)
            .expect("known")
            .id
            .as_str(),
        FUTIAN
    );
    // Pin the court's SPKI in the directory: a new key with the right URI is refused.
    let text = std::fs::read_to_string(net.path().join("peers.toml")).expect("peers");
    let court_pem = std::fs::read_to_string(net.agency(FUTIAN).dir.join("tls.pem")).expect("pem");
    let spki = sealpost::pki::summarize(&der(&court_pem))
        .expect("summary")
        .spki_sha256;
    let pinned = text.replace(
        "tls_uri = \"urn:sealpost:agency:sz-futian-court\"",
        &format!("tls_uri = \"urn:sealpost:agency:sz-futian-court\"\ntls_spki_sha256 = \"{spki}\""),
    );
    std::fs::write(net.path().join("peers.toml"), pinned).expect("write");
    let dir = sealpost::config::load_directory(&net.path().join("peers.toml")).expect("directory");
    assert_eq!(
        identify(&der(&court_pem), &dir)
            .expect("pinned key")
            .id
            .as_str(),
        FUTIAN
    );
    assert!(
        identify(&der(&pem), &dir).is_err(),
        "a different key with the right URI got in"
    );
}
