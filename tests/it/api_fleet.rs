//! Issue 14's fleet features through the API against the real binary: a rollout created,
//! started, paused and resumed over HTTP is what the local `tabula rollout show --json`
//! shows, step by step; commands the state does not take are 409, unknown ones 404, bad
//! bodies 422, all problem+json; a boot-once made through the API is readable by id (and
//! is the local `pin once-status`'s); boots, holds and webhooks answer.

use serde_json::Value;

use crate::api_session::{Api, publish_demo};
use crate::common::Env;

fn mac(i: usize) -> String {
    format!("52:54:00:00:09:{i:02x}")
}

#[test]
fn rollouts_and_boot_once_through_the_api_are_the_clis() {
    let env = Env::new();
    publish_demo(&env, "1", 1);
    publish_demo(&env, "2", 3);
    for i in 1..=4 {
        env.ok(&[
            "machine",
            "add",
            &format!("n{i}"),
            "--mac",
            &mac(i),
            "--label",
            "role=web",
        ]);
    }
    env.ok(&["pin", "set", "label:role=web", "demo@1"]);
    let api = Api::start(env);
    let show = |name: &str| -> Value {
        serde_json::from_str(&api.env.ok(&["rollout", "show", name, "--json"])).unwrap()
    };

    // Create (admin), then the commands (operate).
    let body = r#"{"name":"r1","target":"role=web","to":"demo@2","steps":"1,50%,100%"}"#;
    let r = api.call("POST", "/api/v1/rollouts", Some(&api.operate), Some(body));
    r.problem(403, "urn:tabula:problem:insufficient-scope");
    let r = api.call("POST", "/api/v1/rollouts", Some(&api.admin), Some(body));
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.headers.contains("location: /api/v1/rollouts/r1"),
        "{}",
        r.headers
    );
    let created = r.json();
    assert_eq!(created["rollout"]["state"], "draft", "{created}");
    assert_eq!(show("r1")["rollout"]["state"], "draft");
    assert_eq!(created["members"].as_array().unwrap().len(), 4, "{created}");
    // The API's view is the CLI's.
    assert_eq!(api.get("/api/v1/rollouts/r1", &api.read).json(), show("r1"));
    api.call("POST", "/api/v1/rollouts", Some(&api.admin), Some(body))
        .problem(409, "urn:tabula:problem:conflict");

    for (cmd, state) in [
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
    ] {
        let r = api.call(
            "POST",
            &format!("/api/v1/rollouts/r1/{cmd}"),
            Some(&api.operate),
            None,
        );
        assert_eq!(r.status, 200, "{cmd}: {}", r.text());
        assert_eq!(r.json()["state"], state, "{cmd}");
        let v = show("r1");
        assert_eq!(v["rollout"]["state"], state, "{cmd}: {v}");
        if cmd == "pause" {
            assert_eq!(v["rollout"]["paused"], "manual", "{v}");
        }
    }
    // A command the state does not take, an unknown one, an unknown rollout.
    api.call(
        "POST",
        "/api/v1/rollouts/r1/start",
        Some(&api.operate),
        None,
    )
    .problem(409, "urn:tabula:problem:conflict");
    api.call(
        "POST",
        "/api/v1/rollouts/r1/explode",
        Some(&api.operate),
        None,
    )
    .problem(404, "urn:tabula:problem:not-found");
    api.call(
        "POST",
        "/api/v1/rollouts/nope/pause",
        Some(&api.operate),
        None,
    )
    .problem(404, "urn:tabula:problem:not-found");
    api.get("/api/v1/rollouts/nope", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
    let p = api
        .call(
            "POST",
            "/api/v1/rollouts",
            Some(&api.admin),
            Some(r#"{"name":"r2","target":"role=web","to":"demo:stable"}"#),
        )
        .problem(422, "urn:tabula:problem:invalid");
    assert_eq!(p["name"], "to", "{p}");
    let list = api.get("/api/v1/rollouts", &api.read).json();
    assert_eq!(list["items"][0]["rollout"]["name"], "r1", "{list}");

    // Boot-once: created through the API, read back by id, the same row the CLI reads.
    let r = api.call(
        "POST",
        "/api/v1/machines/n1/boot-once",
        Some(&api.operate),
        Some(r#"{"ref":"demo@2","ttl":"1h"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let once = r.json();
    let id = once["id"].as_str().unwrap().to_string();
    assert_eq!(once["state"], "pending", "{once}");
    assert!(
        r.headers
            .contains(&format!("location: /api/v1/machines/n1/boot-once/{id}")),
        "{}",
        r.headers
    );
    let got = api
        .get(&format!("/api/v1/machines/n1/boot-once/{id}"), &api.read)
        .json();
    assert_eq!(got, once);
    let local: Value =
        serde_json::from_str(&api.env.ok(&["pin", "once-status", &id, "--json"])).unwrap();
    assert_eq!(local, once, "the API's boot-once is the CLI's");
    api.get(&format!("/api/v1/machines/n2/boot-once/{id}"), &api.read)
        .problem(404, "urn:tabula:problem:not-found");
    api.call(
        "POST",
        "/api/v1/machines/n1/boot-once",
        Some(&api.operate),
        Some(r#"{"ref":"demo@9"}"#),
    )
    .problem(422, "urn:tabula:problem:unknown-reference");
    api.call(
        "POST",
        "/api/v1/machines/ghost/boot-once",
        Some(&api.operate),
        Some(r#"{"ref":"demo@2"}"#),
    )
    .problem(404, "urn:tabula:problem:not-found");
    api.call(
        "POST",
        "/api/v1/machines/n1/boot-once",
        Some(&api.operate),
        Some(r#"{"ref":"demo@2","then":"sideways"}"#),
    )
    .problem(422, "urn:tabula:problem:invalid");

    // Boots, holds, release: empty, but answered.
    let b = api.get("/api/v1/machines/n1/boots", &api.read).json();
    assert_eq!(b["items"], serde_json::json!([]), "{b}");
    api.get("/api/v1/machines/ghost/boots", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
    let h = api.get("/api/v1/holds", &api.read).json();
    assert_eq!(h["items"], serde_json::json!([]), "{h}");
    let r = api.call(
        "DELETE",
        "/api/v1/machines/n1/hold",
        Some(&api.operate),
        None,
    );
    assert_eq!(r.status, 204, "not held");

    // Webhooks: admin adds, the list hides the secret, deliveries, delete.
    let r = api.call(
        "POST",
        "/api/v1/webhooks",
        Some(&api.operate),
        Some(r#"{"url":"http://127.0.0.1:9/hook","events":"booted"}"#),
    );
    r.problem(403, "urn:tabula:problem:insufficient-scope");
    let r = api.call(
        "POST",
        "/api/v1/webhooks",
        Some(&api.admin),
        Some(r#"{"url":"http://127.0.0.1:9/hook","events":"booted,rollout.*"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let w = r.json();
    let wid = w["id"].as_str().unwrap().to_string();
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"), "{w}");
    let list = api.get("/api/v1/webhooks", &api.read);
    assert!(!list.text().contains("whsec_"), "{}", list.text());
    assert_eq!(list.json()["items"][0]["id"], wid.as_str());
    let local = api.env.ok(&["webhook", "list"]);
    assert!(local.contains(&wid), "{local}");
    let d = api
        .get(&format!("/api/v1/webhooks/{wid}/deliveries"), &api.read)
        .json();
    assert!(d["items"].is_array(), "{d}");
    api.call(
        "POST",
        "/api/v1/webhooks",
        Some(&api.admin),
        Some(r#"{"url":"ftp://x/hook","events":"booted"}"#),
    )
    .problem(422, "urn:tabula:problem:invalid");
    let r = api.call(
        "DELETE",
        &format!("/api/v1/webhooks/{wid}"),
        Some(&api.admin),
        None,
    );
    assert_eq!(r.status, 204);
    api.get(&format!("/api/v1/webhooks/{wid}/deliveries"), &api.read)
        .problem(404, "urn:tabula:problem:not-found");

    // The fleet metrics: r1 (running) has its 4 members in the gauge; the counters are
    // there at 0 (no boot has ended); promtool accepts the scrape.
    let mut text = String::new();
    crate::common::wait_for("the rollout's members in /metrics", 20, || {
        text = crate::metrics::scrape(api.srv.api);
        crate::metrics::sum(&text, "tabula_rollout_members", &[]) == 4.0
    });
    assert_eq!(
        crate::metrics::value(&text, "tabula_rollbacks_total"),
        Some(0.0)
    );
    for r in ["booted", "failed", "expired"] {
        let s = format!("tabula_boot_once_results_total{{result=\"{r}\"}}");
        assert_eq!(crate::metrics::value(&text, &s), Some(0.0), "{s}");
    }
    crate::metrics::promtool_check(&text);
    // Aborted: no longer in progress, out of the gauge.
    let r = api.call(
        "POST",
        "/api/v1/rollouts/r1/abort",
        Some(&api.operate),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    crate::common::wait_for("the aborted rollout out of /metrics", 20, || {
        text = crate::metrics::scrape(api.srv.api);
        crate::metrics::sum(&text, "tabula_rollout_members", &[]) == 0.0
    });
}

/// The remote CLI (`--server`) runs `rollout …` and `pin set --once` through the API and
/// prints what the local CLI prints.
#[test]
fn remote_rollout_and_boot_once_print_what_local_does() {
    let env = Env::new();
    publish_demo(&env, "1", 1);
    publish_demo(&env, "2", 3);
    for i in 1..=3 {
        env.ok(&[
            "machine",
            "add",
            &format!("n{i}"),
            "--mac",
            &mac(i),
            "--label",
            "role=web",
        ]);
    }
    let api = Api::start(env);
    let remote = |token: &str, args: &[&str]| -> String {
        let out = api
            .env
            .command()
            .env("TABULA_DATA_DIR", api.env.dir.path().join("no-store-here"))
            .env_remove("TABULA_CONFIG")
            .env("TABULA_SERVER", api.base())
            .env("TABULA_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let created = remote(
        &api.admin,
        &[
            "rollout", "create", "r1", "--target", "role=web", "--to", "demo@2", "--steps",
            "1,100%",
        ],
    );
    let local_show = api.env.ok(&["rollout", "show", "r1"]);
    assert_eq!(
        created,
        format!(
            "created rollout r1 (draft): start it with `tabula rollout start r1`\n{local_show}"
        )
    );
    assert_eq!(remote(&api.read, &["rollout", "show", "r1"]), local_show);
    assert_eq!(
        remote(&api.read, &["rollout", "show", "r1", "--json"]),
        api.env.ok(&["rollout", "show", "r1", "--json"])
    );
    assert_eq!(
        remote(&api.operate, &["rollout", "start", "r1"]),
        "rollout r1: start -> running\n"
    );
    assert_eq!(
        remote(&api.operate, &["rollout", "pause", "r1"]),
        api.env
            .ok(&["rollout", "resume", "r1"])
            .replace("resume -> running", "pause -> paused")
    );
    assert_eq!(
        remote(&api.read, &["rollout", "list"]),
        api.env.ok(&["rollout", "list"])
    );

    // Boot-once: made remotely, read remotely and locally alike.
    let made = remote(&api.operate, &["pin", "set", "n1", "demo@2", "--once"]);
    let id = made
        .strip_prefix("boot-once ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{made}"))
        .to_string();
    assert!(made.contains(" : n1 boots demo@2 once (until "), "{made}");
    assert!(made.ends_with("), then revert\n"), "{made}");
    let local = api.env.ok(&["pin", "set", "n2", "demo@2", "--once"]);
    let shape = |s: &str| {
        let (_, rest) = s.split_once(" : ").unwrap();
        rest.split(" (until ").next().unwrap().replace("n2", "n1")
    };
    assert_eq!(shape(&made), shape(&local));
    // Holds and release: the same table, the same refusal.
    assert_eq!(
        remote(&api.read, &["machine", "holds"]),
        api.env.ok(&["machine", "holds"])
    );
    let out = api
        .env
        .command()
        .env("TABULA_DATA_DIR", api.env.dir.path().join("no-store-here"))
        .env_remove("TABULA_CONFIG")
        .env("TABULA_SERVER", api.base())
        .env("TABULA_TOKEN", &api.operate)
        .args(["machine", "release", "n1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        api.env.fails(&["machine", "release", "n1"])
    );
    for json in [false, true] {
        let mut args = vec!["pin", "once-status", id.as_str()];
        if json {
            args.push("--json");
        }
        assert_eq!(remote(&api.read, &args), api.env.ok(&args), "{args:?}");
    }
}
