//! One machine's boot, read from its boot events (pure): when each stage ended, the
//! seconds each took and what it concluded. Shared by every consumer that shows a boot
//! (`tabula lab`'s summary, the machine view, the coming API and dashboard).
//!
//! Stages and the event that ends each (the first of its kind after the VM started):
//! `dhcp` (the first `dhcp-ack`, proxy or not; else the first `dhcp-offer`), `loader`
//! (`loader-sent`: the TFTP transfer completed), `script` (`script-sent`),
//! `kernel+initrd` (the later of `kernel-sent` and `initrd-sent`), `root`
//! (`rootfs-sent`: the root image downloaded, which includes the kernel starting and the
//! initramfs's own DHCP), `booted` (`booted`: verified, mounted, switched to the image's
//! init, reported). Each stage's seconds run from the end of the previous stage seen
//! (the VM's start for `dhcp`); a stage with no event shows `-`.

use std::fmt::Write as _;

use crate::boot::{BootEvent, BootStage, Digest, EventDetail};

/// The stage names, in order.
pub(crate) const STAGES: [&str; 6] = [
    "dhcp",
    "loader",
    "script",
    "kernel+initrd",
    "root",
    "booted",
];

/// What the events say so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing conclusive yet.
    Pending,
    /// A `booted` report with this manifest.
    Booted(Digest),
    /// The initramfs gave up (a `failed` report with `final: true`).
    Failed(String),
}

/// One machine's boot so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Unix ms when each stage ended, in [`STAGES`] order.
    pub ends: [Option<i64>; 6],
    /// Unix ms the boot started (a VM start, or the first event of an attempt).
    pub start_ms: i64,
    pub outcome: Outcome,
    /// The latest `failed` report, `stage: reason`, final or not.
    pub last_failure: Option<String>,
}

impl Timeline {
    /// Reads `events` (one MAC's, oldest first, all after the VM started).
    pub fn read(start_ms: i64, events: &[BootEvent]) -> Timeline {
        let first = |s: BootStage| events.iter().find(|e| e.stage() == s).map(|e| e.at_ms);
        let dhcp = first(BootStage::DhcpAck).or(first(BootStage::DhcpOffer));
        let kernel_initrd = match (first(BootStage::KernelSent), first(BootStage::InitrdSent)) {
            (Some(k), Some(i)) => Some(k.max(i)),
            (k, i) => k.or(i),
        };
        let ends = [
            dhcp,
            first(BootStage::LoaderSent),
            first(BootStage::ScriptSent),
            kernel_initrd,
            first(BootStage::RootfsSent),
            first(BootStage::Booted),
        ];
        let mut outcome = Outcome::Pending;
        let mut last_failure = None;
        for e in events {
            match e.stage() {
                BootStage::Booted if outcome == Outcome::Pending => {
                    outcome = match e.manifest {
                        Some(m) => Outcome::Booted(m),
                        None => Outcome::Failed("booted report without a manifest".into()),
                    };
                }
                BootStage::Failed => {
                    let (reason, stage, is_final) = failure(&e.detail);
                    let reason = reason.unwrap_or_else(|| e.detail.to_json());
                    let text = match stage {
                        Some(s) => format!("{s}: {reason}"),
                        None => reason,
                    };
                    if is_final && outcome == Outcome::Pending {
                        outcome = Outcome::Failed(text.clone());
                    }
                    last_failure = Some(text);
                }
                _ => {}
            }
        }
        Timeline {
            ends,
            start_ms,
            outcome,
            last_failure,
        }
    }

    /// Seconds per stage (`None` where no event ended it).
    pub fn seconds(&self) -> [Option<f64>; 6] {
        let mut prev = self.start_ms;
        let mut out = [None; 6];
        for (i, end) in self.ends.iter().enumerate() {
            if let Some(end) = *end {
                out[i] = Some(secs(end.saturating_sub(prev).max(0)));
                prev = prev.max(end);
            }
        }
        out
    }

    /// Seconds from the VM's start to the last stage seen.
    pub fn total(&self) -> Option<f64> {
        let last = self.ends.iter().flatten().max()?;
        Some(secs(last.saturating_sub(self.start_ms).max(0)))
    }

    /// `dhcp=2.9s loader=0.4s … booted=2.3s total=26.4s` (`-` for a stage not seen).
    pub fn stages_text(&self) -> String {
        let mut s = String::new();
        for (name, v) in STAGES.iter().zip(self.seconds()) {
            match v {
                Some(v) => {
                    let _ = write!(s, "{name}={v:.1}s ");
                }
                None => {
                    let _ = write!(s, "{name}=- ");
                }
            }
        }
        match self.total() {
            Some(t) => {
                let _ = write!(s, "total={t:.1}s");
            }
            None => s.push_str("total=-"),
        }
        s
    }
}

/// The latest boot in `events` (one MAC's, oldest first): the events after the last
/// boot that concluded before it (a `booted` report or a final failure), timed from its
/// first event. `None` without events. A boot still going shows `Outcome::Pending`.
pub(crate) fn last_boot(events: &[BootEvent]) -> Option<Timeline> {
    let concluded = |e: &BootEvent| match e.stage() {
        BootStage::Booted => true,
        BootStage::Failed => failure(&e.detail).2,
        _ => false,
    };
    // The last conclusion; the boot it ends starts after the conclusion before it.
    let end = events.iter().rposition(concluded);
    let (from, to) = match end {
        // Events after the last conclusion: a boot in progress.
        Some(e) if e + 1 < events.len() => (e + 1, events.len()),
        Some(e) => (
            events[..e].iter().rposition(concluded).map_or(0, |p| p + 1),
            e + 1,
        ),
        None => (0, events.len()),
    };
    let boot = &events[from..to];
    let start = boot.first()?.at_ms;
    Some(Timeline::read(start, boot))
}

/// A failure's reason, the initramfs stage it happened in, and whether it was final (a
/// detail that did not fit the schema is read by its keys).
fn failure(d: &EventDetail) -> (Option<String>, Option<String>, bool) {
    match d {
        EventDetail::Failed(r) => (r.reason.clone(), r.stage.clone(), r.is_final()),
        other => {
            let v = serde_json::to_value(other).unwrap_or_default();
            let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
            (
                text("reason"),
                text("stage"),
                v.get("final") == Some(&true.into()),
            )
        }
    }
}

#[allow(clippy::cast_precision_loss)] // milliseconds of one boot: far below 2^52
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A whole boot's events, for the tests of every reader of a timeline.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::boot::Mac;

    pub(crate) const MAC: Mac = Mac([0x52, 0x54, 0, 0x77, 1, 1]);

    /// An event of [`MAC`] on manifest `m` at `at_ms`.
    pub(crate) fn ev(at_ms: i64, stage: BootStage, detail: serde_json::Value) -> BootEvent {
        BootEvent {
            at_ms,
            mac: MAC,
            manifest: Some(Digest::of(b"m")),
            via: crate::boot::Via::Http,
            peer: None,
            detail: EventDetail::from_value(stage, detail),
        }
    }

    /// A BIOS chain boot starting at `start`: DHCP twice, loader, script, kernel,
    /// initrd, progress, root, booted.
    pub(crate) fn boot(start: i64) -> Vec<BootEvent> {
        use BootStage::*;
        let j = serde_json::json!({});
        vec![
            ev(start + 2_000, DhcpOffer, j.clone()),
            ev(start + 2_500, DhcpAck, j.clone()),
            ev(start + 3_000, LoaderSent, j.clone()),
            ev(start + 6_000, DhcpAck, j.clone()),
            ev(start + 8_000, ScriptSent, j.clone()),
            ev(start + 9_000, KernelSent, j.clone()),
            ev(start + 9_500, InitrdSent, j.clone()),
            ev(start + 20_000, Progress, j.clone()),
            ev(start + 20_400, RootfsSent, j.clone()),
            ev(start + 23_000, Booted, j),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{boot, ev};
    use super::*;

    #[test]
    fn stages_run_from_the_end_of_the_previous_one() {
        let t = Timeline::read(1_000, &boot(1_000));
        assert_eq!(t.outcome, Outcome::Booted(Digest::of(b"m")));
        assert_eq!(
            t.seconds(),
            [
                Some(2.5),
                Some(0.5),
                Some(5.0),
                Some(1.5),
                Some(10.9),
                Some(2.6)
            ]
        );
        assert_eq!(
            t.stages_text(),
            "dhcp=2.5s loader=0.5s script=5.0s kernel+initrd=1.5s root=10.9s booted=2.6s total=23.0s"
        );
    }

    #[test]
    fn a_missing_stage_is_a_dash_and_the_next_counts_from_the_last_seen() {
        let mut evs = boot(0);
        evs.retain(|e| e.stage() != BootStage::LoaderSent);
        let t = Timeline::read(0, &evs);
        let s = t.seconds();
        assert_eq!(s[1], None);
        assert_eq!(s[2], Some(5.5));
        assert!(t.stages_text().contains("loader=- "));
    }

    #[test]
    fn final_failure_decides_earlier_ones_are_remembered() {
        let mut evs = boot(0);
        evs.truncate(9);
        let fail = |fin: bool| {
            ev(
                30_000,
                BootStage::Failed,
                serde_json::json!({"stage": "verify", "reason": "root image sha256 mismatch: got a, want b", "final": fin}),
            )
        };
        evs.push(fail(false));
        let t = Timeline::read(0, &evs);
        assert_eq!(t.outcome, Outcome::Pending);
        assert_eq!(
            t.last_failure.as_deref(),
            Some("verify: root image sha256 mismatch: got a, want b")
        );
        evs.push(fail(true));
        let t = Timeline::read(0, &evs);
        assert_eq!(
            t.outcome,
            Outcome::Failed("verify: root image sha256 mismatch: got a, want b".into())
        );
        assert!(matches!(&evs[evs.len() - 1].detail, EventDetail::Failed(r) if r.is_final()));
        // A failure that does not fit the schema (attempt as text) is still read.
        let mut odd = evs[..9].to_vec();
        odd.push(ev(
            30_000,
            BootStage::Failed,
            serde_json::json!({"stage": "fetch", "reason": "timeout", "attempt": "3", "final": true}),
        ));
        assert!(matches!(odd[9].detail, EventDetail::Unparsed { .. }));
        assert_eq!(
            Timeline::read(0, &odd).outcome,
            Outcome::Failed("fetch: timeout".into())
        );
        assert!(
            t.stages_text().ends_with("booted=- total=20.4s"),
            "{}",
            t.stages_text()
        );
    }

    #[test]
    fn the_last_boot_is_cut_at_the_conclusion_before_it() {
        let mut events = boot(0);
        let second: Vec<BootEvent> = boot(100_000);
        events.extend(second.iter().cloned());
        let t = last_boot(&events).unwrap();
        assert_eq!(t.start_ms, second[0].at_ms);
        assert_eq!(t, Timeline::read(second[0].at_ms, &second));
        // A third boot that has only begun: it is the last one, still pending.
        let started = ev(300_000, BootStage::DhcpAck, serde_json::json!({}));
        events.push(started.clone());
        let t = last_boot(&events).unwrap();
        assert_eq!((t.start_ms, &t.outcome), (started.at_ms, &Outcome::Pending));
        assert!(last_boot(&[]).is_none());
    }
}
