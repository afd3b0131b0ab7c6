//! Store tests of events linked to their boot attempt (migration 0009), on both
//! backends: the id is written and read back by every read, an attempt's events are
//! read by it, and an attempt without linked events falls back to its time window.

use super::Fixture;
use crate::boot::{BootId, BootStage, EventText, Mac, Via};
use crate::store::BootRow;

on_both_backends!(an_event_written_with_its_attempt_reads_back_with_it,);

fn text(mac: Mac, at_ms: i64, stage: BootStage, attempt: Option<BootId>) -> EventText {
    EventText {
        at_ms,
        mac,
        stage,
        manifest: None,
        via: Via::Http,
        peer: None,
        detail: "{}".into(),
        attempt,
    }
}

fn boot(id: &str, mac: Mac, started_ms: i64, ended_ms: i64) -> BootRow {
    BootRow {
        id: id.to_string(),
        machine: "n1".into(),
        mac: mac.to_string(),
        manifest: "m".into(),
        image: "demo".into(),
        version: "1".into(),
        source: "pin:default".into(),
        attempt: 1,
        state: "booted".into(),
        started_ms,
        loaded_ms: None,
        ended_ms: Some(ended_ms),
        deadline_ms: ended_ms,
        reason: None,
    }
}

async fn an_event_written_with_its_attempt_reads_back_with_it(f: Fixture) {
    let s = &f.store;
    let mac: Mac = "52:54:00:00:00:01".parse().unwrap();
    let (one, two) = (BootId([1, 2, 3, 4, 5, 6, 7, 8]), BootId([0xab; 8]));
    let (one_id, two_id) = (crate::attempt::id_text(one), crate::attempt::id_text(two));
    assert_eq!(one_id, "0102030405060708");
    // An event of no attempt (DHCP), then two attempts' events interleaved; more than
    // one statement size, so every multi-row INSERT binds the column.
    let mut batch = vec![text(mac, 10, BootStage::DhcpAck, None)];
    for i in 0..70 {
        let attempt = if i % 2 == 0 { one } else { two };
        batch.push(text(mac, 20 + i, BootStage::Progress, Some(attempt)));
    }
    batch.push(text(mac, 100, BootStage::Booted, Some(two)));
    s.append_texts(&batch).await.unwrap();

    let all = s.events(None, 0, 1000).await.unwrap();
    assert_eq!(all.len(), 72);
    assert_eq!(all[0].attempt, None);
    assert_eq!(all[1].attempt.as_deref(), Some(one_id.as_str()));
    assert_eq!(all[2].attempt.as_deref(), Some(two_id.as_str()));
    let recent = s.recent_events(Some(mac), 1).await.unwrap();
    assert_eq!(recent[0].attempt.as_deref(), Some(two_id.as_str()));
    let latest = s.latest_event_per_mac().await.unwrap();
    assert_eq!(latest[0].attempt.as_deref(), Some(two_id.as_str()));
    // The JSON every reader shows carries it, only when set.
    assert_eq!(crate::events::json(&all[1])["attempt"], one_id.as_str());
    assert!(crate::events::json(&all[0]).get("attempt").is_none());

    let of_one = s.events_of_attempt(&one_id, 0, 1000).await.unwrap();
    assert_eq!(of_one.len(), 35);
    assert!(
        of_one
            .iter()
            .all(|r| r.attempt.as_deref() == Some(&*one_id))
    );
    let of_two = s.events_of_attempt(&two_id, 0, 1000).await.unwrap();
    assert_eq!(of_two.len(), 36);
    assert_eq!(of_two.last().unwrap().event.stage(), BootStage::Booted);
    // Paged by id.
    let page = s.events_of_attempt(&two_id, of_two[9].id, 5).await.unwrap();
    assert_eq!(page[0].id, of_two[10].id);
    assert_eq!(page.len(), 5);

    // `machine boots`: linked events when there are any (the DHCP event in the window
    // is not the attempt's), else the window's unlinked ones (older stores).
    let listed = s.attempt_events(&boot(&one_id, mac, 0, 1000), 1000).await;
    assert_eq!(listed.unwrap(), of_one);
    let old = s
        .attempt_events(&boot("00000000000000ff", mac, 0, 15), 1000)
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].event.stage(), BootStage::DhcpAck);
}
