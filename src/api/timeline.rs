//! `GET /api/v1/machines/{name}/timeline`: a machine's boots, newest first, each stage
//! by stage (the read model `tabula lab` and `machine show` print), from its first MAC's
//! latest `?limit=` events (default 200, at most 1000), which come along, oldest first.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Params;
use super::{ApiState, Problem};
use crate::boot::BootEvent;
use crate::events::timeline::{self, Outcome, STAGES, Timeline};
use crate::fleet::Kind;

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimelineQuery {
    limit: Option<i64>,
}

/// Splits `events` (one MAC's, oldest first) into boots, newest first.
pub(crate) fn boots(events: &[BootEvent]) -> Vec<Timeline> {
    let mut out = Vec::new();
    let mut rest = events;
    while let Some(t) = timeline::last_boot(rest) {
        let cut = rest
            .iter()
            .position(|e| e.at_ms >= t.start_ms)
            .unwrap_or(rest.len());
        out.push(t);
        if cut == 0 || cut >= rest.len() {
            break;
        }
        rest = &rest[..cut];
    }
    out
}

/// One boot as JSON: start, each stage's end and seconds, outcome.
fn boot_json(t: &Timeline) -> Value {
    let secs = t.seconds();
    let stages: Vec<Value> = STAGES
        .iter()
        .zip(t.ends.iter().zip(secs.iter()))
        .map(|(name, (end, s))| json!({"stage": name, "end_ms": end, "seconds": s}))
        .collect();
    let outcome = match &t.outcome {
        Outcome::Pending => json!({"state": "pending"}),
        Outcome::Booted(d) => json!({"state": "booted", "manifest": d.to_string()}),
        Outcome::Failed(r) => json!({"state": "failed", "reason": r}),
    };
    json!({
        "start_ms": t.start_ms,
        "stages": stages,
        "total_seconds": t.total(),
        "outcome": outcome,
        "last_failure": t.last_failure,
    })
}

/// The handler.
pub(crate) async fn get(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
    Params(q): Params<TimelineQuery>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(
            path,
            format!("limit={limit}: 1 to 1000"),
        ));
    }
    let view = st
        .fleet
        .machine_view(&name, limit)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    let events: Vec<BootEvent> = view.recent.iter().map(|r| r.event.clone()).collect();
    Ok(Json(json!({
        "machine": name,
        "mac": view.machine.macs.first().map(|m| m.to_string()),
        "boots": boots(&events).iter().map(boot_json).collect::<Vec<_>>(),
        "events": view.recent.iter().map(crate::events::json).collect::<Vec<_>>(),
    })))
}
