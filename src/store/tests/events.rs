//! Store tests of boot events, on both backends: append and filter, ids in input order,
//! recent events, retention, and the cursor's guarantee under concurrent writers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::Fixture;
use crate::boot::{BootEvent, BootStage, EventDetail, EventText, Mac, Via};

on_both_backends!(
    events_append_and_filter,
    event_ids_recent_events_and_retention,
    concurrent_event_writers_and_a_cursor_reader,
);

async fn events_append_and_filter(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.last_event_id().await.unwrap(), 0);
    let a: Mac = "52:54:00:00:00:01".parse().unwrap();
    let b: Mac = "52:54:00:00:00:02".parse().unwrap();
    let ev = |mac, stage| BootEvent {
        at_ms: 1,
        mac,
        manifest: None,
        via: Via::Http,
        peer: None,
        detail: EventDetail::from_value(stage, serde_json::json!({"k": 1})),
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
    assert_eq!(only_a[1].event.stage(), BootStage::Booted);
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

fn text(mac: Mac, at_ms: i64) -> EventText {
    EventText {
        at_ms,
        mac,
        stage: BootStage::Progress,
        manifest: None,
        via: Via::Http,
        peer: None,
        detail: format!("{{\"n\":{at_ms}}}").into(),
        attempt: None,
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
