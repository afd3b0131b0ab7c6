//! The facade against a real (temporary) SQLite store and blob store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::boot::Machine;
use crate::catalog::PublishRequest;
use crate::config::UnknownMachines;
use crate::inventory::{PinRef, PinTarget, Settings};

struct Env {
    _dir: tempfile::TempDir,
    fleet: Fleet,
    kernel: std::path::PathBuf,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let blobs = BlobStore::open(&dir.path().join("blobs")).unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"kernel").unwrap();
    // A snapshot that never refreshes: checks made against it would be stale.
    let inventory = Inventory::new(
        store,
        blobs,
        Settings {
            unknown_machines: UnknownMachines::Default,
            console: None,
            base_url: "http://127.0.0.1:8080".into(),
        },
    )
    .with_max_age(Duration::from_secs(3600));
    Env {
        _dir: dir,
        fleet: Fleet::new(Arc::new(inventory)),
        kernel,
    }
}

impl Env {
    async fn publish(&self, version: &str) {
        let req = PublishRequest {
            name: "demo".into(),
            version: version.into(),
            architectures: vec![crate::boot::Arch::X86_64],
            kernel: self.kernel.clone(),
            initrds: vec![],
            rootfs: None,
            cmdline: format!("v={version}"),
            annotations: BTreeMap::new(),
            created: Some("2026-01-01T00:00:00Z".into()),
        };
        self.fleet.publish(req).await.unwrap();
    }
}

fn machine(name: &str, mac: &str) -> Machine {
    Machine {
        name: name.into(),
        macs: vec![mac.parse().unwrap()],
        uuid: None,
        hostname: None,
        address: None,
        labels: BTreeMap::new(),
    }
}

fn demo(v: &str) -> PinRef {
    format!("demo@{v}").parse().unwrap()
}

#[tokio::test]
async fn a_pin_is_checked_in_its_own_transaction_not_against_a_snapshot() {
    let e = env().await;
    e.publish("1").await;
    // The (long-lived) snapshot has demo@1 ...
    let snap = e.fleet.inventory().snapshot().await.unwrap();
    assert_eq!(snap.versions.len(), 1);
    // ... which goes away behind its back.
    e.fleet.remove_version("demo", "1").await.unwrap();
    let err = e
        .fleet
        .set_pin(&PinTarget::Default, &demo("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FleetError::NotFound { kind: Kind::Version, name, .. } if name == "demo@1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("demo@1 is not published"), "{err}");
    assert!(e.fleet.store().pins().await.unwrap().is_empty());
    assert!(
        e.fleet
            .store()
            .pin_history("default")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn errors_name_their_kind_and_thing() {
    let e = env().await;
    e.publish("1").await;
    let t = PinTarget::Machine("nosuch".into());
    let err = e.fleet.set_pin(&t, &demo("1")).await.unwrap_err();
    assert!(
        matches!(&err, FleetError::NotFound { kind: Kind::Machine, name, .. } if name == "nosuch"),
        "{err:?}"
    );
    let chan: PinRef = "demo:stable".parse().unwrap();
    let err = e
        .fleet
        .set_pin(&PinTarget::Default, &chan)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotFound {
                kind: Kind::Channel,
                ..
            }
        ),
        "{err:?}"
    );

    e.fleet
        .add_machine(&machine("a", "52:54:00:00:00:01"))
        .await
        .unwrap();
    let err = e
        .fleet
        .add_machine(&machine("b", "52:54:00:00:00:01"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FleetError::Conflict { kind: Kind::Machine, name, .. } if name == "b"),
        "{err:?}"
    );
    let err = e.fleet.remove_machine("b").await.unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotFound {
                kind: Kind::Machine,
                ..
            }
        ),
        "{err:?}"
    );
    let err = e.fleet.remove_pin(&PinTarget::Default).await.unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotFound {
                kind: Kind::Pin,
                ..
            }
        ),
        "{err:?}"
    );

    e.fleet
        .set_pin(&PinTarget::Default, &demo("1"))
        .await
        .unwrap();
    let err = e.fleet.remove_version("demo", "1").await.unwrap_err();
    assert!(
        matches!(&err, FleetError::Conflict { kind: Kind::Version, name, .. } if name == "demo@1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("pinned by default"), "{err}");
    let err = e.fleet.tag("demo", "9", "stable").await.unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotFound {
                kind: Kind::Version,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn labels_are_validated_by_the_facade() {
    let e = env().await;
    e.fleet
        .add_machine(&machine("a", "52:54:00:00:00:01"))
        .await
        .unwrap();
    for bad in ["x", "a b=c", "k=a b", "=v"] {
        let err = LabelChange::parse(bad).unwrap_err();
        assert!(
            matches!(err, FleetError::Invalid { field: "label", .. }),
            "{bad}: {err:?}"
        );
    }
    let changes = [
        LabelChange::parse("role=web").unwrap(),
        LabelChange::parse("rack=r1").unwrap(),
    ];
    e.fleet.label_machine("a", &changes).await.unwrap();
    e.fleet
        .label_machine("a", &[LabelChange::parse("rack-").unwrap()])
        .await
        .unwrap();
    let m = e.fleet.machine("a").await.unwrap();
    assert_eq!(
        m.labels.into_iter().collect::<Vec<_>>(),
        [("role".into(), "web".into())]
    );
    // A hand-built change is checked too.
    let forged = LabelChange::Set {
        key: "k".into(),
        value: "a\nb".into(),
    };
    assert!(e.fleet.label_machine("a", &[forged]).await.is_err());
    let err = e.fleet.label_machine("zz", &changes).await.unwrap_err();
    assert!(
        matches!(
            err,
            FleetError::NotFound {
                kind: Kind::Machine,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_rollback_to_a_removed_version_is_refused_with_nothing_changed() {
    let e = env().await;
    e.publish("1").await;
    e.publish("2").await;
    e.fleet
        .set_pin(&PinTarget::Default, &demo("1"))
        .await
        .unwrap();
    e.fleet
        .set_pin(&PinTarget::Default, &demo("2"))
        .await
        .unwrap();
    // Nothing pins demo@1 any more: it can go.
    e.fleet.remove_version("demo", "1").await.unwrap();
    let err = e.fleet.rollback_pin(&PinTarget::Default).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot roll default back: demo@1"),
        "{err}"
    );
    let pins = e.fleet.store().pins().await.unwrap();
    assert_eq!(pins[0].reference, "demo@2");
    assert_eq!(
        e.fleet.store().pin_history("default").await.unwrap().len(),
        2
    );
    e.publish("3").await;
    e.fleet
        .set_pin(&PinTarget::Default, &demo("3"))
        .await
        .unwrap();
    assert_eq!(
        e.fleet.rollback_pin(&PinTarget::Default).await.unwrap(),
        (Some("demo@3".into()), "demo@2".into())
    );
}

#[tokio::test]
async fn the_machine_view_reads_a_bounded_history() {
    use crate::boot::{BootEvent, BootStage, EventDetail};
    let e = env().await;
    e.fleet
        .add_machine(&machine("a", "52:54:00:00:00:01"))
        .await
        .unwrap();
    let mac = "52:54:00:00:00:01".parse().unwrap();
    let other = "52:54:00:00:00:02".parse().unwrap();
    let events: Vec<BootEvent> = (0..100)
        .map(|i| BootEvent {
            at_ms: i,
            mac: if i % 2 == 0 { mac } else { other },
            manifest: None,
            via: crate::boot::Via::Http,
            peer: None,
            detail: EventDetail::from_value(BootStage::Progress, serde_json::json!({ "i": i })),
        })
        .collect();
    e.fleet.store().append_events(&events).await.unwrap();
    let v = e.fleet.machine_view("a", 5).await.unwrap();
    let got: Vec<i64> = v.recent.iter().map(|r| r.event.at_ms).collect();
    assert_eq!(got, [90, 92, 94, 96, 98]);
    assert_eq!(v.boots.len(), 2);
    let last = v.last_boot.expect("a boot in the view");
    assert_eq!(
        (last.start_ms, last.outcome),
        (90, crate::events::timeline::Outcome::Pending)
    );
    let all = e.fleet.store().recent_events(None, 3).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.event.at_ms).collect::<Vec<_>>(),
        [97, 98, 99]
    );
    assert_eq!(
        e.fleet
            .store()
            .recent_events(None, 1000)
            .await
            .unwrap()
            .len(),
        100
    );
    assert!(
        e.fleet
            .store()
            .recent_events(None, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

fn replica(server: &str, digest: &str, state: &str) -> crate::store::ReplicaRow {
    crate::store::ReplicaRow {
        server: server.into(),
        digest: digest.into(),
        state: state.into(),
        bytes: 0,
        size: 0,
        error: None,
        updated_ms: crate::store::now_ms(),
    }
}

#[tokio::test]
async fn a_rollout_starts_only_once_every_live_server_holds_its_version() {
    let e = env().await;
    e.publish("1").await;
    let spec = super::rollouts::RolloutSpec {
        name: "r1".into(),
        selector: "rack=a".parse().unwrap(),
        image: "demo".into(),
        version: "1".into(),
        steps: "100%".parse().unwrap(),
        max_in_flight: 1,
        budget: "1".parse().unwrap(),
        bake: Duration::from_secs(1),
        deadline: Duration::from_secs(60),
        on_budget: "pause".into(),
        reboot: "passive".into(),
    };
    e.fleet.create_rollout(&spec, false).await.unwrap();
    let store = e.fleet.store().clone();
    let manifest = store.versions().await.unwrap()[0].manifest.clone();
    let kernel = crate::boot::Digest::of(b"kernel").to_string();
    // Two live blob servers: a holds all of it, b only the manifest.
    store
        .set_blob_source("a", "http://10.0.0.1:8080")
        .await
        .unwrap();
    store
        .set_blob_source("b", "http://10.0.0.2:8080")
        .await
        .unwrap();
    for d in [&manifest, &kernel] {
        store
            .set_replica(&replica("a", d, "present"))
            .await
            .unwrap();
    }
    store
        .set_replica(&replica("b", &manifest, "present"))
        .await
        .unwrap();
    store
        .set_replica(&replica("b", &kernel, "fetching"))
        .await
        .unwrap();
    let err = e
        .fleet
        .rollout_command("r1", crate::rollout::Command::Start)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FleetError::Conflict {
                kind: Kind::Rollout,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("demo@1 is not yet on every live server (b lacks 1 of its 2 blobs"),
        "{text}"
    );
    assert_eq!(store.rollout("r1").await.unwrap().unwrap().state, "draft");
    // Once b has it, the start goes through.
    store
        .set_replica(&replica("b", &kernel, "present"))
        .await
        .unwrap();
    let to = e
        .fleet
        .rollout_command("r1", crate::rollout::Command::Start)
        .await
        .unwrap();
    assert_eq!(to, crate::rollout::RolloutState::Running);
}

#[tokio::test]
async fn gc_keeps_a_blob_a_peer_is_fetching() {
    let e = env().await;
    let blobs = e.fleet.blobs().clone();
    let store = e.fleet.store().clone();
    // Two blobs no version references: one a peer is fetching, one nobody wants.
    let fetched = blobs.put_bytes(b"being fetched by b").unwrap();
    let garbage = blobs.put_bytes(b"nobody wants me").unwrap();
    store
        .set_replica(&replica("b", &fetched.to_string(), "fetching"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = e.fleet.gc(dir.path()).await.unwrap();
    assert_eq!(report.removed, vec![garbage]);
    assert!(blobs.contains(&fetched));
    // Once b is done (present there, or its row is gone), the blob is collected.
    store
        .set_replica(&replica("b", &fetched.to_string(), "present"))
        .await
        .unwrap();
    let (report, _) = e.fleet.gc(dir.path()).await.unwrap();
    assert_eq!(report.removed, vec![fetched]);
}
