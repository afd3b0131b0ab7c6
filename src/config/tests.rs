//! Config tests: every shipped file parses, every table rejects an unknown key, and
//! errors name the file and the key.

use std::path::{Path, PathBuf};

use super::*;

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected tabula.toml and lab.toml in {dir:?}"
    );
    files
}

#[test]
fn every_shipped_config_validates() {
    for f in shipped() {
        Config::load(&f, None).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn defaults_validate() {
    let c = Config::defaults(Some(Path::new("/tmp/x")));
    assert_eq!(c.store_url, "sqlite:///tmp/x/tabula.db");
    assert_eq!(c.dhcp.mode, DhcpMode::Off);
    assert_eq!(c.http.public_url, "http://127.0.0.1:8080");
    assert!(c.api.enabled);
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:9090");
    assert!(!c.api.metrics_token_required);
    let c = Config::parse("[api]\nmetrics_token_required = true\n", "t.toml", None).unwrap();
    assert!(c.api.metrics_token_required);
}

#[test]
fn api_listener_must_not_share_the_http_port() {
    for (http, api) in [
        ("0.0.0.0:8080", "127.0.0.1:8080"),
        ("127.0.0.1:9090", "127.0.0.1:9090"),
        ("10.0.0.1:9090", "[::]:9090"),
    ] {
        let text = format!("[http]\nlisten = \"{http}\"\n[api]\nlisten = \"{api}\"\n");
        let e = Config::parse(&text, "t.toml", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml: key `api.listen`: "), "{e}");
    }
    for text in [
        // Different ports, different addresses, port 0, or one side disabled.
        "[api]\nlisten = \"127.0.0.1:8081\"\n",
        "[http]\nlisten = \"10.0.0.1:9090\"\n",
        "[http]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
        "[api]\nenabled = false\nlisten = \"0.0.0.0:8080\"\n",
        "[http]\nenabled = false\n[api]\nlisten = \"0.0.0.0:8080\"\n",
    ] {
        Config::parse(text, "t.toml", None).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let e = Config::parse("[api]\nlisten = \"localhost\"\n", "t.toml", None).unwrap_err();
    assert!(
        e.to_string().starts_with("t.toml:2: key `api.listen`"),
        "{e}"
    );
}

#[test]
fn api_tls_needs_both_files() {
    let c = Config::parse(
        "[api]\ntls_cert = \"/etc/tabula/api.crt\"\ntls_key = \"/etc/tabula/api.key\"\n",
        "t.toml",
        None,
    )
    .unwrap();
    let tls = c.api.tls.unwrap();
    assert_eq!(tls.cert, Path::new("/etc/tabula/api.crt"));
    assert_eq!(tls.key, Path::new("/etc/tabula/api.key"));
    assert!(Config::defaults(None).api.tls.is_none());
    for (text, key, says) in [
        ("tls_cert = \"/c.pem\"", "api.tls_cert", "needs api.tls_key"),
        ("tls_key = \"/k.pem\"", "api.tls_key", "needs api.tls_cert"),
        (
            "tls_cert = \"\"\ntls_key = \"/k.pem\"",
            "api.tls_cert",
            "empty path",
        ),
    ] {
        let e = Config::parse(&format!("[api]\n{text}\n"), "t.toml", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("t.toml: key `{key}`: ")), "{e}");
        assert!(e.contains(says), "{e}");
    }
}

/// Collects the dotted paths of every table in a document, including each element of an
/// array of tables.
fn table_paths(t: &toml::Table, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for (k, v) in t {
        match v {
            toml::Value::Table(sub) => {
                let mut p = prefix.clone();
                p.push(k.clone());
                table_paths(sub, p, out);
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(sub) = item {
                        let mut p = prefix.clone();
                        p.push(format!("{k}[{i}]"));
                        table_paths(sub, p, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn table_at<'a>(t: &'a mut toml::Table, path: &[String]) -> &'a mut toml::Table {
    let Some((first, rest)) = path.split_first() else {
        return t;
    };
    let next = if let Some((name, idx)) = first.strip_suffix(']').and_then(|s| s.split_once('[')) {
        let i: usize = idx.parse().unwrap();
        t.get_mut(name).unwrap().as_array_mut().unwrap()[i]
            .as_table_mut()
            .unwrap()
    } else {
        t.get_mut(first).unwrap().as_table_mut().unwrap()
    };
    table_at(next, rest)
}

#[test]
fn unknown_key_in_every_table_is_rejected() {
    let mut checked = 0;
    let mut api_tables = 0;
    for f in shipped() {
        let text = std::fs::read_to_string(&f).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let mut paths = Vec::new();
        table_paths(&doc, Vec::new(), &mut paths);
        for path in paths {
            let mut d = doc.clone();
            table_at(&mut d, &path).insert("bogus_key".into(), toml::Value::Integer(1));
            let out = toml::to_string(&d).unwrap();
            let err = match parse_model(&out, "x.toml") {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{}: unknown key in table {path:?} accepted", f.display()),
            };
            assert!(err.contains("bogus_key"), "{err}");
            assert!(err.starts_with("x.toml:"), "{err}");
            checked += 1;
            api_tables += usize::from(path == ["api"]);
        }
    }
    // tabula.toml 11 tables, lab.toml 9, lab-proxy.toml 8 (each counts its root).
    assert!(checked >= 28, "only {checked} tables checked");
    assert_eq!(api_tables, 3, "every shipped config shows its [api] table");
}

#[test]
fn errors_name_file_key_and_reason() {
    let e = Config::parse("[dhcp]\nmode = \"fulll\"\n", "t.toml", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml: key `dhcp.mode`: \"fulll\" is not one of \"full\", \"proxy\", \"off\""
    );
    let e = Config::parse("[http]\nlisten = 5\n", "t.toml", None).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("t.toml:2: key `http.listen`"), "{s}");
    assert!(!s.contains('\n'), "one line: {s}");
    let e = Config::parse(
        "[dhcp]\nmode=\"full\"\n[[dhcp.subnets]]\nnetwork=\"10.0.0.0/24\"\npools=[\"10.0.1.5-10.0.1.9\"]\n",
        "t.toml",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("dhcp.subnets[0].pools"), "{e}");
    let e = Config::parse("[dhcp]\nmode=\"full\"\n", "t.toml", None).unwrap_err();
    assert!(e.to_string().contains("needs at least one"), "{e}");
    let e = Config::parse("[tftp]\ntimeout=\"soon\"\n", "t.toml", None).unwrap_err();
    assert!(e.to_string().contains("tftp.timeout"), "{e}");
    let e = Config::parse(
        "[dhcp.loaders]\nbios=\"../../etc/shadow\"\n",
        "t.toml",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("dhcp.loaders.bios"), "{e}");
}

#[test]
fn data_dir_override_wins() {
    let c = Config::parse("[server]\ndata_dir=\"/a\"\n", "t", Some(Path::new("/b"))).unwrap();
    assert_eq!(c.data_dir, Path::new("/b"));
    let c = Config::parse("[server]\ndata_dir=\"/a\"\n", "t", None).unwrap();
    assert_eq!(c.data_dir, Path::new("/a"));
}

#[test]
fn store_url_takes_sqlite_and_postgres() {
    for url in [
        "sqlite:///var/lib/tabula/tabula.db",
        "sqlite:tabula.db",
        "postgres://tabula@db.example/tabula",
        "postgresql://tabula:secret@127.0.0.1:5432/tabula",
        "postgres://postgres@localhost/tabula?host=/run/postgresql",
    ] {
        let c = Config::parse(&format!("[store]\nurl = \"{url}\"\n"), "t", None)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.store_url, url);
    }
    let e = Config::parse("[store]\nurl = \"mysql://db/tabula\"\n", "t", None).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("store.url") && s.contains("sqlite://PATH or postgres://"),
        "{s}"
    );
}

#[test]
fn limits_default_as_the_reference_file_says_and_refuse_zero() {
    let shipped = Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tabula.toml"),
        None,
    )
    .unwrap();
    let d = Config::defaults(None);
    let limits = |c: &Config| {
        let (h, e) = (&c.http, &c.events);
        (
            (
                h.idle_timeout,
                h.head_timeout,
                h.body_timeout,
                h.send_timeout,
            ),
            (h.max_connections, h.max_connections_per_client),
            (e.queue_events, e.queue_bytes, e.max_detail_bytes),
            (
                e.per_mac_per_minute,
                e.per_peer_per_minute,
                e.refusals_per_minute,
            ),
        )
    };
    assert_eq!(
        limits(&shipped),
        limits(&d),
        "config/tabula.toml shows the defaults"
    );
    assert_eq!(d.http.head_timeout, Duration::from_secs(10));
    for (text, key) in [
        ("[http]\nhead_timeout = \"0s\"\n", "http.head_timeout"),
        ("[http]\nsend_timeout = \"0s\"\n", "http.send_timeout"),
        ("[http]\nmax_connections = 0\n", "http.max_connections"),
        (
            "[http]\nmax_connections_per_client = 0\n",
            "http.max_connections_per_client",
        ),
        ("[events]\nqueue_bytes = 0\n", "events.queue_bytes"),
        (
            "[events]\nmax_detail_bytes = 10\n",
            "events.max_detail_bytes",
        ),
        (
            "[events]\nper_mac_per_minute = 0\n",
            "events.per_mac_per_minute",
        ),
    ] {
        let e = Config::parse(text, "t.toml", None).unwrap_err().to_string();
        assert!(e.starts_with(&format!("t.toml: key `{key}`: ")), "{e}");
    }
}

#[test]
fn require_lease_match_needs_full_dhcp() {
    assert!(!Config::defaults(None).http.require_lease_match);
    let full = "[dhcp]\nmode = \"full\"\n[[dhcp.subnets]]\nnetwork = \"10.0.0.0/24\"\n\
                pools = [\"10.0.0.10-10.0.0.20\"]\n[http]\nrequire_lease_match = true\n";
    assert!(
        Config::parse(full, "t.toml", None)
            .unwrap()
            .http
            .require_lease_match
    );
    for (dhcp, mode) in [
        ("[dhcp]\nmode = \"proxy\"\n", "proxy"),
        ("[dhcp]\nmode = \"off\"\n", "off"),
        ("", "off"),
    ] {
        let text = format!("{dhcp}[http]\nrequire_lease_match = true\n");
        let e = Config::parse(&text, "t.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "t.toml: key `http.require_lease_match`: needs dhcp.mode = \"full\", but dhcp.mode is \"{mode}\": "
            )),
            "{e}"
        );
        assert!(
            e.contains("leases no addresses") && !e.contains('\n'),
            "{e}"
        );
    }
    let off = "[dhcp]\nmode = \"proxy\"\n[http]\nrequire_lease_match = false\n";
    Config::parse(off, "t.toml", None).unwrap();
}
