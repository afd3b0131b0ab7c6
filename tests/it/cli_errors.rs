//! Bad input gets a one-line error naming the problem and exit status 1, never a panic.

use crate::common::Env;

#[test]
fn bad_input_is_one_clear_line() {
    let env = Env::new();
    let k = env.file("k", 1, 1000);
    let k2 = env.file("k2", 2, 1000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();

    // Unknown config key, named with file, line and key path.
    let cfg = env.dir.path().join("bad.toml");
    std::fs::write(&cfg, "[tftp]\nmax_blksize = 1468\nblocksize = 9\n").unwrap();
    let e = env.fails(&["config", "check", cfg.to_str().unwrap()]);
    assert!(
        e.contains("bad.toml:3: key `tftp.blocksize`: unknown field `blocksize`"),
        "{e}"
    );
    let e = env.fails(&["--config", cfg.to_str().unwrap(), "image", "list"]);
    assert!(e.contains("unknown field `blocksize`"), "{e}");
    let e = env.fails(&["--config", "/nonexistent/tabula.toml", "image", "list"]);
    assert!(e.contains("/nonexistent/tabula.toml: cannot read"), "{e}");

    // Malformed MAC.
    let e = env.fails(&["explain", "52:54:00:zz:00:01"]);
    assert!(
        e.contains("malformed MAC address \"52:54:00:zz:00:01\""),
        "{e}"
    );
    let e = env.fails(&["machine", "add", "m", "--mac", "52:54:00"]);
    assert!(e.contains("malformed MAC"), "{e}");

    // Pin to a missing version / channel / machine.
    let e = env.fails(&["pin", "set", "default", "demo@1"]);
    assert!(e.contains("demo@1 is not published"), "{e}");
    let e = env.fails(&["pin", "set", "default", "demo:stable"]);
    assert!(e.contains("channel demo:stable does not exist"), "{e}");
    let e = env.fails(&["pin", "set", "nosuch", "local"]);
    assert!(e.contains("no machine named \"nosuch\""), "{e}");
    let e = env.fails(&["pin", "set", "default", "demo"]);
    assert!(e.contains("invalid image reference \"demo\""), "{e}");

    // Re-publish with other content is refused; the same content is a no-op.
    env.ok(&["image", "add", "demo", "--version", "1", "--kernel", &p(&k)]);
    let again = env.ok(&["image", "add", "demo", "--version", "1", "--kernel", &p(&k)]);
    assert!(again.starts_with("unchanged demo@1"), "{again}");
    let e = env.fails(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&k2),
    ]);
    assert!(
        e.contains("demo@1 is already published with other content"),
        "{e}"
    );
    let e = env.fails(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&k),
        "--cmdline",
        "x={nope}",
    ]);
    assert!(e.contains("unknown variable {nope}"), "{e}");
    let e = env.fails(&[
        "image",
        "add",
        "demo",
        "--version",
        "3",
        "--kernel",
        "/nonexistent/vmlinuz",
    ]);
    assert!(e.contains("/nonexistent/vmlinuz"), "{e}");
    let e = env.fails(&[
        "image",
        "add",
        "../evil",
        "--version",
        "1",
        "--kernel",
        &p(&k),
    ]);
    assert!(e.contains("invalid image name"), "{e}");

    // Removing a pinned version is refused; unpinned it goes.
    env.ok(&["pin", "set", "default", "demo@1"]);
    let e = env.fails(&["image", "rm", "demo@1"]);
    assert!(e.contains("demo@1 is pinned by default"), "{e}");
    env.ok(&["image", "tag", "demo@1", "stable"]);
    env.ok(&["pin", "set", "default", "local"]);
    let e = env.fails(&["image", "rm", "demo@1"]);
    assert!(e.contains("in use by channel(s) stable"), "{e}");
    assert!(env.ok(&["image", "list"]).contains("demo   1"));

    // Machines: duplicate MACs and bad labels.
    env.ok(&["machine", "add", "a", "--mac", "52:54:00:00:00:01"]);
    let e = env.fails(&["machine", "add", "b", "--mac", "52-54-00-00-00-01"]);
    assert!(
        e.contains("MAC 52:54:00:00:00:01 already belongs to machine \"a\""),
        "{e}"
    );
    let e = env.fails(&[
        "machine",
        "add",
        "c",
        "--mac",
        "52:54:00:00:00:03",
        "--label",
        "x=a b",
    ]);
    assert!(e.contains("invalid label value"), "{e}");
    let e = env.fails(&["pin", "set", "label:role", "local"]);
    assert!(e.contains("not key=value"), "{e}");
}

#[test]
fn help_lists_the_commands() {
    let env = Env::new();
    let h = env.ok(&["--help"]);
    for cmd in [
        "serve", "config", "image", "machine", "pin", "explain", "lab",
    ] {
        assert!(h.contains(&format!("  {cmd} ")), "{cmd} missing from:\n{h}");
    }
    let r = env.run(&["image", "frobnicate"]);
    assert_eq!(r.code, 2, "usage errors exit 2");
    for bad in [["--firmware", "efi"], ["--vms", "0"], ["--timeout", "soon"]] {
        let r = env.run(&["lab", bad[0], bad[1]]);
        assert_eq!(r.code, 2, "tabula lab {bad:?}: {}", r.stderr);
    }
    let e = env.fails(&["lab", "--image", "demo@"]);
    assert!(e.contains("invalid image reference"), "{e}");
}

#[test]
fn shipped_configs_check() {
    let env = Env::new();
    for f in [
        "config/tabula.toml",
        "config/lab.toml",
        "config/lab-proxy.toml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let out = env.ok(&["config", "check", path.to_str().unwrap()]);
        assert!(out.contains(": ok"), "{out}");
    }
}

#[test]
fn require_lease_match_outside_full_mode_is_one_clear_line() {
    let env = Env::new();
    let cfg = env.dir.path().join("lm.toml");
    for (dhcp, mode) in [("[dhcp]\nmode = \"proxy\"\n", "proxy"), ("", "off")] {
        std::fs::write(
            &cfg,
            format!("{dhcp}[http]\nlisten = \"127.0.0.1:0\"\nrequire_lease_match = true\n"),
        )
        .unwrap();
        let want = format!(
            "lm.toml: key `http.require_lease_match`: needs dhcp.mode = \"full\", but dhcp.mode is \"{mode}\""
        );
        let e = env.fails(&["config", "check", cfg.to_str().unwrap()]);
        assert!(
            e.contains(&want) && e.contains("leases no addresses"),
            "{e}"
        );
        // `serve` refuses it before binding anything.
        let e = env.fails(&["--config", cfg.to_str().unwrap(), "serve"]);
        assert!(e.contains(&want), "{e}");
    }
}

/// Issue 18: a valid config whose configured loader is a dangling link (Debian's
/// `ipxe.efi -> /boot/ipxe.efi` with `/boot/ipxe.efi` gone) still checks, but `config
/// check` names that loader on one warning line with the fix, instead of a bare "ok".
#[test]
fn config_check_names_a_dangling_configured_loader() {
    let env = Env::new();
    let root = env.dir.path().join("ipxe");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("undionly.kpxe"), b"bios").unwrap();
    std::os::unix::fs::symlink("/nonexistent/boot/ipxe.efi", root.join("ipxe.efi")).unwrap();
    let cfg = env.dir.path().join("dangling.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp.loaders]\nbios = \"undionly.kpxe\"\nefi_ia32 = \"undionly.kpxe\"\n\
             efi_x64 = \"ipxe.efi\"\nefi_arm64 = \"undionly.kpxe\"\n[tftp]\nroot = \"{}\"\n",
            root.display()
        ),
    )
    .unwrap();
    let r = env.run(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let warnings: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    let canonical = root.canonicalize().unwrap();
    assert!(
        warnings[0].starts_with(&format!(
            "warning: dhcp.loaders.efi_x64 = \"ipxe.efi\": {}/ipxe.efi is a symlink to \
             /nonexistent/boot/ipxe.efi, which does not exist; fix: ",
            canonical.display()
        )),
        "{}",
        warnings[0]
    );
    assert!(
        r.stdout.contains(": ok (") && r.stdout.contains("1 loader(s) cannot be served"),
        "{}",
        r.stdout
    );
    // With the file back, the check is quiet again.
    std::fs::remove_file(root.join("ipxe.efi")).unwrap();
    std::fs::write(root.join("ipxe.efi"), b"efi").unwrap();
    let r = env.run(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
}

/// Issue 18: with DHCP off no front end hands out the default loader names (Debian ships
/// no `ipxe-ia32.efi` or `ipxe-arm64.efi`), so `config check` is quiet about them; with
/// tabula's DHCP on, each one missing is a warning.
#[test]
fn config_check_warns_only_about_loaders_that_are_handed_out() {
    let env = Env::new();
    let root = env.dir.path().join("empty-root");
    std::fs::create_dir(&root).unwrap();
    let cfg = env.dir.path().join("off.toml");
    std::fs::write(&cfg, format!("[tftp]\nroot = \"{}\"\n", root.display())).unwrap();
    let r = env.run(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);

    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"proxy\"\ninterfaces = [\"eth1\"]\n[tftp]\nroot = \"{}\"\n",
            root.display()
        ),
    )
    .unwrap();
    let r = env.run(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let warned: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(warned.len(), 4, "{}", r.stderr);
    for key in ["bios", "efi_ia32", "efi_x64", "efi_arm64"] {
        assert!(
            r.stderr
                .contains(&format!("warning: dhcp.loaders.{key} = ")),
            "{}",
            r.stderr
        );
    }
}
