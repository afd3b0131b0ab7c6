//! The API listener over TLS (`api.tls_cert` / `api.tls_key`) against the real binary:
//! a CA and a server certificate for `localhost` made here (rcgen), then curl with the
//! CA gets answers (the API, `/metrics`, `/ui/`), without it or with another CA fails;
//! plain HTTP to the TLS port is refused at once in one exact response; the remote CLI
//! works over `https://` with `--ca-file` / `TABULA_CA_FILE`, verifies the host name, and
//! says what to do about a CA it does not trust. Unusable TLS files stop `tabula serve`
//! with their path named.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::api_session::create_token;
use crate::common::{Env, Run};
use crate::serve::{Server, start_with};

const N1: &str = "52:54:00:00:07:01";

/// The files a test needs: the CA, the server's certificate (for `localhost` only, no IP
/// address) and key, and another CA that signed nothing here.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_ca: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

fn pki(dir: &Path) -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("tabula test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (_, _, other_pem) = ca("some other CA");
    let write = |n: &str, text: &str| {
        let path = dir.join(n);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca_pem),
        cert: write("server.pem", &cert.pem()),
        key: write("server.key", &key.serialize_pem()),
        other_ca: write("other-ca.pem", &other_pem),
    }
}

fn config(env: &Env, cert: &Path, key: &Path) -> PathBuf {
    let cfg = env.dir.path().join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    cfg
}

/// `curl -sS ARGS… URL`: (exit code, status line's code or 0, headers and body).
fn curl(args: &[&str], url: &str) -> (i32, u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-i"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (Debian package curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let text = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), status, text)
}

/// The remote CLI against `url`, with `token` and the env's `extra` variables.
fn remote(env: &Env, url: &str, token: &str, extra: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut c = env.command();
    c.env("TABULA_DATA_DIR", env.dir.path().join("no-store-here"))
        .env_remove("TABULA_CONFIG")
        .env("TABULA_SERVER", url)
        .env("TABULA_TOKEN", token);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.args(args).output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    r
}

#[test]
fn the_api_serves_over_tls_and_the_remote_cli_verifies_it() {
    let env = Env::new();
    let pki = pki(env.dir.path());
    let cfg = config(&env, &pki.cert, &pki.key);
    let srv: Server = start_with(&env, &cfg, false);
    env.use_config(cfg);
    let admin = create_token(&env, "alice", "admin", None);
    let port = srv.api.port();
    let url = format!("https://localhost:{port}");
    let auth = format!("Authorization: Bearer {admin}");
    let ca = pki.ca.to_str().unwrap();

    // With the CA: the API, the metrics and the dashboard answer over TLS.
    let (code, status, text) = curl(
        &["--cacert", ca, "-H", &auth],
        &format!("{url}/api/v1/machines"),
    );
    assert_eq!((code, status), (0, 200), "{text}");
    assert!(text.contains("\"items\""), "{text}");
    let (code, status, text) = curl(&["--cacert", ca], &format!("{url}/metrics"));
    assert_eq!((code, status), (0, 200), "{text}");
    assert!(text.contains("tabula_"), "{text}");
    let (code, status, text) = curl(&["--cacert", ca], &format!("{url}/ui/"));
    assert_eq!(code, 0, "{text}");
    assert!(
        status == 200 || (300..400).contains(&status),
        "/ui/ over TLS: {text}"
    );
    assert!(
        text.to_lowercase().contains("/ui/login") || text.contains("<html"),
        "{text}"
    );

    // Without it, or with another CA: no answer (curl's 60: peer certificate not trusted).
    let (code, _, text) = curl(&[], &format!("{url}/healthz"));
    assert_eq!(code, 60, "{text}");
    let other = pki.other_ca.to_str().unwrap();
    let (code, _, text) = curl(&["--cacert", other], &format!("{url}/healthz"));
    assert_eq!(code, 60, "{text}");
    // The certificate names localhost, not 127.0.0.1: the host name is checked.
    let (code, _, text) = curl(
        &["--cacert", ca],
        &format!("https://127.0.0.1:{port}/healthz"),
    );
    assert_eq!(code, 60, "{text}");

    // Plain HTTP to the TLS port: refused at once, in one complete response.
    let started = std::time::Instant::now();
    let (code, status, text) = curl(&[], &format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!((code, status), (0, 400), "{text}");
    assert!(text.contains("use https://"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // The remote CLI over https: --ca-file and TABULA_CA_FILE both work.
    let ca_flag = ["--ca-file", ca];
    let add = [
        &ca_flag[..],
        &["machine", "add", "n1", "--mac", N1, "--label", "role=web"],
    ]
    .concat();
    let r = remote(&env, &url, &admin, &[], &add);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = remote(
        &env,
        &url,
        &admin,
        &[("TABULA_CA_FILE", &pki.ca)],
        &["machine", "list"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("n1") && r.stdout.contains(N1),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout,
        env.ok(&["machine", "list"]),
        "the same output as the local CLI"
    );

    // No CA, another CA, the wrong host name, a CA file that is not one: clear lines.
    let r = remote(&env, &url, &admin, &[], &["machine", "list"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--ca-file"), "{}", r.stderr);
    assert!(r.stderr.contains("not signed by a CA"), "{}", r.stderr);
    let r = remote(
        &env,
        &url,
        &admin,
        &[("TABULA_CA_FILE", &pki.other_ca)],
        &["machine", "list"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not signed by a CA"), "{}", r.stderr);
    let r = remote(
        &env,
        &format!("https://127.0.0.1:{port}"),
        &admin,
        &[("TABULA_CA_FILE", &pki.ca)],
        &["machine", "list"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not for this host name"), "{}", r.stderr);
    let r = remote(
        &env,
        &url,
        &admin,
        &[("TABULA_CA_FILE", &pki.key)],
        &["machine", "list"],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("server.key: no certificate in it"),
        "{}",
        r.stderr
    );
    // Plain http:// to the TLS port: the server's refusal, not a hang.
    let r = remote(
        &env,
        &format!("http://127.0.0.1:{port}"),
        &admin,
        &[],
        &["machine", "list"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("use https://"), "{}", r.stderr);
}

#[test]
fn unusable_tls_files_stop_serve_with_their_path() {
    let env = Env::new();
    let pki = pki(env.dir.path());
    let missing = env.dir.path().join("missing.pem");
    let empty = env.dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for (cert, key, says) in [
        (
            &missing,
            &pki.key,
            format!("{}: cannot read it", missing.display()),
        ),
        (
            &pki.cert,
            &empty,
            format!("{}: the file is empty", empty.display()),
        ),
        (&pki.cert, &pki.cert, "no PEM private key".to_string()),
    ] {
        let cfg = config(&env, cert, key);
        let e = env.fails(&["--config", cfg.to_str().unwrap(), "serve"]);
        assert!(e.contains(&says), "{e}");
    }
    // Only one of the two: refused when the config loads (config check too).
    let cfg = env.dir.path().join("half.toml");
    std::fs::write(
        &cfg,
        format!("[api]\ntls_cert = \"{}\"\n", pki.cert.display()),
    )
    .unwrap();
    let e = env.fails(&["config", "check", cfg.to_str().unwrap()]);
    assert!(
        e.contains("api.tls_cert") && e.contains("needs api.tls_key"),
        "{e}"
    );
}
