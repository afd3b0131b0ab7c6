//! The remote CLI: with `--server URL` (env `TABULA_SERVER`) the commands `machine`,
//! `pin` (with `--once`), `rollout`, `image`, `explain`, `events` and `lease` call the API ([`crate::client`])
//! instead of opening the store, and print what they print locally, with the same
//! printers, from the same types. The token comes from `TABULA_TOKEN` or
//! `--token-file PATH` (never a flag of its own: a command line is visible to every
//! user of the host). What needs the server's own disk (`image build`, `diff`, `gc`,
//! `verify`) or its database (`token`, `doctor`, `lab`, `serve`, `config`) stays local,
//! and says so.

use std::path::Path;

use anyhow::Context as _;

use super::events::EventsArgs;
use super::explain::ExplainArgs;
use super::image::ImageCmd;
use super::lease::LeaseCmd;
use super::machine::{MachineCmd, SHOW_EVENTS, Shown};
use super::pin::PinCmd;
use super::{Command, events, explain, lease, machine, pin};
use crate::boot::{Firmware, Mac};
use crate::client::sse::Followed;
use crate::client::{Client, ClientError};
use crate::fleet::LabelChange;
use crate::inventory::{PinRef, PinTarget};

/// The environment variable holding the token.
pub(super) const TOKEN_ENV: &str = "TABULA_TOKEN";

/// The token: `--token-file` wins over `TABULA_TOKEN`.
fn token(server: &str, file: Option<&Path>) -> Result<String, ClientError> {
    if let Some(p) = file {
        let why = |why: String| ClientError::TokenFile {
            path: p.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(p).map_err(|e| why(e.to_string()))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(why("the file is empty".to_string()));
        }
        return Ok(t.to_string());
    }
    match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => Err(ClientError::NoToken {
            server: server.to_string(),
        }),
    }
}

/// Whether `--server` changes what `command` does: the commands on the store's state
/// (refused when they cannot be done remotely, rather than done on a local store).
pub(super) fn applies(command: &Command) -> bool {
    matches!(
        command,
        Command::Machine(_)
            | Command::Pin(_)
            | Command::Rollout(_)
            | Command::Image(_)
            | Command::Explain(_)
            | Command::Events(_)
            | Command::Lease(_)
            | Command::Token(_)
    )
}

/// Runs `command` against the API at `server`.
pub(super) async fn run(
    command: &Command,
    server: &str,
    token_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> anyhow::Result<()> {
    let local_only = |what: &str, why: &str| {
        anyhow::anyhow!(
            "`tabula {what}` works on the server itself ({why}); drop --server / TABULA_SERVER"
        )
    };
    // Refuse what cannot be done remotely before asking for a token.
    match command {
        Command::Image(ImageCmd::Build(_)) => {
            return Err(local_only("image build", "it builds on the server's disk"));
        }
        Command::Image(ImageCmd::Diff { .. }) => {
            return Err(local_only("image diff", "it reads the root images' blobs"));
        }
        Command::Image(ImageCmd::Gc) => {
            return Err(local_only("image gc", "it sweeps the server's blob store"));
        }
        Command::Image(ImageCmd::Verify) => {
            return Err(local_only(
                "image verify",
                "it re-hashes the server's blob store",
            ));
        }
        Command::Machine(MachineCmd::Boots { .. }) => {
            return Err(local_only(
                "machine boots",
                "not in the remote CLI yet: the API has GET /api/v1/machines/NAME/boots",
            ));
        }
        Command::Token(_) => {
            return Err(local_only(
                "token",
                "tokens are made where the database is; the API's /api/v1/tokens serves programs",
            ));
        }
        Command::Machine(_)
        | Command::Pin(_)
        | Command::Rollout(_)
        | Command::Image(_)
        | Command::Explain(_)
        | Command::Events(_)
        | Command::Lease(_) => {}
        _ => return Err(local_only("this command", "it needs the server's host")),
    }
    // (`applies` keeps the host commands away from here.)
    let client = Client::new(server, &token(server, token_file)?, ca_file)?;
    match command {
        Command::Machine(cmd) => machines(&client, cmd).await,
        Command::Pin(PinCmd::Set {
            target,
            reference,
            once: true,
            ttl,
            then,
        }) => super::remote_fleet::boot_once(&client, target, reference, ttl, then).await,
        Command::Pin(PinCmd::OnceStatus { id, json }) => {
            super::remote_fleet::once_status(&client, id, *json).await
        }
        Command::Pin(cmd) => pins(&client, cmd).await,
        Command::Rollout(cmd) => super::remote_fleet::rollout(&client, cmd).await,
        Command::Image(cmd) => super::remote_image::run(&client, cmd).await,
        Command::Explain(a) => explain(&client, a).await,
        Command::Events(a) => events(&client, a).await,
        Command::Lease(LeaseCmd::List { json }) => {
            lease::print(&client.leases().await?, *json);
            Ok(())
        }
        _ => unreachable!("refused above"),
    }
}

async fn machines(c: &Client, cmd: &MachineCmd) -> anyhow::Result<()> {
    match cmd {
        MachineCmd::Add {
            name,
            macs,
            uuid,
            hostname,
            address,
            labels,
        } => {
            let m = machine::new_machine(
                name,
                macs,
                uuid.as_deref(),
                hostname.as_ref(),
                *address,
                labels,
            )?;
            c.create_machine(&m).await?;
            println!("added machine {name}");
        }
        MachineCmd::Rm { name } => {
            // The API's DELETE is idempotent; the CLI says when there was nothing.
            c.machine(name).await?;
            c.delete_machine(name).await?;
            println!("removed machine {name}");
        }
        MachineCmd::List => machine::print_list(c.machines().await?),
        MachineCmd::History { name, json } => {
            machine::print_history(&c.machine_history(name).await?, *json)?;
        }
        MachineCmd::Show { name } => {
            let m = c.machine(name).await?;
            let mut boots = Vec::new();
            let mut recent = Vec::new();
            if let Some(mac) = m.macs.first() {
                let mac = mac.to_string();
                for firmware in [Firmware::Bios, Firmware::EfiX64] {
                    let ex = c
                        .explain(&mac, m.uuid.as_deref(), &firmware.to_string())
                        .await?;
                    boots.push((firmware, ex));
                }
                recent = c.recent_events(Some(&mac), SHOW_EVENTS).await?.0;
            }
            machine::print_show(&Shown::new(m, boots, recent));
        }
        MachineCmd::Label { name, changes } => {
            let mut labels = serde_json::Map::new();
            for change in machine::parse_labels(changes)? {
                match change {
                    LabelChange::Set { key, value } => labels.insert(key, value.into()),
                    LabelChange::Remove { key } => labels.insert(key, serde_json::Value::Null),
                };
            }
            c.patch_machine(name, serde_json::json!({ "labels": labels }))
                .await?;
            println!("labels of {name} updated");
        }
        MachineCmd::Holds => {
            let page: serde_json::Value = c.call(hyper::Method::GET, "/api/v1/holds", None).await?;
            let holds: Vec<crate::store::HoldRow> = serde_json::from_value(page["items"].clone())?;
            machine::print_holds(&holds);
        }
        MachineCmd::Release { name } => {
            let path = format!("/api/v1/machines/{}/hold", crate::client::segment(name));
            let (parts, body) = c.call_raw(hyper::Method::DELETE, &path, None).await?;
            if parts.status == hyper::StatusCode::NO_CONTENT {
                anyhow::bail!("{name} is not held");
            }
            let h: crate::store::HoldRow = serde_json::from_slice(&body)?;
            println!(
                "released {name} (was {})",
                crate::attempt::record::hold_sentence(&h)
            );
        }
        MachineCmd::Boots { .. } => unreachable!("refused in run"),
    }
    Ok(())
}

async fn pins(c: &Client, cmd: &PinCmd) -> anyhow::Result<()> {
    match cmd {
        PinCmd::Set {
            target, reference, ..
        } => {
            let t = PinTarget::parse_cli(target)?;
            let r: PinRef = reference.parse()?;
            c.set_pin(&t.key(), &r.to_string()).await?;
            println!("{t} -> {r}");
        }
        PinCmd::Rm { target } => {
            let t = PinTarget::parse_cli(target)?;
            // As the local CLI: removing no pin is an error there.
            c.pin(&t.key()).await?;
            c.remove_pin(&t.key()).await?;
            println!("removed pin of {t}");
        }
        PinCmd::List => pin::print_list(c.pins().await?),
        PinCmd::OnceStatus { .. } => unreachable!("refused in run"),
        PinCmd::History { target } => {
            let t = PinTarget::parse_cli(target)?;
            let changes = match c.pin_history(&t.key()).await {
                Err(e) if e.status() == Some(404) => Vec::new(),
                other => other?,
            };
            pin::print_history(&t, changes)?;
        }
        PinCmd::Rollback { target } => {
            let t = PinTarget::parse_cli(target)?;
            let r = c.rollback_pin(&t.key()).await?;
            pin::print_rollback(&t, r.from.as_deref(), &r.to);
        }
    }
    Ok(())
}

async fn explain(c: &Client, a: &ExplainArgs) -> anyhow::Result<()> {
    // Checked here as the local CLI checks them, so a typo reads the same.
    let mac: Mac = a.mac.parse()?;
    let firmware: Firmware = a.arch.parse()?;
    let ex = c
        .explain(&mac.to_string(), a.uuid.as_deref(), &firmware.to_string())
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ex)?);
    } else {
        explain::print(&ex);
    }
    Ok(())
}

async fn events(c: &Client, a: &EventsArgs) -> anyhow::Result<()> {
    if let Some(attempt) = &a.attempt {
        for e in &c.attempt_events(attempt).await? {
            events::print(e, a.json);
        }
        return Ok(());
    }
    let mac: Option<Mac> = a.mac.as_deref().map(str::parse).transpose()?;
    let mac = mac.map(|m| m.to_string());
    let (rows, newest) = c
        .recent_events(mac.as_deref(), a.last.clamp(0, 1000))
        .await?;
    for e in &rows {
        events::print(e, a.json);
    }
    if !a.follow {
        return Ok(());
    }
    c.follow_events(mac.as_deref(), newest, |f| {
        match f {
            Followed::Event(e) => events::print(&e, a.json),
            Followed::Reset { after, oldest } => eprintln!(
                "warning: the events after id {after} and before id {oldest} were deleted by retention before they could be shown"
            ),
        }
        // A closed stdout (`| head`) ends the command.
        use std::io::Write as _;
        std::io::stdout().flush().is_ok()
    })
    .await
    .context("following the event stream")
}
