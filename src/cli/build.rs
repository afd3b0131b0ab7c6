//! `tabula image build` and `tabula image diff`.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::boot::{Arch, Digest};
use crate::build::{self, BuildRequest, Compression, Progress};
use crate::catalog::Published;
use crate::images::Manifest;
use crate::images::diff;

#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// Image name
    name: String,
    /// Version (immutable)
    #[arg(long)]
    version: String,
    /// Root filesystem: a directory, a tarball (.tar, .tar.gz, .tar.zst, .tar.xz), an OCI
    /// image layout directory, or an OCI / `docker save` archive
    #[arg(long = "from", value_name = "SOURCE")]
    from: PathBuf,
    /// The kernel to boot: a release (6.1.0-28-amd64) or a path in the image
    /// (/boot/vmlinuz-…) [default: the newest /boot/vmlinuz-*]
    #[arg(long)]
    kernel: Option<String>,
    /// NIC driver modules for the initramfs (their dependencies are added)
    #[arg(long = "nic", value_delimiter = ',', default_values_t = build::DEFAULT_NIC_MODULES.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    nic: Vec<String>,
    /// Kernel command-line template (see `tabula image add`)
    #[arg(long, default_value = "panic=5")]
    cmdline: String,
    /// Architecture(s) the image runs on
    #[arg(long = "arch", default_value = "x86_64")]
    arches: Vec<String>,
    /// Static busybox for the initramfs
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Build time (Unix seconds or RFC 3339) [default: SOURCE_DATE_EPOCH, else the newest
    /// mtime in the source]: every timestamp in the image and the manifest's `created`
    #[arg(long, value_name = "TIME")]
    build_time: Option<String>,
    /// Squashfs compression
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    compression: Compression,
}

fn parse_time(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| anyhow::anyhow!("build time {s:?}: {e} (Unix seconds or RFC 3339)"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("build time {s:?} is before 1970"))?
        .as_secs())
}

pub(super) async fn build(ctx: &Ctx, a: &BuildArgs) -> anyhow::Result<()> {
    let mut architectures = Vec::new();
    for x in &a.arches {
        let x: Arch = x.parse()?;
        if !architectures.contains(&x) {
            architectures.push(x);
        }
    }
    let build_time = match (&a.build_time, std::env::var("SOURCE_DATE_EPOCH")) {
        (Some(t), _) => Some(parse_time(t)?),
        (None, Ok(t)) if !t.is_empty() => {
            Some(parse_time(&t).map_err(|e| anyhow::anyhow!("SOURCE_DATE_EPOCH: {e}"))?)
        }
        _ => None,
    };
    let req = BuildRequest {
        name: a.name.clone(),
        version: a.version.clone(),
        source: a.from.clone(),
        kernel: a.kernel.clone(),
        nic_modules: a.nic.clone(),
        cmdline: a.cmdline.clone(),
        architectures,
        busybox: a.busybox.clone(),
        build_time,
        compression: a.compression,
        work_parent: ctx.data_dir.join("build"),
    };
    let built = ctx.fleet.build(req, Progress::stderr()).await?;
    let verb = match built.published {
        Published::New { .. } => "published",
        Published::Unchanged { .. } => "unchanged",
    };
    println!("{verb} {}@{} {}", a.name, a.version, built.manifest());
    println!("  source   {}", built.source);
    println!("  kernel   {}", built.kernel_release);
    println!("  modules  {}", built.modules.join(" "));
    println!("  rootfs   {} bytes", built.rootfs_bytes);
    println!(
        "  time     {}",
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(built.build_time)
        )
    );
    Ok(())
}

/// Resolves NAME@VERSION, NAME@sha256:…, NAME:CHANNEL to a published manifest.
async fn resolve(ctx: &Ctx, r: &str) -> anyhow::Result<(String, Digest, Manifest)> {
    let snap = ctx.inventory().snapshot().await?;
    let (name, version) = if let Some((n, d)) = r.split_once("@sha256:") {
        let d: Digest = format!("sha256:{d}").parse()?;
        let (n2, v) = snap
            .version_of_digest(&d)
            .filter(|(n2, _)| n2 == n)
            .ok_or_else(|| anyhow::anyhow!("no version of {n} has manifest {d}"))?;
        (n2.clone(), v.clone())
    } else if let Some((n, v)) = r.split_once('@') {
        (n.to_string(), v.to_string())
    } else if let Some((n, c)) = r.split_once(':') {
        let v = snap
            .channels
            .get(&(n.to_string(), c.to_string()))
            .ok_or_else(|| anyhow::anyhow!("channel {r} does not exist"))?;
        (n.to_string(), v.clone())
    } else {
        anyhow::bail!("expected NAME@VERSION, NAME@sha256:DIGEST or NAME:CHANNEL, got {r:?}");
    };
    let v = snap
        .versions
        .get(&(name.clone(), version.clone()))
        .ok_or_else(|| anyhow::anyhow!("{name}@{version} is not published"))?;
    let m = v
        .manifest
        .clone()
        .map_err(|e| anyhow::anyhow!("{name}@{version}: {e}"))?;
    Ok((format!("{name}@{version}"), v.manifest_digest, m))
}

pub(super) async fn diff(ctx: &Ctx, a: &str, b: &str, json: bool) -> anyhow::Result<()> {
    let (la, da, ma) = resolve(ctx, a).await?;
    let (lb, db, mb) = resolve(ctx, b).await?;
    let fields = diff::compare_manifests(&ma, &mb);
    let files = match (&ma.rootfs, &mb.rootfs) {
        (Some(ra), Some(rb)) if ra.digest == rb.digest => Some(diff::FileDiff::default()),
        (Some(ra), Some(rb)) => {
            let pa = ctx.blobs().path(&ra.digest);
            let pb = ctx.blobs().path(&rb.digest);
            Some(
                tokio::task::spawn_blocking(move || -> anyhow::Result<diff::FileDiff> {
                    Ok(diff::compare(
                        &diff::list_squashfs(&pa)?,
                        &diff::list_squashfs(&pb)?,
                    ))
                })
                .await??,
            )
        }
        _ => None,
    };
    if json {
        let v = serde_json::json!({
            "a": {"image": la, "manifest": da.to_string()},
            "b": {"image": lb, "manifest": db.to_string()},
            "fields": fields,
            "files": files,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("--- {la} {da}");
    println!("+++ {lb} {db}");
    for f in &fields {
        println!("{:<13} {} -> {}", f.field, f.a, f.b);
    }
    match files {
        None => println!("(no root image on one side: files not compared)"),
        Some(d) => {
            for p in &d.added {
                println!("+ {p}");
            }
            for p in &d.removed {
                println!("- {p}");
            }
            for c in &d.changed {
                println!("~ {} ({})", c.path, c.what.join("; "));
            }
            println!(
                "{} added, {} removed, {} changed",
                d.added.len(),
                d.removed.len(),
                d.changed.len()
            );
        }
    }
    Ok(())
}
