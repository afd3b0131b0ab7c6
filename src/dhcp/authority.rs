//! Which requests this server answers in `full` mode when several servers share the
//! store (`docs/ha.md`). Dynamic addresses are allocated by one server at a time, the
//! holder of the `dhcp` leader row; the others (standbys) stay silent for dynamic
//! clients, so a client is never offered two addresses by two servers. Reserved clients
//! are answered by every server (their address is fixed, no coordination needed). A
//! REQUEST that names another server's id is left to that server (a single server
//! would drop its own offer hold and release): the named server may be a former
//! authority that acknowledged the lease, and a release here would end it in the store.
//!
//! Pure: the gate takes what it needs to know as arguments. The leader row and the
//! table reload at takeover are in `crate::ha` and `super::server`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::wire::MessageType;

/// What the gate says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Decide it as a single server would.
    Answer,
    /// Stay silent: a dynamic client while this server is standby.
    Standby,
    /// Stay silent: a reserved client's REQUEST for another server's offer.
    PeersRequest,
}

/// The gate's inputs for one request.
pub(super) struct Ask {
    pub message: MessageType,
    /// Option 54 of the request, if any.
    pub server_id: Option<Ipv4Addr>,
    /// The id this server puts in its replies.
    pub ours: Ipv4Addr,
    pub reserved: bool,
}

/// The state of the gate, shared by the receive loops.
#[derive(Debug)]
pub(super) struct Authority {
    /// `false`: a sole server (no leader row), which always allocates.
    fleet: bool,
    /// Whether this server allocates dynamic addresses now (it holds the row and its
    /// table has been reloaded from the store).
    allocating: AtomicBool,
    /// Requests left unanswered because this server is standby.
    pub standby_ignored: AtomicU64,
}

impl Authority {
    /// A sole server: answers everything, always.
    pub(super) fn sole() -> Authority {
        Authority {
            fleet: false,
            allocating: AtomicBool::new(true),
            standby_ignored: AtomicU64::new(0),
        }
    }

    /// A fleet member, standby until [`Authority::set_allocating`].
    pub(super) fn member() -> Authority {
        Authority {
            fleet: true,
            allocating: AtomicBool::new(false),
            standby_ignored: AtomicU64::new(0),
        }
    }

    pub(super) fn set_allocating(&self, on: bool) {
        self.allocating.store(on, Ordering::Release);
    }

    pub(super) fn allocating(&self) -> bool {
        self.allocating.load(Ordering::Acquire)
    }

    /// Whether to answer `ask` (counting the standby's silences).
    pub(super) fn gate(&self, ask: &Ask) -> Gate {
        let g = gate(self.fleet, self.allocating(), ask);
        if g == Gate::Standby {
            self.standby_ignored.fetch_add(1, Ordering::Relaxed);
        }
        g
    }
}

fn gate(fleet: bool, allocating: bool, ask: &Ask) -> Gate {
    if !fleet {
        return Gate::Answer;
    }
    let for_peer = ask.server_id.is_some_and(|s| s != ask.ours);
    if ask.message == MessageType::Request && for_peer {
        Gate::PeersRequest
    } else if ask.reserved || allocating {
        Gate::Answer
    } else {
        Gate::Standby
    }
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
        }
    }

    #[test]
    fn standby_answers_only_reserved_clients() {
        let d = ask(MessageType::Discover, None, false);
        assert_eq!(
            gate(false, false, &d),
            Gate::Answer,
            "a sole server answers"
        );
        assert_eq!(gate(true, true, &d), Gate::Answer);
        assert_eq!(gate(true, false, &d), Gate::Standby);
        let r = ask(MessageType::Discover, None, true);
        assert_eq!(gate(true, false, &r), Gate::Answer);
        let mine = ask(MessageType::Request, Some([10, 0, 0, 1]), true);
        assert_eq!(gate(true, false, &mine), Gate::Answer);
        let peers = ask(MessageType::Request, Some([10, 0, 0, 2]), true);
        assert_eq!(gate(true, true, &peers), Gate::PeersRequest);
        // A REQUEST for a peer (maybe a dead former authority) changes nothing here:
        // releasing on it could end a lease that peer acknowledged.
        let dyn_peer = ask(MessageType::Request, Some([10, 0, 0, 2]), false);
        assert_eq!(gate(true, true, &dyn_peer), Gate::PeersRequest);
        assert_eq!(gate(false, true, &dyn_peer), Gate::Answer);
        let a = Authority::member();
        assert_eq!(a.gate(&d), Gate::Standby);
        a.set_allocating(true);
        assert_eq!(a.gate(&d), Gate::Answer);
        assert_eq!(a.standby_ignored.load(Ordering::Relaxed), 1);
    }
}
