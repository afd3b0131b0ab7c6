//! UEFI HTTP boot through tabula, for real (issue 18): OVMF with its PXE turned off
//! (`opt/org.tianocore/IPv4PXESupport=n`, as shared/netboot-lab.md's addendum says) does
//! DHCP as an HTTP-boot client (option 93 = 16, option 60 `HTTPClient`); tabula answers
//! with option 60 `HTTPClient` and the URL `{public_url}/loaders/snponly.efi`; the
//! firmware sizes the loader by a `HEAD` and then GETs it; iPXE (snponly.efi, on the
//! firmware's network driver) asks DHCP again, gets its script, and boots the demo to
//! its marker and a `booted` event.
//!
//! The loader is served the way Debian installs loaders: `tftp.root` is a directory of
//! this test holding only `snponly.efi -> /usr/lib/ipxe/snponly.efi`, a link out of the
//! root, which tabula serves because the config names it. Root and the lab packages are
//! required (fails, never skips).

use crate::common::Env;
use crate::lab_pxe::{
    Fw, UEFI_MAC, boot_vm, booted_with, lab_network, manifest_of, shipped_config,
};
use crate::netns::start_tabula;

#[test]
fn uefi_http_boot_through_tabula_to_booted() {
    let env = Env::new();
    let (_lab, ns) = lab_network(&env, "demo@1");
    let root = env.dir.path().join("loaders");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink("/usr/lib/ipxe/snponly.efi", root.join("snponly.efi")).unwrap();
    let lab = shipped_config("lab.toml");
    assert!(lab.contains("root = \"/usr/lib/ipxe\""), "{lab}");
    let cfg = lab.replace(
        "root = \"/usr/lib/ipxe\"",
        &format!("root = \"{}\"", root.display()),
    );
    let _tabula = start_tabula(&env, &ns, &cfg);
    let m1 = manifest_of(&env, UEFI_MAC);
    let console = boot_vm(
        &env,
        &ns,
        Fw::Uefi,
        &[
            "-fw_cfg",
            "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg",
            "name=opt/org.tianocore/IPv6PXESupport,string=n",
        ],
        "TABULA-DEMO-BOOTED name=demo version=1 ",
        1,
    );
    for step in [
        "Start HTTP Boot over IPv4",
        "http://10.77.0.1:8080/loaders/snponly.efi",
        "platform=efi",
        "tabula-init:",
    ] {
        assert!(console.contains(step), "console lacks {step:?}:\n{console}");
    }
    // EDK2 takes the size from the HEAD before it GETs: the loader's real length.
    let len = std::fs::metadata("/usr/lib/ipxe/snponly.efi")
        .unwrap()
        .len();
    assert!(
        console.contains(&format!("File Size: {len}")),
        "the firmware did not size the loader by its HEAD:\n{console}"
    );
    assert!(
        !console.contains("Start PXE over IPv4"),
        "PXE ran, not HTTP boot:\n{console}"
    );
    assert!(console.contains(&format!("manifest={m1}")), "{console}");
    let stages = booted_with(&env, UEFI_MAC, &m1);
    for stage in [
        "dhcp-ack",
        "script-sent",
        "kernel-sent",
        "rootfs-sent",
        "booted",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "no {stage} event: {stages:?}"
        );
    }
}
