//! Least privilege for `tabula serve`: once every socket is bound, a server started as
//! root becomes `server.user` (default `tabula`) and keeps only the capabilities it
//! still uses while serving:
//!
//! | capability | used after the drop by |
//! |---|---|
//! | `CAP_NET_ADMIN` | `dhcp/socket.rs`: ARP entries for unicast replies (rtnetlink `RTM_NEWNEIGH`) |
//! | `CAP_NET_RAW` | `dhcp/ra.rs`: the ICMPv6 socket of router advertisements, opened in its task |
//! | `CAP_NET_BIND_SERVICE` | nothing today (every port is bound first); kept so that a socket re-bound later, and the systemd unit's `AmbientCapabilities=`, agree |
//!
//! Before dropping, while still root, the data directory is made `0700` and the state
//! files in it (the SQLite database and its `-wal`/`-shm`, `report.key`) `0600`, all
//! owned by that user; the umask becomes `077`, so files made later are private too.
//! The blob store keeps its owner: the server only reads it.
//!
//! The drop is `prctl(PR_SET_KEEPCAPS)`, `setgroups` (the user's group only),
//! `setresgid`, `setresuid`, `capset` (the one `unsafe` call, in `capset.rs`), then
//! `PR_SET_NO_NEW_PRIVS`. Capabilities belong to a thread, so it must run while the
//! process has exactly one ([`drop_privileges`] checks): `tabula serve` binds on a
//! single-threaded runtime, drops, and only then starts its worker threads.
//!
//! Not root: nothing changes. `server.user = ""`: stays root, said in the log. A user
//! that does not exist: stays root, with a warning (create it, or say `""`).

mod capset;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::config::Config;

/// The capabilities kept, by number (`linux/capability.h`) and name.
pub(crate) const KEPT: [(u32, &str); 3] = [
    (10, "CAP_NET_BIND_SERVICE"),
    (12, "CAP_NET_ADMIN"),
    (13, "CAP_NET_RAW"),
];

/// The kept set as the bit mask `/proc/<pid>/status` shows (`CapEff`, `CapPrm`).
pub(crate) fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |m, (c, _)| m | (1u64 << c))
}

/// Why the server could not become its user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivilegeError {
    #[error("cannot look up server.user {user:?}: {source}")]
    Lookup { user: String, source: nix::Error },
    #[error("cannot drop privileges with {0} threads running (must be one)")]
    Threads(usize),
    #[error("cannot make {path} private to server.user: {source}")]
    Prepare { path: PathBuf, source: io::Error },
    #[error("cannot drop privileges: {what} failed: {source}")]
    Step {
        what: &'static str,
        source: io::Error,
    },
    #[error("privileges not dropped as asked: {0}")]
    Verify(String),
}

/// What [`drop_privileges`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not started as root: nothing to drop.
    NotRoot,
    /// `server.user = ""`: still root.
    Disabled,
    /// The user does not exist: still root.
    NoSuchUser(String),
    /// Now this user, with only [`KEPT`].
    Dropped { user: String, uid: u32, gid: u32 },
}

/// Makes the process `config.user` with only [`KEPT`], its state files private to it;
/// logs one line saying what it runs as. Call with one thread, after binding.
pub(crate) fn drop_privileges(config: &Config) -> Result<Outcome, PrivilegeError> {
    if !Uid::effective().is_root() {
        return Ok(Outcome::NotRoot);
    }
    let Some(name) = config.user.as_deref() else {
        tracing::info!("server.user is empty: running as root with every capability");
        return Ok(Outcome::Disabled);
    };
    let user = User::from_name(name).map_err(|source| PrivilegeError::Lookup {
        user: name.to_string(),
        source,
    })?;
    let Some(user) = user else {
        tracing::warn!(
            user = name,
            "server.user does not exist: running as root with every capability \
             (create the user, or set server.user = \"\" to run as root on purpose)"
        );
        return Ok(Outcome::NoSuchUser(name.to_string()));
    };
    // The binding runtime's threads may take a moment to be gone.
    let mut threads = thread_count();
    for _ in 0..50 {
        if threads == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        threads = thread_count();
    }
    if threads != 1 {
        return Err(PrivilegeError::Threads(threads));
    }
    prepare(config, user.uid, user.gid)?;
    become_user(user.uid, user.gid)?;
    verify(user.uid, user.gid)?;
    let names: Vec<&str> = KEPT.iter().map(|(_, n)| *n).collect();
    tracing::info!(
        user = name,
        uid = user.uid.as_raw(),
        gid = user.gid.as_raw(),
        "running as {name}, keeping {}",
        names.join(", ")
    );
    Ok(Outcome::Dropped {
        user: name.to_string(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// The files that hold state and must be the user's own: the SQLite database (when the
/// store is SQLite) with its journal files, and the report key.
fn state_files(config: &Config) -> Vec<PathBuf> {
    let mut out = vec![config.data_dir.join(crate::http::report_key::FILE)];
    if let Some(rest) = config.store_url.strip_prefix("sqlite://") {
        let db = rest.split('?').next().unwrap_or(rest);
        if !db.is_empty() && db != ":memory:" {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                out.push(PathBuf::from(format!("{db}{suffix}")));
            }
        }
    }
    out
}

fn prepare(config: &Config, uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| PrivilegeError::Prepare { path, source }
    };
    let dir = &config.data_dir;
    fs::create_dir_all(dir).map_err(err(dir))?;
    own(dir, uid, gid, 0o700).map_err(err(dir))?;
    for f in state_files(config) {
        match own(&f, uid, gid, 0o600) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&f)(e)),
        }
    }
    Ok(())
}

fn own(path: &Path, uid: Uid, gid: Gid, mode: u32) -> io::Result<()> {
    nix::unistd::chown(path, Some(uid), Some(gid)).map_err(io::Error::from)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn become_user(uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    let step = |what: &'static str| {
        move |e: nix::Error| PrivilegeError::Step {
            what,
            source: e.into(),
        }
    };
    nix::sys::prctl::set_keepcaps(true).map_err(step("PR_SET_KEEPCAPS"))?;
    nix::unistd::setgroups(&[gid]).map_err(step("setgroups"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(step("setresgid"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(step("setresuid"))?;
    let caps: Vec<u32> = KEPT.iter().map(|(c, _)| *c).collect();
    capset::set(&caps).map_err(|source| PrivilegeError::Step {
        what: "capset",
        source,
    })?;
    nix::sys::prctl::set_keepcaps(false).map_err(step("clearing PR_SET_KEEPCAPS"))?;
    nix::sys::prctl::set_no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    Ok(())
}

/// Reads back what the kernel says this process now is.
fn verify(uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| PrivilegeError::Verify(format!("cannot read /proc/self/status: {e}")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let want_id = |id: u32| format!("{id}\t{id}\t{id}\t{id}");
    let mask = format!("{:016x}", kept_mask());
    let checks = [
        ("Uid:", want_id(uid.as_raw())),
        ("Gid:", want_id(gid.as_raw())),
        ("CapEff:", mask.clone()),
        ("CapPrm:", mask),
        ("CapInh:", format!("{:016x}", 0)),
    ];
    for (name, want) in checks {
        let got = field(name);
        if got != want {
            return Err(PrivilegeError::Verify(format!(
                "{name} is {got:?}, expected {want:?}"
            )));
        }
    }
    Ok(())
}

/// Threads of this process, from `/proc/self/status` (0 if unreadable).
fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_set_is_the_three_network_capabilities() {
        assert_eq!(kept_mask(), 0x3400);
        let cfg = Config::defaults(Some(Path::new("/srv/t")));
        let files = state_files(&cfg);
        for f in [
            "/srv/t/report.key",
            "/srv/t/tabula.db",
            "/srv/t/tabula.db-wal",
        ] {
            assert!(files.contains(&PathBuf::from(f)), "{f}: {files:?}");
        }
        assert_eq!(cfg.user.as_deref(), Some("tabula"));
    }
}
