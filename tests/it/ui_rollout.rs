//! The dashboard's fleet pages in a real browser (the chromium steps of [`crate::ui`]):
//! a rollout made with the CLI against the server's store, its canary booted over HTTP as
//! a machine boots, then on its page: bars and counts that match `tabula rollout show
//! --json`, pause (paused, with its reason) and resume (running) through its buttons, a
//! forged post refused, a read token shown no buttons. A machine that spent its tries
//! (`health.max_tries = 1`) shows the hold banner, held in the fleet, and the release
//! button clears it; a boot-once through the form shows its status. Screenshots of every
//! page go to `target/ui-screenshots/`.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::common::Env;
use crate::serve::start_with;
use crate::ui::{
    browser, driver, fetch_blobs_of, jar, post, report_to, script_for, shot, sign_in, signed_in,
    text, wait_path, wait_text,
};

const FAILED: &str = r#"{"stage":"verify","reason":"root image sha256 mismatch","final":true}"#;

fn show(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["rollout", "show", "r1", "--json"])).unwrap()
}

fn count(v: &serde_json::Value, state: &str) -> u64 {
    v["counts"][state].as_u64().unwrap_or(0)
}

/// Waits (bounded) until the rollout's stored counts satisfy `ok`.
fn wait_rollout(
    env: &Env,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let v = show(env);
        if ok(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the rollout never reached {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The sum of a step-bar count over every step.
async fn step_sum(c: &Client, class: &str) -> u64 {
    let mut n = 0;
    for e in c
        .find_all(Locator::Css(&format!("#steps .{class}")))
        .await
        .unwrap()
    {
        n += e.text().await.unwrap().trim().parse::<u64>().unwrap();
    }
    n
}

#[test]
fn the_rollout_and_hold_pages_in_chromium() {
    let env = Env::new();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    for (v, seed) in [("1", 31), ("2", 32)] {
        let k = env.file(&format!("k{v}"), seed, 200_000);
        let i = env.file(&format!("i{v}"), seed + 10, 50_000);
        env.ok(&[
            "image",
            "add",
            "demo",
            "--version",
            v,
            "--kernel",
            &p(&k),
            "--initrd",
            &p(&i),
        ]);
    }
    let mac = |i: usize| format!("52:54:00:00:16:{i:02x}");
    for i in 1..=6 {
        env.ok(&[
            "machine",
            "add",
            &format!("w{i}"),
            "--mac",
            &mac(i),
            "--label",
            "role=web",
        ]);
    }
    env.ok(&[
        "machine",
        "add",
        "h1",
        "--mac",
        &mac(20),
        "--label",
        "role=db",
    ]);
    env.ok(&[
        "machine",
        "add",
        "o1",
        "--mac",
        &mac(21),
        "--label",
        "role=db",
    ]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let operate = env
        .ok(&["token", "create", "ops", "--scope", "operate"])
        .trim()
        .to_string();
    let read = env
        .ok(&["token", "create", "viewer", "--scope", "read"])
        .trim()
        .to_string();
    let cfg = env.dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
         public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n[health]\nmax_tries = 1\n",
    )
    .unwrap();
    let srv = start_with(&env, &cfg, false);
    let data = format!("http://{}", srv.http);
    let base = format!("http://{}", srv.api);

    // h1 boots demo@1 (its known good), then spends its one try of demo@2: held on demo@1.
    let s = script_for(&data, &mac(20));
    report_to(&data, &s, "booted", "{}");
    env.ok(&["pin", "set", "h1", "demo@2"]);
    // The server sees a store change within its snapshot's maximum age (250 ms).
    std::thread::sleep(Duration::from_millis(800));
    let s = script_for(&data, &mac(20));
    report_to(&data, &s, "failed", FAILED);
    let holds = env.ok(&["machine", "boots", "h1"]);
    assert!(holds.contains("failed"), "{holds}");

    // The rollout, made with the CLI against the server's store; its canary boots demo@2.
    env.ok(&[
        "rollout",
        "create",
        "r1",
        "--target",
        "role=web",
        "--to",
        "demo@2",
        "--steps",
        "1,50%,100%",
        "--failure-budget",
        "1",
    ]);
    env.ok(&["rollout", "start", "r1"]);
    let v = wait_rollout(&env, "its canary admitted", |v| count(v, "admitted") == 1);
    let canary = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] == "admitted")
        .unwrap()["machine"]
        .as_str()
        .unwrap()
        .to_string();
    let i: usize = canary.trim_start_matches('w').parse().unwrap();
    let s = script_for(&data, &mac(i));
    assert!(s.contains("demo"), "{s}");
    fetch_blobs_of(&data, &s);
    report_to(&data, &s, "booted", "{}");
    let v = wait_rollout(&env, "step 2 admitted", |v| {
        count(v, "succeeded") == 1 && count(v, "admitted") == 2
    });

    let drv = driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&drv).await;
        sign_in(&c, &base, &operate).await;
        wait_path(&c, "/ui/").await;
        // The held group is the store's hold; a member's row names its rollout step.
        assert_eq!(text(&c, "#count-held .n").await, "1");
        let held = text(&c, "#group-held").await;
        assert!(held.contains("h1") && held.contains("hold"), "{held}");
        let rows = text(&c, "table.fleet").await;
        assert!(rows.contains("rollout r1 step 2"), "{rows}");
        shot(&c, "fleet-held").await;

        // The list, then the rollout: its numbers are `rollout show --json`'s.
        c.goto(&format!("{base}/ui/rollouts")).await.unwrap();
        let list = text(&c, "#rollout-r1").await;
        assert!(
            list.contains("running (step 2/3)") && list.contains("demo@2"),
            "{list}"
        );
        shot(&c, "rollouts").await;
        c.find(Locator::LinkText("r1"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&c, "/ui/rollouts/r1").await;
        wait_text(&c, "#rollout-state", "running").await;
        for state in [
            "waiting",
            "admitted",
            "succeeded",
            "failed",
            "skipped_pinned",
        ] {
            assert_eq!(
                text(&c, &format!("#members-{state} .n")).await,
                count(&v, state).to_string(),
                "{state}"
            );
        }
        assert_eq!(step_sum(&c, "n-succeeded").await, count(&v, "succeeded"));
        assert_eq!(step_sum(&c, "n-in-flight").await, count(&v, "admitted"));
        assert_eq!(step_sum(&c, "n-failed").await, count(&v, "failed"));
        let per_step: Vec<String> = v["per_step"]
            .as_array()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        for (k, n) in per_step.iter().enumerate() {
            assert_eq!(&text(&c, &format!("#step-{} .n-members", k + 1)).await, n);
        }
        assert!(text(&c, "#step-2").await.contains("current"));
        assert!(text(&c, "#budget").await.contains("0 failed of 1 allowed"));
        let mut newest = Vec::new();
        for td in c
            .find_all(Locator::Css(
                "#versions-over-time tbody tr:last-child td.num",
            ))
            .await
            .unwrap()
        {
            newest.push(td.text().await.unwrap());
        }
        // On demo@2, in flight, failed, not yet.
        assert_eq!(newest, ["1", "2", "0", "3"]);
        assert_eq!(
            c.find_all(Locator::Css("#members tbody tr"))
                .await
                .unwrap()
                .len(),
            6
        );
        shot(&c, "rollout").await;

        // Pause through its button: paused, and why; resume: running again.
        click(&c, "cmd-pause").await;
        wait_text(&c, "#rollout-state", "paused").await;
        wait_text(&c, "#pause-reasons", "paused by an operator").await;
        assert_eq!(show(&env)["rollout"]["state"], "paused");
        assert!(c.find(Locator::Id("cmd-resume")).await.is_ok());
        shot(&c, "rollout-paused").await;
        click(&c, "cmd-resume").await;
        wait_text(&c, "#rollout-state", "running").await;
        assert!(c.find(Locator::Id("pause-reasons")).await.is_err());
        assert_eq!(show(&env)["rollout"]["state"], "running");

        // A forged post (the session's cookie, no CSRF token) changes nothing.
        let cookie = jar(&c).await;
        assert_eq!(
            post(&format!("{base}/ui/rollouts/r1/pause"), "", &cookie),
            403
        );
        assert_eq!(
            post(&format!("{base}/ui/rollouts/r1/abort"), "csrf=00", &cookie),
            403
        );
        assert_eq!(show(&env)["rollout"]["state"], "running");

        // Member pages filter server-side.
        c.goto(&format!("{base}/ui/rollouts/r1?state=waiting"))
            .await
            .unwrap();
        let rows = c.find_all(Locator::Css("#members tbody tr")).await.unwrap();
        assert_eq!(rows.len() as u64, count(&v, "waiting"));
        c.set_window_size(390, 844).await.unwrap();
        c.goto(&format!("{base}/ui/rollouts/r1")).await.unwrap();
        shot(&c, "rollout-phone").await;
        c.goto(&format!("{base}/ui/rollouts")).await.unwrap();
        shot(&c, "rollouts-phone").await;
        c.goto(&format!("{base}/ui/")).await.unwrap();
        shot(&c, "fleet-held-phone").await;
        c.goto(&format!("{base}/ui/rollouts/r1")).await.unwrap();
        c.set_window_size(1366, 1500).await.unwrap();
        shot(&c, "rollout-full").await;
        let png = c
            .find(Locator::Id("progress"))
            .await
            .unwrap()
            .screenshot()
            .await
            .unwrap();
        std::fs::write(crate::ui::shots().join("rollout-progress.png"), png).unwrap();
        c.set_window_size(1366, 768).await.unwrap();

        // The held machine: its banner, last known good and attempts; release clears it.
        c.goto(&format!("{base}/ui/machines/h1")).await.unwrap();
        let banner = text(&c, "#hold-banner").await;
        assert!(
            banner.contains("held on demo@1") && banner.contains("demo@2"),
            "{banner}"
        );
        assert!(text(&c, "#machine-state").await.contains("held"));
        assert!(text(&c, "#last-good").await.contains("demo@1"));
        let attempts = text(&c, "#attempts").await;
        assert!(
            attempts.contains("failed") && attempts.contains("booted"),
            "{attempts}"
        );
        shot(&c, "machine-held").await;
        click(&c, "release-submit").await;
        wait_text(&c, ".notice.good", "hold released").await;
        assert!(c.find(Locator::Id("hold-banner")).await.is_err());
        assert!(!env.ok(&["explain", &mac(20)]).contains("held on"));

        // Boot once through the form: pending, then booting once its script is served.
        c.goto(&format!("{base}/ui/machines/o1")).await.unwrap();
        c.find(Locator::Id("once-reference"))
            .await
            .unwrap()
            .select_by_value("demo@2")
            .await
            .unwrap();
        let ttl = c.find(Locator::Id("once-ttl")).await.unwrap();
        ttl.clear().await.unwrap();
        ttl.send_keys("20m").await.unwrap();
        click(&c, "once-submit").await;
        wait_text(&c, ".notice.good", "boot once demo@2 requested").await;
        wait_text(&c, "#boot-once .once-state", "pending").await;
        let once_url = c.current_url().await.unwrap().to_string();
        // The server sees the request within its snapshot's maximum age.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let s = script_for(&data, &mac(21));
        assert!(
            s.contains("tabula.image=demo@2"),
            "the boot-once's version: {s}"
        );
        // The attempt is recorded as the script is served: reload until the page shows it.
        let t0 = Instant::now();
        loop {
            c.goto(&once_url).await.unwrap();
            if text(&c, "#boot-once .once-state").await.contains("booting") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "never booting");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(text(&c, "#attempts").await.contains("boot-once:"));
        assert!(
            text(&c, "#explain .explain-source")
                .await
                .contains("boot-once")
        );
        shot(&c, "machine-boot-once").await;
        c.set_window_size(1366, 1700).await.unwrap();
        shot(&c, "machine-boot-once-full").await;
        c.set_window_size(390, 844).await.unwrap();
        shot(&c, "machine-boot-once-phone").await;
        c.set_window_size(1366, 768).await.unwrap();

        // A read token sees the rollout, and no button.
        c.find(Locator::Css("form[action='/ui/logout'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&c, "/ui/login").await;
        sign_in(&c, &base, &read).await;
        signed_in(&c).await;
        c.goto(&format!("{base}/ui/rollouts/r1")).await.unwrap();
        wait_text(&c, "header", "read").await;
        wait_text(&c, "#rollout-state", "running").await;
        assert!(
            c.find_all(Locator::Css(
                "#rollout-actions, #rollout-actions button, [id^=cmd-]"
            ))
            .await
            .unwrap()
            .is_empty()
        );
        shot(&c, "rollout-read").await;
        c.close().await.unwrap();
    });
}
