//! `tabula webhook …`: add, list, rm, deliveries. Parses and prints only.

use clap::Subcommand;

use super::{Ctx, table, time};

#[derive(Debug, Subcommand)]
pub(super) enum WebhookCmd {
    /// Send fleet events to URL (signed, at least once, retried with backoff)
    Add {
        /// http://HOST[:PORT]/PATH
        url: String,
        /// Event types or patterns: booted, failed, boot.*, machine.*, rollout.*, boot_once.*, *
        #[arg(long, default_value = "booted,failed,machine.*,rollout.*,boot_once.*")]
        events: String,
        /// The signing secret (whsec_<base64>); made and printed once when not given
        #[arg(long)]
        secret: Option<String>,
    },
    /// List webhooks
    List,
    /// Remove a webhook
    Rm { id: String },
    /// Show a webhook's delivery log, newest first
    Deliveries {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(ctx: &Ctx, cmd: &WebhookCmd) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Add {
            url,
            events,
            secret,
        } => {
            let w = ctx
                .fleet
                .add_webhook(url, events, secret.as_deref())
                .await?;
            println!("added webhook {} -> {} ({})", w.id, w.url, w.events);
            if secret.is_none() {
                println!(
                    "secret {} (shown once: verify webhook-signature with it)",
                    w.secret
                );
            }
        }
        WebhookCmd::List => {
            let rows: Vec<Vec<String>> = ctx
                .fleet
                .webhooks()
                .await?
                .into_iter()
                .map(|w| vec![w.id, w.url, w.events, time(w.created_ms)])
                .collect();
            table(&["ID", "URL", "EVENTS", "CREATED"], &rows);
        }
        WebhookCmd::Rm { id } => {
            ctx.fleet.remove_webhook(id).await?;
            println!("removed webhook {id}");
        }
        WebhookCmd::Deliveries { id, json } => {
            let d = ctx.fleet.deliveries(id, 100).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = d
                .into_iter()
                .map(|d| {
                    vec![
                        d.event.to_string(),
                        d.state,
                        d.attempts.to_string(),
                        d.last_code.map(|c| c.to_string()).unwrap_or_default(),
                        d.last_error.unwrap_or_default(),
                        time(d.updated_ms),
                    ]
                })
                .collect();
            table(
                &["EVENT", "STATE", "TRIES", "CODE", "ERROR", "UPDATED"],
                &rows,
            );
        }
    }
    Ok(())
}
