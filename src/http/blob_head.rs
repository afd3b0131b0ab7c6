//! What a blob request gets, decided from its headers and the blob's size alone: status,
//! headers and the byte range to send. Pure; the sending is in `blobs.rs`.
//!
//! Rules: `If-None-Match` naming the digest (or `*`) → 304. One satisfiable range → 206
//! with `Content-Range`; a range past the end → 416; several ranges are answered with
//! the whole blob (200), which HTTP allows and every boot client handles. Range parsing
//! is `http-range-header`'s, the same crate tower-http uses.

use axum::http::{HeaderMap, StatusCode, header};

use crate::boot::Digest;

/// `Cache-Control` of content-addressed bytes: they can never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The response head and what to send after it.
#[derive(Debug, PartialEq, Eq)]
pub struct BlobHead {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// `(first byte, length)` of the body; `None` for no body.
    pub body: Option<(u64, u64)>,
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Decides the response to a GET (HEAD sends the same head without the body).
pub fn decide(headers: &HeaderMap, digest: &Digest, size: u64) -> BlobHead {
    let etag = format!("\"{digest}\"");
    let mut out = vec![
        ("etag", etag.clone()),
        ("cache-control", IMMUTABLE.to_string()),
        ("accept-ranges", "bytes".to_string()),
    ];
    if etag_matches(headers, &etag) {
        return BlobHead {
            status: StatusCode::NOT_MODIFIED,
            headers: out,
            body: None,
        };
    }
    out.push(("content-type", "application/octet-stream".to_string()));
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| http_range_header::parse_range_header(r).and_then(|p| p.validate(size)));
    match range {
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (first, last) = (*ranges[0].start(), *ranges[0].end());
            if size == 0 || first > last {
                return unsatisfiable(out, size);
            }
            let len = last - first + 1;
            out.push(("content-range", format!("bytes {first}-{last}/{size}")));
            out.push(("content-length", len.to_string()));
            BlobHead {
                status: StatusCode::PARTIAL_CONTENT,
                headers: out,
                body: Some((first, len)),
            }
        }
        // A range that starts past the end (or an empty blob) cannot be satisfied; a
        // malformed Range header is ignored, as RFC 9110 says.
        Some(Err(
            http_range_header::RangeUnsatisfiableError::FileSuffixOutOfBounds
            | http_range_header::RangeUnsatisfiableError::RangeReversed,
        )) => unsatisfiable(out, size),
        _ => {
            out.push(("content-length", size.to_string()));
            BlobHead {
                status: StatusCode::OK,
                headers: out,
                body: Some((0, size)),
            }
        }
    }
}

fn unsatisfiable(mut out: Vec<(&'static str, String)>, size: u64) -> BlobHead {
    out.push(("content-range", format!("bytes */{size}")));
    out.push(("content-length", "0".to_string()));
    BlobHead {
        status: StatusCode::RANGE_NOT_SATISFIABLE,
        headers: out,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    fn header<'a>(b: &'a BlobHead, name: &str) -> Option<&'a str> {
        b.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn whole_blob_and_conditional() {
        let d = Digest::of(b"x");
        let b = decide(&HeaderMap::new(), &d, 100);
        assert_eq!((b.status, b.body), (StatusCode::OK, Some((0, 100))));
        assert_eq!(header(&b, "etag"), Some(format!("\"{d}\"").as_str()));
        assert_eq!(header(&b, "content-length"), Some("100"));
        let b = decide(
            &with("if-none-match", &format!("\"x\", W/\"{d}\"")),
            &d,
            100,
        );
        assert_eq!((b.status, b.body), (StatusCode::NOT_MODIFIED, None));
        let b = decide(&with("if-none-match", "\"other\""), &d, 100);
        assert_eq!(b.status, StatusCode::OK);
    }

    #[test]
    fn ranges() {
        let d = Digest::of(b"x");
        for (r, first, len) in [
            ("bytes=0-0", 0, 1),
            ("bytes=10-19", 10, 10),
            ("bytes=-1", 99, 1),
            ("bytes=90-", 90, 10),
            ("bytes=90-500", 90, 10),
        ] {
            let b = decide(&with("range", r), &d, 100);
            assert_eq!(
                (b.status, b.body),
                (StatusCode::PARTIAL_CONTENT, Some((first, len))),
                "{r}"
            );
            let want = format!("bytes {first}-{}/100", first + len - 1);
            assert_eq!(header(&b, "content-range"), Some(want.as_str()));
        }
        let b = decide(&with("range", "bytes=100-"), &d, 100);
        assert_eq!(
            (b.status, b.body),
            (StatusCode::RANGE_NOT_SATISFIABLE, None)
        );
        assert_eq!(header(&b, "content-range"), Some("bytes */100"));
        let b = decide(&with("range", "bytes=0-1,5-6"), &d, 100);
        assert_eq!(
            (b.status, b.body),
            (StatusCode::OK, Some((0, 100))),
            "multi-range → whole"
        );
        let b = decide(&with("range", "lines=1-2"), &d, 100);
        assert_eq!(b.status, StatusCode::OK, "malformed Range is ignored");
    }
}
