//! Image versions: publish, tag, remove, collect garbage, verify, build. The catalog
//! does the work (its publish order is what makes `kill -9` harmless); this file only
//! makes its outcomes the facade's typed errors.

use std::path::Path;

use super::{Fleet, FleetError, Kind};
use crate::build::{self, BuildError, BuildRequest, Built, Progress};
use crate::catalog::{self, CatalogError, GcReport, Problem, PublishRequest, Published};
use crate::store::StoreError;

impl Fleet {
    /// Publishes an immutable version from files (the same content again is a no-op).
    pub(crate) async fn publish(&self, req: PublishRequest) -> Result<Published, FleetError> {
        Ok(catalog::publish(self.blobs(), self.store(), req).await?)
    }

    /// Builds and publishes a version from a root tree, tarball or OCI image.
    pub(crate) async fn build(
        &self,
        req: BuildRequest,
        progress: Progress,
    ) -> Result<Built, BuildError> {
        build::build(self.blobs(), self.store(), req, progress).await
    }

    /// Points `image:channel` at a published version.
    pub(crate) async fn tag(
        &self,
        image: &str,
        version: &str,
        channel: &str,
    ) -> Result<(), FleetError> {
        self.tag_by(image, version, channel, None).await
    }

    /// [`Fleet::tag`] on behalf of `actor` (an API token's name, kept in the history).
    pub(crate) async fn tag_by(
        &self,
        image: &str,
        version: &str,
        channel: &str,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        catalog::tag(self.store(), image, version, channel, actor)
            .await
            .map_err(|e| in_use(e, image, version))
    }

    /// Removes a version unless a pin or channel uses it (its blobs stay until `gc`).
    pub(crate) async fn remove_version(
        &self,
        image: &str,
        version: &str,
    ) -> Result<(), FleetError> {
        self.remove_version_by(image, version, None).await
    }

    /// [`Fleet::remove_version`] on behalf of `actor` (kept in the version history).
    pub(crate) async fn remove_version_by(
        &self,
        image: &str,
        version: &str,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        catalog::remove(self.store(), image, version, actor)
            .await
            .map_err(|e| in_use(e, image, version))
    }

    /// Deletes unreferenced blobs, debris of interrupted publishes, and the work
    /// directories of killed builds under `build_dir`: (the blob report, directories
    /// removed).
    pub(crate) async fn gc(&self, build_dir: &Path) -> Result<(GcReport, usize), FleetError> {
        let report = catalog::gc(self.blobs(), self.store()).await?;
        let builds = build::clean_stale(build_dir).map_err(|e| FleetError::Build(Box::new(e)))?;
        Ok((report, builds))
    }

    /// Re-hashes every blob: (blobs checked, problems).
    pub(crate) async fn verify(&self) -> Result<(usize, Vec<Problem>), FleetError> {
        Ok(catalog::verify(self.blobs(), self.store()).await?)
    }
}

/// A store conflict during tag or remove is about that version (in use, or gone).
fn in_use(e: CatalogError, image: &str, version: &str) -> FleetError {
    match e {
        CatalogError::Store(StoreError::Conflict(message)) => FleetError::Conflict {
            kind: Kind::Version,
            name: format!("{image}@{version}"),
            message,
        },
        CatalogError::NotFound(message) => FleetError::NotFound {
            kind: Kind::Version,
            name: format!("{image}@{version}"),
            message,
        },
        e => e.into(),
    }
}
