//! `/api/v1/webhooks` (`admin` for every write: a webhook sends fleet events out of the
//! store): list (never the secrets), create (the answer holds the secret, once), delete,
//! and a webhook's delivery log, newest first. The facade's calls are `tabula webhook`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Body, Params};
use super::{ApiState, Problem};
use crate::fleet::Kind;
use crate::store::{DeliveryRow, WebhookRow};

/// The body of `POST /webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhook {
    url: String,
    /// Event types and patterns, comma-separated (`booted,failed,machine.*,rollout.*`).
    events: String,
    /// `whsec_…`; made when left out.
    secret: Option<String>,
}

/// `GET …/deliveries` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/webhooks`.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
) -> Result<Json<super::page::Page<WebhookRow>>, Problem> {
    let items = st
        .fleet
        .webhooks()
        .await
        .map_err(|e| Problem::fleet(uri.path(), Kind::Webhook, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}

/// `POST /api/v1/webhooks`: 201 with the webhook and its `secret` (shown once).
pub(crate) async fn create(
    State(st): State<ApiState>,
    uri: Uri,
    Body(b): Body<NewWebhook>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let w = st
        .fleet
        .add_webhook(&b.url, &b.events, b.secret.as_deref())
        .await
        .map_err(|e| Problem::fleet(path, Kind::Webhook, e))?;
    let location = format!("/api/v1/webhooks/{}", w.id);
    let body = json!({"id": w.id, "url": w.url, "events": w.events,
                      "created_ms": w.created_ms, "secret": w.secret});
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// `DELETE /api/v1/webhooks/{id}`: 204, also when it was gone.
pub(crate) async fn delete(
    State(st): State<ApiState>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    match st.fleet.remove_webhook(&id).await {
        Ok(()) | Err(crate::fleet::FleetError::NotFound { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(Problem::fleet(uri.path(), Kind::Webhook, e)),
    }
}

/// `GET /api/v1/webhooks/{id}/deliveries[?limit=N]` (1-1000, default 100).
pub(crate) async fn deliveries(
    State(st): State<ApiState>,
    uri: Uri,
    Path(id): Path<String>,
    Params(q): Params<DeliveriesQuery>,
) -> Result<Json<super::page::Page<DeliveryRow>>, Problem> {
    let path = uri.path();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(path, format!("limit={limit}: 1-1000")));
    }
    let items = st
        .fleet
        .deliveries(&id, limit)
        .await
        .map_err(|e| Problem::fleet(path, Kind::Webhook, e))?;
    Ok(Json(super::page::Page { items, next: None }))
}
