//! Renders a machine's GRUB config (`grub.cfg`) from its [`Selection`], the same boot
//! plan the iPXE script boots (`script.rs`), and the one bootstrap config every GRUB
//! reads first over TFTP. Pure text, no I/O.
//!
//! Why two files: Debian's signed `grubnet*.efi` configures its network from the PXE
//! DHCP answer and reads `$prefix/grub.cfg` over TFTP from the server that answered
//! (prefix `/grub`, no machine in the path; captured in the lab). That bootstrap, the same
//! for every machine, asks for `boot/${net_default_mac}/grub.cfg?…`, the machine's own
//! config, answered over TFTP (and HTTP, `/boot/<mac>/grub.cfg`) by the script route like
//! `boot.ipxe`. Kernel and initrd are read over TFTP too, as `(tftp)/blobs/sha256/…`: the
//! signed image has no HTTP module, and under Secure Boot GRUB loads no module at all.
//!
//! Every value placed into a config is single-quoted (GRUB expands nothing inside single
//! quotes). Values containing a `'` or a control character are refused (the config then
//! only reports the problem), except in `echo` lines, where they become `?`.
//! `initrd=` arguments are left out of the kernel command line: they are iPXE's way of
//! naming the initrd to the EFI stub, and GRUB hands the initrd over itself.

use std::fmt::Write as _;

use crate::boot::{BlobRole, BootPlan, Firmware, Urls};
use crate::inventory::{Decision, Selection};

/// Why a GRUB config could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "refusing to put {what} {value:?} into a GRUB config: it contains a control character or a single quote"
)]
pub struct GrubError {
    pub what: &'static str,
    pub value: String,
}

/// GRUB's TFTP device: the server that answered its DHCP.
const DEVICE: &str = "(tftp)";

fn quoted(what: &'static str, v: &str) -> Result<String, GrubError> {
    if v.chars().any(|c| c.is_control() || c == '\'') {
        return Err(GrubError {
            what,
            value: v.to_string(),
        });
    }
    Ok(format!("'{v}'"))
}

/// Text for an `echo '…'` line: anything that would end the quote becomes `?`.
pub fn echo_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == '\'' { '?' } else { c })
        .collect()
}

/// The bootstrap every GRUB reads over TFTP (`grub/grub.cfg`): the machine's own config,
/// named by the MAC and firmware GRUB knows.
pub fn bootstrap() -> String {
    let mut s = String::from(
        "# tabula: the bootstrap every GRUB reads over TFTP; then each machine's own config\n",
    );
    s.push_str("echo \"tabula: GRUB on ${net_default_mac} asks for its config\"\n");
    s.push_str(
        "configfile '(tftp)/boot/'\"${net_default_mac}\"'/grub.cfg?platform='\"${grub_platform}\"'&buildarch='\"${grub_cpu}\"\n",
    );
    s.push_str("echo 'tabula: no config from the server; back to the firmware in 10 s'\n");
    s.push_str("sleep 10\nexit 1\n");
    s
}

/// The `grub.cfg` for a decision.
pub fn render(sel: &Selection) -> Result<String, GrubError> {
    let winner = super::script::winner(sel);
    let mut s = String::new();
    match &sel.decision {
        Decision::Boot { plan } => boot(&mut s, sel, plan, &winner)?,
        Decision::Local => {
            let _ = writeln!(
                s,
                "echo 'tabula: {} boots from local disk ({})'",
                sel.mac,
                echo_text(&winner)
            );
            local(&mut s, sel.firmware);
        }
        Decision::Ignore { reason } => {
            let _ = writeln!(
                s,
                "echo 'tabula: not booting {}: {}'",
                sel.mac,
                echo_text(&reason.to_string())
            );
            s.push_str("exit 1\n");
        }
    }
    Ok(s)
}

/// Where a local disk's EFI system partition keeps its boot program, per architecture,
/// first found first booted: the removable-media path every firmware knows, then the boot
/// managers of the usual installs (Debian installs the removable path only when asked).
pub fn local_programs(firmware: Firmware) -> &'static [&'static str] {
    match firmware {
        Firmware::EfiArm64 | Firmware::EfiArm64Http => &[
            "/EFI/BOOT/BOOTAA64.EFI",
            "/EFI/debian/shimaa64.efi",
            "/EFI/ubuntu/shimaa64.efi",
            "/EFI/redhat/shimaa64.efi",
        ],
        _ => &[
            "/EFI/BOOT/BOOTX64.EFI",
            "/EFI/debian/shimx64.efi",
            "/EFI/ubuntu/shimx64.efi",
            "/EFI/redhat/shimx64.efi",
            "/EFI/Microsoft/Boot/bootmgfw.efi",
        ],
    }
}

/// A `local` machine's GRUB boots its disk itself: the first partition (of any disk) with
/// one of [`local_programs`], chainloaded (under Secure Boot, shim's verifier checks it).
/// Exiting instead would send the firmware through its other network boot options first
/// (OVMF: IPv6 PXE, HTTP boot; minutes, README "Local boot on UEFI"). With no such
/// partition, or when the program returns: `exit 1`, the firmware's next boot option.
fn local(s: &mut String, firmware: Firmware) {
    let _ = writeln!(
        s,
        "for tabula_program in {}; do",
        local_programs(firmware).join(" ")
    );
    s.push_str("  if search --no-floppy --file --set=tabula_disk \"$tabula_program\"; then\n");
    s.push_str("    echo \"tabula: chainloading ($tabula_disk)$tabula_program\"\n");
    s.push_str("    chainloader \"($tabula_disk)$tabula_program\"\n");
    s.push_str("    boot\n");
    s.push_str("  fi\n");
    s.push_str("done\n");
    s.push_str("echo 'tabula: no local disk to boot; back to the firmware'\n");
    // A failure status, as in the iPXE script: the UEFI boot manager then moves on to
    // the next boot option.
    s.push_str("exit 1\n");
}

fn boot(s: &mut String, sel: &Selection, plan: &BootPlan, winner: &str) -> Result<(), GrubError> {
    // Paths on the TFTP server, in the form the HTTP routes take.
    let urls = Urls::new("");
    let path = |p: String| format!("{DEVICE}{p}");
    // The whole line first: a newline between arguments is a control character too.
    quoted("kernel command line", &plan.cmdline)?;
    let mut args = Vec::new();
    for a in plan.cmdline.split_whitespace() {
        if !a.starts_with("initrd=") {
            args.push(quoted("kernel command line", a)?);
        }
    }
    let kernel = quoted(
        "kernel path",
        &path(urls.blob(&plan.kernel, sel.mac, BlobRole::Kernel)),
    )?;
    let mut initrds = Vec::new();
    for i in &plan.initrds {
        initrds.push(quoted(
            "initrd path",
            &path(urls.blob(i, sel.mac, BlobRole::Initrd)),
        )?);
    }
    let again = quoted("config path", &path(urls.grub_cfg(sel.mac, sel.firmware)))?;
    let _ = writeln!(
        s,
        "# tabula: {}@{} manifest {} for {} ({})",
        echo_text(&plan.image),
        echo_text(&plan.version),
        plan.manifest,
        sel.mac,
        echo_text(winner)
    );
    let _ = writeln!(
        s,
        "echo 'tabula: {} boots {}@{}'",
        sel.mac,
        echo_text(&plan.image),
        echo_text(&plan.version)
    );
    let mut linux = format!("linux {kernel}");
    for a in &args {
        linux.push(' ');
        linux.push_str(a);
    }
    let _ = writeln!(s, "{linux}");
    if !initrds.is_empty() {
        let _ = writeln!(s, "initrd {}", initrds.join(" "));
    }
    s.push_str("boot\n");
    // Reached only when a command above failed (GRUB goes on after a failed command).
    let _ = writeln!(
        s,
        "echo 'tabula: booting {}@{} failed; asking again in 10 s'",
        echo_text(&plan.image),
        echo_text(&plan.version)
    );
    s.push_str("sleep 10\n");
    let _ = writeln!(s, "configfile {again}");
    Ok(())
}

#[cfg(test)]
#[path = "grub/tests.rs"]
mod tests;
