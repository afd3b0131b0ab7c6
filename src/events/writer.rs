//! The writer: stores queued events in batches, then hands each committed batch, with
//! its ids, to the [`Hub`].
//!
//! One writer per process. A batch that cannot be stored (the store unreachable) is
//! spooled to `<data_dir>/events.spool` ([`super::spool`]) with every event after it, and
//! replayed in order every [`RETRY`] until the store takes it, so an outage loses no
//! event, even if the process dies during it (the next start replays the file), and each
//! is stored once (the replay's progress is committed with each batch). Front ends never
//! wait for the store. Past the spool's bound (64 MiB) new events are dropped and
//! counted; without a spool (or when it cannot be written) events are held in memory up
//! to [`MAX_HELD`], oldest dropped past that. The hub sees only what was committed.

use std::path::PathBuf;
use std::sync::Arc;

use super::hub::{Hub, Stored};
use super::sink::EventQueue;
use super::spool::{MAX_BYTES, Spool};
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
/// Spooled batches replayed before the writer looks at new events again.
const REPLAY_BATCHES: usize = 8;

/// Writes queued events to the store in batches until every sink is gone, publishing
/// each commit to `hub`; held in memory while the store cannot be written.
#[cfg(test)]
pub(crate) async fn write_events(store: Store, queue: EventQueue, hub: Hub) {
    write_events_spooled(store, queue, hub, None).await;
}

/// [`write_events`] that, with `spool` (`<data_dir>/events.spool`), spools events to that
/// file while the store cannot be written and replays them in order once it can (a
/// spool a previous run left is replayed first). Without a spool, or when the file
/// cannot be written, events are held in memory up to [`MAX_HELD`].
pub(crate) async fn write_events_spooled(
    store: Store,
    mut queue: EventQueue,
    hub: Hub,
    spool: Option<PathBuf>,
) {
    let mut held: std::collections::VecDeque<crate::boot::EventText> = Default::default();
    let mut spooled = match spool.as_deref().map(|p| Spool::open(p, MAX_BYTES, true)) {
        Some(Ok(Some(s))) => {
            tracing::warn!(
                events = s.unread,
                "boot events spooled by an earlier run: replaying"
            );
            Some(s)
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "event spool unreadable: left as it is");
            None
        }
        _ => None,
    };
    // Read from the spool, not yet stored: retried before reading more.
    let mut pending: Vec<crate::boot::EventText> = Vec::new();
    let mut open = true;
    let mut failing = false;
    let mut hurry = false;
    loop {
        let busy = !held.is_empty() || spooled.is_some();
        // With events held or spooled, wait for a new one at most RETRY before retrying.
        let first = if !open {
            None
        } else if hurry {
            queue.try_recv()
        } else if !busy {
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
            None if !open && held.is_empty() && spooled.is_none() => return,
            None => {}
        }
        // Not waiting on the queue meanwhile also spares each `record` a wake-up.
        if open && !hurry {
            tokio::time::sleep(COLLECT).await;
        }
        while held.len() < MAX_HELD {
            match queue.try_recv() {
                Some(e) => held.push_back(e),
                None => break,
            }
        }
        if let Some(s) = spooled.as_mut() {
            // A spool in use: new events go behind it, so the store sees them in order.
            to_spool(s, &mut held, &queue);
        } else if let Err(e) = store_held(&store, &mut held, &queue, &hub, &mut failing).await {
            if !failing {
                failing = true;
                tracing::error!(error = %e, held = held.len(), "cannot store boot events: spooled and retried");
            }
            if let Some(p) = spool.as_deref() {
                match Spool::create(p, MAX_BYTES) {
                    Ok(mut s) => {
                        to_spool(&mut s, &mut held, &queue);
                        spooled = Some(s);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, path = %p.display(), "cannot spool boot events: held in memory");
                    }
                }
            }
        }
        hurry = false;
        if let Some(s) = spooled.as_mut() {
            match replay(&store, s, &mut pending, &queue, &hub).await {
                Replay::Done => {
                    let id = s.id.clone();
                    let total = s.read;
                    if let Some(s) = spooled.take() {
                        match s.remove() {
                            // Removed first: the store's count is only forgotten once no file
                            // can be replayed against it.
                            Ok(()) => {
                                let _ = store.forget_spool(&id).await;
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "event spool replayed but not removed")
                            }
                        }
                    }
                    failing = false;
                    tracing::info!(replayed = total, "spooled boot events stored again");
                }
                Replay::More => hurry = true,
                Replay::Failed => {}
            }
        }
        if !open {
            if let Some(s) = &spooled {
                tracing::warn!(
                    events = s.unread + u64::try_from(pending.len()).unwrap_or(0),
                    "shutting down with boot events spooled: replayed at the next start"
                );
            } else if !held.is_empty() {
                tracing::error!(
                    lost = held.len(),
                    "shutting down with boot events not stored"
                );
                queue.count_stored(held.len(), true);
            }
            return;
        }
        if held.len() > MAX_HELD {
            let lost = held.len() - MAX_HELD;
            held.drain(..lost);
            queue.count_stored(lost, true);
            tracing::error!(lost, "boot events held past the bound: the oldest dropped");
        }
    }
}

/// Stores `held`, oldest first, at most MAX_BATCH per transaction; what could not be
/// stored stays in `held`.
async fn store_held(
    store: &Store,
    held: &mut std::collections::VecDeque<crate::boot::EventText>,
    queue: &EventQueue,
    hub: &Hub,
    failing: &mut bool,
) -> Result<(), crate::store::StoreError> {
    while !held.is_empty() {
        let n = held.len().min(MAX_BATCH);
        let batch: Vec<_> = held.range(..n).cloned().collect();
        let ids = store.append_texts(&batch).await?;
        queue.count_stored(ids.len(), false);
        if *failing {
            *failing = false;
            tracing::info!(replayed = n, "boot events stored again");
        }
        held.drain(..n);
        publish(hub, ids, batch);
    }
    Ok(())
}

fn publish(hub: &Hub, ids: Vec<i64>, batch: Vec<crate::boot::EventText>) {
    let stored: Arc<[Stored]> = ids
        .into_iter()
        .zip(batch)
        .map(|(id, event)| Stored { id, event })
        .collect();
    hub.publish(stored);
}

fn to_spool(
    s: &mut Spool,
    held: &mut std::collections::VecDeque<crate::boot::EventText>,
    queue: &EventQueue,
) {
    if held.is_empty() {
        return;
    }
    let events: Vec<_> = held.iter().cloned().collect();
    match s.append(&events) {
        Ok(0) => held.clear(),
        Ok(dropped) => {
            held.clear();
            queue.count_stored(dropped, true);
            tracing::error!(dropped, "event spool full: newest boot events dropped");
        }
        // Kept in memory (bounded there) and appended at the next try.
        Err(e) => tracing::error!(error = %e, "cannot append to the event spool"),
    }
}

enum Replay {
    /// Every spooled event is stored.
    Done,
    /// A batch was stored and more are spooled.
    More,
    /// The store failed: retried later.
    Failed,
}

/// Replays up to REPLAY_BATCHES batches from the spool.
async fn replay(
    store: &Store,
    s: &mut Spool,
    pending: &mut Vec<crate::boot::EventText>,
    queue: &EventQueue,
    hub: &Hub,
) -> Replay {
    if !s.resumed {
        match store.spool_replayed(&s.id).await {
            Ok(n) => {
                if let Err(e) = s.skip(u64::try_from(n).unwrap_or(0)) {
                    tracing::error!(error = %e, "event spool unreadable");
                    return Replay::Failed;
                }
                s.resumed = true;
            }
            Err(_) => return Replay::Failed,
        }
    }
    for _ in 0..REPLAY_BATCHES {
        if pending.is_empty() {
            match s.read(MAX_BATCH) {
                Ok((events, bad)) => {
                    if bad > 0 {
                        tracing::warn!(lines = bad, "event spool: unreadable lines skipped");
                        queue.count_stored(usize::try_from(bad).unwrap_or(0), true);
                    }
                    *pending = events;
                }
                Err(e) => {
                    tracing::error!(error = %e, "event spool unreadable");
                    return Replay::Failed;
                }
            }
            if pending.is_empty() {
                return Replay::Done;
            }
        }
        let upto = i64::try_from(s.read).unwrap_or(i64::MAX);
        match store.append_spooled(pending, &s.id, upto).await {
            Ok(ids) => {
                queue.count_stored(ids.len(), false);
                publish(hub, ids, std::mem::take(pending));
            }
            Err(_) => return Replay::Failed,
        }
    }
    Replay::More
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
