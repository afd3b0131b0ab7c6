//! Several tabula servers on one store (see `docs/ha.md`): membership heartbeats, the
//! expiring leader rows of singleton roles, and the revision feed that reloads decision
//! snapshots when another server changes the store.
//!
//! Nothing here answers a client: the front ends are told, through a [`Leadership`]
//! watch, whether this server holds a role, and decide what that means (DHCP allocates
//! dynamic addresses only while it holds [`Role::Dhcp`]). Must not import the front ends.

pub mod elector;
pub mod heartbeat;
pub mod peers;
pub mod revisions;

pub use elector::{Leadership, elect};
pub use peers::DhcpPeers;

/// A singleton role: at most one server holds each at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Allocation of dynamic DHCP addresses (reserved addresses and proxy replies are
    /// answered by every server).
    Dhcp,
    /// Background jobs that must run once across the fleet: the rollout controller, the
    /// boot-attempt deadline sweeper, webhook delivery and boot-event retention.
    Jobs,
}

impl Role {
    /// The key of the role's leader row.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dhcp => "dhcp",
            Role::Jobs => "jobs",
        }
    }
}

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DhcpMode};
use crate::inventory::Inventory;
use crate::store::{MemberRow, Store};

/// What a running server takes part in: handed to the front ends by the daemon.
#[derive(Debug)]
pub struct Membership {
    /// The `dhcp` role, when this server allocates addresses (`dhcp.mode = "full"`).
    pub dhcp: Option<Leadership>,
    /// The live full-mode DHCP servers, when reserved clients are balanced among them
    /// (`ha.load_balance`, full mode with DHCP bound).
    pub dhcp_peers: Option<DhcpPeers>,
    /// The `jobs` role: fleet-wide singleton jobs run only while it is held.
    pub jobs: Leadership,
    /// Woken when another server announced a store revision.
    pub revision_changed: Arc<Notify>,
}

/// What `serves` says for `config` with `dhcp` sockets bound or not.
pub fn serves(config: &Config, dhcp: bool) -> String {
    let mut parts = Vec::new();
    if dhcp {
        parts.push(match config.dhcp.mode {
            DhcpMode::Full => "dhcp=full",
            DhcpMode::Proxy => "dhcp=proxy",
            DhcpMode::Off => "dhcp=off",
        });
    }
    for (on, name) in [
        (config.tftp.enabled, "tftp"),
        (config.http.enabled, "http"),
        (config.api.enabled, "api"),
    ] {
        if on {
            parts.push(name);
        }
    }
    parts.join(",")
}

/// Joins the fleet: starts the heartbeat, the electors and the revision feed, all
/// stopped by `stop` (which also hands the held roles back).
pub async fn join(
    config: &Config,
    store: &Store,
    inventory: Arc<Inventory>,
    dhcp_bound: bool,
    health: crate::health::Health,
    stop: &CancellationToken,
) -> Membership {
    let id = config.ha.server_id.clone();
    let me = MemberRow {
        id: id.clone(),
        instance: heartbeat::instance(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        serves: serves(config, dhcp_bound),
        api_url: config
            .api
            .enabled
            .then(|| format!("http://{}", config.api.listen)),
        started_ms: crate::store::now_ms(),
        heartbeat_ms: 0,
    };
    tracing::info!(server = %id, serves = %me.serves, "joining the fleet on the store");
    tokio::spawn(heartbeat::run(
        store.clone(),
        me,
        config.ha.heartbeat,
        health,
        stop.clone(),
    ));
    let ttl = config.ha.leader_ttl;
    let dhcp = if dhcp_bound && config.dhcp.mode == DhcpMode::Full {
        Some(elect(store.clone(), Role::Dhcp, id.clone(), ttl, stop.clone()).await)
    } else {
        None
    };
    let dhcp_peers = (dhcp.is_some() && config.ha.load_balance)
        .then(|| peers::watch(store.clone(), config.ha.heartbeat, stop.clone()));
    let jobs = elect(store.clone(), Role::Jobs, id, ttl, stop.clone()).await;
    let revision_changed = Arc::new(Notify::new());
    tokio::spawn(revisions::run(
        config.store_url.clone(),
        inventory,
        revision_changed.clone(),
        stop.clone(),
    ));
    Membership {
        dhcp,
        dhcp_peers,
        jobs,
        revision_changed,
    }
}
