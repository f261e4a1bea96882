//! An application folder as a clerk drops it: `application.toml` plus documents.
//!
//! [`Application::load`] reads and validates a folder completely before anything is
//! sealed. Every problem found becomes a [`Reason`] with a stable machine code and a
//! plain-language explanation in Chinese and English that tells the clerk which
//! file is at fault and how to fix it. All problems are reported at once, so a
//! clerk fixes a folder in one round. Format: `docs/application-format.md`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::config::{Directory, Limits, Role};
use crate::types::{AgencyId, CaseRef};

/// The manifest file name inside an application folder.
pub const MANIFEST_NAME: &str = "application.toml";
/// The format tag an `application.toml` must carry.
pub const MANIFEST_FORMAT: &str = "sealpost-application/1";
/// The largest `application.toml` accepted.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Files that may sit in a folder without being listed (created by desktops and
/// by the intake protocol); they are kept with the originals, never sealed.
pub const IGNORED_FILES: [&str; 4] = ["READY", "Thumbs.db", "desktop.ini", ".DS_Store"];

/// What a document is, in the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocRole {
    /// 财产保全申请书 (required).
    PreservationApplication,
    /// 仲裁申请书 (required).
    ArbitrationApplication,
    /// 受理通知书 (required).
    AcceptanceNotice,
    /// 证据材料.
    Evidence,
    /// 身份证明.
    Identity,
    /// 财产线索.
    PropertyClue,
    /// 担保材料.
    Guarantee,
    /// 其他材料.
    Other,
}

impl DocRole {
    /// Every role, in display order.
    pub const ALL: [DocRole; 8] = [
        DocRole::PreservationApplication,
        DocRole::ArbitrationApplication,
        DocRole::AcceptanceNotice,
        DocRole::Evidence,
        DocRole::Identity,
        DocRole::PropertyClue,
        DocRole::Guarantee,
        DocRole::Other,
    ];
    /// The roles every application must include.
    pub const REQUIRED: [DocRole; 3] = [
        DocRole::PreservationApplication,
        DocRole::ArbitrationApplication,
        DocRole::AcceptanceNotice,
    ];
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DocRole::PreservationApplication => "preservation-application",
            DocRole::ArbitrationApplication => "arbitration-application",
            DocRole::AcceptanceNotice => "acceptance-notice",
            DocRole::Evidence => "evidence",
            DocRole::Identity => "identity",
            DocRole::PropertyClue => "property-clue",
            DocRole::Guarantee => "guarantee",
            DocRole::Other => "other",
        }
    }
    /// Chinese name.
    pub fn zh(self) -> &'static str {
        match self {
            DocRole::PreservationApplication => "财产保全申请书",
            DocRole::ArbitrationApplication => "仲裁申请书",
            DocRole::AcceptanceNotice => "受理通知书",
            DocRole::Evidence => "证据材料",
            DocRole::Identity => "身份证明",
            DocRole::PropertyClue => "财产线索",
            DocRole::Guarantee => "担保材料",
            DocRole::Other => "其他材料",
        }
    }
    /// English name.
    pub fn en(self) -> &'static str {
        match self {
            DocRole::PreservationApplication => "property preservation application",
            DocRole::ArbitrationApplication => "arbitration application",
            DocRole::AcceptanceNotice => "acceptance notice",
            DocRole::Evidence => "evidence",
            DocRole::Identity => "proof of identity",
            DocRole::PropertyClue => "property clues",
            DocRole::Guarantee => "guarantee",
            DocRole::Other => "other material",
        }
    }
}

/// A document type recognised by content (magic bytes), never by name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    /// `%PDF-`
    #[serde(rename = "application/pdf")]
    Pdf,
    /// A zip container holding `OFD.xml` (GB/T 33190).
    #[serde(rename = "application/ofd")]
    Ofd,
    /// `FF D8 FF`
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// `89 50 4E 47 0D 0A 1A 0A`
    #[serde(rename = "image/png")]
    Png,
    /// `II*\0` or `MM\0*`
    #[serde(rename = "image/tiff")]
    Tiff,
}

impl MediaType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Ofd => "application/ofd",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Tiff => "image/tiff",
        }
    }
    fn extensions(self) -> &'static [&'static str] {
        match self {
            MediaType::Pdf => &["pdf"],
            MediaType::Ofd => &["ofd"],
            MediaType::Jpeg => &["jpg", "jpeg"],
            MediaType::Png => &["png"],
            MediaType::Tiff => &["tif", "tiff"],
        }
    }
    fn from_extension(ext: &str) -> Option<Self> {
        let ext = ext.to_ascii_lowercase();
        [
            MediaType::Pdf,
            MediaType::Ofd,
            MediaType::Jpeg,
            MediaType::Png,
            MediaType::Tiff,
        ]
        .into_iter()
        .find(|m| m.extensions().contains(&ext.as_str()))
    }
}

/// Sniffs the type of an open file by its first bytes (and, for OFD, its zip
/// directory). `None`: not an allowed type.
pub fn sniff(file: &mut fs::File) -> std::io::Result<Option<MediaType>> {
    use std::io::Seek;
    let mut head = [0u8; 8];
    let n = read_up_to(file, &mut head)?;
    let head = &head[..n];
    file.rewind()?;
    let t = if head.starts_with(b"%PDF-") {
        Some(MediaType::Pdf)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(MediaType::Jpeg)
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(MediaType::Png)
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some(MediaType::Tiff)
    } else if head.starts_with(b"PK\x03\x04") {
        let is_ofd = zip::ZipArchive::new(&mut *file)
            .map(|z| {
                z.file_names()
                    .any(|n| n.is_ok_and(|n| n.eq_ignore_ascii_case("OFD.xml")))
            })
            .unwrap_or(false);
        file.rewind()?;
        is_ofd.then_some(MediaType::Ofd)
    } else {
        None
    };
    Ok(t)
}

impl MediaType {
    /// What a complete file of this type ends with (for the clerk's reason).
    fn end_marker(self) -> &'static str {
        match self {
            MediaType::Pdf => "%%EOF",
            MediaType::Png => "IEND",
            MediaType::Ofd => "zip central directory",
            MediaType::Jpeg => "FF D9",
            MediaType::Tiff => "",
        }
    }
}

/// How far from the end a PDF's `%%EOF` may be (PDF readers such as Acrobat
/// accept up to 1 KiB of trailing bytes), and a PNG's `IEND` chunk.
const END_WINDOW: u64 = 1024;

/// Whether a document ends before its format says it must: a PDF without
/// `%%EOF` in its last KiB, a PNG without its `IEND` chunk there. (An OFD is a
/// zip whose central directory [`sniff`] already read, so a cut one is not
/// recognised as OFD at all. JPEG and TIFF have no end marker that real files
/// reliably keep — cameras append data after JPEG's `FF D9` — and are not
/// checked.)
pub fn looks_truncated(file: &mut fs::File, size: u64, t: MediaType) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let marker: &[u8] = match t {
        MediaType::Pdf => b"%%EOF",
        MediaType::Png => b"IEND",
        MediaType::Ofd | MediaType::Jpeg | MediaType::Tiff => return Ok(false),
    };
    let window = size.min(END_WINDOW);
    file.seek(SeekFrom::Start(size - window))?;
    let mut tail = vec![0u8; usize::try_from(window).unwrap_or(0)];
    let n = read_up_to(file, &mut tail)?;
    file.rewind()?;
    Ok(!tail[..n].windows(marker.len()).any(|w| w == marker))
}

/// A Chinese explanation of an I/O error, for clerks (the English text beside
/// it carries the system's own words).
pub fn zh_io(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied => "没有读取权限",
        K::NotFound => "文件不存在",
        K::StorageFull | K::QuotaExceeded => "磁盘已满",
        K::InvalidData | K::UnexpectedEof => "文件内容损坏",
        K::InvalidInput => "不是普通文件",
        _ => "读取时出错",
    }
}

/// A Chinese explanation of a TOML parser message, for clerks; the parser's
/// English message goes in the English text.
pub fn zh_toml(message: &str) -> String {
    let key = message.split('`').nth(1).filter(|k| !k.contains(' '));
    let m = message.to_ascii_lowercase();
    if m.starts_with("missing field") {
        match key {
            Some(k) => format!("缺少必填项 {k}"),
            None => "缺少必填项".into(),
        }
    } else if m.starts_with("unknown field") {
        match key {
            Some(k) => format!("有无法识别的项 {k}（可能拼写错误）"),
            None => "有无法识别的项（可能拼写错误）".into(),
        }
    } else if m.starts_with("invalid type") {
        "某项的值类型不对（例如文字没有加英文引号，或是非 true/false 的写法）".into()
    } else if m.contains("duplicate key") {
        "同一项写了两次".into()
    } else if m.contains("string") || m.contains("escape") || m.contains("quote") {
        "引号或转义字符有误（文字要放在英文双引号 \"…\" 里）".into()
    } else if m.contains("invalid value") || m.contains("invalid length") {
        "某项的值无效".into()
    } else {
        "语法错误（检查等号、英文引号和方括号）".into()
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The applicant's preferred language for notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Chinese.
    Zh,
    /// English.
    En,
}

/// The applicant (申请人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// Full name.
    pub name: String,
    /// E-mail for notices.
    pub email: String,
    /// Mobile number, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Notice language.
    pub language: Language,
}

/// The respondent (被申请人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respondent {
    /// Name (person or company).
    pub name: String,
    /// Address, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A validated document, ready to seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its safe, NFC-normalised file name.
    pub name: String,
    /// Its role.
    pub role: DocRole,
    /// Its type by content.
    pub media_type: MediaType,
    /// Its size when validated, bytes.
    pub size: u64,
    /// Where it is.
    pub path: PathBuf,
}

/// A validated application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// 案号.
    pub case_number: CaseRef,
    /// The court it goes to.
    pub court: AgencyId,
    /// Claim amount, CNY, as written (`86500.00`).
    pub claim_amount: String,
    /// Whether this resubmits a case already sent.
    pub resubmission: bool,
    /// 申请人.
    pub applicant: Applicant,
    /// 被申请人.
    pub respondent: Respondent,
    /// Documents in manifest order.
    pub documents: Vec<Document>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    format: String,
    case_number: String,
    court: String,
    claim_amount: String,
    #[serde(default)]
    resubmission: bool,
    applicant: RawApplicant,
    respondent: Respondent,
    #[serde(default)]
    documents: Vec<RawDocument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplicant {
    name: String,
    email: String,
    mobile: Option<String>,
    language: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    file: String,
    role: String,
}

/// A stable, machine-readable reason code (`rejection.json`, API problem details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReasonCode {
    /// No `application.toml`.
    ManifestMissing,
    /// `application.toml` is not valid TOML or has unknown/missing fields.
    ManifestInvalid,
    /// `application.toml` is larger than allowed.
    ManifestTooLarge,
    /// `format` is not `sealpost-application/1`.
    ManifestFormatUnsupported,
    /// The case number is malformed.
    CaseNumberInvalid,
    /// The court is not in the peer directory (or is not a court).
    CourtUnknown,
    /// The claim amount is not a decimal amount.
    ClaimAmountInvalid,
    /// A name/address field is empty, too long or has control characters.
    TextFieldInvalid,
    /// The e-mail address is not valid.
    EmailInvalid,
    /// The mobile number is not valid.
    MobileInvalid,
    /// The language is not zh or en.
    LanguageInvalid,
    /// A document role is unknown.
    RoleInvalid,
    /// A required document role is absent.
    RequiredDocumentMissing,
    /// A listed file is not in the folder.
    DocumentMissing,
    /// A file in the folder is not listed in the manifest.
    DocumentUnlisted,
    /// A file is listed twice (or twice up to letter case).
    DuplicateFileName,
    /// A file name is unsafe (separators, `..`, control characters, reserved names).
    UnsafeFileName,
    /// A document's content is not an allowed type.
    DocumentTypeNotAllowed,
    /// A document's extension does not match its content.
    DocumentTypeMismatch,
    /// A document is empty.
    DocumentEmpty,
    /// A document ends before its format says it should (a copy that did not
    /// finish): a PDF without its `%%EOF` trailer, a PNG without `IEND`, an
    /// OFD whose zip directory is missing.
    DocumentTruncated,
    /// A document exceeds the per-file limit.
    DocumentTooLarge,
    /// The documents together exceed the total limit.
    TotalTooLarge,
    /// More documents than allowed.
    TooManyDocuments,
    /// A symlink, FIFO, device, socket or sub-folder where a file was expected.
    NotARegularFile,
    /// A file with more than one hard link (it could change behind our back).
    HardLinkedFile,
    /// A file could not be read.
    Unreadable,
    /// Something in the intake folder that is neither a folder nor a `.zip`.
    NotAnApplication,
    /// A `.zip` that cannot be read as a zip archive.
    ZipInvalid,
    /// A zip entry with an absolute path, `..`, a backslash, a drive letter or a control character.
    ZipUnsafeEntry,
    /// A zip entry that is a symbolic link.
    ZipSymlink,
    /// Two zip entries with the same name.
    ZipDuplicateEntry,
    /// A zip that would expand beyond the limits (size, ratio, overlap, time).
    ZipBomb,
    /// The same case is already in the outbox and the application is not marked as a resubmission.
    CaseAlreadyQueued,
    /// The item was still being written after it was taken (a `READY` marker
    /// written first, or a copy still running), so it could not be sealed as
    /// the clerk's final bytes.
    StillBeingWritten,
    /// A `.zip` whose local file headers disagree with its central directory
    /// (names, methods, flags, CRC or sizes): different tools would read
    /// different files from it.
    ZipHeaderMismatch,
    /// A `.zip` with bytes before its first entry (a self-extracting archive,
    /// or something glued in front).
    ZipLeadingData,
}

impl ReasonCode {
    /// Every code (documented in `docs/application-format.md` §8).
    pub const ALL: &'static [ReasonCode] = &[
        ReasonCode::ManifestMissing,
        ReasonCode::ManifestInvalid,
        ReasonCode::ManifestTooLarge,
        ReasonCode::ManifestFormatUnsupported,
        ReasonCode::CaseNumberInvalid,
        ReasonCode::CourtUnknown,
        ReasonCode::ClaimAmountInvalid,
        ReasonCode::TextFieldInvalid,
        ReasonCode::EmailInvalid,
        ReasonCode::MobileInvalid,
        ReasonCode::LanguageInvalid,
        ReasonCode::RoleInvalid,
        ReasonCode::RequiredDocumentMissing,
        ReasonCode::DocumentMissing,
        ReasonCode::DocumentUnlisted,
        ReasonCode::DuplicateFileName,
        ReasonCode::UnsafeFileName,
        ReasonCode::DocumentTypeNotAllowed,
        ReasonCode::DocumentTypeMismatch,
        ReasonCode::DocumentEmpty,
        ReasonCode::DocumentTruncated,
        ReasonCode::DocumentTooLarge,
        ReasonCode::TotalTooLarge,
        ReasonCode::TooManyDocuments,
        ReasonCode::NotARegularFile,
        ReasonCode::HardLinkedFile,
        ReasonCode::Unreadable,
        ReasonCode::NotAnApplication,
        ReasonCode::ZipInvalid,
        ReasonCode::ZipUnsafeEntry,
        ReasonCode::ZipSymlink,
        ReasonCode::ZipDuplicateEntry,
        ReasonCode::ZipBomb,
        ReasonCode::CaseAlreadyQueued,
        ReasonCode::StillBeingWritten,
        ReasonCode::ZipHeaderMismatch,
        ReasonCode::ZipLeadingData,
    ];

    /// The code as text.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One problem with an application, explained for a clerk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable code.
    pub code: ReasonCode,
    /// The file at fault, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What is wrong and how to fix it, in Chinese.
    pub zh: String,
    /// The same in English.
    pub en: String,
}

impl Reason {
    /// A reason with its explanation in both languages.
    pub fn new(
        code: ReasonCode,
        file: Option<&str>,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        Self {
            code,
            file: file.map(str::to_owned),
            zh: zh.into(),
            en: en.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.code.as_str())?;
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "{} / {}", self.zh, self.en)
    }
}

/// The application cannot be accepted; every problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("application rejected: {}", .reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Rejection {
    /// The problems, in the order found (manifest first, then documents).
    pub reasons: Vec<Reason>,
}

impl Rejection {
    /// The codes, for tests and metrics.
    pub fn codes(&self) -> Vec<ReasonCode> {
        self.reasons.iter().map(|r| r.code).collect()
    }
}

struct Reasons(Vec<Reason>);

impl Reasons {
    fn add(
        &mut self,
        code: ReasonCode,
        file: Option<&str>,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) {
        self.0.push(Reason {
            code,
            file: file.map(str::to_owned),
            zh: zh.into(),
            en: en.into(),
        });
    }
}

/// Checks a file name is safe on every platform and for every tool that will
/// handle it: no separators or `..`, no control or Windows-forbidden characters,
/// no reserved device names, no leading/trailing dot or space, at most 200 bytes,
/// and already NFC. Returns a short English reason when it is not.
pub fn check_safe_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > 200 {
        return Err("the name is longer than 200 bytes");
    }
    if name == "." || name == ".." || name.contains("..") {
        return Err("the name contains \"..\"");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("the name contains a control character");
    }
    // Invisible formatting characters make a name display as something it is
    // not: U+202E before "fdp.exe" makes "evil" + U+202E + "fdp.exe" read "evilexe.pdf".
    let invisible = |c: char| matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
    if name.chars().any(invisible) {
        return Err("the name contains an invisible formatting character");
    }
    if name.contains(['/', '\\', ':', '*', '?', '"', '<', '>', '|']) {
        return Err("the name contains one of / \\ : * ? \" < > |");
    }
    if name.starts_with(['.', ' ']) || name.ends_with(['.', ' ']) {
        return Err("the name starts or ends with a dot or a space");
    }
    if name.nfc().collect::<String>() != name {
        return Err("the name is not in Unicode normal form C");
    }
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        return Err("the name is a reserved Windows device name");
    }
    Ok(())
}

fn check_text(r: &mut Reasons, field: &str, zh_field: &str, value: &str, required: bool) {
    let n = value.chars().count();
    if (required && value.trim().is_empty()) || n > 200 || value.chars().any(char::is_control) {
        r.add(
            ReasonCode::TextFieldInvalid,
            Some(MANIFEST_NAME),
            format!("“{zh_field}”（{field}）必须填写，不超过200个字符，且不能包含换行等控制字符。请在 application.toml 中改正。"),
            format!("The field {field} must be filled in, at most 200 characters, with no line breaks or other control characters. Correct it in application.toml."),
        );
    }
}

fn valid_amount(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.len() <= 12
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'))
        && frac.len() <= 2
        && (s.contains('.') <= !frac.is_empty())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn valid_mobile(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    (6..=20).contains(&digits)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
}

impl Application {
    /// Reads and validates the application in `dir`. Nothing is modified.
    pub fn load(dir: &Path, limits: &Limits, directory: &Directory) -> Result<Self, Rejection> {
        let mut r = Reasons(Vec::new());
        let app = Self::load_inner(dir, limits, directory, &mut r);
        match app {
            Some(app) if r.0.is_empty() => Ok(app),
            _ => Err(Rejection { reasons: r.0 }),
        }
    }

    fn load_inner(
        dir: &Path,
        limits: &Limits,
        directory: &Directory,
        r: &mut Reasons,
    ) -> Option<Self> {
        use ReasonCode as C;
        let manifest_path = dir.join(MANIFEST_NAME);
        let text = match crate::fsutil::open_regular_nofollow(&manifest_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                r.add(
                    C::ManifestMissing,
                    None,
                    "文件夹中没有 application.toml（申请清单）。请按模板填写后放入文件夹。",
                    "The folder has no application.toml (the application manifest). Fill in the template and put it in the folder.",
                );
                return None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                r.add(
                    C::Unreadable,
                    Some(MANIFEST_NAME),
                    format!(
                        "无法读取 application.toml（{}）。请检查文件权限。",
                        zh_io(&e)
                    ),
                    format!("application.toml cannot be read ({e}). Check the file's permissions."),
                );
                return None;
            }
            Err(e) => {
                r.add(
                    C::NotARegularFile,
                    Some(MANIFEST_NAME),
                    format!("application.toml 不是普通文件，无法读取（{}）。", zh_io(&e)),
                    format!("application.toml is not a regular file and cannot be read ({e})."),
                );
                return None;
            }
            Ok(f)
                if f.metadata().is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.nlink() > 1
                }) =>
            {
                r.add(
                    C::HardLinkedFile,
                    Some(MANIFEST_NAME),
                    "application.toml 是硬链接，可能在处理中被他处修改。请复制一份真实文件放入。",
                    "application.toml is a hard link and could change behind our back. Put a real copy of the file in the folder.",
                );
                return None;
            }
            Ok(f) => {
                // Size first, on the raw bytes: a cut in the middle of a
                // multi-byte character must not pass for an encoding error.
                let mut bytes = Vec::new();
                if let Err(e) = f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes) {
                    r.add(
                        C::Unreadable,
                        Some(MANIFEST_NAME),
                        format!("无法读取 application.toml（{}）。", zh_io(&e)),
                        format!("application.toml cannot be read ({e})."),
                    );
                    return None;
                }
                if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                    r.add(
                        C::ManifestTooLarge,
                        Some(MANIFEST_NAME),
                        format!("application.toml 超过 {MAX_MANIFEST_BYTES} 字节（64 KiB），不是正常的申请清单。"),
                        format!("application.toml is larger than {MAX_MANIFEST_BYTES} bytes (64 KiB), which no real manifest is."),
                    );
                    return None;
                }
                match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(_) => {
                        r.add(
                            C::ManifestInvalid,
                            Some(MANIFEST_NAME),
                            "application.toml 不是 UTF-8 编码的文本（可能是 GBK）。请用 UTF-8 编码另存。",
                            "application.toml is not UTF-8 text (perhaps GBK). Save it again with UTF-8 encoding.",
                        );
                        return None;
                    }
                }
            }
        };
        let raw: RawApplication = match toml::from_str(&text) {
            Ok(raw) => raw,
            Err(e) => {
                let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
                let at = line.map(|l| format!("第{l}行：")).unwrap_or_default();
                let at_en = line.map(|l| format!("line {l}: ")).unwrap_or_default();
                r.add(
                    C::ManifestInvalid,
                    Some(MANIFEST_NAME),
                    format!(
                        "application.toml 格式错误，{at}{}。请对照模板改正。",
                        zh_toml(e.message())
                    ),
                    format!(
                        "application.toml is malformed, {at_en}{}. Compare it with the template.",
                        e.message()
                    ),
                );
                return None;
            }
        };
        if raw.format != MANIFEST_FORMAT {
            r.add(
                C::ManifestFormatUnsupported,
                Some(MANIFEST_NAME),
                format!(
                    "application.toml 的 format 应为 “{MANIFEST_FORMAT}”，现为 “{}”。",
                    raw.format
                ),
                format!(
                    "application.toml must say format = \"{MANIFEST_FORMAT}\", not {:?}.",
                    raw.format
                ),
            );
        }
        let case_number = match raw.case_number.parse::<CaseRef>() {
            Ok(c) => Some(c),
            Err(e) => {
                r.add(
                    C::CaseNumberInvalid,
                    Some(MANIFEST_NAME),
                    "案号（case_number）无效：不能为空、不超过100个字符、不能含换行或斜杠。例如：深劳人仲案〔2026〕1234号。",
                    format!("The case number (case_number) is invalid: {}. Example: 深劳人仲案〔2026〕1234号.", e.why),
                );
                None
            }
        };
        let court = match raw
            .court
            .parse::<AgencyId>()
            .ok()
            .filter(|c| directory.get(c).is_some_and(|p| p.role == Role::Court))
        {
            Some(c) => Some(c),
            None => {
                let known: Vec<String> = directory
                    .iter()
                    .filter(|p| p.role == Role::Court)
                    .map(|p| format!("{}（{}）", p.id, p.name_zh))
                    .collect();
                let known_en: Vec<String> = directory
                    .iter()
                    .filter(|p| p.role == Role::Court)
                    .map(|p| format!("{} ({})", p.id, p.name_en))
                    .collect();
                r.add(
                    C::CourtUnknown,
                    Some(MANIFEST_NAME),
                    format!(
                        "受理法院（court）“{}” 不在法院名录中。可选：{}。",
                        raw.court,
                        known.join("、")
                    ),
                    format!(
                        "The court {:?} is not in the peer directory. Known courts: {}.",
                        raw.court,
                        known_en.join(", ")
                    ),
                );
                None
            }
        };
        if !valid_amount(&raw.claim_amount) {
            r.add(
                C::ClaimAmountInvalid,
                Some(MANIFEST_NAME),
                format!("请求金额（claim_amount）“{}” 无效，应写成不带逗号的数字，最多两位小数，例如 86500.00。", raw.claim_amount),
                format!("The claim amount {:?} is invalid; write a number without commas, at most two decimals, e.g. 86500.00.", raw.claim_amount),
            );
        }
        check_text(r, "applicant.name", "申请人姓名", &raw.applicant.name, true);
        check_text(
            r,
            "respondent.name",
            "被申请人名称",
            &raw.respondent.name,
            true,
        );
        if let Some(a) = &raw.respondent.address {
            check_text(r, "respondent.address", "被申请人地址", a, false);
        }
        let email_ok = raw
            .applicant
            .email
            .parse::<lettre::Address>()
            .is_ok_and(|a| a.domain().contains('.') && !a.domain().ends_with('.'));
        if !email_ok {
            r.add(
                C::EmailInvalid,
                Some(MANIFEST_NAME),
                format!("申请人电子邮箱（applicant.email）“{}” 无效，申请人将收不到通知。请核对。", raw.applicant.email.escape_debug()),
                format!("The applicant's e-mail (applicant.email) {:?} is invalid; the applicant would receive no notices. Check it.", raw.applicant.email),
            );
        }
        if let Some(m) = &raw.applicant.mobile {
            if !valid_mobile(m) {
                r.add(
                    C::MobileInvalid,
                    Some(MANIFEST_NAME),
                    format!("申请人手机号（applicant.mobile）“{}” 无效，只能包含数字、空格、+、- 和括号。", m.escape_debug()),
                    format!("The applicant's mobile number {m:?} is invalid; use digits, spaces, +, - and parentheses only."),
                );
            }
        }
        let language = match raw.applicant.language.as_str() {
            "zh" => Some(Language::Zh),
            "en" => Some(Language::En),
            other => {
                r.add(
                    C::LanguageInvalid,
                    Some(MANIFEST_NAME),
                    format!(
                        "通知语言（applicant.language）应为 zh（中文）或 en（英文），现为 “{}”。",
                        other.escape_debug()
                    ),
                    format!(
                        "The notice language (applicant.language) must be zh or en, not {other:?}."
                    ),
                );
                None
            }
        };

        let documents = Self::check_documents(dir, &raw.documents, limits, r);
        Some(Self {
            case_number: case_number?,
            court: court?,
            claim_amount: raw.claim_amount,
            resubmission: raw.resubmission,
            applicant: Applicant {
                name: raw.applicant.name.nfc().collect(),
                email: raw.applicant.email,
                mobile: raw.applicant.mobile,
                language: language?,
            },
            respondent: Respondent {
                name: raw.respondent.name.nfc().collect(),
                address: raw.respondent.address.map(|a| a.nfc().collect()),
            },
            documents,
        })
    }

    fn check_documents(
        dir: &Path,
        listed: &[RawDocument],
        limits: &Limits,
        r: &mut Reasons,
    ) -> Vec<Document> {
        use std::os::unix::fs::MetadataExt;
        use ReasonCode as C;
        let mut docs = Vec::new();
        if listed.len() > limits.max_documents {
            r.add(
                C::TooManyDocuments,
                None,
                format!(
                    "材料共 {} 份，超过上限 {} 份。请合并扫描件后重新提交。",
                    listed.len(),
                    limits.max_documents
                ),
                format!(
                    "There are {} documents; at most {} are allowed. Combine scans and resubmit.",
                    listed.len(),
                    limits.max_documents
                ),
            );
            return docs;
        }
        let unreadable = |r: &mut Reasons, name: &str, e: &std::io::Error| {
            r.add(
                C::Unreadable,
                Some(name),
                format!("无法读取 “{name}”（{}）。", zh_io(e)),
                format!("{name:?} cannot be read ({e})."),
            );
        };
        let mut seen_lower = BTreeSet::new();
        let mut total: u64 = 0;
        for d in listed {
            let name = d.file.as_str();
            let role = DocRole::ALL.iter().copied().find(|x| x.as_str() == d.role);
            if role.is_none() {
                let roles: Vec<&str> = DocRole::ALL.iter().map(|x| x.as_str()).collect();
                r.add(
                    C::RoleInvalid,
                    Some(name),
                    format!(
                        "材料 “{}” 的类别（role）“{}” 无效。可选：{}。",
                        name.escape_debug(),
                        d.role.escape_debug(),
                        roles.join("、")
                    ),
                    format!(
                        "Document {name:?} has an unknown role {:?}. Allowed: {}.",
                        d.role,
                        roles.join(", ")
                    ),
                );
            }
            if let Err(why) = check_safe_name(name) {
                r.add(
                    C::UnsafeFileName,
                    Some(name),
                    format!("文件名 “{}” 不安全（{why}）。请改用普通文件名，例如 “财产保全申请书.pdf”。", name.escape_debug()),
                    format!("The file name {name:?} is unsafe ({why}). Rename it to a plain name such as preservation-application.pdf."),
                );
                continue;
            }
            if !seen_lower.insert(name.to_lowercase()) {
                r.add(
                    C::DuplicateFileName,
                    Some(name),
                    format!("文件 “{name}” 在清单中出现了两次（不区分大小写）。每份材料只列一次。"),
                    format!("The file {name:?} is listed twice (ignoring letter case). List each document once."),
                );
                continue;
            }
            let path = dir.join(name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => {
                    r.add(
                        C::DocumentMissing,
                        Some(name),
                        format!("清单列出的文件 “{name}” 不在文件夹中。如果是复制还没完成就被接收了，请等复制完成、最后再放 READY 文件后重新放入；否则请放入该文件，或从清单中删除。"),
                        format!("The manifest lists {name:?}, but the folder does not contain it. If the copy had not finished when the folder was taken, drop it again once the copy is complete (write READY last); otherwise add the file or remove it from the manifest."),
                    );
                    continue;
                }
            };
            if !meta.file_type().is_file() {
                r.add(
                    C::NotARegularFile,
                    Some(name),
                    format!("“{name}” 不是普通文件（是快捷方式、文件夹或特殊文件）。请放入文件本身。"),
                    format!("{name:?} is not a regular file (a link, folder or special file). Put the document itself in the folder."),
                );
                continue;
            }
            if meta.nlink() > 1 {
                r.add(
                    C::HardLinkedFile,
                    Some(name),
                    format!("“{name}” 是硬链接，可能在处理中被他处修改。请复制一份真实文件放入。"),
                    format!("{name:?} is a hard link and could change behind our back. Put a real copy of the file in the folder."),
                );
                continue;
            }
            let mut file = match crate::fsutil::open_regular_nofollow(&path) {
                Ok(f) => f,
                Err(e) => {
                    r.add(
                        C::Unreadable,
                        Some(name),
                        format!("无法读取 “{name}”（{}）。请检查文件权限。", zh_io(&e)),
                        format!("{name:?} cannot be read ({e}). Check the file's permissions."),
                    );
                    continue;
                }
            };
            let size = meta.len();
            if size == 0 {
                r.add(
                    C::DocumentEmpty,
                    Some(name),
                    format!("“{name}” 是空文件（0 字节），可能复制未完成。请重新放入完整文件。"),
                    format!("{name:?} is empty (0 bytes); the copy may not have finished. Put the complete file in again."),
                );
                continue;
            }
            if size > limits.max_document_size {
                r.add(
                    C::DocumentTooLarge,
                    Some(name),
                    {
                        let (size, limit) = crate::types::size_vs_limit(size, limits.max_document_size);
                        format!("“{name}” 大小为 {size}，超过单个文件上限 {limit}。请降低扫描分辨率或拆分。")
                    },
                    {
                        let (size, limit) = crate::types::size_vs_limit(size, limits.max_document_size);
                        format!("{name:?} is {size}, over the per-file limit of {limit}. Scan at a lower resolution or split it.")
                    },
                );
                continue;
            }
            total = total.saturating_add(size);
            let sniffed = match sniff(&mut file) {
                Ok(t) => t,
                Err(e) => {
                    unreadable(r, name, &e);
                    continue;
                }
            };
            let ext = Path::new(name)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            let Some(media_type) = sniffed else {
                r.add(
                    C::DocumentTypeNotAllowed,
                    Some(name),
                    format!("“{name}” 的内容不是允许的格式（PDF、OFD、JPEG、PNG、TIFF）。仅改扩展名无效，请另存为 PDF。"),
                    format!("The content of {name:?} is not an allowed type (PDF, OFD, JPEG, PNG, TIFF). Renaming does not help; save it as PDF."),
                );
                continue;
            };
            if MediaType::from_extension(ext) != Some(media_type) {
                r.add(
                    C::DocumentTypeMismatch,
                    Some(name),
                    format!(
                        "“{name}” 的内容是 {}，但扩展名是 “.{ext}”。请把扩展名改为 .{}。",
                        media_type.mime(),
                        media_type.extensions()[0]
                    ),
                    format!(
                        "{name:?} contains {} but is named .{ext}. Rename it to .{}.",
                        media_type.mime(),
                        media_type.extensions()[0]
                    ),
                );
                continue;
            }
            match looks_truncated(&mut file, size, media_type) {
                Ok(false) => {}
                Ok(true) => {
                    r.add(
                        C::DocumentTruncated,
                        Some(name),
                        format!("“{name}” 不完整：文件在应有的结尾（{}）之前就结束了，可能复制还没完成就被接收了。请等复制完成、最后再放 READY 文件后重新放入完整文件。", media_type.end_marker()),
                        format!("{name:?} is incomplete: it ends before the end its format requires ({}), so the copy may not have finished when it was taken. Drop the complete file again once the copy is finished (write READY last).", media_type.end_marker()),
                    );
                    continue;
                }
                Err(e) => {
                    unreadable(r, name, &e);
                    continue;
                }
            }
            if let Some(role) = role {
                docs.push(Document {
                    name: name.to_owned(),
                    role,
                    media_type,
                    size,
                    path,
                });
            }
        }
        if total > limits.max_total_size {
            r.add(
                C::TotalTooLarge,
                None,
                {
                    let (total, limit) = crate::types::size_vs_limit(total, limits.max_total_size);
                    format!("材料合计 {total}，超过上限 {limit}。")
                },
                {
                    let (total, limit) = crate::types::size_vs_limit(total, limits.max_total_size);
                    format!("The documents total {total}, over the limit of {limit}.")
                },
            );
        }
        for req in DocRole::REQUIRED {
            if !listed.iter().any(|d| d.role == req.as_str()) {
                r.add(
                    C::RequiredDocumentMissing,
                    Some(MANIFEST_NAME),
                    format!("缺少必需材料：{}（role = \"{}\"）。请放入该文件并在清单中列出。", req.zh(), req.as_str()),
                    format!("A required document is missing: the {} (role = \"{}\"). Add it and list it in the manifest.", req.en(), req.as_str()),
                );
            }
        }
        // Anything in the folder that is neither listed nor ignorable.
        if let Ok(entries) = fs::read_dir(dir) {
            let listed_names: BTreeSet<&str> = listed.iter().map(|d| d.file.as_str()).collect();
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let os = e.file_name();
                let lossy = os.to_string_lossy();
                let shown = crate::types::printable(&lossy).into_owned();
                if lossy == MANIFEST_NAME || IGNORED_FILES.contains(&lossy.as_ref()) {
                    continue;
                }
                if os.to_str().is_some_and(|n| listed_names.contains(n)) {
                    continue;
                }
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let (zh, en) = if is_dir {
                    (
                        format!("文件夹中有子文件夹 “{shown}”。请把材料直接放在申请文件夹中，不要嵌套。"),
                        format!("The folder contains a sub-folder \"{shown}\". Put documents directly in the application folder, not nested."),
                    )
                } else {
                    (
                        format!("文件 “{shown}” 在文件夹中，但清单没有列出。请在清单中列出它，或把它移走。"),
                        format!("The file \"{shown}\" is in the folder but not in the manifest. List it, or move it out."),
                    )
                };
                r.add(
                    if is_dir {
                        C::NotARegularFile
                    } else {
                        C::DocumentUnlisted
                    },
                    Some(&shown),
                    zh,
                    en,
                );
            }
        }
        docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        for ok in [
            "财产保全申请书.pdf",
            "payslips.jpg",
            "a b.pdf",
            "证据-工资流水.jpg",
        ] {
            assert_eq!(check_safe_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../x.pdf",
            "a/b.pdf",
            "a\\b.pdf",
            "C:x.pdf",
            "CON.pdf",
            "com1.txt",
            "x\n.pdf",
            ".hidden",
            "trail.",
            "a..b",
            "e\u{301}.pdf",
            "evil\u{202E}fdp.exe",
            "zero\u{200B}width.pdf",
        ] {
            assert!(check_safe_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_reason_code_is_listed_and_documented() {
        // A new variant must be added to ALL: this match stops compiling.
        for c in ReasonCode::ALL {
            match c {
                ReasonCode::ManifestMissing
                | ReasonCode::ManifestInvalid
                | ReasonCode::ManifestTooLarge
                | ReasonCode::ManifestFormatUnsupported
                | ReasonCode::CaseNumberInvalid
                | ReasonCode::CourtUnknown
                | ReasonCode::ClaimAmountInvalid
                | ReasonCode::TextFieldInvalid
                | ReasonCode::EmailInvalid
                | ReasonCode::MobileInvalid
                | ReasonCode::LanguageInvalid
                | ReasonCode::RoleInvalid
                | ReasonCode::RequiredDocumentMissing
                | ReasonCode::DocumentMissing
                | ReasonCode::DocumentUnlisted
                | ReasonCode::DuplicateFileName
                | ReasonCode::UnsafeFileName
                | ReasonCode::DocumentTypeNotAllowed
                | ReasonCode::DocumentTypeMismatch
                | ReasonCode::DocumentEmpty
                | ReasonCode::DocumentTruncated
                | ReasonCode::DocumentTooLarge
                | ReasonCode::TotalTooLarge
                | ReasonCode::TooManyDocuments
                | ReasonCode::NotARegularFile
                | ReasonCode::HardLinkedFile
                | ReasonCode::Unreadable
                | ReasonCode::NotAnApplication
                | ReasonCode::ZipInvalid
                | ReasonCode::ZipUnsafeEntry
                | ReasonCode::ZipSymlink
                | ReasonCode::ZipDuplicateEntry
                | ReasonCode::ZipBomb
                | ReasonCode::CaseAlreadyQueued
                | ReasonCode::StillBeingWritten
                | ReasonCode::ZipHeaderMismatch
                | ReasonCode::ZipLeadingData => {}
            }
        }
        assert_eq!(ReasonCode::ALL.len(), 37);
        let doc = include_str!("../docs/application-format.md");
        for c in ReasonCode::ALL {
            assert!(
                doc.contains(&format!("`{}`", c.as_str())),
                "{} is not in docs/application-format.md",
                c.as_str()
            );
        }
    }

    #[test]
    fn amounts() {
        for ok in ["0", "86500.00", "1.5", "123456789012"] {
            assert!(valid_amount(ok), "{ok}");
        }
        for bad in ["", "1,000", "01", "1.", ".5", "1.234", "-3", "1e5"] {
            assert!(!valid_amount(bad), "{bad}");
        }
    }
}
