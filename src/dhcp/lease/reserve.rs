//! Reservations that change while serving: a machine given a fixed address with
//! `tabula machine add --address` (or a config reload) takes effect without a restart.
//!
//! The rule that keeps this safe: a reservation never takes an address away from a
//! machine that holds it. If the reserved address is offered, bound or quarantined for
//! another machine, the reservation waits (the machine gets a pool address meanwhile)
//! until that lease ends; then the reserved machine gets its address on its next
//! DISCOVER.

use std::collections::HashMap;

use super::{LeaseTable, SlotState};
use crate::boot::Mac;
use crate::config::Reservation;

impl LeaseTable {
    /// Replaces the reservations. Returns whether anything changed. Addresses that become
    /// reserved leave the free index (nobody else is offered them); addresses no longer
    /// reserved and free rejoin it if they are in a pool.
    pub fn set_reservations(&mut self, reservations: &[Reservation]) -> bool {
        let mut by_ip: HashMap<u32, Mac> = HashMap::with_capacity(reservations.len());
        let mut by_mac: HashMap<Mac, u32> = HashMap::with_capacity(reservations.len());
        for r in reservations {
            let ip = u32::from(r.address);
            by_ip.insert(ip, r.mac);
            by_mac.insert(r.mac, ip);
        }
        if by_ip == self.reserved_ip && by_mac == self.reserved_mac {
            return false;
        }
        for ip in by_ip.keys().filter(|ip| !self.reserved_ip.contains_key(ip)) {
            if let Some(slot) = self.slots.get(ip)
                && let SlotState::Free { since } = slot.state
            {
                self.subnets[slot.subnet].unfree(since, *ip);
            }
        }
        for ip in self.reserved_ip.keys().filter(|ip| !by_ip.contains_key(ip)) {
            if let Some(slot) = self.slots.get(ip)
                && let SlotState::Free { since } = slot.state
            {
                self.subnets[slot.subnet].free(since, *ip);
            }
        }
        self.reserved_ip = by_ip;
        self.reserved_mac = by_mac;
        true
    }

    /// `mac`'s reserved address on subnet `s`, if it has one and no other machine holds
    /// that address right now.
    pub(super) fn usable_reservation(&self, mac: Mac, s: usize) -> Option<u32> {
        let ip = *self.reserved_mac.get(&mac)?;
        if !self.subnets[s].contains(ip) {
            return None;
        }
        match self.slots.get(&ip) {
            Some(slot) if slot.owner != mac && !matches!(slot.state, SlotState::Free { .. }) => {
                None
            }
            _ => Some(ip),
        }
    }
}
