//! `tabula server list [--json]`: the servers sharing this store, from their heartbeat
//! rows: alive or not, what each serves, its version, and the roles it holds (`dhcp`:
//! the allocation authority for dynamic addresses; `jobs`: the fleet's singleton jobs).

use std::time::Duration;

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::ha::heartbeat;

#[derive(Debug, Subcommand)]
pub(super) enum ServerCmd {
    /// List the servers that share this store
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(ctx: &Ctx, every: Duration, cmd: &ServerCmd) -> anyhow::Result<()> {
    let ServerCmd::List { json } = cmd;
    let members = heartbeat::list(ctx.store(), every).await?;
    if *json {
        for m in &members {
            println!("{}", serde_json::to_string(m)?);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.row.id.clone(),
                if m.alive { "alive" } else { "gone" }.to_string(),
                format!("{:.1}s", m.age_ms as f64 / 1000.0),
                m.row.serves.clone(),
                if m.roles.is_empty() {
                    "-".to_string()
                } else {
                    m.roles.join(",")
                },
                m.row.version.clone(),
                time(m.row.started_ms),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "LAST BEAT",
            "SERVES",
            "ROLES",
            "VERSION",
            "STARTED",
        ],
        &rows,
    );
    Ok(())
}
