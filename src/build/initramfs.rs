//! The netboot initramfs of a built image, written in-process: a static busybox with its
//! applet links, tabula's `/init` and udhcpc hook (`images/initramfs/`, embedded), the
//! image's own kernel modules for the NIC set and the root image (decompressed, in
//! `/lib/modules/<name>.ko`, load order in `/lib/modules/load-order`), and
//! `/etc/tabula-initramfs` recording what went in. Same content as
//! `images/initramfs/build.sh` makes from the lab kernel.
//!
//! Reproducible: entries in path order, owner root, one mtime (the build time), gzip
//! with no name and mtime 0.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use sha2::Digest as _;

use super::BuildError;
use super::cpio;
use super::kernel::Kernel;

const INIT: &str = include_str!("../../images/initramfs/init");
const UDHCPC_SCRIPT: &str = include_str!("../../images/initramfs/udhcpc.script");

pub(super) struct Input<'a> {
    pub busybox: &'a Path,
    pub kernel: &'a Kernel,
    pub modules: &'a [String],
    pub mtime: u64,
}

enum Node {
    Dir,
    File(u32, Vec<u8>),
    Link(String),
    Char(u32, u32, u32),
}

/// Writes the gzip'd newc initramfs to `out`.
pub(super) fn write(input: &Input<'_>, out: &Path) -> Result<(), BuildError> {
    let bb = std::fs::read(input.busybox).map_err(|e| BuildError::Tool {
        tool: "busybox".into(),
        reason: format!(
            "{}: {e} (the initramfs needs a static busybox: Debian's busybox-static, or --busybox PATH)",
            input.busybox.display()
        ),
    })?;
    check_static(&bb, input.busybox)?;
    let applets = applets(input.busybox)?;

    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "etc",
        "newroot",
        "lib",
        "lib/modules",
        "bin",
    ] {
        tree.insert(d.into(), Node::Dir);
    }
    tree.insert("dev/console".into(), Node::Char(0o600, 5, 1));
    tree.insert("dev/null".into(), Node::Char(0o666, 1, 3));
    tree.insert("bin/busybox".into(), Node::File(0o755, bb.clone()));
    for a in &applets {
        let a = a.trim_start_matches('/');
        if a == "bin/busybox" || a.is_empty() || a.contains("..") {
            continue;
        }
        let mut parent = Path::new(a).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            tree.insert(p.to_string_lossy().into_owned(), Node::Dir);
            parent = p.parent();
        }
        tree.entry(a.to_string())
            .or_insert_with(|| Node::Link("/bin/busybox".into()));
    }
    tree.insert("init".into(), Node::File(0o755, INIT.as_bytes().to_vec()));
    tree.insert(
        "etc/udhcpc.script".into(),
        Node::File(0o755, UDHCPC_SCRIPT.as_bytes().to_vec()),
    );
    for m in input.modules {
        let bytes = input.kernel.module_bytes(m)?;
        tree.insert(format!("lib/modules/{m}.ko"), Node::File(0o644, bytes));
    }
    let mut order = input.modules.join("\n");
    order.push('\n');
    tree.insert(
        "lib/modules/load-order".into(),
        Node::File(0o644, order.into_bytes()),
    );
    let record = format!(
        "KERNEL_RELEASE={}\nBUSYBOX_SHA256={}\nMODULES='{}'\nBUILT_BY='tabula image build'\n",
        input.kernel.release,
        hex::encode(sha2::Sha256::digest(&bb)),
        input.modules.join(" ")
    );
    tree.insert(
        "etc/tabula-initramfs".into(),
        Node::File(0o644, record.into_bytes()),
    );

    let file = std::fs::File::create(out).map_err(|e| BuildError::io("cannot create", out, e))?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(std::io::BufWriter::new(file), flate2::Compression::best());
    let mut w = cpio::Writer::new(gz, input.mtime);
    let io = |e| BuildError::io("cannot write", out, e);
    for (path, node) in &tree {
        match node {
            Node::Dir => w.dir(path, 0o755),
            Node::File(mode, data) => w.file(path, *mode, data),
            Node::Link(t) => w.symlink(path, t),
            Node::Char(mode, major, minor) => w.device(path, cpio::S_IFCHR, *mode, *major, *minor),
        }
        .map_err(io)?;
    }
    let gz = w.finish().map_err(io)?;
    let mut buf = gz.finish().map_err(io)?;
    buf.flush().map_err(io)?;
    buf.get_ref().sync_all().map_err(io)?;
    Ok(())
}

/// Refuses a dynamically linked busybox (it would fail at boot with no libc there).
fn check_static(bytes: &[u8], path: &Path) -> Result<(), BuildError> {
    let fail = |why: &str| BuildError::Tool {
        tool: "busybox".into(),
        reason: format!(
            "{}: {why}; the initramfs needs a static busybox (Debian's busybox-static, or --busybox PATH)",
            path.display()
        ),
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(fail("not a 64-bit little-endian ELF executable"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap_or([0; 8]));
    let phoff = usize::try_from(phoff).map_err(|_| fail("bad program header offset"))?;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > bytes.len() {
            return Err(fail("truncated program headers"));
        }
        let p_type = u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
        if p_type == 3 {
            return Err(fail("it is dynamically linked (PT_INTERP)"));
        }
    }
    Ok(())
}

/// The applet paths busybox lists (`bin/sh`, `sbin/ip`, …).
fn applets(busybox: &Path) -> Result<Vec<String>, BuildError> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| BuildError::Tool {
            tool: "busybox".into(),
            reason: format!("{} --list-full: {e}", busybox.display()),
        })?;
    if !out.status.success() {
        return Err(BuildError::Tool {
            tool: "busybox".into(),
            reason: format!("{} --list-full failed", busybox.display()),
        });
    }
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    Ok(v)
}
