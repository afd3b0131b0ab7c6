//! Test support: a throw-away PostgreSQL cluster, so the store suite and the integration
//! tests run against a real server. Not part of the product (hidden from the docs); it
//! lives in the library so unit tests (`src/store/tests.rs`) and `tests/it/` share it.
//!
//! [`PgCluster::start`] runs Debian's `initdb` and `pg_ctl` (package `postgresql`) in a
//! fresh directory under the system temp dir. As root (CI) the server runs as the
//! `postgres` user through `runuser`, in a directory chowned to it; as anyone else it runs
//! as that user. It listens on a Unix socket in that directory only (no TCP), with
//! `trust` authentication for the `postgres` role. Dropping the cluster, also while a
//! test panics, stops it (`pg_ctl stop -m immediate`) and removes the directory.
//!
//! Must not skip: when a cluster cannot start, [`PgCluster::start`] says why and how to
//! fix it, and [`PgCluster::shared`] panics with that, so a PostgreSQL test fails.
//! Synchronous on purpose (std processes only): usable from `#[test]` and `#[tokio::test]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The port number that names the socket file (`.s.PGSQL.<port>`) in the cluster's
/// directory; no TCP port is opened, so every cluster can use the same one.
const SOCKET_PORT: u16 = 5432;

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a throw-away PostgreSQL cluster: {0}")]
pub struct PgClusterError(String);

/// A running throw-away PostgreSQL cluster; stopped and removed when dropped.
#[derive(Debug)]
pub struct PgCluster {
    /// The temp directory: `data/` (the cluster), the socket and `server.log`.
    dir: PathBuf,
    /// Where `initdb`, `pg_ctl` and `createdb` are.
    bin: PathBuf,
    /// Server commands go through `runuser -u postgres --` (the test runs as root).
    as_postgres: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);
static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `/usr/lib/postgresql/<newest>/bin`, or `$TABULA_PG_BIN`.
fn find_bin() -> Result<PathBuf, PgClusterError> {
    if let Some(dir) = std::env::var_os("TABULA_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        PgClusterError(
            "no /usr/lib/postgresql/*/bin/initdb: install Debian's `postgresql` package \
             (tests/run.sh does), or point TABULA_PG_BIN at a directory with initdb and pg_ctl"
                .into(),
        )
    })
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} exited with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

impl PgCluster {
    /// Starts a new cluster of its own.
    pub fn start() -> Result<PgCluster, PgClusterError> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tabula-pg-{}-{n}", std::process::id()));
        // A leftover of an earlier process with the same pid (killed before its drop).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)
            .map_err(|e| PgClusterError(format!("create {}: {e}", dir.display())))?;
        // From here on, dropping `cluster` cleans up whatever was made.
        let cluster = PgCluster {
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| {
                    PgClusterError(
                        "no `postgres` user to run the server as (install Debian's \
                         `postgresql` package)"
                            .into(),
                    )
                })?;
            nix::unistd::chown(&cluster.dir, Some(user.uid), Some(user.gid))
                .map_err(|e| PgClusterError(format!("chown {}: {e}", cluster.dir.display())))?;
        }
        let data = cluster.data();
        cluster.server_command(
            "initdb",
            &[
                "--no-sync",
                "--no-instructions",
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
                path_str(&data)?,
            ],
        )?;
        let options = format!(
            "-c listen_addresses='' -k {} -p {SOCKET_PORT}",
            path_str(&cluster.dir)?
        );
        let log = cluster.dir.join("server.log");
        if let Err(e) = cluster.server_command(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        ) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(PgClusterError(format!("{}\nserver.log:\n{tail}", e.0)));
        }
        Ok(cluster)
    }

    /// A cluster shared by every test of this process that holds it at the same time:
    /// started on first use, stopped when the last holder drops it. Panics (the test
    /// fails) when it cannot start.
    pub fn shared() -> Arc<PgCluster> {
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(PgCluster::start().unwrap_or_else(|e| panic!("{e}")));
        *slot = Arc::downgrade(&c);
        c
    }

    /// Creates a new empty database and returns its `postgres://` URL.
    pub fn database(&self) -> Result<String, PgClusterError> {
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut cmd = Command::new(self.bin.join("createdb"));
        cmd.args(["-h", path_str(&self.dir)?, "-p", &SOCKET_PORT.to_string()])
            .args(["-U", "postgres", &name]);
        run(cmd)?;
        Ok(self.url(&name))
    }

    /// The URL of database `name` on this cluster (over its Unix socket).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost:{SOCKET_PORT}/{name}?host={}",
            self.dir.display()
        )
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data: the store becomes
    /// unreachable until [`PgCluster::resume`].
    pub fn pause(&self) -> Result<(), PgClusterError> {
        let data = path_str(&self.data())?.to_string();
        self.server_command("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
    }

    /// Starts a [`PgCluster::pause`]d server again, on the same socket.
    pub fn resume(&self) -> Result<(), PgClusterError> {
        let data = path_str(&self.data())?.to_string();
        let options = format!(
            "-c listen_addresses='' -k {} -p {SOCKET_PORT}",
            path_str(&self.dir)?
        );
        let log = path_str(&self.dir.join("server.log"))?.to_string();
        self.server_command(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
    }

    /// The directory holding the cluster, its socket and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs a server-side program (`initdb`, `pg_ctl`) as the cluster's owner.
    fn server_command(&self, program: &str, args: &[&str]) -> Result<(), PgClusterError> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // The server's cwd must be readable by its user.
        cmd.args(args).current_dir(&self.dir);
        run(cmd)
    }
}

fn run(mut cmd: Command) -> Result<(), PgClusterError> {
    let out = cmd
        .output()
        .map_err(|e| PgClusterError(format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PgClusterError(describe(&cmd, &out)))
    }
}

fn path_str(p: &Path) -> Result<&str, PgClusterError> {
    p.to_str()
        .ok_or_else(|| PgClusterError(format!("not UTF-8: {}", p.display())))
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists()
            && let Ok(data) = path_str(&self.data())
        {
            let data = data.to_string();
            if let Err(e) =
                self.server_command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            {
                eprintln!("{e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
