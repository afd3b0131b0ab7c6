//! `tabula explain MAC`: what a machine would boot right now and why. [`print`] shows
//! an [`Explanation`], the JSON form of the selection, which the local path makes from
//! its own selection and the remote path (`--server`) reads from the API.

use clap::Args;

use super::Ctx;
use crate::boot::{Firmware, Mac};
use crate::inventory::explanation::DecisionText;
use crate::inventory::explanation::ExplainAnswer;
use crate::inventory::{Explanation, Facts, Source, select};

#[derive(Debug, Args)]
pub(super) struct ExplainArgs {
    /// The machine's MAC address
    pub(super) mac: String,
    /// SMBIOS UUID, as DHCP option 97 would carry it
    #[arg(long)]
    pub(super) uuid: Option<String>,
    /// Firmware: bios, efi-x64, efi-ia32, efi-arm64 (arm64), efi-x64-http, efi-arm64-http
    #[arg(long, default_value = "bios")]
    pub(super) arch: String,
    /// Print the full explanation as JSON
    #[arg(long)]
    pub(super) json: bool,
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
    let program = ctx.loaders.program_line(firmware, mac);
    if a.json {
        let answer = ExplainAnswer {
            selection: sel,
            program,
        };
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let mut ex = Explanation::of(&sel)?;
    ex.program = Some(program);
    print(&ex);
    Ok(())
}

/// Prints an explanation as `tabula explain` shows it.
pub(super) fn print(sel: &Explanation) {
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
        DecisionText::Boot { plan } => {
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
        DecisionText::Local => println!("decision   local (boot from local disk)"),
        DecisionText::Ignore { reason } => println!("decision   ignore: {reason}"),
    }
    if let Some(p) = &sel.program {
        println!("program    {p}");
    }
}
