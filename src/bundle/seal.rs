//! Sealing: documents → tar → age → container, in one streaming pass.
//!
//! Memory stays flat whatever the document sizes: each document is read through
//! a 256 KiB buffer, hashed as it goes into the tar stream, encrypted in age's
//! 64 KiB chunks, hashed again as ciphertext and written into the container's
//! first entry. The manifest, its signature, the transfer letter and the envelope
//! are written once the digests are known. The output appears under its final
//! name only when complete and fsynced.

use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc;

use super::pipe::{pump, ChunkReceiver, ChunkSender, PIPE_CHUNK, PIPE_DEPTH};
use std::path::{Path, PathBuf};

use super::{
    payload, ApplicationInfo, ContainerWriter, Envelope, HashingReader, HashingWriter, Kind,
    Manifest, ManifestFile, PayloadInfo, SealError, ENVELOPE_ENTRY, FORMAT, MANIFEST_FORMAT,
    PAYLOAD_ENTRY, SIGNATURE_ENTRY, SIGNER_ENTRY,
};
use crate::application::check_safe_name;
use crate::config::Peer;
use crate::fsutil::{open_regular_nofollow, AtomicFile, EarlyWriteback};
use crate::pki::{EncryptionRecipient, SigningKey};
use crate::types::{BundleId, CaseRef, Sha256, Timestamp};

/// Documents at least this large are read and hashed on a thread of their
/// own (a third pipeline stage); smaller ones inline.
const READ_THREAD_MIN: u64 = 4 * PIPE_CHUNK as u64;

/// A document to seal.
#[derive(Debug, Clone)]
pub struct DocumentSource {
    /// Its name inside `documents/` (must be a safe name).
    pub name: String,
    /// Its role (`preservation-application`, `ruling`, …).
    pub role: String,
    /// Its MIME type.
    pub media_type: String,
    /// Where to read it.
    pub path: PathBuf,
}

/// Everything [`seal`] needs.
#[derive(Debug)]
pub struct SealInput<'a> {
    /// The new bundle's id.
    pub id: BundleId,
    /// What it carries.
    pub kind: Kind,
    /// Sealing time.
    pub created_at: Timestamp,
    /// This node's directory entry (the sender).
    pub sender: &'a Peer,
    /// This node's signing key (its certificate must name the sender).
    pub signer: &'a SigningKey,
    /// The recipient's directory entry.
    pub recipient: &'a Peer,
    /// Also encrypt to this archive key, if set.
    pub archive: Option<&'a EncryptionRecipient>,
    /// The case.
    pub case_ref: CaseRef,
    /// For follow-ups and receipts: the bundle answered.
    pub refers_to: Option<BundleId>,
    /// For applications: the particulars (a transfer letter is generated).
    pub application: Option<ApplicationInfo>,
    /// For follow-ups and receipts: the body.
    pub body: Option<serde_json::Value>,
    /// The documents, in order.
    pub documents: Vec<DocumentSource>,
}

/// A sealed bundle on disk.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Where it is.
    pub path: PathBuf,
    /// Its envelope.
    pub envelope: Envelope,
    /// The envelope's exact bytes (as signed).
    pub envelope_bytes: Vec<u8>,
    /// The bundle file's size.
    pub size: u64,
    /// The payload's `manifest.json`, exactly as signed (the sender keeps it:
    /// a proof of delivery lists the documents from it).
    pub manifest_bytes: Vec<u8>,
    /// Its signature (`manifest.sig`), by the same key as the envelope's.
    pub manifest_sig: [u8; 64],
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SealError {
    let context = context.into();
    move |source| SealError::Io { context, source }
}

fn tar_header(size: u64, mtime: Timestamp) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(u64::try_from(mtime.unix()).unwrap_or(0));
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Appends an in-memory file to the payload tar.
fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mtime: Timestamp,
) -> io::Result<()> {
    let mut h = tar_header(bytes.len() as u64, mtime);
    tar.append_data(&mut h, path, bytes)
}

/// Seals `input` into a new bundle file at `out` (which must not exist).
pub fn seal(input: &SealInput<'_>, out: &Path) -> Result<Sealed, SealError> {
    if input.signer.cert().agency() != &input.sender.id {
        return Err(SealError::SignerIsNotSender {
            cert: input.signer.cert().agency().clone(),
            sender: input.sender.id.clone(),
        });
    }
    for d in &input.documents {
        check_safe_name(&d.name).map_err(|why| SealError::UnsafeName(d.name.clone(), why))?;
    }
    // Open every document first (no links followed) so that a missing file fails
    // before any output exists.
    let mut files = Vec::with_capacity(input.documents.len());
    let mut total: u64 = 0;
    for d in &input.documents {
        let f = open_regular_nofollow(&d.path)
            .map_err(io_err(format!("cannot open {}", d.path.display())))?;
        let len = f
            .metadata()
            .map_err(io_err(format!("cannot stat {}", d.path.display())))?
            .len();
        total = total.saturating_add(len);
        files.push((f, len));
    }

    let mut out_file = AtomicFile::create(out).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            SealError::OutputExists(out.to_owned())
        } else {
            SealError::Io {
                context: format!("cannot create {}", out.display()),
                source: e,
            }
        }
    })?;
    // Zip64 only when the payload could exceed 4 GiB: tar adds ≤ 1.5 KiB per file,
    // age 16 bytes per 64 KiB chunk plus a header.
    let estimate = total + (files.len() as u64 + 8) * 1536 + total / 4096 + (1 << 20);
    let large = estimate >= u64::from(u32::MAX);

    let mut writeback = EarlyWriteback::new(out_file.file())
        .map_err(io_err(format!("cannot write {}", out.display())))?;
    let mtime = input.created_at;
    let mut container = ContainerWriter::new(out_file.file(), mtime, large)
        .map_err(io_err("cannot start the container"))?;
    container
        .start(PAYLOAD_ENTRY)
        .map_err(io_err("cannot write the payload"))?;

    // Two stages (three for a large document, see `write_payload`), joined
    // by bounded channels: this thread hashes the ciphertext, CRCs and writes
    // it (its writeback started early); the producer reads, hashes, tars and
    // encrypts. At most PIPE_DEPTH chunks per channel are in flight, so
    // memory stays flat.
    let (payload_info, (manifest_bytes, manifest_sig)) = std::thread::scope(
        |scope| -> Result<(PayloadInfo, SignedManifest), SealError> {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
            let producer = scope.spawn(move || -> Result<SignedManifest, SealError> {
                let (mut sink, manifest) = write_payload(input, files, ChunkSender::new(tx))?;
                sink.flush().map_err(io_err("cannot write the payload"))?;
                Ok(manifest)
            });
            let mut hashed = HashingWriter::new(container.writer());
            let mut write_error = None;
            for chunk in rx.iter() {
                if let Err(e) = hashed.write_all(&chunk) {
                    write_error = Some(e);
                    break;
                }
                writeback.progress(hashed.count());
            }
            if let Err(e) = writeback.finish() {
                write_error.get_or_insert(e);
            }
            // Dropping the receiver makes a still-running producer fail its next send.
            drop(rx);
            let produced = producer
                .join()
                .unwrap_or_else(|_| Err(SealError::Encrypt("the sealing thread panicked".into())));
            if let Some(e) = write_error {
                return Err(io_err("cannot write the payload")(e));
            }
            let manifest = produced?;
            let (_, length, sha256) = hashed.finish();
            Ok((PayloadInfo { length, sha256 }, manifest))
        },
    )?;

    let envelope = Envelope {
        format: FORMAT.to_owned(),
        id: input.id,
        kind: input.kind,
        sender: input.sender.id.clone(),
        recipient: input.recipient.id.clone(),
        case_ref: input.case_ref.clone(),
        created_at: input.created_at,
        refers_to: input.refers_to,
        signer_cert_sha256: input.signer.cert().summary().sha256,
        payload: payload_info,
    };
    let envelope_bytes = serde_json::to_vec_pretty(&envelope).expect("envelope serialises");
    let signature = input.signer.sign(&envelope_bytes);
    let w = |r: io::Result<()>| r.map_err(io_err("cannot write the bundle"));
    w(container.add(ENVELOPE_ENTRY, &envelope_bytes))?;
    w(container.add(SIGNATURE_ENTRY, &signature))?;
    w(container.add(SIGNER_ENTRY, input.signer.cert().to_pem().as_bytes()))?;
    w(container.finish().map(drop))?;

    let size = out_file
        .file()
        .metadata()
        .map_err(io_err("cannot stat the bundle"))?
        .len();
    let path = out_file.commit().map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            SealError::OutputExists(out.to_owned())
        } else {
            SealError::Io {
                context: format!("cannot publish {}", out.display()),
                source: e,
            }
        }
    })?;
    Ok(Sealed {
        path,
        envelope,
        envelope_bytes,
        size,
        manifest_bytes,
        manifest_sig,
    })
}

/// The signed manifest as the producer stage returns it: its exact bytes and
/// its signature.
type SignedManifest = (Vec<u8>, [u8; 64]);

/// The producer stage: documents → tar → age, into `sink`; returns the sink.
fn write_payload<W: Write>(
    input: &SealInput<'_>,
    files: Vec<(std::fs::File, u64)>,
    sink: W,
) -> Result<(W, SignedManifest), SealError> {
    let mtime = input.created_at;
    let mut recipients: Vec<&dyn age::Recipient> = vec![input.recipient.encryption_key.as_age()];
    if let Some(a) = input.archive {
        recipients.push(a.as_age());
    }
    let encryptor = age::Encryptor::with_recipients(recipients.into_iter())
        .map_err(|e| SealError::Encrypt(e.to_string()))?;
    let age_out = encryptor
        .wrap_output(sink)
        .map_err(io_err("cannot write the payload"))?;
    let mut tar = tar::Builder::new(age_out);

    let mut documents = Vec::with_capacity(files.len());
    for (d, (file, len)) in input.documents.iter().zip(files) {
        let path = format!("{}{}", payload::DOCUMENTS_DIR, d.name);
        let mut h = tar_header(len, mtime);
        let sealing = || format!("cannot seal {}", d.path.display());
        let (n, sha256) = if len < READ_THREAD_MIN {
            let mut src = HashingReader::new(BufReader::with_capacity(PIPE_CHUNK, file).take(len));
            tar.append_data(&mut h, &path, &mut src)
                .map_err(io_err(sealing()))?;
            src.finish()
        } else {
            // A third stage for a large document: another thread reads and
            // hashes it, so that this one only tars and encrypts.
            std::thread::scope(|scope| -> Result<(u64, Sha256), SealError> {
                let (tx, rx) = mpsc::sync_channel(PIPE_DEPTH);
                let reader = scope.spawn(move || -> io::Result<(u64, Sha256)> {
                    let mut src = HashingReader::new(file.take(len));
                    pump(&mut src, tx)?;
                    Ok(src.finish())
                });
                let appended = tar.append_data(&mut h, &path, ChunkReceiver::new(rx));
                let read = reader
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")));
                appended.map_err(io_err(sealing()))?;
                read.map_err(io_err(format!("cannot read {}", d.path.display())))
            })?
        };
        if n != len {
            return Err(SealError::DocumentChanged(d.name.clone()));
        }
        documents.push(ManifestFile {
            path,
            role: d.role.clone(),
            media_type: d.media_type.clone(),
            size: len,
            sha256,
        });
    }

    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        bundle_id: input.id,
        kind: input.kind,
        sender: input.sender.id.clone(),
        recipient: input.recipient.id.clone(),
        case_ref: input.case_ref.clone(),
        created_at: input.created_at,
        refers_to: input.refers_to,
        application: input.application.clone(),
        body: input.body.clone(),
        documents,
        transfer_letter: None,
    };
    if let Some(app) = &input.application {
        let text = super::transfer_letter(&manifest, app, input.sender, input.recipient);
        append_bytes(&mut tar, payload::LETTER, text.as_bytes(), mtime)
            .map_err(io_err("cannot write the transfer letter"))?;
        manifest.transfer_letter = Some(ManifestFile {
            path: payload::LETTER.to_owned(),
            role: "transfer-letter".to_owned(),
            media_type: "text/plain; charset=utf-8".to_owned(),
            size: text.len() as u64,
            sha256: Sha256::of(text.as_bytes()),
        });
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    let manifest_sig = input.signer.sign(&manifest_bytes);
    let w = |r: io::Result<()>| r.map_err(io_err("cannot write the payload"));
    w(append_bytes(
        &mut tar,
        payload::MANIFEST,
        &manifest_bytes,
        mtime,
    ))?;
    w(append_bytes(
        &mut tar,
        payload::MANIFEST_SIG,
        &manifest_sig,
        mtime,
    ))?;
    w(append_bytes(
        &mut tar,
        payload::SIGNER,
        input.signer.cert().to_pem().as_bytes(),
        mtime,
    ))?;
    w(append_bytes(
        &mut tar,
        payload::SHA256SUMS,
        manifest.sha256sums().as_bytes(),
        mtime,
    ))?;
    let age_out = tar
        .into_inner()
        .map_err(io_err("cannot finish the payload"))?;
    let sink = age_out
        .finish()
        .map_err(io_err("cannot finish the encryption"))?;
    Ok((sink, (manifest_bytes, manifest_sig)))
}
