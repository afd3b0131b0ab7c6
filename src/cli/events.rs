//! `tabula events [MAC] [--follow] [--json] [--attempt ID]`: the boot history, as stored. The `--json`
//! line is the README's "Boot events" shape: the row's columns, and `detail` as its
//! stage's typed fields. [`print`] is shared with the remote path (`--server`), which
//! follows over the API's event stream instead of polling the store.

use clap::Args;

use super::{Ctx, time};
use crate::boot::Mac;
use crate::store::EventRow;

#[derive(Debug, Args)]
pub(super) struct EventsArgs {
    /// Only this MAC's events
    pub(super) mac: Option<String>,
    /// Keep printing new events as they are stored
    #[arg(long)]
    pub(super) follow: bool,
    /// One JSON object per line
    #[arg(long)]
    pub(super) json: bool,
    /// Show at most this many of the latest events first
    #[arg(long, default_value_t = 50)]
    pub(super) last: i64,
    /// Only the events of this boot attempt (its id, as `machine boots` lists it), all
    /// of them, oldest first
    #[arg(long, conflicts_with_all = ["follow", "mac"])]
    pub(super) attempt: Option<String>,
}

/// Prints one event as `tabula events` shows it (also remotely).
pub(super) fn print(e: &EventRow, json: bool) {
    let ev = &e.event;
    if json {
        println!("{}", crate::events::json(e));
    } else {
        println!(
            "{}  {}  {:<12} {:<4} {}{}{}",
            time(ev.at_ms),
            ev.mac,
            ev.stage(),
            ev.via,
            ev.manifest.map(|d| format!("{} ", d)).unwrap_or_default(),
            ev.detail,
            ev.peer.map(|p| format!(" from {p}")).unwrap_or_default()
        );
    }
}

pub(super) async fn run(ctx: &Ctx, a: &EventsArgs) -> anyhow::Result<()> {
    if let Some(attempt) = &a.attempt {
        let mut after = 0;
        loop {
            let page = ctx
                .store()
                .events_of_attempt(attempt, after, FOLLOW_PAGE)
                .await?;
            for e in &page {
                print(e, a.json);
                after = e.id;
            }
            if i64::try_from(page.len()).unwrap_or(i64::MAX) < FOLLOW_PAGE {
                return Ok(());
            }
        }
    }
    let mac: Option<Mac> = a.mac.as_deref().map(str::parse).transpose()?;
    // The newest id before reading: following starts there even if `--last 0`.
    let mut last_id = ctx.store().last_event_id().await?;
    for e in ctx.store().recent_events(mac, a.last.max(0)).await? {
        print(&e, a.json);
        last_id = last_id.max(e.id);
    }
    if !a.follow {
        return Ok(());
    }
    // Another process (the server) writes: poll the store from the cursor. Ids become
    // visible in id order (see `store/events.rs`), so nothing is skipped or repeated.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        loop {
            // Read the newest id first: once a page comes back short, every event up
            // to it has been seen, other MACs' included, so the next query starts there.
            let newest = ctx.store().last_event_id().await?;
            let page = ctx.store().events(mac, last_id, FOLLOW_PAGE).await?;
            for e in &page {
                print(e, a.json);
                last_id = e.id;
            }
            if i64::try_from(page.len()).unwrap_or(i64::MAX) < FOLLOW_PAGE {
                last_id = last_id.max(newest);
                break;
            }
        }
    }
}

/// Rows per query while following.
const FOLLOW_PAGE: i64 = 1000;
