//! The operations listener on loopback (`[admin] listen`): `/metrics`
//! (Prometheus), `/healthz` (the node's own machinery works: what the systemd
//! watchdog is pinged on) and `/readyz` (every part works and every condition
//! is met: disk, certificates, CRLs, peers). Both answer 503 with a JSON body
//! naming what is wrong.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::Metrics;
use crate::outbox::Outbox;
use crate::status::{Counters, Health};
use crate::transport::tls::{Live, Shared};

/// What the listener reads.
#[derive(Debug, Clone)]
pub struct OpsState {
    /// The configuration in force.
    pub live: Shared<Live>,
    /// The outbox (queue depths).
    pub outbox: Outbox,
    /// Service counters.
    pub counters: Counters,
    /// Readiness of every part.
    pub health: Health,
    /// The registry.
    pub metrics: Arc<Metrics>,
    /// The applicant notifications' queue (committees).
    pub notifier: Option<crate::notify::Notifier>,
    /// The audit log and proofs of delivery.
    pub evidence: Option<crate::evidence::service::Evidence>,
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
}

fn router() -> matchit::Router<Route> {
    let mut r = matchit::Router::new();
    for (path, route) in [
        ("/metrics", Route::Metrics),
        ("/healthz", Route::Healthz),
        ("/readyz", Route::Readyz),
    ] {
        r.insert(path, route).expect("fixed routes are valid");
    }
    r
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .expect("valid response")
}

async fn handle(
    state: Arc<OpsState>,
    router: Arc<matchit::Router<Route>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let route = router.at(req.uri().path()).map(|m| *m.value);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match route {
        Ok(Route::Healthz) => {
            // The node's own machinery only: what a restart could fix.
            let alive = state.health.is_alive();
            let problems: Vec<serde_json::Value> = state
                .health
                .problems()
                .into_iter()
                .filter(|(_, p)| p.process)
                .map(|(name, p)| serde_json::json!({"part": name, "detail": p.detail, "since": p.since}))
                .collect();
            let body = serde_json::json!({"alive": alive, "problems": problems});
            respond(
                if alive {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "application/json",
                format!("{body}\n"),
            )
        }
        Ok(Route::Readyz) => {
            let ready = state.health.is_ready();
            let body = serde_json::json!({
                "ready": ready,
                "problems": state.health.problems().into_iter().map(|(name, p)| serde_json::json!({"part": name, "detail": p.detail, "since": p.since})).collect::<Vec<_>>(),
                "parts": state.health.parts(),
            });
            respond(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "application/json",
                format!("{body}\n"),
            )
        }
        Ok(Route::Metrics) => {
            // Prometheus asks for OpenMetrics; everything else gets 0.0.4.
            let openmetrics = req.headers().get_all(header::ACCEPT).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.contains("application/openmetrics-text"))
            });
            let s = state.clone();
            let text = tokio::task::spawn_blocking(move || {
                let live = s.live.get();
                s.metrics.render(
                    &live.config,
                    &s.outbox,
                    &s.counters,
                    &s.health,
                    s.notifier.as_ref(),
                    s.evidence.as_ref(),
                )
            })
            .await
            .unwrap_or_default();
            if openmetrics {
                respond(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )
            } else {
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    super::metrics::prometheus_text(&text),
                )
            }
        }
        Err(_) => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Serves until `shutdown`.
pub async fn serve(listener: Arc<TcpListener>, state: Arc<OpsState>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let router = Arc::new(router());
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "ops listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let router = router.clone();
                async move { Ok::<_, Infallible>(handle(state, router, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}
