//! `GET /metrics`: every metric family ([`crate::metrics`]) in Prometheus text format
//! (0.0.4), encoded per scrape from the live counters.
//!
//! Open by default, like `/healthz`. With `api.metrics_token_required = true` a scrape
//! needs a token of scope `read`; until the token check is wired here ([`Scrape::authorize`])
//! every scrape is then answered 401 with `WWW-Authenticate: Bearer`, so a setting that
//! asks for protection never serves the metrics open.
//!
//! Must not: count anything itself. Encoding reads atomics and the registry (which only
//! scrapes lock); the one data-plane lock a scrape takes is DHCP's lease table, once, to
//! count pool use (O(leases), see `LeaseTable::usage`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiState, Problem};
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

/// Why a scrape is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A token is required and none that allows `read` was presented.
    Unauthenticated,
}

impl Scrape {
    /// Whether a scrape with these headers may read the metrics.
    ///
    /// Integration point: when `token_required`, the token check (scope `read`) decides
    /// here; until it is wired, no request passes.
    pub(crate) fn authorize(&self, _headers: &HeaderMap) -> Result<(), Refused> {
        if self.token_required {
            return Err(Refused::Unauthenticated);
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    match st.metrics.authorize(&headers) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            st.metrics.metrics.encode(),
        )
            .into_response(),
        Err(Refused::Unauthenticated) => {
            let mut res = Problem::unauthorized(
                PATH,
                "api.metrics_token_required is set: send a read token (Authorization: Bearer …)",
            )
            .into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tabula\""),
            );
            res
        }
    }
}
