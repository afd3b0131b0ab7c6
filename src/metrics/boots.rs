//! Boots as metrics, folded from the committed boot events (the [`Hub`]), never from a
//! front end's path: [`Boots`] is a pure fold (events in, counts and phase durations
//! out), [`run`] feeds it from the hub until shutdown.
//!
//! A boot starts at a machine's first event that begins one (a DHCP offer or ack, a
//! loader, a script) when none is open for it; it ends `booted` at a `booted` report,
//! `failed` at a final `failed` report, and `abandoned` when the machine starts over
//! (a DHCP offer after its root image was sent) or goes quiet for [`STALE_MS`]. Phases
//! are those of `tabula lab`'s summary (`dhcp`, `loader`, `script`, `kernel+initrd`,
//! `root`, `booted`); each lasts from the end of the previous phase seen (the boot's
//! start for the first) to its own event. At most [`MAX_OPEN`] boots are followed at
//! once; past that a new boot is counted but its phases are not timed.

use std::collections::HashMap;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::boot::{BootStage, EventText, Mac};
use crate::events::Hub;

/// An open boot with no event for this long is over (`abandoned`).
pub const STALE_MS: i64 = 60 * 60 * 1000;
/// Most boots followed at once.
pub const MAX_OPEN: usize = 65_536;

/// What one event meant, for the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fold {
    /// A boot started.
    pub started: bool,
    /// Boots that ended, with their result (one of `BOOT_RESULTS`).
    pub finished: Vec<&'static str>,
    /// Phases that ended: (index in `BOOT_PHASES`, seconds).
    pub phases: Vec<(usize, f64)>,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    /// When the last phase seen ended (the start at first), Unix ms.
    last_end: i64,
    /// The latest event, Unix ms.
    last_seen: i64,
    /// Phases already timed (bit per `BOOT_PHASES` index).
    done: u8,
    /// One of kernel and initrd sent (the phase ends with the later).
    kernel_or_initrd: bool,
}

/// The fold: open boots by MAC.
#[derive(Debug, Default)]
pub struct Boots {
    open: HashMap<Mac, Open>,
}

const DHCP: usize = 0;
const LOADER: usize = 1;
const SCRIPT: usize = 2;
const KERNEL_INITRD: usize = 3;
const ROOT: usize = 4;
const BOOTED: usize = 5;

impl Boots {
    /// Folds one committed event; `final_failure` says whether a `failed` event is final.
    pub fn fold(&mut self, mac: Mac, stage: BootStage, at_ms: i64, final_failure: bool) -> Fold {
        let mut out = Fold::default();
        if stage == BootStage::Ignored {
            return out;
        }
        if let Some(o) = self.open.get(&mac).copied() {
            let restarted = matches!(stage, BootStage::DhcpOffer) && o.done & (1 << ROOT) != 0;
            if restarted || at_ms - o.last_seen > STALE_MS {
                self.open.remove(&mac);
                out.finished.push("abandoned");
            }
        }
        let begins = matches!(
            stage,
            BootStage::DhcpOffer
                | BootStage::DhcpAck
                | BootStage::LoaderSent
                | BootStage::ScriptSent
        );
        if !self.open.contains_key(&mac) && begins {
            out.started = true;
            if self.open.len() < MAX_OPEN {
                self.open.insert(
                    mac,
                    Open {
                        last_end: at_ms,
                        last_seen: at_ms,
                        done: 0,
                        kernel_or_initrd: false,
                    },
                );
            }
        }
        let Some(o) = self.open.get_mut(&mac) else {
            // A report for a boot not followed (started before a restart, or past
            // MAX_OPEN): still counted as ended.
            match stage {
                BootStage::Booted => out.finished.push("booted"),
                BootStage::Failed if final_failure => out.finished.push("failed"),
                _ => {}
            }
            return out;
        };
        o.last_seen = at_ms;
        let phase = match stage {
            BootStage::DhcpAck => Some(DHCP),
            BootStage::LoaderSent => Some(LOADER),
            BootStage::ScriptSent => Some(SCRIPT),
            BootStage::KernelSent | BootStage::InitrdSent => {
                if o.kernel_or_initrd {
                    Some(KERNEL_INITRD)
                } else {
                    o.kernel_or_initrd = true;
                    None
                }
            }
            BootStage::RootfsSent => Some(ROOT),
            BootStage::Booted => Some(BOOTED),
            _ => None,
        };
        if let Some(p) = phase
            && o.done & (1 << p) == 0
        {
            o.done |= 1 << p;
            let ms = (at_ms - o.last_end).max(0);
            o.last_end = at_ms;
            #[allow(clippy::cast_precision_loss)] // ms of a boot: far below 2^52
            out.phases.push((p, ms as f64 / 1000.0));
        }
        let result = match stage {
            BootStage::Booted => Some("booted"),
            BootStage::Failed if final_failure => Some("failed"),
            _ => None,
        };
        if let Some(r) = result {
            self.open.remove(&mac);
            out.finished.push(r);
        }
        out
    }

    /// Boots open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

/// Whether a stored `failed` event is final (its detail says `"final": true`).
fn is_final(e: &EventText) -> bool {
    e.stage == BootStage::Failed
        && serde_json::from_str::<serde_json::Value>(&e.detail)
            .ok()
            .and_then(|v| v.get("final").and_then(serde_json::Value::as_bool))
            .unwrap_or(false)
}

impl Metrics {
    /// Counts what `fold` says.
    fn count_boot(&self, f: &Fold) {
        let b = self.boots();
        if f.started {
            b.started.inc();
        }
        for r in &f.finished {
            b.finished.inc(r);
        }
        for (p, secs) in &f.phases {
            if let Some(h) = b.phases.get(*p) {
                h.observe(*secs);
            }
        }
    }
}

#[cfg(test)]
impl Metrics {
    pub(super) fn count_boot_for_test(&self, f: &Fold) {
        self.count_boot(f);
    }
}

/// Folds every event the hub publishes into `metrics` until `shutdown`. A subscriber
/// that lags loses those commits' boots (logged), never blocks the writer.
pub(crate) async fn run(hub: Hub, metrics: Metrics, shutdown: CancellationToken) {
    let mut rx = hub.subscribe();
    let mut boots = Boots::default();
    loop {
        let commit = tokio::select! {
            () = shutdown.cancelled() => return,
            c = rx.recv() => c,
        };
        match commit {
            Ok(stored) => {
                for s in stored.iter() {
                    let e = &s.event;
                    let f = boots.fold(e.mac, e.stage, e.at_ms, is_final(e));
                    metrics.count_boot(&f);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(commits = n, "boot metrics lagged behind the event stream");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
