//! The HTTP front end's view of each MAC's current attempt: which boot id it was last
//! served and how far that attempt got, in memory, so an iPXE retry costs a lookup and a
//! reboot is told from a retry without a query ([`super::on_script`]). Every change is
//! also sent, in order, to the recorder ([`super::record`]), which keeps the store's rows.
//!
//! In memory only: after a restart the map is empty and the next script a MAC asks for
//! opens a new attempt (the store's open one is superseded by the recorder). Bounded:
//! past [`MAX_MACS`] entries the map starts over. Sending never blocks a script; a full
//! queue drops the note, counted ([`Tracker::dropped`]). A report waits for its
//! transaction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::record::Note;
use super::{AttemptState, Input, Served, Step, on_script, step};
use crate::boot::{BootId, Mac};
use crate::store::NewBoot;
use crate::throttle::Throttle;

/// Most MACs remembered.
const MAX_MACS: usize = 100_000;
/// Notes queued for the recorder at most.
pub const QUEUE: usize = 16 * 1024;
/// How long a report waits for its transaction before it is answered anyway.
const REPORT_WAIT: Duration = Duration::from_secs(10);

/// See the module documentation.
#[derive(Debug)]
pub struct Tracker {
    current: Mutex<HashMap<Mac, (BootId, AttemptState)>>,
    tx: mpsc::Sender<Note>,
    dropped: Throttle,
    /// `health.boot_deadline`, in ms.
    deadline_ms: i64,
}

impl Tracker {
    /// A tracker whose attempts end `deadline` after their script, and the queue its
    /// recorder reads.
    pub fn new(deadline: Duration) -> (Tracker, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Tracker {
                current: Mutex::new(HashMap::new()),
                tx,
                dropped: Throttle::new(
                    "boot attempt queue full: attempt changes dropped",
                    Duration::from_secs(10),
                ),
                deadline_ms: i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX / 2),
            },
            rx,
        )
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Mac, (BootId, AttemptState)>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What serving a script of boot `boot` to `mac` means (see [`on_script`]); on
    /// [`Served::Open`] the MAC's current attempt becomes `boot`, pending.
    pub fn script(&self, mac: Mac, boot: BootId) -> Served {
        let mut m = self.map();
        let served = on_script(m.get(&mac).copied(), boot);
        if served == Served::Open {
            if m.len() >= MAX_MACS {
                m.clear();
            }
            m.insert(mac, (boot, AttemptState::Pending));
        }
        served
    }

    /// Sends the opening of a new attempt to the recorder (its deadline set here).
    pub fn open(&self, mut boot: NewBoot) {
        boot.deadline_after_ms = self.deadline_ms;
        self.send(Note::Open(boot));
    }

    /// A blob of `mac`'s current plan was fetched (a verified attribution); returns
    /// that attempt's boot id (the download's event carries it), `None` when this
    /// process served the MAC no script.
    pub fn fetched(&self, mac: Mac) -> Option<BootId> {
        let id = {
            let mut m = self.map();
            let (boot, state) = m.get_mut(&mac)?;
            match step(*state, Input::Fetched) {
                Step::Move(to) => *state = to,
                Step::Stay | Step::Ignore => return Some(*boot),
            }
            *boot
        };
        self.send(Note::Input {
            id: super::id_text(id),
            input: Input::Fetched,
            reason: None,
            ack: None,
        });
        Some(id)
    }

    /// A report with a verified token of boot `boot`: moves the MAC's attempt in memory
    /// (if it is the current one) and waits until the recorder stored it.
    pub async fn report(&self, mac: Mac, boot: BootId, input: Input, reason: Option<String>) {
        {
            let mut m = self.map();
            if let Some((b, state)) = m.get_mut(&mac)
                && *b == boot
                && let Step::Move(to) = step(*state, input)
            {
                *state = to;
            }
        }
        let (ack, done) = oneshot::channel();
        if self.send(Note::Input {
            id: super::id_text(boot),
            input,
            reason,
            ack: Some(ack),
        }) {
            let _ = tokio::time::timeout(REPORT_WAIT, done).await;
        }
    }

    fn send(&self, note: Note) -> bool {
        match self.tx.try_send(note) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.warn(&"recorder behind or gone");
                false
            }
        }
    }

    /// Notes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.total()
    }
}
