//! The boot history over the API against the real binary: a subscriber of
//! `GET /api/v1/events/stream` (read token) sees a boot's events in order as the data
//! plane serves it, disconnects, resumes with `Last-Event-ID` and receives exactly the
//! events it missed; `GET /api/v1/events` pages the same history by cursor.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::api_session::{Api, publish_demo};
use crate::common::Env;
use crate::serve::{curl, status};

const MAC: &str = "52:54:00:00:07:01";

/// An open stream: the request sent, the raw bytes read so far.
struct Subscriber {
    s: TcpStream,
    got: String,
}

impl Subscriber {
    fn open(api: &Api, last_event_id: Option<i64>) -> Subscriber {
        let mut s = TcpStream::connect(api.srv.api).unwrap();
        let resume = last_event_id
            .map(|i| format!("last-event-id: {i}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /api/v1/events/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n{resume}\r\n",
            api.read
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut sub = Subscriber {
            s,
            got: String::new(),
        };
        sub.until(|g| g.contains("\r\n\r\n"), Duration::from_secs(10));
        assert!(sub.got.starts_with("HTTP/1.1 200"), "{}", sub.got);
        sub
    }

    /// Reads until `done` holds (panics after `within`).
    fn until(&mut self, done: impl Fn(&str) -> bool, within: Duration) {
        let end = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while !done(&self.got) {
            assert!(Instant::now() < end, "timed out; got:\n{}", self.got);
            match self.s.read(&mut buf) {
                Ok(0) => panic!("stream closed; got:\n{}", self.got),
                Ok(n) => self.got.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `(id, stage)` of every event read so far, in order.
    fn events(&self) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut id = None;
        for line in self.got.lines() {
            if let Some(i) = line.strip_prefix("id: ") {
                id = Some(i.trim().parse().unwrap());
            } else if let (Some(stage), Some(i)) = (line.strip_prefix("event: "), id) {
                out.push((i, stage.trim().to_string()));
                id = None;
            }
        }
        out
    }

    /// Waits for `n` events.
    fn wait_for(&mut self, n: usize) -> Vec<(i64, String)> {
        let end = Instant::now() + Duration::from_secs(20);
        while self.events().len() < n {
            assert!(
                Instant::now() < end,
                "{} of {n} events:\n{}",
                self.events().len(),
                self.got
            );
            self.until(|_| true, Duration::from_secs(1));
            let mut buf = [0u8; 4096];
            match self.s.read(&mut buf) {
                Ok(0) => panic!("closed"),
                Ok(k) => self.got.push_str(&String::from_utf8_lossy(&buf[..k])),
                Err(_) => {}
            }
        }
        self.events()
    }
}

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

    let mut a = Subscriber::open(&api, None);
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

    let mut b = Subscriber::open(&api, Some(seen));
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
}
