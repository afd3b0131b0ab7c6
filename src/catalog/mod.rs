//! The image catalog: publishing, tagging, removing and checking image versions. It is
//! where the blob store (bytes) and the state store (which versions exist) meet.
//!
//! Publishing order is what makes `kill -9` harmless: every blob, then the manifest
//! blob, is written and fsynced first; the version row is committed last. A version row
//! therefore never exists without all of its bytes; an interrupted publish leaves only
//! unreferenced blobs or temporary files, which `gc` removes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::boot::{Arch, BlobRef, Digest};
use crate::images::{BlobStore, ImageError, MANIFEST_SCHEMA, Manifest, Verified, names};
use crate::store::{Store, StoreError};

mod uploaded;
pub(crate) use uploaded::{Upload, publish_uploaded};

/// Catalog errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The version exists with other content.
    #[error(
        "{name}@{version} is already published with other content (manifest {existing}); versions are immutable: publish a new version"
    )]
    Immutable {
        name: String,
        version: String,
        existing: String,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// What to publish.
#[derive(Clone, Debug)]
pub(crate) struct PublishRequest {
    pub name: String,
    pub version: String,
    pub architectures: Vec<Arch>,
    pub kernel: PathBuf,
    pub initrds: Vec<PathBuf>,
    pub rootfs: Option<PathBuf>,
    pub cmdline: String,
    pub annotations: BTreeMap<String, String>,
    /// The manifest's `created` (RFC 3339); `None`: now. Builds pass their build time,
    /// so the same input gives the same manifest digest.
    pub created: Option<String>,
}

/// The outcome of a publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// A new version was recorded.
    New { manifest: Digest },
    /// The same content was already published: nothing changed.
    Unchanged { manifest: Digest },
}

/// A problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub digest: Digest,
    /// Versions that use the blob.
    pub used_by: Vec<String>,
    pub what: String,
}

/// Publishes an image version from files. Blocking I/O runs on the blocking pool.
pub(crate) async fn publish(
    blobs: &BlobStore,
    store: &Store,
    req: PublishRequest,
) -> Result<Published, CatalogError> {
    names::check_image(&req.name)?;
    names::check_version(&req.version)?;
    crate::images::cmdline::check_template(&req.cmdline)?;
    let b = blobs.clone();
    let _guard = blocking(move || b.lock(false)).await?;
    let b = blobs.clone();
    let r = req.clone();
    let manifest = blocking(move || -> Result<Manifest, ImageError> {
        let put = |p: &PathBuf, fallback: &str| -> Result<BlobRef, ImageError> {
            let (digest, size) = b.put_file(p)?;
            let name = blob_name(p, fallback);
            Ok(BlobRef { digest, size, name })
        };
        let kernel = put(&r.kernel, "vmlinuz")?;
        let mut initrds = Vec::new();
        for (i, p) in r.initrds.iter().enumerate() {
            initrds.push(put(p, &format!("initrd{i}.img"))?);
        }
        let rootfs = r.rootfs.as_ref().map(|p| put(p, "root.img")).transpose()?;
        let m = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: r.name,
            version: r.version,
            architectures: r.architectures,
            kernel,
            initrds,
            rootfs,
            cmdline: r.cmdline,
            created: r.created.unwrap_or_else(|| {
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            }),
            annotations: r.annotations,
        };
        m.validate()?;
        Ok(m)
    })
    .await?;

    record(blobs, store, manifest, None).await
}

/// The name a file published from `path` is served under: its file name when that is
/// a plain name (letters, digits, `.`, `_`, `-`; at most 64), else `fallback`. The
/// remote `image add` names its uploads by the same rule.
pub(crate) fn blob_name(path: &std::path::Path, fallback: &str) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && n.len() <= 64
        })
        .unwrap_or(fallback)
        .to_string()
}

/// Records a validated manifest whose blobs are all stored: its manifest blob, then its
/// version row with its history entry on behalf of `actor` (the same content again is
/// [`Published::Unchanged`]).
pub(crate) async fn record(
    blobs: &BlobStore,
    store: &Store,
    manifest: Manifest,
    actor: Option<&str>,
) -> Result<Published, CatalogError> {
    let req = (manifest.name.clone(), manifest.version.clone());
    // Same content already published? Decide before writing the manifest blob.
    if let Some(existing) = find_version(blobs, store, &req.0, &req.1).await? {
        let (d, old) = existing;
        return if old.same_content(&manifest) {
            Ok(Published::Unchanged { manifest: d })
        } else {
            Err(CatalogError::Immutable {
                name: req.0,
                version: req.1,
                existing: d.to_string(),
            })
        };
    }
    let bytes = manifest.to_bytes();
    let b = blobs.clone();
    let digest = blocking(move || b.put_bytes(&bytes)).await?;
    match store
        .insert_version_by(&req.0, &req.1, &digest.to_string(), actor)
        .await?
    {
        None => Ok(Published::New { manifest: digest }),
        Some(existing) if existing == digest.to_string() => {
            Ok(Published::Unchanged { manifest: digest })
        }
        Some(existing) => Err(CatalogError::Immutable {
            name: req.0,
            version: req.1,
            existing,
        }),
    }
}

async fn version_row(
    store: &Store,
    name: &str,
    version: &str,
) -> Result<Option<crate::store::VersionRow>, CatalogError> {
    Ok(store
        .versions()
        .await?
        .into_iter()
        .find(|v| v.name == name && v.version == version))
}

/// Runs blocking blob-store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::BadName(format!("blob store task failed: {e}")))?
}

/// Reads and verifies a manifest blob.
async fn read_manifest(blobs: &BlobStore, d: Digest) -> Result<Manifest, ImageError> {
    let b = blobs.clone();
    blocking(move || {
        b.read_verified(&d)
            .and_then(|bytes| Manifest::from_bytes(&bytes, &d))
    })
    .await
}

/// Reads a published version's manifest.
pub(crate) async fn find_version(
    blobs: &BlobStore,
    store: &Store,
    name: &str,
    version: &str,
) -> Result<Option<(Digest, Manifest)>, CatalogError> {
    let Some(row) = version_row(store, name, version).await? else {
        return Ok(None);
    };
    let d: Digest = row.manifest.parse().map_err(|_| StoreError::Corrupt {
        what: "manifest digest",
        value: row.manifest.clone(),
    })?;
    Ok(Some((d, read_manifest(blobs, d).await?)))
}

/// Points a channel at a published version.
pub(crate) async fn tag(
    store: &Store,
    name: &str,
    version: &str,
    channel: &str,
    actor: Option<&str>,
) -> Result<(), CatalogError> {
    names::check_channel(channel)?;
    if !store
        .versions()
        .await?
        .iter()
        .any(|v| v.name == name && v.version == version)
    {
        return Err(CatalogError::NotFound(format!(
            "{name}@{version} is not published (see `tabula image list`)"
        )));
    }
    store.set_channel_by(name, channel, version, actor).await?;
    Ok(())
}

/// Removes a version unless a pin or channel uses it, on behalf of `actor` (kept in the
/// version history). Its blobs stay until `gc`.
pub(crate) async fn remove(
    store: &Store,
    name: &str,
    version: &str,
    actor: Option<&str>,
) -> Result<(), CatalogError> {
    let Some(row) = version_row(store, name, version).await? else {
        return Err(CatalogError::NotFound(format!(
            "{name}@{version} is not published"
        )));
    };
    let refs = [
        format!("{name}@{version}"),
        format!("{name}@{}", row.manifest),
    ];
    store.remove_version_by(name, version, &refs, actor).await?;
    Ok(())
}

/// Every digest some published version needs (manifests included), with its users.
async fn referenced(
    blobs: &BlobStore,
    store: &Store,
) -> Result<(BTreeMap<Digest, Vec<String>>, Vec<Problem>), CatalogError> {
    let mut used: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for row in store.versions().await? {
        let label = format!("{}@{}", row.name, row.version);
        let d: Digest = row.manifest.parse().map_err(|_| StoreError::Corrupt {
            what: "manifest digest",
            value: row.manifest.clone(),
        })?;
        used.entry(d).or_default().push(label.clone());
        match read_manifest(blobs, d).await {
            Ok(m) => {
                for b in m.blobs() {
                    used.entry(b.digest).or_default().push(label.clone());
                }
            }
            // Missing/corrupt manifests are reported by verify; gc must then keep
            // everything it cannot prove unreferenced.
            Err(e) => problems.push(Problem {
                digest: d,
                used_by: vec![label],
                what: format!("manifest unreadable: {e}"),
            }),
        }
    }
    Ok((used, problems))
}

/// Re-hashes every blob; reports corrupt or missing blobs and unreadable manifests.
pub(crate) async fn verify(
    blobs: &BlobStore,
    store: &Store,
) -> Result<(usize, Vec<Problem>), CatalogError> {
    let (used, mut problems) = referenced(blobs, store).await?;
    let all: BTreeSet<Digest> = blobs
        .list()?
        .into_iter()
        .chain(used.keys().copied())
        .collect();
    let checked = all.len();
    for d in all {
        let b = blobs.clone();
        let v = blocking(move || b.verify(&d)).await?;
        let what = match v {
            Verified::Ok { .. } => continue,
            Verified::Corrupt { actual } => format!("corrupt: content hashes to {actual}"),
            Verified::Missing => "missing".to_string(),
        };
        if problems
            .iter()
            .any(|p| p.digest == d && p.what.contains(&what))
        {
            continue;
        }
        problems.push(Problem {
            digest: d,
            used_by: used.get(&d).cloned().unwrap_or_default(),
            what,
        });
    }
    problems.sort_by_key(|p| p.digest);
    Ok((checked, problems))
}

/// What `gc` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GcReport {
    pub removed: Vec<Digest>,
    pub bytes: u64,
    pub tmp_files: usize,
}

/// How recent a peer's `fetching` row must be for `gc` to keep the blob it fetches.
const FETCH_FRESH_MS: i64 = 120_000;

/// Blobs some server is fetching now (a replica row `fetching` or `failed` written
/// within [`FETCH_FRESH_MS`]): a peer may be fetching them from this server, so `gc`
/// keeps them even when no version references them any more.
async fn fetched_elsewhere(store: &Store) -> Result<BTreeSet<Digest>, CatalogError> {
    let now = crate::store::now_ms();
    Ok(store
        .replicas()
        .await?
        .into_iter()
        .filter(|r| {
            matches!(r.state.as_str(), "fetching" | "failed") && now - r.updated_ms < FETCH_FRESH_MS
        })
        .filter_map(|r| r.digest.parse().ok())
        .collect())
}

/// Removes blobs no published version references, and stale temporary files; keeps
/// blobs another server is fetching ([`fetched_elsewhere`]). Refuses to run while any
/// manifest is unreadable (it could not tell what that version needs).
pub(crate) async fn gc(blobs: &BlobStore, store: &Store) -> Result<GcReport, CatalogError> {
    let b = blobs.clone();
    let _guard = blocking(move || b.lock(true)).await?;
    let (used, problems) = referenced(blobs, store).await?;
    if let Some(p) = problems.first() {
        return Err(CatalogError::NotFound(format!(
            "refusing to collect garbage: {} ({}) — run `tabula image verify`",
            p.what,
            p.used_by.join(", ")
        )));
    }
    let fetching = fetched_elsewhere(store).await?;
    let mut report = GcReport {
        tmp_files: blobs.clean_tmp()?,
        ..GcReport::default()
    };
    for d in blobs.list()? {
        if !used.contains_key(&d) && !fetching.contains(&d) {
            report.bytes += blobs.size(&d).unwrap_or(0);
            blobs.remove(&d)?;
            report.removed.push(d);
        }
    }
    Ok(report)
}
