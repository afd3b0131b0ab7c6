//! `tabula serve`: wires the front ends to the inventory and the event writer, from
//! sockets bound here, under one shutdown.
//!
//! Shutdown: one root [`CancellationToken`]. When it fires, front ends stop accepting;
//! in-flight work gets [`GRACE`] to finish, then is cut; the event writer drains what was
//! queued; `run` returns. Sockets are closed when their tasks end, so the ports can be
//! bound again at once.

mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::boot::EventDetail;
use crate::config::{Config, DhcpMode};
use crate::dhcp::policy::Port;
use crate::dhcp::socket::{DhcpSocket, SocketError};
use crate::dhcp::{self, LoaderLedger};
use crate::events;
use crate::health::{Component, Health};
use crate::http::{self, HttpState};
use crate::images::BlobStore;
use crate::inventory::{Inventory, Settings};
use crate::lease_view::LeaseView;
use crate::loader_files::{LoaderCheck, LoaderFiles, Resolution};
use crate::store::Store;
use crate::tftp::{self, TransferEvent};

/// How long in-flight transfers may run after shutdown is requested.
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// How stale a boot decision's view of pins and images may be: the revision is
/// re-checked at most this often, so a boot storm does not query the store per request.
pub(crate) const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(250);

/// How often old boot events are swept (see `events.retention`).
pub(crate) const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Daemon errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}{hint}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    DhcpSocket(#[from] SocketError),
    #[error(transparent)]
    ReportKey(#[from] http::report_key::KeyError),
    /// `api.tls_cert` / `api.tls_key` cannot be used.
    #[error(transparent)]
    ApiTls(#[from] crate::api::tls::TlsError),
}

fn bind_hint(addr: &SocketAddr, e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        std::io::ErrorKind::AddrInUse => " (another process already listens there)",
        std::io::ErrorKind::AddrNotAvailable => " (no interface has that address)",
        _ => "",
    }
}

/// The sockets a daemon serves on, bound before it starts (tests bind port 0).
#[derive(Debug, Default)]
pub(crate) struct Bound {
    pub http: Option<TcpListener>,
    /// The API listener (the control plane, `src/api/`).
    pub api: Option<TcpListener>,
    /// Its TLS configuration (`api.tls_cert`/`tls_key`), read when binding: before the
    /// privilege drop, so a key only root may read can be used.
    pub api_tls: Option<Arc<rustls::ServerConfig>>,
    pub tftp: Option<UdpSocket>,
    /// DHCP sockets: per interface the server port, plus the boot-server port in proxy mode.
    pub dhcp: Vec<(DhcpSocket, Port)>,
}

impl Bound {
    /// Binds every enabled service of `config`.
    pub(crate) async fn from_config(config: &Config) -> Result<Bound, DaemonError> {
        let mut b = Bound::default();
        if config.http.enabled {
            let addr = config.http.listen;
            b.http = Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        what: "HTTP",
                        addr,
                        hint: bind_hint(&addr, &source),
                        source,
                    })?,
            );
        }
        if config.api.enabled {
            let addr = config.api.listen;
            b.api = Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        what: "API",
                        addr,
                        hint: bind_hint(&addr, &source),
                        source,
                    })?,
            );
            if let Some(t) = &config.api.tls {
                b.api_tls = Some(crate::api::tls::load(&t.cert, &t.key)?);
            }
        }
        if config.tftp.enabled {
            let addr = config.tftp.listen;
            b.tftp = Some(
                UdpSocket::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        what: "TFTP",
                        addr,
                        hint: bind_hint(&addr, &source),
                        source,
                    })?,
            );
        }
        if config.dhcp.mode != DhcpMode::Off {
            for iface in dhcp::socket::interfaces(&config.dhcp.interfaces)? {
                let sock = DhcpSocket::bind(&iface, config.dhcp.listen_port)?;
                b.dhcp.push((sock, Port::Server));
                if config.dhcp.mode == DhcpMode::Proxy {
                    let sock = DhcpSocket::bind(&iface, config.dhcp.proxy_port)?;
                    b.dhcp.push((sock, Port::BootServer));
                }
            }
        }
        Ok(b)
    }

    /// The sockets without their tokio registration ([`Detached`]), to serve them from
    /// another runtime.
    pub(crate) fn detach(self) -> std::io::Result<Detached> {
        Ok(Detached {
            http: self.http.map(TcpListener::into_std).transpose()?,
            api: self.api.map(TcpListener::into_std).transpose()?,
            api_tls: self.api_tls,
            tftp: self.tftp.map(UdpSocket::into_std).transpose()?,
            dhcp: self
                .dhcp
                .into_iter()
                .map(|(s, p)| s.detach().map(|s| (s, p)))
                .collect::<Result<_, _>>()?,
        })
    }

    /// What is bound, for the "listening" lines.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Ok(a)) = self.http.as_ref().map(|l| l.local_addr()) {
            out.push(format!("http {a}"));
        }
        if let Some(Ok(a)) = self.tftp.as_ref().map(|s| s.local_addr()) {
            out.push(format!("tftp {a}"));
        }
        if let Some(Ok(a)) = self.api.as_ref().map(|l| l.local_addr()) {
            let tls = if self.api_tls.is_some() { " (TLS)" } else { "" };
            out.push(format!("api {a}{tls}"));
        }
        for (s, _) in &self.dhcp {
            out.push(format!(
                "dhcp {} {}:{}",
                s.iface.name,
                s.iface.address,
                s.local_port()
            ));
        }
        out
    }
}

/// [`Bound`] between two runtimes: bound on one, detached, attached on the next.
#[derive(Debug)]
pub(crate) struct Detached {
    http: Option<std::net::TcpListener>,
    api: Option<std::net::TcpListener>,
    api_tls: Option<Arc<rustls::ServerConfig>>,
    tftp: Option<std::net::UdpSocket>,
    dhcp: Vec<(dhcp::socket::Detached, Port)>,
}

impl Detached {
    /// Registers every socket with the current runtime.
    pub(crate) fn attach(self) -> std::io::Result<Bound> {
        Ok(Bound {
            http: self.http.map(TcpListener::from_std).transpose()?,
            api: self.api.map(TcpListener::from_std).transpose()?,
            api_tls: self.api_tls,
            tftp: self.tftp.map(UdpSocket::from_std).transpose()?,
            dhcp: self
                .dhcp
                .into_iter()
                .map(|(s, p)| s.attach().map(|s| (s, p)))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Runs on `store` (opened by the caller, so tests can hand in any) until `shutdown` is
/// cancelled, then shuts down gracefully and closes the store.
pub(crate) async fn run(
    config: Config,
    store: Store,
    bound: Bound,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    raise_nofile(&config);
    let blobs = BlobStore::open(&config.blob_dir())?;
    let inventory = Arc::new(
        Inventory::new(
            store.clone(),
            blobs.clone(),
            Settings {
                unknown_machines: config.boot.unknown_machines,
                console: config.boot.console.clone(),
                base_url: config.http.public_url.clone(),
            },
        )
        .with_max_age(SNAPSHOT_MAX_AGE)
        .with_quarantine_ignore(config.health.quarantine == crate::config::Quarantine::Ignore),
    );
    // Load once now so a broken store shows at start-up, not at the first boot.
    inventory.snapshot().await?;
    let report_key = Arc::new(http::report_key::shared(&store, &config.data_dir).await?);
    let health = Health::default();
    let (sink, queue) = events::channel_with(events::SinkLimits::of(&config.events));
    let hub = events::Hub::default();
    // While the store is unreachable, events go to a bounded spool on this server's disk.
    let writer = tokio::spawn(events::write_events_spooled(
        store.clone(),
        queue,
        hub.clone(),
        Some(config.data_dir.join("events.spool")),
    ));
    // Every family at zero; each front end gets the handle, `/metrics` encodes it.
    let metrics = crate::metrics::Metrics::new();
    metrics::expose_events(&metrics, &sink);

    let mut tasks: JoinSet<()> = JoinSet::new();
    tasks.spawn(crate::metrics::boots::run(
        hub.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(metrics::refresh_fleet(
        metrics.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    // Heartbeat, leader rows, revision feed: how this server shares the store with others.
    let fleet = crate::ha::join(
        &config,
        &store,
        inventory.clone(),
        !bound.dhcp.is_empty(),
        health.clone(),
        &shutdown,
    )
    .await;
    // Boot attempts (issue 14): HTTP tracks each MAC's attempt, one recorder stores them,
    // and the fleet controller (rollouts, boot-once, webhooks) runs beside it.
    let (tracker, notes) = crate::attempt::tracker::Tracker::new(config.health.boot_deadline);
    let tracker = Arc::new(tracker);
    let recorder = crate::attempt::record::Recorder {
        store: store.clone(),
        max_tries: config.health.max_tries,
    };
    let attempts_done = tokio::spawn(crate::attempt::record::run(
        recorder,
        notes,
        fleet.jobs.clone(),
        shutdown.clone(),
    ));
    // Singleton jobs: every server runs the tasks, only the `jobs` holder acts.
    tasks.spawn(crate::fleet::control::run(
        store.clone(),
        fleet.jobs.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::notify::deliver::run(
        store.clone(),
        fleet.jobs.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(events::retention::run(
        store.clone(),
        config.events.retention,
        RETENTION_EVERY,
        fleet.jobs.clone(),
        shutdown.clone(),
    ));
    // The leases DHCP has bound (full mode), written by its committer, read by HTTP for
    // `http.require_lease_match`.
    let leases = Arc::new(LeaseView::default());
    // With `http.require_lease_match`, HTTP waits (connections queue) until DHCP has put
    // the stored leases in the view: after a restart no machine is refused for a lease
    // it holds. A DHCP that cannot start drops the sender and HTTP serves on.
    let (restored_tx, restored_rx) = if config.http.require_lease_match && !bound.dhcp.is_empty() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    // The configured loaders, resolved once for TFTP and HTTP both (warnings logged).
    let loader_files = if bound.http.is_some() || bound.tftp.is_some() {
        resolve_loaders(&config).await
    } else {
        LoaderFiles::default()
    };
    // Every bound front end is marked serving before any of them runs (so no probe sees
    // one up and another not yet); each guard moves into its task and marks its front
    // end down when that task's loop ends or fails.
    let http_up = bound.http.as_ref().map(|_| health.serving(Component::Http));
    let tftp_up = bound.tftp.as_ref().map(|_| health.serving(Component::Tftp));
    let dhcp_up = (!bound.dhcp.is_empty()).then(|| health.serving(Component::Dhcp));
    // The blob files this process verified: the blob route serves only those, the
    // replicator marks what it fetched and verifies what was here before.
    let trusted = crate::images::Trusted::default();
    let peers = crate::replica::Peers::default();
    let api_inventory = Arc::new(Inventory::new(
        store.clone(),
        blobs.clone(),
        inventory.settings().clone(),
    ));
    if bound.http.is_some() {
        // Images replicated by digest from the peers (`crate::replica`).
        tasks.spawn(crate::replica::run(
            crate::replica::Replicator {
                store: store.clone(),
                blobs: blobs.clone(),
                trusted: trusted.clone(),
                me: config.ha.server_id.clone(),
                url: config.http.public_url.clone(),
                inventories: vec![inventory.clone(), api_inventory.clone()],
                peers: peers.clone(),
            },
            shutdown.clone(),
        ));
    }
    // GRUB reads its config and blobs over TFTP, answered from the HTTP side's state.
    let mut grub_files: Option<Arc<dyn crate::tftp::dynamic::Dynamic>> = None;
    let mut grub_blobs = None;
    if let Some(listener) = bound.http {
        let state = HttpState {
            inventory: inventory.clone(),
            blobs: blobs.clone(),
            events: sink.clone(),
            base_url: config.http.public_url.clone(),
            loader_dir: config.tftp.root.clone(),
            loader_files: loader_files.clone(),
            files: Default::default(),
            scripts: Default::default(),
            admission: http::admission::Admission::new(config.http.admission),
            limits: Arc::new(http::Limits::new(&config.http).metered(metrics.clone())),
            health: health.clone(),
            report_key: report_key.clone(),
            report_refusals: Default::default(),
            boots: Arc::new(http::attribution::Boots::new(
                config.http.attribution_window,
            )),
            lease_match: config
                .http
                .require_lease_match
                .then(|| Arc::new(http::lease_match::LeaseMatch::new(leases.clone()))),
            attempts: Some(tracker.clone()),
            trusted: trusted.clone(),
            locator: Some(crate::replica::Locator {
                store: store.clone(),
                me: config.ha.server_id.clone(),
            }),
            peers: peers.clone(),
        };
        metrics::expose_http(&metrics, &state);
        if grub_served(&config) {
            grub_files = Some(Arc::new(crate::boot_files::GrubFiles {
                http: state.clone(),
            }));
            grub_blobs = Some(GrubBlobs {
                boots: state.boots.clone(),
                attempts: tracker.clone(),
            });
        }
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let _serving = http_up;
            if let Some(restored) = restored_rx {
                let _ = restored.await;
            }
            if let Err(e) = http::run(listener, state, stop).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
    }
    if let Some(listener) = bound.api {
        let tls = bound.api_tls.clone();
        let st = crate::api::ApiState {
            health: health.clone(),
            store: store.clone(),
            // Its own inventory, never older than the store's revision: an API write is
            // in the API's next explain (the data plane's may lag SNAPSHOT_MAX_AGE).
            fleet: crate::fleet::Fleet::new(api_inventory.clone()),
            hub: hub.clone(),
            shutdown: shutdown.clone(),
            metrics: crate::api::metrics::Scrape {
                metrics: metrics.clone(),
                token_required: config.api.metrics_token_required,
            },
            heartbeat: config.ha.heartbeat,
            loaders: config.dhcp.loaders.clone(),
        };
        tasks.spawn(async move {
            if let Err(e) = crate::api::run(listener, st, tls).await {
                tracing::error!(error = %e, "API server failed");
            }
        });
    }
    // "Loader delivered" per MAC, marked by DHCP when it hands a loader out and by TFTP
    // when one is fully transferred; DHCP reads it to break chainload loops.
    let ledger = Arc::new(LoaderLedger::new());
    // On a store several servers may share, the marks are shared through it too, so a
    // client whose loader came from another server is not handed it again here.
    let fleet_ledger = (store.dialect() == crate::store::Dialect::Postgres)
        .then(|| dhcp::FleetLedger::start(store.clone(), shutdown.clone()));
    if let Some(socket) = bound.tftp {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let cfg = tftp::TftpServerConfig {
            grace: GRACE,
            loaders: loader_files.clone(),
            dynamic: grub_files,
            ..tftp::TftpServerConfig::from(&config.tftp)
        };
        metrics::expose_tftp(&metrics, &cfg.refusals);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let _serving = tftp_up;
            if let Err(e) = tftp::run(socket, cfg, tx, stop.cancelled_owned()).await {
                tracing::error!(error = %e, "TFTP server failed");
            }
        });
        tasks.spawn(loader_events(
            rx,
            sink.clone(),
            ledger.clone(),
            fleet_ledger.clone(),
            metrics.clone(),
            grub_blobs,
        ));
    }
    if !bound.dhcp.is_empty() {
        let ifaces: Vec<_> = bound
            .dhcp
            .iter()
            .filter(|(_, p)| *p == Port::Server)
            .map(|(s, _)| s.iface.clone())
            .collect();
        if config.dhcp.router_advertisement {
            for iface in ifaces {
                tasks.spawn(dhcp::ra::run(iface, shutdown.clone()));
            }
        }
        let (cfg, inv, ev, stop) = (
            config.clone(),
            inventory.clone(),
            sink.clone(),
            shutdown.clone(),
        );
        let shared = dhcp::server::Shared {
            ledger: ledger.clone(),
            fleet_ledger: fleet_ledger.clone(),
            leases: leases.clone(),
            restored: restored_tx,
            metrics: metrics.clone(),
            revision_changed: fleet.revision_changed.clone(),
            authority: fleet.dhcp.clone(),
            peers: fleet.dhcp_peers.clone(),
            store: health.clone(),
        };
        let sockets = bound.dhcp;
        let lease_log = store.clone();
        tasks.spawn(async move {
            let _serving = dhcp_up;
            if let Err(e) = dhcp::server::run(cfg, sockets, inv, lease_log, ev, shared, stop).await
            {
                tracing::error!(error = %e, "DHCP server failed");
            }
        });
    }
    drop(sink);

    shutdown.cancelled().await;
    tracing::info!(
        "shutting down: {} s for in-flight transfers",
        GRACE.as_secs()
    );
    let drained =
        tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "grace period over: cutting {} transfer task(s)",
            tasks.len()
        );
        tasks.shutdown().await;
    }
    // Every sink is gone with its front end; the writer drains and ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    drop(tracker);
    let _ = tokio::time::timeout(Duration::from_secs(5), attempts_done).await;
    store.close().await;
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (every connection, TFTP transfer
/// and open blob is a descriptor), and warns when the HTTP and TFTP caps could still
/// exceed it (then `accept` and TFTP sockets fail with EMFILE: counted, never fatal).
fn raise_nofile(config: &Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let now = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                soft
            }
        }
    } else {
        soft
    };
    let h = &config.http;
    let wanted =
        h.max_connections + (h.max_connections / 8).max(1) + config.tftp.max_transfers + 256;
    if now < u64::try_from(wanted).unwrap_or(u64::MAX) {
        tracing::warn!(
            limit = now,
            wanted,
            "open-file limit below http.max_connections + tftp.max_transfers: expect EMFILE under load (raise LimitNOFILE / ulimit -Hn)"
        );
    } else {
        tracing::debug!(limit = now, "open-file limit");
    }
}

/// Resolves the configured loaders under `tftp.root` (as `server.user`, after the
/// privilege drop, so a file this user cannot read is named now) and logs one warning
/// line per loader that cannot be served, with its fix. Never a reason not to start:
/// iPXE ROMs and `chainload = "script"` boot without any loader, and the front ends
/// still serve every other file; a loader installed later is served by the root's own
/// rules (README "Loaders").
async fn resolve_loaders(config: &Config) -> LoaderFiles {
    let (root, loaders) = (config.tftp.root.clone(), config.dhcp.loaders.clone());
    let resolved = tokio::task::spawn_blocking(move || LoaderFiles::resolve(&root, &loaders)).await;
    let Ok((files, checks)) = resolved else {
        return LoaderFiles::default();
    };
    let mode = config.dhcp.mode;
    for c in &checks {
        match (&c.resolution, c.problem()) {
            (_, Some(line)) if c.handed_out(mode) => tracing::warn!("{line}"),
            (_, Some(line)) => tracing::debug!("{line} (not handed out: dhcp.mode = off)"),
            (Resolution::File { path, linked: true }, None) => {
                tracing::info!(loader = %c.name, file = %path.display(), "loader served through its link");
            }
            _ => {}
        }
    }
    let files = with_grub_bootstrap(config, files);
    if mode != crate::config::DhcpMode::Off && !checks.iter().any(LoaderCheck::servable) {
        tracing::warn!(
            root = %config.tftp.root.display(),
            "no configured loader can be served: only iPXE clients (script URL) can boot"
        );
    }
    files
}

/// What verifies the blobs GRUB reads over TFTP: the HTTP side's record of what each
/// MAC's boot names, and the boot attempts.
struct GrubBlobs {
    boots: Arc<http::attribution::Boots>,
    attempts: Arc<crate::attempt::tracker::Tracker>,
}

/// Where Debian's signed GRUB network loaders look for their config over TFTP: their
/// built-in prefix is `/grub` on the server that answered DHCP.
const GRUB_BOOTSTRAP_NAMES: [&str; 2] = ["grub/grub.cfg", "grub.cfg"];

/// Whether any machine can boot GRUB: a firmware kind whose program is GRUB, or a GRUB
/// loader configured (machines pinned `local` then boot GRUB, `Loaders::local_for`). TFTP
/// then serves GRUB's configs and blobs.
fn grub_served(config: &Config) -> bool {
    let l = &config.dhcp.loaders;
    let p = l.programs;
    [p.efi_x64, p.efi_arm64].contains(&crate::boot::BootProgram::Grub)
        || l.grub_x64.is_some()
        || l.grub_arm64.is_some()
}

/// When GRUB is served ([`grub_served`]), TFTP serves the bootstrap config
/// (`http::grub::bootstrap`) under [`GRUB_BOOTSTRAP_NAMES`].
fn with_grub_bootstrap(config: &Config, mut files: LoaderFiles) -> LoaderFiles {
    if !grub_served(config) {
        return files;
    }
    let text = axum::body::Bytes::from(crate::http::grub::bootstrap());
    for name in GRUB_BOOTSTRAP_NAMES {
        files = files.with_generated(name, text.clone());
    }
    files
}

/// The bridge from TFTP to the ledger and the event sink: a loader fully delivered to a
/// MAC that a DHCP reply named a loader confirms it in the ledger ([`LoaderLedger::confirm`]);
/// each transfer's boot event ([`TransferEvent::boot_event`]) is recorded, a delivery
/// the ledger did not confirm as `unverified`. With a fleet ledger, a transfer this
/// server's ledger cannot confirm is confirmed by another server's mark in the store.
async fn loader_events(
    mut rx: tokio::sync::mpsc::Receiver<TransferEvent>,
    sink: events::EventSink,
    ledger: Arc<LoaderLedger>,
    fleet: Option<Arc<dhcp::FleetLedger>>,
    metrics: crate::metrics::Metrics,
    grub: Option<GrubBlobs>,
) {
    while let Some(ev) = rx.recv().await {
        let (outcome, bytes) = ev.metric();
        metrics.tftp().transfers.inc(outcome);
        metrics.tftp().sent_bytes.inc_by(bytes);
        let confirmed = match ev.delivered_to() {
            None => None,
            Some(mac) => {
                let now = std::time::Instant::now();
                let mut ok = ledger.confirm(mac, now);
                if let Some(fleet) = &fleet {
                    // Named by this server: share the window; else another may have named it.
                    if ok {
                        fleet.started(mac, events::now_ms());
                    } else if fleet.confirm(mac, events::now_ms()).await {
                        ledger.adopt(mac, now);
                        ok = true;
                    }
                }
                Some(ok)
            }
        };
        if let Some(mut e) = ev.boot_event(events::now_ms()) {
            if let (EventDetail::LoaderSent(l), Some(ok)) = (&mut e.detail, confirmed) {
                l.unverified = !ok;
            }
            if let (
                EventDetail::KernelSent(b)
                | EventDetail::InitrdSent(b)
                | EventDetail::RootfsSent(b),
                Some(g),
            ) = (&mut e.detail, &grub)
            {
                // A blob GRUB read over TFTP: verified as over HTTP (the boot it was served).
                b.unverified = !g.boots.belongs(e.mac, b.digest, std::time::Instant::now());
                if !b.unverified {
                    g.attempts.fetched(e.mac);
                }
            }
            sink.record(e);
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub(crate) fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
}
