//! The remote CLI's fleet commands: `rollout …` and `pin set --once` / `pin
//! once-status` over the API (`/api/v1/rollouts…`, `…/boot-once`), printed by the local
//! commands' printers from the same types, so the output is the same.

use hyper::Method;
use serde_json::{Value, json};

use super::rollout::{self, RolloutCmd};
use super::time;
use crate::client::{Client, segment};
use crate::fleet::RolloutView;
use crate::inventory::{PinRef, PinTarget};
use crate::store::BootOnceRow;

/// `tabula rollout …` through the API.
pub(super) async fn rollout(c: &Client, cmd: &RolloutCmd) -> anyhow::Result<()> {
    match cmd {
        RolloutCmd::Create(a) => {
            let body = serde_json::to_value(a)?;
            let v: RolloutView = c.call(Method::POST, "/api/v1/rollouts", Some(body)).await?;
            rollout::print_created(a, &v);
        }
        RolloutCmd::Show { name, json } => {
            let path = format!("/api/v1/rollouts/{}", segment(name));
            let v: RolloutView = c.call(Method::GET, &path, None).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                rollout::print_view(&v);
            }
        }
        RolloutCmd::List => {
            let page: Value = c.call(Method::GET, "/api/v1/rollouts", None).await?;
            let views: Vec<RolloutView> = serde_json::from_value(page["items"].clone())?;
            rollout::print_list(views);
        }
        simple => {
            if let Some((name, command)) = simple.command() {
                let path = format!("/api/v1/rollouts/{}/{command}", segment(name));
                let answer: Value = c.call(Method::POST, &path, None).await?;
                let to = answer["state"].as_str().unwrap_or_default();
                println!("rollout {name}: {command} -> {to}");
            }
        }
    }
    Ok(())
}

/// `tabula pin set TARGET REF --once [--ttl] [--then]` through the API.
pub(super) async fn boot_once(
    c: &Client,
    target: &str,
    reference: &str,
    ttl: &str,
    then: &str,
) -> anyhow::Result<()> {
    let t = PinTarget::parse_cli(target)?;
    let r: PinRef = reference.parse()?;
    let who = match &t {
        PinTarget::Machine(n) => n.clone(),
        PinTarget::Mac(m) => m.to_string(),
        other => anyhow::bail!("{other}: boot-once names one machine or one MAC"),
    };
    let path = format!("/api/v1/machines/{}/boot-once", segment(&who));
    let body = json!({"ref": r.to_string(), "ttl": ttl, "then": then});
    let o: BootOnceRow = c.call(Method::POST, &path, Some(body)).await?;
    println!(
        "boot-once {} : {} boots {r} once (until {}), then {}",
        o.id,
        o.machine,
        time(o.expires_ms),
        o.then_do
    );
    Ok(())
}

/// `tabula pin once-status ID [--json]` through the API.
pub(super) async fn once_status(c: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let path = format!("/api/v1/boot-once/{}", segment(id));
    let o: BootOnceRow = c.call(Method::GET, &path, None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        println!("{} {} {} {}", o.id, o.machine, o.reference, o.state);
    }
    Ok(())
}
