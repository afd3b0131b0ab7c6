//! `/api/v1/pins`: list, get, `PUT /pins/{target}` with `{"ref": "demo@2"}`, `DELETE`,
//! `POST /pins/{target}/rollback`, `GET /pins/{target}/history`. A target is what
//! `tabula pin` takes (a MAC, a machine name, `label:k=v`, `default`), percent-encoded
//! in the path. Writes go through the fleet facade on behalf of the token, whose name
//! the pin history records as the change's `actor`. `PUT` of the pin a target already
//! has changes nothing (no history entry); `DELETE` of no pin is a 204 too.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Actor;
use super::extract::{Body, Params};
use super::page::{PageQuery, page};
use super::{ApiState, Problem};
use crate::fleet::{FleetError, Kind};
use crate::inventory::{PinRef, PinTarget};
use crate::store::{PinChange, PinRow};

/// The body of `PUT /pins/{target}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPin {
    #[serde(rename = "ref")]
    reference: String,
}

fn target(path: &str, t: &str) -> Result<PinTarget, Problem> {
    PinTarget::parse_cli(t).map_err(|e| Problem::bad_request(path, format!("target {t:?}: {e}")))
}

async fn current(st: &ApiState, path: &str, t: &PinTarget) -> Result<Option<PinRow>, Problem> {
    let key = t.key();
    Ok(st
        .store
        .pins()
        .await
        .map_err(|e| Problem::store(path, &e))?
        .into_iter()
        .find(|p| p.target == key))
}

/// `GET /api/v1/pins`.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Json<super::page::Page<PinRow>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let mut all = st
        .store
        .pins()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    all.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(Json(page(
        all,
        |p| p.target.clone(),
        q.after.as_deref(),
        limit,
    )))
}

/// `GET /api/v1/pins/{target}`.
pub(crate) async fn get(
    State(st): State<ApiState>,
    uri: Uri,
    Path(t): Path<String>,
) -> Result<Json<PinRow>, Problem> {
    let path = uri.path();
    let t = target(path, &t)?;
    current(&st, path, &t)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::missing(path, "pin", &t.to_string(), format!("{t} has no pin")))
}

/// `PUT /api/v1/pins/{target}`: the pin as it now is.
pub(crate) async fn put(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(t): Path<String>,
    Body(b): Body<SetPin>,
) -> Result<Json<PinRow>, Problem> {
    let path = uri.path();
    let t = target(path, &t)?;
    let r: PinRef = b
        .reference
        .parse()
        .map_err(|e| Problem::invalid(path, "ref", format!("ref {:?}: {e}", b.reference)))?;
    let before = current(&st, path, &t).await?;
    if before.as_ref().is_none_or(|p| p.reference != r.to_string()) {
        st.fleet
            .set_pin_by(&t, &r, Some(&actor.name))
            .await
            .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    }
    current(&st, path, &t)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::internal(path, &"the pin just set is gone"))
}

/// `DELETE /api/v1/pins/{target}`: 204, also when there was no pin.
pub(crate) async fn delete(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(t): Path<String>,
) -> Result<StatusCode, Problem> {
    let path = uri.path();
    let t = target(path, &t)?;
    match st.fleet.remove_pin_by(&t, Some(&actor.name)).await {
        Ok(()) | Err(FleetError::NotFound { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(Problem::fleet(path, Kind::Pin, e)),
    }
}

/// `POST /api/v1/pins/{target}/rollback`: `{"target", "from", "to"}`. No earlier pin
/// is a 409 (the pin exists; its history does not allow it).
pub(crate) async fn rollback(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(t): Path<String>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let t = target(path, &t)?;
    match st.fleet.rollback_pin_by(&t, Some(&actor.name)).await {
        Ok((from, to)) => Ok(Json(json!({"target": t.key(), "from": from, "to": to}))),
        Err(FleetError::NotFound {
            kind: Kind::Pin,
            name,
            message,
        }) => Err(Problem::typed(
            StatusCode::CONFLICT,
            super::problem::types::CONFLICT,
            path,
            message,
        )
        .about(Some("pin"), name)),
        Err(e) => Err(Problem::fleet(path, Kind::Pin, e)),
    }
}

/// `GET /api/v1/pins/{target}/history`: every change, oldest first, with its actor;
/// pages by position (`after` = the number of entries already read).
pub(crate) async fn history(
    State(st): State<ApiState>,
    uri: Uri,
    Path(t): Path<String>,
    Params(q): Params<PageQuery>,
) -> Result<Json<super::page::Page<PinChange>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let t = target(path, &t)?;
    let all = st
        .store
        .pin_history(&t.key())
        .await
        .map_err(|e| Problem::store(path, &e))?;
    if all.is_empty() {
        return Err(Problem::missing(
            path,
            "pin",
            &t.to_string(),
            format!("{t} has never been pinned"),
        ));
    }
    let skip: usize = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse()
            .map_err(|_| Problem::bad_request(path, format!("after={a:?}: a count")))?,
    };
    let total = all.len();
    let items: Vec<PinChange> = all.into_iter().skip(skip).take(limit).collect();
    let end = skip + items.len();
    Ok(Json(super::page::Page {
        items,
        next: (end < total).then(|| end.to_string()),
    }))
}
