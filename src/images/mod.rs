//! Images: the content-addressed blob store ([`BlobStore`]), the immutable image-version
//! [`Manifest`], and the kernel command-line template ([`cmdline`]).
//!
//! Nothing here knows about machines, pins or the database: recording which versions
//! exist is the catalog's job (`crate::catalog`), deciding who boots them is the
//! inventory's.

mod blobs;
pub mod cmdline;
pub mod diff;
mod manifest;
pub mod names;
mod partial;
mod trusted;

pub use blobs::{BlobStore, Verified};
pub use manifest::{MANIFEST_SCHEMA, Manifest};
pub use trusted::{FileStamp, Trust, Trusted};

use crate::boot::Digest;

/// Errors of the image layer. Each message names the file or digest involved.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A blob's content does not hash to what it was expected to.
    #[error("blob {expected} is corrupt: its content hashes to {actual}")]
    Corrupt { expected: Digest, actual: Digest },
    /// A blob that should exist does not.
    #[error("blob {0} is missing from the store")]
    Missing(Digest),
    /// A manifest failed to parse or validate.
    #[error("manifest {digest}: {reason}")]
    BadManifest { digest: String, reason: String },
    /// A name, version or channel is not acceptable.
    #[error("{0}")]
    BadName(String),
    /// A command-line template is not acceptable.
    #[error("kernel command line: {0}")]
    BadCmdline(String),
}

impl ImageError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ImageError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
