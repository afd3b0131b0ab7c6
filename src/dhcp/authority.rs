//! Which requests this server answers in `full` mode when several servers share the
//! store (`docs/ha.md`). Dynamic addresses are allocated by one server at a time, the
//! holder of the `dhcp` leader row; the others (standbys) stay silent for dynamic
//! clients, so a client is never offered two addresses by two servers. Reserved clients
//! are answered by every server (their address is fixed, no coordination needed). A
//! REQUEST that names another server's id is left to that server (a single server
//! would drop its own offer hold and release): the named server may be a former
//! authority that acknowledged the lease, and a release here would end it in the store.
//!
//! Degraded mode (the store unreachable, seen by the membership heartbeat): no new
//! dynamic address is promised (a standby stays silent, and a binding would need a
//! durable write anyway). A client with a live binding in a table this server can
//! trust (reserved clients on any server; dynamic ones on the server that was the
//! authority when the store went away) is still answered, and a renewal is acknowledged
//! for the lease's *remaining* time only, with nothing written ([`renew_from_cache`]):
//! the store keeps the true expiry, so no address can be handed to another client while
//! this one still holds it.
//!
//! Pure: the gate takes what it needs to know as arguments. The leader row and the
//! table reload at takeover are in `crate::ha` and `super::server`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::{Duration, SystemTime};

use super::lease::{Lease, LeaseChange, LeaseState, LeaseTable};
use super::policy::{Action, Outcome};
use super::reply::ReplyKind;
use super::wire::MessageType;

/// What the gate says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Decide it as a single server would.
    Answer,
    /// Stay silent: a dynamic client while this server is standby.
    Standby,
    /// Stay silent: a REQUEST for another server's offer.
    PeersRequest,
    /// Stay silent: the store is unreachable and this client has no binding here that
    /// this server can vouch for.
    Degraded,
}

/// The gate's inputs for one request.
pub(super) struct Ask {
    pub message: MessageType,
    /// Option 54 of the request, if any.
    pub server_id: Option<Ipv4Addr>,
    /// The id this server puts in its replies.
    pub ours: Ipv4Addr,
    pub reserved: bool,
    /// The client has a live bound lease in this server's table.
    pub known: bool,
    /// The store is unreachable.
    pub degraded: bool,
}

/// The state of the gate, shared by the receive loops.
#[derive(Debug)]
pub(super) struct Authority {
    /// `false`: a sole server (no leader row), which always allocates.
    fleet: bool,
    /// Whether this server allocates dynamic addresses now (it holds the row and its
    /// table has been reloaded from the store).
    allocating: AtomicBool,
    /// Whether this server's table holds every dynamic lease (it was the authority, and
    /// has not seen another take over): only then may it renew from it when degraded.
    trusted: AtomicBool,
    /// Requests left unanswered because this server is standby.
    pub standby_ignored: AtomicU64,
}

impl Authority {
    /// A sole server: answers everything, always.
    pub(super) fn sole() -> Authority {
        Authority {
            fleet: false,
            allocating: AtomicBool::new(true),
            trusted: AtomicBool::new(true),
            standby_ignored: AtomicU64::new(0),
        }
    }

    /// A fleet member, standby until [`Authority::set_allocating`].
    pub(super) fn member() -> Authority {
        Authority {
            fleet: true,
            allocating: AtomicBool::new(false),
            trusted: AtomicBool::new(false),
            standby_ignored: AtomicU64::new(0),
        }
    }

    /// Starts or stops allocating. Stopping while the store is unreachable (`degraded`)
    /// keeps the table trusted for renewals: nobody else can have allocated meanwhile.
    pub(super) fn set_allocating(&self, on: bool, degraded: bool) {
        self.allocating.store(on, Ordering::Release);
        if on || !degraded {
            self.trusted.store(on, Ordering::Release);
        }
    }

    /// No longer vouches for its table's dynamic leases (it lost the role with the store
    /// reachable: another server may allocate).
    pub(super) fn distrust(&self) {
        if !self.allocating() {
            self.trusted.store(false, Ordering::Release);
        }
    }

    pub(super) fn allocating(&self) -> bool {
        self.allocating.load(Ordering::Acquire)
    }

    /// Whether to answer `ask` (counting the standby's silences).
    pub(super) fn gate(&self, ask: &Ask) -> Gate {
        let trusted = self.trusted.load(Ordering::Acquire);
        let g = gate(self.fleet, self.allocating(), trusted, ask);
        if g == Gate::Standby {
            self.standby_ignored.fetch_add(1, Ordering::Relaxed);
        }
        g
    }
}

fn gate(fleet: bool, allocating: bool, trusted: bool, ask: &Ask) -> Gate {
    let for_peer = ask.server_id.is_some_and(|s| s != ask.ours);
    if fleet && ask.message == MessageType::Request && for_peer {
        return Gate::PeersRequest;
    }
    if ask.degraded {
        return if ask.reserved || (ask.known && trusted) {
            Gate::Answer
        } else {
            Gate::Degraded
        };
    }
    if !fleet || ask.reserved || allocating {
        Gate::Answer
    } else {
        Gate::Standby
    }
}

/// Degraded mode: turns the outcome of a renewal of `prior` (a live binding of the
/// same MAC and address) into an ACK for the remaining time with nothing to write, and
/// puts `prior` back in the table (the allocator had extended it). Whether it did;
/// anything else (a new binding, a move) is left alone: its write fails, so its ACK is
/// never sent.
pub(super) fn renew_from_cache(
    outcome: &mut Outcome,
    prior: Lease,
    table: &mut LeaseTable,
    now: SystemTime,
) -> bool {
    let renewal = matches!(
        outcome.changes.as_slice(),
        [LeaseChange::Upsert(l)] if l.ip == prior.ip && l.mac == prior.mac && l.state == LeaseState::Bound
    );
    let Action::Reply(spec, _) = &mut outcome.action else {
        return false;
    };
    if !renewal || spec.kind != ReplyKind::Ack || spec.yiaddr != prior.ip {
        return false;
    }
    let Ok(left) = prior.expires.duration_since(now) else {
        return false;
    };
    // Whole seconds, rounded down: never promise past the durable expiry.
    spec.lease_time = Some(Duration::from_secs(left.as_secs()));
    outcome.changes.clear();
    table.adopt(prior, now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(message: MessageType, server_id: Option<[u8; 4]>, reserved: bool) -> Ask {
        Ask {
            message,
            server_id: server_id.map(Ipv4Addr::from),
            ours: Ipv4Addr::new(10, 0, 0, 1),
            reserved,
            known: false,
            degraded: false,
        }
    }

    #[test]
    fn degraded_answers_only_bindings_it_can_vouch_for() {
        let known = Ask {
            known: true,
            degraded: true,
            ..ask(MessageType::Request, None, false)
        };
        assert_eq!(
            gate(true, false, true, &known),
            Gate::Answer,
            "the last authority"
        );
        assert_eq!(
            gate(true, false, false, &known),
            Gate::Degraded,
            "a standby's table"
        );
        let stranger = Ask {
            degraded: true,
            ..ask(MessageType::Discover, None, false)
        };
        assert_eq!(
            gate(true, true, true, &stranger),
            Gate::Degraded,
            "no new address"
        );
        let reserved = Ask {
            degraded: true,
            ..ask(MessageType::Discover, None, true)
        };
        assert_eq!(gate(true, false, false, &reserved), Gate::Answer);
        // Losing the role while degraded keeps the table trusted; losing it to a peer
        // with the store reachable does not.
        let a = Authority::member();
        a.set_allocating(true, false);
        a.set_allocating(false, true);
        assert_eq!(a.gate(&known), Gate::Answer);
        a.set_allocating(false, false);
        assert_eq!(a.gate(&known), Gate::Degraded);
    }

    #[test]
    fn a_degraded_renewal_is_acked_for_the_remaining_time_only() {
        use crate::config::Subnet;
        use crate::dhcp::Destination;
        use crate::dhcp::lease::{LeaseTimers, SubnetId};
        use crate::dhcp::reply::ReplySpec;
        let subnet = Subnet {
            network: "10.9.0.0/24".parse().unwrap(),
            pools: vec![(Ipv4Addr::new(10, 9, 0, 10), Ipv4Addr::new(10, 9, 0, 20))],
            router: None,
            dns: Vec::new(),
            domain: None,
            lease_time: Duration::from_secs(600),
        };
        let mut t = LeaseTable::new(&[subnet], &[], LeaseTimers::default());
        let mac = crate::boot::Mac([2, 0, 0, 0, 0, 1]);
        let t0 = SystemTime::now();
        let ip = t.offer(SubnetId(0), mac, None, t0).unwrap();
        t.request(SubnetId(0), mac, ip, t0).unwrap();
        let later = t0 + Duration::from_secs(400);
        let prior = t.lease_of(mac, later).unwrap();
        let grant = t.request(SubnetId(0), mac, ip, later).unwrap();
        let mut spec = ReplySpec::new(ReplyKind::Ack, Ipv4Addr::new(10, 9, 0, 1));
        spec.yiaddr = ip;
        spec.lease_time = Some(grant.lease_time);
        let mut o = Outcome {
            action: Action::Reply(Box::new(spec), Destination::Broadcast),
            changes: grant.changes,
            loader_handed: false,
            boot: None,
        };
        assert!(renew_from_cache(&mut o, prior, &mut t, later));
        assert!(o.changes.is_empty(), "nothing to write");
        let Action::Reply(spec, _) = &o.action else {
            panic!()
        };
        assert_eq!(spec.lease_time, Some(Duration::from_secs(200)));
        assert_eq!(
            t.lease_of(mac, later).unwrap().expires,
            prior.expires,
            "not extended"
        );
    }

    #[test]
    fn standby_answers_only_reserved_clients() {
        let d = ask(MessageType::Discover, None, false);
        assert_eq!(
            gate(false, false, false, &d),
            Gate::Answer,
            "a sole server answers"
        );
        assert_eq!(gate(true, true, true, &d), Gate::Answer);
        assert_eq!(gate(true, false, false, &d), Gate::Standby);
        let r = ask(MessageType::Discover, None, true);
        assert_eq!(gate(true, false, false, &r), Gate::Answer);
        let mine = ask(MessageType::Request, Some([10, 0, 0, 1]), true);
        assert_eq!(gate(true, false, false, &mine), Gate::Answer);
        let peers = ask(MessageType::Request, Some([10, 0, 0, 2]), true);
        assert_eq!(gate(true, true, true, &peers), Gate::PeersRequest);
        // A REQUEST for a peer (maybe a dead former authority) changes nothing here:
        // releasing on it could end a lease that peer acknowledged.
        let dyn_peer = ask(MessageType::Request, Some([10, 0, 0, 2]), false);
        assert_eq!(gate(true, true, true, &dyn_peer), Gate::PeersRequest);
        assert_eq!(gate(false, true, true, &dyn_peer), Gate::Answer);
        let a = Authority::member();
        assert_eq!(a.gate(&d), Gate::Standby);
        a.set_allocating(true, false);
        assert_eq!(a.gate(&d), Gate::Answer);
        assert_eq!(a.standby_ignored.load(Ordering::Relaxed), 1);
    }
}
