//! The HTTP data plane: what booting machines fetch, on `http.listen`, served by a
//! hand-written HTTP/1.1 loop ([`conn`]) so that blobs and loaders go out by `sendfile`.
//! Every route is in one table, `route.rs` ([`route::classify`]); nothing falls back to
//! another router. Operators' and programs' requests (REST, SSE, metrics) belong on the
//! API listener, `src/api/`, not here.
//!
//! | route | what |
//! |---|---|
//! | `GET,HEAD /boot.ipxe?mac=…&arch=…` (`platform`/`buildarch` as iPXE names them) | the machine's iPXE script ([`boot_script`]) |
//! | `GET,HEAD /boot/{mac}/boot.ipxe` | the same, path form |
//! | `GET,HEAD /blobs/sha256/{hex}[/{name}]` | immutable blobs by digest (`blobs.rs`, by `sendfile`) |
//! | `POST /boot/{mac}/{manifest}/{token}/{booted,failed,progress}` | reports from booting machines, with their boot's token ([`report`]) |
//! | `GET,HEAD /loaders/{name}` | iPXE loaders for UEFI HTTP boot (from `tftp.root`, a configured loader through its link; `loaders.rs`) |
//! | `GET,HEAD /healthz` | `ok` while DHCP, TFTP and HTTP (those configured) serve, else 503 |
//! | `GET,HEAD /readyz` | `store reachable` / `store unreachable: …` once checked, then one line per front end: `serving`, `down` or `off` (503 if one is down or the store is unreachable) |
//!
//! HEAD gets exactly the head GET gets (status, length, type, validators), never a body.
//!
//! Limits (deadlines, connection caps) and their counters are in [`limits`]. With
//! `http.require_lease_match`, scripts, reports and attributed downloads for a MAC are
//! bound to the address DHCP leased it ([`lease_match`]).
//!
//! The front end asks the inventory for decisions and records boot events; it never
//! talks to the DHCP or TFTP front ends.

pub mod admission;
pub mod attribution;
mod blob_files;
mod blob_head;
mod blobs;
pub mod boot_script;
pub mod conn;
#[doc(hidden)]
pub mod fuzzing;
pub mod grub;
pub mod lease_match;
pub mod limits;
mod loaders;
mod meter;
#[cfg(test)]
mod program_fixtures;
pub mod report;
pub mod report_key;
pub mod route;
pub mod script;
mod wire;

use std::sync::Arc;

use crate::boot::ReportKey;
use crate::events::EventSink;

use crate::images::BlobStore;
use crate::inventory::Inventory;
pub use limits::{LimitStats, Limits};

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
    /// The configured loaders, resolved at start-up (served even from outside
    /// `loader_dir`; `loaders.rs`).
    pub loader_files: crate::loader_files::LoaderFiles,
    /// Blob files kept open by digest (for the `sendfile` path).
    pub files: blob_files::BlobFiles,
    /// Rendered scripts of the current inventory snapshot.
    pub scripts: boot_script::ScriptCache,
    /// The gate root-image streams wait at (`[http.admission]`).
    pub admission: admission::Admission,
    /// Deadlines, connection caps and their counters.
    pub limits: Arc<limits::Limits>,
    /// Which front ends serve, for `/healthz` and `/readyz`.
    pub health: crate::health::Health,
    /// The key of report tokens (`<data_dir>/report.key`, [`report_key`]).
    pub report_key: Arc<ReportKey>,
    /// Reports refused for their token, counted.
    pub report_refusals: Arc<report::ReportRefusals>,
    /// Which MAC was served which plan, when: what attributes a download to a boot.
    pub boots: Arc<attribution::Boots>,
    /// `http.require_lease_match`: requests for a MAC only from its leased address
    /// ([`lease_match`]); `None` when off.
    pub lease_match: Option<Arc<lease_match::LeaseMatch>>,
    /// Each MAC's current boot attempt, and the queue to the attempt recorder
    /// (`crate::attempt`); `None`: attempts are not recorded.
    pub attempts: Option<Arc<crate::attempt::tracker::Tracker>>,
    /// The blob files this process verified: nothing else is served.
    pub trusted: crate::images::Trusted,
    /// Finds a live peer holding a blob this server lacks (a 307 there); `None`: 404.
    pub locator: Option<crate::replica::Locator>,
    /// The live peers' data-plane URLs, named after this server's in boot scripts.
    pub peers: crate::replica::Peers,
}

/// Serves on an already-bound listener until `shutdown` is cancelled, then stops
/// accepting and waits for in-flight requests (the caller bounds that wait).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    conn::serve(listener, state, shutdown).await
}
