//! Renders a machine's iPXE script from its [`Selection`]. Pure text, no I/O.
//!
//! Every value placed into the script is checked: iPXE treats a newline as the end of a
//! command and expands `${…}`, so a value containing a control character or `$` would let
//! a hostname or label inject commands. Such values are rejected (the script then only
//! reports the problem), except in `echo` lines, where they are replaced by `?`.

use std::fmt::Write as _;

use crate::boot::{BlobRole, BootPlan, Urls};
use crate::inventory::{Decision, Selection, Source};

/// Why a script could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "refusing to put {what} {value:?} into an iPXE script: it contains a control character, '$' or a space"
)]
pub struct ScriptError {
    pub what: &'static str,
    pub value: String,
}

fn safe<'a>(what: &'static str, v: &'a str, allow_space: bool) -> Result<&'a str, ScriptError> {
    if v.chars()
        .any(|c| c.is_control() || c == '$' || (!allow_space && c.is_whitespace()))
    {
        return Err(ScriptError {
            what,
            value: v.to_string(),
        });
    }
    Ok(v)
}

/// Text for an `echo` line: anything iPXE would interpret becomes `?`.
pub fn echo_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == '$' { '?' } else { c })
        .collect()
}

/// The script for a decision.
pub fn render(sel: &Selection, base: &str) -> Result<String, ScriptError> {
    render_with_peers(sel, base, &[])
}

/// The script for a decision on a server whose live peers serve at `peers` (their
/// data-plane base URLs): each download names this server, then each peer (`kernel A ||
/// kernel B || goto failed`), the kernel command line lists them all
/// (`tabula.servers=`, this server first, for the initramfs), and the retry after a
/// failure asks each server in turn for a new script.
pub fn render_with_peers(
    sel: &Selection,
    base: &str,
    peers: &[String],
) -> Result<String, ScriptError> {
    let mut s = String::from("#!ipxe\n");
    let winner = winner(sel);
    match &sel.decision {
        Decision::Boot { plan } => boot(&mut s, sel, plan, base, peers, &winner)?,
        Decision::Local => {
            let _ = writeln!(
                s,
                "echo tabula: {} boots from local disk ({})",
                sel.mac,
                echo_text(&winner)
            );
            // A failure status on purpose: UEFI's boot manager moves on to the next boot
            // option (the disk) only when a boot program returns an error; after a success
            // OVMF stops in its setup menu. BIOS moves on either way.
            s.push_str("exit 1\n");
        }
        Decision::Ignore { reason } => {
            let _ = writeln!(
                s,
                "echo tabula: not booting {}: {}",
                sel.mac,
                echo_text(&reason.to_string())
            );
            s.push_str("exit 1\n");
        }
    }
    Ok(s)
}

/// What decided the boot, for the comment and echo lines: the fleet's decision (a hold,
/// a rollout, a boot-once) names itself, not the pin it overrides.
pub(super) fn winner(sel: &Selection) -> String {
    match &sel.source {
        Source::Hold { .. } | Source::Rollout { .. } | Source::BootOnce { .. } => {
            sel.source.to_string()
        }
        _ => sel
            .candidates
            .first()
            .map(|c| format!("{} -> {}", c.target, c.reference))
            .unwrap_or_else(|| "no pin".into()),
    }
}

fn boot(
    s: &mut String,
    sel: &Selection,
    plan: &BootPlan,
    base: &str,
    peers: &[String],
    winner: &str,
) -> Result<(), ScriptError> {
    let base = safe("base URL", base, false)?;
    let mut servers = vec![Urls::new(base)];
    for p in peers {
        let p = safe("peer URL", p, false)?;
        if p != base && !p.contains(',') {
            servers.push(Urls::new(p));
        }
    }
    let mut cmdline = safe("kernel command line", &plan.cmdline, true)?.to_string();
    if servers.len() > 1 {
        let list: Vec<&str> = std::iter::once(base)
            .chain(peers.iter().map(String::as_str))
            .filter(|p| !p.contains(','))
            .collect();
        let _ = write!(cmdline, " tabula.servers={}", list.join(","));
    }
    // `kernel A … || kernel B … || goto failed`: the next server when one fails.
    let each = |verb: &str, f: &dyn Fn(&Urls) -> String| -> String {
        let mut line = String::new();
        for u in &servers {
            let _ = write!(line, "{verb} {} || ", f(u));
        }
        line.push_str("goto failed");
        line
    };
    for b in std::iter::once(&plan.kernel).chain(&plan.initrds) {
        safe("file name", &b.name, false)?;
    }
    let _ = writeln!(
        s,
        "# tabula: {}@{} manifest {} for {} ({})",
        plan.image,
        plan.version,
        plan.manifest,
        sel.mac,
        echo_text(winner)
    );
    let _ = writeln!(
        s,
        "echo tabula: {} boots {}@{}",
        sel.mac, plan.image, plan.version
    );
    let kernel = each("kernel", &|u| {
        format!(
            "{} {cmdline}",
            u.blob(&plan.kernel, sel.mac, BlobRole::Kernel)
        )
    });
    let _ = writeln!(s, "{kernel}");
    for i in &plan.initrds {
        let initrd = each("initrd", &|u| {
            u.blob(i, sel.mac, BlobRole::Initrd).to_string()
        });
        let _ = writeln!(s, "{initrd}");
    }
    s.push_str("boot || goto failed\n");
    s.push_str(":failed\n");
    let _ = writeln!(
        s,
        "echo tabula: booting {}@{} failed; asking again in 10 s",
        plan.image, plan.version
    );
    s.push_str("sleep 10\n");
    let chains: Vec<String> = servers
        .iter()
        .map(|u| format!("chain --replace {}", u.script(sel.mac, sel.firmware)))
        .collect();
    let _ = writeln!(s, "{}", chains.join(" || "));
    Ok(())
}

#[cfg(test)]
#[path = "script/tests.rs"]
mod tests;
