//! `/api/v1/machines`: list (label selector, cursor pages), create, get, patch, delete,
//! and each machine's `explain` and `timeline`. Each handler parses the request into the
//! fleet facade's typed call (the same the CLI makes) and shapes the answer; checks and
//! writes are the facade's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Actor;
use super::extract::{Body, Params};
use super::page::{PageQuery, page};
use super::{ApiState, Problem};
use crate::boot::{Firmware, Mac, Machine};
use crate::fleet::Kind;
use crate::inventory::{Facts, Selector, select};

/// `GET /api/v1/machines` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// A label selector, as pins take it: `k=v,k2=a|b`.
    selector: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// A machine as the API takes it on create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMachine {
    name: String,
    #[serde(default)]
    macs: Vec<String>,
    uuid: Option<String>,
    hostname: Option<String>,
    address: Option<Ipv4Addr>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A JSON merge patch (RFC 7396) of a machine: a field left out stays, `null` clears
/// it; in `labels`, `null` removes that label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachinePatch {
    #[serde(default, deserialize_with = "some")]
    hostname: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    address: Option<Option<Ipv4Addr>>,
    #[serde(default, deserialize_with = "some")]
    uuid: Option<Option<String>>,
    macs: Option<Vec<String>>,
    labels: Option<BTreeMap<String, Option<String>>>,
}

/// A present field (even `null`) is `Some`.
fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `GET …/explain` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainQuery {
    /// Which of the machine's MACs (default: its first).
    mac: Option<String>,
    /// Firmware, as `tabula explain --arch` (default `bios`).
    arch: Option<String>,
}

fn macs(path: &str, texts: &[String]) -> Result<Vec<Mac>, Problem> {
    let mut out: Vec<Mac> = Vec::new();
    for t in texts {
        let m: Mac = t
            .parse()
            .map_err(|e| Problem::invalid(path, "macs", format!("MAC {t:?}: {e}")))?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

fn uuid(path: &str, u: &str) -> Result<String, Problem> {
    let l = u.trim().to_ascii_lowercase();
    let ok = l.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && l.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(l)
        .ok_or_else(|| Problem::invalid(path, "uuid", format!("UUID {u:?}: 8-4-4-4-12 hex digits")))
}

/// `GET /api/v1/machines`.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<ListQuery>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let limit = PageQuery {
        limit: q.limit,
        after: None,
    }
    .limit(path)?;
    let selector: Option<Selector> = q
        .selector
        .as_deref()
        .map(|s| s.parse())
        .transpose()
        .map_err(|e| Problem::bad_request(path, format!("selector: {e}")))?;
    let mut all = st
        .store
        .machines()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    all.retain(|m| selector.as_ref().is_none_or(|s| s.matches(&m.labels)));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(page(all, |m| m.name.clone(), q.after.as_deref(), limit)).into_response())
}

/// `POST /api/v1/machines`: 201 with the machine and its `Location`.
pub(crate) async fn create(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Body(b): Body<NewMachine>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let m = Machine {
        macs: macs(path, &b.macs)?,
        uuid: b.uuid.as_deref().map(|u| uuid(path, u)).transpose()?,
        name: b.name,
        hostname: b.hostname,
        address: b.address,
        labels: b.labels,
    };
    st.fleet
        .add_machine_by(&m, Some(&actor.name))
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    let location = format!("/api/v1/machines/{}", m.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(m)).into_response())
}

/// `GET /api/v1/machines/{name}`.
pub(crate) async fn get(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Json<Machine>, Problem> {
    st.fleet
        .machine(&name)
        .await
        .map(Json)
        .map_err(|e| Problem::fleet(uri.path(), Kind::Machine, e))
}

/// `PATCH /api/v1/machines/{name}`: the patched machine.
pub(crate) async fn patch(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(name): Path<String>,
    Body(p): Body<MachinePatch>,
) -> Result<Json<Machine>, Problem> {
    let path = uri.path();
    let fail = |e| Problem::fleet(path, Kind::Machine, e);
    let mut m = st.fleet.machine(&name).await.map_err(fail)?;
    if let Some(h) = p.hostname {
        m.hostname = h;
    }
    if let Some(a) = p.address {
        m.address = a;
    }
    if let Some(u) = p.uuid {
        m.uuid = u.as_deref().map(|u| uuid(path, u)).transpose()?;
    }
    if let Some(list) = p.macs {
        m.macs = macs(path, &list)?;
    }
    for (k, v) in p.labels.unwrap_or_default() {
        match v {
            Some(v) => m.labels.insert(k, v),
            None => m.labels.remove(&k),
        };
    }
    st.fleet
        .update_machine_by(&m, Some(&actor.name))
        .await
        .map_err(fail)?;
    Ok(Json(m))
}

/// `DELETE /api/v1/machines/{name}`: 204, also when it was already gone.
pub(crate) async fn delete(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    match st.fleet.remove_machine_by(&name, Some(&actor.name)).await {
        Ok(()) | Err(crate::fleet::FleetError::NotFound { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(Problem::fleet(uri.path(), Kind::Machine, e)),
    }
}

/// `GET /api/v1/machines/{name}/history`: every change of the machine, oldest first,
/// with its actor (`null`: the local CLI); kept after its removal.
pub(crate) async fn history(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Json<super::page::Page<crate::store::MachineChange>>, Problem> {
    let items = st
        .fleet
        .machine_history(&name)
        .await
        .map_err(|e| Problem::fleet(uri.path(), Kind::Machine, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}

/// `GET /api/v1/machines/{name}/explain`: the JSON of `tabula explain MAC --json` for
/// the machine's first MAC (or `?mac=`), on `?arch=` firmware (default BIOS), with no
/// UUID (as the CLI without `--uuid`).
pub(crate) async fn explain(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
    Params(q): Params<ExplainQuery>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let m = st
        .fleet
        .machine(&name)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e))?;
    let mac = match q.mac.as_deref() {
        Some(t) => {
            let mac: Mac = t
                .parse()
                .map_err(|e| Problem::bad_request(path, format!("mac={t:?}: {e}")))?;
            if !m.macs.contains(&mac) {
                return Err(Problem::bad_request(
                    path,
                    format!("{mac} is not a MAC of machine {name:?}"),
                ));
            }
            mac
        }
        None => *m.macs.first().ok_or_else(|| {
            Problem::typed(
                StatusCode::CONFLICT,
                super::problem::types::CONFLICT,
                path,
                format!("machine {name:?} has no MAC to explain a boot for"),
            )
        })?,
    };
    let firmware: Firmware = q
        .arch
        .as_deref()
        .unwrap_or("bios")
        .parse()
        .map_err(|e| Problem::bad_request(path, format!("arch: {e}")))?;
    let snap = st
        .fleet
        .inventory()
        .snapshot()
        .await
        .map_err(|e| Problem::fleet(path, Kind::Machine, e.into()))?;
    let sel = select(
        &snap,
        &Facts {
            mac,
            uuid: None,
            firmware,
        },
    );
    let program = st.loaders.program_line(firmware, mac);
    Ok(Json(crate::inventory::explanation::ExplainAnswer {
        selection: sel,
        program,
    })
    .into_response())
}
