//! Issue 18: loaders as Debian installs them. `/usr/lib/ipxe/ipxe.efi` is a symlink to
//! `/boot/ipxe.efi`; tabula serves a *configured* loader from the file its link resolves
//! to at start-up, over TFTP and over HTTP `/loaders/`, and nothing else through links
//! out of the root. A configured loader that cannot be served is named at start-up, by
//! `config check` and by `doctor`, one line each with its fix.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Env, bytes, sha256_of};
use crate::serve::{curl, start_with_stderr, status};

/// `<dir>/ipxe` (the TFTP root) with `ipxe.efi -> ../elsewhere/ipxe.efi`, `other.efi`
/// (a second, unconfigured link to the same file), `gone.efi` (dangling) and
/// `snponly.efi` (a plain file); and a config naming ipxe.efi and gone.efi as loaders.
fn debian_layout(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = env.dir.path().join("ipxe");
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("ipxe.efi"), bytes(11, 850_528)).unwrap();
    std::fs::write(root.join("snponly.efi"), bytes(12, 173_792)).unwrap();
    std::os::unix::fs::symlink("../elsewhere/ipxe.efi", root.join("ipxe.efi")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("ipxe.efi"), root.join("other.efi")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/boot/undionly.kpxe", root.join("gone.kpxe")).unwrap();
    let cfg = env.dir.path().join("debian.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[dhcp.loaders]\nbios = \"gone.kpxe\"\nefi_x64 = \"ipxe.efi\"\n\
             efi_ia32 = \"snponly.efi\"\nefi_arm64 = \"snponly.efi\"\n\
             [tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
            root.display()
        ),
    )
    .unwrap();
    (root, cfg)
}

fn tftp_get(addr: std::net::SocketAddr, name: &str, out: &Path) -> bool {
    Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--path-as-is",
            "--max-time",
            "30",
            "--tftp-blksize",
            "1468",
            "-o",
        ])
        .arg(out)
        .arg(format!("tftp://{addr}/{name}"))
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn issue_18_a_configured_loader_linked_out_of_the_root_is_served_over_tftp_and_http() {
    let env = Env::new();
    let (root, cfg) = debian_layout(&env);
    let log = env.dir.path().join("serve.log");
    let srv = start_with_stderr(
        &env,
        &cfg,
        true,
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let want = sha256_of(&env.dir.path().join("elsewhere/ipxe.efi"));

    // Over TFTP, with the client's MAC in the path as DHCP hands it out, and bare.
    for name in ["52-54-00-00-00-18/ipxe.efi", "ipxe.efi"] {
        let got = env.dir.path().join("tftp.efi");
        assert!(tftp_get(srv.tftp.unwrap(), name, &got), "TFTP {name}");
        assert_eq!(sha256_of(&got), want, "TFTP {name}");
    }
    // Over HTTP, as UEFI HTTP boot fetches it (HEAD first, for the size).
    let base = format!("http://{}", srv.http);
    let (h, body) = curl(&[&format!("{base}/loaders/ipxe.efi")]);
    assert_eq!(status(&h), 200, "{h}");
    let got = env.dir.path().join("http.efi");
    std::fs::write(&got, &body).unwrap();
    assert_eq!(sha256_of(&got), want);
    let (h, _) = curl(&["-I", "-o", "/dev/null", &format!("{base}/loaders/ipxe.efi")]);
    assert!(h.contains("content-length: 850528"), "{h}");

    // The same file under a name the config does not give: refused both ways, as before.
    let (h, _) = curl(&[&format!("{base}/loaders/other.efi")]);
    assert_eq!(status(&h), 404, "{h}");
    assert!(
        !tftp_get(srv.tftp.unwrap(), "other.efi", &got),
        "TFTP other.efi"
    );
    assert!(!tftp_get(srv.tftp.unwrap(), "../elsewhere/ipxe.efi", &got));
    // The plain file still serves; the dangling configured loader does not.
    let (h, _) = curl(&[&format!("{base}/loaders/snponly.efi")]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(!tftp_get(srv.tftp.unwrap(), "gone.kpxe", &got));
    drop(srv);

    // Start-up named the dangling loader, once, with its fix, and still served.
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("gone.kpxe")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains(&format!(
                "dhcp.loaders.bios = \"gone.kpxe\": {}/gone.kpxe is a symlink to \
                 /nonexistent/boot/undionly.kpxe, which does not exist; fix: ",
                root.canonicalize().unwrap().display()
            )),
        "{log}"
    );
    assert!(!log.contains("ipxe.efi\":"), "ipxe.efi is servable: {log}");
}

#[test]
fn issue_18_doctor_names_each_unservable_loader_and_shows_the_link() {
    let env = Env::new();
    let (_root, cfg) = debian_layout(&env);
    let r = env.run(&["--config", cfg.to_str().unwrap(), "doctor"]);
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains(" loaders: "))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].starts_with("ok    loaders: ")
            && lines[0].contains("ipxe.efi -> ")
            && lines[0].contains("elsewhere/ipxe.efi"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("warn  loaders: dhcp.loaders.bios = \"gone.kpxe\": ")
            && lines[1].contains("which does not exist; fix: "),
        "{}",
        lines[1]
    );
}
