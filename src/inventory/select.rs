//! The one decision: facts about a client in, what it boots out, with the reasons.
//!
//! Precedence: a pin on the client's MAC, then on its machine, then the most specific
//! matching label selector (more keys, then fewer accepted values, then the lexically
//! first selector, a tie that is reported), then the default pin. Pure: reads only the
//! [`Snapshot`] it is given.

use super::pin::{PinRef, PinTarget};
use super::snapshot::Snapshot;
use crate::boot::{BootPlan, Firmware, Mac};
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
    Ignore { reason: String },
}

/// A pin that applied to the client, and how it fared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    /// Canonical target (`mac:…`, `machine:…`, `label:…`, `default`).
    pub target: String,
    pub reference: String,
    /// `won`, or why it lost.
    pub outcome: String,
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
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Mac,
    Machine,
    Selector(std::cmp::Reverse<(usize, std::cmp::Reverse<usize>)>, String),
    Default,
}

/// Decides what the client described by `facts` boots.
pub fn select(snap: &Snapshot, facts: &Facts) -> Selection {
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
            "won".to_string()
        } else {
            let (wrank, wpin) = &ranked[0];
            match (wrank, rank) {
                (Rank::Selector(a, _), Rank::Selector(b, _)) if a == b => format!(
                    "tie with {} (same number of keys and values); lost on lexical order",
                    wpin.target
                ),
                _ => format!("less specific than {}", wpin.target),
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
    };
    let ignore = |reason: String| Decision::Ignore { reason };

    let winner = match ranked.first() {
        None => {
            sel.decision = ignore("no pin applies and there is no default pin".into());
            return sel;
        }
        Some((rank, pin)) => {
            if machine.is_none()
                && *rank == Rank::Default
                && snap.settings.unknown_machines == UnknownMachines::Ignore
            {
                sel.decision =
                    ignore("not in the inventory and boot.unknown_machines = \"ignore\"".into());
                return sel;
            }
            *pin
        }
    };

    let (image, version, channel) = match &winner.reference {
        PinRef::Local => {
            sel.decision = Decision::Local;
            return sel;
        }
        PinRef::None => {
            sel.decision = ignore(format!("pinned to none by {}", winner.target));
            return sel;
        }
        PinRef::Version { image, version } => (image.clone(), version.clone(), None),
        PinRef::Digest { image, digest } => match snap.version_of_digest(digest) {
            Some((i, v)) if i == image => (i.clone(), v.clone(), None),
            _ => {
                sel.decision = ignore(format!(
                    "{} names {image}@{digest}, which is not a published version of {image}",
                    winner.target
                ));
                return sel;
            }
        },
        PinRef::Channel { image, channel } => {
            match snap.channels.get(&(image.clone(), channel.clone())) {
                Some(v) => (image.clone(), v.clone(), Some(channel.clone())),
                None => {
                    sel.decision = ignore(format!(
                        "{} names channel {image}:{channel}, which does not exist",
                        winner.target
                    ));
                    return sel;
                }
            }
        }
    };
    let Some(v) = snap.versions.get(&(image.clone(), version.clone())) else {
        sel.decision = ignore(format!(
            "{} resolves to {image}@{version}, which is not published",
            winner.target
        ));
        return sel;
    };
    sel.resolved = Some(super::select::Resolved {
        image: image.clone(),
        version: version.clone(),
        channel,
        manifest: v.manifest_digest,
    });
    let manifest = match &v.manifest {
        Ok(m) => m,
        Err(why) => {
            sel.decision = ignore(format!("manifest of {image}@{version} is unusable: {why}"));
            return sel;
        }
    };
    let arch = facts.firmware.arch();
    if !manifest.architectures.contains(&arch) {
        let built: Vec<&str> = manifest.architectures.iter().map(|a| a.as_str()).collect();
        sel.decision = ignore(format!(
            "{image}@{version} is built for {}, but firmware {} runs {arch}",
            built.join(", "),
            facts.firmware
        ));
        return sel;
    }
    sel.decision = match plan(snap, facts, machine, manifest, v.manifest_digest) {
        Ok(plan) => Decision::Boot {
            plan: Box::new(plan),
        },
        Err(e) => ignore(format!(
            "cannot render {image}@{version} for this machine: {e}"
        )),
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
) -> Result<BootPlan, crate::images::ImageError> {
    let base = &snap.settings.base_url;
    let rootfs_url = m.rootfs.as_ref().map(|r| {
        format!(
            "{base}/blobs/sha256/{}/{}?mac={}&as=rootfs",
            r.digest.hex(),
            r.name,
            facts.mac.hyphenated()
        )
    });
    let callback = format!(
        "{base}/boot/{}/{}",
        facts.mac.hyphenated(),
        manifest_digest.hex()
    );
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
