//! `tabula explain MAC`: what a machine would boot right now and why.

use clap::Args;

use super::Ctx;
use crate::boot::{Firmware, Mac};
use crate::inventory::{Decision, Facts, Selection, Source, select};

#[derive(Debug, Args)]
pub(super) struct ExplainArgs {
    /// The machine's MAC address
    mac: String,
    /// SMBIOS UUID, as DHCP option 97 would carry it
    #[arg(long)]
    uuid: Option<String>,
    /// Firmware: bios, efi-x64, efi-ia32, efi-arm64 (arm64), efi-x64-http, efi-arm64-http
    #[arg(long, default_value = "bios")]
    arch: String,
    /// Print the full explanation as JSON
    #[arg(long)]
    json: bool,
}

/// One line: what the selection boots.
pub(super) fn summary(sel: &Selection) -> String {
    if matches!(
        sel.source,
        Source::Hold { .. } | Source::Rollout { .. } | Source::BootOnce { .. }
    ) {
        return match &sel.decision {
            Decision::Boot { plan } => format!(
                "{}@{} ({}): {}",
                plan.image, plan.version, plan.manifest, sel.source
            ),
            Decision::Local => format!("local disk: {}", sel.source),
            Decision::Ignore { reason } => format!("nothing: {reason}"),
        };
    }
    match &sel.decision {
        Decision::Boot { plan } => format!(
            "{}@{} ({}) via {}",
            plan.image,
            plan.version,
            plan.manifest,
            sel.candidates
                .first()
                .map(|c| c.target.as_str())
                .unwrap_or("?")
        ),
        Decision::Local => format!(
            "local disk via {}",
            sel.candidates
                .first()
                .map(|c| c.target.as_str())
                .unwrap_or("?")
        ),
        Decision::Ignore { reason } => format!("nothing: {reason}"),
    }
}

pub(super) async fn run(ctx: &Ctx, a: &ExplainArgs) -> anyhow::Result<()> {
    let mac: Mac = a.mac.parse()?;
    let firmware: Firmware = a.arch.parse()?;
    let snap = ctx.inventory().snapshot().await?;
    let sel = select(
        &snap,
        &Facts {
            mac,
            uuid: a.uuid.as_ref().map(|u| u.to_ascii_lowercase()),
            firmware,
        },
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&sel)?);
        return Ok(());
    }
    println!("mac        {}", sel.mac);
    println!("firmware   {} ({})", sel.firmware, sel.firmware.arch());
    println!(
        "machine    {}",
        sel.machine.as_deref().unwrap_or("(not in the inventory)")
    );
    println!("rules:");
    if sel.candidates.is_empty() {
        println!("  (no pin applies)");
    }
    for c in &sel.candidates {
        println!("  {:<28} -> {:<24} {}", c.target, c.reference, c.outcome);
    }
    if sel.source != Source::None {
        println!("source     {}", sel.source);
    }
    if let Some(r) = &sel.resolved {
        match &r.channel {
            Some(ch) => println!(
                "image      {}@{} (channel {}:{ch})",
                r.image, r.version, r.image
            ),
            None => println!("image      {}@{}", r.image, r.version),
        }
        println!("manifest   {}", r.manifest);
    }
    match &sel.decision {
        Decision::Boot { plan } => {
            println!("decision   boot");
            println!("kernel     {} {}", plan.kernel.digest, plan.kernel.name);
            for i in &plan.initrds {
                println!("initrd     {} {}", i.digest, i.name);
            }
            if let Some(r) = &plan.rootfs {
                println!("rootfs     {} {}", r.digest, r.name);
            }
            println!("cmdline    {}", plan.cmdline);
        }
        Decision::Local => println!("decision   local (boot from local disk)"),
        Decision::Ignore { reason } => println!("decision   ignore: {reason}"),
    }
    Ok(())
}
