//! Machines and pins over the API against the real binary: 57 machines created and
//! paged by 10 (each exactly once), the label selector, patch and its conflicts, a pin
//! set through the API that the local `tabula explain --json` agrees with, the actor in
//! the pin history, and idempotent PUT and DELETE.

use std::collections::BTreeSet;

use crate::api_session::{Api, publish_demo};
use crate::common::Env;

#[test]
fn machines_page_filter_patch_and_delete() {
    let api = Api::start(Env::new());
    let t = &api.operate;
    for i in 0..57 {
        let role = if i % 3 == 0 { "db" } else { "web" };
        let body = format!(
            r#"{{"name":"m{i:02}","macs":["52:54:00:00:02:{i:02x}"],"labels":{{"role":"{role}"}}}}"#
        );
        let r = api.call("POST", "/api/v1/machines", Some(t), Some(&body));
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(
            r.headers
                .contains(&format!("location: /api/v1/machines/m{i:02}")),
            "{}",
            r.headers
        );
    }
    // Every row exactly once, in name order, ten at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/machines?limit=10&after={a}"),
            None => "/api/v1/machines?limit=10".to_string(),
        };
        let p = api.get(&path, &api.read).json();
        let items = p["items"].as_array().unwrap();
        assert!(items.len() <= 10);
        seen.extend(
            items
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match p["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 6);
    let want: Vec<String> = (0..57).map(|i| format!("m{i:02}")).collect();
    assert_eq!(seen, want);
    // The label selector, paged too.
    let db = api
        .get("/api/v1/machines?selector=role=db&limit=1000", &api.read)
        .json();
    let names: BTreeSet<&str> = db["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 19);
    assert!(names.contains("m00") && !names.contains("m01"));
    api.get("/api/v1/machines?selector=role", &api.read)
        .problem(400, "about:blank");
    api.get("/api/v1/machines?limit=0", &api.read)
        .problem(400, "about:blank");

    // A duplicate is a conflict; a bad value is 422 naming the field; broken JSON 400.
    let dup = r#"{"name":"m00","macs":["52:54:00:00:03:01"]}"#;
    let p = api
        .call("POST", "/api/v1/machines", Some(t), Some(dup))
        .problem(409, "urn:tabula:problem:conflict");
    assert_eq!(p["resource"], "machine");
    let bad = r#"{"name":"x","macs":["zz"]}"#;
    let p = api
        .call("POST", "/api/v1/machines", Some(t), Some(bad))
        .problem(422, "urn:tabula:problem:invalid");
    assert_eq!(p["name"], "macs");
    api.call("POST", "/api/v1/machines", Some(t), Some("{"))
        .problem(400, "urn:tabula:problem:malformed-body");
    api.call("POST", "/api/v1/machines", Some(t), Some(r#"{"nme":"x"}"#))
        .problem(422, "urn:tabula:problem:malformed-body");

    // Patch: hostname and address set, a label removed and one added, MACs replaced.
    let patch = r#"{"hostname":"db-0","address":"10.0.0.5","labels":{"role":null,"rack":"r1"},"macs":["52:54:00:00:04:01","52:54:00:00:04:02"]}"#;
    let r = api.call("PATCH", "/api/v1/machines/m00", Some(t), Some(patch));
    assert_eq!(r.status, 200, "{}", r.text());
    let m = api.get("/api/v1/machines/m00", &api.read).json();
    assert_eq!(m["hostname"], "db-0");
    assert_eq!(m["address"], "10.0.0.5");
    assert_eq!(m["labels"], serde_json::json!({"rack": "r1"}));
    assert_eq!(
        m["macs"],
        serde_json::json!(["52:54:00:00:04:01", "52:54:00:00:04:02"])
    );
    // The local CLI sees it.
    let shown = api.env.ok(&["machine", "show", "m00"]);
    assert!(
        shown.contains("hostname  db-0") && shown.contains("label     rack=r1"),
        "{shown}"
    );
    // null clears; another machine's MAC is a conflict and changes nothing.
    let r = api.call(
        "PATCH",
        "/api/v1/machines/m00",
        Some(t),
        Some(r#"{"hostname":null}"#),
    );
    assert_eq!(r.json()["hostname"], serde_json::Value::Null);
    api.call(
        "PATCH",
        "/api/v1/machines/m00",
        Some(t),
        Some(r#"{"macs":["52:54:00:00:02:01"]}"#),
    )
    .problem(409, "urn:tabula:problem:conflict");
    assert_eq!(
        api.get("/api/v1/machines/m00", &api.read).json()["macs"][0],
        "52:54:00:00:04:01"
    );
    api.call("PATCH", "/api/v1/machines/ghost", Some(t), Some("{}"))
        .problem(404, "urn:tabula:problem:not-found");
    api.get("/api/v1/machines/ghost", &api.read)
        .problem(404, "urn:tabula:problem:not-found");

    // DELETE twice: 204 both times, then it is gone.
    for _ in 0..2 {
        assert_eq!(
            api.call("DELETE", "/api/v1/machines/m01", Some(t), None)
                .status,
            204
        );
    }
    api.get("/api/v1/machines/m01", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
}

#[test]
fn a_pin_through_the_api_is_what_local_explain_says() {
    let env = Env::new();
    publish_demo(&env, "1", 11);
    let m2 = publish_demo(&env, "2", 13);
    env.ok(&["machine", "add", "n1", "--mac", "52:54:00:00:05:01"]);
    env.ok(&["pin", "set", "n1", "demo@1"]);
    let api = Api::start(env);
    let t = &api.operate;

    let r = api.call(
        "PUT",
        "/api/v1/pins/n1",
        Some(t),
        Some(r#"{"ref":"demo@2"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reference"], "demo@2");
    // Again: the same answer, no new history entry.
    assert_eq!(
        api.call(
            "PUT",
            "/api/v1/pins/n1",
            Some(t),
            Some(r#"{"ref":"demo@2"}"#)
        )
        .status,
        200
    );

    let from_api = api.get("/api/v1/machines/n1/explain", &api.read).json();
    let local: serde_json::Value =
        serde_json::from_str(&api.env.ok(&["explain", "52:54:00:00:05:01", "--json"])).unwrap();
    assert_eq!(from_api, local);
    assert_eq!(from_api["resolved"]["manifest"], m2, "{from_api}");
    let efi = api
        .get("/api/v1/machines/n1/explain?arch=efi-x64", &api.read)
        .json();
    let local_efi: serde_json::Value = serde_json::from_str(&api.env.ok(&[
        "explain",
        "52:54:00:00:05:01",
        "--arch",
        "efi-x64",
        "--json",
    ]))
    .unwrap();
    assert_eq!(efi, local_efi);

    // The history names who did what: the CLI (no actor), then the token.
    let h = api.get("/api/v1/pins/n1/history", &api.read).json();
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{h}");
    assert_eq!(items[0]["actor"], serde_json::Value::Null);
    assert_eq!(items[1]["actor"], "operator");
    assert_eq!(items[1]["reference"], "demo@2");

    // Rollback through the API; the next one has nothing to go back to: 409.
    let r = api
        .call("POST", "/api/v1/pins/n1/rollback", Some(t), None)
        .json();
    assert_eq!(
        r,
        serde_json::json!({"target": "machine:n1", "from": "demo@2", "to": "demo@1"})
    );
    let local: serde_json::Value =
        serde_json::from_str(&api.env.ok(&["explain", "52:54:00:00:05:01", "--json"])).unwrap();
    assert_eq!(
        api.get("/api/v1/machines/n1/explain", &api.read).json(),
        local
    );
    api.call("POST", "/api/v1/pins/n1/rollback", Some(t), None)
        .problem(409, "urn:tabula:problem:conflict");

    // A reference to nothing is 422, a target machine that does not exist 404, junk 422.
    api.call(
        "PUT",
        "/api/v1/pins/n1",
        Some(t),
        Some(r#"{"ref":"demo@7"}"#),
    )
    .problem(422, "urn:tabula:problem:unknown-reference");
    api.call(
        "PUT",
        "/api/v1/pins/ghost",
        Some(t),
        Some(r#"{"ref":"demo@1"}"#),
    )
    .problem(404, "urn:tabula:problem:not-found");
    api.call("PUT", "/api/v1/pins/n1", Some(t), Some(r#"{"ref":"@@"}"#))
        .problem(422, "urn:tabula:problem:invalid");
    // A label target, percent-encoded, and the default; DELETE twice is 204 twice.
    let r = api.call(
        "PUT",
        "/api/v1/pins/label:role=web%7Cdb",
        Some(t),
        Some(r#"{"ref":"demo@1"}"#),
    );
    assert_eq!(r.json()["target"], "label:role=db|web");
    assert_eq!(
        api.call(
            "PUT",
            "/api/v1/pins/default",
            Some(t),
            Some(r#"{"ref":"local"}"#)
        )
        .status,
        200
    );
    for _ in 0..2 {
        assert_eq!(
            api.call("DELETE", "/api/v1/pins/default", Some(t), None)
                .status,
            204
        );
    }
    let pins = api.get("/api/v1/pins", &api.read).json();
    let targets: Vec<&str> = pins["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["label:role=db|web", "machine:n1"]);
    let cli = api.env.ok(&["pin", "history", "default"]);
    assert!(cli.contains("rm"), "{cli}");

    // The timeline of a machine that never booted: no boots, no events.
    let tl = api.get("/api/v1/machines/n1/timeline", &api.read).json();
    assert_eq!(tl["boots"], serde_json::json!([]));
    assert_eq!(tl["mac"], "52:54:00:00:05:01");
}
