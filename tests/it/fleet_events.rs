//! Boot events link to their boot attempt (issue 14, migration 0009): one simulated
//! machine (`tabula::storm::netboot`) boots demo@1 (booted), then demo@2 whose root image
//! no longer matches its digest (failed). `tabula machine boots --json` lists each
//! attempt with exactly its own events (its script, its downloads, its report), and
//! `tabula events --json` carries the attempt's id on each of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::common::sha256_of;
use crate::fleet::{SNAPSHOT_AGE, mac, small_fleet};

/// The stages of a list of events' JSON, in order.
fn stages(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect()
}

#[test]
fn each_attempt_lists_exactly_its_own_events() {
    let (fleet, _srv) = small_fleet(1, "");
    let env = &fleet.env;
    let first = fleet.boot(&[0]).remove(&0).unwrap();
    assert_eq!(first.image.as_deref(), Some("demo@1"));
    assert_eq!(first.result, Ok(()));

    // demo@2's root image stops matching its digest: the machine's boot of it fails.
    let digest = sha256_of(&env.dir.path().join("root-2"));
    let blob = env
        .data()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, crate::common::bytes(99, 256 << 10)).unwrap();
    env.ok(&["pin", "set", "m00", "demo@2"]);
    std::thread::sleep(SNAPSHOT_AGE);
    let second = fleet.boot(&[0]).remove(&0).unwrap();
    assert_eq!(second.image.as_deref(), Some("demo@2"));
    assert!(second.result.is_err(), "{:?}", second.result);
    // The events are written within the writer's collect window.
    std::thread::sleep(Duration::from_millis(500));

    let boots = fleet.boots(0);
    assert_eq!(boots.len(), 2, "{boots:?}");
    // Newest first.
    let (failed, booted) = (&boots[0], &boots[1]);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(booted["state"], "booted", "{booted}");
    let mut listed: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (b, report) in [(booted, "booted"), (failed, "failed")] {
        let id = b["id"].as_str().unwrap();
        let events = b["events"].as_array().unwrap();
        let got = stages(events);
        assert_eq!(got.first(), Some(&"script-sent"), "{id}: {got:?}");
        assert_eq!(got.last(), Some(&report), "{id}: {got:?}");
        assert!(got.contains(&"kernel-sent"), "{id}: {got:?}");
        assert_eq!(
            got.iter()
                .filter(|s| ["booted", "failed"].contains(s))
                .count(),
            1,
            "{id}: one report, its own: {got:?}"
        );
        assert!(events.iter().all(|e| e["attempt"] == id), "{events:?}");
        listed.insert(
            id.to_string(),
            events.iter().map(|e| e["id"].as_i64().unwrap()).collect(),
        );
    }
    assert!(listed.values().all(|ids| !ids.is_empty()));
    let all: Vec<&BTreeSet<i64>> = listed.values().collect();
    assert!(all[0].is_disjoint(all[1]), "{listed:?}");

    // `events --json` carries the same ids on the same events, and every event of the
    // machine's boots has one.
    let lines = env.ok(&["events", &mac(0).to_string(), "--json", "--last", "1000"]);
    let mut by_attempt: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in lines.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        match e["attempt"].as_str() {
            Some(a) => {
                by_attempt
                    .entry(a.to_string())
                    .or_default()
                    .insert(e["id"].as_i64().unwrap());
            }
            None => panic!("an event of a boot without its attempt: {e}"),
        }
    }
    assert_eq!(by_attempt, listed);
    // `events --attempt ID` lists one attempt's, oldest first.
    let id = booted["id"].as_str().unwrap();
    let lines = env.ok(&["events", "--attempt", id, "--json"]);
    let ids: BTreeSet<i64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, listed[id]);
    let table = env.ok(&["machine", "boots", "m00"]);
    assert!(table.contains(&format!("boot {id}:")), "{table}");
}
