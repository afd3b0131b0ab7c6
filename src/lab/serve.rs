//! `tabula serve` as a child inside the lab namespace (`ip netns exec` execs, so the
//! child is tabula itself), with the lab's config and data dir. Its log lines are
//! streamed with a `[tabula]` prefix. [`Server::stop`] sends SIGTERM (tabula stops
//! gracefully, flushing boot events) and kills it after a grace period; dropping a
//! [`Server`] kills it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::LabError;

/// How long tabula may take to bind its sockets.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The running server.
#[derive(Debug)]
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `exe serve` in namespace `ns` and waits until its DHCP socket listens
    /// (the last `listening:` line it prints).
    pub async fn start(
        exe: &Path,
        ns: &str,
        config: &Path,
        data_dir: &Path,
    ) -> Result<Server, LabError> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--log", "warn", "serve"])
            .env_remove("TABULA_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LabError::Serve(e.to_string()))?;
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    eprintln!("[tabula] {l}");
                }
            });
        }
        let Some(out) = child.stdout.take() else {
            return Err(LabError::Serve("no stdout".into()));
        };
        let mut lines = BufReader::new(out).lines();
        let ready = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(l)) = lines.next_line().await {
                println!("[tabula] {l}");
                if l.starts_with("listening: dhcp") {
                    return true;
                }
            }
            false
        })
        .await;
        match ready {
            Ok(true) => {}
            Ok(false) => {
                return Err(LabError::Serve(
                    "exited before listening (see its errors above)".into(),
                ));
            }
            Err(_) => {
                return Err(LabError::Serve(format!(
                    "not listening after {START_LIMIT:?}"
                )));
            }
        }
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                println!("[tabula] {l}");
            }
        });
        Ok(Server { child })
    }

    /// Whether tabula is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, up to 5 s for a graceful stop, then SIGKILL.
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
