//! The allocator's vocabulary: the persisted [`Lease`] record, the [`LeaseChange`]s the
//! caller must store before answering, a REQUEST's [`Grant`], and why an OFFER fails
//! ([`LeaseError`]) or a REQUEST gets a NAK ([`NakReason`]). Plain data, no logic.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

pub use crate::boot::LeaseState;
use crate::boot::Mac;

/// Index of a subnet in the configuration's `dhcp.subnets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetId(pub usize);

/// How long the short-lived states last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimers {
    /// How long an OFFERed address is held for its client.
    pub offer_hold: Duration,
    /// How long a DECLINEd address is kept out of circulation.
    pub decline_quarantine: Duration,
}

impl Default for LeaseTimers {
    fn default() -> Self {
        LeaseTimers {
            offer_hold: Duration::from_secs(30),
            decline_quarantine: Duration::from_secs(600),
        }
    }
}

/// One persisted record; at most one per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub state: LeaseState,
    pub expires: SystemTime,
}

/// A change the caller must persist (keyed by address) before answering the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseChange {
    /// Insert or replace the record for `lease.ip`.
    Upsert(Lease),
    /// Delete the record for this address.
    Remove(Ipv4Addr),
}

/// A successful REQUEST: the lease to ACK and what to persist first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub lease: Lease,
    /// The lease time to put in option 51.
    pub lease_time: Duration,
    pub changes: Vec<LeaseChange>,
}

/// Why an OFFER cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// No such subnet index.
    #[error("no subnet {0:?} is configured")]
    UnknownSubnet(SubnetId),
    /// Every address of the subnet's pools is held, bound, reserved or quarantined.
    #[error("every address in the pools of subnet {0:?} is in use")]
    PoolExhausted(SubnetId),
}

/// Why a REQUEST gets a NAK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NakReason {
    #[error("no subnet {0:?} is configured")]
    UnknownSubnet(SubnetId),
    /// The address is not on the client's subnet (it moved, or asks for a stale address).
    #[error("{0} is not on the client's subnet")]
    WrongSubnet(Ipv4Addr),
    /// On the subnet but outside every pool, and not reserved for this client.
    #[error("{0} is not in an address pool")]
    NotInPool(Ipv4Addr),
    /// Reserved for another machine.
    #[error("{0} is reserved for another machine")]
    ReservedForOther(Ipv4Addr),
    /// This machine has a reserved address and must use it.
    #[error("this machine's reserved address is {0}")]
    HasReservation(Ipv4Addr),
    /// Offered to or bound by another machine.
    #[error("{0} is in use by another machine")]
    InUse(Ipv4Addr),
    /// Declined recently.
    #[error("{0} is quarantined after a DECLINE")]
    Quarantined(Ipv4Addr),
}

impl NakReason {
    /// A stable name for the kind of reason (metric label).
    pub fn code(&self) -> &'static str {
        match self {
            NakReason::UnknownSubnet(_) => "unknown-subnet",
            NakReason::WrongSubnet(_) => "wrong-subnet",
            NakReason::NotInPool(_) => "not-in-pool",
            NakReason::ReservedForOther(_) => "reserved-for-other",
            NakReason::HasReservation(_) => "has-reservation",
            NakReason::InUse(_) => "in-use",
            NakReason::Quarantined(_) => "quarantined",
        }
    }
}
