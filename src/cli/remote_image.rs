//! `tabula --server URL image …`: `add` hashes each file here, uploads it with the
//! API's streaming, verified `PUT /api/v1/blobs/sha256/{hex}` (the server keeps only
//! bytes that hash to the digest) and then publishes the version from a manifest naming
//! those digests; `list`, `show`, `tag` and `rm` read and write through the API. Output
//! is the local CLI's, from its printers ([`super::image`]).

use std::io::Read as _;
use std::path::Path;

use serde_json::{Value, json};

use super::image::{self, ImageCmd, split_version};
use crate::boot::Digest;
use crate::catalog::{Published, blob_name};
use crate::client::Client;
use crate::client::routes::Made;

pub(super) async fn run(c: &Client, cmd: &ImageCmd) -> anyhow::Result<()> {
    match cmd {
        ImageCmd::Add {
            name,
            version,
            kernel,
            initrds,
            rootfs,
            cmdline,
            arches,
            annotations,
        } => {
            let req = image::publish_request(
                name,
                version,
                kernel,
                initrds,
                rootfs,
                cmdline,
                arches,
                annotations,
            )?;
            let kernel = upload(c, &req.kernel, "vmlinuz").await?;
            let mut initrds = Vec::new();
            for (i, p) in req.initrds.iter().enumerate() {
                initrds.push(upload(c, p, &format!("initrd{i}.img")).await?);
            }
            let rootfs = match &req.rootfs {
                Some(p) => Some(upload(c, p, "root.img").await?),
                None => None,
            };
            let arches: Vec<&str> = req.architectures.iter().map(|a| a.as_str()).collect();
            let body = json!({
                "version": req.version, "architectures": arches, "kernel": kernel,
                "initrds": initrds, "rootfs": rootfs, "cmdline": req.cmdline,
                "annotations": req.annotations,
            });
            let (made, answer) = c.publish(name, body).await?;
            let published = match made {
                Made::New => Published::New {
                    manifest: answer.manifest,
                },
                Made::Unchanged => Published::Unchanged {
                    manifest: answer.manifest,
                },
            };
            image::print_published(name, version, &published);
        }
        ImageCmd::List => {
            let mut rows = Vec::new();
            for i in c.images().await? {
                let versions = match c.versions(&i.name).await {
                    // Removed between the two reads.
                    Err(e) if e.status() == Some(404) => continue,
                    other => other?,
                };
                rows.extend(versions.into_iter().map(|v| {
                    let replicas = crate::replica::view::summary(&v.replicas);
                    (v.row, v.channels, replicas)
                }));
            }
            // The store's order, as the local list prints it.
            rows.sort_by(|(a, _, _), (b, _, _)| {
                (&a.name, a.created_ms, &a.version).cmp(&(&b.name, b.created_ms, &b.version))
            });
            image::print_list(rows);
        }
        ImageCmd::Show { reference, json } => show(c, reference, *json).await?,
        ImageCmd::Tag { reference, channel } => {
            let (name, version) = split_version(reference)?;
            c.tag(name, version, channel).await?;
            println!("{name}:{channel} -> {name}@{version}");
        }
        ImageCmd::Rm { reference } => {
            let (name, version) = split_version(reference)?;
            // The API's DELETE is idempotent; the CLI says when there was nothing.
            c.manifest(name, version).await?;
            c.remove_version(name, version).await?;
            image::print_removed(name, version);
        }
        ImageCmd::Build(_) | ImageCmd::Diff { .. } | ImageCmd::Gc | ImageCmd::Verify => {
            anyhow::bail!("this image command works on the server itself")
        }
    }
    Ok(())
}

/// Hashes `path`, uploads it (unless the server has it), and returns its entry of the
/// upload manifest.
async fn upload(c: &Client, path: &Path, fallback: &str) -> anyhow::Result<Value> {
    let p = path.to_path_buf();
    let (digest, size) = tokio::task::spawn_blocking(move || hash(&p)).await??;
    c.put_blob(&digest, path, size).await?;
    Ok(json!({"digest": digest.to_string(), "name": blob_name(path, fallback)}))
}

/// The digest and size of the file at `path`, read in chunks.
fn hash(path: &Path) -> anyhow::Result<(Digest, u64)> {
    use sha2::Digest as _;
    let mut f =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Digest(h.finalize().into()), size))
}

/// `image show` over the API: `NAME:CHANNEL`, `NAME@VERSION` or every version of `NAME`.
async fn show(c: &Client, reference: &str, json: bool) -> anyhow::Result<()> {
    let not_published =
        || anyhow::anyhow!("{reference} is not published (see `tabula image list`)");
    let (name, version) = if let Some((n, ch)) = reference.split_once(':') {
        let image = c.images().await?.into_iter().find(|i| i.name == n);
        let v = image
            .and_then(|i| i.channels.get(ch).cloned())
            .ok_or_else(|| anyhow::anyhow!("channel {reference} does not exist"))?;
        (n.to_string(), Some(v))
    } else if let Some((n, v)) = reference.split_once('@') {
        (n.to_string(), Some(v.to_string()))
    } else {
        (reference.to_string(), None)
    };
    let versions = match c.versions(&name).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => return Err(not_published()),
        Err(e) => return Err(e.into()),
    };
    let mut shown: Vec<_> = versions
        .into_iter()
        .filter(|v| version.as_ref().is_none_or(|want| *want == v.row.version))
        .collect();
    if shown.is_empty() {
        return Err(not_published());
    }
    shown.sort_by(|a, b| a.row.version.cmp(&b.row.version));
    for v in shown {
        let (digest, m) = c.manifest(&name, &v.row.version).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&m)?);
            continue;
        }
        image::print_version(&name, &v.row.version, &digest, &m, &v.channels);
    }
    Ok(())
}
