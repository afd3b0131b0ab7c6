//! The HTTP front end: every route in one place ([`router`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /boot.ipxe?mac=…&arch=…` (`platform`/`buildarch` as iPXE names them) | the machine's iPXE script |
//! | `GET /boot/{mac}/boot.ipxe` | the same, path form |
//! | `GET,HEAD /blobs/sha256/{hex}[/{name}]` | immutable blobs by digest (in [`conn`], by `sendfile`) |
//! | `POST,GET /boot/{mac}/{manifest}/{booted,failed,progress}` | reports from booting machines |
//! | `GET,HEAD /loaders/{name}` | iPXE loaders for UEFI HTTP boot (from `tftp.root`) |
//! | `GET /healthz` | liveness |
//!
//! The front end asks the inventory for decisions and records boot events; it never
//! talks to the DHCP or TFTP front ends.

mod blob_head;
mod blobs;
pub mod conn;
mod loaders;
pub mod report;
pub mod script;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::boot::{BootEvent, BootStage, Firmware, Mac};
use crate::events::EventSink;
use crate::images::BlobStore;
use crate::inventory::{Decision, Facts, Inventory, select};

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
}

/// Every route.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/boot.ipxe", get(script_query))
        .route("/boot/{mac}/boot.ipxe", get(script_path))
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

/// The client's IP address, as text, when known.
pub(crate) fn peer_ip(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// Firmware from the script URL: tabula's own `arch=` name, or iPXE's
/// `platform=pcbios|efi` with `buildarch=i386|x86_64|arm64`.
fn firmware_of(q: &BTreeMap<String, String>) -> Result<Firmware, String> {
    if let Some(a) = q.get("arch") {
        return a
            .parse()
            .map_err(|e: crate::boot::FirmwareError| e.to_string());
    }
    let build = q.get("buildarch").map(String::as_str);
    match q.get("platform").map(String::as_str) {
        None | Some("pcbios") => Ok(Firmware::Bios),
        Some("efi") => match build {
            None | Some("x86_64") => Ok(Firmware::EfiX64),
            Some("i386") => Ok(Firmware::EfiIa32),
            Some("arm64") => Ok(Firmware::EfiArm64),
            Some(o) => Err(format!("unsupported buildarch {o:?}")),
        },
        Some(o) => Err(format!("unsupported platform {o:?}")),
    }
}

async fn script_query(
    State(st): State<HttpState>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> Response {
    let mac = q.get("mac").cloned().unwrap_or_default();
    script(st, &mac, &q, peer_ip(&req)).await
}

async fn script_path(
    State(st): State<HttpState>,
    Path(mac): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> Response {
    script(st, &mac, &q, peer_ip(&req)).await
}

async fn script(
    st: HttpState,
    mac: &str,
    q: &BTreeMap<String, String>,
    peer: Option<String>,
) -> Response {
    let plain = |code: StatusCode, msg: String| {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            msg,
        )
            .into_response()
    };
    let Ok(mac) = mac.parse::<Mac>() else {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("malformed MAC address {mac:?}\n"),
        );
    };
    let firmware = match firmware_of(q) {
        Ok(f) => f,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let snap = match st.inventory.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the inventory");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable\n".into(),
            );
        }
    };
    let facts = Facts {
        mac,
        uuid: q.get("uuid").map(|u| u.to_ascii_lowercase()),
        firmware,
    };
    let sel = select(&snap, &facts);
    let (stage, manifest, detail) = match &sel.decision {
        Decision::Boot { plan } => (
            BootStage::ScriptSent,
            Some(plan.manifest),
            serde_json::json!({"image": plan.image, "version": plan.version,
                "rule": sel.candidates.first().map(|c| &c.target), "firmware": firmware.as_str(), "peer": peer}),
        ),
        Decision::Local => (
            BootStage::ScriptSent,
            None,
            serde_json::json!({"local": true, "rule": sel.candidates.first().map(|c| &c.target), "peer": peer}),
        ),
        Decision::Ignore { reason } => (
            BootStage::Ignored,
            None,
            serde_json::json!({"reason": reason, "via": "http", "peer": peer}),
        ),
    };
    let text = match script::render(&sel, &st.base_url) {
        Ok(t) => t,
        Err(e) => {
            st.events.record(BootEvent {
                at_ms: crate::events::now_ms(),
                mac,
                stage: BootStage::Failed,
                manifest,
                detail: serde_json::json!({"reason": e.to_string(), "via": "http"}),
            });
            return plain(
                StatusCode::OK,
                format!(
                    "#!ipxe\necho tabula: {}\nexit 1\n",
                    script::echo_text(&e.to_string())
                ),
            );
        }
    };
    st.events.record(BootEvent {
        at_ms: crate::events::now_ms(),
        mac,
        stage,
        manifest,
        detail,
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}
