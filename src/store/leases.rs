//! DHCP lease records: one row per address. Queries only: the allocator (in `dhcp`)
//! decides; this module writes batches in one transaction and reads them back.
//!
//! [`Store::write_leases`] is the durable half of the DHCP group commit: every change of
//! a batch (typically the ACKs of a few milliseconds) goes into ONE transaction, so one
//! fsync covers many leases. Within a batch the last write to an address wins, which is
//! what applying them one by one would leave.
//!
//! Several servers may write one store, so an upsert is conditional: it replaces a row
//! only if the row is for the same MAC, is not bound, or its lease has ended (as of the
//! writer's `updated_ms`). A write refused by that rule is not an error: the rest of the
//! batch commits, and [`Written::refused`] returns the rows that won, so the caller drops
//! only the replies that depended on the refused writes. The address is the primary key,
//! so no interleaving of two servers' batches can leave an address bound to two MACs.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use sqlx::{AssertSqlSafe, Row};

use super::{Dialect, Store, StoreError, Writer};
use crate::boot::{LeaseState, Mac};

/// One stored lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub address: Ipv4Addr,
    pub mac: Mac,
    pub state: LeaseState,
    /// Unix milliseconds: lease end, release time or end of quarantine.
    pub expires_ms: i64,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Insert or replace the row of `row.address`.
    Upsert(LeaseRow),
    /// Delete the row of this address.
    Remove(Ipv4Addr),
}

impl LeaseWrite {
    fn address(&self) -> Ipv4Addr {
        match self {
            LeaseWrite::Upsert(r) => r.address,
            LeaseWrite::Remove(a) => *a,
        }
    }
}

/// What a batch did besides committing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// For each refused upsert, the stored row that kept its address (bound to another
    /// MAC, not yet expired), as read in the batch's transaction.
    pub refused: Vec<LeaseRow>,
}

/// Rows per multi-row statement (5 binds each, well under SQLite's variable limit and
/// PostgreSQL's 65535 parameters).
const CHUNK: usize = 500;

/// The upsert of `rows` leases, 5 parameters a row. Written by hand rather than with
/// sqlx's `QueryBuilder`, which spells every placeholder `?` under the `Any` driver.
fn upsert_sql(dialect: Dialect, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", dialect.placeholders(1 + 5 * r, 5)))
        .collect();
    format!(
        "INSERT INTO leases (address, mac, state, expires_ms, updated_ms) VALUES {} \
         ON CONFLICT (address) DO UPDATE SET mac = excluded.mac, state = excluded.state, \
         expires_ms = excluded.expires_ms, updated_ms = excluded.updated_ms \
         WHERE leases.mac = excluded.mac OR leases.state <> '{bound}' \
            OR leases.expires_ms <= excluded.updated_ms \
         RETURNING address",
        values.join(", "),
        bound = LeaseState::Bound.as_str(),
    )
}

impl Store {
    /// Applies a batch of lease writes in one transaction (one fsync); upserts that would
    /// rebind another MAC's live lease are refused (see the module doc), the rest commit.
    pub async fn write_leases(&self, writes: &[LeaseWrite]) -> Result<Written, StoreError> {
        if writes.is_empty() {
            return Ok(Written::default());
        }
        let mut last: HashMap<Ipv4Addr, &LeaseWrite> = HashMap::with_capacity(writes.len());
        for w in writes {
            last.insert(w.address(), w);
        }
        let mut upserts: Vec<&LeaseRow> = Vec::new();
        let mut removes: Vec<Ipv4Addr> = Vec::new();
        for w in last.into_values() {
            match w {
                LeaseWrite::Upsert(r) => upserts.push(r),
                LeaseWrite::Remove(a) => removes.push(*a),
            }
        }
        let now = super::now_ms();
        let mut tx = self.begin_for(Writer::Leases).await?;
        let mut refused: Vec<String> = Vec::new();
        for chunk in upserts.chunks(CHUNK) {
            let mut q = sqlx::query(AssertSqlSafe(upsert_sql(self.dialect, chunk.len())));
            for r in chunk {
                q = q
                    .bind(r.address.to_string())
                    .bind(r.mac.to_string())
                    .bind(r.state.as_str())
                    .bind(r.expires_ms)
                    .bind(now);
            }
            let written: std::collections::HashSet<String> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("address"))
                .collect::<Result<_, _>>()?;
            refused.extend(
                chunk
                    .iter()
                    .map(|r| r.address.to_string())
                    .filter(|a| !written.contains(a)),
            );
        }
        let mut winners = Vec::with_capacity(refused.len());
        for chunk in refused.chunks(CHUNK) {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT address, mac, state, expires_ms FROM leases WHERE address IN ({})",
                self.dialect.placeholders(1, chunk.len())
            )));
            let rows = chunk
                .iter()
                .fold(rows, |q, a| q.bind(a.as_str()))
                .fetch_all(&mut *tx)
                .await?;
            for r in &rows {
                winners.push(lease_row(r)?);
            }
        }
        for chunk in removes.chunks(CHUNK) {
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM leases WHERE address IN ({})",
                self.dialect.placeholders(1, chunk.len())
            )));
            for a in chunk {
                q = q.bind(a.to_string());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if !winners.is_empty() {
            winners.sort_by_key(|r| u32::from(r.address));
            tracing::warn!(
                refused = winners.len(),
                "lease writes refused: the address is bound to another MAC in the store"
            );
        }
        Ok(Written { refused: winners })
    }

    /// Every stored lease, by address.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query("SELECT address, mac, state, expires_ms FROM leases")
            .fetch_all(&self.pool)
            .await?;
        let mut out = rows.iter().map(lease_row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| u32::from(r.address));
        Ok(out)
    }
}

/// A `leases` row (address, mac, state, expires_ms) as a [`LeaseRow`].
fn lease_row(r: &sqlx::any::AnyRow) -> Result<LeaseRow, StoreError> {
    let address: String = r.try_get("address")?;
    let mac: String = r.try_get("mac")?;
    let state: String = r.try_get("state")?;
    Ok(LeaseRow {
        address: address.parse().map_err(|_| StoreError::Corrupt {
            what: "lease address",
            value: address.clone(),
        })?,
        mac: mac.parse().map_err(|_| StoreError::Corrupt {
            what: "lease MAC",
            value: mac.clone(),
        })?,
        state: state.parse().map_err(|_| StoreError::Corrupt {
            what: "lease state",
            value: state.clone(),
        })?,
        expires_ms: r.try_get("expires_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: [u8; 4], mac: u8, state: LeaseState) -> LeaseRow {
        LeaseRow {
            address: Ipv4Addr::from(ip),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            state,
            expires_ms: 1000,
        }
    }

    crate::store::tests::on_both_backends!(
        batch_last_write_wins_and_survives_reopen,
        a_live_binding_is_never_taken_by_another_mac
    );

    async fn a_live_binding_is_never_taken_by_another_mac(f: crate::store::tests::Fixture) {
        let s = f.store;
        let live = |ip: [u8; 4], mac: u8, state| LeaseRow {
            expires_ms: super::super::now_ms() + 3_600_000,
            ..row(ip, mac, state)
        };
        let first = vec![
            LeaseWrite::Upsert(live([10, 0, 0, 1], 1, LeaseState::Bound)),
            LeaseWrite::Upsert(row([10, 0, 0, 2], 1, LeaseState::Bound)), // expired
            LeaseWrite::Upsert(live([10, 0, 0, 3], 1, LeaseState::Released)),
        ];
        assert_eq!(s.write_leases(&first).await.unwrap(), Written::default());
        // Another server, another MAC: .1 is live and bound to MAC 1 (refused), .2 has
        // expired and .3 was released (both taken), .4 is new.
        let second = vec![
            LeaseWrite::Upsert(live([10, 0, 0, 1], 2, LeaseState::Bound)),
            LeaseWrite::Upsert(live([10, 0, 0, 2], 2, LeaseState::Bound)),
            LeaseWrite::Upsert(live([10, 0, 0, 3], 2, LeaseState::Bound)),
            LeaseWrite::Upsert(live([10, 0, 0, 4], 2, LeaseState::Bound)),
        ];
        let w = s.write_leases(&second).await.unwrap();
        assert_eq!(w.refused.len(), 1, "{w:?}");
        assert_eq!(w.refused[0].address, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            w.refused[0].mac,
            Mac([2, 0, 0, 0, 0, 1]),
            "the winner's row"
        );
        // Even a release by another MAC cannot end MAC 1's lease; MAC 1 renews it.
        let w = s
            .write_leases(&[LeaseWrite::Upsert(row(
                [10, 0, 0, 1],
                2,
                LeaseState::Released,
            ))])
            .await
            .unwrap();
        assert_eq!(w.refused.len(), 1);
        let renew = live([10, 0, 0, 1], 1, LeaseState::Bound);
        assert!(
            s.write_leases(&[LeaseWrite::Upsert(renew.clone())])
                .await
                .unwrap()
                .refused
                .is_empty()
        );
        let all = s.leases().await.unwrap();
        let macs: Vec<u8> = all.iter().map(|r| r.mac.0[5]).collect();
        assert_eq!(macs, [1, 2, 2, 2]);
        assert_eq!(all[0], renew);
    }

    async fn batch_last_write_wins_and_survives_reopen(f: crate::store::tests::Fixture) {
        let s = f.store;
        let mut batch: Vec<LeaseWrite> = (0..1200u32)
            .map(|i| {
                let b = i.to_be_bytes();
                LeaseWrite::Upsert(row([10, 1, b[2], b[3]], 1, LeaseState::Bound))
            })
            .collect();
        batch.push(LeaseWrite::Upsert(row(
            [10, 1, 0, 0],
            2,
            LeaseState::Released,
        )));
        batch.push(LeaseWrite::Remove(Ipv4Addr::new(10, 1, 0, 1)));
        s.write_leases(&batch).await.expect("write");
        s.close().await;
        let s = Store::open(&f.url).await.expect("reopen");
        let all = s.leases().await.expect("list");
        assert_eq!(all.len(), 1199);
        assert_eq!(all[0], row([10, 1, 0, 0], 2, LeaseState::Released));
        assert_eq!(all[1].address, Ipv4Addr::new(10, 1, 0, 2));
    }
}
