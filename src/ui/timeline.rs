//! A MAC's boot history cut into boots (pure), each one row of the machine page's
//! timeline: the stages of [`crate::events::timeline`] with their seconds and bytes, drawn
//! to one scale so rows compare. A boot ends at a `booted` report or a final failure, as
//! [`crate::events::timeline::last_boot`] reads it.

use crate::boot::{BootEvent, BootStage, EventDetail};
use crate::events::timeline::{Outcome, STAGES, Timeline};

/// One stage of one boot, as drawn.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Segment {
    pub name: &'static str,
    /// `None`: no event ended this stage.
    pub seconds: Option<f64>,
    /// Bytes sent in this stage (TFTP loader, kernel + initrd, root image).
    pub bytes: Option<u64>,
    /// Width in percent of the widest boot shown.
    pub width: f64,
}

impl Segment {
    pub(crate) fn seconds_text(&self) -> String {
        self.seconds.map_or("-".into(), |s| format!("{s:.1} s"))
    }

    pub(crate) fn bytes_text(&self) -> String {
        self.bytes.map(human_bytes).unwrap_or_default()
    }

    pub(crate) fn class(&self) -> String {
        self.name.replace('+', "-")
    }
}

/// One boot, as drawn.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BootRow {
    pub start_ms: i64,
    pub total: Option<f64>,
    pub segments: Vec<Segment>,
    /// `booted`, `failed` or `in progress`.
    pub outcome: &'static str,
    /// The failure's `stage: reason` (the final one, else the latest).
    pub reason: Option<String>,
    /// The manifest a `booted` report named.
    pub manifest: Option<String>,
}

impl Segment {
    pub(crate) fn width_text(&self) -> String {
        format!("{:.2}", self.width)
    }
}

impl BootRow {
    pub(crate) fn start_text(&self) -> String {
        super::when(self.start_ms)
    }

    pub(crate) fn outcome_class(&self) -> String {
        self.outcome.replace(' ', "-")
    }

    pub(crate) fn total_text(&self) -> String {
        self.total.map(|t| format!(" {t:.1} s")).unwrap_or_default()
    }
}

/// `12.3 MiB`.
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    #[allow(clippy::cast_precision_loss)] // a display value
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Whether `e` ends a boot.
fn concludes(e: &BootEvent) -> bool {
    match e.stage() {
        BootStage::Booted => true,
        BootStage::Failed => match &e.detail {
            EventDetail::Failed(r) => r.is_final(),
            other => {
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.get("final").cloned())
                    == Some(true.into())
            }
        },
        _ => false,
    }
}

/// Bytes of a download or transfer event.
fn bytes_of(e: &BootEvent) -> Option<u64> {
    serde_json::to_value(&e.detail).ok()?.get("bytes")?.as_u64()
}

/// `events` (one MAC's, oldest first) cut into boots, newest first.
pub(crate) fn boots(events: &[BootEvent]) -> Vec<BootRow> {
    let mut slices = Vec::new();
    let mut from = 0;
    for (i, e) in events.iter().enumerate() {
        if concludes(e) {
            slices.push(&events[from..=i]);
            from = i + 1;
        }
    }
    if from < events.len() {
        slices.push(&events[from..]);
    }
    let rows: Vec<(Timeline, [Option<u64>; 6])> = slices
        .into_iter()
        .filter_map(|b| {
            let start = b.first()?.at_ms;
            let mut bytes = [None; 6];
            for e in b {
                let slot = match e.stage() {
                    BootStage::LoaderSent => 1,
                    BootStage::KernelSent | BootStage::InitrdSent => 3,
                    BootStage::RootfsSent => 4,
                    _ => continue,
                };
                if let Some(n) = bytes_of(e) {
                    bytes[slot] = Some(bytes[slot].unwrap_or(0) + n);
                }
            }
            Some((Timeline::read(start, b), bytes))
        })
        .collect();
    let widest = rows
        .iter()
        .filter_map(|(t, _)| t.total())
        .fold(0.0f64, f64::max)
        .max(0.001);
    let mut out: Vec<BootRow> = rows
        .into_iter()
        .map(|(t, bytes)| {
            let segments = STAGES
                .iter()
                .zip(t.seconds())
                .zip(bytes)
                .map(|((name, seconds), bytes)| Segment {
                    name,
                    seconds,
                    bytes,
                    width: seconds.map_or(0.0, |s| (s / widest * 100.0).min(100.0)),
                })
                .collect();
            let (outcome, manifest) = match &t.outcome {
                Outcome::Booted(d) => ("booted", Some(d.to_string())),
                Outcome::Failed(_) => ("failed", None),
                Outcome::Pending => ("in progress", None),
            };
            let reason = match &t.outcome {
                Outcome::Failed(r) => Some(r.clone()),
                _ => t.last_failure.clone(),
            };
            BootRow {
                start_ms: t.start_ms,
                total: t.total(),
                segments,
                outcome,
                reason,
                manifest,
            }
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Digest, Mac, Via};

    fn ev(at_ms: i64, stage: BootStage, detail: serde_json::Value) -> BootEvent {
        BootEvent {
            at_ms,
            mac: Mac([0x52, 0x54, 0, 0, 0, 1]),
            manifest: Some(Digest::of(b"m")),
            via: Via::Http,
            peer: None,
            detail: EventDetail::from_value(stage, detail),
        }
    }

    #[test]
    fn boots_are_cut_at_conclusions_and_drawn_to_one_scale() {
        use BootStage::*;
        let j = serde_json::json!({});
        let dl = |n: u64| serde_json::json!({"digest": Digest::of(b"k").to_string(), "bytes": n, "expected": n, "seconds": 0.1, "complete": true});
        let events = vec![
            ev(0, DhcpAck, j.clone()),
            ev(1_000, ScriptSent, j.clone()),
            ev(2_000, KernelSent, dl(1000)),
            ev(2_500, InitrdSent, dl(24)),
            ev(10_000, Booted, j.clone()),
            ev(20_000, DhcpAck, j.clone()),
            ev(
                25_000,
                Failed,
                serde_json::json!({"stage": "fetch", "reason": "timeout", "final": true}),
            ),
            ev(30_000, DhcpAck, j),
        ];
        let b = boots(&events);
        assert_eq!(b.len(), 3);
        assert_eq!(
            (b[0].outcome, b[1].outcome, b[2].outcome),
            ("in progress", "failed", "booted")
        );
        assert_eq!(b[1].reason.as_deref(), Some("fetch: timeout"));
        let first = &b[2];
        assert_eq!(first.total, Some(10.0));
        assert_eq!(first.segments[3].bytes, Some(1024));
        assert_eq!(first.segments[3].bytes_text(), "1.0 KiB");
        // The widest boot spans the scale; the stages of one boot add up to its total.
        let sum: f64 = first.segments.iter().map(|s| s.width).sum();
        assert!((sum - 100.0).abs() < 1e-9, "{sum}");
        assert_eq!(b[1].segments[0].width, 0.0);
        assert!(boots(&[]).is_empty());
    }
}
