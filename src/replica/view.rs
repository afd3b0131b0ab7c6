//! The read model of replication: for each version, each blob server's state of it,
//! as `tabula image list` (its REPLICAS column) and the API's image versions show it.

use std::collections::BTreeMap;

use crate::boot::Digest;
use crate::images::BlobStore;
use crate::store::{ReplicaRow, Store, StoreError, VersionRow};

/// One server's state of one version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerState {
    pub server: String,
    /// `present` (every blob), `fetching`, `failed`, `corrupt` (one was found corrupt
    /// and is fetched again) or `missing` (nothing reported yet).
    pub state: String,
    /// Blobs of the version the server reports present, of `blobs` known.
    pub present: usize,
    pub blobs: usize,
    /// Bytes on its disk, of `size` (sizes as far as known).
    pub bytes: i64,
    pub size: i64,
    /// The last error, for `failed` and `corrupt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of `digests` on `server`, from its rows.
fn fold(server: &str, digests: &[Digest], rows: &[ReplicaRow]) -> ServerState {
    let mut s = ServerState {
        server: server.to_string(),
        state: "present".into(),
        present: 0,
        blobs: digests.len(),
        bytes: 0,
        size: 0,
        error: None,
    };
    let rank = |st: &str| match st {
        "present" => 0,
        "fetching" => 1,
        "missing" => 2,
        "failed" => 3,
        _ => 4,
    };
    for d in digests {
        let d = d.to_string();
        let row = rows.iter().find(|r| r.server == server && r.digest == d);
        let (state, bytes, size) = match row {
            Some(r) => (r.state.as_str(), r.bytes, r.size),
            None => ("missing", 0, 0),
        };
        if state == "present" {
            s.present += 1;
        }
        s.bytes += bytes;
        s.size += size.max(bytes);
        if rank(state) > rank(&s.state) {
            s.state = state.to_string();
            s.error = row.and_then(|r| r.error.clone());
        }
    }
    s
}

/// Every version's state on every server that serves blobs (ever had a source row),
/// keyed by `(name, version)`. A version's blobs are known from its manifest when this
/// process can read it; otherwise only the manifest itself is counted.
pub async fn by_version(
    store: &Store,
    blobs: &BlobStore,
    versions: &[VersionRow],
) -> Result<BTreeMap<(String, String), Vec<ServerState>>, StoreError> {
    let servers = store.blob_servers().await?;
    let mut out = BTreeMap::new();
    if servers.is_empty() {
        return Ok(out);
    }
    let rows = store.replicas().await?;
    let mut manifests = super::wanted::Manifests::default();
    for v in versions {
        let Ok(m) = v.manifest.parse::<Digest>() else {
            continue;
        };
        let mut digests = vec![m];
        if let Some(manifest) = manifests.get(blobs, &m).await {
            digests.extend(manifest.blobs().map(|b| b.digest));
        }
        let states = servers.iter().map(|s| fold(s, &digests, &rows)).collect();
        out.insert((v.name.clone(), v.version.clone()), states);
    }
    Ok(out)
}

/// `server=state` for each server, e.g. `pxe-a=present pxe-b=fetching:40%`; `-` when no
/// server serves blobs.
pub fn summary(states: &[ServerState]) -> String {
    if states.is_empty() {
        return "-".into();
    }
    states
        .iter()
        .map(|s| match s.state.as_str() {
            "fetching" if s.size > 0 => {
                let pct = s.bytes.saturating_mul(100) / s.size.max(1);
                format!("{}=fetching:{pct}%", s.server)
            }
            st => format!("{}={st}", s.server),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, d: &Digest, state: &str, bytes: i64, size: i64) -> ReplicaRow {
        ReplicaRow {
            server: server.into(),
            digest: d.to_string(),
            state: state.into(),
            bytes,
            size,
            error: None,
            updated_ms: 0,
        }
    }

    #[test]
    fn the_worst_blob_names_the_state() {
        let (m, k) = (Digest::of(b"m"), Digest::of(b"k"));
        let rows = vec![
            row("a", &m, "present", 10, 10),
            row("a", &k, "present", 90, 90),
            row("b", &m, "present", 10, 10),
            row("b", &k, "fetching", 40, 90),
        ];
        let a = fold("a", &[m, k], &rows);
        let b = fold("b", &[m, k], &rows);
        let c = fold("c", &[m, k], &rows);
        assert_eq!((a.state.as_str(), a.present, a.bytes), ("present", 2, 100));
        assert_eq!((b.state.as_str(), b.present, b.bytes), ("fetching", 1, 50));
        assert_eq!(c.state, "missing");
        assert_eq!(summary(&[a, b, c]), "a=present b=fetching:50% c=missing");
        assert_eq!(summary(&[]), "-");
    }
}
