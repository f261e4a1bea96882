//! The outer zip container: writing it canonically and reading it strictly.
//!
//! Canonical means: exactly the four entries of [`ENTRY_ORDER`], in that order,
//! stored (method 0), no encryption, no archive comment, entries contiguous from
//! offset 0, every local file header agreeing with its central-directory record,
//! the central directory right after the last entry and the end record at the
//! very end of the file. Every deviation is refused with its own error before
//! any cryptography runs.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{
    BundleError, ENVELOPE_ENTRY, MAX_ENVELOPE_BYTES, MAX_SIGNER_BYTES, PAYLOAD_ENTRY,
    SIGNATURE_ENTRY, SIGNER_ENTRY,
};
use crate::types::Timestamp;
use crate::zipcheck::{self, ZipCheckError};

/// The entries of a version-1 bundle, in container order.
pub const ENTRY_ORDER: [&str; 4] = [PAYLOAD_ENTRY, ENVELOPE_ENTRY, SIGNATURE_ENTRY, SIGNER_ENTRY];

/// Writes container entries with the canonical options.
#[derive(Debug)]
pub struct ContainerWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
    options: SimpleFileOptions,
}

impl<W: Write + Seek> ContainerWriter<W> {
    /// Starts a container; `created_at` becomes every entry's modification time.
    /// `large` selects zip64 for the payload (needed above 4 GiB).
    pub fn new(out: W, created_at: Timestamp, large: bool) -> io::Result<Self> {
        let t = created_at.datetime();
        let dos = zip::DateTime::from_date_and_time(
            u16::try_from(t.year()).unwrap_or(1980).clamp(1980, 2107),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(dos)
            .unix_permissions(0o644)
            .large_file(large);
        Ok(Self {
            zip: ZipWriter::new(out),
            options,
        })
    }

    /// Starts an entry; write its bytes to [`ContainerWriter::writer`].
    pub fn start(&mut self, name: &str) -> io::Result<()> {
        let opts = if name == PAYLOAD_ENTRY {
            self.options
        } else {
            self.options.large_file(false)
        };
        self.zip.start_file(name, opts).map_err(zip_io)
    }

    /// The current entry's writer.
    pub fn writer(&mut self) -> &mut ZipWriter<W> {
        &mut self.zip
    }

    /// Adds a whole small entry.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.start(name)?;
        self.zip.write_all(bytes)
    }

    /// Writes the central directory; returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.zip.finish().map_err(zip_io)
    }
}

fn zip_io(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Where the payload lies in the file, and the small entries' bytes.
#[derive(Debug)]
pub(super) struct Container {
    pub file: File,
    pub payload_offset: u64,
    pub payload_len: u64,
    pub payload_crc: u32,
    pub envelope: Vec<u8>,
    pub signature: Vec<u8>,
    pub signer_pem: Vec<u8>,
}

fn unsafe_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.starts_with('/')
        || name.starts_with('\\')
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
        || name.split(['/', '\\']).any(|c| c == "..")
        || name.contains('\0')
}

impl Container {
    /// Opens and strictly checks the container structure.
    pub fn read(file: File, max_size: u64) -> Result<Self, BundleError> {
        let size = file.metadata().map_err(BundleError::Io)?.len();
        if size > max_size {
            return Err(BundleError::TooLarge {
                size,
                limit: max_size,
            });
        }
        // The end-of-central-directory record must be the last 22 bytes, with no
        // archive comment: anything else means bytes were appended.
        if size < 22 {
            return Err(BundleError::ContainerInvalid(
                "too short to be a zip file".into(),
            ));
        }
        let mut tail = [0u8; 22];
        (&file)
            .seek(SeekFrom::Start(size - 22))
            .map_err(BundleError::Io)?;
        (&file).read_exact(&mut tail).map_err(BundleError::Io)?;
        let has_eocd_at_end = tail[..4] == *b"PK\x05\x06" && tail[20..22] == [0, 0];
        (&file).rewind().map_err(BundleError::Io)?;

        // The archive reads through a shared reference, so that the local
        // headers can be read through another one (`zipcheck`).
        let mut zip =
            ZipArchive::new(&file).map_err(|e| BundleError::ContainerInvalid(e.to_string()))?;
        if !has_eocd_at_end {
            return Err(BundleError::TrailingData);
        }
        if zip.has_duplicate_names() {
            return Err(BundleError::DuplicateEntry);
        }
        if zip.offset() != 0 {
            return Err(BundleError::ContainerLayout(
                "bytes before the first entry".into(),
            ));
        }
        if !zip.comment().is_empty() {
            return Err(BundleError::ContainerLayout(
                "the archive has a comment".into(),
            ));
        }
        struct Loc {
            name: String,
            header: u64,
            data: u64,
            len: u64,
            crc: u32,
        }
        let mut locs = Vec::new();
        for i in 0..zip.len() {
            let f = zip
                .by_index_raw(i)
                .map_err(|e| BundleError::ContainerInvalid(e.to_string()))?;
            let name = String::from_utf8_lossy(f.name_raw()).into_owned();
            if unsafe_name(&name) {
                return Err(BundleError::UnsafeEntryName(name));
            }
            if f.is_symlink() {
                return Err(BundleError::SymlinkEntry(name));
            }
            if f.is_dir() || !ENTRY_ORDER.contains(&name.as_str()) {
                return Err(BundleError::UnexpectedEntry(name));
            }
            if f.compression() != CompressionMethod::Stored || f.encrypted() {
                return Err(BundleError::EntryNotStored(name));
            }
            if f.compressed_size() != f.size() {
                return Err(BundleError::ContainerLayout(format!(
                    "entry {name:?} has inconsistent sizes"
                )));
            }
            let limit = match name.as_str() {
                ENVELOPE_ENTRY => MAX_ENVELOPE_BYTES,
                SIGNER_ENTRY => MAX_SIGNER_BYTES,
                SIGNATURE_ENTRY => 64,
                _ => max_size,
            };
            if f.size() > limit {
                return Err(BundleError::EntryTooLarge {
                    name,
                    size: f.size(),
                    limit,
                });
            }
            let data = f.data_start().ok_or_else(|| {
                BundleError::ContainerInvalid(format!("entry {name:?} has no data offset"))
            })?;
            locs.push(Loc {
                name,
                header: f.header_start(),
                data,
                len: f.size(),
                crc: f.crc32(),
            });
        }
        for want in ENTRY_ORDER {
            if !locs.iter().any(|l| l.name == want) {
                return Err(BundleError::MissingEntry(want));
            }
        }
        let order: Vec<&str> = locs.iter().map(|l| l.name.as_str()).collect();
        if order != ENTRY_ORDER {
            return Err(BundleError::ContainerLayout(format!(
                "entries are in the order {order:?}, expected {ENTRY_ORDER:?}"
            )));
        }
        let mut expect = 0;
        for l in &locs {
            if l.header != expect || l.data < l.header {
                return Err(BundleError::ContainerLayout(format!(
                    "entry {:?} does not follow the previous one directly (gap or overlap)",
                    l.name
                )));
            }
            expect = l.data + l.len;
        }
        // What the central directory says must be what the local headers say:
        // a streaming reader (or another tool) believes the local headers.
        zipcheck::check_local_headers(&zip, &mut &file).map_err(|e| match e {
            ZipCheckError::Io(e) => BundleError::Io(e),
            other => BundleError::LocalHeaderMismatch(other),
        })?;
        if expect != zip.central_directory_start() {
            return Err(BundleError::ContainerLayout(
                "bytes between the last entry and the central directory".into(),
            ));
        }

        let mut small = |idx: usize| -> Result<Vec<u8>, BundleError> {
            let mut f = zip
                .by_index(idx)
                .map_err(|e| BundleError::ContainerInvalid(e.to_string()))?;
            let mut buf = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut buf).map_err(|e| {
                BundleError::ContainerInvalid(format!("entry {}: {e}", ENTRY_ORDER[idx]))
            })?;
            Ok(buf)
        };
        let envelope = small(1)?;
        let signature = small(2)?;
        let signer_pem = small(3)?;
        drop(zip);
        let payload = &locs[0];
        Ok(Self {
            payload_offset: payload.data,
            payload_len: payload.len,
            payload_crc: payload.crc,
            envelope,
            signature,
            signer_pem,
            file,
        })
    }

    /// A reader over exactly the payload bytes.
    pub fn payload_reader(&mut self) -> Result<PayloadReader<'_>, BundleError> {
        self.file
            .seek(SeekFrom::Start(self.payload_offset))
            .map_err(BundleError::Io)?;
        Ok(PayloadReader {
            inner: (&mut self.file).take(self.payload_len),
            crc: crc32fast::Hasher::new(),
            expected_crc: self.payload_crc,
        })
    }
}

/// Reads the payload entry and computes its zip CRC-32 on the way. The CRC is
/// checked by the caller *after* the SHA-256 (see [`PayloadReader::check_crc`]),
/// so that `verify` and `open` name the same, more telling fault.
#[derive(Debug)]
pub(super) struct PayloadReader<'a> {
    inner: io::Take<&'a mut File>,
    crc: crc32fast::Hasher,
    expected_crc: u32,
}

impl PayloadReader<'_> {
    /// After the whole payload was read: does the zip CRC-32 match?
    pub fn check_crc(&self) -> Result<(), BundleError> {
        if self.crc.clone().finalize() == self.expected_crc {
            Ok(())
        } else {
            Err(BundleError::ContainerInvalid(
                "payload.age fails its zip CRC-32".into(),
            ))
        }
    }
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A container with these entry bytes, as `ContainerWriter` writes it.
    fn written(large: bool) -> Vec<u8> {
        let created: Timestamp = "2026-11-23T08:00:00Z".parse().expect("time");
        let mut w =
            ContainerWriter::new(io::Cursor::new(Vec::new()), created, large).expect("writer");
        w.add(PAYLOAD_ENTRY, &[0xA5; 3000]).expect("payload");
        w.add(ENVELOPE_ENTRY, b"{\"format\": \"sealpost-bundle/1\"}")
            .expect("envelope");
        w.add(SIGNATURE_ENTRY, &[7; 64]).expect("signature");
        w.add(SIGNER_ENTRY, b"-----BEGIN CERTIFICATE-----\n")
            .expect("signer");
        w.finish().expect("finish").into_inner()
    }

    fn read(bytes: &[u8]) -> Result<Container, BundleError> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        Container::read(f, u64::MAX)
    }

    #[test]
    fn local_header_mismatch_check_passes_the_writers_zip64_container() {
        let bytes = written(true);
        // The payload really is a zip64 entry: sizes 0xFFFFFFFF in its local header.
        assert_eq!(bytes[18..26], [0xFF; 8], "payload.age is written as zip64");
        let c = read(&bytes).unwrap_or_else(|e| panic!("refused [{}] {e}", e.code()));
        assert_eq!(c.payload_len, 3000);
        assert_eq!(c.signature, [7; 64]);

        let small = written(false);
        assert_eq!(small[18..22], 3000u32.to_le_bytes(), "plain sizes");
        read(&small).unwrap_or_else(|e| panic!("refused [{}] {e}", e.code()));
    }

    #[test]
    fn local_header_mismatch_is_refused_with_its_code() {
        for large in [false, true] {
            let mut bytes = written(large);
            // The local header's CRC-32 of payload.age (offset 14), changed
            // there only: the central directory still has the right one.
            bytes[14] ^= 0x01;
            let e = read(&bytes).expect_err("refused");
            assert_eq!(e.code(), "local-header-mismatch", "large {large}: {e}");
            assert!(
                e.to_string().contains("payload.age") && e.to_string().contains("CRC-32"),
                "{e}"
            );
        }
    }
}
