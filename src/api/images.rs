//! `/api/v1/images`: images and their versions and channels, a version's manifest,
//! channel moves, version removal, and publishing a version from uploaded blobs
//! (`POST …/versions` with a manifest naming digests; the bytes come first through
//! [`super::blobs`]). Reads are the store's rows; writes are the fleet facade's, on
//! behalf of the token (channel moves record it as the history's `actor`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Actor;
use super::extract::{Body, Params};
use super::page::{PageQuery, page};
use super::{ApiState, Problem};
use crate::catalog::{Published, Upload};
use crate::fleet::{FleetError, Kind};
use crate::replica::view::ServerState;
use crate::store::{ChannelRow, VersionRow};

/// The body of `PUT …/channels/{channel}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveChannel {
    version: String,
}

async fn rows(st: &ApiState, path: &str) -> Result<(Vec<VersionRow>, Vec<ChannelRow>), Problem> {
    let v = st
        .store
        .versions()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    let c = st
        .store
        .channels()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    Ok((v, c))
}

fn version_json(v: &VersionRow, channels: &[ChannelRow], replicas: &[ServerState]) -> Value {
    let chans: Vec<&str> = channels
        .iter()
        .filter(|c| c.name == v.name && c.version == v.version)
        .map(|c| c.channel.as_str())
        .collect();
    json!({"name": v.name, "version": v.version, "manifest": v.manifest,
           "created_ms": v.created_ms, "channels": chans, "replicas": replicas})
}

/// `GET /api/v1/images`: each image with its version count and channels, by name.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Json<super::page::Page<Value>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let (versions, channels) = rows(&st, path).await?;
    let mut by_name: BTreeMap<&str, (usize, BTreeMap<&str, &str>)> = BTreeMap::new();
    for v in &versions {
        by_name.entry(&v.name).or_default().0 += 1;
    }
    for c in &channels {
        by_name
            .entry(&c.name)
            .or_default()
            .1
            .insert(&c.channel, &c.version);
    }
    let all: Vec<Value> = by_name
        .into_iter()
        .map(|(n, (count, chans))| json!({"name": n, "versions": count, "channels": chans}))
        .collect();
    let key = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
    Ok(Json(page(all, key, q.after.as_deref(), limit)))
}

/// `GET /api/v1/images/{name}/versions`: by version text.
pub(crate) async fn versions(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
    Params(q): Params<PageQuery>,
) -> Result<Json<super::page::Page<Value>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let (versions, channels) = rows(&st, path).await?;
    let mut mine: Vec<&VersionRow> = versions.iter().filter(|v| v.name == name).collect();
    if mine.is_empty() {
        return Err(Problem::missing(
            path,
            "image",
            &name,
            format!("no version of {name} is published"),
        ));
    }
    mine.sort_by(|a, b| a.version.cmp(&b.version));
    let owned: Vec<VersionRow> = mine.iter().map(|v| (*v).clone()).collect();
    let replicas = crate::replica::view::by_version(&st.store, st.fleet.blobs(), &owned)
        .await
        .map_err(|e| Problem::store(path, &e))?;
    let all: Vec<Value> = mine
        .iter()
        .map(|v| {
            let r = replicas
                .get(&(v.name.clone(), v.version.clone()))
                .map_or(&[][..], Vec::as_slice);
            version_json(v, &channels, r)
        })
        .collect();
    let key = |v: &Value| v["version"].as_str().unwrap_or_default().to_string();
    Ok(Json(page(all, key, q.after.as_deref(), limit)))
}

/// `GET /api/v1/images/{name}/versions/{version}`: the manifest, as stored.
pub(crate) async fn manifest(
    State(st): State<ApiState>,
    uri: Uri,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let path = uri.path();
    match crate::catalog::find_version(st.fleet.blobs(), &st.store, &name, &version).await {
        Ok(Some((digest, m))) => {
            Ok(([(header::ETAG, format!("\"{digest}\""))], Json(m)).into_response())
        }
        Ok(None) => Err(Problem::missing(
            path,
            "version",
            &format!("{name}@{version}"),
            format!("{name}@{version} is not published"),
        )),
        Err(e) => Err(Problem::fleet(path, Kind::Version, e.into())),
    }
}

/// `POST /api/v1/images/{name}/versions`: publishes from uploaded blobs. 201 with the
/// manifest digest; 200 when the same content was published already; 409 when the
/// version exists with other content; 422 naming a blob not uploaded.
pub(crate) async fn publish(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path(name): Path<String>,
    Body(u): Body<Upload>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let version = u.version.clone();
    let location = format!("/api/v1/images/{name}/versions/{version}");
    let (status, manifest) = match st.fleet.publish_uploaded(&name, u, Some(&actor.name)).await {
        Ok(Published::New { manifest }) => (StatusCode::CREATED, manifest),
        Ok(Published::Unchanged { manifest }) => (StatusCode::OK, manifest),
        Err(e) => return Err(Problem::fleet(path, Kind::Image, e)),
    };
    let body = json!({"name": name, "version": version, "manifest": manifest.to_string()});
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `DELETE /api/v1/images/{name}/versions/{version}`: 204, also when it was gone; 409
/// while a pin or channel uses it.
pub(crate) async fn delete_version(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    match st
        .fleet
        .remove_version_by(&name, &version, Some(&actor.name))
        .await
    {
        Ok(()) | Err(FleetError::NotFound { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(Problem::fleet(uri.path(), Kind::Version, e)),
    }
}

/// `PUT /api/v1/images/{name}/channels/{channel}` with `{"version": "2"}`.
pub(crate) async fn put_channel(
    State(st): State<ApiState>,
    uri: Uri,
    actor: Actor,
    Path((name, channel)): Path<(String, String)>,
    Body(b): Body<MoveChannel>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let (_, channels) = rows(&st, path).await?;
    let already = channels
        .iter()
        .any(|c| c.name == name && c.channel == channel && c.version == b.version);
    if !already {
        st.fleet
            .tag_by(&name, &b.version, &channel, Some(&actor.name))
            .await
            .map_err(|e| Problem::fleet(path, Kind::Channel, e))?;
    }
    Ok(Json(
        json!({"name": name, "channel": channel, "version": b.version}),
    ))
}

/// `GET /api/v1/images/{name}/history`: every publication and removal of its versions,
/// oldest first, with its actor (`null`: the local CLI).
pub(crate) async fn history(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let h = st
        .store
        .version_history(&name)
        .await
        .map_err(|e| Problem::store(path, &e))?;
    if h.is_empty() {
        return Err(Problem::missing(
            path,
            "image",
            &name,
            format!("no version of {name} was ever published"),
        ));
    }
    Ok(Json(json!({"items": h, "next": null})))
}

/// `GET /api/v1/images/{name}/channels/{channel}/history`: every move, with its actor.
pub(crate) async fn channel_history(
    State(st): State<ApiState>,
    uri: Uri,
    Path((name, channel)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let path = uri.path();
    let h = st
        .store
        .channel_history(&name, &channel)
        .await
        .map_err(|e| Problem::store(path, &e))?;
    if h.is_empty() {
        return Err(Problem::missing(
            path,
            "channel",
            &format!("{name}:{channel}"),
            format!("channel {name}:{channel} never existed"),
        ));
    }
    Ok(Json(json!({"items": h, "next": null})))
}
