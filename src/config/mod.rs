//! Configuration: the TOML file model ([`file`]) is parsed once and validated once into
//! a [`Config`] that the rest of tabula reads without re-checking. Every error names the
//! file, the key and the reason, on one line.
//!
//! Resolution order for each setting: command-line flag or environment variable (only
//! `--data-dir` / `TABULA_DATA_DIR`), then the file, then the built-in default.

mod file;
mod ha;
mod programs;
mod validate;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::boot::{BootProgram, Firmware, Mac};

pub use file::FileConfig;
pub use ha::HaConfig;

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/tabula/tabula.toml";
/// Where state lives when neither `--data-dir` nor `server.data_dir` says.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/tabula";

/// A configuration problem, always pointing at the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key/type is wrong.
    #[error("{file}:{line}: key `{key}`: {reason}")]
    Parse {
        file: String,
        line: usize,
        key: String,
        reason: String,
    },
    /// The values parse but do not make sense together.
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// How tabula takes part in DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// Authoritative server for the configured subnets.
    Full,
    /// proxyDHCP beside another server: boot information only, no addresses.
    Proxy,
    /// No DHCP; another server points machines at tabula.
    Off,
}

/// What to do with a machine that is not in the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownMachines {
    /// Boot it with the default pin.
    Default,
    /// Do not answer it.
    Ignore,
}

/// How to treat a client whose NIC ROM is already iPXE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Chainload {
    /// Always hand out the configured loader first (once per boot), then the script.
    LoaderFirst,
    /// An iPXE client goes straight to its script.
    Script,
}

/// One subnet tabula serves addresses on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Subnet {
    pub network: Ipv4Net,
    /// Inclusive address ranges handed out dynamically.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: Duration,
}

/// A fixed address from the config file (the inventory can also fix addresses).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reservation {
    pub mac: Mac,
    pub address: Ipv4Addr,
    pub hostname: Option<String>,
}

/// Loader file names (relative to the TFTP root) per firmware, and the boot program
/// each firmware kind gets ([`Programs`]): iPXE loaders by default, GRUB's (behind shim
/// on x64 when `shim_x64` is set) where `[dhcp.programs]` says `grub`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Loaders {
    pub bios: String,
    pub efi_ia32: String,
    pub efi_x64: String,
    pub efi_arm64: String,
    /// Debian's `shimx64.efi.signed`: handed to x64 UEFI machines booting GRUB, which
    /// then loads `grubx64.efi` from the same TFTP directory (Secure Boot).
    pub shim_x64: Option<String>,
    /// GRUB for x64 UEFI (Debian's `grubnetx64.efi.signed`).
    pub grub_x64: Option<String>,
    /// GRUB for ARM64 UEFI (Debian's `grubnetaa64.efi`).
    pub grub_arm64: Option<String>,
    pub programs: Programs,
}

impl Default for Loaders {
    fn default() -> Loaders {
        let d = |k| Loaders::default_name(k).unwrap_or_default().to_string();
        Loaders {
            bios: d("bios"),
            efi_ia32: d("efi_ia32"),
            efi_x64: d("efi_x64"),
            efi_arm64: d("efi_arm64"),
            shim_x64: None,
            grub_x64: None,
            grub_arm64: None,
            programs: Programs::default(),
        }
    }
}

/// The name shim loads as its second stage, from the directory it was loaded from.
pub const SHIM_SECOND_STAGE: &str = "grubx64.efi";

impl Loaders {
    /// What `tabula explain` says of the boot program firmware `fw` gets: the program,
    /// the key that chose it, what DHCP hands the machine first and what it fetches from
    /// tabula (`ipxe (dhcp.programs.bios = "ipxe"): undionly.kpxe -> /boot/<mac>/boot.ipxe`).
    pub fn program_line(&self, fw: Firmware, mac: Mac) -> String {
        let program = self.programs.for_firmware(fw);
        let urls = crate::boot::Urls::new("");
        let chain = match program {
            BootProgram::Ipxe => format!("{} -> {}", self.for_firmware(fw), urls.script_path(mac)),
            BootProgram::Grub => {
                let mut c = self.for_firmware(fw).to_string();
                if fw.arch() == crate::boot::Arch::X86_64 && self.shim_x64.is_some() {
                    c.push_str(&format!(" -> {SHIM_SECOND_STAGE}"));
                }
                format!(
                    "{c} -> TFTP grub/grub.cfg -> /boot/{}/grub.cfg",
                    mac.hyphenated()
                )
            }
        };
        format!("{program} ({} = \"{program}\"): {chain}", Programs::key(fw))
    }

    /// The name each firmware key gets when the configuration sets none.
    pub const DEFAULTS: [(&'static str, &'static str); 4] = [
        ("bios", "undionly.kpxe"),
        ("efi_ia32", "ipxe-ia32.efi"),
        ("efi_x64", "snponly.efi"),
        ("efi_arm64", "ipxe-arm64.efi"),
    ];

    /// The default name of firmware key `key` (`bios`, `efi_ia32`, …).
    pub fn default_name(key: &str) -> Option<&'static str> {
        Self::DEFAULTS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| *n)
    }

    /// The file a firmware is handed first: its iPXE loader, or for GRUB, shim (x64,
    /// when configured) or GRUB itself. Validation makes sure a GRUB firmware has its
    /// loader; a missing one falls back to the iPXE loader.
    pub fn for_firmware(&self, fw: Firmware) -> &str {
        if self.programs.for_firmware(fw) == BootProgram::Grub {
            let grub = match fw {
                Firmware::EfiX64 | Firmware::EfiX64Http => {
                    self.shim_x64.as_deref().or(self.grub_x64.as_deref())
                }
                Firmware::EfiArm64 | Firmware::EfiArm64Http => self.grub_arm64.as_deref(),
                Firmware::Bios | Firmware::EfiIa32 => None,
            };
            if let Some(g) = grub {
                return g;
            }
        }
        self.ipxe_for(fw)
    }

    /// What the firmware's own PXE of a machine pinned `local` is handed: GRUB for x64 and
    /// ARM64 UEFI when that GRUB loader is configured (shim first when set), whatever
    /// `[dhcp.programs]` says, because GRUB finds and chainloads the disk's boot program
    /// itself, while iPXE can only exit back to the firmware, which then tries its other
    /// network boot options first (OVMF: minutes; README "Local boot on UEFI"). Otherwise
    /// what a boot of that firmware is handed.
    pub fn local_for(&self, fw: Firmware) -> &str {
        let grub = match fw {
            Firmware::EfiX64 => self.shim_x64.as_deref().or(self.grub_x64.as_deref()),
            Firmware::EfiArm64 => self.grub_arm64.as_deref(),
            _ => None,
        };
        grub.unwrap_or_else(|| self.for_firmware(fw))
    }

    /// The iPXE loader for a firmware.
    pub fn ipxe_for(&self, fw: Firmware) -> &str {
        match fw {
            Firmware::Bios => &self.bios,
            Firmware::EfiIa32 => &self.efi_ia32,
            Firmware::EfiX64 | Firmware::EfiX64Http => &self.efi_x64,
            Firmware::EfiArm64 | Firmware::EfiArm64Http => &self.efi_arm64,
        }
    }

    /// Every configured loader as `(key, name)`: the four iPXE ones, then the GRUB ones
    /// that are set.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![
            ("bios", self.bios.as_str()),
            ("efi_ia32", self.efi_ia32.as_str()),
            ("efi_x64", self.efi_x64.as_str()),
            ("efi_arm64", self.efi_arm64.as_str()),
        ];
        for (k, n) in [
            ("shim_x64", &self.shim_x64),
            ("grub_x64", &self.grub_x64),
            ("grub_arm64", &self.grub_arm64),
        ] {
            if let Some(n) = n {
                v.push((k, n.as_str()));
            }
        }
        v
    }
}

/// `[dhcp.programs]`: which boot program each firmware kind gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Programs {
    pub bios: BootProgram,
    pub efi_ia32: BootProgram,
    pub efi_x64: BootProgram,
    pub efi_arm64: BootProgram,
}

impl Programs {
    /// The program of a firmware (UEFI HTTP boot counts as its architecture's UEFI).
    pub fn for_firmware(&self, fw: Firmware) -> BootProgram {
        match fw {
            Firmware::Bios => self.bios,
            Firmware::EfiIa32 => self.efi_ia32,
            Firmware::EfiX64 | Firmware::EfiX64Http => self.efi_x64,
            Firmware::EfiArm64 | Firmware::EfiArm64Http => self.efi_arm64,
        }
    }

    /// The config key of a firmware's program (`dhcp.programs.efi_x64`).
    pub fn key(fw: Firmware) -> &'static str {
        match fw {
            Firmware::Bios => "dhcp.programs.bios",
            Firmware::EfiIa32 => "dhcp.programs.efi_ia32",
            Firmware::EfiX64 | Firmware::EfiX64Http => "dhcp.programs.efi_x64",
            Firmware::EfiArm64 | Firmware::EfiArm64Http => "dhcp.programs.efi_arm64",
        }
    }
}

/// DHCP settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    pub interfaces: Vec<String>,
    pub listen_port: u16,
    pub proxy_port: u16,
    pub chainload: Chainload,
    pub router_advertisement: bool,
    pub loaders: Loaders,
    pub subnets: Vec<Subnet>,
    pub reservations: Vec<Reservation>,
}

/// TFTP settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TftpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub max_transfers: usize,
    /// Concurrent transfers from one IP address.
    pub max_transfers_per_client: usize,
    pub max_blksize: u16,
    pub max_windowsize: u16,
    pub timeout: Duration,
    pub retries: u32,
}

/// HTTP settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The base URL machines use to reach tabula's HTTP server, without a trailing slash.
    pub public_url: String,
    /// Bounded root-image streams and their queue (`[http.admission]`).
    pub admission: AdmissionConfig,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Duration,
    /// A whole request head must arrive within this long of its first byte.
    pub head_timeout: Duration,
    /// A whole request body must arrive within this long of its head.
    pub body_timeout: Duration,
    /// An answer making no progress for this long (the client stopped reading) is cut.
    pub send_timeout: Duration,
    /// Open connections in total (a new peer still gets a small headroom past it).
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_client: usize,
    /// How long after a MAC was served a script a download attributed to it counts as
    /// that boot's (`http::attribution`).
    pub attribution_window: Duration,
    /// Requests naming a MAC only from the address DHCP leased that MAC
    /// (`http::lease_match`); `dhcp.mode = "full"` only.
    pub require_lease_match: bool,
}

/// The API listener: the control plane (`src/api/`), apart from what machines fetch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// `GET /metrics` needs a `read` token (default: open, like `/healthz`).
    pub metrics_token_required: bool,
    /// `api.tls_cert` and `api.tls_key`: serve the API over TLS (both or neither).
    pub tls: Option<ApiTls>,
}

/// The PEM files of the API's TLS: its certificate chain (server first) and private
/// key. Read when `tabula serve` binds, before it drops privileges.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the API listens by default: loopback only, until it has authentication.
pub const DEFAULT_API_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));

/// Policy settings shared by every front end.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BootConfig {
    pub unknown_machines: UnknownMachines,
    /// Serial console argument added to every kernel command line (`console=ttyS0,115200`), if any.
    pub console: Option<String>,
}

/// The validated configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    /// The file it came from, if any (defaults only otherwise).
    pub source: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub advertise: Option<Ipv4Addr>,
    /// The user `tabula serve` drops to after binding its sockets, when started as root
    /// (`None`: stay as started).
    pub user: Option<String>,
    pub store_url: String,
    pub boot: BootConfig,
    pub dhcp: DhcpConfig,
    pub tftp: TftpConfig,
    pub http: HttpConfig,
    pub events: EventsConfig,
    pub api: ApiConfig,
    /// `server.id` and `[ha]`: this server's name in the fleet and its timings.
    pub ha: HaConfig,
    /// `[health]`: boot attempts and automatic rollback.
    pub health: BootHealthConfig,
}

/// The boot history.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventsConfig {
    /// Events older than this are deleted in the background.
    pub retention: Duration,
    /// Most events queued for the writer.
    pub queue_events: usize,
    /// Most bytes of event detail queued for the writer.
    pub queue_bytes: usize,
    /// A detail longer than this is replaced by a note saying how long it was.
    pub max_detail_bytes: usize,
    /// Reports and download attributions recorded per MAC per minute (a token bucket).
    pub per_mac_per_minute: u32,
    /// Reports and download attributions recorded per client address per minute.
    pub per_peer_per_minute: u32,
    /// DHCP refusal (`ignored`) events recorded per minute, all clients together.
    pub refusals_per_minute: u32,
}

/// What a machine with no known good manifest gets once it has spent its tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quarantine {
    /// Its script says "boot from the local disk".
    Local,
    /// It gets no answer at all.
    Ignore,
}

/// `[health]`: how boots are judged.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct BootHealthConfig {
    /// Failed tries of one manifest before the machine is held on its last known good.
    pub max_tries: u32,
    /// An attempt still unreported this long after its script was served has timed out.
    pub boot_deadline: Duration,
    /// What a machine gets when no known good exists.
    pub quarantine: Quarantine,
}

/// The user `tabula serve` runs as by default once its sockets are bound.
pub const DEFAULT_USER: &str = "tabula";

/// How long boot events are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Config {
    /// Reads and validates a file. `data_dir` (from `--data-dir`) overrides the file.
    pub fn load(path: &Path, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &name, data_dir)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The configuration used when no file exists: every default, with `data_dir`.
    pub fn defaults(data_dir: Option<&Path>) -> Config {
        Config::parse("", "<defaults>", data_dir).unwrap_or_else(|e| {
            // The empty file is tested to validate; reaching this is a bug in the defaults.
            unreachable!("built-in defaults do not validate: {e}")
        })
    }

    /// Parses and validates TOML text; `name` is used in error messages.
    pub fn parse(text: &str, name: &str, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let model = parse_model(text, name)?;
        validate::validate(model, name, data_dir)
    }

    /// Where the content-addressed blobs live.
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}

/// Parses TOML into the file model, reporting the dotted key path of any error.
pub fn parse_model(text: &str, name: &str) -> Result<FileConfig, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
        file: name.to_string(),
        line: line_of(e.span()),
        key: "(syntax)".to_string(),
        reason: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Parse {
            file: name.to_string(),
            line: line_of(inner.span()),
            key,
            reason: inner.message().trim().replace('\n', " "),
        }
    })
}

#[cfg(test)]
mod tests;

/// Limits of root-image streams, from `[http.admission]` (enforced by `http::admission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdmissionConfig {
    /// Root-image streams sent at once (0: no limit).
    pub max_streams: usize,
    /// Machines waiting for a slot before more are answered 503.
    pub max_queue: usize,
    /// Longest wait for a slot before the machine is answered 503.
    pub max_wait: Duration,
}

impl Default for AdmissionConfig {
    /// Right for a 10 Gbit/s server: 32 streams of ~310 Mbit/s each keep the link full
    /// (one TCP stream on a LAN does several Gbit/s), a queue for a room of machines,
    /// and a wait below the initramfs's 300 s fetch timeout.
    fn default() -> Self {
        AdmissionConfig {
            max_streams: 32,
            max_queue: 4096,
            max_wait: Duration::from_secs(240),
        }
    }
}
