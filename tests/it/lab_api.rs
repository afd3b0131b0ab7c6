//! A version published through the API boots the direct-kernel lab VM: the lab images
//! are built (not published), their kernel, initramfs and root image uploaded by digest
//! with an admin token (`PUT /api/v1/blobs/sha256/{hex}`), `demo@1` created from a
//! manifest naming them (`POST /api/v1/images/demo/versions`), pinned with an operate
//! token, and QEMU boots it as `lab_direct.rs` does: console marker and `booted` event of
//! the manifest the API answered. Needs root and the lab packages; fails, never skips.

use crate::api_session::{create_token, request};
use crate::common::{Env, sha256_of};
use crate::lab_direct::{MAC, boot_demo, recipe, require_lab, serve_for_qemu};

#[test]
fn a_version_published_through_the_api_boots_the_direct_kernel_lab_vm() {
    require_lab();
    let env = Env::new();
    let out = env.dir.path().join("out");
    recipe(&env, "build.sh", &out);
    let (cfg, server) = serve_for_qemu(&env, "lab-api.toml");
    let base = format!("http://{}", server.api);
    let admin = create_token(&env, "publisher", "admin", None);
    let operate = create_token(&env, "pinner", "operate", None);

    let mut named = Vec::new();
    for (file, name) in [
        ("vmlinuz", "vmlinuz"),
        ("initramfs.cpio.gz", "initramfs.cpio.gz"),
        ("demo-1.squashfs", "demo-1.squashfs"),
    ] {
        let path = out.join(file);
        let digest = sha256_of(&path);
        let bytes = std::fs::read(&path).unwrap();
        let r = request(
            &base,
            "PUT",
            &format!("/api/v1/blobs/sha256/{}", &digest[7..]),
            Some(&admin),
            Some(&bytes),
            "application/octet-stream",
        );
        assert_eq!(r.status, 201, "{file}: {}", r.text());
        named.push(format!(r#"{{"digest":"{digest}","name":"{name}"}}"#));
    }
    let body = format!(
        r#"{{"version":"1","kernel":{},"initrds":[{}],"rootfs":{},"cmdline":"panic=5"}}"#,
        named[0], named[1], named[2]
    );
    let r = request(
        &base,
        "POST",
        "/api/v1/images/demo/versions",
        Some(&admin),
        Some(body.as_bytes()),
        "application/json",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let manifest = r.json()["manifest"].as_str().unwrap().to_string();
    let pin = request(
        &base,
        "PUT",
        &format!("/api/v1/pins/{MAC}"),
        Some(&operate),
        Some(br#"{"ref":"demo@1"}"#),
        "application/json",
    );
    assert_eq!(pin.status, 200, "{}", pin.text());

    // The boot (boot_demo pins the same reference again locally: a no-op for the plan).
    boot_demo(&env, &cfg, server.http, "demo@1", "1", 1);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "show", "demo@1", "--json"])).unwrap();
    assert_eq!(shown["kernel"]["name"], "vmlinuz");
    let listed = env.ok(&["image", "list"]);
    assert!(
        listed.contains(&manifest),
        "the API's manifest is the one booted: {listed}"
    );
}
