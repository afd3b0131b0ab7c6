//! Editing a machine as a whole (the API's `PATCH`) and publishing from uploaded blobs:
//! the same checks as `machine add` and `image add`, the same typed errors.

use super::{Fleet, FleetError, Kind, machines::no_machine};
use crate::boot::Machine;
use crate::catalog::{self, CatalogError, Published, Upload};
use crate::images::ImageError;
use crate::inventory::pin;
use crate::store::StoreError;

impl Fleet {
    /// Replaces machine `m.name`'s MACs, UUID, hostname, address and labels, checked
    /// as [`Fleet::add_machine`] checks a new one, on behalf of `actor` (kept in the
    /// machine's history).
    pub(crate) async fn update_machine_by(
        &self,
        m: &Machine,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        if m.macs.is_empty() && m.uuid.is_none() {
            return Err(FleetError::invalid(
                "macs",
                "",
                format!("machine {:?} needs at least one MAC or a UUID", m.name),
            ));
        }
        for (k, v) in &m.labels {
            pin::check_label("key", k).map_err(|e| FleetError::invalid("label", k, e))?;
            pin::check_label("value", v).map_err(|e| FleetError::invalid("label", v, e))?;
        }
        if let Some(h) = &m.hostname {
            crate::images::cmdline::check_value("hostname", h)
                .map_err(|e| FleetError::invalid("hostname", h, e))?;
        }
        match self.store().update_machine_by(m, actor).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_machine(&m.name)),
            Err(StoreError::Conflict(message)) => Err(FleetError::Conflict {
                kind: Kind::Machine,
                name: m.name.clone(),
                message,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes `name@upload.version` from blobs already stored; a blob the store
    /// does not hold is a not-found error of kind [`Kind::Blob`].
    pub(crate) async fn publish_uploaded(
        &self,
        name: &str,
        upload: Upload,
        actor: Option<&str>,
    ) -> Result<Published, FleetError> {
        match catalog::publish_uploaded(self.blobs(), self.store(), name, upload, actor).await {
            Err(CatalogError::Image(ImageError::Missing(d))) => Err(FleetError::NotFound {
                kind: Kind::Blob,
                name: d.to_string(),
                message: format!("blob {d} is not in the store: upload it first"),
            }),
            Err(CatalogError::Image(ImageError::BadManifest { reason, .. })) => {
                Err(FleetError::invalid("manifest", name, reason))
            }
            r => Ok(r?),
        }
    }
}
