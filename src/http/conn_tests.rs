//! The pure parts of the connection loop: where a head ends (CRLF or bare LF, however
//! it arrives) and the framing rules that keep request boundaries unambiguous.

use axum::http::StatusCode;

use super::*;

fn framed(head: &str) -> Result<usize, Refusal> {
    let mut scanned = 0;
    let n = head_end(head.as_bytes(), &mut scanned)
        .expect("fits")
        .expect("complete");
    framing(&parse(&head.as_bytes()[..n]).expect("parses"))
}

#[test]
fn a_head_ends_at_its_blank_line_with_crlf_or_bare_lf() {
    let mut s = 0;
    assert_eq!(
        head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", &mut s),
        Ok(Some(27))
    );
    let mut s = 0;
    assert_eq!(
        head_end(b"GET / HTTP/1.1\nHost: x\n\nrest", &mut s),
        Ok(Some(24))
    );
    // Arriving a byte at a time finds the same end.
    let whole = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut s = 0;
    for i in 1..whole.len() {
        assert_eq!(head_end(&whole[..i], &mut s), Ok(None), "{i}");
    }
    assert_eq!(head_end(whole, &mut s), Ok(Some(whole.len())));
    let mut s = 0;
    assert_eq!(head_end(&vec![b'a'; MAX_HEAD + 1], &mut s), Err(()));
    // httparse reads bare-LF heads, so they are answered rather than left hanging.
    let p = parse(b"GET /healthz HTTP/1.1\nHost: x\n\n").expect("bare LF parses");
    assert_eq!((p.target.as_str(), framing(&p)), ("/healthz", Ok(0)));
}

#[test]
fn body_lengths_must_be_plain_digits_and_agree() {
    let h = "POST /x HTTP/1.1\r\nHost: x\r\n";
    assert_eq!(framed(&format!("{h}\r\n")), Ok(0));
    assert_eq!(framed(&format!("{h}Content-Length: 5\r\n\r\n")), Ok(5));
    // Identical duplicates are one length (RFC 9110 §8.6), as a list or repeated.
    assert_eq!(
        framed(&format!(
            "{h}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
        )),
        Ok(5)
    );
    assert_eq!(framed(&format!("{h}Content-Length: 5, 5\r\n\r\n")), Ok(5));
    for bad in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: \r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let r = framed(&format!("{h}{bad}\r\n")).unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(
        framed(&format!("{h}Transfer-Encoding: chunked\r\n\r\n")),
        Err(Refusal::LengthRequired)
    );
    assert_eq!(
        framed(&format!("{h}Content-Length: {}\r\n\r\n", MAX_BODY + 1))
            .unwrap_err()
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[test]
fn http_1_1_needs_exactly_one_host() {
    let e = |head: &str| framed(head).map_err(|r| r.status());
    assert_eq!(e("GET / HTTP/1.1\r\n\r\n"), Err(StatusCode::BAD_REQUEST));
    assert_eq!(
        e("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        e("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(e("GET / HTTP/1.0\r\n\r\n"), Ok(0), "1.0 may omit Host");
    assert_eq!(e("GET / HTTP/1.1\r\nhost: a\r\n\r\n"), Ok(0));
}

#[test]
fn a_refused_head_request_is_known_as_head() {
    assert!(sniff_head(b"HEAD /loaders/ipxe.efi HTTP/1.1\r\n"));
    assert!(sniff_head(b"\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(sniff_head(b"HEAD /x"), "a head cut short still starts HEAD");
    for other in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"HEADER / HTTP/1.1",
        b"head / HTTP/1.1",
        b"",
    ] {
        assert!(!sniff_head(other), "{:?}", String::from_utf8_lossy(other));
    }
    // Framing refusals of a parsed HEAD: answered with the head a GET gets, no body.
    let p = parse(b"HEAD /healthz HTTP/1.1\r\n\r\n").expect("parses");
    let refusal = framing(&p).unwrap_err();
    let (mut get, mut head) = (Vec::new(), Vec::new());
    refusal.write(&mut get, false, false);
    refusal.write(&mut head, true, false);
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .split("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let (get, head) = (text(&get), text(&head));
    assert!(head.ends_with("\r\n\r\n"), "{head:?}");
    assert_eq!(get, format!("{head}{}", refusal.message()));
}
