//! The recorder against both backends: attempts open, move and end; tries are counted
//! and a machine is held on its last known good after `max_tries`.

use super::*;
use crate::store::tests::{Fixture, on_both_backends};

on_both_backends!(
    three_failed_tries_hold_the_machine_on_its_known_good,
    a_retry_does_not_spend_a_try_and_a_replayed_report_moves_nothing,
    no_known_good_is_a_quarantine,
    overdue_attempts_time_out_by_the_store_clock,
);

fn boot(id: &str, manifest: &str, version: &str) -> NewBoot {
    NewBoot {
        id: id.into(),
        machine: "n1".into(),
        mac: "52:54:00:00:00:01".into(),
        manifest: manifest.into(),
        image: "demo".into(),
        version: version.into(),
        source: "rollout:r7/0".into(),
        token_sha256: "t".into(),
        deadline_after_ms: 60_000,
    }
}

fn rec(f: &Fixture) -> Recorder {
    Recorder {
        store: f.store.clone(),
        max_tries: 3,
    }
}

async fn three_failed_tries_hold_the_machine_on_its_known_good(f: Fixture) {
    let r = rec(&f);
    assert_eq!(r.open(&boot("g1", "good", "1")).await.unwrap(), 1);
    assert_eq!(
        r.input("g1", Input::Fetched, None).await.unwrap(),
        Applied::Moved(AttemptState::Loading)
    );
    assert_eq!(
        r.input("g1", Input::Booted, None).await.unwrap(),
        Applied::Moved(AttemptState::Booted)
    );
    // Try 1 fails by report, try 2 reboots after loading (superseded), try 3 fails.
    assert_eq!(r.open(&boot("b1", "bad", "2")).await.unwrap(), 1);
    assert_eq!(
        r.input("b1", Input::Failed, Some("root")).await.unwrap(),
        Applied::Moved(AttemptState::Failed)
    );
    assert_eq!(r.open(&boot("b2", "bad", "2")).await.unwrap(), 2);
    r.input("b2", Input::Fetched, None).await.unwrap();
    assert_eq!(r.open(&boot("b3", "bad", "2")).await.unwrap(), 3);
    assert_eq!(
        f.store.boot("b2").await.unwrap().unwrap().state,
        "superseded"
    );
    let before = f.store.revision().await.unwrap();
    assert_eq!(
        r.input("b3", Input::Failed, None).await.unwrap(),
        Applied::Held(AttemptState::Failed, Some("good".into()))
    );
    assert!(
        f.store.revision().await.unwrap() > before,
        "a hold changes decisions"
    );
    let holds = f.store.holds().await.unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(
        hold_sentence(&holds[0]),
        "held on demo@1 after 3 failed tries of demo@2 (rollout r7)"
    );
    let kinds: Vec<String> = f
        .store
        .fleet_events(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "boot.booted",
            "boot.failed",
            "boot.superseded",
            "boot.failed",
            "machine.rolled_back"
        ]
    );
    // Released: the next try of the bad image counts from 3 again (no booted since).
    assert!(f.store.release_hold("n1", 1).await.unwrap().is_some());
    assert!(f.store.holds().await.unwrap().is_empty());
    assert!(f.store.release_hold("n1", 1).await.unwrap().is_none());
}

async fn a_retry_does_not_spend_a_try_and_a_replayed_report_moves_nothing(f: Fixture) {
    let r = rec(&f);
    r.open(&boot("a1", "m", "1")).await.unwrap();
    // Replaced before loading: superseded, no try spent.
    assert_eq!(r.open(&boot("a2", "m", "1")).await.unwrap(), 1);
    // The same opening twice is one row.
    assert_eq!(r.open(&boot("a2", "m", "1")).await.unwrap(), 1);
    assert_eq!(f.store.boots_of("n1", 10).await.unwrap().len(), 2);
    assert_eq!(
        r.input("a2", Input::Booted, None).await.unwrap(),
        Applied::Moved(AttemptState::Booted)
    );
    for i in [Input::Failed, Input::Booted, Input::Deadline] {
        assert_eq!(r.input("a2", i, None).await.unwrap(), Applied::Nothing);
    }
    assert_eq!(
        r.input("nope", Input::Booted, None).await.unwrap(),
        Applied::Nothing
    );
    assert_eq!(f.store.boot("a2").await.unwrap().unwrap().state, "booted");
}

async fn no_known_good_is_a_quarantine(f: Fixture) {
    let r = Recorder {
        store: f.store.clone(),
        max_tries: 1,
    };
    r.open(&boot("q1", "bad", "2")).await.unwrap();
    assert_eq!(
        r.input("q1", Input::Failed, None).await.unwrap(),
        Applied::Held(AttemptState::Failed, None)
    );
    let h = &f.store.holds().await.unwrap()[0];
    assert_eq!(
        hold_sentence(h),
        "quarantined (no known good image) after 1 failed tries of demo@2 (rollout r7)"
    );
}

async fn overdue_attempts_time_out_by_the_store_clock(f: Fixture) {
    let r = rec(&f);
    let mut b = boot("d1", "m", "1");
    b.deadline_after_ms = -1;
    r.open(&b).await.unwrap();
    r.open(&NewBoot {
        machine: "n2".into(),
        id: "d2".into(),
        ..boot("d2", "m", "1")
    })
    .await
    .unwrap();
    assert_eq!(r.sweep().await.unwrap(), 1);
    assert_eq!(
        f.store.boot("d1").await.unwrap().unwrap().state,
        "timed_out"
    );
    assert_eq!(f.store.boot("d2").await.unwrap().unwrap().state, "pending");
    assert_eq!(r.sweep().await.unwrap(), 0);
    let now = f.store.clock_ms().await.unwrap();
    assert!(
        (now - crate::store::now_ms()).abs() < 5_000,
        "store clock {now}"
    );
}
