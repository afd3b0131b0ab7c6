//! The lab's reboot receiver: what a datacenter's power controller would be for a
//! rollout with `--reboot webhook`. A small HTTP server that takes tabula's webhooks,
//! refuses any whose Standard Webhooks signature does not verify
//! ([`crate::notify::sign::verify`], the same code a user's receiver would mirror), keeps
//! a log of every verified message (once per `webhook-id`: delivery is at least once),
//! and on `rollout.reboot_requested` for one of the lab's machines resets that VM over QMP
//! ([`super::qmp::system_reset`]) before answering, so a reset that failed is a non-2xx
//! answer and tabula sends the request again.
//!
//! It listens inside the lab namespace (where `tabula serve` delivers from), on a socket
//! the caller binds ([`super::network::bind_in`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::notify::sign;

/// How far a webhook's timestamp may be from the receiver's clock.
pub const TOLERANCE_S: i64 = 300;
/// The path tabula posts to (`http://10.77.0.1:<port>/hooks/lab`).
pub const PATH: &str = "/hooks/lab";

/// One verified webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub data: Value,
    /// For a reboot request of a lab machine: the QMP reset's outcome.
    pub reset: Option<Result<(), String>>,
}

impl Received {
    /// The machine the message is about (`data.machine`, else the subject).
    pub fn machine(&self) -> &str {
        self.data
            .get("machine")
            .and_then(Value::as_str)
            .unwrap_or(&self.subject)
    }
}

#[derive(Debug, Default)]
struct Log {
    received: Vec<Received>,
    refused: Vec<String>,
}

#[derive(Clone, Debug)]
struct Shared {
    key: Arc<Vec<u8>>,
    /// Machine name → its VM's QMP socket.
    qmp: Arc<HashMap<String, PathBuf>>,
    log: Arc<Mutex<Log>>,
    /// Serialises handling, so a retried id is never handled twice at once.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// The running receiver; stops when dropped or at [`Receiver::stop`].
#[derive(Debug)]
pub struct Receiver {
    shared: Shared,
    stop: CancellationToken,
}

impl Receiver {
    /// Serves on `listener` with the `whsec_…` `secret`, resetting the VMs of `qmp`.
    pub fn start(
        listener: tokio::net::TcpListener,
        secret: &str,
        qmp: HashMap<String, PathBuf>,
    ) -> Result<Receiver, sign::BadSecret> {
        let shared = Shared {
            key: Arc::new(sign::key(secret)?),
            qmp: Arc::new(qmp),
            log: Arc::default(),
            turn: Arc::default(),
        };
        let app = axum::Router::new()
            .route(PATH, axum::routing::post(hook))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
        });
        Ok(Receiver { shared, stop })
    }

    /// Every verified message so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .map(|l| l.received.clone())
            .unwrap_or_default()
    }

    /// Why each refused request was refused.
    pub fn refused(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.refused.clone())
            .unwrap_or_default()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = crate::store::now_ms() / 1000;
    if let Err(e) = sign::verify(&s.key, &id, &ts, &sig, &body, now, TOLERANCE_S) {
        let why = format!("{id}: {e}");
        println!("lab: webhook refused: {why}");
        if let Ok(mut l) = s.log.lock() {
            l.refused.push(why);
        }
        return (StatusCode::UNAUTHORIZED, e.to_string());
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a JSON payload".into());
    };
    let _turn = s.turn.lock().await;
    let done = s
        .log
        .lock()
        .map(|l| {
            l.received
                .iter()
                .any(|r| r.id == id && r.reset.as_ref().is_none_or(Result::is_ok))
        })
        .unwrap_or(false);
    if done {
        return (StatusCode::NO_CONTENT, String::new());
    }
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut r = Received {
        id,
        kind: str_of("type"),
        subject: str_of("subject"),
        data: v.get("data").cloned().unwrap_or(Value::Null),
        reset: None,
    };
    let mut status = StatusCode::NO_CONTENT;
    if r.kind == "rollout.reboot_requested"
        && let Some(sock) = s.qmp.get(r.machine())
    {
        let result = super::qmp::system_reset(sock)
            .await
            .map_err(|e| e.to_string());
        match &result {
            Ok(()) => println!(
                "lab: webhook {} {} (signature verified): QMP system_reset of {}",
                r.id,
                r.kind,
                r.machine()
            ),
            Err(e) => {
                println!(
                    "lab: webhook {}: reset of {} failed: {e}",
                    r.id,
                    r.machine()
                );
                status = StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        r.reset = Some(result);
    } else {
        println!(
            "lab: webhook {} {} {} (signature verified)",
            r.id,
            r.kind,
            r.machine()
        );
    }
    if let Ok(mut l) = s.log.lock() {
        l.received.push(r);
    }
    (status, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    /// A QMP peer answering every command; returns the commands it got.
    async fn qmp_peer(l: tokio::net::UnixListener) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"{\"QMP\": {\"capabilities\": []}}\r\n")
                .await
                .unwrap();
            while let Ok(Some(l)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&l).unwrap();
                got.push(v["execute"].as_str().unwrap().to_string());
                w.write_all(b"{\"return\": {}}\r\n").await.unwrap();
            }
            if got.iter().filter(|c| *c != "qmp_capabilities").count() >= 1 {
                return got;
            }
        }
        got
    }

    /// POSTs `body` signed with `secret` as message `id`; the status code.
    async fn post(addr: std::net::SocketAddr, secret: &str, id: &str, body: &str) -> u16 {
        let key = sign::key(secret).unwrap();
        let ts = crate::store::now_ms() / 1000;
        let sig = sign::signature(&key, id, ts, body.as_bytes());
        let req = format!(
            "POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_signed_reboot_request_resets_the_vm_once_and_a_forged_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("vm-1.qmp");
        let peer = tokio::spawn(qmp_peer(tokio::net::UnixListener::bind(&sock).unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = sign::secret_of(&[5; 24]);
        let rx = Receiver::start(
            listener,
            &secret,
            HashMap::from([("vm-1".to_string(), sock)]),
        )
        .unwrap();
        let reboot = sign::payload(
            7,
            "rollout.reboot_requested",
            "r1",
            0,
            r#"{"machine":"vm-1","rollout":"r1"}"#,
        );
        // Forged: signed with another secret. Refused, nothing reset.
        let forged = sign::secret_of(&[6; 24]);
        assert_eq!(post(addr, &forged, "msg_7", &reboot).await, 401);
        assert!(rx.received().is_empty());
        assert_eq!(rx.refused().len(), 1, "{:?}", rx.refused());
        // Genuine, then delivered again (at least once): one reset.
        assert_eq!(post(addr, &secret, "msg_7", &reboot).await, 204);
        assert_eq!(post(addr, &secret, "msg_7", &reboot).await, 204);
        let other = sign::payload(8, "boot_once.booted", "vm-2", 0, r#"{"machine":"vm-2"}"#);
        assert_eq!(post(addr, &secret, "msg_8", &other).await, 204);
        let got = rx.received();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            (got[0].kind.as_str(), got[0].machine(), got[0].reset.clone()),
            ("rollout.reboot_requested", "vm-1", Some(Ok(())))
        );
        assert_eq!((got[1].machine(), got[1].reset.clone()), ("vm-2", None));
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(5), peer)
                .await
                .unwrap()
                .unwrap(),
            ["qmp_capabilities", "system_reset"]
        );
    }

    #[tokio::test]
    async fn a_reset_that_fails_is_answered_so_tabula_retries() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = sign::secret_of(&[5; 24]);
        let rx = Receiver::start(
            listener,
            &secret,
            HashMap::from([("vm-1".to_string(), dir.path().join("none.qmp"))]),
        )
        .unwrap();
        let reboot = sign::payload(
            9,
            "rollout.reboot_requested",
            "r1",
            0,
            r#"{"machine":"vm-1"}"#,
        );
        assert_eq!(post(addr, &secret, "msg_9", &reboot).await, 503);
        let got = rx.received();
        assert!(
            got[0]
                .reset
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap_err()
                .contains("none.qmp")
        );
    }
}
