//! Lab VMs: the QEMU command line per firmware ([`args`], pure; the lines of
//! shared/netboot-lab.md §3, under TCG because these machines have no usable KVM), and
//! a running VM ([`Vm`]) whose serial console is streamed line by line, prefixed with
//! the VM's name, to stdout and to `<work>/<name>.log`. A [`Vm`] is killed (by its PID)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::grub::{OVMF_SB_CODE, OVMF_SB_VARS};
use super::prereq::{OVMF_CODE, OVMF_VARS};
use super::{LabError, UefiRom, VmFirmware, VmSpec};

/// The fw_cfg file that makes SeaBIOS copy its text console to COM1 (0x3f8).
const SERCON: &str = "sercon-port.bin";

/// How the lab controls a VM beyond booting it once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// A QMP socket at this path (`-qmp unix:…,server=on,wait=off`), for resets.
    pub qmp: Option<PathBuf>,
    /// A reboot (the guest's, or a failed boot's) restarts the VM instead of ending QEMU
    /// (no `-no-reboot`): a machine that reboots stays in the lab.
    pub reboots: bool,
}

/// The QMP socket of `vm` under `work`.
pub fn qmp_path(vm: &VmSpec, work: &Path) -> PathBuf {
    work.join(format!("{}.qmp", vm.name))
}

/// The QEMU program of a firmware kind.
pub fn program(firmware: VmFirmware) -> &'static str {
    match firmware {
        VmFirmware::Arm64 => super::arm64::QEMU,
        _ => "qemu-system-x86_64",
    }
}

/// QEMU's arguments for `vm`, with per-VM files under `work`.
pub fn args(vm: &VmSpec, work: &Path) -> Vec<String> {
    args_with(vm, work, &Control::default())
}

/// [`args`] with the lab's `control` of the VM.
pub fn args_with(vm: &VmSpec, work: &Path, control: &Control) -> Vec<String> {
    let mut a: Vec<String> = [
        "-name",
        &format!("tabula-lab-{}", vm.name),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-m",
        "512",
        "-smp",
        "1",
        "-accel",
        "tcg",
        "-uuid",
        &vm.uuid,
        "-chardev",
        "stdio,id=ser0,signal=off",
        "-serial",
        "chardev:ser0",
        "-netdev",
        &format!("tap,id=n0,ifname={},script=no,downscript=no", vm.tap),
        "-boot",
        "n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if control.reboots {
        a.retain(|x| x != "-no-reboot");
    }
    if let Some(q) = &control.qmp {
        a.push("-qmp".into());
        a.push(format!("unix:{},server=on,wait=off", q.display()));
    }
    match vm.firmware {
        VmFirmware::Arm64 => a.extend(super::arm64::machine_args(vm, work)),
        VmFirmware::Bios => {
            a.extend(["-machine".into(), "pc".into(), "-device".into()]);
            a.push(format!(
                "{},netdev=n0,mac={},bootindex=1",
                vm.hardware.nic.device(),
                vm.mac
            ));
            a.push("-fw_cfg".into());
            a.push(format!(
                "name=etc/sercon-port,file={}",
                work.join(SERCON).display()
            ));
        }
        VmFirmware::SecureBoot => {
            // Secure Boot OVMF keeps its variables behind SMM: q35 with SMM on and the
            // flash marked secure. OVMF's own PXE (`romfile=`) loads shim.
            a.extend([
                "-machine".into(),
                "q35,smm=on".into(),
                "-global".into(),
                "driver=cfi.pflash01,property=secure,value=on".into(),
                "-device".into(),
            ]);
            a.push(format!(
                "{},netdev=n0,mac={},bootindex=1,romfile=",
                vm.hardware.nic.device(),
                vm.mac
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_SB_CODE}"
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars_path(vm, work).display()
            ));
        }
        VmFirmware::Uefi | VmFirmware::UefiHttp => {
            // `romfile=` removes the NIC's iPXE ROM: OVMF's own PXE (or HTTP boot) does
            // the first stage. With the ROM (QEMU's default `efi-<nic>.rom`), iPXE does it.
            let rom = match vm.hardware.uefi_rom {
                UefiRom::Ipxe if vm.firmware == VmFirmware::Uefi => "",
                _ => ",romfile=",
            };
            if vm.firmware == VmFirmware::UefiHttp {
                a.extend(super::http_boot::args());
            }
            a.extend(["-machine".into(), "q35".into(), "-device".into()]);
            a.push(format!(
                "{},netdev=n0,mac={},bootindex=1{rom}",
                vm.hardware.nic.device(),
                vm.mac
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars_path(vm, work).display()
            ));
        }
    }
    a
}

/// A UEFI VM's own copy of its firmware's variable store.
pub(super) fn vars_path(vm: &VmSpec, work: &Path) -> PathBuf {
    work.join(format!("{}-vars.fd", vm.name))
}

/// Writes the files [`args`] refers to: SeaBIOS's serial-console switch, a fresh copy
/// of OVMF's variable store.
pub fn prepare(vm: &VmSpec, work: &Path) -> Result<(), LabError> {
    match vm.firmware {
        VmFirmware::Bios => {
            let p = work.join(SERCON);
            std::fs::write(&p, [0xf8u8, 0x03]).map_err(LabError::io(p))
        }
        VmFirmware::Uefi | VmFirmware::UefiHttp | VmFirmware::SecureBoot | VmFirmware::Arm64 => {
            let template = match vm.firmware {
                VmFirmware::SecureBoot => OVMF_SB_VARS,
                VmFirmware::Arm64 => super::arm64::AAVMF_VARS,
                _ => OVMF_VARS,
            };
            let p = vars_path(vm, work);
            std::fs::copy(template, &p)
                .map(drop)
                .map_err(LabError::io(p))
        }
    }
}

/// A running VM.
#[derive(Debug)]
pub struct Vm {
    child: Child,
}

impl Vm {
    /// Starts `vm` inside namespace `ns` (`ip netns exec` execs, so the child is QEMU)
    /// and streams its console.
    pub fn start(vm: &VmSpec, ns: &str, work: &Path) -> Result<Vm, LabError> {
        Vm::start_with(vm, ns, work, &Control::default())
    }

    /// [`Vm::start`] with the lab's `control` of the VM.
    pub fn start_with(
        vm: &VmSpec,
        ns: &str,
        work: &Path,
        control: &Control,
    ) -> Result<Vm, LabError> {
        prepare(vm, work)?;
        if let Some(q) = &control.qmp {
            let _ = std::fs::remove_file(q);
        }
        let qemu = program(vm.firmware);
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, qemu])
            .args(args_with(vm, work, control))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LabError::Command {
                command: qemu.into(),
                detail: e.to_string(),
            })?;
        let log = work.join(format!("{}.log", vm.name));
        let file = std::fs::File::create(&log).map_err(LabError::io(&log))?;
        let file = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(file)));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(stream(vm.name.clone(), out, file.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(stream(format!("{} qemu", vm.name), err, file));
        }
        Ok(Vm { child })
    }

    /// QEMU's PID (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether QEMU has exited (poweroff, `-no-reboot` on a reboot, or a crash).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills QEMU (if still running) and reaps it.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn stream(
    prefix: String,
    from: impl tokio::io::AsyncRead + Unpin,
    log: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut lines = BufReader::new(from).split(b'\n');
    while let Ok(Some(raw)) = lines.next_segment().await {
        let line = printable(&raw);
        if line.trim().is_empty() {
            continue;
        }
        println!("[{prefix}] {line}");
        let _ = log
            .lock()
            .await
            .write_all(format!("{line}\n").as_bytes())
            .await;
    }
}

/// A console line without terminal control: ANSI escape sequences (`ESC [ … letter`,
/// `ESC c`) and other control characters removed, invalid UTF-8 replaced.
pub fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{FirmwareChoice, plan_vms};

    #[test]
    fn bios_and_uefi_command_lines() {
        let vms = plan_vms(FirmwareChoice::Both, 1);
        let work = Path::new("/w");
        let bios = args(&vms[0], work).join(" ");
        assert!(bios.contains("-accel tcg"), "{bios}");
        assert!(bios.contains("-machine pc"), "{bios}");
        assert!(bios.contains("ifname=tap-b1,"), "{bios}");
        assert!(bios.contains("mac=52:54:00:77:01:01,bootindex=1"), "{bios}");
        assert!(
            bios.contains("name=etc/sercon-port,file=/w/sercon-port.bin"),
            "{bios}"
        );
        assert!(!bios.contains("romfile="), "{bios}");
        let uefi = args(&vms[1], work).join(" ");
        assert!(uefi.contains("-machine q35"), "{uefi}");
        assert!(uefi.contains("bootindex=1,romfile="), "{uefi}");
        assert!(
            uefi.contains("file=/usr/share/OVMF/OVMF_CODE_4M.fd"),
            "{uefi}"
        );
        assert!(uefi.contains("unit=1,file=/w/uefi-1-vars.fd"), "{uefi}");
        assert!(
            uefi.contains("-uuid 00000000-7777-4000-8000-525400770201"),
            "{uefi}"
        );
    }

    #[test]
    fn a_controlled_vm_has_a_qmp_socket_and_reboots() {
        let vms = plan_vms(FirmwareChoice::Bios, 1);
        let work = Path::new("/w");
        let plain = args(&vms[0], work).join(" ");
        assert!(
            plain.contains("-no-reboot") && !plain.contains("-qmp"),
            "{plain}"
        );
        let c = Control {
            qmp: Some(qmp_path(&vms[0], work)),
            reboots: true,
        };
        let a = args_with(&vms[0], work, &c).join(" ");
        assert!(!a.contains("-no-reboot"), "{a}");
        assert!(
            a.contains("-qmp unix:/w/bios-1.qmp,server=on,wait=off"),
            "{a}"
        );
    }

    #[test]
    fn e1000_and_the_uefi_ipxe_rom() {
        use crate::lab::{Hardware, Nic};
        let mut vms = plan_vms(FirmwareChoice::Both, 1);
        for vm in &mut vms {
            vm.hardware = Hardware {
                nic: Nic::E1000,
                uefi_rom: UefiRom::Ipxe,
            };
        }
        let work = Path::new("/w");
        let bios = args(&vms[0], work).join(" ");
        assert!(
            bios.contains("-device e1000,netdev=n0,mac=52:54:00:77:01:01,bootindex=1"),
            "{bios}"
        );
        let uefi = args(&vms[1], work).join(" ");
        assert!(
            uefi.contains("-device e1000,netdev=n0,mac=52:54:00:77:02:01,bootindex=1 "),
            "{uefi}"
        );
        assert!(!uefi.contains("romfile="), "{uefi}");
    }

    #[test]
    fn secure_boot_command_line() {
        let vms = plan_vms(FirmwareChoice::SecureBoot, 1);
        let sb = args(&vms[0], Path::new("/w")).join(" ");
        assert!(sb.contains("-machine q35,smm=on"), "{sb}");
        assert!(
            sb.contains("-global driver=cfi.pflash01,property=secure,value=on"),
            "{sb}"
        );
        assert!(
            sb.contains("mac=52:54:00:77:03:01,bootindex=1,romfile="),
            "{sb}"
        );
        assert!(
            sb.contains("readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
            "{sb}"
        );
        assert!(sb.contains("unit=1,file=/w/secureboot-1-vars.fd"), "{sb}");
    }

    #[test]
    fn console_lines_lose_terminal_control() {
        assert_eq!(printable(b"\x1bc\x1b[?7l\x1b[2JSeaBIOS\r"), "SeaBIOS");
        assert_eq!(printable(b"\x1b[0;1miPXE 1.0\x1b[0m -- x"), "iPXE 1.0 -- x");
        assert_eq!(printable(b"a\tb\x07"), "a\tb");
    }
}
