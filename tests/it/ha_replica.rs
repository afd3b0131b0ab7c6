//! Images replicated by digest between two `tabula serve` on one PostgreSQL (issue 16,
//! `docs/ha.md`), each in its own network namespace on one bridge, each with its own
//! data directory; the clients (curl, a QEMU guest) in a third namespace on the bridge.
//!
//! * A version published on A (the lab images) is fetched by B and every blob hashes,
//!   by coreutils, to its name on B's disk; a QEMU guest (TCG, direct kernel, user
//!   network from the client namespace) boots it from B: B's iPXE command line, B's
//!   root image, the report to B. Then A hands out a script for the other version
//!   (naming B after itself, `tabula.servers=`) and is killed with SIGKILL: the guest
//!   booting A's command line finds A gone, fetches the root image from B and reports to
//!   B (boot-time failover; B accepts a report of a boot A served). Last, B alone boots
//!   a version from its own script.
//! * Resume and corruption: A's link is slowed with `tc` while B fetches a 24 MiB root
//!   image; meanwhile B answers a request for it with a 307 to A. B is killed half way;
//!   once restarted it resumes from its partial file with a `Range` request (its log
//!   says from which byte) and the blob on its disk hashes to its name. Then B's copy of
//!   the kernel is corrupted on disk: B never sends it (a request gets the 307 to A),
//!   quarantines it, fetches it again and reports it present.
//!
//! Needs root, Debian's `postgresql`, `iproute2` (tc) and, for the boot, the lab
//! packages; fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tabula::store::testing::PgCluster;

use crate::common::{Env, sha256_of, wait_for};
use crate::netns::{Lab, sh};

/// Server addresses on the bridge: A, B; the client namespace is .9.
const ADDR: [&str; 2] = ["10.99.70.1", "10.99.70.2"];
const IDS: [&str; 2] = ["pxe-a", "pxe-b"];
const MAC: &str = crate::lab_direct::MAC;

struct Fabric {
    _lab: Lab,
    servers: [String; 2],
    server_ifs: [String; 2],
    client: String,
}

fn fabric() -> Fabric {
    let mut lab = Lab::new();
    let sw = lab.ns("sw");
    let br = format!("t{}br", lab.tag);
    sh(&["ip", "-n", &sw, "link", "add", &br, "type", "bridge"]);
    sh(&["ip", "-n", &sw, "link", "set", &br, "up"]);
    let port = |lab: &mut Lab, ns: &str, role: &str, addr: &str| {
        let (inside, on_sw) = lab.veth(ns, &sw, role);
        sh(&["ip", "-n", &sw, "link", "set", &on_sw, "master", &br]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &inside,
        ]);
        inside
    };
    let (a, b, c) = (lab.ns("a"), lab.ns("b"), lab.ns("c"));
    let ia = port(&mut lab, &a, "a", ADDR[0]);
    let ib = port(&mut lab, &b, "b", ADDR[1]);
    port(&mut lab, &c, "c", "10.99.70.9");
    Fabric {
        _lab: lab,
        servers: [a, b],
        server_ifs: [ia, ib],
        client: c,
    }
}

/// A `tabula serve` of the fabric, killed by PID when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_9();
    }
}

struct Setup {
    _pg: PgCluster,
    env: Env,
    f: Fabric,
    cfgs: [PathBuf; 2],
    /// A's data directory is `env.data()` (where the CLI publishes); B's is this.
    data_b: PathBuf,
}

fn setup() -> Setup {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let f = fabric();
    let cfgs = [0, 1].map(|i| {
        let p = env.dir.path().join(format!("{}.toml", IDS[i]));
        let addr = ADDR[i];
        std::fs::write(
            &p,
            format!(
                "[server]\nuser = \"\"\nid = \"{}\"\n[store]\nurl = \"{url}\"\n\
                 [boot]\nconsole = \"ttyS0,115200\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
                 [http]\nlisten = \"{addr}:8080\"\npublic_url = \"http://{addr}:8080\"\n\
                 [api]\nenabled = false\n",
                IDS[i]
            ),
        )
        .unwrap();
        p
    });
    env.use_config(cfgs[0].clone());
    let data_b = env.dir.path().join("data-b");
    Setup {
        _pg: pg,
        env,
        f,
        cfgs,
        data_b,
    }
}

impl Setup {
    fn serve(&self, i: usize, name: &str) -> Server {
        let log = self.env.dir.path().join(format!("{name}.log"));
        let data = if i == 0 {
            self.env.data()
        } else {
            self.data_b.clone()
        };
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.f.servers[i],
                env!("CARGO_BIN_EXE_tabula"),
            ])
            .args(["--config", self.cfgs[i].to_str().unwrap(), "serve"])
            .env("TABULA_DATA_DIR", data)
            .env("TABULA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server { child, log }
    }

    /// `curl -s -D - URL…` in the client namespace: (head, body).
    fn curl(&self, args: &[&str]) -> (String, Vec<u8>) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.f.client, "curl", "-s", "-D", "-"])
            .args(["--max-time", "20"])
            .args(args)
            .output()
            .expect("curl");
        let raw = out.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw.len(), |p| p + 4);
        (
            String::from_utf8_lossy(&raw[..split]).into_owned(),
            raw[split..].to_vec(),
        )
    }

    /// The REPLICAS column of `image list` for `name@version`.
    fn replicas(&self, name: &str, version: &str) -> String {
        let listed = self.env.ok(&["image", "list"]);
        listed
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(name) && w.next() == Some(version)
            })
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("{name}@{version} not listed:\n{listed}"))
    }

    /// Waits until B reports every blob of `name@version` present.
    fn wait_replicated(&self, name: &str, version: &str, secs: u64) {
        wait_for(&format!("{name}@{version} present on pxe-b"), secs, || {
            self.replicas(name, version).contains("pxe-b=present")
        });
    }

    fn blob_b(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.data_b.join("blobs/sha256").join(hex)
    }

    /// Every digest of `reference` (manifest first), from `image show --json`.
    fn digests(&self, reference: &str) -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.env.ok(&["image", "show", reference, "--json"])).unwrap();
        let (name, version) = reference.split_once('@').unwrap();
        let line = self.replicas(name, version);
        let manifest = line.split_whitespace().nth(2).unwrap().to_string();
        assert!(manifest.starts_with("sha256:"), "{line}");
        let mut out = vec![manifest];
        out.push(v["kernel"]["digest"].as_str().unwrap().to_string());
        for i in v["initrds"].as_array().unwrap() {
            out.push(i["digest"].as_str().unwrap().to_string());
        }
        if let Some(r) = v["rootfs"]["digest"].as_str() {
            out.push(r.to_string());
        }
        out
    }
}

/// The plan server `i`'s iPXE script gives MAC: kernel and initrd from B's disk (where
/// they were replicated to), the command line of server `i`'s first kernel line.
fn plan_from(s: &Setup, i: usize, with_peer: bool) -> crate::lab_direct::Plan {
    let url = format!(
        "http://{}:8080/boot.ipxe?mac={}",
        ADDR[i],
        MAC.replace(':', "-")
    );
    let (h, body) = s.curl(&[&url]);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    let script = String::from_utf8(body).unwrap();
    let kernel_line = script
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .unwrap_or_else(|| panic!("no kernel line:\n{script}"));
    let kernel_line = kernel_line.split(" || ").next().unwrap();
    let (kernel_url, cmdline) = kernel_line.split_once(' ').unwrap();
    let initrd_url = script
        .lines()
        .find_map(|l| l.strip_prefix("initrd "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no initrd line:\n{script}"));
    let hex_of = |u: &str| {
        let rest = u.split("/blobs/sha256/").nth(1).unwrap();
        rest[..64].to_string()
    };
    let arg = |k: &str| {
        cmdline
            .split(' ')
            .find_map(|a| a.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {cmdline}"))
            .to_string()
    };
    let (me, peer) = (
        format!("http://{}:8080", ADDR[i]),
        format!("http://{}:8080", ADDR[1 - i]),
    );
    assert!(
        arg("tabula.root=").starts_with(&format!("{me}/")),
        "the root image comes from the server of the script: {cmdline}"
    );
    assert!(
        arg("tabula.callback=").starts_with(&format!("{me}/")),
        "the report goes to the server of the script: {cmdline}"
    );
    if with_peer {
        assert_eq!(arg("tabula.servers="), format!("{me},{peer}"), "{script}");
        assert!(
            script.contains(&format!(" || kernel {peer}/blobs/")),
            "{script}"
        );
    } else {
        assert!(
            !script.contains("tabula.servers="),
            "no live peer: {script}"
        );
    }
    let manifest = arg("tabula.manifest=");
    crate::lab_direct::Plan {
        manifest,
        kernel: s.data_b.join("blobs/sha256").join(hex_of(kernel_url)),
        initrd: s.data_b.join("blobs/sha256").join(hex_of(&initrd_url)),
        rootfs_hex: arg("tabula.root_sha256="),
        cmdline: cmdline.to_string(),
    }
}

/// Boots `plan` in the client namespace; the console shows the marker of `version`, the
/// store a `booted` event of the plan's manifest. The console, for more checks.
fn boot(
    s: &Setup,
    plan: &crate::lab_direct::Plan,
    n: usize,
    version: &str,
) -> crate::lab_direct::Console {
    let before = s
        .env
        .events(MAC)
        .last()
        .map_or(0, |e| e["id"].as_i64().unwrap());
    let marker = format!("TABULA-DEMO-BOOTED name=demo version={version} ");
    let log = s.env.dir.path().join(format!("boot-{n}.log"));
    let t = Instant::now();
    let console = crate::lab_direct::boot_in(
        Some(&s.f.client),
        plan,
        &log,
        512,
        Duration::from_secs(150),
        |l| l.contains(&marker) || l.contains("giving up after"),
    );
    let want = format!("{marker}manifest={}", plan.manifest);
    assert!(
        console.at(&want).is_some(),
        "boot {n}: no `{want}` on the console:\n{}",
        console.text()
    );
    eprintln!(
        "ha_replica: boot {n} (demo@{version}) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    wait_for("the booted event", 20, || {
        s.env.events(MAC).iter().any(|e| {
            e["id"].as_i64().unwrap() > before
                && e["stage"] == "booted"
                && e["manifest"] == plan.manifest.as_str()
        })
    });
    console
}

#[test]
fn a_version_published_on_a_boots_a_vm_from_b_also_after_a_is_killed() {
    crate::lab_direct::require_lab();
    let s = setup();
    let t = Instant::now();
    let out = s.env.dir.path().join("out");
    crate::lab_direct::recipe(&s.env, "publish.sh", &out);
    eprintln!(
        "ha_replica: lab images published on pxe-a in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let mut a = s.serve(0, "a");
    let _b = s.serve(1, "b");
    let t = Instant::now();
    s.wait_replicated("demo", "1", 120);
    s.wait_replicated("demo", "2", 120);
    eprintln!(
        "ha_replica: demo@1 and demo@2 replicated to pxe-b in {:.1}s: {}",
        t.elapsed().as_secs_f64(),
        s.replicas("demo", "1")
    );
    // Every blob on B's disk hashes (by coreutils) to its name.
    for v in ["demo@1", "demo@2"] {
        for d in s.digests(v) {
            assert_eq!(sha256_of(&s.blob_b(&d)), d, "{v}: B's copy of {d}");
        }
    }
    s.env.ok(&["pin", "set", MAC, "demo@1"]);
    std::thread::sleep(Duration::from_secs(1));
    boot(&s, &plan_from(&s, 1, true), 1, "1");

    // A hands out a script for demo@2, then dies (kill -9): the machine booting it
    // finds A gone, fetches its root image from B and reports to B.
    s.env.ok(&["pin", "set", MAC, "demo@2"]);
    std::thread::sleep(Duration::from_secs(1));
    let from_a = plan_from(&s, 0, true);
    a.kill_9();
    let console = boot(&s, &from_a, 2, "2");
    let b_url = format!("http://{}:8080", ADDR[1]);
    assert!(
        console
            .at(&format!("did not answer; trying {b_url}/blobs/"))
            .is_some()
            && console
                .at(&format!("reporting to {b_url} from now on"))
                .is_some(),
        "no failover to B on the console:\n{}",
        console.text()
    );

    // And B alone, with its own script, still boots every version it replicated.
    // (A died more than the 5 s a source row stays live ago: B names no peer now.)
    s.env.ok(&["pin", "set", MAC, "demo@1"]);
    std::thread::sleep(Duration::from_secs(1));
    boot(&s, &plan_from(&s, 1, false), 3, "1");
}

#[test]
fn an_interrupted_fetch_resumes_by_range_and_a_corrupt_replica_is_never_served() {
    let s = setup();
    let kernel = s.env.file("vmlinuz", 1, 64 << 10);
    let root = s.env.file("root.img", 2, 24 << 20);
    s.env.ok(&[
        "image",
        "add",
        "big",
        "--version",
        "1",
        "--kernel",
        kernel.to_str().unwrap(),
        "--rootfs",
        root.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0",
    ]);
    let digests = s.digests("big@1");
    let (kernel_d, root_d) = (digests[1].clone(), digests[2].clone());
    let _a = s.serve(0, "a");
    // About 1.5 MB/s out of A: 24 MiB take ~16 s.
    sh(&[
        "ip",
        "netns",
        "exec",
        &s.f.servers[0],
        "tc",
        "qdisc",
        "add",
        "dev",
        &s.f.server_ifs[0],
        "root",
        "tbf",
        "rate",
        "12mbit",
        "burst",
        "32kbit",
        "latency",
        "400ms",
    ]);
    let partial = s.data_b.join("blobs/partial").join(&root_d[7..]);
    let mut b = s.serve(1, "b1");
    wait_for("B has a third of the root image", 90, || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 8 << 20)
    });
    // B lacks it: a machine asking B is sent to A.
    let blob_url = |host: &str, d: &str| format!("http://{host}:8080/blobs/sha256/{}", &d[7..]);
    let (h, _) = s.curl(&["-I", &blob_url(ADDR[1], &root_d)]);
    assert!(h.starts_with("HTTP/1.1 307"), "{h}");
    assert!(
        h.to_ascii_lowercase()
            .contains(&format!("location: {}", blob_url(ADDR[0], &root_d))),
        "{h}"
    );
    let listed = s.replicas("big", "1");
    assert!(listed.contains("pxe-b=fetching"), "{listed}");
    b.kill_9();
    let had = std::fs::metadata(&partial).unwrap().len();
    assert!(had > 0 && had < 24 << 20, "{had}");
    sh(&[
        "ip",
        "netns",
        "exec",
        &s.f.servers[0],
        "tc",
        "qdisc",
        "del",
        "dev",
        &s.f.server_ifs[0],
        "root",
    ]);
    let b = s.serve(1, "b2");
    s.wait_replicated("big", "1", 90);
    let log = b.log();
    let resumed = log
        .lines()
        .find(|l| l.contains("resuming a blob fetch by Range") && l.contains(&root_d))
        .unwrap_or_else(|| panic!("no resume logged:\n{log}"));
    let from: u64 = resumed
        .split("from=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    assert_eq!(
        from, had,
        "resumed from the partial file's length: {resumed}"
    );
    eprintln!(
        "ha_replica: B resumed the root image at byte {from} of {}",
        24 << 20
    );
    for d in &digests {
        assert_eq!(sha256_of(&s.blob_b(d)), *d, "B's copy of {d}");
    }
    let (h, body) = s.curl(&[&blob_url(ADDR[1], &root_d)]);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(body.len(), 24 << 20);

    // Corrupt B's kernel on disk: never sent, quarantined, fetched again.
    let kb = s.blob_b(&kernel_d);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&kb, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&kb).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&kb, &bytes).unwrap();
    let (h, body) = s.curl(&[&blob_url(ADDR[1], &kernel_d)]);
    assert!(
        h.starts_with("HTTP/1.1 307"),
        "a corrupt blob was answered: {h}"
    );
    assert!(body.is_empty());
    assert!(
        s.data_b
            .join("blobs/quarantine")
            .join(&kernel_d[7..])
            .exists(),
        "quarantined"
    );
    wait_for("B fetched the kernel again", 30, || {
        kb.exists() && sha256_of(&kb) == kernel_d
    });
    s.wait_replicated("big", "1", 30);
    let (h, body) = s.curl(&[&blob_url(ADDR[1], &kernel_d)]);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(body, std::fs::read(&kernel).unwrap());
    assert!(
        b.log().contains("blob does not hash to its name"),
        "{}",
        b.log()
    );
    wait_for_path_gone(&partial);
}

fn wait_for_path_gone(p: &Path) {
    wait_for("the partial file is gone", 10, || !p.exists());
}
