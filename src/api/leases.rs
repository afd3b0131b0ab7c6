//! `GET /api/v1/leases`: the DHCP leases as stored (what `tabula lease list --json`
//! prints), by address, in cursor pages. Read only.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};

use super::extract::Params;
use super::page::{Page, PageQuery, page};
use super::{ApiState, Problem};
use crate::boot::LeaseState;

/// The handler.
pub(crate) async fn list(
    State(st): State<ApiState>,
    uri: Uri,
    Params(q): Params<PageQuery>,
) -> Result<Json<Page<Value>>, Problem> {
    let path = uri.path();
    let limit = q.limit(path)?;
    let mut rows = st
        .store
        .leases()
        .await
        .map_err(|e| Problem::store(path, &e))?;
    rows.sort_by_key(|r| r.address);
    let now = crate::store::now_ms();
    // The cursor is the address as a number, so pages follow address order.
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<std::net::Ipv4Addr>()
                .map_err(|_| Problem::bad_request(path, format!("after={a:?}: an IPv4 address")))?,
        ),
    };
    rows.retain(|r| after.is_none_or(|a| r.address > a));
    let all: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "address": r.address.to_string(), "mac": r.mac.to_string(), "state": r.state,
                "expires_ms": r.expires_ms,
                "active": r.state == LeaseState::Bound && r.expires_ms > now,
            })
        })
        .collect();
    // Already filtered and in order: page without a text key.
    let p = page(all, |_| String::new(), None, limit);
    let next = p.next.as_ref().and_then(|_| {
        p.items
            .last()
            .and_then(|v| v["address"].as_str().map(str::to_string))
    });
    Ok(Json(Page {
        items: p.items,
        next,
    }))
}
