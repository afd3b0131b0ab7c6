//! Boot attempts as a pure state machine: one attempt is one served boot script for one
//! manifest, and everything that happens to it afterwards (its kernel fetched, its
//! report, a reboot before it reported, its deadline) is an input here.
//!
//! ```text
//! pending ──kernel──▶ loading ──booted──▶ booted
//!    │                  │ └────failed──▶ failed
//!    ├──failed──────────┼──────────────▶ failed
//!    ├──replaced────────┴──replaced────▶ superseded
//!    └──deadline────────┴──deadline────▶ timed_out
//! ```
//!
//! What this module guarantees: a terminal attempt never moves again (a replayed or late
//! report of it is [`Step::Ignore`]d, not an error); an iPXE retry of the same script while
//! the attempt is `pending` is the same attempt ([`on_script`] says [`Served::Reuse`]); a
//! script asked again after the kernel was fetched, or after the attempt ended, is a new
//! attempt (the machine rebooted). A `superseded` attempt counts as a failed try only if it
//! had loaded ([`counts_as_try`]): a machine that reboots before reporting healthy spent a
//! try, one whose firmware merely asked twice did not.
//!
//! No store, no clock, no sockets: the caller (`record.rs`, `http::boot_script`) brings
//! the time and applies the transitions in its transactions.

pub mod record;
pub mod tracker;

use std::fmt;
use std::str::FromStr;

use crate::boot::BootId;

/// Where one attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// The script was served; nothing of the plan fetched yet.
    Pending,
    /// The kernel (then the rest) was fetched.
    Loading,
    /// Reported `booted` with the attempt's token.
    Booted,
    /// Reported `failed` (or tabula could not serve it).
    Failed,
    /// The machine started a new attempt before this one reported.
    Superseded,
    /// Its deadline passed (store clock) without a report.
    TimedOut,
}

/// Something that happened to an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A kernel or initrd of the plan was fetched (attributed and verified).
    Fetched,
    /// A `progress` report with the attempt's token.
    Progress,
    /// A `booted` report with the attempt's token.
    Booted,
    /// A `failed` report with the attempt's token.
    Failed,
    /// The same machine opened a new attempt.
    Replaced,
    /// The deadline passed.
    Deadline,
}

/// What an input does to an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes (an input that is normal in this state).
    Stay,
    /// The attempt moves to this state.
    Move(AttemptState),
    /// The attempt has ended: the input is dropped (a replayed or late report).
    Ignore,
}

impl AttemptState {
    pub const ALL: [AttemptState; 6] = [
        AttemptState::Pending,
        AttemptState::Loading,
        AttemptState::Booted,
        AttemptState::Failed,
        AttemptState::Superseded,
        AttemptState::TimedOut,
    ];

    /// Whether nothing can move it any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, AttemptState::Pending | AttemptState::Loading)
    }

    /// Its name in the store and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Pending => "pending",
            AttemptState::Loading => "loading",
            AttemptState::Booted => "booted",
            AttemptState::Failed => "failed",
            AttemptState::Superseded => "superseded",
            AttemptState::TimedOut => "timed_out",
        }
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attempt state name that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown boot attempt state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for AttemptState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        AttemptState::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The one transition function.
pub fn step(state: AttemptState, input: Input) -> Step {
    use AttemptState as S;
    use Input as I;
    match (state, input) {
        (S::Booted | S::Failed | S::Superseded | S::TimedOut, _) => Step::Ignore,
        (S::Pending, I::Fetched) => Step::Move(S::Loading),
        (S::Loading, I::Fetched) => Step::Stay,
        (_, I::Progress) => Step::Stay,
        (_, I::Booted) => Step::Move(S::Booted),
        (_, I::Failed) => Step::Move(S::Failed),
        (_, I::Replaced) => Step::Move(S::Superseded),
        (_, I::Deadline) => Step::Move(S::TimedOut),
    }
}

/// Whether an attempt that ended in `state` spent one of the machine's tries on its
/// manifest; `loaded`: its kernel had been fetched.
pub fn counts_as_try(state: AttemptState, loaded: bool) -> bool {
    match state {
        AttemptState::Failed | AttemptState::TimedOut => true,
        AttemptState::Superseded => loaded,
        AttemptState::Pending | AttemptState::Loading | AttemptState::Booted => false,
    }
}

/// What serving a script means for the machine's current attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// The same attempt, retried by the firmware: nothing to record.
    Reuse,
    /// A new attempt with the served boot id; the machine's previous one, if still open,
    /// is replaced.
    Open,
    /// The served script is the one of an attempt that loaded or ended: the machine
    /// rebooted, so render a fresh boot (a new boot id and token), then open it.
    Renew,
}

/// What the machine's current attempt (its boot id and state, if any is known) makes of
/// a script of boot `served`.
pub fn on_script(current: Option<(BootId, AttemptState)>, served: BootId) -> Served {
    match current {
        Some((b, AttemptState::Pending)) if b == served => Served::Reuse,
        Some((b, _)) if b == served => Served::Renew,
        _ => Served::Open,
    }
}

/// An attempt's id as text: its boot id's 16 hex digits (the first part of its token).
pub fn id_text(b: BootId) -> String {
    hex::encode(b.0)
}

#[cfg(test)]
mod tests;
