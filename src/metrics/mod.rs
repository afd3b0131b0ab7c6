//! Prometheus metrics: one registry per daemon, every family defined in [`families`],
//! served as Prometheus text (format 0.0.4) at `/metrics` on the API listener
//! (`src/api/metrics.rs`).
//!
//! A [`Metrics`] is the handle: cheap to clone, given to each front end by the daemon.
//! Counting on a data-plane path is one relaxed atomic add on a counter made at start
//! ([`labeled`]): no lock, no allocation, no label lookup in a map. Values the hardening
//! work already counts (limits, refusals, the event sink) are not counted again: the
//! daemon registers a reader for each ([`Metrics::observe`]), called at scrape time.
//! Boots are folded from the committed event stream ([`boots`]), off the data plane.
//!
//! Must not: import a front end (front ends import this), or label a series by machine.

pub mod boots;
pub mod families;
pub mod labeled;
pub mod observed;

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

pub use families::{BootMetrics, DhcpMetrics, HttpMetrics, Observed, TftpMetrics};
pub use observed::{
    BOOT_ONCE_RESULTS, FleetValues, MEMBER_STATES, PoolUsage, ReadCounter, ReadPools, ReadValue,
    Single,
};

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

struct Inner {
    registry: Mutex<Registry>,
    families: families::Families,
    readers: observed::Readers,
}

/// The daemon's metrics; clones share every counter.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, every counter at zero, no reader yet.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let families = families::Families::register(&mut registry);
        let readers = observed::Readers::default();
        registry.register_collector(Box::new(readers.clone()));
        Metrics(Arc::new(Inner {
            registry: Mutex::new(registry),
            families,
            readers,
        }))
    }

    pub fn dhcp(&self) -> &DhcpMetrics {
        &self.0.families.dhcp
    }

    pub fn tftp(&self) -> &TftpMetrics {
        &self.0.families.tftp
    }

    pub fn http(&self) -> &HttpMetrics {
        &self.0.families.http
    }

    pub fn boots(&self) -> &BootMetrics {
        &self.0.families.boots
    }

    /// Exposes a counter kept elsewhere as `family{key=label}` (a family without a key
    /// ignores `label`); readers of the same label are added.
    pub fn observe(&self, family: Observed, label: &'static str, read: ReadCounter) {
        self.0.readers.counter(family, label, read);
    }

    /// Exposes a value kept elsewhere as the single series `name` of type `kind` (read at
    /// scrape time; register each name once). A counter's `name` has no `_total`: the
    /// encoder adds it, as for every other counter family.
    pub fn observe_single(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Single,
        read: ReadValue,
    ) {
        self.0.readers.single(name, help, kind, read);
    }

    /// Sets the fleet's counts (rollbacks, boot-once results, rollout members), which
    /// the daemon reads from the store.
    pub fn set_fleet(&self, v: FleetValues) {
        self.0.readers.set_fleet(v);
    }

    /// Exposes address-pool sizes and use (read at scrape time).
    pub fn observe_pools(&self, read: ReadPools) {
        self.0.readers.pools(read);
    }

    /// Every family in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let registry = self.0.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests;
