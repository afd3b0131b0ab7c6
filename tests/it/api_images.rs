//! Publishing over the API against the real binary: blobs uploaded by digest (a corrupt
//! upload refused with 422 and nothing left in the blob store, a repeat answered 200), a
//! version created from a manifest naming them, served by the data plane byte for byte,
//! channels moved with the token as actor, and removal refused while in use.

use crate::api_session::Api;
use crate::common::{Env, bytes, sha256_of};

/// Every file under `dir`, recursively (names only).
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn blobs_upload_verified_then_a_version_is_published_and_served() {
    let api = Api::start(Env::new());
    let t = &api.admin;
    let blob_dir = api.env.data().join("blobs");
    let before = files(&blob_dir);

    let kernel = bytes(21, 3 << 20);
    let initrd = bytes(22, 700_000);
    let kpath = api.env.dir.path().join("k");
    std::fs::write(&kpath, &kernel).unwrap();
    let ipath = api.env.dir.path().join("i");
    std::fs::write(&ipath, &initrd).unwrap();
    let kd = sha256_of(&kpath);
    let id = sha256_of(&ipath);
    let put = |digest: &str, body: &[u8]| {
        api.raw(
            "PUT",
            &format!("/api/v1/blobs/sha256/{}", &digest[7..]),
            Some(t),
            Some(body),
            "application/octet-stream",
        )
    };

    // Corrupt: the kernel's digest with one byte changed. Refused, nothing left behind.
    let mut corrupt = kernel.clone();
    corrupt[1_000_000] ^= 1;
    let p = put(&kd, &corrupt).problem(422, "urn:tabula:problem:digest-mismatch");
    assert_eq!(p["resource"], "blob");
    assert!(
        p["detail"].as_str().unwrap().contains("nothing was stored"),
        "{p}"
    );
    assert_eq!(files(&blob_dir), before, "no blob and no temporary file");
    // Not a digest: 400.
    api.raw(
        "PUT",
        "/api/v1/blobs/sha256/xyz",
        Some(t),
        Some(b"x"),
        "application/octet-stream",
    )
    .problem(400, "about:blank");

    // The real bytes: 201, then 200 (idempotent), stored under their digest.
    let r = put(&kd, &kernel);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["size"], kernel.len());
    assert_eq!(put(&kd, &kernel).status, 200);
    assert_eq!(put(&id, &initrd).status, 201);
    assert_eq!(
        std::fs::read(blob_dir.join("sha256").join(&kd[7..])).unwrap(),
        kernel
    );
    // A known blob with corrupt bytes sent again: refused, the stored blob untouched.
    put(&kd, &corrupt).problem(422, "urn:tabula:problem:digest-mismatch");
    assert_eq!(
        std::fs::read(blob_dir.join("sha256").join(&kd[7..])).unwrap(),
        kernel
    );

    // A manifest naming a blob never uploaded: 422, nothing published.
    let missing = format!("sha256:{}", "0".repeat(64));
    let body = format!(r#"{{"version":"1","kernel":{{"digest":"{missing}","name":"vmlinuz"}}}}"#);
    api.call("POST", "/api/v1/images/web/versions", Some(t), Some(&body))
        .problem(422, "urn:tabula:problem:unknown-reference");
    // The real one.
    let body = format!(
        r#"{{"version":"1","kernel":{{"digest":"{kd}","name":"vmlinuz"}},"initrds":[{{"digest":"{id}","name":"initrd.img"}}],"cmdline":"quiet","annotations":{{"by":"api"}}}}"#
    );
    let r = api.call("POST", "/api/v1/images/web/versions", Some(t), Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    let manifest = r.json()["manifest"].as_str().unwrap().to_string();
    assert!(
        r.headers
            .contains("location: /api/v1/images/web/versions/1")
    );
    // The same again: 200, same manifest; other content under the version: 409.
    let r = api.call("POST", "/api/v1/images/web/versions", Some(t), Some(&body));
    assert_eq!(
        (r.status, r.json()["manifest"].as_str().unwrap()),
        (200, manifest.as_str())
    );
    let other = body.replace("quiet", "loud");
    api.call("POST", "/api/v1/images/web/versions", Some(t), Some(&other))
        .problem(409, "urn:tabula:problem:conflict");

    // Read back: the manifest, the version list, the local CLI.
    let m = api.get("/api/v1/images/web/versions/1", &api.read).json();
    assert_eq!(m["kernel"]["digest"], kd.as_str());
    assert_eq!(m["kernel"]["size"], kernel.len());
    assert_eq!(m["initrds"][0]["digest"], id.as_str());
    let v = api.get("/api/v1/images/web/versions", &api.read).json();
    assert_eq!(v["items"][0]["manifest"], manifest.as_str());
    let listed = api.env.ok(&["image", "list"]);
    assert!(listed.contains(&manifest), "{listed}");
    api.get("/api/v1/images/web/versions/7", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
    api.get("/api/v1/images/nope/versions", &api.read)
        .problem(404, "urn:tabula:problem:not-found");

    // A channel, moved by the token (its name in the history); a missing version 422.
    let r = api.call(
        "PUT",
        "/api/v1/images/web/channels/stable",
        Some(t),
        Some(r#"{"version":"1"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    api.call(
        "PUT",
        "/api/v1/images/web/channels/stable",
        Some(t),
        Some(r#"{"version":"5"}"#),
    )
    .problem(422, "urn:tabula:problem:unknown-reference");
    let h = api
        .get("/api/v1/images/web/channels/stable/history", &api.read)
        .json();
    assert_eq!(h["items"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h["items"][0]["actor"], "admin");
    let images = api.get("/api/v1/images", &api.read).json();
    assert_eq!(
        images["items"][0],
        serde_json::json!({"name": "web", "versions": 1, "channels": {"stable": "1"}})
    );

    // The data plane serves the uploaded bytes to a machine pinned to the channel.
    api.env
        .ok(&["machine", "add", "w1", "--mac", "52:54:00:00:06:01"]);
    let r = api.call(
        "PUT",
        "/api/v1/pins/w1",
        Some(&api.operate),
        Some(r#"{"ref":"web:stable"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (h, script) = crate::serve::curl(&[&format!(
        "http://{}/boot.ipxe?mac=52-54-00-00-06-01&platform=pcbios&buildarch=i386",
        api.srv.http
    )]);
    assert_eq!(crate::serve::status(&h), 200);
    let script = String::from_utf8(script).unwrap();
    assert!(
        script.contains(&format!("/blobs/sha256/{}/vmlinuz", &kd[7..])),
        "{script}"
    );
    let (h, got) = crate::serve::curl(&[&format!(
        "http://{}/blobs/sha256/{}",
        api.srv.http,
        &kd[7..]
    )]);
    assert_eq!(crate::serve::status(&h), 200);
    assert_eq!(got, kernel);

    // In use by a channel: removal refused (409). A version nothing uses: 204, twice.
    api.call("DELETE", "/api/v1/images/web/versions/1", Some(t), None)
        .problem(409, "urn:tabula:problem:conflict");
    let two = body
        .replace(r#""version":"1""#, r#""version":"2""#)
        .replace("quiet", "two");
    assert_eq!(
        api.call("POST", "/api/v1/images/web/versions", Some(t), Some(&two))
            .status,
        201
    );
    for _ in 0..2 {
        assert_eq!(
            api.call("DELETE", "/api/v1/images/web/versions/2", Some(t), None)
                .status,
            204
        );
    }
    api.get("/api/v1/images/web/versions/2", &api.read)
        .problem(404, "urn:tabula:problem:not-found");
}
