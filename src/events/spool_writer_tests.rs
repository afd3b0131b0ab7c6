//! The writer with its spool, on real PostgreSQL stopped and started under it: events of
//! an outage go to the file and come back in order once; a writer killed during the
//! outage leaves them for the next one; a replay cut short is not stored twice.

use std::time::Duration;

use super::hub::Hub;
use super::spool::{MAX_BYTES, Spool};
use super::writer::write_events_spooled;
use crate::boot::{BootStage, EventText, Mac, Via};
use crate::events::channel;
use crate::store::Store;

fn event(i: i64) -> EventText {
    EventText {
        at_ms: i,
        mac: Mac([2, 0, 0, 0, 0, 5]),
        stage: BootStage::ScriptSent,
        manifest: None,
        via: Via::Http,
        peer: None,
        detail: format!("{{\"n\":{i}}}").into(),
        attempt: None,
    }
}

async fn stored(store: &Store) -> Vec<i64> {
    store
        .events(None, 0, 100_000)
        .await
        .map(|r| r.iter().map(|e| e.event.at_ms).collect())
        .unwrap_or_default()
}

async fn wait_stored(store: &Store, n: usize) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = stored(store).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} events stored",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn events_of_an_outage_survive_the_writers_death_on_disk_and_are_stored_once_in_order() {
    let pg = crate::store::testing::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.spool");
    let (sink, queue) = channel(4096);
    let writer = tokio::spawn(write_events_spooled(
        store.clone(),
        queue,
        Hub::default(),
        Some(path.clone()),
    ));
    sink.record_text(event(1));
    assert_eq!(wait_stored(&store, 1).await, [1]);
    pg.pause().unwrap_or_else(|e| panic!("{e}"));
    for i in 2..=500 {
        sink.record_text(event(i));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = Spool::open(&path, MAX_BYTES, true)
            .ok()
            .flatten()
            .map_or(0, |s| s.unread);
        if n == 499 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} of 499 spooled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server dies during the outage: its memory is gone, the file is not.
    writer.abort();
    let _ = writer.await;
    drop(sink);
    pg.resume().unwrap_or_else(|e| panic!("{e}"));
    let (sink, queue) = channel(4096);
    let writer = tokio::spawn(write_events_spooled(
        store.clone(),
        queue,
        Hub::default(),
        Some(path.clone()),
    ));
    sink.record_text(event(501));
    let got = wait_stored(&store, 501).await;
    assert_eq!(
        got,
        (1..=501).collect::<Vec<_>>(),
        "every event once, in order"
    );
    drop(sink);
    writer.await.unwrap();
    assert!(!path.exists(), "the spool is removed once replayed");
    assert_eq!(stored(&store).await.len(), 501);
}

#[tokio::test]
async fn a_replay_cut_short_resumes_after_what_it_stored() {
    let f = crate::store::tests::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.spool");
    let all: Vec<_> = (1..=10).map(event).collect();
    let mut s = Spool::create(&path, MAX_BYTES).unwrap();
    s.append(&all).unwrap();
    // An earlier replay stored the first 4 (and their count, in one transaction), then
    // the process died before it could remove the file.
    f.store.append_spooled(&all[..4], &s.id, 4).await.unwrap();
    drop(s);
    let (sink, queue) = channel(16);
    let writer = tokio::spawn(write_events_spooled(
        f.store.clone(),
        queue,
        Hub::default(),
        Some(path.clone()),
    ));
    let got = wait_stored(&f.store, 10).await;
    drop(sink);
    writer.await.unwrap();
    assert_eq!(got, (1..=10).collect::<Vec<_>>(), "none doubled");
    assert!(!path.exists());
}
