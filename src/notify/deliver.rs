//! The webhook dispatcher: one task; every tick it queues new fleet events for the
//! webhooks that want them ([`Store::fan_out`], one transaction with the cursor) and sends
//! the due deliveries, each a signed `POST` (HTTP/1.1, `http://` URLs; a bounded request
//! and answer), logging the try. Retries back off from 1 s, doubling, to at most 10 min;
//! after [`MAX_ATTEMPTS`] a delivery is `failed` (kept in the log).
//!
//! At least once: a delivery is marked delivered only after a 2xx; a crash between the
//! answer and the mark sends it again, with the same `webhook-id`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::sign;
use crate::store::{DueRow, Store};

/// Tries of one delivery before it is given up.
pub const MAX_ATTEMPTS: i64 = 12;
/// How often the outbox is read.
pub const TICK: Duration = Duration::from_millis(500);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait after try `attempts` (1, 2, …) failed.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    (1000i64 << exp).min(600_000)
}

/// Runs until `shutdown`, dispatching only while this server holds the fleet's `jobs`
/// role (`held`), so one server sends each delivery (at least once: a holder killed
/// between a send and its record leaves the delivery due, and the next holder sends it
/// again with the same `webhook-id`).
pub async fn run(store: Store, held: crate::ha::Leadership, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // One dispatcher for the fleet: the holder of the `jobs` role.
        if !*held.borrow() {
            continue;
        }
        if let Err(e) = once(&store).await {
            tracing::error!(error = %e, "webhook dispatcher");
        }
    }
}

/// One tick: fan out, then send what is due.
pub async fn once(store: &Store) -> Result<(), crate::store::StoreError> {
    let now = crate::store::now_ms();
    store.fan_out(super::wants, now).await?;
    for d in store.due_deliveries(now, 32).await? {
        let attempts = d.attempts + 1;
        let result = send(&d).await;
        let now = crate::store::now_ms();
        let (state, next, code, error) = match result {
            Ok(c) if (200..300).contains(&c) => ("delivered", now, Some(c), None),
            Ok(c) => retry(attempts, now, Some(c), format!("status {c}")),
            Err(e) => retry(attempts, now, None, e),
        };
        if state != "delivered" {
            tracing::warn!(url = %d.url, event = d.event, attempts, error = ?error, "webhook delivery failed");
        }
        store
            .record_delivery(
                &d.webhook,
                d.event,
                state,
                attempts,
                next,
                code,
                error.as_deref(),
                now,
            )
            .await?;
    }
    Ok(())
}

fn retry(
    attempts: i64,
    now: i64,
    code: Option<i64>,
    why: String,
) -> (&'static str, i64, Option<i64>, Option<String>) {
    let state = if attempts >= MAX_ATTEMPTS {
        "failed"
    } else {
        "pending"
    };
    (state, now + backoff_ms(attempts), code, Some(why))
}

/// Sends one delivery; the answer's status.
async fn send(d: &DueRow) -> Result<i64, String> {
    let key = sign::key(&d.secret).map_err(|e| e.to_string())?;
    let body = sign::payload(d.event, &d.kind, &d.subject, d.at_ms, &d.data);
    let id = sign::message_id(d.event);
    let ts = crate::store::now_ms() / 1000;
    let sig = sign::signature(&key, &id, ts, body.as_bytes());
    let rest = d
        .url
        .strip_prefix("http://")
        .ok_or("only http:// webhook URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: tabula/{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\
         Connection: close\r\n\r\n{body}",
        crate::VERSION,
        body.len()
    );
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut s = tokio::net::TcpStream::connect(&host_port)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1024];
        let mut have = 0;
        while have < buf.len() {
            let n = s.read(&mut buf[have..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            have += n;
            if buf[..have].contains(&b'\n') {
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf[..have]);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<i64>().ok())
            .filter(|_| line.starts_with("HTTP/1."))
            .ok_or_else(|| "no HTTP status line in the answer".to_string())
    })
    .await
    .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_to_ten_minutes() {
        let got: Vec<i64> = [1, 2, 3, 4, 10, 11, 12, 30].map(super::backoff_ms).to_vec();
        assert_eq!(
            got,
            [1000, 2000, 4000, 8000, 512_000, 600_000, 600_000, 600_000]
        );
    }
}
