//! Staged rollouts, pure: the rollout's states and the operator's commands ([`command`]),
//! its plan (steps, cohorts by stable hash, the failure budget: [`plan`]) and the
//! controller's step ([`control::advance`]): the rollout as stored and its members'
//! outcomes in, actions out.
//!
//! ```text
//! draft ──start──▶ running(step k) ⇄ paused(reasons) ──▶ completed
//!                      │  └──────────────┴──abort──▶ rolling_back ──▶ aborted ──retry──▶ running
//! ```
//!
//! What this module guarantees: a command that does not apply to the state is refused
//! (never a silent state change: `abort` of a completed rollout is an error); the
//! controller's actions are idempotent (applying them twice is applying them once) and
//! reach a fixed point (a second step on the result has nothing left to do), so a
//! controller killed between its steps, or one that runs a step twice, neither loses nor
//! doubles anything. No store, no clock: [`crate::fleet`] runs every step in one store
//! transaction ([`crate::store`]'s rollout queries) with the store's time.

pub mod control;
pub mod plan;

use std::fmt;
use std::str::FromStr;

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Draft,
    Running,
    Paused,
    Completed,
    RollingBack,
    Aborted,
}

/// Where one member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Its step has not admitted it yet.
    Waiting,
    /// Boots the new image at its next boot; no result yet.
    Admitted,
    /// Booted the new image.
    Succeeded,
    /// Failed, timed out or rebooted before booting the new image (spends the budget).
    Failed,
    /// A pin on its MAC or its machine wins over the rollout: reported, never admitted.
    SkippedPinned,
}

/// An operator's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Pause,
    Resume,
    /// Skip the rest of the current step (its bake and waiting members) to the next.
    Promote,
    Abort,
    /// Give the failed members another chance at the same step and run on.
    Retry,
}

/// Why a command does not apply.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {command} a rollout that is {state}")]
pub struct Refused {
    pub command: &'static str,
    pub state: RolloutState,
}

macro_rules! names {
    ($t:ty, $err:literal, $($v:ident = $s:literal),* $(,)?) => {
        impl $t {
            /// The stored and JSON name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(Self::$v),)* _ => Err(format!($err, s)) }
            }
        }
    };
}

names!(
    RolloutState,
    "unknown rollout state {:?}",
    Draft = "draft",
    Running = "running",
    Paused = "paused",
    Completed = "completed",
    RollingBack = "rolling_back",
    Aborted = "aborted"
);
names!(
    MemberState,
    "unknown rollout member state {:?}",
    Waiting = "waiting",
    Admitted = "admitted",
    Succeeded = "succeeded",
    Failed = "failed",
    SkippedPinned = "skipped_pinned"
);
names!(
    Command,
    "unknown rollout command {:?}",
    Start = "start",
    Pause = "pause",
    Resume = "resume",
    Promote = "promote",
    Abort = "abort",
    Retry = "retry"
);

impl RolloutState {
    /// Whether its admitted members boot the new image (the decision reads it).
    pub fn admits(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

/// What a command does: the state it leads to, or why it is refused.
pub fn command(state: RolloutState, cmd: Command) -> Result<RolloutState, Refused> {
    use Command as C;
    use RolloutState as S;
    let to = match (state, cmd) {
        (S::Draft, C::Start) => S::Running,
        (S::Running, C::Pause) => S::Paused,
        (S::Paused, C::Resume) => S::Running,
        (S::Running | S::Paused, C::Promote) => state,
        (S::Draft | S::Running | S::Paused, C::Abort) => S::RollingBack,
        (S::Paused | S::Aborted, C::Retry) => S::Running,
        _ => {
            return Err(Refused {
                command: cmd.as_str(),
                state,
            });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests;
