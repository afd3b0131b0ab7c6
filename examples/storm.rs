//! Boot-storm client for `bench/storm.sh`: N simulated machines boot (PXE ROM DHCP,
//! TFTP loader, iPXE DHCP, script, kernel, initrd, initramfs DHCP, root image checked,
//! `booted` report) against whatever server answers on the interface. Prints one JSON
//! line per machine, then one `{"summary": …}` line. The code is `tabula::storm`, which
//! the storm test also drives. Run it inside a network namespace of its own (it binds
//! port 68 and broadcasts DHCP on `--iface`).

use std::time::Duration;

use clap::Parser;
use tabula::storm::{Storm, Summary};

#[derive(Debug, Parser)]
struct Args {
    /// The interface facing the server.
    #[arg(long)]
    iface: String,
    #[arg(long, default_value_t = 100)]
    machines: usize,
    /// Third MAC byte, so runs do not reuse each other's MACs.
    #[arg(long, default_value_t = 0)]
    salt: u8,
    /// Power-ons spread evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    spread_ms: u64,
    /// A machine still booting after this many seconds is failed.
    #[arg(long, default_value_t = 600)]
    deadline_s: u64,
    /// Link rate in bit/s, for the summary's link limit (all bytes ÷ rate).
    #[arg(long)]
    link_bps: Option<f64>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let storm = Storm {
        iface: a.iface.clone(),
        machines: a.machines,
        salt: a.salt,
        spread: Duration::from_millis(a.spread_ms),
        deadline: Duration::from_secs(a.deadline_s),
    };
    let records = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?
        .block_on(tabula::storm::run(&storm))?;
    for r in &records {
        println!("{}", serde_json::to_string(r)?);
    }
    let s = Summary::of(&records);
    let mut v = serde_json::to_value(&s)?;
    if let Some(bps) = a.link_bps {
        let limit = s.bytes as f64 * 8.0 / bps;
        v["link_bps"] = bps.into();
        v["link_limit_s"] = limit.into();
        v["makespan_over_limit"] = (s.makespan_s / limit.max(f64::MIN_POSITIVE)).into();
    }
    println!("{}", serde_json::json!({ "summary": v }));
    Ok(())
}
