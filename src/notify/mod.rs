//! Webhooks: fleet events (`boot.booted`, `boot.failed`, `machine.rolled_back`,
//! `rollout.*`, `boot_once.*`) delivered at least once to the URLs operators registered,
//! from an outbox in the store, signed the Standard Webhooks way.
//!
//! [`sign`] is pure (the signature and the payload); [`deliver`] is the one task that
//! fans events out into deliveries and sends the due ones, with backoff, logging every
//! try in `webhook_deliveries`. A delivery is done on a 2xx answer; anything else is
//! retried, so a receiver must accept a repeated `webhook-id`.
//!
//! The payload, version 1 (one JSON object per request, `content-type: application/json`):
//!
//! ```json
//! {"version": 1, "id": "msg_42", "type": "machine.rolled_back", "timestamp": "2026-12-02T04:00:00Z",
//!  "subject": "m13", "data": { … the event's fields … }}
//! ```

pub mod deliver;
pub mod sign;

/// Whether a webhook subscribed to `patterns` (comma-separated: an event type, `prefix.*`,
/// `*`, or the short names `booted` and `failed` for `boot.booted`, `boot.failed`) wants
/// events of `kind`.
pub fn wants(patterns: &str, kind: &str) -> bool {
    patterns.split(',').map(str::trim).any(|p| match p {
        "*" => true,
        "booted" | "failed" => kind.strip_prefix("boot.") == Some(p),
        p => match p.strip_suffix(".*") {
            Some(prefix) => kind
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('.')),
            None => p == kind,
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_select_event_types() {
        let table = [
            ("booted,failed", "boot.booted", true),
            ("booted,failed", "boot.failed", true),
            ("booted,failed", "boot.timed_out", false),
            ("machine.*", "machine.rolled_back", true),
            ("machine.*", "machines.x", false),
            ("rollout.*", "rollout.paused", true),
            ("*", "boot_once.booted", true),
            ("boot_once.booted", "boot_once.booted", true),
            ("boot_once.booted", "boot_once.failed", false),
            ("", "boot.booted", false),
        ];
        for (p, k, want) in table {
            assert_eq!(super::wants(p, k), want, "{p} / {k}");
        }
    }
}
