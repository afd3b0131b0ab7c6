//! The stages of `tabula lab --rollout` (see [`super::rollout`]): each one drives the lab
//! with `tabula` commands and checks what the store, the receiver and the VMs show.

use std::collections::HashMap;

use super::LabError;
use super::operator::{Boot, Operator, Waited, wait_for};
use super::qmp;
use super::rollout::{LABEL, Lab};

/// Every stage, in order.
pub(super) async fn scenario(lab: &mut Lab<'_>) -> Result<(), LabError> {
    let names: Vec<String> = lab.vms.iter().map(|v| v.spec.name.clone()).collect();
    let mut first = Vec::new();
    for n in &names {
        first.push(newest_is(lab, n, "first boot on demo@1", "1", None).await?);
    }
    println!("lab: {} booted demo@1 (their known good)", names.join(", "));
    // Boot events are written in batches, just after the attempt's report: let the last
    // ones land before counting.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut before = HashMap::new();
    for v in &lab.vms {
        let boots = lab.op.boots(&v.spec.name).await?.len();
        let events = events(&lab.op, &v.spec.mac.to_string()).await?;
        before.insert(v.spec.name.clone(), (boots, events));
    }
    bad_rollout(lab, &names, &before).await?;
    good_rollout(lab, &names).await?;
    boot_once(lab, &names[0]).await
}

/// Waits until `vm`'s newest attempt is demo@`version`, booted, and not the attempt
/// `not` (so a new one); fails when QEMU is gone.
async fn newest_is(
    lab: &mut Lab<'_>,
    vm: &str,
    stage: &'static str,
    version: &str,
    not: Option<&str>,
) -> Result<Boot, LabError> {
    let op = lab.op.clone();
    let limit = lab.limit;
    let stop = lab.stop;
    let i = lab.vms.iter().position(|v| v.spec.name == vm).unwrap_or(0);
    let r = wait_for(vm, stage, limit, stop, || {
        let exited = lab.vms[i].vm.exited();
        let op = op.clone();
        async move {
            if exited {
                return Ok(Waited::Fail("QEMU exited (see its console above)".into()));
            }
            let boots = op.boots(vm).await?;
            Ok(match boots.first() {
                Some(b)
                    if b.version == version
                        && b.state == "booted"
                        && Some(b.id.as_str()) != not =>
                {
                    Waited::Done(b.clone())
                }
                Some(b) => Waited::Not(b.brief()),
                None => Waited::Not("no attempt yet".into()),
            })
        }
    })
    .await?;
    println!("lab: {vm} booted {}", r.brief());
    Ok(r)
}

/// How many boot events `mac` has.
async fn events(op: &Operator, mac: &str) -> Result<usize, LabError> {
    let out = op
        .run(&["events", mac, "--json", "--last", "100000"])
        .await?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}

fn rollout_args<'a>(name: &'a str, to: &'a str, in_flight: &'a str) -> Vec<&'a str> {
    vec![
        "rollout",
        "create",
        name,
        "--target",
        LABEL,
        "--to",
        to,
        "--steps",
        "1,100%",
        "--max-in-flight",
        in_flight,
        "--reboot",
        "webhook",
        "--deadline",
        "4m",
    ]
}

/// The reboot requests the receiver carried out for `rollout`, by machine.
fn resets(lab: &Lab<'_>, rollout: &str) -> Vec<(String, Option<Result<(), String>>)> {
    lab.receiver
        .received()
        .into_iter()
        .filter(|r| r.kind == "rollout.reboot_requested" && r.data["rollout"] == rollout)
        .map(|r| (r.machine().to_string(), r.reset.clone()))
        .collect()
}

/// The rollout of the broken demo@3 stops at the canary, which comes back on demo@1.
async fn bad_rollout(
    lab: &mut Lab<'_>,
    names: &[String],
    before: &HashMap<String, (usize, usize)>,
) -> Result<(), LabError> {
    let op = lab.op.clone();
    op.show(&rollout_args("bad", "demo@3", "1")).await?;
    op.show(&["rollout", "start", "bad"]).await?;
    (lab.break_demo3)()?;
    let canary = wait_for(
        "rollout bad",
        "canary admitted",
        lab.limit,
        lab.stop,
        || {
            let op = op.clone();
            async move {
                let v = op.rollout("bad").await?;
                let m = v["members"].as_array().and_then(|ms| {
                    ms.iter()
                        .find(|m| m["state"] != "waiting")
                        .and_then(|m| m["machine"].as_str().map(str::to_string))
                });
                Ok(m.map_or_else(|| Waited::Not(v["rollout"].to_string()), Waited::Done))
            }
        },
    )
    .await?;
    println!("lab: the canary of rollout bad is {canary}");
    let c = canary.clone();
    wait_for(
        &canary,
        "bad rollout pauses on its budget",
        lab.limit,
        lab.stop,
        || {
            let op = op.clone();
            async move {
                let v = op.rollout("bad").await?;
                let state = v["rollout"]["state"].as_str().unwrap_or("?").to_string();
                Ok(match state.as_str() {
                    "paused" => Waited::Done(()),
                    "running" => Waited::Not(format!("running, budget {}", v["budget_used"])),
                    other => Waited::Fail(format!("rollout bad is {other}, not paused")),
                })
            }
        },
    )
    .await?;
    let held = newest_is(lab, &c, "canary back on demo@1 by itself", "1", None).await?;
    if !held.source.starts_with("hold:") {
        return Err(stage(
            &c,
            "canary held",
            format!("demo@1 came from {}, not a hold", held.source),
        ));
    }
    let boots = op.boots(&c).await?;
    let tries = boots
        .iter()
        .filter(|b| b.version == "3" && b.state != "booted")
        .count();
    let explain = op.show(&["explain", &mac_of(lab, &c)]).await?;
    let want = "held on demo@1 after 2 failed tries of demo@3 (rollout bad)";
    if tries != 2 || !explain.contains(want) {
        return Err(stage(
            &c,
            "canary held",
            format!("{tries} failed tries of demo@3; explain: {explain}"),
        ));
    }
    op.show(&["rollout", "show", "bad"]).await?;
    op.show(&["machine", "holds"]).await?;
    op.show(&["machine", "boots", &c]).await?;
    // The others: never asked to reboot, no new attempt, no new event.
    let asked: Vec<String> = resets(lab, "bad").into_iter().map(|(m, _)| m).collect();
    if asked.iter().any(|m| *m != c) || asked.is_empty() {
        return Err(stage(
            &c,
            "bad rollout reboots",
            format!("reboots asked for: {asked:?}"),
        ));
    }
    for n in names.iter().filter(|n| **n != c) {
        let boots = op.boots(n).await?;
        let evs = events(&op, &mac_of(lab, n)).await?;
        let (b0, e0) = before.get(n).copied().unwrap_or_default();
        if boots.iter().any(|b| b.version == "3") || boots.len() != b0 || evs != e0 {
            return Err(stage(
                n,
                "others never boot demo@3",
                format!(
                    "{} attempts (had {b0}), {evs} events (had {e0}), newest {:?}",
                    boots.len(),
                    boots.first()
                ),
            ));
        }
        println!(
            "lab: {n} never booted demo@3: still {b0} attempt(s), {e0} event(s), running demo@1"
        );
    }
    op.show(&["rollout", "abort", "bad"]).await?;
    op.show(&["machine", "release", &c]).await?;
    Ok(())
}

/// The rollout of demo@2 reaches all three, each reboot by webhook and QMP.
async fn good_rollout(lab: &mut Lab<'_>, names: &[String]) -> Result<(), LabError> {
    let op = lab.op.clone();
    op.show(&rollout_args("good", "demo@2", "3")).await?;
    op.show(&["rollout", "start", "good"]).await?;
    for n in names {
        newest_is(lab, n, "good rollout reaches it", "2", None).await?;
    }
    wait_for(
        "rollout good",
        "good rollout completes",
        lab.limit,
        lab.stop,
        || {
            let op = op.clone();
            async move {
                let v = op.rollout("good").await?;
                let state = v["rollout"]["state"].as_str().unwrap_or("?").to_string();
                Ok(match state.as_str() {
                    "completed" => Waited::Done(()),
                    "running" => Waited::Not(format!("running: {}", v["counts"])),
                    other => Waited::Fail(format!("rollout good is {other}: {v}")),
                })
            }
        },
    )
    .await?;
    let r = resets(lab, "good");
    for n in names {
        if !r
            .iter()
            .any(|(m, reset)| m == n && matches!(reset, Some(Ok(()))))
        {
            return Err(stage(
                n,
                "good rollout reboots",
                format!("no reboot carried out; requests: {r:?}"),
            ));
        }
    }
    op.show(&["rollout", "show", "good"]).await?;
    op.show(&["explain", &mac_of(lab, &names[0])]).await?;
    println!(
        "lab: rollout good reached {}: each reboot asked by webhook, done by QMP system_reset",
        names.join(", ")
    );
    Ok(())
}

/// `vm` boots demo@2 once, then demo@1 again.
async fn boot_once(lab: &mut Lab<'_>, vm: &str) -> Result<(), LabError> {
    let op = lab.op.clone();
    op.show(&["pin", "set", vm, "demo@1"]).await?;
    let out = op
        .show(&["pin", "set", vm, "demo@2", "--once", "--ttl", "15m"])
        .await?;
    let id = out.split_whitespace().nth(1).unwrap_or("").to_string();
    let last = op.boots(vm).await?.first().map(|b| b.id.clone());
    reset(lab, vm).await?;
    let once = newest_is(lab, vm, "boot-once boots demo@2", "2", last.as_deref()).await?;
    let (o, id2) = (op.clone(), id.clone());
    wait_for(vm, "boot-once result", lab.limit, lab.stop, || {
        let (op, id) = (o.clone(), id2.clone());
        async move {
            let v = op.json(&["pin", "once-status", &id]).await?;
            Ok(match v["state"].as_str() {
                Some("booted") => Waited::Done(()),
                Some(s @ ("failed" | "expired")) => Waited::Fail(format!("boot-once {id} is {s}")),
                s => Waited::Not(format!("{s:?}")),
            })
        }
    })
    .await?;
    let rx = lab.receiver;
    wait_for(vm, "boot_once.booted webhook", lab.limit, lab.stop, || {
        let got = rx
            .received()
            .into_iter()
            .any(|r| r.kind == "boot_once.booted" && r.data["id"] == id.as_str());
        async move {
            Ok(if got {
                Waited::Done(())
            } else {
                Waited::Not("not yet".into())
            })
        }
    })
    .await?;
    println!("lab: webhook boot_once.booted for {id} arrived, signature verified");
    op.show(&["pin", "once-status", &id]).await?;
    reset(lab, vm).await?;
    newest_is(
        lab,
        vm,
        "after boot-once, demo@1 again",
        "1",
        Some(&once.id),
    )
    .await?;
    op.show(&["machine", "boots", vm]).await?;
    if !lab.receiver.refused().is_empty() {
        return Err(stage(
            vm,
            "webhooks",
            format!("refused: {:?}", lab.receiver.refused()),
        ));
    }
    Ok(())
}

/// The operator's reboot of `vm`: QMP `system_reset`.
async fn reset(lab: &Lab<'_>, vm: &str) -> Result<(), LabError> {
    let v = lab.vms.iter().find(|v| v.spec.name == vm);
    let Some(v) = v else {
        return Err(stage(vm, "reset", "no such VM".into()));
    };
    qmp::system_reset(&v.qmp)
        .await
        .map_err(|e| stage(vm, "reset", e.to_string()))?;
    println!("lab: QMP system_reset of {vm}");
    Ok(())
}

fn mac_of(lab: &Lab<'_>, vm: &str) -> String {
    lab.vms
        .iter()
        .find(|v| v.spec.name == vm)
        .map(|v| v.spec.mac.to_string())
        .unwrap_or_default()
}

fn stage(vm: &str, stage: &'static str, detail: String) -> LabError {
    LabError::Stage {
        vm: vm.into(),
        stage,
        detail,
    }
}
