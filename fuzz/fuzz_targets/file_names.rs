//! The file-name rules: `application::check_safe_name` (documents in an
//! application and in a bundle's payload, the court's event form) and
//! `event::check_attachment_name`. Whatever they accept must really have the
//! properties they promise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost::application::check_safe_name;
use sealpost::event::check_attachment_name;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    match check_safe_name(name) {
        Ok(()) => {
            assert!(!name.is_empty() && name.len() <= 200, "{name:?}");
            assert!(!name.contains(".."), "{name:?}");
            assert!(
                !name.contains(['/', '\\', ':', '*', '?', '"', '<', '>', '|']),
                "{name:?}"
            );
            assert!(!name.chars().any(char::is_control), "{name:?}");
            assert!(!name.starts_with(['.', ' ']) && !name.ends_with(['.', ' ']), "{name:?}");
            // A safe name is one path component, the same one everywhere.
            let p = std::path::Path::new(name);
            assert_eq!(p.components().count(), 1, "{name:?}");
            assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name), "{name:?}");
        }
        Err(why) => assert!(!why.is_empty()),
    }
    match check_attachment_name(name) {
        Ok(()) => {
            let n = name.chars().count();
            assert!((1..=100).contains(&n), "{name:?}");
            assert!(!name.contains(['/', '\\']) && !name.starts_with('.'), "{name:?}");
            assert!(!name.chars().any(char::is_control), "{name:?}");
            let p = std::path::Path::new(name);
            assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name), "{name:?}");
        }
        Err(why) => assert!(!why.is_empty()),
    }
});
