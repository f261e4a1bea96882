//! Hostile-input corpus for intake.
//!
//! Every case is one drop a clerk (or an attacker with access to the intake
//! share) could make: the static ones live in `fixtures/hostile/<case>/`
//! (regenerate with `fixtures/hostile/generate.py`), the ones git cannot hold
//! (links, FIFOs, sockets, non-UTF-8 names, thousands of files, zips) are built
//! here. `fixtures/hostile/README.md` lists them all; a test checks the table
//! below, the fixture folders and the README agree.
//!
//! For every case, in a fresh exchange and intake: the drop is rejected with the
//! expected reason code (and no code outside the case's short list of
//! acceptable side effects); `rejected/<name>/<name>` is the drop, unchanged
//! (names, types, modes, sizes, contents, link targets); `REJECTED.txt` and
//! `rejection.json` explain it in Chinese and English; nothing is queued and
//! nothing is left behind in `.work/`, `accepted/` or `archive/`; and the same
//! `Intake` then accepts a valid application.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sealpost::intake::{Intake, Outcome};
use sealpost::outbox::Outbox;

const BASE: &str = "zhang-wei-futian";
const MANIFEST: &str = "application.toml";
const PRESERVATION: &str = "财产保全申请书.pdf";
const NOTICE: &str = "受理通知书.pdf";

// ------------------------------------------------------------------- table

/// What a case needs besides its drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// A fresh exchange with default limits.
    Plain,
    /// `max_document_size` 1 MiB, `max_total_size` 100 KiB (the valid
    /// application still fits).
    SmallLimits,
    /// A valid application with the same case number is accepted first.
    QueuedFirst,
}

const SMALL_DOCUMENT: u64 = 1 << 20;
const SMALL_TOTAL: u64 = 100 << 10;

/// Places the drop in `ctx.intake` and returns its name there.
type Build = fn(&Ctx<'_>) -> OsString;

enum Source {
    /// `fixtures/hostile/<case>/`: the folder itself is dropped, or, when it
    /// holds a single file (not `application.toml`), that file.
    Fixture,
    /// Built by the test.
    Built(Build),
}

struct Case {
    name: &'static str,
    source: Source,
    /// The code that must be among the reasons.
    expect: &'static str,
    /// Other codes the one broken thing may also cause (e.g. a renamed file is
    /// both missing and unlisted). Any code outside `expect` + `also` fails.
    also: &'static [&'static str],
    setup: Setup,
}

const fn fixture(name: &'static str, expect: &'static str, also: &'static [&'static str]) -> Case {
    Case {
        name,
        source: Source::Fixture,
        expect,
        also,
        setup: Setup::Plain,
    }
}

const fn built(
    name: &'static str,
    build: Build,
    expect: &'static str,
    also: &'static [&'static str],
) -> Case {
    Case {
        name,
        source: Source::Built(build),
        expect,
        also,
        setup: Setup::Plain,
    }
}

const fn with(mut case: Case, setup: Setup) -> Case {
    case.setup = setup;
    case
}

const NONE: &[&str] = &[];
const UNLISTED: &[&str] = &["document-unlisted"];

fn cases() -> Vec<Case> {
    vec![
        // The manifest (static).
        fixture("manifest-missing", "manifest-missing", NONE),
        fixture("manifest-is-folder", "not-a-regular-file", NONE),
        fixture("manifest-gbk-encoded", "manifest-invalid", NONE),
        fixture("manifest-too-large", "manifest-too-large", NONE),
        fixture("manifest-unknown-key", "manifest-invalid", NONE),
        fixture("manifest-wrong-type", "manifest-invalid", NONE),
        fixture(
            "manifest-format-unsupported",
            "manifest-format-unsupported",
            NONE,
        ),
        // The fields (static).
        fixture("case-number-empty", "case-number-invalid", NONE),
        fixture("court-unknown", "court-unknown", NONE),
        fixture("court-is-committee", "court-unknown", NONE),
        fixture("claim-amount-comma", "claim-amount-invalid", NONE),
        fixture("applicant-name-newline", "text-field-invalid", NONE),
        fixture("respondent-address-crlf", "text-field-invalid", NONE),
        fixture("email-invalid", "email-invalid", NONE),
        fixture("mobile-invalid", "mobile-invalid", NONE),
        fixture("language-invalid", "language-invalid", NONE),
        fixture("role-invalid", "role-invalid", NONE),
        // The documents (static).
        fixture(
            "missing-preservation-application",
            "required-document-missing",
            NONE,
        ),
        fixture(
            "missing-arbitration-application",
            "required-document-missing",
            NONE,
        ),
        fixture(
            "missing-acceptance-notice",
            "required-document-missing",
            NONE,
        ),
        fixture("document-missing", "document-missing", NONE),
        fixture("document-unlisted", "document-unlisted", NONE),
        fixture("unsafe-name-dotdot", "unsafe-file-name", NONE),
        fixture("unsafe-name-absolute", "unsafe-file-name", NONE),
        fixture("unsafe-name-con", "unsafe-file-name", NONE),
        fixture("duplicate-listing", "duplicate-file-name", NONE),
        fixture("too-many-documents", "too-many-documents", NONE),
        fixture("document-empty", "document-empty", NONE),
        fixture("exe-named-pdf", "document-type-not-allowed", NONE),
        fixture("png-named-pdf", "document-type-mismatch", NONE),
        fixture("nested-folders", "not-a-regular-file", NONE),
        fixture("document-is-folder", "not-a-regular-file", NONE),
        fixture("lookalike-name-on-disk", "document-missing", UNLISTED),
        fixture("lookalike-name-listed", "unsafe-file-name", NONE),
        fixture("cyrillic-extension", "document-type-mismatch", NONE),
        // Things that are not an application (static).
        fixture("stray-docx", "not-an-application", NONE),
        fixture("rar-named-zip", "zip-invalid", NONE),
        fixture("stray-named-rejected-txt", "not-an-application", NONE),
        // Special files and links (built).
        built(
            "symlink-to-signing-key",
            symlink_to_signing_key,
            "not-a-regular-file",
            NONE,
        ),
        built(
            "manifest-symlink",
            manifest_symlink,
            "not-a-regular-file",
            NONE,
        ),
        built(
            "hardlinked-document",
            hardlinked_document,
            "hard-linked-file",
            NONE,
        ),
        built(
            "hardlinked-manifest",
            hardlinked_manifest,
            "hard-linked-file",
            NONE,
        ),
        built("fifo-document", fifo_document, "not-a-regular-file", NONE),
        built("fifo-manifest", fifo_manifest, "not-a-regular-file", NONE),
        built(
            "socket-document",
            socket_document,
            "not-a-regular-file",
            NONE,
        ),
        built("item-symlink", item_symlink, "not-an-application", NONE),
        built("item-fifo-zip", item_fifo_zip, "not-an-application", NONE),
        // Names and numbers (built).
        built(
            "ten-thousand-files",
            ten_thousand_files,
            "document-unlisted",
            NONE,
        ),
        built(
            "invalid-utf8-item-name",
            invalid_utf8_item_name,
            "unsafe-file-name",
            NONE,
        ),
        built(
            "invalid-utf8-long-item-name",
            invalid_utf8_long_item_name,
            "unsafe-file-name",
            NONE,
        ),
        built(
            "invalid-utf8-document-name",
            invalid_utf8_document_name,
            "document-unlisted",
            NONE,
        ),
        with(
            built(
                "document-too-large",
                document_too_large,
                "document-too-large",
                NONE,
            ),
            Setup::SmallLimits,
        ),
        with(
            built("total-too-large", total_too_large, "total-too-large", NONE),
            Setup::SmallLimits,
        ),
        // Zips (built).
        built("zip-slip-dotdot", zip_slip_dotdot, "zip-unsafe-entry", NONE),
        built(
            "zip-slip-backslash",
            zip_slip_backslash,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-absolute-path",
            zip_absolute_path,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-drive-letter",
            zip_drive_letter,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-control-char-name",
            zip_control_char_name,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-empty-entry-name",
            zip_empty_entry_name,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-gbk-entry-name",
            zip_gbk_entry_name,
            "zip-unsafe-entry",
            NONE,
        ),
        built(
            "zip-duplicate-entry",
            zip_duplicate_entry,
            "zip-duplicate-entry",
            NONE,
        ),
        built("zip-symlink", zip_symlink, "zip-symlink", NONE),
        built("zip-deflate-bomb", zip_deflate_bomb, "zip-bomb", NONE),
        built(
            "zip-declared-size-bomb",
            zip_declared_size_bomb,
            "zip-bomb",
            NONE,
        ),
        built("zip-lying-size", zip_lying_size, "zip-invalid", NONE),
        built("zip-overlap-bomb", zip_overlap_bomb, "zip-bomb", NONE),
        built(
            "zip-aliased-entries",
            zip_aliased_entries,
            "zip-header-mismatch",
            NONE,
        ),
        built(
            "zip-local-name-differs",
            zip_local_name_differs,
            "zip-header-mismatch",
            NONE,
        ),
        built(
            "zip-local-crc-differs",
            zip_local_crc_differs,
            "zip-header-mismatch",
            NONE,
        ),
        built(
            "zip-leading-data",
            zip_leading_data,
            "zip-leading-data",
            NONE,
        ),
        built("zip-hardlinked", zip_hardlinked, "hard-linked-file", NONE),
        built(
            "manifest-too-large-chinese",
            manifest_too_large_chinese,
            "manifest-too-large",
            NONE,
        ),
        built(
            "document-truncated-pdf",
            document_truncated_pdf,
            "document-truncated",
            NONE,
        ),
        built("zip-overlap-many", zip_overlap_many, "zip-bomb", NONE),
        built(
            "zip-too-many-entries",
            zip_too_many_entries,
            "zip-bomb",
            NONE,
        ),
        built("zip-truncated", zip_truncated, "zip-invalid", NONE),
        built(
            "zip-encrypted-entry",
            zip_encrypted_entry,
            "zip-invalid",
            NONE,
        ),
        built(
            "zip-nested-too-deep",
            zip_nested_too_deep,
            "not-a-regular-file",
            NONE,
        ),
        built(
            "zip-exe-named-pdf",
            zip_exe_named_pdf,
            "document-type-not-allowed",
            NONE,
        ),
        // The queue (built).
        with(
            built(
                "case-already-queued",
                case_already_queued,
                "case-already-queued",
                NONE,
            ),
            Setup::QueuedFirst,
        ),
    ]
}

// ------------------------------------------------------------------- tests

#[test]
fn every_hostile_case_is_rejected_intact_and_intake_recovers() {
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "only {} hostile cases in the table",
        cases.len()
    );
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    // Two at a time (the machine has two cores); every case runs even if an
    // earlier one fails, and all failures are reported together.
    let queue = std::sync::Mutex::new(cases.iter().collect::<Vec<_>>());
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(case) = next else { break };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case)));
                if let Err(p) = r {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panicked".to_owned());
                    failures
                        .lock()
                        .expect("failures lock")
                        .push(if msg.starts_with(case.name) {
                            msg
                        } else {
                            format!("{}: {msg}", case.name)
                        });
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("failures");
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// The table, the fixture folders and the README agree: no fixture without a
/// row, no static row without its folder, every case documented with its code.
#[test]
fn table_fixtures_and_readme_agree() {
    let cases = cases();
    let dir = hostile_dir();
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .expect("fixtures/hostile")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().expect("type").is_dir())
        .map(|e| e.file_name().into_string().expect("UTF-8 case name"))
        .collect();
    let fixtures: BTreeSet<String> = cases
        .iter()
        .filter(|c| matches!(c.source, Source::Fixture))
        .map(|c| c.name.to_owned())
        .collect();
    assert_eq!(
        on_disk, fixtures,
        "fixtures/hostile/ folders and the static rows of the table differ"
    );

    let readme = fs::read_to_string(dir.join("README.md")).expect("fixtures/hostile/README.md");
    let mut documented = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `case` | what | `code` |
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_owned();
        let code = cells[3]
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("README row {name}: no `code` in the third column"))
            .to_owned();
        let built = cells[2].contains("(built by the test)");
        assert!(
            documented.insert(name.clone(), (code, built)).is_none(),
            "README lists {name} twice"
        );
    }
    let table: BTreeMap<String, (String, bool)> = cases
        .iter()
        .map(|c| {
            (
                c.name.to_owned(),
                (c.expect.to_owned(), matches!(c.source, Source::Built(_))),
            )
        })
        .collect();
    for (name, row) in &table {
        match documented.get(name) {
            None => panic!("case {name} is not in fixtures/hostile/README.md"),
            Some(doc) => assert_eq!(
                doc, row,
                "README row for {name}: (code, built by the test) differs from the test table"
            ),
        }
    }
    for name in documented.keys() {
        assert!(
            table.contains_key(name),
            "README lists {name}, which is not in the test table"
        );
    }
}

/// The controls: the base application is accepted as a folder, as a flat zip
/// and as a zip holding one folder, so the rejections above are the hostile
/// part's doing and not the base's.
#[test]
fn valid_controls_are_accepted() {
    let net = common::Net::new();
    let cfg = net.config(common::COMMITTEE);
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let dirs = intake.dirs().clone();
    // Each with its own case number, or the later ones would be case-already-queued.
    let files = |n: u32| -> Vec<(String, Vec<u8>)> {
        base_files()
            .into_iter()
            .map(|(name, data)| {
                if name == MANIFEST {
                    let m = String::from_utf8(data).expect("manifest");
                    (name, m.replace("1234号", &format!("{n}号")).into_bytes())
                } else {
                    (name, data)
                }
            })
            .collect()
    };
    common::copy_fixture(BASE, &dirs.intake.join("control-folder"), common::FUTIAN);
    fs::write(dirs.intake.join("control-flat.zip"), zip_of(&files(1))).expect("write zip");
    let in_folder: Vec<(String, Vec<u8>)> = files(2)
        .into_iter()
        .map(|(n, d)| (format!("{BASE}/{n}"), d))
        .collect();
    fs::write(dirs.intake.join("control-folder.zip"), zip_of(&in_folder)).expect("write zip");
    // What macOS Finder's "Compress" makes: the folder plus __MACOSX/ resource
    // forks, which are metadata and skipped.
    let mut finder: Vec<(String, Vec<u8>)> = files(3)
        .into_iter()
        .map(|(n, d)| (format!("{BASE}/{n}"), d))
        .collect();
    finder.push((
        format!("__MACOSX/{BASE}/._{NOTICE}"),
        b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ".to_vec(),
    ));
    fs::write(dirs.intake.join("control-finder.zip"), zip_of(&finder)).expect("write zip");
    for name in [
        "control-folder",
        "control-flat.zip",
        "control-folder.zip",
        "control-finder.zip",
    ] {
        let out = take_one(&intake, OsStr::new(name));
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "control {name} not accepted: {out:?}"
        );
    }
    assert_eq!(outbox.list().expect("outbox").len(), 4);
}

// ------------------------------------------------------------------ runner

fn run_case(case: &Case) {
    let c = case.name;
    let net = common::Net::new();
    let mut cfg = net.config(common::COMMITTEE);
    if case.setup == Setup::SmallLimits {
        cfg.limits.max_document_size = SMALL_DOCUMENT;
        cfg.limits.max_total_size = SMALL_TOTAL;
    }
    let outbox = Outbox::open(&cfg.node.data_dir, cfg.outbox).expect("outbox");
    let intake = Intake::new(std::sync::Arc::new(cfg), outbox.clone()).expect("intake");
    let dirs = intake.dirs().clone();

    let mut queued = 0;
    if case.setup == Setup::QueuedFirst {
        common::copy_fixture(BASE, &dirs.intake.join("first-submission"), common::FUTIAN);
        let out = take_one(&intake, OsStr::new("first-submission"));
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "{c}: the first submission was not accepted: {out:?}"
        );
        queued = 1;
    }
    let archived_before = common::listing(&dirs.archive);
    let accepted_before = common::listing(&dirs.accepted);

    let ctx = Ctx {
        net: &net,
        intake: &dirs.intake,
        name: c,
    };
    let dropped = match case.source {
        Source::Fixture => place_fixture(c, &dirs.intake),
        Source::Built(build) => build(&ctx),
    };
    let item = dirs.intake.join(&dropped);
    let before = tree(&item);
    assert!(!before.is_empty(), "{c}: nothing was dropped");

    let results = intake.take(std::slice::from_ref(&dropped));
    assert_eq!(
        results.len(),
        1,
        "{c}: take returned {} results",
        results.len()
    );
    let outcome = match results.into_iter().next() {
        Some(Ok(o)) => o,
        Some(Err(e)) => panic!(
            "{c}: intake failed instead of rejecting: {e}; intake/ now holds {:?}, .work/ {:?}",
            common::listing(&dirs.intake),
            common::listing(&dirs.work)
        ),
        None => unreachable!(),
    };
    let (name, dir, codes) = match outcome {
        Outcome::Rejected { name, dir, codes } => (name, dir, codes),
        Outcome::Accepted { name, id } => {
            panic!(
                "{c}: {name} was ACCEPTED as bundle {id}; expected rejection with {}",
                case.expect
            )
        }
        Outcome::Held { name, id } => {
            panic!("{c}: {name} ({id}) was held as still being written; nothing writes it")
        }
    };
    let codes: Vec<String> = codes.iter().map(|x| x.as_str()).collect();

    // The codes.
    assert!(
        codes.iter().any(|x| x == case.expect),
        "{c}: expected {} among the reasons, got {codes:?}",
        case.expect
    );
    let stray: Vec<&String> = codes
        .iter()
        .filter(|x| *x != case.expect && !case.also.contains(&x.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "{c}: unexpected extra reasons {stray:?} (all: {codes:?}); the case should break one thing"
    );

    // Where it went, untouched.
    let want_name = match dropped.to_str() {
        Some(s) => s.to_owned(),
        // The lossy rendering, shortened to at most 120 bytes on a character boundary.
        None => {
            let lossy = dropped.to_string_lossy();
            let mut end = lossy.len().min(120);
            while !lossy.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}.invalid-name", &lossy[..end])
        }
    };
    assert_eq!(name, want_name, "{c}: outcome name");
    assert_eq!(dir, dirs.rejected.join(&name), "{c}: rejected folder");
    assert!(
        item.symlink_metadata().is_err(),
        "{c}: the drop is still in intake/"
    );
    let original = dir.join(&name);
    assert!(
        original.symlink_metadata().is_ok(),
        "{c}: rejected/{name}/{name} does not exist"
    );
    assert_same_tree(c, &before, &tree(&original));

    let (txt_name, json_name) = note_names(&name);
    let mut listing: BTreeSet<String> = common::listing(&dir).into_iter().collect();
    listing.remove(".claim.json"); // the claim record travels with the item
    let want: BTreeSet<String> = [name.clone(), txt_name.to_owned(), json_name.to_owned()]
        .into_iter()
        .collect();
    assert_eq!(
        listing, want,
        "{c}: rejected/{name}/ should hold the original and the two notes, nothing else"
    );

    // REJECTED.txt: both languages, the code, the reason in both languages.
    let txt =
        fs::read_to_string(dir.join(txt_name)).unwrap_or_else(|e| panic!("{c}: {txt_name}: {e}"));
    assert!(
        txt.contains("申请未被接收") && txt.contains("APPLICATION NOT ACCEPTED"),
        "{c}: {txt_name} lacks the bilingual heading:\n{txt}"
    );
    assert!(
        txt.contains("怎样处理") && txt.contains("What to do"),
        "{c}: {txt_name} lacks the bilingual instructions"
    );
    let tag = format!("[{}]", case.expect);
    let lines: Vec<&str> = txt.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("{c}: {txt_name} does not mention {tag}:\n{txt}"));
    let zh = lines.get(at + 1).copied().unwrap_or("");
    let en = lines.get(at + 2).copied().unwrap_or("");
    assert!(
        cjk_count(zh) >= 4,
        "{c}: {txt_name}: the {tag} reason has no Chinese explanation: {zh:?}"
    );
    assert!(
        en.chars().filter(char::is_ascii_alphabetic).count() >= 15,
        "{c}: {txt_name}: the {tag} reason has no English explanation: {en:?}"
    );
    assert!(
        !txt.contains("PRIVATE KEY"),
        "{c}: {txt_name} quotes a private key"
    );

    // rejection.json: the same reasons, machine-readable.
    let json_text =
        fs::read_to_string(dir.join(json_name)).unwrap_or_else(|e| panic!("{c}: {json_name}: {e}"));
    assert!(
        !json_text.contains("PRIVATE KEY"),
        "{c}: {json_name} quotes a private key"
    );
    let json: serde_json::Value = serde_json::from_str(&json_text)
        .unwrap_or_else(|e| panic!("{c}: {json_name} does not parse: {e}"));
    assert_eq!(
        json["item"],
        serde_json::json!(name),
        "{c}: {json_name} item"
    );
    let reasons = json["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("{c}: {json_name} has no reasons array"));
    let json_codes: Vec<String> = reasons
        .iter()
        .map(|r| r["code"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        json_codes, codes,
        "{c}: {json_name} codes differ from the outcome"
    );
    for r in reasons {
        let zh = r["zh"].as_str().unwrap_or("");
        let en = r["en"].as_str().unwrap_or("");
        assert!(
            cjk_count(zh) >= 4 && en.chars().filter(char::is_ascii_alphabetic).count() >= 15,
            "{c}: {json_name}: reason {r} lacks a Chinese or English explanation"
        );
    }

    // Nothing queued, nothing left behind.
    assert_eq!(
        outbox.list().expect("outbox list").len(),
        queued,
        "{c}: the outbox changed"
    );
    assert!(
        common::listing(&dirs.work).is_empty(),
        "{c}: .work/ not empty: {:?}",
        common::listing(&dirs.work)
    );
    assert!(
        common::listing(&dirs.intake).is_empty(),
        "{c}: intake/ not empty: {:?}",
        common::listing(&dirs.intake)
    );
    assert_eq!(
        common::listing(&dirs.archive),
        archived_before,
        "{c}: archive/ changed"
    );
    assert_eq!(
        common::listing(&dirs.accepted),
        accepted_before,
        "{c}: accepted/ changed"
    );

    // Intake still works: a valid application after the hostile one. After
    // case-already-queued, the same case goes through marked as a resubmission.
    let next = dirs.intake.join("valid-after");
    common::copy_fixture(BASE, &next, common::FUTIAN);
    if case.setup == Setup::QueuedFirst {
        edit_manifest(&next, |m| {
            m.replacen("claim_amount", "resubmission = true\nclaim_amount", 1)
        });
    }
    let out = take_one(&intake, OsStr::new("valid-after"));
    assert!(
        matches!(out, Outcome::Accepted { .. }),
        "{c}: a valid application dropped afterwards was not accepted: {out:?}"
    );
    assert_eq!(
        outbox.list().expect("outbox list").len(),
        queued + 1,
        "{c}: the valid application was not queued"
    );
}

fn take_one(intake: &Intake, name: &OsStr) -> Outcome {
    let mut r = intake.take(&[name.to_owned()]);
    assert_eq!(r.len(), 1, "take {name:?}");
    r.remove(0)
        .unwrap_or_else(|e| panic!("take {name:?}: intake failed: {e}"))
}

/// `REJECTED.txt` / `rejection.json`, or the `(sealpost)` names when the item
/// itself is called that.
fn note_names(item: &str) -> (&'static str, &'static str) {
    if item == "REJECTED.txt" || item == "rejection.json" {
        ("REJECTED (sealpost).txt", "rejection (sealpost).json")
    } else {
        ("REJECTED.txt", "rejection.json")
    }
}

fn cjk_count(s: &str) -> usize {
    s.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
}

// ------------------------------------------------------------- tree compare

/// One file-system object, as far as "unchanged" is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, len: u64, sha256: String },
    Symlink { target: PathBuf },
    Fifo { mode: u32 },
    Socket { mode: u32 },
    Other { mode: u32 },
}

/// Every object under `root` (root itself under the empty path), never
/// following links and never opening anything but regular files.
fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, PathBuf::new(), &mut out);
    out
}

fn walk(path: &Path, rel: PathBuf, out: &mut BTreeMap<PathBuf, Node>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    let node = if ft.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
            .map(|e| e.expect("dir entry").file_name())
            .collect();
        children.sort();
        for child in children {
            walk(&path.join(&child), rel.join(&child), out);
        }
        Node::Dir { mode }
    } else if ft.is_symlink() {
        Node::Symlink {
            target: fs::read_link(path).expect("read_link"),
        }
    } else if ft.is_file() {
        let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Node::File {
            mode,
            len: meta.len(),
            sha256: sealpost::types::Sha256::of(&data).to_hex(),
        }
    } else if ft.is_fifo() {
        Node::Fifo { mode }
    } else if ft.is_socket() {
        Node::Socket { mode }
    } else {
        Node::Other { mode }
    };
    out.insert(rel, node);
}

fn assert_same_tree(case: &str, before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("  deleted: {k:?} ({v:?})")),
            Some(w) if w != v => diffs.push(format!("  changed: {k:?}: {v:?} -> {w:?}")),
            Some(_) => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        diffs.push(format!("  added: {k:?}"));
    }
    let n = diffs.len();
    diffs.truncate(20);
    panic!(
        "{case}: the rejected original differs from what was dropped ({n} differences):\n{}",
        diffs.join("\n")
    );
}

// ---------------------------------------------------------------- placing

fn hostile_dir() -> PathBuf {
    common::fixtures().join("hostile")
}

/// Copies `fixtures/hostile/<case>` into `intake`: the folder, or its single
/// file. Returns the dropped name.
fn place_fixture(case: &str, intake: &Path) -> OsString {
    let src = hostile_dir().join(case);
    let entries: Vec<fs::DirEntry> = fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{case}: fixtures/hostile/{case}: {e}"))
        .map(|e| e.expect("entry"))
        .collect();
    if let [only] = entries.as_slice() {
        if only.file_type().expect("type").is_file() && only.file_name() != MANIFEST {
            let name = only.file_name();
            fs::copy(only.path(), intake.join(&name)).expect("copy fixture file");
            return name;
        }
    }
    copy_tree(&src, &intake.join(case));
    OsString::from(case)
}

fn copy_tree(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("mkdir");
    for e in fs::read_dir(src).expect("read fixture") {
        let e = e.expect("entry");
        let to = dest.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).expect("copy");
        }
    }
}

struct Ctx<'a> {
    net: &'a common::Net,
    intake: &'a Path,
    name: &'static str,
}

impl Ctx<'_> {
    /// The valid application as a folder `intake/<case>`.
    fn app(&self) -> PathBuf {
        let dir = self.intake.join(self.name);
        common::copy_fixture(BASE, &dir, common::FUTIAN);
        dir
    }

    fn done(&self) -> OsString {
        OsString::from(self.name)
    }

    /// `intake/<case>.zip`.
    fn zip(&self, bytes: &[u8]) -> OsString {
        let name = format!("{}.zip", self.name);
        fs::write(self.intake.join(&name), bytes).expect("write zip");
        OsString::from(name)
    }

    /// The signing key of the committee this node runs as.
    fn signing_key(&self) -> PathBuf {
        let key = self.net.agency(common::COMMITTEE).dir.join("sign.key");
        assert!(key.is_file(), "the test PKI has no {}", key.display());
        key
    }
}

fn edit_manifest(dir: &Path, f: impl FnOnce(String) -> String) {
    let p = dir.join(MANIFEST);
    let text = fs::read_to_string(&p).expect("read manifest");
    let new = f(text.clone());
    assert_ne!(new, text, "manifest edit changed nothing");
    fs::write(&p, new).expect("write manifest");
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

// ------------------------------------------------------- built: links etc.

fn symlink_to_signing_key(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::remove_file(dir.join(NOTICE)).expect("rm");
    std::os::unix::fs::symlink(ctx.signing_key(), dir.join(NOTICE)).expect("symlink");
    ctx.done()
}

fn manifest_symlink(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    let elsewhere = ctx.net.out("manifest-elsewhere.toml");
    fs::rename(dir.join(MANIFEST), &elsewhere).expect("move manifest");
    std::os::unix::fs::symlink(&elsewhere, dir.join(MANIFEST)).expect("symlink");
    ctx.done()
}

fn hardlinked_document(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::hard_link(dir.join(NOTICE), ctx.net.out("notice-second-link.pdf")).expect("hard link");
    ctx.done()
}

/// docs/application-format.md §1: "Every listed document, and
/// application.toml itself, must be a regular file … and not a hard link".
fn hardlinked_manifest(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::hard_link(dir.join(MANIFEST), ctx.net.out("manifest-second-link.toml")).expect("hard link");
    ctx.done()
}

fn fifo_document(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::remove_file(dir.join(NOTICE)).expect("rm");
    mkfifo(&dir.join(NOTICE));
    ctx.done()
}

fn fifo_manifest(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::remove_file(dir.join(MANIFEST)).expect("rm");
    mkfifo(&dir.join(MANIFEST));
    ctx.done()
}

fn socket_document(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::remove_file(dir.join(NOTICE)).expect("rm");
    // Bound at a short path (sun_path is 108 bytes), then moved into place.
    let short = ctx.net.out("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&short).expect("bind socket");
    drop(listener);
    fs::rename(&short, dir.join(NOTICE)).expect("move socket");
    ctx.done()
}

/// A symbolic link in intake/ pointing at the folder holding the node's keys.
fn item_symlink(ctx: &Ctx<'_>) -> OsString {
    let keys = ctx.net.agency(common::COMMITTEE).dir.clone();
    std::os::unix::fs::symlink(keys, ctx.intake.join(ctx.name)).expect("symlink");
    ctx.done()
}

/// A FIFO named like a zip: opening it for reading would block forever.
fn item_fifo_zip(ctx: &Ctx<'_>) -> OsString {
    let name = format!("{}.zip", ctx.name);
    mkfifo(&ctx.intake.join(&name));
    OsString::from(name)
}

// ----------------------------------------------------- built: names, sizes

fn ten_thousand_files(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    for i in 0..10_000 {
        fs::write(dir.join(format!("扫描-{i:05}.pdf")), b"%PDF-1.4\n%%EOF\n").expect("write");
    }
    ctx.done()
}

fn invalid_utf8_item_name(ctx: &Ctx<'_>) -> OsString {
    let name = OsStr::from_bytes(b"zhang-wei-\xff\xfe-futian").to_owned();
    common::copy_fixture(BASE, &ctx.intake.join(&name), common::FUTIAN);
    name
}

/// A folder name in GBK (as a Windows share or an old zip tool may produce):
/// 118 bytes, whose lossy UTF-8 rendering is 248 bytes, 261 with the
/// `.invalid-name` suffix intake adds — over NAME_MAX (255).
fn invalid_utf8_long_item_name(ctx: &Ctx<'_>) -> OsString {
    // "深劳人仲案〔2026〕1234号-张伟-财产保全申请-深圳市某某科技有限公司-补充材料-原件扫描件-第二次提交-福田区人民法院-立案庭" in GBK.
    const GBK: &str = "c9eec0cdc8cbd6d9b0b8a1b232303236a1b331323334bac52dd5c5ceb02db2c6b2fab1a3c8abc9eac7eb2dc9eedbdacad0c4b3c4b3bfc6bcbcd3d0cfdeb9abcbbe2db2b9b3e4b2c4c1cf2dd4adbcfec9a8c3e8bcfe2db5dab6feb4cecce1bdbb2db8a3ccefc7f8c8cbc3f1b7a8d4ba2dc1a2b0b8cda5";
    let bytes: Vec<u8> = (0..GBK.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GBK[i..i + 2], 16).expect("hex"))
        .collect();
    let name = OsStr::from_bytes(&bytes).to_owned();
    assert!(name.len() <= 255 && name.to_str().is_none());
    assert!(name.to_string_lossy().len() + ".invalid-name".len() > 255);
    common::copy_fixture(BASE, &ctx.intake.join(&name), common::FUTIAN);
    name
}

fn invalid_utf8_document_name(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    // "证据.pdf" in GBK: not UTF-8, so it cannot be listed in application.toml.
    let doc = OsStr::from_bytes(b"\xd6\xa4\xbe\xdd.pdf");
    fs::copy(dir.join(PRESERVATION), dir.join(doc)).expect("copy");
    ctx.done()
}

fn pdf_of_size(n: u64) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%".to_vec();
    v.resize(usize::try_from(n).expect("size") - 6, b'x');
    v.extend_from_slice(b"%%EOF\n");
    v
}

fn document_too_large(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::write(dir.join(NOTICE), pdf_of_size(SMALL_DOCUMENT + 1)).expect("write");
    ctx.done()
}

fn total_too_large(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    fs::write(
        dir.join("证据-银行流水.pdf"),
        pdf_of_size(SMALL_TOTAL / 2 + 10_000),
    )
    .expect("write");
    edit_manifest(&dir, |m| {
        format!("{m}\n\n[[documents]]\nfile = \"证据-银行流水.pdf\"\nrole = \"evidence\"\n")
    });
    ctx.done()
}

fn case_already_queued(ctx: &Ctx<'_>) -> OsString {
    ctx.app();
    ctx.done()
}

// ------------------------------------------------------------- built: zips

/// The base application's files (manifest and documents), sorted by name.
fn base_files() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> =
        fs::read_dir(common::fixtures().join("applications").join(BASE))
            .expect("base fixture")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().into_string().expect("UTF-8"),
                    fs::read(e.path()).expect("read"),
                )
            })
            .collect();
    v.sort();
    v
}

/// The preservation application's bytes among `files`.
fn base_pdf(files: &[(String, Vec<u8>)]) -> &[u8] {
    &files
        .iter()
        .find(|(n, _)| n == PRESERVATION)
        .expect("preservation application")
        .1
}

fn deflated_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
}

/// A well-formed zip of `entries`, deflated, written by the zip crate.
fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(name.as_str(), deflated_options())
            .expect("start_file");
        w.write_all(data).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// `zeros` zero bytes as a raw deflate stream (taken out of a zip the zip crate
/// wrote), for raw entries that lie about their sizes.
fn deflated_zeros(zeros: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("z", deflated_options()).expect("start_file");
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n]).expect("write");
        left -= n;
    }
    let bytes = w.finish().expect("finish").into_inner();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
    let mut f = z.by_index_raw(0).expect("entry");
    let mut v = Vec::new();
    f.read_to_end(&mut v).expect("read raw");
    v
}

/// One entry for [`raw_zip`].
struct Raw {
    name: Vec<u8>,
    data: Vec<u8>,
    /// 0 stored, 8 deflated.
    method: u16,
    /// General-purpose flags: 0x0800 UTF-8 names, 0x0001 encrypted.
    flags: u16,
    mode: u32,
    /// Declared uncompressed size, if not `data.len()` (a stored entry).
    size: Option<u32>,
    crc: Option<u32>,
    /// The name in the local header, if not `name` (the central directory's).
    local_name: Option<Vec<u8>>,
}

fn raw(name: &str, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
        method: 0,
        flags: 0x0800,
        mode: 0o100644,
        size: None,
        crc: None,
        local_name: None,
    }
}

fn raws(files: &[(String, Vec<u8>)]) -> Vec<Raw> {
    files.iter().map(|(n, d)| raw(n, d)).collect()
}

/// A minimal, independent zip writer (after `raw_zip` in tests/vectors.rs) that
/// writes whatever it is told: any name bytes, flags and declared sizes, and
/// `aliases` — extra central-directory entries (name, index of an entry) that
/// point at that entry's local header and data.
fn raw_zip(entries: &[Raw], aliases: &[(String, usize)]) -> Vec<u8> {
    let (dos_time, dos_date) = (0x4000u16, 0x5B77u16); // 2025-11-23 08:00:00
    let mut out = Vec::new();
    let mut records: Vec<(Vec<u8>, u32, u32)> = Vec::new(); // (fixed 26 bytes, offset, mode)
    for e in entries {
        let offset = u32::try_from(out.len()).expect("small zip");
        let crc = e.crc.unwrap_or_else(|| crc32fast::hash(&e.data));
        let csize = u32::try_from(e.data.len()).expect("small entry");
        let usize_ = e.size.unwrap_or(csize);
        let local_name = e.local_name.as_ref().unwrap_or(&e.name);
        let mut fixed = Vec::new();
        fixed.extend_from_slice(&20u16.to_le_bytes()); // version needed
        fixed.extend_from_slice(&e.flags.to_le_bytes());
        fixed.extend_from_slice(&e.method.to_le_bytes());
        fixed.extend_from_slice(&dos_time.to_le_bytes());
        fixed.extend_from_slice(&dos_date.to_le_bytes());
        fixed.extend_from_slice(&crc.to_le_bytes());
        fixed.extend_from_slice(&csize.to_le_bytes());
        fixed.extend_from_slice(&usize_.to_le_bytes());
        fixed.extend_from_slice(&u16::try_from(local_name.len()).expect("name").to_le_bytes());
        fixed.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&fixed);
        out.extend_from_slice(local_name);
        out.extend_from_slice(&e.data);
        records.push((fixed, offset, e.mode));
    }
    let mut central = Vec::new();
    let mut count = 0u32;
    let all = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), i))
        .chain(aliases.iter().map(|(n, i)| (n.as_bytes().to_vec(), *i)));
    for (name, i) in all {
        let (fixed, offset, mode) = &records[i];
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&0x031Eu16.to_le_bytes()); // made by Unix, 3.0
        central.extend_from_slice(&fixed[..22]); // up to the sizes
        central.extend_from_slice(&u16::try_from(name.len()).expect("name").to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra length
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&(mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&name);
        count += 1;
    }
    let cd_start = u32::try_from(out.len()).expect("small zip");
    out.extend_from_slice(&central);
    let count = u16::try_from(count).expect("under 65536 entries");
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&u32::try_from(central.len()).expect("cd").to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The base application plus one entry with a hostile name.
fn zip_with_extra_name(ctx: &Ctx<'_>, name: &str) -> OsString {
    let files = base_files();
    let mut entries = raws(&files);
    entries.push(raw(name, base_pdf(&files)));
    ctx.zip(&raw_zip(&entries, &[]))
}

fn zip_slip_dotdot(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "../证据-附件.pdf")
}

fn zip_slip_backslash(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "..\\证据-附件.pdf")
}

fn zip_absolute_path(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "/etc/x")
}

fn zip_drive_letter(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "C:x")
}

fn zip_control_char_name(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "证据-附件\r\n.pdf")
}

fn zip_empty_entry_name(ctx: &Ctx<'_>) -> OsString {
    zip_with_extra_name(ctx, "")
}

/// 受理通知书.pdf with its name in GBK and no UTF-8 flag, as the zip tool of a
/// Chinese-locale Windows writes it.
fn zip_gbk_entry_name(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    let e = entries
        .iter_mut()
        .find(|e| e.name == NOTICE.as_bytes())
        .expect("notice entry");
    e.name = b"\xca\xdc\xc0\xed\xcd\xa8\xd6\xaa\xca\xe9.pdf".to_vec();
    e.flags = 0;
    ctx.zip(&raw_zip(&entries, &[]))
}

fn zip_duplicate_entry(ctx: &Ctx<'_>) -> OsString {
    let files = base_files();
    let mut entries = raws(&files);
    entries.push(raw(NOTICE, base_pdf(&files)));
    ctx.zip(&raw_zip(&entries, &[]))
}

fn zip_symlink(ctx: &Ctx<'_>) -> OsString {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in base_files() {
        if name == NOTICE {
            w.add_symlink(
                name.as_str(),
                ctx.signing_key().to_string_lossy(),
                deflated_options(),
            )
            .expect("add_symlink");
        } else {
            w.start_file(name.as_str(), deflated_options())
                .expect("start_file");
            w.write_all(&data).expect("write");
        }
    }
    ctx.zip(&w.finish().expect("finish").into_inner())
}

/// A real bomb: 64 MiB of zeros deflated to about 64 KiB (ratio ~1000:1).
fn zip_deflate_bomb(ctx: &Ctx<'_>) -> OsString {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in base_files() {
        w.start_file(name.as_str(), deflated_options())
            .expect("start_file");
        w.write_all(&data).expect("write");
    }
    w.start_file("证据-附件.pdf", deflated_options())
        .expect("start_file");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        w.write_all(&chunk).expect("write");
    }
    ctx.zip(&w.finish().expect("finish").into_inner())
}

/// An entry that declares 1.5 GiB uncompressed for 1 KiB of deflate data.
fn zip_declared_size_bomb(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    let mut bomb = raw("证据-附件.pdf", &deflated_zeros(1 << 20));
    bomb.method = 8;
    bomb.size = Some(3 << 29); // 1.5 GiB
    entries.push(bomb);
    ctx.zip(&raw_zip(&entries, &[]))
}

/// An entry that declares 1 KiB but inflates to 16 MiB: caught while
/// extracting, when it passes its declared size. The zip crate stops there
/// first ("File is larger than its declared uncompressed size"), so the reason
/// is `zip-invalid` ("the zip is damaged"), which is true and fine for a clerk.
fn zip_lying_size(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    let mut bomb = raw("证据-附件.pdf", &deflated_zeros(16 << 20));
    bomb.method = 8;
    bomb.size = Some(1024);
    bomb.crc = Some(0);
    entries.push(bomb);
    ctx.zip(&raw_zip(&entries, &[]))
}

/// 16 central-directory entries sharing one 256 KiB stored local entry: each
/// looks harmless (ratio 1:1), together they expand the data 16-fold.
fn zip_overlap_bomb(ctx: &Ctx<'_>) -> OsString {
    ctx.zip(&zip_nested_overlap(&base_files()))
}

/// Overlapping entries with honest headers: one stored entry whose data holds
/// the next entry (local header and data) inside it, 16 deep, so each byte of
/// the innermost document is extracted 16 times.
fn zip_nested_overlap(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (dos_time, dos_date) = (0x4000u16, 0x5B77u16);
    let local = |name: &str, data: &[u8]| {
        let mut h = Vec::new();
        h.extend_from_slice(b"PK\x03\x04");
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&0x0800u16.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&dos_time.to_le_bytes());
        h.extend_from_slice(&dos_date.to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        let n = u32::try_from(data.len()).expect("small").to_le_bytes();
        h.extend_from_slice(&n);
        h.extend_from_slice(&n);
        h.extend_from_slice(&u16::try_from(name.len()).expect("name").to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h
    };
    // Innermost first: each layer's data is the next layer's header + data.
    let mut data = pdf_of_size(256 << 10);
    let mut layers = Vec::new();
    for i in (0..16).rev() {
        let name = format!("证据-{i:02}.pdf");
        let header = local(&name, &data);
        layers.push((name, data.clone(), header.len()));
        let mut wrapped = header;
        wrapped.extend_from_slice(&data);
        data = wrapped;
    }
    layers.reverse(); // outermost first
    let mut out = Vec::new();
    let mut records = Vec::new();
    for (name, d) in files {
        records.push((name.clone(), d.clone(), out.len()));
        out.extend_from_slice(&local(name, d));
        out.extend_from_slice(d);
    }
    let mut offset = out.len();
    for (name, d, header_len) in &layers {
        records.push((name.clone(), d.clone(), offset));
        offset += header_len;
    }
    out.extend_from_slice(&data);
    let mut central = Vec::new();
    for (name, d, offset) in &records {
        let h = local(name, d);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&0x031Eu16.to_le_bytes());
        central.extend_from_slice(&h[4..26]);
        central.extend_from_slice(&u16::try_from(name.len()).expect("name").to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        central.extend_from_slice(&u32::try_from(*offset).expect("small").to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_start = u32::try_from(out.len()).expect("small");
    out.extend_from_slice(&central);
    let count = u16::try_from(records.len()).expect("few").to_le_bytes();
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&count);
    out.extend_from_slice(&count);
    out.extend_from_slice(&u32::try_from(central.len()).expect("cd").to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The old overlap trick: 16 central-directory entries point at one local
/// header; their names differ from the one it holds.
fn zip_aliased_entries(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    entries.push(raw("证据-00.pdf", &pdf_of_size(256 << 10)));
    let shared = entries.len() - 1;
    let aliases: Vec<(String, usize)> = (1..16)
        .map(|i| (format!("证据-{i:02}.pdf"), shared))
        .collect();
    ctx.zip(&raw_zip(&entries, &aliases))
}

/// The central directory says `附件.pdf`; the local header says `../../x.pdf`.
fn zip_local_name_differs(ctx: &Ctx<'_>) -> OsString {
    let files = base_files();
    let mut entries = raws(&files);
    let mut extra = raw("附件.pdf", base_pdf(&files));
    extra.local_name = Some(b"../../x.pdf".to_vec());
    entries.push(extra);
    ctx.zip(&raw_zip(&entries, &[]))
}

/// One entry's local header carries another CRC than the central directory.
fn zip_local_crc_differs(ctx: &Ctx<'_>) -> OsString {
    let mut bytes = zip_of(&base_files());
    // The first local header's CRC-32 is at offset 14.
    assert_eq!(&bytes[..4], b"PK\x03\x04");
    bytes[14] ^= 0xFF;
    ctx.zip(&bytes)
}

/// Something glued in front of an ordinary zip (a self-extractor stub).
fn zip_leading_data(ctx: &Ctx<'_>) -> OsString {
    let mut bytes = b"MZ\x90\0 a self-extracting stub would be here ".to_vec();
    bytes.extend_from_slice(&zip_of(&base_files()));
    ctx.zip(&bytes)
}

/// A valid zip with a second hard link elsewhere.
fn zip_hardlinked(ctx: &Ctx<'_>) -> OsString {
    let name = ctx.zip(&zip_of(&base_files()));
    fs::hard_link(
        ctx.intake.join(&name),
        ctx.net.out("zip-hardlinked-elsewhere.zip"),
    )
    .expect("hard link");
    name
}

/// A manifest over 64 KiB whose limit falls inside a Chinese character.
fn manifest_too_large_chinese(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    edit_manifest(&dir, |m| {
        let mut m = format!("{m}\n# ");
        while m.len() < 64 * 1024 + 100 {
            m.push_str("备注说明");
        }
        // Make the 65 537th byte fall inside a three-byte character.
        while m.len() % 3 != 1 {
            m.push('x');
        }
        m.push('\n');
        m
    });
    ctx.done()
}

/// The preservation application cut off before its `%%EOF` (a copy that
/// stopped half-way).
fn document_truncated_pdf(ctx: &Ctx<'_>) -> OsString {
    let dir = ctx.app();
    let pdf = fs::read(dir.join(PRESERVATION)).expect("pdf");
    fs::write(dir.join(PRESERVATION), &pdf[..pdf.len() / 2]).expect("write");
    ctx.done()
}

/// The same trick at scale: 4 000 entries over one 1 MiB stored entry.
fn zip_overlap_many(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    entries.push(raw("证据-0000.pdf", &pdf_of_size(1 << 20)));
    let shared = entries.len() - 1;
    let aliases: Vec<(String, usize)> = (1..4000)
        .map(|i| (format!("证据-{i:04}.pdf"), shared))
        .collect();
    ctx.zip(&raw_zip(&entries, &aliases))
}

fn zip_too_many_entries(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    for i in 0..10_000 {
        entries.push(raw(&format!("扫描-{i:05}.pdf"), b"%PDF-1.4\n%%EOF\n"));
    }
    ctx.zip(&raw_zip(&entries, &[]))
}

fn zip_truncated(ctx: &Ctx<'_>) -> OsString {
    let bytes = zip_of(&base_files());
    ctx.zip(&bytes[..bytes.len() / 2])
}

/// 受理通知书.pdf flagged as encrypted (traditional PKWARE encryption).
fn zip_encrypted_entry(ctx: &Ctx<'_>) -> OsString {
    let mut entries = raws(&base_files());
    let e = entries
        .iter_mut()
        .find(|e| e.name == NOTICE.as_bytes())
        .expect("notice entry");
    e.flags |= 0x0001;
    // 12-byte encryption header, then (pretend) ciphertext.
    e.data = (0..e.data.len() + 12)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    e.size = Some(u32::try_from(e.data.len() - 12).expect("size"));
    ctx.zip(&raw_zip(&entries, &[]))
}

fn zip_nested_too_deep(ctx: &Ctx<'_>) -> OsString {
    let mut files = base_files();
    let pdf = base_pdf(&files).to_vec();
    files.push(("附件/第二层/说明.pdf".to_owned(), pdf));
    ctx.zip(&zip_of(&files))
}

/// A valid zip whose 受理通知书.pdf is a Windows executable: the extracted
/// folder is validated like any other.
fn zip_exe_named_pdf(ctx: &Ctx<'_>) -> OsString {
    let mut files = base_files();
    let exe = fs::read(hostile_dir().join("exe-named-pdf").join(NOTICE)).expect("exe fixture");
    assert!(exe.starts_with(b"MZ"));
    for (n, d) in &mut files {
        if n == NOTICE {
            *d = exe.clone();
        }
    }
    ctx.zip(&zip_of(&files))
}
