//! The image the lab boots: reused when it is already published in the lab's data dir,
//! otherwise, for the demo image, built and published by the repository's recipes
//! (`images/publish.sh`: Debian kernel, netboot initramfs, demo@1 and demo@2; for
//! `demo-arm64`, the same from Debian's arm64 packages, `TABULA_LAB_ARCH=arm64`), with
//! this very binary as the `tabula` that publishes. Other images must be published first.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{LabError, prereq};
use crate::inventory::PinRef;
use crate::store::Store;

/// Where the recipes are: `--images DIR`, else the source tree this binary was built
/// from, else `./images`.
pub fn recipes_dir(given: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
    if built.join("publish.sh").exists() {
        return built;
    }
    PathBuf::from("images")
}

/// What [`ensure`] needs to build.
#[derive(Debug)]
pub struct Recipes<'a> {
    pub dir: &'a Path,
    /// The `tabula` binary that publishes (this one).
    pub exe: &'a Path,
    pub data_dir: &'a Path,
    pub config: &'a Path,
    /// Build output (kernel, initramfs, squashfs images).
    pub out: &'a Path,
    /// The images' kernel command line template (`TABULA_LAB_CMDLINE`), when not the
    /// recipes' default.
    pub cmdline: Option<&'a str>,
}

/// Whether `reference` names a version the store has (channels and digests are checked
/// by `set_pin` later).
async fn published(store: &Store, reference: &PinRef) -> Result<bool, LabError> {
    let versions = store.versions().await?;
    Ok(match reference {
        PinRef::Version { image, version } => versions
            .iter()
            .any(|v| &v.name == image && &v.version == version),
        PinRef::Digest { image, .. } | PinRef::Channel { image, .. } => {
            versions.iter().any(|v| &v.name == image)
        }
        PinRef::Local | PinRef::None => true,
    })
}

/// Makes sure `reference` can be pinned: reuses what is published, builds the demo.
pub async fn ensure(
    store: &Store,
    reference: &PinRef,
    r: &Recipes<'_>,
    stop: &CancellationToken,
) -> Result<(), LabError> {
    if published(store, reference).await? {
        println!(
            "lab: {reference} is published in {}: reusing it",
            r.data_dir.display()
        );
        return Ok(());
    }
    let (PinRef::Version { image, .. }
    | PinRef::Channel { image, .. }
    | PinRef::Digest { image, .. }) = reference
    else {
        return Ok(());
    };
    let arch = match image.as_str() {
        "demo" => "amd64",
        super::arm64::DEMO => "arm64",
        _ => "",
    };
    if arch.is_empty() {
        return Err(LabError::Image(format!(
            "{reference} is not published in {} and only the demo image can be built here; \
             publish it with `tabula --data-dir {} image add …`",
            r.data_dir.display(),
            r.data_dir.display()
        )));
    }
    let script = r.dir.join("publish.sh");
    if !script.exists() {
        return Err(LabError::Image(format!(
            "{} not found: run tabula lab from the source tree, or pass --images DIR",
            script.display()
        )));
    }
    prereq::check(prereq::BUILD)?;
    let mut versions = vec!["1".to_string(), "2".to_string()];
    if let PinRef::Version { version, .. } = reference
        && !versions.contains(version)
    {
        versions.push(version.clone());
    }
    println!(
        "lab: building and publishing {image}@{} into {} ({})",
        versions.join(&format!(", {image}@")),
        r.data_dir.display(),
        script.display()
    );
    let mut cmd = Command::new("bash");
    if let Some(c) = r.cmdline {
        cmd.env("TABULA_LAB_CMDLINE", c);
    }
    let mut child = cmd
        .arg(&script)
        .env("TABULA", r.exe)
        .env("TABULA_DATA_DIR", r.data_dir)
        .env("TABULA_CONFIG", r.config)
        .env("TABULA_LAB_OUT", r.out)
        .env("TABULA_LAB_DEMO_VERSIONS", versions.join(" "))
        .env("TABULA_LAB_ARCH", arch)
        .env("TABULA_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LabError::Command {
            command: format!("bash {}", script.display()),
            detail: e.to_string(),
        })?;
    let status = tokio::select! {
        s = child.wait() => s.map_err(|e| LabError::Command {
            command: format!("bash {}", script.display()),
            detail: e.to_string(),
        })?,
        _ = stop.cancelled() => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(LabError::Interrupted);
        }
    };
    if !status.success() {
        return Err(LabError::Command {
            command: format!("bash {}", script.display()),
            detail: format!("{status} (its log is above)"),
        });
    }
    if !published(store, reference).await? {
        return Err(LabError::Image(format!(
            "{reference} is still not published after {}",
            script.display()
        )));
    }
    Ok(())
}
