//! Publishing a version from blobs already in the store (uploaded by digest, e.g. over
//! the API's `PUT /api/v1/blobs/sha256/{hex}`): the manifest names each blob by digest
//! and the name a loader presents it under; sizes come from the store, so a manifest can
//! never claim bytes the store does not hold. The blob store's shared lock is held from
//! the size checks to the version row, so `gc` cannot remove a blob in between (an
//! uploaded blob no version names yet can still be collected by a `gc` before this).

use std::collections::BTreeMap;

use super::{CatalogError, Published, blocking, record};
use crate::boot::{Arch, BlobRef, Digest};
use crate::images::{BlobStore, MANIFEST_SCHEMA, Manifest};
use crate::store::Store;

/// One blob of an [`Upload`]: what it hashes to, and the name it is served under.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadedBlob {
    pub digest: Digest,
    pub name: String,
}

/// A version to publish from stored blobs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upload {
    pub version: String,
    #[serde(default = "default_arches")]
    pub architectures: Vec<Arch>,
    pub kernel: UploadedBlob,
    #[serde(default)]
    pub initrds: Vec<UploadedBlob>,
    #[serde(default)]
    pub rootfs: Option<UploadedBlob>,
    #[serde(default)]
    pub cmdline: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_arches() -> Vec<Arch> {
    vec![Arch::X86_64]
}

/// Publishes `name@upload.version` from blobs the store holds; a missing blob is
/// [`crate::images::ImageError::Missing`], with nothing written; on behalf of `actor`.
pub(crate) async fn publish_uploaded(
    blobs: &BlobStore,
    store: &Store,
    name: &str,
    upload: Upload,
    actor: Option<&str>,
) -> Result<Published, CatalogError> {
    crate::images::names::check_image(name)?;
    crate::images::names::check_version(&upload.version)?;
    crate::images::cmdline::check_template(&upload.cmdline)?;
    let b = blobs.clone();
    let _guard = blocking(move || b.lock(false)).await?;
    let b = blobs.clone();
    let name = name.to_string();
    let manifest = blocking(move || {
        let blob = |u: &UploadedBlob| -> Result<BlobRef, crate::images::ImageError> {
            Ok(BlobRef {
                digest: u.digest,
                size: b.size(&u.digest)?,
                name: u.name.clone(),
            })
        };
        let m = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name,
            version: upload.version.clone(),
            architectures: upload.architectures.clone(),
            kernel: blob(&upload.kernel)?,
            initrds: upload.initrds.iter().map(blob).collect::<Result<_, _>>()?,
            rootfs: upload.rootfs.as_ref().map(blob).transpose()?,
            cmdline: upload.cmdline.clone(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            annotations: upload.annotations.clone(),
        };
        m.validate()?;
        Ok(m)
    })
    .await?;
    record(blobs, store, manifest, actor).await
}
