//! Values kept elsewhere, read when `/metrics` is scraped: the counters the hardening
//! work already keeps (a [`crate::throttle::Throttle`] per limit, the admission gate's
//! counters, the event sink's), and gauges that are cheaper to compute per scrape than
//! to keep per packet (address pools). Each is counted once where it happens and only
//! read here, so nothing is counted twice.
//!
//! Must not: be touched on a data-plane path (a source is registered once at start and
//! read under a lock at scrape time only). A reader may take a front end's lock briefly
//! (the pool reader takes DHCP's lease table once per scrape), never per packet.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::families::Observed;

/// Reads a counter's total.
pub type ReadCounter = Box<dyn Fn() -> u64 + Send + Sync>;

/// Reads a single series' value (seconds, counts).
pub type ReadValue = Box<dyn Fn() -> f64 + Send + Sync>;

/// The type of a single-series value kept elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Single {
    Gauge,
    Counter,
}

/// One pool's size and use: (subnet, addresses in its pools, addresses in use).
pub type PoolUsage = (String, u64, u64);
/// Reads every subnet's pool usage.
pub type ReadPools = Box<dyn Fn() -> Vec<PoolUsage> + Send + Sync>;

/// The fleet's counts (`rollbacks`, boot-once results, rollout members by state), set by
/// the daemon from the store every few seconds ([`super::Metrics::set_fleet`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetValues {
    pub rollbacks: u64,
    /// By result, in [`BOOT_ONCE_RESULTS`] order.
    pub boot_once: [u64; 3],
    /// By member state, in [`MEMBER_STATES`] order.
    pub members: [u64; 5],
}

/// The results of a boot-once request that has ended.
pub const BOOT_ONCE_RESULTS: [&str; 3] = ["booted", "failed", "expired"];
/// The states of a rollout member.
pub const MEMBER_STATES: [&str; 5] = [
    "waiting",
    "admitted",
    "succeeded",
    "failed",
    "skipped_pinned",
];

#[derive(Default)]
struct Sources {
    fleet: FleetValues,
    counters: Vec<(Observed, &'static str, ReadCounter)>,
    singles: Vec<(&'static str, &'static str, Single, ReadValue)>,
    pools: Vec<ReadPools>,
}

/// The registered sources; shared by the [`super::Metrics`] handle and the registry.
#[derive(Clone, Default)]
pub(super) struct Readers(Arc<Mutex<Sources>>);

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readers")
    }
}

impl Readers {
    pub(super) fn counter(&self, family: Observed, label: &'static str, read: ReadCounter) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.counters.push((family, label, read));
    }

    pub(super) fn single(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Single,
        read: ReadValue,
    ) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.singles.push((name, help, kind, read));
    }

    pub(super) fn set_fleet(&self, v: FleetValues) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.fleet = v;
    }

    pub(super) fn pools(&self, read: ReadPools) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.pools.push(read);
    }
}

impl Collector for Readers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for family in Observed::ALL {
            let mine: Vec<_> = s.counters.iter().filter(|c| c.0 == family).collect();
            // A family with no source yet still shows, so its name is stable.
            let mut m = encoder.encode_descriptor(
                family.name(),
                family.help(),
                None,
                MetricType::Counter,
            )?;
            let Some(key) = family.key() else {
                let v: u64 = mine.iter().map(|c| (c.2)()).sum();
                ConstCounter::new(v).encode(m)?;
                continue;
            };
            // One series per label value, sources of the same value added.
            let mut labels: Vec<&'static str> = mine.iter().map(|c| c.1).collect();
            labels.sort_unstable();
            labels.dedup();
            for label in labels {
                let v: u64 = mine.iter().filter(|c| c.1 == label).map(|c| (c.2)()).sum();
                let pair = [(key, label)];
                ConstCounter::new(v).encode(m.encode_family(&pair)?)?;
            }
        }
        for (name, help, kind, read) in &s.singles {
            match kind {
                Single::Gauge => {
                    let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                    ConstGauge::new(read()).encode(m)?;
                }
                Single::Counter => {
                    let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                    ConstCounter::new(read()).encode(m)?;
                }
            }
        }
        encode_fleet(&s.fleet, &mut encoder)?;
        let pools: Vec<PoolUsage> = s.pools.iter().flat_map(|read| read()).collect();
        for (name, help, pick) in [
            (
                "tabula_dhcp_pool_addresses",
                "Addresses in a subnet's dynamic pools",
                0,
            ),
            (
                "tabula_dhcp_pool_used_addresses",
                "Pool addresses offered, bound or quarantined now",
                1,
            ),
        ] {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (subnet, size, used) in &pools {
                let v = if pick == 0 { *size } else { *used };
                let pair = [("subnet", subnet.as_str())];
                ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                    .encode(m.encode_family(&pair)?)?;
            }
        }
        Ok(())
    }
}

/// `tabula_rollbacks_total`, `tabula_boot_once_results_total{result}`,
/// `tabula_rollout_members{state}`: every series, at 0 until counted.
fn encode_fleet(f: &FleetValues, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(
        "tabula_rollbacks",
        "Machines held on their last known good image after failed tries (automatic rollbacks)",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(f.rollbacks).encode(m)?;
    let mut m = encoder.encode_descriptor(
        "tabula_boot_once_results",
        "Boot-once requests ended, by result",
        None,
        MetricType::Counter,
    )?;
    for (label, v) in BOOT_ONCE_RESULTS.iter().zip(f.boot_once) {
        ConstCounter::new(v).encode(m.encode_family(&[("result", *label)])?)?;
    }
    let mut m = encoder.encode_descriptor(
        "tabula_rollout_members",
        "Members of the rollouts in progress (running, paused, rolling back), by state",
        None,
        MetricType::Gauge,
    )?;
    for (label, v) in MEMBER_STATES.iter().zip(f.members) {
        ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
            .encode(m.encode_family(&[("state", *label)])?)?;
    }
    Ok(())
}
