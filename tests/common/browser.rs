//! A real browser and the stock PDF tools, for tests of printable pages:
//! headless Chromium (`chromium`) prints an HTML file to PDF or takes a
//! screenshot of it; poppler's `pdfinfo`, `pdffonts` and `pdftotext`
//! (`poppler-utils`) read the PDF back. A missing tool fails the test, naming
//! its Debian package (scripts/test installs them as root); nothing is skipped.
//!
//! Each browser run is bounded: Chromium is started in a process group of its
//! own with a throw-away profile, its output goes to files (no pipe to fill
//! up), its exit is polled against a deadline, and the whole group is killed
//! and reaped when the run ends, on success, failure, timeout or panic alike.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// How long one browser run may take.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of `tool` on `PATH`, or why not (naming the package).
fn find(tool: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "`{tool}` is missing: apt-get install {package} (scripts/test installs it as root)"
            )
        })
}

/// The path of `tool` on `PATH`; panics naming the tool and its package.
#[track_caller]
pub fn require(tool: &str, package: &str) -> PathBuf {
    find(tool, package).unwrap_or_else(|e| panic!("{e}"))
}

/// Chromium's path.
pub fn chromium() -> Result<PathBuf, String> {
    find("chromium", "chromium")
}

/// `chromium --version`, e.g. `Chromium 120.0.6099.224 built on Debian GNU/Linux 12 (bookworm)`.
pub fn chromium_version() -> String {
    let out = Command::new(require("chromium", "chromium"))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .expect("chromium --version");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Prints `html` to `pdf` (A4 unless the page says otherwise; no header or
/// footer of the browser's own).
pub fn print_to_pdf(html: &Path, pdf: &Path) -> Result<(), String> {
    let mut flag = OsString::from("--print-to-pdf=");
    flag.push(pdf);
    run(html, &[flag, "--no-pdf-header-footer".into()], pdf)
}

/// Takes a 1240×1754 screenshot of `html` into `png` (A4 at 150 dpi).
pub fn screenshot(html: &Path, png: &Path) -> Result<(), String> {
    let mut flag = OsString::from("--screenshot=");
    flag.push(png);
    run(
        html,
        &[
            flag,
            "--window-size=1240,1754".into(),
            "--hide-scrollbars".into(),
        ],
        png,
    )
}

/// `pdftotext -layout` of the whole document.
pub fn pdf_text(pdf: &Path) -> String {
    let tool = require("pdftotext", "poppler-utils");
    let out = Command::new(tool)
        .args(["-layout", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .expect("run pdftotext");
    assert!(
        out.status.success(),
        "pdftotext {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A word on a page of a PDF and its box, in points from the top left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct WordBox {
    /// The page, from 1.
    pub page: u32,
    /// Left edge.
    pub x_min: f64,
    /// Top edge.
    pub y_min: f64,
    /// Right edge.
    pub x_max: f64,
    /// Bottom edge.
    pub y_max: f64,
    /// The word (as `pdftotext -bbox` escapes it).
    pub text: String,
}

/// Every word of the PDF with its box (`pdftotext -bbox`).
pub fn pdf_word_boxes(pdf: &Path) -> Vec<WordBox> {
    let tool = require("pdftotext", "poppler-utils");
    let out = Command::new(tool)
        .args(["-bbox", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .expect("run pdftotext -bbox");
    assert!(
        out.status.success(),
        "pdftotext -bbox {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8_lossy(&out.stdout);
    let attr = |tag: &str, name: &str| -> f64 {
        let key = format!("{name}=\"");
        tag.split_once(&key)
            .and_then(|(_, rest)| rest.split_once('"'))
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {tag:?}"))
    };
    let mut words = Vec::new();
    let mut page = 0;
    for line in html.lines().map(str::trim) {
        if line.starts_with("<page ") {
            page += 1;
        } else if let Some(rest) = line.strip_prefix("<word ") {
            let (tag, text) = rest.split_once('>').unwrap_or((rest, ""));
            words.push(WordBox {
                page,
                x_min: attr(tag, "xMin"),
                y_min: attr(tag, "yMin"),
                x_max: attr(tag, "xMax"),
                y_max: attr(tag, "yMax"),
                text: text.trim_end_matches("</word>").to_owned(),
            });
        }
    }
    words
}

/// `pdffonts`'s table, then one line `Type 3 font descriptor: <FontName>` for
/// each font descriptor's name in the file.
///
/// Chromium's PDF writer (Skia) embeds TrueType outlines as CID fonts that
/// `pdffonts` names, but fonts with CFF outlines — Noto CJK among them — as
/// Type 3 fonts, which have no base name: `pdffonts` lists them as `[none]`.
/// Their font descriptors still carry the name (`/FontName
/// /CAAAAA+NotoSerifCJKsc-Regular`), written as plain text (Skia compresses
/// streams, never dictionaries); they are listed from the raw bytes.
pub fn pdf_fonts(pdf: &Path) -> String {
    let tool = require("pdffonts", "poppler-utils");
    let out = Command::new(tool)
        .arg(pdf)
        .stdin(Stdio::null())
        .output()
        .expect("run pdffonts");
    assert!(
        out.status.success(),
        "pdffonts {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let bytes = fs::read(pdf).expect("read the PDF");
    for name in font_descriptor_names(&bytes) {
        text.push_str(&format!("Type 3 font descriptor: {name}\n"));
    }
    text
}

/// Every `/FontName /<name>` in uncompressed PDF bytes, in order, without
/// repeats.
fn font_descriptor_names(pdf: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"/FontName";
    let mut names: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(i) = pdf[at..].windows(KEY.len()).position(|w| w == KEY) {
        let mut j = at + i + KEY.len();
        while pdf.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
            j += 1;
        }
        if pdf.get(j) == Some(&b'/') {
            let start = j + 1;
            let end = pdf[start..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || b"/<>[]()".contains(b))
                .map_or(pdf.len(), |n| start + n);
            let name = String::from_utf8_lossy(&pdf[start..end]).into_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        at = j;
    }
    names
}

/// The number of pages, from `pdfinfo`.
pub fn pdf_pages(pdf: &Path) -> u32 {
    let info = pdf_info(pdf);
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count from pdfinfo:\n{info}"))
}

/// `pdfinfo`'s report.
pub fn pdf_info(pdf: &Path) -> String {
    let tool = require("pdfinfo", "poppler-utils");
    let out = Command::new(tool)
        .arg(pdf)
        .stdin(Stdio::null())
        .output()
        .expect("run pdfinfo");
    assert!(
        out.status.success(),
        "pdfinfo {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a Noto CJK font is installed (`fonts-noto-cjk`), as fontconfig
/// sees it.
pub fn has_noto_cjk() -> bool {
    if Path::new("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").is_file() {
        return true;
    }
    Command::new("fc-list")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Noto Sans CJK"))
        .unwrap_or(false)
}

/// A running browser: its process group is killed and the browser reaped
/// when dropped.
struct Browser {
    child: Child,
    reaped: bool,
}

impl Browser {
    fn pid(&self) -> Option<Pid> {
        Pid::from_raw(i32::try_from(self.child.id()).ok()?)
    }

    /// Whether the browser has exited, leaving it a zombie (not reaped), so
    /// that its process group id cannot be reused before the group is killed.
    fn exited(&self) -> Result<bool, String> {
        let pid = self.pid().ok_or("no pid")?;
        rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        )
        .map(|s| s.is_some())
        .map_err(|e| format!("waitid: {e}"))
    }

    /// Kills what is left of the group (helpers the browser started), then
    /// reaps the browser.
    fn finish(&mut self) -> std::io::Result<std::process::ExitStatus> {
        if let Some(pid) = self.pid() {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let status = self.child.wait();
        self.reaped = true;
        status
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.finish();
        }
    }
}

/// Runs headless Chromium on `html` with `extra` flags; succeeds when it
/// exits with status 0 and `out` is a non-empty file.
fn run(html: &Path, extra: &[OsString], out: &Path) -> Result<(), String> {
    let chromium = chromium()?;
    let html = fs::canonicalize(html).map_err(|e| format!("{}: {e}", html.display()))?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let file = |p: &Path| fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut profile = OsString::from("--user-data-dir=");
    profile.push(dir.path().join("profile"));
    let mut url = OsString::from("file://");
    url.push(&html);
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(profile)
    .args(extra)
    .arg(url)
    // The page is rendered, its clock is not under test: a preloaded library
    // (libfaketime, when the suite is run on another day to show it does not
    // depend on the calendar) hangs Chromium's processes.
    .env_remove("LD_PRELOAD")
    .process_group(0)
    .stdin(Stdio::null())
    .stdout(file(&stdout)?)
    .stderr(file(&stderr)?);
    let started = Instant::now();
    let mut browser = Browser {
        child: cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?,
        reaped: false,
    };
    let said = || {
        format!(
            "its standard output:\n{}\nits standard error:\n{}",
            fs::read_to_string(&stdout).unwrap_or_default(),
            fs::read_to_string(&stderr).unwrap_or_default()
        )
    };
    while !browser.exited()? {
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = browser.finish();
            return Err(format!(
                "chromium did not finish within {BROWSER_TIMEOUT:?} ({cmd:?}); {}",
                said()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = browser.finish().map_err(|e| format!("wait: {e}"))?;
    if !status.success() {
        return Err(format!("chromium failed: {status} ({cmd:?}); {}", said()));
    }
    match fs::metadata(out) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!(
            "chromium exited 0 but wrote nothing to {} ({cmd:?}); {}",
            out.display(),
            said()
        )),
    }
}
