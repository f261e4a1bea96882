//! Request routing (`api::resolve`): arbitrary methods, paths and queries.
//! The input is `METHOD PATH[?QUERY]` (split at the first space and the first
//! `?`, as a request line is). A route goes where the table says, with its
//! argument parsed; everything else is a well-formed problem answer.
#![no_main]

use http::{HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use sealpost::api::{resolve, Resolved};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let (method, target) = line.split_once(' ').unwrap_or((line, ""));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let resolved = resolve(&method, path, query);
    assert_eq!(resolve(&method, path, query), resolved, "routing is a function");
    match &resolved {
        Resolved::List(q) => {
            assert_eq!((method.clone(), path), (Method::GET, "/v1/bundles"));
            assert!((1..=500).contains(&q.limit));
        }
        Resolved::Push => assert_eq!((method.clone(), path), (Method::POST, "/v1/bundles")),
        Resolved::Submit => assert_eq!((method.clone(), path), (Method::POST, "/v1/applications")),
        Resolved::Download(id) => {
            assert!(method == Method::GET || method == Method::HEAD);
            assert_eq!(path, format!("/v1/bundles/{id}"));
        }
        Resolved::Receipt(id) => {
            assert_eq!(method, Method::POST);
            assert_eq!(path, format!("/v1/bundles/{id}/receipt"));
        }
        Resolved::Case(_) => {
            assert_eq!(method, Method::GET);
            assert!(path.starts_with("/v1/cases/"));
        }
        Resolved::Events(_) => {
            assert_eq!(method, Method::POST);
            assert!(path.starts_with("/v1/cases/") && path.ends_with("/events"));
        }
        Resolved::Answer(a) => {
            assert!(a.status.is_client_error(), "{a:?}");
            assert!(!a.detail.is_empty());
            assert_eq!(a.allow.is_some(), a.status == StatusCode::METHOD_NOT_ALLOWED);
            if let Some(allow) = &a.allow {
                assert!(HeaderValue::from_str(allow).is_ok(), "{allow:?}");
            }
        }
        _ => {}
    }
});
