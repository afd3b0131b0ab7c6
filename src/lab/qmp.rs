//! A QMP client for the lab's VMs: QEMU's machine protocol on the unix socket each VM
//! is started with (`-qmp unix:<work>/<name>.qmp,server=on,wait=off`). One connection
//! per command: read the greeting, `qmp_capabilities`, the command, its answer (the
//! asynchronous events QEMU sends in between are skipped). Every read is bounded.
//!
//! Used for what a lab's power controller does: `system_reset` (a rollout asked for a
//! reboot) and `quit`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long QEMU may take for one answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// Lines read while waiting for one answer (events in between included).
const MAX_LINES: usize = 256;

/// A failed QMP exchange, with the socket it was on.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting, reading or writing.
    #[error("QMP {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// QEMU answered with an error.
    #[error("QMP {path}: {command} refused: {class}: {desc}")]
    Refused {
        path: String,
        command: String,
        class: String,
        desc: String,
    },
    /// Not the protocol: no greeting, no JSON, no answer in time.
    #[error("QMP {1}: {0}")]
    Protocol(String, String),
}

/// Runs `command` (no arguments) on the QMP socket at `path` and returns its `return`.
pub async fn execute(path: &Path, command: &str) -> Result<Value, QmpError> {
    let p = path.display().to_string();
    let io = |source| QmpError::Io {
        path: p.clone(),
        source,
    };
    let stream = tokio::time::timeout(ANSWER_LIMIT, UnixStream::connect(path))
        .await
        .map_err(|_| QmpError::Protocol("connect timed out".into(), p.clone()))?
        .map_err(io)?;
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let greeting = next(&mut lines, &p).await?;
    if greeting.get("QMP").is_none() {
        return Err(QmpError::Protocol(
            format!("no QMP greeting but {greeting}"),
            p,
        ));
    }
    for cmd in ["qmp_capabilities", command] {
        let line = format!("{}\n", serde_json::json!({ "execute": cmd }));
        w.write_all(line.as_bytes()).await.map_err(io)?;
        let answer = answer(&mut lines, &p, cmd).await?;
        if cmd == command {
            return Ok(answer);
        }
    }
    unreachable!("the loop returns on its last command")
}

/// `system_reset`: the VM resets as if its reset button were pressed.
pub async fn system_reset(path: &Path) -> Result<(), QmpError> {
    execute(path, "system_reset").await.map(drop)
}

/// `quit`: QEMU exits at once.
pub async fn quit(path: &Path) -> Result<(), QmpError> {
    match execute(path, "quit").await {
        // QEMU may close the socket before its answer arrives.
        Err(QmpError::Protocol(m, _)) if m.contains("closed") => Ok(()),
        r => r.map(drop),
    }
}

type Lines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

async fn next(lines: &mut Lines, path: &str) -> Result<Value, QmpError> {
    let line = tokio::time::timeout(ANSWER_LIMIT, lines.next_line())
        .await
        .map_err(|_| QmpError::Protocol(format!("no answer in {ANSWER_LIMIT:?}"), path.into()))?
        .map_err(|source| QmpError::Io {
            path: path.into(),
            source,
        })?
        .ok_or_else(|| QmpError::Protocol("QEMU closed the socket".into(), path.into()))?;
    serde_json::from_str(&line)
        .map_err(|e| QmpError::Protocol(format!("not JSON ({e}): {line}"), path.into()))
}

/// The answer to `command`: its `return`, or its `error` as [`QmpError::Refused`].
async fn answer(lines: &mut Lines, path: &str, command: &str) -> Result<Value, QmpError> {
    for _ in 0..MAX_LINES {
        let v = next(lines, path).await?;
        if let Some(r) = v.get("return") {
            return Ok(r.clone());
        }
        if let Some(e) = v.get("error") {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            return Err(QmpError::Refused {
                path: path.into(),
                command: command.into(),
                class: s("class"),
                desc: s("desc"),
            });
        }
        // An event ({"event": …}): not our answer.
    }
    Err(QmpError::Protocol(
        format!("no answer to {command} in {MAX_LINES} lines"),
        path.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A QMP peer that speaks the protocol as QEMU 10 does (greeting, capabilities, an
    /// event before the answer) and records the commands it got.
    async fn peer(l: UnixListener, refuse: Option<&'static str>) -> Vec<String> {
        let (s, _) = l.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(
            b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 10}}, \"capabilities\": []}}\r\n",
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&l).unwrap();
            let cmd = v["execute"].as_str().unwrap().to_string();
            if cmd != "qmp_capabilities" {
                w.write_all(b"{\"event\": \"RESET\", \"data\": {\"guest\": false}}\r\n")
                    .await
                    .unwrap();
            }
            let answer = if refuse == Some(cmd.as_str()) {
                "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}}\r\n"
            } else {
                "{\"return\": {}}\r\n"
            };
            w.write_all(answer.as_bytes()).await.unwrap();
            got.push(cmd);
        }
        got
    }

    #[tokio::test]
    async fn system_reset_negotiates_then_resets_skipping_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.qmp");
        let l = UnixListener::bind(&path).unwrap();
        let p = tokio::spawn(peer(l, None));
        system_reset(&path).await.unwrap();
        assert_eq!(p.await.unwrap(), ["qmp_capabilities", "system_reset"]);
    }

    #[tokio::test]
    async fn a_refusal_and_a_missing_socket_are_errors_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.qmp");
        let l = UnixListener::bind(&path).unwrap();
        let p = tokio::spawn(peer(l, Some("quit")));
        let e = quit(&path).await.unwrap_err().to_string();
        assert!(e.contains("quit refused: CommandNotFound: nope"), "{e}");
        assert!(e.contains("vm.qmp"), "{e}");
        p.await.unwrap();
        let e = system_reset(&dir.path().join("gone.qmp"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("gone.qmp"), "{e}");
    }
}
