//! A version published through the API boots the direct-kernel lab VM: the lab images
//! are built (not published), their kernel, initramfs and root image uploaded by digest
//! with an admin token (`PUT /api/v1/blobs/sha256/{hex}`), `demo@1` created from a
//! manifest naming them (`POST /api/v1/images/demo/versions`), pinned with an operate
//! token, and QEMU boots it as `lab_direct.rs` does: console marker and `booted` event of
//! the manifest the API answered. A subscriber of the event stream sees the boot's
//! first events in order, goes away, resumes with `Last-Event-ID` and receives exactly
//! the rest: together, the stored history of the boot. Needs root and the lab packages;
//! fails, never skips.

use crate::api_session::{Subscriber, create_token, request};
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

    // A subscriber of the event stream sees the boot's first three events, in order,
    // and goes away; the boot (boot_demo pins the same reference again locally: a no-op
    // for the plan) goes on.
    let reader = create_token(&env, "watcher", "read", None);
    let mut first = Subscriber::open(server.api, &reader, None);
    let watching = std::thread::spawn(move || {
        // A TCG boot takes up to BOOT_LIMIT to its first progress report.
        let seen = first.wait_within(3, std::time::Duration::from_secs(200));
        seen[..3].to_vec()
    });
    boot_demo(&env, &cfg, server.http, "demo@1", "1", 1);
    let first = watching.join().unwrap();
    // Resumed with Last-Event-ID: exactly the rest, up to `booted`, in order.
    let mut again = Subscriber::open(server.api, &reader, Some(first[2].0));
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !again.events().iter().any(|(_, s)| s == "booted") {
        assert!(std::time::Instant::now() < end, "{}", again.got);
        again.until(|_| true, std::time::Duration::from_secs(1));
        let _ = again.wait_for(again.events().len() + 1);
    }
    let mut streamed = first.clone();
    streamed.extend(again.events());
    let stored = request(
        &base,
        "GET",
        &format!("/api/v1/events?after={}&limit=1000", first[0].0 - 1),
        Some(&reader),
        None,
        "",
    )
    .json();
    let stored: Vec<(i64, String)> = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        streamed, stored,
        "the stream, split by the reconnect, is the stored history"
    );
    assert_eq!(streamed.last().unwrap().1, "booted", "{streamed:?}");
    eprintln!("lab_api: streamed {streamed:?}");
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "show", "demo@1", "--json"])).unwrap();
    assert_eq!(shown["kernel"]["name"], "vmlinuz");
    let listed = env.ok(&["image", "list"]);
    assert!(
        listed.contains(&manifest),
        "the API's manifest is the one booted: {listed}"
    );
}
