//! `tabula pin …`: set, rm, list, history, rollback. The printers are shared with the
//! remote path (`--server`, [`super::remote`]).

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::fleet::Then;
use crate::inventory::{PinRef, PinTarget};
use crate::store::{PinChange, PinRow};

#[derive(Debug, Subcommand)]
pub(super) enum PinCmd {
    /// Pin TARGET (a MAC, a machine name, label:k=v[,k2=v2|v3], or default) to REF
    /// (IMAGE@VERSION, IMAGE@sha256:DIGEST, IMAGE:CHANNEL, local, none)
    Set {
        target: String,
        reference: String,
        /// Only the next boot: then the machine goes back (see --then); prints the request's id
        #[arg(long)]
        once: bool,
        /// With --once: how long the request waits for that boot
        #[arg(long, default_value = "2h", requires = "once")]
        ttl: String,
        /// With --once: after that boot, revert (to the pin it had) or local (pin it to local boot)
        #[arg(long, default_value = "revert", requires = "once")]
        then: String,
    },
    /// Show a boot-once request and its result: pending, booting, booted, failed, expired
    OnceStatus {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove TARGET's pin
    Rm { target: String },
    /// List pins
    List,
    /// Show every change of TARGET's pin, oldest first
    History { target: String },
    /// Move TARGET's pin back to the one before it (again: further back), from its history
    Rollback { target: String },
}

/// Prints `pin list`.
pub(super) fn print_list(pins: Vec<PinRow>) {
    let rows: Vec<Vec<String>> = pins
        .into_iter()
        .map(|p| vec![p.target, p.reference, time(p.updated_ms)])
        .collect();
    table(&["TARGET", "REFERENCE", "SINCE"], &rows);
}

/// Prints `pin history` (an error when there is none).
pub(super) fn print_history(t: &PinTarget, changes: Vec<PinChange>) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = changes
        .into_iter()
        .map(|c| {
            vec![
                time(c.at_ms),
                c.kind.to_string(),
                c.reference.unwrap_or_else(|| "(removed)".into()),
            ]
        })
        .collect();
    if rows.is_empty() {
        anyhow::bail!("{t} has never been pinned");
    }
    table(&["AT", "CHANGE", "REFERENCE"], &rows);
    Ok(())
}

/// Prints what `pin rollback` did.
pub(super) fn print_rollback(t: &PinTarget, from: Option<&str>, to: &str) {
    println!(
        "{t} -> {to} (rolled back from {})",
        from.unwrap_or("no pin")
    );
}

pub(super) async fn run(ctx: &Ctx, cmd: &PinCmd) -> anyhow::Result<()> {
    match cmd {
        PinCmd::Set {
            target,
            reference,
            once,
            ttl,
            then,
        } => {
            let t = PinTarget::parse_cli(target)?;
            let r: PinRef = reference.parse()?;
            if *once {
                let ttl = humantime::parse_duration(ttl)
                    .map_err(|e| anyhow::anyhow!("--ttl {ttl:?}: {e}"))?;
                let then = match then.as_str() {
                    "revert" => Then::Revert,
                    "local" => Then::Local,
                    other => anyhow::bail!("--then {other:?}: revert or local"),
                };
                let o = ctx.fleet.create_boot_once(&t, &r, ttl, then).await?;
                println!(
                    "boot-once {} : {} boots {r} once (until {}), then {}",
                    o.id,
                    o.machine,
                    time(o.expires_ms),
                    o.then_do
                );
            } else {
                ctx.fleet.set_pin(&t, &r).await?;
                println!("{t} -> {r}");
            }
        }
        PinCmd::OnceStatus { id, json } => {
            let o = ctx.fleet.boot_once(id).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                println!("{} {} {} {}", o.id, o.machine, o.reference, o.state);
            }
        }
        PinCmd::Rm { target } => {
            let t = PinTarget::parse_cli(target)?;
            ctx.fleet.remove_pin(&t).await?;
            println!("removed pin of {t}");
        }
        PinCmd::List => print_list(ctx.store().pins().await?),
        PinCmd::History { target } => {
            let t = PinTarget::parse_cli(target)?;
            print_history(&t, ctx.store().pin_history(&t.key()).await?)?;
        }
        PinCmd::Rollback { target } => {
            let t = PinTarget::parse_cli(target)?;
            let (from, to) = ctx.fleet.rollback_pin(&t).await?;
            print_rollback(&t, from.as_deref(), &to);
        }
    }
    Ok(())
}
