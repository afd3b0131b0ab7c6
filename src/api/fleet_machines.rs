//! A machine's place in the closed loop: `GET /machines/{name}/boots` (its boot attempts,
//! newest first, = `tabula machine boots --json`), `GET /holds` and `DELETE
//! /machines/{name}/hold` (release an automatic-rollback hold or a quarantine, = `tabula
//! machine release`), `POST /machines/{name}/boot-once` and `GET
//! /machines/{name}/boot-once/{id}` (= `tabula pin set NAME REF --once`, then its result:
//! pending, booting, booted, failed, expired). Writes are `operate`, like pins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{Body, Params};
use super::{ApiState, Problem};
use crate::fleet::{Kind, Then};
use crate::inventory::{PinRef, PinTarget};
use crate::store::{BootOnceRow, BootRow, HoldRow};

/// `GET …/boots` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BootsQuery {
    limit: Option<i64>,
}

/// The body of `POST …/boot-once`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBootOnce {
    #[serde(rename = "ref")]
    reference: String,
    /// How long the request waits for its boot (default `2h`).
    ttl: Option<String>,
    /// `revert` (default: back to the pin it had) or `local`.
    then: Option<String>,
}

/// `GET /api/v1/machines/{name}/boots[?limit=N]` (1-1000, default 50).
pub(crate) async fn boots(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
    Params(q): Params<BootsQuery>,
) -> Result<Json<super::page::Page<BootRow>>, Problem> {
    let path = uri.path();
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(path, format!("limit={limit}: 1-1000")));
    }
    let items = st
        .fleet
        .machine_boots(&name, limit)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}

/// `GET /api/v1/holds`: every machine held by automatic rollback or quarantined.
pub(crate) async fn holds(
    State(st): State<ApiState>,
    uri: Uri,
) -> Result<Json<super::page::Page<HoldRow>>, Problem> {
    let items = st
        .fleet
        .holds()
        .await
        .map_err(|e| Problem::fleet(uri.path(), Kind::Hold, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}

/// `DELETE /api/v1/machines/{name}/hold`: 200 with the hold released, 204 when the
/// machine was not held.
pub(crate) async fn release(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    match st.fleet.release_hold(&name).await {
        Ok(h) => Ok(Json(h).into_response()),
        Err(crate::fleet::FleetError::NotFound {
            kind: Kind::Hold, ..
        }) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(Problem::fleet(uri.path(), Kind::Hold, e)),
    }
}

/// `POST /api/v1/machines/{name}/boot-once`: 201 with the request and its `Location`.
pub(crate) async fn create_boot_once(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
    Body(b): Body<NewBootOnce>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let reference: PinRef = b
        .reference
        .parse()
        .map_err(|e| Problem::invalid(path, "ref", format!("ref {:?}: {e}", b.reference)))?;
    let ttl_text = b.ttl.as_deref().unwrap_or("2h");
    let ttl = humantime::parse_duration(ttl_text)
        .map_err(|e| Problem::invalid(path, "ttl", format!("ttl {ttl_text:?}: {e}")))?;
    let then = match b.then.as_deref() {
        None | Some("revert") => Then::Revert,
        Some("local") => Then::Local,
        Some(o) => {
            return Err(Problem::invalid(
                path,
                "then",
                format!("then {o:?}: revert or local"),
            ));
        }
    };
    let target = match name.parse() {
        Ok(mac) => PinTarget::Mac(mac),
        Err(_) => PinTarget::Machine(name.clone()),
    };
    let row = st
        .fleet
        .create_boot_once(&target, &reference, ttl, then)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    let location = format!("/api/v1/machines/{name}/boot-once/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(row),
    )
        .into_response())
}

/// `GET /api/v1/machines/{name}/boot-once/{id}`: the request and its result.
pub(crate) async fn boot_once(
    State(st): State<ApiState>,
    uri: Uri,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<BootOnceRow>, Problem> {
    let path = uri.path();
    let row = st
        .fleet
        .boot_once(&id)
        .await
        .map_err(|e| Problem::fleet(path, Kind::BootOnce, e))?;
    if row.machine != name {
        return Err(Problem::missing(
            path,
            "boot_once",
            &id,
            format!("no boot-once request {id:?} for {name:?}"),
        ));
    }
    Ok(Json(row))
}

/// `GET /api/v1/boot-once/{id}`: a boot-once request by id alone (= `tabula pin
/// once-status ID --json`).
pub(crate) async fn boot_once_by_id(
    State(st): State<ApiState>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<BootOnceRow>, Problem> {
    st.fleet
        .boot_once(&id)
        .await
        .map(Json)
        .map_err(|e| Problem::fleet(uri.path(), Kind::BootOnce, e))
}
