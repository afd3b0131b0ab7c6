//! A hostile boot network, as `tabula serve` sees it: forged boot reports (no token, a
//! made-up one, another MAC's, another manifest's, by GET) record nothing while the real
//! one is recorded; and least privilege: started as root with `server.user` set to a
//! throw-away system user, the server runs as that user with exactly CAP_NET_BIND_SERVICE,
//! CAP_NET_RAW and CAP_NET_ADMIN, its state files private, and still serves TFTP, HTTP
//! and (in a network namespace) DHCP.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::{Env, stages, wait_for};
use crate::netns::{Lab, require_root, sh, start_tabula};
use crate::serve::{callback_of, curl, start, start_with, status};

const A: &str = "52-54-00-00-0a-01";
const B: &str = "52-54-00-00-0a-02";

fn post(url: &str) -> u16 {
    let (h, _) = curl(&["-X", "POST", "--data", "{}", url]);
    status(&h)
}

#[test]
fn forged_reports_record_nothing_and_the_real_one_is_recorded() {
    let env = Env::new();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let k1 = env.file("k1", 1, 4000);
    let k2 = env.file("k2", 2, 4000);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&k1),
    ]);
    let m2 = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "2",
        "--kernel",
        &p(&k2),
    ]);
    let m2 = m2.split_whitespace().last().unwrap()[7..].to_string();
    env.ok(&["pin", "set", "default", "demo@1"]);
    let srv = start(&env, None);
    let base = format!("http://{}", srv.http);
    let script = |mac: &str| {
        let (_, b) = curl(&[&format!("{base}/boot.ipxe?mac={mac}")]);
        callback_of(&String::from_utf8(b).unwrap())
    };
    let (cb_a, cb_b) = (script(A), script(B));
    // /boot/<mac>/<manifest>/<token>
    let parts = |cb: &str| -> Vec<String> { cb.split('/').map(String::from).collect() };
    let (pa, pb) = (parts(&cb_a), parts(&cb_b));
    assert_eq!(pa[3], pb[3], "one manifest for both");
    assert_ne!(pa[4], pb[4], "one token per boot");
    let m1 = &pa[3];

    for (what, url) in [
        ("no token", format!("{base}/boot/{A}/{m1}/booted")),
        (
            "a made-up token",
            format!("{base}/boot/{A}/{m1}/{}/booted", "ab".repeat(24)),
        ),
        ("not a token", format!("{base}/boot/{A}/{m1}/zz/failed")),
        (
            "another MAC's token",
            format!("{base}/boot/{A}/{m1}/{}/booted", pb[4]),
        ),
        (
            "another manifest",
            format!("{base}/boot/{A}/{m2}/{}/booted", pa[4]),
        ),
        (
            "progress without a token",
            format!("{base}/boot/{A}/{m1}/progress"),
        ),
    ] {
        assert_eq!(post(&url), 403, "{what}: {url}");
    }
    // A report is a write: by GET or HEAD (a link, an image tag) it is not one.
    for args in [vec![], vec!["-I"]] {
        let url = format!("{base}{cb_a}/booted");
        let mut a: Vec<&str> = args.clone();
        a.push(&url);
        let (h, _) = curl(&a);
        assert_eq!(status(&h), 405, "{h}");
        assert!(h.contains("allow: post\r\n"), "{h}");
    }

    // B's real report is recorded; once it is in the store, A's forgeries would be too.
    assert_eq!(post(&format!("{base}{cb_b}/booted")), 200);
    wait_for("B's booted event", 15, || {
        stages(&env.events(B)).contains(&"booted".to_string())
    });
    let a = stages(&env.events(A));
    assert_eq!(a, ["script-sent"], "nothing but the script for A: {a:?}");

    // And A's own, with its token, is.
    assert_eq!(post(&format!("{base}{cb_a}/booted")), 200);
    wait_for("A's booted event", 15, || {
        stages(&env.events(A)).contains(&"booted".to_string())
    });
    let ev = env.events(A);
    assert_eq!(stages(&ev), ["script-sent", "booted"]);
    assert_eq!(ev[1]["manifest"], format!("sha256:{m1}"));

    // A download naming a MAC no script was served to is recorded, unverified.
    let khex = crate::common::sha256_of(&k2)[7..].to_string();
    let (h, _) = curl(&[&format!(
        "{base}/blobs/sha256/{khex}/k?mac=52-54-00-00-0a-03&as=kernel"
    )]);
    assert_eq!(status(&h), 200);
    wait_for("the unverified kernel event", 15, || {
        !env.events("52-54-00-00-0a-03").is_empty()
    });
    let ev = env.events("52-54-00-00-0a-03");
    assert_eq!(ev[0]["detail"]["unverified"], true, "{ev:?}");
    // A's own kernel (demo@1, in the plan it was served) is verified.
    let k1hex = crate::common::sha256_of(&k1)[7..].to_string();
    curl(&[&format!("{base}/blobs/sha256/{k1hex}/k?mac={A}&as=kernel")]);
    wait_for("A's kernel event", 15, || env.events(A).len() == 3);
    assert_eq!(env.events(A)[2]["detail"].get("unverified"), None);
}

/// A system user for one test, removed when dropped (also when the test panics).
struct TestUser {
    name: String,
}

impl TestUser {
    /// `tabula-test-<pid>-<tag>` (tests of one run go in parallel).
    fn new(tag: &str) -> TestUser {
        let name = format!("tabula-test-{}-{tag}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        sh(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        TestUser { name }
    }

    fn id(&self, flag: &str) -> String {
        let o = Command::new("id")
            .args([flag, &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// `Uid:`, `Gid:`, `CapEff:`, `CapPrm:` of a process.
fn proc_status(pid: u32) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

const KEPT: &str = "0000000000003400"; // NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13)

fn check_dropped(pid: u32, user: &TestUser) {
    let st = proc_status(pid);
    let (uid, gid) = (user.id("-u"), user.id("-g"));
    assert_eq!(st["Uid"], format!("{uid}\t{uid}\t{uid}\t{uid}"), "{st:?}");
    assert_eq!(st["Gid"], format!("{gid}\t{gid}\t{gid}\t{gid}"), "{st:?}");
    assert_eq!(st["CapEff"], KEPT);
    assert_eq!(st["CapPrm"], KEPT);
    assert_eq!(st["CapInh"], "0000000000000000");
    assert_eq!(st["NoNewPrivs"], "1");
    // Every thread, not just the main one (capabilities are per thread).
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let s = std::fs::read_to_string(t.join("status")).unwrap();
        assert!(
            s.contains(&format!("CapPrm:\t{KEPT}")),
            "{}: {s}",
            t.display()
        );
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn owner(p: &std::path::Path) -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap())
}

#[test]
fn serve_drops_to_server_user_with_three_capabilities() {
    require_root();
    let env = Env::new();
    // The test's temporary directory is root's 0700: the dropped server must reach in.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let k = env.file("k", 1, 4000);
    env.ok(&["image", "add", "demo", "--version", "1", "--kernel", &p(&k)]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir(&loaders).unwrap();
    std::fs::write(loaders.join("undionly.kpxe"), b"loader bytes").unwrap();
    let user = TestUser::new("s");
    let cfg = env.dir.path().join("drop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nuser = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
            user.name,
            loaders.display()
        ),
    )
    .unwrap();
    let srv = start_with(&env, &cfg, true);
    check_dropped(srv.child.id(), &user);

    // HTTP: a script, and a report with its token (the store is writable as the user).
    let base = format!("http://{}", srv.http);
    let (_, body) = curl(&[&format!("{base}/boot.ipxe?mac={A}")]);
    let cb = callback_of(&String::from_utf8(body).unwrap());
    assert_eq!(post(&format!("{base}{cb}/booted")), 200);
    wait_for("the booted event", 15, || {
        stages(&env.events(A)).contains(&"booted".to_string())
    });
    // TFTP.
    let got = env.dir.path().join("got");
    let st = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "-o"])
        .arg(&got)
        .arg(format!("tftp://{}/undionly.kpxe", srv.tftp.unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&got).unwrap(), b"loader bytes");

    // State is private to the user.
    let uid: u32 = user.id("-u").parse().unwrap();
    let data = env.data();
    assert_eq!((mode(&data), owner(&data)), (0o700, uid));
    for f in ["tabula.db", "report.key"] {
        let f = data.join(f);
        assert_eq!((mode(&f), owner(&f)), (0o600, uid), "{}", f.display());
    }
    drop(srv);
}

#[test]
fn dhcp_still_answers_after_the_drop() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let user = TestUser::new("d");
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "p");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.9.1/24", "dev", &vs]);
    let t = start_tabula(
        &env,
        &s,
        &format!(
            "[server]\nuser = \"{}\"\n[dhcp]\nmode = \"full\"\ninterfaces = [\"{vs}\"]\n\
             [[dhcp.subnets]]\nnetwork = \"10.99.9.0/24\"\npools = [\"10.99.9.100-10.99.9.150\"]\n\
             [tftp]\nenabled = false\n[http]\nlisten = \"10.99.9.1:8080\"\n[api]\nenabled = false\n",
            user.name
        ),
    );
    check_dropped(t.child.id(), &user);
    let log = env.dir.path().join("udhcpc.log");
    let script = env.dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $ip\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    let o = lab.exec(
        &c,
        &[
            "timeout",
            "30",
            "busybox",
            "udhcpc",
            "-q",
            "-n",
            "-i",
            &vc,
            "-s",
            script.to_str().unwrap(),
            "-t",
            "5",
            "-T",
            "1",
        ],
    );
    let got = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        got.contains("bound 10.99.9."),
        "no lease from the dropped server: {got} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(t);
}
