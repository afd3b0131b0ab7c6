//! Path policy tests: name checks without I/O, then real files, symlinks and the cache
//! in a temporary directory.

use std::os::unix::fs::symlink;

use super::*;
use crate::loader_files::LoaderFiles;

#[test]
fn plain_and_nested_names_are_relative() {
    assert_eq!(relative_path("ipxe.efi"), Ok(PathBuf::from("ipxe.efi")));
    assert_eq!(relative_path("/ipxe.efi"), Ok(PathBuf::from("ipxe.efi")));
    assert_eq!(
        relative_path("efi/x64/ipxe.efi"),
        Ok(PathBuf::from("efi/x64/ipxe.efi"))
    );
    assert_eq!(relative_path("a..b"), Ok(PathBuf::from("a..b")));
}

#[test]
fn escapes_and_tricks_are_refused_without_io() {
    for bad in [
        "",
        "/",
        "//etc/passwd",
        "../etc/passwd",
        "a/../../etc/passwd",
        "a/..",
        "./ipxe.efi",
        "a//b",
        "a/",
        "..\\..\\etc\\passwd",
        "a\\b",
        "ipxe.efi\0.txt",
    ] {
        assert!(relative_path(bad).is_err(), "{bad:?} was accepted");
    }
}

fn setup() -> (tempfile::TempDir, Root) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root_dir = tmp.path().join("root");
    std::fs::create_dir_all(root_dir.join("sub")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(root_dir.join("loader.efi"), b"loader").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root_dir.join("sub/inner"), b"inner").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("secret"), b"secret").unwrap_or_else(|e| panic!("{e}"));
    let root = Root::new(&root_dir).unwrap_or_else(|e| panic!("root: {e}"));
    (tmp, root)
}

fn bytes_of(c: Content) -> Bytes {
    match c {
        Content::Memory(b) => b,
        Content::File { .. } => panic!("expected an in-memory file"),
    }
}

#[test]
fn regular_files_are_served() {
    let (_tmp, root) = setup();
    let got = root.open("loader.efi").map(bytes_of);
    assert_eq!(got.ok().as_deref(), Some(&b"loader"[..]));
    let got = root.open("/sub/inner").map(bytes_of);
    assert_eq!(got.ok().as_deref(), Some(&b"inner"[..]));
}

#[test]
fn missing_directory_and_escape_are_refused() {
    let (_tmp, root) = setup();
    assert!(matches!(root.open("nope"), Err(TftpError::NotFound { .. })));
    assert!(matches!(
        root.open("loader.efi/x"),
        Err(TftpError::NotFound { .. })
    ));
    assert!(matches!(root.open("sub"), Err(TftpError::Forbidden { .. })));
    assert!(matches!(
        root.open("../secret"),
        Err(TftpError::Forbidden { .. })
    ));
    assert!(matches!(
        root.open("/etc/hostname"),
        Err(TftpError::NotFound { .. })
    ));
}

#[test]
fn symlinks_may_stay_inside_but_never_leave() {
    let (tmp, root) = setup();
    let dir = root.dir().to_path_buf();
    symlink("/etc/hostname", dir.join("host")).unwrap_or_else(|e| panic!("{e}"));
    symlink(tmp.path().join("secret"), dir.join("up")).unwrap_or_else(|e| panic!("{e}"));
    symlink(tmp.path(), dir.join("parent")).unwrap_or_else(|e| panic!("{e}"));
    symlink("sub/inner", dir.join("alias")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        root.open("host"),
        Err(TftpError::Forbidden { .. })
    ));
    assert!(matches!(root.open("up"), Err(TftpError::Forbidden { .. })));
    assert!(matches!(
        root.open("parent/secret"),
        Err(TftpError::Forbidden { .. })
    ));
    let got = root.open("alias").map(bytes_of);
    assert_eq!(got.ok().as_deref(), Some(&b"inner"[..]));
}

#[test]
fn cache_hits_share_bytes_and_replacement_is_seen() {
    let (_tmp, root) = setup();
    let a = root
        .open("loader.efi")
        .map(bytes_of)
        .unwrap_or_else(|e| panic!("{e}"));
    let b = root
        .open("loader.efi")
        .map(bytes_of)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "second open should come from the cache"
    );
    // Replace with same length: inode and ctime change, so the cache must not answer.
    let path = root.dir().join("loader.efi");
    let tmp_path = root.dir().join("loader.new");
    std::fs::write(&tmp_path, b"LOADER").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp_path, &path).unwrap_or_else(|e| panic!("{e}"));
    let c = root
        .open("loader.efi")
        .map(bytes_of)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&c[..], b"LOADER");
}

#[test]
fn large_files_are_not_loaded_whole() {
    let (_tmp, root) = setup();
    let path = root.dir().join("big.img");
    let f = File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(MAX_CACHED_FILE + 1)
        .unwrap_or_else(|e| panic!("{e}"));
    match root.open("big.img") {
        Ok(Content::File { len, .. }) => assert_eq!(len, MAX_CACHED_FILE + 1),
        other => panic!("expected a streamed file, got {other:?}"),
    }
}

#[test]
fn root_must_exist() {
    assert!(matches!(
        Root::new(Path::new("/nonexistent/tabula-tftp-root")),
        Err(TftpError::Root { .. })
    ));
}

#[test]
fn client_prefix_names_the_machine_and_is_stripped() {
    let (mac, rest) = client_prefix("52-54-00-12-34-56/undionly.kpxe");
    assert_eq!(
        mac.map(|m| m.to_string()).as_deref(),
        Some("52:54:00:12:34:56")
    );
    assert_eq!(rest, "undionly.kpxe");
    assert_eq!(client_prefix("/52-54-00-12-34-56/x").1, "x");
    for plain in [
        "undionly.kpxe",
        "52:54:00:12:34:56/x",
        "525400123456/x",
        "dir/x",
    ] {
        assert_eq!(client_prefix(plain), (None, plain));
    }
    // The prefix cannot smuggle an escape past the checks.
    assert!(relative_path(client_prefix("52-54-00-12-34-56/../etc/passwd").1).is_err());
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let (tmp, root) = setup();
    let fifo = tmp.path().join("root/pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    // Opening a FIFO for reading blocks until a writer comes; the check must not open it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = root.open("pipe").map(|_| ());
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("opening a FIFO blocked"));
    assert!(
        matches!(
            r,
            Err(TftpError::Forbidden {
                reason: "not a regular file",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn a_configured_loader_is_served_through_a_link_out_of_the_root_and_no_other_name_is() {
    let (tmp, root) = setup();
    let dir = root.dir().to_path_buf();
    // Debian's layout: the loader is a link to a file outside the root.
    std::fs::create_dir(tmp.path().join("elsewhere")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("elsewhere/ipxe.efi"), b"efi").unwrap_or_else(|e| panic!("{e}"));
    symlink("../elsewhere/ipxe.efi", dir.join("ipxe.efi")).unwrap_or_else(|e| panic!("{e}"));
    symlink(tmp.path().join("elsewhere/ipxe.efi"), dir.join("other.efi"))
        .unwrap_or_else(|e| panic!("{e}"));
    symlink("ipxe.efi", dir.join("alias.efi")).unwrap_or_else(|e| panic!("{e}"));
    symlink("/nonexistent/ipxe.efi", dir.join("gone.efi")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        root.open("ipxe.efi"),
        Err(TftpError::Forbidden { .. })
    ));
    let (files, _) = LoaderFiles::resolve_names(
        &dir,
        &[
            ("efi_x64", "ipxe.efi"),
            ("bios", "gone.efi"),
            ("efi_ia32", "secret"),
        ],
    );
    let root = root.with_loaders(files);
    for name in ["ipxe.efi", "/ipxe.efi", "52-54-00-12-34-56/ipxe.efi"] {
        let got = root.open(name).map(bytes_of);
        assert_eq!(got.ok().as_deref(), Some(&b"efi"[..]), "{name}");
    }
    // Other names reaching the same file, and escapes, keep the root's rules.
    for name in [
        "other.efi",
        "alias.efi",
        "../elsewhere/ipxe.efi",
        "sub/../ipxe.efi",
        "../secret",
    ] {
        assert!(
            matches!(root.open(name), Err(TftpError::Forbidden { .. })),
            "{name}"
        );
    }
    assert!(matches!(
        root.open("gone.efi"),
        Err(TftpError::NotFound { .. })
    ));
    // Files of the root that are not configured loaders are served as before.
    let got = root.open("loader.efi").map(bytes_of);
    assert_eq!(got.ok().as_deref(), Some(&b"loader"[..]));
}
