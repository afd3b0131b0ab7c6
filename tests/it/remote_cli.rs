//! The remote CLI (`--server URL`, `TABULA_TOKEN` / `--token-file`) against `tabula
//! serve`'s API listener: the README's pinning story run twice, once on a local store
//! and once through the API, prints the same (after normalising only what two separate
//! runs cannot share: wall-clock times and the manifest digests, which hash the
//! `created` time, and `explain --json`'s store revision); refusals are the one-line
//! messages that say what to do; `events --follow` receives live events over SSE and
//! resumes after a server restart without repeating one.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::api_session::{Api, create_token};
use crate::common::{Env, Run};
use crate::serve::{curl, start_with};

const N1: &str = "52:54:00:00:00:01";
const N2: &str = "52:54:00:00:00:02";

/// Where a story's commands run.
enum Side<'a> {
    Local(&'a Env),
    /// The API at this URL, with this token. The commands get an empty data dir and no
    /// config: anything they print came through the API.
    Remote(&'a Env, String, String),
}

impl Side<'_> {
    fn command(&self) -> Command {
        match self {
            Side::Local(env) => env.command(),
            Side::Remote(env, url, token) => {
                let mut c = env.command();
                c.env("TABULA_DATA_DIR", env.dir.path().join("no-store-here"))
                    .env_remove("TABULA_CONFIG")
                    .env("TABULA_SERVER", url)
                    .env("TABULA_TOKEN", token);
                c
            }
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.command().args(args).output().expect("spawn tabula");
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        r
    }
}

/// The story: the README's "Publish and pin" commands, then `pin history`, `pin
/// rollback` and the `machine` commands, and three refusals. Returns the transcript:
/// every command with its exit status, stdout and stderr.
fn story(side: &Side<'_>, files: &Path) -> String {
    let f = |n: &str| files.join(n).to_str().unwrap().to_string();
    let (k1, i1, r1) = (f("vmlinuz"), f("initrd.img"), f("root.squashfs"));
    let (k2, i2, r2) = (f("vmlinuz-2"), f("initrd-2.img"), f("root-2.squashfs"));
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "image",
            "add",
            "demo",
            "--version",
            "1",
            "--kernel",
            &k1,
            "--initrd",
            &i1,
            "--rootfs",
            &r1,
            "--cmdline",
            "quiet host={hostname}",
        ],
        vec![
            "image",
            "add",
            "demo",
            "--version",
            "2",
            "--kernel",
            &k2,
            "--initrd",
            &i2,
            "--rootfs",
            &r2,
        ],
        vec![
            "image",
            "add",
            "demo",
            "--version",
            "2",
            "--kernel",
            &k2,
            "--initrd",
            &i2,
            "--rootfs",
            &r2,
        ],
        vec!["image", "tag", "demo@2", "stable"],
        vec![
            "machine",
            "add",
            "n1",
            "--mac",
            N1,
            "--label",
            "role=web",
            "--hostname",
            "node-1",
        ],
        vec!["machine", "add", "n2", "--mac", N2, "--label", "role=web"],
        vec!["pin", "set", "n1", "demo@1"],
        vec!["pin", "set", "label:role=web", "demo:stable"],
        vec!["pin", "set", "default", "demo@2"],
        vec!["explain", N1],
        vec!["explain", N2, "--arch", "efi-x64"],
        vec!["explain", N2, "--json"],
        vec!["pin", "set", "n1", "demo@2"],
        vec!["pin", "history", "n1"],
        vec!["pin", "rollback", "n1"],
        vec!["pin", "history", "n1"],
        vec!["explain", N1],
        vec!["pin", "list"],
        vec!["image", "tag", "demo@1", "stable"],
        vec!["explain", N2],
        vec!["machine", "label", "n2", "rack=r1", "role-"],
        vec!["machine", "list"],
        vec!["machine", "show", "n1"],
        vec!["machine", "show", "n2"],
        vec!["image", "list"],
        vec!["image", "show", "demo:stable"],
        vec!["image", "show", "demo"],
        vec!["pin", "rm", "default"],
        vec!["explain", "52:54:00:00:00:99"],
        vec!["machine", "rm", "n2"],
        vec!["machine", "list"],
        vec!["lease", "list"],
        vec!["events"],
        // Refusals, each as the local CLI says it.
        vec!["pin", "rollback", "label:role=web"],
        vec!["pin", "set", "n1", "demo@9"],
        vec!["machine", "rm", "nosuch"],
        vec!["machine", "add", "n1", "--mac", N1],
        vec!["pin", "history", "n2"],
        vec!["image", "rm", "demo@1"],
    ];
    let mut out = String::new();
    for args in steps {
        let r = side.run(&args);
        let shown: Vec<&str> = args
            .iter()
            .map(|a| a.strip_prefix(files.to_str().unwrap()).unwrap_or(a))
            .collect();
        out.push_str(&format!(
            "$ tabula {}\n[{}]\n{}{}",
            shown.join(" "),
            r.code,
            r.stdout,
            r.stderr
        ));
    }
    out
}

/// Replaces what two runs cannot share: RFC 3339 times, the manifest digests (each
/// named by the version whose `published` line gave it, with or without `sha256:`),
/// and the store revision in `explain --json`.
fn normalise(t: &str) -> String {
    let mut s = t.to_string();
    for line in t.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() == 3 && w[0] == "published" {
            let hex = w[2].strip_prefix("sha256:").unwrap();
            s = s.replace(hex, &format!("<manifest of {}>", w[1]));
        }
    }
    // `image list`'s last column, REPLICAS, is the state of the serving servers (the
    // local store has none; the remote one has its own server, which reports each blob
    // once it has hashed it): not part of what must print the same.
    let mut image_list = false;
    let s: String = s
        .lines()
        .map(|l| {
            if l.starts_with("$ ") {
                image_list = l == "$ tabula image list";
            }
            let w: Vec<&str> = l.split_whitespace().collect();
            if image_list && !l.starts_with("$ ") && w.len() > 2 && w[0] != "IMAGE" {
                let last = w[w.len() - 1];
                let cut = l.len() - last.len();
                format!("{}<replicas>\n", &l[..cut])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if is_time(&b[i..]) {
            out.push_str("<time>");
            i += 20;
            continue;
        }
        let rest = &s[i..];
        if let Some(after) = rest.strip_prefix("\"revision\": ") {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            out.push_str("\"revision\": <n>");
            i += "\"revision\": ".len() + digits;
            continue;
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_time(b: &[u8]) -> bool {
    let pat = b"dddd-dd-ddTdd:dd:ddZ";
    b.len() >= pat.len()
        && pat.iter().zip(b).all(|(p, c)| match p {
            b'd' => c.is_ascii_digit(),
            p => p == c,
        })
}

/// The files both runs publish, written once.
fn story_files(env: &Env) -> std::path::PathBuf {
    let dir = env.dir.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = |seed: u64, len: usize| crate::common::bytes(seed, len);
    for (name, seed, len) in [
        ("vmlinuz", 1, 60_000),
        ("initrd.img", 2, 30_000),
        ("root.squashfs", 3, 300_000),
        ("vmlinuz-2", 4, 60_000),
        ("initrd-2.img", 5, 30_000),
        ("root-2.squashfs", 6, 300_000),
    ] {
        std::fs::write(dir.join(name), bytes(seed, len)).unwrap();
    }
    dir
}

#[test]
fn the_pinning_story_prints_the_same_locally_and_through_the_api() {
    // Local: a store of its own, with the server's settings (the same public URL).
    let local = Env::new();
    let cfg = local.dir.path().join("local.toml");
    std::fs::write(
        &cfg,
        "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\npublic_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    local.use_config(cfg);
    let files = story_files(&local);
    let here = story(&Side::Local(&local), &files);

    let api = Api::start(Env::new());
    let there = story(
        &Side::Remote(&api.env, api.base(), api.admin.clone()),
        &files,
    );

    // Not vacuous: the story did what it says on both sides.
    for t in [&here, &there] {
        assert!(t.contains("published demo@1 sha256:"), "{t}");
        assert!(t.contains("unchanged demo@2 "), "{t}");
        assert!(
            t.contains("machine:n1 -> demo@1 (rolled back from demo@2)"),
            "{t}"
        );
        assert!(t.contains("  boots     (efi-x64) demo@1"), "{t}");
        assert!(t.contains("error: "), "{t}");
    }
    let (a, b) = (normalise(&here), normalise(&there));
    if a != b {
        for (x, y) in a.lines().zip(b.lines()) {
            if x != y {
                panic!("first difference:\nlocal:  {x}\nremote: {y}\n\nlocal:\n{a}\nremote:\n{b}");
            }
        }
        panic!("lengths differ:\nlocal:\n{a}\nremote:\n{b}");
    }
    // The remote writes were the API's: its history names the token.
    let h = api.get("/api/v1/pins/machine%3An1/history", &api.read);
    assert_eq!(h.json()["items"][0]["actor"], "admin", "{}", h.text());
}

#[test]
fn refusals_say_what_to_do_about_the_token() {
    let api = Api::start(Env::new());
    let remote = |token: Option<&str>, args: &[&str]| {
        let mut c = api.env.command();
        c.env("TABULA_SERVER", api.base())
            .env_remove("TABULA_TOKEN");
        if let Some(t) = token {
            c.env("TABULA_TOKEN", t);
        }
        let out = c.args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err.trim().to_string()
    };
    let base = api.base();
    assert_eq!(
        remote(None, &["pin", "list"]),
        format!(
            "error: no token for {base}: set TABULA_TOKEN or --token-file PATH (make one on the server with `tabula token create NAME --scope read|operate|admin`)"
        )
    );
    assert_eq!(
        remote(Some("tabula.admin.wrong"), &["pin", "list"]),
        format!("error: the token is not valid for {base}: check TABULA_TOKEN or --token-file")
    );
    assert_eq!(
        remote(Some(&api.read), &["pin", "set", "default", "local"]),
        "error: not allowed: token \"reader\" has scope read; PUT /api/v1/pins/default needs operate (use a token of scope operate)"
    );
    assert_eq!(
        remote(Some(&api.operate), &["image", "tag", "demo@1", "stable"]),
        "error: not allowed: token \"operator\" has scope operate; PUT /api/v1/images/demo/channels/stable needs admin (use a token of scope admin)"
    );
    // A revoked token is told apart.
    let gone = create_token(&api.env, "gone", "read", None);
    api.env.ok(&["token", "revoke", "gone"]);
    assert_eq!(
        remote(Some(&gone), &["machine", "list"]),
        format!(
            "error: the token is not valid for {base} (the token was revoked): check TABULA_TOKEN or --token-file"
        )
    );
    // What needs the server's disk says so instead of acting on a local store.
    assert!(
        remote(Some(&api.admin), &["image", "gc"])
            .starts_with("error: `tabula image gc` works on the server itself"),
    );
    // --token-file wins over the environment; its whitespace is not the token's.
    let file = api.env.dir.path().join("token");
    std::fs::write(&file, format!("{}\n", api.read)).unwrap();
    let out = api
        .env
        .command()
        .env("TABULA_SERVER", api.base())
        .env("TABULA_TOKEN", "tabula.x.wrong")
        .args(["--token-file", file.to_str().unwrap(), "machine", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "NAME  MACS  ADDRESS  LABELS\n"
    );
    // An API that is not there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let out = api
        .env
        .command()
        .env("TABULA_SERVER", &url)
        .env("TABULA_TOKEN", &api.read)
        .args(["pin", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: cannot reach the API at {url}: ")),
        "{err}"
    );
}

/// Asks the data plane for `mac`'s script: one `script-sent` or `ignored` event.
fn boot_script(http: std::net::SocketAddr, mac: &str) {
    curl(&[&format!("http://{http}/boot.ipxe?mac={mac}")]);
}

#[test]
fn events_follow_receives_live_events_and_resumes_after_a_restart() {
    let env = Env::new();
    // A fixed API port, so the follower finds the restarted server where it was.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = env.dir.path().join("api.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    env.use_config(cfg.clone());
    let token = create_token(&env, "watcher", "read", None);
    let srv = start_with(&env, &cfg, false);
    env.ok(&["pin", "set", "default", "local"]);

    let mut follower = env
        .command()
        .env("TABULA_SERVER", format!("http://127.0.0.1:{port}"))
        .env("TABULA_TOKEN", &token)
        .args(["events", "--follow", "--json", "--last", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no event line for {what} within 30 s"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    // The follower takes its cursor when it starts, then streams what comes after:
    // ask for scripts until it has printed one (each ask is one more event).
    let mut first = None;
    for _ in 0..20 {
        boot_script(srv.http, "52:54:00:00:00:31");
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
            first = Some(serde_json::from_str::<serde_json::Value>(&line).unwrap());
            break;
        }
    }
    let mut last = first.expect("a live event within 40 s");
    assert_eq!(last["mac"], "52:54:00:00:00:31", "{last}");
    assert_eq!(last["via"], "http", "{last}");
    assert!(
        matches!(last["stage"].as_str(), Some("script-sent" | "ignored")),
        "{last}"
    );
    // Asks made before it connected may follow, in order.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(1500)) {
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(e["id"].as_i64() > last["id"].as_i64(), "{last} then {e}");
        last = e;
    }

    // The server goes away and comes back on the same port; the follower reconnects
    // with Last-Event-ID and prints only what is new.
    drop(srv);
    let srv = start_with(&env, &cfg, false);
    boot_script(srv.http, "52:54:00:00:00:32");
    let second = next("the script after the restart");
    assert_eq!(second["mac"], "52:54:00:00:00:32", "{second}");
    assert!(
        second["id"].as_i64().unwrap() > last["id"].as_i64().unwrap(),
        "{last} then {second}"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "nothing else: no event repeated"
    );
    let _ = follower.kill();
    let _ = follower.wait();
}
