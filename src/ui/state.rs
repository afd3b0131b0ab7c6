//! What state a machine is in, at a glance (pure): from what it would boot now and its
//! newest boot event. The fleet page groups by it; the machine page shows it.
//!
//! - `held`: the store holds it (automatic rollback on its last known good, or a
//!   quarantine), whatever it booted since;
//! - `local`: it is not held and its decision boots no image (a `local` pin, or no pin
//!   answers it);
//! - `never seen`: no boot event for any of its MACs;
//! - `booted`: its newest event is a `booted` report with the manifest it is pinned to;
//! - `drifted`: booted, but another manifest than the pin names now (re-pinned since: it
//!   boots the new one at its next boot);
//! - `failed`: its newest event is a final failure, an `ignored`, or a boot that stopped
//!   reporting for [`STALL_MS`];
//! - `booting`: anything else (a boot under way, a retry after a non-final failure).

use crate::boot::{BootStage, Digest, EventDetail};
use crate::inventory::{Decision, Selection};

use crate::store::EventRow;

/// A boot with no event for this long is counted as failed (stalled).
pub(crate) const STALL_MS: i64 = 30 * 60 * 1000;

/// A machine's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum State {
    Failed,
    Booting,
    Drifted,
    Booted,
    Held,
    Local,
    NeverSeen,
}

impl State {
    /// Every state, in the order the fleet page shows them (what needs a look first).
    pub(crate) const ALL: [State; 7] = [
        State::Failed,
        State::Booting,
        State::Drifted,
        State::Booted,
        State::Held,
        State::Local,
        State::NeverSeen,
    ];

    /// The name in URLs and CSS classes.
    pub(crate) fn key(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::Booting => "booting",
            State::Drifted => "drifted",
            State::Booted => "booted",
            State::Held => "held",
            State::Local => "local",
            State::NeverSeen => "never-seen",
        }
    }

    /// The heading.
    pub(crate) fn label(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::Booting => "booting",
            State::Drifted => "booted, not on its pin",
            State::Booted => "booted on pinned image",
            State::Held => "held (rollback or quarantine)",
            State::Local => "local boot (no image)",
            State::NeverSeen => "never seen",
        }
    }

    pub(crate) fn from_key(k: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.key() == k)
    }
}

/// Whether an event concludes a boot, and how.
fn is_final_failure(d: &EventDetail) -> bool {
    match d {
        EventDetail::Failed(r) => r.is_final(),
        other => {
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.get("final").cloned())
                == Some(true.into())
        }
    }
}

/// The manifest `sel` would boot, if it boots one.
pub(crate) fn pinned_manifest(sel: &Selection) -> Option<Digest> {
    match &sel.decision {
        Decision::Boot { plan } => Some(plan.manifest),
        _ => None,
    }
}

/// Whether `latest` (a MAC's newest event) belongs to a boot still under way at `now_ms`.
pub(crate) fn in_flight(latest: &EventRow, now_ms: i64) -> bool {
    let e = &latest.event;
    match e.stage() {
        BootStage::Booted | BootStage::Ignored => false,
        BootStage::Failed if is_final_failure(&e.detail) => false,
        _ => now_ms.saturating_sub(e.at_ms) <= STALL_MS,
    }
}

/// The state of a machine that the store holds (`held`) or not, that would boot
/// `pinned` now (`None`: no image) and whose newest event is `latest`, at `now_ms`.
pub(crate) fn classify(
    held: bool,
    pinned: Option<Digest>,
    latest: Option<&EventRow>,
    now_ms: i64,
) -> State {
    if held {
        return State::Held;
    }
    if pinned.is_none() {
        return State::Local;
    }
    let Some(latest) = latest else {
        return State::NeverSeen;
    };
    let e = &latest.event;
    match e.stage() {
        BootStage::Booted if e.manifest == pinned => State::Booted,
        BootStage::Booted => State::Drifted,
        _ if in_flight(latest, now_ms) => State::Booting,
        _ => State::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BootEvent, Mac, Via};

    fn row(
        stage: BootStage,
        manifest: Option<Digest>,
        at_ms: i64,
        d: serde_json::Value,
    ) -> EventRow {
        EventRow {
            id: 1,
            attempt: None,
            event: BootEvent {
                at_ms,
                mac: Mac([0x52, 0x54, 0, 0, 0, 1]),
                manifest,
                via: Via::Http,
                peer: None,
                detail: EventDetail::from_value(stage, d),
            },
        }
    }

    #[test]
    fn latest_event_and_decision_give_the_state() {
        let j = serde_json::json!({});
        let m = Digest::of(b"m");
        let s = Some(m);
        assert_eq!(classify(false, None, None, 0), State::Local);
        assert_eq!(classify(true, None, None, 0), State::Held);
        assert_eq!(classify(false, s, None, 0), State::NeverSeen);
        let booted = row(BootStage::Booted, Some(m), 0, j.clone());
        assert_eq!(classify(false, s, Some(&booted), 10), State::Booted);
        let other = row(BootStage::Booted, Some(Digest::of(b"x")), 0, j.clone());
        assert_eq!(classify(false, s, Some(&other), 10), State::Drifted);
        let dl = row(BootStage::KernelSent, Some(m), 0, j.clone());
        assert_eq!(classify(false, s, Some(&dl), 10), State::Booting);
        assert_eq!(classify(false, s, Some(&dl), STALL_MS + 1), State::Failed);
        let retry = row(
            BootStage::Failed,
            Some(m),
            0,
            serde_json::json!({"reason": "x", "final": false}),
        );
        assert_eq!(classify(false, s, Some(&retry), 10), State::Booting);
        let gave_up = row(
            BootStage::Failed,
            Some(m),
            0,
            serde_json::json!({"reason": "x", "final": true}),
        );
        assert_eq!(classify(false, s, Some(&gave_up), 10), State::Failed);
        for st in State::ALL {
            assert_eq!(State::from_key(st.key()), Some(st));
        }
    }
}
