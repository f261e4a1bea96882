//! Opening a bundle as the Futian court of the vector PKI (its age identity,
//! the vector exchange CA and directory, a fixed clock). `Verifier::open`
//! must return `Ok` or `Err` without panicking; on `Err` nothing — no
//! plaintext, no temporary — may be left in the output's parent directory;
//! on `Ok` `verify` agrees and every document matches its digest.
#![no_main]

use std::fs;

use libfuzzer_sys::fuzz_target;
use sealpost::bundle::Verifier;
use sealpost::types::Sha256;
use sealpost_fuzz::{court, listing, now, scratch};

fuzz_target!(|data: &[u8]| {
    let work = scratch().join("open");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir(&work).expect("work directory");
    let bundle = work.join("in.sealpost");
    fs::write(&bundle, data).expect("write the bundle");
    let out = work.join("out");
    let court = court();
    let verifier = Verifier {
        now: now(),
        ..Verifier::for_node(court)
    };
    match verifier.open(&bundle, &court.keys.encryption, &out) {
        Ok(opened) => {
            assert!(verifier.verify(&bundle).is_ok(), "opened but does not verify");
            for d in &opened.manifest.documents {
                let bytes = fs::read(out.join(&d.path)).expect("an opened document");
                assert_eq!(Sha256::of(&bytes), d.sha256, "{}", d.path);
            }
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            let left = listing(&work);
            assert_eq!(
                left,
                vec![std::path::PathBuf::from("in.sealpost")],
                "refused with [{}] {e} but left {left:?}",
                e.code()
            );
        }
    }
});
