//! Zip structure checks that a zip reader does not make by itself.
//!
//! A zip file describes every entry twice: in the *local file header* in front
//! of the entry's data, and in the *central directory* at the end. Readers
//! (the `zip` crate included) trust the central directory; streaming tools such
//! as `unzip -` or a court's scanner read the local headers. A file whose two
//! descriptions disagree therefore shows different content to different tools,
//! which is exactly what a signed, archived format must rule out.
//!
//! [`check_local_headers`] compares, for every central-directory entry, the
//! local file header at the entry's header offset with the central record:
//! signature, file name bytes, compression method, general-purpose flags,
//! CRC-32 and both sizes (zip64 sizes included), and — for an entry written
//! with a data descriptor (flag bit 3) — the data descriptor after the data
//! instead of the local header's CRC and sizes. [`prefix_len`] gives the number
//! of bytes in front of the first entry (a self-extractor stub, or anything
//! prepended).
//!
//! The module knows nothing about sealpost: the bundle reader turns a
//! disagreement into the code `local-header-mismatch`, the intake can turn it
//! into a clerk-readable reason for an uploaded zip file.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use zip::ZipArchive;

/// General-purpose flag bit 0: the entry is encrypted.
pub const FLAG_ENCRYPTED: u16 = 1 << 0;
/// General-purpose flag bit 3: CRC-32 and sizes follow the data in a data descriptor.
pub const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// General-purpose flag bit 11: the name (and comment) are UTF-8.
pub const FLAG_UTF8: u16 = 1 << 11;

const LOCAL_SIG: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_SIG: [u8; 4] = *b"PK\x01\x02";
const DESCRIPTOR_SIG: [u8; 4] = *b"PK\x07\x08";
const LOCAL_FIXED: usize = 30;
const CENTRAL_FIXED: usize = 46;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const SIZE_SENTINEL: u32 = 0xFFFF_FFFF;

/// A field of a local file header (or of the data descriptor that stands in
/// for it) that can disagree with the central directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderField {
    /// The local file header signature `PK\x03\x04`.
    Signature,
    /// The file name bytes.
    Name,
    /// The compression method.
    Method,
    /// The general-purpose bit flags.
    Flags,
    /// The CRC-32 of the uncompressed data.
    Crc32,
    /// The compressed size.
    CompressedSize,
    /// The uncompressed size.
    UncompressedSize,
    /// The CRC-32 in the data descriptor (flag bit 3).
    DescriptorCrc32,
    /// The compressed size in the data descriptor.
    DescriptorCompressedSize,
    /// The uncompressed size in the data descriptor.
    DescriptorUncompressedSize,
}

impl HeaderField {
    /// The field's name in words.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderField::Signature => "signature",
            HeaderField::Name => "file name",
            HeaderField::Method => "compression method",
            HeaderField::Flags => "general-purpose flags",
            HeaderField::Crc32 => "CRC-32",
            HeaderField::CompressedSize => "compressed size",
            HeaderField::UncompressedSize => "uncompressed size",
            HeaderField::DescriptorCrc32 => "data descriptor CRC-32",
            HeaderField::DescriptorCompressedSize => "data descriptor compressed size",
            HeaderField::DescriptorUncompressedSize => "data descriptor uncompressed size",
        }
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of a [`HeaderField`] on one side of a disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Raw bytes (signature, file name); shown as a quoted string.
    Bytes(Vec<u8>),
    /// A count or method number; shown in decimal.
    Number(u64),
    /// Bit flags or a checksum; shown as `0x` and 8 hex digits.
    Hex(u32),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            FieldValue::Number(n) => write!(f, "{n}"),
            FieldValue::Hex(n) => write!(f, "{n:#010x}"),
        }
    }
}

/// Why a zip file failed [`check_local_headers`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipCheckError {
    /// The file could not be read (local I/O, not a fault of the file).
    #[error("cannot read the zip file: {0}")]
    Io(#[source] io::Error),
    /// A local header field disagrees with the central directory.
    #[error("entry {entry:?}: the local header's {field} is {local}, the central directory's is {central}")]
    Mismatch {
        /// The entry, as named by the central directory (lossy UTF-8).
        entry: String,
        /// The first field that differs.
        field: HeaderField,
        /// Its value in the local header (or data descriptor).
        local: FieldValue,
        /// Its value in the central directory.
        central: FieldValue,
    },
    /// The local header, or the data descriptor after the data, runs past the
    /// end of the file.
    #[error("entry {entry:?}: its {what} runs past the end of the file")]
    Truncated {
        /// The entry, as named by the central directory.
        entry: String,
        /// `"local header"`, `"data descriptor"` or `"central directory record"`.
        what: &'static str,
    },
    /// A record cannot be interpreted (e.g. zip64 sizes without their extra field).
    #[error("entry {entry:?}: {why}")]
    Malformed {
        /// The entry, as named by the central directory.
        entry: String,
        /// What is wrong, in words.
        why: String,
    },
}

/// The fields of one header (local or central) that are compared.
#[derive(Debug)]
struct Header {
    name: Vec<u8>,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    /// The local header carries a zip64 extended-information field.
    zip64: bool,
    /// Where the entry's data starts (meaningful for a local header).
    data_start: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// The data of the zip64 extended-information extra field (id 0x0001), if any.
fn zip64_field(extra: &[u8]) -> Option<&[u8]> {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16_at(rest, 0);
        let len = usize::from(u16_at(rest, 2));
        let data = rest.get(4..4 + len)?;
        if id == ZIP64_EXTRA_ID {
            return Some(data);
        }
        rest = &rest[4 + len..];
    }
    None
}

/// Replaces 0xFFFFFFFF sizes by their zip64 values: the uncompressed size
/// comes first in the field, then the compressed size (APPNOTE 4.5.3).
fn resolve_zip64(
    uncompressed: u32,
    compressed: u32,
    extra: &[u8],
    side: &str,
) -> Result<(u64, u64, bool), String> {
    let field = zip64_field(extra);
    let mut pos = 0;
    let mut next = |what: &str| -> Result<u64, String> {
        let data = field.ok_or_else(|| {
            format!(
                "the {side} {what} is 0xFFFFFFFF but there is no zip64 extended-information field"
            )
        })?;
        if data.len() < pos + 8 {
            return Err(format!(
                "the {side} zip64 extended-information field is too short for the {what}"
            ));
        }
        let v = u64_at(data, pos);
        pos += 8;
        Ok(v)
    };
    let u = if uncompressed == SIZE_SENTINEL {
        next("uncompressed size")?
    } else {
        u64::from(uncompressed)
    };
    let c = if compressed == SIZE_SENTINEL {
        next("compressed size")?
    } else {
        u64::from(compressed)
    };
    Ok((u, c, field.is_some()))
}

/// Reads exactly `buf.len()` bytes at `at`; `Ok(false)` if the file ends first.
fn read_at<R: Read + Seek>(r: &mut R, at: u64, buf: &mut [u8]) -> Result<bool, ZipCheckError> {
    r.seek(SeekFrom::Start(at)).map_err(ZipCheckError::Io)?;
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(ZipCheckError::Io(e)),
    }
}

/// Reads up to `buf.len()` bytes at `at`; returns how many were read.
fn read_up_to<R: Read + Seek>(r: &mut R, at: u64, buf: &mut [u8]) -> Result<usize, ZipCheckError> {
    r.seek(SeekFrom::Start(at)).map_err(ZipCheckError::Io)?;
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ZipCheckError::Io(e)),
        }
    }
    Ok(filled)
}

/// Where the compared fields sit in a header's fixed part (APPNOTE 4.3.7 for
/// the local header, 4.3.12 for the central record).
struct Layout {
    /// Size of the fixed part (name and extra field follow it).
    fixed: usize,
    side: &'static str,
    what: &'static str,
    flags: usize,
    method: usize,
    crc32: usize,
    compressed: usize,
    uncompressed: usize,
    name_len: usize,
    extra_len: usize,
}

const CENTRAL: Layout = Layout {
    fixed: CENTRAL_FIXED,
    side: "central",
    what: "central directory record",
    flags: 8,
    method: 10,
    crc32: 16,
    compressed: 20,
    uncompressed: 24,
    name_len: 28,
    extra_len: 30,
};

const LOCAL: Layout = Layout {
    fixed: LOCAL_FIXED,
    side: "local",
    what: "local header",
    flags: 6,
    method: 8,
    crc32: 14,
    compressed: 18,
    uncompressed: 22,
    name_len: 26,
    extra_len: 28,
};

/// Reads the name and extra field that follow a header's fixed part at `at`,
/// and returns the compared fields (zip64 sizes resolved).
fn parse_header<R: Read + Seek>(
    r: &mut R,
    at: u64,
    fixed: &[u8],
    layout: &Layout,
    entry: &str,
) -> Result<Header, ZipCheckError> {
    let name_len = usize::from(u16_at(fixed, layout.name_len));
    let extra_len = usize::from(u16_at(fixed, layout.extra_len));
    let mut var = vec![0u8; name_len + extra_len];
    if !read_at(r, at + layout.fixed as u64, &mut var)? {
        return Err(ZipCheckError::Truncated {
            entry: entry.to_owned(),
            what: layout.what,
        });
    }
    let (uncompressed, compressed, zip64) = resolve_zip64(
        u32_at(fixed, layout.uncompressed),
        u32_at(fixed, layout.compressed),
        &var[name_len..],
        layout.side,
    )
    .map_err(|why| ZipCheckError::Malformed {
        entry: entry.to_owned(),
        why,
    })?;
    var.truncate(name_len);
    Ok(Header {
        name: var,
        flags: u16_at(fixed, layout.flags),
        method: u16_at(fixed, layout.method),
        crc32: u32_at(fixed, layout.crc32),
        compressed,
        uncompressed,
        zip64,
        data_start: at + (layout.fixed + name_len + extra_len) as u64,
    })
}

fn read_central<R: Read + Seek>(r: &mut R, at: u64, entry: &str) -> Result<Header, ZipCheckError> {
    let mut fixed = [0u8; CENTRAL_FIXED];
    if !read_at(r, at, &mut fixed)? {
        return Err(ZipCheckError::Truncated {
            entry: entry.to_owned(),
            what: CENTRAL.what,
        });
    }
    if fixed[..4] != CENTRAL_SIG {
        return Err(ZipCheckError::Malformed {
            entry: entry.to_owned(),
            why: format!("no central directory record at offset {at}"),
        });
    }
    parse_header(r, at, &fixed, &CENTRAL, entry)
}

/// Reads the local header at `at`. A wrong signature is reported as a
/// [`HeaderField::Signature`] mismatch.
fn read_local<R: Read + Seek>(r: &mut R, at: u64, entry: &str) -> Result<Header, ZipCheckError> {
    let mut fixed = [0u8; LOCAL_FIXED];
    let got = read_up_to(r, at, &mut fixed)?;
    if got < 4 || fixed[..4] != LOCAL_SIG {
        return Err(ZipCheckError::Mismatch {
            entry: entry.to_owned(),
            field: HeaderField::Signature,
            local: FieldValue::Bytes(fixed[..got.min(4)].to_vec()),
            central: FieldValue::Bytes(LOCAL_SIG.to_vec()),
        });
    }
    if got < LOCAL_FIXED {
        return Err(ZipCheckError::Truncated {
            entry: entry.to_owned(),
            what: LOCAL.what,
        });
    }
    parse_header(r, at, &fixed, &LOCAL, entry)
}

/// Compares the data descriptor after the entry's data with the central record.
fn check_descriptor<R: Read + Seek>(
    r: &mut R,
    local: &Header,
    central: &Header,
    entry: &str,
) -> Result<(), ZipCheckError> {
    let at = local
        .data_start
        .checked_add(central.compressed)
        .ok_or_else(|| ZipCheckError::Malformed {
            entry: entry.to_owned(),
            why: "the data descriptor's offset overflows".into(),
        })?;
    let width = if local.zip64 { 8 } else { 4 };
    let mut buf = [0u8; 4 + 4 + 8 + 8];
    let got = read_up_to(r, at, &mut buf)?;
    let buf = &buf[..got];
    // The signature is optional, and a CRC-32 may happen to equal it: try the
    // reading with the signature first, then the one without.
    let mut starts = Vec::with_capacity(2);
    if buf.len() >= 4 && buf[..4] == DESCRIPTOR_SIG {
        starts.push(4);
    }
    starts.push(0);
    let mut first_problem = None;
    for start in starts {
        let problem = match buf.get(start..start + 4 + 2 * width) {
            None => ZipCheckError::Truncated {
                entry: entry.to_owned(),
                what: "data descriptor",
            },
            Some(d) => {
                let size = |at: usize| {
                    if width == 8 {
                        u64_at(d, at)
                    } else {
                        u64::from(u32_at(d, at))
                    }
                };
                let (crc, compressed, uncompressed) = (u32_at(d, 0), size(4), size(4 + width));
                let mismatch = |field, local, central| ZipCheckError::Mismatch {
                    entry: entry.to_owned(),
                    field,
                    local,
                    central,
                };
                if crc != central.crc32 {
                    mismatch(
                        HeaderField::DescriptorCrc32,
                        FieldValue::Hex(crc),
                        FieldValue::Hex(central.crc32),
                    )
                } else if compressed != central.compressed {
                    mismatch(
                        HeaderField::DescriptorCompressedSize,
                        FieldValue::Number(compressed),
                        FieldValue::Number(central.compressed),
                    )
                } else if uncompressed != central.uncompressed {
                    mismatch(
                        HeaderField::DescriptorUncompressedSize,
                        FieldValue::Number(uncompressed),
                        FieldValue::Number(central.uncompressed),
                    )
                } else {
                    return Ok(());
                }
            }
        };
        first_problem.get_or_insert(problem);
    }
    Err(first_problem.unwrap_or_else(|| ZipCheckError::Truncated {
        entry: entry.to_owned(),
        what: "data descriptor",
    }))
}

/// Checks that every central-directory entry of `archive` agrees with its local
/// file header, reading the local headers (and data descriptors) through
/// `reader`, which must read the same bytes the archive was opened on (for a
/// file: a `&File`, or a `try_clone` of it).
///
/// For each entry, in central-directory order, the local header at the entry's
/// header offset must have the signature `PK\x03\x04` and the same file name
/// bytes, compression method and general-purpose flags as the central record.
/// Its CRC-32, compressed and uncompressed sizes (taken from the zip64
/// extended-information field where the header holds 0xFFFFFFFF) must equal the
/// central ones — unless flag bit 3 (data descriptor) is set, in which case the
/// local values may also be zero and the data descriptor after the data
/// (optional signature `PK\x07\x08`, CRC-32, then both sizes, 8 bytes each when
/// the local header has a zip64 field) must equal the central values. The first
/// disagreement is returned.
pub fn check_local_headers<A, R>(
    archive: &ZipArchive<A>,
    reader: &mut R,
) -> Result<(), ZipCheckError>
where
    A: Read + Seek,
    R: Read + Seek,
{
    for i in 0..archive.len() {
        let (header_start, central_start, entry) = {
            let e = archive
                .by_index_data(i)
                .map_err(|e| ZipCheckError::Malformed {
                    entry: format!("#{i}"),
                    why: e.to_string(),
                })?;
            (
                e.header_start(),
                e.central_header_start(),
                String::from_utf8_lossy(e.name_raw()).into_owned(),
            )
        };
        let central = read_central(reader, central_start, &entry)?;
        // Name the entry by its raw central-directory name from here on.
        let entry = String::from_utf8_lossy(&central.name).into_owned();
        let local = read_local(reader, header_start, &entry)?;
        check_entry(reader, &local, &central, &entry)?;
    }
    Ok(())
}

fn check_entry<R: Read + Seek>(
    reader: &mut R,
    local: &Header,
    central: &Header,
    entry: &str,
) -> Result<(), ZipCheckError> {
    let mismatch = |field, local, central| {
        Err(ZipCheckError::Mismatch {
            entry: entry.to_owned(),
            field,
            local,
            central,
        })
    };
    if local.name != central.name {
        return mismatch(
            HeaderField::Name,
            FieldValue::Bytes(local.name.clone()),
            FieldValue::Bytes(central.name.clone()),
        );
    }
    if local.method != central.method {
        return mismatch(
            HeaderField::Method,
            FieldValue::Number(local.method.into()),
            FieldValue::Number(central.method.into()),
        );
    }
    if local.flags != central.flags {
        return mismatch(
            HeaderField::Flags,
            FieldValue::Hex(local.flags.into()),
            FieldValue::Hex(central.flags.into()),
        );
    }
    let descriptor = local.flags & FLAG_DATA_DESCRIPTOR != 0;
    // With a data descriptor the local values may be zero (written before the
    // data was known); when they are not, they must still be right.
    let agrees = |l: u64, c: u64| l == c || (descriptor && l == 0);
    if !agrees(local.crc32.into(), central.crc32.into()) {
        return mismatch(
            HeaderField::Crc32,
            FieldValue::Hex(local.crc32),
            FieldValue::Hex(central.crc32),
        );
    }
    if !agrees(local.compressed, central.compressed) {
        return mismatch(
            HeaderField::CompressedSize,
            FieldValue::Number(local.compressed),
            FieldValue::Number(central.compressed),
        );
    }
    if !agrees(local.uncompressed, central.uncompressed) {
        return mismatch(
            HeaderField::UncompressedSize,
            FieldValue::Number(local.uncompressed),
            FieldValue::Number(central.uncompressed),
        );
    }
    if descriptor {
        check_descriptor(reader, local, central, entry)?;
    }
    Ok(())
}

/// The number of bytes in front of the archive's first entry (its first local
/// header; for an archive without entries, its central directory). Zero for an
/// ordinary zip file; a self-extractor stub, or anything prepended to the file,
/// makes it positive — whether or not the writer adjusted the offsets (so it
/// can exceed [`ZipArchive::offset`], which counts only an unadjusted prefix).
pub fn prefix_len<A: Read + Seek>(archive: &ZipArchive<A>) -> u64 {
    (0..archive.len())
        .filter_map(|i| archive.by_index_data(i).ok().map(|e| e.header_start()))
        .min()
        .unwrap_or_else(|| archive.central_directory_start())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// One entry of a hand-built zip. `local` overrides what the local header
    /// says; by default it agrees with the central record.
    #[derive(Clone)]
    struct Entry {
        name: Vec<u8>,
        data: Vec<u8>,
        method: u16,
        flags: u16,
        local: Local,
        /// Write both sizes as 0xFFFFFFFF with a zip64 field, in both headers.
        zip64: bool,
        /// Data descriptor after the data: (with signature, crc, compressed, uncompressed).
        descriptor: Option<(bool, u32, u64, u64)>,
    }

    #[derive(Clone, Default)]
    struct Local {
        name: Option<Vec<u8>>,
        method: Option<u16>,
        flags: Option<u16>,
        crc32: Option<u32>,
        compressed: Option<u64>,
        uncompressed: Option<u64>,
        signature: Option<[u8; 4]>,
    }

    fn entry(name: &str, data: &[u8]) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            method: 0,
            flags: FLAG_UTF8,
            local: Local::default(),
            zip64: false,
            descriptor: None,
        }
    }

    fn zip64_extra(uncompressed: u64, compressed: u64) -> Vec<u8> {
        let mut x = Vec::new();
        x.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
        x.extend_from_slice(&16u16.to_le_bytes());
        x.extend_from_slice(&uncompressed.to_le_bytes());
        x.extend_from_slice(&compressed.to_le_bytes());
        x
    }

    /// Sizes as the header fields and the extra field.
    fn sizes(zip64: bool, uncompressed: u64, compressed: u64) -> (u32, u32, Vec<u8>) {
        if zip64 {
            (
                SIZE_SENTINEL,
                SIZE_SENTINEL,
                zip64_extra(uncompressed, compressed),
            )
        } else {
            (
                u32::try_from(uncompressed).expect("small"),
                u32::try_from(compressed).expect("small"),
                Vec::new(),
            )
        }
    }

    fn build(prefix: &[u8], entries: &[Entry]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        let mut central = Vec::new();
        for e in entries {
            let offset = u32::try_from(out.len() - prefix.len()).expect("small");
            let crc = crc32fast::hash(&e.data);
            let len = e.data.len() as u64;
            let l = &e.local;
            let lname = l.name.clone().unwrap_or_else(|| e.name.clone());
            let (lu, lc, lextra) = sizes(
                e.zip64,
                l.uncompressed.unwrap_or(len),
                l.compressed.unwrap_or(len),
            );
            out.extend_from_slice(&l.signature.unwrap_or(LOCAL_SIG));
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&l.flags.unwrap_or(e.flags).to_le_bytes());
            out.extend_from_slice(&l.method.unwrap_or(e.method).to_le_bytes());
            out.extend_from_slice(&[0; 4]); // time, date
            out.extend_from_slice(&l.crc32.unwrap_or(crc).to_le_bytes());
            out.extend_from_slice(&lc.to_le_bytes());
            out.extend_from_slice(&lu.to_le_bytes());
            out.extend_from_slice(&(lname.len() as u16).to_le_bytes());
            out.extend_from_slice(&(lextra.len() as u16).to_le_bytes());
            out.extend_from_slice(&lname);
            out.extend_from_slice(&lextra);
            out.extend_from_slice(&e.data);
            if let Some((sig, crc, c, u)) = e.descriptor {
                if sig {
                    out.extend_from_slice(&DESCRIPTOR_SIG);
                }
                out.extend_from_slice(&crc.to_le_bytes());
                if e.zip64 {
                    out.extend_from_slice(&c.to_le_bytes());
                    out.extend_from_slice(&u.to_le_bytes());
                } else {
                    out.extend_from_slice(&(c as u32).to_le_bytes());
                    out.extend_from_slice(&(u as u32).to_le_bytes());
                }
            }
            let (cu, cc, cextra) = sizes(e.zip64, len, len);
            central.extend_from_slice(&CENTRAL_SIG);
            central.extend_from_slice(&0x031Eu16.to_le_bytes());
            central.extend_from_slice(&45u16.to_le_bytes());
            central.extend_from_slice(&e.flags.to_le_bytes());
            central.extend_from_slice(&e.method.to_le_bytes());
            central.extend_from_slice(&[0; 4]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&cc.to_le_bytes());
            central.extend_from_slice(&cu.to_le_bytes());
            central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(cextra.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 6]); // comment len, disk, internal attrs
            central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(&e.name);
            central.extend_from_slice(&cextra);
        }
        let cd_start = u32::try_from(out.len() - prefix.len()).expect("small");
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_start.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn check(bytes: &[u8]) -> Result<(), ZipCheckError> {
        let archive = ZipArchive::new(Cursor::new(bytes)).expect("the zip parses");
        check_local_headers(&archive, &mut Cursor::new(bytes))
    }

    fn two(local: Local) -> Vec<u8> {
        let mut second = entry("b.txt", b"second entry");
        second.local = local;
        build(b"", &[entry("a.txt", b"first entry"), second])
    }

    /// The field that disagrees, with its local and central values.
    fn disagreement(bytes: &[u8]) -> (String, HeaderField, FieldValue, FieldValue) {
        match check(bytes) {
            Err(ZipCheckError::Mismatch {
                entry,
                field,
                local,
                central,
            }) => (entry, field, local, central),
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn agreeing_headers_pass() {
        check(&two(Local::default())).expect("a consistent zip passes");
    }

    #[test]
    fn local_header_mismatch_name() {
        let z = two(Local {
            name: Some(b"c.txt".to_vec()),
            ..Local::default()
        });
        assert_eq!(
            disagreement(&z),
            (
                "b.txt".into(),
                HeaderField::Name,
                FieldValue::Bytes(b"c.txt".to_vec()),
                FieldValue::Bytes(b"b.txt".to_vec())
            )
        );
        let e = check(&z).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "entry \"b.txt\": the local header's file name is \"c.txt\", the central directory's is \"b.txt\""
        );
    }

    #[test]
    fn local_header_mismatch_method() {
        let (_, field, local, central) = disagreement(&two(Local {
            method: Some(8),
            ..Local::default()
        }));
        assert_eq!(
            (field, local, central),
            (
                HeaderField::Method,
                FieldValue::Number(8),
                FieldValue::Number(0)
            )
        );
    }

    #[test]
    fn local_header_mismatch_flags() {
        for bit in [FLAG_ENCRYPTED, FLAG_DATA_DESCRIPTOR, FLAG_UTF8] {
            let (_, field, local, central) = disagreement(&two(Local {
                flags: Some(FLAG_UTF8 ^ bit),
                ..Local::default()
            }));
            assert_eq!(
                (field, local, central),
                (
                    HeaderField::Flags,
                    FieldValue::Hex((FLAG_UTF8 ^ bit).into()),
                    FieldValue::Hex(FLAG_UTF8.into())
                ),
                "bit {bit:#x}"
            );
        }
    }

    #[test]
    fn local_header_mismatch_crc_and_sizes() {
        let crc = crc32fast::hash(b"second entry");
        let (_, field, local, central) = disagreement(&two(Local {
            crc32: Some(crc ^ 1),
            ..Local::default()
        }));
        assert_eq!(
            (field, local, central),
            (
                HeaderField::Crc32,
                FieldValue::Hex(crc ^ 1),
                FieldValue::Hex(crc)
            )
        );
        let (_, field, local, central) = disagreement(&two(Local {
            compressed: Some(5),
            ..Local::default()
        }));
        assert_eq!(
            (field, local, central),
            (
                HeaderField::CompressedSize,
                FieldValue::Number(5),
                FieldValue::Number(12)
            )
        );
        let (_, field, local, central) = disagreement(&two(Local {
            uncompressed: Some(0),
            ..Local::default()
        }));
        assert_eq!(
            (field, local, central),
            (
                HeaderField::UncompressedSize,
                FieldValue::Number(0),
                FieldValue::Number(12)
            ),
            "zero is only allowed with a data descriptor"
        );
    }

    #[test]
    fn local_header_mismatch_signature() {
        let (entry, field, local, _) = disagreement(&two(Local {
            signature: Some(*b"PK\x05\x05"),
            ..Local::default()
        }));
        assert_eq!(
            (entry.as_str(), field, local),
            (
                "b.txt",
                HeaderField::Signature,
                FieldValue::Bytes(b"PK\x05\x05".to_vec())
            )
        );
    }

    #[test]
    fn zip64_sizes_are_compared_by_value() {
        let mut e = entry("big.bin", b"not actually big");
        e.zip64 = true;
        check(&build(b"", &[e.clone()])).expect("zip64 headers that agree pass");
        e.local.uncompressed = Some(17);
        let (_, field, local, central) = disagreement(&build(b"", &[e]));
        assert_eq!(
            (field, local, central),
            (
                HeaderField::UncompressedSize,
                FieldValue::Number(17),
                FieldValue::Number(16)
            )
        );
    }

    #[test]
    fn data_descriptor_is_checked_instead_of_the_local_fields() {
        let data = b"streamed entry";
        let crc = crc32fast::hash(data);
        let n = data.len() as u64;
        for (zip64, sig) in [(false, true), (false, false), (true, true), (true, false)] {
            let mut e = entry("s.txt", data);
            e.flags |= FLAG_DATA_DESCRIPTOR;
            e.zip64 = zip64;
            e.local = Local {
                crc32: Some(0),
                compressed: Some(0),
                uncompressed: Some(0),
                ..Local::default()
            };
            e.descriptor = Some((sig, crc, n, n));
            let ok = build(b"", &[e.clone(), entry("after.txt", b"x")]);
            check(&ok).unwrap_or_else(|err| panic!("zip64 {zip64}, sig {sig}: {err}"));

            let mut bad = e.clone();
            bad.descriptor = Some((sig, crc, n, n + 1));
            let (_, field, local, central) =
                disagreement(&build(b"", &[bad, entry("after.txt", b"x")]));
            assert_eq!(
                (field, local, central),
                (
                    HeaderField::DescriptorUncompressedSize,
                    FieldValue::Number(n + 1),
                    FieldValue::Number(n)
                ),
                "zip64 {zip64}, sig {sig}"
            );
            let mut bad = e;
            bad.descriptor = Some((sig, crc ^ 0xFF, n, n));
            let (_, field, ..) = disagreement(&build(b"", &[bad, entry("after.txt", b"x")]));
            assert_eq!(field, HeaderField::DescriptorCrc32);
        }
    }

    #[test]
    fn a_data_descriptor_does_not_excuse_wrong_local_values() {
        let data = b"streamed entry";
        let n = data.len() as u64;
        let mut e = entry("s.txt", data);
        e.flags |= FLAG_DATA_DESCRIPTOR;
        e.local.compressed = Some(3);
        e.descriptor = Some((true, crc32fast::hash(data), n, n));
        let (_, field, ..) = disagreement(&build(b"", &[e]));
        assert_eq!(field, HeaderField::CompressedSize);
    }

    #[test]
    fn a_missing_data_descriptor_is_refused() {
        let mut e = entry("s.txt", b"streamed entry");
        e.flags |= FLAG_DATA_DESCRIPTOR;
        // No descriptor written: the central directory follows the data at
        // once, and its bytes do not hold this entry's CRC-32.
        let z = build(b"", &[e]);
        assert!(
            matches!(
                check(&z),
                Err(ZipCheckError::Mismatch {
                    field: HeaderField::DescriptorCrc32,
                    ..
                })
            ),
            "{:?}",
            check(&z)
        );
    }

    #[test]
    fn the_zip_crate_writers_output_passes() {
        use zip::write::SimpleFileOptions;
        use zip::CompressionMethod;
        let data = b"some text, some text, some text, some text".repeat(50);
        // Seekable writer (sizes patched into the local header), stored, deflated and zip64.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, method, large) in [
            ("stored.txt", CompressionMethod::Stored, false),
            ("deflated.txt", CompressionMethod::Deflated, false),
            ("zip64.txt", CompressionMethod::Stored, true),
            ("名前.txt", CompressionMethod::Stored, false),
        ] {
            let o = SimpleFileOptions::default()
                .compression_method(method)
                .large_file(large);
            w.start_file(name, o).expect("start");
            w.write_all(&data).expect("write");
        }
        let bytes = w.finish().expect("finish").into_inner();
        let archive = ZipArchive::new(Cursor::new(bytes.as_slice())).expect("zip");
        let at = archive.by_index_data(2).expect("entry").header_start() as usize;
        assert_eq!(
            bytes[at + 18..at + 26],
            [0xFF; 8],
            "the large_file entry has zip64 sizes in its local header"
        );
        check(&bytes).expect("the zip crate's seekable output passes");

        // Streaming writer: data descriptors.
        let mut w = zip::ZipWriter::new_stream(Vec::new());
        for name in ["one.txt", "two.txt"] {
            let o = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
            w.start_file(name, o).expect("start");
            w.write_all(&data).expect("write");
        }
        let bytes = w.finish().expect("finish").into_inner();
        let archive = ZipArchive::new(Cursor::new(bytes.as_slice())).expect("zip");
        let flags = archive.by_index_data(1).expect("entry").flags().as_u16();
        assert_ne!(
            flags & FLAG_DATA_DESCRIPTOR,
            0,
            "streamed entries use data descriptors"
        );
        check(&bytes).expect("the zip crate's streamed output passes");
    }

    #[test]
    fn prefix_len_counts_bytes_before_the_first_entry() {
        let plain = two(Local::default());
        let archive = ZipArchive::new(Cursor::new(plain.as_slice())).expect("zip");
        assert_eq!(prefix_len(&archive), 0);

        let prefixed = build(b"#!/bin/sh\nexit 0\n", &[entry("a.txt", b"a")]);
        let archive = ZipArchive::new(Cursor::new(prefixed.as_slice())).expect("zip");
        assert_eq!(prefix_len(&archive), 17);
        check_local_headers(&archive, &mut Cursor::new(prefixed.as_slice()))
            .expect("offsets are relative to the archive start");
    }
}
