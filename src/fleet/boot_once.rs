//! Boot-once through the facade: the next boot of a machine uses a reference, then the
//! machine goes back to its pin (or, with `then = local`, to local boot). What `tabula pin
//! set … --once` and the API's `POST /machines/{name}/boot-once` call. The request is a
//! row; the decision reads it through the snapshot; the recorder ends it when its boot
//! ends; the recorder's sweep expires it when its TTL passes unused.

use std::time::Duration;

use super::{Fleet, FleetError, Kind};
use crate::inventory::{PinRef, PinTarget};
use crate::store::BootOnceRow;

/// What a boot-once does after its boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Back to the pin it had.
    Revert,
    /// Pinned to local boot.
    Local,
}

impl Then {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Then::Revert => "revert",
            Then::Local => "local",
        }
    }
}

impl Fleet {
    /// Asks for one boot of `reference` by `target` (a machine or a MAC) within `ttl`.
    pub(crate) async fn create_boot_once(
        &self,
        target: &PinTarget,
        reference: &PinRef,
        ttl: Duration,
        then: Then,
    ) -> Result<BootOnceRow, FleetError> {
        let snap = self.inventory().snapshot().await?;
        let machine = match target {
            PinTarget::Machine(n) => {
                if snap.machine_named(n).is_none() {
                    return Err(super::missing(&crate::store::Requirement::Machine(
                        n.clone(),
                    )));
                }
                n.clone()
            }
            PinTarget::Mac(m) => snap
                .machine_for(m, None)
                .map_or_else(|| m.to_string(), |x| x.name.clone()),
            other => {
                return Err(FleetError::invalid(
                    "target",
                    &other.to_string(),
                    "boot-once names one machine or one MAC",
                ));
            }
        };
        let exists = match reference {
            PinRef::Version { image, version } => snap
                .versions
                .contains_key(&(image.clone(), version.clone())),
            PinRef::Channel { image, channel } => snap
                .channels
                .contains_key(&(image.clone(), channel.clone())),
            PinRef::Digest { digest, .. } => snap.version_of_digest(digest).is_some(),
            PinRef::Local | PinRef::None => true,
        };
        if !exists {
            return Err(FleetError::NotFound {
                kind: Kind::Version,
                name: reference.to_string(),
                message: format!("{reference} is not published (see `tabula image list`)"),
            });
        }
        let now = self.store().clock_ms().await?;
        let row = BootOnceRow {
            id: hex::encode(crate::http::report_key::boot_id().0),
            machine,
            reference: reference.to_string(),
            then_do: then.as_str().into(),
            state: "pending".into(),
            boot_id: None,
            expires_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4)),
            created_ms: now,
            ended_ms: None,
        };
        let event = serde_json::json!({
            "id": row.id, "machine": row.machine, "reference": row.reference,
            "then": row.then_do, "expires_ms": row.expires_ms, "state": "pending",
        });
        self.store()
            .insert_boot_once(&row, &event.to_string())
            .await?;
        Ok(row)
    }

    /// A boot-once request and its result (pending, booting, booted, failed, expired,
    /// cancelled).
    pub(crate) async fn boot_once(&self, id: &str) -> Result<BootOnceRow, FleetError> {
        self.store()
            .boot_once(id)
            .await?
            .ok_or_else(|| FleetError::NotFound {
                kind: Kind::BootOnce,
                name: id.to_string(),
                message: format!("no boot-once request {id:?}"),
            })
    }
}
