//! The lab images booting for real under QEMU (TCG), with no DHCP or TFTP from tabula:
//! QEMU loads the plan's kernel and initrd itself (`-kernel`/`-initrd`/`-append` with the
//! command line of the iPXE script `tabula serve` hands this MAC, whose callback carries
//! the boot's report token), and user-mode networking lets the guest reach
//! `tabula serve` on the host's loopback as 10.0.2.2. From there on the boot is the real
//! one: the initramfs fetches the root image from tabula, verifies its digest, mounts it
//! and reports to tabula.
//!
//! Asserted: the console marker of the pinned version and the `booted` event carrying
//! the pinned manifest, for demo@1, then demo@2 (upgrade), then demo@1 (rollback); a root
//! image corrupted on tabula's disk is never sent (tabula quarantines it): the guest's
//! download fails and it ends in `failed` events naming the refused download.
//! Also: building the images twice gives the same digests.
//!
//! Needs root and the lab packages (`images/setup-packages.sh`); without them it fails,
//! never skips. QEMU and tabula are killed by PID when a guard drops.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Env;

pub(crate) const MAC: &str = "52:54:00:7a:b1:01";
/// TCG boots take 12-30 s here; a loaded shared machine can double that.
const BOOT_LIMIT: Duration = Duration::from_secs(150);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (never skips) when the lab cannot run here, naming the fix.
pub(crate) fn require_lab() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the netboot lab test builds images and boots QEMU as root: run the tests as root, \
         after `images/setup-packages.sh` has installed the lab packages"
    );
    let out = Command::new("bash")
        .arg(repo().join("images/setup-packages.sh"))
        .arg("--check")
        .output()
        .expect("bash images/setup-packages.sh --check");
    assert!(
        out.status.success(),
        "the lab packages are missing: run images/setup-packages.sh as root ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs an `images/` recipe with the lab's environment; returns its stderr (the log).
pub(crate) fn recipe(env: &Env, script: &str, out_dir: &Path) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("images").join(script))
        .env("TABULA", env!("CARGO_BIN_EXE_tabula"))
        .env("TABULA_DATA_DIR", env.data())
        .env("TABULA_LAB_OUT", out_dir)
        .env_remove("TABULA_CONFIG")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TABULA_LOG", "warn");
    if let Some(cfg) = env.config() {
        cmd.env("TABULA_CONFIG", cfg);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("images/{script}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "images/{script} failed:\n{}{log}",
        String::from_utf8_lossy(&out.stdout)
    );
    log
}

/// QEMU, killed and reaped when dropped.
struct Vm {
    child: Child,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one boot printed on its serial console, with seconds since QEMU started.
pub(crate) struct Console {
    lines: Vec<(f64, String)>,
    /// QEMU ended by itself (poweroff, reboot with -no-reboot) rather than being killed.
    exited: bool,
}

impl Console {
    pub(crate) fn at(&self, needle: &str) -> Option<f64> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    pub(crate) fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(t, l)| format!("[{t:7.2}] {l}\n"))
            .collect()
    }

    /// Seconds to each stage, for the test log.
    fn timings(&self) -> String {
        [
            ("linux", "Linux version"),
            ("init", "tabula-init: ["),
            ("dhcp", "] dhcp: eth"),
            ("fetched", "] fetch: "),
            ("verified", "] verify: sha256"),
            ("switch_root", "] switch_root:"),
            ("marker", "TABULA-DEMO-BOOTED"),
            ("failed", "FAILED stage="),
        ]
        .iter()
        .filter_map(|(k, n)| self.at(n).map(|t| format!("{k}={t:.1}s")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// The plan `tabula explain` renders for MAC under `cfg`, with the kernel command line
/// of the script the server at `http` serves MAC (the same, plus the report token).
pub(crate) struct Plan {
    pub manifest: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub rootfs_hex: String,
    pub cmdline: String,
}

pub(crate) fn explain(env: &Env, cfg: &Path, http: std::net::SocketAddr) -> Plan {
    let out = env.ok(&["--config", cfg.to_str().unwrap(), "explain", MAC, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["action"], "boot", "{out}");
    let plan = &v["decision"]["plan"];
    let blob = |d: &serde_json::Value| {
        let hex = d.as_str().unwrap().strip_prefix("sha256:").unwrap();
        env.data().join("blobs/sha256").join(hex)
    };
    Plan {
        manifest: plan["manifest"].as_str().unwrap().to_string(),
        kernel: blob(&plan["kernel"]["digest"]),
        initrd: blob(&plan["initrds"][0]["digest"]),
        rootfs_hex: plan["rootfs"]["digest"].as_str().unwrap()[7..].to_string(),
        cmdline: served_cmdline(env, http, plan["cmdline"].as_str().unwrap()),
    }
}

/// The kernel command line of the script served to MAC (BIOS), checked against what
/// `tabula explain` renders (`explained`): the same but for the report token, which only
/// a served script has. Waits until the script's event is stored, so that it is not
/// counted among the boot's events.
fn served_cmdline(env: &Env, http: std::net::SocketAddr, explained: &str) -> String {
    let hyphens = MAC.replace(':', "-");
    // The server re-reads pins at most every 250 ms: a script right after a (re-)pin may
    // still be the old decision, so ask until it is the plan `explain` shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = last_id(env);
        let (h, body) = crate::serve::curl(&[&format!("http://{http}/boot.ipxe?mac={hyphens}")]);
        assert_eq!(crate::serve::status(&h), 200, "{h}");
        let script = String::from_utf8(body).unwrap();
        wait_events(env, before, |e| {
            e["stage"] == "script-sent" || e["stage"] == "ignored"
        });
        let cmdline = script
            .lines()
            .find_map(|l| l.strip_prefix("kernel "))
            .and_then(|l| l.strip_suffix(" || goto failed"))
            .and_then(|l| l.split_once(' '))
            .map(|(_, c)| c.to_string());
        if let Some(cmdline) = cmdline {
            let token = cmdline
                .split(' ')
                .find_map(|a| a.strip_prefix("tabula.callback="))
                .and_then(|cb| cb.rsplit_once('/'))
                .map(|(_, t)| t.to_string())
                .unwrap();
            assert_eq!(token.len(), 48, "{cmdline}");
            if cmdline.replace(&format!("/{token}"), "") == explained {
                return cmdline;
            }
        }
        assert!(
            Instant::now() < deadline,
            "served {script}\nexplained {explained}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The QEMU command line of one direct boot (the report quotes it), run inside the
/// network namespace `ns` when given (its user network then reaches that namespace's
/// neighbours).
fn qemu_command(plan: &Plan, memory_mib: u32, ns: Option<&str>) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
            c
        }
        None => Command::new("qemu-system-x86_64"),
    };
    c.args([
        "-name",
        "tabula-lab-direct",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-accel",
        "tcg",
        "-machine",
        "pc",
        "-m",
        &memory_mib.to_string(),
        "-smp",
        "1",
        "-chardev",
        "stdio,id=ser0,signal=off",
        "-serial",
        "chardev:ser0",
        "-netdev",
        "user,id=n0",
        "-device",
        &format!("virtio-net-pci,netdev=n0,mac={MAC},romfile="),
        "-kernel",
    ])
    .arg(&plan.kernel)
    .arg("-initrd")
    .arg(&plan.initrd)
    .arg("-append")
    .arg(&plan.cmdline);
    c
}

/// Boots the plan and reads the console until `done` matches a line (then gives QEMU a
/// moment to power off), QEMU exits, or BOOT_LIMIT passes. Keeps the log in `log_path`.
fn boot(plan: &Plan, log_path: &Path, done: impl Fn(&str) -> bool) -> Console {
    boot_with(plan, log_path, 512, BOOT_LIMIT, done)
}

/// [`boot`] with the guest's memory and the time limit chosen.
pub(crate) fn boot_with(
    plan: &Plan,
    log_path: &Path,
    memory_mib: u32,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Console {
    boot_in(None, plan, log_path, memory_mib, limit, done)
}

/// [`boot_with`], QEMU running in the network namespace `ns` when given.
pub(crate) fn boot_in(
    ns: Option<&str>,
    plan: &Plan,
    log_path: &Path,
    memory_mib: u32,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Console {
    let started = Instant::now();
    let mut vm = Vm {
        child: qemu_command(plan, memory_mib, ns)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 (run images/setup-packages.sh)"),
    };
    let (tx, rx) = mpsc::channel::<(f64, String)>();
    for stream in [
        Box::new(vm.child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(vm.child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .replace('\r', "");
                if tx.send((started.elapsed().as_secs_f64(), line)).is_err() {
                    break;
                }
                buf.clear();
            }
        });
    }
    drop(tx);
    let mut log = std::fs::File::create(log_path).unwrap();
    let mut console = Console {
        lines: Vec::new(),
        exited: false,
    };
    let mut deadline = started + limit;
    let mut finished = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, line)) => {
                writeln!(log, "[{t:7.2}] {line}").unwrap();
                if !finished && done(&line) {
                    finished = true;
                    deadline = Instant::now() + Duration::from_secs(15);
                }
                console.lines.push((t, line));
            }
            // Both streams closed: QEMU is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                console.exited = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    drop(vm);
    console
}

/// Every stored event of MAC, oldest first.
pub(crate) fn events(env: &Env) -> Vec<serde_json::Value> {
    env.ok(&["events", MAC, "--json", "--last", "100000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Events newer than `after_id` that satisfy `want`, waiting up to 10 s for one.
pub(crate) fn wait_events(
    env: &Env,
    after_id: i64,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<serde_json::Value> = events(env)
            .into_iter()
            .filter(|e| e["id"].as_i64().unwrap() > after_id)
            .collect();
        if new.iter().any(&want) || Instant::now() > deadline {
            return new;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn last_id(env: &Env) -> i64 {
    events(env)
        .last()
        .map(|e| e["id"].as_i64().unwrap())
        .unwrap_or(0)
}

/// Pins MAC to `reference`, boots it, and checks marker and `booted` event.
pub(crate) fn boot_demo(
    env: &Env,
    cfg: &Path,
    http: std::net::SocketAddr,
    reference: &str,
    version: &str,
    n: usize,
) {
    env.ok(&["pin", "set", MAC, reference]);
    let plan = explain(env, cfg, http);
    let before = last_id(env);
    let marker = format!("TABULA-DEMO-BOOTED name=demo version={version} ");
    let log = env.dir.path().join(format!("boot-{n}-{reference}.log"));
    let console = boot(&plan, &log, |l| {
        l.contains(&marker) || l.contains("giving up after")
    });
    eprintln!(
        "lab_direct: boot {n} {reference}: {} (qemu exited: {})",
        console.timings(),
        console.exited
    );
    let want = format!("{marker}manifest={}", plan.manifest);
    assert!(
        console.at(&want).is_some(),
        "boot {n} ({reference}): no `{want}` on the console within {BOOT_LIMIT:?}:\n{}",
        console.text()
    );
    let new = wait_events(env, before, |e| e["stage"] == "booted");
    let booted: Vec<&serde_json::Value> = new.iter().filter(|e| e["stage"] == "booted").collect();
    assert_eq!(booted.len(), 1, "boot {n} ({reference}): {new:#?}");
    assert_eq!(booted[0]["manifest"], plan.manifest.as_str(), "{new:#?}");
    assert_eq!(
        booted[0]["detail"]["root_sha256"],
        plan.rootfs_hex.as_str(),
        "{new:#?}"
    );
    // What tabula saw on the way: the initramfs's progress, the root image going out.
    let stages: Vec<String> = new
        .iter()
        .filter(|e| e["manifest"] == plan.manifest.as_str())
        .map(|e| match e["stage"].as_str().unwrap() {
            "progress" => format!("progress:{}", e["detail"]["stage"].as_str().unwrap_or("?")),
            s => s.to_string(),
        })
        .collect();
    assert_eq!(
        stages,
        [
            "progress:dhcp",
            "progress:fetch",
            "progress:verify",
            "progress:mount",
            "booted"
        ],
        "boot {n} ({reference})"
    );
    let rootfs = format!("sha256:{}", plan.rootfs_hex);
    assert!(
        new.iter().any(|e| e["stage"] == "rootfs-sent"
            && e["detail"]["digest"] == rootfs.as_str()
            && e["detail"]["complete"] == true),
        "boot {n} ({reference}): no complete rootfs-sent event: {new:#?}"
    );
    assert!(
        new.iter().all(|e| e["stage"] != "failed"),
        "boot {n} ({reference}): {new:#?}"
    );
}

#[test]
fn images_boot_under_qemu_with_upgrade_rollback_and_a_corrupt_root() {
    require_lab();
    let env = Env::new();
    let t = Instant::now();

    // Build and publish demo@1 and demo@2; a second build must give the same bytes.
    let out = env.dir.path().join("out");
    recipe(&env, "publish.sh", &out);
    let out2 = env.dir.path().join("out2");
    recipe(&env, "build.sh", &out2);
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(
        sums,
        std::fs::read_to_string(out2.join("SHA256SUMS")).unwrap(),
        "two builds of the lab images differ"
    );
    eprintln!(
        "lab_direct: built twice and published in {:.1}s; digests:\n{sums}",
        t.elapsed().as_secs_f64()
    );
    let listed = env.ok(&["image", "list"]);
    assert!(listed.contains("demo"), "{listed}");

    // tabula serve on the host's loopback, which QEMU's user network shows as 10.0.2.2.
    let (cfg, server) = serve_for_qemu(&env, "lab-direct.toml");

    // Pinned version, upgrade, rollback.
    boot_demo(&env, &cfg, server.http, "demo@1", "1", 1);
    boot_demo(&env, &cfg, server.http, "demo@2", "2", 2);
    boot_demo(&env, &cfg, server.http, "demo@1", "1", 3);

    let hex = publish_corrupt_root(
        &env,
        &out,
        "panic=5 tabula.tries=2 tabula.on_failure=poweroff",
    );
    env.ok(&["pin", "set", MAC, "broken@1"]);
    let plan = explain(&env, &cfg, server.http);
    assert_eq!(plan.rootfs_hex, hex, "the plan names the corrupted blob");

    let before = last_id(&env);
    let console = boot(&plan, &env.dir.path().join("boot-4-broken.log"), |l| {
        l.contains("giving up after")
    });
    eprintln!(
        "lab_direct: boot 4 broken@1: {} (qemu exited: {})",
        console.timings(),
        console.exited
    );
    let text = console.text();
    // tabula never sends a blob that does not hash to its name (it is quarantined), so
    // the guest's download fails, on every attempt, and it gives up.
    assert!(
        console
            .at("FAILED stage=fetch attempt=1/2: download of ")
            .is_some()
            && console.at("404").is_some()
            && console.at("giving up after 2 attempt(s)").is_some(),
        "boot 4 (broken@1): no refused download and give-up lines:\n{text}"
    );
    assert!(
        console.at("TABULA-DEMO-BOOTED").is_none(),
        "a corrupt root image booted:\n{text}"
    );
    let new = wait_events(&env, before, |e| {
        e["stage"] == "failed" && e["detail"]["final"] == true
    });
    let failed: Vec<&serde_json::Value> = new.iter().filter(|e| e["stage"] == "failed").collect();
    assert_eq!(failed.len(), 2, "{new:#?}");
    for (i, f) in failed.iter().enumerate() {
        assert_eq!(f["manifest"], plan.manifest.as_str(), "{f:#}");
        assert_eq!(f["detail"]["stage"], "fetch", "{f:#}");
        assert_eq!(f["detail"]["attempt"], i + 1, "{f:#}");
        assert_eq!(f["detail"]["final"], i == 1, "{f:#}");
        let reason = f["detail"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("download of ") && reason.contains("404"),
            "{reason}"
        );
    }
    assert!(new.iter().all(|e| e["stage"] != "booted"), "{new:#?}");
    assert!(
        env.data()
            .join("blobs/quarantine")
            .join(&plan.rootfs_hex)
            .exists(),
        "the corrupt root image is quarantined"
    );
    // tabula's own check sees the same corruption.
    let verify = env.run(&["image", "verify"]);
    assert_eq!(verify.code, 1, "{}{}", verify.stdout, verify.stderr);
    eprintln!(
        "lab_direct: all boots done in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// Publishes `broken@1` from the lab images in `images` with a root image whose stored
/// bytes no longer match its digest: a copy of demo-2 padded (so no other version shares
/// the blob), corrupted in the blob store after publishing; returns the root's digest (hex).
/// Shared with `lab_cli.rs`.
pub fn publish_corrupt_root(env: &Env, images: &Path, cmdline: &str) -> String {
    let padded = env.dir.path().join("corrupt.squashfs");
    let mut bytes = std::fs::read(images.join("demo-2.squashfs")).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&padded, &bytes).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    env.ok(&[
        "image",
        "add",
        "broken",
        "--version",
        "1",
        "--kernel",
        &p(&images.join("vmlinuz")),
        "--initrd",
        &p(&images.join("initramfs.cpio.gz")),
        "--rootfs",
        &p(&padded),
        "--cmdline",
        cmdline,
    ]);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "show", "broken@1", "--json"])).unwrap();
    let hex = shown["rootfs"]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .unwrap_or_else(|| panic!("{shown}"));
    let blob = env.data().join("blobs/sha256").join(hex);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut stored = std::fs::read(&blob).unwrap();
    stored[1000] ^= 0xff;
    std::fs::write(&blob, &stored).unwrap();
    hex.to_string()
}

/// `tabula serve` (HTTP only) on the host's loopback, which QEMU's user network shows as
/// 10.0.2.2; returns its config file (named `file` in the test dir) and the server.
pub fn serve_for_qemu(env: &Env, file: &str) -> (PathBuf, crate::serve::Server) {
    serve_for_qemu_on(env, file, None)
}

/// [`serve_for_qemu`] with the state store at `store_url` (`None`: the default SQLite).
pub fn serve_for_qemu_on(
    env: &Env,
    file: &str,
    store_url: Option<&str>,
) -> (PathBuf, crate::serve::Server) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = env.dir.path().join(file);
    let store = store_url
        .map(|u| format!("[store]\nurl = \"{u}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &cfg,
        format!(
            "[boot]\nconsole = \"ttyS0,115200\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://10.0.2.2:{port}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n{store}"
        ),
    )
    .unwrap();
    let server = crate::serve::start_with(env, &cfg, false);
    (cfg, server)
}
