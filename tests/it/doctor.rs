//! `tabula doctor` as an operator runs it: one line per check, exit status 1 on a fail,
//! it names who holds a port tabula wants, and checks DHCP interfaces (in a namespace the
//! test owns). It must not create the data directory or the database it inspects.

use crate::common::Env;

#[test]
fn doctor_names_a_held_port_and_fails() {
    let env = Env::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let cfg = env.dir.path().join("doctor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let r = env.run(&["--config", cfg.to_str().unwrap(), "doctor"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port} (http.listen)")))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        line.starts_with("fail  ports:") && line.contains("; fix: "),
        "{line}"
    );
    // The test binary holds it: named by its command (truncated to 15 bytes by the kernel).
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    assert!(r.stderr.contains("1 check(s) failed"), "{}", r.stderr);
    for name in [
        "interfaces",
        "capabilities",
        "loaders",
        "store",
        "disk",
        "data dir",
    ] {
        assert!(
            r.stdout.contains(&format!(" {name}: ")),
            "no {name} line:\n{}",
            r.stdout
        );
    }
    assert!(!env.data().exists(), "doctor created the data directory");

    drop(held);
    let r = env.run(&["--config", cfg.to_str().unwrap(), "doctor"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("\nfail"), "{}", r.stdout);
}

/// DHCP in full mode, inside a namespace the test owns: the served interface is found
/// with its address inside the configured subnet, a misspelt one is named as missing,
/// the DHCP port is free, and root has the capabilities DHCP needs.
#[test]
fn doctor_checks_dhcp_interfaces_in_a_namespace() {
    use crate::netns::{Lab, sh};
    let env = Env::new();
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, _) = lab.veth(&s, &c, "d");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.7.1/24", "dev", &vs]);
    let cfg = env.dir.path().join("dhcp.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nadvertise = \"10.99.7.1\"\n[dhcp]\nmode = \"full\"\ninterfaces = [\"{vs}\", \"nosuch0\"]\n\
             [[dhcp.subnets]]\nnetwork = \"10.99.7.0/24\"\npools = [\"10.99.7.100-10.99.7.150\"]\n\
             [tftp]\nenabled = false\n[http]\nlisten = \"10.99.7.1:8080\"\n[api]\nenabled = false\n"
        ),
    )
    .unwrap();
    let data = env.data();
    let out = lab.exec(
        &s,
        &[
            "env",
            &format!("TABULA_DATA_DIR={}", data.display()),
            env!("CARGO_BIN_EXE_tabula"),
            "--config",
            cfg.to_str().unwrap(),
            "doctor",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        format!("ok    interfaces: {vs} 10.99.7.1/24"),
        "fail  interfaces: nosuch0 (dhcp.interfaces) does not exist".to_string(),
        format!("ok    interfaces: 10.99.7.1 (server.advertise) is on {vs}"),
        format!("ok    interfaces: 10.99.7.1 (http.listen) is on {vs}"),
        "ok    ports: udp 0.0.0.0:67 (dhcp.listen_port) free".to_string(),
        "ok    capabilities: CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_NET_ADMIN present".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&want)),
            "no `{want}` in:\n{stdout}"
        );
    }
}
