//! Running the real binary against a throw-away data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// A config every command of this env reads (`TABULA_CONFIG`), when set.
    config: std::sync::OnceLock<PathBuf>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            config: std::sync::OnceLock::new(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tabula"));
        c.env("TABULA_DATA_DIR", self.data())
            .env_remove("TABULA_CONFIG")
            .env("TABULA_LOG", "warn");
        if let Some(cfg) = self.config() {
            c.env("TABULA_CONFIG", cfg);
        }
        c
    }

    /// From now on every command (and lab recipe) reads `cfg` (e.g. a `store.url`).
    pub fn use_config(&self, cfg: PathBuf) {
        assert!(self.config.set(cfg).is_ok(), "config already set");
    }

    /// The config set by [`Env::use_config`].
    pub fn config(&self) -> Option<&Path> {
        self.config.get().map(PathBuf::as_path)
    }

    /// Runs `tabula ARGS…` and captures everything.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command().args(args).output().expect("spawn tabula");
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !r.stderr.contains("panicked"),
            "tabula {args:?} panicked:\n{}",
            r.stderr
        );
        r
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "tabula {args:?} failed:\n{}{}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Every stored event of `mac` (its last 100,000), oldest first, as JSON.
    pub fn events(&self, mac: &str) -> Vec<serde_json::Value> {
        self.ok(&["events", mac, "--json", "--last", "100000"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs and requires a one-line error and exit status 1; returns the error line.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 1,
            "tabula {args:?} should fail:\n{}{}",
            r.stdout, r.stderr
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected, got:\n{}", r.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0].to_string()
    }

    /// Writes a file of `len` pseudo-random bytes derived from `seed`.
    pub fn file(&self, name: &str, seed: u64, len: usize) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes(seed, len)).expect("write file");
        p
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `sha256:<hex>` of a file, computed independently of tabula (coreutils).
pub fn sha256_of(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    let s = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", s.split_whitespace().next().unwrap_or(""))
}

/// The value after `key` on the line of `text` that starts with `key`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim())
}

/// The `stage` of each event.
pub fn stages(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `f` every 100 ms until it holds; fails naming `what` after `secs` seconds (a
/// bound for a loaded machine, not a timing check).
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
