//! The foundation story: publish two versions, pin a machine, a label and the default,
//! and check that `explain` names the right digests and winning rule, and sees every
//! re-pin and channel move at once (no daemon, no restart).

use crate::common::{Env, field, sha256_of};

const N1: &str = "52:54:00:00:00:01"; // machine n1, pinned directly
const N2: &str = "52:54:00:00:00:02"; // machine n2, role=web → label pin
const N3: &str = "52:54:00:00:00:03"; // machine n3, role=db → default

#[test]
fn explain_follows_pins_channels_and_repins() {
    let env = Env::new();
    let k1 = env.file("vmlinuz-1", 1, 200_000);
    let i1 = env.file("initrd-1.img", 2, 100_000);
    let r1 = env.file("root-1.squashfs", 3, 400_000);
    let k2 = env.file("vmlinuz-2", 4, 200_000);
    let i2 = env.file("initrd-2.img", 5, 100_000);
    let r2 = env.file("root-2.squashfs", 6, 400_000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();

    let out1 = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&k1),
        "--initrd",
        &p(&i1),
        "--rootfs",
        &p(&r1),
        "--cmdline",
        "quiet host={hostname}",
    ]);
    let out2 = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "2",
        "--kernel",
        &p(&k2),
        "--initrd",
        &p(&i2),
        "--rootfs",
        &p(&r2),
        "--cmdline",
        "quiet host={hostname}",
    ]);
    let m1 = out1.split_whitespace().last().unwrap().to_string();
    let m2 = out2.split_whitespace().last().unwrap().to_string();
    assert!(m1.starts_with("sha256:") && m1 != m2);

    env.ok(&["image", "tag", "demo@1", "stable"]);
    env.ok(&[
        "machine",
        "add",
        "n1",
        "--mac",
        N1,
        "--label",
        "role=web",
        "--hostname",
        "node-1",
    ]);
    env.ok(&["machine", "add", "n2", "--mac", N2, "--label", "role=web"]);
    env.ok(&["machine", "add", "n3", "--mac", N3, "--label", "role=db"]);
    env.ok(&["pin", "set", "n1", "demo@1"]);
    env.ok(&["pin", "set", "label:role=web", "demo:stable"]);
    env.ok(&["pin", "set", "default", "demo@2"]);

    // n1: its own pin wins over the label and the default.
    let e = env.ok(&["explain", N1]);
    assert_eq!(field(&e, "machine"), Some("n1"));
    assert!(
        e.contains("machine:n1                   -> demo@1                   won"),
        "{e}"
    );
    assert!(e.contains("less specific than machine:n1"), "{e}");
    assert_eq!(field(&e, "manifest"), Some(m1.as_str()));
    assert!(
        field(&e, "kernel").unwrap().starts_with(&sha256_of(&k1)),
        "{e}"
    );
    assert!(
        field(&e, "initrd").unwrap().starts_with(&sha256_of(&i1)),
        "{e}"
    );
    assert!(
        field(&e, "rootfs").unwrap().starts_with(&sha256_of(&r1)),
        "{e}"
    );
    let root_hex = sha256_of(&r1)[7..].to_string();
    let cmdline = field(&e, "cmdline").unwrap();
    assert!(
        cmdline.starts_with("quiet host=node-1 tabula.image=demo@1 "),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&format!("tabula.root_sha256={root_hex}")),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&format!("/blobs/sha256/{root_hex}")),
        "{cmdline}"
    );

    // n2: the label selector, through the channel.
    let e = env.ok(&["explain", N2, "--arch", "efi-x64"]);
    assert!(
        e.contains("label:role=web               -> demo:stable              won"),
        "{e}"
    );
    assert_eq!(field(&e, "image"), Some("demo@1 (channel demo:stable)"));
    assert_eq!(field(&e, "manifest"), Some(m1.as_str()));
    assert!(
        field(&e, "cmdline")
            .unwrap()
            .ends_with("initrd=initrd-1.img"),
        "{e}"
    );

    // n3 and a stranger: the default.
    for mac in [N3, "52:54:00:99:99:99"] {
        let e = env.ok(&["explain", mac]);
        assert!(
            e.contains("default                      -> demo@2                   won"),
            "{e}"
        );
        assert_eq!(field(&e, "manifest"), Some(m2.as_str()));
        assert!(
            field(&e, "kernel").unwrap().starts_with(&sha256_of(&k2)),
            "{e}"
        );
    }

    // Moving the channel is visible to the next explain.
    env.ok(&["image", "tag", "demo@2", "stable"]);
    let e = env.ok(&["explain", N2]);
    assert_eq!(field(&e, "image"), Some("demo@2 (channel demo:stable)"));
    assert_eq!(field(&e, "manifest"), Some(m2.as_str()));

    // Re-pinning too, and pinning by manifest digest.
    env.ok(&["pin", "set", "n1", &format!("demo@{m2}")]);
    let e = env.ok(&["explain", N1]);
    assert_eq!(field(&e, "manifest"), Some(m2.as_str()));
    env.ok(&["pin", "set", "n1", "local"]);
    assert!(env.ok(&["explain", N1]).contains("decision   local"));
    env.ok(&["pin", "rm", "n1"]);
    let e = env.ok(&["explain", N1]);
    assert!(
        e.contains("label:role=web               -> demo:stable              won"),
        "{e}"
    );

    // JSON carries the same decision.
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["explain", N3, "--json"])).unwrap();
    assert_eq!(j["decision"]["action"], "boot");
    assert_eq!(j["decision"]["plan"]["manifest"], m2.as_str());
    assert_eq!(j["candidates"][0]["target"], "default");

    // History is kept.
    let h = env.ok(&["pin", "history", "n1"]);
    assert_eq!(h.lines().count(), 5, "{h}"); // header + demo@1, digest, local, removed
    assert!(h.contains("(removed)"));
}

#[test]
fn running_inventory_sees_cli_changes_without_restart() {
    use tabula::config::Config;
    use tabula::inventory::{Decision, Facts, Inventory, Settings, select};

    let env = Env::new();
    let k = env.file("k", 1, 1000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    env.ok(&["image", "add", "demo", "--version", "1", "--kernel", &p(&k)]);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "2",
        "--kernel",
        &p(&k),
        "--cmdline",
        "v2",
    ]);
    env.ok(&["pin", "set", "default", "demo@1"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = Config::defaults(Some(&env.data()));
        let store = tabula::store::Store::open(&cfg.store_url).await.unwrap();
        let blobs = tabula::images::BlobStore::open(&cfg.blob_dir()).unwrap();
        let inv = Inventory::new(
            store,
            blobs,
            Settings {
                unknown_machines: cfg.boot.unknown_machines,
                console: None,
                base_url: cfg.http.public_url.clone(),
            },
        );
        let facts = Facts {
            mac: N1.parse().unwrap(),
            uuid: None,
            firmware: tabula::boot::Firmware::Bios,
        };
        let version = |s: &tabula::inventory::Selection| match &s.decision {
            Decision::Boot { plan } => plan.version.clone(),
            d => panic!("{d:?}"),
        };
        let before = inv.snapshot().await.unwrap();
        assert_eq!(version(&select(&before, &facts)), "1");
        // Another process (the CLI) re-pins while this "daemon" keeps running.
        env.ok(&["pin", "set", "default", "demo@2"]);
        let after = inv.snapshot().await.unwrap();
        assert!(after.revision > before.revision);
        assert_eq!(version(&select(&after, &facts)), "2");
        // No change, no reload: the same snapshot is handed out.
        let again = inv.snapshot().await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&after, &again));
    });
}
