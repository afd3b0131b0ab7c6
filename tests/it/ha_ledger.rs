//! The loader ledger across servers (issue 16): with `chainload = "loader-first"` an
//! iPXE client is handed tabula's loader once per window, then its script. Two servers on
//! one PostgreSQL: the client (busybox udhcpc presenting itself as iPXE: user class
//! `iPXE`, PXE vendor class) gets the loader from authority A; A is killed (kill -9); the
//! client's next DHCP exchange reaches B, which took the authority, and B answers with
//! the script, not the loader again (no chainload loop across servers). A second MAC,
//! new to both, still gets the loader from B: B's answer came from A's mark in the store.

use std::process::Command;

use crate::common::{Env, wait_for};
use crate::ha_fabric::{Fabric, members, serve, setup_with};
use crate::netns::sh;

/// One udhcpc exchange (DISCOVER … ACK, then exit) from the client namespace: the boot
/// file of the ACK (BOOTP `file` field, else option 67).
fn boot_file(env: &Env, f: &Fabric, round: usize) -> String {
    let log = env.dir.path().join(format!("udhcpc-{round}.log"));
    let script = env.dir.path().join("udhcpc-ledger.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"file=$boot_file opt67=$bootfile server=$serverid\" >> {}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    let out = Command::new("ip")
        .args(["netns", "exec", &f.client, "timeout", "40"])
        .args(["busybox", "udhcpc", "-f", "-q", "-n", "-i", &f.client_if])
        .args(["-s", script.to_str().unwrap(), "-t", "20", "-T", "1"])
        .args([
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x4d:69505845",
        ])
        .output()
        .expect("busybox udhcpc");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("file="),
        "udhcpc got no lease (round {round}): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim().to_string()
}

fn set_mac(f: &Fabric, mac: &str) {
    let ns = &f.client;
    sh(&["ip", "-n", ns, "link", "set", &f.client_if, "down"]);
    sh(&["ip", "-n", ns, "link", "set", &f.client_if, "address", mac]);
    sh(&["ip", "-n", ns, "link", "set", &f.client_if, "up"]);
}

fn holds_dhcp(env: &Env, id: &str) -> bool {
    members(env)
        .iter()
        .any(|(i, alive, r)| i == id && *alive && r.iter().any(|x| x == "dhcp"))
}

#[test]
fn a_client_moving_to_another_server_gets_its_script_not_the_loader_again() {
    let (_pg, env, f, cfgs) = setup_with(["ldg-a", "ldg-b"], "chainload = \"loader-first\"\n");
    // A boot decision (not local): the loader-first rule applies only to machines that boot.
    crate::fleet::publish(&env, "1", 40);
    env.ok(&["pin", "set", "default", "demo@1"]);
    for d in ["a", "b"] {
        let to = env.dir.path().join(d);
        std::fs::create_dir_all(&to).unwrap();
        sh(&[
            "cp",
            "-a",
            env.data().join("blobs").to_str().unwrap(),
            to.to_str().unwrap(),
        ]);
    }
    let mut a = serve(&env, &f.servers[0], &cfgs[0], "a");
    wait_for("a holds dhcp", 20, || holds_dhcp(&env, "ldg-a"));
    let _b = serve(&env, &f.servers[1], &cfgs[1], "b");
    wait_for("b alive", 20, || {
        members(&env)
            .iter()
            .any(|(i, alive, _)| i == "ldg-b" && *alive)
    });
    let mac = "02:0c:0d:00:00:01";
    set_mac(&f, mac);
    let first = boot_file(&env, &f, 1);
    assert!(
        first.contains("02-0c-0d-00-00-01/undionly.kpxe") && first.contains("server=10.99.60.1"),
        "A hands the loader first: {first}"
    );
    let again = boot_file(&env, &f, 2);
    assert!(again.contains("boot.ipxe"), "then A's script: {again}");

    sh(&["kill", "-9", &a.child.id().to_string()]);
    let _ = a.child.wait();
    wait_for("b takes dhcp", 20, || holds_dhcp(&env, "ldg-b"));
    let moved = boot_file(&env, &f, 3);
    assert!(
        moved.contains("server=10.99.60.2")
            && moved.contains("boot.ipxe")
            && !moved.contains(".kpxe"),
        "B answers the script, not the loader again: {moved}"
    );
    // A MAC no server named a loader: B hands the loader (so B's answer above came from
    // A's mark, not from B skipping the loader).
    set_mac(&f, "02:0c:0d:00:00:02");
    let fresh = boot_file(&env, &f, 4);
    assert!(
        fresh.contains("02-0c-0d-00-00-02/undionly.kpxe"),
        "a new MAC gets the loader from B: {fresh}"
    );
    drop(f);
}
