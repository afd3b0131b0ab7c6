//! What TFTP serves from tabula's own state for GRUB (wired by the daemon, so neither
//! front end imports the other): a machine's `grub.cfg` (`boot/<mac>/grub.cfg?…`,
//! answered by the script route exactly as over HTTP, boot event and boot attempt
//! included) and the blobs that config names (`blobs/sha256/<hex>/<name>?…`, from the
//! blob store by digest). Debian's signed GRUB reads all of it over TFTP: it has no HTTP.

use std::net::IpAddr;
use std::sync::Arc;

use crate::boot::urls;
use crate::http::HttpState;
use crate::http::boot_script;
use crate::tftp::TftpError;
use crate::tftp::dynamic::{Dynamic, Opened};
use crate::tftp::root::Content;

/// The TFTP side of the script route and the blob store.
#[derive(Debug)]
pub struct GrubFiles {
    pub http: HttpState,
}

impl Dynamic for GrubFiles {
    fn open<'a>(&'a self, name: &'a str, peer: IpAddr) -> Opened<'a> {
        Box::pin(async move {
            let target = format!("/{}", name.trim_start_matches('/'));
            if let Some(req) = boot_script::Request::of_target(&target) {
                return Some(self.config(&req, name, peer).await);
            }
            if urls::is_blob(&target) {
                return Some(self.blob(&target, name).await);
            }
            None
        })
    }
}

impl GrubFiles {
    async fn config(
        &self,
        req: &boot_script::Request,
        name: &str,
        peer: IpAddr,
    ) -> Result<Content, TftpError> {
        match boot_script::reply(&self.http, req, Some(peer)).await {
            Ok(reply) => Ok(Content::Memory(reply.body)),
            Err(refused) => {
                tracing::debug!(?refused, name, "GRUB config refused over TFTP");
                Err(TftpError::Forbidden {
                    name: name.to_string(),
                    reason: "refused by the boot decision",
                })
            }
        }
    }

    async fn blob(&self, target: &str, name: &str) -> Result<Content, TftpError> {
        let not_found = || TftpError::NotFound {
            name: name.to_string(),
        };
        let digest = urls::parse_blob(target).map_err(|_| not_found())?.digest;
        let blobs = self.http.blobs.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let file = blobs.open_blob(&digest).ok()?;
            let len = file.metadata().ok()?.len();
            Some((file, len))
        })
        .await
        .ok()
        .flatten();
        let (file, len) = opened.ok_or_else(not_found)?;
        Ok(Content::File {
            file: Arc::new(file),
            len,
        })
    }
}
