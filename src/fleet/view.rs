//! Read models: what a consumer shows about a machine, assembled once here so the CLI,
//! the API and the dashboard show the same thing. Every history read is bounded.

use super::{Fleet, FleetError};
use crate::boot::Firmware;
use crate::boot::Machine;
use crate::events::timeline::{self, Timeline};
use crate::inventory::{Facts, Selection, select};
use crate::store::EventRow;

/// What a machine would boot on one kind of firmware, and why.
#[derive(Clone, Debug)]
pub(crate) struct Boots {
    pub firmware: Firmware,
    pub selection: Selection,
}

/// A machine as an operator looks at it: the inventory row, its decisions and its
/// latest boot events.
#[derive(Clone, Debug)]
pub(crate) struct MachineView {
    pub machine: Machine,
    /// For its first MAC, on BIOS and on x86-64 UEFI (empty without a MAC).
    pub boots: Vec<Boots>,
    /// Its first MAC's latest events, oldest first (at most the limit asked for).
    pub recent: Vec<EventRow>,
    /// Its latest boot among those events, stage by stage.
    pub last_boot: Option<Timeline>,
}

impl Fleet {
    /// The machine named `name`, with its decisions and at most `events` latest events.
    pub(crate) async fn machine_view(
        &self,
        name: &str,
        events: i64,
    ) -> Result<MachineView, FleetError> {
        let machine = self.machine(name).await?;
        let mut boots = Vec::new();
        let mut recent = Vec::new();
        if let Some(mac) = machine.macs.first() {
            let snap = self.inventory().snapshot().await?;
            for firmware in [Firmware::Bios, Firmware::EfiX64] {
                let facts = Facts {
                    mac: *mac,
                    uuid: machine.uuid.clone(),
                    firmware,
                };
                boots.push(Boots {
                    firmware,
                    selection: select(&snap, &facts),
                });
            }
            recent = self.store().recent_events(Some(*mac), events).await?;
        }
        let events: Vec<_> = recent.iter().map(|r| r.event.clone()).collect();
        let last_boot = timeline::last_boot(&events);
        Ok(MachineView {
            machine,
            boots,
            recent,
            last_boot,
        })
    }
}
