//! The lab's operator: runs `tabula` commands against the lab's config and data dir as
//! a user would type them (each printed as `$ tabula …` with its output, when shown),
//! reads their `--json` answers, and waits for conditions with a bound, failing with the
//! VM and stage named.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::LabError;

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(1000);

/// `tabula --config CONFIG --data-dir DATA …`.
#[derive(Clone, Debug)]
pub struct Operator {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
}

impl Operator {
    pub fn new(exe: &Path, config: &Path, data_dir: &Path) -> Operator {
        Operator {
            exe: exe.into(),
            config: config.into(),
            data_dir: data_dir.into(),
        }
    }

    /// Runs `tabula ARGS…`; its stdout, or an error with its stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String, LabError> {
        let out = Command::new(&self.exe)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--log", "warn"])
            .args(args)
            .env_remove("TABULA_CONFIG")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| LabError::Command {
                command: format!("tabula {}", args.join(" ")),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: format!("tabula {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Operator::run`], printed as the user would see it.
    pub async fn show(&self, args: &[&str]) -> Result<String, LabError> {
        let out = self.run(args).await?;
        println!("$ tabula {}", args.join(" "));
        for l in out.lines() {
            println!("  {l}");
        }
        Ok(out)
    }

    /// `tabula ARGS… --json`, parsed.
    pub async fn json(&self, args: &[&str]) -> Result<Value, LabError> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a).await?;
        serde_json::from_str(&out).map_err(|e| LabError::Command {
            command: format!("tabula {}", a.join(" ")),
            detail: format!("not JSON ({e}): {out}"),
        })
    }

    /// `machine boots NAME`, newest first.
    pub async fn boots(&self, machine: &str) -> Result<Vec<Boot>, LabError> {
        let v = self.json(&["machine", "boots", machine]).await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(Boot::of).collect())
            .unwrap_or_default())
    }

    /// `rollout show NAME --json`.
    pub async fn rollout(&self, name: &str) -> Result<Value, LabError> {
        self.json(&["rollout", "show", name]).await
    }
}

/// One boot attempt, as `machine boots --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub id: String,
    pub version: String,
    pub state: String,
    pub source: String,
    pub attempt: i64,
}

impl Boot {
    fn of(v: &Value) -> Boot {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        Boot {
            id: s("id"),
            version: s("version"),
            state: s("state"),
            source: s("source"),
            attempt: v["attempt"].as_i64().unwrap_or(0),
        }
    }

    /// `demo@2 booted (rollout:good/1, try 1)`.
    pub fn brief(&self) -> String {
        format!(
            "demo@{} {} ({}, try {})",
            self.version, self.state, self.source, self.attempt
        )
    }
}

/// Checks `cond` every second until it gives `Some`, for at most `limit`; then a
/// [`LabError::Stage`] naming `vm` and `stage`, with `last` (what was seen last).
pub async fn wait_for<T, F, Fut>(
    vm: &str,
    stage: &'static str,
    limit: Duration,
    stop: &CancellationToken,
    mut cond: F,
) -> Result<T, LabError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Waited<T>, LabError>>,
{
    let t = Instant::now();
    let mut last: String;
    loop {
        match cond().await? {
            Waited::Done(v) => return Ok(v),
            Waited::Not(why) => last = why,
            Waited::Fail(detail) => {
                return Err(LabError::Stage {
                    vm: vm.into(),
                    stage,
                    detail,
                });
            }
        }
        if t.elapsed() >= limit {
            return Err(LabError::Stage {
                vm: vm.into(),
                stage,
                detail: format!("not done after {limit:?}; last seen: {last}"),
            });
        }
        tokio::select! {
            _ = stop.cancelled() => return Err(LabError::Interrupted),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One check of [`wait_for`].
#[derive(Debug)]
pub enum Waited<T> {
    Done(T),
    /// Not yet, and what was seen.
    Not(String),
    /// It cannot come out right any more.
    Fail(String),
}
