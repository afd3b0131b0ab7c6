//! `GET /api/v1/explain/{mac}?uuid=&arch=`: what a MAC would boot now and why, for any
//! MAC (a MAC pin applies to machines not in the inventory too): the JSON of `tabula
//! explain MAC [--uuid U] [--arch A] --json`, the same facts and the same
//! [`crate::inventory::select`]. `machines/{name}/explain` is the same answer for a
//! machine known by name; this one is what the remote `tabula explain` calls.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;

use super::extract::Params;
use super::{ApiState, Problem};
use crate::boot::{Firmware, Mac};
use crate::fleet::Kind;
use crate::inventory::explanation::ExplainAnswer;
use crate::inventory::{Facts, select};

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainQuery {
    /// SMBIOS UUID, as DHCP option 97 would carry it.
    uuid: Option<String>,
    /// Firmware, as `tabula explain --arch` (default `bios`).
    arch: Option<String>,
}

/// The handler.
pub(crate) async fn get(
    State(st): State<ApiState>,
    uri: Uri,
    Path(mac): Path<String>,
    Params(q): Params<ExplainQuery>,
) -> Result<Json<ExplainAnswer>, Problem> {
    let path = uri.path();
    let mac: Mac = mac
        .parse()
        .map_err(|e| Problem::bad_request(path, format!("MAC {mac:?}: {e}")))?;
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
    let selection = select(
        &snap,
        &Facts {
            mac,
            uuid: q.uuid.map(|u| u.to_ascii_lowercase()),
            firmware,
        },
    );
    Ok(Json(ExplainAnswer {
        selection,
        program: st.loaders.program_line(firmware, mac),
    }))
}
