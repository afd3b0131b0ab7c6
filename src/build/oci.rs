//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`) and `docker save`
//! archives (`manifest.json` naming layer tarballs), read into an ordered list of layers.
//!
//! index.json → (nested indexes, choosing linux/amd64 when there are several) → image
//! manifest → layers. Every JSON blob is checked against its digest when read, every
//! layer while it is applied (a mismatch is a corrupt archive). Layer media types are
//! checked before anything is applied: plain, gzip and zstd tar layers (OCI and Docker
//! names) are accepted, anything else (encrypted, foreign, unknown) is refused by name.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::BuildError;
use super::layer::{self, Stats};
use super::source::{Hashing, decompressed, open};

/// The layers of one image, bottom first.
#[derive(Clone, Debug)]
pub(super) struct Image {
    /// The manifest's digest (`sha256:…`), or for a legacy docker archive its config's.
    pub manifest: String,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug)]
pub(super) struct Layer {
    pub path: PathBuf,
    /// `sha256:<hex>` to check while applying; `None` for legacy docker layers.
    pub digest: Option<String>,
    pub size: u64,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    size: u64,
    platform: Option<Platform>,
}

#[derive(Debug, serde::Deserialize)]
struct Platform {
    os: Option<String>,
    architecture: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    media_type: Option<String>,
    layers: Vec<Descriptor>,
}

/// One entry of a docker archive's `manifest.json`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    layers: Vec<String>,
}

fn corrupt(dir: &Path, reason: impl std::fmt::Display) -> BuildError {
    BuildError::CorruptArchive {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    }
}

/// `blobs/<alg>/<hex>` of a digest, refusing anything but sha256 hex.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, BuildError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| corrupt(dir, format!("digest {digest:?} is not sha256:<64 hex>")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// Reads a JSON blob and checks its digest.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, digest: &str) -> Result<T, BuildError> {
    let p = blob_path(dir, digest)?;
    let bytes = std::fs::read(&p).map_err(|e| corrupt(dir, format!("blob {digest}: {e}")))?;
    let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    if got != digest {
        return Err(corrupt(dir, format!("blob {digest} hashes to {got}")));
    }
    serde_json::from_slice(&bytes).map_err(|e| corrupt(dir, format!("blob {digest}: {e}")))
}

/// Reads an OCI image layout directory.
pub(super) fn read(dir: &Path) -> Result<Image, BuildError> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|e| corrupt(dir, format!("index.json: {e}")))?;
    let index: Index =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(dir, format!("index.json: {e}")))?;
    let mut desc = choose(dir, index.manifests)?;
    for _ in 0..8 {
        let mt = desc.media_type.clone().unwrap_or_default();
        if INDEX_TYPES.contains(&mt.as_str()) {
            let nested: Index = read_json(dir, &desc.digest)?;
            let _ = nested.media_type;
            desc = choose(dir, nested.manifests)?;
            continue;
        }
        if !mt.is_empty() && !MANIFEST_TYPES.contains(&mt.as_str()) {
            return Err(BuildError::UnsupportedMediaType {
                media_type: mt,
                what: "manifest",
                digest: desc.digest,
            });
        }
        let m: ImageManifest = read_json(dir, &desc.digest)?;
        if let Some(t) = m.media_type.as_deref()
            && !MANIFEST_TYPES.contains(&t)
        {
            return Err(BuildError::UnsupportedMediaType {
                media_type: t.to_string(),
                what: "manifest",
                digest: desc.digest,
            });
        }
        let mut layers = Vec::new();
        for l in m.layers {
            let mt = l.media_type.clone().unwrap_or_default();
            if !LAYER_TYPES.contains(&mt.as_str()) {
                return Err(BuildError::UnsupportedMediaType {
                    media_type: mt,
                    what: "layer",
                    digest: l.digest,
                });
            }
            layers.push(Layer {
                path: blob_path(dir, &l.digest)?,
                digest: Some(l.digest),
                size: l.size,
            });
        }
        return Ok(Image {
            manifest: desc.digest,
            layers,
        });
    }
    Err(corrupt(dir, "image indexes nested more than 8 deep"))
}

/// One manifest of an index: the only one, else the linux/amd64 one.
fn choose(dir: &Path, mut ds: Vec<Descriptor>) -> Result<Descriptor, BuildError> {
    if ds.len() > 1 {
        ds.retain(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os.as_deref() == Some("linux") && p.architecture.as_deref() == Some("amd64")
            })
        });
    }
    match ds.len() {
        1 => Ok(ds.remove(0)),
        0 => Err(corrupt(
            dir,
            "the index names no (linux/amd64) image manifest",
        )),
        n => Err(corrupt(
            dir,
            format!("the index names {n} linux/amd64 manifests"),
        )),
    }
}

/// Reads a legacy `docker save` archive (unpacked): `manifest.json` names the layers.
pub(super) fn read_docker(dir: &Path) -> Result<Image, BuildError> {
    let bytes = std::fs::read(dir.join("manifest.json")).map_err(|e| {
        corrupt(
            dir,
            format!("neither an OCI layout (oci-layout) nor a docker archive (manifest.json): {e}"),
        )
    })?;
    let mut entries: Vec<DockerEntry> =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(dir, format!("manifest.json: {e}")))?;
    if entries.len() != 1 {
        return Err(corrupt(
            dir,
            format!("manifest.json holds {} images; save one", entries.len()),
        ));
    }
    let e = entries.remove(0);
    let config = std::fs::read(dir.join(&e.config))
        .map_err(|err| corrupt(dir, format!("config {}: {err}", e.config)))?;
    let mut layers = Vec::new();
    for l in e.layers {
        let rel = layer::clean(Path::new(&l), &dir.display().to_string())?
            .ok_or_else(|| corrupt(dir, "an empty layer path"))?;
        let path = dir.join(rel);
        let size = std::fs::metadata(&path)
            .map_err(|err| corrupt(dir, format!("layer {l}: {err}")))?
            .len();
        layers.push(Layer {
            path,
            digest: None,
            size,
        });
    }
    Ok(Image {
        manifest: format!("sha256:{}", hex::encode(sha2::Sha256::digest(&config))),
        layers,
    })
}

/// Applies one layer, checking its digest.
pub(super) fn apply_layer(
    l: &Layer,
    root: &Path,
    stats: &mut Stats,
    on_bytes: &dyn Fn(u64),
) -> Result<(), BuildError> {
    let what = l
        .digest
        .clone()
        .unwrap_or_else(|| l.path.display().to_string());
    let mut hashing = Hashing::new(open(&l.path)?);
    {
        let r = decompressed(&mut hashing, &l.path)?;
        layer::apply(root, r, &format!("layer {what}"), stats, on_bytes)?;
    }
    std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(|e| corrupt(&l.path, format!("layer {what}: {e}")))?;
    if let Some(want) = &l.digest {
        let got = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if &got != want {
            return Err(corrupt(&l.path, format!("layer {want} hashes to {got}")));
        }
    }
    Ok(())
}
