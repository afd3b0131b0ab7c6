//! The address allocator for `full` mode: per-subnet pools, leases keyed by MAC, config
//! reservations, short offer holds, bound leases, release, decline quarantine and expiry.
//!
//! Pure and deterministic: every call takes `now`, nothing reads a clock, opens a socket or
//! touches the store. Every persistent change comes back as [`LeaseChange`]s that the
//! caller writes to the store *before* it sends the ACK; [`LeaseTable::restore`] rebuilds
//! the table from those records after a restart. Offer holds are deliberately not
//! persisted: losing one in a crash only makes a client DISCOVER again.
//!
//! One machine keeps one address through all its boot stages: the key is `chaddr` only,
//! never option 61 (UEFI PXE sends none, iPXE and Linux send one). Costs: O(log n) per
//! operation: free addresses are a cursor over never-used addresses plus an ordered set
//! of freed ones (oldest first, so a returning machine most likely finds its old address
//! still free), deadlines an ordered set processed lazily on each call.

mod pool;
mod record;
mod reserve;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use crate::boot::Mac;
use crate::config::{Reservation, Subnet};

use pool::SubnetPools;
pub use record::{
    Grant, Lease, LeaseChange, LeaseError, LeaseState, LeaseTimers, NakReason, SubnetId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Offered { until: SystemTime },
    Bound { expires: SystemTime },
    Free { since: SystemTime },
    Quarantined { until: SystemTime },
}

impl SlotState {
    fn deadline(self) -> Option<SystemTime> {
        match self {
            SlotState::Offered { until } | SlotState::Quarantined { until } => Some(until),
            SlotState::Bound { expires } => Some(expires),
            SlotState::Free { .. } => None,
        }
    }
}

/// An address that has been used: who had it last and what it is now.
#[derive(Clone, Copy, Debug)]
struct Slot {
    subnet: usize,
    owner: Mac,
    state: SlotState,
}

/// The in-memory lease table. See the module documentation.
#[derive(Debug)]
pub struct LeaseTable {
    subnets: Vec<SubnetPools>,
    slots: HashMap<u32, Slot>,
    by_mac: HashMap<Mac, u32>,
    reserved_ip: HashMap<u32, Mac>,
    reserved_mac: HashMap<Mac, u32>,
    deadlines: BTreeSet<(SystemTime, u32)>,
    timers: LeaseTimers,
}

impl LeaseTable {
    /// An empty table for the configured subnets and reservations.
    pub fn new(subnets: &[Subnet], reservations: &[Reservation], timers: LeaseTimers) -> Self {
        let mut t = LeaseTable {
            subnets: subnets.iter().map(SubnetPools::new).collect(),
            slots: HashMap::new(),
            by_mac: HashMap::new(),
            reserved_ip: HashMap::new(),
            reserved_mac: HashMap::new(),
            deadlines: BTreeSet::new(),
            timers,
        };
        for r in reservations {
            let ip = u32::from(r.address);
            t.reserved_ip.insert(ip, r.mac);
            t.reserved_mac.insert(r.mac, ip);
        }
        t
    }

    /// Loads persisted records (after a restart). Records that no longer fit the
    /// configuration (address on no subnet or outside the pools, reserved for another
    /// machine, duplicate address) are dropped and returned as removals to persist.
    pub fn restore<I>(&mut self, leases: I, now: SystemTime) -> Vec<LeaseChange>
    where
        I: IntoIterator<Item = Lease>,
    {
        let mut dropped = Vec::new();
        for l in leases {
            let ip = u32::from(l.ip);
            let usable = self.subnet_index(l.ip).filter(|&s| {
                !self.slots.contains_key(&ip)
                    && self.reserved_ip.get(&ip).is_none_or(|m| *m == l.mac)
                    && (self.subnets[s].in_pool(ip) || self.reserved_mac.get(&l.mac) == Some(&ip))
            });
            let Some(s) = usable else {
                if !self.slots.contains_key(&ip) {
                    dropped.push(LeaseChange::Remove(l.ip));
                }
                continue;
            };
            let live = l.expires > now;
            let state = match (l.state, live) {
                (LeaseState::Bound, true) => SlotState::Bound { expires: l.expires },
                (LeaseState::Declined, true) => SlotState::Quarantined { until: l.expires },
                _ => SlotState::Free { since: l.expires },
            };
            self.transition(ip, s, l.mac, state);
            if l.state != LeaseState::Declined {
                let newer = match self.by_mac.get(&l.mac).and_then(|o| self.slots.get(o)) {
                    Some(old) => rank(old.state) <= rank(state),
                    None => true,
                };
                if newer {
                    self.by_mac.insert(l.mac, ip);
                }
            }
        }
        dropped
    }

    /// Per subnet: its network, the addresses in its pools, and how many of those are
    /// offered, bound or quarantined now (for the pool gauges; O(leases), at scrape time).
    pub fn usage(&self) -> Vec<crate::metrics::PoolUsage> {
        let mut used = vec![0u64; self.subnets.len()];
        for (ip, slot) in &self.slots {
            let pool = &self.subnets[slot.subnet];
            if !matches!(slot.state, SlotState::Free { .. }) && pool.in_pool(*ip) {
                used[slot.subnet] += 1;
            }
        }
        self.subnets
            .iter()
            .zip(used)
            .map(|(s, n)| (s.network().to_string(), s.size(), n))
            .collect()
    }

    /// The subnet whose network contains `ip` (for giaddr, link selection, option 118 or
    /// the receiving interface's address).
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<SubnetId> {
        self.subnet_index(ip).map(SubnetId)
    }

    /// Picks and holds an address for a DISCOVER. Preference: the machine's reservation,
    /// its current or previous address, the requested address (option 50) if free, a
    /// never-used address, then the address freed longest ago.
    pub fn offer(
        &mut self,
        subnet: SubnetId,
        mac: Mac,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> Result<Ipv4Addr, LeaseError> {
        let s = subnet.0;
        if s >= self.subnets.len() {
            return Err(LeaseError::UnknownSubnet(subnet));
        }
        self.expire(now);
        let until = now + self.timers.offer_hold;
        if let Some(ip) = self.usable_reservation(mac, s) {
            return Ok(self.hold(ip, s, mac, until));
        }
        if let Some(&ip) = self.by_mac.get(&mac)
            && let Some(slot) = self.slots.get(&ip)
            && slot.subnet == s
            && slot.owner == mac
            && self.subnets[s].in_pool(ip)
            && !self.reserved_ip.contains_key(&ip)
        {
            match slot.state {
                SlotState::Bound { .. } => return Ok(Ipv4Addr::from(ip)),
                SlotState::Offered { .. } | SlotState::Free { .. } => {
                    return Ok(self.hold(ip, s, mac, until));
                }
                SlotState::Quarantined { .. } => {}
            }
        }
        if let Some(r) = requested.map(u32::from)
            && self.subnets[s].in_pool(r)
            && !self.reserved_ip.contains_key(&r)
            && self
                .slots
                .get(&r)
                .is_none_or(|x| matches!(x.state, SlotState::Free { .. }))
        {
            return Ok(self.hold(r, s, mac, until));
        }
        let ip = self.subnets[s]
            .next_fresh(|ip| self.slots.contains_key(&ip) || self.reserved_ip.contains_key(&ip))
            .or_else(|| self.subnets[s].oldest_free())
            .ok_or(LeaseError::PoolExhausted(subnet))?;
        Ok(self.hold(ip, s, mac, until))
    }

    /// Decides a REQUEST for `ip` (option 50, or `ciaddr` when renewing): binds or renews
    /// the lease, or says why not. The caller checks the server id (54) first.
    pub fn request(
        &mut self,
        subnet: SubnetId,
        mac: Mac,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> Result<Grant, NakReason> {
        let s = subnet.0;
        let Some(pools) = self.subnets.get(s) else {
            return Err(NakReason::UnknownSubnet(subnet));
        };
        let lease_time = pools.lease_time;
        let raw = u32::from(ip);
        if !pools.contains(raw) {
            return Err(NakReason::WrongSubnet(ip));
        }
        self.expire(now);
        if let Some(r) = self.usable_reservation(mac, s)
            && r != raw
        {
            return Err(NakReason::HasReservation(Ipv4Addr::from(r)));
        }
        match self.reserved_ip.get(&raw) {
            Some(m) if *m != mac => return Err(NakReason::ReservedForOther(ip)),
            Some(_) => {}
            None if !self.subnets[s].in_pool(raw) => return Err(NakReason::NotInPool(ip)),
            None => {}
        }
        if let Some(slot) = self.slots.get(&raw) {
            match slot.state {
                SlotState::Quarantined { .. } => return Err(NakReason::Quarantined(ip)),
                SlotState::Offered { .. } | SlotState::Bound { .. } if slot.owner != mac => {
                    return Err(NakReason::InUse(ip));
                }
                _ => {}
            }
        }
        let mut changes = Vec::with_capacity(1);
        changes.extend(self.leave_previous(mac, raw, now));
        let expires = now + lease_time;
        self.transition(raw, s, mac, SlotState::Bound { expires });
        self.claim(mac, raw);
        let lease = Lease {
            ip,
            mac,
            state: LeaseState::Bound,
            expires,
        };
        changes.push(LeaseChange::Upsert(lease));
        Ok(Grant {
            lease,
            lease_time,
            changes,
        })
    }

    /// A RELEASE (or a REQUEST that chose another server): frees the address if `mac`
    /// holds it; anything else is ignored (spoofed or stale).
    pub fn release(&mut self, mac: Mac, ip: Ipv4Addr, now: SystemTime) -> Vec<LeaseChange> {
        self.expire(now);
        let raw = u32::from(ip);
        let Some(slot) = self.slots.get(&raw).copied() else {
            return Vec::new();
        };
        if slot.owner != mac {
            return Vec::new();
        }
        match slot.state {
            SlotState::Bound { .. } => {
                self.transition(raw, slot.subnet, mac, SlotState::Free { since: now });
                vec![LeaseChange::Upsert(Lease {
                    ip,
                    mac,
                    state: LeaseState::Released,
                    expires: now,
                })]
            }
            SlotState::Offered { .. } => {
                self.transition(raw, slot.subnet, mac, SlotState::Free { since: now });
                Vec::new()
            }
            SlotState::Free { .. } | SlotState::Quarantined { .. } => Vec::new(),
        }
    }

    /// A DECLINE: `mac` found `ip` in use by someone else. The address is quarantined and
    /// the machine's next DISCOVER gets another one.
    pub fn decline(&mut self, mac: Mac, ip: Ipv4Addr, now: SystemTime) -> Vec<LeaseChange> {
        self.expire(now);
        let raw = u32::from(ip);
        let Some(slot) = self.slots.get(&raw).copied() else {
            return Vec::new();
        };
        if slot.owner != mac
            || !matches!(
                slot.state,
                SlotState::Offered { .. } | SlotState::Bound { .. }
            )
        {
            return Vec::new();
        }
        let until = now + self.timers.decline_quarantine;
        self.transition(raw, slot.subnet, mac, SlotState::Quarantined { until });
        if self.by_mac.get(&mac) == Some(&raw) {
            self.by_mac.remove(&mac);
        }
        vec![LeaseChange::Upsert(Lease {
            ip,
            mac,
            state: LeaseState::Declined,
            expires: until,
        })]
    }

    /// The machine's bound lease, if it has one that has not expired by `now`.
    pub fn lease_of(&self, mac: Mac, now: SystemTime) -> Option<Lease> {
        let ip = *self.by_mac.get(&mac)?;
        let slot = self.slots.get(&ip)?;
        match slot.state {
            SlotState::Bound { expires } if slot.owner == mac && expires > now => Some(Lease {
                ip: Ipv4Addr::from(ip),
                mac,
                state: LeaseState::Bound,
                expires,
            }),
            _ => None,
        }
    }

    /// Every machine's bound lease that has not expired by `now` (as [`Self::lease_of`]).
    pub fn bound(&self, now: SystemTime) -> impl Iterator<Item = Lease> + '_ {
        self.by_mac
            .keys()
            .filter_map(move |&m| self.lease_of(m, now))
    }

    /// Turns every state whose deadline has passed into free (remembered) addresses.
    /// Called by every operation; the caller may also call it from a timer.
    pub fn expire(&mut self, now: SystemTime) {
        while let Some(&(t, ip)) = self.deadlines.first() {
            if t > now {
                break;
            }
            let Some(slot) = self.slots.get(&ip).copied() else {
                self.deadlines.pop_first();
                continue;
            };
            self.transition(ip, slot.subnet, slot.owner, SlotState::Free { since: t });
        }
    }

    fn subnet_index(&self, ip: Ipv4Addr) -> Option<usize> {
        let raw = u32::from(ip);
        self.subnets.iter().position(|p| p.contains(raw))
    }

    fn hold(&mut self, ip: u32, s: usize, mac: Mac, until: SystemTime) -> Ipv4Addr {
        if let Some(slot) = self.slots.get(&ip)
            && slot.owner == mac
            && matches!(slot.state, SlotState::Bound { .. })
        {
            return Ipv4Addr::from(ip);
        }
        // Moving to another address drops an offer hold on the old one; a bound lease
        // elsewhere is left to expire (the client still owns it until it REQUESTs).
        if let Some(&old) = self.by_mac.get(&mac)
            && old != ip
            && let Some(slot) = self.slots.get(&old).copied()
            && slot.owner == mac
            && let SlotState::Offered { until } = slot.state
        {
            self.transition(old, slot.subnet, mac, SlotState::Free { since: until });
        }
        self.transition(ip, s, mac, SlotState::Offered { until });
        // A bound lease elsewhere keeps the MAC's affinity until the REQUEST: then
        // `leave_previous` finds and releases it (else it would linger until expiry).
        let bound_elsewhere = self.by_mac.get(&mac).is_some_and(|&old| {
            old != ip
                && self
                    .slots
                    .get(&old)
                    .is_some_and(|x| x.owner == mac && matches!(x.state, SlotState::Bound { .. }))
        });
        if !bound_elsewhere {
            self.claim(mac, ip);
        }
        Ipv4Addr::from(ip)
    }

    /// On binding `ip`, frees what `mac` held elsewhere.
    fn leave_previous(&mut self, mac: Mac, ip: u32, now: SystemTime) -> Option<LeaseChange> {
        let old = *self.by_mac.get(&mac)?;
        let slot = self.slots.get(&old).copied()?;
        if old == ip || slot.owner != mac {
            return None;
        }
        match slot.state {
            SlotState::Offered { .. } => {
                self.transition(old, slot.subnet, mac, SlotState::Free { since: now });
                None
            }
            SlotState::Bound { .. } => {
                self.transition(old, slot.subnet, mac, SlotState::Free { since: now });
                Some(LeaseChange::Upsert(Lease {
                    ip: Ipv4Addr::from(old),
                    mac,
                    state: LeaseState::Released,
                    expires: now,
                }))
            }
            _ => None,
        }
    }

    /// Records `ip` as `mac`'s address for affinity.
    fn claim(&mut self, mac: Mac, ip: u32) {
        self.by_mac.insert(mac, ip);
    }

    /// The one place slot state changes, keeping the deadline and free indexes in step.
    fn transition(&mut self, ip: u32, subnet: usize, owner: Mac, state: SlotState) {
        if let Some(old) = self.slots.get(&ip) {
            if old.owner != owner && self.by_mac.get(&old.owner) == Some(&ip) {
                // The previous owner's affinity to this address is gone.
                self.by_mac.remove(&old.owner);
            }
            match old.state {
                SlotState::Free { since } => self.subnets[old.subnet].unfree(since, ip),
                s => {
                    if let Some(t) = s.deadline() {
                        self.deadlines.remove(&(t, ip));
                    }
                }
            }
        }
        match state {
            SlotState::Free { since } => {
                if !self.reserved_ip.contains_key(&ip) {
                    self.subnets[subnet].free(since, ip);
                }
            }
            s => {
                if let Some(t) = s.deadline() {
                    self.deadlines.insert((t, ip));
                }
            }
        }
        self.slots.insert(
            ip,
            Slot {
                subnet,
                owner,
                state,
            },
        );
    }
}

/// Which record wins the MAC's affinity on restore: a bound lease over a free one, then
/// the later time.
fn rank(s: SlotState) -> (u8, SystemTime) {
    match s {
        SlotState::Bound { expires } => (2, expires),
        SlotState::Offered { until } => (1, until),
        SlotState::Free { since } => (0, since),
        SlotState::Quarantined { until } => (0, until),
    }
}
