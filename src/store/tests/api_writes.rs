//! Store writes the API adds, on both backends: a machine replaced whole (MACs, labels,
//! address) in one transaction with its conflicts, and the actor kept in the pin and
//! channel histories.

use super::Fixture;
use crate::boot::Machine;
use crate::store::StoreError;

on_both_backends!(
    machines_are_replaced_whole_or_not_at_all,
    histories_keep_the_actor,
    machine_and_version_histories_keep_the_actor,
    fleet_counts_start_at_zero
);

fn m(name: &str, macs: &[&str], address: Option<&str>) -> Machine {
    Machine {
        name: name.into(),
        macs: macs.iter().map(|m| m.parse().unwrap()).collect(),
        uuid: None,
        hostname: None,
        address: address.map(|a| a.parse().unwrap()),
        labels: [("rack".to_string(), "r1".to_string())].into(),
    }
}

async fn machines_are_replaced_whole_or_not_at_all(f: Fixture) {
    let s = &f.store;
    s.add_machine(&m("a", &["52:54:00:00:00:01"], Some("10.0.0.1")))
        .await
        .unwrap();
    s.add_machine(&m("b", &["52:54:00:00:00:02"], None))
        .await
        .unwrap();
    let r0 = s.revision().await.unwrap();
    let mut new = m(
        "a",
        &["52:54:00:00:00:03", "52:54:00:00:00:04"],
        Some("10.0.0.9"),
    );
    new.hostname = Some("host-a".into());
    new.labels = [("role".to_string(), "db".to_string())].into();
    assert!(s.update_machine(&new).await.unwrap());
    assert!(s.revision().await.unwrap() > r0);
    assert_eq!(s.machine("a").await.unwrap().unwrap(), new);
    // b's MAC: refused, a unchanged.
    let clash = m("a", &["52:54:00:00:00:02"], None);
    assert!(matches!(
        s.update_machine(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.machine("a").await.unwrap().unwrap(), new);
    assert!(!s.update_machine(&m("ghost", &[], None)).await.unwrap());
}

async fn histories_keep_the_actor(f: Fixture) {
    let s = &f.store;
    s.insert_version("demo", "1", "sha256:aa").await.unwrap();
    s.insert_version("demo", "2", "sha256:bb").await.unwrap();
    s.set_pin("default", "demo@1", &[]).await.unwrap();
    s.set_pin_by("default", "demo@2", &[], Some("ci"))
        .await
        .unwrap();
    s.rollback_pin_by("default", |_| Some(Vec::new()), Some("ops"))
        .await
        .unwrap();
    s.remove_pin_by("default", Some("ci")).await.unwrap();
    let actors: Vec<Option<String>> = s
        .pin_history("default")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.actor)
        .collect();
    assert_eq!(
        actors,
        [
            None,
            Some("ci".into()),
            Some("ops".into()),
            Some("ci".into())
        ]
    );
    s.set_channel("demo", "stable", "1").await.unwrap();
    s.set_channel_by("demo", "stable", "2", Some("admin"))
        .await
        .unwrap();
    let moves = s.channel_history("demo", "stable").await.unwrap();
    assert_eq!(moves[0].actor, None);
    assert_eq!(moves[1].actor.as_deref(), Some("admin"));
}

async fn machine_and_version_histories_keep_the_actor(f: Fixture) {
    let s = &f.store;
    s.add_machine(&m("a", &["52:54:00:00:00:01"], None))
        .await
        .unwrap();
    s.label_machine_by("a", &[("role".into(), Some("web".into()))], Some("alice"))
        .await
        .unwrap();
    s.update_machine_by(&m("a", &["52:54:00:00:00:03"], None), Some("bob"))
        .await
        .unwrap();
    assert!(s.remove_machine_by("a", Some("alice")).await.unwrap());
    assert!(!s.remove_machine_by("a", Some("alice")).await.unwrap());
    let h = s.machine_history("a").await.unwrap();
    let got: Vec<(&str, Option<&str>)> = h
        .iter()
        .map(|c| (c.kind.as_str(), c.actor.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("add", None),
            ("label", Some("alice")),
            ("update", Some("bob")),
            ("rm", Some("alice"))
        ]
    );
    assert!(h[1].detail.as_deref().unwrap().contains("\"role\":\"web\""));
    assert!(h[3].detail.is_none());
    // A conflicting add writes no history.
    s.add_machine(&m("b", &["52:54:00:00:00:02"], None))
        .await
        .unwrap();
    assert!(
        s.add_machine_by(&m("b", &[], None), Some("x"))
            .await
            .is_err()
    );
    assert_eq!(s.machine_history("b").await.unwrap().len(), 1);

    s.insert_version_by("demo", "1", "sha256:aa", Some("ci"))
        .await
        .unwrap();
    // The same version again: no new entry.
    s.insert_version_by("demo", "1", "sha256:aa", Some("ci"))
        .await
        .unwrap();
    assert!(
        s.remove_version_by("demo", "1", &[], Some("ops"))
            .await
            .unwrap()
    );
    let v = s.version_history("demo").await.unwrap();
    let got: Vec<(&str, Option<&str>, Option<&str>)> = v
        .iter()
        .map(|c| (c.kind.as_str(), c.manifest.as_deref(), c.actor.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("publish", Some("sha256:aa"), Some("ci")),
            ("rm", Some("sha256:aa"), Some("ops"))
        ]
    );
}

async fn fleet_counts_start_at_zero(f: Fixture) {
    let c = f.store.fleet_counts().await.unwrap();
    assert_eq!(c, crate::store::FleetCounts::default());
}
