//! `tabula doctor`: runs the host checks (`crate::doctor`) for the configuration and prints
//! one line per check (ok / warn / fail, with the fix). Exit status 1 when any check fails,
//! so scripts and `ExecStartPre=` can gate on it. Changes nothing.

use crate::config::Config;
use crate::doctor::{self, Status};

/// Prints the report; an error (exit 1) when something failed.
pub(super) async fn run(config: &Config) -> anyhow::Result<()> {
    let facts = doctor::probe(config).await;
    let checks = doctor::checks(config, &facts);
    println!(
        "tabula {} doctor, config {}",
        crate::VERSION,
        config
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<built-in defaults>".into())
    );
    for c in &checks {
        println!("{}", c.line());
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed, {warned} warning(s)");
    }
    Ok(())
}
