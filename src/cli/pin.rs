//! `tabula pin …`: set, rm, list, history, rollback. The printers are shared with the
//! remote path (`--server`, [`super::remote`]).

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::inventory::{PinRef, PinTarget};
use crate::store::{PinChange, PinRow};

#[derive(Debug, Subcommand)]
pub(super) enum PinCmd {
    /// Pin TARGET (a MAC, a machine name, label:k=v[,k2=v2|v3], or default) to REF
    /// (IMAGE@VERSION, IMAGE@sha256:DIGEST, IMAGE:CHANNEL, local, none)
    Set { target: String, reference: String },
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
        PinCmd::Set { target, reference } => {
            let t = PinTarget::parse_cli(target)?;
            let r: PinRef = reference.parse()?;
            ctx.fleet.set_pin(&t, &r).await?;
            println!("{t} -> {r}");
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
