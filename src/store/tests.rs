//! Store tests against a real SQLite file.

use super::*;
use crate::boot::{BootEvent, BootStage, EventDetail, Mac, Via};

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Store::open(&url).await.unwrap();
    (dir, s)
}

fn machine(name: &str, mac: &str) -> Machine {
    Machine {
        name: name.into(),
        macs: vec![mac.parse().unwrap()],
        uuid: None,
        hostname: None,
        address: None,
        labels: [("rack".to_string(), "r1".to_string())].into(),
    }
}

#[tokio::test]
async fn machines_roundtrip_and_conflicts() {
    let (_d, s) = fresh().await;
    let r0 = s.revision().await.unwrap();
    s.add_machine(&machine("n1", "52:54:00:00:00:01"))
        .await
        .unwrap();
    assert!(s.revision().await.unwrap() > r0);
    let e = s
        .add_machine(&machine("n2", "52:54:00:00:00:01"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already belongs to machine \"n1\""),
        "{e}"
    );
    assert!(
        s.machine("n2").await.unwrap().is_none(),
        "failed add left nothing"
    );
    let e = s
        .add_machine(&machine("n1", "52:54:00:00:00:09"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    s.label_machine(
        "n1",
        &[("role".into(), Some("web".into())), ("rack".into(), None)],
    )
    .await
    .unwrap();
    let m = s.machine("n1").await.unwrap().unwrap();
    assert_eq!(m.labels, [("role".to_string(), "web".to_string())].into());
    assert!(s.remove_machine("n1").await.unwrap());
    assert!(!s.remove_machine("n1").await.unwrap());
}

#[tokio::test]
async fn versions_channels_pins() {
    let (_d, s) = fresh().await;
    assert_eq!(
        s.insert_version("demo", "1", "sha256:aa").await.unwrap(),
        None
    );
    assert_eq!(
        s.insert_version("demo", "1", "sha256:bb").await.unwrap(),
        Some("sha256:aa".into())
    );
    s.set_channel("demo", "stable", "1").await.unwrap();
    assert!(
        s.set_channel("demo", "stable", "9").await.is_err(),
        "FK on version"
    );
    let e = s.remove_version("demo", "1", &[]).await.unwrap_err();
    assert!(e.to_string().contains("channel(s) stable"), "{e}");
    s.insert_version("demo", "2", "sha256:cc").await.unwrap();
    s.set_channel("demo", "stable", "2").await.unwrap();
    s.set_pin("default", "demo@1", &[]).await.unwrap();
    let e = s
        .remove_version("demo", "1", &["demo@1".into()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pinned by default"), "{e}");
    assert!(s.remove_pin("default").await.unwrap());
    assert!(
        s.remove_version("demo", "1", &["demo@1".into()])
            .await
            .unwrap()
    );
    let h = s.channel_history("demo", "stable").await.unwrap();
    assert_eq!(
        h.iter()
            .map(|m| m.version.clone().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    let ph = s.pin_history("default").await.unwrap();
    assert_eq!(ph.len(), 2);
    assert_eq!(ph[1].reference, None);
}

#[tokio::test]
async fn events_append_and_filter() {
    let (_d, s) = fresh().await;
    assert_eq!(s.last_event_id().await.unwrap(), 0);
    let a: Mac = "52:54:00:00:00:01".parse().unwrap();
    let b: Mac = "52:54:00:00:00:02".parse().unwrap();
    let ev = |mac, stage| BootEvent {
        at_ms: 1,
        mac,
        manifest: None,
        via: Via::Http,
        peer: None,
        detail: EventDetail::from_value(stage, serde_json::json!({"k": 1})),
    };
    s.append_events(&[
        ev(a, BootStage::DhcpAck),
        ev(b, BootStage::DhcpAck),
        ev(a, BootStage::Booted),
    ])
    .await
    .unwrap();
    let only_a = s.events(Some(a), 0, 100).await.unwrap();
    assert_eq!(only_a.len(), 2);
    assert_eq!(only_a[1].event.stage(), BootStage::Booted);
    let after = s.events(None, only_a[0].id, 100).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(s.last_event_id().await.unwrap(), only_a[1].id);
    // Batches of every statement size (471 = 7 x 64 + 16 + 4 + 3 x 1) keep their order.
    let many: Vec<BootEvent> = (0..471)
        .map(|i| BootEvent {
            at_ms: i,
            ..ev(b, BootStage::Progress)
        })
        .collect();
    s.append_events(&many).await.unwrap();
    let got = s.events(Some(b), 0, 1000).await.unwrap();
    assert_eq!(got.len(), 472);
    assert!(
        got[1..]
            .iter()
            .enumerate()
            .all(|(i, r)| r.event.at_ms == i as i64)
    );
}

#[tokio::test]
async fn reopen_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Store::open(&url).await.unwrap();
    s.set_pin("default", "local", &[]).await.unwrap();
    s.close().await;
    let s = Store::open(&url).await.unwrap();
    assert_eq!(s.pins().await.unwrap()[0].reference, "local");
}

#[tokio::test]
async fn concurrent_writers_queue_instead_of_failing() {
    let (_d, s) = fresh().await;
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("n{i}");
            let mac = format!("52:54:00:00:01:{i:02x}");
            s.add_machine(&machine(&name, &mac)).await?;
            // A failing add (duplicate MAC) rolls back while others write.
            let dup = s.add_machine(&machine(&format!("d{i}"), &mac)).await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            s.label_machine(&name, &[("k".into(), Some("v".into()))])
                .await?;
            s.set_pin(&format!("machine:{name}"), "local", &[]).await?;
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.machines().await.unwrap().len(), 40);
    assert_eq!(s.pins().await.unwrap().len(), 40);
}
