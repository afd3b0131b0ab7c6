//! `tabula lease list [--json]`: the DHCP leases as stored (what survives a restart).
//! Reads the store only; the running daemon's in-memory table is the writer.

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::boot::LeaseState;
use crate::store::LeaseRow;

#[derive(Debug, Subcommand)]
pub(super) enum LeaseCmd {
    /// List stored leases (bound, released and declined addresses)
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(ctx: &Ctx, cmd: &LeaseCmd) -> anyhow::Result<()> {
    let LeaseCmd::List { json } = cmd;
    print(&ctx.store().leases().await?, *json);
    Ok(())
}

/// Prints `lease list` (also remotely), by address: expired or active by this host's
/// clock.
pub(super) fn print(rows: &[LeaseRow], json: bool) {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.address);
    let now = crate::store::now_ms();
    if json {
        for r in &rows {
            let line = serde_json::json!({
                "address": r.address.to_string(), "mac": r.mac.to_string(), "state": r.state,
                "expires_ms": r.expires_ms, "active": r.state == LeaseState::Bound && r.expires_ms > now,
            });
            println!("{line}");
        }
        return;
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let state = if r.state == LeaseState::Bound && r.expires_ms <= now {
                "expired".to_string()
            } else {
                r.state.to_string()
            };
            vec![
                r.address.to_string(),
                r.mac.to_string(),
                state,
                time(r.expires_ms),
            ]
        })
        .collect();
    table(&["ADDRESS", "MAC", "STATE", "UNTIL"], &rows);
}
