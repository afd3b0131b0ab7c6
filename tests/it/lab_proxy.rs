//! proxyDHCP for real: a VM PXE-boots in a private namespace where a plain DHCP server
//! (busybox udhcpd, addresses only, no boot options) hands out the addresses and tabula,
//! with the shipped `config/lab-proxy.toml` (`dhcp.mode = "proxy"`), adds only the boot
//! information: proxy OFFERs on the shared port 67, proxy ACKs on 4011, then TFTP and
//! HTTP as in `lab_pxe.rs`. Asserted: the demo's marker on the console, a `booted` event
//! carrying the pinned manifest, proxy DHCP events only (tabula leased nothing), and the
//! addresses from udhcpd's range. Root and the lab packages are required (fails, never
//! skips).

use crate::common::Env;
use crate::lab_pxe::{
    BIOS_MAC, Fw, UEFI_MAC, booted_with, lab_network, manifest_of, pxe_boot, shipped_config,
};
use crate::netns::{Lab, start_tabula};

/// Starts busybox udhcpd on the lab bridge: 10.77.0.50-10.77.0.99, no boot options.
fn udhcpd(env: &Env, lab: &mut Lab, ns: &str) {
    let conf = env.dir.path().join("udhcpd.conf");
    let leases = env.dir.path().join("udhcpd.leases");
    std::fs::write(&leases, b"").unwrap();
    std::fs::write(
        &conf,
        format!(
            "start 10.77.0.50\nend 10.77.0.99\ninterface tabr0\nlease_file {}\npidfile {}\n\
             option subnet 255.255.255.0\noption lease 600\n",
            leases.display(),
            env.dir.path().join("udhcpd.pid").display()
        ),
    )
    .unwrap();
    lab.spawn(ns, &["busybox", "udhcpd", "-f", conf.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn proxy_boot(fw: Fw, mac: &str, loader: &str) {
    let env = Env::new();
    let (mut lab, ns) = lab_network(&env, "demo@1");
    udhcpd(&env, &mut lab, &ns);
    let _tabula = start_tabula(&env, &ns, &shipped_config("lab-proxy.toml"));
    let m1 = manifest_of(&env, mac);
    let console = pxe_boot(&env, &ns, fw, "TABULA-DEMO-BOOTED name=demo version=1 ", 1);
    let hyphen = mac.replace(':', "-");
    for step in [format!("{hyphen}/{loader}"), "tabula-init:".to_string()] {
        assert!(
            console.contains(&step),
            "console lacks {step:?}:\n{console}"
        );
    }
    assert!(console.contains(&format!("manifest={m1}")), "{console}");
    let stages = booted_with(&env, mac, &m1);
    for stage in ["dhcp-offer", "loader-sent", "script-sent", "rootfs-sent"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "no {stage} event: {stages:?}"
        );
    }
    // tabula answered as a proxy: no address in any of its replies, no lease stored.
    let evs = env.events(mac);
    for e in evs
        .iter()
        .filter(|e| e["stage"] == "dhcp-offer" || e["stage"] == "dhcp-ack")
    {
        assert_eq!(e["detail"]["proxy"], true, "{e}");
        assert!(e["detail"]["address"].is_null(), "{e}");
    }
    assert!(
        env.ok(&["lease", "list", "--json"]).trim().is_empty(),
        "tabula stored a lease in proxy mode"
    );
    // The initramfs's address came from udhcpd.
    let ip = evs
        .iter()
        .find(|e| e["stage"] == "progress" && e["detail"]["stage"] == "dhcp")
        .and_then(|e| e["detail"]["ip"].as_str())
        .unwrap_or_else(|| panic!("no progress:dhcp event: {evs:#?}"))
        .to_string();
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        ip.starts_with("10.77.0.") && (50..=99).contains(&last),
        "address not from udhcpd: {ip}"
    );
}

#[test]
fn bios_pxe_boot_with_tabula_as_proxy_dhcp() {
    proxy_boot(Fw::Bios, BIOS_MAC, "undionly.kpxe");
}

#[test]
fn uefi_pxe_boot_with_tabula_as_proxy_dhcp() {
    proxy_boot(Fw::Uefi, UEFI_MAC, "snponly.efi");
}
