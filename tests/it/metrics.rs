//! `/metrics` on the API listener of a real `tabula serve`, scraped while curl drives the
//! data plane: the counters of what was done move by exactly that much, the scrape
//! passes `promtool check metrics`, `api.metrics_token_required` refuses an anonymous
//! scrape with 401 and `WWW-Authenticate: Bearer`, and `--log-format json` writes one
//! JSON object per line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use crate::serve::{curl, start, status};

/// The value of one series (`name{labels}` exactly as encoded), if present.
pub fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of the series of `name` whose labels include every one of `labels`
/// (`key="value"`); 0 when none does.
pub fn sum(scrape: &str, name: &str, labels: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            let set = &l[..l.find('}').unwrap_or(0)];
            labels.iter().all(|x| set.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET /metrics` on `api`.
pub fn scrape(api: std::net::SocketAddr) -> String {
    let (h, body) = curl(&[&format!("http://{api}/metrics")]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(h.contains("content-type: text/plain; version=0.0.4"), "{h}");
    String::from_utf8(body).unwrap()
}

/// Asserts `promtool check metrics` (Debian `prometheus`) accepts `text`.
pub fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn counters_move_with_traffic_and_the_scrape_passes_promtool() {
    let env = Env::new();
    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir(&loaders).unwrap();
    let loader = crate::common::bytes(9, 50_000);
    std::fs::write(loaders.join("undionly.kpxe"), &loader).unwrap();
    let srv = start(&env, Some(&loaders));
    let base = format!("http://{}", srv.http);

    let before = scrape(srv.api);
    promtool_check(&before);
    let req = |s: &str, route: &str| {
        sum(
            s,
            "tabula_http_requests_total",
            &[&format!("route=\"{route}\"")],
        )
    };
    let resp = |s: &str, code: &str| {
        sum(
            s,
            "tabula_http_requests_total",
            &[&format!("status=\"{code}\"")],
        )
    };
    let pair = |s: &str, route: &str, code: &str| {
        value(
            s,
            &format!("tabula_http_requests_total{{route=\"{route}\",status=\"{code}\"}}"),
        )
        .unwrap()
    };

    // Five scripts (an unknown machine: a script that says why), three loaders over
    // HTTP, one 404, two reports without a token, two TFTP transfers.
    for _ in 0..5 {
        let (h, _) = curl(&[&format!("{base}/boot.ipxe?mac=52-54-00-00-00-99")]);
        assert_eq!(status(&h), 200);
    }
    for _ in 0..3 {
        let (h, body) = curl(&[&format!("{base}/loaders/undionly.kpxe")]);
        assert_eq!((status(&h), body.len()), (200, loader.len()));
    }
    let (h, _) = curl(&[&format!("{base}/loaders/nosuch.efi")]);
    assert_eq!(status(&h), 404);
    for _ in 0..2 {
        let (h, _) = curl(&[
            "-X",
            "POST",
            "--data",
            "{}",
            &format!("{base}/boot/52-54-00-00-00-99/{}/booted", "ab".repeat(32)),
        ]);
        assert!(status(&h) >= 400, "{h}");
    }
    for _ in 0..2 {
        let got = env.dir.path().join("got.kpxe");
        let st = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "-o"])
            .arg(&got)
            .arg(format!("tftp://{}/undionly.kpxe", srv.tftp.unwrap()))
            .status()
            .unwrap();
        assert!(st.success());
    }

    // TFTP transfers are counted when their task ends, events once written: wait a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(srv.api);
        let done = value(&s, r#"tabula_tftp_transfers_total{outcome="completed"}"#) == Some(2.0);
        if done || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&after);
    assert_eq!(req(&after, "script") - req(&before, "script"), 5.0);
    assert_eq!(req(&after, "loader") - req(&before, "loader"), 4.0);
    assert_eq!(req(&after, "report") - req(&before, "report"), 2.0);
    assert_eq!(resp(&after, "404") - resp(&before, "404"), 1.0, "{after}");
    assert_eq!(
        pair(&after, "script", "200") - pair(&before, "script", "200"),
        5.0
    );
    assert_eq!(
        pair(&after, "loader", "404") - pair(&before, "loader", "404"),
        1.0
    );
    assert_eq!(
        pair(&after, "report", "403") - pair(&before, "report", "403"),
        2.0
    );
    assert!(resp(&after, "200") - resp(&before, "200") >= 8.0, "{after}");
    let bytes = |s: &str, n: &str| value(s, n).unwrap();
    assert!(
        bytes(&after, "tabula_http_sent_bytes_total")
            - bytes(&before, "tabula_http_sent_bytes_total")
            >= 3.0 * loader.len() as f64,
        "{after}"
    );
    assert_eq!(
        value(
            &after,
            r#"tabula_tftp_transfers_total{outcome="completed"}"#
        ),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        value(&after, "tabula_tftp_sent_bytes_total"),
        Some(2.0 * loader.len() as f64)
    );
    let rejected: f64 = ["missing_token", "invalid_token"]
        .iter()
        .filter_map(|r| {
            value(
                &after,
                &format!("tabula_reports_rejected_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(rejected, 2.0, "{after}");
    // The limits of the hardening work are there, at zero under this polite traffic.
    for limit in ["http.max_connections", "tftp.max_transfers", "events.queue"] {
        assert_eq!(
            value(
                &after,
                &format!("tabula_limit_hits_total{{limit=\"{limit}\"}}")
            ),
            Some(0.0),
            "{limit}"
        );
    }
    assert!(value(&after, "tabula_events_written_total").is_some());
    // The admission gate's gauges and its wait counter, by the names the README lists.
    for series in [
        "tabula_http_admission_queued",
        "tabula_http_admission_active",
        "tabula_http_admission_wait_seconds_total",
        "tabula_http_admission_wait_max_seconds",
    ] {
        assert_eq!(value(&after, series), Some(0.0), "{series}");
    }
}

#[test]
fn a_required_token_gates_scrapes_and_json_logs_are_one_object_a_line() {
    use std::io::{BufRead as _, BufReader};
    let env = Env::new();
    let cfg = env.dir.path().join("locked.toml");
    std::fs::write(
        &cfg,
        "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [api]\nlisten = \"127.0.0.1:0\"\nmetrics_token_required = true\n",
    )
    .unwrap();
    let log = env.dir.path().join("serve.log");
    let mut child = env
        .command()
        .env("TABULA_LOG", "info")
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut api = None;
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().strip_prefix("listening: api ") {
            api = Some(a.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let api = api.expect("an api listening line");
    let url = format!("http://{api}/metrics");
    // No token, a wrong one, a revoked one: 401 with the Bearer challenge.
    let read = env.ok(&["token", "create", "scraper", "--scope", "read"]);
    let read = read.trim();
    let gone = env.ok(&["token", "create", "gone", "--scope", "admin"]);
    env.ok(&["token", "revoke", "gone"]);
    for auth in [
        None,
        Some("Bearer not-a-token".to_string()),
        Some(format!("Bearer {}", gone.trim())),
    ] {
        let header = auth.clone().map(|a| format!("authorization: {a}"));
        let mut args = vec![url.as_str()];
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        let (h, body) = curl(&args);
        assert_eq!(status(&h), 401, "{auth:?}: {h}");
        assert!(h.contains("www-authenticate: bearer"), "{h}");
        assert!(h.contains("content-type: application/problem+json"), "{h}");
        assert!(
            !String::from_utf8_lossy(&body).contains("tabula_"),
            "metrics leaked"
        );
    }
    // A read token (the smallest scope) scrapes.
    let (h, body) = curl(&[&url, "-H", &format!("authorization: Bearer {read}")]);
    assert_eq!(status(&h), 200, "{h}");
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("# TYPE tabula_boots_started_total counter"),
        "{text}"
    );
    promtool_check(&text);
    // The rest of the API is not affected by the setting.
    let (h, _) = curl(&[&format!("http://{api}/healthz")]);
    assert_eq!(status(&h), 200, "{h}");
    nix_term(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "no log line at info");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {l:?}: {e}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
    assert!(text.contains("shutting down"), "{text}");
}

/// SIGTERM, then wait for the exit.
fn nix_term(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DHCP in network namespaces (as `dhcp.rs`): three DORAs, a REQUEST for an address
/// outside the pool, a malformed packet; the DHCP families count exactly those, and the
/// pool gauges show the three leases.
#[test]
fn dhcp_counters_and_pool_gauges_follow_real_exchanges() {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use dhcproto::v4;

    use crate::netns::{Lab, dora, encode, exchange, in_ns, message, sh, start_tabula, udp};

    let env = Env::new();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "m");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.21.1/24", "dev", &vs]);
    let cfg = format!(
        "[dhcp]\nmode = \"full\"\ninterfaces = [\"{vs}\"]\n\
         [[dhcp.subnets]]\nnetwork = \"10.99.21.0/24\"\npools = [\"10.99.21.100-10.99.21.150\"]\n\
         [tftp]\nenabled = false\n[http]\nlisten = \"10.99.21.1:8080\"\n\
         [api]\nlisten = \"127.0.0.1:9090\"\n"
    );
    let _t = start_tabula(&env, &s, &cfg);
    // Inside the server's namespace: its own loopback.
    let scrape_ns = |lab: &Lab| {
        let o = lab.exec(
            &s,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "http://127.0.0.1:9090/metrics",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let before = scrape_ns(&lab);
    promtool_check(&before);
    assert_eq!(
        value(
            &before,
            r#"tabula_dhcp_pool_addresses{subnet="10.99.21.0/24"}"#
        ),
        Some(51.0),
        "{before}"
    );

    let vc2 = vc.clone();
    let (acked, nak) = in_ns(&c, move || {
        let sock = udp(&vc2, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        let acked: Vec<Option<Ipv4Addr>> = (1..=3u8)
            .map(|i| dora(&sock, to, [2, 0, 0, 0, 21, i], 0x2100 + u32::from(i) * 2))
            .collect();
        // INIT-REBOOT for an address on the subnet but outside its pool: a NAK.
        let mut r = message(v4::MessageType::Request, [2, 0, 0, 0, 21, 9], 0x2199);
        r.opts_mut()
            .insert(v4::DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                10, 99, 21, 200,
            )));
        let nak = exchange(&sock, to, &encode(&r)).map(|(m, _)| m.opts().msg_type());
        // Not DHCP at all.
        sock.send_to(b"definitely not a BOOTP packet", to).unwrap();
        (acked, nak)
    });
    assert!(acked.iter().all(Option::is_some), "{acked:?}");
    assert_eq!(nak, Some(Some(v4::MessageType::Nak)));

    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape_ns(&lab);
        let done = value(&s, r#"tabula_dhcp_dropped_total{reason="malformed"}"#) == Some(1.0);
        if done || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&after);
    let n = |series: &str| value(&after, series).unwrap_or(-1.0);
    assert_eq!(
        n(r#"tabula_dhcp_received_total{type="discover"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_received_total{type="request"}"#),
        4.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_replies_total{type="offer"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_replies_total{type="ack"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_replies_total{type="nak"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_naks_total{reason="not-in-pool"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_dropped_total{reason="malformed"}"#),
        1.0,
        "{after}"
    );
    assert!(n("tabula_dhcp_lease_commits_total") >= 1.0, "{after}");
    // Offers reserve and ACKs bind: six lease changes, in however many commits.
    assert!(
        n("tabula_dhcp_lease_commit_batch_size_count") >= 1.0,
        "{after}"
    );
    assert_eq!(
        n(r#"tabula_dhcp_pool_used_addresses{subnet="10.99.21.0/24"}"#),
        3.0,
        "{after}"
    );
}
