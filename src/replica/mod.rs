//! Images replicated by digest between the servers of one store (issue 16, `docs/ha.md`).
//!
//! Every server that serves HTTP runs one [`run`] loop. Every other second it renews its
//! source row (its data-plane URL: peers fetch from it, and a row younger than
//! [`SOURCE_ALIVE_MS`] is what "a live blob server" means); each second it reads what the published
//! versions need ([`wanted::scan`]), and:
//! - reports each wanted blob it holds as `present`, after hashing it once in this
//!   process (a file that does not hash to its name is quarantined, reported `corrupt`,
//!   and fetched again);
//! - fetches each wanted blob it lacks from a live peer that holds it, at most
//!   [`PARALLEL`] at a time, into a partial file resumed by `Range`
//!   ([`fetch::fetch`]), linked into place only once it hashes to its name; a failed
//!   attempt waits 1 s, doubling up to 60 s, before the next.
//!
//! Guarantees: nothing is reported `present` before it was hashed here; nothing that
//! does not hash to its name is ever linked into the blob store. Replica rows change no
//! boot decision, so they do not bump the store's revision; when a manifest arrives the
//! inventories are told to re-read the versions.

mod fetch;
mod locate;
pub mod view;
pub(crate) mod wanted;

pub(crate) use locate::Gate;
pub use locate::{Locator, Peers};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::boot::Digest;
use crate::images::{BlobStore, ImageError, Trust, Trusted};
use crate::inventory::Inventory;
use crate::store::{ReplicaRow, SOURCE_ALIVE_MS, Store, StoreError, now_ms};

/// How often the loop looks for work.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the source row is renewed (a write: kept to every other pass, well within
/// [`SOURCE_ALIVE_MS`], so a busy SQLite store is not written every second for it).
const RENEW: Duration = Duration::from_secs(2);
/// Most blobs fetched at once.
pub const PARALLEL: usize = 2;
/// First and longest wait after a failed attempt.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Errors of replication (logged and recorded in the replica row; never fatal).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A peer could not be fetched from.
    #[error("peer {url}: {why}")]
    Peer { url: String, why: String },
    /// No live server holds the blob.
    #[error("no live server holds it")]
    NoHolder,
    #[error("replica task failed: {0}")]
    Task(String),
}

/// What one server's loop needs.
#[derive(Clone, Debug)]
pub struct Replicator {
    pub store: Store,
    pub blobs: BlobStore,
    /// The files this process verified (shared with the blob route).
    pub trusted: Trusted,
    /// `server.id`.
    pub me: String,
    /// This server's data-plane URL (`http.public_url`).
    pub url: String,
    /// Told to re-read versions when a manifest arrives.
    pub inventories: Vec<Arc<Inventory>>,
    /// Set to the live peers' URLs every pass.
    pub peers: Peers,
}

/// One wanted blob's state as last written by this server.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reported {
    Present,
    Other,
}

/// Backoff of one blob after failed attempts.
#[derive(Clone, Copy, Debug)]
struct Retry {
    at: Instant,
    wait: Duration,
}

/// The loop: until `stop`, then the source row is removed (a clean stop is no holder).
pub async fn run(r: Replicator, stop: CancellationToken) {
    let mut manifests = wanted::Manifests::default();
    let mut reported: HashMap<Digest, Reported> = HashMap::new();
    let mut retry: HashMap<Digest, Retry> = HashMap::new();
    let in_flight: Arc<Mutex<HashSet<Digest>>> = Arc::default();
    let mut fetches: JoinSet<(Digest, u64, Result<(), ReplicaError>)> = JoinSet::new();
    let mut warned = false;
    let mut renewed: Option<Instant> = None;
    loop {
        while let Some(done) = fetches.try_join_next() {
            let Ok((d, size, result)) = done else {
                continue;
            };
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&d);
            finished(&r, &mut reported, &mut retry, d, size, result).await;
        }
        if renewed.is_none_or(|t| t.elapsed() >= RENEW) {
            match r.store.set_blob_source(&r.me, &r.url).await {
                Ok(()) => renewed = Some(Instant::now()),
                Err(e) => tracing::debug!(error = %e, "source row not renewed"),
            }
        }
        match tick(
            &r,
            &mut manifests,
            &mut reported,
            &mut retry,
            &in_flight,
            &mut fetches,
        )
        .await
        {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "replication pass failed (retried every second)");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(TICK) => {}
        }
    }
    fetches.abort_all();
    let _ = r.store.forget_blob_source(&r.me).await;
}

/// One pass: renew the source row, report what is here, start fetches of what is not.
async fn tick(
    r: &Replicator,
    manifests: &mut wanted::Manifests,
    reported: &mut HashMap<Digest, Reported>,
    retry: &mut HashMap<Digest, Retry>,
    in_flight: &Arc<Mutex<HashSet<Digest>>>,
    fetches: &mut JoinSet<(Digest, u64, Result<(), ReplicaError>)>,
) -> Result<(), ReplicaError> {
    let peers = r.store.live_sources().await?;
    r.peers.set(
        peers
            .into_iter()
            .filter(|(s, _)| *s != r.me)
            .map(|(_, u)| u)
            .collect(),
    );
    let wanted = wanted::scan(&r.store, &r.blobs, manifests).await?;
    for (d, need) in &wanted.blobs {
        if in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(d)
        {
            continue;
        }
        if r.blobs.contains(d) {
            if reported.get(d) == Some(&Reported::Present) {
                continue;
            }
            // Hashed once in this process before it is called present (and served).
            let (b, t, digest) = (r.blobs.clone(), r.trusted.clone(), *d);
            let trust = tokio::task::spawn_blocking(move || t.check(&b, &digest))
                .await
                .map_err(|e| ReplicaError::Task(e.to_string()))??;
            match trust {
                Trust::Good => {
                    let size = r.blobs.size(d).unwrap_or(need.size);
                    write(r, d, "present", size, size, None).await?;
                    reported.insert(*d, Reported::Present);
                    continue;
                }
                Trust::Corrupt { actual } => {
                    let why = format!("content hashed to {actual}: quarantined, fetching again");
                    write(r, d, "corrupt", 0, need.size, Some(why)).await?;
                    reported.insert(*d, Reported::Other);
                }
                Trust::Missing => {}
            }
        } else if reported.get(d) == Some(&Reported::Present) {
            // It was here and is gone (quarantined by the blob route, removed by hand).
            reported.insert(*d, Reported::Other);
            write(
                r,
                d,
                "fetching",
                0,
                need.size,
                Some("gone from disk".into()),
            )
            .await?;
        }
        if retry.get(d).is_some_and(|w| w.at > Instant::now()) {
            continue;
        }
        if in_flight.lock().unwrap_or_else(|p| p.into_inner()).len() >= PARALLEL {
            continue;
        }
        let holders = r.store.holders(&d.to_string(), &r.me).await?;
        if holders.is_empty() {
            fail(r, reported, retry, *d, need.size, &ReplicaError::NoHolder).await;
            continue;
        }
        in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*d);
        reported.insert(*d, Reported::Other);
        let (rr, digest, size) = (r.clone(), *d, need.size);
        fetches.spawn(async move {
            let result = fetch_from(&rr, &holders, &digest, size).await;
            (digest, size, result)
        });
    }
    Ok(())
}

/// Tries each holder in turn (first one first) until one gives the whole blob.
async fn fetch_from(
    r: &Replicator,
    holders: &[crate::store::Holder],
    d: &Digest,
    size: u64,
) -> Result<(), ReplicaError> {
    let mut last = ReplicaError::NoHolder;
    for h in holders {
        let store = r.store.clone();
        let (me, digest) = (r.me.clone(), d.to_string());
        let (tx, mut rx) = tokio::sync::watch::channel((0u64, size));
        let progress = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let (bytes, size) = *rx.borrow_and_update();
                let row = row(&me, &digest, "fetching", bytes, size, None);
                let _ = store.set_replica(&row).await;
            }
        });
        let got = fetch::fetch(&r.blobs, &h.url, d, |bytes, size| {
            let _ = tx.send((bytes, size));
        })
        .await;
        drop(tx);
        let _ = progress.await;
        match got {
            Ok(f) => {
                tracing::info!(blob = %d, size = f.size, from = %h.server, resumed_at = f.resumed_at, "blob replicated (sha256 verified)");
                r.trusted.mark(&r.blobs, d);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(blob = %d, from = %h.server, error = %e, "blob fetch failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Records a finished fetch.
async fn finished(
    r: &Replicator,
    reported: &mut HashMap<Digest, Reported>,
    retry: &mut HashMap<Digest, Retry>,
    d: Digest,
    size: u64,
    result: Result<(), ReplicaError>,
) {
    match result {
        Ok(()) => {
            retry.remove(&d);
            let size = r.blobs.size(&d).unwrap_or(size);
            if write(r, &d, "present", size, size, None).await.is_ok() {
                reported.insert(d, Reported::Present);
            }
            for inv in &r.inventories {
                inv.blobs_arrived();
            }
        }
        Err(e) => fail(r, reported, retry, d, size, &e).await,
    }
}

/// Records a failed attempt and when to try again (1 s, doubling, at most 60 s).
async fn fail(
    r: &Replicator,
    reported: &mut HashMap<Digest, Reported>,
    retry: &mut HashMap<Digest, Retry>,
    d: Digest,
    size: u64,
    e: &ReplicaError,
) {
    let wait = retry
        .get(&d)
        .map_or(BACKOFF_FIRST, |w| (w.wait * 2).min(BACKOFF_MAX));
    retry.insert(
        d,
        Retry {
            at: Instant::now() + wait,
            wait,
        },
    );
    reported.insert(d, Reported::Other);
    let bytes = r.blobs.partial_len(&d);
    let _ = write(r, &d, "failed", bytes, size, Some(e.to_string())).await;
}

fn row(me: &str, d: &str, state: &str, bytes: u64, size: u64, error: Option<String>) -> ReplicaRow {
    ReplicaRow {
        server: me.to_string(),
        digest: d.to_string(),
        state: state.to_string(),
        bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        error,
        updated_ms: now_ms(),
    }
}

async fn write(
    r: &Replicator,
    d: &Digest,
    state: &str,
    bytes: u64,
    size: u64,
    error: Option<String>,
) -> Result<(), ReplicaError> {
    let row = row(&r.me, &d.to_string(), state, bytes, size, error);
    Ok(r.store.set_replica(&row).await?)
}

/// How long a source row keeps a server "live" (see [`SOURCE_ALIVE_MS`]).
pub fn source_alive() -> Duration {
    Duration::from_millis(u64::try_from(SOURCE_ALIVE_MS).unwrap_or(5_000))
}
