//! The `tabula` command line. Arguments are parsed by clap with no side effects, then
//! [`Ctx`] opens the validated config and the stores once; each command file only
//! turns arguments into library calls and prints results. The CLI works directly on
//! the stores (no daemon needed); a running daemon picks changes up by store revision.
//! With `--server URL` the state commands go through the API instead ([`remote`]), with
//! the same printers.
//!
//! Errors print as one line (`error: …`) with exit status 1; usage errors exit 2.

mod build;
mod doctor;
mod events;
mod explain;
mod image;
mod lab;
mod lease;
mod machine;
mod pin;
mod remote;
mod remote_fleet;
mod remote_image;
mod rollout;
mod serve;
mod server;
mod token;
mod webhook;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::fleet::Fleet;
use crate::images::BlobStore;
use crate::inventory::{Inventory, Settings};
use crate::store::Store;

/// tabula: bare-metal netboot where every boot is a clean slate.
#[derive(Debug, Parser)]
#[command(name = "tabula", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: /etc/tabula/tabula.toml if it exists, else built-in defaults]
    #[arg(long, global = true, env = "TABULA_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// State directory (image store and database); overrides server.data_dir
    #[arg(long, global = true, env = "TABULA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax), e.g. "debug" or "tabula=trace"
    #[arg(long, global = true, env = "TABULA_LOG", default_value = "warn")]
    log: String,
    /// Log line format: `text` for a person, `json` for a collector (one object per line)
    #[arg(long, global = true, env = "TABULA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Talk to this tabula's API (http://HOST:PORT or https://HOST:PORT) instead of opening the local store;
    /// the token comes from TABULA_TOKEN or --token-file (machine, pin, image, explain,
    /// events, lease)
    #[arg(long, global = true, env = "TABULA_SERVER", value_name = "URL")]
    server: Option<String>,
    /// File holding the API token for --server (instead of TABULA_TOKEN)
    #[arg(long, global = true, env = "TABULA_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// An extra root CA (PEM) to trust for an https:// --server, besides the system's
    #[arg(long, global = true, env = "TABULA_CA_FILE", value_name = "PATH")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the DHCP, TFTP and HTTP services
    Serve,
    /// Check and show configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Publish, list, tag and retire image versions
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// Manage the machine inventory
    #[command(subcommand)]
    Machine(machine::MachineCmd),
    /// Pin targets (MAC, machine, label selector, default) to image versions
    #[command(subcommand)]
    Pin(pin::PinCmd),
    /// Roll a new image version out to machines in steps, gated by their boots
    #[command(subcommand)]
    Rollout(rollout::RolloutCmd),
    /// Send fleet events (boots, rollbacks, rollouts, boot-once) to HTTP receivers
    #[command(subcommand)]
    Webhook(webhook::WebhookCmd),
    /// Show what a machine would boot right now, and why
    Explain(explain::ExplainArgs),
    /// Show boot events (every stage of every boot), optionally for one MAC
    Events(events::EventsArgs),
    /// Show DHCP leases
    #[command(subcommand)]
    Lease(lease::LeaseCmd),
    /// Show the servers sharing this store (membership, roles)
    #[command(subcommand)]
    Server(server::ServerCmd),
    /// Check this host for serving: interfaces, ports, capabilities, loaders, store, disk
    Doctor,
    /// Boot QEMU machines through tabula in a private network namespace (root)
    Lab(lab::LabArgs),
    /// Create, list and revoke the API's scoped tokens
    #[command(subcommand)]
    Token(token::TokenCmd),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Validate a configuration file and print the effective settings
    Check {
        /// File to check [default: --config, or /etc/tabula/tabula.toml]
        path: Option<PathBuf>,
        /// Print the effective configuration as JSON
        #[arg(long)]
        json: bool,
    },
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a person at a terminal: escape sequences in a log file or the
    // journal are noise at best.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => fmt.with_ansi(colour).init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    if matches!(cli.command, Command::Serve) {
        return serve::main(&cli);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// One line per configured loader that TFTP and HTTP could not serve on this host, with
/// its fix; none when neither front end is enabled, and none for a loader no front end
/// would hand out (`loader_files::handed_out`: DHCP off and the default name).
fn loader_warnings(cfg: &Config) -> Vec<String> {
    if !cfg.tftp.enabled && !cfg.http.enabled {
        return Vec::new();
    }
    let (_, checks) = crate::loader_files::LoaderFiles::resolve(&cfg.tftp.root, &cfg.dhcp.loaders);
    checks
        .iter()
        .filter(|c| c.handed_out(cfg.dhcp.mode))
        .filter_map(|c| c.problem())
        .collect()
}

/// Joins an error chain into one line, without repeating a cause already in the message.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace('\n', " ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Host commands (config, doctor, lab) ignore --server; the state commands go remote.
    if let Some(server) = cli.server.as_deref().filter(|s| !s.is_empty())
        && remote::applies(&cli.command)
    {
        return remote::run(
            &cli.command,
            server,
            cli.token_file.as_deref(),
            cli.ca_file.as_deref(),
        )
        .await;
    }
    match &cli.command {
        Command::Config(ConfigCmd::Check { path, json }) => {
            let path = path
                .clone()
                .or(cli.config.clone())
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
            let cfg = Config::load(&path, cli.data_dir.as_deref())?;
            // The file is valid; the loaders it names are host state, checked as `serve`
            // resolves them: a warning each (stderr), never a failed check, since a
            // config may be checked before its host has the loaders installed.
            let warnings = loader_warnings(&cfg);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&cfg)?);
            } else {
                println!(
                    "{}: ok (dhcp {:?}, {} subnet(s), tftp {}, http {} → {}, api {}, data {}){}",
                    path.display(),
                    cfg.dhcp.mode,
                    cfg.dhcp.subnets.len(),
                    cfg.tftp.listen,
                    cfg.http.listen,
                    cfg.http.public_url,
                    if cfg.api.enabled {
                        cfg.api.listen.to_string()
                    } else {
                        "off".to_string()
                    },
                    cfg.data_dir.display(),
                    match warnings.len() {
                        0 => String::new(),
                        n => format!("; {n} loader(s) cannot be served, see the warnings"),
                    }
                );
            }
            Ok(())
        }
        Command::Serve => anyhow::bail!("`serve` runs on runtimes of its own (cli/serve.rs)"),
        Command::Doctor => {
            doctor::run(&load_config(
                cli.config.as_deref(),
                cli.data_dir.as_deref(),
            )?)
            .await
        }
        Command::Image(cmd) => image::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Machine(cmd) => machine::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Pin(cmd) => pin::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Rollout(cmd) => rollout::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Webhook(cmd) => webhook::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Explain(args) => explain::run(&Ctx::open(&cli).await?, args).await,
        Command::Events(args) => events::run(&Ctx::open(&cli).await?, args).await,
        Command::Lease(cmd) => lease::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Token(cmd) => token::run(&Ctx::open(&cli).await?, cmd).await,
        Command::Server(cmd) => {
            let every = load_config(cli.config.as_deref(), None)?.ha.heartbeat;
            server::run(&Ctx::open(&cli).await?, every, cmd).await
        }
        Command::Lab(args) => {
            // An explicit --data-dir is the lab's; otherwise a lab dir under the data dir.
            let data_dir = match &cli.data_dir {
                Some(d) => d.clone(),
                None => load_config(cli.config.as_deref(), None)?
                    .data_dir
                    .join("lab"),
            };
            lab::run(args, data_dir).await
        }
    }
}

/// What every state-touching command needs, opened once.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The one write path and its read models.
    pub fleet: Fleet,
    /// The state directory (builds work under `<data_dir>/build/`).
    pub data_dir: PathBuf,
    /// The configured loaders and boot programs (`tabula explain` names them).
    pub loaders: config::Loaders,
}

impl Ctx {
    async fn open(cli: &Cli) -> anyhow::Result<Ctx> {
        let config = load_config(cli.config.as_deref(), cli.data_dir.as_deref())?;
        let blobs = BlobStore::open(&config.blob_dir())?;
        let store = Store::open(&config.store_url).await?;
        let settings = Settings {
            unknown_machines: config.boot.unknown_machines,
            console: config.boot.console.clone(),
            base_url: config.http.public_url.clone(),
        };
        Ok(Ctx {
            fleet: Fleet::new(std::sync::Arc::new(
                Inventory::new(store, blobs, settings)
                    .with_quarantine_ignore(config.health.quarantine == config::Quarantine::Ignore),
            )),
            data_dir: config.data_dir.clone(),
            loaders: config.dhcp.loaders.clone(),
        })
    }

    pub(crate) fn inventory(&self) -> &Inventory {
        self.fleet.inventory()
    }

    pub(crate) fn store(&self) -> &Store {
        self.fleet.store()
    }

    pub(crate) fn blobs(&self) -> &BlobStore {
        self.fleet.blobs()
    }
}

fn load_config(path: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Config> {
    let cfg = match path {
        Some(p) => Config::load(p, data_dir),
        None if Path::new(config::DEFAULT_PATH).exists() => {
            Config::load(Path::new(config::DEFAULT_PATH), data_dir)
        }
        None => Ok(Config::defaults(data_dir)),
    };
    cfg.context("configuration")
}

/// Formats Unix milliseconds as RFC 3339 UTC (seconds).
pub(crate) fn time(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Prints rows as left-aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}
