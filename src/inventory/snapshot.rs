//! A [`Snapshot`]: everything a boot decision reads (machines, pins, versions with their
//! manifests, channels, settings), indexed for lookup. Immutable once built, so one
//! decision sees one consistent state. Built from plain rows: no I/O here.

use std::collections::{BTreeMap, HashMap};

use super::pin::{PinRef, PinTarget};
use crate::boot::Machine;
use crate::boot::{Digest, Mac};
use crate::config::UnknownMachines;
use crate::images::Manifest;

/// Settings a decision needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub unknown_machines: UnknownMachines,
    /// Added to every kernel command line.
    pub console: Option<String>,
    /// Base URL of tabula's HTTP server, without trailing slash.
    pub base_url: String,
}

/// A pin as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub target: PinTarget,
    pub reference: PinRef,
}

/// A published version: its manifest, or why it cannot be read.
#[derive(Clone, Debug)]
pub struct Version {
    pub manifest_digest: Digest,
    pub manifest: Result<Manifest, String>,
}

/// The state a decision reads.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Store revision this snapshot reflects.
    pub revision: i64,
    pub settings: Settings,
    pub machines: Vec<Machine>,
    pub pins: Vec<Pin>,
    /// (image, version) → version.
    pub versions: BTreeMap<(String, String), Version>,
    /// (image, channel) → version.
    pub channels: BTreeMap<(String, String), String>,
    by_mac: HashMap<Mac, usize>,
    by_uuid: HashMap<String, usize>,
    by_digest: HashMap<Digest, (String, String)>,
    /// Holds, rollout admissions and boot-once requests: what the fleet decided
    /// besides the pins (empty unless [`Snapshot::with_fleet`]).
    pub fleet: FleetState,
}

/// The fleet's decisions a boot decision reads, keyed by machine (its inventory name,
/// or the MAC's text for a machine not in the inventory). Inputs, never lookups.
#[derive(Clone, Debug, Default)]
pub struct FleetState {
    /// Machines held by automatic rollback.
    pub holds: HashMap<String, Hold>,
    /// Machines admitted by a running or paused rollout.
    pub rollouts: HashMap<String, Admission>,
    /// Pending boot-once requests.
    pub boot_once: HashMap<String, BootOnce>,
    /// `health.quarantine = "ignore"`: a quarantined machine gets no answer (else local).
    pub quarantine_ignore: bool,
    /// The time the decision is made at (Unix ms; boot-once expiry).
    pub now_ms: i64,
}

/// A hold: boot `manifest` (`None`: quarantined), with the sentence that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub manifest: Option<Digest>,
    pub sentence: String,
}

/// A rollout's admission of one machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub rollout: String,
    /// The step that admitted it, from 0.
    pub step: u32,
    pub image: String,
    pub version: String,
}

/// A boot-once request: the next boot uses `reference`, until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootOnce {
    pub id: String,
    pub reference: PinRef,
    pub expires_ms: i64,
}

impl Snapshot {
    /// Indexes the given state.
    pub fn new(
        revision: i64,
        settings: Settings,
        machines: Vec<Machine>,
        pins: Vec<Pin>,
        versions: BTreeMap<(String, String), Version>,
        channels: BTreeMap<(String, String), String>,
    ) -> Snapshot {
        let mut by_mac = HashMap::new();
        let mut by_uuid = HashMap::new();
        for (i, m) in machines.iter().enumerate() {
            for mac in &m.macs {
                by_mac.insert(*mac, i);
            }
            if let Some(u) = &m.uuid {
                by_uuid.insert(u.to_ascii_lowercase(), i);
            }
        }
        let by_digest = versions
            .iter()
            .map(|(k, v)| (v.manifest_digest, k.clone()))
            .collect();
        Snapshot {
            revision,
            settings,
            machines,
            pins,
            versions,
            channels,
            by_mac,
            by_uuid,
            by_digest,
            fleet: FleetState::default(),
        }
    }

    /// This snapshot with the fleet's decisions.
    pub fn with_fleet(mut self, fleet: FleetState) -> Snapshot {
        self.fleet = fleet;
        self
    }

    /// The machine owning a MAC, or else the one with this SMBIOS UUID.
    pub fn machine_for(&self, mac: &Mac, uuid: Option<&str>) -> Option<&Machine> {
        self.by_mac
            .get(mac)
            .or_else(|| uuid.and_then(|u| self.by_uuid.get(&u.to_ascii_lowercase())))
            .map(|&i| &self.machines[i])
    }

    /// A machine by name.
    pub fn machine_named(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// The (image, version) a manifest digest belongs to.
    pub fn version_of_digest(&self, d: &Digest) -> Option<&(String, String)> {
        self.by_digest.get(d)
    }
}
