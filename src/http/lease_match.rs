//! `http.require_lease_match`: an HTTP request that names a MAC is that MAC's only when it
//! comes from the address tabula's DHCP bound to that MAC, and has not expired.
//!
//! The rule is [`check`], pure (the lease, the peer and the time are inputs). What each
//! route does with a mismatch ([`LeaseMatch`]):
//! - scripts (`/boot.ipxe?mac=`, `/boot/<mac>/boot.ipxe`) and reports
//!   (`/boot/<mac>/<manifest>/<token>/<kind>`): refused, `403` with [`REFUSED`], counted,
//!   logged at most once per [`LOG_EVERY`] per route; nothing recorded. A script request
//!   is checked before anything else, so a refused one renders no boot and marks nothing
//!   for attribution; a report after its token (a forged token is counted as one);
//! - attributed blob downloads (`?mac=&as=`): served (blobs are public by digest) and
//!   recorded, but `unverified`, and counted and logged the same way.
//!
//! Off by default; only valid with `dhcp.mode = "full"` (config validation refuses it
//! otherwise: in proxy mode or with DHCP off tabula leases nothing). The lease comes from
//! [`crate::lease_view::LeaseView`], which DHCP fills after each durable commit: no store
//! query per request. Only typed values (MAC, addresses) reach the log lines, never a
//! string the client chose.
//!
//! Limits, by construction: a relay that does not preserve the client's address, NAT or
//! an HTTP proxy in front of tabula make every request come from another address (all
//! refused); a machine whose lease expired mid-boot (iPXE does not renew) is refused until
//! it asks DHCP again; a host that can spoof the victim's IP address (no switch
//! protection) and receive its replies passes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::route::Refusal;
use crate::boot::Mac;
use crate::lease_view::{BoundLease, LeaseView};
use crate::throttle::Throttle;

/// At most one log line per this long for each route's mismatches.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The body of a refused script or report (the same whether the MAC has no lease or
/// another address: the answer does not say which, nor where the lease is).
pub const REFUSED: &str =
    "this address does not hold the DHCP lease of the MAC it names (http.require_lease_match)\n";

/// What the lease table says of a request for a MAC from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The peer holds the MAC's lease.
    Match,
    /// DHCP has bound no address to the MAC (never, or released, or declined).
    NoLease,
    /// The MAC's lease on this address expired.
    Expired { leased: Ipv4Addr },
    /// The MAC's lease is on another address than the peer's.
    Elsewhere { leased: Ipv4Addr },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Match => f.write_str("the MAC's lease"),
            Verdict::NoLease => f.write_str("the MAC has no DHCP lease"),
            Verdict::Expired { leased } => write!(f, "the MAC's lease on {leased} expired"),
            Verdict::Elsewhere { leased } => write!(f, "the MAC's lease is {leased}"),
        }
    }
}

/// The rule: a request for a MAC from `peer` at `now` is the MAC's when `bound` (its
/// lease) is on the peer's address and has not expired. An IPv4-mapped IPv6 peer
/// (`::ffff:a.b.c.d`, a listener on `[::]`) is its IPv4 address; any other IPv6 peer
/// never matches (DHCP leases are IPv4).
pub fn check(bound: Option<BoundLease>, peer: IpAddr, now: SystemTime) -> Verdict {
    let Some(b) = bound else {
        return Verdict::NoLease;
    };
    if b.expires <= now {
        return Verdict::Expired { leased: b.ip };
    }
    match peer.to_canonical() {
        IpAddr::V4(p) if p == b.ip => Verdict::Match,
        _ => Verdict::Elsewhere { leased: b.ip },
    }
}

/// The check as the routes apply it, with the counters of its refusals.
#[derive(Debug)]
pub struct LeaseMatch {
    view: Arc<LeaseView>,
    /// Script requests refused.
    pub scripts: Throttle,
    /// Reports refused.
    pub reports: Throttle,
    /// Attributed downloads recorded `unverified` for their address.
    pub downloads: Throttle,
}

impl LeaseMatch {
    /// The check against DHCP's bound leases.
    pub fn new(view: Arc<LeaseView>) -> LeaseMatch {
        LeaseMatch {
            view,
            scripts: Throttle::new(
                "script request from an address without the MAC's lease refused",
                LOG_EVERY,
            ),
            reports: Throttle::new(
                "boot report from an address without the MAC's lease refused",
                LOG_EVERY,
            ),
            downloads: Throttle::new(
                "download from an address without the MAC's lease recorded unverified",
                LOG_EVERY,
            ),
        }
    }

    fn verdict(&self, mac: Mac, peer: IpAddr) -> Verdict {
        check(self.view.bound(mac), peer, SystemTime::now())
    }

    /// A script request for `mac` from `peer` (no peer: cannot match).
    pub fn script(&self, mac: Mac, peer: Option<IpAddr>) -> Result<(), Refusal> {
        gate(&self.scripts, mac, peer, |p| self.verdict(mac, p))
    }

    /// A report for `mac` from `peer`.
    pub fn report(&self, mac: Mac, peer: IpAddr) -> Result<(), Refusal> {
        gate(&self.reports, mac, Some(peer), |p| self.verdict(mac, p))
    }

    /// Whether a download attributed to `mac` from `peer` may be verified (a mismatch
    /// is counted; the download is served either way).
    pub fn download(&self, mac: Mac, peer: IpAddr) -> bool {
        gate(&self.downloads, mac, Some(peer), |p| self.verdict(mac, p)).is_ok()
    }

    /// Every mismatch so far, all routes.
    pub fn total(&self) -> u64 {
        self.scripts.total() + self.reports.total() + self.downloads.total()
    }
}

/// Counts and logs (rate-limited) a request whose verdict is not [`Verdict::Match`].
fn gate(
    throttle: &Throttle,
    mac: Mac,
    peer: Option<IpAddr>,
    verdict: impl FnOnce(IpAddr) -> Verdict,
) -> Result<(), Refusal> {
    let v = peer.map_or(Verdict::NoLease, verdict);
    if v == Verdict::Match {
        return Ok(());
    }
    throttle.warn(&Mismatch { mac, peer, v });
    Err(Refusal::Forbidden(REFUSED))
}

/// A mismatch's log detail: typed values only.
struct Mismatch {
    mac: Mac,
    peer: Option<IpAddr>,
    v: Verdict,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(p) => write!(f, "{} from {p}: {}", self.mac, self.v),
            None => write!(f, "{} from an unknown address", self.mac),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::lease_view::LeaseUpdate;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn lease(expires: u64) -> Option<BoundLease> {
        Some(BoundLease {
            ip: IP,
            expires: at(expires),
        })
    }

    #[test]
    fn only_the_leased_address_before_expiry_matches() {
        let peer = IpAddr::V4(IP);
        assert_eq!(check(lease(100), peer, at(99)), Verdict::Match);
        assert_eq!(
            check(lease(100), peer, at(100)),
            Verdict::Expired { leased: IP },
            "expired at its expiry"
        );
        assert_eq!(check(None, peer, at(0)), Verdict::NoLease);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8));
        assert_eq!(
            check(lease(100), other, at(0)),
            Verdict::Elsewhere { leased: IP }
        );
    }

    #[test]
    fn a_mapped_ipv6_peer_is_its_ipv4_address_and_no_other_ipv6_matches() {
        let mapped = IpAddr::V6(IP.to_ipv6_mapped());
        assert_eq!(check(lease(100), mapped, at(0)), Verdict::Match);
        let compat = IpAddr::V6(IP.to_ipv6_compatible());
        assert_eq!(
            check(lease(100), compat, at(0)),
            Verdict::Elsewhere { leased: IP }
        );
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_ne!(check(lease(100), v6, at(0)), Verdict::Match);
    }

    #[test]
    fn mismatches_are_refused_and_counted_per_route() {
        let view = Arc::new(LeaseView::default());
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        view.apply([LeaseUpdate::Bound {
            mac,
            ip: IP,
            expires: SystemTime::now() + Duration::from_secs(3600),
        }]);
        let g = LeaseMatch::new(view);
        let (own, other) = (IpAddr::V4(IP), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8)));
        assert!(g.script(mac, Some(own)).is_ok());
        assert!(g.report(mac, own).is_ok());
        assert!(g.download(mac, own));
        assert_eq!(g.total(), 0);
        assert_eq!(g.script(mac, Some(other)), Err(Refusal::Forbidden(REFUSED)));
        assert_eq!(g.script(mac, None), Err(Refusal::Forbidden(REFUSED)));
        assert_eq!(
            g.report(Mac([2, 0, 0, 0, 0, 2]), own),
            Err(Refusal::Forbidden(REFUSED)),
            "another MAC's request from this MAC's address"
        );
        assert!(!g.download(mac, other));
        assert_eq!(
            (g.scripts.total(), g.reports.total(), g.downloads.total()),
            (2, 1, 1)
        );
    }
}
