//! [`decide`]: one decoded client message in, what to do about it out. The whole DHCP
//! protocol logic of `tabula serve`, as a pure function: the caller supplies the
//! inventory's decision, the (pure, in-memory) lease table, whether the MAC recently got
//! its loader and the time; it gets back a reply spec and destination (or why there is
//! none), the lease changes to persist before sending, and whether a loader went out.
//!
//! Must not: open sockets, read clocks, touch the store, or ask the inventory itself.
//!
//! Rules (README "DHCP"):
//! * full mode: DISCOVER → OFFER; REQUEST (selecting, init-reboot, renewing, rebinding)
//!   → ACK or NAK; a REQUEST naming another server id frees our offer silently; RELEASE
//!   and DECLINE (quarantine) are applied without reply; INFORM → ACK without address.
//! * proxy mode: only netboot clients (option 60 PXEClient/HTTPClient, or iPXE), never an
//!   address; DISCOVER on port 67 → proxy OFFER, anything on the boot-server port (4011)
//!   → proxy ACK unicast back to the sender. A loader is marked as handed out on the
//!   proxy ACK, not the OFFER (the client boots what the ACK names).
//! * inventory `Ignore` → no reply; `Local` → an address but no boot file (iPXE clients
//!   get their script URL, whose script exits to the next boot device).
//! * boot file: see [`boot_file`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use crate::boot::{BootFileKind, Firmware, IgnoreReason, Urls, urls};
use crate::config::{Chainload, DhcpMode, Loaders, Subnet};
use crate::inventory::Decision;

use super::destination::{Destination, reply_destination};
use super::lease::{LeaseChange, LeaseError, LeaseTable, SubnetId};
use super::reply::{ReplyKind, ReplySpec};
use super::request::ClientRequest;
use super::wire::MessageType;

/// Which of the two DHCP ports a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The DHCP server port (67).
    Server,
    /// The PXE boot-server port (4011), proxy mode only.
    BootServer,
}

/// What is fixed about the server and the ingress interface for one request.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub mode: DhcpMode,
    pub port: Port,
    pub chainload: Chainload,
    pub loaders: &'a Loaders,
    /// Base URL of the HTTP front end, without trailing slash.
    pub public_url: &'a str,
    /// Option 54: the ingress interface's address (or `server.advertise`).
    pub server_id: Ipv4Addr,
    /// `siaddr`: the TFTP server.
    pub next_server: Ipv4Addr,
    /// The configured subnets, in `LeaseTable` order.
    pub subnets: &'a [Subnet],
    /// The ingress interface's address: selects the subnet of a non-relayed client.
    pub link_address: Ipv4Addr,
    /// Where the request came from (for port 4011 replies).
    pub source: SocketAddrV4,
}

/// The outcome for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this reply there.
    Reply(Box<ReplySpec>, Destination),
    /// Handled, nothing to send (RELEASE, DECLINE, a REQUEST for another server).
    Done(&'static str),
    /// Not served. `event` says whether this is worth a boot event (a netboot client or
    /// inventory decision) rather than routine noise (a proxy ignoring plain clients).
    Ignore { reason: DhcpIgnore, event: bool },
}

/// Why DHCP sends no reply to a client message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhcpIgnore {
    #[error("dhcp.mode is off")]
    ModeOff,
    #[error("full mode without a lease table")]
    NoLeaseTable,
    #[error("not a PXE, HTTP-boot or iPXE client")]
    NotNetboot,
    #[error("proxy mode answers only DISCOVER on port 67")]
    ProxyNotDiscover,
    #[error("not a boot-server request")]
    NotBootServerRequest,
    /// The inventory decided not to serve the client.
    #[error("{0}")]
    Inventory(IgnoreReason),
    #[error("boots from local disk: no proxy reply")]
    LocalNoProxyReply,
    #[error("no configured subnet for link {0}")]
    NoSubnet(Ipv4Addr),
    /// No address can be offered.
    #[error(transparent)]
    Lease(LeaseError),
    #[error("not a client message")]
    NotClientMessage,
    #[error("REQUEST without requested address or ciaddr")]
    RequestWithoutAddress,
}

impl DhcpIgnore {
    /// A stable name for the kind of reason (event detail `code`, metric label).
    pub fn code(&self) -> &'static str {
        match self {
            DhcpIgnore::ModeOff => "dhcp-off",
            DhcpIgnore::NoLeaseTable => "no-lease-table",
            DhcpIgnore::NotNetboot => "not-netboot",
            DhcpIgnore::ProxyNotDiscover => "proxy-not-discover",
            DhcpIgnore::NotBootServerRequest => "not-boot-server-request",
            DhcpIgnore::Inventory(r) => r.code(),
            DhcpIgnore::LocalNoProxyReply => "local-no-proxy-reply",
            DhcpIgnore::NoSubnet(_) => "no-subnet",
            DhcpIgnore::Lease(LeaseError::UnknownSubnet(_)) => "unknown-subnet",
            DhcpIgnore::Lease(LeaseError::PoolExhausted(_)) => "pool-exhausted",
            DhcpIgnore::NotClientMessage => "not-client-message",
            DhcpIgnore::RequestWithoutAddress => "request-without-address",
        }
    }
}

/// [`decide`]'s result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    /// To persist (in order) before the reply is sent.
    pub changes: Vec<LeaseChange>,
    /// A loader was handed out: mark the MAC in the ledger.
    pub loader_handed: bool,
    /// What the reply's boot file is (its text is in the [`ReplySpec`]).
    pub boot: Option<BootFileKind>,
}

/// What DHCP tells a netboot client to fetch next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootFile {
    /// A loader on the TFTP server, as `<mac>/<loader>` ([`urls::tftp_loader`]).
    TftpLoader(String),
    /// A loader over HTTP, for UEFI HTTP boot ([`Urls::loader`]).
    HttpLoader(String),
    /// The iPXE script URL ([`Urls::script_template`]).
    Script(String),
}

impl BootFile {
    /// The text that goes into the reply.
    pub fn as_str(&self) -> &str {
        match self {
            BootFile::TftpLoader(s) | BootFile::HttpLoader(s) | BootFile::Script(s) => s,
        }
    }

    /// Whether this is a loader (to mark in the ledger).
    pub fn is_loader(&self) -> bool {
        !matches!(self, BootFile::Script(_))
    }

    pub fn kind(&self) -> BootFileKind {
        match self {
            BootFile::TftpLoader(_) => BootFileKind::TftpLoader,
            BootFile::HttpLoader(_) => BootFileKind::HttpLoader,
            BootFile::Script(_) => BootFileKind::Script,
        }
    }
}

impl Outcome {
    fn reply(spec: ReplySpec, dest: Destination) -> Outcome {
        Outcome {
            action: Action::Reply(Box::new(spec), dest),
            changes: Vec::new(),
            loader_handed: false,
            boot: None,
        }
    }

    /// A reply naming `file`; with `mark`, a loader is marked in the ledger.
    fn reply_with(
        spec: ReplySpec,
        dest: Destination,
        file: Option<&BootFile>,
        mark: bool,
    ) -> Outcome {
        let mut o = Outcome::reply(spec, dest);
        o.boot = file.map(BootFile::kind);
        o.loader_handed = mark && file.is_some_and(BootFile::is_loader);
        o
    }

    fn done(what: &'static str, changes: Vec<LeaseChange>) -> Outcome {
        Outcome {
            action: Action::Done(what),
            changes,
            loader_handed: false,
            boot: None,
        }
    }

    fn ignore(reason: DhcpIgnore, event: bool) -> Outcome {
        Outcome {
            action: Action::Ignore { reason, event },
            changes: Vec::new(),
            loader_handed: false,
            boot: None,
        }
    }
}

/// Whether the client is a netboot client at all (PXE, HTTP boot or iPXE).
pub fn is_netboot(req: &ClientRequest) -> bool {
    req.kind.pxe || req.kind.http_boot || req.kind.ipxe
}

/// The boot file for a client.
///
/// * not a netboot client, or `Local` for a BIOS firmware client: none (the BIOS moves on
///   to the next boot device within seconds);
/// * `Local` for a UEFI firmware PXE client: GRUB when its loader is configured
///   ([`crate::config::Loaders::local_for`]), whose config chainloads the disk's boot
///   program; else the loader all the same, whose iPXE gets the script, which exits back
///   to the firmware (HTTP boot: always the loader). An offer without a boot file is "no
///   valid offer" to OVMF's PXE and HTTP boot, which then retry DHCP for ~65-90 s per
///   boot option before moving on (measured: PXEv4 given up at 97 s); the loader's `exit`
///   ends that option in seconds, GRUB's chainload skips the rest (README "Local boot on
///   UEFI");
/// * iPXE: the script URL, except with `chainload = "loader-first"` when the MAC has not
///   had its loader within the ledger window: then the loader for its firmware (once;
///   the next iPXE request within the window gets the script, so no loop is possible);
/// * UEFI HTTP boot: `{public_url}/loaders/<loader>` (the HTTP front end serves
///   loaders under `/loaders/`);
/// * firmware PXE: the loader name for its firmware (BIOS when the arch is unknown).
///
/// TFTP loader names carry the client's MAC as a first path component
/// (`52-54-00-12-34-56/undionly.kpxe`): the TFTP front end strips it and turns the
/// transfer into a boot event for that machine without any lookup.
pub fn boot_file(
    req: &ClientRequest,
    ctx: &Context<'_>,
    decision: &Decision,
    loader_recent: bool,
) -> Option<BootFile> {
    let firmware = req.kind.firmware.unwrap_or(Firmware::Bios);
    let local = matches!(decision, Decision::Local);
    let loader = if local && !req.kind.http_boot {
        ctx.loaders.local_for(firmware)
    } else {
        ctx.loaders.for_firmware(firmware)
    };
    let urls = Urls::new(ctx.public_url);
    if req.kind.ipxe {
        if ctx.chainload == Chainload::LoaderFirst
            && !loader_recent
            && !local
            && !req.kind.http_boot
        {
            return Some(BootFile::TftpLoader(urls::tftp_loader(req.mac, loader)));
        }
        return Some(BootFile::Script(urls.script_template()));
    }
    if !is_netboot(req) || (local && firmware == Firmware::Bios) {
        return None;
    }
    if req.kind.http_boot {
        return Some(BootFile::HttpLoader(urls.loader(loader)));
    }
    Some(BootFile::TftpLoader(urls::tftp_loader(req.mac, loader)))
}

/// Decides what to do with `req`. `leases` is the full-mode allocator (`None` in proxy
/// mode); `decision` is the inventory's answer for this client, asked for the messages
/// that can be answered with a boot file (DISCOVER, REQUEST, INFORM) and `None` for the
/// rest (RELEASE, DECLINE, …), which never need one.
pub fn decide(
    req: &ClientRequest,
    ctx: &Context<'_>,
    decision: Option<&Decision>,
    leases: Option<&mut LeaseTable>,
    loader_recent: bool,
    now: SystemTime,
) -> Outcome {
    match (ctx.mode, leases) {
        (DhcpMode::Off, _) => Outcome::ignore(DhcpIgnore::ModeOff, false),
        (DhcpMode::Proxy, _) => proxy(req, ctx, decision, loader_recent),
        (DhcpMode::Full, None) => Outcome::ignore(DhcpIgnore::NoLeaseTable, false),
        (DhcpMode::Full, Some(t)) => full(req, ctx, decision, t, loader_recent, now),
    }
}

fn proxy(
    req: &ClientRequest,
    ctx: &Context<'_>,
    decision: Option<&Decision>,
    recent: bool,
) -> Outcome {
    if !is_netboot(req) {
        return Outcome::ignore(DhcpIgnore::NotNetboot, false);
    }
    let kind = match (ctx.port, req.message_type) {
        (Port::Server, MessageType::Discover) => ReplyKind::ProxyOffer,
        (Port::Server, _) => {
            return Outcome::ignore(DhcpIgnore::ProxyNotDiscover, false);
        }
        (Port::BootServer, MessageType::Request | MessageType::Discover | MessageType::Inform) => {
            ReplyKind::ProxyAck
        }
        (Port::BootServer, _) => return Outcome::ignore(DhcpIgnore::NotBootServerRequest, false),
    };
    let Some(decision) = decision else {
        return Outcome::ignore(DhcpIgnore::NotClientMessage, false);
    };
    if let Decision::Ignore { reason } = decision {
        return Outcome::ignore(DhcpIgnore::Inventory(reason.clone()), true);
    }
    let Some(file) = boot_file(req, ctx, decision, recent) else {
        return Outcome::ignore(DhcpIgnore::LocalNoProxyReply, true);
    };
    let mut spec = ReplySpec::new(kind, ctx.server_id);
    spec.next_server = ctx.next_server;
    spec.boot_file = Some(file.as_str().to_string());
    let dest = reply_destination(req, kind, Ipv4Addr::UNSPECIFIED, ctx.source);
    // Marked on the boot-server ACK only, as full mode marks on the ACK: a PXE client
    // (iPXE included) takes its boot file from the ACK on 4011, so marking at the OFFER
    // would turn that ACK into the script and skip the loader. A client that never asks
    // on 4011 is marked when its TFTP transfer completes.
    Outcome::reply_with(spec, dest, Some(&file), kind == ReplyKind::ProxyAck)
}

/// The address that selects the client's subnet: relay link selection (82.5), subnet
/// selection (118), giaddr, then the ingress interface's address.
fn link(req: &ClientRequest, ctx: &Context<'_>) -> Ipv4Addr {
    req.relay
        .as_ref()
        .and_then(|r| r.link_selection)
        .or(req.subnet_selection)
        .or((!req.giaddr.is_unspecified()).then_some(req.giaddr))
        .unwrap_or(ctx.link_address)
}

fn full(
    req: &ClientRequest,
    ctx: &Context<'_>,
    decision: Option<&Decision>,
    t: &mut LeaseTable,
    recent: bool,
    now: SystemTime,
) -> Outcome {
    let ours = req.server_id.is_none_or(|s| s == ctx.server_id);
    match req.message_type {
        MessageType::Release => {
            if !ours || req.ciaddr.is_unspecified() {
                return Outcome::done("release for another server", Vec::new());
            }
            return Outcome::done("released", t.release(req.mac, req.ciaddr, now));
        }
        MessageType::Decline => {
            let Some(ip) = req.requested_ip.filter(|_| ours) else {
                return Outcome::done("decline for another server", Vec::new());
            };
            return Outcome::done("declined", t.decline(req.mac, ip, now));
        }
        MessageType::Request if !ours => {
            // The client chose another server's offer: drop our hold (and any lease it
            // had from us) without a word.
            let changes = match req.requested_ip {
                Some(ip) => t.release(req.mac, ip, now),
                None => Vec::new(),
            };
            return Outcome::done("client selected another server", changes);
        }
        MessageType::Discover | MessageType::Request | MessageType::Inform => {}
        _ => return Outcome::ignore(DhcpIgnore::NotClientMessage, false),
    }
    let Some(decision) = decision else {
        return Outcome::ignore(DhcpIgnore::NotClientMessage, false);
    };
    if let Decision::Ignore { reason } = decision {
        return Outcome::ignore(DhcpIgnore::Inventory(reason.clone()), true);
    }
    let Some(subnet) = t.subnet_of(link(req, ctx)) else {
        return Outcome::ignore(DhcpIgnore::NoSubnet(link(req, ctx)), is_netboot(req));
    };
    let s = &ctx.subnets[subnet.0];
    let file = boot_file(req, ctx, decision, recent);
    match req.message_type {
        MessageType::Discover => match t.offer(subnet, req.mac, req.requested_ip, now) {
            Ok(ip) => {
                let spec = lease_spec(
                    ReplyKind::Offer,
                    ctx,
                    s,
                    ip,
                    Some(s.lease_time),
                    file.as_ref(),
                );
                let dest = reply_destination(req, ReplyKind::Offer, ip, ctx.source);
                // The loader is marked on the ACK, so OFFER and ACK of one exchange agree.
                Outcome::reply_with(spec, dest, file.as_ref(), false)
            }
            Err(e) => Outcome::ignore(DhcpIgnore::Lease(e), true),
        },
        MessageType::Inform => {
            let spec = lease_spec(
                ReplyKind::Ack,
                ctx,
                s,
                Ipv4Addr::UNSPECIFIED,
                None,
                file.as_ref(),
            );
            let dest = reply_destination(req, ReplyKind::Ack, Ipv4Addr::UNSPECIFIED, ctx.source);
            Outcome::reply_with(spec, dest, file.as_ref(), true)
        }
        _ => request(req, ctx, subnet, s, t, file, now),
    }
}

fn request(
    req: &ClientRequest,
    ctx: &Context<'_>,
    subnet: SubnetId,
    s: &Subnet,
    t: &mut LeaseTable,
    file: Option<BootFile>,
    now: SystemTime,
) -> Outcome {
    let asked = req
        .requested_ip
        .or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
    let Some(ip) = asked else {
        return Outcome::ignore(DhcpIgnore::RequestWithoutAddress, false);
    };
    match t.request(subnet, req.mac, ip, now) {
        Ok(grant) => {
            let spec = lease_spec(
                ReplyKind::Ack,
                ctx,
                s,
                grant.lease.ip,
                Some(grant.lease_time),
                file.as_ref(),
            );
            let dest = reply_destination(req, ReplyKind::Ack, grant.lease.ip, ctx.source);
            let mut o = Outcome::reply_with(spec, dest, file.as_ref(), true);
            o.changes = grant.changes;
            o
        }
        Err(nak) => {
            let mut spec = ReplySpec::new(ReplyKind::Nak, ctx.server_id);
            spec.message = Some(nak.to_string());
            spec.nak_reason = Some(nak.code());
            let dest = reply_destination(req, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED, ctx.source);
            Outcome::reply(spec, dest)
        }
    }
}

fn lease_spec(
    kind: ReplyKind,
    ctx: &Context<'_>,
    s: &Subnet,
    yiaddr: Ipv4Addr,
    lease_time: Option<Duration>,
    boot_file: Option<&BootFile>,
) -> ReplySpec {
    let mut spec = ReplySpec::new(kind, ctx.server_id);
    spec.yiaddr = yiaddr;
    spec.next_server = ctx.next_server;
    spec.lease_time = lease_time;
    spec.subnet_mask = Some(s.network.netmask());
    spec.broadcast_addr = Some(s.network.broadcast());
    spec.router = s.router;
    spec.dns = s.dns.clone();
    spec.domain = s.domain.clone();
    spec.boot_file = boot_file.map(|f| f.as_str().to_string());
    spec
}

#[cfg(test)]
mod tests;
