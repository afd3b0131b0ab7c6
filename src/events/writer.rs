//! The writer: stores queued events in batches, then hands each committed batch, with
//! its ids, to the [`Hub`].
//!
//! One writer per process. A batch that cannot be stored (the store unreachable) is
//! kept in memory, up to [`MAX_HELD`] events, and retried every [`RETRY`] before newer
//! events, so an outage of the store loses no event that this process still holds
//! (front ends never wait for the store); past that bound the oldest are dropped and
//! counted. Not a file: events held are lost if the process dies during the outage. The
//! hub sees only what was committed.

use std::sync::Arc;

use super::hub::{Hub, Stored};
use super::sink::EventQueue;
use crate::store::Store;

/// How long the writer lets events gather after the first one of a batch.
///
/// Every commit costs an `fsync` (the store runs `synchronous = FULL`) and a few
/// round trips to SQLite's thread; writing whatever happened to be queued made batches
/// of ~30 events during a script storm and the writer took a third of the server's CPU
/// (perf, 27k req/s on one core). Waiting 10 ms makes batches of hundreds at that rate
/// and costs a lone event 10 ms before it is stored, which nobody can see: front ends
/// never wait for the store, and an event still queued is lost on `kill -9` either way.
pub(super) const COLLECT: std::time::Duration = std::time::Duration::from_millis(10);
/// Most events written in one transaction.
pub(super) const MAX_BATCH: usize = 4096;

/// Most events held in memory while the store cannot be written (details are at most
/// `events.max_detail_bytes` each, so this bounds the memory too).
pub(super) const MAX_HELD: usize = 32_768;
/// How often held events are retried while no new event arrives.
pub(super) const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes queued events to the store in batches until every sink is gone, publishing
/// each commit to `hub`.
pub(crate) async fn write_events(store: Store, mut queue: EventQueue, hub: Hub) {
    let mut held: std::collections::VecDeque<crate::boot::EventText> = Default::default();
    let mut open = true;
    let mut failing = false;
    while open || !held.is_empty() {
        // With events held, wait for a new one at most RETRY before retrying.
        let first = if !open {
            None
        } else if held.is_empty() {
            let e = queue.recv().await;
            open = e.is_some();
            e
        } else {
            match tokio::time::timeout(RETRY, queue.recv()).await {
                Ok(e) => {
                    open = e.is_some();
                    e
                }
                Err(_) => None,
            }
        };
        match first {
            Some(e) => held.push_back(e),
            None if held.is_empty() => break,
            None => {}
        }
        // Not waiting on the queue meanwhile also spares each `record` a wake-up.
        if open {
            tokio::time::sleep(COLLECT).await;
        }
        while held.len() < MAX_HELD {
            match queue.try_recv() {
                Some(e) => held.push_back(e),
                None => break,
            }
        }
        // Oldest first, at most MAX_BATCH per transaction.
        while !held.is_empty() {
            let n = held.len().min(MAX_BATCH);
            let batch: Vec<_> = held.range(..n).cloned().collect();
            match store.append_texts(&batch).await {
                Ok(ids) => {
                    queue.count_stored(ids.len(), false);
                    if failing {
                        failing = false;
                        tracing::info!(replayed = n, "boot events stored again");
                    }
                    held.drain(..n);
                    let stored: Arc<[Stored]> = ids
                        .into_iter()
                        .zip(batch)
                        .map(|(id, event)| Stored { id, event })
                        .collect();
                    hub.publish(stored);
                }
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::error!(error = %e, held = held.len(), "cannot store boot events: held in memory and retried");
                    }
                    if !open {
                        tracing::error!(
                            lost = held.len(),
                            "shutting down with boot events not stored"
                        );
                        queue.count_stored(held.len(), true);
                        return;
                    }
                    break;
                }
            }
        }
        if held.len() > MAX_HELD {
            let lost = held.len() - MAX_HELD;
            held.drain(..lost);
            queue.count_stored(lost, true);
            tracing::error!(lost, "boot events held past the bound: the oldest dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BootStage, EventText, Mac};
    use crate::events::channel;

    fn event(i: i64) -> EventText {
        EventText {
            at_ms: i,
            mac: "52:54:00:00:00:01".parse::<Mac>().unwrap(),
            stage: BootStage::ScriptSent,
            manifest: None,
            via: crate::boot::Via::Http,
            peer: None,
            detail: format!("{{\"n\":{i}}}").into(),
            attempt: None,
        }
    }

    use crate::store::tests::{Fixture, on_both_backends};

    on_both_backends!(
        a_burst_is_stored_whole_and_in_order_when_the_sinks_go,
        a_lone_event_is_stored_without_waiting_for_more,
    );

    async fn a_burst_is_stored_whole_and_in_order_when_the_sinks_go(f: Fixture) {
        let store = f.store;
        let (sink, queue) = channel(65_536);
        let writer = tokio::spawn(write_events(store.clone(), queue, Hub::default()));
        // More than one batch, recorded faster than any batch is written.
        let n = 3 * MAX_BATCH as i64 + 17;
        for i in 0..n {
            sink.record_text(event(i));
        }
        assert_eq!(sink.dropped(), 0);
        drop(sink);
        writer.await.unwrap();
        let rows = store.events(None, 0, n + 10).await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.event.at_ms).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    async fn a_lone_event_is_stored_without_waiting_for_more(f: Fixture) {
        let store = f.store;
        let (sink, queue) = channel(16);
        let _writer = tokio::spawn(write_events(store.clone(), queue, Hub::default()));
        sink.record_text(event(7));
        // The sink stays open: the event must land on its own, after the collect window.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.last_event_id().await.unwrap() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "event never stored");
            tokio::time::sleep(COLLECT).await;
        }
        let rows = store.events(None, 0, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.at_ms, 7);
        drop(sink);
    }

    #[tokio::test]
    async fn events_recorded_while_the_store_is_down_are_stored_once_it_is_back() {
        let pg = crate::store::testing::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
        let store = crate::store::Store::open(&url).await.unwrap();
        let (sink, queue) = channel(1024);
        let writer = tokio::spawn(write_events(store.clone(), queue, Hub::default()));
        sink.record_text(event(1));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.last_event_id().await.unwrap() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "first event never stored"
            );
            tokio::time::sleep(COLLECT).await;
        }
        pg.pause().unwrap_or_else(|e| panic!("{e}"));
        for i in 2..=50 {
            sink.record_text(event(i));
        }
        tokio::time::sleep(RETRY * 2).await; // a few failed attempts
        pg.resume().unwrap_or_else(|e| panic!("{e}"));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let n = store
                .events(None, 0, 100)
                .await
                .map(|r| r.len())
                .unwrap_or(0);
            if n == 50 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {n} of 50 events stored"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        drop(sink);
        writer.await.unwrap();
        let rows = store.events(None, 0, 100).await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.event.at_ms).collect();
        assert_eq!(got, (1..=50).collect::<Vec<_>>(), "every event, in order");
    }
}
