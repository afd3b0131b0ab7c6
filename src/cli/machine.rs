//! `tabula machine …`: add, rm, list, show, label.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::boot::Mac;
use crate::boot::Machine;

#[derive(Debug, Subcommand)]
pub(super) enum MachineCmd {
    /// Add a machine to the inventory
    Add {
        name: String,
        /// MAC address (repeatable: every NIC that may PXE boot)
        #[arg(long = "mac")]
        macs: Vec<String>,
        /// SMBIOS UUID (DHCP option 97)
        #[arg(long)]
        uuid: Option<String>,
        /// Hostname given to the machine (defaults to the name)
        #[arg(long)]
        hostname: Option<String>,
        /// Fixed IPv4 address
        #[arg(long)]
        address: Option<Ipv4Addr>,
        /// Label KEY=VALUE (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Remove a machine
    Rm { name: String },
    /// List machines
    List,
    /// Show a machine, its pin decision and its recent boot events
    Show { name: String },
    /// Set labels (KEY=VALUE) or remove them (KEY-)
    Label {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
        changes: Vec<String>,
    },
}

fn parse_uuid(s: &str) -> anyhow::Result<String> {
    let l = s.trim().to_ascii_lowercase();
    let groups: Vec<&str> = l.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        anyhow::bail!("malformed UUID {s:?}: expected 8-4-4-4-12 hex digits");
    }
    Ok(l)
}

pub(super) async fn run(ctx: &Ctx, cmd: &MachineCmd) -> anyhow::Result<()> {
    match cmd {
        MachineCmd::Add {
            name,
            macs,
            uuid,
            hostname,
            address,
            labels,
        } => {
            let mut parsed: Vec<Mac> = Vec::new();
            for m in macs {
                let mac: Mac = m.parse()?;
                if !parsed.contains(&mac) {
                    parsed.push(mac);
                }
            }
            let mut lab = BTreeMap::new();
            for kv in labels {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("label {kv:?} is not KEY=VALUE"))?;
                lab.insert(k.to_string(), v.to_string());
            }
            let m = Machine {
                name: name.clone(),
                macs: parsed,
                uuid: uuid.as_deref().map(parse_uuid).transpose()?,
                hostname: hostname.clone(),
                address: *address,
                labels: lab,
            };
            ctx.inventory.add_machine(&m).await?;
            println!("added machine {name}");
        }
        MachineCmd::Rm { name } => {
            if !ctx.store().remove_machine(name).await? {
                anyhow::bail!("no machine named {name:?}");
            }
            println!("removed machine {name}");
        }
        MachineCmd::List => {
            let rows: Vec<Vec<String>> = ctx
                .store()
                .machines()
                .await?
                .into_iter()
                .map(|m| {
                    vec![
                        m.name,
                        m.macs
                            .iter()
                            .map(Mac::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        m.address.map(|a| a.to_string()).unwrap_or_default(),
                        m.labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            table(&["NAME", "MACS", "ADDRESS", "LABELS"], &rows);
        }
        MachineCmd::Show { name } => {
            let m = ctx
                .store()
                .machine(name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no machine named {name:?}"))?;
            println!("machine {}", m.name);
            for mac in &m.macs {
                println!("  mac       {mac}");
            }
            if let Some(u) = &m.uuid {
                println!("  uuid      {u}");
            }
            if let Some(h) = &m.hostname {
                println!("  hostname  {h}");
            }
            if let Some(a) = m.address {
                println!("  address   {a}");
            }
            for (k, v) in &m.labels {
                println!("  label     {k}={v}");
            }
            if let Some(mac) = m.macs.first() {
                let snap = ctx.inventory.snapshot().await?;
                for fw in [crate::boot::Firmware::Bios, crate::boot::Firmware::EfiX64] {
                    let sel = crate::inventory::select(
                        &snap,
                        &crate::inventory::Facts {
                            mac: *mac,
                            uuid: m.uuid.clone(),
                            firmware: fw,
                        },
                    );
                    println!("  boots     ({fw}) {}", super::explain::summary(&sel));
                }
                let events = ctx.store().events(Some(*mac), 0, i64::MAX).await?;
                println!("timeline ({} event(s), last 20):", events.len());
                for e in events.iter().rev().take(20).rev() {
                    println!(
                        "  {}  {:<12} {}",
                        time(e.event.at_ms),
                        e.event.stage,
                        e.event.detail
                    );
                }
            }
        }
        MachineCmd::Label { name, changes } => {
            let mut parsed = Vec::new();
            for c in changes {
                if let Some((k, v)) = c.split_once('=') {
                    crate::inventory::pin::check_label("key", k)?;
                    crate::inventory::pin::check_label("value", v)?;
                    parsed.push((k.to_string(), Some(v.to_string())));
                } else if let Some(k) = c.strip_suffix('-') {
                    parsed.push((k.to_string(), None));
                } else {
                    anyhow::bail!("label change {c:?} is neither KEY=VALUE nor KEY-");
                }
            }
            if !ctx.store().label_machine(name, &parsed).await? {
                anyhow::bail!("no machine named {name:?}");
            }
            println!("labels of {name} updated");
        }
    }
    Ok(())
}
