//! `tabula image build` from a directory, tarballs (gzip, zstd), an OCI image layout with
//! a whiteout and an opaque-directory layer, and a `docker save` archive, all made here
//! from a small tree around Debian's busybox-static binary and a stand-in kernel (these
//! images are checked, not booted: `build_debian.rs` boots a real one). Contents are
//! read back with `unsquashfs` and `tabula image diff`; the same input builds to the
//! same digests; bad input fails with an error that names the problem.
//!
//! Needs root (ownership is kept, device nodes, a small tmpfs), busybox-static and
//! squashfs-tools (tests/run.sh installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use crate::common::Env;

const RELEASE: &str = "6.1.0-77-amd64";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(x: &Path) -> String {
    x.to_str().unwrap().to_string()
}

/// A root tree: busybox, a stand-in kernel with modules.dep, a setuid file owned by
/// 1000:1000, a device node, a hard link, directories for the whiteout layer to act on.
fn make_tree(dir: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let f = dir.join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        dir.join("bin/busybox")
    })
    .unwrap();
    std::fs::create_dir_all(dir.join("sbin")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", dir.join("sbin/init")).unwrap();
    w(&format!("boot/vmlinuz-{RELEASE}"), b"not really a kernel");
    let m = format!("lib/modules/{RELEASE}");
    let dep = "kernel/drivers/block/loop.ko:\n\
        kernel/fs/overlayfs/overlay.ko:\n\
        kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
        kernel/drivers/virtio/virtio_ring.ko:\n\
        kernel/drivers/virtio/virtio.ko:\n\
        kernel/drivers/net/virtio_net.ko.gz: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
        kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
        kernel/net/core/failover.ko:\n\
        kernel/drivers/net/ethernet/intel/e1000/e1000.ko:\n";
    w(&format!("{m}/modules.dep"), dep.as_bytes());
    w(
        &format!("{m}/modules.builtin"),
        b"kernel/fs/squashfs/squashfs.ko\n",
    );
    for line in dep.lines() {
        let path = line.split(':').next().unwrap();
        let body = format!("module {path}");
        if path.ends_with(".gz") {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, body.as_bytes()).unwrap();
            w(&format!("{m}/{path}"), &e.finish().unwrap());
        } else {
            w(&format!("{m}/{path}"), body.as_bytes());
        }
    }
    w("etc/hostname", b"tree\n");
    w("opt/old", b"old\n");
    w("usr/bin/tool", b"#!/bin/sh\necho tool\n");
    sh(&format!(
        "cd {d} && chown 1000:1000 usr/bin/tool && chmod 4755 usr/bin/tool && \
         ln usr/bin/tool usr/bin/tool-link && mkdir -p dev && mknod dev/null c 1 3 && \
         chmod 0755 . && find . -exec touch -h -d @1700000000 {{}} +",
        d = p(dir)
    ));
}

fn build(env: &Env, name: &str, version: &str, from: &Path, extra: &[&str]) -> String {
    let out = env
        .command()
        .args([
            "image",
            "build",
            name,
            "--version",
            version,
            "--from",
            &p(from),
        ])
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build {name}@{version}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.starts_with(&format!("published {name}@{version} sha256:")),
        "{out}"
    );
    out.split_whitespace().nth(2).unwrap().to_string()
}

fn manifest(env: &Env, r: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["image", "show", r, "--json"])).unwrap()
}

fn blob(env: &Env, d: &serde_json::Value) -> PathBuf {
    env.data()
        .join("blobs/sha256")
        .join(&d["digest"].as_str().unwrap()[7..])
}

/// `unsquashfs -lln` of a version's root: "mode owner path" per line.
fn listing(env: &Env, r: &str) -> String {
    let m = manifest(env, r);
    let out = sh(&format!("unsquashfs -lln {}", p(&blob(env, &m["rootfs"]))));
    out.lines()
        .filter(|l| l.contains("squashfs-root"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = l[l.find("squashfs-root").unwrap() + 13..].to_string();
            format!("{} {} {}", f[0], f[1], path)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn release_of(env: &Env, r: &str) -> String {
    let m = manifest(env, r);
    sh(&format!(
        "unsquashfs -cat {} etc/tabula-release",
        p(&blob(env, &m["rootfs"]))
    ))
}

/// A tar of a tree (GNU tar, numeric owners), compressed by `compress` (`| gzip -n`…).
fn tarball(src: &Path, out: &Path, compress: &str) {
    sh(&format!(
        "tar -C {} --numeric-owner --sort=name -cf - . {compress} > {}",
        p(src),
        p(out)
    ));
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Writes an OCI image layout: `layers` are (media type, bytes), bottom first.
fn oci_layout(dir: &Path, layers: &[(&str, Vec<u8>)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = put(config);
    let ls: Vec<serde_json::Value> = layers
        .iter()
        .map(|(mt, b)| serde_json::json!({"mediaType": mt, "digest": put(b), "size": b.len()}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": ls,
    }))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()}],
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The upper layer: deletes etc/hostname, makes opt/ opaque (old goes, new comes), adds a file.
fn whiteout_layer(work: &Path) -> Vec<u8> {
    let l = work.join("layer2");
    std::fs::create_dir_all(l.join("etc")).unwrap();
    std::fs::create_dir_all(l.join("opt")).unwrap();
    std::fs::create_dir_all(l.join("usr/share")).unwrap();
    std::fs::write(l.join("etc/.wh.hostname"), b"").unwrap();
    std::fs::write(l.join("opt/.wh..wh..opq"), b"").unwrap();
    std::fs::write(l.join("opt/new"), b"new\n").unwrap();
    std::fs::write(l.join("usr/share/added"), b"added\n").unwrap();
    sh(&format!(
        "cd {} && find . -exec touch -h -d @1700000000 {{}} +",
        p(&l)
    ));
    let out = work.join("layer2.tar.gz");
    tarball(&l, &out, "| gzip -n");
    std::fs::read(out).unwrap()
}

fn diff_lines(env: &Env, a: &str, b: &str) -> Vec<String> {
    env.ok(&["image", "diff", a, b])
        .lines()
        .filter(|l| {
            l.starts_with(['+', '-', '~']) && !l.starts_with("+++") && !l.starts_with("---")
        })
        .map(String::from)
        .collect()
}

#[test]
fn builds_from_directory_tarballs_oci_layout_and_docker_archive() {
    crate::lab_direct::require_lab();
    let env = Env::new();
    let work = env.dir.path();
    let tree = work.join("tree");
    make_tree(&tree);

    // 1. A directory: the image's own kernel, modules from its modules.dep, owners kept.
    let m1 = build(&env, "img", "1", &tree, &[]);
    let m = manifest(&env, "img@1");
    assert_eq!(m["kernel"]["name"], format!("vmlinuz-{RELEASE}"));
    assert_eq!(
        std::fs::read(blob(&env, &m["kernel"])).unwrap(),
        b"not really a kernel"
    );
    assert_eq!(
        m["created"], "2023-11-14T22:13:20Z",
        "build time = newest mtime"
    );
    assert_eq!(m["annotations"]["tabula.build.kernel"], RELEASE);
    let initrd = p(&blob(&env, &m["initrds"][0]));
    let files = sh(&format!("zcat {initrd} | cpio -it --quiet"));
    for f in [
        "init",
        "bin/busybox",
        "etc/udhcpc.script",
        "lib/modules/virtio_net.ko",
        "dev/console",
    ] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} not in the initramfs:\n{files}"
        );
    }
    let order = sh(&format!(
        "zcat {initrd} | cpio -i --quiet --to-stdout lib/modules/load-order"
    ));
    assert_eq!(
        order.split_whitespace().collect::<Vec<_>>(),
        [
            "loop",
            "overlay",
            "virtio",
            "virtio_ring",
            "virtio_pci",
            "failover",
            "net_failover",
            "virtio_net",
            "e1000"
        ],
        "squashfs is built in: not loaded"
    );
    // The .ko.gz went in decompressed.
    let vnet = sh(&format!(
        "zcat {initrd} | cpio -i --quiet --to-stdout lib/modules/virtio_net.ko"
    ));
    assert_eq!(vnet, "module kernel/drivers/net/virtio_net.ko.gz");
    let l1 = listing(&env, "img@1");
    for want in [
        "-rwsr-xr-x 1000/1000 /usr/bin/tool",
        "-rwsr-xr-x 1000/1000 /usr/bin/tool-link",
        "crw-r--r-- 0/0 /dev/null",
        "lrwxrwxrwx 0/0 /sbin/init -> /bin/busybox",
        "-rw-r--r-- 0/0 /etc/tabula-release",
        "-rw-r--r-- 0/0 /opt/old",
    ] {
        assert!(l1.lines().any(|l| l == want), "{want:?} not in:\n{l1}");
    }
    let rel = release_of(&env, "img@1");
    assert!(
        rel.contains("NAME='img'\nVERSION='1'\n")
            && rel.contains(&format!("SOURCE='dir:{}'", p(&tree)))
            && rel.contains("BUILD_TIME='2023-11-14T22:13:20Z'")
            && rel.contains(&format!("KERNEL='{RELEASE}'")),
        "{rel}"
    );
    // The source directory is untouched.
    assert!(!tree.join("etc/tabula-release").exists());

    // 2. The same tree as .tar.gz and .tar.zst: the same files; only the stamp differs.
    let tgz = work.join("root.tar.gz");
    tarball(&tree, &tgz, "| gzip -n");
    build(&env, "img", "2", &tgz, &[]);
    let d12 = diff_lines(&env, "img@1", "img@2");
    assert_eq!(d12.len(), 1, "{d12:?}");
    assert!(
        d12[0].starts_with("~ /etc/tabula-release (content"),
        "{d12:?}"
    );
    let tzst = work.join("root.tar.zst");
    tarball(&tree, &tzst, "| zstd -q");
    build(&env, "img", "3", &tzst, &[]);
    let d13 = diff_lines(&env, "img@1", "img@3");
    assert_eq!(d13.len(), 1, "{d13:?}");
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&tzst).unwrap()));
    assert!(
        release_of(&env, "img@3").contains(&format!("SOURCE='tar:root.tar.zst@sha256:{digest}'"))
    );

    // 3. An OCI layout: the tree as a gzip layer, then whiteouts and an opaque directory.
    let plain = work.join("layer1.tar");
    tarball(&tree, &plain, "");
    let oci = work.join("oci");
    oci_layout(
        &oci,
        &[
            (
                "application/vnd.oci.image.layer.v1.tar",
                std::fs::read(&plain).unwrap(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                whiteout_layer(work),
            ),
        ],
    );
    build(&env, "img", "4", &oci, &[]);
    let mut d14 = diff_lines(&env, "img@1", "img@4");
    d14.retain(|l| !l.starts_with("~ /etc/tabula-release"));
    assert_eq!(
        d14,
        [
            "+ /opt/new",
            "+ /usr/share",
            "+ /usr/share/added",
            "- /etc/hostname",
            "- /opt/old"
        ],
        "whiteout and opaque layer"
    );
    let l4 = listing(&env, "img@4");
    assert!(!l4.contains(".wh."), "{l4}");
    assert!(
        l4.lines()
            .any(|l| l == "-rwsr-xr-x 1000/1000 /usr/bin/tool"),
        "{l4}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "diff", "img@1", "img@4", "--json"])).unwrap();
    assert_eq!(json["files"]["removed"][0], "/etc/hostname", "{json:#}");
    assert!(
        json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "rootfs")
    );

    // 4. The same image as an OCI archive and a legacy `docker save` archive.
    let oar = work.join("image-oci.tar");
    sh(&format!(
        "tar -C {} -cf {} oci-layout index.json blobs",
        p(&oci),
        p(&oar)
    ));
    build(&env, "img", "5", &oar, &[]);
    assert_eq!(diff_lines(&env, "img@4", "img@5").len(), 1);
    let docker = work.join("docker");
    let id = "a".repeat(64);
    std::fs::create_dir_all(docker.join(&id)).unwrap();
    std::fs::copy(&plain, docker.join(&id).join("layer.tar")).unwrap();
    std::fs::create_dir_all(docker.join("b".repeat(64))).unwrap();
    std::fs::write(docker.join("b".repeat(64)).join("layer.tar"), {
        let gz = whiteout_layer(&work.join("again"));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        out
    })
    .unwrap();
    std::fs::write(docker.join("c".repeat(64) + ".json"), b"{}").unwrap();
    std::fs::write(
        docker.join("manifest.json"),
        format!(
            r#"[{{"Config":"{c}.json","RepoTags":["x:1"],"Layers":["{id}/layer.tar","{b}/layer.tar"]}}]"#,
            c = "c".repeat(64),
            b = "b".repeat(64)
        ),
    )
    .unwrap();
    let dar = work.join("docker-save.tar");
    sh(&format!(
        "tar -C {} -cf {} {b} {id} {c}.json manifest.json",
        p(&docker),
        p(&dar),
        b = "b".repeat(64),
        c = "c".repeat(64)
    ));
    build(&env, "img", "6", &dar, &[]);
    assert_eq!(diff_lines(&env, "img@4", "img@6").len(), 1);
    assert!(release_of(&env, "img@6").contains("SOURCE='docker-archive:docker-save.tar@sha256:"));

    // 5. Reproducible: the same input in another data directory gives the same digests,
    //    here with SOURCE_DATE_EPOCH; --build-time wins over it.
    let again = Env::new();
    let a1 = build(&again, "img", "1", &tree, &[]);
    assert_eq!(a1, m1, "two builds of the same directory differ");
    let e1 = Env::new();
    let e2 = Env::new();
    let with_epoch = |e: &Env| {
        let out = e
            .command()
            .args([
                "image",
                "build",
                "img",
                "--version",
                "9",
                "--from",
                &p(&oci),
            ])
            .env("SOURCE_DATE_EPOCH", "86400")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(with_epoch(&e1), with_epoch(&e2));
    assert_eq!(manifest(&e1, "img@9")["created"], "1970-01-02T00:00:00Z");
    build(
        &e1,
        "img",
        "10",
        &oci,
        &["--build-time", "1970-01-03T00:00:00Z"],
    );
    assert_eq!(manifest(&e1, "img@10")["created"], "1970-01-03T00:00:00Z");
    let rootfs = |e: &Env, r: &str| manifest(e, r)["rootfs"]["digest"].clone();
    assert_eq!(rootfs(&e1, "img@9"), rootfs(&e2, "img@9"));

    // Versions are immutable.
    let e = env.fails(&[
        "image",
        "build",
        "img",
        "--version",
        "1",
        "--from",
        &p(&tree),
    ]);
    assert!(e.contains("img@1 is already published"), "{e}");

    // Builds leave no work directory; gc removes one a killed build left behind.
    let build_dir = env.data().join("build");
    assert_eq!(std::fs::read_dir(&build_dir).unwrap().count(), 0);
    std::fs::create_dir_all(build_dir.join("img-11.999999999/root")).unwrap();
    let gc = env.ok(&["image", "gc"]);
    assert!(gc.contains(", 1 abandoned build directory"), "{gc}");
    assert_eq!(std::fs::read_dir(&build_dir).unwrap().count(), 0);
}

#[test]
fn build_errors_name_the_problem() {
    crate::lab_direct::require_lab();
    let env = Env::new();
    let work = env.dir.path();
    let tree = work.join("tree");
    make_tree(&tree);
    // Progress lines may come first; the error is the last line, and the only one.
    let fails = |from: &Path, extra: &[&str]| {
        let out = env
            .command()
            .args([
                "image",
                "build",
                "bad",
                "--version",
                "1",
                "--from",
                &p(from),
            ])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        let last = lines.last().copied().unwrap_or("");
        assert!(last.starts_with("error: "), "{err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.starts_with("build: ")),
            "{err}"
        );
        last.to_string()
    };

    let e = fails(&tree, &["--nic", "r8169"]);
    assert!(
        e.contains(&format!(
            "module r8169 (needed for the NIC set) is missing from kernel {RELEASE}"
        )),
        "{e}"
    );
    let e = fails(&tree, &["--kernel", "9.9.9"]);
    assert!(
        e.contains("no kernel in the image: /boot/vmlinuz-9.9.9"),
        "{e}"
    );
    let no_kernel = work.join("nokernel");
    make_tree(&no_kernel);
    std::fs::remove_dir_all(no_kernel.join("boot")).unwrap();
    let e = fails(&no_kernel, &[]);
    assert!(e.contains("error: no kernel in the image"), "{e}");
    let e = fails(&tree, &["--busybox", "/nonexistent/busybox"]);
    assert!(e.contains("static busybox"), "{e}");

    // A truncated tarball, and one that is not an archive at all.
    let tgz = work.join("root.tar.gz");
    tarball(&tree, &tgz, "| gzip -n");
    let bytes = std::fs::read(&tgz).unwrap();
    let cut = work.join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&cut, &[]);
    assert!(e.contains(&format!("corrupt archive {}", p(&cut))), "{e}");
    let junk = work.join("junk.tar");
    std::fs::write(&junk, crate::common::bytes(7, 10_000)).unwrap();
    let e = fails(&junk, &[]);
    assert!(e.contains("corrupt archive"), "{e}");

    // An OCI layer of an unknown media type; a layer whose bytes do not match its digest.
    let plain = work.join("layer1.tar");
    tarball(&tree, &plain, "");
    let enc = work.join("enc");
    oci_layout(
        &enc,
        &[(
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            std::fs::read(&plain).unwrap(),
        )],
    );
    let e = fails(&enc, &[]);
    assert!(
        e.contains("unsupported media type \"application/vnd.oci.image.layer.v1.tar+gzip+encrypted\" of layer sha256:"),
        "{e}"
    );
    let bad = work.join("bad-oci");
    oci_layout(
        &bad,
        &[(
            "application/vnd.oci.image.layer.v1.tar",
            std::fs::read(&plain).unwrap(),
        )],
    );
    let layer = std::fs::read_dir(bad.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| std::fs::metadata(f).unwrap().len() == std::fs::metadata(&plain).unwrap().len())
        .unwrap();
    let mut lb = std::fs::read(&layer).unwrap();
    lb.extend_from_slice(&[0; 512]); // after the end of the archive: it reads, its digest does not
    std::fs::write(&layer, lb).unwrap();
    let e = fails(&bad, &[]);
    assert!(
        e.contains("corrupt archive") && e.contains("hashes to"),
        "{e}"
    );

    // Not enough disk: the data directory on a 16 MiB tmpfs, a 48 MiB source elsewhere.
    let small = work.join("small");
    std::fs::create_dir(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=16m tabula-test-small {}",
        p(&small)
    ));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    std::fs::write(tree.join("big"), crate::common::bytes(3, 48 << 20)).unwrap();
    let out = env
        .command()
        .args([
            "--data-dir",
            &p(&small),
            "image",
            "build",
            "big",
            "--version",
            "1",
            "--from",
            &p(&tree),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("error: not enough disk space in {}", p(&small))),
        "{err}"
    );
    assert!(
        std::fs::read_dir(small.join("build")).map_or(0, |d| d.count()) == 0,
        "the work directory was left behind"
    );
}

#[test]
fn pin_rollback_walks_back_through_the_history() {
    let env = Env::new();
    let k = env.file("k", 1, 100);
    for v in ["1", "2", "3"] {
        env.ok(&[
            "image",
            "add",
            "demo",
            "--version",
            v,
            "--kernel",
            &p(&k),
            "--cmdline",
            v,
        ]);
    }
    let e = env.fails(&["pin", "rollback", "default"]);
    assert!(
        e.contains("default has no earlier pin to roll back to"),
        "{e}"
    );
    for v in ["demo@1", "demo@2", "demo@3"] {
        env.ok(&["pin", "set", "default", v]);
    }
    assert_eq!(
        env.ok(&["pin", "rollback", "default"]).trim(),
        "default -> demo@2 (rolled back from demo@3)"
    );
    assert!(
        env.ok(&["explain", "52:54:00:00:00:09"])
            .contains("image      demo@2")
    );
    assert_eq!(
        env.ok(&["pin", "rollback", "default"]).trim(),
        "default -> demo@1 (rolled back from demo@2)"
    );
    let e = env.fails(&["pin", "rollback", "default"]);
    assert!(e.contains("no earlier pin"), "{e}");
    let h = env.ok(&["pin", "history", "default"]);
    let changes: Vec<(&str, &str)> = h
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1], f[2])
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("set", "demo@1"),
            ("set", "demo@2"),
            ("set", "demo@3"),
            ("rollback", "demo@2"),
            ("rollback", "demo@1")
        ]
    );
    // A rollback to a version that is gone is refused, and nothing moves.
    env.ok(&["pin", "set", "52:54:00:00:00:09", "demo@2"]);
    env.ok(&["pin", "set", "52:54:00:00:00:09", "demo@3"]);
    env.ok(&["pin", "rm", "default"]);
    env.ok(&["image", "rm", "demo@2"]);
    let e = env.fails(&["pin", "rollback", "52:54:00:00:00:09"]);
    assert!(
        e.contains("cannot roll mac:52:54:00:00:00:09 back: demo@2 is not published"),
        "{e}"
    );
    assert!(env.ok(&["pin", "list"]).contains("demo@3"));
}
