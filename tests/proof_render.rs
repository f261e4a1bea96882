//! The proof of delivery's printable page (`sealpost::evidence::render`) in a
//! real browser: headless Chromium prints it to PDF and takes a screenshot;
//! poppler's tools check the PDF is A4, of the expected length, set in a
//! Chinese font (not tofu), with every digest whole and nothing outside the
//! page's margins. Chromium, poppler-utils and fonts-noto-cjk are needed: a
//! missing one fails the test, naming the package (scripts/test installs them).
//!
//! With `PROOF_RENDER_OUT=<folder>` the HTML, PDF and PNG files are written
//! there (and kept) for a look.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::browser;
use sealpost::evidence::render::{render_html, sample, DocumentLine, ProofView};

/// A4 in PostScript points.
const A4: (f64, f64) = (595.28, 841.89);
/// The page's left and right margins (16 mm) in points.
const SIDE_MARGIN: f64 = 16.0 * 72.0 / 25.4;

/// Fails, naming the package, unless every tool and the fonts are there.
fn preflight() {
    browser::require("chromium", "chromium");
    for tool in ["pdfinfo", "pdffonts", "pdftotext"] {
        browser::require(tool, "poppler-utils");
    }
    assert!(
        browser::has_noto_cjk(),
        "no Noto CJK font (fc-list shows no 'Noto Sans CJK'): apt-get install fonts-noto-cjk \
         (scripts/test installs it as root)"
    );
}

/// The sample with `n` documents.
fn with_documents(n: usize) -> ProofView {
    let mut v = sample();
    let roles = [
        "evidence",
        "identity",
        "property-clue",
        "guarantee",
        "other",
    ];
    v.documents = (0..n)
        .map(|i| DocumentLine {
            name: format!("证据材料-{:02}-银行流水与工资发放记录.pdf", i + 1),
            role: roles[i % roles.len()].to_owned(),
            size: 10_000 + 7_919 * i as u64 * i as u64,
            sha256: format!(
                "{:016x}",
                0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)
            )
            .repeat(4),
        })
        .collect();
    v
}

/// Writes the page into `dir` as `<stem>.html`; returns its path.
fn write_page(dir: &Path, stem: &str, v: &ProofView) -> PathBuf {
    let html = dir.join(format!("{stem}.html"));
    fs::write(&html, render_html(v)).expect("write the page");
    html
}

/// Where the files go: `$PROOF_RENDER_OUT` when set (kept for a look, also
/// when the test fails), a temporary folder otherwise.
fn workdir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("PROOF_RENDER_OUT") {
        Some(out) => {
            fs::create_dir_all(&out).expect("PROOF_RENDER_OUT");
            (None, PathBuf::from(out))
        }
        None => {
            let tmp = tempfile::tempdir().expect("tempdir");
            let path = tmp.path().to_owned();
            (Some(tmp), path)
        }
    }
}

/// Text without any white space (digests may wrap across lines).
fn squeezed(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Prints `html` to `pdf` and checks what every printed proof must be: a PDF,
/// A4, in a Chinese font, with the heading, the case, every digest, and no
/// word outside the left and right margins. Returns the text and the words.
fn print_and_check(html: &Path, pdf: &Path, v: &ProofView) -> (String, Vec<browser::WordBox>) {
    if let Err(e) = browser::print_to_pdf(html, pdf) {
        panic!("{} ({}): {e}", html.display(), browser::chromium_version());
    }
    let bytes = fs::read(pdf).expect("the PDF");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF: {}", pdf.display());

    let info = browser::pdf_info(pdf);
    let size = info
        .lines()
        .find_map(|l| l.strip_prefix("Page size:"))
        .unwrap_or_else(|| panic!("no page size from pdfinfo:\n{info}"));
    let mut dims = size.split_whitespace();
    let w: f64 = dims.next().and_then(|x| x.parse().ok()).expect("width");
    assert_eq!(dims.next(), Some("x"), "{size}");
    let h: f64 = dims.next().and_then(|x| x.parse().ok()).expect("height");
    assert!(
        (w - A4.0).abs() < 1.0 && (h - A4.1).abs() < 1.0 && size.contains("(A4)"),
        "not A4: {size}"
    );

    let fonts = browser::pdf_fonts(pdf);
    assert!(
        fonts.contains("CJK") || fonts.contains("WenQuanYi"),
        "no Chinese font in the PDF (apt-get install fonts-noto-cjk):\n{fonts}"
    );

    let text = browser::pdf_text(pdf);
    let flat = squeezed(&text);
    for needle in ["送达证明", "Proof of Delivery", "如何验证", "How to verify"] {
        assert!(
            text.contains(needle),
            "{needle:?} not in the PDF's text:\n{text}"
        );
    }
    assert!(
        flat.contains(&squeezed(&v.case_number)),
        "the case number is not in the PDF's text:\n{text}"
    );
    let mut digests: Vec<&str> = v.documents.iter().map(|d| d.sha256.as_str()).collect();
    digests.extend([
        v.envelope_sha256.as_str(),
        v.payload_sha256.as_str(),
        v.court_cert_sha256.as_str(),
        v.audit.head.as_str(),
    ]);
    digests.extend(v.transfer_letter_sha256.as_deref());
    for d in digests {
        assert!(
            flat.contains(d),
            "digest {d} is not whole in the PDF's text:\n{text}"
        );
    }

    // Nothing runs off the page: every word lies within the side margins.
    let boxes = browser::pdf_word_boxes(pdf);
    assert!(boxes.len() > 50, "too few words: {}", boxes.len());
    for b in &boxes {
        assert!(
            b.x_min >= SIDE_MARGIN - 1.0 && b.x_max <= A4.0 - SIDE_MARGIN + 1.0,
            "{b:?} lies outside the margins ({SIDE_MARGIN:.1} pt each side)"
        );
    }
    (text, boxes)
}

/// `n` with thousands separators, as the page shows sizes.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_sample_prints_on_one_a4_page_in_a_chinese_font() {
    preflight();
    eprintln!("{}", browser::chromium_version());
    let (_tmp, dir) = workdir();
    let v = sample();
    let html = write_page(&dir, "proof-sample", &v);
    let pdf = dir.join("proof-sample.pdf");
    let png = dir.join("proof-sample.png");

    let (text, _) = print_and_check(&html, &pdf, &v);
    let pages = browser::pdf_pages(&pdf);
    assert!(
        (1..=2).contains(&pages),
        "the sample takes {pages} pages:\n{text}"
    );
    assert!(
        text.contains(&format!("page 1 of {pages}")),
        "no page footer:\n{text}"
    );

    if let Err(e) = browser::screenshot(&html, &png) {
        panic!("{}: {e}", browser::chromium_version());
    }
    let bytes = fs::read(&png).expect("the PNG");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        png.display()
    );
    // IHDR: width and height, big-endian, after the signature and chunk header.
    let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!((dim(16), dim(20)), (1240, 1754), "screenshot size");
    assert!(
        bytes.len() > 50_000,
        "the screenshot is nearly empty: {} bytes",
        bytes.len()
    );
}

#[test]
fn forty_documents_print_on_several_pages_with_the_table_header_on_each() {
    preflight();
    let (_tmp, dir) = workdir();
    let v = with_documents(40);
    let html = write_page(&dir, "proof-40-documents", &v);
    let pdf = dir.join("proof-40-documents.pdf");

    let (text, words) = print_and_check(&html, &pdf, &v);
    let pages = browser::pdf_pages(&pdf);
    assert!(pages > 1, "40 documents on {pages} page:\n{text}");
    assert!(
        text.contains(&format!("page {pages} of {pages}")),
        "no footer on the last page:\n{text}"
    );
    // The documents table runs over a page break: its header is repeated.
    let with_header = text
        .split('\u{c}')
        .filter(|page| page.contains("文件名 / Name"))
        .count();
    assert!(
        with_header >= 2,
        "the documents table's header is on {with_header} page(s):\n{text}"
    );
    assert!(text.contains("共 40 份文件"), "{text}");
    // No document is split by a page break: its size (first row) and its
    // digest (second row, one line, one word) are on the same page.
    let page_of = |word: &str| words.iter().find(|w| w.text == word).map(|w| w.page);
    for (i, d) in v.documents.iter().enumerate() {
        let size = grouped(d.size);
        let first = page_of(&size).unwrap_or_else(|| panic!("no size {size}:\n{text}"));
        let second = page_of(&d.sha256)
            .unwrap_or_else(|| panic!("digest {} is not one word:\n{text}", d.sha256));
        assert_eq!(
            first,
            second,
            "document {} is split between pages {first} and {second}",
            i + 1
        );
    }
}
