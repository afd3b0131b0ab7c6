//! A small boot storm in CI (not timed): 50 simulated machines (`tabula::storm`, the
//! client `bench/storm.sh` runs) power on together against the real `tabula serve` in a
//! network namespace, with root-image admission down to 4 slots so most of them queue.
//! Every machine must boot, with the pinned image (the manifest in its `booted` report's
//! URL, the root's sha256), and every phase must be in the store as a boot event.
//! Needs root: fails (never skips) otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tabula::storm::{Storm, Summary};

use crate::common::{Env, sha256_of};
use crate::netns::{Lab, in_ns, sh, start_tabula};

const N: usize = 50;

#[test]
fn fifty_machines_boot_the_pinned_image_and_every_phase_is_an_event() {
    let env = Env::new();
    let kernel = env.file("vmlinuz", 11, 1 << 20);
    let initrd = env.file("initrd.img", 12, 256 << 10);
    let root = env.file("root.squashfs", 13, 2 << 20);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let published = env.ok(&[
        "image",
        "add",
        "storm",
        "--version",
        "1",
        "--kernel",
        &p(&kernel),
        "--initrd",
        &p(&initrd),
        "--rootfs",
        &p(&root),
    ]);
    let manifest = published.split_whitespace().last().unwrap().to_string();
    env.ok(&["pin", "set", "default", "storm@1"]);
    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir(&loaders).unwrap();
    std::fs::write(
        loaders.join("undionly.kpxe"),
        crate::common::bytes(14, 70_000),
    )
    .unwrap();

    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "s");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.70.1/24", "dev", &vs]);
    // Every pool address on the client side: each machine binds its leased address.
    let batch = env.dir.path().join("addrs");
    let lines: String = (100..=199)
        .map(|h| format!("addr add 10.99.70.{h}/24 dev {vc}\n"))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    sh(&["ip", "-n", &c, "-batch", batch.to_str().unwrap()]);
    let config = format!(
        "[dhcp]\nmode = \"full\"\ninterfaces = [\"{vs}\"]\nrouter_advertisement = false\n\
         [[dhcp.subnets]]\nnetwork = \"10.99.70.0/24\"\npools = [\"10.99.70.100-10.99.70.199\"]\n\
         [tftp]\nlisten = \"10.99.70.1:69\"\nroot = \"{}\"\n\
         [http]\nlisten = \"10.99.70.1:8080\"\n[http.admission]\nmax_streams = 4\n\
         [api]\nenabled = false\n",
        loaders.display()
    );
    let _t = start_tabula(&env, &s, &config);

    let storm = Storm {
        iface: vc,
        machines: N,
        salt: 0x70,
        spread: Duration::from_millis(500),
        deadline: Duration::from_secs(40),
    };
    let records = in_ns(&c, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(tabula::storm::run(&storm))
            .unwrap()
    });
    let summary = Summary::of(&records);
    let failed: Vec<_> = records.iter().filter(|r| !r.ok).collect();
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
    assert_eq!(summary.booted, N);
    let root_hex = &sha256_of(&root)[7..];
    let mhex = &manifest[7..];
    for r in &records {
        assert_eq!(r.root_sha256.as_deref(), Some(root_hex), "{r:?}");
        let cb = r.callback.as_deref().unwrap();
        // `<public_url>/boot/<mac>/<manifest>/<token>`: the token proved by the accepted
        // report (a 403 would have failed the machine).
        let dashed = r.mac.to_string().replace(':', "-");
        assert!(
            cb.contains(&format!("/boot/{dashed}/{mhex}/")),
            "{} booted {cb}, not {manifest}",
            r.mac
        );
    }

    // Every machine's phases, as boot events, with the booted report on the manifest.
    let want = [
        "loader-sent",
        "script-sent",
        "kernel-sent",
        "initrd-sent",
        "rootfs-sent",
        "booted",
    ];
    let macs: BTreeSet<String> = records.iter().map(|r| r.mac.clone()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let by_mac = loop {
        let out = env.ok(&["events", "--json", "--last", "100000"]);
        let mut by_mac: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for l in out.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            by_mac
                .entry(v["mac"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
        let complete = macs.iter().all(|m| {
            by_mac
                .get(m)
                .is_some_and(|ev| want.iter().all(|w| ev.iter().any(|e| e["stage"] == *w)))
        });
        if complete || std::time::Instant::now() > deadline {
            break by_mac;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for m in &macs {
        let ev = by_mac.get(m).unwrap_or_else(|| panic!("no events for {m}"));
        let stages: Vec<&str> = ev.iter().map(|e| e["stage"].as_str().unwrap()).collect();
        for w in want {
            assert!(stages.contains(&w), "{m}: no {w} in {stages:?}");
        }
        let booted = ev.iter().find(|e| e["stage"] == "booted").unwrap();
        assert_eq!(booted["manifest"], manifest.as_str(), "{m}: {booted}");
        assert_eq!(booted["detail"]["root_sha256"], root_hex, "{m}: {booted}");
        let rootfs = ev.iter().find(|e| e["stage"] == "rootfs-sent").unwrap();
        assert_eq!(rootfs["detail"]["complete"], true, "{m}: {rootfs}");
    }
}
