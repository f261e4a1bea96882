//! Request routing: which handler serves a method on a path.
//!
//! [`ROUTES`] is the one table of the API's paths and the methods each serves;
//! a [`matchit`] router built from it finds the path. A known path with a
//! method it does not serve is `405 method-not-allowed` with an `Allow` header
//! naming the methods in the table's order (GET and HEAD first, as
//! `docs/openapi.yaml` says); any other path is `404 not-found`. A bundle id
//! that is not well-formed is the same `404` as a bundle that does not exist.
//! [`resolve`] makes all of these decisions (and parses the listing's query)
//! without touching the node's state; the fuzz target `routes` drives it.

use std::sync::{Arc, LazyLock};

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::bundles::{download, list, receipt, ListQuery};
use super::problems::problem;
use super::uploads::{push, submit};
use super::{Api, ResBody};
use crate::types::{printable, AgencyId, BundleId, CaseRef};

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

/// What routing makes of a request line, before any handler runs: the
/// handler with its arguments parsed, or the answer routing gives itself.
/// Pure (no node state), so that `fuzz/` drives the very code [`handle`]
/// runs with arbitrary methods, paths and queries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolved {
    /// `GET /v1/bundles` with its query.
    List(ListQuery),
    /// `POST /v1/bundles`.
    Push,
    /// `POST /v1/applications`.
    Submit,
    /// `GET`/`HEAD /v1/bundles/{id}`.
    Download(BundleId),
    /// `POST /v1/bundles/{id}/receipt`.
    Receipt(BundleId),
    /// `GET /v1/cases/{case}`.
    Case(CaseRef),
    /// `POST /v1/cases/{case}/events`.
    Events(CaseRef),
    /// Answered by routing itself: a problem response.
    Answer(Answer),
}

/// A problem response routing gives itself (`404`, `405`, `400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The problem's code.
    pub code: &'static str,
    /// Its title.
    pub title: &'static str,
    /// Its detail.
    pub detail: String,
    /// For `405`: the `Allow` header's value.
    pub allow: Option<String>,
}

impl Answer {
    fn not_found(detail: String) -> Resolved {
        Resolved::Answer(Answer {
            status: StatusCode::NOT_FOUND,
            code: "not-found",
            title: "Not found",
            detail,
            allow: None,
        })
    }

    fn into_response(self) -> Response<ResBody> {
        let mut r = problem(self.status, self.code, self.title, self.detail);
        if let Some(v) = self
            .allow
            .and_then(|a| header::HeaderValue::from_str(&a).ok())
        {
            r.headers_mut().insert(header::ALLOW, v);
        }
        r
    }
}

/// Routes `method` on `path` (with the request's `query`, `""` if none).
pub fn resolve(method: &Method, path: &str, query: &str) -> Resolved {
    let id = |id: Option<&str>| id.and_then(|s| s.parse::<BundleId>().ok());
    let no_bundle = || Answer::not_found("no such bundle for this peer".into());
    let no_case = || Answer::not_found("no such case for this peer".into());
    match route(method, path) {
        Routed::To(Handler::List, _) => match ListQuery::parse(query) {
            Ok(q) => Resolved::List(q),
            Err(detail) => Resolved::Answer(Answer {
                status: StatusCode::BAD_REQUEST,
                code: "bad-query",
                title: "Bad query",
                detail,
                allow: None,
            }),
        },
        Routed::To(Handler::Push, _) => Resolved::Push,
        Routed::To(Handler::Submit, _) => Resolved::Submit,
        Routed::To(Handler::Download, raw) => id(raw).map_or_else(no_bundle, Resolved::Download),
        Routed::To(Handler::Receipt, raw) => id(raw).map_or_else(no_bundle, Resolved::Receipt),
        Routed::To(Handler::Case, raw) => {
            super::cases::case_of(raw).map_or_else(no_case, Resolved::Case)
        }
        Routed::To(Handler::Events, raw) => {
            super::cases::case_of(raw).map_or_else(no_case, Resolved::Events)
        }
        Routed::MethodNotAllowed(allow) => Resolved::Answer(Answer {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method-not-allowed",
            title: "Method not allowed",
            detail: format!("{method} is not allowed on {path}; allowed: {allow}"),
            allow: Some(allow),
        }),
        Routed::NoEndpoint => Answer::not_found(format!("no endpoint {path}")),
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
    let resp = match resolve(&method, &path, req.uri().query().unwrap_or("")) {
        Resolved::List(q) => list(api, peer, q).await,
        Resolved::Push => push(api, peer, req).await,
        Resolved::Submit => submit(api, peer, req).await,
        Resolved::Download(id) => download(api, peer, id, &req).await,
        Resolved::Receipt(id) => receipt(api, peer, id, req).await,
        Resolved::Case(case) => super::cases::get(api, peer, case).await,
        Resolved::Events(case) => super::cases::post_event(api, peer, case, req).await,
        Resolved::Answer(a) => a.into_response(),
    };
    tracing::info!(%peer, %method, path = %printable(&path), status = resp.status().as_u16(), "request");
    resp
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
