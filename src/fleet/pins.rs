//! Pins: set, remove, roll back. What a pin names (its machine, its version or
//! channel) is checked in the same transaction as the write (see
//! [`crate::store::Requirement`]), so a concurrent `image rm` or `machine rm` cannot
//! leave a pin to nothing.

use super::{Fleet, FleetError, Kind};
use crate::inventory::{PinRef, PinTarget};
use crate::store::Requirement;

/// What a pin of `target` to `reference` needs to exist.
pub(crate) fn requirements(target: &PinTarget, reference: &PinRef) -> Vec<Requirement> {
    let mut needs = Vec::new();
    if let PinTarget::Machine(name) = target {
        needs.push(Requirement::Machine(name.clone()));
    }
    match reference {
        PinRef::Version { image, version } => needs.push(Requirement::Version {
            image: image.clone(),
            version: version.clone(),
        }),
        PinRef::Digest { image, digest } => needs.push(Requirement::Manifest {
            image: image.clone(),
            manifest: digest.to_string(),
        }),
        PinRef::Channel { image, channel } => needs.push(Requirement::Channel {
            image: image.clone(),
            channel: channel.clone(),
        }),
        PinRef::Local | PinRef::None => {}
    }
    needs
}

impl Fleet {
    /// Pins `target` to `reference`; the machine and the version or channel must exist.
    pub(crate) async fn set_pin(
        &self,
        target: &PinTarget,
        reference: &PinRef,
    ) -> Result<(), FleetError> {
        self.set_pin_by(target, reference, None).await
    }

    /// [`Fleet::set_pin`] on behalf of `actor` (an API token's name, kept in the history).
    pub(crate) async fn set_pin_by(
        &self,
        target: &PinTarget,
        reference: &PinRef,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        self.store()
            .set_pin_by(
                &target.key(),
                &reference.to_string(),
                &requirements(target, reference),
                actor,
            )
            .await?;
        Ok(())
    }

    /// Removes `target`'s pin.
    pub(crate) async fn remove_pin(&self, target: &PinTarget) -> Result<(), FleetError> {
        self.remove_pin_by(target, None).await
    }

    /// [`Fleet::remove_pin`] on behalf of `actor`.
    pub(crate) async fn remove_pin_by(
        &self,
        target: &PinTarget,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        if self.store().remove_pin_by(&target.key(), actor).await? {
            Ok(())
        } else {
            Err(FleetError::NotFound {
                kind: Kind::Pin,
                name: target.to_string(),
                message: format!("{target} has no pin"),
            })
        }
    }

    /// Moves `target`'s pin back to the one before it, in one transaction that also
    /// checks what the earlier pin names still exists. Returns (from, to).
    pub(crate) async fn rollback_pin(
        &self,
        target: &PinTarget,
    ) -> Result<(Option<String>, String), FleetError> {
        self.rollback_pin_by(target, None).await
    }

    /// [`Fleet::rollback_pin`] on behalf of `actor`.
    pub(crate) async fn rollback_pin_by(
        &self,
        target: &PinTarget,
        actor: Option<&str>,
    ) -> Result<(Option<String>, String), FleetError> {
        let moved = self
            .store()
            .rollback_pin_by(
                &target.key(),
                |to| to.parse::<PinRef>().ok().map(|r| requirements(target, &r)),
                actor,
            )
            .await;
        match moved {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(FleetError::NotFound {
                kind: Kind::Pin,
                name: target.to_string(),
                message: format!(
                    "{target} has no earlier pin to roll back to (see `tabula pin history {target}`)"
                ),
            }),
            Err(crate::store::StoreError::Missing(r)) => {
                let e = super::missing(&r);
                Err(match e {
                    FleetError::NotFound {
                        kind,
                        name,
                        message,
                    } => FleetError::NotFound {
                        kind,
                        name,
                        message: format!("cannot roll {target} back: {message}"),
                    },
                    e => e,
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}
