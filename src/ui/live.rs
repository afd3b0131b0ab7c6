//! `GET /ui/live`: the live feed and the storm view; `GET /ui/live/stream`: the event
//! stream for the browser.
//!
//! The browser's `EventSource` cannot send an `Authorization` header, so the page does
//! not call `/api/v1/events/stream` (which needs a bearer token). It calls
//! `/ui/live/stream`, which checks the session cookie (the same check as every page:
//! its token re-verified, `read` or more) and then answers with the very handler of the
//! API stream ([`crate::api::events::stream`]): same query, same `Last-Event-ID`
//! resumption, same end at shutdown. The page is rendered with the newest event id and
//! opens the stream `after=` it, so nothing between the render and the connection is
//! lost; a reconnect resumes after the last id received (the browser's `Last-Event-ID`).
//!
//! The storm view: boots in flight (machines whose newest event is neither a `booted`
//! report nor a final failure, within [`super::state::STALL_MS`]), and per stage a
//! histogram of the seconds it took over the boots in the latest [`WINDOW`] events.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::session::Signed;
use super::state;
use super::timeline::boots;
use super::{Chrome, Ui, error, render, when};
use crate::api::events::StreamQuery;
use crate::boot::{BootEvent, BootStage, Mac};
use crate::events::timeline::STAGES;
use crate::store::now_ms;

/// Events the storm view's histogram reads.
const WINDOW: i64 = 5000;
/// Events the feed starts with.
const FEED: i64 = 50;
/// Histogram bucket upper bounds, seconds (the last bucket is open).
const BUCKETS: [f64; 7] = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

pub(crate) struct FeedRow {
    pub id: i64,
    pub at: String,
    pub mac: String,
    pub stage: String,
    pub via: String,
    pub detail: String,
}

pub(crate) struct Histogram {
    pub stage: &'static str,
    pub n: usize,
    /// Bar heights, percent of this stage's largest bucket; and counts.
    pub bars: Vec<(u32, usize)>,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    chrome: Option<Chrome>,
    after: i64,
    stages: String,
    feed: Vec<FeedRow>,
    in_flight: Vec<(String, String, String)>,
    histograms: Vec<Histogram>,
    axis: Vec<String>,
    boots_read: usize,
}

/// Per stage, how many boots took how long: bucket counts in [`BUCKETS`] order plus one.
pub(crate) fn histograms(by_mac: &BTreeMap<Mac, Vec<BootEvent>>) -> (Vec<Histogram>, usize) {
    let mut counts = [[0usize; BUCKETS.len() + 1]; 6];
    let mut n_boots = 0;
    for events in by_mac.values() {
        for b in boots(events) {
            n_boots += 1;
            for (i, s) in b.segments.iter().enumerate() {
                if let Some(sec) = s.seconds {
                    let k = BUCKETS
                        .iter()
                        .position(|&hi| sec < hi)
                        .unwrap_or(BUCKETS.len());
                    counts[i][k] += 1;
                }
            }
        }
    }
    let hist = STAGES
        .iter()
        .zip(counts)
        .map(|(stage, c)| {
            let max = c.iter().copied().max().unwrap_or(0).max(1);
            Histogram {
                stage,
                n: c.iter().sum(),
                bars: c
                    .iter()
                    .map(|&k| (u32::try_from(k * 100 / max).unwrap_or(100), k))
                    .collect(),
            }
        })
        .collect();
    (hist, n_boots)
}

pub(crate) async fn page(State(ui): State<Ui>, signed: Signed) -> Response {
    let chrome = signed.chrome("live");
    let store = &ui.api.store;
    let (after, recent, window, latest, snap) = match tokio::join!(
        store.last_event_id(),
        store.recent_events(None, FEED),
        store.recent_events(None, WINDOW),
        store.latest_event_per_mac(),
        ui.api.fleet.inventory().snapshot()
    ) {
        (Ok(a), Ok(r), Ok(w), Ok(l), Ok(s)) => (a, r, w, l, s),
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(chrome),
                "the state store cannot be read",
            );
        }
    };
    // The feed is read before `after`'s read could see later ones: keep those at or
    // below it, the stream brings the rest.
    let feed = recent
        .iter()
        .rev()
        .filter(|r| r.id <= after)
        .map(|r| FeedRow {
            id: r.id,
            at: when(r.event.at_ms),
            mac: r.event.mac.to_string(),
            stage: r.event.stage().to_string(),
            via: r.event.via.to_string(),
            detail: r.event.detail.to_string(),
        })
        .collect();
    let now = now_ms();
    let owner: std::collections::HashMap<Mac, &str> = snap
        .machines
        .iter()
        .flat_map(|m| m.macs.iter().map(move |mac| (*mac, m.name.as_str())))
        .collect();
    let mut in_flight: Vec<(String, String, String)> = latest
        .iter()
        .filter(|r| state::in_flight(r, now))
        .map(|r| {
            (
                r.event.mac.to_string(),
                owner.get(&r.event.mac).copied().unwrap_or("").to_string(),
                r.event.stage().to_string(),
            )
        })
        .collect();
    in_flight.sort();
    let mut by_mac: BTreeMap<Mac, Vec<BootEvent>> = BTreeMap::new();
    for r in window {
        by_mac.entry(r.event.mac).or_default().push(r.event);
    }
    let (histograms, boots_read) = histograms(&by_mac);
    let mut axis: Vec<String> = BUCKETS.iter().map(|b| format!("<{b}s")).collect();
    axis.push("≥60s".into());
    render(&LivePage {
        chrome: Some(chrome),
        after,
        stages: BootStage::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        feed,
        in_flight,
        histograms,
        axis,
        boots_read,
    })
}

/// `GET /ui/live/stream`: the API's event stream, for a signed-in session.
pub(crate) async fn stream(
    State(ui): State<Ui>,
    _signed: Signed,
    q: Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    crate::api::events::stream(State(ui.api.clone()), q, headers)
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Digest, EventDetail, Via};

    #[test]
    fn stage_seconds_fall_into_buckets() {
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let ev = |at_ms, stage| BootEvent {
            at_ms,
            mac,
            manifest: Some(Digest::of(b"m")),
            via: Via::Http,
            peer: None,
            detail: EventDetail::from_value(stage, serde_json::json!({})),
        };
        let mut m = BTreeMap::new();
        m.insert(
            mac,
            vec![
                ev(0, BootStage::DhcpAck),
                ev(700, BootStage::ScriptSent),
                ev(70_700, BootStage::Booted),
            ],
        );
        let (h, n) = histograms(&m);
        assert_eq!(n, 1);
        assert_eq!(h[0].stage, "dhcp");
        // dhcp took 0 s (the boot starts at its first event), script 0.7 s, booted 70 s.
        assert_eq!(h[0].bars[0], (100, 1));
        assert_eq!(h[2].bars[1], (100, 1));
        assert_eq!(h[5].bars[7], (100, 1));
        assert_eq!(h[1].n, 0);
    }
}
