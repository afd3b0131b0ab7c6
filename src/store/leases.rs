//! DHCP lease records: one row per address. Queries only: the allocator (in `dhcp`)
//! decides; this module writes batches in one transaction and reads them back.
//!
//! [`Store::write_leases`] is the durable half of the DHCP group commit: every change of
//! a batch (typically the ACKs of a few milliseconds) goes into ONE transaction, so one
//! fsync covers many leases. Within a batch the last write to an address wins, which is
//! what applying them one by one would leave.

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
         expires_ms = excluded.expires_ms, updated_ms = excluded.updated_ms",
        values.join(", ")
    )
}

impl Store {
    /// Applies a batch of lease writes in one transaction (one fsync).
    pub async fn write_leases(&self, writes: &[LeaseWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
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
            q.execute(&mut *tx).await?;
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
        Ok(())
    }

    /// Every stored lease, by address.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query("SELECT address, mac, state, expires_ms FROM leases")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let address: String = r.try_get("address")?;
            let mac: String = r.try_get("mac")?;
            let state: String = r.try_get("state")?;
            out.push(LeaseRow {
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
            });
        }
        out.sort_by_key(|r| u32::from(r.address));
        Ok(out)
    }
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

    crate::store::tests::on_both_backends!(batch_last_write_wins_and_survives_reopen);

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
