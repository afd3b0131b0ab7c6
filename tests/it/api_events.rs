//! The boot history over the API against the real binary: a subscriber of
//! `GET /api/v1/events/stream` (read token) sees a boot's events in order as the data
//! plane serves it, disconnects, resumes with `Last-Event-ID` and receives exactly the
//! events it missed; `GET /api/v1/events` pages the same history by cursor.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::api_session::{Api, Subscriber, publish_demo};
use crate::common::Env;
use crate::serve::{curl, status};

const MAC: &str = "52:54:00:00:07:01";

#[test]
fn a_subscriber_sees_a_boot_in_order_and_resumes_with_exactly_what_it_missed() {
    let env = Env::new();
    publish_demo(&env, "1", 31);
    env.ok(&["machine", "add", "e1", "--mac", MAC]);
    env.ok(&["pin", "set", "e1", "demo@1"]);
    let api = Api::start(env);
    let http = format!("http://{}", api.srv.http);
    let dash = MAC.replace(':', "-");
    let fetch = |url: &str| {
        let (h, body) = curl(&[url]);
        assert_eq!(status(&h), 200, "{url}");
        body
    };
    // The boot's URLs, from its script (fetching the script is its first event).
    let script_url = format!("{http}/boot.ipxe?mac={dash}&platform=pcbios&buildarch=i386");

    let mut a = Subscriber::open(api.srv.api, &api.read, None);
    let script = String::from_utf8(fetch(&script_url)).unwrap();
    let blob_urls: Vec<String> = script
        .split_whitespace()
        .filter(|w| w.starts_with("http://127.0.0.1:1/blobs/"))
        .map(|w| w.replace("http://127.0.0.1:1", &http))
        .collect();
    assert_eq!(blob_urls.len(), 2, "kernel and initrd: {script}");
    fetch(&blob_urls[0]);
    let first = a.wait_for(2);
    let stages: Vec<&str> = first.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(stages, ["script-sent", "kernel-sent"], "{}", a.got);
    assert!(first[0].0 < first[1].0);
    let seen = first[1].0;
    drop(a);

    // While nobody listens: the initrd, and the script asked again.
    fetch(&blob_urls[1]);
    fetch(&script_url);
    // Both stored (the list API says so) before resuming.
    let end = Instant::now() + Duration::from_secs(20);
    let missed: Vec<(i64, String)> = loop {
        let page = api
            .get(&format!("/api/v1/events?after={seen}&mac={MAC}"), &api.read)
            .json();
        let items: Vec<(i64, String)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_i64().unwrap(),
                    e["stage"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if items.len() >= 2 {
            break items;
        }
        assert!(Instant::now() < end, "events not stored: {page}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stages: Vec<&str> = missed.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(stages, ["initrd-sent", "script-sent"]);

    let mut b = Subscriber::open(api.srv.api, &api.read, Some(seen));
    let resumed = b.wait_for(2);
    assert_eq!(resumed, missed, "exactly the missed events, in order");
    // And nothing more arrives (a keep-alive comment at most).
    b.until(|_| true, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(800));
    let mut buf = [0u8; 4096];
    if let Ok(k) = b.s.read(&mut buf) {
        b.got.push_str(&String::from_utf8_lossy(&buf[..k]));
    }
    assert_eq!(b.events(), missed, "{}", b.got);

    // The list pages the whole history: every id once, ascending, by twos.
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let p = api
            .get(&format!("/api/v1/events?after={after}&limit=2"), &api.read)
            .json();
        ids.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match p["next"].as_str() {
            Some(n) => after = n.parse().unwrap(),
            None => break,
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids.len(), 4, "{ids:?}");
    let only = api
        .get("/api/v1/events?stage=script-sent", &api.read)
        .json();
    assert_eq!(only["items"].as_array().unwrap().len(), 2);
    api.get("/api/v1/events?stage=nope", &api.read)
        .problem(400, "about:blank");

    // `?attempt=`: the first script, its kernel and its initrd are one attempt; the
    // script asked again after the kernel was fetched is the next (the machine rebooted).
    let all = api.get("/api/v1/events", &api.read).json();
    let attempts: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["attempt"]
                .as_str()
                .expect("every event of a boot has its attempt")
        })
        .collect();
    assert_eq!(attempts[0], attempts[1], "{all}");
    assert_eq!(attempts[0], attempts[2], "{all}");
    assert_ne!(attempts[0], attempts[3], "{all}");
    let page = |q: &str| api.get(&format!("/api/v1/events?{q}"), &api.read).json();
    let first = page(&format!("attempt={}&limit=2", attempts[0]));
    let stages: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["script-sent", "kernel-sent"], "{first}");
    let next = first["next"].as_str().unwrap();
    let rest = page(&format!("attempt={}&after={next}", attempts[0]));
    assert_eq!(rest["items"][0]["stage"], "initrd-sent", "{rest}");
    assert!(rest["next"].is_null(), "{rest}");
    let second = page(&format!("attempt={}", attempts[3]));
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    api.get(
        &format!("/api/v1/events?attempt={}&mac={MAC}", attempts[0]),
        &api.read,
    )
    .problem(400, "about:blank");
}
