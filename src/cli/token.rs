//! `tabula token …`: create, list, revoke the API's scoped tokens. Parses and prints
//! only: the token domain is [`crate::auth`]. `create` prints the token once, alone on
//! stdout (so `TOKEN=$(tabula token create …)` works); only its hash is stored.

use clap::Subcommand;

use super::{Ctx, table, time};
use crate::auth::{self, Scope};

#[derive(Debug, Subcommand)]
pub(super) enum TokenCmd {
    /// Create a token for the API and print it (once: only its hash is kept)
    Create {
        /// Its name: the actor recorded for its writes (1-64 of A-Z a-z 0-9 - _)
        name: String,
        /// read (every GET), operate (also machines, pins, boot actions), admin (everything)
        #[arg(long)]
        scope: String,
        /// Valid for this long (e.g. 90d, 12h); default: until revoked
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List tokens (never their secrets)
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the API refuses it from now on
    Revoke { name: String },
}

pub(super) async fn run(ctx: &Ctx, cmd: &TokenCmd) -> anyhow::Result<()> {
    let store = ctx.store();
    match cmd {
        TokenCmd::Create {
            name,
            scope,
            expires,
        } => {
            let scope: Scope = scope.parse()?;
            let expires = expires.as_deref().map(auth::parse_expiry).transpose()?;
            let issued = auth::create(store, name, scope, expires).await?;
            println!("{}", issued.token);
            eprintln!(
                "created token {name} (scope {scope}{}); it is not shown again",
                issued
                    .row
                    .expires_ms
                    .map(|e| format!(", expires {}", time(e)))
                    .unwrap_or_default()
            );
        }
        TokenCmd::List { json } => {
            let rows = auth::list(store).await?;
            let now = crate::store::now_ms();
            let state = |t: &crate::store::TokenRow| {
                if t.revoked_ms.is_some() {
                    "revoked"
                } else if t.expires_ms.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                }
            };
            if *json {
                for t in &rows {
                    let mut v = serde_json::to_value(t)?;
                    v["state"] = state(t).into();
                    println!("{v}");
                }
                return Ok(());
            }
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.scope.clone(),
                        state(t).to_string(),
                        time(t.created_ms),
                        t.expires_ms.map(time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            table(&["NAME", "SCOPE", "STATE", "CREATED", "EXPIRES"], &rows);
        }
        TokenCmd::Revoke { name } => {
            auth::revoke(store, name).await?;
            println!("revoked token {name}");
        }
    }
    Ok(())
}
