//! Following `GET /api/v1/events/stream`: [`Parser`] turns the bytes of a
//! `text/event-stream` into events (the WHATWG rules: `id:`, `event:`, `data:` lines,
//! `:` comments, a blank line ends an event; LF, CRLF or CR line ends), pure, with no
//! socket; [`Client::follow_events`] keeps a stream open and, when it breaks or the
//! server restarts, reconnects with `Last-Event-ID` = the last id it delivered, so the
//! caller gets every stored event once, in id order, and is told ([`Followed::Reset`])
//! when retention deleted some before they could be read.

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::Method;
use hyper::header::HeaderName;

use super::{Client, ClientError, segment, wire};
use crate::store::EventRow;

/// The longest line kept; past it the stream is treated as broken.
const MAX_LINE: usize = 1 << 20;
/// Waits between reconnects: the first, and the most.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What following delivers.
#[derive(Debug)]
pub(crate) enum Followed {
    /// The next stored event.
    Event(Box<EventRow>),
    /// Events after `after` were deleted by retention before they could be read; the
    /// stream goes on from `oldest`.
    Reset { after: i64, oldest: i64 },
}

/// The data of a `reset` event.
#[derive(Debug, serde::Deserialize)]
struct ResetData {
    after: i64,
    oldest: i64,
}

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub id: Option<String>,
    /// `message` when the server named none.
    pub event: String,
    pub data: String,
}

/// The line-oriented state of one stream.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    line: Vec<u8>,
    /// A CR just ended a line: an LF right after it belongs to that line end.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

/// A line longer than [`MAX_LINE`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong;

impl Parser {
    /// Feeds bytes; returns the events they complete.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        out.push(e);
                    }
                }
                _ => {
                    if self.line.len() == MAX_LINE {
                        return Err(LineTooLong);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take()?;
            return Some(SseEvent {
                id: self.id.clone(),
                event: self.event.take().unwrap_or_else(|| "message".to_string()),
                data,
            });
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with(':') {
            return None;
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

impl Client {
    /// Follows the stored events after id `after` (of `mac`, if given), calling `each`
    /// for every one in id order, across reconnects, until the server refuses (a
    /// problem: returned) or `each` says stop (`false`).
    pub(crate) async fn follow_events(
        &self,
        mac: Option<&str>,
        mut after: i64,
        mut each: impl FnMut(Followed) -> bool,
    ) -> Result<(), ClientError> {
        let mut wait = RETRY_FIRST;
        loop {
            let q = match mac {
                Some(m) => format!("?mac={}", segment(m)),
                None => String::new(),
            };
            let path = format!("/api/v1/events/stream{q}");
            let headers = [(HeaderName::from_static("last-event-id"), after.to_string())];
            let broke = match self.send(Method::GET, &path, &headers, None).await {
                Ok(res) => {
                    let mut body = res.into_body();
                    let mut parser = Parser::default();
                    loop {
                        let frame = match body.frame().await {
                            None => break "the server ended the stream".to_string(),
                            Some(Err(e)) => break e.to_string(),
                            Some(Ok(f)) => f,
                        };
                        let Ok(bytes) = frame.into_data() else {
                            continue;
                        };
                        let events = match parser.feed(&bytes) {
                            Ok(ev) => ev,
                            Err(LineTooLong) => break "a line longer than 1 MiB".to_string(),
                        };
                        wait = RETRY_FIRST;
                        for e in events {
                            if e.event == "reset" {
                                match serde_json::from_str::<ResetData>(&e.data) {
                                    Ok(r) => {
                                        if !each(Followed::Reset {
                                            after: r.after,
                                            oldest: r.oldest,
                                        }) {
                                            return Ok(());
                                        }
                                    }
                                    Err(why) => {
                                        tracing::warn!(%why, "event stream: a reset this client cannot read")
                                    }
                                }
                                continue;
                            }
                            let id = e.id.as_deref().and_then(|i| i.parse::<i64>().ok());
                            let value = serde_json::from_str(&e.data);
                            match (
                                id,
                                value.map_err(|e| e.to_string()).and_then(wire::event_row),
                            ) {
                                (Some(id), Ok(row)) if id > after => {
                                    after = id;
                                    if !each(Followed::Event(Box::new(row))) {
                                        return Ok(());
                                    }
                                }
                                (Some(id), Ok(_)) => {
                                    tracing::debug!(
                                        id,
                                        after,
                                        "event stream: an event already seen"
                                    )
                                }
                                (id, Err(why)) => {
                                    tracing::warn!(?id, event = %e.event, %why, "event stream: an event this client cannot read; skipped");
                                    if let Some(id) = id {
                                        after = after.max(id);
                                    }
                                }
                                (None, Ok(_)) => {
                                    tracing::warn!("event stream: an event without id; skipped")
                                }
                            }
                        }
                    }
                }
                // A refusal is final; the server being away is not.
                Err(e @ ClientError::Transport { .. }) => e.to_string(),
                Err(e) => return Err(e),
            };
            tracing::info!(%broke, after, retry_in = ?wait, "event stream: reconnecting");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser, s: &str) -> Vec<SseEvent> {
        p.feed(s.as_bytes()).unwrap()
    }

    #[test]
    fn events_end_at_a_blank_line_whatever_the_line_ends() {
        let mut p = Parser::default();
        let ev = all(
            &mut p,
            ": keep-alive\n\nid: 7\nevent: booted\ndata: {\"a\":1}\n\nid:8\r\ndata:x\r\ndata: y\r\n\r\n",
        );
        assert_eq!(
            ev,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "booted".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("8".into()),
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
        // Split anywhere, CR alone, the id carried over to the next event.
        let mut p = Parser::default();
        let mut got = Vec::new();
        for chunk in ["id: 9\rda", "ta: z\r", "\r", "data: w\n\n"] {
            got.extend(all(&mut p, chunk));
        }
        let ids: Vec<_> = got.iter().map(|e| (e.id.clone(), e.data.clone())).collect();
        assert_eq!(
            ids,
            vec![
                (Some("9".into()), "z".into()),
                (Some("9".into()), "w".into())
            ]
        );
    }

    #[test]
    fn an_endless_line_is_refused_not_buffered() {
        let mut p = Parser::default();
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(p.feed(&big), Err(LineTooLong));
    }
}
