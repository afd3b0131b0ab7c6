//! Every `/api/v1` route against the real binary: no token → 401 with the Bearer
//! challenge, a token of too small a scope → 403, the right scope → the answer; revoked
//! and expired tokens → 401; every refusal a problem+json document with a stable type.

use crate::api_session::{Api, create_token, publish_demo};
use crate::common::{Env, sha256_of};

const N1: &str = "52:54:00:00:01:01";

/// `(method, path, body, scope needed, status with that scope)`, in an order whose
/// writes leave what later rows need.
fn routes(blob_hex: &str) -> Vec<(&'static str, String, Option<String>, &'static str, u16)> {
    let s = |x: &str| x.to_string();
    vec![
        ("GET", s("/api/v1/machines"), None, "read", 200),
        (
            "POST",
            s("/api/v1/machines"),
            Some(s(r#"{"name":"n2","macs":["52:54:00:00:01:02"]}"#)),
            "operate",
            201,
        ),
        ("GET", s("/api/v1/machines/n1"), None, "read", 200),
        (
            "PATCH",
            s("/api/v1/machines/n2"),
            Some(s(r#"{"labels":{"role":"web"}}"#)),
            "operate",
            200,
        ),
        ("GET", s("/api/v1/machines/n1/explain"), None, "read", 200),
        ("GET", s("/api/v1/machines/n1/timeline"), None, "read", 200),
        ("GET", s("/api/v1/machines/n1/history"), None, "read", 200),
        ("GET", s("/api/v1/machines/n1/boots"), None, "read", 200),
        (
            "DELETE",
            s("/api/v1/machines/n1/hold"),
            None,
            "operate",
            204,
        ),
        (
            "POST",
            s("/api/v1/machines/n1/boot-once"),
            Some(s(r#"{"ref":"demo@1"}"#)),
            "operate",
            201,
        ),
        ("GET", s("/api/v1/holds"), None, "read", 200),
        ("GET", s("/api/v1/rollouts"), None, "read", 200),
        (
            "POST",
            s("/api/v1/rollouts"),
            Some(s(r#"{"name":"r1","target":"role=web","to":"demo@2"}"#)),
            "admin",
            201,
        ),
        ("GET", s("/api/v1/rollouts/r1"), None, "read", 200),
        ("POST", s("/api/v1/rollouts/r1/start"), None, "operate", 200),
        ("POST", s("/api/v1/rollouts/r1/pause"), None, "operate", 200),
        (
            "POST",
            s("/api/v1/rollouts/r1/resume"),
            None,
            "operate",
            200,
        ),
        ("POST", s("/api/v1/rollouts/r1/abort"), None, "operate", 200),
        ("GET", s("/api/v1/webhooks"), None, "read", 200),
        (
            "POST",
            s("/api/v1/webhooks"),
            Some(s(r#"{"url":"http://127.0.0.1:9/hook","events":"booted"}"#)),
            "admin",
            201,
        ),
        ("GET", s("/api/v1/pins"), None, "read", 200),
        (
            "PUT",
            s("/api/v1/pins/n2"),
            Some(s(r#"{"ref":"demo@1"}"#)),
            "operate",
            200,
        ),
        ("GET", s("/api/v1/pins/n2"), None, "read", 200),
        ("POST", s("/api/v1/pins/n1/rollback"), None, "operate", 200),
        ("GET", s("/api/v1/pins/n1/history"), None, "read", 200),
        ("DELETE", s("/api/v1/pins/n2"), None, "operate", 204),
        ("GET", s("/api/v1/images"), None, "read", 200),
        ("GET", s("/api/v1/images/demo/versions"), None, "read", 200),
        (
            "GET",
            s("/api/v1/images/demo/versions/1"),
            None,
            "read",
            200,
        ),
        (
            "PUT",
            s("/api/v1/images/demo/channels/beta"),
            Some(s(r#"{"version":"1"}"#)),
            "admin",
            200,
        ),
        ("GET", s("/api/v1/images/demo/history"), None, "read", 200),
        (
            "GET",
            s("/api/v1/images/demo/channels/beta/history"),
            None,
            "read",
            200,
        ),
        (
            "PUT",
            format!("/api/v1/blobs/sha256/{blob_hex}"),
            Some(s("kernel bytes")),
            "admin",
            201,
        ),
        (
            "POST",
            s("/api/v1/images/demo/versions"),
            Some(format!(
                r#"{{"version":"9","kernel":{{"digest":"sha256:{blob_hex}","name":"vmlinuz"}}}}"#
            )),
            "admin",
            201,
        ),
        (
            "DELETE",
            s("/api/v1/images/demo/versions/9"),
            None,
            "admin",
            204,
        ),
        ("GET", s("/api/v1/leases"), None, "read", 200),
        ("GET", s("/api/v1/events"), None, "read", 200),
        ("GET", s("/api/v1/tokens"), None, "read", 200),
        (
            "POST",
            s("/api/v1/tokens"),
            Some(s(r#"{"name":"made","scope":"read","expires":"1d"}"#)),
            "admin",
            201,
        ),
        ("DELETE", s("/api/v1/tokens/made"), None, "admin", 204),
        ("DELETE", s("/api/v1/machines/n2"), None, "operate", 204),
    ]
}

#[test]
fn every_route_wants_a_token_of_its_scope() {
    let env = Env::new();
    publish_demo(&env, "1", 1);
    publish_demo(&env, "2", 3);
    env.ok(&["machine", "add", "n1", "--mac", N1]);
    env.ok(&["pin", "set", "n1", "demo@1"]);
    env.ok(&["pin", "set", "n1", "demo@2"]);
    let api = Api::start(env);
    let blob = api.env.dir.path().join("blob");
    std::fs::write(&blob, "kernel bytes").unwrap();
    let hex = sha256_of(&blob)[7..].to_string();

    let table = routes(&hex);
    assert_eq!(
        table.len(),
        41,
        "every route but the stream, a boot-once's and a webhook's (below)"
    );
    for (method, path, body, scope, want) in &table {
        let body = body.as_deref();
        let what = format!("{method} {path}");
        // No token, and a malformed one: 401, the challenge, a problem document.
        for token in [None, Some("not-a-token")] {
            let r = api.call(method, path, token, body);
            r.problem(401, "urn:tabula:problem:unauthorized");
            assert!(
                r.headers
                    .contains("www-authenticate: bearer realm=\"tabula\""),
                "{what}: {}",
                r.headers
            );
        }
        // Every scope below the one needed: 403 naming the scope needed.
        let smaller: &[&str] = match *scope {
            "read" => &[],
            "operate" => &["read"],
            _ => &["read", "operate"],
        };
        for s in smaller {
            let t = if *s == "read" {
                &api.read
            } else {
                &api.operate
            };
            let r = api.call(method, path, Some(t), body);
            let p = r.problem(403, "urn:tabula:problem:insufficient-scope");
            assert!(
                r.headers
                    .contains(&format!("error=\"insufficient_scope\", scope=\"{scope}\"")),
                "{what}: {}",
                r.headers
            );
            assert!(p["detail"].as_str().unwrap().contains(scope), "{p}");
        }
        // The scope needed: the answer.
        let t = match *scope {
            "read" => &api.read,
            "operate" => &api.operate,
            _ => &api.admin,
        };
        let r = api.call(method, path, Some(t), body);
        assert_eq!(r.status, *want, "{what}: {}", r.text());
        if *want != 204 {
            assert!(
                r.headers.contains("content-type: application/json"),
                "{what}: {}",
                r.headers
            );
            r.json();
        }
        // A larger scope may do it too (GETs: admin reads).
        if *scope == "read" {
            assert_eq!(
                api.call(method, path, Some(&api.admin), body).status,
                *want,
                "{what}"
            );
        }
    }

    // The routes of things made above, whose ids the server chose: a boot-once, a webhook.
    let once = api.get("/api/v1/machines/n1/boots", &api.read).json();
    assert!(once["items"].is_array(), "{once}");
    let w = api.get("/api/v1/webhooks", &api.read).json();
    let wid = w["items"][0]["id"].as_str().unwrap().to_string();
    let made = api.call(
        "POST",
        "/api/v1/machines/n1/boot-once",
        Some(&api.operate),
        Some(r#"{"ref":"demo@2"}"#),
    );
    let oid = made.json()["id"].as_str().unwrap().to_string();
    for (method, path, scope, want) in [
        (
            "GET",
            format!("/api/v1/machines/n1/boot-once/{oid}"),
            "read",
            200,
        ),
        (
            "GET",
            format!("/api/v1/webhooks/{wid}/deliveries"),
            "read",
            200,
        ),
        ("DELETE", format!("/api/v1/webhooks/{wid}"), "admin", 204),
    ] {
        api.call(method, &path, None, None)
            .problem(401, "urn:tabula:problem:unauthorized");
        if scope == "admin" {
            api.call(method, &path, Some(&api.operate), None)
                .problem(403, "urn:tabula:problem:insufficient-scope");
        }
        let t = if scope == "admin" {
            &api.admin
        } else {
            &api.read
        };
        let r = api.call(method, &path, Some(t), None);
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
    }

    // The stream: 401 without a token, 200 text/event-stream with one (cut by curl).
    let r = api.call("GET", "/api/v1/events/stream", None, None);
    r.problem(401, "urn:tabula:problem:unauthorized");
    let out = std::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "2", "-D", "-", "-H"])
        .arg(format!("Authorization: Bearer {}", api.read))
        .arg(format!("{}/api/v1/events/stream", api.base()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    // Health, the index and the document need no token.
    for open in ["/healthz", "/api/v1/", "/api/v1/openapi.json"] {
        assert_eq!(api.call("GET", open, None, None).status, 200, "{open}");
    }
    // An unknown path is a 404 whoever asks.
    api.call("GET", "/api/v1/nothing", None, None)
        .problem(404, "about:blank");
}

#[test]
fn revoked_and_expired_tokens_are_refused() {
    let env = Env::new();
    let api = Api::start(env);
    let gone = create_token(&api.env, "gone", "admin", None);
    let brief = create_token(&api.env, "brief", "admin", Some("1s"));
    assert_eq!(api.get("/api/v1/machines", &gone).status, 200);
    api.env.ok(&["token", "revoke", "gone"]);
    let r = api.get("/api/v1/machines", &gone);
    let p = r.problem(401, "urn:tabula:problem:unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    assert!(
        r.headers.contains("error=\"invalid_token\""),
        "{}",
        r.headers
    );

    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = api.get("/api/v1/machines", &brief);
    let p = r.problem(401, "urn:tabula:problem:unauthorized");
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");

    // A token's secret changed by one character is refused; the real one still works.
    let mut wrong = api.read.clone();
    let last = if wrong.ends_with('a') { "b" } else { "a" };
    wrong.replace_range(wrong.len() - 1.., last);
    api.get("/api/v1/machines", &wrong)
        .problem(401, "urn:tabula:problem:unauthorized");
    assert_eq!(api.get("/api/v1/machines", &api.read).status, 200);

    // Revoked through the API too; list shows states, never secrets.
    let r = api.call("DELETE", "/api/v1/tokens/brief", Some(&api.admin), None);
    assert_eq!(r.status, 204);
    let list = api.env.ok(&["token", "list", "--json"]);
    assert!(!list.contains(&api.read[api.read.len() - 20..]), "{list}");
    let states: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let state = |n: &str| {
        states
            .iter()
            .find(|t| t["name"] == n)
            .map(|t| t["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state("gone"), "revoked");
    assert_eq!(state("brief"), "revoked");
    assert_eq!(state("reader"), "active");
    // Names are not reused.
    let e = api
        .env
        .fails(&["token", "create", "gone", "--scope", "read"]);
    assert!(e.contains("exists"), "{e}");
    let e = api.env.fails(&["token", "create", "x", "--scope", "root"]);
    assert!(e.contains("unknown scope"), "{e}");
}
