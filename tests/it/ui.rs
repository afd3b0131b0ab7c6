//! The dashboard in a real browser: Debian's `chromium`, headless, driven over WebDriver
//! (`chromium-driver`, the fantoccini crate) against the real `tabula serve`. A boot is
//! driven over HTTP as a machine makes it (script, kernel download with its MAC, the
//! `booted` report with the boot's token), another ends in a final failure, then:
//! no login → login page; sign in; fleet counts; the machine's timeline; pin through the
//! form and explain changes; a forged post without the CSRF token is refused; a live
//! event appears without a reload; a read token sees no write controls. Every page is
//! screenshotted into `target/ui-screenshots/` (gitignored).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::Env;
use crate::serve::{callback_of, curl, start, status};

const A: &str = "52:54:00:00:15:01";
const B: &str = "52:54:00:00:15:02";
const C: &str = "52:54:00:00:15:03";
const D: &str = "52:54:00:00:15:04";

/// chromedriver on a free loopback port, killed (by PID) when dropped.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver) must be installed");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

pub(crate) async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--hide-scrollbars", "--force-device-scale-factor=1"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a chromium session")
}

pub(crate) fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

pub(crate) async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

pub(crate) async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

/// Waits (bounded) until the browser is at `want` (a form post navigates asynchronously).
pub(crate) async fn wait_path(c: &Client, want: &str) {
    let t0 = Instant::now();
    while path(c).await != want {
        if t0.elapsed() > Duration::from_secs(20) {
            shot(c, "failure").await;
            panic!("never reached {want}: at {}", path(c).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `css` is on the page and its text contains `want`.
pub(crate) async fn wait_text(c: &Client, css: &str, want: &str) {
    let t0 = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.text().await.unwrap_or_default().contains(want)
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{css} never showed {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/ui/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits (bounded) until an accepted sign-in's post has left the sign-in page (its
/// session cookie set), before the caller navigates on.
pub(crate) async fn signed_in(c: &Client) {
    let t0 = Instant::now();
    while path(c).await == "/ui/login" {
        if t0.elapsed() > Duration::from_secs(20) {
            shot(c, "failure").await;
            panic!("sign-in never left /ui/login");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn post(url: &str, body: &str, cookie: &str) -> u16 {
    let (h, _) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Cookie: {cookie}"),
        "--data",
        body,
        url,
    ]);
    status(&h)
}

/// The boot script the data plane at `data` serves `mac` (what opens a boot attempt).
pub(crate) fn script_for(data: &str, mac: &str) -> String {
    let (_, b) = curl(&[&format!("{data}/boot.ipxe?mac={mac}")]);
    String::from_utf8(b).unwrap()
}

/// Posts the report `kind` (`booted`, `failed`) of the boot whose script is `script`.
pub(crate) fn report_to(data: &str, script: &str, kind: &str, body: &str) {
    let (h, _) = curl(&[
        "-X",
        "POST",
        "--data",
        body,
        &format!("{data}{}/{kind}", callback_of(script)),
    ]);
    assert_eq!(status(&h), 200, "{kind} report: {h}");
}

/// Downloads the blobs `script` names, as the machine would (a pause after each).
pub(crate) fn fetch_blobs_of(data: &str, script: &str) {
    for url in script.lines().filter_map(|l| {
        l.split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:1/blobs/"))
    }) {
        let local = url.replace("http://127.0.0.1:1", data);
        let (h, _) = curl(&[&local]);
        assert_eq!(status(&h), 200, "{local}");
        std::thread::sleep(Duration::from_millis(400));
    }
}

/// The session cookie the browser holds, as a `Cookie` header value.
pub(crate) async fn jar(c: &Client) -> String {
    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "tabula_session")
        .expect("session cookie");
    format!("tabula_session={}", session.value())
}

#[test]
fn the_dashboard_in_chromium() {
    let env = Env::new();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    for (v, seed, len) in [("1", 1, 300_000), ("2", 2, 600_000)] {
        let k = env.file(&format!("k{v}"), seed, len);
        let i = env.file(&format!("i{v}"), seed + 10, 90_000);
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
    env.ok(&["image", "tag", "demo@2", "stable"]);
    for (name, mac, label) in [
        ("n1", A, "role=web"),
        ("n2", B, "role=web"),
        ("n3", C, "role=db"),
        ("n4", D, "role=db"),
    ] {
        env.ok(&["machine", "add", name, "--mac", mac, "--label", label]);
    }
    env.ok(&["pin", "set", "default", "demo@1"]);
    env.ok(&["pin", "set", "n4", "local"]);
    let operate = env
        .ok(&["token", "create", "ops", "--scope", "operate"])
        .trim()
        .to_string();
    let read = env
        .ok(&["token", "create", "viewer", "--scope", "read"])
        .trim()
        .to_string();

    let srv = start(&env, None);
    let data = format!("http://{}", srv.http);
    let base = format!("http://{}", srv.api);

    // n1 boots demo@1 as a machine does; n2's initramfs gives up.
    let script = |mac: &str| script_for(&data, mac);
    let report = |s: &str, kind: &str, body: &str| report_to(&data, s, kind, body);
    let fetch_blobs = |s: &str| fetch_blobs_of(&data, s);
    let failed = r#"{"stage":"verify","reason":"root image sha256 mismatch","final":true}"#;
    // n1: a first attempt gives up, the second boots.
    let s1 = script(A);
    fetch_blobs(&s1);
    report(&s1, "failed", failed);
    std::thread::sleep(Duration::from_millis(300));
    let s1 = script(A);
    std::thread::sleep(Duration::from_millis(300));
    fetch_blobs(&s1);
    std::thread::sleep(Duration::from_millis(500));
    report(&s1, "booted", "{}");
    let s2 = script(B);
    let (h, _) = curl(&[
        "-X",
        "POST",
        "--data",
        failed,
        &format!("{data}{}/failed", callback_of(&s2)),
    ]);
    assert_eq!(status(&h), 200);

    let drv = driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&drv).await;

        // No session: every page sends you to the login page.
        c.goto(&format!("{base}/ui/machines/n1")).await.unwrap();
        wait_path(&c, "/ui/login").await;
        shot(&c, "login").await;
        // A wrong token is refused on the form.
        sign_in(&c, &base, "tabula.ops.00").await;
        wait_text(&c, ".notice.bad", "not valid").await;

        sign_in(&c, &base, &operate).await;
        wait_path(&c, "/ui/").await;
        for (state, n) in [
            ("booted", "1"),
            ("failed", "1"),
            ("never-seen", "1"),
            ("local", "1"),
            ("held", "0"),
            ("booting", "0"),
            ("drifted", "0"),
        ] {
            assert_eq!(text(&c, &format!("#count-{state} .n")).await, n, "{state}");
        }
        assert!(text(&c, "#group-booted").await.contains("n1"));
        assert!(text(&c, "#group-failed").await.contains("n2"));
        shot(&c, "fleet").await;
        // The label selector filters server-side.
        c.goto(&format!("{base}/ui/?selector=role%3Ddb"))
            .await
            .unwrap();
        assert_eq!(text(&c, "#count-failed .n").await, "0");
        assert_eq!(text(&c, "#count-local .n").await, "1");

        // The machine: its boot drawn as stages, what it boots and why.
        c.goto(&format!("{base}/ui/")).await.unwrap();
        c.find(Locator::LinkText("n1"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&c, "/ui/machines/n1").await;
        let tl = text(&c, "#timeline").await;
        assert!(tl.contains("booted"), "{tl}");
        assert_eq!(
            c.find_all(Locator::Css("#timeline .boot"))
                .await
                .unwrap()
                .len(),
            2,
            "{tl}"
        );
        assert!(
            tl.contains("failure: verify: root image sha256 mismatch"),
            "{tl}"
        );
        assert!(tl.contains("kernel+initrd"), "{tl}");
        assert!(
            !c.find_all(Locator::Css("#timeline .seg-booted"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(text(&c, "#explain .explain-image").await.contains("demo@1"));
        assert!(text(&c, "#explain").await.contains("default"));
        shot(&c, "machine").await;
        c.find(Locator::Id("timeline"))
            .await
            .unwrap()
            .screenshot()
            .await
            .map(|png| {
                std::fs::write(shots().join("machine-timeline.png"), png).unwrap();
            })
            .unwrap();

        // Pin through the form: explain changes, the history records the token's name.
        c.find(Locator::Id("reference"))
            .await
            .unwrap()
            .select_by_value("demo@2")
            .await
            .unwrap();
        c.find(Locator::Id("pin-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, ".notice.good", "pinned to demo@2").await;
        assert!(text(&c, "#explain .explain-image").await.contains("demo@2"));
        let rules = text(&c, "#explain").await;
        assert!(
            rules.contains("machine:n1") && rules.contains("less specific"),
            "{rules}"
        );
        assert!(text(&c, "#pin-history").await.contains("ops"));
        shot(&c, "machine-pinned").await;
        c.set_window_size(1366, 2400).await.unwrap();
        shot(&c, "machine-full").await;
        c.set_window_size(1366, 768).await.unwrap();
        let explained = env.ok(&["explain", A]);
        assert!(explained.contains("demo@2"), "{explained}");

        // A forged post (the session's cookie, no CSRF token or a wrong one) changes nothing.
        let cookies = c.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|k| k.name() == "tabula_session")
            .expect("session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
        let jar = format!("tabula_session={}", session.value());
        let pin_url = format!("{base}/ui/machines/n1/pin");
        assert_eq!(post(&pin_url, "reference=demo%401", &jar), 403);
        assert_eq!(post(&pin_url, "reference=demo%401&csrf=00", &jar), 403);
        assert_eq!(
            post(&format!("{base}/ui/machines/n1/rollback"), "", &jar),
            403
        );
        assert!(env.ok(&["explain", A]).contains("demo@2"));
        // Without a session a post goes to the login page, not through.
        let (h, _) = curl(&["-X", "POST", "--data", "reference=demo%401", &pin_url]);
        assert_eq!(status(&h), 303, "{h}");

        // Pin to a channel, then roll back through its button: demo@2 directly again.
        c.find(Locator::Id("reference"))
            .await
            .unwrap()
            .select_by_value("demo:stable")
            .await
            .unwrap();
        c.find(Locator::Id("pin-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, ".notice.good", "pinned to demo:stable").await;
        assert!(
            text(&c, "#explain .explain-image")
                .await
                .contains("channel demo:stable")
        );
        c.find(Locator::Id("rollback-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, ".notice.good", "rolled back to demo@2").await;
        let img = text(&c, "#explain .explain-image").await;
        assert!(img.contains("demo@2") && !img.contains("channel"), "{img}");

        // Images: versions, channels, who booted what, the diff.
        c.goto(&format!("{base}/ui/images")).await.unwrap();
        let v = text(&c, "#versions").await;
        assert!(v.contains("demo@2") && v.contains("demo:stable"), "{v}");
        assert!(text(&c, "#diff").await.contains("kernel"));
        shot(&c, "images").await;

        // Live: an event shows up without a reload.
        c.goto(&format!("{base}/ui/live")).await.unwrap();
        wait_text(&c, "#stream-status", "connected").await;
        c.execute("window.__same_page = 42;", vec![]).await.unwrap();
        script(C);
        wait_text(&c, "#feed", C).await;
        wait_text(&c, "#in-flight", C).await;
        let same = c
            .execute("return window.__same_page;", vec![])
            .await
            .unwrap();
        assert_eq!(same, serde_json::json!(42), "the page was reloaded");
        shot(&c, "live").await;

        // The browser's stream is the session's: without the cookie 401; with it and a
        // Last-Event-ID, it resumes right after that id (what EventSource sends on reconnect).
        let newest: i64 = c
            .find(Locator::Css("#feed tr"))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let stream_url = format!("{base}/ui/live/stream");
        let (h, _) = curl(&[&stream_url]);
        assert_eq!(status(&h), 401, "{h}");
        let cookies = c.get_all_cookies().await.unwrap();
        let jar = format!(
            "tabula_session={}",
            cookies
                .iter()
                .find(|k| k.name() == "tabula_session")
                .unwrap()
                .value()
        );
        let out = Command::new("curl")
            .args([
                "-sS",
                "-N",
                "--max-time",
                "3",
                "-H",
                &format!("Cookie: {jar}"),
            ])
            .args(["-H", &format!("Last-Event-ID: {}", newest - 2), &stream_url])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        let ids: Vec<i64> = body
            .lines()
            .filter_map(|l| l.strip_prefix("id: ").and_then(|v| v.trim().parse().ok()))
            .collect();
        assert_eq!(ids, [newest - 1, newest], "{body}");

        // Phone width.
        c.set_window_size(390, 844).await.unwrap();
        c.goto(&format!("{base}/ui/")).await.unwrap();
        shot(&c, "fleet-phone").await;
        c.goto(&format!("{base}/ui/machines/n1")).await.unwrap();
        shot(&c, "machine-phone").await;
        c.set_window_size(1366, 768).await.unwrap();

        // Sign out; then a read token sees no write controls, and cannot post.
        c.find(Locator::Css("form[action='/ui/logout'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&c, "/ui/login").await;
        c.goto(&format!("{base}/ui/")).await.unwrap();
        wait_path(&c, "/ui/login").await;
        sign_in(&c, &base, &read).await;
        signed_in(&c).await;
        c.goto(&format!("{base}/ui/machines/n1")).await.unwrap();
        wait_path(&c, "/ui/machines/n1").await;
        wait_text(&c, "header", "read").await;
        assert!(
            c.find_all(Locator::Css("#pin-form, #rollback-form, select#reference"))
                .await
                .unwrap()
                .is_empty()
        );
        shot(&c, "machine-read").await;
        let csrf = c
            .find(Locator::Css("form[action='/ui/logout'] input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
        let cookies = c.get_all_cookies().await.unwrap();
        let jar = format!(
            "tabula_session={}",
            cookies
                .iter()
                .find(|k| k.name() == "tabula_session")
                .unwrap()
                .value()
        );
        assert_eq!(
            post(&pin_url, &format!("reference=demo%401&csrf={csrf}"), &jar),
            403
        );
        assert!(env.ok(&["explain", A]).contains("demo@2"));
        // n1 booted demo@1 and is pinned to demo@2 now.
        c.goto(&format!("{base}/ui/")).await.unwrap();
        assert_eq!(text(&c, "#count-drifted .n").await, "1");
        assert!(text(&c, "#group-drifted").await.contains("n1"));

        c.close().await.unwrap();
    });
}
