//! The writer: stores queued events in batches, then hands each committed batch, with
//! its ids, to the [`Hub`].
//!
//! One writer per process. A batch that cannot be stored after a few tries is logged and
//! dropped (front ends never wait for the store); the hub sees only what was committed.

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

/// Writes queued events to the store in batches until every sink is gone, publishing
/// each commit to `hub`.
pub(crate) async fn write_events(store: Store, mut queue: EventQueue, hub: Hub) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        // Not waiting on the queue meanwhile also spares each `record` a wake-up.
        tokio::time::sleep(COLLECT).await;
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
        let mut tries = 0;
        loop {
            match store.append_texts(&batch).await {
                Ok(ids) => {
                    queue.count_stored(ids.len(), false);
                    let stored: Arc<[Stored]> = ids
                        .into_iter()
                        .zip(batch.drain(..))
                        .map(|(id, event)| Stored { id, event })
                        .collect();
                    hub.publish(stored);
                    break;
                }
                Err(e) => {
                    tries += 1;
                    if tries >= 3 {
                        tracing::error!(error = %e, lost = batch.len(), "cannot store boot events");
                        queue.count_stored(batch.len(), true);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                }
            }
        }
        batch.clear();
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
}
