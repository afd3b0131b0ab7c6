//! `GET /api/v1/events`: stored boot events, oldest first, each the JSON of `tabula
//! events --json`. Filters `mac` and `stage`; `after` is an event id (the cursor: the
//! page's last id comes back as `next`); `limit` 1–1000 (default 100). `last=N`
//! (0–1000, without `after` or `stage`) is instead the newest N (of that MAC), oldest
//! first, as `tabula events --last N` prints them, with `next` always set: the newest
//! event id when it was read, the cursor to follow from. The live stream of the same
//! events is [`super::events`]. `attempt=ID` (with `after` and `limit` only) is the events
//! of one boot attempt, oldest first.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde_json::Value;

use super::events::{Start, StreamQuery};
use super::extract::Params;
use super::page::{DEFAULT_LIMIT, MAX_LIMIT, Page};
use super::{ApiState, Problem};

/// The query: the stream's filters and cursor, and a page size.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    mac: Option<String>,
    stage: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    last: Option<i64>,
    attempt: Option<String>,
}

/// Rows read per store query while filtering by stage.
const SCAN: i64 = 1000;
/// Store queries one request may make: past them, the page ends early and `next` is
/// where the scan stopped (every event up to it was looked at).
const MAX_SCANS: usize = 50;

/// The handler.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<ListQuery>,
) -> Result<Json<Page<Value>>, Problem> {
    let path = uri.path();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(
            path,
            format!("limit={limit}: 1 to {MAX_LIMIT}"),
        ));
    }
    if let Some(attempt) = &q.attempt {
        return of_attempt(&st, path, attempt, &q, limit).await;
    }
    if let Some(n) = q.last {
        return newest(&st, path, q.mac, q.stage.is_some() || q.after.is_some(), n).await;
    }
    let sq = StreamQuery {
        mac: q.mac,
        stage: q.stage,
        after: q.after,
    };
    let start = Start::parse(&sq, None).map_err(|e| Problem::bad_request(path, e))?;
    let mut scanned = start.after.unwrap_or(0);
    let mut items = Vec::new();
    let mut next = None;
    // Forward by id (the MAC filter is the store's index); the stage filter is applied
    // here, one bounded read at a time, until the page is full or the history ends.
    'scan: for round in 0..MAX_SCANS {
        let rows = st
            .store
            .events(start.filter.mac, scanned, SCAN)
            .await
            .map_err(|e| Problem::store(path, &e))?;
        let n = rows.len();
        for r in rows {
            let id = r.id;
            if start.filter.stage.is_none_or(|s| s == r.event.stage()) {
                if items.len() == limit {
                    next = Some(scanned);
                    break 'scan;
                }
                items.push(r);
            }
            scanned = id;
        }
        if i64::try_from(n).unwrap_or(i64::MAX) < SCAN {
            break;
        }
        if round + 1 == MAX_SCANS {
            next = Some(scanned);
        }
    }
    Ok(Json(Page {
        items: items.iter().map(crate::events::json).collect(),
        next: next.map(|n| n.to_string()),
    }))
}

/// `?attempt=ID`: the events of one boot attempt, oldest first, paged by `after` like
/// the rest; with no other filter.
async fn of_attempt(
    st: &ApiState,
    path: &str,
    attempt: &str,
    q: &ListQuery,
    limit: usize,
) -> Result<Json<Page<Value>>, Problem> {
    if q.mac.is_some() || q.stage.is_some() || q.last.is_some() {
        return Err(Problem::bad_request(
            path,
            "attempt= takes no mac=, stage= or last=".to_string(),
        ));
    }
    let after = match &q.after {
        None => 0,
        Some(a) => a
            .parse::<i64>()
            .map_err(|_| Problem::bad_request(path, format!("after={a}: an event id")))?,
    };
    let want = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = st
        .store
        .events_of_attempt(attempt, after, want)
        .await
        .map_err(|e| Problem::store(path, &e))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(crate::events::json).collect(),
        next,
    }))
}

/// `?last=N`: the newest `n` events, oldest first; `next` is the newest id read before
/// them (or the newest returned), so following from it misses nothing.
async fn newest(
    st: &ApiState,
    path: &str,
    mac: Option<String>,
    other_filters: bool,
    n: i64,
) -> Result<Json<Page<Value>>, Problem> {
    if other_filters {
        return Err(Problem::bad_request(
            path,
            "last= takes no after= or stage=".to_string(),
        ));
    }
    if !(0..=1000).contains(&n) {
        return Err(Problem::bad_request(path, format!("last={n}: 0 to 1000")));
    }
    let start = Start::parse(
        &StreamQuery {
            mac,
            stage: None,
            after: None,
        },
        None,
    )
    .map_err(|e| Problem::bad_request(path, e))?;
    let newest = st
        .store
        .last_event_id()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    let rows = st
        .store
        .recent_events(start.filter.mac, n)
        .await
        .map_err(|e| Problem::store(path, &e))?;
    let next = rows.iter().map(|r| r.id).fold(newest, i64::max);
    Ok(Json(Page {
        items: rows.iter().map(crate::events::json).collect(),
        next: Some(next.to_string()),
    }))
}
