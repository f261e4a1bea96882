//! Request routing: which handler serves a method on a path; `404` for any
//! other path, `405` with `Allow` for a known path with another method.

use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::bundles::{download, list, receipt};
use super::problems::{not_found, problem};
use super::uploads::{push, submit};
use super::{Api, ResBody};
use crate::types::{printable, AgencyId, BundleId};

pub(super) async fn handle(
    api: &Arc<Api>,
    peer: &AgencyId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match (req.method(), parts.as_slice()) {
        (&Method::GET, ["v1", "bundles"]) => list(api, peer, req.uri().query().unwrap_or("")).await,
        (&Method::POST, ["v1", "bundles"]) => push(api, peer, req).await,
        (&Method::POST, ["v1", "applications"]) => submit(api, peer, req).await,
        (&Method::GET | &Method::HEAD, ["v1", "bundles", id]) => match id.parse::<BundleId>() {
            Ok(id) => download(api, peer, id, &req).await,
            Err(_) => not_found(),
        },
        (&Method::POST, ["v1", "bundles", id, "receipt"]) => match id.parse::<BundleId>() {
            Ok(id) => receipt(api, peer, id, req).await,
            Err(_) => not_found(),
        },
        (_, ["v1", "bundles"]) => method_not_allowed(&method, &path, "GET, POST"),
        (_, ["v1", "bundles", _]) => method_not_allowed(&method, &path, "GET, HEAD"),
        (_, ["v1", "bundles", _, "receipt"] | ["v1", "applications"]) => {
            method_not_allowed(&method, &path, "POST")
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no endpoint {path}"),
        ),
    };
    tracing::info!(%peer, %method, path = %printable(&path), status = resp.status().as_u16(), "request");
    resp
}

fn method_not_allowed(method: &Method, path: &str, allow: &'static str) -> Response<ResBody> {
    let mut r = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}; allowed: {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}
