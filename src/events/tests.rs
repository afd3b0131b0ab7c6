//! The pipeline end to end on a real (temporary) store: writer, hub, follower, retention.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::boot::{BootStage, EventText, Mac};
use crate::store::Store;

fn mac(i: u8) -> Mac {
    format!("52:54:00:00:00:{i:02x}").parse().unwrap()
}

fn event(i: i64, m: u8) -> EventText {
    EventText {
        at_ms: i,
        mac: mac(m),
        stage: if i % 3 == 0 {
            BootStage::Booted
        } else {
            BootStage::ScriptSent
        },
        manifest: None,
        via: crate::boot::Via::Http,
        peer: None,
        detail: format!("{{\"n\":{i}}}").into(),
        attempt: None,
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (dir, Store::open(&url).await.unwrap())
}

/// Reads `n` events from `f`, failing after 20 s.
async fn take(f: &mut Follower, n: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < n {
        let e = tokio::time::timeout(Duration::from_secs(20), f.next())
            .await
            .expect("follower stalled")
            .unwrap()
            .expect("follower ended");
        got.push(e.event.at_ms);
    }
    got
}

#[tokio::test]
async fn a_follower_sees_history_then_live_events_exactly_once_in_order() {
    let (_d, store) = store().await;
    let hub = Hub::default();
    let (sink, queue) = channel(65_536);
    let writer = tokio::spawn(write_events(store.clone(), queue, hub.clone()));
    for i in 0..2500 {
        sink.record_text(event(i, 1));
    }
    // Let part of it land before following, so both paths are taken.
    while store.last_event_id().await.unwrap() < 1000 {
        tokio::time::sleep(COLLECT).await;
    }
    let mut f = Follower::new(store.clone(), &hub, Filter::default(), 0);
    let feeder = {
        let sink = sink.clone();
        tokio::spawn(async move {
            for i in 2500..5000 {
                sink.record_text(event(i, 1));
                if i % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }
        })
    };
    let got = take(&mut f, 5000).await;
    assert_eq!(got, (0..5000).collect::<Vec<_>>());
    feeder.await.unwrap();
    // Nothing more, nothing repeated.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), f.next())
            .await
            .is_err()
    );
    drop(sink);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_filtered_follower_resumes_from_its_cursor() {
    let (_d, store) = store().await;
    let hub = Hub::default();
    let (sink, queue) = channel(65_536);
    let _writer = tokio::spawn(write_events(store.clone(), queue, hub.clone()));
    for i in 0..300 {
        sink.record_text(event(i, u8::try_from(i % 3).unwrap()));
    }
    let filter = Filter {
        mac: Some(mac(1)),
        stage: Some(BootStage::ScriptSent),
    };
    let mut f = Follower::new(store.clone(), &hub, filter.clone(), 0);
    let want: Vec<i64> = (0..300).filter(|i| i % 3 == 1).collect();
    let first = take(&mut f, 50).await;
    assert_eq!(first, want[..50]);
    let cursor = f.cursor();
    drop(f);
    for i in 300..600 {
        sink.record_text(event(i, u8::try_from(i % 3).unwrap()));
    }
    let mut g = Follower::new(store.clone(), &hub, filter, cursor);
    let rest = take(&mut g, 150).await;
    let want: Vec<i64> = (0..600).filter(|i| i % 3 == 1).skip(50).collect();
    assert_eq!(rest, want);
}

#[tokio::test]
async fn a_lagging_follower_catches_up_from_the_store() {
    let (_d, store) = store().await;
    // Room for one commit only: a slow reader lags at once.
    let hub = Hub::new(1);
    let mut f = Follower::new(store.clone(), &hub, Filter::default(), 0);
    let (sink, queue) = channel(65_536);
    let _writer = tokio::spawn(write_events(store.clone(), queue, hub.clone()));
    let mut want = Vec::new();
    for round in 0..20 {
        for i in 0..50 {
            let n = round * 50 + i;
            sink.record_text(event(n, 1));
            want.push(n);
        }
        tokio::time::sleep(COLLECT * 3).await;
    }
    assert_eq!(take(&mut f, 1000).await, want);
}

#[tokio::test]
async fn events_from_another_writer_reach_the_follower_by_the_store() {
    let (_d, store) = store().await;
    let hub = Hub::default();
    let mut f = Follower::new(store.clone(), &hub, Filter::default(), 0);
    let (sink, queue) = channel(1024);
    let _writer = tokio::spawn(write_events(store.clone(), queue, hub.clone()));
    sink.record_text(event(0, 1));
    assert_eq!(take(&mut f, 1).await, [0]);
    // Another process writes straight to the store: no hub message for it.
    store
        .append_texts(&[event(1, 2), event(2, 2)])
        .await
        .unwrap();
    // Then a local event: its commit leaves a gap, filled from the store.
    sink.record_text(event(3, 1));
    assert_eq!(take(&mut f, 3).await, [1, 2, 3]);
    // And a foreign write alone is found by the poll.
    store.append_texts(&[event(4, 2)]).await.unwrap();
    assert_eq!(take(&mut f, 1).await, [4]);
}

#[tokio::test]
async fn the_writer_publishes_the_ids_the_store_assigned() {
    let (_d, store) = store().await;
    let hub = Hub::default();
    let mut rx = hub.subscribe();
    let (sink, queue) = channel(65_536);
    let writer = tokio::spawn(write_events(store.clone(), queue, hub.clone()));
    for i in 0..(MAX_BATCH as i64 + 10) {
        sink.record_text(event(i, 1));
    }
    drop(sink);
    writer.await.unwrap();
    let mut published = Vec::new();
    while let Ok(c) = rx.try_recv() {
        published.extend(c.iter().map(|s| (s.id, s.event.at_ms)));
    }
    let stored: Vec<(i64, i64)> = store
        .events(None, 0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.id, r.event.at_ms))
        .collect();
    assert_eq!(published, stored);
    assert!(published.len() > MAX_BATCH);
}

#[tokio::test]
async fn retention_deletes_old_events_in_chunks_and_keeps_new_ones() {
    let (_d, store) = store().await;
    let n_old = i64::try_from(retention::CHUNK).unwrap() * 2 + 7;
    let old: Vec<EventText> = (0..n_old).map(|i| event(i, 1)).collect();
    store.append_texts(&old).await.unwrap();
    let day = 24 * 3600 * 1000;
    let new: Vec<EventText> = (0..10).map(|i| event(10 * day + i, 1)).collect();
    store.append_texts(&new).await.unwrap();
    let keep = Duration::from_secs(24 * 3600);
    let deleted = retention::sweep(&store, keep, 10 * day + 100)
        .await
        .unwrap();
    assert_eq!(deleted, u64::try_from(n_old).unwrap());
    let left: BTreeSet<i64> = store
        .events(None, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event.at_ms)
        .collect();
    assert_eq!(left, new.iter().map(|e| e.at_ms).collect());
    assert_eq!(
        retention::sweep(&store, keep, 10 * day + 100)
            .await
            .unwrap(),
        0
    );
}
