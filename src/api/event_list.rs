//! `GET /api/v1/events`: stored boot events, oldest first, each the JSON of `tabula
//! events --json`. Filters `mac` and `stage`; `after` is an event id (the cursor: the
//! page's last id comes back as `next`); `limit` 1–1000 (default 100). The live stream
//! of the same events is [`super::events`].

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
