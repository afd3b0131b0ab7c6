//! Golden tests of rendered scripts, including injection attempts.

use super::*;
use crate::boot::Digest;
use crate::boot::IgnoreReason;
use crate::http::program_fixtures::{plan, selection};

#[test]
fn boot_script_golden() {
    let sel = selection(Decision::Boot {
        plan: Box::new(plan("console=ttyS0 initrd=initrd.img")),
    });
    let got = render(&sel, "http://10.0.0.1:8080").unwrap();
    let k = Digest::of(b"k").hex();
    let i = Digest::of(b"i").hex();
    let m = Digest::of(b"m");
    let want = format!(
        "#!ipxe\n\
         # tabula: demo@1 manifest {m} for 52:54:00:00:00:01 (machine:n1 -> demo@1)\n\
         echo tabula: 52:54:00:00:00:01 boots demo@1\n\
         kernel http://10.0.0.1:8080/blobs/sha256/{k}/vmlinuz?mac=52-54-00-00-00-01&as=kernel console=ttyS0 initrd=initrd.img || goto failed\n\
         initrd http://10.0.0.1:8080/blobs/sha256/{i}/initrd.img?mac=52-54-00-00-00-01&as=initrd || goto failed\n\
         boot || goto failed\n\
         :failed\n\
         echo tabula: booting demo@1 failed; asking again in 10 s\n\
         sleep 10\n\
         chain --replace http://10.0.0.1:8080/boot.ipxe?mac=52-54-00-00-00-01&arch=efi-x64\n"
    );
    assert_eq!(got, want);
}

#[test]
fn local_and_ignore_scripts() {
    assert_eq!(
        render(&selection(Decision::Local), "http://x").unwrap(),
        "#!ipxe\necho tabula: 52:54:00:00:00:01 boots from local disk (machine:n1 -> demo@1)\nexit 1\n"
    );
    let sel = selection(Decision::Ignore {
        reason: IgnoreReason::PinnedNone {
            target: "evil\nshell\n${x}".into(),
        },
    });
    assert_eq!(
        render(&sel, "http://x").unwrap(),
        "#!ipxe\necho tabula: not booting 52:54:00:00:00:01: pinned to none by evil?shell??{x}\nexit 1\n"
    );
}

#[test]
fn injection_is_refused() {
    for bad in ["quiet\nshell", "quiet ${net0/ip}", "a\rb"] {
        let sel = selection(Decision::Boot {
            plan: Box::new(plan(bad)),
        });
        let e = render(&sel, "http://x").unwrap_err();
        assert_eq!(e.what, "kernel command line");
    }
    let mut p = plan("quiet");
    p.initrds[0].name = "x\nshell".into();
    let sel = selection(Decision::Boot { plan: Box::new(p) });
    assert!(render(&sel, "http://x").is_err());
    let sel = selection(Decision::Boot {
        plan: Box::new(plan("quiet")),
    });
    assert!(render(&sel, "http://x/\nshell").is_err());
}

#[test]
fn a_script_with_peers_names_each_server_in_turn() {
    let sel = selection(Decision::Boot {
        plan: Box::new(plan("console=ttyS0")),
    });
    let got = render_with_peers(
        &sel,
        "http://10.0.0.1:8080",
        &["http://10.0.0.2:8080".into()],
    )
    .unwrap();
    let k = Digest::of(b"k").hex();
    let i = Digest::of(b"i").hex();
    let q = "mac=52-54-00-00-00-01";
    let servers = "tabula.servers=http://10.0.0.1:8080,http://10.0.0.2:8080";
    assert!(
        got.contains(&format!(
            "kernel http://10.0.0.1:8080/blobs/sha256/{k}/vmlinuz?{q}&as=kernel console=ttyS0 {servers} || \
             kernel http://10.0.0.2:8080/blobs/sha256/{k}/vmlinuz?{q}&as=kernel console=ttyS0 {servers} || goto failed\n"
        )),
        "{got}"
    );
    assert!(
        got.contains(&format!(
            "initrd http://10.0.0.1:8080/blobs/sha256/{i}/initrd.img?{q}&as=initrd || \
             initrd http://10.0.0.2:8080/blobs/sha256/{i}/initrd.img?{q}&as=initrd || goto failed\n"
        )),
        "{got}"
    );
    assert!(
        got.ends_with(&format!(
            "chain --replace http://10.0.0.1:8080/boot.ipxe?{q}&arch=efi-x64 || \
             chain --replace http://10.0.0.2:8080/boot.ipxe?{q}&arch=efi-x64\n"
        )),
        "{got}"
    );
    // A peer URL iPXE would interpret is refused, as the base URL is.
    assert!(render_with_peers(&sel, "http://10.0.0.1:8080", &["http://x/${evil}".into()]).is_err());
    // Without peers the script is the single-server one.
    assert_eq!(
        render_with_peers(&sel, "http://10.0.0.1:8080", &[]).unwrap(),
        render(&sel, "http://10.0.0.1:8080").unwrap()
    );
}
