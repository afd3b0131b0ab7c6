use super::boots::Boots;
use super::*;
use crate::boot::{BootStage, Mac};

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_family_is_there_at_zero_with_help_and_type() {
    let text = Metrics::new().encode();
    for name in [
        "tabula_dhcp_received_total",
        "tabula_dhcp_replies_total",
        "tabula_dhcp_naks_total",
        "tabula_dhcp_dropped_total",
        "tabula_dhcp_lease_commits_total",
        "tabula_dhcp_lease_commit_batch_size",
        "tabula_tftp_transfers_total",
        "tabula_tftp_sent_bytes_total",
        "tabula_http_requests_total",
        "tabula_http_sent_bytes_total",
        "tabula_boots_started_total",
        "tabula_boots_finished_total",
        "tabula_boot_phase_duration_seconds",
        "tabula_limit_hits_total",
        "tabula_events_queued_total",
        "tabula_events_written_total",
        "tabula_events_dropped_total",
        "tabula_reports_rejected_total",
        "tabula_dhcp_pool_addresses",
        "tabula_dhcp_pool_used_addresses",
        "tabula_rollbacks_total",
        "tabula_boot_once_results_total",
        "tabula_rollout_members",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} has no type"
        );
    }
    assert_eq!(
        value(&text, r#"tabula_dhcp_received_total{type="discover"}"#),
        Some(0.0)
    );
    // Buckets up to 30 min.
    assert!(
        text.contains(r#"tabula_boot_phase_duration_seconds_bucket{le="1800",phase="root"}"#)
            || text
                .contains(r#"tabula_boot_phase_duration_seconds_bucket{phase="root",le="1800"}"#),
        "{text}"
    );
}

#[test]
fn counts_land_in_their_label_and_unknown_values_in_other() {
    let m = Metrics::new();
    m.dhcp().received.inc("discover");
    m.dhcp().received.inc("discover");
    m.dhcp().received.inc("bootp-from-mars");
    m.http().requests.get("script", "200").inc();
    m.http().requests.get("script", "999").inc();
    m.http().sent_bytes.inc_by(1234);
    let text = m.clone().encode();
    assert_eq!(
        value(&text, r#"tabula_dhcp_received_total{type="discover"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"tabula_dhcp_received_total{type="other"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"tabula_http_requests_total{route="script",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"tabula_http_requests_total{route="script",status="other"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, "tabula_http_sent_bytes_total"), Some(1234.0));
}

#[test]
fn observed_counters_are_read_at_scrape_and_added_per_label() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let m = Metrics::new();
    let a = Arc::new(AtomicU64::new(3));
    let r = a.clone();
    m.observe(
        Observed::LimitHits,
        "tftp.max_transfers",
        Box::new(move || r.load(Ordering::Relaxed)),
    );
    m.observe(Observed::LimitHits, "tftp.max_transfers", Box::new(|| 2));
    m.observe(Observed::EventsQueued, "", Box::new(|| 9));
    m.observe_pools(Box::new(|| vec![("10.0.0.0/24".into(), 100, 7)]));
    let series = r#"tabula_limit_hits_total{limit="tftp.max_transfers"}"#;
    assert_eq!(value(&m.encode(), series), Some(5.0));
    a.store(10, Ordering::Relaxed);
    let text = m.encode();
    assert_eq!(value(&text, series), Some(12.0));
    assert_eq!(value(&text, "tabula_events_queued_total"), Some(9.0));
    let q = a.clone();
    m.observe_single(
        "tabula_http_admission_queued",
        "Machines waiting",
        Single::Gauge,
        Box::new(move || q.load(Ordering::Relaxed) as f64),
    );
    let text = m.encode();
    assert_eq!(value(&text, "tabula_http_admission_queued"), Some(10.0));
    assert!(text.contains("# TYPE tabula_http_admission_queued gauge"));
    m.observe_single(
        "tabula_http_admission_wait_seconds",
        "Waited",
        Single::Counter,
        Box::new(|| 1.5),
    );
    let text = m.encode();
    assert_eq!(
        value(&text, "tabula_http_admission_wait_seconds_total"),
        Some(1.5)
    );
    assert!(!text.contains("_total_total"), "{text}");
    assert_eq!(
        value(&text, r#"tabula_dhcp_pool_addresses{subnet="10.0.0.0/24"}"#),
        Some(100.0)
    );
    assert_eq!(
        value(
            &text,
            r#"tabula_dhcp_pool_used_addresses{subnet="10.0.0.0/24"}"#
        ),
        Some(7.0)
    );
}

fn mac(n: u8) -> Mac {
    format!("52:54:00:00:00:{n:02x}").parse().unwrap()
}

#[test]
fn a_boot_is_started_timed_by_phase_and_finished_once() {
    let mut b = Boots::default();
    let m = mac(1);
    let f = b.fold(m, BootStage::DhcpOffer, 1_000, false);
    assert!(f.started);
    assert!(!b.fold(m, BootStage::DhcpAck, 1_500, false).started);
    assert_eq!(
        b.fold(m, BootStage::LoaderSent, 2_500, false).phases,
        vec![(1, 1.0)]
    );
    // iPXE's own DHCP: the same boot.
    assert!(
        b.fold(m, BootStage::DhcpOffer, 2_600, false)
            .finished
            .is_empty()
    );
    assert_eq!(
        b.fold(m, BootStage::ScriptSent, 3_000, false).phases,
        vec![(2, 0.5)]
    );
    assert!(
        b.fold(m, BootStage::KernelSent, 3_500, false)
            .phases
            .is_empty()
    );
    assert_eq!(
        b.fold(m, BootStage::InitrdSent, 4_000, false).phases,
        vec![(3, 1.0)]
    );
    assert_eq!(
        b.fold(m, BootStage::RootfsSent, 10_000, false).phases,
        vec![(4, 6.0)]
    );
    let f = b.fold(m, BootStage::Booted, 12_000, false);
    assert_eq!(f.finished, vec!["booted"]);
    assert_eq!(f.phases, vec![(5, 2.0)]);
    assert_eq!(b.open(), 0);
    // A report after the boot ended counts as ended, but starts nothing.
    let f = b.fold(m, BootStage::Booted, 13_000, false);
    assert!(!f.started);
}

#[test]
fn a_restart_after_the_root_image_abandons_the_boot_and_failures_end_only_when_final() {
    let mut b = Boots::default();
    let m = mac(2);
    b.fold(m, BootStage::DhcpOffer, 0, false);
    b.fold(m, BootStage::RootfsSent, 5_000, false);
    let f = b.fold(m, BootStage::DhcpOffer, 6_000, false);
    assert_eq!(f.finished, vec!["abandoned"]);
    assert!(f.started);
    assert!(
        b.fold(m, BootStage::Failed, 7_000, false)
            .finished
            .is_empty()
    );
    assert_eq!(
        b.fold(m, BootStage::Failed, 8_000, true).finished,
        vec!["failed"]
    );
    // Ignored events start nothing.
    assert!(!b.fold(mac(3), BootStage::Ignored, 0, false).started);
    assert_eq!(b.open(), 0);
}

#[test]
fn boot_folds_reach_the_counters() {
    let m = Metrics::new();
    let mut b = Boots::default();
    for (stage, at) in [(BootStage::DhcpAck, 0), (BootStage::Booted, 90_000)] {
        let f = b.fold(mac(4), stage, at, false);
        m.count_boot_for_test(&f);
    }
    let text = m.encode();
    assert_eq!(value(&text, "tabula_boots_started_total"), Some(1.0));
    assert_eq!(
        value(&text, r#"tabula_boots_finished_total{result="booted"}"#),
        Some(1.0)
    );
    assert!(
        text.contains(r#"tabula_boot_phase_duration_seconds_count{phase="booted"} 1"#),
        "{text}"
    );
}

/// `promtool check metrics` (Debian `prometheus`) on a scrape with every kind of
/// series filled: the format and Prometheus's naming rules.
#[test]
fn promtool_accepts_a_scrape() {
    use std::io::Write as _;
    let m = Metrics::new();
    m.dhcp().received.inc("discover");
    m.dhcp().commit_batch.observe(3.0);
    m.boots().phases[4].observe(42.0);
    m.observe(Observed::LimitHits, "http.max_connections", Box::new(|| 1));
    m.observe(Observed::EventsWritten, "", Box::new(|| 1));
    m.observe_pools(Box::new(|| vec![("10.0.0.0/24".into(), 10, 1)]));
    m.observe_single("tabula_q", "Queued", Single::Gauge, Box::new(|| 3.0));
    m.observe_single(
        "tabula_wait_seconds",
        "Waited",
        Single::Counter,
        Box::new(|| 1.5),
    );
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(m.encode().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fleet_counts_are_encoded_with_every_label() {
    let m = Metrics::new();
    let text = m.encode();
    assert_eq!(value(&text, "tabula_rollbacks_total"), Some(0.0), "{text}");
    for r in BOOT_ONCE_RESULTS {
        let s = format!("tabula_boot_once_results_total{{result=\"{r}\"}}");
        assert_eq!(value(&text, &s), Some(0.0), "{s}\n{text}");
    }
    m.set_fleet(FleetValues {
        rollbacks: 2,
        boot_once: [3, 1, 0],
        members: [5, 1, 0, 1, 2],
    });
    let text = m.encode();
    assert!(
        text.contains("# TYPE tabula_rollout_members gauge"),
        "{text}"
    );
    assert_eq!(value(&text, "tabula_rollbacks_total"), Some(2.0));
    assert_eq!(
        value(&text, "tabula_boot_once_results_total{result=\"booted\"}"),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "tabula_rollout_members{state=\"skipped_pinned\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "tabula_rollout_members{state=\"waiting\"}"),
        Some(5.0)
    );
}
