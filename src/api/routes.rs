//! Request routing: which handler serves a method on a path.
//!
//! [`ROUTES`] is the one table of the API's paths and the methods each serves;
//! a [`matchit`] router built from it finds the path. A known path with a
//! method it does not serve is `405 method-not-allowed` with an `Allow` header
//! naming the methods in the table's order (GET and HEAD first, as
//! `docs/openapi.yaml` says); any other path is `404 not-found`. A bundle id
//! that is not well-formed is the same `404` as a bundle that does not exist.

use std::sync::{Arc, LazyLock};

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::bundles::{download, list, receipt};
use super::problems::{not_found, problem};
use super::uploads::{push, submit};
use super::{Api, ResBody};
use crate::types::{printable, AgencyId, BundleId};

/// What serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// `GET /v1/bundles`: the waiting bundles, with long-poll.
    List,
    /// `POST /v1/bundles`: a committee pushes a bundle.
    Push,
    /// `GET`/`HEAD /v1/bundles/{id}`: a bundle, whole or one range.
    Download,
    /// `POST /v1/bundles/{id}/receipt`: the receiver's signed receipt.
    Receipt,
    /// `POST /v1/applications`: the online platform submits an application.
    Submit,
    /// `GET /v1/cases/{case}`: a case's timeline, for the peers it concerns.
    Case,
    /// `POST /v1/cases/{case}/events`: a court's follow-up event.
    Events,
}

/// Every path and the methods it serves, in the order `Allow` names them.
const ROUTES: &[(&str, &[(Method, Handler)])] = &[
    (
        "/v1/bundles",
        &[(Method::GET, Handler::List), (Method::POST, Handler::Push)],
    ),
    (
        "/v1/bundles/{id}",
        &[
            (Method::GET, Handler::Download),
            (Method::HEAD, Handler::Download),
        ],
    ),
    (
        "/v1/bundles/{id}/receipt",
        &[(Method::POST, Handler::Receipt)],
    ),
    ("/v1/applications", &[(Method::POST, Handler::Submit)]),
    ("/v1/cases/{id}", &[(Method::GET, Handler::Case)]),
    ("/v1/cases/{id}/events", &[(Method::POST, Handler::Events)]),
];

type Methods = &'static [(Method, Handler)];

static ROUTER: LazyLock<matchit::Router<Methods>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, methods) in ROUTES {
        router
            .insert(*path, *methods)
            .expect("the API's paths are valid and distinct");
    }
    router
});

/// Where a request goes: a handler and the path's `{id}`, or why none.
#[derive(Debug, PartialEq, Eq)]
enum Routed<'p> {
    To(Handler, Option<&'p str>),
    /// A known path, another method: the methods it serves, for `Allow`.
    MethodNotAllowed(String),
    NoEndpoint,
}

fn route<'p>(method: &Method, path: &'p str) -> Routed<'p> {
    let Ok(found) = ROUTER.at(path) else {
        return Routed::NoEndpoint;
    };
    let methods: Methods = found.value;
    match methods.iter().find(|(m, _)| m == method) {
        Some((_, handler)) => Routed::To(*handler, found.params.get("id")),
        None => Routed::MethodNotAllowed(
            methods
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// Serves one request of `peer`'s connection and logs it.
pub(super) async fn handle(
    api: &Arc<Api>,
    peer: &AgencyId,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let id = |id: Option<&str>| id.and_then(|s| s.parse::<BundleId>().ok());
    let resp = match route(&method, &path) {
        Routed::To(Handler::List, _) => list(api, peer, req.uri().query().unwrap_or("")).await,
        Routed::To(Handler::Push, _) => push(api, peer, req).await,
        Routed::To(Handler::Submit, _) => submit(api, peer, req).await,
        Routed::To(Handler::Download, raw) => match id(raw) {
            Some(id) => download(api, peer, id, &req).await,
            None => not_found(),
        },
        Routed::To(Handler::Case, raw) => match super::cases::case_of(raw) {
            Some(case) => super::cases::get(api, peer, case).await,
            None => super::cases::no_case(),
        },
        Routed::To(Handler::Events, raw) => match super::cases::case_of(raw) {
            Some(case) => super::cases::post_event(api, peer, case, req).await,
            None => super::cases::no_case(),
        },
        Routed::To(Handler::Receipt, raw) => match id(raw) {
            Some(id) => receipt(api, peer, id, req).await,
            None => not_found(),
        },
        Routed::MethodNotAllowed(allow) => method_not_allowed(&method, &path, &allow),
        Routed::NoEndpoint => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no endpoint {path}"),
        ),
    };
    tracing::info!(%peer, %method, path = %printable(&path), status = resp.status().as_u16(), "request");
    resp
}

fn method_not_allowed(method: &Method, path: &str, allow: &str) -> Response<ResBody> {
    let mut r = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}; allowed: {allow}"),
    );
    if let Ok(v) = header::HeaderValue::from_str(allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_goes_to_its_handler() {
        let id = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
        let bundle = format!("/v1/bundles/{id}");
        let receipt = format!("/v1/bundles/{id}/receipt");
        for (method, path, want) in [
            (Method::GET, "/v1/bundles", Routed::To(Handler::List, None)),
            (Method::POST, "/v1/bundles", Routed::To(Handler::Push, None)),
            (
                Method::GET,
                &bundle,
                Routed::To(Handler::Download, Some(id)),
            ),
            (
                Method::HEAD,
                &bundle,
                Routed::To(Handler::Download, Some(id)),
            ),
            (
                Method::POST,
                &receipt,
                Routed::To(Handler::Receipt, Some(id)),
            ),
            (
                Method::POST,
                "/v1/applications",
                Routed::To(Handler::Submit, None),
            ),
        ] {
            assert_eq!(route(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn a_known_path_names_its_methods_and_others_are_no_endpoint() {
        let allowed = |m: Method, p: &str| match route(&m, p) {
            Routed::MethodNotAllowed(a) => a,
            other => panic!("{m} {p}: {other:?}"),
        };
        assert_eq!(allowed(Method::DELETE, "/v1/bundles"), "GET, POST");
        assert_eq!(allowed(Method::POST, "/v1/bundles/x"), "GET, HEAD");
        assert_eq!(allowed(Method::GET, "/v1/bundles/x/receipt"), "POST");
        assert_eq!(allowed(Method::PUT, "/v1/applications"), "POST");
        for path in [
            "/",
            "/v1",
            "/v1/bundles/",
            "/v2/bundles",
            "/v1/bundles/x/y",
            "/v1/bundles/x/receipt/",
            "/V1/bundles",
        ] {
            assert_eq!(route(&Method::GET, path), Routed::NoEndpoint, "{path}");
        }
    }
}
