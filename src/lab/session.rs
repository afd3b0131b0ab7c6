//! One `tabula lab` run, start to finish: checks, images, pins, the namespace, `tabula
//! serve`, the VMs, following their boot events until each concludes (or `--timeout`),
//! then the report. Cleanup is ordered and always happens: VMs, then tabula, then the
//! namespace, on success, on error (guards drop in reverse order) and on Ctrl-C/SIGTERM
//! (the caller's token).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::images::{self, Recipes};
use super::network::LabNetwork;
use super::qemu::Vm;
use super::serve::Server;
use super::summary::{Verdict, summary_line};
use super::{
    FirmwareChoice, Hardware, LabError, Nic, UefiRom, VmFirmware, VmSpec, plan_vms, prereq,
};
use crate::boot::{BootEvent, Digest, Firmware};
use crate::config::Config;
use crate::events::timeline::{Outcome, Timeline};
use crate::images::BlobStore;
use crate::inventory::{Decision, Facts, Inventory, PinRef, PinTarget, Settings, select};
use crate::store::{Store, now_ms};

/// The lab's config: config/lab.toml, compiled in (bridge tabr0 at 10.77.0.1, full
/// DHCP, loaders from /usr/lib/ipxe).
pub const LAB_CONFIG: &str = include_str!("../../config/lab.toml");

/// How often the store is polled for new boot events.
const POLL: Duration = Duration::from_millis(500);
/// How long after QEMU ends its last reports may still arrive.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub firmware: FirmwareChoice,
    pub image: PinRef,
    /// VMs per firmware kind.
    pub vms: u8,
    /// For the whole run, from the first VM's start.
    pub timeout: Duration,
    /// Wait for every VM even after one failed.
    pub keep_going: bool,
    /// The lab's own data dir (image store and database).
    pub data_dir: PathBuf,
    /// Where `images/publish.sh` is (see [`images::recipes_dir`]).
    pub images_dir: Option<PathBuf>,
    /// This binary: runs `serve` in the namespace and publishes the demo images.
    pub exe: PathBuf,
    /// NIC and UEFI ROM of every VM.
    pub hardware: Hardware,
    /// The loader OVMF's PXE gets (`dhcp.loaders.efi_x64`), instead of config/lab.toml's
    /// `snponly.efi`: `ipxe.efi` is Debian's link to /boot/ipxe.efi.
    pub uefi_loader: Option<String>,
    /// tcpdump on the bridge into this file for the whole run.
    pub capture: Option<PathBuf>,
}

/// One machine's result.
#[derive(Clone, Debug)]
pub struct Machine {
    pub vm: VmSpec,
    /// The pinned version (`name@version`).
    pub pinned: String,
    pub manifest: Digest,
    pub timeline: Timeline,
    pub verdict: Verdict,
    /// What booted (`name@version`), when something did.
    pub booted: Option<String>,
}

impl Machine {
    /// The summary line `tabula lab` ends with.
    pub fn summary(&self) -> String {
        let image = self.booted.as_deref().unwrap_or(&self.pinned);
        summary_line(
            &self.vm.name,
            &self.vm.mac.to_string(),
            self.vm.firmware.as_str(),
            image,
            &self.verdict,
            &self.timeline,
        )
    }
}

/// Every machine's result.
#[derive(Clone, Debug)]
pub struct Report {
    pub machines: Vec<Machine>,
}

impl Report {
    /// Whether every machine booted its pinned image.
    pub fn all_booted(&self) -> bool {
        self.machines.iter().all(|m| m.verdict == Verdict::Booted)
    }
}

/// Per-VM state while the run goes.
struct Running {
    spec: VmSpec,
    pinned: String,
    manifest: Digest,
    vm: Vm,
    start_ms: i64,
    events: Vec<BootEvent>,
    exited_at: Option<Instant>,
    verdict: Option<Verdict>,
}

/// Runs the lab; `stop` is cancelled on Ctrl-C/SIGTERM.
pub async fn run(opts: &Options, stop: &CancellationToken) -> Result<Report, LabError> {
    prereq::require_root()?;
    prereq::check(prereq::BOOT)?;
    opts.hardware
        .check(opts.firmware)
        .map_err(LabError::Options)?;
    prereq::check(&hardware_needs(opts))?;
    let mut specs = plan_vms(opts.firmware, opts.vms);
    if specs.is_empty() {
        return Err(LabError::Options("--vms must be at least 1".into()));
    }
    for vm in &mut specs {
        vm.hardware = opts.hardware;
    }

    // The lab's config and state, all under its data dir.
    let work = opts.data_dir.join("lab-run");
    std::fs::create_dir_all(&work).map_err(LabError::io(&work))?;
    let config_path = work.join("lab.toml");
    let config_text = super::grub::config(
        lab_config(opts.uefi_loader.as_deref())?,
        opts.firmware,
        &work,
    )?;
    let config_text = super::arm64::config(config_text, opts.firmware, &work)?;
    let image = super::arm64::image(opts.firmware, &opts.image);
    std::fs::write(&config_path, config_text).map_err(LabError::io(&config_path))?;
    let config = Config::load(&config_path, Some(&opts.data_dir))?;
    let store = Store::open(&config.store_url).await?;
    let inventory = std::sync::Arc::new(Inventory::new(
        store.clone(),
        BlobStore::open(&config.blob_dir())?,
        Settings {
            unknown_machines: config.boot.unknown_machines,
            console: config.boot.console.clone(),
            base_url: config.http.public_url.clone(),
        },
    ));
    let fleet = crate::fleet::Fleet::new(inventory.clone());
    let recipes_dir = images::recipes_dir(opts.images_dir.as_deref());
    let recipes = Recipes {
        dir: &recipes_dir,
        exe: &opts.exe,
        data_dir: &opts.data_dir,
        config: &config_path,
        out: &work.join("images"),
        cmdline: None,
    };
    images::ensure(&store, &image, &recipes, stop).await?;

    // Pin every VM's MAC; what each should boot, from the one policy seam.
    let mut pinned = Vec::new();
    for vm in &specs {
        fleet.set_pin(&PinTarget::Mac(vm.mac), &image).await?;
    }
    let snap = inventory.snapshot().await?;
    for vm in &specs {
        let firmware = match vm.firmware {
            VmFirmware::Bios => Firmware::Bios,
            VmFirmware::Uefi | VmFirmware::SecureBoot => Firmware::EfiX64,
            VmFirmware::Arm64 => Firmware::EfiArm64,
            VmFirmware::UefiHttp => Firmware::EfiX64Http,
        };
        let sel = select(
            &snap,
            &Facts {
                mac: vm.mac,
                uuid: None,
                firmware,
            },
        );
        let Decision::Boot { plan } = sel.decision else {
            return Err(LabError::Image(format!(
                "{} pinned to {} does not boot an image ({:?})",
                vm.mac, image, sel.decision
            )));
        };
        println!(
            "lab: {} {} {} pinned to {}@{} ({})",
            vm.name, vm.mac, vm.firmware, plan.image, plan.version, plan.manifest
        );
        pinned.push((format!("{}@{}", plan.image, plan.version), plan.manifest));
    }
    let mut last_id = store.last_event_id().await?;

    // Guards, dropped in reverse: VMs, then tabula, then the namespace.
    let taps: Vec<String> = specs.iter().map(|v| v.tap.clone()).collect();
    let network = LabNetwork::create(&taps)?;
    println!(
        "lab: namespace {} with bridge tabr0 10.77.0.1/24 and taps {}",
        network.name(),
        taps.join(" ")
    );
    let mut capture = match &opts.capture {
        Some(file) => {
            let c = Capture::start(network.name(), file).await?;
            println!("lab: capturing the bridge into {}", c.file().display());
            Some(c)
        }
        None => None,
    };
    let mut server = Server::start(&opts.exe, network.name(), &config_path, &opts.data_dir).await?;
    let mut running = Vec::new();
    for (spec, (image, manifest)) in specs.into_iter().zip(pinned) {
        let vm = Vm::start(&spec, network.name(), &work)?;
        println!(
            "lab: started {} ({} netboot, QEMU pid {}, console below as [{}])",
            spec.name,
            spec.firmware,
            vm.pid().unwrap_or(0),
            spec.name
        );
        running.push(Running {
            spec,
            pinned: image,
            manifest,
            vm,
            start_ms: now_ms(),
            events: Vec::new(),
            exited_at: None,
            verdict: None,
        });
    }

    let result = follow(opts, stop, &store, &mut running, &mut last_id, &mut server).await;
    for r in &mut running {
        r.vm.stop().await;
    }
    server.stop().await;
    if let Some(c) = &mut capture {
        c.stop().await;
    }
    drop(network);
    result?;

    let snap = inventory.snapshot().await?;
    let machines = running
        .into_iter()
        .map(|r| {
            let timeline = Timeline::read(r.start_ms, &r.events);
            let booted = match timeline.outcome {
                Outcome::Booted(d) => Some(
                    snap.version_of_digest(&d)
                        .map(|(n, v)| format!("{n}@{v}"))
                        .unwrap_or_else(|| d.to_string()),
                ),
                _ => None,
            };
            Machine {
                vm: r.spec,
                pinned: r.pinned,
                manifest: r.manifest,
                timeline,
                verdict: r.verdict.unwrap_or(Verdict::Timeout(None)),
                booted,
            }
        })
        .collect();
    Ok(Report { machines })
}

/// What the chosen hardware and loader need beyond [`prereq::BOOT`].
fn hardware_needs(opts: &Options) -> Vec<prereq::Need> {
    use prereq::Need;
    let mut needs = Vec::new();
    let kinds = opts.firmware.kinds();
    if opts.hardware.nic == Nic::E1000 && kinds.contains(&VmFirmware::Bios) {
        needs.push(Need::File("/usr/lib/ipxe/qemu/pxe-e1000.rom", "ipxe-qemu"));
    }
    if opts.hardware.uefi_rom == UefiRom::Ipxe && kinds.contains(&VmFirmware::Uefi) {
        needs.push(match opts.hardware.nic {
            Nic::Virtio => Need::File("/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"),
            Nic::E1000 => Need::File("/usr/lib/ipxe/qemu/efi-e1000.rom", "ipxe-qemu"),
        });
    }
    if opts.capture.is_some() {
        needs.push(Need::Program("tcpdump", "tcpdump"));
    }
    needs
}

/// config/lab.toml, with `dhcp.loaders.efi_x64` set to `uefi_loader` when given.
pub fn lab_config(uefi_loader: Option<&str>) -> Result<String, LabError> {
    const SHIPPED: &str = "efi_x64 = \"snponly.efi\"";
    let Some(name) = uefi_loader else {
        return Ok(LAB_CONFIG.to_string());
    };
    if name.is_empty() || name.contains(['"', '\\', '\n']) || name.contains("..") {
        return Err(LabError::Options(format!(
            "--uefi-loader {name:?}: not a loader file name"
        )));
    }
    if !LAB_CONFIG.contains(SHIPPED) {
        return Err(LabError::Options(
            "config/lab.toml names no efi_x64 loader to replace".into(),
        ));
    }
    Ok(LAB_CONFIG.replace(SHIPPED, &format!("efi_x64 = \"{name}\"")))
}

/// Follows boot events until every VM has a verdict, the deadline passes or `stop`.
async fn follow(
    opts: &Options,
    stop: &CancellationToken,
    store: &Store,
    running: &mut [Running],
    last_id: &mut i64,
    server: &mut Server,
) -> Result<(), LabError> {
    let deadline = Instant::now() + opts.timeout;
    let index: HashMap<_, _> = running
        .iter()
        .enumerate()
        .map(|(i, r)| (r.spec.mac, i))
        .collect();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Err(LabError::Interrupted),
            _ = tokio::time::sleep(POLL) => {}
        }
        for row in store.events(None, *last_id, 1000).await? {
            *last_id = row.id;
            let Some(&i) = index.get(&row.event.mac) else {
                continue;
            };
            let r = &mut running[i];
            println!(
                "[{}] event {}",
                r.spec.name,
                describe(&row.event, r.start_ms)
            );
            r.events.push(row.event);
        }
        let server_up = server.running();
        for r in running.iter_mut().filter(|r| r.verdict.is_none()) {
            let t = Timeline::read(r.start_ms, &r.events);
            r.verdict = match t.outcome {
                Outcome::Booted(d) if d == r.manifest => Some(Verdict::Booted),
                Outcome::Booted(d) => Some(Verdict::WrongImage(d.to_string())),
                Outcome::Failed(reason) => Some(Verdict::Failed(reason)),
                Outcome::Pending => None,
            };
            if r.verdict.is_some() {
                // A failed machine sits in the initramfs's shell: stop it now.
                if r.verdict != Some(Verdict::Booted) {
                    r.vm.stop().await;
                }
                continue;
            }
            if r.exited_at.is_none() && r.vm.exited() {
                r.exited_at = Some(Instant::now());
            }
            if r.exited_at.is_some_and(|t| t.elapsed() >= EXIT_GRACE) {
                r.verdict = Some(Verdict::Exited(t.last_failure.clone()));
            } else if !server_up {
                r.verdict = Some(Verdict::Exited(Some("tabula serve stopped".into())));
            } else if Instant::now() >= deadline {
                println!(
                    "lab: {} has not booted after {:?}",
                    r.spec.name, opts.timeout
                );
                r.verdict = Some(Verdict::Timeout(t.last_failure.clone()));
            }
        }
        let failed = running
            .iter()
            .any(|r| r.verdict.as_ref().is_some_and(|v| *v != Verdict::Booted));
        if failed && !opts.keep_going {
            for r in running.iter_mut().filter(|r| r.verdict.is_none()) {
                r.verdict = Some(Verdict::Stopped);
            }
        }
        if running.iter().all(|r| r.verdict.is_some()) {
            return Ok(());
        }
    }
}

/// `+12.3s dhcp-ack file=…` — one event, briefly.
fn describe(e: &BootEvent, start_ms: i64) -> String {
    use crate::boot::EventDetail as D;
    #[allow(clippy::cast_precision_loss)]
    let t = (e.at_ms - start_ms) as f64 / 1000.0;
    let extra = match &e.detail {
        D::Progress(r) => r.stage.as_ref().map(|s| format!("stage={s}")),
        d @ (D::Failed(_) | D::Ignored(_)) => d.reason().map(|s| format!("reason={s}")),
        D::DhcpOffer(d) | D::DhcpAck(d) => Some(format!(
            "address={} file={}",
            d.address.map(|a| a.to_string()).as_deref().unwrap_or("-"),
            d.file.as_deref().unwrap_or("-")
        )),
        D::LoaderSent(l) => Some(format!("bytes={}", l.bytes)),
        D::KernelSent(b) | D::InitrdSent(b) | D::RootfsSent(b) => {
            Some(format!("bytes={}", b.bytes))
        }
        D::ScriptSent(_) | D::Booted(_) | D::Unparsed { .. } => None,
    };
    format!(
        "+{t:.1}s {}{}",
        e.stage(),
        extra.map(|x| format!(" {x}")).unwrap_or_default()
    )
}
