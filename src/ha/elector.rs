//! The elector of one role: takes and renews the role's leader row every third of
//! `ha.leader_ttl`, and publishes whether this server holds it.
//!
//! Safety rule: this server believes it holds the role only until `attempt + 2/3 ttl`
//! after its last successful renewal started, while the row lasts until the database's
//! `now + ttl` as of that renewal (which is after the attempt started). So a holder cut
//! off from the store steps down a third of the TTL before a standby can take the row,
//! and two servers never both believe they hold it unless a clock jumps; for that case
//! the store's conditional lease writes still refuse any double binding. On shutdown the
//! row is deleted so the standby need not wait.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Role;
use crate::store::Store;

/// Whether this server holds a role; changes are seen with `changed()`.
pub type Leadership = watch::Receiver<bool>;

/// Starts electing `role` for `holder`; the receiver says whether it is held now. The
/// first attempt is made before this returns, so a sole server holds its roles at once.
pub async fn elect(
    store: Store,
    role: Role,
    holder: String,
    ttl: Duration,
    stop: CancellationToken,
) -> Leadership {
    let (tx, rx) = watch::channel(false);
    let mut e = Elector {
        store,
        role,
        holder,
        ttl,
        valid_until: None,
        tx,
    };
    e.attempt().await;
    tokio::spawn(async move { e.run(stop).await });
    rx
}

struct Elector {
    store: Store,
    role: Role,
    holder: String,
    ttl: Duration,
    /// Until when this server may act as the holder (`None`: it does not hold the role).
    valid_until: Option<Instant>,
    tx: watch::Sender<bool>,
}

impl Elector {
    async fn run(mut self, stop: CancellationToken) {
        let every = self.ttl / 3;
        loop {
            let next = Instant::now() + every;
            let wake = self.valid_until.map_or(next, |v| v.min(next));
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() < next {
                // Woken by the deadline: the renewals failed for too long.
                self.step_down("cannot renew in time");
                continue;
            }
            self.attempt().await;
        }
        if self.valid_until.take().is_some() {
            let _ = self.tx.send(false);
            match self.store.resign(self.role.as_str(), &self.holder).await {
                Ok(_) => tracing::info!(role = self.role.as_str(), "leadership handed back"),
                Err(e) => {
                    tracing::warn!(role = self.role.as_str(), error = %e, "leadership not handed back: it expires by itself")
                }
            }
        }
    }

    async fn attempt(&mut self) {
        let started = Instant::now();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .try_lead(self.role.as_str(), &self.holder, ttl_ms)
            .await
        {
            Ok(Some(row)) => {
                let was = self.valid_until.is_some();
                self.valid_until = Some(started + self.ttl * 2 / 3);
                if !was {
                    tracing::info!(
                        role = self.role.as_str(),
                        epoch = row.epoch,
                        "this server now holds the role"
                    );
                    let _ = self.tx.send(true);
                }
            }
            Ok(None) => self.step_down("held by another server"),
            Err(e) => {
                tracing::warn!(role = self.role.as_str(), error = %e, "leader row not renewed");
                if self.valid_until.is_some_and(|v| Instant::now() >= v) {
                    self.step_down("cannot renew in time");
                }
            }
        }
    }

    fn step_down(&mut self, why: &str) {
        if self.valid_until.take().is_some() {
            tracing::warn!(
                role = self.role.as_str(),
                why,
                "this server no longer holds the role"
            );
            let _ = self.tx.send(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_standby_takes_over_when_the_holder_stops() {
        let f = crate::store::tests::sqlite().await;
        let ttl = Duration::from_millis(600);
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let a = elect(f.store.clone(), Role::Dhcp, "a".into(), ttl, stop_a.clone()).await;
        let mut b = elect(f.store.clone(), Role::Dhcp, "b".into(), ttl, stop_b.clone()).await;
        assert!(*a.borrow() && !*b.borrow());
        tokio::time::sleep(ttl * 2).await;
        assert!(*a.borrow() && !*b.borrow(), "renewed, not lost");
        let t = std::time::Instant::now();
        stop_a.cancel(); // a clean stop resigns: b takes over at its next attempt
        tokio::time::timeout(ttl, b.wait_for(|held| *held))
            .await
            .expect("b takes over within one renewal period")
            .unwrap();
        assert!(t.elapsed() < ttl);
        stop_b.cancel();
    }
}
