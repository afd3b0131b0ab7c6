//! `GET /ui/images`: every published version with its digests and the channels at it,
//! how many machines booted it last (their newest event is its `booted` report) and how
//! many are pinned to it now; each channel's history; and `?a=IMAGE@VERSION&b=…`, the
//! `tabula image diff` answer between two versions (manifest fields, then the root
//! images' files, read off the blobs in a blocking task).

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::Signed;
use super::timeline::human_bytes;
use super::{Chrome, Ui, error, render, when};
use crate::boot::{BootStage, Digest, Firmware};
use crate::images::{Manifest, diff};
use crate::inventory::{Facts, Snapshot, select};

/// Machine names listed per version at most.
const NAMES: usize = 12;

pub(crate) struct VersionView {
    pub id: String,
    pub created: String,
    pub manifest: String,
    pub blobs: Vec<(String, String, String)>,
    pub channels: Vec<String>,
    pub running: usize,
    pub running_names: String,
    pub pinned: usize,
}

pub(crate) struct ChannelView {
    pub id: String,
    pub version: String,
    /// (when, version, by), newest first.
    pub moves: Vec<(String, String, String)>,
}

pub(crate) struct DiffView {
    pub a: String,
    pub b: String,
    pub fields: Vec<diff::FieldDiff>,
    pub files: Option<diff::FileDiff>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "images.html")]
struct ImagesPage {
    chrome: Option<Chrome>,
    versions: Vec<VersionView>,
    channels: Vec<ChannelView>,
    ids: Vec<String>,
    a: String,
    b: String,
    diff: Option<DiffView>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct DiffQuery {
    a: Option<String>,
    b: Option<String>,
}

fn manifest_of(snap: &Snapshot, id: &str) -> Result<(Digest, Manifest), String> {
    let (name, version) = id
        .split_once('@')
        .ok_or_else(|| format!("{id:?}: expected IMAGE@VERSION"))?;
    let v = snap
        .versions
        .get(&(name.to_string(), version.to_string()))
        .ok_or_else(|| format!("{id} is not published"))?;
    let m = v.manifest.clone().map_err(|e| format!("{id}: {e}"))?;
    Ok((v.manifest_digest, m))
}

async fn diff_of(ui: &Ui, snap: &Snapshot, a: &str, b: &str) -> DiffView {
    let mut view = DiffView {
        a: a.to_string(),
        b: b.to_string(),
        fields: vec![],
        files: None,
        error: None,
    };
    let (ma, mb) = match (manifest_of(snap, a), manifest_of(snap, b)) {
        (Ok((_, x)), Ok((_, y))) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            view.error = Some(e);
            return view;
        }
    };
    view.fields = diff::compare_manifests(&ma, &mb);
    if let (Some(ra), Some(rb)) = (&ma.rootfs, &mb.rootfs) {
        if ra.digest == rb.digest {
            view.files = Some(diff::FileDiff::default());
        } else {
            let blobs = ui.api.fleet.blobs();
            let (pa, pb) = (blobs.path(&ra.digest), blobs.path(&rb.digest));
            let got = tokio::task::spawn_blocking(move || -> Result<diff::FileDiff, String> {
                let la = diff::list_squashfs(&pa).map_err(|e| e.to_string())?;
                let lb = diff::list_squashfs(&pb).map_err(|e| e.to_string())?;
                Ok(diff::compare(&la, &lb))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match got {
                Ok(f) => view.files = Some(f),
                Err(e) => view.error = Some(format!("root images not compared: {e}")),
            }
        }
    }
    view
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    signed: Signed,
    Query(dq): Query<DiffQuery>,
) -> Response {
    let chrome = signed.chrome("images");
    let fleet = &ui.api.fleet;
    let store = fleet.store();
    let (snap, rows, chans, latest) = match tokio::join!(
        fleet.inventory().snapshot(),
        store.versions(),
        store.channels(),
        store.latest_event_per_mac()
    ) {
        (Ok(s), Ok(r), Ok(c), Ok(l)) => (s, r, c, l),
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(chrome),
                "the state store cannot be read",
            );
        }
    };
    // Who booted what last, and who is pinned to what now.
    let owner: HashMap<_, &str> = snap
        .machines
        .iter()
        .flat_map(|m| m.macs.iter().map(move |mac| (*mac, m.name.as_str())))
        .collect();
    let mut running: BTreeMap<Digest, Vec<&str>> = BTreeMap::new();
    for r in &latest {
        if r.event.stage() == BootStage::Booted
            && let (Some(m), Some(name)) = (r.event.manifest, owner.get(&r.event.mac))
        {
            running.entry(m).or_default().push(name);
        }
    }
    let mut pinned: HashMap<Digest, usize> = HashMap::new();
    for m in &snap.machines {
        if let Some(mac) = m.macs.first() {
            let sel = select(
                &snap,
                &Facts {
                    mac: *mac,
                    uuid: m.uuid.clone(),
                    firmware: Firmware::Bios,
                },
            );
            if let Some(d) = super::state::pinned_manifest(&sel) {
                *pinned.entry(d).or_default() += 1;
            }
        }
    }
    let mut versions = Vec::new();
    for r in rows.iter().rev() {
        let id = format!("{}@{}", r.name, r.version);
        let digest: Option<Digest> = r.manifest.parse().ok();
        let mut blobs = Vec::new();
        if let Ok((_, m)) = manifest_of(&snap, &id) {
            blobs.push((
                "kernel".into(),
                m.kernel.digest.to_string(),
                human_bytes(m.kernel.size),
            ));
            for i in &m.initrds {
                blobs.push(("initrd".into(), i.digest.to_string(), human_bytes(i.size)));
            }
            if let Some(x) = &m.rootfs {
                blobs.push(("rootfs".into(), x.digest.to_string(), human_bytes(x.size)));
            }
        }
        let names = digest
            .and_then(|d| running.get(&d))
            .cloned()
            .unwrap_or_default();
        let mut shown: Vec<&str> = names.iter().take(NAMES).copied().collect();
        shown.sort_unstable();
        let mut running_names = shown.join(", ");
        if names.len() > NAMES {
            running_names.push_str(&format!(" and {} more", names.len() - NAMES));
        }
        versions.push(VersionView {
            created: when(r.created_ms),
            manifest: r.manifest.clone(),
            blobs,
            channels: chans
                .iter()
                .filter(|c| c.name == r.name && c.version == r.version)
                .map(|c| format!("{}:{}", c.name, c.channel))
                .collect(),
            running: names.len(),
            running_names,
            pinned: digest.and_then(|d| pinned.get(&d)).copied().unwrap_or(0),
            id,
        });
    }
    let mut channels = Vec::new();
    for c in &chans {
        let moves = store
            .channel_history(&c.name, &c.channel)
            .await
            .unwrap_or_default();
        channels.push(ChannelView {
            id: format!("{}:{}", c.name, c.channel),
            version: format!("{}@{}", c.name, c.version),
            moves: moves
                .into_iter()
                .rev()
                .map(|m| {
                    (
                        when(m.at_ms),
                        m.version
                            .map_or_else(|| "(removed)".into(), |v| format!("{}@{v}", c.name)),
                        m.actor.unwrap_or_else(|| "local CLI".into()),
                    )
                })
                .collect(),
        });
    }
    let ids: Vec<String> = versions.iter().map(|v| v.id.clone()).collect();
    let a =
        dq.a.unwrap_or_else(|| ids.get(1).cloned().unwrap_or_default());
    let b =
        dq.b.unwrap_or_else(|| ids.first().cloned().unwrap_or_default());
    let diff = if !a.is_empty() && !b.is_empty() {
        Some(diff_of(&ui, &snap, &a, &b).await)
    } else {
        None
    };
    render(&ImagesPage {
        chrome: Some(chrome),
        versions,
        channels,
        ids,
        a,
        b,
        diff,
    })
}
