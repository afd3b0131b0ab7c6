//! The sink's bounds without a store: bytes and count, the detail cap, and the rate
//! gates for what clients can make the server record.

use std::net::IpAddr;

use super::*;
use crate::boot::BootStage;

fn limits() -> SinkLimits {
    SinkLimits {
        queue_events: 1000,
        queue_bytes: 10 * (EVENT_OVERHEAD + 300),
        max_detail_bytes: 300,
        per_mac_per_minute: 3,
        per_peer_per_minute: 10,
        refusals_per_minute: 5,
    }
}

fn event(mac: u32, detail: usize) -> BootEvent {
    BootEvent {
        at_ms: 0,
        mac: format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            mac >> 16,
            (mac >> 8) & 0xff,
            mac & 0xff
        )
        .parse()
        .unwrap(),
        via: crate::boot::Via::Http,
        peer: None,
        manifest: None,
        detail: crate::boot::EventDetail::from_value(
            BootStage::Progress,
            serde_json::json!({ "reason": "x".repeat(detail) }),
        ),
    }
}

fn drain(q: &mut EventQueue) -> Vec<EventText> {
    std::iter::from_fn(|| q.try_recv()).collect()
}

#[test]
fn the_queue_is_bounded_by_bytes_and_big_details_are_replaced() {
    let (sink, mut q) = channel_with(limits());
    sink.record(event(1, 5000));
    for i in 0..100 {
        sink.record(event(i, 250));
    }
    let got = drain(&mut q);
    assert_eq!(&*got[0].detail, format!("{{\"truncated\":{}}}", 5000 + 13));
    // The short note (~114 bytes queued) and then 10 events of 263 + 96 bytes: 3,704
    // of the 3,960 allowed; the 11th would not fit.
    assert_eq!(got.len(), 11, "events queued");
    let s = sink.stats();
    assert_eq!((s.truncated, s.queued_bytes), (1, 0));
    assert_eq!(s.dropped, 101 - got.len() as u64);
    // Drained: room again.
    sink.record(event(1, 10));
    assert_eq!(drain(&mut q).len(), 1);
}

#[test]
fn clients_are_rate_gated_per_mac_and_per_peer() {
    let (sink, mut q) = channel_with(limits());
    let peer = |n: u8| IpAddr::from([10, 0, 0, n]);
    // One MAC from one peer: its 3 tokens.
    let ok = (0..10)
        .filter(|_| sink.record_from(event(7, 10), peer(1)))
        .count();
    assert_eq!(ok, 3);
    // Many MACs from one peer: the peer's 10 (it spent 10 above already, 3 recorded).
    let ok = (100..200)
        .filter(|&m| sink.record_from(event(m, 10), peer(2)))
        .count();
    assert_eq!(ok, 10);
    assert!(
        sink.record_from(event(300, 10), peer(3)),
        "another peer has its own budget"
    );
    assert_eq!(drain(&mut q).len(), 14);
    assert_eq!(sink.stats().rate_limited, 7 + 90);
}

#[test]
fn a_refusal_flood_is_summarised_not_stored() {
    let (sink, mut q) = channel_with(limits());
    // A DISCOVER flood with a new MAC per packet: only the global refusal budget passes.
    let ok = (0..1000)
        .filter(|&m| sink.record_refusal(event(m, 10)))
        .count();
    assert_eq!(ok, 5);
    assert_eq!(drain(&mut q).len(), 5);
    assert_eq!(sink.stats().rate_limited, 995);
}

#[test]
fn served_scripts_share_the_gates_and_a_peerless_one_only_its_macs() {
    let (sink, mut q) = channel_with(limits());
    let text = |m| EventText::from(&event(m, 10));
    // A script fetched in a loop by one machine: its MAC's 3, then counted drops.
    let ok = (0..50)
        .filter(|_| sink.record_text_from(text(7), Some(IpAddr::from([10, 0, 0, 1]))))
        .count();
    assert_eq!(ok, 3);
    // The MAC's budget is one, whatever records it: a report of that MAC is over too.
    assert!(!sink.record_from(event(7, 10), IpAddr::from([10, 0, 0, 9])));
    // No peer known (a test client, a Unix socket): the MAC's budget alone.
    let ok = (0..5)
        .filter(|_| sink.record_text_from(text(8), None))
        .count();
    assert_eq!(ok, 3);
    assert_eq!(drain(&mut q).len(), 6);
    assert_eq!(sink.stats().rate_limited, 47 + 1 + 2);
}
