//! `tabula serve`: binds every socket on a single-threaded runtime, drops to
//! `server.user` while the process still has one thread (capabilities are per thread:
//! see `privilege`), opens the store as that user, then serves on the multi-threaded runtime until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::{Cli, load_config, one_line};

/// Runs `tabula serve` to its end.
pub(super) fn main(cli: &Cli) -> ExitCode {
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli.config.as_deref(), cli.data_dir.as_deref())?;
    let detached = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let detached = rt.block_on(async {
            let bound = crate::daemon::Bound::from_config(&config).await?;
            anyhow::Ok(bound.detach()?)
        })?;
        rt.shutdown_timeout(Duration::from_secs(1));
        detached
    };
    crate::privilege::drop_privileges(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let bound = detached.attach()?;
        // Opened as server.user (after the drop), so a new SQLite file is that user's.
        let store = crate::store::Store::open(&config.store_url).await?;
        for line in bound.describe() {
            println!("listening: {line}");
        }
        let token = tokio_util::sync::CancellationToken::new();
        crate::daemon::cancel_on_signals(token.clone());
        crate::daemon::run(config, store, bound, token).await?;
        println!("stopped");
        Ok(())
    })
}
