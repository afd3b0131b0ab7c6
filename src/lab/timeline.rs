//! One lab machine's boot, read from its boot events (pure): when each stage ended, the
//! seconds each took, what it concluded, and the summary line `tabula lab` ends with.
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
pub const STAGES: [&str; 6] = [
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
    /// Unix ms the VM started.
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

/// How one machine's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Booted the pinned image.
    Booted,
    /// Booted something else (name@version or digest).
    WrongImage(String),
    /// The initramfs reported that it gave up.
    Failed(String),
    /// QEMU ended without a `booted` report.
    Exited(Option<String>),
    /// No conclusion before `--timeout`.
    Timeout(Option<String>),
    /// Stopped because another machine failed (no `--keep-going`).
    Stopped,
}

impl Verdict {
    /// The one-word result, then details (if any).
    fn parts(&self) -> (&'static str, Option<String>) {
        let last = |l: &Option<String>| l.as_ref().map(|r| format!("last failure: {r}"));
        match self {
            Verdict::Booted => ("booted", None),
            Verdict::WrongImage(what) => ("wrong-image", Some(format!("booted {what}"))),
            Verdict::Failed(r) => ("failed", Some(r.clone())),
            Verdict::Exited(l) => (
                "exited",
                last(l).or(Some("QEMU ended without a booted report".into())),
            ),
            Verdict::Timeout(l) => ("timeout", last(l)),
            Verdict::Stopped => (
                "stopped",
                Some("another machine failed (use --keep-going to wait for every machine)".into()),
            ),
        }
    }
}

/// `summary NAME MAC FIRMWARE IMAGE@VERSION RESULT dhcp=…s … total=…s[ — DETAIL]`.
pub fn summary_line(
    name: &str,
    mac: &str,
    firmware: &str,
    image: &str,
    verdict: &Verdict,
    timeline: &Timeline,
) -> String {
    let (word, detail) = verdict.parts();
    let mut s = format!(
        "summary {name} {mac} {firmware} {image} {word} {}",
        timeline.stages_text()
    );
    if let Some(d) = detail {
        s.push_str(" — ");
        s.push_str(&d);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Mac;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0x77, 1, 1]);

    fn ev(at_ms: i64, stage: BootStage, detail: serde_json::Value) -> BootEvent {
        BootEvent {
            at_ms,
            mac: MAC,
            manifest: Some(Digest::of(b"m")),
            via: crate::boot::Via::Http,
            peer: None,
            detail: EventDetail::from_value(stage, detail),
        }
    }

    fn boot(start: i64) -> Vec<BootEvent> {
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
    fn summary_lines() {
        let t = Timeline::read(0, &boot(0));
        assert_eq!(
            summary_line(
                "bios-1",
                "52:54:00:77:01:01",
                "bios",
                "demo@1",
                &Verdict::Booted,
                &t
            ),
            "summary bios-1 52:54:00:77:01:01 bios demo@1 booted dhcp=2.5s loader=0.5s script=5.0s \
             kernel+initrd=1.5s root=10.9s booted=2.6s total=23.0s"
        );
        let empty = Timeline::read(0, &[]);
        let s = summary_line(
            "uefi-1",
            "m",
            "uefi",
            "demo@2",
            &Verdict::Timeout(None),
            &empty,
        );
        assert!(s.ends_with("uefi demo@2 timeout dhcp=- loader=- script=- kernel+initrd=- root=- booted=- total=-"), "{s}");
        let s = summary_line(
            "b",
            "m",
            "bios",
            "x@1",
            &Verdict::Failed("verify: bad".into()),
            &empty,
        );
        assert!(
            s.contains(" failed ") && s.ends_with(" — verify: bad"),
            "{s}"
        );
    }
}
