//! Which counter a front end already keeps is exposed as which metric: the daemon owns
//! both sides, so neither the front ends nor `crate::metrics` import each other. Each
//! reader runs at scrape time only.
//!
//! `limit` label values are the config keys whose limit was hit.

use std::sync::Arc;

use crate::events::EventSink;
use crate::http::HttpState;
use crate::metrics::{Metrics, Observed, Single};
use crate::tftp;

/// The data plane's limit, admission, report and lease-match counters.
pub(super) fn expose_http(m: &Metrics, st: &HttpState) {
    let limits = &st.limits;
    let stat = |pick: fn(&crate::http::LimitStats) -> u64| {
        let l = Arc::clone(limits);
        Box::new(move || pick(&l.stats()))
    };
    for (label, pick) in [
        (
            "http.head_timeout",
            (|s| s.head_timeouts) as fn(&crate::http::LimitStats) -> u64,
        ),
        ("http.body_timeout", |s| s.body_timeouts),
        ("http.send_timeout", |s| s.send_timeouts),
        ("http.max_connections", |s| s.refused_total),
        ("http.max_connections_per_client", |s| s.refused_per_client),
        ("http.accept_failed", |s| s.accept_errors),
        ("http.malformed_request", |s| s.bad_requests),
    ] {
        m.observe(Observed::LimitHits, label, stat(pick));
    }
    let a = st.admission.clone();
    m.observe(
        Observed::LimitHits,
        "http.admission",
        Box::new(move || a.stats().busy_total),
    );
    let a = st.admission.clone();
    m.observe(
        Observed::AdmissionWaits,
        "",
        Box::new(move || a.stats().waited_total),
    );
    type Pick = fn(&crate::http::admission::AdmissionStats) -> f64;
    let singles: [(&'static str, &'static str, Single, Pick); 4] = [
        (
            "tabula_http_admission_queued",
            "Machines waiting at the admission gate for a root-image slot now",
            Single::Gauge,
            |s| s.queued as f64,
        ),
        (
            "tabula_http_admission_active",
            "Root-image streams admitted and being sent now",
            Single::Gauge,
            |s| s.active as f64,
        ),
        (
            "tabula_http_admission_wait_seconds",
            "Seconds root-image streams spent waiting at the admission gate, summed",
            Single::Counter,
            |s| s.wait_ms_total as f64 / 1000.0,
        ),
        (
            "tabula_http_admission_wait_max_seconds",
            "Longest single wait at the admission gate since start",
            Single::Gauge,
            |s| s.wait_ms_max as f64 / 1000.0,
        ),
    ];
    for (name, help, kind, pick) in singles {
        let a = st.admission.clone();
        m.observe_single(name, help, kind, Box::new(move || pick(&a.stats())));
    }
    let r = st.report_refusals.clone();
    m.observe(
        Observed::ReportsRejected,
        "missing_token",
        Box::new(move || r.missing.total()),
    );
    let r = st.report_refusals.clone();
    m.observe(
        Observed::ReportsRejected,
        "invalid_token",
        Box::new(move || r.invalid.total()),
    );
    if let Some(lm) = &st.lease_match {
        let l = lm.clone();
        m.observe(
            Observed::ReportsRejected,
            "lease_mismatch",
            Box::new(move || l.reports.total()),
        );
        let l = lm.clone();
        m.observe(
            Observed::LimitHits,
            "http.require_lease_match",
            Box::new(move || l.total()),
        );
    }
}

/// TFTP's refusals at its transfer caps.
pub(super) fn expose_tftp(m: &Metrics, refusals: &Arc<tftp::Refusals>) {
    let r = refusals.clone();
    m.observe(
        Observed::LimitHits,
        "tftp.max_transfers",
        Box::new(move || r.busy.total()),
    );
    let r = refusals.clone();
    m.observe(
        Observed::LimitHits,
        "tftp.max_transfers_per_client",
        Box::new(move || r.greedy.total()),
    );
}

/// The event sink's and writer's counters.
pub(super) fn expose_events(m: &Metrics, sink: &EventSink) {
    let read = |pick: fn(&crate::events::SinkStats) -> u64| {
        let s = sink.counters();
        Box::new(move || pick(&s.stats()))
    };
    m.observe(Observed::EventsQueued, "", read(|s| s.queued));
    m.observe(Observed::EventsWritten, "", read(|s| s.written));
    m.observe(Observed::EventsDropped, "queue_full", read(|s| s.dropped));
    m.observe(
        Observed::EventsDropped,
        "rate_limited",
        read(|s| s.rate_limited),
    );
    m.observe(Observed::EventsDropped, "store_failed", read(|s| s.lost));
    m.observe(Observed::LimitHits, "events.queue", read(|s| s.dropped));
    m.observe(Observed::LimitHits, "events.rate", read(|s| s.rate_limited));
    m.observe(
        Observed::LimitHits,
        "events.max_detail_bytes",
        read(|s| s.truncated),
    );
}

/// How often the fleet's counts are read from the store for `/metrics`.
pub(super) const FLEET_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the fleet's counts (rollbacks, boot-once results, rollout members by state)
/// from the store every [`FLEET_REFRESH`] until `shutdown`; a failed read keeps the last
/// values (and is logged once per failure).
pub(super) async fn refresh_fleet(
    m: Metrics,
    store: crate::store::Store,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(FLEET_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match store.fleet_counts().await {
            Ok(c) => m.set_fleet(fleet_values(&c)),
            Err(e) => tracing::debug!(error = %e, "fleet metrics not read"),
        }
    }
}

/// The store's counts in the metrics' fixed label order (unknown states are left out).
fn fleet_values(c: &crate::store::FleetCounts) -> crate::metrics::FleetValues {
    let pick = |labels: &[&str], rows: &[(String, u64)], out: &mut [u64]| {
        for (state, n) in rows {
            if let Some(i) = labels.iter().position(|l| l == state) {
                out[i] = *n;
            }
        }
    };
    let mut v = crate::metrics::FleetValues {
        rollbacks: c.rollbacks,
        ..Default::default()
    };
    pick(
        &crate::metrics::BOOT_ONCE_RESULTS,
        &c.boot_once,
        &mut v.boot_once,
    );
    pick(&crate::metrics::MEMBER_STATES, &c.members, &mut v.members);
    v
}
