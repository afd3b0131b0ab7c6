//! `[dhcp.loaders]` and `[dhcp.programs]` validated together: every loader name a plain
//! relative path under the TFTP root, every program `ipxe` or `grub`, and a GRUB
//! firmware kind only where tabula has a GRUB loader for it (x64 and ARM64 UEFI), with
//! that loader configured. Pure: reads no files (whether the files exist is the
//! start-up check of `loader_files`).

use super::file::{LoadersFile, ProgramsFile};
use super::{Loaders, Programs};
use crate::boot::{BootProgram, Firmware};

/// A key and why its value is refused.
pub(super) type Refusal = (String, String);

pub(super) fn loaders(l: LoadersFile, p: ProgramsFile) -> Result<Loaders, Refusal> {
    let program = |key: &str, v: Option<String>| -> Result<BootProgram, Refusal> {
        match v {
            None => Ok(BootProgram::Ipxe),
            Some(v) => v.parse().map_err(|e: crate::boot::ProgramError| {
                (format!("dhcp.programs.{key}"), e.to_string())
            }),
        }
    };
    let programs = Programs {
        bios: program("bios", p.bios)?,
        efi_ia32: program("efi_ia32", p.efi_ia32)?,
        efi_x64: program("efi_x64", p.efi_x64)?,
        efi_arm64: program("efi_arm64", p.efi_arm64)?,
    };
    let d = Loaders::default();
    let loaders = Loaders {
        bios: l.bios.unwrap_or(d.bios),
        efi_ia32: l.efi_ia32.unwrap_or(d.efi_ia32),
        efi_x64: l.efi_x64.unwrap_or(d.efi_x64),
        efi_arm64: l.efi_arm64.unwrap_or(d.efi_arm64),
        shim_x64: l.shim_x64,
        grub_x64: l.grub_x64,
        grub_arm64: l.grub_arm64,
        programs,
    };
    for (key, v) in loaders.named() {
        if v.is_empty() || v.len() > 127 || v.split('/').any(|c| c == "..") || v.starts_with('/') {
            return Err((
                format!("dhcp.loaders.{key}"),
                format!("{v:?} must be a relative path under the TFTP root, at most 127 bytes"),
            ));
        }
    }
    for fw in [Firmware::Bios, Firmware::EfiIa32] {
        if programs.for_firmware(fw) == BootProgram::Grub {
            return Err((
                Programs::key(fw).into(),
                "\"grub\" is offered to x64 and ARM64 UEFI machines only (Debian's GRUB network \
                 loaders); this firmware boots ipxe"
                    .into(),
            ));
        }
    }
    if programs.efi_x64 == BootProgram::Grub && loaders.grub_x64.is_none() {
        return Err((
            "dhcp.programs.efi_x64".into(),
            "\"grub\" needs dhcp.loaders.grub_x64 (Debian: grubnetx64.efi.signed from \
             grub-efi-amd64-signed, linked into the TFTP root), and dhcp.loaders.shim_x64 for \
             Secure Boot"
                .into(),
        ));
    }
    if programs.efi_arm64 == BootProgram::Grub && loaders.grub_arm64.is_none() {
        return Err((
            "dhcp.programs.efi_arm64".into(),
            "\"grub\" needs dhcp.loaders.grub_arm64 (Debian: grubnetaa64.efi from \
             grub-efi-arm64-bin, linked into the TFTP root)"
                .into(),
        ));
    }
    if loaders.shim_x64.is_some() && loaders.grub_x64.is_none() {
        return Err((
            "dhcp.loaders.shim_x64".into(),
            "shim loads grubx64.efi next: set dhcp.loaders.grub_x64 too".into(),
        ));
    }
    Ok(loaders)
}

#[cfg(test)]
mod tests {
    use crate::boot::{BootProgram, Firmware};
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml", None).map_err(|e| e.to_string())
    }

    #[test]
    fn programs_pick_each_firmwares_first_file() {
        let c = parse(
            "[dhcp.loaders]\nshim_x64 = \"shimx64.efi\"\ngrub_x64 = \"grubnetx64.efi\"\n\
             grub_arm64 = \"grubnetaa64.efi\"\n\
             [dhcp.programs]\nefi_x64 = \"grub\"\nefi_arm64 = \"grub\"\n",
        )
        .unwrap();
        let l = &c.dhcp.loaders;
        assert_eq!(l.programs.for_firmware(Firmware::Bios), BootProgram::Ipxe);
        assert_eq!(
            l.programs.for_firmware(Firmware::EfiX64Http),
            BootProgram::Grub
        );
        assert_eq!(l.for_firmware(Firmware::Bios), "undionly.kpxe");
        assert_eq!(l.for_firmware(Firmware::EfiX64), "shimx64.efi");
        assert_eq!(l.for_firmware(Firmware::EfiArm64), "grubnetaa64.efi");
        assert_eq!(l.ipxe_for(Firmware::EfiX64), "snponly.efi");
        let keys: Vec<_> = l.named().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "bios",
                "efi_ia32",
                "efi_x64",
                "efi_arm64",
                "shim_x64",
                "grub_x64",
                "grub_arm64"
            ]
        );
        // Without shim, x64 gets GRUB itself; by default everything is iPXE.
        let c =
            parse("[dhcp.loaders]\ngrub_x64 = \"g.efi\"\n[dhcp.programs]\nefi_x64 = \"grub\"\n")
                .unwrap();
        assert_eq!(c.dhcp.loaders.for_firmware(Firmware::EfiX64), "g.efi");
        let c = parse("").unwrap();
        assert_eq!(c.dhcp.loaders.for_firmware(Firmware::EfiX64), "snponly.efi");
        assert_eq!(c.dhcp.loaders.named().len(), 4);
    }

    #[test]
    fn program_errors_name_the_key_and_the_fix() {
        let cases = [
            (
                "[dhcp.programs]\nefi_x64 = \"syslinux\"\n",
                "dhcp.programs.efi_x64",
                "expected ipxe or grub",
            ),
            (
                "[dhcp.programs]\nbios = \"grub\"\n",
                "dhcp.programs.bios",
                "UEFI machines only",
            ),
            (
                "[dhcp.programs]\nefi_ia32 = \"grub\"\n",
                "dhcp.programs.efi_ia32",
                "UEFI machines only",
            ),
            (
                "[dhcp.programs]\nefi_x64 = \"grub\"\n",
                "dhcp.programs.efi_x64",
                "needs dhcp.loaders.grub_x64",
            ),
            (
                "[dhcp.programs]\nefi_arm64 = \"grub\"\n",
                "dhcp.programs.efi_arm64",
                "grub-efi-arm64-bin",
            ),
            (
                "[dhcp.loaders]\nshim_x64 = \"s.efi\"\n",
                "dhcp.loaders.shim_x64",
                "grub_x64 too",
            ),
            (
                "[dhcp.loaders]\ngrub_x64 = \"../g.efi\"\n",
                "dhcp.loaders.grub_x64",
                "relative path",
            ),
            (
                "[dhcp.programs]\nefi_typo = \"grub\"\n",
                "efi_typo",
                "unknown field",
            ),
        ];
        for (text, key, why) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(why), "{text}: {e}");
        }
    }
}
