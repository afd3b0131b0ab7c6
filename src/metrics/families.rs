//! Every metric family tabula exposes, defined here and nowhere else: names (`tabula_…`,
//! base units: seconds, bytes), help texts, labels and their fixed values, histogram
//! buckets. Front ends get a handle ([`DhcpMetrics`], [`TftpMetrics`], [`HttpMetrics`])
//! of counters made here; the README's metrics table lists the same families.
//!
//! No label identifies a machine (no MAC, address or name): a series per machine would
//! grow without bound; per-machine history is the event store's job.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labeled::{Labeled, Labeled2, Pair};

/// DHCP message types a client sends (and `other`).
pub const DHCP_RECEIVED: &[&str] = &[
    "discover", "request", "decline", "release", "inform", "other",
];
/// DHCP replies tabula sends.
pub const DHCP_REPLIES: &[&str] = &["offer", "ack", "nak", "proxy_offer", "proxy_ack", "other"];
/// Why a REQUEST was answered NAK (`NakReason::code`).
pub const DHCP_NAKS: &[&str] = &[
    "unknown-subnet",
    "wrong-subnet",
    "not-in-pool",
    "reserved-for-other",
    "has-reservation",
    "in-use",
    "quarantined",
    "other",
];
/// Why a DHCP packet got no reply: the stable codes of `DhcpIgnore::code` and
/// `IgnoreReason::code`, plus what fails before or after the policy.
pub const DHCP_DROPS: &[&str] = &[
    "malformed",
    "build-failed",
    "committer-gone",
    "dhcp-off",
    "no-lease-table",
    "not-netboot",
    "proxy-not-discover",
    "not-boot-server-request",
    "local-no-proxy-reply",
    "no-subnet",
    "unknown-subnet",
    "pool-exhausted",
    "not-client-message",
    "request-without-address",
    "no-pin",
    "unknown-machine",
    "pinned-none",
    "digest-not-published",
    "no-channel",
    "not-published",
    "manifest-unusable",
    "wrong-arch",
    "render",
    "other",
];
/// How a TFTP read request ended.
pub const TFTP_OUTCOMES: &[&str] = &[
    "completed",
    "client_error",
    "timeout",
    "refused",
    "io_error",
    "shutdown",
];
/// Data-plane routes (`Route::name`, and `malformed` for a head refused before routing).
pub const HTTP_ROUTES: &[&str] = &[
    "script",
    "blob",
    "loader",
    "report",
    "health",
    "ready",
    "refused",
    "malformed",
    "other",
];
/// Status codes the data plane answers; `none` when no answer was written (the client
/// went away first), `other` for any code not listed.
pub const HTTP_STATUSES: &[&str] = &[
    "200", "206", "304", "400", "403", "404", "405", "408", "411", "413", "416", "429", "431",
    "500", "503", "none", "other",
];
/// How a boot ended.
pub const BOOT_RESULTS: &[&str] = &["booted", "failed", "abandoned"];
/// A boot's phases, in order (as in `tabula lab`'s summary: each ends at its event).
pub const BOOT_PHASES: &[&str] = &[
    "dhcp",
    "loader",
    "script",
    "kernel+initrd",
    "root",
    "booted",
];
/// Boot phase buckets, seconds: sub-second stages up to a 30 min root download.
pub const PHASE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];
/// Lease changes per group commit.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// The DHCP front end's counters.
#[derive(Clone, Debug)]
pub struct DhcpMetrics {
    /// By message type ([`DHCP_RECEIVED`]).
    pub received: Labeled,
    /// By reply type ([`DHCP_REPLIES`]).
    pub replies: Labeled,
    /// By reason ([`DHCP_NAKS`]).
    pub naks: Labeled,
    /// By reason ([`DHCP_DROPS`]).
    pub dropped: Labeled,
    /// Group commits written (each one transaction, one `fsync`).
    pub commits: Counter,
    /// Lease changes per commit.
    pub commit_batch: Histogram,
}

/// The TFTP front end's counters.
#[derive(Clone, Debug)]
pub struct TftpMetrics {
    /// By outcome ([`TFTP_OUTCOMES`]).
    pub transfers: Labeled,
    /// Bytes of completed transfers.
    pub sent_bytes: Counter,
}

/// The data plane's HTTP counters.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// By route ([`HTTP_ROUTES`]) and status code ([`HTTP_STATUSES`]).
    pub requests: Labeled2,
    /// Bytes written to clients (heads, bodies, `sendfile`).
    pub sent_bytes: Counter,
}

/// Boots, folded from the committed boot events ([`super::boots`]).
#[derive(Clone, Debug)]
pub struct BootMetrics {
    pub started: Counter,
    /// By result ([`BOOT_RESULTS`]).
    pub finished: Labeled,
    /// One histogram per phase of [`BOOT_PHASES`], in that order.
    pub phases: Vec<Histogram>,
}

/// Families whose values are read at scrape time from counters kept elsewhere
/// ([`super::observed`]): each value is counted once, where it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A limit of the hardening work was hit (label `limit`: the config key).
    LimitHits,
    /// Boot events queued for the store.
    EventsQueued,
    /// Boot events committed to the store.
    EventsWritten,
    /// Boot events not stored (label `reason`).
    EventsDropped,
    /// Boot reports refused (label `reason`).
    ReportsRejected,
    /// Root-image streams that waited at the admission gate.
    AdmissionWaits,
}

impl Observed {
    pub const ALL: [Observed; 6] = [
        Observed::LimitHits,
        Observed::EventsQueued,
        Observed::EventsWritten,
        Observed::EventsDropped,
        Observed::ReportsRejected,
        Observed::AdmissionWaits,
    ];

    /// The family name (counters get `_total` when encoded).
    pub fn name(self) -> &'static str {
        match self {
            Observed::LimitHits => "tabula_limit_hits",
            Observed::EventsQueued => "tabula_events_queued",
            Observed::EventsWritten => "tabula_events_written",
            Observed::EventsDropped => "tabula_events_dropped",
            Observed::ReportsRejected => "tabula_reports_rejected",
            Observed::AdmissionWaits => "tabula_http_admission_waits",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Observed::LimitHits => {
                "Times a configured limit refused, cut or dropped something, by limit (its config key)"
            }
            Observed::EventsQueued => "Boot events queued for the store",
            Observed::EventsWritten => "Boot events committed to the store",
            Observed::EventsDropped => "Boot events not stored, by reason",
            Observed::ReportsRejected => "Boot reports refused, by reason",
            Observed::AdmissionWaits => {
                "Root-image streams that waited at the admission gate before being served"
            }
        }
    }

    /// The label key, or `None` for a single series.
    pub fn key(self) -> Option<&'static str> {
        match self {
            Observed::LimitHits => Some("limit"),
            Observed::EventsDropped | Observed::ReportsRejected => Some("reason"),
            Observed::EventsQueued | Observed::EventsWritten | Observed::AdmissionWaits => None,
        }
    }
}

/// Every counter family with its handle, registered into `registry`.
pub(super) struct Families {
    pub dhcp: DhcpMetrics,
    pub tftp: TftpMetrics,
    pub http: HttpMetrics,
    pub boots: BootMetrics,
}

impl Families {
    pub(super) fn register(r: &mut Registry) -> Families {
        let counter = |r: &mut Registry, name: &'static str, help: &'static str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let dhcp = DhcpMetrics {
            received: Labeled::register(
                r,
                "tabula_dhcp_received",
                "DHCP packets received, by message type",
                "type",
                DHCP_RECEIVED,
            ),
            replies: Labeled::register(
                r,
                "tabula_dhcp_replies",
                "DHCP replies sent, by reply type",
                "type",
                DHCP_REPLIES,
            ),
            naks: Labeled::register(
                r,
                "tabula_dhcp_naks",
                "DHCP NAKs sent, by reason",
                "reason",
                DHCP_NAKS,
            ),
            dropped: Labeled::register(
                r,
                "tabula_dhcp_dropped",
                "DHCP packets answered with nothing, by reason",
                "reason",
                DHCP_DROPS,
            ),
            commits: counter(
                r,
                "tabula_dhcp_lease_commits",
                "Lease group commits written (one transaction each)",
            ),
            commit_batch: {
                let h = Histogram::new(BATCH_BUCKETS.iter().copied());
                r.register(
                    "tabula_dhcp_lease_commit_batch_size",
                    "Lease changes per group commit",
                    h.clone(),
                );
                h
            },
        };
        let tftp = TftpMetrics {
            transfers: Labeled::register(
                r,
                "tabula_tftp_transfers",
                "TFTP read requests finished, by outcome",
                "outcome",
                TFTP_OUTCOMES,
            ),
            sent_bytes: counter(
                r,
                "tabula_tftp_sent_bytes",
                "Bytes of completed TFTP transfers",
            ),
        };
        let http = HttpMetrics {
            requests: Labeled2::register(
                r,
                "tabula_http_requests",
                "Data-plane HTTP requests, by route and the status they were answered with",
                ("route", "status"),
                (HTTP_ROUTES, HTTP_STATUSES),
            ),
            sent_bytes: counter(
                r,
                "tabula_http_sent_bytes",
                "Bytes the data plane wrote to clients (heads and bodies)",
            ),
        };
        let phases = Family::<Pair, Histogram>::new_with_constructor(
            (|| Histogram::new(PHASE_BUCKETS.iter().copied())) as fn() -> Histogram,
        );
        let boots = BootMetrics {
            started: counter(
                r,
                "tabula_boots_started",
                "Boots started (a machine's first boot event, or one after its last boot ended)",
            ),
            finished: Labeled::register(
                r,
                "tabula_boots_finished",
                "Boots ended, by result",
                "result",
                BOOT_RESULTS,
            ),
            phases: BOOT_PHASES
                .iter()
                .map(|p| phases.get_or_create(&[("phase", *p)]).clone())
                .collect(),
        };
        r.register(
            "tabula_boot_phase_duration_seconds",
            "Seconds each boot phase took, from the end of the previous phase seen",
            phases,
        );
        Families {
            dhcp,
            tftp,
            http,
            boots,
        }
    }
}
