//! What a blob request gets, decided from its headers and the blob's size alone: status,
//! headers and the byte range to send. Pure; the sending is in `blobs.rs`.
//!
//! Rules: `If-None-Match` naming the digest (or `*`) → 304. One satisfiable range → 206
//! with `Content-Range`; a range past the end, or the empty suffix `bytes=-0`
//! (RFC 9110 §14.1.1: unsatisfiable) → 416; several ranges are answered with
//! the whole blob (200), which HTTP allows and every boot client handles. Range parsing
//! is `http-range-header`'s, the same crate tower-http uses.

use axum::http::{HeaderMap, StatusCode, header};

use super::wire::HeadWriter;
use crate::boot::Digest;

/// `Cache-Control` of content-addressed bytes: they can never change.
pub(super) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `ETag` of a blob: its digest, quoted.
pub(super) fn etag_of(digest: &Digest) -> String {
    format!("\"{digest}\"")
}

/// What `Content-Range` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ContentRange {
    /// `bytes first-last/size`.
    Bytes { first: u64, last: u64, size: u64 },
    /// `bytes */size`.
    Unsatisfied { size: u64 },
}

/// The response head and what to send after it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BlobHead {
    pub status: StatusCode,
    /// `Content-Length` (and `Content-Type`); `None` for 304, which only revalidates.
    pub content_length: Option<u64>,
    pub content_range: Option<ContentRange>,
    /// `(first byte, length)` of the body; `None` for no body.
    pub body: Option<(u64, u64)>,
}

impl BlobHead {
    /// Writes the head: validators and caching first, then type, range and length.
    pub(super) fn write(&self, out: &mut Vec<u8>, etag: &str, keep_alive: bool) {
        let mut h = HeadWriter::new(out, self.status);
        h.header("etag", etag.as_bytes())
            .header("cache-control", IMMUTABLE.as_bytes())
            .header("accept-ranges", b"bytes");
        if let Some(len) = self.content_length {
            h.header("content-type", b"application/octet-stream");
            match self.content_range {
                Some(ContentRange::Bytes { first, last, size }) => {
                    h.content_range(first, last, size);
                }
                Some(ContentRange::Unsatisfied { size }) => {
                    h.header("content-range", format!("bytes */{size}").as_bytes());
                }
                None => {}
            }
            h.number("content-length", len);
        }
        h.finish(keep_alive);
    }
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

/// Decides the response to a GET (HEAD sends the same head without the body) of a blob
/// whose `ETag` is `etag` ([`etag_of`]).
pub(super) fn decide(headers: &HeaderMap, etag: &str, size: u64) -> BlobHead {
    if etag_matches(headers, etag) {
        return BlobHead {
            status: StatusCode::NOT_MODIFIED,
            content_length: None,
            content_range: None,
            body: None,
        };
    }
    let text = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    if text.is_some_and(empty_suffix) {
        return unsatisfiable(size);
    }
    let range =
        text.map(|r| http_range_header::parse_range_header(r).and_then(|p| p.validate(size)));
    match range {
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (first, last) = (*ranges[0].start(), *ranges[0].end());
            if size == 0 || first > last {
                return unsatisfiable(size);
            }
            let len = last - first + 1;
            BlobHead {
                status: StatusCode::PARTIAL_CONTENT,
                content_length: Some(len),
                content_range: Some(ContentRange::Bytes { first, last, size }),
                body: Some((first, len)),
            }
        }
        // A range that starts past the end (or an empty blob) cannot be satisfied; a
        // malformed Range header is ignored, as RFC 9110 says.
        Some(Err(
            http_range_header::RangeUnsatisfiableError::FileSuffixOutOfBounds
            | http_range_header::RangeUnsatisfiableError::RangeReversed,
        )) => unsatisfiable(size),
        _ => BlobHead {
            status: StatusCode::OK,
            content_length: Some(size),
            content_range: None,
            body: Some((0, size)),
        },
    }
}

/// Whether a Range header is the one suffix range of zero bytes (`bytes=-0`, `-00`…).
fn empty_suffix(range: &str) -> bool {
    range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.trim().strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b == b'0'))
}

fn unsatisfiable(size: u64) -> BlobHead {
    BlobHead {
        status: StatusCode::RANGE_NOT_SATISFIABLE,
        content_length: Some(0),
        content_range: Some(ContentRange::Unsatisfied { size }),
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

    /// A header of the head as written.
    fn header(b: &BlobHead, name: &str) -> Option<String> {
        let mut out = Vec::new();
        b.write(&mut out, "\"e\"", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\n") && !text.contains("connection"));
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
    }

    #[test]
    fn whole_blob_and_conditional() {
        let d = Digest::of(b"x");
        let e = etag_of(&d);
        assert_eq!(e, format!("\"{d}\""));
        let b = decide(&HeaderMap::new(), &e, 100);
        assert_eq!((b.status, b.body), (StatusCode::OK, Some((0, 100))));
        assert_eq!(header(&b, "etag").as_deref(), Some("\"e\""));
        assert_eq!(header(&b, "content-length").as_deref(), Some("100"));
        assert_eq!(
            header(&b, "content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(header(&b, "cache-control").as_deref(), Some(IMMUTABLE));
        let b = decide(
            &with("if-none-match", &format!("\"x\", W/\"{d}\"")),
            &e,
            100,
        );
        assert_eq!((b.status, b.body), (StatusCode::NOT_MODIFIED, None));
        assert_eq!(header(&b, "content-length"), None);
        let b = decide(&with("if-none-match", "\"other\""), &e, 100);
        assert_eq!(b.status, StatusCode::OK);
    }

    #[test]
    fn ranges() {
        let d = etag_of(&Digest::of(b"x"));
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
            assert_eq!(header(&b, "content-range"), Some(want));
            assert_eq!(header(&b, "content-length"), Some(len.to_string()));
        }
        let b = decide(&with("range", "bytes=100-"), &d, 100);
        assert_eq!(
            (b.status, b.body),
            (StatusCode::RANGE_NOT_SATISFIABLE, None)
        );
        assert_eq!(header(&b, "content-range").as_deref(), Some("bytes */100"));
        assert_eq!(header(&b, "content-length").as_deref(), Some("0"));
        for r in ["bytes=-0", "bytes= -000"] {
            let b = decide(&with("range", r), &d, 100);
            assert_eq!(b.status, StatusCode::RANGE_NOT_SATISFIABLE, "{r}");
        }
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
