//! How one lab machine's run ended, and the summary line `tabula lab` prints for it (the
//! stage arithmetic is [`crate::events::timeline`]'s).

use crate::events::timeline::Timeline;

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
    use crate::events::timeline::fixture::boot;

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
