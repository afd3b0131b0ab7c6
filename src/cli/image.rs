//! `tabula image …`: publish, list, show, tag, rm, gc, verify. The request parsing and
//! the printers are shared with the remote path (`--server`, [`super::remote_image`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::boot::Arch;
use crate::catalog::{PublishRequest, Published};
use crate::images::Manifest;
use crate::store::VersionRow;

#[derive(Debug, Subcommand)]
pub(super) enum ImageCmd {
    /// Publish an image version from files (immutable once published)
    Add {
        /// Image name
        name: String,
        /// Version (immutable: other content under the same version is refused)
        #[arg(long)]
        version: String,
        /// Kernel file
        #[arg(long)]
        kernel: PathBuf,
        /// Initrd file(s), in load order
        #[arg(long = "initrd")]
        initrds: Vec<PathBuf>,
        /// Read-only root image (squashfs)
        #[arg(long)]
        rootfs: Option<PathBuf>,
        /// Kernel command-line template; variables: {mac} {hostname} {image} {version}
        /// {manifest} {base_url} {rootfs_url} {rootfs_sha256} {callback_url}
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Architecture(s) the image runs on
        #[arg(long = "arch", default_value = "x86_64")]
        arches: Vec<String>,
        /// Annotation KEY=VALUE (repeatable)
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
    },
    /// Build and publish a version from a root filesystem: a directory, a rootfs tarball
    /// (.tar, .tar.gz, .tar.zst, .tar.xz), an OCI image layout or a `docker save` archive
    Build(super::build::BuildArgs),
    /// Files added, removed and changed between two versions (NAME@VERSION, NAME:CHANNEL,
    /// NAME@sha256:DIGEST), and kernel, initrd and command-line differences
    Diff {
        a: String,
        b: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List published versions and channels
    List,
    /// Show a version's manifest (NAME@VERSION, NAME:CHANNEL, or NAME for all versions)
    Show {
        reference: String,
        /// Print the manifest JSON
        #[arg(long)]
        json: bool,
    },
    /// Point a channel at a version: tabula image tag NAME@VERSION CHANNEL
    Tag { reference: String, channel: String },
    /// Remove a version (refused while a pin or channel uses it; blobs stay until gc)
    Rm { reference: String },
    /// Delete blobs no published version references, and stale temporary files
    Gc,
    /// Re-hash every blob and report corruption (exit 1 if any)
    Verify,
}

pub(super) fn split_version(r: &str) -> anyhow::Result<(&str, &str)> {
    r.split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected NAME@VERSION, got {r:?}"))
}

/// The request `image add` describes.
#[allow(clippy::too_many_arguments)]
pub(super) fn publish_request(
    name: &str,
    version: &str,
    kernel: &std::path::Path,
    initrds: &[PathBuf],
    rootfs: &Option<PathBuf>,
    cmdline: &str,
    arches: &[String],
    annotations: &[String],
) -> anyhow::Result<PublishRequest> {
    let mut architectures = Vec::new();
    for a in arches {
        let a: Arch = a.parse()?;
        if !architectures.contains(&a) {
            architectures.push(a);
        }
    }
    let mut ann = BTreeMap::new();
    for kv in annotations {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("annotation {kv:?} is not KEY=VALUE"))?;
        ann.insert(k.to_string(), v.to_string());
    }
    Ok(PublishRequest {
        name: name.to_string(),
        version: version.to_string(),
        architectures,
        kernel: kernel.to_path_buf(),
        initrds: initrds.to_vec(),
        rootfs: rootfs.clone(),
        cmdline: cmdline.to_string(),
        annotations: ann,
        created: None,
    })
}

/// Prints what `image add` did.
pub(super) fn print_published(name: &str, version: &str, p: &Published) {
    match p {
        Published::New { manifest } => println!("published {name}@{version} {manifest}"),
        Published::Unchanged { manifest } => {
            println!("unchanged {name}@{version} {manifest} (same content already published)")
        }
    }
}

/// Prints what `image rm` did.
pub(super) fn print_removed(name: &str, version: &str) {
    println!("removed {name}@{version} (run `tabula image gc` to free its blobs)");
}

/// Prints `image list`: versions in the store's order, each with its channels.
/// Prints `image list`: each version with its channels and its state on each blob
/// server (`crate::replica::view::summary`).
pub(super) fn print_list(versions: Vec<(VersionRow, Vec<String>, String)>) {
    let rows: Vec<Vec<String>> = versions
        .into_iter()
        .map(|(v, chans, replicas)| {
            vec![
                v.name,
                v.version,
                v.manifest,
                time(v.created_ms),
                chans.join(","),
                replicas,
            ]
        })
        .collect();
    table(
        &[
            "IMAGE",
            "VERSION",
            "MANIFEST",
            "PUBLISHED",
            "CHANNELS",
            "REPLICAS",
        ],
        &rows,
    );
}

/// Prints one version of `image show`.
pub(super) fn print_version(
    n: &str,
    v: &str,
    digest: &crate::boot::Digest,
    m: &Manifest,
    chans: &[String],
) {
    println!("{n}@{v}");
    println!("  manifest      {digest}");
    println!("  created       {}", m.created);
    let arches: Vec<&str> = m.architectures.iter().map(|a| a.as_str()).collect();
    println!("  architectures {}", arches.join(", "));
    println!("  channels      {}", chans.join(", "));
    for b in m.blobs() {
        println!("  {:<13} {} {:>12} B  {}", "blob", b.digest, b.size, b.name);
    }
    println!("  kernel        {}", m.kernel.name);
    println!("  cmdline       {:?}", m.cmdline);
    for (k, val) in &m.annotations {
        println!("  annotation    {k}={val}");
    }
}

pub(super) async fn run(ctx: &Ctx, cmd: &ImageCmd) -> anyhow::Result<()> {
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
            let req = publish_request(
                name,
                version,
                kernel,
                initrds,
                rootfs,
                cmdline,
                arches,
                annotations,
            )?;
            print_published(name, version, &ctx.fleet.publish(req).await?);
        }
        ImageCmd::Build(args) => super::build::build(ctx, args).await?,
        ImageCmd::Diff { a, b, json } => super::build::diff(ctx, a, b, *json).await?,
        ImageCmd::List => {
            let channels = ctx.store().channels().await?;
            let versions = ctx.store().versions().await?;
            let replicas =
                crate::replica::view::by_version(ctx.store(), ctx.fleet.blobs(), &versions).await?;
            let rows = versions
                .into_iter()
                .map(|v| {
                    let chans: Vec<String> = channels
                        .iter()
                        .filter(|c| c.name == v.name && c.version == v.version)
                        .map(|c| c.channel.clone())
                        .collect();
                    let states = replicas
                        .get(&(v.name.clone(), v.version.clone()))
                        .map_or_else(Vec::new, Clone::clone);
                    (v, chans, crate::replica::view::summary(&states))
                })
                .collect();
            print_list(rows);
        }
        ImageCmd::Show { reference, json } => {
            let snap = ctx.inventory().snapshot().await?;
            let (name, version) = if let Some((n, c)) = reference.split_once(':') {
                let v = snap
                    .channels
                    .get(&(n.to_string(), c.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("channel {reference} does not exist"))?;
                (n.to_string(), Some(v.clone()))
            } else if let Some((n, v)) = reference.split_once('@') {
                (n.to_string(), Some(v.to_string()))
            } else {
                (reference.clone(), None)
            };
            let shown: Vec<_> = snap
                .versions
                .iter()
                .filter(|((n, v), _)| *n == name && version.as_ref().is_none_or(|want| want == v))
                .collect();
            if shown.is_empty() {
                anyhow::bail!("{reference} is not published (see `tabula image list`)");
            }
            for ((n, v), ver) in shown {
                let m = ver
                    .manifest
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{n}@{v}: {e}"))?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(m)?);
                    continue;
                }
                let chans: Vec<String> = snap
                    .channels
                    .iter()
                    .filter(|((cn, _), cv)| cn == n && *cv == v)
                    .map(|((_, c), _)| c.clone())
                    .collect();
                print_version(n, v, &ver.manifest_digest, m, &chans);
            }
        }
        ImageCmd::Tag { reference, channel } => {
            let (name, version) = split_version(reference)?;
            ctx.fleet.tag(name, version, channel).await?;
            println!("{name}:{channel} -> {name}@{version}");
        }
        ImageCmd::Rm { reference } => {
            let (name, version) = split_version(reference)?;
            ctx.fleet.remove_version(name, version).await?;
            print_removed(name, version);
        }
        ImageCmd::Gc => {
            let (r, builds) = ctx.fleet.gc(&ctx.data_dir.join("build")).await?;
            println!(
                "removed {} blob(s), {} bytes, {} stale temporary file(s), {} abandoned build director{}",
                r.removed.len(),
                r.bytes,
                r.tmp_files,
                builds,
                if builds == 1 { "y" } else { "ies" }
            );
        }
        ImageCmd::Verify => {
            let (checked, problems) = ctx.fleet.verify().await?;
            for p in &problems {
                println!(
                    "{}: {}{}",
                    p.digest,
                    p.what,
                    if p.used_by.is_empty() {
                        String::new()
                    } else {
                        format!(" (used by {})", p.used_by.join(", "))
                    }
                );
            }
            if !problems.is_empty() {
                anyhow::bail!("{} problem(s) in {checked} blob(s)", problems.len());
            }
            println!("ok: {checked} blob(s) verified");
        }
    }
    Ok(())
}
