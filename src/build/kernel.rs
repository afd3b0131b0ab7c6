//! The image's own kernel: `/boot/vmlinuz-<release>` (the newest release when there are
//! several, or the one `--kernel` names) and `lib/modules/<release>/`, whose
//! `modules.dep` (written by depmod) says which modules each module needs.
//!
//! [`parse_modules_dep`] and [`closure`] are pure: a module closure is the wanted
//! modules and everything they depend on, dependencies first, siblings in name order,
//! built-in modules skipped, so the same `modules.dep` always gives the same load order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::BuildError;
use super::layer;

/// The kernel found in a staged root.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    pub release: String,
    /// The kernel image (in the staged root).
    pub image: PathBuf,
    /// `lib/modules/<release>` (in the staged root).
    pub modules_dir: PathBuf,
}

/// One line of `modules.dep`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModuleEntry {
    /// Path relative to the modules directory (`kernel/drivers/…/x.ko[.xz|.zst|.gz]`).
    pub path: String,
    pub deps: Vec<String>,
}

/// A module name as the kernel knows it: the file name without `.ko…`, `-` as `_`.
pub(crate) fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Parses `modules.dep` (`path: dep-path dep-path …`).
pub(crate) fn parse_modules_dep(text: &str) -> BTreeMap<String, ModuleEntry> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() {
            continue;
        }
        out.insert(
            module_name(path),
            ModuleEntry {
                path: path.to_string(),
                deps: deps.split_whitespace().map(module_name).collect(),
            },
        );
    }
    out
}

/// The names in `modules.builtin` (one path per line).
pub(crate) fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

/// The load order for `wanted` (name, what it is for). Err: (module, purpose) missing.
pub(crate) fn closure(
    dep: &BTreeMap<String, ModuleEntry>,
    builtin: &BTreeSet<String>,
    wanted: &[(String, &str)],
) -> Result<Vec<String>, (String, String)> {
    fn place(
        m: &str,
        purpose: &str,
        dep: &BTreeMap<String, ModuleEntry>,
        builtin: &BTreeSet<String>,
        placed: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), (String, String)> {
        if placed.contains(m) || depth > 64 {
            return Ok(());
        }
        placed.insert(m.to_string());
        let Some(e) = dep.get(m) else {
            return if builtin.contains(m) {
                Ok(())
            } else {
                Err((m.to_string(), purpose.to_string()))
            };
        };
        let mut deps = e.deps.clone();
        deps.sort();
        for d in deps {
            place(&d, purpose, dep, builtin, placed, order, depth + 1)?;
        }
        order.push(m.to_string());
        Ok(())
    }
    let mut placed = BTreeSet::new();
    let mut order = Vec::new();
    for (m, purpose) in wanted {
        let m = m.replace('-', "_");
        place(&m, purpose, dep, builtin, &mut placed, &mut order, 0)?;
    }
    Ok(order)
}

/// Orders kernel releases by their numbers (`6.1.0-28` > `6.1.0-9`).
fn release_key(r: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in r.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(0), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(0), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

/// Finds the kernel in a staged root. `choice`: a release or a path inside the image.
pub(crate) fn find(root: &Path, choice: Option<&str>) -> Result<Kernel, BuildError> {
    let boot = layer::resolve(root, Path::new("boot"), false, "the image")
        .map_err(|_| BuildError::NoKernel("the image has no /boot directory".into()))?;
    let mut found: Vec<(String, PathBuf)> = layer::read_dir_sorted(&boot)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| {
            let n = n.to_str()?.to_string();
            let release = n.strip_prefix("vmlinuz-")?.to_string();
            let p = boot.join(&n);
            p.is_file().then_some((release, p))
        })
        .collect();
    let (release, image) = match choice {
        Some(c) if c.contains('/') => {
            let rel = layer::clean(Path::new(c), "--kernel")?
                .ok_or_else(|| BuildError::NoKernel(format!("--kernel {c:?} names no file")))?;
            let parent = layer::resolve(root, rel.parent().unwrap_or(Path::new("")), false, c)
                .map_err(|_| BuildError::NoKernel(format!("{c} is not in the image")))?;
            let p = parent.join(rel.file_name().unwrap_or_default());
            if !p.is_file() {
                return Err(BuildError::NoKernel(format!("{c} is not in the image")));
            }
            let release = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .ok_or_else(|| {
                    BuildError::NoKernel(format!(
                        "--kernel {c}: the file name must be vmlinuz-<release> (the release names lib/modules/<release>)"
                    ))
                })?
                .to_string();
            (release, p)
        }
        Some(c) => found.into_iter().find(|(r, _)| r == c).ok_or_else(|| {
            BuildError::NoKernel(format!(
                "/boot/vmlinuz-{c} (named by --kernel) is not in the image"
            ))
        })?,
        None => {
            found.sort_by_key(|(r, _)| release_key(r));
            found.pop().ok_or_else(|| {
                BuildError::NoKernel(
                    "/boot has no vmlinuz-<release> (install a kernel package in the image, or name one with --kernel)"
                        .into(),
                )
            })?
        }
    };
    let mut modules_dir = None;
    for base in ["lib/modules", "usr/lib/modules"] {
        if let Ok(d) = layer::resolve(root, &Path::new(base).join(&release), false, "the image")
            && d.join("modules.dep").is_file()
        {
            modules_dir = Some(d);
            break;
        }
    }
    let modules_dir = modules_dir.ok_or_else(|| {
        BuildError::NoKernel(format!(
            "kernel {release} has no /lib/modules/{release}/modules.dep in the image (run `depmod {release}` in it)"
        ))
    })?;
    Ok(Kernel {
        release,
        image,
        modules_dir,
    })
}

impl Kernel {
    /// The load order of `wanted` and their dependencies, from this kernel's modules.dep.
    pub(crate) fn closure(&self, wanted: &[(String, &str)]) -> Result<Vec<String>, BuildError> {
        let dep_file = self.modules_dir.join("modules.dep");
        let text = std::fs::read_to_string(&dep_file)
            .map_err(|e| BuildError::io("cannot read", &dep_file, e))?;
        let builtin = std::fs::read_to_string(self.modules_dir.join("modules.builtin"))
            .map(|t| parse_builtin(&t))
            .unwrap_or_default();
        closure(&parse_modules_dep(&text), &builtin, wanted).map_err(|(module, purpose)| {
            BuildError::MissingModule {
                module,
                purpose,
                release: self.release.clone(),
                dep_file: format!("/lib/modules/{}/modules.dep", self.release),
            }
        })
    }

    /// A module's bytes, decompressed (`.ko.xz`, `.ko.zst`, `.ko.gz`) for busybox insmod.
    pub(crate) fn module_bytes(&self, name: &str) -> Result<Vec<u8>, BuildError> {
        let dep_file = self.modules_dir.join("modules.dep");
        let text = std::fs::read_to_string(&dep_file)
            .map_err(|e| BuildError::io("cannot read", &dep_file, e))?;
        let dep = parse_modules_dep(&text);
        let e = dep.get(name).ok_or_else(|| BuildError::MissingModule {
            module: name.to_string(),
            purpose: "the initramfs".into(),
            release: self.release.clone(),
            dep_file: dep_file.display().to_string(),
        })?;
        let rel = layer::clean(Path::new(&e.path), "modules.dep")?.unwrap_or_default();
        let parent = layer::resolve(
            &self.modules_dir,
            rel.parent().unwrap_or(Path::new("")),
            false,
            "modules.dep",
        )?;
        let p = parent.join(rel.file_name().unwrap_or_default());
        let f = std::fs::File::open(&p).map_err(|err| BuildError::MissingModule {
            module: format!("{name} ({}: {err})", e.path),
            purpose: "the initramfs".into(),
            release: self.release.clone(),
            dep_file: dep_file.display().to_string(),
        })?;
        let mut out = Vec::new();
        std::io::copy(&mut super::source::decompressed(f, &p)?, &mut out)
            .map_err(|err| BuildError::io("cannot read module", &p, err))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/block/loop.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
";

    #[test]
    fn closure_puts_dependencies_first_in_a_stable_order() {
        let dep = parse_modules_dep(DEP);
        assert_eq!(dep["virtio_net"].deps, vec!["net_failover", "failover"]);
        let builtin = parse_builtin("kernel/fs/squashfs/squashfs.ko\n");
        let want: Vec<(String, &str)> = ["loop", "squashfs", "overlay", "virtio-pci", "virtio_net"]
            .iter()
            .map(|m| (m.to_string(), "t"))
            .collect();
        let order = closure(&dep, &builtin, &want).unwrap();
        assert_eq!(
            order,
            [
                "loop",
                "overlay",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        let missing = closure(&dep, &builtin, &[("r8169".into(), "the NIC set")]);
        assert_eq!(missing, Err(("r8169".into(), "the NIC set".into())));
    }

    #[test]
    fn newest_release_wins() {
        let mut v = ["6.1.0-9-amd64", "6.1.0-28-amd64", "5.10.0-1-amd64"];
        v.sort_by_key(|r| release_key(r));
        assert_eq!(v[2], "6.1.0-28-amd64");
        assert_eq!(module_name("kernel/x/snd-hda.ko.zst"), "snd_hda");
    }
}
