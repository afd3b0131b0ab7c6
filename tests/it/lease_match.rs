//! `http.require_lease_match` against the real binary, in network namespaces the test
//! creates (`netns.rs`): busybox udhcpc gets a lease from `tabula serve` in full mode,
//! then fetches its script and reports from its leased address (accepted, recorded),
//! while the same requests from another address of the same client namespace are
//! refused 403 and record nothing (a download from there is served, marked
//! `unverified`); after a restart the restored lease still binds. Needs root: fails (never skips) otherwise. The config error outside
//! full mode is in `cli_errors.rs`.

use std::net::Ipv4Addr;

use crate::common::{Env, sha256_of, stages, wait_for};
use crate::dhcp::{mac_of, udhcpc_script};
use crate::netns::{Lab, sh, start_tabula};
use crate::serve::callback_of;

/// Another address of the client namespace, outside the pool: never leased.
const OTHER: &str = "10.99.12.77";

/// `curl` in namespace `ns`: (status, body).
fn curl_in(lab: &Lab, ns: &str, args: &[&str]) -> (u16, String) {
    let mut a = vec!["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    let o = lab.exec(ns, &a);
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = out.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

#[test]
fn requests_for_a_mac_are_taken_only_from_its_leased_address() {
    let env = Env::new();
    let kernel = env.file("vmlinuz", 12, 4096);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        kernel.to_str().unwrap(),
    ]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let khex = sha256_of(&kernel)[7..].to_string();

    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "m");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.12.1/24", "dev", &vs]);
    let config = format!(
        "[dhcp]\nmode = \"full\"\ninterfaces = [\"{vs}\"]\n\
             [[dhcp.subnets]]\nnetwork = \"10.99.12.0/24\"\npools = [\"10.99.12.100-10.99.12.150\"]\nlease_time = \"1h\"\n\
             [tftp]\nenabled = false\n\
             [http]\nlisten = \"10.99.12.1:8080\"\npublic_url = \"http://127.0.0.1:1\"\nrequire_lease_match = true\n\
             [api]\nenabled = false\n"
    );
    let t = start_tabula(&env, &s, &config);
    let mac = mac_of(&lab, &c, &vc);

    // A lease, from tabula, on the client's interface (the script puts it there).
    let (script, log) = udhcpc_script(&env);
    let o = lab.exec(
        &c,
        &[
            "timeout", "30", "busybox", "udhcpc", "-q", "-n", "-i", &vc, "-s", &script, "-t", "5",
            "-T", "1",
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let leased: Ipv4Addr = text
        .lines()
        .find(|l| l.starts_with("bound "))
        .unwrap_or_else(|| panic!("no lease: {text} {}", String::from_utf8_lossy(&o.stderr)))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // A second address on the same interface, which holds no lease.
    sh(&[
        "ip",
        "-n",
        &c,
        "addr",
        "add",
        &format!("{OTHER}/24"),
        "dev",
        &vc,
    ]);
    let (ip, other) = (leased.to_string(), OTHER.to_string());
    let from = |a: &str| vec!["--interface".to_string(), a.to_string()];
    let get = |src: &str, path: &str| {
        let mut a = from(src);
        a.push(format!("http://10.99.12.1:8080{path}"));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        curl_in(&lab, &c, &a)
    };
    let post = |src: &str, path: &str| {
        let mut a = from(src);
        a.extend(["-X", "POST", "--data", "{}"].map(String::from));
        a.push(format!("http://10.99.12.1:8080{path}"));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        curl_in(&lab, &c, &a)
    };

    // From the other address: the script is refused, and says why.
    for path in [
        format!("/boot.ipxe?mac={mac}"),
        format!("/boot/{mac}/boot.ipxe"),
    ] {
        let (code, body) = get(&other, &path);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("http.require_lease_match"), "{body}");
    }
    // From the leased address: the script, with its callback.
    let (code, body) = get(&ip, &format!("/boot.ipxe?mac={mac}"));
    assert_eq!(code, 200, "{body}");
    let cb = callback_of(&body);

    // The boot's own token, from the other address: refused, recorded nothing.
    let (code, body) = post(&other, &format!("{cb}/booted"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("http.require_lease_match"), "{body}");
    // A download from there is served (blobs are public), but unverified.
    let blob = format!("/blobs/sha256/{khex}/vmlinuz?mac={mac}&as=kernel");
    let (code, _) = get(&other, &blob);
    assert_eq!(code, 200);
    wait_for("the unverified kernel event", 15, || {
        env.events(&mac).len() == 2
    });

    // From the leased address the report is recorded and the download verified.
    let (code, body) = post(&ip, &format!("{cb}/booted"));
    assert_eq!((code, body.as_str()), (200, "recorded\n"));
    let (code, _) = get(&ip, &blob);
    assert_eq!(code, 200);
    wait_for("the booted and verified kernel events", 15, || {
        env.events(&mac).len() == 4
    });
    let ev = env.events(&mac);
    assert_eq!(
        stages(&ev),
        ["script-sent", "kernel-sent", "booted", "kernel-sent"],
        "nothing from the refused requests: {ev:?}"
    );
    let peers: Vec<&str> = ev.iter().map(|e| e["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, [ip.as_str(), OTHER, ip.as_str(), ip.as_str()]);
    // The download to the other address is marked as not the boot's, though the MAC was
    // served a plan with that kernel.
    assert_eq!(ev[1]["detail"]["unverified"], true, "{ev:?}");
    assert_eq!(ev[3]["detail"].get("unverified"), None, "{ev:?}");

    // After a restart (kill -9) the lease is restored, and still binds the MAC.
    drop(t);
    let _t = start_tabula(&env, &s, &config);
    assert_eq!(get(&ip, &format!("/boot/{mac}/boot.ipxe")).0, 200);
    assert_eq!(get(&other, &format!("/boot/{mac}/boot.ipxe")).0, 403);
}
