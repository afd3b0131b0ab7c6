//! The DHCP service loop: per socket, receive → [`decode`] (malformed: debug log, drop)
//! → inventory [`select`] on a cached snapshot → [`decide`] against the in-memory
//! [`LeaseTable`] → lease changes through the group commit ([`super::commit`]) → send.
//!
//! Replies that change no lease (OFFER, NAK, proxy replies, INFORM) are sent at once; an
//! ACK that binds or renews waits for its commit. The lease table is restored at start
//! from the lease log (the store, passed in as a [`LeaseLog`]). The inventory snapshot is
//! refreshed every [`SNAPSHOT_REFRESH`], so a `pin set` reaches DHCP within about a
//! second without a store query per packet.
//! Before deciding, `full` mode asks [`super::authority`] whether this server answers the
//! request at all (dynamic clients only on the DHCP authority; degraded mode when the
//! store is unreachable); taking the authority reloads the lease table from the store.
//! A reserved client's DISCOVER is then answered at once only by its owner among the live
//! servers ([`super::balance`]), so a storm is spread over them.
//! Boot events (DhcpOffer, DhcpAck, Ignored) are recorded for netboot clients (PXE, HTTP
//! boot, iPXE) only: renewals of running systems would flood the boot history.
//! Must not import the TFTP or HTTP front ends.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::authority::{Ask, Authority, Gate};
use super::balance;
use super::commit::{self, LeaseLog, Outgoing, Pending};
use super::lease::{LeaseTable, LeaseTimers};
use super::ledger::LoaderLedger;
use super::policy::{Action, Context, Port, decide, is_netboot};
use super::reply::{ReplyKind, build};
use super::request::{ClientRequest, decode};
use super::socket::{DhcpSocket, Neighbours};
use super::wire::MessageType;
use super::{CLIENT_PORT, Destination, SERVER_PORT};
use crate::boot::{BootEvent, BootFileKind, Dhcp, EventDetail, Firmware, Ignored, Via};
use crate::config::{Config, DhcpMode, Reservation};
use crate::events::{EventSink, now_ms};
use crate::inventory::{Decision, Facts, Inventory, InventoryError, Snapshot, select};
use crate::lease_view::{LeaseUpdate, LeaseView};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// How often the cached inventory snapshot is re-checked against the store revision.
pub const SNAPSHOT_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Errors starting the DHCP service.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// A bound socket and which port role it plays.
pub type Bound = (DhcpSocket, Port);

/// What DHCP shares with the other front ends, through the daemon (never by import).
#[derive(Debug, Default)]
pub struct Shared {
    /// Loaders delivered per MAC: marked here and by TFTP, read here.
    pub ledger: Arc<LoaderLedger>,
    /// The same marks in the store, for the other servers on it (`None`: a sole server).
    pub fleet_ledger: Option<Arc<super::FleetLedger>>,
    /// The bound leases, written here after each durable commit, read by HTTP.
    pub leases: Arc<LeaseView>,
    /// Told once the stored leases are in `leases` (so HTTP, bound to them, does not
    /// answer before a restart's leases are back); dropped unsent if DHCP cannot start.
    pub restored: Option<tokio::sync::oneshot::Sender<()>>,
    /// Packets in and out, drops, commits and pool use (`tabula_dhcp_*`).
    pub metrics: Metrics,
    /// Woken when another server announced a store revision: refresh the snapshot now.
    pub revision_changed: Arc<tokio::sync::Notify>,
    /// The `dhcp` role of a fleet (`None`: a sole server, which always allocates). While
    /// it is not held, dynamic clients get no answer; when it is taken, the lease table is
    /// reloaded from the store first (the previous authority's leases).
    pub authority: Option<crate::ha::Leadership>,
    /// The live full-mode DHCP servers on the store, to split reserved clients among
    /// (`super::balance`; `None`: every reserved client is answered at once).
    pub peers: Option<crate::ha::DhcpPeers>,
    /// Whether the store answers (the membership heartbeat's view): while it does not,
    /// DHCP runs degraded (see `super::authority`).
    pub store: crate::health::Health,
}

struct Service {
    config: Config,
    leases: Option<Mutex<LeaseTable>>,
    ledger: Arc<LoaderLedger>,
    fleet_ledger: Option<Arc<super::FleetLedger>>,
    snapshot: RwLock<Arc<Snapshot>>,
    neighbours: Neighbours,
    events: EventSink,
    commits: mpsc::Sender<Pending>,
    metrics: Metrics,
    authority: Authority,
    peers: Option<crate::ha::DhcpPeers>,
    store: crate::health::Health,
}

/// Runs DHCP on `sockets` until `stop`; returns once queued commits are written and sent.
/// Leases are restored from and made durable in `lease_log`, and mirrored in
/// `shared.leases` (restored ones at start, then every durable commit).
pub async fn run(
    config: Config,
    sockets: Vec<Bound>,
    inventory: Arc<Inventory>,
    lease_log: impl LeaseLog + Clone,
    events: EventSink,
    mut shared: Shared,
    stop: CancellationToken,
) -> Result<(), ServerError> {
    let snap = inventory.snapshot().await?;
    let leases = match config.dhcp.mode {
        DhcpMode::Full => {
            let table = restore(&config, &snap, &lease_log).await?;
            shared
                .leases
                .apply(table.bound(SystemTime::now()).map(|l| LeaseUpdate::Bound {
                    mac: l.mac,
                    ip: l.ip,
                    expires: l.expires,
                }));
            Some(Mutex::new(table))
        }
        _ => None,
    };
    if let Some(tx) = shared.restored.take() {
        let _ = tx.send(());
    }
    let (tx, rx) = mpsc::channel(65_536);
    let (adopt_tx, mut adopt_rx) = mpsc::unbounded_channel::<Vec<crate::store::LeaseRow>>();
    let committer = tokio::spawn(commit::run(
        lease_log.clone(),
        shared.leases.clone(),
        rx,
        shared.metrics.clone(),
        move |rows: &[crate::store::LeaseRow]| {
            let _ = adopt_tx.send(rows.to_vec());
        },
    ));
    let svc = Arc::new(Service {
        config,
        leases,
        ledger: shared.ledger,
        fleet_ledger: shared.fleet_ledger,
        snapshot: RwLock::new(snap),
        neighbours: Neighbours::open(),
        events,
        commits: tx,
        metrics: shared.metrics.clone(),
        authority: match shared.authority {
            None => Authority::sole(),
            Some(_) => Authority::member(),
        },
        peers: shared.peers.take(),
        store: shared.store.clone(),
    });
    // The winners of refused writes go into the table (the losers' clients start over).
    let adopter = {
        let svc = svc.clone();
        tokio::spawn(async move {
            while let Some(rows) = adopt_rx.recv().await {
                if let Some(table) = &svc.leases {
                    let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
                    for r in &rows {
                        t.adopt(commit::from_row(r), SystemTime::now());
                    }
                }
            }
        })
    };
    let follower = shared.authority.map(|leadership| {
        let (svc, log, view, stop) = (
            svc.clone(),
            lease_log.clone(),
            shared.leases.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { svc.follow(leadership, log, view, stop).await })
    });
    if svc.leases.is_some() {
        let weak = Arc::downgrade(&svc);
        shared.metrics.observe_pools(Box::new(move || {
            weak.upgrade()
                .and_then(|s| {
                    let t = s.leases.as_ref()?;
                    let t = t.lock().unwrap_or_else(|p| p.into_inner());
                    Some(t.usage())
                })
                .unwrap_or_default()
        }));
    }
    let mut tasks = JoinSet::new();
    for (sock, port) in sockets {
        tasks.spawn(recv_loop(svc.clone(), Arc::new(sock), port, stop.clone()));
    }
    let refresher = {
        let (svc, stop, changed) = (svc.clone(), stop.clone(), shared.revision_changed.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(SNAPSHOT_REFRESH) => {}
                    _ = changed.notified() => {}
                }
                match inventory.snapshot().await {
                    Ok(s) => svc.refresh(s),
                    Err(e) => tracing::warn!(error = %e, "inventory snapshot not refreshed"),
                }
            }
        })
    };
    while tasks.join_next().await.is_some() {}
    let _ = refresher.await;
    if let Some(f) = follower {
        let _ = f.await;
    }
    drop(svc); // the last commit sender: the committer drains and ends
    let _ = committer.await;
    let _ = adopter.await;
    Ok(())
}

/// The fixed addresses: the config's `[[dhcp.reservations]]`, then every inventory
/// machine with an address (for each of its MACs), unless the MAC or the address is
/// already reserved by config.
fn reservations(config: &Config, snap: &Snapshot) -> Vec<Reservation> {
    let mut out = config.dhcp.reservations.clone();
    for m in &snap.machines {
        if let Some(address) = m.address {
            for mac in &m.macs {
                if !out.iter().any(|r| r.mac == *mac || r.address == address) {
                    out.push(Reservation {
                        mac: *mac,
                        address,
                        hostname: m.hostname.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Builds the lease table from config and inventory reservations and the stored leases.
async fn restore(
    config: &Config,
    snap: &Snapshot,
    log: &impl LeaseLog,
) -> Result<LeaseTable, ServerError> {
    let reservations = reservations(config, snap);
    let mut table = LeaseTable::new(&config.dhcp.subnets, &reservations, LeaseTimers::default());
    let rows = log.leases().await?;
    let n = rows.len();
    let dropped = table.restore(rows.iter().map(commit::from_row), SystemTime::now());
    if !dropped.is_empty() {
        let writes: Vec<_> = dropped.iter().map(commit::to_write).collect();
        log.write_leases(&writes).await?;
    }
    tracing::info!(restored = n, dropped = dropped.len(), "DHCP leases loaded");
    Ok(table)
}

async fn recv_loop(svc: Arc<Service>, sock: Arc<DhcpSocket>, port: Port, stop: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let rx = tokio::select! {
            _ = stop.cancelled() => return,
            r = sock.recv(&mut buf) => r,
        };
        let rx = match rx {
            Ok(rx) => rx,
            Err(e) => {
                tracing::debug!(iface = %sock.iface.name, error = %e, "DHCP receive failed");
                continue;
            }
        };
        let req = match decode(&buf[..rx.len.min(buf.len())]) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %rx.source, error = %e, "malformed DHCP packet dropped");
                svc.metrics.dhcp().dropped.inc("malformed");
                continue;
            }
        };
        let span = tracing::debug_span!("dhcp", mac = %req.mac, xid = format_args!("{:08x}", req.xid), peer = %rx.source);
        svc.handle(&sock, port, rx, req).instrument(span).await;
    }
}

impl Service {
    async fn handle(
        &self,
        sock: &Arc<DhcpSocket>,
        port: Port,
        rx: super::socket::Received,
        req: ClientRequest,
    ) {
        let m = self.metrics.dhcp();
        m.received.inc(match req.message_type {
            MessageType::Discover => "discover",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
            _ => "other",
        });
        let server_id = self.config.advertise.unwrap_or(rx.local);
        let degraded = self.store.store_unreachable();
        let mut prior = None;
        if let Some(table) = &self.leases {
            let (reserved, known) = {
                let t = table.lock().unwrap_or_else(|p| p.into_inner());
                prior = t.lease_of(req.mac, SystemTime::now());
                (t.is_reserved(req.mac), prior.is_some())
            };
            let gate = self.authority.gate(&Ask {
                message: req.message_type,
                server_id: req.server_id,
                ours: server_id,
                reserved,
                known,
                degraded,
            });
            if gate != Gate::Answer {
                tracing::debug!(?gate, "not answered by this server");
                return;
            }
            if reserved
                && req.message_type == MessageType::Discover
                && let Some(peers) = &self.peers
            {
                let live = peers.live(Instant::now());
                let ha = &self.config.ha;
                let share = balance::share(
                    &ha.server_id,
                    live.as_deref().map(Vec::as_slice),
                    req.mac,
                    req.secs,
                    ha.load_balance_max_secs,
                );
                if !share.answers() {
                    tracing::debug!(?share, secs = req.secs, "reserved client left to its owner");
                    m.dropped.inc("peer-owns");
                    return;
                }
                tracing::debug!(?share, secs = req.secs, "reserved client answered");
            }
        }
        // Only the messages that can be answered with a boot file ask the inventory.
        let decision = match req.message_type {
            MessageType::Discover | MessageType::Request | MessageType::Inform => {
                Some(self.select(&req))
            }
            _ => None,
        };
        let ctx = Context {
            mode: self.config.dhcp.mode,
            port,
            chainload: self.config.dhcp.chainload,
            loaders: &self.config.dhcp.loaders,
            public_url: &self.config.http.public_url,
            server_id,
            next_server: server_id,
            subnets: &self.config.dhcp.subnets,
            link_address: rx.local,
            source: rx.source,
        };
        let now = Instant::now();
        let mut recent = self.ledger.recently_delivered(req.mac, now);
        // Only an iPXE client can be handed a loader it already runs: ask the other
        // servers' marks (the store) before handing it one.
        if !recent
            && req.kind.ipxe
            && !degraded
            && self.config.dhcp.chainload == crate::config::Chainload::LoaderFirst
            && let Some(fleet) = &self.fleet_ledger
            && let Some(age) = fleet.open_window(req.mac, now_ms()).await
        {
            if let Some(since) = now.checked_sub(age) {
                self.ledger.adopt(req.mac, since);
            }
            recent = true;
        }
        let outcome = {
            let mut table = self
                .leases
                .as_ref()
                .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
            let now = SystemTime::now();
            let mut outcome = decide(
                &req,
                &ctx,
                decision.as_ref(),
                table.as_deref_mut(),
                recent,
                now,
            );
            if degraded
                && let (Some(prior), Some(t)) = (prior, table.as_deref_mut())
                && super::authority::renew_from_cache(&mut outcome, prior, t, now)
            {
                tracing::info!(ip = %prior.ip, "store unreachable: lease renewed for its remaining time only");
            }
            outcome
        };
        if outcome.loader_handed {
            self.ledger.mark(req.mac, now);
        } else if outcome.boot == Some(BootFileKind::TftpLoader) {
            // Named without marking (an OFFER): the TFTP transfer may confirm it.
            self.ledger.named(req.mac, now);
        }
        if let Some(fleet) = &self.fleet_ledger
            && (outcome.loader_handed || outcome.boot == Some(BootFileKind::TftpLoader))
        {
            fleet.record(req.mac, now_ms(), outcome.loader_handed);
        }
        let reply = match outcome.action {
            Action::Reply(spec, dest) => {
                let bytes = match build(&req, &spec) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build DHCP reply");
                        m.dropped.inc("build-failed");
                        return;
                    }
                };
                tracing::debug!(kind = ?spec.kind, yiaddr = %spec.yiaddr, file = ?spec.boot_file, "reply");
                self.record(
                    &req,
                    decision.as_ref(),
                    spec.kind,
                    spec.yiaddr,
                    spec.boot_file.as_deref().zip(outcome.boot),
                );
                if let Some(why) = spec.nak_reason {
                    m.naks.inc(why);
                }
                let to = self.realize(dest, spec.kind, rx.ifindex);
                Some(Outgoing {
                    sock: sock.clone(),
                    bytes,
                    to,
                    ifindex: rx.ifindex,
                    src: rx.local,
                    sent: m
                        .replies
                        .get(match spec.kind {
                            ReplyKind::Offer => "offer",
                            ReplyKind::Ack => "ack",
                            ReplyKind::Nak => "nak",
                            ReplyKind::ProxyOffer => "proxy_offer",
                            ReplyKind::ProxyAck => "proxy_ack",
                        })
                        .clone(),
                })
            }
            Action::Done(what) => {
                tracing::debug!(what, "handled without reply");
                None
            }
            Action::Ignore { reason, event } => {
                m.dropped.inc(reason.code());
                if event {
                    // Rate-gated: a DISCOVER flood is one counted log line, not a row
                    // (and an info line) per packet.
                    if self.events.record_refusal(BootEvent {
                        at_ms: now_ms(),
                        mac: req.mac,
                        manifest: None,
                        via: Via::Dhcp,
                        peer: None,
                        detail: EventDetail::Ignored(Ignored {
                            reason: reason.to_string(),
                            code: Some(reason.code().to_string()),
                        }),
                    }) {
                        tracing::info!(%reason, "DHCP request ignored");
                    }
                } else {
                    tracing::debug!(%reason, "DHCP request ignored");
                }
                None
            }
        };
        if outcome.changes.is_empty() {
            if let Some(r) = reply {
                r.send().await;
            }
        } else if self
            .commits
            .send(Pending {
                changes: outcome.changes,
                reply,
            })
            .await
            .is_err()
        {
            tracing::warn!("lease committer gone: reply dropped");
            m.dropped.inc("committer-gone");
        }
    }

    /// Follows the `dhcp` role: on taking it, reloads the lease table from the store (with
    /// the previous authority's leases), puts its bound leases in `view`, then allocates;
    /// on losing it, stops allocating at once.
    async fn follow<L: LeaseLog>(
        &self,
        mut leadership: crate::ha::Leadership,
        log: L,
        view: Arc<LeaseView>,
        stop: CancellationToken,
    ) {
        // When the role was lost: the table stays trusted for degraded renewals until the
        // store has been seen reachable for a few heartbeats after that. The elector may
        // step down (renewals failing) before the heartbeat has marked the store
        // unreachable, so the loss alone cannot tell an outage from a takeover.
        let grace = self.config.ha.heartbeat * 3;
        let mut lost_at: Option<std::time::Instant> = None;
        loop {
            let held = *leadership.borrow_and_update();
            if !held && self.authority.allocating() {
                self.authority.set_allocating(false, true);
                lost_at = Some(std::time::Instant::now());
                tracing::warn!("DHCP standby: dynamic clients are left to the authority");
            }
            if let Some(t) = lost_at {
                if self.store.store_unreachable() {
                    lost_at = Some(std::time::Instant::now());
                } else if t.elapsed() >= grace {
                    self.authority.distrust();
                    lost_at = None;
                }
            }
            if held && !self.authority.allocating() {
                let snap = self
                    .snapshot
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                match restore(&self.config, &snap, &log).await {
                    Ok(table) => {
                        let degraded = self.store.store_unreachable();
                        view.apply(table.bound(SystemTime::now()).map(|l| LeaseUpdate::Bound {
                            mac: l.mac,
                            ip: l.ip,
                            expires: l.expires,
                        }));
                        if let Some(t) = &self.leases {
                            *t.lock().unwrap_or_else(|p| p.into_inner()) = table;
                        }
                        if *leadership.borrow() {
                            self.authority.set_allocating(true, degraded);
                            tracing::info!(
                                standby_ignored = self
                                    .authority
                                    .standby_ignored
                                    .load(std::sync::atomic::Ordering::Relaxed),
                                "DHCP authority: allocating dynamic addresses"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "DHCP authority taken but leases not reloaded: retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => continue,
                        }
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                r = leadership.changed() => if r.is_err() { return },
                () = tokio::time::sleep(self.config.ha.heartbeat), if lost_at.is_some() => {}
            }
        }
    }

    /// Installs a newer inventory snapshot; a machine given (or stripped of) a fixed
    /// address since the last one changes the lease table's reservations at once.
    fn refresh(&self, snap: Arc<Snapshot>) {
        let mut cur = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        if Arc::ptr_eq(&cur, &snap) {
            return;
        }
        // The same revision in a new snapshot: manifests re-read after replicated blobs
        // arrived (a manifest unusable before). Installed, or a replica would refuse its
        // netboot clients ("blob missing") until the next store change.
        if cur.revision == snap.revision {
            *cur = snap;
            return;
        }
        if let Some(table) = &self.leases {
            let res = reservations(&self.config, &snap);
            let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
            if table.set_reservations(&res) {
                tracing::info!(
                    reservations = res.len(),
                    "DHCP reservations updated from the inventory"
                );
            }
        }
        *cur = snap;
    }

    fn select(&self, req: &ClientRequest) -> Decision {
        let snap = self
            .snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let facts = Facts {
            mac: req.mac,
            uuid: req
                .machine_id
                .as_ref()
                .and_then(|m| m.uuid())
                .filter(|u| !u.is_nil())
                .map(|u| u.to_string()),
            firmware: req.kind.firmware.unwrap_or(Firmware::Bios),
        };
        if req.kind.firmware.is_none() {
            return crate::inventory::select_unnamed_arch(&snap, &facts).decision;
        }
        select(&snap, &facts).decision
    }

    /// Turns a destination into an address, installing an ARP entry for a unicast to a
    /// client without an address (or falling back to broadcast). With a non-standard
    /// `listen_port` (tests), clients are on `listen_port + 1` and relays on `listen_port`.
    fn realize(&self, dest: Destination, kind: ReplyKind, ifindex: u32) -> SocketAddrV4 {
        let listen = self.config.dhcp.listen_port;
        let client = if listen == SERVER_PORT {
            CLIENT_PORT
        } else {
            listen.saturating_add(1)
        };
        match dest {
            Destination::Relay(a) => SocketAddrV4::new(*a.ip(), listen),
            Destination::Unicast(a) if kind == ReplyKind::ProxyAck => a,
            Destination::Unicast(a) => SocketAddrV4::new(*a.ip(), client),
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, client),
            Destination::UnicastToHardware { ip, mac, .. } => {
                if self.neighbours.add(ifindex, ip, mac) {
                    SocketAddrV4::new(ip, client)
                } else {
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, client)
                }
            }
        }
    }

    fn record(
        &self,
        req: &ClientRequest,
        d: Option<&Decision>,
        kind: ReplyKind,
        ip: Ipv4Addr,
        file: Option<(&str, BootFileKind)>,
    ) {
        if !is_netboot(req) {
            return;
        }
        let detail = Dhcp {
            address: (!ip.is_unspecified()).then_some(ip),
            file: file.map(|(f, _)| f.to_string()),
            boot: file.map(|(_, k)| k),
            firmware: req.kind.firmware,
            ipxe: req.kind.ipxe,
            proxy: kind.is_proxy(),
            xid: format!("{:08x}", req.xid),
        };
        let detail = match kind {
            ReplyKind::Offer | ReplyKind::ProxyOffer => EventDetail::DhcpOffer(detail),
            ReplyKind::Ack | ReplyKind::ProxyAck => EventDetail::DhcpAck(detail),
            ReplyKind::Nak => return,
        };
        let manifest = match d {
            Some(Decision::Boot { plan }) => Some(plan.manifest),
            _ => None,
        };
        self.events.record(BootEvent {
            at_ms: now_ms(),
            mac: req.mac,
            manifest,
            via: Via::Dhcp,
            peer: None,
            detail,
        });
    }
}
