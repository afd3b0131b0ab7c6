//! `GET /api/v1/servers`: the servers sharing this store, as `tabula server list --json`
//! shows them (one JSON array): alive or not, what each serves, its roles and version.
//! Reads only.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ApiState, Problem};
use crate::ha::heartbeat;

/// The route's path.
pub(crate) const PATH: &str = "/api/v1/servers";

pub(crate) async fn list(State(st): State<ApiState>) -> Response {
    match heartbeat::list(&st.store, st.heartbeat).await {
        Ok(members) => Json(members).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "server list not read");
            Problem::unavailable(PATH).into_response()
        }
    }
}
