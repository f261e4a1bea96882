//! The zip container reader: the bundle container's strict checks
//! (`bundle::inspect`, which reads the container and its envelope without
//! verifying a signature) and `zipcheck::check_local_headers` on any zip the
//! `zip` crate opens. Both must answer with an error, never panic.
#![no_main]

use std::fs;
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sealpost::bundle;
use sealpost::zipcheck::check_local_headers;
use sealpost_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("input.sealpost");
    fs::write(&path, data).expect("write the input");
    if let Ok((envelope, bytes, size)) = bundle::inspect(&path) {
        assert_eq!(size, data.len() as u64);
        assert_eq!(envelope.format, "sealpost-bundle/1");
        assert!(!bytes.is_empty());
    }
    if let Ok(archive) = zip::ZipArchive::new(Cursor::new(data)) {
        let _ = check_local_headers(&archive, &mut Cursor::new(data));
    }
});
