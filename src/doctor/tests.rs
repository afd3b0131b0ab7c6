//! The doctor's rules on made-up facts: each check passes on a healthy host and names the
//! problem and the fix on a broken one.

use std::net::SocketAddr;
use std::path::Path;

use super::*;
use crate::config::Config;
use crate::loader_files::{LoaderCheck, Resolution};

fn config(text: &str) -> Config {
    Config::parse(text, "test.toml", Some(Path::new("/var/lib/tabula"))).unwrap()
}

const FULL: &str = "[server]\nadvertise = \"10.0.0.1\"\n[dhcp]\nmode = \"full\"\ninterfaces = [\"eth1\"]\n\
    [[dhcp.subnets]]\nnetwork = \"10.0.0.0/24\"\npools = [\"10.0.0.100-10.0.0.199\"]\n";

fn loader(key: &'static str, name: &str, resolution: Resolution) -> LoaderCheck {
    LoaderCheck {
        key,
        name: name.into(),
        root: "/usr/lib/ipxe".into(),
        resolution,
    }
}

/// A healthy host for FULL: eth1 with 10.0.0.1, every capability, loaders present.
fn healthy() -> Facts {
    Facts {
        interfaces: vec![
            HostInterface {
                name: "lo".into(),
                up: true,
                addrs: vec!["127.0.0.1/8".parse().unwrap()],
            },
            HostInterface {
                name: "eth1".into(),
                up: true,
                addrs: vec!["10.0.0.1/24".parse().unwrap()],
            },
        ],
        cap_eff: Some(0x3400),
        unprivileged_port_start: 1024,
        sockets: vec![],
        loaders: vec![
            loader(
                "bios",
                "undionly.kpxe",
                Resolution::File {
                    path: "/usr/lib/ipxe/undionly.kpxe".into(),
                    linked: false,
                },
            ),
            loader(
                "efi_x64",
                "snponly.efi",
                Resolution::File {
                    path: "/usr/lib/ipxe/snponly.efi".into(),
                    linked: false,
                },
            ),
        ],
        schema: Ok(SchemaState::Current(3)),
        store_writable: Some(true),
        disk: Ok(Disk {
            path: "/var/lib/tabula".into(),
            free_bytes: 50 << 30,
            total_bytes: 100 << 30,
        }),
        data_dir: DataDir::Present {
            mode: 0o700,
            owner_uid: 100,
            owner_name: Some("tabula".into()),
            writable: true,
        },
        uid: 100,
    }
}

fn by_name<'a>(checks: &'a [Check], name: &str) -> Vec<&'a Check> {
    checks.iter().filter(|c| c.name == name).collect()
}

fn worst(checks: &[Check], name: &str) -> Status {
    by_name(checks, name)
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap()
}

#[test]
fn a_healthy_host_is_all_ok() {
    let out = checks(&config(FULL), &healthy());
    for c in &out {
        assert_eq!(c.status, Status::Ok, "{}", c.line());
        assert!(c.fix.is_none());
    }
    for name in [
        "interfaces",
        "ports",
        "capabilities",
        "loaders",
        "store",
        "disk",
        "data dir",
    ] {
        assert!(!by_name(&out, name).is_empty(), "no {name} line");
    }
}

#[test]
fn interfaces_must_exist_with_the_addresses_the_config_names() {
    let cfg = config(FULL);
    let mut f = healthy();
    f.interfaces.retain(|i| i.name != "eth1");
    let out = checks(&cfg, &f);
    let lines: Vec<String> = by_name(&out, "interfaces")
        .iter()
        .map(|c| c.line())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fail") && l.contains("eth1 (dhcp.interfaces) does not exist")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fail")
                && l.contains("no interface has 10.0.0.1 (server.advertise)")),
        "{lines:?}"
    );

    let mut f = healthy();
    f.interfaces[1].addrs = vec!["192.168.5.1/24".parse().unwrap()];
    let out = checks(&cfg, &f);
    assert_eq!(worst(&out, "interfaces"), Status::Fail);
    assert!(
        out.iter()
            .any(|c| c.status == Status::Warn && c.detail.contains("in no [[dhcp.subnets]]"))
    );

    let mut f = healthy();
    f.interfaces[1].up = false;
    assert!(
        checks(&cfg, &f)
            .iter()
            .any(|c| c.detail == "eth1 is down" && c.status == Status::Fail)
    );

    // A listen address nobody has.
    let cfg = config("[http]\nlisten = \"10.9.9.9:8080\"\n");
    let out = checks(&cfg, &healthy());
    assert!(
        out.iter()
            .any(|c| c.status == Status::Fail && c.detail.contains("10.9.9.9 (http.listen)"))
    );
}

fn held(proto: Proto, addr: &str, owner: Option<(u32, &str)>) -> SocketUse {
    SocketUse {
        proto,
        local: addr.parse::<SocketAddr>().unwrap(),
        inode: 1,
        owner: owner.map(|(p, c)| (p, c.to_string())),
    }
}

#[test]
fn ports_must_be_free_or_held_by_tabula() {
    let cfg = config(FULL);
    let mut f = healthy();
    f.sockets = vec![held(Proto::Udp, "0.0.0.0:67", Some((812, "dnsmasq")))];
    let out = checks(&cfg, &f);
    let c = out
        .iter()
        .find(|c| c.detail.contains("dhcp.listen_port"))
        .unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("dnsmasq (pid 812)"), "{}", c.line());
    assert!(c.fix.as_deref().unwrap().contains("dhcp.listen_port"));

    f.sockets = vec![
        held(Proto::Udp, "0.0.0.0:67", Some((77, "tabula"))),
        held(Proto::Tcp, "0.0.0.0:8080", Some((77, "tabula"))),
        // TCP 69 and UDP 8080 do not collide with UDP 69 / TCP 8080.
        held(Proto::Tcp, "0.0.0.0:69", Some((5, "other"))),
        held(Proto::Udp, "0.0.0.0:8080", Some((5, "other"))),
    ];
    let out = checks(&cfg, &f);
    assert_eq!(
        worst(&out, "ports"),
        Status::Ok,
        "{:#?}",
        by_name(&out, "ports")
    );
    assert!(
        out.iter()
            .any(|c| c.detail.contains("held by tabula (pid 77)"))
    );

    // A specific address held elsewhere does not collide with another specific address.
    let cfg = config("[http]\nlisten = \"127.0.0.1:8080\"\n");
    f.sockets = vec![held(Proto::Tcp, "10.0.0.1:8080", Some((5, "nginx")))];
    assert_eq!(worst(&checks(&cfg, &f), "ports"), Status::Ok);
    f.sockets = vec![held(Proto::Tcp, "[::]:8080", None)];
    let out = checks(&cfg, &f);
    assert_eq!(worst(&out, "ports"), Status::Fail);
    assert!(out.iter().any(|c| c.detail.contains("cannot see")));
}

#[test]
fn capabilities_follow_what_the_config_binds() {
    let cfg = config(FULL);
    let mut f = healthy();
    f.cap_eff = Some(1 << procfs::CAP_NET_BIND_SERVICE);
    let c = checks(&cfg, &f)
        .into_iter()
        .find(|c| c.name == "capabilities")
        .unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("CAP_NET_RAW") && c.detail.contains("CAP_NET_ADMIN"),
        "{}",
        c.line()
    );
    assert!(!c.detail.contains("CAP_NET_BIND_SERVICE"), "{}", c.line());

    // DHCP off, TFTP on 69: only the bind capability, unless the sysctl lowers the bar.
    let cfg = config("");
    f.cap_eff = Some(0);
    let c = checks(&cfg, &f)
        .into_iter()
        .find(|c| c.name == "capabilities")
        .unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("CAP_NET_BIND_SERVICE (ports udp 69)"),
        "{}",
        c.line()
    );
    f.unprivileged_port_start = 0;
    let c = checks(&cfg, &f)
        .into_iter()
        .find(|c| c.name == "capabilities")
        .unwrap();
    assert_eq!(c.status, Status::Ok, "{}", c.line());
}

#[test]
fn loaders_name_each_missing_or_unservable_one_on_its_own_line() {
    let cfg = config(FULL);
    let mut f = healthy();
    // Debian's ipxe.efi, a link out of the root: served, and shown with its file.
    f.loaders.push(loader(
        "efi_ia32",
        "ipxe.efi",
        Resolution::File {
            path: "/boot/ipxe.efi".into(),
            linked: true,
        },
    ));
    f.loaders
        .push(loader("efi_arm64", "ipxe-arm64.efi", Resolution::Missing));
    f.loaders.push(loader(
        "efi_x64",
        "gone.efi",
        Resolution::Dangling {
            link: "/usr/lib/ipxe/gone.efi".into(),
            target: "/boot/gone.efi".into(),
        },
    ));
    let out = checks(&cfg, &f);
    let lines = by_name(&out, "loaders");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0].status, Status::Ok);
    assert!(
        lines[0].detail.contains("ipxe.efi -> /boot/ipxe.efi"),
        "{}",
        lines[0].line()
    );
    assert_eq!(
        (lines[1].status, lines[2].status),
        (Status::Warn, Status::Warn)
    );
    assert!(
        lines[1]
            .line()
            .contains("dhcp.loaders.efi_arm64 = \"ipxe-arm64.efi\": /usr/lib/ipxe/ipxe-arm64.efi does not exist; fix: install"),
        "{}",
        lines[1].line()
    );
    assert!(
        lines[2].line().contains(
            "/usr/lib/ipxe/gone.efi is a symlink to /boot/gone.efi, which does not exist; fix: "
        ),
        "{}",
        lines[2].line()
    );
    f.loaders.retain(|l| !l.servable());
    let out = checks(&cfg, &f);
    let lines = by_name(&out, "loaders");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|c| c.status == Status::Fail),
        "nothing servable at all"
    );
}

/// Issue 18: with DHCP off nothing hands out the default `ipxe-ia32.efi` and
/// `ipxe-arm64.efi` (Debian ships neither): no warning for them; a loader named on
/// purpose still warns, and with DHCP on every missing one does.
#[test]
fn loaders_no_front_end_hands_out_are_quiet() {
    let mut f = healthy();
    f.loaders
        .push(loader("efi_ia32", "ipxe-ia32.efi", Resolution::Missing));
    f.loaders
        .push(loader("efi_arm64", "ipxe-arm64.efi", Resolution::Missing));
    let off = checks(&config(""), &f);
    let lines = by_name(&off, "loaders");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].status, Status::Ok, "{}", lines[0].line());
    let full = checks(&config(FULL), &f);
    let lines = by_name(&full, "loaders");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1..].iter().all(|c| c.status == Status::Warn));

    f.loaders
        .push(loader("efi_arm64", "grubnetaa64.efi", Resolution::Missing));
    let off = checks(&config(""), &f);
    let lines = by_name(&off, "loaders");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].line().contains("grubnetaa64.efi"),
        "{}",
        lines[1].line()
    );

    // Nothing servable and nothing handed out: one ok line saying so.
    f.loaders
        .retain(|l| !l.servable() && l.name != "grubnetaa64.efi");
    let off = checks(&config(""), &f);
    let lines = by_name(&off, "loaders");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].status, Status::Ok, "{}", lines[0].line());
    assert!(
        lines[0].line().contains("dhcp.mode = off"),
        "{}",
        lines[0].line()
    );
}

#[test]
fn the_store_must_open_with_a_current_schema() {
    let cfg = config("");
    let grade = |s: Result<SchemaState, String>| {
        let mut f = healthy();
        f.schema = s;
        checks(&cfg, &f)
            .into_iter()
            .find(|c| c.name == "store")
            .unwrap()
    };
    assert_eq!(grade(Ok(SchemaState::Current(3))).status, Status::Ok);
    assert_eq!(
        grade(Ok(SchemaState::Behind { db: 2, known: 3 })).status,
        Status::Warn
    );
    assert_eq!(
        grade(Ok(SchemaState::Missing("/x.db".into()))).status,
        Status::Warn
    );
    let newer = grade(Ok(SchemaState::Newer { db: 4, known: 3 }));
    assert_eq!(newer.status, Status::Fail);
    assert!(newer.detail.contains("schema 4") && newer.detail.contains("(3)"));
    assert_eq!(grade(Ok(SchemaState::Dirty(3))).status, Status::Fail);
    assert_eq!(grade(Err("cannot read".into())).status, Status::Fail);

    // A database left by a root run from a clone: the service could not write it.
    let mut f = healthy();
    f.store_writable = Some(false);
    let c = checks(&cfg, &f)
        .into_iter()
        .find(|c| c.name == "store")
        .unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("chown -R tabula: /var/lib/tabula"));
}

#[test]
fn disk_space_and_the_data_dir() {
    let cfg = config("");
    let mut f = healthy();
    f.disk = Ok(Disk {
        path: "/".into(),
        free_bytes: 100 << 20,
        total_bytes: 100 << 30,
    });
    let out = checks(&cfg, &f);
    assert_eq!(worst(&out, "disk"), Status::Fail);
    f.disk = Ok(Disk {
        path: "/".into(),
        free_bytes: 3 << 30,
        total_bytes: 100 << 30,
    });
    assert_eq!(worst(&checks(&cfg, &f), "disk"), Status::Warn);

    f.data_dir = DataDir::Present {
        mode: 0o755,
        owner_uid: 100,
        owner_name: None,
        writable: true,
    };
    assert_eq!(worst(&checks(&cfg, &f), "data dir"), Status::Warn);
    f.data_dir = DataDir::Present {
        mode: 0o700,
        owner_uid: 100,
        owner_name: Some("tabula".into()),
        writable: true,
    };
    f.uid = 0;
    let c = checks(&cfg, &f)
        .into_iter()
        .find(|c| c.name == "data dir")
        .unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.unwrap().contains("sudo -u tabula"));
    f.data_dir = DataDir::Present {
        mode: 0o700,
        owner_uid: 100,
        owner_name: None,
        writable: false,
    };
    assert_eq!(worst(&checks(&cfg, &f), "data dir"), Status::Fail);
}

#[test]
fn lines_carry_status_name_detail_and_fix() {
    let c = Check::fail("ports", "udp 0.0.0.0:67 in use", "stop it");
    assert_eq!(c.line(), "fail  ports: udp 0.0.0.0:67 in use; fix: stop it");
    assert_eq!(Check::ok("disk", "fine").line(), "ok    disk: fine");
}
