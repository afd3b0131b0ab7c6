//! What the Debian package ships, checked without building it (tests/deb.sh builds,
//! installs and runs it): the unit runs the binary the package installs, as the `tabula`
//! user with exactly the capabilities serving needs and the hardening the service promises;
//! the conffile turns DHCP off; the maintainer scripts never enable or start the service.

use std::path::Path;

fn repo_file(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()
}

/// The value of `Key=` in the unit (the last one, as systemd takes it).
fn key<'a>(unit: &'a str, k: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
}

#[test]
fn the_unit_runs_the_packaged_binary_unprivileged_and_confined() {
    let unit = repo_file("config/tabula.service");
    let manifest = repo_file("Cargo.toml");
    assert_eq!(key(&unit, "ExecStart"), Some("/usr/bin/tabula serve"));
    assert!(manifest.contains(r#"["target/release/tabula", "usr/bin/", "755"]"#));
    assert!(
        manifest
            .contains(r#"["config/tabula.service", "lib/systemd/system/tabula.service", "644"]"#)
    );
    assert_eq!(key(&unit, "User"), Some("tabula"));
    let caps = "CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN";
    assert_eq!(key(&unit, "AmbientCapabilities"), Some(caps));
    assert_eq!(key(&unit, "CapabilityBoundingSet"), Some(caps));
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/tabula"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("UMask", "0077"),
    ] {
        assert_eq!(key(&unit, k), Some(v), "{k}=");
    }
    let nofile: u64 = key(&unit, "LimitNOFILE").unwrap().parse().unwrap();
    assert!(nofile >= 65536, "LimitNOFILE={nofile}");
}

#[test]
fn the_conffile_has_dhcp_off_and_the_scripts_never_start_the_service() {
    let cfg = repo_file("config/tabula.toml");
    assert!(
        cfg.lines().any(|l| l == r#"mode = "off""#),
        "config/tabula.toml must ship DHCP off"
    );
    let manifest = repo_file("Cargo.toml");
    assert!(manifest.contains(r#"["config/tabula.toml", "etc/tabula/tabula.toml", "644"]"#));
    for script in ["debian/postinst", "debian/prerm", "debian/postrm"] {
        let text = repo_file(script);
        for word in [
            "systemctl start",
            "systemctl enable",
            "invoke start",
            "helper enable",
            "--now",
        ] {
            assert!(!text.contains(word), "{script} contains `{word}`");
        }
    }
    let postinst = repo_file("debian/postinst");
    assert!(
        postinst.contains("adduser --system") && postinst.contains("install -d -m 0700 -o tabula")
    );
    let postrm = repo_file("debian/postrm");
    let purge = postrm.split("purge)").nth(1).unwrap();
    assert!(
        purge.contains("rm -rf /var/lib/tabula"),
        "purge must delete the state"
    );
}
