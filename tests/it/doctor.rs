//! `tabula doctor` as an operator runs it: one line per check, exit status 1 on a fail,
//! and it names who holds a port tabula wants. It must not create the data directory or
//! the database it inspects.

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
