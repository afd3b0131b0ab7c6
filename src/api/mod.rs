//! The control plane's front end: the API listener (`api.listen`, default
//! `127.0.0.1:9090`), one axum [`router`] served by `axum::serve` on hyper, so it gets
//! what the data plane's hand-written loop deliberately lacks: streaming response
//! bodies, chunked request bodies, HTTP/1.1 keep-alive by hyper's rules. Graceful
//! shutdown on the daemon's cancellation token.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `ok` while DHCP, TFTP and HTTP (those configured) serve, else 503 naming those down |
//! | `GET /readyz` | `store reachable` / `store unreachable: …` once checked, then one line per front end: `serving`, `down` or `off` (503 if one is down or the store is unreachable) |
//! | `GET /api/v1/` | `{"name": "tabula", "version": "…"}` |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3.1 document of every resource ([`openapi`]) |
//! | `/api/v1/machines…`, `explain/{mac}`, `pins…`, `images…`, `blobs…`, `leases`, `events`, `tokens…`, `rollouts…`, `holds`, `webhooks…` | the REST resources, one file each, listed with their scopes in [`routes::TABLE`] |
//! | `GET /api/v1/servers` | (read) the servers sharing the store: alive, serves, roles, version ([`servers`]) |
//! | `GET /api/v1/events/stream` | the boot history as Server-Sent Events, live, resumable ([`events`]) |
//! | `GET /metrics` | Prometheus text format ([`metrics`]) |
//! | `/ui/…` | the web dashboard ([`crate::ui`]: session cookie, not a bearer token) |
//! | anything else | a problem+json 404, or 405 for a known path ([`problem`]) |
//!
//! Every resource needs a bearer token of the scope [`auth::required`] names (read for
//! every GET, operate for machines, pins, boot actions, holds, boot-once and rollout
//! commands, admin for the rest: images, tokens, webhooks, creating rollouts); health, the index and
//! the OpenAPI document do not. Each resource parses a request into the same library
//! facade call the CLI makes (`crate::fleet`, `crate::catalog`, store reads), on behalf
//! of the token, whose name is the actor of the histories its writes change.
//!
//! This front end must not import the data
//! plane (`crate::http`) or the DHCP and TFTP front ends, and machines are never pointed
//! at it: what they fetch is on `http.listen`.

pub(crate) mod auth;
mod blobs;
mod event_list;
pub(crate) mod events;
mod explain;
mod extract;
mod fleet_machines;
mod images;
mod leases;
mod machines;
pub(crate) mod metrics;
mod openapi;
mod page;
mod pins;
pub(crate) mod problem;
mod rollouts;
pub(crate) mod routes;
pub(crate) mod servers;
mod timeline;
pub(crate) mod tls;
mod tokens;
mod webhooks;

use std::io;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub(crate) use problem::Problem;

use crate::health::Health;
use crate::store::Store;

/// What the API's handlers share.
#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    pub health: Health,
    pub store: Store,
    /// The write facade and read models the CLI uses too.
    pub fleet: crate::fleet::Fleet,
    /// Events as they are committed (the event stream follows it).
    pub hub: crate::events::Hub,
    /// Cancelled at shutdown: open event streams end, so graceful shutdown can finish.
    pub shutdown: CancellationToken,
    /// `GET /metrics` ([`metrics`]).
    pub metrics: metrics::Scrape,
    /// `ha.heartbeat`: a server is alive while its last beat is younger than 3 of these.
    pub heartbeat: std::time::Duration,
    /// The loaders and boot programs this server hands out (explain names them).
    pub loaders: crate::config::Loaders,
}

/// The document at `/api/v1/`.
#[derive(Debug, serde::Serialize)]
struct Index {
    name: &'static str,
    version: &'static str,
}

/// Every route of the API listener.
pub(crate) fn router(st: ApiState) -> Router {
    let health = st.health.clone();
    let ready = st.health.clone();
    // Every resource needs a token ([`auth`]); health, the index and the document
    // describing the API do not.
    let resources = routes::resources(st.clone()).layer(middleware::from_fn_with_state(
        st.health.clone(),
        refuse_writes_when_degraded,
    ));
    Router::new()
        .route(
            "/healthz",
            get(move || async move { health_answer(health.summary()) }),
        )
        .route(
            "/readyz",
            get(move || async move { health_answer(ready.report()) }),
        )
        .route("/api/v1/", get(index))
        .route("/api/v1", get(index))
        .route(openapi::PATH, get(openapi::document))
        .merge(metrics::router(&st))
        .merge(resources)
        .merge(crate::ui::router(st.clone()))
        .fallback(|uri: Uri| async move { Problem::not_found(uri.path()) })
        .method_not_allowed_fallback(|req: Request| async move {
            Problem::method_not_allowed(req.method(), req.uri().path())
        })
        .layer(middleware::from_fn(span))
        .with_state(st)
}

/// While the store is unreachable (degraded mode) every write to a resource is answered
/// 503 `store-unavailable` at once, instead of waiting for the store's error; reads go on.
async fn refuse_writes_when_degraded(
    axum::extract::State(health): axum::extract::State<Health>,
    req: Request,
    next: Next,
) -> Response {
    use axum::http::Method;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write && health.store_unreachable() {
        return Problem::store_unavailable(req.uri().path()).into_response();
    }
    next.run(req).await
}

/// Serves [`router`] on an already-bound listener until `shutdown` is cancelled, then
/// lets open requests finish (the daemon bounds that wait); over TLS ([`tls`]) when the
/// daemon has its configuration.
pub(crate) async fn run(
    listener: TcpListener,
    st: ApiState,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    let shutdown = st.shutdown.clone();
    match tls {
        Some(t) => tls::serve(listener, router(st), t, shutdown).await,
        None => serve(listener, router(st), shutdown).await,
    }
}

/// 200 with the text when every configured front end serves, else 503.
fn health_answer((ok, text): (bool, String)) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, text).into_response()
}

/// Serves `app` as [`run`] serves [`router`].
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn index() -> impl IntoResponse {
    axum::Json(Index {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// One `api{method, path}` span per request, attached with `Instrument`.
async fn span(req: Request, next: Next) -> Response {
    let span = tracing::debug_span!("api", method = %req.method(), path = %req.uri().path());
    next.run(req).instrument(span).await
}

#[cfg(test)]
mod tests;
