//! Why tabula decided not to boot a machine ([`IgnoreReason`]): a value that metrics,
//! an API and rollback logic can branch on ([`IgnoreReason::code`]), whose `Display` is
//! the sentence an operator reads in `tabula explain`, the iPXE script and the event.
//!
//! Pure data: targets and references are carried as the canonical text the inventory
//! prints, so this module needs nothing from outside `boot`.

use std::fmt;

use super::{Arch, Digest, Firmware};

/// Why the inventory's decision is "do not serve this client".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// No pin matched and there is no default pin.
    NoPin,
    /// Only the default pin matched, and `boot.unknown_machines = "ignore"`.
    UnknownMachine,
    /// The winning pin (`target`) is pinned to `none`.
    PinnedNone { target: String },
    /// The winning pin names a digest that is not a published version of `image`.
    DigestNotPublished {
        target: String,
        image: String,
        digest: Digest,
    },
    /// The winning pin names a channel that does not exist.
    NoChannel {
        target: String,
        image: String,
        channel: String,
    },
    /// The winning pin resolves to a version that is not published.
    NotPublished {
        target: String,
        image: String,
        version: String,
    },
    /// The version's manifest cannot be read or is invalid.
    ManifestUnusable {
        image: String,
        version: String,
        why: String,
    },
    /// The version is not built for the CPU the firmware runs.
    WrongArch {
        image: String,
        version: String,
        built: Vec<Arch>,
        firmware: Firmware,
    },
    /// The plan (kernel command line) cannot be rendered for this machine.
    Render {
        image: String,
        version: String,
        error: String,
    },
    /// The machine spent its tries and has no known good image (`health.quarantine =
    /// "ignore"`); `why` is the hold's sentence.
    Quarantined { why: String },
}

impl IgnoreReason {
    /// A stable name for the kind of reason (event detail `code`, metric label).
    pub fn code(&self) -> &'static str {
        match self {
            IgnoreReason::NoPin => "no-pin",
            IgnoreReason::UnknownMachine => "unknown-machine",
            IgnoreReason::PinnedNone { .. } => "pinned-none",
            IgnoreReason::DigestNotPublished { .. } => "digest-not-published",
            IgnoreReason::NoChannel { .. } => "no-channel",
            IgnoreReason::NotPublished { .. } => "not-published",
            IgnoreReason::ManifestUnusable { .. } => "manifest-unusable",
            IgnoreReason::WrongArch { .. } => "wrong-arch",
            IgnoreReason::Render { .. } => "render",
            IgnoreReason::Quarantined { .. } => "quarantined",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::NoPin => f.write_str("no pin applies and there is no default pin"),
            IgnoreReason::UnknownMachine => {
                f.write_str("not in the inventory and boot.unknown_machines = \"ignore\"")
            }
            IgnoreReason::PinnedNone { target } => write!(f, "pinned to none by {target}"),
            IgnoreReason::DigestNotPublished {
                target,
                image,
                digest,
            } => write!(
                f,
                "{target} names {image}@{digest}, which is not a published version of {image}"
            ),
            IgnoreReason::NoChannel {
                target,
                image,
                channel,
            } => write!(
                f,
                "{target} names channel {image}:{channel}, which does not exist"
            ),
            IgnoreReason::NotPublished {
                target,
                image,
                version,
            } => write!(
                f,
                "{target} resolves to {image}@{version}, which is not published"
            ),
            IgnoreReason::ManifestUnusable {
                image,
                version,
                why,
            } => write!(f, "manifest of {image}@{version} is unusable: {why}"),
            IgnoreReason::WrongArch {
                image,
                version,
                built,
                firmware,
            } => {
                let built: Vec<&str> = built.iter().map(|a| a.as_str()).collect();
                write!(
                    f,
                    "{image}@{version} is built for {}, but firmware {firmware} runs {}",
                    built.join(", "),
                    firmware.arch()
                )
            }
            IgnoreReason::Render {
                image,
                version,
                error,
            } => write!(
                f,
                "cannot render {image}@{version} for this machine: {error}"
            ),
            IgnoreReason::Quarantined { why } => f.write_str(why),
        }
    }
}

/// As its sentence: `tabula explain --json` shows what an operator reads.
impl serde::Serialize for IgnoreReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        let cases = [
            (
                IgnoreReason::NoPin,
                "no-pin",
                "no pin applies and there is no default pin",
            ),
            (
                IgnoreReason::UnknownMachine,
                "unknown-machine",
                "not in the inventory and boot.unknown_machines = \"ignore\"",
            ),
            (
                IgnoreReason::PinnedNone {
                    target: "mac:52:54:00:00:00:01".into(),
                },
                "pinned-none",
                "pinned to none by mac:52:54:00:00:00:01",
            ),
            (
                IgnoreReason::NoChannel {
                    target: "default".into(),
                    image: "demo".into(),
                    channel: "beta".into(),
                },
                "no-channel",
                "default names channel demo:beta, which does not exist",
            ),
            (
                IgnoreReason::WrongArch {
                    image: "demo".into(),
                    version: "1".into(),
                    built: vec![Arch::Arm64, Arch::I386],
                    firmware: Firmware::Bios,
                },
                "wrong-arch",
                "demo@1 is built for arm64, i386, but firmware bios runs x86_64",
            ),
        ];
        for (r, code, text) in cases {
            assert_eq!(r.code(), code);
            assert_eq!(r.to_string(), text);
            assert_eq!(serde_json::to_value(&r).unwrap(), text);
        }
    }
}
