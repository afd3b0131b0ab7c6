//! Standard Webhooks signing and verification ([`verify`], what a receiver such as `tabula lab`
//! runs), pure: `webhook-signature: v1,<base64 HMAC-SHA256 over
//! "<webhook-id>.<webhook-timestamp>.<body>">`, the key being the base64 after the
//! secret's `whsec_` prefix. The payload of a fleet event, version 1.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A secret that is not `whsec_<base64>`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret is whsec_ followed by base64 (at least 16 bytes)")]
pub struct BadSecret;

/// The key bytes of a `whsec_…` secret.
pub fn key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or(BadSecret)?)
        .map_err(|_| BadSecret)?;
    if b.len() < 16 {
        return Err(BadSecret);
    }
    Ok(b)
}

/// A secret made of `bytes` (random, from the caller).
pub fn secret_of(bytes: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` value for message `id` sent at `timestamp` (Unix seconds).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut h = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    h.update(id.as_bytes());
    h.update(b".");
    h.update(timestamp.to_string().as_bytes());
    h.update(b".");
    h.update(body);
    format!("v1,{}", STANDARD.encode(h.finalize().into_bytes()))
}

/// Why a received webhook was refused by [`verify`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// `webhook-timestamp` is not Unix seconds.
    #[error("webhook-timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// Too far from the receiver's clock (a replay, or a clock that is off).
    #[error("webhook-timestamp is {0} s away from now (at most {1} s allowed)")]
    Stale(i64, i64),
    /// No `v1,` signature in `webhook-signature` matches.
    #[error("no v1 signature in webhook-signature matches the body")]
    Mismatch,
}

/// Checks a received message the Standard Webhooks way: the timestamp within
/// `tolerance_s` of `now_s`, and one of the space-separated `v1,<base64>` signatures
/// equal to [`signature`] over id, timestamp and body (compared in constant time).
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_string()))?;
    let skew = now_s.saturating_sub(ts).saturating_abs();
    if skew > tolerance_s {
        return Err(VerifyError::Stale(skew, tolerance_s));
    }
    let mut h = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    h.update(id.as_bytes());
    h.update(b".");
    h.update(ts.to_string().as_bytes());
    h.update(b".");
    h.update(body);
    let ok = signatures.split_whitespace().any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|sig| h.clone().verify_slice(&sig).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The message id of fleet event `seq` (the same on every retry).
pub fn message_id(seq: i64) -> String {
    format!("msg_{seq}")
}

/// The version-1 payload of a fleet event.
pub fn payload(seq: i64, kind: &str, subject: &str, at_ms: i64, data: &str) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    let data: serde_json::Value =
        serde_json::from_str(data).unwrap_or(serde_json::Value::String(data.to_string()));
    serde_json::json!({
        "version": 1, "id": message_id(seq), "type": kind,
        "timestamp": humantime::format_rfc3339_seconds(t).to_string(),
        "subject": subject, "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_verifies() {
        // The example of the Standard Webhooks specification.
        let k = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn what_is_signed_verifies_and_nothing_else() {
        let k = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let sig = signature(&k, id, 1614265330, body);
        let at = 1614265330;
        assert_eq!(
            verify(&k, id, "1614265330", &sig, body, at + 10, 300),
            Ok(())
        );
        // Several signatures (key rotation): one match is enough.
        let two = format!("v1,AAAA {sig}");
        assert_eq!(verify(&k, id, "1614265330", &two, body, at, 300), Ok(()));
        type Case<'a> = (&'a str, &'a str, &'a str, &'a [u8], i64, VerifyError);
        let table: [Case; 6] = [
            (id, "1614265330", &sig, b"{}", at, VerifyError::Mismatch),
            (
                "msg_other",
                "1614265330",
                &sig,
                body,
                at,
                VerifyError::Mismatch,
            ),
            (id, "1614265331", &sig, body, at, VerifyError::Mismatch),
            (id, "1614265330", "v2,abc", body, at, VerifyError::Mismatch),
            (
                id,
                "soon",
                &sig,
                body,
                at,
                VerifyError::BadTimestamp("soon".into()),
            ),
            (
                id,
                "1614265330",
                &sig,
                body,
                at + 301,
                VerifyError::Stale(301, 300),
            ),
        ];
        for (id, ts, sig, body, now, want) in table {
            assert_eq!(
                verify(&k, id, ts, sig, body, now, 300),
                Err(want),
                "{id} {ts} {sig}"
            );
        }
        let other = key(&secret_of(&[9; 24])).unwrap();
        assert_eq!(
            verify(&other, id, "1614265330", &sig, body, at, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let s = secret_of(&[7; 24]);
        assert_eq!(key(&s).unwrap(), vec![7; 24]);
        for bad in ["", "whsec_", "whsec_!!", "secret", &secret_of(&[1; 8])] {
            assert_eq!(key(bad), Err(BadSecret), "{bad}");
        }
    }

    #[test]
    fn the_payload_is_versioned_json() {
        let p: serde_json::Value =
            serde_json::from_str(&payload(42, "boot.booted", "m1", 0, r#"{"a":1}"#)).unwrap();
        assert_eq!(p["version"], 1);
        assert_eq!(p["id"], "msg_42");
        assert_eq!(p["type"], "boot.booted");
        assert_eq!(p["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(p["data"]["a"], 1);
    }
}
