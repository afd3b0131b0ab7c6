//! `/metrics` scraped during a real lab boot (the direct-kernel VM of `lab_direct.rs`,
//! reusing its helpers): every scrape taken while the VM boots passes `promtool check
//! metrics`, and the boot counters moved by exactly one boot: started, finished
//! `booted`, its `root` and `booted` phases timed, the root image and the reports
//! counted on the data plane.
//!
//! Needs root and the lab packages, like `lab_direct.rs` (fails, never skips).

use std::time::{Duration, Instant};

use crate::lab_direct::{MAC, boot_with, explain, recipe, require_lab, serve_for_qemu};
use crate::metrics::{promtool_check, scrape, sum, value};

#[test]
fn a_lab_boot_moves_the_boot_counters_and_every_scrape_passes_promtool() {
    require_lab();
    let env = crate::common::Env::new();
    let out = env.dir.path().join("out");
    recipe(&env, "publish.sh", &out);
    let (cfg, server) = serve_for_qemu(&env, "lab-metrics.toml");
    env.ok(&["pin", "set", MAC, "demo@1"]);
    // Asks for the script (as iPXE would): the boot starts there.
    let plan = explain(&env, &cfg, server.http);
    let root_hex = plan.rootfs_hex.clone();
    let before = scrape(server.api);
    promtool_check(&before);

    let marker = format!(
        "TABULA-DEMO-BOOTED name=demo version=1 manifest={}",
        plan.manifest
    );
    let log = env.dir.path().join("boot-metrics.log");
    let vm = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            boot_with(&plan, &log, 512, Duration::from_secs(150), |l| {
                l.contains(&marker) || l.contains("giving up after")
            })
        })
    };
    // Scrape once a second while the VM boots; every scrape must pass promtool.
    let mut during = 0;
    let mut saw_root = false;
    while !vm.is_finished() {
        let s = scrape(server.api);
        promtool_check(&s);
        during += 1;
        saw_root |= sum(&s, "tabula_http_requests_total", &[r#"route="blob""#]) > 0.0;
        std::thread::sleep(Duration::from_secs(1));
    }
    let console = vm.join().unwrap();
    assert!(
        console.at(&marker).is_some(),
        "no `{marker}`:\n{}",
        console.text()
    );
    assert!(during >= 3, "only {during} scrapes during the boot");
    // The VM can fetch its root and finish between two scrapes: the counter is monotonic,
    // so the first scrape after the boot still shows it.
    let last = scrape(server.api);
    promtool_check(&last);
    saw_root |= sum(&last, "tabula_http_requests_total", &[r#"route="blob""#]) > 0.0;
    assert!(saw_root, "no scrape saw the root image requested");

    // The booted event is folded once it is committed: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(server.api);
        let done = value(&s, r#"tabula_boots_finished_total{result="booted"}"#) == Some(1.0);
        if done || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    promtool_check(&after);
    let moved =
        |series: &str| value(&after, series).unwrap_or(0.0) - value(&before, series).unwrap_or(0.0);
    eprintln!("lab_metrics: {during} scrapes during the boot; boot series after it:");
    for l in after
        .lines()
        .filter(|l| l.starts_with("tabula_boot") && !l.contains("_bucket"))
    {
        eprintln!("  {l}");
    }
    assert_eq!(
        value(&after, "tabula_boots_started_total"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        value(&after, r#"tabula_boots_finished_total{result="booted"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&after, r#"tabula_boots_finished_total{result="failed"}"#),
        Some(0.0)
    );
    for phase in ["root", "booted"] {
        assert_eq!(
            value(
                &after,
                &format!("tabula_boot_phase_duration_seconds_count{{phase=\"{phase}\"}}")
            ),
            Some(1.0),
            "{phase}: {after}"
        );
        let secs = value(
            &after,
            &format!("tabula_boot_phase_duration_seconds_sum{{phase=\"{phase}\"}}"),
        )
        .unwrap();
        assert!(secs > 0.0 && secs < 150.0, "{phase} took {secs} s");
    }
    let requests = |s: &str, labels: &[&str]| sum(s, "tabula_http_requests_total", labels);
    let moved_requests = |labels: &[&str]| requests(&after, labels) - requests(&before, labels);
    // The root image, whole (200) or by ranges (206).
    assert!(moved_requests(&[r#"route="blob""#]) >= 1.0, "{after}");
    // progress: dhcp, fetch, verify, mount, then booted; each recorded (200).
    assert!(
        moved_requests(&[r#"route="report""#, r#"status="200""#]) >= 5.0,
        "{after}"
    );
    let root = std::fs::metadata(env.data().join("blobs/sha256").join(&root_hex))
        .unwrap()
        .len();
    #[allow(clippy::cast_precision_loss)]
    let root = root as f64;
    assert!(moved("tabula_http_sent_bytes_total") >= root, "{after}");
    assert!(moved("tabula_events_written_total") >= 6.0, "{after}");
}
