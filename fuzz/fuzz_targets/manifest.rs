//! The application manifest (`application.toml`) and the folder's validation:
//! the input is the manifest, beside the documents of the example application
//! `fixtures/applications/john-smith-futian`. `Application::load` must accept
//! or give reasons — never panic, never change the folder.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealpost::application::Application;
use sealpost::config::Limits;
use sealpost_fuzz::{court, listing, root, scratch};

fn folder() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch().join("john-smith-futian");
        fs::create_dir(&dir).expect("folder");
        let src = root().join("fixtures/applications/john-smith-futian");
        for e in fs::read_dir(&src).expect("fixture").flatten() {
            if e.file_name() != "application.toml" {
                fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    let manifest = dir.join("application.toml");
    fs::write(&manifest, data).expect("write the manifest");
    let before = listing(dir);
    match Application::load(dir, &Limits::default(), &court().directory) {
        Ok(app) => {
            assert!(!app.documents.is_empty());
            for d in &app.documents {
                assert_eq!(sealpost::application::check_safe_name(&d.name), Ok(()));
            }
        }
        Err(rejection) => {
            assert!(!rejection.reasons.is_empty(), "a rejection without a reason");
            for r in &rejection.reasons {
                assert!(!r.to_string().is_empty());
            }
        }
    }
    assert_eq!(listing(dir), before, "loading changed the folder");
    assert_eq!(fs::read(&manifest).expect("manifest"), data, "loading changed the manifest");
});
