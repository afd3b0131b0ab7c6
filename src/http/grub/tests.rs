//! Golden tests of rendered GRUB configs, including injection attempts.

use super::*;
use crate::boot::{Digest, Firmware, IgnoreReason};
use crate::http::program_fixtures::{plan, selection};

#[test]
fn boot_config_golden() {
    let sel = selection(Decision::Boot {
        plan: Box::new(plan(
            "console=ttyS0 initrd=initrd.img  tabula.report=http://10.0.0.1:8080/boot/52-54-00-00-00-01/m/tok",
        )),
    });
    let got = render(&sel).unwrap();
    let k = Digest::of(b"k").hex();
    let i = Digest::of(b"i").hex();
    let m = Digest::of(b"m");
    let want = format!(
        "# tabula: demo@1 manifest {m} for 52:54:00:00:00:01 (machine:n1 -> demo@1)\n\
         echo 'tabula: 52:54:00:00:00:01 boots demo@1'\n\
         linux '(tftp)/blobs/sha256/{k}/vmlinuz?mac=52-54-00-00-00-01&as=kernel' 'console=ttyS0' 'tabula.report=http://10.0.0.1:8080/boot/52-54-00-00-00-01/m/tok'\n\
         initrd '(tftp)/blobs/sha256/{i}/initrd.img?mac=52-54-00-00-00-01&as=initrd'\n\
         boot\n\
         echo 'tabula: booting demo@1 failed; asking again in 10 s'\n\
         sleep 10\n\
         configfile '(tftp)/boot/52-54-00-00-00-01/grub.cfg?arch=efi-x64'\n"
    );
    assert_eq!(got, want);
}

#[test]
fn bootstrap_golden() {
    assert_eq!(
        bootstrap(),
        "# tabula: the bootstrap every GRUB reads over TFTP; then each machine's own config\n\
         echo \"tabula: GRUB on ${net_default_mac} asks for its config\"\n\
         configfile '(tftp)/boot/'\"${net_default_mac}\"'/grub.cfg?platform='\"${grub_platform}\"'&buildarch='\"${grub_cpu}\"\n\
         echo 'tabula: no config from the server; back to the firmware in 10 s'\n\
         sleep 10\n\
         exit 1\n"
    );
    // What GRUB then asks for is the script route's GRUB form.
    let r = crate::boot::urls::parse_grub_cfg(
        "/boot/52:54:00:77:02:01/grub.cfg?platform=efi&buildarch=x86_64",
    )
    .unwrap();
    assert_eq!(
        (r.mac.to_string(), r.firmware),
        ("52:54:00:77:02:01".into(), Firmware::EfiX64)
    );
    let r = crate::boot::urls::parse_grub_cfg(
        "/boot/52:54:00:77:03:01/grub.cfg?platform=efi&buildarch=arm64",
    )
    .unwrap();
    assert_eq!(r.firmware, Firmware::EfiArm64);
}

#[test]
fn local_and_ignore_configs() {
    assert_eq!(
        render(&selection(Decision::Local)).unwrap(),
        "echo 'tabula: 52:54:00:00:00:01 boots from local disk (machine:n1 -> demo@1)'\n\
         for tabula_program in /EFI/BOOT/BOOTX64.EFI /EFI/debian/shimx64.efi \
         /EFI/ubuntu/shimx64.efi /EFI/redhat/shimx64.efi /EFI/Microsoft/Boot/bootmgfw.efi; do\n\
         \x20 if search --no-floppy --file --set=tabula_disk \"$tabula_program\"; then\n\
         \x20   echo \"tabula: chainloading ($tabula_disk)$tabula_program\"\n\
         \x20   chainloader \"($tabula_disk)$tabula_program\"\n\
         \x20   boot\n\
         \x20 fi\n\
         done\n\
         echo 'tabula: no local disk to boot; back to the firmware'\n\
         exit 1\n"
    );
    let mut arm = selection(Decision::Local);
    arm.firmware = Firmware::EfiArm64;
    let got = render(&arm).unwrap();
    assert!(
        got.contains("for tabula_program in /EFI/BOOT/BOOTAA64.EFI /EFI/debian/shimaa64.efi "),
        "{got}"
    );
    assert!(!got.contains("X64"), "{got}");
    let sel = selection(Decision::Ignore {
        reason: IgnoreReason::PinnedNone {
            target: "evil'\nshell".into(),
        },
    });
    let got = render(&sel).unwrap();
    assert_eq!(
        got,
        "echo 'tabula: not booting 52:54:00:00:00:01: pinned to none by evil??shell'\nexit 1\n"
    );
}

#[test]
fn injection_is_refused() {
    for bad in ["quiet' ; reboot '", "a\nreboot"] {
        let sel = selection(Decision::Boot {
            plan: Box::new(plan(bad)),
        });
        let e = render(&sel).unwrap_err();
        assert_eq!(e.what, "kernel command line", "{e}");
    }
    // `$` and `;` are inert inside single quotes: passed through as written.
    let sel = selection(Decision::Boot {
        plan: Box::new(plan("a=${x};b")),
    });
    assert!(render(&sel).unwrap().contains(" 'a=${x};b'\n"));
    // Blob names are percent-encoded into their paths: nothing reaches GRUB raw.
    let mut p = plan("quiet");
    p.initrds[0].name = "x'\nreboot".into();
    let sel = selection(Decision::Boot { plan: Box::new(p) });
    let text = render(&sel).unwrap_or_else(|e| e.to_string());
    assert!(!text.contains("\nreboot"), "{text}");
}
