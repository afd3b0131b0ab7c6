//! A `tabula serve` with its API listener, tokens of each scope made by the real CLI,
//! and requests by curl: what every `api_*` test starts from.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::Env;
use crate::serve::{Server, start_with};

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-cased.
    pub headers: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json body of `status` with `type`, returns it.
    pub fn problem(&self, status: u16, kind: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}\n{}", self.headers, self.text());
        assert!(
            self.headers
                .contains("content-type: application/problem+json"),
            "{}",
            self.headers
        );
        let p = self.json();
        assert_eq!(p["type"], kind, "{p}");
        assert_eq!(p["status"], status, "{p}");
        assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
        p
    }
}

/// A server, its environment, and a token of each scope.
pub struct Api {
    // Dropped first: the server stops before its directory goes.
    pub srv: Server,
    pub env: Env,
    pub read: String,
    pub operate: String,
    pub admin: String,
}

impl Api {
    /// Starts a server on `env` (after the caller's setup) and makes one token per scope.
    /// From then on the env's CLI commands read the server's config too, so a local
    /// `tabula explain` makes its decision with the same settings.
    pub fn start(env: Env) -> Api {
        let cfg = env.dir.path().join("api.toml");
        std::fs::write(
            &cfg,
            "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let srv = start_with(&env, &cfg, false);
        env.use_config(cfg);
        let token = |n: &str, s: &str| create_token(&env, n, s, None);
        Api {
            read: token("reader", "read"),
            operate: token("operator", "operate"),
            admin: token("admin", "admin"),
            srv,
            env,
        }
    }

    /// The API's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.srv.api)
    }

    /// `METHOD path` with `token` (if any) and a JSON `body` (if any).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        self.raw(
            method,
            path,
            token,
            body.map(str::as_bytes),
            "application/json",
        )
    }

    /// `GET path` with `token`.
    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None)
    }

    /// A request with any body and content type.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Reply {
        request(&self.base(), method, path, token, body, content_type)
    }
}

/// `METHOD base+path` by curl, with `token` and `body` (of `content_type`) if given.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    content_type: &str,
) -> Reply {
    let mut c = Command::new("curl");
    // No `Expect: 100-continue`: one response head per request.
    c.args([
        "-sS",
        "--max-time",
        "120",
        "-D",
        "-",
        "-H",
        "Expect:",
        "-X",
        method,
    ])
    .arg(format!("{base}{path}"));
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if body.is_some() {
        c.args([
            "-H",
            &format!("content-type: {content_type}"),
            "--data-binary",
            "@-",
        ]);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("curl (Debian package curl)");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(b) = body {
            stdin.write_all(b).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// `tabula token create NAME --scope SCOPE [--expires E]`: the token it prints.
pub fn create_token(env: &Env, name: &str, scope: &str, expires: Option<&str>) -> String {
    let mut args = vec!["token", "create", name, "--scope", scope];
    if let Some(e) = expires {
        args.extend(["--expires", e]);
    }
    let out = env.ok(&args);
    let token = out.trim().to_string();
    assert!(token.starts_with(&format!("tabula.{name}.")), "{out}");
    assert_eq!(out.lines().count(), 1, "the token alone on stdout: {out}");
    token
}

/// Publishes `demo@VERSION` from small generated files; returns the manifest digest.
pub fn publish_demo(env: &Env, version: &str, seed: u64) -> String {
    let k = env.file(&format!("vmlinuz-{version}"), seed, 50_000);
    let i = env.file(&format!("initrd-{version}.img"), seed + 1, 20_000);
    let out = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        version,
        "--kernel",
        k.to_str().unwrap(),
        "--initrd",
        i.to_str().unwrap(),
        "--cmdline",
        "quiet",
    ]);
    out.split_whitespace().last().unwrap().to_string()
}
