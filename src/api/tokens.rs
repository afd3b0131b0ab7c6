//! `/api/v1/tokens`: list (names, scopes, times: never secrets), create (`POST`, admin:
//! the answer carries the token, once), revoke (`DELETE /tokens/{name}`, admin; 204 also
//! when revoked already). The same [`crate::auth`] calls as `tabula token`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::extract::{Body, Params};
use super::page::{Page, PageQuery, page};
use super::problem::types;
use super::{ApiState, Problem};
use crate::auth::{self, AuthError, Scope};
use crate::store::TokenRow;

/// The body of `POST /api/v1/tokens`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    scope: String,
    /// A duration such as `90d`; absent: until revoked.
    expires: Option<String>,
}

fn problem(path: &str, e: AuthError) -> Problem {
    match e {
        AuthError::BadName(_) => Problem::invalid(path, "name", e.to_string()),
        AuthError::BadExpiry(_) => Problem::invalid(path, "expires", e.to_string()),
        AuthError::Exists(m) => Problem::typed(StatusCode::CONFLICT, types::CONFLICT, path, m)
            .about(Some("token"), String::new()),
        AuthError::NotFound(ref n) => Problem::missing(path, "token", n, e.to_string()),
        AuthError::Store(s) => Problem::store(path, &s),
        e => Problem::internal(path, &e),
    }
}

/// `GET /api/v1/tokens`.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Json<Page<TokenRow>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let mut all = auth::list(&st.store).await.map_err(|e| problem(path, e))?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(page(
        all,
        |t| t.name.clone(),
        q.after.as_deref(),
        limit,
    )))
}

/// `POST /api/v1/tokens`: 201 with `token` (shown this once).
pub(crate) async fn create(
    State(st): State<ApiState>,
    uri: Uri,
    Body(b): Body<NewToken>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let scope: Scope = b
        .scope
        .parse()
        .map_err(|e: auth::UnknownScope| Problem::invalid(path, "scope", e.to_string()))?;
    let expires = b
        .expires
        .as_deref()
        .map(auth::parse_expiry)
        .transpose()
        .map_err(|e| problem(path, e))?;
    let issued = auth::create(&st.store, &b.name, scope, expires)
        .await
        .map_err(|e| problem(path, e))?;
    let body = json!({"name": issued.row.name, "scope": issued.row.scope, "token": issued.token,
                      "created_ms": issued.row.created_ms, "expires_ms": issued.row.expires_ms});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/tokens/{name}`: revokes it.
pub(crate) async fn revoke(
    State(st): State<ApiState>,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    auth::revoke(&st.store, &name)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(|e| problem(uri.path(), e))
}
