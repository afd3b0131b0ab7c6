//! Store tests, each run on SQLite (a temp file) and on PostgreSQL (a throw-away
//! cluster, [`super::testing::PgCluster`]); see [`on_both_backends`]. A PostgreSQL test
//! fails, never skips, when the cluster cannot start.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::testing::PgCluster;
use super::*;
use crate::boot::{BootEvent, BootStage, EventText, Mac, Machine};

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

on_both_backends!(
    machines_roundtrip_and_conflicts,
    versions_channels_pins,
    events_append_and_filter,
    event_ids_recent_events_and_retention,
    concurrent_event_writers_and_a_cursor_reader,
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
    s.set_pin("default", "demo@1").await.unwrap();
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

async fn events_append_and_filter(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.last_event_id().await.unwrap(), 0);
    let a: Mac = "52:54:00:00:00:01".parse().unwrap();
    let b: Mac = "52:54:00:00:00:02".parse().unwrap();
    let ev = |mac, stage| BootEvent {
        at_ms: 1,
        mac,
        stage,
        manifest: None,
        detail: serde_json::json!({"k": 1}),
    };
    s.append_events(&[
        ev(a, BootStage::DhcpAck),
        ev(b, BootStage::DhcpAck),
        ev(a, BootStage::Booted),
    ])
    .await
    .unwrap();
    let only_a = s.events(Some(a), 0, 100).await.unwrap();
    assert_eq!(only_a.len(), 2);
    assert_eq!(only_a[1].event.stage, BootStage::Booted);
    let after = s.events(None, only_a[0].id, 100).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(s.last_event_id().await.unwrap(), only_a[1].id);
    // Batches of every statement size (471 = 7 x 64 + 16 + 4 + 3 x 1) keep their order.
    let many: Vec<BootEvent> = (0..471)
        .map(|i| BootEvent {
            at_ms: i,
            ..ev(b, BootStage::Progress)
        })
        .collect();
    s.append_events(&many).await.unwrap();
    let got = s.events(Some(b), 0, 1000).await.unwrap();
    assert_eq!(got.len(), 472);
    assert!(
        got[1..]
            .iter()
            .enumerate()
            .all(|(i, r)| r.event.at_ms == i as i64)
    );
}

async fn reopen_keeps_state(f: Fixture) {
    let s = &f.store;
    s.set_pin("default", "local").await.unwrap();
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
            s.set_pin(&format!("machine:{name}"), "local").await?;
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.machines().await.unwrap().len(), 40);
    assert_eq!(s.pins().await.unwrap().len(), 40);
}

fn text(mac: Mac, at_ms: i64) -> EventText {
    EventText {
        at_ms,
        mac,
        stage: BootStage::Progress,
        manifest: None,
        detail: format!("{{\"n\":{at_ms}}}"),
    }
}

async fn event_ids_recent_events_and_retention(f: Fixture) {
    let s = &f.store;
    let a: Mac = "52:54:00:00:00:01".parse().unwrap();
    let b: Mac = "52:54:00:00:00:02".parse().unwrap();
    assert!(s.append_texts(&[]).await.unwrap().is_empty());
    // Ids come back in input order, across every statement size (85 = 64 + 16 + 4 + 1).
    let batch: Vec<EventText> = (0..85)
        .map(|i| text(if i % 3 == 0 { a } else { b }, 1000 + i))
        .collect();
    let ids = s.append_texts(&batch).await.unwrap();
    assert_eq!(ids.len(), batch.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let stored = s.events(None, 0, 1000).await.unwrap();
    assert_eq!(stored.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(
        stored
            .iter()
            .zip(&batch)
            .all(|(r, e)| r.event.at_ms == e.at_ms && r.event.mac == e.mac)
    );
    let more = s.append_texts(&[text(a, 2000)]).await.unwrap();
    assert!(more[0] > ids[84]);
    assert_eq!(s.last_event_id().await.unwrap(), more[0]);

    // The newest `limit`, oldest first; per MAC too.
    let recent = s.recent_events(None, 3).await.unwrap();
    let at: Vec<i64> = recent.iter().map(|r| r.event.at_ms).collect();
    assert_eq!(at, [1083, 1084, 2000]);
    let recent_a = s.recent_events(Some(a), 2).await.unwrap();
    let at: Vec<i64> = recent_a.iter().map(|r| r.event.at_ms).collect();
    assert_eq!(at, [1084, 2000]);
    assert_eq!(s.recent_events(Some(a), 1000).await.unwrap().len(), 30);
    let nobody: Mac = "52:54:00:00:00:99".parse().unwrap();
    assert!(s.recent_events(Some(nobody), 5).await.unwrap().is_empty());
    // A cursor for one MAC.
    let after = s.events(Some(a), recent_a[0].id, 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].event.at_ms, 2000);

    // Retention: bounded by max_rows, oldest first, never past the cutoff.
    assert_eq!(s.delete_events_before(1010, 4).await.unwrap(), 4);
    assert_eq!(s.events(None, 0, 1).await.unwrap()[0].event.at_ms, 1004);
    assert_eq!(s.delete_events_before(1010, 1000).await.unwrap(), 6);
    assert_eq!(s.delete_events_before(1010, 1000).await.unwrap(), 0);
    // Newer events behind them, as time goes on; calls of more than one chunk (1000
    // rows), each bounded by max_rows.
    let many: Vec<EventText> = (0..2500).map(|i| text(b, 3000 + i)).collect();
    s.append_texts(&many).await.unwrap();
    assert_eq!(
        s.events(None, 0, 10_000).await.unwrap().len(),
        75 + 1 + 2500
    );
    assert_eq!(s.delete_events_before(2500, 10_000).await.unwrap(), 76);
    assert_eq!(s.events(None, 0, 1).await.unwrap()[0].event.at_ms, 3000);
    assert_eq!(s.delete_events_before(6000, 1500).await.unwrap(), 1500);
    assert_eq!(s.delete_events_before(6000, 10_000).await.unwrap(), 1000);
    assert!(s.events(None, 0, 10).await.unwrap().is_empty());
}

/// Several writers append concurrently, one of them holding its transaction open after
/// inserting; a reader follows the cursor (`id > last seen`) meanwhile. It must see every
/// event exactly once, in id order: on PostgreSQL that needs the events' advisory lock.
async fn concurrent_event_writers_and_a_cursor_reader(f: Fixture) {
    const FAST_WRITERS: i64 = 3;
    const BATCHES: i64 = 40;
    const SLOW_BATCHES: i64 = 3;
    let mac: Mac = "52:54:00:00:00:01".parse().unwrap();
    let total = FAST_WRITERS * BATCHES * 5 + SLOW_BATCHES * 5;
    let s = f.store.clone();

    // Follows the cursor until the writers are done and a page comes back empty.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (s, done) = (s.clone(), done.clone());
        async move {
            let (mut cursor, mut seen) = (0i64, Vec::new());
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = s.events(None, cursor, 50).await.unwrap();
                for r in &page {
                    assert!(r.id > cursor, "ids out of order: {} after {cursor}", r.id);
                    cursor = r.id;
                    seen.push((r.id, r.event.at_ms));
                }
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    });
    let mut writers = Vec::new();
    // The slow writer: each batch sits uncommitted for 300 ms after its INSERT.
    writers.push(tokio::spawn({
        let s = s.clone();
        async move {
            let mut ids = Vec::new();
            for b in 0..SLOW_BATCHES {
                let batch: Vec<EventText> = (0..5).map(|i| text(mac, b * 10 + i)).collect();
                ids.extend(
                    s.append_texts_slowly(&batch, Duration::from_millis(300))
                        .await
                        .unwrap(),
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ids
        }
    }));
    for w in 1..=FAST_WRITERS {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..BATCHES {
                let batch: Vec<EventText> = (0..5)
                    .map(|i| text(mac, w * 1_000_000 + b * 10 + i))
                    .collect();
                ids.extend(s.append_texts(&batch).await.unwrap());
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            ids
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let ats: HashSet<i64> = seen.iter().map(|(_, at)| *at).collect();
    assert_eq!(ats.len(), seen.len(), "an event was seen twice");
    assert_eq!(
        seen.len(),
        usize::try_from(total).unwrap(),
        "the reader skipped events that committed after it had passed their ids"
    );
    let mut written_sorted = written.clone();
    written_sorted.sort_unstable();
    assert_eq!(
        seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        written_sorted,
        "the reader saw exactly the ids the writers were given"
    );
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
