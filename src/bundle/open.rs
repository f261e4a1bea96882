//! Verification and opening.
//!
//! [`Verifier::verify`] runs every check that needs only public keys, in a fixed
//! order (container → format → signature → certificate → directory → recipient →
//! payload digest); the first failure is returned. [`Verifier::open`] adds
//! decryption, the manifest signature and every document digest. It streams the
//! payload once: documents are written into a hidden temporary directory while
//! being hashed, and the directory is renamed into place only after every check
//! has passed. On any failure nothing is left behind.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::container::Container;
use super::pipe::{pump, ChunkReceiver, ChunkSender, PIPE_CHUNK, PIPE_DEPTH};
use super::{
    payload, BundleError, Envelope, HashingReader, HashingWriter, Manifest, FORMAT,
    MANIFEST_FORMAT, MAX_CLOCK_SKEW_SECS, MAX_META_BYTES,
};
use crate::application::check_safe_name;
use crate::config::{Directory, Limits};
use crate::fsutil::{open_regular_nofollow, AtomicDir, EarlyWriteback};
use crate::pki::{EncryptionIdentity, ExchangeCa, IssuanceError, SignerCert};
use crate::types::{AgencyId, Sha256, Timestamp};

/// What a bundle is checked against.
#[derive(Debug, Clone)]
pub struct Verifier<'a> {
    /// The exchange CA(s).
    pub trust: &'a ExchangeCa,
    /// The peer directory.
    pub directory: &'a Directory,
    /// This node: the bundle must be addressed to it. `None` accepts any
    /// recipient (a third party checking a proof).
    pub me: Option<&'a AgencyId>,
    /// Size limits.
    pub limits: Limits,
    /// The current time (for the clock-skew check).
    pub now: Timestamp,
}

/// A bundle whose envelope, signer and payload digest all verified. Only
/// [`Verifier`] constructs one (`non_exhaustive` keeps other crates from it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The envelope.
    pub envelope: Envelope,
    /// Its exact bytes.
    pub envelope_bytes: Vec<u8>,
    /// The envelope signature.
    pub signature: Vec<u8>,
    /// The signer.
    pub signer: SignerCert,
    /// The bundle file's size.
    pub size: u64,
}

/// A bundle opened into a directory.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The verified envelope and signer.
    pub verified: Verified,
    /// The verified manifest.
    pub manifest: Manifest,
    /// The output directory.
    pub dir: PathBuf,
}

impl<'a> Verifier<'a> {
    /// Checks bundles as `config`'s node: its exchange CA, directory and limits,
    /// addressed to it, against the current time.
    pub fn for_node(config: &'a crate::config::Config) -> Self {
        Self {
            trust: &config.trust,
            directory: &config.directory,
            me: Some(&config.node.id),
            limits: config.limits,
            now: Timestamp::now(),
        }
    }

    /// The same checks for a third party: any recipient is accepted.
    pub fn any_recipient(self) -> Self {
        Self { me: None, ..self }
    }

    /// Checks everything that can be checked without the private key.
    pub fn verify(&self, path: &Path) -> Result<Verified, BundleError> {
        let (mut container, verified) = self.read_and_check(path)?;
        let mut hr = HashingReader::new(container.payload_reader()?);
        io::copy(&mut hr, &mut io::sink()).map_err(BundleError::Io)?;
        let (len, sha, payload) = hr.finish_with_inner();
        check_payload_digest(&verified.envelope, (len, sha))?;
        payload.check_crc()?;
        Ok(verified)
    }

    fn read_and_check(&self, path: &Path) -> Result<(Container, Verified), BundleError> {
        let file = open_regular_nofollow(path).map_err(BundleError::Io)?;
        let size = file.metadata().map_err(BundleError::Io)?.len();
        let container = Container::read(file, self.limits.max_bundle_size)?;
        let verified = self.check_envelope(&container, size)?;
        Ok((container, verified))
    }

    fn check_envelope(&self, c: &Container, size: u64) -> Result<Verified, BundleError> {
        // Format version first: an unknown version has unknown rules.
        let value: serde_json::Value = serde_json::from_slice(&c.envelope)
            .map_err(|e| BundleError::EnvelopeMalformed(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(BundleError::UnsupportedFormat(other.to_owned())),
            None => return Err(BundleError::EnvelopeMalformed("no \"format\" field".into())),
        }
        let signer = SignerCert::from_pem(&c.signer_pem).map_err(BundleError::SignerCertInvalid)?;
        signer
            .verify(&c.envelope, &c.signature)
            .map_err(|_| BundleError::EnvelopeSignatureInvalid)?;
        // Signed bytes: from here on the envelope's content is the sender's word.
        let envelope: Envelope = serde_json::from_slice(&c.envelope)
            .map_err(|e| BundleError::EnvelopeMalformed(e.to_string()))?;
        match self.trust.check_issued(signer.der(), envelope.created_at) {
            Ok(()) => {}
            Err(IssuanceError::UnknownIssuer) => return Err(BundleError::SignerUntrusted),
            Err(e @ IssuanceError::NotValidAt { .. }) => {
                return Err(BundleError::SignerNotValidAtSigningTime(e))
            }
            Err(IssuanceError::Malformed(p)) => return Err(BundleError::SignerCertInvalid(p)),
        }
        if envelope.signer_cert_sha256 != signer.summary().sha256 {
            return Err(BundleError::SignerCertDigestMismatch);
        }
        if signer.agency() != &envelope.sender {
            return Err(BundleError::SignerIdentityMismatch {
                cert: signer.agency().clone(),
                sender: envelope.sender.clone(),
            });
        }
        let peer = self
            .directory
            .get(&envelope.sender)
            .ok_or_else(|| BundleError::SenderUnknown(envelope.sender.clone()))?;
        if !peer.has_signing_cert(&signer) {
            return Err(BundleError::SignerNotInDirectory(envelope.sender.clone()));
        }
        if envelope.created_at.unix() > self.now.unix() + MAX_CLOCK_SKEW_SECS {
            return Err(BundleError::CreatedInFuture(envelope.created_at));
        }
        if let Some(me) = self.me {
            if &envelope.recipient != me {
                return Err(BundleError::WrongRecipient {
                    recipient: envelope.recipient.clone(),
                    me: me.clone(),
                });
            }
        }
        if c.payload_len != envelope.payload.length {
            return Err(BundleError::PayloadLengthMismatch {
                declared: envelope.payload.length,
                actual: c.payload_len,
            });
        }
        Ok(Verified {
            envelope,
            envelope_bytes: c.envelope.clone(),
            signature: c.signature.clone(),
            signer,
            size,
        })
    }

    /// Verifies, decrypts with `identity` and writes the payload into `out`
    /// (which must not exist). `out` appears only if everything verified.
    pub fn open(
        &self,
        path: &Path,
        identity: &EncryptionIdentity,
        out: &Path,
    ) -> Result<Opened, BundleError> {
        if out.symlink_metadata().is_ok() {
            return Err(BundleError::OutputExists(out.to_owned()));
        }
        let (mut container, verified) = self.read_and_check(path)?;
        let dir = AtomicDir::create(out).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => BundleError::OutputExists(out.to_owned()),
            _ => BundleError::Output(e),
        })?;
        fs::create_dir(dir.path().join("documents")).map_err(BundleError::Output)?;

        // Two stages (three for a large document, see `write_on_thread`): a
        // reader thread hashes and CRCs the ciphertext (always to its end, so
        // the digest check, which explains a swapped or truncated payload
        // best, comes first whatever else failed); this thread decrypts,
        // unpacks and writes.
        let payload = container.payload_reader()?;
        let (extracted, read) = std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel(PIPE_DEPTH);
            let reader = scope.spawn(move || {
                let mut hr = HashingReader::new(payload);
                let pumped = pump(&mut hr, tx);
                let (len, sha, payload) = hr.finish_with_inner();
                pumped.map(|()| (len, sha, payload.check_crc()))
            });
            let extracted = extract(ChunkReceiver::new(rx), identity, dir.path(), &self.limits);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the payload reader panicked")));
            (extracted, read)
        });
        let (len, sha, crc) = read.map_err(BundleError::Io)?;
        check_payload_digest(&verified.envelope, (len, sha))?;
        crc?;
        let x = extracted?;

        // The payload's own proof of origin.
        let same_signer =
            SignerCert::from_pem(&x.signer_pem).is_ok_and(|c| c.der() == verified.signer.der());
        if !same_signer {
            return Err(BundleError::ManifestMalformed(
                "the payload's signer.pem differs from the envelope's signer".into(),
            ));
        }
        verified
            .signer
            .verify(&x.manifest, &x.manifest_sig)
            .map_err(|_| BundleError::ManifestSignatureInvalid)?;
        let manifest: Manifest = serde_json::from_slice(&x.manifest)
            .map_err(|e| BundleError::ManifestMalformed(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BundleError::ManifestMalformed(format!(
                "unknown manifest format {:?}",
                manifest.format
            )));
        }
        check_binding(&manifest, &verified.envelope)?;
        if manifest.documents.len() != x.documents.len() {
            return Err(BundleError::PayloadMalformed(format!(
                "the manifest lists {} documents, the payload holds {}",
                manifest.documents.len(),
                x.documents.len()
            )));
        }
        for (m, (path, size, sha)) in manifest.documents.iter().zip(&x.documents) {
            if &m.path != path {
                return Err(BundleError::PayloadMalformed(format!(
                    "the payload holds {path:?} where the manifest lists {:?}",
                    m.path
                )));
            }
            if m.size != *size || m.sha256 != *sha {
                return Err(BundleError::DocumentDigestMismatch(path.clone()));
            }
        }
        match (&manifest.transfer_letter, &x.letter) {
            (None, None) => {}
            (Some(m), Some(bytes)) => {
                if m.path != payload::LETTER {
                    return Err(BundleError::ManifestMalformed(
                        "transfer letter path".into(),
                    ));
                }
                if m.size != bytes.len() as u64 || m.sha256 != Sha256::of(bytes) {
                    return Err(BundleError::DocumentDigestMismatch(m.path.clone()));
                }
            }
            _ => {
                return Err(BundleError::PayloadMalformed(
                    "the transfer letter and the manifest disagree on its presence".into(),
                ))
            }
        }
        if x.sums != manifest.sha256sums().as_bytes() {
            return Err(BundleError::DocumentDigestMismatch(
                payload::SHA256SUMS.into(),
            ));
        }

        // All verified: write the small files and publish the directory.
        let write = |name: &str, bytes: &[u8]| -> Result<(), BundleError> {
            let mut f = create_new(&dir.path().join(name)).map_err(BundleError::Output)?;
            f.write_all(bytes).map_err(BundleError::Output)?;
            f.sync_all().map_err(BundleError::Output)
        };
        if let Some(letter) = &x.letter {
            write(payload::LETTER, letter)?;
        }
        write(payload::MANIFEST, &x.manifest)?;
        write(payload::MANIFEST_SIG, &x.manifest_sig)?;
        write(payload::SIGNER, &x.signer_pem)?;
        write(payload::SHA256SUMS, &x.sums)?;
        write(super::ENVELOPE_ENTRY, &verified.envelope_bytes)?;
        write(super::SIGNATURE_ENTRY, &verified.signature)?;
        let dir = dir.commit().map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => BundleError::OutputExists(out.to_owned()),
            _ => BundleError::Output(e),
        })?;
        Ok(Opened {
            verified,
            manifest,
            dir,
        })
    }
}

fn check_payload_digest(envelope: &Envelope, (len, sha): (u64, Sha256)) -> Result<(), BundleError> {
    if len != envelope.payload.length {
        return Err(BundleError::PayloadLengthMismatch {
            declared: envelope.payload.length,
            actual: len,
        });
    }
    if sha != envelope.payload.sha256 {
        return Err(BundleError::PayloadDigestMismatch);
    }
    Ok(())
}

fn check_binding(m: &Manifest, e: &Envelope) -> Result<(), BundleError> {
    let mismatch = |what: &str| Err(BundleError::ManifestMismatch(format!("{what} differs")));
    if m.bundle_id != e.id {
        return mismatch("bundle_id");
    }
    if m.kind != e.kind {
        return mismatch("kind");
    }
    if m.sender != e.sender {
        return mismatch("sender");
    }
    if m.recipient != e.recipient {
        return mismatch("recipient");
    }
    if m.case_ref != e.case_ref {
        return mismatch("case_ref");
    }
    if m.created_at != e.created_at {
        return mismatch("created_at");
    }
    if m.refers_to != e.refers_to {
        return mismatch("refers_to");
    }
    let is_application = e.kind == super::Kind::PreservationApplication;
    match &m.application {
        Some(a) if is_application => {
            if a.case_number != e.case_ref {
                return mismatch("application.case_number");
            }
            if a.court != e.recipient {
                return mismatch("application.court");
            }
        }
        None if !is_application => {}
        _ => {
            return Err(BundleError::ManifestMismatch(
                "an application manifest must carry the application particulars, and only it may"
                    .into(),
            ))
        }
    }
    if m.transfer_letter.is_some() != is_application {
        return Err(BundleError::ManifestMismatch(
            "a transfer letter belongs to preservation applications, and only to them".into(),
        ));
    }
    Ok(())
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// What the payload stream held (documents already on disk in the temp dir).
struct Extracted {
    documents: Vec<(String, u64, Sha256)>,
    letter: Option<Vec<u8>>,
    manifest: Vec<u8>,
    manifest_sig: Vec<u8>,
    signer_pem: Vec<u8>,
    sums: Vec<u8>,
}

fn malformed(s: impl Into<String>) -> BundleError {
    BundleError::PayloadMalformed(s.into())
}

fn read_small(entry: &mut impl Read, size: u64, path: &str) -> Result<Vec<u8>, BundleError> {
    if size > MAX_META_BYTES {
        return Err(malformed(format!(
            "{path} is {size} bytes, over {MAX_META_BYTES}"
        )));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| malformed(format!("{path}: {e}")))?;
    Ok(buf)
}

fn extract(
    ciphertext: ChunkReceiver,
    identity: &EncryptionIdentity,
    dir: &Path,
    limits: &Limits,
) -> Result<Extracted, BundleError> {
    let decryptor =
        age::Decryptor::new_buffered(ciphertext).map_err(|_| BundleError::DecryptionFailed)?;
    let plain = decryptor
        .decrypt(std::iter::once(identity.as_age() as &dyn age::Identity))
        .map_err(|_| BundleError::DecryptionFailed)?;
    // A chunk that fails to authenticate surfaces as a read error in whichever
    // layer reads it (tar header, document copy, trailer, end padding); the
    // decryptor's own record of it decides the code, not that layer.
    let failed = Cell::new(false);
    let mut plain = Decrypting {
        inner: plain,
        failed: &failed,
    };
    let unpacked = unpack(&mut plain, dir, limits);
    if failed.get() {
        return Err(BundleError::DecryptionFailed);
    }
    unpacked
}

/// The age plaintext reader, recording in `failed` that a read from it failed.
/// Its ciphertext source ([`ChunkReceiver`]) cannot fail (a failed reader stage
/// is reported by the caller before anything found here), so every read error
/// is age's: an age chunk that does not authenticate, or a truncated stream.
struct Decrypting<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for Decrypting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// Documents at least this large are hashed and written by a thread of their
/// own (a third pipeline stage, beside the ciphertext reader and the
/// decryption); smaller ones inline.
const WRITE_THREAD_MIN: u64 = 4 * PIPE_CHUNK as u64;

/// Copies `src` into `file` through a writer thread that hashes and writes
/// it, starting its writeback early ([`EarlyWriteback`]); returns the bytes
/// written and their digest. A failed write is an output error; a failed
/// read (a chunk that does not authenticate) is the bundle's.
fn write_on_thread(
    src: &mut impl Read,
    file: &File,
    path: &str,
) -> Result<(u64, Sha256), BundleError> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
        let writer = scope.spawn(move || -> io::Result<(u64, Sha256)> {
            let mut writeback = EarlyWriteback::new(file)?;
            let mut w = HashingWriter::new(file);
            for chunk in rx {
                w.write_all(&chunk)?;
                writeback.progress(w.count());
            }
            let (_, n, sha) = w.finish();
            writeback.finish()?;
            Ok((n, sha))
        });
        let mut sender = ChunkSender::new(tx);
        let copied = io::copy(src, &mut sender).and_then(|_| sender.flush());
        drop(sender);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        // The writer's failure first: it is why a send failed, if one did.
        let written = written.map_err(BundleError::Output)?;
        copied.map_err(|e| malformed(format!("{path}: {e}")))?;
        Ok(written)
    })
}

/// Unpacks the payload archive from its plaintext into `dir`.
fn unpack(plain: &mut impl Read, dir: &Path, limits: &Limits) -> Result<Extracted, BundleError> {
    let mut archive = tar::Archive::new(&mut *plain);
    let mut x = Extracted {
        documents: Vec::new(),
        letter: None,
        manifest: Vec::new(),
        manifest_sig: Vec::new(),
        signer_pem: Vec::new(),
        sums: Vec::new(),
    };
    // Fixed trailer after the documents.
    const TRAILER: [&str; 4] = [
        payload::MANIFEST,
        payload::MANIFEST_SIG,
        payload::SIGNER,
        payload::SHA256SUMS,
    ];
    let mut trailer_pos = 0usize;
    let mut total: u64 = 0;
    let entries = archive.entries().map_err(|e| malformed(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| malformed(e.to_string()))?;
        let path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| malformed("an entry name is not UTF-8"))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(malformed(format!("{path:?} is not a regular file")));
        }
        let size = entry.size();
        if trailer_pos == TRAILER.len() {
            return Err(malformed(format!(
                "unexpected entry {path:?} after SHA256SUMS"
            )));
        }
        if let Some(name) = path.strip_prefix(payload::DOCUMENTS_DIR) {
            if trailer_pos > 0 || x.letter.is_some() {
                return Err(malformed(format!("document {path:?} after the manifest")));
            }
            check_safe_name(name)
                .map_err(|why| malformed(format!("unsafe document name {path:?}: {why}")))?;
            if x.documents.len() >= limits.max_documents {
                return Err(malformed(format!(
                    "more than {} documents",
                    limits.max_documents
                )));
            }
            if size > limits.max_document_size {
                return Err(malformed(format!(
                    "{path:?} is {size} bytes, over the per-document limit"
                )));
            }
            total += size;
            if total > limits.max_total_size {
                return Err(malformed("documents exceed the total size limit"));
            }
            let file = create_new(&dir.join(&path)).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => malformed(format!("{path:?} appears twice")),
                _ => BundleError::Output(e),
            })?;
            let (n, sha) = if size < WRITE_THREAD_MIN {
                let mut w = HashingWriter::new(io::BufWriter::with_capacity(PIPE_CHUNK, &file));
                io::copy(&mut (&mut entry).take(size), &mut w)
                    .map_err(|e| malformed(format!("{path}: {e}")))?;
                let (buf, n, sha) = w.finish();
                buf.into_inner()
                    .map_err(|e| BundleError::Output(e.into_error()))?;
                (n, sha)
            } else {
                write_on_thread(&mut (&mut entry).take(size), &file, &path)?
            };
            file.sync_all().map_err(BundleError::Output)?;
            if n != size {
                return Err(malformed(format!("{path:?} is truncated")));
            }
            x.documents.push((path, n, sha));
        } else if path == payload::LETTER && trailer_pos == 0 && x.letter.is_none() {
            x.letter = Some(read_small(&mut entry, size, &path)?);
        } else if path == TRAILER[trailer_pos] {
            let bytes = read_small(&mut entry, size, &path)?;
            match trailer_pos {
                0 => x.manifest = bytes,
                1 => x.manifest_sig = bytes,
                2 => x.signer_pem = bytes,
                _ => x.sums = bytes,
            }
            trailer_pos += 1;
        } else {
            return Err(malformed(format!("unexpected entry {path:?}")));
        }
    }
    if trailer_pos != TRAILER.len() {
        return Err(malformed(format!("{} is missing", TRAILER[trailer_pos])));
    }
    // After the tar end marker only zero padding may follow; reading to the end
    // also makes age authenticate its final chunk.
    let mut rest = [0u8; 8192];
    loop {
        let n = plain
            .read(&mut rest)
            .map_err(|_| BundleError::DecryptionFailed)?;
        if n == 0 {
            break;
        }
        if rest[..n].iter().any(|b| *b != 0) {
            return Err(malformed("data after the end of the payload archive"));
        }
    }
    Ok(x)
}

/// Reads a bundle's envelope without any trust decision: for this node's own
/// outbox files (index rebuild, listings). Returns the envelope, its exact bytes
/// and the file size. The container is still checked strictly.
pub fn inspect(path: &Path) -> Result<(Envelope, Vec<u8>, u64), BundleError> {
    let file = open_regular_nofollow(path).map_err(BundleError::Io)?;
    let size = file.metadata().map_err(BundleError::Io)?.len();
    let c = Container::read(file, u64::MAX)?;
    let envelope: Envelope = serde_json::from_slice(&c.envelope)
        .map_err(|e| BundleError::EnvelopeMalformed(e.to_string()))?;
    if envelope.format != FORMAT {
        return Err(BundleError::UnsupportedFormat(envelope.format));
    }
    Ok((envelope, c.envelope, size))
}
