//! `tabula lab`: QEMU machines PXE-boot through tabula in a private network namespace
//! (see `tabula::lab`); prints their consoles and boot events as they come, then one
//! summary line per machine. Exit 0 only if every machine booted its pinned image.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::lab::{self, FirmwareChoice, Hardware, Nic, UefiRom};

#[derive(Debug, Args)]
pub(super) struct LabArgs {
    /// Firmware of the VMs: bios (SeaBIOS + iPXE ROM), uefi (OVMF PXE), both,
    /// secureboot (OVMF Secure Boot with Microsoft's keys: shim → GRUB → signed kernel),
    /// arm64 (QEMU virt + AAVMF PXE → grubnetaa64 → the demo-arm64 image), or uefi-http
    /// (OVMF with PXE off: UEFI HTTP boot of the loader, then iPXE)
    #[arg(long, default_value = "bios", value_parser = parse_firmware)]
    firmware: FirmwareChoice,
    /// The image every VM is pinned to (NAME@VERSION, NAME:CHANNEL); demo@1 and demo@2
    /// are built and published if missing
    #[arg(long, default_value = "demo@1", value_name = "NAME@VERSION")]
    image: String,
    /// VMs per firmware kind (1-99)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=99))]
    vms: u8,
    /// Give up on machines that have not booted this many seconds after they started
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
    /// Wait for every machine even after one failed (default: stop at the first failure)
    #[arg(long)]
    keep_going: bool,
    /// Where the image recipes are [default: the source tree's images/, else ./images]
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// The VMs' network card: virtio, or e1000 (a UEFI VM then needs --uefi-rom ipxe)
    #[arg(long, default_value = "virtio", value_parser = parse_nic)]
    nic: Nic,
    /// What starts a UEFI VM's network boot: firmware (OVMF's PXE, no NIC ROM) or ipxe
    /// (QEMU's iPXE EFI ROM)
    #[arg(long, default_value = "firmware", value_parser = parse_rom)]
    uefi_rom: UefiRom,
    /// The loader OVMF's PXE gets over TFTP (dhcp.loaders.efi_x64), e.g. ipxe.efi
    /// [default: config/lab.toml's snponly.efi]
    #[arg(long, value_name = "FILE")]
    uefi_loader: Option<String>,
    /// Show issue 14's fleet loop on three VMs: a rollout of a broken image stops at the
    /// canary, which comes back on its known good by itself; a good one reaches all three,
    /// each reboot asked by webhook and done by QMP; then boot-once (--timeout bounds each
    /// wait; --image is not used)
    #[arg(long)]
    rollout: bool,
    /// Capture the lab bridge with tcpdump into FILE (read it with `tcpdump -r FILE`)
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
}

fn parse_nic(s: &str) -> Result<Nic, String> {
    s.parse()
}

fn parse_rom(s: &str) -> Result<UefiRom, String> {
    s.parse()
}

fn parse_firmware(s: &str) -> Result<FirmwareChoice, String> {
    s.parse()
}

/// `data_dir`: the lab's own data dir (`--data-dir`, else `<server.data_dir>/lab`).
pub(super) async fn run(a: &LabArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    let opts = lab::Options {
        firmware: a.firmware,
        image: a.image.parse()?,
        vms: a.vms,
        timeout: Duration::from_secs(a.timeout),
        keep_going: a.keep_going,
        data_dir,
        images_dir: a.images.clone(),
        exe: std::env::current_exe()?,
        hardware: Hardware {
            nic: a.nic,
            uefi_rom: a.uefi_rom,
        },
        uefi_loader: a.uefi_loader.clone(),
        capture: a.capture.clone(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    crate::daemon::cancel_on_signals(stop.clone());
    if a.rollout {
        return Ok(lab::rollout::run(&opts, &stop).await?);
    }
    let report = lab::run(&opts, &stop).await?;
    for m in &report.machines {
        println!("{}", m.summary());
    }
    let bad = report
        .machines
        .iter()
        .filter(|m| m.verdict != lab::summary::Verdict::Booted)
        .count();
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} machine(s) did not boot the pinned image",
            report.machines.len()
        );
    }
    Ok(())
}
