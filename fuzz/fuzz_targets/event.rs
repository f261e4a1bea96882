//! The court's follow-up event: `event::parse` of the event bytes (a parsed
//! event serialises and parses back to itself, and validates or says why),
//! and a whole submission (`POST /v1/cases/{case}/events`'s body) verified
//! against the vector PKI, attachments included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost::event::{self, SignedEvent, Submission};
use sealpost_fuzz::{committee, now};

fuzz_target!(|data: &[u8]| {
    match event::parse(data) {
        Ok(ev) => {
            let again = event::parse(&ev.to_bytes()).expect("a parsed event reparses");
            assert_eq!(again, ev);
            let _ = ev.validate();
            let _ = ev.details.fields();
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
    let c = committee();
    if let Ok(sub) = Submission::from_json(data) {
        match sub.verify(&c.trust, &c.directory, now()) {
            Ok(v) => {
                assert_eq!(event::parse(&v.event_bytes).ok(), Some(v.event.clone()));
                assert_eq!(v.attachments.len(), v.event.attachments.len());
            }
            Err(e) => assert!(!e.code().is_empty()),
        }
    }
    if let Ok(signed) = serde_json::from_slice::<SignedEvent>(data) {
        let _ = signed.verify(&c.trust, &c.directory, now());
        let _ = signed.unverified();
    }
});
