//! `tabula lab --rollout`: issue 14's fleet loop on real firmware. Three VMs under the
//! label `lab=rollout`, all booted on demo@1 (their known good); then
//!
//! 1. a rollout of demo@3, whose stored root image no longer matches its digest (the
//!    initramfs's sha256 check fails), steps `1,100%`, `--reboot webhook`: the canary's
//!    reboot is asked for by a signed webhook and carried out by QMP `system_reset`, it
//!    fails `health.max_tries` (2 here) times, the rollout pauses on its budget, the canary
//!    is held on demo@1 and boots it by itself, and the other two are never asked to
//!    reboot and never boot demo@3 (their attempts and events say so);
//! 2. a rollout of demo@2 (good) that reaches all three, each reboot asked for by the
//!    rollout's webhook and carried out by QMP;
//! 3. boot-once: one VM boots demo@2 once (`pin set NAME demo@2 --once`, the VM reset by
//!    QMP), its result is `booted` and the `boot_once.booted` webhook arrived with a
//!    verified signature, and the next reset boots demo@1 again.
//!
//! Everything is done with `tabula` commands as an operator types them ([`Operator`]),
//! printed with their output. Each wait is bounded by `--timeout` and fails naming the VM
//! and the stage. The images are published into a fresh data dir of their own, with a
//! kernel command line that keeps the demo running after it booted
//! (`tabula.demo_after=idle`, so a later reboot can be asked for) and one try per boot in
//! the initramfs (`tabula.tries=1`: a failed boot reboots at once, so tabula counts tries
//! in seconds, not minutes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::images::{self, Recipes};
use super::network::{LabNetwork, bind_in};
use super::operator::Operator;
use super::qemu::{Control, Vm, qmp_path};
use super::receiver::{self, Receiver};
use super::serve::Server;
use super::session::{Options, lab_config};
use super::{FirmwareChoice, LabError, VmSpec, plan_vms, prereq};
use crate::config::Config;
use crate::inventory::PinRef;
use crate::store::Store;

/// The label the lab's machines carry, and the rollouts' target.
pub const LABEL: &str = "lab=rollout";
/// The kernel command line of the rollout lab's images.
pub const CMDLINE: &str = "panic=5 tabula.tries=1 tabula.demo_after=idle";
/// Where the reboot receiver listens, in the namespace.
const RECEIVER: &str = "10.77.0.1:8787";
/// The `[health]` of the lab: two tries, a short deadline.
const HEALTH: &str = "\n[health]\nmax_tries = 2\nboot_deadline = \"4m\"\n";

/// One VM of the lab.
pub(super) struct LabVm {
    pub spec: VmSpec,
    pub vm: Vm,
    pub qmp: PathBuf,
}

/// What the stages need, set up.
pub(super) struct Lab<'a> {
    pub op: Operator,
    pub vms: Vec<LabVm>,
    pub receiver: &'a Receiver,
    /// Each wait's bound.
    pub limit: Duration,
    pub stop: &'a CancellationToken,
    /// Corrupts demo@3's stored root image ([`corrupt`]): called once its rollout has
    /// started, since a rollout starts only when every server holds its version whole.
    pub break_demo3: Box<dyn Fn() -> Result<(), LabError> + Send + Sync + 'a>,
}

/// Runs the scenario; `Ok` only if every stage came out as it must.
pub async fn run(opts: &Options, stop: &CancellationToken) -> Result<(), LabError> {
    prereq::require_root()?;
    prereq::check(prereq::BOOT)?;
    opts.hardware
        .check(opts.firmware)
        .map_err(LabError::Options)?;
    // Three VMs: of the one firmware, or two BIOS and one UEFI for `--firmware both`.
    let per = if opts.firmware == FirmwareChoice::Both {
        2
    } else {
        3
    };
    let mut specs = plan_vms(opts.firmware, per);
    specs.truncate(3);
    for vm in &mut specs {
        vm.hardware = opts.hardware;
    }

    // A fresh data dir: no rollouts, holds or pins of an earlier run.
    let data = opts.data_dir.join("rollout");
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(LabError::io(&data))?;
    }
    let work = data.join("run");
    std::fs::create_dir_all(&work).map_err(LabError::io(&work))?;
    let config_path = work.join("lab.toml");
    let text = lab_config(opts.uefi_loader.as_deref())? + HEALTH;
    std::fs::write(&config_path, text).map_err(LabError::io(&config_path))?;
    let config = Config::load(&config_path, Some(&data))?;
    let store = Store::open(&config.store_url).await?;
    let recipes_dir = images::recipes_dir(opts.images_dir.as_deref());
    let out = opts.data_dir.join("rollout-images");
    let recipes = Recipes {
        dir: &recipes_dir,
        exe: &opts.exe,
        data_dir: &data,
        config: &config_path,
        out: &out,
        cmdline: Some(CMDLINE),
    };
    let broken: PinRef = "demo@3"
        .parse()
        .map_err(|e| LabError::Image(format!("{e}")))?;
    images::ensure(&store, &broken, &recipes, stop).await?;
    drop(store);
    let broken_root = out.join("demo-3.squashfs");

    let op = Operator::new(&opts.exe, &config_path, &data);
    for vm in &specs {
        op.run(&[
            "machine",
            "add",
            &vm.name,
            "--mac",
            &vm.mac.to_string(),
            "--label",
            LABEL,
        ])
        .await?;
    }
    op.show(&["pin", "set", &format!("label:{LABEL}"), "demo@1"])
        .await?;
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret).map_err(|e| LabError::Options(format!("no randomness: {e}")))?;
    let secret = crate::notify::sign::secret_of(&secret);
    let url = format!("http://{RECEIVER}{}", receiver::PATH);
    let events = "rollout.*,machine.*,boot_once.*,booted,failed";
    let added = op
        .run(&[
            "webhook", "add", &url, "--events", events, "--secret", &secret,
        ])
        .await?;
    // The secret is the receiver's: not printed.
    println!("$ tabula webhook add {url} --events {events} --secret whsec_…");
    for l in added.lines() {
        println!("  {l}");
    }

    let taps: Vec<String> = specs.iter().map(|v| v.tap.clone()).collect();
    let network = LabNetwork::create(&taps)?;
    let addr: SocketAddr = RECEIVER
        .parse()
        .map_err(|_| LabError::Options(RECEIVER.into()))?;
    let listener = bind_in(network.name(), addr)
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(LabError::io(format!("/run/netns/{}", network.name())))?;
    let qmp: HashMap<String, PathBuf> = specs
        .iter()
        .map(|s| (s.name.clone(), qmp_path(s, &work)))
        .collect();
    let rx =
        Receiver::start(listener, &secret, qmp).map_err(|e| LabError::Options(e.to_string()))?;
    println!(
        "lab: reboot receiver on {url} (inside {}), resetting VMs over QMP",
        network.name()
    );
    let mut server = Server::start(&opts.exe, network.name(), &config_path, &data).await?;
    let mut vms = Vec::new();
    let mut started = Ok(());
    for spec in specs {
        let control = Control {
            qmp: Some(qmp_path(&spec, &work)),
            reboots: true,
        };
        match Vm::start_with(&spec, network.name(), &work, &control) {
            Ok(vm) => {
                println!(
                    "lab: started {} ({} {}, QEMU pid {})",
                    spec.name,
                    spec.firmware,
                    spec.mac,
                    vm.pid().unwrap_or(0)
                );
                let qmp = qmp_path(&spec, &work);
                vms.push(LabVm { spec, vm, qmp });
            }
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    let mut lab = Lab {
        op,
        vms,
        receiver: &rx,
        limit: opts.timeout,
        stop,
        break_demo3: Box::new(move || corrupt(&data, &broken_root)),
    };
    let result = match started {
        Ok(()) => super::stages::scenario(&mut lab).await,
        Err(e) => Err(e),
    };
    for v in &mut lab.vms {
        v.vm.stop().await;
    }
    server.stop().await;
    rx.stop();
    drop(network);
    match &result {
        Ok(()) => println!("lab rollout: every stage came out as it must"),
        Err(e) => println!("lab rollout: FAILED: {e}"),
    }
    result
}

/// The stored root image of demo@3 no longer matches its digest: bytes in its middle
/// inverted, the length kept (a corrupted store or mirror, as the fleet test does). The
/// server then never serves it (it hashes a changed file before sending it, and
/// quarantines it), so every machine that boots demo@3 fails to fetch its root.
fn corrupt(data: &Path, built: &Path) -> Result<(), LabError> {
    use sha2::Digest as _;
    let bytes = std::fs::read(built).map_err(LabError::io(built))?;
    let hex = hex::encode(sha2::Sha256::digest(&bytes));
    let blob = data.join("blobs/sha256").join(&hex);
    let mut b = std::fs::read(&blob).map_err(LabError::io(&blob))?;
    let mid = b.len() / 2;
    let end = (mid + 4096).min(b.len());
    for x in &mut b[mid..end] {
        *x ^= 0xff;
    }
    let mut perms = std::fs::metadata(&blob)
        .map_err(LabError::io(&blob))?
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).map_err(LabError::io(&blob))?;
    std::fs::write(&blob, b).map_err(LabError::io(&blob))?;
    println!("lab: demo@3's stored root image (sha256:{hex}) corrupted: it is never served whole");
    Ok(())
}
