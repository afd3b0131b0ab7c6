//! The configuration file as written: a serde model of `tabula.toml` with
//! `deny_unknown_fields` on every table, so a typo is an error rather than a silently
//! ignored setting. Nothing here is validated beyond types; see [`super::Config`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub store: StoreFile,
    pub boot: BootFile,
    pub dhcp: DhcpFile,
    pub tftp: TftpFile,
    pub http: HttpFile,
    pub events: EventsFile,
    pub api: ApiFile,
    pub ha: HaFile,
    pub health: HealthFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub data_dir: Option<PathBuf>,
    pub advertise: Option<Ipv4Addr>,
    pub user: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreFile {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootFile {
    pub unknown_machines: Option<String>,
    pub console: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpFile {
    pub mode: Option<String>,
    pub interfaces: Vec<String>,
    pub listen_port: Option<u16>,
    pub proxy_port: Option<u16>,
    pub chainload: Option<String>,
    pub router_advertisement: Option<bool>,
    pub lease_time: Option<String>,
    pub loaders: LoadersFile,
    pub programs: ProgramsFile,
    pub subnets: Vec<SubnetFile>,
    pub reservations: Vec<ReservationFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadersFile {
    pub bios: Option<String>,
    pub efi_ia32: Option<String>,
    pub efi_x64: Option<String>,
    pub efi_arm64: Option<String>,
    pub shim_x64: Option<String>,
    pub grub_x64: Option<String>,
    pub grub_arm64: Option<String>,
}

/// `[dhcp.programs]`: the boot program per firmware kind (`ipxe` or `grub`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramsFile {
    pub bios: Option<String>,
    pub efi_ia32: Option<String>,
    pub efi_x64: Option<String>,
    pub efi_arm64: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetFile {
    pub network: Ipv4Net,
    #[serde(default)]
    pub pools: Vec<String>,
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationFile {
    pub mac: String,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TftpFile {
    pub enabled: Option<bool>,
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub max_transfers: Option<usize>,
    pub max_transfers_per_client: Option<usize>,
    pub max_blksize: Option<u16>,
    pub max_windowsize: Option<u16>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFile {
    pub enabled: Option<bool>,
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub idle_timeout: Option<String>,
    pub head_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub attribution_window: Option<String>,
    pub require_lease_match: Option<bool>,
    pub admission: AdmissionFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionFile {
    pub max_streams: Option<usize>,
    pub max_queue: Option<usize>,
    pub max_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiFile {
    pub enabled: Option<bool>,
    pub listen: Option<SocketAddr>,
    pub metrics_token_required: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsFile {
    pub retention: Option<String>,
    pub queue_events: Option<usize>,
    pub queue_bytes: Option<usize>,
    pub max_detail_bytes: Option<usize>,
    pub per_mac_per_minute: Option<u32>,
    pub per_peer_per_minute: Option<u32>,
    pub refusals_per_minute: Option<u32>,
}

/// `[ha]`: several servers on one store (see `super::ha`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaFile {
    pub heartbeat: Option<String>,
    pub leader_ttl: Option<String>,
    pub load_balance: Option<bool>,
    pub load_balance_max_secs: Option<u16>,
}

/// `[health]`: boot attempts, their deadline and automatic rollback (issue 14).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthFile {
    pub max_tries: Option<u32>,
    pub boot_deadline: Option<String>,
    pub quarantine: Option<super::Quarantine>,
}
