//! `/api/v1/rollouts`: list, create (`admin`: it decides what a fleet boots), get, and
//! the operator's commands `POST /rollouts/{name}/{start|pause|resume|promote|abort|retry}`
//! (`operate`, like pins). Each parses the request into the fleet facade's call, the one
//! `tabula rollout …` makes; the answers are its read model ([`RolloutView`], the JSON of
//! `tabula rollout show --json`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Body;
use super::{ApiState, Problem};
use crate::fleet::{Kind, RolloutSpec, RolloutView};
use crate::inventory::{PinRef, Selector};
use crate::rollout::Command;

/// The body of `POST /rollouts`: `tabula rollout create`'s options, with its defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRollout {
    name: String,
    /// A label selector (`role=web`, or `label:role=web`).
    target: String,
    /// `IMAGE@VERSION`.
    to: String,
    steps: Option<String>,
    max_in_flight: Option<u32>,
    failure_budget: Option<String>,
    bake: Option<String>,
    deadline: Option<String>,
    on_budget: Option<String>,
    reboot: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn duration(
    path: &str,
    field: &str,
    v: Option<&str>,
    default: &str,
) -> Result<std::time::Duration, Problem> {
    let t = v.unwrap_or(default);
    humantime::parse_duration(t)
        .map_err(|e| Problem::invalid(path, field, format!("{field} {t:?}: {e}")))
}

fn spec(path: &str, b: NewRollout) -> Result<RolloutSpec, Problem> {
    let selector: Selector = b
        .target
        .strip_prefix("label:")
        .unwrap_or(&b.target)
        .parse()
        .map_err(|e| Problem::invalid(path, "target", format!("target {:?}: {e}", b.target)))?;
    let (image, version) = match b.to.parse::<PinRef>() {
        Ok(PinRef::Version { image, version }) => (image, version),
        Ok(other) => {
            return Err(Problem::invalid(
                path,
                "to",
                format!("to {other}: a rollout names one version, IMAGE@VERSION"),
            ));
        }
        Err(e) => return Err(Problem::invalid(path, "to", format!("to {:?}: {e}", b.to))),
    };
    let steps = b.steps.as_deref().unwrap_or("1,10%,50%,100%");
    let budget = b.failure_budget.as_deref().unwrap_or("0");
    Ok(RolloutSpec {
        steps: steps
            .parse()
            .map_err(|e| Problem::invalid(path, "steps", format!("steps {steps:?}: {e}")))?,
        budget: budget.parse().map_err(|e| {
            Problem::invalid(
                path,
                "failure_budget",
                format!("failure_budget {budget:?}: {e}"),
            )
        })?,
        bake: duration(path, "bake", b.bake.as_deref(), "0s")?,
        deadline: duration(path, "deadline", b.deadline.as_deref(), "30m")?,
        max_in_flight: b.max_in_flight.unwrap_or(10),
        on_budget: b.on_budget.unwrap_or_else(|| "pause".into()),
        reboot: b.reboot.unwrap_or_else(|| "passive".into()),
        name: b.name,
        selector,
        image,
        version,
    })
}

/// `GET /api/v1/rollouts`: every rollout, newest first.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
) -> Result<Json<super::page::Page<RolloutView>>, Problem> {
    let items = st
        .fleet
        .rollouts()
        .await
        .map_err(|e| Problem::fleet(uri.path(), Kind::Rollout, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}

/// `POST /api/v1/rollouts`: 201 with the draft and its `Location` (`dry_run`: 200 with
/// what it would be, nothing written); a name taken 409.
pub(crate) async fn create(
    State(st): State<ApiState>,
    uri: Uri,
    Body(b): Body<NewRollout>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let dry_run = b.dry_run;
    let s = spec(path, b)?;
    let v = st
        .fleet
        .create_rollout(&s, dry_run)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Rollout, e))?;
    if dry_run {
        return Ok(Json(v).into_response());
    }
    let location = format!("/api/v1/rollouts/{}", s.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(v)).into_response())
}

/// `GET /api/v1/rollouts/{name}`: = `tabula rollout show NAME --json`.
pub(crate) async fn get(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Json<RolloutView>, Problem> {
    st.fleet
        .rollout_view(&name)
        .await
        .map(Json)
        .map_err(|e| Problem::fleet(uri.path(), Kind::Rollout, e))
}

/// `POST /api/v1/rollouts/{name}/{command}`: `{"rollout", "command", "state"}`; a
/// command the state does not take 409, an unknown command 404.
pub(crate) async fn command(
    State(st): State<ApiState>,
    uri: Uri,
    Path((name, cmd)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let c: Command = cmd.parse().map_err(|_| {
        Problem::missing(
            path,
            "command",
            &cmd,
            format!("no rollout command {cmd:?}: start, pause, resume, promote, abort or retry"),
        )
    })?;
    let to = st
        .fleet
        .rollout_command(&name, c)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Rollout, e))?;
    Ok(Json(
        json!({"rollout": name, "command": c.as_str(), "state": to.as_str()}),
    ))
}
