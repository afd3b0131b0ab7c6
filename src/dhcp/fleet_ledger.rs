//! The loader ledger across servers: [`LoaderLedger`](super::LoaderLedger) is per
//! process, so on its own a client whose loader came from server A and whose next DHCP
//! exchange reaches server B would be handed the loader again by B (and again by A …).
//! With several servers on one store every mark is also written to the store's
//! `loader_marks` (write-behind, off the reply path: the loader's own DHCP comes seconds
//! later), and a server whose own ledger has no open window for an iPXE client reads the
//! store before handing that client a loader. A MAC whose window another server opened
//! gets its script, so the chainload rule ("a loader at most once per window") holds for
//! the fleet, not only per server.
//!
//! When the store cannot be read the local ledger alone decides (at worst one extra
//! chainload, as after a restart). Times in the store are Unix ms of the writing server;
//! the window is minutes long, so clock skew of seconds between servers does not matter.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ledger::LOADER_WINDOW;
use crate::boot::Mac;
use crate::store::{LoaderMark, Store};

/// Marks waiting to be written; past this they are dropped (and logged).
const QUEUE: usize = 16_384;
/// How often marks with nothing left in their window are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// A store read on the reply path gives up after this (the local ledger decides then).
const READ_TIMEOUT: Duration = Duration::from_millis(250);

fn window_ms() -> i64 {
    i64::try_from(LOADER_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

/// How long ago `mark`'s window started, if it is still open at `now_ms`.
pub(crate) fn open_for(mark: LoaderMark, now_ms: i64) -> Option<Duration> {
    let since = mark.since_ms?;
    let age = now_ms.saturating_sub(since).max(0);
    (age < window_ms()).then(|| Duration::from_millis(u64::try_from(age).unwrap_or(0)))
}

/// Whether a DHCP reply named the MAC a loader within the window before `now_ms`.
pub(crate) fn named_within(mark: LoaderMark, now_ms: i64) -> bool {
    now_ms.saturating_sub(mark.named_ms) < window_ms()
}

#[derive(Debug)]
struct Write {
    mac: Mac,
    named_ms: i64,
    since_ms: Option<i64>,
}

/// The store half of the loader ledger, shared by every server on the store.
#[derive(Debug)]
pub struct FleetLedger {
    store: Store,
    writes: mpsc::Sender<Write>,
}

impl FleetLedger {
    /// Starts the writer (stopped by `stop`, after writing what is queued).
    pub fn start(store: Store, stop: CancellationToken) -> Arc<FleetLedger> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_marks(store.clone(), rx, stop));
        Arc::new(FleetLedger { store, writes: tx })
    }

    /// A DHCP reply named `mac` a loader at `now_ms`; with `started`, its window opened.
    pub fn record(&self, mac: Mac, now_ms: i64, started: bool) {
        self.send(Write {
            mac,
            named_ms: now_ms,
            since_ms: started.then_some(now_ms),
        });
    }

    /// `mac`'s window (re)started at `now_ms` (a confirmed TFTP delivery).
    pub fn started(&self, mac: Mac, now_ms: i64) {
        // `named_ms` only ever moves forward in the store: 0 keeps the stored one.
        self.send(Write {
            mac,
            named_ms: 0,
            since_ms: Some(now_ms),
        });
    }

    fn send(&self, w: Write) {
        if self.writes.try_send(w).is_err() {
            tracing::warn!("loader ledger: store writes queue full, a mark is kept locally only");
        }
    }

    async fn read(&self, mac: Mac) -> Option<LoaderMark> {
        let key = mac.to_string();
        match tokio::time::timeout(READ_TIMEOUT, self.store.loader_mark(&key)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "loader ledger: store not read");
                None
            }
            Err(_) => None,
        }
    }

    /// How long ago a server opened `mac`'s window, if one is open at `now_ms`.
    pub async fn open_window(&self, mac: Mac, now_ms: i64) -> Option<Duration> {
        open_for(self.read(mac).await?, now_ms)
    }

    /// A TFTP transfer to `mac` finished at `now_ms` on this server, which named it no
    /// loader: if another server did within the window, the window (re)starts now and
    /// the transfer belongs to a boot in progress (`true`).
    pub async fn confirm(&self, mac: Mac, now_ms: i64) -> bool {
        match self.read(mac).await {
            Some(m) if named_within(m, now_ms) => {
                self.started(mac, now_ms);
                true
            }
            _ => false,
        }
    }
}

async fn write_marks(store: Store, mut rx: mpsc::Receiver<Write>, stop: CancellationToken) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            w = rx.recv() => {
                let Some(w) = w else { return };
                write(&store, &w).await;
            }
            _ = prune.tick() => {
                let before = crate::store::now_ms().saturating_sub(window_ms());
                if let Err(e) = store.prune_loader_marks(before).await {
                    tracing::debug!(error = %e, "loader ledger: old marks not pruned");
                }
            }
            () = stop.cancelled() => {
                while let Ok(w) = rx.try_recv() {
                    write(&store, &w).await;
                }
                return;
            }
        }
    }
}

async fn write(store: &Store, w: &Write) {
    if let Err(e) = store
        .record_loader_mark(&w.mac.to_string(), w.named_ms, w.since_ms)
        .await
    {
        tracing::warn!(mac = %w.mac, error = %e, "loader ledger: mark not stored (kept locally)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_open_only_after_a_start_and_for_the_window() {
        let named = LoaderMark {
            named_ms: 1_000,
            since_ms: None,
        };
        assert_eq!(open_for(named, 1_000), None, "named only: no window");
        assert!(named_within(named, 1_000 + window_ms() - 1));
        assert!(!named_within(named, 1_000 + window_ms()));
        let started = LoaderMark {
            since_ms: Some(2_000),
            ..named
        };
        assert_eq!(open_for(started, 2_500), Some(Duration::from_millis(500)));
        assert_eq!(open_for(started, 2_000 + window_ms()), None);
        // A clock behind the writer's: the window counts as just opened.
        assert_eq!(open_for(started, 1_500), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn a_mark_made_by_one_server_is_seen_by_another() {
        let f = crate::store::tests::sqlite().await;
        let stop = CancellationToken::new();
        let (a, b) = (
            FleetLedger::start(f.store.clone(), stop.clone()),
            FleetLedger::start(f.store.clone(), stop.clone()),
        );
        let mac = Mac([2, 0, 0, 0, 0, 7]);
        let now = crate::store::now_ms();
        assert_eq!(b.open_window(mac, now).await, None);
        // A hands the loader out (an ACK naming it: the window opens).
        a.record(mac, now, true);
        let mut seen = None;
        for _ in 0..50 {
            seen = b.open_window(mac, now + 2_000).await;
            if seen.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, Some(Duration::from_secs(2)), "B sees A's window");
        // Only named by A (an OFFER), delivered over TFTP by B: B confirms from the store.
        let p = Mac([2, 0, 0, 0, 0, 8]);
        a.record(p, now, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b.open_window(p, now).await, None);
        assert!(b.confirm(p, now + 1_000).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            a.open_window(p, now + 1_500).await,
            Some(Duration::from_millis(500))
        );
        // A MAC nobody named a loader: a transfer naming it confirms nothing.
        assert!(!b.confirm(Mac([2, 0, 0, 0, 0, 9]), now).await);
        // Past the window nothing is open, and pruning removes it.
        let late = now + window_ms() + 5_000;
        assert_eq!(b.open_window(mac, late).await, None);
        assert!(
            f.store
                .prune_loader_marks(late - window_ms())
                .await
                .unwrap()
                >= 2
        );
        assert_eq!(f.store.loader_mark(&mac.to_string()).await.unwrap(), None);
        stop.cancel();
    }
}
