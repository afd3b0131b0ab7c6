//! Free-address bookkeeping for one subnet: a cursor per pool over addresses never handed
//! out, and an ordered set of addresses that were used and are free again, oldest first.
//! Knows nothing about MACs or lease states; [`super::LeaseTable`] keeps both in step.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use ipnet::Ipv4Net;

use crate::config::Subnet;

#[derive(Debug)]
pub(super) struct SubnetPools {
    network: Ipv4Net,
    pub(super) lease_time: Duration,
    /// Inclusive ranges, as configured.
    pools: Vec<(u32, u32)>,
    /// Per pool, the next address the cursor has not looked at (may be `end + 1`).
    cursors: Vec<u64>,
    /// Used-then-freed addresses that may be handed out again: (freed at, address).
    free: BTreeSet<(SystemTime, u32)>,
}

impl SubnetPools {
    pub(super) fn new(s: &Subnet) -> SubnetPools {
        let pools: Vec<(u32, u32)> = s
            .pools
            .iter()
            .map(|(a, b)| (u32::from(*a), u32::from(*b)))
            .collect();
        SubnetPools {
            network: s.network,
            lease_time: s.lease_time,
            cursors: pools.iter().map(|(a, _)| u64::from(*a)).collect(),
            pools,
            free: BTreeSet::new(),
        }
    }

    /// Whether the address is on this subnet.
    pub(super) fn contains(&self, ip: u32) -> bool {
        self.network.contains(&std::net::Ipv4Addr::from(ip))
    }

    /// The subnet, as configured.
    pub(super) fn network(&self) -> Ipv4Net {
        self.network
    }

    /// Addresses in the dynamic pools.
    pub(super) fn size(&self) -> u64 {
        self.pools
            .iter()
            .map(|&(a, b)| u64::from(b.saturating_sub(a)) + u64::from(b >= a))
            .sum()
    }

    /// Whether the address is in one of the dynamic pools.
    pub(super) fn in_pool(&self, ip: u32) -> bool {
        self.pools.iter().any(|&(a, b)| (a..=b).contains(&ip))
    }

    /// The next never-used address, skipping those `taken` says are already known
    /// (restored, requested, reserved). Each address is looked at once over the table's
    /// life, so this is amortised O(1).
    pub(super) fn next_fresh(&mut self, taken: impl Fn(u32) -> bool) -> Option<u32> {
        for (i, &(_, end)) in self.pools.iter().enumerate() {
            while self.cursors[i] <= u64::from(end) {
                let Ok(ip) = u32::try_from(self.cursors[i]) else {
                    break;
                };
                self.cursors[i] += 1;
                if !taken(ip) {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// The free address that was freed longest ago, removed from the free set.
    pub(super) fn oldest_free(&mut self) -> Option<u32> {
        self.free.pop_first().map(|(_, ip)| ip)
    }

    /// Marks a used address free again (only pool addresses circulate).
    pub(super) fn free(&mut self, since: SystemTime, ip: u32) {
        if self.in_pool(ip) {
            self.free.insert((since, ip));
        }
    }

    /// Takes a specific address out of the free set (it is being handed out).
    pub(super) fn unfree(&mut self, since: SystemTime, ip: u32) {
        self.free.remove(&(since, ip));
    }
}
