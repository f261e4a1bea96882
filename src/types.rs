//! Newtypes for the identifiers and values that cross module boundaries.
//!
//! Every identifier that appears in a bundle, a file name or a log line is one of
//! these types, validated once at the edge; the rest of the code never re-checks a
//! raw string.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{DecodeKind, Encoding, Specification, HEXLOWER};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a string was refused as one of the types in this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct InvalidValue {
    /// The type being parsed ("agency id", "bundle id", ...).
    pub what: &'static str,
    /// What is wrong with it, in words a sysadmin can act on.
    pub why: String,
}

fn invalid(what: &'static str, why: impl Into<String>) -> InvalidValue {
    InvalidValue {
        what,
        why: why.into(),
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// An agency (peer) identifier such as `sz-lac` or `sz-futian-court`:
/// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
/// It is also the tail of the TLS identity `urn:sealpost:agency:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgencyId(String);

/// The URI SAN prefix that names an agency in its certificates.
pub const AGENCY_URN_PREFIX: &str = "urn:sealpost:agency:";

impl AgencyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The URI SAN that certificates of this agency carry.
    pub fn urn(&self) -> String {
        format!("{AGENCY_URN_PREFIX}{}", self.0)
    }
    /// Parses `urn:sealpost:agency:<id>`.
    pub fn from_urn(urn: &str) -> Option<Self> {
        urn.strip_prefix(AGENCY_URN_PREFIX)?.parse().ok()
    }
}

impl FromStr for AgencyId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "agency id";
        if s.is_empty() || s.len() > 63 {
            return Err(invalid(WHAT, "must be 1 to 63 characters long"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                WHAT,
                format!("{s:?} may contain only a-z, 0-9 and '-'"),
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(invalid(
                WHAT,
                format!("{s:?} must not start or end with '-'"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_serde!(AgencyId);

/// A bundle identifier: 128 random bits as 26 lowercase base32 characters
/// (RFC 4648 alphabet `a-z2-7`, no padding). Unguessable by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleId([u8; 26]);

/// RFC 4648 base32 in lower case, without padding. `data-encoding` checks
/// that the unused low bits of the last character are zero
/// (`check_trailing_bits`, on by default), so every id has one spelling.
static BASE32_LOWER: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding().expect("a valid base32 specification")
});

impl BundleId {
    /// A fresh random id from the system CSPRNG.
    pub fn generate() -> Self {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random number generator is available");
        Self::from_random_bytes(bytes)
    }

    /// The id that encodes these 16 bytes (tests use fixed bytes).
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        let mut out = [0u8; 26];
        BASE32_LOWER.encode_mut(&bytes, &mut out);
        Self(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base32 alphabet is ASCII")
    }
}

impl FromStr for BundleId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text: [u8; 26] = s
            .as_bytes()
            .try_into()
            .map_err(|_| invalid("bundle id", "must be exactly 26 characters"))?;
        let mut bytes = [0u8; 16];
        BASE32_LOWER
            .decode_mut(&text, &mut bytes)
            .map_err(|e| match e.error.kind {
                DecodeKind::Trailing => invalid("bundle id", "is not a canonical encoding"),
                _ => invalid("bundle id", "may contain only a-z and 2-7"),
            })?;
        Ok(Self(text))
    }
}
string_serde!(BundleId);

/// A case reference (案号) such as `深劳人仲案〔2026〕1234号`: 1–100 characters,
/// Unicode NFC, no control characters, no leading or trailing white space, no
/// slash or backslash, no leading dot. It names a folder in a court's inbox
/// (`inbox/<case_ref>/<bundle id>/`), so it must be one visible path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseRef(String);

impl CaseRef {
    /// The case reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CaseRef {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use unicode_normalization::UnicodeNormalization;
        const WHAT: &str = "case number";
        let n = s.chars().count();
        if n == 0 || n > 100 {
            return Err(invalid(WHAT, "must be 1 to 100 characters long"));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid(
                WHAT,
                "contains a control character (e.g. a line break)",
            ));
        }
        if s.trim() != s {
            return Err(invalid(WHAT, "has leading or trailing spaces"));
        }
        if s.contains(['/', '\\']) {
            return Err(invalid(WHAT, "contains a slash"));
        }
        // It names a folder in a court's inbox: never "." or "..", nor hidden.
        if s.starts_with('.') {
            return Err(invalid(WHAT, "starts with a dot"));
        }
        // Most case numbers are NFC already (every one read back from a
        // record is): the quick check spares the normalisation.
        if unicode_normalization::is_nfc_quick(s.chars())
            == unicode_normalization::IsNormalized::Yes
        {
            return Ok(Self(s.to_owned()));
        }
        Ok(Self(s.nfc().collect()))
    }
}
string_serde!(CaseRef);

/// A SHA-256 digest; shown and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_ring(ring::digest::digest(&ring::digest::SHA256, data))
    }
    /// Converts a finished ring SHA-256 digest.
    pub fn from_ring(d: ring::digest::Digest) -> Self {
        Self(d.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}
impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl FromStr for Sha256 {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || invalid("sha-256", "must be 64 lowercase hex digits");
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        // HEXLOWER decodes lower case only: one spelling per digest.
        HEXLOWER
            .decode_mut(s.as_bytes(), &mut out)
            .map_err(|_| bad())?;
        Ok(Self(out))
    }
}
impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A point in time, UTC, whole seconds; serialised as RFC 3339 (`2026-11-23T08:30:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to whole seconds.
    pub fn now() -> Self {
        Self::from_unix(OffsetDateTime::now_utc().unix_timestamp())
            .expect("the current time is representable")
    }
    /// From seconds since the Unix epoch.
    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Self)
    }
    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }
    /// The underlying date-time (UTC).
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }
    /// The time in China Standard Time (UTC+8, 北京时间), to the minute:
    /// `2026-11-30 21:37`, as clerks and applicants read it.
    pub fn beijing(&self) -> String {
        let b = self
            .0
            .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("UTC+8"));
        format!(
            "{}-{:02}-{:02} {:02}:{:02}",
            b.year(),
            u8::from(b.month()),
            b.day(),
            b.hour(),
            b.minute()
        )
    }

    /// RFC 3339 text.
    pub fn to_rfc3339(&self) -> String {
        self.0
            .format(&Rfc3339)
            .expect("UTC timestamps always format")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}
impl FromStr for Timestamp {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| invalid("timestamp", format!("{s:?} is not RFC 3339: {e}")))?;
        // Exactly `YYYY-MM-DDTHH:MM:SSZ`: one spelling per instant.
        if t.offset() != time::UtcOffset::UTC
            || s.len() != 20
            || !s.ends_with('Z')
            || s.as_bytes()[10] != b'T'
        {
            return Err(invalid(
                "timestamp",
                format!("{s:?} must be UTC whole seconds ending in Z"),
            ));
        }
        // No leap second: `time` reads `23:59:60` as 23:59:59.999999999, an
        // instant that is not a whole second and has no spelling of its own.
        if s.as_bytes()[17..19] == *b"60" || t.nanosecond() != 0 {
            return Err(invalid(
                "timestamp",
                format!("{s:?} is a leap second (:60); use :59 or the next minute's :00"),
            ));
        }
        Ok(Self(t))
    }
}
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `s` escaped for HTML element content and attribute values alike (`&`,
/// `<`, `>`, `"` and `'`): the e-mails' HTML part and the printable proof.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` fit for a log line or a clerk's note: control characters (line breaks,
/// ESC, DEL, C1) and the invisible formatting characters that reorder or hide
/// text (bidi overrides, zero-width characters, soft hyphen, BOM, line and
/// paragraph separators) are shown escaped as `\u{…}`. Everything else,
/// Chinese included, is unchanged. Names that come from the file system or the
/// network go through this before they are shown anywhere, so a file named
/// with a line feed and ESC cannot forge a log line or recolour a terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    }
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            use std::fmt::Write;
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A byte count written for people, parsed by `bytesize`: a number (a
/// fraction such as `1.5` is allowed and rounded down to whole bytes), an
/// optional space, and an optional unit, case-insensitive: `B`; `KB`, `MB`,
/// `GB`, `TB`, `PB`, `EB` (powers of 1000); `KiB`, `MiB`, `GiB`, `TiB`, `PiB`,
/// `EiB` (powers of 1024; also spelt `Ki`, `Mi`, …). A bare number is bytes.
///
/// The one-letter units `K`, `M`, `G`, `T`, `P` and `E` are refused as
/// ambiguous: `bytesize` reads them as powers of 1000, earlier versions of
/// sealpost read them as powers of 1024, and a limit must not change size
/// silently.
pub fn parse_byte_size(s: &str) -> Result<u64, InvalidValue> {
    let t = s.trim();
    let after_number = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let number = &t[..t.len() - after_number.len()];
    let unit = after_number.trim_start();
    if number.parse::<f64>().is_err() {
        return Err(invalid(
            "size",
            format!("{s:?} must start with a number, e.g. \"256 MiB\""),
        ));
    }
    if unit.len() == 1 && unit.bytes().all(|b| b"kmgtpeKMGTPE".contains(&b)) {
        return Err(invalid(
            "size",
            format!(
                "the unit {unit:?} in {s:?} is ambiguous: write \"{u}iB\" (powers of 1024) or \"{u}B\" (powers of 1000)",
                u = unit.to_ascii_uppercase()
            ),
        ));
    }
    match t.parse::<bytesize::ByteSize>() {
        // bytesize saturates instead of failing on overflow.
        Ok(n) if n.as_u64() == u64::MAX => Err(invalid("size", format!("{s:?} is too large"))),
        Ok(n) => Ok(n.as_u64()),
        Err(_) => Err(invalid(
            "size",
            format!("unknown unit {unit:?} in {s:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"),
        )),
    }
}

/// A size and its limit for people: rounded (`64.0 MiB`) unless the two would
/// then read the same, in which case both are exact bytes
/// (`67,108,865 bytes` and `67,108,864 bytes`).
pub fn size_vs_limit(size: u64, limit: u64) -> (String, String) {
    let (a, b) = (human_bytes(size), human_bytes(limit));
    if a != b {
        return (a, b);
    }
    let exact = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{out} bytes")
    };
    (exact(size), exact(limit))
}

/// Formats a byte count for people in IEC units, one decimal: `512 B`,
/// `1.5 MiB`, `64.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_ids_round_trip_and_are_canonical() {
        let id = BundleId::from_random_bytes([0xff; 16]);
        assert_eq!(id.as_str().len(), 26);
        assert_eq!(id.as_str().parse::<BundleId>(), Ok(id));
        let mut s = id.as_str().to_owned();
        s.replace_range(25.., "7");
        assert!(
            s.parse::<BundleId>().is_err(),
            "non-canonical last char accepted"
        );
        assert_ne!(BundleId::generate(), BundleId::generate());
    }

    #[test]
    fn agency_ids_are_strict() {
        assert!("sz-futian-court".parse::<AgencyId>().is_ok());
        for bad in ["", "Sz", "a b", "-a", "a-", "../x", "a_b"] {
            assert!(bad.parse::<AgencyId>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            AgencyId::from_urn("urn:sealpost:agency:sz-lac").map(|a| a.to_string()),
            Some("sz-lac".to_owned())
        );
    }

    #[test]
    fn chinese_case_numbers_are_valid() {
        let c: CaseRef = "深劳人仲案〔2026〕1234号".parse().expect("valid");
        assert_eq!(c.as_str(), "深劳人仲案〔2026〕1234号");
        assert!("a\nb".parse::<CaseRef>().is_err());
        assert!(" x".parse::<CaseRef>().is_err());
        assert!("..".parse::<CaseRef>().is_err());
        assert!(".".parse::<CaseRef>().is_err());
    }

    #[test]
    fn printable_escapes_what_could_forge_a_line() {
        assert_eq!(
            printable("深劳人仲案〔2026〕1号 ok.pdf"),
            "深劳人仲案〔2026〕1号 ok.pdf"
        );
        assert_eq!(
            printable("a\u{1b}[31mb\nINFO forged"),
            "a\\u{1b}[31mb\\u{a}INFO forged"
        );
        assert_eq!(printable("evil\u{202E}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert!(!printable("x\ry\u{85}z\u{2028}")
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}'));
    }

    #[test]
    fn a_size_one_byte_over_its_limit_is_shown_exactly() {
        assert_eq!(
            size_vs_limit((64 << 20) + 1, 64 << 20),
            ("67,108,865 bytes".to_owned(), "67,108,864 bytes".to_owned())
        );
        assert_eq!(
            size_vs_limit(100 << 20, 64 << 20),
            ("100.0 MiB".to_owned(), "64.0 MiB".to_owned())
        );
    }

    #[test]
    fn case_numbers_starting_with_a_dot_are_refused() {
        // It names a folder in a court's inbox: ".", "..", a hidden folder and
        // the inbox's own ".partial" must never be one.
        for bad in [
            ".",
            "..",
            ".hidden",
            ".partial",
            ".深劳人仲案〔2026〕1234号",
        ] {
            let e = bad
                .parse::<CaseRef>()
                .expect_err("a leading dot is refused");
            assert_eq!(e.why, "starts with a dot", "{bad}");
        }
        for ok in ["深劳人仲案〔2026〕1234.1号", "a.b", "．全角句点"] {
            assert!(ok.parse::<CaseRef>().is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn sizes_parse() {
        for (text, bytes) in [
            ("2 GiB", 2 << 30),
            ("256 MiB", 256 << 20),
            ("16 KiB", 16 << 10),
            ("16 kib", 16 << 10),
            ("4160MiB", 4160 << 20),
            ("1.5 GiB", 3 << 29),
            ("100KB", 100_000),
            ("2 GB", 2_000_000_000),
            ("1 TiB", 1 << 40),
            ("42", 42),
            ("42 B", 42),
            (" 7 MiB ", 7 << 20),
        ] {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        let why = |t: &str| parse_byte_size(t).expect_err(t).why;
        assert!(why("12 parsecs").contains("unknown unit"));
        assert!(why("MiB").contains("must start with a number"));
        assert!(why("-1 MiB").contains("must start with a number"));
        assert!(why("99999999 EiB").contains("too large"));
        for ambiguous in ["2G", "2 g", "512 M", "16K"] {
            assert!(why(ambiguous).contains("ambiguous"), "{ambiguous}");
        }
    }

    #[test]
    fn sizes_show_in_iec_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(4 << 30), "4.0 GiB");
    }

    #[test]
    fn bundle_ids_are_lower_case_rfc4648_base32() {
        assert_eq!(BASE32_LOWER.encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(
            BundleId::from_random_bytes([0; 16]).as_str(),
            "aaaaaaaaaaaaaaaaaaaaaaaaaa"
        );
        let id = BundleId::from_random_bytes(*b"0123456789abcdef");
        assert_eq!(id.as_str(), "gaytemzugu3doobzmfrggzdfmy");
        for bad in [
            "GAYTEMZUGU3DOOBZMFRGGZDFMY",
            "gaytemzugu3doobzmfrggzdfm1",
            "gaytemzugu3doobzmfrggzdfm=",
            "gaytemzugu3doobzmfrggzdfm",
        ] {
            assert!(bad.parse::<BundleId>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn digests_are_lower_case_hex() {
        let d = Sha256::of(b"abc");
        let text = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.to_hex(), text);
        assert_eq!(text.parse::<Sha256>(), Ok(d));
        assert!(text.to_uppercase().parse::<Sha256>().is_err());
        assert!(text[1..].parse::<Sha256>().is_err());
        assert!(format!("{}g", &text[1..]).parse::<Sha256>().is_err());
    }

    #[test]
    fn timestamps_are_strict_utc() {
        let t: Timestamp = "2026-11-23T08:30:00Z".parse().expect("valid");
        assert_eq!(t.to_string(), "2026-11-23T08:30:00Z");
        assert!("2026-11-23T08:30:00+08:00".parse::<Timestamp>().is_err());
        assert!("2026-11-23T08:30:00.5Z".parse::<Timestamp>().is_err());
        assert!("2026-11-23T08:30:00.000Z".parse::<Timestamp>().is_err());
        assert!("2026-11-23t08:30:00Z".parse::<Timestamp>().is_err());
    }

    #[test]
    fn timestamps_refuse_leap_seconds_and_are_whole_seconds() {
        // 2016-12-31T23:59:60Z was a real leap second; `time` alone accepts it.
        for leap in ["2016-12-31T23:59:60Z", "2026-06-30T23:59:60Z"] {
            let e = leap.parse::<Timestamp>().expect_err("leap second refused");
            assert!(e.why.contains("leap second"), "{leap}: {e}");
        }
        assert!("2026-11-23T08:30:60Z".parse::<Timestamp>().is_err());
        for ok in [
            "2016-12-31T23:59:59Z",
            "2017-01-01T00:00:00Z",
            "2026-11-23T08:30:00Z",
        ] {
            let t: Timestamp = ok.parse().expect("valid");
            assert_eq!(t.datetime().nanosecond(), 0, "{ok}");
            assert_eq!(t.to_string(), ok);
            assert_eq!(Timestamp::from_unix(t.unix()), Some(t), "{ok}");
        }
        let leap: Result<Timestamp, _> = serde_json::from_str("\"2016-12-31T23:59:60Z\"");
        assert!(leap.is_err(), "deserialisation refuses it too");
    }

    #[test]
    fn timestamps_refuse_lower_case_t_and_z() {
        // One spelling per instant: only upper-case `T` and `Z`.
        assert!("2026-11-23T08:30:00Z".parse::<Timestamp>().is_ok());
        for bad in [
            "2026-11-23t08:30:00Z",
            "2026-11-23T08:30:00z",
            "2026-11-23t08:30:00z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad} accepted");
        }
    }
}
