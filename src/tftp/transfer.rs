//! One read transfer as a pure state machine: option negotiation, then events in (ACK,
//! client ERROR, timeout), actions out (send the OACK, send blocks `a..=b`, wait,
//! finish, abort).
//!
//! No sockets, no clock, no file contents: blocks are named by their absolute index
//! (1, 2, ... past 65535) and the caller slices and sends them. What this module
//! guarantees: a window (RFC 7440) is retransmitted from the first unacknowledged block;
//! a duplicate or stale ACK never triggers a send (no Sorcerer's Apprentice); a client
//! ERROR ends the transfer at once with nothing sent back (a PXE `tsize` probe ends
//! with ERROR 8 after the OACK, which is normal); retransmission stops after `retries`
//! timeouts in a row, with the timeout doubling each time, and after
//! [`UNACKED_RETRIES`] while the client has acknowledged nothing (no amplification
//! towards a spoofed address).

use std::ops::Range;
use std::time::Duration;

use super::event::AbortReason;
use super::packet::{ErrorCode, Oack, RequestOptions};

/// Block size when no `blksize` option is negotiated (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest `blksize` RFC 2348 allows; smaller requests are ignored.
pub const MIN_BLKSIZE: u16 = 8;
/// Largest `blksize` RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// Upper bound on window × block size, whatever the configuration allows: a burst larger
/// than a client's receive buffer loses packets, and each loss costs a full timeout
/// (measured: 8192 × 16 collapsed to ~10 MiB/s on loopback). 64 KiB keeps 1468 × 16
/// (23 KiB) untouched and trims 8192 × 16 to 8192 × 8.
pub const MAX_WINDOW_BYTES: u32 = 64 * 1024;
/// Client `timeout` values (RFC 2349, seconds) the server acknowledges and uses.
/// Anything else is left out of the OACK and the configured timeout applies (curl asks
/// for 72 s, which would turn one lost packet into a stall of over a minute).
pub const CLIENT_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=10;
/// Retransmissions of the first packet (OACK or DATA 1) before the client has
/// acknowledged anything. An RRQ's source address is unproven until an ACK comes back
/// from it, so a spoofed request must not turn one small datagram into `retries` full
/// blocks aimed at someone else: at most 1 + 2 packets of at most 516 bytes go out.
pub const UNACKED_RETRIES: u32 = 2;
/// Backoff never waits longer than this many base timeouts.
const MAX_BACKOFF_FACTOR: u32 = 8;

/// What the server grants, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_blksize: u16,
    pub max_windowsize: u16,
    pub timeout: Duration,
    pub retries: u32,
}

/// The outcome of option negotiation for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// Base retransmission timeout.
    pub timeout: Duration,
    /// What to acknowledge; empty means "send DATA 1 straight away".
    pub oack: Oack,
}

/// Grants the options of a request for a file of `size` bytes.
pub fn negotiate(opts: &RequestOptions, size: u64, limits: &Limits) -> Negotiated {
    let mut oack = Oack::default();
    let mut blksize = DEFAULT_BLKSIZE;
    if let Some(asked) = opts.blksize
        && asked >= u64::from(MIN_BLKSIZE)
    {
        let cap = limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
        blksize = u16::try_from(asked).map_or(cap, |a| a.min(cap));
        oack.blksize = Some(blksize);
    }
    let mut windowsize = 1;
    if let Some(asked) = opts.windowsize
        && asked >= 1
    {
        let by_bytes = u16::try_from(MAX_WINDOW_BYTES / u32::from(blksize))
            .unwrap_or(u16::MAX)
            .max(1);
        let cap = limits.max_windowsize.max(1).min(by_bytes);
        windowsize = u16::try_from(asked).map_or(cap, |a| a.min(cap));
        oack.windowsize = Some(windowsize);
    }
    if opts.tsize.is_some() {
        oack.tsize = Some(size);
    }
    let mut timeout = limits.timeout;
    if let Some(secs) = opts.timeout
        && CLIENT_TIMEOUT_SECS.contains(&secs)
        && let Ok(secs) = u8::try_from(secs)
    {
        timeout = Duration::from_secs(u64::from(secs));
        oack.timeout = Some(secs);
    }
    Negotiated {
        blksize,
        windowsize,
        timeout,
        oack,
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the OACK (first time or again), then wait [`Transfer::timeout`].
    SendOack,
    /// Send blocks `first..=last` (absolute indices), then wait [`Transfer::timeout`].
    SendBlocks { first: u64, last: u64 },
    /// Nothing to send; keep waiting until the deadline already set.
    Wait,
    /// The last block was acknowledged.
    Finished,
    /// Stop now; send nothing more to the client.
    Abort(AbortReason),
}

/// The state of one transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    size: u64,
    blksize: u64,
    window: u64,
    /// Number of DATA blocks, counting the final short (possibly empty) one.
    blocks: u64,
    /// Waiting for ACK 0 of the OACK.
    oack_pending: bool,
    /// First block not yet acknowledged.
    base: u64,
    /// First block never sent.
    next: u64,
    base_timeout: Duration,
    /// Timeouts since the last progress.
    attempts: u32,
    retries: u32,
    /// Whether the client has acknowledged anything yet (its address is then real).
    heard: bool,
    done: bool,
}

impl Transfer {
    /// A transfer of `size` bytes with the negotiated options.
    pub fn new(size: u64, negotiated: &Negotiated, retries: u32) -> Transfer {
        let blksize = u64::from(negotiated.blksize.max(MIN_BLKSIZE));
        Transfer {
            size,
            blksize,
            window: u64::from(negotiated.windowsize.max(1)),
            blocks: size / blksize + 1,
            oack_pending: !negotiated.oack.is_empty(),
            base: 1,
            next: 1,
            base_timeout: negotiated.timeout,
            attempts: 0,
            retries,
            heard: false,
            done: false,
        }
    }

    /// The first action: the OACK if options were granted, else the first window.
    pub fn start(&mut self) -> Action {
        if self.oack_pending {
            Action::SendOack
        } else {
            self.window_from_base()
        }
    }

    /// The client acknowledged wire block `n`.
    pub fn on_ack(&mut self, n: u16) -> Action {
        if self.done {
            return Action::Wait;
        }
        if self.oack_pending {
            if n != 0 {
                return Action::Wait;
            }
            self.oack_pending = false;
            self.attempts = 0;
            self.heard = true;
            return self.window_from_base();
        }
        // The absolute index in [base - 1, base - 1 + 65535] whose low 16 bits are `n`.
        let last_acked = self.base - 1;
        let k = last_acked + u64::from(n.wrapping_sub(wire_block(last_acked)));
        if k == last_acked || k >= self.next {
            // A duplicate of the ACK that already moved the window, or an ACK for a
            // block never sent: answering either would double the traffic.
            return Action::Wait;
        }
        self.base = k + 1;
        self.attempts = 0;
        self.heard = true;
        if self.base > self.blocks {
            self.done = true;
            return Action::Finished;
        }
        self.window_from_base()
    }

    /// The client sent an ERROR: stop without a reply (RFC 1350 sends none to an ERROR).
    pub fn on_error(&mut self, code: ErrorCode, message: &str) -> Action {
        self.done = true;
        Action::Abort(AbortReason::ClientError {
            code: code.as_u16(),
            message: message.to_string(),
        })
    }

    /// The deadline passed with no useful ACK: retransmit, or give up.
    pub fn on_timeout(&mut self) -> Action {
        if self.done {
            return Action::Wait;
        }
        let retries = if self.heard {
            self.retries
        } else {
            self.retries.min(UNACKED_RETRIES)
        };
        if self.attempts >= retries {
            self.done = true;
            return Action::Abort(AbortReason::Timeout);
        }
        self.attempts += 1;
        if self.oack_pending {
            Action::SendOack
        } else {
            self.window_from_base()
        }
    }

    /// How long to wait after the last send: the base timeout doubled per timeout in a
    /// row, capped.
    pub fn timeout(&self) -> Duration {
        let factor = 1u32 << self.attempts.min(MAX_BACKOFF_FACTOR.trailing_zeros());
        self.base_timeout.saturating_mul(factor)
    }

    /// Byte range of block `index` (1-based) in the file.
    pub fn block_range(&self, index: u64) -> Range<u64> {
        let start = index
            .saturating_sub(1)
            .saturating_mul(self.blksize)
            .min(self.size);
        start..start.saturating_add(self.blksize).min(self.size)
    }

    /// Bytes the client has acknowledged so far.
    pub fn bytes_acked(&self) -> u64 {
        self.block_range(self.base).start
    }

    /// Total DATA blocks of this transfer.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    fn window_from_base(&mut self) -> Action {
        let first = self.base;
        let last = (first + self.window - 1).min(self.blocks);
        self.next = self.next.max(last + 1);
        Action::SendBlocks { first, last }
    }
}

/// The block number on the wire for absolute index `index`: wraps 65535 → 0, as
/// tftp-hpa, curl and atftp expect.
pub fn wire_block(index: u64) -> u16 {
    let [.., hi, lo] = index.to_be_bytes();
    u16::from_be_bytes([hi, lo])
}

#[cfg(test)]
mod tests;
