//! The image-version manifest: an immutable JSON document naming every blob of one
//! version by digest. Its own SHA-256 is the version's identity (`image@sha256:…`).
//!
//! Serialization is canonical (fixed field order, sorted maps, compact JSON), so the same
//! manifest always has the same digest.

use std::collections::BTreeMap;

use super::{ImageError, cmdline, names};
use crate::boot::{Arch, BlobRef, Digest};

/// The schema identifier written into every manifest.
pub const MANIFEST_SCHEMA: &str = "tabula.image.v1";

/// One immutable image version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    pub name: String,
    pub version: String,
    pub architectures: Vec<Arch>,
    pub kernel: BlobRef,
    pub initrds: Vec<BlobRef>,
    pub rootfs: Option<BlobRef>,
    /// Kernel command-line template (see [`cmdline`]).
    pub cmdline: String,
    /// RFC 3339 UTC time of publication.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs, strings and BTreeMaps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The manifest's digest: the identity of this version.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// Parses and validates manifest bytes stored under `digest`.
    pub fn from_bytes(bytes: &[u8], digest: &Digest) -> Result<Manifest, ImageError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ImageError::BadManifest {
            digest: digest.to_string(),
            reason: e.to_string(),
        })?;
        m.validate().map_err(|e| ImageError::BadManifest {
            digest: digest.to_string(),
            reason: e.to_string(),
        })?;
        Ok(m)
    }

    /// Checks names, architectures and the command-line template.
    pub fn validate(&self) -> Result<(), ImageError> {
        if self.schema != MANIFEST_SCHEMA {
            return Err(ImageError::BadName(format!(
                "unsupported manifest schema {:?}",
                self.schema
            )));
        }
        names::check_image(&self.name)?;
        names::check_version(&self.version)?;
        if self.architectures.is_empty() {
            return Err(ImageError::BadName(
                "an image needs at least one architecture".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in std::iter::once(&self.kernel)
            .chain(&self.initrds)
            .chain(self.rootfs.as_ref())
        {
            if b.name.is_empty()
                || b.name.len() > 64
                || !b
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(ImageError::BadName(format!(
                    "blob file name {:?} must be 1-64 characters of a-z, 0-9, '.', '_', '-'",
                    b.name
                )));
            }
            if !seen.insert(b.name.as_str()) {
                return Err(ImageError::BadName(format!(
                    "two blobs of the image are both named {:?}",
                    b.name
                )));
            }
        }
        cmdline::check_template(&self.cmdline)?;
        Ok(())
    }

    /// Whether two manifests describe the same content, ignoring when they were made.
    /// Re-publishing the same content is a no-op; other content under the same
    /// version is refused.
    pub fn same_content(&self, other: &Manifest) -> bool {
        let strip = |m: &Manifest| Manifest {
            created: String::new(),
            ..m.clone()
        };
        strip(self) == strip(other)
    }

    /// Every blob this version needs, the manifest itself excluded.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        std::iter::once(&self.kernel)
            .chain(&self.initrds)
            .chain(self.rootfs.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let b = |s: &str, n: &str| BlobRef {
            digest: Digest::of(s.as_bytes()),
            size: s.len() as u64,
            name: n.into(),
        };
        Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: "demo".into(),
            version: "1".into(),
            architectures: vec![Arch::X86_64],
            kernel: b("k", "vmlinuz"),
            initrds: vec![b("i", "initrd.img")],
            rootfs: Some(b("r", "root.squashfs")),
            cmdline: "quiet".into(),
            created: "2026-11-22T00:00:00Z".into(),
            annotations: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        }
    }

    #[test]
    fn canonical_roundtrip() {
        let m = sample();
        let bytes = m.to_bytes();
        let d = Digest::of(&bytes);
        assert_eq!(m.digest(), d);
        let back = Manifest::from_bytes(&bytes, &d).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_bytes(), bytes);
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .contains(r#""annotations":{"a":"1","b":"2"}"#)
        );
    }

    #[test]
    fn same_content_ignores_time_only() {
        let a = sample();
        let mut b = sample();
        b.created = "2030-01-01T00:00:00Z".into();
        assert!(a.same_content(&b));
        b.cmdline = "loud".into();
        assert!(!a.same_content(&b));
    }

    #[test]
    fn rejects_bad_manifests() {
        let mut m = sample();
        m.initrds[0].name = "vmlinuz".into();
        assert!(m.validate().is_err());
        let mut m = sample();
        m.architectures.clear();
        assert!(m.validate().is_err());
        let d = Digest::of(b"x");
        assert!(Manifest::from_bytes(b"{\"schema\":1}", &d).is_err());
        assert!(Manifest::from_bytes(b"\xff", &d).is_err());
    }
}
