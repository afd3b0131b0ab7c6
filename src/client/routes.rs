//! One typed function per `/api/v1` route the remote CLI uses, each answering with the
//! type the local CLI prints (lists are read to their end, page by page). The paths
//! are the API's route table ([`crate::api::routes::TABLE`]); path segments are
//! percent-encoded here and nowhere else.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::Method;
use hyper::body::Frame;
use hyper::header;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Client, ClientError, segment, wire};
use crate::boot::{Digest, Machine};
use crate::images::Manifest;
use crate::inventory::Explanation;
use crate::store::{EventRow, LeaseRow, MachineChange, PinChange, PinRow, VersionRow};

/// One page of a list.
#[derive(Debug, Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
}

/// Rows asked for per page.
const PAGE: usize = 1000;
/// Pages read at most for one list (a guard against a server that never ends one).
const MAX_PAGES: usize = 10_000;

/// An image of `GET /images`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ImageItem {
    pub name: String,
    /// Channel → version.
    pub channels: BTreeMap<String, String>,
}

/// A version of `GET /images/{name}/versions`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct VersionItem {
    #[serde(flatten)]
    pub row: VersionRow,
    pub channels: Vec<String>,
    /// Its state on each blob server (older servers send none).
    #[serde(default)]
    pub replicas: Vec<crate::replica::view::ServerState>,
}

/// The answer of a rollback.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RolledBack {
    pub from: Option<String>,
    pub to: String,
}

/// The answer of a publish.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PublishAnswer {
    pub manifest: Digest,
}

/// Whether a write made something new or found it there already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Made {
    New,
    Unchanged,
}

/// Encodes a query string.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect();
    if present.is_empty() {
        return String::new();
    }
    format!(
        "?{}",
        serde_urlencoded::to_string(present).unwrap_or_default()
    )
}

impl Client {
    /// Every item of a paginated list at `path` (which has no query of its own).
    async fn all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let q = query(&[("limit", Some(PAGE.to_string())), ("after", after.clone())]);
            let page: Page<T> = self.call(Method::GET, &format!("{path}{q}"), None).await?;
            out.extend(page.items);
            match page.next {
                Some(n) if Some(&n) != after.as_ref() => after = Some(n),
                Some(_) => return Err(self.bad(path, "a page cursor that does not move".into())),
                None => return Ok(out),
            }
        }
        Err(self.bad(path, format!("more than {MAX_PAGES} pages")))
    }

    /// `GET /api/v1/machines`, every page, by name.
    pub(crate) async fn machines(&self) -> Result<Vec<Machine>, ClientError> {
        self.all("/api/v1/machines").await
    }

    /// `GET /api/v1/machines/{name}`.
    pub(crate) async fn machine(&self, name: &str) -> Result<Machine, ClientError> {
        let path = format!("/api/v1/machines/{}", segment(name));
        self.call(Method::GET, &path, None).await
    }

    /// `GET /api/v1/machines/{name}/history`, every page, oldest first.
    pub(crate) async fn machine_history(
        &self,
        name: &str,
    ) -> Result<Vec<MachineChange>, ClientError> {
        self.all(&format!("/api/v1/machines/{}/history", segment(name)))
            .await
    }

    /// `POST /api/v1/machines`.
    pub(crate) async fn create_machine(&self, m: &Machine) -> Result<Machine, ClientError> {
        let body = serde_json::to_value(m).map_err(|e| self.bad("a machine", e.to_string()))?;
        self.call(Method::POST, "/api/v1/machines", Some(body))
            .await
    }

    /// `PATCH /api/v1/machines/{name}` with a JSON merge patch.
    pub(crate) async fn patch_machine(
        &self,
        name: &str,
        patch: Value,
    ) -> Result<Machine, ClientError> {
        let path = format!("/api/v1/machines/{}", segment(name));
        self.call(Method::PATCH, &path, Some(patch)).await
    }

    /// `DELETE /api/v1/machines/{name}`.
    pub(crate) async fn delete_machine(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/machines/{}", segment(name));
        self.call_raw(Method::DELETE, &path, None).await.map(drop)
    }

    /// `GET /api/v1/explain/{mac}?uuid=&arch=`.
    pub(crate) async fn explain(
        &self,
        mac: &str,
        uuid: Option<&str>,
        arch: &str,
    ) -> Result<Explanation, ClientError> {
        let q = query(&[
            ("uuid", uuid.map(str::to_string)),
            ("arch", Some(arch.to_string())),
        ]);
        let path = format!("/api/v1/explain/{}{q}", segment(mac));
        self.call(Method::GET, &path, None).await
    }

    /// `GET /api/v1/pins`, every page, by target.
    pub(crate) async fn pins(&self) -> Result<Vec<PinRow>, ClientError> {
        self.all("/api/v1/pins").await
    }

    /// `PUT /api/v1/pins/{target}` with `{"ref": …}`.
    pub(crate) async fn set_pin(
        &self,
        target: &str,
        reference: &str,
    ) -> Result<PinRow, ClientError> {
        let path = format!("/api/v1/pins/{}", segment(target));
        self.call(Method::PUT, &path, Some(json!({"ref": reference})))
            .await
    }

    /// `GET /api/v1/pins/{target}`.
    pub(crate) async fn pin(&self, target: &str) -> Result<PinRow, ClientError> {
        let path = format!("/api/v1/pins/{}", segment(target));
        self.call(Method::GET, &path, None).await
    }

    /// `DELETE /api/v1/pins/{target}`.
    pub(crate) async fn remove_pin(&self, target: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/pins/{}", segment(target));
        self.call_raw(Method::DELETE, &path, None).await.map(drop)
    }

    /// `POST /api/v1/pins/{target}/rollback`.
    pub(crate) async fn rollback_pin(&self, target: &str) -> Result<RolledBack, ClientError> {
        let path = format!("/api/v1/pins/{}/rollback", segment(target));
        self.call(Method::POST, &path, None).await
    }

    /// `GET /api/v1/pins/{target}/history`, every page, oldest first.
    pub(crate) async fn pin_history(&self, target: &str) -> Result<Vec<PinChange>, ClientError> {
        self.all(&format!("/api/v1/pins/{}/history", segment(target)))
            .await
    }

    /// `GET /api/v1/images`, every page, by name.
    pub(crate) async fn images(&self) -> Result<Vec<ImageItem>, ClientError> {
        self.all("/api/v1/images").await
    }

    /// `GET /api/v1/images/{name}/versions`, every page, by version.
    pub(crate) async fn versions(&self, name: &str) -> Result<Vec<VersionItem>, ClientError> {
        self.all(&format!("/api/v1/images/{}/versions", segment(name)))
            .await
    }

    /// `GET /api/v1/images/{name}/versions/{version}`: the manifest and its digest.
    pub(crate) async fn manifest(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(Digest, Manifest), ClientError> {
        let path = format!(
            "/api/v1/images/{}/versions/{}",
            segment(name),
            segment(version)
        );
        let (parts, body) = self.call_raw(Method::GET, &path, None).await?;
        let digest = parts
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"'))
            .and_then(|v| v.parse::<Digest>().ok())
            .ok_or_else(|| self.bad(&path, "no manifest digest in its ETag".into()))?;
        let m = serde_json::from_slice(&body).map_err(|e| self.bad(&path, e.to_string()))?;
        Ok((digest, m))
    }

    /// `POST /api/v1/images/{name}/versions` with an upload manifest.
    pub(crate) async fn publish(
        &self,
        name: &str,
        upload: Value,
    ) -> Result<(Made, PublishAnswer), ClientError> {
        let path = format!("/api/v1/images/{}/versions", segment(name));
        let (parts, body) = self.call_raw(Method::POST, &path, Some(upload)).await?;
        let answer = serde_json::from_slice(&body).map_err(|e| self.bad(&path, e.to_string()))?;
        let made = if parts.status == hyper::StatusCode::CREATED {
            Made::New
        } else {
            Made::Unchanged
        };
        Ok((made, answer))
    }

    /// `DELETE /api/v1/images/{name}/versions/{version}`.
    pub(crate) async fn remove_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(), ClientError> {
        let path = format!(
            "/api/v1/images/{}/versions/{}",
            segment(name),
            segment(version)
        );
        self.call_raw(Method::DELETE, &path, None).await.map(drop)
    }

    /// `PUT /api/v1/images/{name}/channels/{channel}` with `{"version": …}`.
    pub(crate) async fn tag(
        &self,
        name: &str,
        version: &str,
        channel: &str,
    ) -> Result<(), ClientError> {
        let path = format!(
            "/api/v1/images/{}/channels/{}",
            segment(name),
            segment(channel)
        );
        self.call_raw(Method::PUT, &path, Some(json!({"version": version})))
            .await
            .map(drop)
    }

    /// `PUT /api/v1/blobs/sha256/{hex}`: streams the file at `file` (`size` bytes) as
    /// the blob `digest`; the server keeps it only if it hashes to that.
    pub(crate) async fn put_blob(
        &self,
        digest: &Digest,
        file: &Path,
        size: u64,
    ) -> Result<Made, ClientError> {
        let path = format!("/api/v1/blobs/sha256/{}", digest.hex());
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| self.bad(&path, format!("cannot open {}: {e}", file.display())))?;
        let chunks = futures_util::stream::unfold(f, |mut f| async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = vec![0u8; 256 << 10];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let body = StreamBody::new(chunks).boxed_unsync();
        let headers = [(header::CONTENT_LENGTH, size.to_string())];
        let res = self
            .send(
                Method::PUT,
                &path,
                &headers,
                Some((body, "application/octet-stream")),
            )
            .await?;
        let made = if res.status() == hyper::StatusCode::CREATED {
            Made::New
        } else {
            Made::Unchanged
        };
        // The answer names digest and size; only the status matters here.
        let _ = res.into_body().collect().await;
        Ok(made)
    }

    /// `GET /api/v1/leases`, every page, by address.
    pub(crate) async fn leases(&self) -> Result<Vec<LeaseRow>, ClientError> {
        let all: Vec<wire::Lease> = self.all("/api/v1/leases").await?;
        Ok(all.into_iter().map(LeaseRow::from).collect())
    }

    /// `GET /api/v1/events?last=N[&mac=]`: the newest `last` events, oldest first, and
    /// the event id to follow from.
    /// Every event of boot attempt `attempt`, oldest first (`GET /api/v1/events?attempt=`,
    /// page by page).
    pub(crate) async fn attempt_events(&self, attempt: &str) -> Result<Vec<EventRow>, ClientError> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = format!(
                "/api/v1/events{}",
                query(&[
                    ("attempt", Some(attempt.to_string())),
                    ("after", after.clone()),
                    ("limit", Some("1000".to_string())),
                ])
            );
            let page: Page<Value> = self.call(Method::GET, &path, None).await?;
            for v in page.items {
                rows.push(wire::event_row(v).map_err(|e| self.bad(&path, e))?);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(rows),
            }
        }
    }

    pub(crate) async fn recent_events(
        &self,
        mac: Option<&str>,
        last: i64,
    ) -> Result<(Vec<EventRow>, i64), ClientError> {
        let path = format!(
            "/api/v1/events{}",
            query(&[
                ("mac", mac.map(str::to_string)),
                ("last", Some(last.to_string()))
            ])
        );
        let page: Page<Value> = self.call(Method::GET, &path, None).await?;
        let rows = page
            .items
            .into_iter()
            .map(wire::event_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad(&path, e))?;
        let next = page
            .next
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| self.bad(&path, "no cursor to follow from".into()))?;
        Ok((rows, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_leave_out_what_is_absent_and_encode_the_rest() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("mac", Some("52:54:00:00:00:01".into())),
                ("x", None),
                ("last", Some("5".into()))
            ]),
            "?mac=52%3A54%3A00%3A00%3A00%3A01&last=5"
        );
    }
}
