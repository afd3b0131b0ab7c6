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
        }
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
