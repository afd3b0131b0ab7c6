//! `GET /metrics`: every metric family ([`crate::metrics`]) in Prometheus text format
//! (0.0.4), encoded per scrape from the live counters.
//!
//! Open by default, like `/healthz`. With `api.metrics_token_required = true` the route
//! sits behind the same bearer-token middleware as every `/api/v1` resource
//! ([`super::auth::require`], scope `read`: 401 with `WWW-Authenticate: Bearer` without a
//! valid token); [`router`] decides which.
//!
//! Must not: count anything itself. Encoding reads atomics and the registry (which only
//! scrapes lock); the one data-plane lock a scrape takes is DHCP's lease table, once, to
//! count pool use (O(leases), see `LeaseTable::usage`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// The route.
pub(crate) const PATH: &str = "/metrics";

/// What the route needs: the daemon's metrics and whether a token is required.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scrape {
    pub metrics: Metrics,
    /// `api.metrics_token_required`.
    pub token_required: bool,
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(st): State<ApiState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        st.metrics.metrics.encode(),
    )
        .into_response()
}

/// The `/metrics` route, behind the token check when `api.metrics_token_required`.
pub(crate) fn router(st: &ApiState) -> Router<ApiState> {
    let r = Router::new().route(PATH, get(scrape));
    if st.metrics.token_required {
        r.route_layer(middleware::from_fn_with_state(
            st.clone(),
            super::auth::require,
        ))
    } else {
        r
    }
}
