//! `tabula rollout …`: create, start, pause, resume, promote, abort, retry, show, list.
//! Parses and prints only: every check and write is the fleet facade's.

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::fleet::{RolloutSpec, RolloutView};
use crate::inventory::{PinRef, Selector};
use crate::rollout::Command;

#[derive(Debug, Subcommand)]
pub(super) enum RolloutCmd {
    /// Create a rollout (in draft) of IMAGE@VERSION to the machines a label selector matches
    Create(CreateArgs),
    /// Start a draft rollout
    Start { name: String },
    /// Pause a running rollout (nothing more is admitted)
    Pause { name: String },
    /// Resume a paused rollout
    Resume { name: String },
    /// Skip the rest of the current step
    Promote { name: String },
    /// Abort: members go back to what their pins say
    Abort { name: String },
    /// Give the failed members another try and run on
    Retry { name: String },
    /// Show a rollout: state, step, members by state, budget used
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List rollouts
    List,
}

/// `rollout create`'s arguments: the API's create body, field for field (the remote CLI
/// posts them as they are; the local one builds a [`RolloutSpec`] with [`CreateArgs::spec`]).
#[derive(Debug, clap::Args, serde::Serialize)]
pub(super) struct CreateArgs {
    name: String,
    /// Label selector: k=v[,k2=v2|v3] (a leading "label:" is accepted)
    #[arg(long)]
    target: String,
    /// The version to roll out: IMAGE@VERSION
    #[arg(long)]
    to: String,
    /// Cumulative step sizes, counts or shares; the last is 100%
    #[arg(long, default_value = "1,10%,50%,100%")]
    steps: String,
    /// Most members admitted without a result yet
    #[arg(long, default_value_t = 10)]
    max_in_flight: u32,
    /// Failures tolerated: N, or P% of the admitted members
    #[arg(long, default_value = "0")]
    failure_budget: String,
    /// How long a step's results must hold before the next step
    #[arg(long, default_value = "0s")]
    bake: String,
    /// How long an admitted member has to boot the new version
    #[arg(long, default_value = "30m")]
    deadline: String,
    /// What a spent budget does: pause or rollback
    #[arg(long, default_value = "pause")]
    on_budget: String,
    /// How members reboot: passive (on their own) or webhook (a rollout.reboot_requested event each)
    #[arg(long, default_value = "passive")]
    reboot: String,
    /// Show the members and steps without creating anything
    #[arg(long)]
    dry_run: bool,
}

impl CreateArgs {
    /// The facade's spec: the selector, version, steps, budget and durations parsed.
    fn spec(&self) -> anyhow::Result<RolloutSpec> {
        let target = &self.target;
        let selector: Selector = target.strip_prefix("label:").unwrap_or(target).parse()?;
        let (image, version) = match self.to.parse::<PinRef>()? {
            PinRef::Version { image, version } => (image, version),
            other => anyhow::bail!("--to {other}: a rollout names one version, IMAGE@VERSION"),
        };
        Ok(RolloutSpec {
            name: self.name.clone(),
            selector,
            image,
            version,
            steps: self.steps.parse()?,
            max_in_flight: self.max_in_flight,
            budget: self.failure_budget.parse()?,
            bake: duration(&self.bake, "bake")?,
            deadline: duration(&self.deadline, "deadline")?,
            on_budget: self.on_budget.clone(),
            reboot: self.reboot.clone(),
        })
    }
}

impl RolloutCmd {
    /// The rollout and command of the commands that only name a rollout.
    pub(super) fn command(&self) -> Option<(&str, Command)> {
        Some(match self {
            RolloutCmd::Start { name } => (name, Command::Start),
            RolloutCmd::Pause { name } => (name, Command::Pause),
            RolloutCmd::Resume { name } => (name, Command::Resume),
            RolloutCmd::Promote { name } => (name, Command::Promote),
            RolloutCmd::Abort { name } => (name, Command::Abort),
            RolloutCmd::Retry { name } => (name, Command::Retry),
            RolloutCmd::Create(_) | RolloutCmd::Show { .. } | RolloutCmd::List => return None,
        })
    }
}

/// What `rollout create` prints on success (or after a dry run).
pub(super) fn print_created(a: &CreateArgs, v: &RolloutView) {
    let name = &a.name;
    if a.dry_run {
        println!("dry run: nothing created");
    } else {
        println!("created rollout {name} (draft): start it with `tabula rollout start {name}`");
    }
    print_view(v);
}

fn duration(s: &str, what: &str) -> anyhow::Result<std::time::Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow::anyhow!("--{what} {s:?}: {e}"))
}

pub(super) async fn run(ctx: &Ctx, cmd: &RolloutCmd) -> anyhow::Result<()> {
    match cmd {
        RolloutCmd::Create(a) => {
            let v = ctx.fleet.create_rollout(&a.spec()?, a.dry_run).await?;
            print_created(a, &v);
        }
        RolloutCmd::Show { name, json } => {
            let v = ctx.fleet.rollout_view(name).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_view(&v);
            }
        }
        RolloutCmd::List => print_list(ctx.fleet.rollouts().await?),
        simple => {
            if let Some((name, command)) = simple.command() {
                let to = ctx.fleet.rollout_command(name, command).await?;
                println!("rollout {name}: {command} -> {to}");
            }
        }
    }
    Ok(())
}

/// Prints `rollout list`.
pub(super) fn print_list(views: Vec<RolloutView>) {
    let rows: Vec<Vec<String>> = views
        .into_iter()
        .map(|v| {
            let r = &v.rollout;
            vec![
                r.name.clone(),
                state_text(&v),
                format!("{}@{}", r.image, r.version),
                format!("label:{}", r.selector),
                counts_text(&v),
                time(r.updated_ms),
            ]
        })
        .collect();
    table(
        &["NAME", "STATE", "TO", "TARGET", "MEMBERS", "UPDATED"],
        &rows,
    );
}

pub(super) fn state_text(v: &RolloutView) -> String {
    let r = &v.rollout;
    let steps = v.per_step.len();
    match r.state.as_str() {
        "running" => format!("running (step {}/{steps})", r.step + 1),
        "paused" => format!("paused ({}) at step {}/{steps}", r.paused, r.step + 1),
        s => s.to_string(),
    }
}

pub(super) fn counts_text(v: &RolloutView) -> String {
    v.counts
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn print_view(v: &RolloutView) {
    let r = &v.rollout;
    println!("rollout    {}", r.name);
    println!("state      {}", state_text(v));
    println!("to         {}@{} ({})", r.image, r.version, r.manifest);
    println!("target     label:{}", r.selector);
    println!(
        "steps      {} (members per step: {})",
        r.steps,
        v.per_step
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("budget     {}", v.budget_used);
    println!(
        "on budget  {}; reboot {}; max in flight {}",
        r.on_budget, r.reboot, r.max_in_flight
    );
    println!("members    {}", counts_text(v));
    let rows: Vec<Vec<String>> = v
        .members
        .iter()
        .map(|m| {
            vec![
                m.machine.clone(),
                if m.step < 0 {
                    "-".into()
                } else {
                    (m.step + 1).to_string()
                },
                m.state.clone(),
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["MACHINE", "STEP", "STATE", "REASON"], &rows);
}
