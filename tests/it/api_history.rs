//! Every write records its actor in the history it changes: machines created, patched and
//! deleted through the API with token "alice" show actor `alice` in
//! `GET /api/v1/machines/{name}/history` and in `tabula machine history`; the local CLI's
//! writes show no actor (`null`, printed `local`); versions published and removed and
//! channels moved carry theirs too.

use crate::api_session::{Api, create_token, publish_demo};
use crate::common::Env;

const N1: &str = "52:54:00:00:08:01";
const N2: &str = "52:54:00:00:08:02";

#[test]
fn api_and_cli_writes_record_their_actor() {
    let env = Env::new();
    publish_demo(&env, "1", 1);
    publish_demo(&env, "2", 3);
    env.ok(&["machine", "add", "n1", "--mac", N1]);
    env.ok(&["machine", "label", "n1", "role=web"]);
    let api = Api::start(env);
    let alice = create_token(&api.env, "alice", "operate", None);
    let bob = create_token(&api.env, "bob", "admin", None);

    // Through the API as alice: create, patch, delete.
    let r = api.call(
        "POST",
        "/api/v1/machines",
        Some(&alice),
        Some(&format!(r#"{{"name":"n2","macs":["{N2}"]}}"#)),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = api.call(
        "PATCH",
        "/api/v1/machines/n2",
        Some(&alice),
        Some(r#"{"labels":{"rack":"r1"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api.call("DELETE", "/api/v1/machines/n2", Some(&alice), None);
    assert_eq!(r.status, 204);
    // A delete of nothing changes nothing: no entry.
    let r = api.call("DELETE", "/api/v1/machines/n2", Some(&alice), None);
    assert_eq!(r.status, 204);

    let h = api.get("/api/v1/machines/n2/history", &api.read).json();
    let changes: Vec<(String, String)> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["actor"].as_str().unwrap_or("null").to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        changes,
        [s("add", "alice"), s("update", "alice"), s("rm", "alice")],
        "{h}"
    );
    assert!(
        h["items"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("\"rack\":\"r1\""),
        "{h}"
    );

    // The CLI's own writes: no actor, printed `local`.
    let h = api.get("/api/v1/machines/n1/history", &api.read).json();
    assert_eq!(h["items"][0]["kind"], "add", "{h}");
    assert_eq!(h["items"][0]["actor"], serde_json::Value::Null, "{h}");
    assert_eq!(h["items"][1]["kind"], "label", "{h}");
    let out = api.env.ok(&["machine", "history", "n1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("AT") && lines[0].contains("ACTOR"),
        "{out}"
    );
    assert!(
        lines[1].contains(" add ") && lines[1].contains(" local "),
        "{out}"
    );
    assert!(
        lines[2].contains(" label ") && lines[2].contains("role"),
        "{out}"
    );
    let out = api.env.ok(&["machine", "history", "n2"]);
    assert_eq!(out.matches("  alice").count(), 3, "{out}");
    // The remote CLI prints the same.
    let remote = api
        .env
        .command()
        .env("TABULA_DATA_DIR", api.env.dir.path().join("no-store-here"))
        .env_remove("TABULA_CONFIG")
        .env("TABULA_SERVER", api.base())
        .env("TABULA_TOKEN", &api.read)
        .args(["machine", "history", "n2"])
        .output()
        .unwrap();
    assert!(remote.status.success());
    assert_eq!(String::from_utf8_lossy(&remote.stdout), out);
    // A name that never existed: 404 problem, and the CLI's one line.
    api.get("/api/v1/machines/nobody/history", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
    let e = api.env.fails(&["machine", "history", "nobody"]);
    assert!(e.contains("no machine named \"nobody\""), "{e}");

    // Image versions and channels: bob moves a channel and removes a version.
    let r = api.call(
        "PUT",
        "/api/v1/images/demo/channels/stable",
        Some(&bob),
        Some(r#"{"version":"1"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api.call("DELETE", "/api/v1/images/demo/versions/2", Some(&bob), None);
    assert_eq!(r.status, 204, "{}", r.text());
    let ch = api
        .get("/api/v1/images/demo/channels/stable/history", &api.read)
        .json();
    assert_eq!(ch["items"][0]["actor"], "bob", "{ch}");
    let v = api.get("/api/v1/images/demo/history", &api.read).json();
    let rows: Vec<(String, String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["version"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                c["actor"].as_str().unwrap_or("null").to_string(),
            )
        })
        .collect();
    let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        rows,
        [
            t("1", "publish", "null"),
            t("2", "publish", "null"),
            t("2", "rm", "bob")
        ],
        "{v}"
    );
    assert!(
        v["items"][2]["manifest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{v}"
    );
}
