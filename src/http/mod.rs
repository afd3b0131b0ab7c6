//! The HTTP front end: every route in one place ([`router`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /boot.ipxe?mac=…&arch=…` (`platform`/`buildarch` as iPXE names them) | the machine's iPXE script ([`boot_script`]; answered in [`conn`] without the router) |
//! | `GET /boot/{mac}/boot.ipxe` | the same, path form |
//! | `GET,HEAD /blobs/sha256/{hex}[/{name}]` | immutable blobs by digest (in [`conn`], by `sendfile`) |
//! | `POST,GET /boot/{mac}/{manifest}/{booted,failed,progress}` | reports from booting machines |
//! | `GET,HEAD /loaders/{name}` | iPXE loaders for UEFI HTTP boot (from `tftp.root`) |
//! | `GET /healthz` | liveness |
//!
//! The front end asks the inventory for decisions and records boot events; it never
//! talks to the DHCP or TFTP front ends.

mod blob_files;
mod blob_head;
mod blobs;
pub mod boot_script;
pub mod conn;
mod loaders;
pub mod report;
pub mod script;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::events::EventSink;
use crate::images::BlobStore;
use crate::inventory::Inventory;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub inventory: Arc<Inventory>,
    pub blobs: BlobStore,
    pub events: EventSink,
    /// Base URL machines use to reach this server.
    pub base_url: String,
    /// The loader directory (`tftp.root`), also served under `/loaders/`.
    pub loader_dir: std::path::PathBuf,
    /// Blob files kept open by digest (for the `sendfile` path).
    pub files: blob_files::BlobFiles,
    /// Rendered scripts of the current inventory snapshot.
    pub scripts: boot_script::ScriptCache,
}

/// Every route.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/boot.ipxe", get(script))
        .route("/boot/{mac}/boot.ipxe", get(script))
        .route(
            "/boot/{mac}/{manifest}/{report}",
            get(report::post).post(report::post),
        )
        .route("/loaders/{name}", get(loaders::get))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves on an already-bound listener until `shutdown` is cancelled, then stops
/// accepting and waits for in-flight requests (the caller bounds that wait). Blob
/// requests never reach the router: [`conn`] sends them with `sendfile`.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    conn::serve(listener, state, shutdown).await
}

/// The client's IP address, when known.
pub(crate) fn peer_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The script routes, parsed from the request target ([`boot_script::Request`]).
async fn script(State(st): State<HttpState>, req: Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let peer = peer_ip(&req);
    let reply = match boot_script::Request::of_target(target) {
        Some(r) => boot_script::reply(&st, &r, peer).await,
        None => boot_script::Reply::not_found(),
    };
    let mut res = (
        reply.status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        reply.body,
    )
        .into_response();
    if reply.no_store {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    res
}
