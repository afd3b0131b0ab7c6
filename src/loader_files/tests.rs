//! Resolution of configured loader names on real files, links and FIFOs in a temporary
//! directory laid out as Debian does (`root/ipxe.efi -> ../elsewhere/ipxe.efi`).

use std::os::unix::fs::symlink;

use super::*;

/// `<tmp>/root` (the TFTP root) and `<tmp>/elsewhere` (outside it).
fn layout() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(root.join("undionly.kpxe"), b"bios").unwrap();
    std::fs::write(elsewhere.join("ipxe.efi"), b"efi").unwrap();
    symlink("../elsewhere/ipxe.efi", root.join("ipxe.efi")).unwrap();
    (tmp, root)
}

fn one(root: &Path, name: &str) -> (LoaderFiles, LoaderCheck) {
    let (files, mut checks) = LoaderFiles::resolve_names(root, &[("efi_x64", name)]);
    assert_eq!(checks.len(), 1);
    (files, checks.remove(0))
}

#[test]
fn a_plain_file_and_a_link_out_of_the_root_both_resolve() {
    let (tmp, root) = layout();
    let (files, c) = one(&root, "undionly.kpxe");
    let inside = root.canonicalize().unwrap().join("undionly.kpxe");
    assert_eq!(
        c.resolution,
        Resolution::File {
            path: inside.clone(),
            linked: false
        }
    );
    assert!(c.servable() && c.problem().is_none());
    assert_eq!(files.file_of(Path::new("undionly.kpxe")), Some(&*inside));

    let (files, c) = one(&root, "ipxe.efi");
    let outside = tmp
        .path()
        .canonicalize()
        .unwrap()
        .join("elsewhere/ipxe.efi");
    assert_eq!(
        c.resolution,
        Resolution::File {
            path: outside.clone(),
            linked: true
        }
    );
    assert_eq!(files.file_of(Path::new("ipxe.efi")), Some(&*outside));
}

#[test]
fn only_the_configured_name_is_remembered() {
    let (tmp, root) = layout();
    // Two more names for the same file outside: a second link, and a link to the link.
    symlink(
        tmp.path().join("elsewhere/ipxe.efi"),
        root.join("other.efi"),
    )
    .unwrap();
    symlink("ipxe.efi", root.join("alias.efi")).unwrap();
    let (files, checks) = LoaderFiles::resolve_names(&root, &[("efi_x64", "ipxe.efi")]);
    assert!(checks[0].servable());
    assert!(files.file_of(Path::new("ipxe.efi")).is_some());
    for other in [
        "other.efi",
        "alias.efi",
        "undionly.kpxe",
        "elsewhere/ipxe.efi",
    ] {
        assert_eq!(files.file_of(Path::new(other)), None, "{other}");
    }
    assert_eq!(LoaderFiles::default().file_of(Path::new("ipxe.efi")), None);
}

#[test]
fn a_dangling_link_is_named_with_its_target_and_a_fix() {
    let (_tmp, root) = layout();
    symlink("/nonexistent/boot/ipxe.efi", root.join("gone.efi")).unwrap();
    let (files, c) = one(&root, "gone.efi");
    assert_eq!(
        c.resolution,
        Resolution::Dangling {
            link: root.canonicalize().unwrap().join("gone.efi"),
            target: PathBuf::from("/nonexistent/boot/ipxe.efi"),
        }
    );
    assert!(!c.servable());
    assert_eq!(files.file_of(Path::new("gone.efi")), None);
    let line = c.problem().unwrap();
    assert!(
        line.starts_with("dhcp.loaders.efi_x64 = \"gone.efi\": ")
            && line.contains(
                "gone.efi is a symlink to /nonexistent/boot/ipxe.efi, which does not exist; fix: "
            ),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn a_link_to_a_fifo_or_a_directory_is_not_regular_and_never_blocks() {
    let (tmp, root) = layout();
    let fifo = tmp.path().join("elsewhere/fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    symlink(&fifo, root.join("fifo.efi")).unwrap();
    symlink(tmp.path().join("elsewhere"), root.join("dir.efi")).unwrap();
    let (files, checks) =
        LoaderFiles::resolve_names(&root, &[("bios", "fifo.efi"), ("efi_x64", "dir.efi")]);
    let kinds: Vec<_> = checks
        .iter()
        .map(|c| match &c.resolution {
            Resolution::NotRegular { kind, .. } => *kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["a FIFO", "a directory"]);
    assert!(files.file_of(Path::new("fifo.efi")).is_none());
    let line = checks[0].problem().unwrap();
    assert!(
        line.contains("which is a FIFO, not a regular file; fix: "),
        "{line}"
    );
}

#[test]
fn missing_files_and_bad_names() {
    let (_tmp, root) = layout();
    let (_, c) = one(&root, "ipxe-arm64.efi");
    assert_eq!(c.resolution, Resolution::Missing);
    let line = c.problem().unwrap();
    assert!(
        line.contains("ipxe-arm64.efi does not exist; fix: install"),
        "{line}"
    );
    for bad in [
        "../elsewhere/ipxe.efi",
        "a/../../x",
        "/etc/passwd",
        "./ipxe.efi",
        "",
        "a\0b",
    ] {
        let (files, c) = one(&root, bad);
        assert_eq!(c.resolution, Resolution::BadName, "{bad:?}");
        assert!(files.file_of(Path::new("ipxe.efi")).is_none());
    }
    // A root that does not exist: every loader is missing, nothing panics.
    let (_, c) = one(&root.join("nosuch"), "undionly.kpxe");
    assert_eq!(c.resolution, Resolution::Missing);
}

#[test]
fn nested_names_and_the_default_loaders() {
    let (_tmp, root) = layout();
    std::fs::create_dir(root.join("efi")).unwrap();
    symlink("../ipxe.efi", root.join("efi/x64.efi")).unwrap();
    let (files, c) = one(&root, "efi/x64.efi");
    assert!(c.servable(), "{c:?}");
    assert!(files.file_of(Path::new("efi/x64.efi")).is_some());
    let loaders = Loaders {
        bios: "undionly.kpxe".into(),
        efi_ia32: "ipxe-ia32.efi".into(),
        efi_x64: "ipxe.efi".into(),
        efi_arm64: "ipxe.efi".into(),
        ..Loaders::default()
    };
    let (files, checks) = LoaderFiles::resolve(&root, &loaders);
    let keys: Vec<_> = checks.iter().map(|c| (c.key, c.servable())).collect();
    assert_eq!(
        keys,
        [
            ("bios", true),
            ("efi_ia32", false),
            ("efi_x64", true),
            ("efi_arm64", true)
        ]
    );
    assert!(files.file_of(Path::new("ipxe.efi")).is_some());
}

/// Issue 18: which unservable loaders are worth a warning.
#[test]
fn only_loaders_a_front_end_hands_out_count() {
    use crate::config::{Config, DhcpMode};
    for mode in [DhcpMode::Full, DhcpMode::Proxy] {
        assert!(handed_out(mode, "efi_ia32", "ipxe-ia32.efi"));
        assert!(handed_out(mode, "efi_arm64", "ipxe-arm64.efi"));
    }
    assert!(!handed_out(DhcpMode::Off, "efi_ia32", "ipxe-ia32.efi"));
    assert!(!handed_out(DhcpMode::Off, "efi_arm64", "ipxe-arm64.efi"));
    assert!(!handed_out(DhcpMode::Off, "bios", "undionly.kpxe"));
    assert!(
        handed_out(DhcpMode::Off, "efi_x64", "ipxe.efi"),
        "named on purpose"
    );
    assert!(handed_out(DhcpMode::Off, "efi_arm64", "snponly.efi"));
    // The defaults the config fills in are the ones `handed_out` knows.
    let cfg = Config::parse("", "t.toml", Some(Path::new("/var/lib/tabula"))).unwrap();
    let l = &cfg.dhcp.loaders;
    let filled = [&l.bios, &l.efi_ia32, &l.efi_x64, &l.efi_arm64];
    for ((key, name), got) in Loaders::DEFAULTS.iter().zip(filled) {
        assert_eq!(name, got, "{key}");
    }
}
