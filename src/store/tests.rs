//! Store tests, each run on SQLite (a temp file) and on PostgreSQL (a throw-away
//! cluster, [`super::testing::PgCluster`]); see [`on_both_backends`]. A PostgreSQL test
//! fails, never skips, when the cluster cannot start. Event tests are in `tests/events.rs`.

use std::sync::Arc;

use super::testing::PgCluster;
use super::*;
use crate::boot::Machine;

/// A store under test, its URL (to reopen it), and what keeps its backend alive.
#[derive(Debug)]
pub(crate) struct Fixture {
    pub store: Store,
    pub url: String,
    _keep: Keep,
}

#[derive(Debug)]
enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Cluster(#[allow(dead_code)] Arc<PgCluster>),
}

/// A fresh SQLite store in a temp dir.
pub(crate) async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Fixture {
        store: Store::open(&url).await.unwrap(),
        url,
        _keep: Keep::Dir(dir),
    }
}

/// A fresh PostgreSQL database on the process's shared throw-away cluster.
pub(crate) async fn postgres() -> Fixture {
    let cluster = PgCluster::shared();
    let url = cluster.database().unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        store: Store::open(&url).await.unwrap(),
        url,
        _keep: Keep::Cluster(cluster),
    }
}

/// Runs each named `async fn(Fixture)` of the calling module as two tests, in
/// `sqlite::` and `postgres::`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::store::tests::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::store::tests::postgres().await).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

mod api_writes;
mod event_attempts;
mod events;

on_both_backends!(
    machines_roundtrip_and_conflicts,
    versions_channels_pins,
    reopen_keeps_state,
    concurrent_writers_queue_instead_of_failing,
);

fn machine(name: &str, mac: &str) -> Machine {
    Machine {
        name: name.into(),
        macs: vec![mac.parse().unwrap()],
        uuid: None,
        hostname: None,
        address: None,
        labels: [("rack".to_string(), "r1".to_string())].into(),
    }
}

async fn machines_roundtrip_and_conflicts(f: Fixture) {
    let s = &f.store;
    let r0 = s.revision().await.unwrap();
    s.add_machine(&machine("n1", "52:54:00:00:00:01"))
        .await
        .unwrap();
    assert!(s.revision().await.unwrap() > r0);
    let e = s
        .add_machine(&machine("n2", "52:54:00:00:00:01"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already belongs to machine \"n1\""),
        "{e}"
    );
    assert!(
        s.machine("n2").await.unwrap().is_none(),
        "failed add left nothing"
    );
    let e = s
        .add_machine(&machine("n1", "52:54:00:00:00:09"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    s.label_machine(
        "n1",
        &[("role".into(), Some("web".into())), ("rack".into(), None)],
    )
    .await
    .unwrap();
    let m = s.machine("n1").await.unwrap().unwrap();
    assert_eq!(m.labels, [("role".to_string(), "web".to_string())].into());
    assert!(s.remove_machine("n1").await.unwrap());
    assert!(!s.remove_machine("n1").await.unwrap());
}

async fn versions_channels_pins(f: Fixture) {
    let s = &f.store;
    assert_eq!(
        s.insert_version("demo", "1", "sha256:aa").await.unwrap(),
        None
    );
    assert_eq!(
        s.insert_version("demo", "1", "sha256:bb").await.unwrap(),
        Some("sha256:aa".into())
    );
    s.set_channel("demo", "stable", "1").await.unwrap();
    assert!(
        s.set_channel("demo", "stable", "9").await.is_err(),
        "FK on version"
    );
    let e = s.remove_version("demo", "1", &[]).await.unwrap_err();
    assert!(e.to_string().contains("channel(s) stable"), "{e}");
    s.insert_version("demo", "2", "sha256:cc").await.unwrap();
    s.set_channel("demo", "stable", "2").await.unwrap();
    s.set_pin("default", "demo@1", &[]).await.unwrap();
    let e = s
        .remove_version("demo", "1", &["demo@1".into()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pinned by default"), "{e}");
    assert!(s.remove_pin("default").await.unwrap());
    assert!(
        s.remove_version("demo", "1", &["demo@1".into()])
            .await
            .unwrap()
    );
    let h = s.channel_history("demo", "stable").await.unwrap();
    assert_eq!(
        h.iter()
            .map(|m| m.version.clone().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    let ph = s.pin_history("default").await.unwrap();
    assert_eq!(ph.len(), 2);
    assert_eq!(ph[1].reference, None);
}

async fn reopen_keeps_state(f: Fixture) {
    let s = &f.store;
    s.set_pin("default", "local", &[]).await.unwrap();
    s.close().await;
    let s = Store::open(&f.url).await.unwrap();
    assert_eq!(s.pins().await.unwrap()[0].reference, "local");
}

async fn concurrent_writers_queue_instead_of_failing(f: Fixture) {
    let s = f.store.clone();
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("n{i}");
            let mac = format!("52:54:00:00:01:{i:02x}");
            s.add_machine(&machine(&name, &mac)).await?;
            // A failing add (duplicate MAC) rolls back while others write.
            let dup = s.add_machine(&machine(&format!("d{i}"), &mac)).await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            s.label_machine(&name, &[("k".into(), Some("v".into()))])
                .await?;
            s.set_pin(&format!("machine:{name}"), "local", &[]).await?;
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.machines().await.unwrap().len(), 40);
    assert_eq!(s.pins().await.unwrap().len(), 40);
}

#[tokio::test]
async fn sqlite_keeps_its_durability_settings_on_every_connection() {
    let f = sqlite().await;
    assert_eq!(f.store.dialect(), Dialect::Sqlite);
    // Hold every connection of the pool at once, so each is checked.
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(f.store.pool.acquire().await.unwrap());
    }
    for c in &mut conns {
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        for (pragma, want) in [
            ("PRAGMA synchronous", 2),
            ("PRAGMA foreign_keys", 1),
            ("PRAGMA busy_timeout", 30_000),
        ] {
            let got: i64 = sqlx::query_scalar(pragma)
                .fetch_one(&mut **c)
                .await
                .unwrap();
            assert_eq!(got, want, "{pragma}");
        }
    }
}

#[tokio::test]
async fn postgres_store_says_its_dialect_and_hides_passwords() {
    let f = postgres().await;
    assert_eq!(f.store.dialect(), Dialect::Postgres);
    assert_eq!(
        Dialect::of_url("postgresql://h/db"),
        Some(Dialect::Postgres)
    );
    assert_eq!(Dialect::of_url("mysql://h/db"), None);
    assert_eq!(
        redacted("postgres://tabula:s3cret@db:5432/tabula?host=/run"),
        "postgres://tabula:***@db:5432/tabula?host=/run"
    );
    assert_eq!(redacted("postgres://tabula@db/t"), "postgres://tabula@db/t");
    assert_eq!(redacted("sqlite:///var/t.db"), "sqlite:///var/t.db");
    let e = Store::open("mysql://u:s3cret@db/t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mysql://u:***@db/t") && !e.contains("s3cret"),
        "{e}"
    );
}
