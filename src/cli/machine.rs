//! `tabula machine …`: add, rm, list, show, history, label. Parses and prints only: every
//! check and write is the fleet facade's ([`crate::fleet`]). The parsing ([`new_machine`])
//! and the printing ([`print_list`], [`print_show`]) are shared with the remote path
//! (`--server`, [`super::remote`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::boot::Machine;
use crate::boot::{Firmware, Mac};
use crate::events::timeline::{self, Timeline};
use crate::fleet::LabelChange;
use crate::inventory::Explanation;
use crate::store::{EventRow, MachineChange};

/// How many of a machine's latest events `machine show` prints.
pub(super) const SHOW_EVENTS: i64 = 20;

/// What `machine show` prints: the machine, what it boots on BIOS and x86-64 UEFI,
/// its latest events and its latest boot among them.
#[derive(Debug)]
pub(super) struct Shown {
    pub machine: Machine,
    pub boots: Vec<(Firmware, Explanation)>,
    pub recent: Vec<EventRow>,
    pub last_boot: Option<Timeline>,
}

impl Shown {
    /// The view of `machine` from its decisions and latest events (oldest first), its
    /// latest boot found as [`crate::fleet`]'s read model finds it.
    pub(super) fn new(
        machine: Machine,
        boots: Vec<(Firmware, Explanation)>,
        recent: Vec<EventRow>,
    ) -> Shown {
        let events: Vec<_> = recent.iter().map(|r| r.event.clone()).collect();
        Shown {
            last_boot: timeline::last_boot(&events),
            machine,
            boots,
            recent,
        }
    }
}
/// How many of a machine's latest boot attempts `machine boots` prints.
const SHOW_BOOTS: i64 = 50;
/// Events `machine boots` lists per attempt at most.
const ATTEMPT_EVENTS: i64 = 200;

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
    /// Every change of a machine (add, update, label, rm) with who made it: an API
    /// token's name, or `local` for this CLI
    History {
        name: String,
        /// Print them as JSON, one object per line
        #[arg(long)]
        json: bool,
    },
    /// List a machine's boot attempts, newest first (state, image, source, attempt number)
    Boots {
        name: String,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Release a machine held by automatic rollback (or quarantined)
    Release { name: String },
    /// List the machines held by automatic rollback
    Holds,
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

/// The machine `machine add` describes.
pub(super) fn new_machine(
    name: &str,
    macs: &[String],
    uuid: Option<&str>,
    hostname: Option<&String>,
    address: Option<Ipv4Addr>,
    labels: &[String],
) -> anyhow::Result<Machine> {
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
    Ok(Machine {
        name: name.to_string(),
        macs: parsed,
        uuid: uuid.map(parse_uuid).transpose()?,
        hostname: hostname.cloned(),
        address,
        labels: lab,
    })
}

/// Prints `machine list`.
pub(super) fn print_list(machines: Vec<Machine>) {
    let rows: Vec<Vec<String>> = machines
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

/// Prints `machine history` (the local CLI's changes have no actor: `local`).
pub(super) fn print_history(changes: &[MachineChange], json: bool) -> anyhow::Result<()> {
    if json {
        for c in changes {
            println!("{}", serde_json::to_string(c)?);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                time(c.at_ms),
                c.kind.clone(),
                c.actor.clone().unwrap_or_else(|| "local".into()),
                c.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["AT", "CHANGE", "ACTOR", "DETAIL"], &rows);
    Ok(())
}

/// Prints `machine holds`.
pub(super) fn print_holds(holds: &[crate::store::HoldRow]) {
    let rows: Vec<Vec<String>> = holds
        .iter()
        .map(|h| {
            vec![
                h.machine.clone(),
                time(h.since_ms),
                crate::attempt::record::hold_sentence(h),
            ]
        })
        .collect();
    table(&["MACHINE", "SINCE", "HOLD"], &rows);
}

/// Prints `machine show`.
pub(super) fn print_show(view: &Shown) {
    let m = &view.machine;
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
    for (firmware, ex) in &view.boots {
        println!("  boots     ({firmware}) {}", ex.summary());
    }
    if let Some(t) = &view.last_boot {
        let how = match &t.outcome {
            timeline::Outcome::Pending => "in progress or unreported".into(),
            timeline::Outcome::Booted(d) => format!("booted {d}"),
            timeline::Outcome::Failed(r) => format!("failed: {r}"),
        };
        println!(
            "  last boot {} {}, {how}",
            time(t.start_ms),
            t.stages_text()
        );
    }
    if !m.macs.is_empty() {
        println!(
            "timeline ({} event(s), the latest {SHOW_EVENTS} at most):",
            view.recent.len()
        );
        for e in &view.recent {
            println!(
                "  {}  {:<12} {:<4} {}",
                time(e.event.at_ms),
                e.event.stage(),
                e.event.via,
                e.event.detail
            );
        }
    }
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
            let m = new_machine(
                name,
                macs,
                uuid.as_deref(),
                hostname.as_ref(),
                *address,
                labels,
            )?;
            ctx.fleet.add_machine(&m).await?;
            println!("added machine {name}");
        }
        MachineCmd::Rm { name } => {
            ctx.fleet.remove_machine(name).await?;
            println!("removed machine {name}");
        }
        MachineCmd::List => print_list(ctx.store().machines().await?),
        MachineCmd::History { name, json } => {
            print_history(&ctx.fleet.machine_history(name).await?, *json)?;
        }
        MachineCmd::Show { name } => {
            let view = ctx.fleet.machine_view(name, SHOW_EVENTS).await?;
            let mut boots = Vec::new();
            for b in &view.boots {
                boots.push((b.firmware, Explanation::of(&b.selection)?));
            }
            print_show(&Shown {
                machine: view.machine,
                boots,
                recent: view.recent,
                last_boot: view.last_boot,
            });
        }
        MachineCmd::Boots { name, json } => {
            let boots = ctx.fleet.machine_boots(name, SHOW_BOOTS).await?;
            let mut listed = Vec::new();
            for b in boots {
                let events = ctx.store().attempt_events(&b, ATTEMPT_EVENTS).await?;
                listed.push((b, events));
            }
            if *json {
                let out: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|(b, events)| {
                        let mut v = serde_json::to_value(b).unwrap_or_default();
                        if let Some(o) = v.as_object_mut() {
                            let events = events.iter().map(crate::events::json).collect();
                            o.insert("events".into(), serde_json::Value::Array(events));
                        }
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|(b, events)| {
                    vec![
                        b.id.clone(),
                        time(b.started_ms),
                        b.state.clone(),
                        format!("{}@{}", b.image, b.version),
                        b.attempt.to_string(),
                        b.source.clone(),
                        events.len().to_string(),
                        b.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &[
                    "BOOT", "STARTED", "STATE", "IMAGE", "TRY", "SOURCE", "EVENTS", "REASON",
                ],
                &rows,
            );
            for (b, events) in listed.iter().filter(|(_, e)| !e.is_empty()) {
                println!("\nboot {}:", b.id);
                for e in events {
                    super::events::print(e, false);
                }
            }
        }
        MachineCmd::Release { name } => {
            let h = ctx.fleet.release_hold(name).await?;
            println!(
                "released {name} (was {})",
                crate::attempt::record::hold_sentence(&h)
            );
        }
        MachineCmd::Holds => print_holds(&ctx.fleet.holds().await?),
        MachineCmd::Label { name, changes } => {
            let parsed = parse_labels(changes)?;
            ctx.fleet.label_machine(name, &parsed).await?;
            println!("labels of {name} updated");
        }
    }
    Ok(())
}

/// The changes of `machine label`, checked.
pub(super) fn parse_labels(changes: &[String]) -> anyhow::Result<Vec<LabelChange>> {
    Ok(changes
        .iter()
        .map(|c| LabelChange::parse(c))
        .collect::<Result<Vec<_>, _>>()?)
}
