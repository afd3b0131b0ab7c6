//! tabula on PostgreSQL: the real binary with `store.url = "postgres://…"`, against a
//! throw-away cluster the test starts itself (`tabula::store::testing::PgCluster`,
//! Debian's `postgresql` package). `tabula serve` and the CLI share the database: images
//! published and pins set by the CLI decide what `serve` answers, and the boot events
//! `serve` records are what `tabula events` reads back. Nothing lands in SQLite.
//!
//! Fails, never skips, when the cluster cannot start. The direct-kernel QEMU boot on
//! PostgreSQL is in `lab_direct_postgres.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use tabula::store::testing::PgCluster;

use crate::common::Env;

const MAC: &str = "52:54:00:00:00:51";

/// A cluster and an empty database on it, with an env whose every command uses it.
pub(crate) fn env_on_postgres() -> (PgCluster, String, Env) {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let cfg = env.dir.path().join("store.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    env.use_config(cfg);
    (pg, url, env)
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (Debian package curl) must be installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn serve_and_cli_share_a_postgres_store() {
    let (_pg, url, env) = env_on_postgres();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let kernel = env.file("vmlinuz", 1, 100_000);
    let initrd = env.file("initrd.img", 2, 50_000);
    let root = env.file("root.squashfs", 3, 200_000);
    let mut manifests = Vec::new();
    for version in ["1", "2"] {
        let out = env.ok(&[
            "image",
            "add",
            "demo",
            "--version",
            version,
            "--kernel",
            &p(&kernel),
            "--initrd",
            &p(&initrd),
            "--rootfs",
            &p(&root),
            "--cmdline",
            &format!("quiet v={version}"),
        ]);
        manifests.push(out.split_whitespace().last().unwrap().to_string());
    }
    let listed = env.ok(&["image", "list"]);
    assert!(listed.contains("demo"), "{listed}");
    env.ok(&["pin", "set", MAC, "demo@1"]);
    let explain = |want: &str| {
        let out = env.ok(&["explain", MAC, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["decision"]["action"], "boot", "{out}");
        assert_eq!(v["decision"]["plan"]["manifest"], want, "{out}");
    };
    explain(&manifests[0]);

    // The server reads the same database.
    let cfg = env.dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{url}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n"
        ),
    )
    .unwrap();
    let srv = crate::serve::start_with(&env, &cfg, false);
    let base = format!("http://{}", srv.http);
    let dashed = MAC.replace(':', "-");
    let script = |version: &str| {
        let (code, body) = curl(&[&format!(
            "{base}/boot.ipxe?mac={dashed}&platform=efi&buildarch=x86_64"
        )]);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(&format!("quiet v={version}")), "{body}");
    };
    script("1");
    // A re-pin by the CLI reaches the running server (its snapshot follows the revision).
    env.ok(&["pin", "set", MAC, "demo@2"]);
    explain(&manifests[1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = curl(&[&format!(
            "{base}/boot.ipxe?mac={dashed}&platform=efi&buildarch=x86_64"
        )]);
        if body.contains("quiet v=2") || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    script("2");
    // Reports go to the callback (with its boot's token) the served script names.
    let (_, body) = curl(&[&format!(
        "{base}/boot.ipxe?mac={dashed}&platform=efi&buildarch=x86_64"
    )]);
    let callback = crate::serve::callback_of(&body);
    assert!(callback.contains(&manifests[1][7..]), "{callback}");
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data",
        "{\"stage\":\"fetch\"}",
        "-H",
        "content-type: application/json",
        &format!("{base}{callback}/progress"),
    ]);
    assert_eq!(code, 200);
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data",
        "{}",
        "-H",
        "content-type: application/json",
        &format!("{base}{callback}/booted"),
    ]);
    assert_eq!(code, 200);

    // What serve recorded, read back by the CLI from PostgreSQL, in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events: Vec<serde_json::Value> = loop {
        let out = env.ok(&["events", MAC, "--json"]);
        let ev: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if ev.iter().any(|e| e["stage"] == "booted") || Instant::now() > deadline {
            break ev;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stages: Vec<&str> = events
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages.iter().filter(|s| **s == "booted").count(),
        1,
        "{events:#?}"
    );
    assert_eq!(stages.last(), Some(&"booted"), "{events:#?}");
    assert!(stages.contains(&"script-sent"), "{events:#?}");
    assert!(stages.contains(&"progress"), "{events:#?}");
    assert_eq!(events.last().unwrap()["manifest"], manifests[1].as_str());
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let last = env.ok(&["events", MAC, "--json", "--last", "1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.contains("\"booted\""), "{last}");
    let history = env.ok(&["pin", "history", MAC]);
    assert!(
        history.contains("demo@1") && history.contains("demo@2"),
        "{history}"
    );

    drop(srv);
    assert!(
        !env.data().join("tabula.db").exists(),
        "a SQLite store was created although store.url names PostgreSQL"
    );
}
