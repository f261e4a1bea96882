//! The signed receipt: `SignedReceipt` as it arrives (JSON) verified against
//! the vector PKI, and the inner `Receipt` document. A receipt that parses
//! serialises and parses back to itself; a verified one is exactly what its
//! signed bytes say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost::receipt::{Receipt, SignedReceipt};
use sealpost_fuzz::{committee, now};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<Receipt>(data) {
        let again: Receipt =
            serde_json::from_slice(&serde_json::to_vec(&r).expect("serialise")).expect("reparse");
        assert_eq!(again, r);
    }
    if let Ok(signed) = serde_json::from_slice::<SignedReceipt>(data) {
        let c = committee();
        let _ = signed.unverified_received_at();
        match signed.verify(&c.trust, &c.directory, now()) {
            Ok(r) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&signed.receipt)
                    .expect("a verified receipt is base64");
                assert_eq!(serde_json::from_slice::<Receipt>(&bytes).ok(), Some(r.clone()));
                assert_eq!(r.format, sealpost::receipt::RECEIPT_FORMAT);
            }
            Err(e) => assert!(!e.code().is_empty()),
        }
    }
});
