//! The event spool: boot events the writer could not store (the store unreachable) are
//! appended to `<data_dir>/events.spool`, in order, and read back in order for replay
//! once the store answers, so an outage loses no event even if the server dies during it
//! (the next start replays the file).
//!
//! The file: a header line `tabula-events-spool 1 <id>`, then one event per line, fields
//! separated by tabs (`at_ms mac stage manifest via peer attempt detail`, `-` for none; the
//! detail is JSON, which never holds a raw tab or newline). Each replayed batch's
//! transaction records in the store how many of spool `<id>`'s events are stored
//! ([`crate::store::Store::append_spooled`]), so a replay cut short resumes after them and
//! no event is stored twice. Bounded: an append past [`MAX_BYTES`] is dropped (counted by
//! the caller). Only the writer task touches the file; I/O is synchronous and small.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};

use crate::boot::{BootId, EventText};

/// The most the spool file may hold.
pub(crate) const MAX_BYTES: u64 = 64 << 20;
const MAGIC: &str = "tabula-events-spool 1 ";

/// An open spool: appended at its end, read from its replay position.
#[derive(Debug)]
pub(crate) struct Spool {
    path: PathBuf,
    /// Names this spool in the store's `event_spools`.
    pub id: String,
    append: File,
    reader: BufReader<File>,
    bytes: u64,
    max: u64,
    /// Events appended and not yet read back.
    pub unread: u64,
    /// Events read back (replayed, or skipped as replayed before).
    pub read: u64,
    /// Whether the count already stored was looked up and skipped.
    pub resumed: bool,
}

fn line(e: &EventText) -> String {
    let opt = |s: Option<String>| s.unwrap_or_else(|| "-".into());
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        e.at_ms,
        e.mac,
        e.stage.as_str(),
        opt(e.manifest.map(|d| d.to_string())),
        e.via.as_str(),
        opt(e.peer.map(|p| p.to_string())),
        opt(e.attempt.map(attempt_text)),
        e.detail
    )
}

/// A boot attempt's id as its 16 hex digits (as `boots.id` holds it).
fn attempt_text(b: BootId) -> String {
    b.0.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_attempt(s: &str) -> Option<BootId> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let mut b = [0u8; 8];
    for (i, out) in b.iter_mut().enumerate() {
        *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(BootId(b))
}

fn parse(l: &str) -> Option<EventText> {
    let mut f = l.splitn(8, '\t');
    let mut next = || f.next();
    let at_ms = next()?.parse().ok()?;
    let mac = next()?.parse().ok()?;
    let stage = next()?.parse().ok()?;
    let manifest = match next()? {
        "-" => None,
        d => Some(d.parse().ok()?),
    };
    let via = next()?.parse().ok()?;
    let peer = match next()? {
        "-" => None,
        p => Some(p.parse().ok()?),
    };
    let attempt = match next()? {
        "-" => None,
        a => Some(parse_attempt(a)?),
    };
    let detail = next()?;
    serde_json::from_str::<serde_json::Value>(detail).ok()?;
    Some(EventText {
        at_ms,
        mac,
        stage,
        manifest,
        via,
        peer,
        detail: detail.into(),
        attempt,
    })
}

impl Spool {
    /// Starts a new spool at `path` (which must not exist).
    pub(crate) fn create(path: &Path, max: u64) -> std::io::Result<Spool> {
        let id = crate::ha::heartbeat::instance();
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        f.write_all(format!("{MAGIC}{id}\n").as_bytes())?;
        f.sync_data()?;
        Spool::open(path, max, false)?.ok_or_else(|| std::io::Error::other("spool vanished"))
    }

    /// Opens the spool a previous run left at `path`, if there is one. `fresh`: the
    /// events in it are counted as unread (and the store asked what it replayed).
    pub(crate) fn open(path: &Path, max: u64, fresh: bool) -> std::io::Result<Option<Spool>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let Some(id) = header.trim_end().strip_prefix(MAGIC) else {
            return Err(std::io::Error::other(format!(
                "{} is not an event spool",
                path.display()
            )));
        };
        let id = id.to_string();
        let mut append = OpenOptions::new().append(true).open(path)?;
        let bytes = append.seek(std::io::SeekFrom::End(0))?;
        let mut unread = 0;
        if fresh {
            // Count the events; a line cut by a crash gets its end, so appends start clean.
            let mut r = BufReader::new(File::open(path)?);
            let mut buf = Vec::new();
            let mut last_complete = true;
            let mut first = true;
            loop {
                buf.clear();
                if r.read_until(b'\n', &mut buf)? == 0 {
                    break;
                }
                last_complete = buf.ends_with(b"\n");
                if !first {
                    unread += 1;
                }
                first = false;
            }
            if !last_complete {
                append.write_all(b"\n")?;
            }
        }
        Ok(Some(Spool {
            path: path.to_path_buf(),
            id,
            append,
            reader,
            bytes,
            max,
            unread,
            read: 0,
            resumed: !fresh,
        }))
    }

    /// Appends `events` in order and syncs; returns how many did not fit (dropped).
    pub(crate) fn append(&mut self, events: &[EventText]) -> std::io::Result<usize> {
        let mut out = Vec::new();
        let mut dropped = 0;
        for e in events {
            let l = line(e);
            let len = u64::try_from(l.len()).unwrap_or(u64::MAX);
            if self.bytes + u64::try_from(out.len()).unwrap_or(0) + len > self.max {
                dropped += 1;
                continue;
            }
            out.extend_from_slice(l.as_bytes());
        }
        if !out.is_empty() {
            self.append.write_all(&out)?;
            self.append.sync_data()?;
            self.bytes += u64::try_from(out.len()).unwrap_or(0);
            self.unread += u64::try_from(events.len() - dropped).unwrap_or(0);
        }
        Ok(dropped)
    }

    /// Reads up to `n` events from the replay position. A line that does not parse (cut
    /// by a crash) is skipped and counted in the second value.
    pub(crate) fn read(&mut self, n: usize) -> std::io::Result<(Vec<EventText>, u64)> {
        let mut out = Vec::with_capacity(n.min(4096));
        let mut bad = 0;
        let mut l = String::new();
        while out.len() < n {
            l.clear();
            if self.reader.read_line(&mut l)? == 0 {
                break;
            }
            self.read += 1;
            self.unread = self.unread.saturating_sub(1);
            match parse(l.trim_end_matches('\n')) {
                Some(e) => out.push(e),
                None => bad += 1,
            }
        }
        Ok((out, bad))
    }

    /// Skips `n` events (stored by an earlier replay).
    pub(crate) fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let mut l = Vec::new();
        for _ in 0..n {
            l.clear();
            if self.reader.read_until(b'\n', &mut l)? == 0 {
                break;
            }
            self.read += 1;
            self.unread = self.unread.saturating_sub(1);
        }
        Ok(())
    }

    /// Removes the file (every event in it is stored).
    pub(crate) fn remove(self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BootStage, Mac, Via};

    fn event(i: i64) -> EventText {
        EventText {
            at_ms: i,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            stage: BootStage::ScriptSent,
            manifest: None,
            via: Via::Http,
            peer: Some("10.0.0.9".parse().unwrap()),
            detail: format!("{{\"n\":{i},\"s\":\"a\\tb\"}}").into(),
            attempt: (i % 2 == 0).then_some(BootId([
                0xa5,
                1,
                2,
                3,
                4,
                5,
                6,
                u8::try_from(i & 0xff).unwrap(),
            ])),
        }
    }

    #[test]
    fn events_come_back_in_order_across_a_reopen_and_the_bound_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.spool");
        let mut s = Spool::create(&p, MAX_BYTES).unwrap();
        assert!(
            Spool::create(&p, MAX_BYTES).is_err(),
            "never replaces a spool"
        );
        let all: Vec<_> = (0..10).map(event).collect();
        assert_eq!(s.append(&all[..6]).unwrap(), 0);
        let (got, bad) = s.read(4).unwrap();
        assert_eq!((got, bad), (all[..4].to_vec(), 0));
        assert_eq!(s.append(&all[6..]).unwrap(), 0);
        let id = s.id.clone();
        drop(s);
        // A crash cut the last line: reopened, counted, and the cut line is skipped.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"123\t02:00").unwrap();
        drop(f);
        let mut s = Spool::open(&p, MAX_BYTES, true).unwrap().unwrap();
        assert_eq!((s.id.as_str(), s.unread), (id.as_str(), 11));
        s.skip(4).unwrap();
        s.append(&[event(10)]).unwrap();
        let (got, bad) = s.read(100).unwrap();
        let want: Vec<_> = (4..11).map(event).collect();
        assert_eq!((got, bad), (want, 1));
        assert_eq!(s.unread, 0);
        s.remove().unwrap();
        assert!(!p.exists());

        // Bounded: what does not fit is dropped and counted.
        let one = u64::try_from(line(&event(0)).len()).unwrap();
        let mut s = Spool::create(&p, 60 + 3 * one).unwrap();
        assert_eq!(s.append(&all).unwrap(), 7);
        assert_eq!(s.read(100).unwrap().0, all[..3].to_vec());
    }
}
