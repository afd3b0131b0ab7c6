//! Issue 18: HEAD and GET agree on every data-plane route, against the real binary. UEFI
//! HTTP boot (EDK2's HttpBootDxe) sends HEAD for the loader first and sizes its buffer by
//! that `Content-Length`, then GETs it on the same connection, so a HEAD that answered
//! another length, another status or any body bytes would hang or break that boot.
//!
//! For each route: one GET and one HEAD on fresh connections; the status line and every
//! header but `date` must be the same, the HEAD must carry no body, and the GET's body
//! must be as long as its `Content-Length`. Then HEAD and GET back to back on one
//! keep-alive connection, as the firmware does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{Env, sha256_of};
use crate::serve::{callback_of, start_with};

const MAC: &str = "52:54:00:00:00:18";

/// One response: the status line and headers (lower-case, without `date`), and the body.
#[derive(Debug)]
struct Response {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Response {
    fn status(&self) -> u16 {
        self.head[0]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head.iter().find_map(|l| l.strip_prefix(&prefix))
    }
}

/// Reads one response from `s`: the head, then the body as its `Content-Length` says
/// (none for a HEAD), or to the end when the server closes and gave no length.
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Response {
    let mut buf = [0u8; 65536];
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed inside a head: {pending:?}");
        pending.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8(pending[..end].to_vec()).unwrap();
    pending.drain(..end);
    let head: Vec<String> = text
        .trim_end()
        .split("\r\n")
        .map(str::to_ascii_lowercase)
        .filter(|l| !l.starts_with("date: "))
        .collect();
    let mut r = Response {
        head,
        body: Vec::new(),
    };
    let want = match (head_only, r.header("content-length")) {
        (true, _) => 0,
        (false, Some(n)) => n.parse::<usize>().unwrap(),
        (false, None) => usize::MAX,
    };
    while pending.len() < want {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
    }
    let take = want.min(pending.len());
    r.body = pending.drain(..take).collect();
    r
}

/// Sends `method target` with `extra` header lines on a fresh connection, closing after.
/// Everything the server sent is read, so stray bytes after a HEAD's head are seen.
fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: tabula\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let mut pending = all;
    let r = read_response(&mut s, &mut pending, method == "HEAD");
    assert!(
        pending.is_empty(),
        "{method} {target}: {} bytes after the response: {:?}",
        pending.len(),
        String::from_utf8_lossy(&pending[..pending.len().min(80)])
    );
    r
}

/// GET and HEAD of one target agree; returns the GET.
fn agree(addr: SocketAddr, target: &str, extra: &str) -> Response {
    let get = request(addr, "GET", target, extra);
    let head = request(addr, "HEAD", target, extra);
    assert_eq!(get.head, head.head, "GET and HEAD of {target} [{extra:?}]");
    assert!(head.body.is_empty(), "HEAD {target} has a body");
    if let Some(n) = get.header("content-length") {
        assert_eq!(get.body.len(), n.parse::<usize>().unwrap(), "GET {target}");
    }
    get
}

#[test]
fn issue_18_head_and_get_agree_on_every_route() {
    let env = Env::new();
    let kernel = env.file("vmlinuz", 1, 300_000);
    let initrd = env.file("initrd.img", 2, 100_000);
    let rootfs = env.file("root.squashfs", 3, 500_000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&kernel),
        "--initrd",
        &p(&initrd),
        "--rootfs",
        &p(&rootfs),
    ]);
    env.ok(&["machine", "add", "n18", "--mac", MAC]);
    env.ok(&["pin", "set", "n18", "demo@1"]);

    // A TFTP root as Debian lays it out: snponly.efi a file, ipxe.efi a link out of it.
    let root = env.dir.path().join("ipxe");
    let elsewhere = env.dir.path().join("boot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(root.join("snponly.efi"), crate::common::bytes(7, 173_792)).unwrap();
    std::fs::write(elsewhere.join("ipxe.efi"), crate::common::bytes(8, 850_528)).unwrap();
    std::os::unix::fs::symlink("../boot/ipxe.efi", root.join("ipxe.efi")).unwrap();
    let cfg = env.dir.path().join("heads.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[dhcp.loaders]\nbios = \"snponly.efi\"\nefi_x64 = \"ipxe.efi\"\n\
             [tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
            root.display()
        ),
    )
    .unwrap();
    let srv = start_with(&env, &cfg, true);
    let a = srv.http;

    // Loaders: a plain file, a configured link out of the root (HEAD sizes the NBP).
    for (name, len) in [("snponly.efi", 173_792), ("ipxe.efi", 850_528)] {
        let r = agree(a, &format!("/loaders/{name}"), "");
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(
            r.header("content-length"),
            Some(&*len.to_string()),
            "{name}"
        );
        assert_eq!(r.header("content-type"), Some("application/efi"));
    }
    assert_eq!(agree(a, "/loaders/nosuch.efi", "").status(), 404);
    assert_eq!(agree(a, "/loaders/..%2Fboot%2Fipxe.efi", "").status(), 404);
    // The absolute form a proxy would send.
    assert_eq!(agree(a, "http://tabula/loaders/ipxe.efi", "").status(), 200);

    // Scripts, both URL forms; a machine with no pin; a malformed request.
    let hyph = MAC.replace(':', "-");
    let s = agree(
        a,
        &format!("/boot.ipxe?mac={hyph}&platform=efi&buildarch=x86_64"),
        "",
    );
    assert_eq!(s.status(), 200);
    assert_eq!(s.header("cache-control"), Some("no-store"));
    let script = String::from_utf8(s.body).unwrap();
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert_eq!(
        agree(a, &format!("/boot/{MAC}/boot.ipxe"), "").status(),
        200
    );
    assert_eq!(
        agree(a, "/boot/52:54:00:00:00:99/boot.ipxe", "").status(),
        200
    );
    assert_eq!(agree(a, "/boot.ipxe?mac=zz", "").status(), 400);

    // Blobs: whole (plain and attributed, root image included), ranged, unsatisfiable,
    // revalidated, unknown.
    let khex = &sha256_of(&kernel)[7..];
    let rhex = &sha256_of(&rootfs)[7..];
    let blob = format!("/blobs/sha256/{khex}");
    let r = agree(a, &blob, "");
    assert_eq!(
        (r.status(), r.header("content-length")),
        (200, Some("300000"))
    );
    assert_eq!(r.header("etag"), Some(&*format!("\"sha256:{khex}\"")));
    assert!(r.header("cache-control").is_some());
    let r = agree(a, &format!("{blob}/vmlinuz?mac={hyph}&as=kernel"), "");
    assert_eq!(r.status(), 200);
    let r = agree(
        a,
        &format!("/blobs/sha256/{rhex}/root.squashfs?mac={hyph}&as=rootfs"),
        "",
    );
    assert_eq!(
        (r.status(), r.header("content-length")),
        (200, Some("500000"))
    );
    let r = agree(a, &blob, "Range: bytes=1000-1999\r\n");
    assert_eq!(
        (r.status(), r.header("content-length")),
        (206, Some("1000"))
    );
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(agree(a, &blob, "Range: bytes=-1\r\n").status(), 206);
    assert_eq!(agree(a, &blob, "Range: bytes=400000-\r\n").status(), 416);
    let inm = format!("If-None-Match: \"sha256:{khex}\"\r\n");
    assert_eq!(agree(a, &blob, &inm).status(), 304);
    assert_eq!(
        agree(a, &format!("/blobs/sha256/{}", "0".repeat(64)), "").status(),
        404
    );

    // Health and readiness.
    assert_eq!(agree(a, "/healthz", "").status(), 200);
    assert_eq!(agree(a, "/readyz", "").status(), 200);

    // Reports are POST only: GET and HEAD get the same 405 with `Allow`.
    let cb = callback_of(&script);
    let r = agree(a, &format!("{cb}/booted"), "");
    assert_eq!((r.status(), r.header("allow")), (405, Some("post")));

    // Refusals: no such route, and heads refused before routing (no Host, a bad length).
    assert_eq!(agree(a, "/nope", "").status(), 404);
    for bad in [
        "Content-Length: -1\r\n",
        "Content-Length: 1\r\nContent-Length: 2\r\n",
    ] {
        assert_eq!(agree(a, "/loaders/ipxe.efi", bad).status(), 400, "{bad:?}");
    }
    let no_host = |method: &str| {
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "{method} /healthz HTTP/1.1\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let r = read_response(&mut s, &mut all, method == "HEAD");
        assert!(
            all.is_empty(),
            "{method}: bytes after the response: {all:?}"
        );
        r
    };
    let (get, head) = (no_host("GET"), no_host("HEAD"));
    assert_eq!((get.status(), &get.head), (400, &head.head));

    // As the firmware does it: HEAD, then GET, on one keep-alive connection.
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut pending = Vec::new();
    for method in ["HEAD", "GET", "HEAD"] {
        write!(
            s,
            "{method} /loaders/ipxe.efi HTTP/1.1\r\nHost: tabula\r\n\r\n"
        )
        .unwrap();
        let r = read_response(&mut s, &mut pending, method == "HEAD");
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.header("content-length"), Some("850528"), "{method}");
        assert_eq!(r.body.len(), if method == "GET" { 850_528 } else { 0 });
    }
    assert_eq!(
        std::fs::read(elsewhere.join("ipxe.efi")).unwrap().len(),
        850_528
    );
}
