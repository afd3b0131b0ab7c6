//! Which status each data-plane request was answered with, for
//! `tabula_http_requests_total{route, status}`. The answer is written by several senders
//! (buffered heads, heads before `sendfile`, refusals); each passes its bytes through
//! [`super::Limits::sent`], which notes the status of the first response head of the
//! request here, and [`answered`] hands it back to the connection loop with the result.
//!
//! The note lives in a tokio task-local scoped to one request: no lock, no allocation,
//! nothing shared between connections. Outside a scope (there is none) nothing is noted.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static STATUS: Cell<Option<[u8; 3]>>;
}

/// Runs one request's answer; returns its result and the status its first response head
/// carried (`None`: no head was written, e.g. the client went away first).
pub(super) async fn answered<F: Future>(answer: F) -> (F::Output, Option<[u8; 3]>) {
    STATUS
        .scope(Cell::new(None), async {
            let out = answer.await;
            (out, STATUS.with(Cell::get))
        })
        .await
}

/// Notes the status of `out` if it starts a response head and none was noted yet.
pub(super) fn head_written(out: &[u8]) {
    let Some(code) = out
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| <[u8; 3]>::try_from(c).ok())
    else {
        return;
    };
    let _ = STATUS.try_with(|s| {
        if s.get().is_none() {
            s.set(Some(code));
        }
    });
}

/// The label value of a noted status.
pub(super) fn label(status: Option<[u8; 3]>) -> &'static str {
    match status {
        None => "none",
        Some(code) => super::super::metrics::families::HTTP_STATUSES
            .iter()
            .copied()
            .find(|s| s.as_bytes() == code)
            .unwrap_or("other"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_head_of_a_request_is_its_status() {
        let ((), s) = answered(async {
            head_written(b"HTTP/1.1 206 Partial Content\r\n");
            head_written(b"body bytes");
            head_written(b"HTTP/1.1 500 Internal Server Error\r\n");
        })
        .await;
        assert_eq!(label(s), "206");
        let ((), s) = answered(async {}).await;
        assert_eq!(label(s), "none");
        let ((), s) = answered(async { head_written(b"HTTP/1.1 299 Odd\r\n") }).await;
        assert_eq!(label(s), "other");
        // Outside a scope: ignored, no panic.
        head_written(b"HTTP/1.1 200 OK\r\n");
    }
}
