//! The printable page of a proof of delivery (送达证明): one self-contained,
//! bilingual (`中文 / English`) HTML5 document for A4 paper.
//!
//! [`render_html`] is a pure function of a [`ProofView`]: the same view gives
//! the same bytes, always (no clock, no randomness, no map iteration order).
//! The verifier relies on that: it re-renders the view from the signed data in
//! the proof file and compares the bytes with the page stored beside it.
//!
//! The page loads nothing: no `<link>`, no `<script>`, no images, no web
//! fonts, no URLs; one inline `<style>` with print rules for A4 and font
//! stacks that exist on Windows (SimSun, Microsoft YaHei) and on Debian
//! (Noto CJK, `fonts-noto-cjk`). Every text taken from the view is
//! HTML-escaped. `tests/proof_render.rs` prints it with headless Chromium and
//! checks the PDF.

use serde::{Deserialize, Serialize};

use crate::application::DocRole;

/// What the page shows: plain, already-validated data taken from the signed
/// envelope, the court's signed receipt and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofView {
    /// The bundle's id: 26 characters of lower-case base32.
    pub bundle_id: String,
    /// 案号: the case number, e.g. `深劳人仲案〔2026〕1234号`.
    pub case_number: String,
    /// 申请人: the applicant's name.
    pub applicant: String,
    /// The sending committee's agency id, e.g. `sz-lac`.
    pub sender: String,
    /// The subject DN of the sender's signing certificate.
    pub sender_subject: String,
    /// The receiving court's agency id, e.g. `sz-futian-court`.
    pub court: String,
    /// The subject DN of the certificate the court signed its receipt with.
    pub court_subject: String,
    /// SHA-256 (64 lower-case hex digits) of that certificate's DER.
    pub court_cert_sha256: String,
    /// The documents sealed in the bundle, in their order.
    pub documents: Vec<DocumentLine>,
    /// SHA-256 of the transfer letter (转办函), for bundles that carry one.
    pub transfer_letter_sha256: Option<String>,
    /// SHA-256 of the bundle's `envelope.json` bytes.
    pub envelope_sha256: String,
    /// SHA-256 of the bundle's `payload.age`.
    pub payload_sha256: String,
    /// Length of `payload.age` in bytes.
    pub payload_length: u64,
    /// When the committee sealed and sent the bundle (`YYYY-MM-DDTHH:MM:SSZ`, UTC).
    pub sent_at: String,
    /// When the court downloaded it (same form), if it fetched rather than
    /// being pushed to.
    pub fetched_at: Option<String>,
    /// When the court received it, as stated in its signed receipt (same form).
    pub received_at: String,
    /// Where the delivery stands in the audit log.
    pub audit: AuditSummary,
    /// When this proof was made (same form).
    pub issued_at: String,
    /// The proof file's name, e.g. `proof-<bundle_id>.zip` (named in the
    /// how-to-verify text).
    pub proof_file: String,
}

/// One sealed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    /// Its file name, e.g. `财产保全申请书.pdf`.
    pub name: String,
    /// Its role id (`docs/application-format.md` §3), e.g.
    /// `preservation-application`; shown by its Chinese and English names
    /// where it is a known role, as it is otherwise.
    pub role: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes (64 lower-case hex digits).
    pub sha256: String,
}

/// The delivery's records in the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Sequence number of the delivery's first record.
    pub first_seq: u64,
    /// Sequence number of its last record (the receipt).
    pub last_seq: u64,
    /// Sequence number of the signed checkpoint that covers them.
    pub checkpoint_seq: u64,
    /// The chain's head hash at that checkpoint (64 lower-case hex digits).
    pub head: String,
    /// When the checkpoint was signed (`YYYY-MM-DDTHH:MM:SSZ`, UTC).
    pub checkpoint_at: String,
}

/// The transfer letter's file name in the payload (`docs/bundle-format.md`).
const TRANSFER_LETTER: &str = "transfer-letter.txt";

/// Shown where a value is absent.
const NONE: &str = "—";

/// The page's only style sheet. Static text: nothing from the view goes into
/// CSS (HTML escaping does not apply inside `<style>`).
const STYLE: &str = r#"@page {
  size: A4;
  margin: 18mm 16mm;
  @bottom-center {
    content: "送达证明 / Proof of Delivery · 第 " counter(page) " 页，共 " counter(pages) " 页 / page " counter(page) " of " counter(pages);
    font-family: "Microsoft YaHei", "微软雅黑", "PingFang SC", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", sans-serif;
    font-size: 8pt;
    color: #000;
  }
}
:root { color-scheme: light; }
html { background: #fff; color: #111; }
body {
  font-family: "SimSun", "宋体", "Songti SC", "Noto Serif CJK SC", "Noto Sans CJK SC", "Source Han Serif SC", "WenQuanYi Zen Hei", serif;
  font-size: 10pt;
  line-height: 1.45;
  max-width: 178mm;
  margin: 10mm auto;
  padding: 0 6mm;
}
h1, h2, th, footer {
  font-family: "Microsoft YaHei", "微软雅黑", "PingFang SC", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", sans-serif;
}
.mono, code {
  font-family: "Consolas", "DejaVu Sans Mono", "Noto Sans Mono CJK SC", monospace;
  font-size: 8pt;
  overflow-wrap: anywhere;
}
.digest { word-break: break-all; }
code { display: inline-block; max-width: 100%; }
header { text-align: center; margin-bottom: 4mm; }
h1 { font-size: 18pt; line-height: 1.3; margin: 0 0 1mm; letter-spacing: 0.04em; }
.case { font-size: 12pt; margin: 0; text-align: center; }
h2 {
  font-size: 11pt;
  margin: 5mm 0 1.5mm;
  padding-bottom: 0.8mm;
  border-bottom: 1px solid #000;
  break-after: avoid;
  page-break-after: avoid;
}
p { margin: 0 0 1.5mm; text-align: justify; overflow-wrap: anywhere; }
.statement p[lang="zh-CN"] { text-indent: 2em; }
.verify p { text-align: left; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; margin: 0 0 1.5mm; }
th, td {
  border: 1px solid #555;
  padding: 0.8mm 1.6mm;
  text-align: left;
  vertical-align: top;
  overflow-wrap: anywhere;
}
th { font-size: 9pt; font-weight: 600; }
thead { display: table-header-group; }
thead th { background: #eee; }
tr, tbody { break-inside: avoid; page-break-inside: avoid; }
.facts th { width: 40mm; }
.docs .no { width: 9mm; }
.docs .role { width: 50mm; }
.docs .size { width: 24mm; }
.docs tr.sha td, .docs tr.sha th { border-top: 1px dotted #555; }
.docs tbody > tr:first-child > td:not(.no) { border-bottom: none; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.sub { display: block; font-size: 9pt; }
.note { font-size: 9pt; }
footer {
  margin-top: 6mm;
  padding-top: 1.5mm;
  border-top: 1px solid #000;
  font-size: 9pt;
  display: flex;
  justify-content: space-between;
  gap: 4mm;
  break-inside: avoid;
}
@media print {
  html, body { background: #fff; color: #000; }
  body { max-width: none; margin: 0; padding: 0; }
  * { print-color-adjust: economy; -webkit-print-color-adjust: economy; }
  thead th { background: none; }
  th, td { border-color: #000; }
  .docs tr.sha td, .docs tr.sha th { border-top-color: #777; }
  .verify, footer { break-inside: avoid; page-break-inside: avoid; }
}
"#;

/// The proof of delivery as a complete HTML5 document (UTF-8), deterministic
/// in `v`.
pub fn render_html(v: &ProofView) -> String {
    let mut h = String::with_capacity(16 * 1024 + v.documents.len() * 512);
    h.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"generator\" content=\"sealpost\">\n");
    h.push_str(&format!(
        "<title>送达证明 / Proof of Delivery — {}</title>\n",
        esc(&v.case_number)
    ));
    h.push_str("<style>\n");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n");
    header(v, &mut h);
    h.push_str("<main>\n");
    statement(v, &mut h);
    particulars(v, &mut h);
    documents(v, &mut h);
    digests(v, &mut h);
    audit(v, &mut h);
    how_to_verify(v, &mut h);
    h.push_str("</main>\n");
    footer(v, &mut h);
    h.push_str("</body>\n</html>\n");
    h
}

/// The heading and the case number.
fn header(v: &ProofView, h: &mut String) {
    h.push_str(&format!(
        "<header>\n<h1>送达证明 / Proof of Delivery</h1>\n\
         <p class=\"case\">{}</p>\n</header>\n",
        esc(&v.case_number),
    ));
}

/// The statement, in Chinese then in English.
fn statement(v: &ProofView, h: &mut String) {
    let (sender, case, applicant, court) = (
        esc(&v.sender),
        esc(&v.case_number),
        esc(&v.applicant),
        esc(&v.court),
    );
    let received = utc(&v.received_at);
    h.push_str("<section class=\"statement\">\n");
    h.push_str(&format!(
        "<p lang=\"zh-CN\">劳动人事争议仲裁委员会 {sender} 已将申请人 {applicant} \
         案（案号：{case}）的财产保全申请发送至 {court}；\
         该法院已于 {received} UTC 以其签名回执确认收到。</p>\n"
    ));
    h.push_str(&format!(
        "<p lang=\"en\">The labor-arbitration committee {sender} sent the property-preservation \
         application of case {case} for the applicant {applicant} to {court}; the court \
         confirmed receipt with its signed receipt at {received} UTC.</p>\n"
    ));
    h.push_str("</section>\n");
}

/// Who sent what to whom, and when.
fn particulars(v: &ProofView, h: &mut String) {
    h.push_str("<section>\n<h2>送达信息 / Particulars</h2>\n<table class=\"facts\">\n<tbody>\n");
    let rows: [(&str, String); 9] = [
        ("案号 / Case number", esc(&v.case_number)),
        ("申请人 / Applicant", esc(&v.applicant)),
        (
            "发送机构 / Sender",
            format!(
                "<span class=\"mono\">{}</span>\
                 <span class=\"sub\">签名证书 / Signing certificate: {}</span>",
                esc(&v.sender),
                esc(&v.sender_subject)
            ),
        ),
        (
            "受送达法院 / Court",
            format!("<span class=\"mono\">{}</span>", esc(&v.court)),
        ),
        (
            "法院证书 / Court certificate",
            format!(
                "{}<span class=\"sub\">SHA-256: <span class=\"mono digest\">{}</span></span>",
                esc(&v.court_subject),
                esc(&v.court_cert_sha256)
            ),
        ),
        ("发送时间 / Sent (UTC)", utc(&v.sent_at)),
        (
            "法院下载时间 / Fetched (UTC)",
            v.fetched_at.as_deref().map_or_else(|| NONE.to_owned(), utc),
        ),
        ("送达时间 / Received (UTC)", utc(&v.received_at)),
        (
            "文书编号 / Bundle id",
            format!("<span class=\"mono\">{}</span>", esc(&v.bundle_id)),
        ),
    ];
    for (label, value) in rows {
        row(h, label, &value);
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// The documents table, the transfer letter last, then the totals.
fn documents(v: &ProofView, h: &mut String) {
    // Two rows a document, kept together: its name, role and size, then its
    // digest on one line of its own.
    h.push_str(
        "<section>\n<h2>送达文书 / Documents delivered</h2>\n<table class=\"docs\">\n<thead>\n\
         <tr><th class=\"no\" rowspan=\"2\">序号<br>No.</th>\
         <th>文件名 / Name</th>\
         <th class=\"role\">类别 / Role</th>\
         <th class=\"size num\">大小（字节）<br>Size (bytes)</th></tr>\n\
         <tr class=\"sha\"><th colspan=\"3\">SHA-256</th></tr>\n</thead>\n",
    );
    let mut total: u64 = 0;
    for (i, d) in v.documents.iter().enumerate() {
        total = total.saturating_add(d.size);
        document(
            h,
            &(i + 1).to_string(),
            &esc(&d.name),
            &role(&d.role),
            &grouped(d.size),
            &esc(&d.sha256),
        );
    }
    if let Some(sha) = &v.transfer_letter_sha256 {
        document(
            h,
            NONE,
            &format!("<span class=\"mono\">{TRANSFER_LETTER}</span>"),
            "转办函 / transfer letter",
            NONE,
            &esc(sha),
        );
    }
    h.push_str("</table>\n");
    h.push_str(&format!(
        "<p class=\"note\">共 {n} 份文件，合计 {bytes} 字节 / {n} document{s}, {bytes} bytes in total{letter}</p>\n",
        n = v.documents.len(),
        s = if v.documents.len() == 1 { "" } else { "s" },
        bytes = grouped(total),
        letter = if v.transfer_letter_sha256.is_some() {
            "；另附系统生成的转办函 / plus the transfer letter the node generated"
        } else {
            ""
        },
    ));
    h.push_str("</section>\n");
}

/// The envelope's and the payload's digests.
fn digests(v: &ProofView, h: &mut String) {
    h.push_str("<section>\n<h2>摘要值 / Digests</h2>\n<table class=\"facts\">\n<tbody>\n");
    row(
        h,
        "信封 SHA-256 / Envelope SHA-256",
        &format!(
            "<span class=\"mono digest\">{}</span><span class=\"sub\">envelope.json</span>",
            esc(&v.envelope_sha256)
        ),
    );
    row(
        h,
        "载荷 SHA-256 / Payload SHA-256",
        &format!(
            "<span class=\"mono digest\">{}</span><span class=\"sub\">payload.age</span>",
            esc(&v.payload_sha256)
        ),
    );
    row(
        h,
        "载荷长度 / Payload length",
        &format!("{} 字节 / bytes", grouped(v.payload_length)),
    );
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Where the delivery stands in the audit log.
fn audit(v: &ProofView, h: &mut String) {
    let a = &v.audit;
    h.push_str("<section>\n<h2>审计记录 / Audit log</h2>\n<table class=\"facts\">\n<tbody>\n");
    row(
        h,
        "审计记录 / Records",
        &format!(
            "第 {f} 至 {l} 条 / records {f} to {l}",
            f = a.first_seq,
            l = a.last_seq
        ),
    );
    row(
        h,
        "签名检查点 / Signed checkpoint",
        &format!("第 {s} 条 / record {s}", s = a.checkpoint_seq),
    );
    row(
        h,
        "链头哈希 / Chain head",
        &format!("<span class=\"mono digest\">{}</span>", esc(&a.head)),
    );
    row(h, "检查点时间 / Checkpoint (UTC)", &utc(&a.checkpoint_at));
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// What the page is, and how to check the file it came in.
fn how_to_verify(v: &ProofView, h: &mut String) {
    let file = esc(&v.proof_file);
    h.push_str("<section class=\"verify\">\n<h2>如何验证 / How to verify</h2>\n");
    h.push_str(&format!(
        "<p lang=\"zh-CN\">本页是同一文件 <code>{file}</code> 中已签名数据的可读呈现，\
         本页本身不带签名；如与签名数据不一致，以签名数据为准。该文件仅凭交换网络的 CA 证书即可离线验证：\
         运行 <code>sealpost verify-proof {file}</code>，\
         或按 docs/proof-format.md 所述，用 openssl、sha256sum 和 unzip 逐步核对。</p>\n"
    ));
    h.push_str(&format!(
        "<p lang=\"en\">This page is a rendering of the signed data in the same file, \
         <code>{file}</code>; the page itself is not signed, and where the two \
         differ the signed data prevail. The file verifies offline with the exchange CA \
         certificate alone: run <code>sealpost verify-proof {file}</code>, or follow the \
         openssl, sha256sum and unzip recipe in docs/proof-format.md.</p>\n"
    ));
    h.push_str("</section>\n");
}

/// When the proof was made, and by what.
fn footer(v: &ProofView, h: &mut String) {
    h.push_str(&format!(
        "<footer>\n<span>出具时间 / Issued: {} UTC</span>\n\
         <span>本页由 sealpost 生成 / Generated by sealpost</span>\n</footer>\n",
        utc(&v.issued_at)
    ));
}

/// One document's rows in the documents table; every argument is HTML already.
fn document(h: &mut String, no: &str, name: &str, role: &str, size: &str, sha256: &str) {
    h.push_str(&format!(
        "<tbody><tr><td class=\"num no\" rowspan=\"2\">{no}</td><td>{name}</td><td>{role}</td>\
         <td class=\"num\">{size}</td></tr>\n\
         <tr class=\"sha\"><td class=\"mono digest\" colspan=\"3\">{sha256}</td></tr></tbody>\n"
    ));
}

/// A two-cell row of a particulars table; `value` is HTML already.
fn row(h: &mut String, label: &str, value: &str) {
    h.push_str(&format!(
        "<tr><th scope=\"row\">{label}</th><td>{value}</td></tr>\n"
    ));
}

/// A document role by its Chinese and English names where it is a known one,
/// as it is (escaped) otherwise.
fn role(id: &str) -> String {
    match DocRole::ALL.iter().find(|r| r.as_str() == id) {
        Some(r) => format!("{} / {}", r.zh(), r.en()),
        None => esc(id),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` as `YYYY-MM-DD HH:MM:SS` (the labels say UTC);
/// anything else as it is, escaped.
fn utc(t: &str) -> String {
    let b = t.as_bytes();
    let shaped = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    match (shaped, t.get(..10), t.get(11..19)) {
        (true, Some(date), Some(time)) => format!("{date} {time}"),
        _ => esc(t),
    }
}

/// `n` with a comma between each group of three digits: `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// HTML-escapes text, for element content and attribute values alike.
fn esc(s: &str) -> String {
    crate::types::html_escape(s)
}

/// A realistic example with fixed values (Chinese names, three documents and
/// a transfer letter, full-length digests): for tests and the documentation.
pub fn sample() -> ProofView {
    let doc = |name: &str, role: DocRole, size: u64, sha256: &str| DocumentLine {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        size,
        sha256: sha256.to_owned(),
    };
    let bundle_id = "c3n5q7ktw2mhx4ajr6vbe2ldpy";
    ProofView {
        bundle_id: bundle_id.to_owned(),
        case_number: "深劳人仲案〔2026〕1234号".to_owned(),
        applicant: "张伟".to_owned(),
        sender: "sz-lac".to_owned(),
        sender_subject: "O=深圳市劳动人事争议仲裁委员会, CN=sz-lac signing key".to_owned(),
        court: "sz-futian-court".to_owned(),
        court_subject: "O=深圳市福田区人民法院, CN=sz-futian-court signing key".to_owned(),
        court_cert_sha256: "adc9243c14647ee95c26f271741f59c1eff50aba40198551cfec2b41b82ff0f5"
            .to_owned(),
        documents: vec![
            doc(
                "财产保全申请书.pdf",
                DocRole::PreservationApplication,
                1_234_567,
                "229d392af2d2e729fc297bec45ed725fa2ba133615a6391a583bdadd77c330d0",
            ),
            doc(
                "仲裁申请书.pdf",
                DocRole::ArbitrationApplication,
                845_210,
                "b4a647d1380b386ec4dc76d9153eda9575a4fc5d28f992d32cda9c9f200124d5",
            ),
            doc(
                "证据-工资流水.jpg",
                DocRole::Evidence,
                3_407_872,
                "1dcf94cedc0cf71c4685dbb5a8b9b7fc65370c4507d3fcc8a5e3aad9274161d4",
            ),
        ],
        transfer_letter_sha256: Some(
            "cb5b1257059ed33962abaff87c743ee2bb03b1c98ef08b46aa981d8bbc7d78da".to_owned(),
        ),
        envelope_sha256: "49eace989ad7ed9cbd227021b054fd88a80fcbddfa4e404640a7ae8254a9506f"
            .to_owned(),
        payload_sha256: "bd7cca2e051498344c6ad8c38a53bdd6fab163da026c7ba44986be5457e8a697"
            .to_owned(),
        payload_length: 5_492_736,
        sent_at: "2026-03-05T01:58:12Z".to_owned(),
        fetched_at: Some("2026-03-05T02:03:40Z".to_owned()),
        received_at: "2026-03-05T02:03:41Z".to_owned(),
        audit: AuditSummary {
            first_seq: 4812,
            last_seq: 4817,
            checkpoint_seq: 4820,
            head: "1cb535f5fc1a027ebffa6b02ff892aba012cd3bcb4d69a7b1974132038505f4a".to_owned(),
            checkpoint_at: "2026-03-05T03:00:00Z".to_owned(),
        },
        issued_at: "2026-03-05T03:05:27Z".to_owned(),
        proof_file: format!("proof-{bundle_id}.zip"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_view_renders_to_the_same_bytes() {
        let v = sample();
        let a = render_html(&v);
        assert_eq!(a, render_html(&v));
        assert_eq!(a, render_html(&v.clone()));
        // Through serde and back, as the verifier reads the view.
        let json = serde_json::to_string(&v).expect("to json");
        let back: ProofView = serde_json::from_str(&json).expect("from json");
        assert_eq!(a, render_html(&back));
        // And a change shows.
        let mut w = v;
        w.documents[1].size += 1;
        assert_ne!(a, render_html(&w));
    }

    #[test]
    fn every_text_from_the_view_is_escaped() {
        let nasty = "<script>&\"'";
        let mut v = sample();
        v.bundle_id = nasty.to_owned();
        v.case_number = nasty.to_owned();
        v.applicant = nasty.to_owned();
        v.sender = nasty.to_owned();
        v.sender_subject = nasty.to_owned();
        v.court = nasty.to_owned();
        v.court_subject = nasty.to_owned();
        v.court_cert_sha256 = nasty.to_owned();
        v.documents[0].name = nasty.to_owned();
        v.documents[1].role = nasty.to_owned();
        v.documents[2].sha256 = nasty.to_owned();
        v.transfer_letter_sha256 = Some(nasty.to_owned());
        v.envelope_sha256 = nasty.to_owned();
        v.payload_sha256 = nasty.to_owned();
        v.sent_at = nasty.to_owned();
        v.fetched_at = Some(nasty.to_owned());
        v.received_at = nasty.to_owned();
        v.audit.head = nasty.to_owned();
        v.audit.checkpoint_at = nasty.to_owned();
        v.issued_at = nasty.to_owned();
        v.proof_file = nasty.to_owned();
        let html = render_html(&v);
        assert!(!html.contains(nasty), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("&\""), "{html}");
        let escaped = "&lt;script&gt;&amp;&quot;&#39;";
        // Where the view's texts appear: the title 1, the header 1, the
        // statement 10, particulars 11, documents 4, digests 2, audit 2, how
        // to verify 4, the footer 1.
        assert_eq!(html.matches(escaped).count(), 36, "{html}");
        // The markup's own quotes and apostrophes are all that is left.
        assert!(!html.contains('\''), "{html}");
    }

    #[test]
    fn the_page_loads_nothing() {
        let mut v = sample();
        v.documents.push(DocumentLine {
            name: "更多材料.ofd".to_owned(),
            role: "other".to_owned(),
            size: 0,
            sha256: "0".repeat(64),
        });
        let html = render_html(&v).to_ascii_lowercase();
        for bad in [
            "http",
            "<link",
            "<script",
            "src=",
            "<img",
            "<iframe",
            "<object",
            "<embed",
            "@import",
            "url(",
            "@font-face",
            "href",
        ] {
            assert!(!html.contains(bad), "the page contains {bad:?}");
        }
    }

    #[test]
    fn the_page_shows_every_digest_and_the_case() {
        let v = sample();
        let html = render_html(&v);
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(
            html.contains("<title>送达证明 / Proof of Delivery — 深劳人仲案〔2026〕1234号</title>")
        );
        assert!(html.contains("@page {\n  size: A4;\n  margin: 18mm 16mm;"));
        assert!(html.contains(&v.case_number));
        assert_eq!(v.documents.len(), 3);
        for d in &v.documents {
            assert!(html.contains(&d.sha256), "{}", d.sha256);
            assert!(html.contains(&d.name), "{}", d.name);
        }
        for digest in [
            v.transfer_letter_sha256
                .as_deref()
                .expect("a transfer letter"),
            &v.envelope_sha256,
            &v.payload_sha256,
            &v.court_cert_sha256,
            &v.audit.head,
        ] {
            assert!(html.contains(digest), "{digest}");
        }
        for text in [
            "财产保全申请书 / property preservation application",
            "1,234,567",
            "5,492,736 字节 / bytes",
            "2026-03-05 02:03:41",
            "第 4812 至 4817 条 / records 4812 to 4817",
            "sealpost verify-proof proof-c3n5q7ktw2mhx4ajr6vbe2ldpy.zip",
            "docs/proof-format.md",
            "本页由 sealpost 生成 / Generated by sealpost",
            "2026-03-05 03:05:27 UTC",
        ] {
            assert!(html.contains(text), "{text}");
        }
        assert_eq!(v.bundle_id.len(), 26);
    }

    #[test]
    fn absent_values_show_a_dash_and_pushes_have_no_fetch_time() {
        let mut v = sample();
        v.fetched_at = None;
        v.transfer_letter_sha256 = None;
        let html = render_html(&v);
        assert!(html.contains("<th scope=\"row\">法院下载时间 / Fetched (UTC)</th><td>—</td>"));
        assert!(!html.contains("transfer-letter.txt"));
        assert!(!html.contains("2026-03-05 02:03:40"));
    }

    #[test]
    fn helpers() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(utc("2026-03-05T02:03:41Z"), "2026-03-05 02:03:41");
        assert_eq!(utc("2026-03-05 02:03:41"), "2026-03-05 02:03:41");
        assert_eq!(
            utc("2026-03-05T02:03:41+08:00"),
            "2026-03-05T02:03:41+08:00"
        );
        assert_eq!(utc("２026-03-05T02:03:41Z"), "２026-03-05T02:03:41Z");
        assert_eq!(role("identity"), "身份证明 / proof of identity");
        assert_eq!(role("<x>"), "&lt;x&gt;");
        assert_eq!(esc("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    }
}
