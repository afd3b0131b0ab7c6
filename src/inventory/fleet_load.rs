//! Loads the fleet's decisions (holds, rollout admissions, boot-once requests) from the
//! store into a [`FleetState`] for a snapshot. Reads only.

use super::InventoryError;
use super::snapshot::{Admission, BootOnce, FleetState, Hold};
use crate::store::Store;

/// The fleet state as stored now.
pub(super) async fn load(
    store: &Store,
    quarantine_ignore: bool,
) -> Result<FleetState, InventoryError> {
    let mut fleet = FleetState {
        quarantine_ignore,
        now_ms: crate::store::now_ms(),
        ..FleetState::default()
    };
    for h in store.holds().await? {
        let manifest = match &h.manifest {
            Some(m) => Some(m.parse().map_err(|_| {
                InventoryError::Invalid(format!("state store holds an invalid held manifest {m:?}"))
            })?),
            None => None,
        };
        let sentence = crate::attempt::record::hold_sentence(&h);
        fleet.holds.insert(h.machine, Hold { manifest, sentence });
    }
    for a in store.rollout_admissions().await? {
        fleet.rollouts.insert(
            a.machine,
            Admission {
                rollout: a.rollout,
                step: u32::try_from(a.step).unwrap_or(0),
                image: a.image,
                version: a.version,
            },
        );
    }
    for o in store.pending_boot_once().await? {
        fleet.boot_once.insert(
            o.machine,
            BootOnce {
                id: o.id,
                reference: o.reference.parse()?,
                expires_ms: o.expires_ms,
            },
        );
    }
    Ok(fleet)
}
