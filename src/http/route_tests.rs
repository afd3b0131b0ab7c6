//! `classify` against every route, every method and hostile targets; the refusals'
//! statuses and how they are written.

use super::*;
use crate::boot::BootStage;

const MAC: &str = "52-54-00-00-00-07";

fn hex() -> String {
    "ab".repeat(32)
}

fn get(target: &str) -> Route<'_> {
    classify(&Method::GET, target)
}

fn refused(r: Route<'_>) -> Refusal {
    match r {
        Route::Refused(x) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn mac_of(r: &crate::http::boot_script::Request) -> Option<String> {
    r.parsed().ok().map(|p| p.mac.to_string())
}

#[test]
fn scripts_query_and_path_form() {
    for m in [Method::GET, Method::HEAD] {
        let Route::Script(r) = classify(&m, "/boot.ipxe?mac=52-54-00-00-00-01&platform=efi") else {
            panic!("{m}: not a script");
        };
        assert_eq!(mac_of(&r).as_deref(), Some("52:54:00:00:00:01"));
    }
    let Route::Script(r) = get("/boot/52:54:00:00:00:02/boot.ipxe?buildarch=arm64") else {
        panic!("path form");
    };
    assert_eq!(mac_of(&r).as_deref(), Some("52:54:00:00:00:02"));
    // Still the script route, answered 400 there (no MAC to decide for).
    let Route::Script(r) = get("/boot.ipxe") else {
        panic!("no query");
    };
    assert_eq!(mac_of(&r), None);
    // A percent-encoded MAC is decoded, as axum's path extractor did.
    let Route::Script(r) = get("/boot/52%3A54%3A00%3A00%3A00%3A02/boot.ipxe") else {
        panic!("percent-encoded path form");
    };
    assert_eq!(mac_of(&r).as_deref(), Some("52:54:00:00:00:02"));
    // Absolute form, as a proxy-minded client may send it.
    assert!(matches!(
        get("http://10.0.0.1:8080/boot.ipxe?mac=x"),
        Route::Script(_)
    ));
}

#[test]
fn blobs_keep_their_query_and_are_never_decoded() {
    let t = format!("/blobs/sha256/{}/vmlinuz?mac={MAC}&as=kernel", hex());
    for m in [Method::GET, Method::HEAD] {
        match classify(&m, &t) {
            Route::Blob { target } => assert_eq!(target, t),
            other => panic!("{other:?}"),
        }
    }
    // Whatever follows the prefix goes to `blobs::send`, which serves only a literal
    // digest (the integration tests check the 404s of these).
    for t in [
        "/blobs/sha256/../../tabula.db",
        "/blobs/sha256/..%2F..%2Ftabula.db",
        "/blobs/sha256/abc",
    ] {
        assert!(
            matches!(get(t), Route::Blob { target } if target == t),
            "{t}"
        );
    }
    assert_eq!(refused(get("/blobs/tmp")).status(), StatusCode::NOT_FOUND);
    assert_eq!(
        refused(get("/blobs/sha256")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn loaders_by_plain_name_only() {
    for m in [Method::GET, Method::HEAD] {
        assert!(matches!(
            classify(&m, "/loaders/snponly.efi?x=1"),
            Route::Loader { name } if name == "snponly.efi"
        ));
    }
    assert!(matches!(
        get("/loaders/snponly%2Eefi"),
        Route::Loader { name } if name == "snponly.efi"
    ));
    let long = format!("/loaders/{}", "a".repeat(10_000));
    for bad in [
        "/loaders/..",
        "/loaders/.hidden",
        "/loaders/..%2Fdata%2Ftabula.db",
        "/loaders/%2e%2e",
        "/loaders/a%20b",
        &long,
    ] {
        assert_eq!(
            refused(get(bad)),
            Refusal::NotFound(loaders::NOT_FOUND),
            "{bad}"
        );
    }
    for other in ["/loaders/", "/loaders", "/loaders/a/b"] {
        assert_eq!(
            refused(get(other)),
            Refusal::NotFound("not found\n"),
            "{other}"
        );
    }
    // Not UTF-8 once decoded.
    assert_eq!(
        refused(get("/loaders/%FF")).status(),
        StatusCode::BAD_REQUEST
    );
}

fn post(target: &str) -> Route<'_> {
    classify(&Method::POST, target)
}

const TOKEN: &str = "0102030405060708aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";

#[test]
fn reports_by_post_only_with_or_without_a_token() {
    for t in [
        format!("/boot/{MAC}/{}/booted?stage=fetch", hex()),
        format!("/boot/{MAC}/{}/{TOKEN}/booted?stage=fetch", hex()),
    ] {
        match post(&t) {
            Route::Report(req) => {
                let (cb, kind, query) = req.parsed().expect("parsed");
                assert_eq!(cb.mac.to_string(), "52:54:00:00:00:07");
                assert_eq!(cb.manifest.to_string(), format!("sha256:{}", hex()));
                assert_eq!(cb.token.is_some(), t.contains(TOKEN), "{t}");
                assert_eq!(kind.stage(), BootStage::Booted);
                assert_eq!(query.get("stage").map(String::as_str), Some("fetch"));
                assert_eq!(query.len(), 1);
            }
            other => panic!("{t}: {other:?}"),
        }
        // A report is a write: a GET (a link, an image tag) or HEAD cannot make one.
        for m in [Method::GET, Method::HEAD] {
            assert_eq!(
                refused(classify(&m, &t)),
                Refusal::MethodNotAllowed { allow: "POST" },
                "{m} {t}"
            );
        }
    }
    let stage = |kind: &str| match post(&format!("/boot/{MAC}/{}/{TOKEN}/{kind}", hex())) {
        Route::Report(req) => req.parsed().map(|(_, k, _)| k.stage()),
        _ => None,
    };
    assert_eq!(stage("failed"), Some(BootStage::Failed));
    assert_eq!(stage("progress"), Some(BootStage::Progress));
    assert_eq!(
        refused(post(&format!("/boot/{MAC}/{}/rebooted", hex()))),
        Refusal::NotFound("unknown report\n")
    );
    // A token segment that is not a token's text is a report, refused (and counted)
    // as a forgery by `report::answer`.
    match post(&format!("/boot/{MAC}/{}/nope/booted", hex())) {
        Route::Report(req) => assert!(req.parsed().is_none() && req.refusal().is_none()),
        other => panic!("{other:?}"),
    }
    // Checked as axum's handler did: the MAC first, then the manifest.
    assert_eq!(
        refused(post("/boot/zz/x/booted")).message(),
        "malformed MAC\n"
    );
    assert_eq!(
        refused(post(&format!("/boot/{MAC}/abc/booted"))).message(),
        "malformed manifest digest\n"
    );
    // Four segments are a report even when the third looks like a script.
    assert_eq!(
        refused(post("/boot/a/b/boot.ipxe")).message(),
        "malformed MAC\n"
    );
    // A percent-encoded MAC is decoded.
    assert!(matches!(
        post(&format!(
            "/boot/52%3A54%3A00%3A00%3A00%3A07/{}/booted",
            hex()
        )),
        Route::Report { .. }
    ));
}

#[test]
fn health() {
    assert!(matches!(get("/healthz"), Route::Health));
    assert!(matches!(
        classify(&Method::HEAD, "/healthz?x"),
        Route::Health
    ));
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let blob = format!("/blobs/sha256/{}", hex());
    let report = format!("/boot/{MAC}/{}/booted", hex());
    for (m, t, allow) in [
        (Method::POST, "/boot.ipxe?mac=x", READ),
        (Method::PUT, "/boot/x/boot.ipxe", READ),
        (Method::POST, blob.as_str(), READ),
        (Method::DELETE, "/loaders/snponly.efi", READ),
        (Method::POST, "/healthz", READ),
        (Method::OPTIONS, "/healthz", READ),
        (Method::PUT, report.as_str(), REPORT),
        (Method::DELETE, "/boot/zz/x/booted", REPORT),
    ] {
        assert_eq!(
            refused(classify(&m, t)),
            Refusal::MethodNotAllowed { allow },
            "{m} {t}"
        );
    }
}

#[test]
fn everything_else_is_not_found_or_bad() {
    let long = format!("/{}", "a/".repeat(8_000));
    for t in [
        "/",
        "/boot.ipxe/",
        "/healthz/",
        "/boot//boot.ipxe",
        "/boot/boot.ipxe",
        "/boot/a/b/c/",
        "/boot/a//booted",
        "/boot/a/b//booted",
        "/boot/a/b/c/d/booted",
        "/boot%2Eipxe",
        "/health%7A",
        "/api/v1/",
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        long.as_str(),
    ] {
        assert_eq!(refused(get(t)), Refusal::NotFound("not found\n"), "{t}");
        // Unknown paths are 404 whatever the method.
        assert_eq!(
            refused(classify(&Method::POST, t)).status(),
            StatusCode::NOT_FOUND,
            "{t}"
        );
    }
    for t in [
        "*",
        "healthz",
        "",
        "http://h",
        "http://h?x/healthz",
        "ftp://h/healthz",
    ] {
        assert_eq!(refused(get(t)).status(), StatusCode::BAD_REQUEST, "{t:?}");
    }
}

#[test]
fn percent_decoding() {
    assert!(matches!(decode("abc"), Ok(Cow::Borrowed("abc"))));
    assert_eq!(decode("a%3Ab%3a").unwrap(), "a:b:");
    // Not an escape: kept as written.
    assert_eq!(decode("100%").unwrap(), "100%");
    assert_eq!(decode("%zz%4").unwrap(), "%zz%4");
    assert_eq!(decode("%C3%A9").unwrap(), "é");
    assert!(decode("%C3").is_err());
}

#[test]
fn refusals_are_written_whole() {
    let mut out = Vec::new();
    Refusal::MethodNotAllowed { allow: READ }.write(&mut out, false, true);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\n"),
        "{text}"
    );
    assert!(text.contains("content-length: 19\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nmethod not allowed\n"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
    let mut out = Vec::new();
    Refusal::NotFound("no such blob\n").write(&mut out, true, false);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert!(text.contains("content-length: 13\r\n"), "{text}");
    assert!(
        text.ends_with("connection: close\r\n\r\n"),
        "HEAD: no body: {text}"
    );
    for (r, code) in [
        (Refusal::LengthRequired, 411),
        (Refusal::PayloadTooLarge("x\n"), 413),
        (Refusal::HeadTooLarge, 431),
        (Refusal::Unavailable("x\n"), 503),
        (Refusal::Internal("x\n"), 500),
    ] {
        assert_eq!(r.status().as_u16(), code, "{r:?}");
        assert!(r.message().ends_with('\n'), "{r:?}");
    }
}

/// The head of an answer without its `date` line (written per second), and its body.
fn split(out: &[u8]) -> (String, Vec<u8>) {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(out[..end].to_vec()).unwrap();
    let head = head
        .split("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n");
    (head, out[end..].to_vec())
}

#[test]
fn head_is_get_without_the_body_for_every_refusal_and_text_answer() {
    let refusals = [
        Refusal::BadRequest("bad\n".into()),
        Refusal::Forbidden("no token\n"),
        Refusal::NotFound("no such loader\n"),
        Refusal::MethodNotAllowed { allow: REPORT },
        Refusal::LengthRequired,
        Refusal::PayloadTooLarge("big\n"),
        Refusal::TooManyRequests,
        Refusal::HeadTooLarge,
        Refusal::Unavailable("down\n"),
        Refusal::Internal("broken\n"),
        Refusal::Busy { retry_after: 7 },
    ];
    for keep_alive in [true, false] {
        let mut answers: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
        for r in &refusals {
            let (mut get, mut head) = (Vec::new(), Vec::new());
            r.write(&mut get, false, keep_alive);
            r.write(&mut head, true, keep_alive);
            answers.push((format!("{r:?}"), get, head));
        }
        for (ok, body) in [(true, "ok\n"), (false, "not serving: tftp\n")] {
            let (mut get, mut head) = (Vec::new(), Vec::new());
            health_text(&mut get, ok, body, false, keep_alive);
            health_text(&mut head, ok, body, true, keep_alive);
            answers.push((format!("health {ok}"), get, head));
        }
        let (mut get, mut head) = (Vec::new(), Vec::new());
        ok_text(&mut get, "recorded\n", false, keep_alive);
        ok_text(&mut head, "recorded\n", true, keep_alive);
        answers.push(("ok".into(), get, head));
        for (what, get, head) in answers {
            let (gh, gb) = split(&get);
            let (hh, hb) = split(&head);
            assert_eq!(gh, hh, "{what}");
            assert!(hb.is_empty(), "{what}: HEAD has a body");
            let len = gh
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap_or_else(|| panic!("{what}: no content-length"));
            assert_eq!(len.parse::<usize>().unwrap(), gb.len(), "{what}");
            assert!(!gb.is_empty(), "{what}: GET has its body");
        }
    }
}
