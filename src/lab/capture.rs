//! `tabula lab --capture FILE`: tcpdump on the lab bridge for the whole run, so what the
//! firmware and tabula said to each other (DHCP, TFTP, HTTP, IPv6 router solicitations
//! and advertisements) can be read afterwards (`tcpdump -r FILE`). tcpdump runs inside
//! the lab namespace (`ip netns exec` execs, so the child is tcpdump) and is stopped by
//! its PID (SIGTERM, so it flushes) before the namespace goes; dropping a [`Capture`]
//! kills it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::LabError;
use super::network::BRIDGE;

/// How long tcpdump may take to open the bridge.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running capture.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on the bridge of namespace `ns`, writing every packet (`-U`: as it
    /// comes) to `file`, and waits until the file exists (tcpdump is listening).
    pub async fn start(ns: &str, file: &Path) -> Result<Capture, LabError> {
        let _ = std::fs::remove_file(file);
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-i", BRIDGE, "-U", "-n", "-s", "0",
            ])
            .arg("-w")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LabError::Command {
                command: "tcpdump".into(),
                detail: e.to_string(),
            })?;
        let mut cap = Capture {
            child,
            file: file.to_path_buf(),
        };
        let t = std::time::Instant::now();
        while !file.exists() {
            if !matches!(cap.child.try_wait(), Ok(None)) || t.elapsed() > START_LIMIT {
                return Err(LabError::Command {
                    command: format!("tcpdump -i {BRIDGE} -w {}", file.display()),
                    detail: "did not start capturing".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(cap)
    }

    /// The capture file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// SIGTERM (tcpdump flushes and exits), then SIGKILL after a grace period.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
