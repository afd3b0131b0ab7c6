//! `tabula pin …`: set, rm, list, history.

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::inventory::{PinRef, PinTarget};

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
        PinCmd::List => {
            let rows: Vec<Vec<String>> = ctx
                .store()
                .pins()
                .await?
                .into_iter()
                .map(|p| vec![p.target, p.reference, time(p.updated_ms)])
                .collect();
            table(&["TARGET", "REFERENCE", "SINCE"], &rows);
        }
        PinCmd::History { target } => {
            let t = PinTarget::parse_cli(target)?;
            let rows: Vec<Vec<String>> = ctx
                .store()
                .pin_history(&t.key())
                .await?
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
        }
        PinCmd::Rollback { target } => {
            let t = PinTarget::parse_cli(target)?;
            let (from, to) = ctx.fleet.rollback_pin(&t).await?;
            println!(
                "{t} -> {to} (rolled back from {})",
                from.as_deref().unwrap_or("no pin")
            );
        }
    }
    Ok(())
}
