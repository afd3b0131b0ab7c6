//! A boot-storm client: N simulated machines, each with its own MAC, booting as PXE
//! firmware, then iPXE, then the initramfs would ([`machine`]), against any server that
//! speaks DHCP, TFTP and HTTP (tabula, or dnsmasq + nginx). Used by `examples/storm.rs`
//! (`bench/storm.sh`) and the storm test, so both drive servers with the same code.
//!
//! Needs: a network namespace of its own (it binds port 68 and sends broadcast DHCP on
//! `iface`), and every address the server may lease present on `iface` (a machine binds
//! its TFTP and HTTP sockets to its leased address, so the server sees one client per
//! machine). Every wait is bounded by the firmware's schedule and by `deadline`.
//! Not part of the server; hidden from the docs.

pub mod dhcp;
pub mod http;
mod machine;
pub mod netboot;
pub mod script;
pub mod tftp;

use std::collections::BTreeMap;
use std::time::Duration;

pub use machine::Record;

use crate::boot::Mac;

/// What to run.
#[derive(Clone, Debug)]
pub struct Storm {
    /// The interface DHCP goes out on.
    pub iface: String,
    pub machines: usize,
    /// MACs are `02:5a:<salt>:<i>` (locally administered), `i` from 0.
    pub salt: u8,
    /// Power-ons are spread evenly over this (0: all at once).
    pub spread: Duration,
    /// A machine still booting after this is recorded as failed.
    pub deadline: Duration,
}

impl Storm {
    /// Machine `i`'s MAC.
    pub fn mac(&self, i: usize) -> Mac {
        let b = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
        Mac([0x02, 0x5a, self.salt, b[1], b[2], b[3]])
    }
}

/// Runs the storm; one record per machine, in MAC order.
pub async fn run(storm: &Storm) -> std::io::Result<Vec<Record>> {
    let dhcp = dhcp::Dhcp::bind(&storm.iface)?;
    let epoch = tokio::time::Instant::now();
    let n = storm.machines.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..storm.machines {
        let (dhcp, mac) = (dhcp.clone(), storm.mac(i));
        let delay = storm.spread.mul_f64(i as f64 / n as f64);
        let xid = (u32::from(storm.salt) << 24) | (u32::try_from(i).unwrap_or(0) << 2);
        let deadline = storm.deadline;
        tasks.spawn(async move {
            let boot = machine::boot(&dhcp, mac, xid, epoch, delay);
            match tokio::time::timeout(deadline + delay, boot).await {
                Ok(r) => r,
                Err(_) => Record {
                    mac: mac.to_string(),
                    failed: Some("deadline".into()),
                    error: Some(format!("still booting after {deadline:?}")),
                    ..Record::default()
                },
            }
        });
    }
    let mut out = Vec::with_capacity(storm.machines);
    while let Some(r) = tasks.join_next().await {
        out.push(r.map_err(std::io::Error::other)?);
    }
    out.sort_by(|a, b| a.mac.cmp(&b.mac));
    Ok(out)
}

/// Percentiles of one measure, in seconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    /// Nearest-rank percentiles (zeros for no values).
    pub fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |pct: usize| v[(pct * v.len()).div_ceil(100).clamp(1, v.len()) - 1];
        Spread {
            p50: at(50),
            p95: at(95),
            p99: at(99),
            max: v[v.len() - 1],
        }
    }
}

/// The figures a storm is judged by.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub machines: usize,
    pub booted: usize,
    pub success_rate: f64,
    /// Power-on to booted, of the booted.
    pub time_to_booted: Spread,
    pub phases: BTreeMap<&'static str, Spread>,
    pub dhcp_retransmits: u64,
    pub tftp_retransmits: u64,
    pub http_retries: u64,
    /// Failures by phase.
    pub failed: BTreeMap<String, usize>,
    pub bytes: u64,
    /// Storm start to the last `booted`.
    pub makespan_s: f64,
}

impl Summary {
    pub fn of(records: &[Record]) -> Summary {
        let booted: Vec<&Record> = records.iter().filter(|r| r.ok).collect();
        let mut phases: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for r in records {
            for (k, v) in &r.phases {
                phases.entry(k).or_default().push(*v);
            }
        }
        let mut failed = BTreeMap::new();
        for r in records.iter().filter(|r| !r.ok) {
            *failed
                .entry(r.failed.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
        Summary {
            machines: records.len(),
            booted: booted.len(),
            success_rate: booted.len() as f64 / records.len().max(1) as f64,
            time_to_booted: Spread::of(booted.iter().filter_map(|r| r.booted_s).collect()),
            phases: phases
                .into_iter()
                .map(|(k, v)| (k, Spread::of(v)))
                .collect(),
            dhcp_retransmits: records.iter().map(|r| u64::from(r.dhcp_retransmits)).sum(),
            tftp_retransmits: records.iter().map(|r| u64::from(r.tftp_retransmits)).sum(),
            http_retries: records.iter().map(|r| u64::from(r.http_retries)).sum(),
            failed,
            bytes: records.iter().map(|r| r.bytes).sum(),
            makespan_s: booted
                .iter()
                .map(|r| r.start_s + r.booted_s.unwrap_or(0.0))
                .fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Spread::of((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Spread::of(vec![3.0]).p50, 3.0);
        assert_eq!(Spread::of(vec![]), Spread::default());
    }

    #[test]
    fn macs_are_local_and_distinct() {
        let s = Storm {
            iface: "x".into(),
            machines: 3,
            salt: 7,
            spread: Duration::ZERO,
            deadline: Duration::from_secs(1),
        };
        assert_eq!(s.mac(0).to_string(), "02:5a:07:00:00:00");
        assert_eq!(s.mac(513).to_string(), "02:5a:07:00:02:01");
    }
}
