//! `GET /api/v1/events/stream`: the boot history as Server-Sent Events, live. Each event
//! is `id: <event id>`, `event: <stage>`, `data: <the JSON of tabula events --json>`.
//!
//! Query: `mac` and `stage` filter; `after` is the cursor (an event id: the stream starts
//! with the first matching event above it; `0` replays the whole stored history). A
//! reconnecting client's `Last-Event-ID` header wins over `after`, so an `EventSource`
//! resumes where it stopped with nothing missed or repeated ([`Follower`]). Without
//! either, the stream starts at the newest event: live only. A comment line every 15 s
//! keeps proxies from closing an idle stream; the stream ends when the server stops.

use std::convert::Infallible;
use std::str::FromStr;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt as _};

use super::{ApiState, Problem};
use crate::boot::{BootStage, Mac};
use crate::events::{Filter, Follower};

/// The stream's path.
pub(crate) const PATH: &str = "/api/v1/events/stream";

/// The query of [`stream`], as given (parsed by [`Start::parse`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    pub mac: Option<String>,
    pub stage: Option<String>,
    pub after: Option<String>,
}

/// Where a stream starts and what it keeps.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Start {
    pub filter: Filter,
    /// `None`: from the newest event.
    pub after: Option<i64>,
}

impl Start {
    /// Reads the query and `Last-Event-ID`; the error says which value is wrong.
    pub(crate) fn parse(q: &StreamQuery, last_event_id: Option<&str>) -> Result<Start, String> {
        let mac = q
            .mac
            .as_deref()
            .map(|m| Mac::from_str(m).map_err(|e| format!("mac={m:?}: {e}")))
            .transpose()?;
        let stage = q
            .stage
            .as_deref()
            .map(|s| BootStage::from_str(s).map_err(|_| format!("stage={s:?}: not a boot stage")))
            .transpose()?;
        let cursor = |name: &str, v: &str| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{name} {v:?}: not an event id (0 or more)"))
        };
        let after = match (last_event_id, q.after.as_deref()) {
            (Some(v), _) => Some(cursor("Last-Event-ID", v)?),
            (None, Some(v)) => Some(cursor("after=", v)?),
            (None, None) => None,
        };
        Ok(Start {
            filter: Filter { mac, stage },
            after,
        })
    }
}

/// The handler of [`PATH`].
pub(crate) async fn stream(
    State(st): State<ApiState>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let start = Start::parse(&q, last).map_err(|e| Problem::bad_request(PATH, e))?;
    let after = match start.after {
        Some(a) => a,
        None => st.store.last_event_id().await.map_err(|e| {
            tracing::warn!(error = %e, "event stream: cannot read the newest event id");
            Problem::unavailable(PATH)
        })?,
    };
    let follower = Follower::new(st.store.clone(), &st.hub, start.filter, after);
    let events = stream::unfold(follower, |mut f| async move {
        match f.next().await {
            Ok(Some(row)) => {
                let event = Event::default()
                    .id(row.id.to_string())
                    .event(row.event.stage().as_str())
                    .data(crate::events::json(&row).to_string());
                Some((Ok(event), f))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, cursor = f.cursor(), "event stream: store read failed; stream closed (the client resumes with Last-Event-ID)");
                None
            }
        }
    })
    .take_until(st.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(mac: Option<&str>, stage: Option<&str>, after: Option<&str>) -> StreamQuery {
        StreamQuery {
            mac: mac.map(String::from),
            stage: stage.map(String::from),
            after: after.map(String::from),
        }
    }

    #[test]
    fn the_cursor_comes_from_last_event_id_then_after_then_the_newest() {
        let s = Start::parse(
            &q(Some("52:54:00:00:00:01"), Some("booted"), Some("7")),
            None,
        )
        .unwrap();
        assert_eq!(s.after, Some(7));
        assert_eq!(s.filter.stage, Some(BootStage::Booted));
        assert!(s.filter.mac.is_some());
        assert_eq!(
            Start::parse(&q(None, None, Some("7")), Some("42"))
                .unwrap()
                .after,
            Some(42)
        );
        assert_eq!(
            Start::parse(&q(None, None, None), None).unwrap().after,
            None
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = Start::parse(&q(Some("nope"), None, None), None).unwrap_err();
        assert!(e.starts_with("mac=\"nope\""), "{e}");
        let e = Start::parse(&q(None, Some("boooted"), None), None).unwrap_err();
        assert!(e.contains("not a boot stage"), "{e}");
        let e = Start::parse(&q(None, None, Some("-1")), None).unwrap_err();
        assert!(e.contains("after="), "{e}");
        let e = Start::parse(&q(None, None, None), Some("x")).unwrap_err();
        assert!(e.contains("Last-Event-ID"), "{e}");
    }
}
