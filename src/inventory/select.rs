//! The one decision: facts about a client in, what it boots out, with the reasons.
//!
//! Precedence: a pin on the client's MAC, then on its machine, then the most specific
//! matching label selector (more keys, then fewer accepted values, then the lexically
//! first selector, a tie that is reported), then the default pin. Pure: reads only the
//! [`Snapshot`] it is given, and, for a plan that will really be served, the
//! [`BootSeal`] (report key and boot id) its callback's token is made from.
//!
//! Why the seal is an input here rather than added to the plan afterwards: the token
//! covers the manifest, which only the selection knows, and it must be inside the
//! rendered kernel command line (`tabula.callback=`, and `${callback_url}` in an image's
//! own command line), so it has to exist when the command line is rendered; adding it
//! later would mean editing rendered text. The HMAC is a pure function of its inputs,
//! so `select_for_boot` is as deterministic as `select`.

use super::pin::{PinRef, PinTarget};
use super::snapshot::Snapshot;
use std::fmt;

use crate::boot::{BlobRole, BootPlan, BootSeal, Callback, Firmware, IgnoreReason, Mac, Urls};
use crate::config::UnknownMachines;
use crate::images::{Manifest, cmdline};

/// What is known about a client when it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub mac: Mac,
    /// SMBIOS UUID (DHCP option 97), canonical text.
    pub uuid: Option<String>,
    pub firmware: Firmware,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Decision {
    /// Boot this plan.
    Boot { plan: Box<BootPlan> },
    /// Exit to the next boot device (local disk).
    Local,
    /// Do not serve this client.
    Ignore { reason: IgnoreReason },
}

/// A pin that applied to the client, and how it fared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    /// Canonical target (`mac:…`, `machine:…`, `label:…`, `default`).
    pub target: String,
    pub reference: String,
    /// `won`, or why it lost.
    pub outcome: CandidateOutcome,
}

/// How a candidate pin fared against the winner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateOutcome {
    /// It is the winner.
    Won,
    /// As specific as the winner (a label selector with as many keys and values); lost on
    /// the lexical order of the selectors.
    Tie { with: String },
    /// Less specific than the winner.
    LessSpecific { than: String },
}

impl fmt::Display for CandidateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CandidateOutcome::Won => f.write_str("won"),
            CandidateOutcome::Tie { with } => write!(
                f,
                "tie with {with} (same number of keys and values); lost on lexical order"
            ),
            CandidateOutcome::LessSpecific { than } => write!(f, "less specific than {than}"),
        }
    }
}

/// As its sentence, as `tabula explain --json` always showed it.
impl serde::Serialize for CandidateOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a reference resolved to a version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub image: String,
    pub version: String,
    /// The channel the version was reached through, if any.
    pub channel: Option<String>,
    pub manifest: crate::boot::Digest,
}

/// A decision with everything that explains it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    pub mac: Mac,
    pub firmware: Firmware,
    /// The inventory machine the client was recognised as.
    pub machine: Option<String>,
    /// Every pin that applied, the winner first.
    pub candidates: Vec<Candidate>,
    pub resolved: Option<Resolved>,
    pub decision: Decision,
    /// Store revision the decision was made against.
    pub revision: i64,
    /// Where the image came from: a pin, a channel, a rollout, a hold, a boot-once.
    pub source: Source,
}

/// Why a machine boots what it boots: the source of the decision, recorded with every
/// boot attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Nothing booted (no pin, or the pin says local or none).
    #[default]
    None,
    /// A pin named the version (or digest).
    Pin { target: String },
    /// A pin named a channel, which named the version.
    Channel {
        target: String,
        image: String,
        channel: String,
    },
    /// A rollout admitted the machine at step `step` (from 0).
    Rollout { rollout: String, step: u32 },
    /// Automatic rollback holds the machine; `sentence` says on what and why.
    Hold { sentence: String },
    /// A boot-once request.
    BootOnce { id: String },
}

impl Source {
    /// The stored form (`boots.source`): `pin:<target>`, `channel:<image>:<ch>`,
    /// `rollout:<name>/<step>`, `hold:<machine>`, `boot-once:<id>`.
    pub fn key(&self, machine: &str) -> String {
        match self {
            Source::None => "none".into(),
            Source::Pin { target } => format!("pin:{target}"),
            Source::Channel { image, channel, .. } => format!("channel:{image}:{channel}"),
            Source::Rollout { rollout, step } => format!("rollout:{rollout}/{step}"),
            Source::Hold { .. } => format!("hold:{machine}"),
            Source::BootOnce { id } => format!("boot-once:{id}"),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::None => f.write_str("no image"),
            Source::Pin { target } => write!(f, "pinned by {target}"),
            Source::Channel {
                target,
                image,
                channel,
            } => {
                write!(f, "channel {image}:{channel}, pinned by {target}")
            }
            Source::Rollout { rollout, step } => {
                write!(f, "from rollout {rollout} (step {})", step + 1)
            }
            Source::Hold { sentence } => f.write_str(sentence),
            Source::BootOnce { id } => write!(f, "boot-once {id}"),
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Mac,
    Machine,
    Selector(std::cmp::Reverse<(usize, std::cmp::Reverse<usize>)>, String),
    Default,
}

/// Decides what the client described by `facts` boots. A plan's callback carries no
/// token (what `tabula explain` and DHCP need; a report to it would be refused): the
/// script route uses [`select_for_boot`].
pub fn select(snap: &Snapshot, facts: &Facts) -> Selection {
    decide(snap, facts, None)
}

/// [`select`] for a DHCP client that names no architecture (no option 93: an operating
/// system's or the netboot initramfs's DHCP, after the firmware stages did name it).
/// `facts.firmware` is then only the BIOS guess, so a refusal for the architecture alone
/// would be a guess too: the client is taken to be of the architecture its image was
/// built for, and decided again as such. An arm64 machine's initramfs thus gets its
/// lease like an x86 one's (found booting the ARM64 lab); every other decision is
/// [`select`]'s.
pub fn select_unnamed_arch(snap: &Snapshot, facts: &Facts) -> Selection {
    let sel = select(snap, facts);
    if let Decision::Ignore {
        reason: IgnoreReason::WrongArch { built, .. },
    } = &sel.decision
        && let Some(&arch) = built.first()
    {
        return select(
            snap,
            &Facts {
                firmware: Firmware::assumed_for(arch),
                ..facts.clone()
            },
        );
    }
    sel
}

/// [`select`] for a plan that is served: its callback (on the kernel command line and in
/// `${callback_url}`) carries the token `seal` makes for the MAC and manifest.
pub fn select_for_boot(snap: &Snapshot, facts: &Facts, seal: &BootSeal<'_>) -> Selection {
    decide(snap, facts, Some(seal))
}

fn decide(snap: &Snapshot, facts: &Facts, seal: Option<&BootSeal<'_>>) -> Selection {
    let machine = snap.machine_for(&facts.mac, facts.uuid.as_deref());
    let mut ranked: Vec<(Rank, &super::Pin)> = Vec::new();
    for pin in &snap.pins {
        let rank = match &pin.target {
            PinTarget::Mac(m) if *m == facts.mac => Rank::Mac,
            PinTarget::Machine(n) if machine.is_some_and(|m| &m.name == n) => Rank::Machine,
            PinTarget::Selector(s) if machine.is_some_and(|m| s.matches(&m.labels)) => {
                Rank::Selector(std::cmp::Reverse(s.specificity()), s.to_string())
            }
            PinTarget::Default => Rank::Default,
            _ => continue,
        };
        ranked.push((rank, pin));
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0));

    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, (rank, pin)) in ranked.iter().enumerate() {
        let outcome = if i == 0 {
            CandidateOutcome::Won
        } else {
            let (wrank, wpin) = &ranked[0];
            match (wrank, rank) {
                (Rank::Selector(a, _), Rank::Selector(b, _)) if a == b => CandidateOutcome::Tie {
                    with: wpin.target.to_string(),
                },
                _ => CandidateOutcome::LessSpecific {
                    than: wpin.target.to_string(),
                },
            }
        };
        candidates.push(Candidate {
            target: pin.target.key(),
            reference: pin.reference.to_string(),
            outcome,
        });
    }

    let mut sel = Selection {
        mac: facts.mac,
        firmware: facts.firmware,
        machine: machine.map(|m| m.name.clone()),
        candidates,
        resolved: None,
        decision: Decision::Local,
        revision: snap.revision,
        source: Source::None,
    };
    let key = machine.map_or_else(|| facts.mac.to_string(), |m| m.name.clone());
    let fleet = &snap.fleet;
    let ignore = |reason: IgnoreReason| Decision::Ignore { reason };

    // The fleet's decisions first: a boot-once, then a hold; a rollout's admission
    // yields only to a pin on the MAC or the machine (reported as skipped by the rollout).
    let explicit = matches!(ranked.first(), Some((Rank::Mac | Rank::Machine, _)));
    let fleet_choice: Option<(PinRef, Source)> = if let Some(o) = fleet
        .boot_once
        .get(&key)
        .filter(|o| o.expires_ms > fleet.now_ms)
    {
        Some((o.reference.clone(), Source::BootOnce { id: o.id.clone() }))
    } else if let Some(h) = fleet.holds.get(&key) {
        let source = Source::Hold {
            sentence: h.sentence.clone(),
        };
        let Some(d) = h.manifest else {
            sel.source = source;
            sel.decision = if fleet.quarantine_ignore {
                ignore(IgnoreReason::Quarantined {
                    why: h.sentence.clone(),
                })
            } else {
                Decision::Local
            };
            return sel;
        };
        let image = snap
            .version_of_digest(&d)
            .map(|(i, _)| i.clone())
            .unwrap_or_default();
        Some((PinRef::Digest { image, digest: d }, source))
    } else {
        fleet.rollouts.get(&key).filter(|_| !explicit).map(|a| {
            (
                PinRef::Version {
                    image: a.image.clone(),
                    version: a.version.clone(),
                },
                Source::Rollout {
                    rollout: a.rollout.clone(),
                    step: a.step,
                },
            )
        })
    };
    let chosen = fleet_choice.map(|(r, source)| (PinTarget::Machine(key.clone()), r, source));
    let owned;
    let winner: &super::Pin = match (ranked.first(), chosen) {
        (_, Some((target, reference, source))) => {
            sel.source = source;
            owned = super::Pin { target, reference };
            &owned
        }
        (None, None) => {
            sel.decision = ignore(IgnoreReason::NoPin);
            return sel;
        }
        (Some((rank, pin)), None) => {
            if machine.is_none()
                && *rank == Rank::Default
                && snap.settings.unknown_machines == UnknownMachines::Ignore
            {
                sel.decision = ignore(IgnoreReason::UnknownMachine);
                return sel;
            }
            pin
        }
    };

    let (image, version, channel) = match &winner.reference {
        PinRef::Local => {
            sel.decision = Decision::Local;
            return sel;
        }
        PinRef::None => {
            sel.decision = ignore(IgnoreReason::PinnedNone {
                target: winner.target.to_string(),
            });
            return sel;
        }
        PinRef::Version { image, version } => (image.clone(), version.clone(), None),
        PinRef::Digest { image, digest } => match snap.version_of_digest(digest) {
            Some((i, v)) if i == image => (i.clone(), v.clone(), None),
            _ => {
                sel.decision = ignore(IgnoreReason::DigestNotPublished {
                    target: winner.target.to_string(),
                    image: image.clone(),
                    digest: *digest,
                });
                return sel;
            }
        },
        PinRef::Channel { image, channel } => {
            match snap.channels.get(&(image.clone(), channel.clone())) {
                Some(v) => (image.clone(), v.clone(), Some(channel.clone())),
                None => {
                    sel.decision = ignore(IgnoreReason::NoChannel {
                        target: winner.target.to_string(),
                        image: image.clone(),
                        channel: channel.clone(),
                    });
                    return sel;
                }
            }
        }
    };
    let Some(v) = snap.versions.get(&(image.clone(), version.clone())) else {
        sel.decision = ignore(IgnoreReason::NotPublished {
            target: winner.target.to_string(),
            image,
            version,
        });
        return sel;
    };
    if sel.source == Source::None {
        sel.source = match &channel {
            Some(c) => Source::Channel {
                target: winner.target.key(),
                image: image.clone(),
                channel: c.clone(),
            },
            None => Source::Pin {
                target: winner.target.key(),
            },
        };
    }
    sel.resolved = Some(super::select::Resolved {
        image: image.clone(),
        version: version.clone(),
        channel,
        manifest: v.manifest_digest,
    });
    let manifest = match &v.manifest {
        Ok(m) => m,
        Err(why) => {
            sel.decision = ignore(IgnoreReason::ManifestUnusable {
                image,
                version,
                why: why.clone(),
            });
            return sel;
        }
    };
    let arch = facts.firmware.arch();
    if !manifest.architectures.contains(&arch) {
        sel.decision = ignore(IgnoreReason::WrongArch {
            image,
            version,
            built: manifest.architectures.to_vec(),
            firmware: facts.firmware,
        });
        return sel;
    }
    sel.decision = match plan(snap, facts, machine, manifest, v.manifest_digest, seal) {
        Ok(plan) => Decision::Boot {
            plan: Box::new(plan),
        },
        Err(e) => ignore(IgnoreReason::Render {
            image,
            version,
            error: e.to_string(),
        }),
    };
    sel
}

/// Renders the plan: the manifest's blobs and the full kernel command line.
fn plan(
    snap: &Snapshot,
    facts: &Facts,
    machine: Option<&crate::boot::Machine>,
    m: &Manifest,
    manifest_digest: crate::boot::Digest,
    seal: Option<&BootSeal<'_>>,
) -> Result<BootPlan, crate::images::ImageError> {
    let base = &snap.settings.base_url;
    let urls = Urls::new(base);
    let rootfs_url = m
        .rootfs
        .as_ref()
        .map(|r| urls.blob(r, facts.mac, BlobRole::Rootfs));
    let mut cb = Callback::new(facts.mac, manifest_digest);
    if let Some(seal) = seal {
        cb = cb.with_token(seal.token(facts.mac, manifest_digest));
    }
    let callback = urls.callback(&cb);
    let hostname = machine.and_then(|m| m.hostname.clone().or_else(|| Some(m.name.clone())));
    let lookup = |var: &str| -> Option<String> {
        match var {
            "mac" => Some(facts.mac.to_string()),
            "hostname" => hostname.clone(),
            "image" => Some(m.name.clone()),
            "version" => Some(m.version.clone()),
            "manifest" => Some(manifest_digest.to_string()),
            "base_url" => Some(base.clone()),
            "rootfs_url" => rootfs_url.clone(),
            "rootfs_sha256" => m.rootfs.as_ref().map(|r| r.digest.hex()),
            "callback_url" => Some(callback.clone()),
            _ => None,
        }
    };
    let mut args: Vec<String> = Vec::new();
    let rendered = cmdline::render(&m.cmdline, lookup)?;
    if !rendered.trim().is_empty() {
        args.push(rendered.trim().to_string());
    }
    if let Some(c) = &snap.settings.console {
        args.push(format!("console={c}"));
    }
    args.push(format!("tabula.image={}@{}", m.name, m.version));
    args.push(format!("tabula.manifest={manifest_digest}"));
    if let (Some(url), Some(r)) = (&rootfs_url, &m.rootfs) {
        args.push(format!("tabula.root={url}"));
        args.push(format!("tabula.root_sha256={}", r.digest.hex()));
    }
    args.push(format!("tabula.callback={callback}"));
    if facts.firmware.is_efi() {
        // EFI stub kernels find their initrds by name on the command line.
        for i in &m.initrds {
            args.push(format!("initrd={}", i.name));
        }
    }
    for a in &args {
        if a.chars().any(char::is_control) {
            return Err(crate::images::ImageError::BadCmdline(format!(
                "argument {a:?} contains a control character"
            )));
        }
    }
    Ok(BootPlan {
        image: m.name.clone(),
        version: m.version.clone(),
        manifest: manifest_digest,
        arch: facts.firmware.arch(),
        kernel: m.kernel.clone(),
        initrds: m.initrds.clone(),
        rootfs: m.rootfs.clone(),
        cmdline: args.join(" "),
    })
}
