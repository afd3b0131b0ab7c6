//! HTTP/1.1 response heads written straight into a byte buffer: no `String` per header,
//! and the `Date` value formatted once per second rather than per response. Pure apart
//! from reading the clock.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

/// The `Date` value of the current second, shared by every connection.
static DATE: Mutex<(u64, [u8; 29])> = Mutex::new((u64::MAX, [b' '; 29]));

/// Appends the current HTTP date (29 bytes, IMF-fixdate).
fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut d = DATE.lock().unwrap_or_else(|p| p.into_inner());
    if d.0 != secs {
        let text = httpdate::fmt_http_date(now);
        if text.len() == 29 {
            d.1.copy_from_slice(text.as_bytes());
            d.0 = secs;
        } else {
            // Years past 9999: never cached, still correct.
            out.extend_from_slice(text.as_bytes());
            return;
        }
    }
    out.extend_from_slice(&d.1);
}

/// A response head being written into a buffer; [`HeadWriter::finish`] ends it.
#[derive(Debug)]
pub(super) struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    /// Starts a head with its status line.
    pub(super) fn new(out: &'a mut Vec<u8>, status: StatusCode) -> HeadWriter<'a> {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        HeadWriter { out }
    }

    /// A header with a text value.
    pub(super) fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// A header with a number value.
    pub(super) fn number(&mut self, name: &str, value: u64) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, ": {value}\r\n");
        self
    }

    /// `content-range: bytes first-last/size`.
    pub(super) fn content_range(&mut self, first: u64, last: u64, size: u64) -> &mut Self {
        let _ = write!(self.out, "content-range: bytes {first}-{last}/{size}\r\n");
        self
    }

    /// Adds `date` (and `connection: close` unless the connection stays open) and the
    /// blank line that ends the head.
    pub(super) fn finish(self, keep_alive: bool) {
        self.out.extend_from_slice(b"date: ");
        push_date(self.out);
        self.out.extend_from_slice(b"\r\n");
        if !keep_alive {
            self.out.extend_from_slice(b"connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_well_formed() {
        let mut out = Vec::new();
        let mut h = HeadWriter::new(&mut out, StatusCode::PARTIAL_CONTENT);
        h.header("etag", b"\"x\"")
            .number("content-length", 10)
            .content_range(5, 14, 100);
        h.finish(false);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 206 Partial Content\r\netag: \"x\"\r\ncontent-length: 10\r\n\
                 content-range: bytes 5-14/100\r\ndate: "
            ),
            "{text}"
        );
        assert!(
            text.ends_with(" GMT\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
        let date = text
            .split("date: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        assert_eq!(date.len(), 29, "{date}");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        // Twice in the same second: the cached value, identical.
        let mut a = Vec::new();
        HeadWriter::new(&mut a, StatusCode::OK).finish(true);
        assert!(a.ends_with(b" GMT\r\n\r\n"));
    }
}
