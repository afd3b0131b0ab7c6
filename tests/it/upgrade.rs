//! Upgrades: today's binary opens a state directory made by the previous release
//! (`tests/fixtures/previous-release/`, see its README) and everything is still there:
//! image versions and channels, machines, pins and their history, leases, boot events,
//! blobs that verify. Migrations only go forward: a database whose schema is newer than
//! this binary is refused with one line naming both versions, and is left byte for byte
//! as it was.

use std::path::Path;

use crate::common::{Env, sha256_of};

/// Copies the fixture's `data/` into the test's data directory (blobs stay read-only).
fn previous_release(env: &Env) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous-release/data");
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(env.data())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manifest digests the previous release published, from its own listing.
fn fixture_manifests() -> Vec<String> {
    let listing = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous-release/CONTENTS.txt"),
    )
    .unwrap();
    listing
        .lines()
        .filter(|l| l.starts_with("demo "))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_previous_release_database_opens_with_everything_in_it() {
    let env = Env::new();
    previous_release(&env);
    let manifests = fixture_manifests();
    assert_eq!(manifests.len(), 2, "the fixture lists demo@1 and demo@2");

    let images = env.ok(&["image", "list"]);
    for (v, m) in ["1", "2"].iter().zip(&manifests) {
        assert!(
            images.lines().any(|l| l.starts_with("demo ")
                && l.contains(m)
                && l.split_whitespace().nth(1) == Some(v)),
            "demo@{v} {m} missing after the upgrade:\n{images}"
        );
    }
    assert!(
        images
            .lines()
            .any(|l| l.contains(&manifests[0]) && l.contains("stable")),
        "{images}"
    );
    // The blobs the old release stored are what the new one serves.
    env.ok(&["image", "verify"]);

    let machines = env.ok(&["machine", "list"]);
    assert!(
        machines.contains("n1")
            && machines.contains("52:54:00:f1:00:01")
            && machines.contains("role=web"),
        "{machines}"
    );
    assert!(
        machines.contains("n2") && machines.contains("role=db"),
        "{machines}"
    );

    let pins = env.ok(&["pin", "list"]);
    for (target, reference) in [
        ("machine:n1", "demo@1"),
        ("label:role=web", "demo:stable"),
        ("default", "demo@2"),
    ] {
        assert!(
            pins.lines()
                .any(|l| l.starts_with(target) && l.contains(reference)),
            "pin {target} -> {reference} missing:\n{pins}"
        );
    }
    let history = env.ok(&["pin", "history", "n1"]);
    let changes: Vec<(String, String)> = history
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("set".to_string(), "demo@1".to_string()),
            ("set".to_string(), "demo@2".to_string()),
            ("rollback".to_string(), "demo@1".to_string())
        ],
        "{history}"
    );
    // The history goes on from the old rows: a re-pin, then a rollback to what it replaced.
    env.ok(&["pin", "set", "n1", "demo@2"]);
    env.ok(&["pin", "rollback", "n1"]);
    let history = env.ok(&["pin", "history", "n1"]);
    assert_eq!(history.lines().count(), 1 + 5, "{history}");
    assert!(
        env.ok(&["pin", "list"])
            .lines()
            .any(|l| l.starts_with("machine:n1") && l.contains("demo@1"))
    );

    let leases = env.ok(&["lease", "list"]);
    for (ip, mac) in [
        ("10.98.0.100", "52:54:00:f1:00:01"),
        ("10.98.0.101", "52:54:00:f1:00:02"),
    ] {
        assert!(
            leases
                .lines()
                .any(|l| l.starts_with(ip) && l.contains(mac) && l.contains("bound")),
            "lease {ip} {mac} missing:\n{leases}"
        );
    }

    let events = env.ok(&["events", "--json", "--last", "100"]);
    let stages: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["stage"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for want in ["dhcp-offer", "dhcp-ack", "script-sent", "booted"] {
        assert!(
            stages.iter().any(|s| s == want),
            "no {want} event after the upgrade: {stages:?}"
        );
    }
    assert_eq!(stages.len(), 6, "{events}");

    // What machine n1 boots is decided from the migrated rows.
    let explain = env.ok(&["explain", "52:54:00:f1:00:01", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&explain).unwrap();
    assert_eq!(
        v["decision"]["plan"]["manifest"],
        manifests[0].as_str(),
        "{explain}"
    );
}

#[test]
fn a_database_newer_than_the_binary_is_refused_and_left_untouched() {
    let env = Env::new();
    previous_release(&env);
    env.ok(&["image", "list"]); // migrated to today's schema
    let db = env.data().join("tabula.db");
    let known = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use sqlx::{Connection, SqliteConnection};
            let url = format!("sqlite://{}", db.display());
            let mut c = SqliteConnection::connect(&url).await.unwrap();
            let known: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&mut c)
                .await
                .unwrap();
            // What a newer tabula would leave: one migration this binary has never seen.
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?, 'from the future', true, x'00', 1)",
            )
            .bind(known + 1)
            .execute(&mut c)
            .await
            .unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
            known
        })
    };
    let before = sha256_of(&db);
    let cfg = env.dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        "[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    for args in [
        &["image", "list"][..],
        &["pin", "list"],
        &["--config", cfg, "serve"],
    ] {
        let line = env.fails(args);
        assert!(
            line.contains(&format!("schema version {}", known + 1))
                && line.contains(&format!("(up to {known})"))
                && line.contains("newer tabula")
                && line.contains(env!("CARGO_PKG_VERSION")),
            "tabula {args:?}: {line}"
        );
    }
    assert_eq!(sha256_of(&db), before, "a refused database was changed");
}
