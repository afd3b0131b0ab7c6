//! Turns the file model into a [`Config`]: fills defaults, parses durations and ranges,
//! and checks that values agree with each other (pools inside their subnet, one owner
//! per reserved address…). Pure: reads no files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{FileConfig, SubnetFile};
use super::{
    ApiConfig, BootConfig, Chainload, Config, ConfigError, DEFAULT_API_LISTEN, DEFAULT_DATA_DIR,
    DEFAULT_RETENTION, DhcpConfig, DhcpMode, EventsConfig, HttpConfig, Reservation, Subnet,
    TftpConfig, UnknownMachines,
};

pub(super) fn validate(
    f: FileConfig,
    file: &str,
    data_dir_override: Option<&Path>,
) -> Result<Config, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        reason,
    };

    let data_dir: PathBuf = data_dir_override
        .map(Path::to_path_buf)
        .or(f.server.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let store_url = match f.store.url {
        Some(u)
            if u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://") =>
        {
            u
        }
        Some(u) => {
            return Err(bad(
                "store.url",
                format!(
                    "unsupported store {u:?}: sqlite://PATH or postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE"
                ),
            ));
        }
        None => format!("sqlite://{}", data_dir.join("tabula.db").display()),
    };

    let unknown_machines = match f.boot.unknown_machines.as_deref() {
        None | Some("default") => UnknownMachines::Default,
        Some("ignore") => UnknownMachines::Ignore,
        Some(o) => {
            return Err(bad(
                "boot.unknown_machines",
                format!("{o:?} is not one of \"default\", \"ignore\""),
            ));
        }
    };
    if let Some(c) = &f.boot.console
        && (c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
    {
        return Err(bad(
            "boot.console",
            format!("{c:?} must be one kernel argument without spaces"),
        ));
    }

    let mode = match f.dhcp.mode.as_deref() {
        None | Some("off") => DhcpMode::Off,
        Some("full") => DhcpMode::Full,
        Some("proxy") => DhcpMode::Proxy,
        Some(o) => {
            return Err(bad(
                "dhcp.mode",
                format!("{o:?} is not one of \"full\", \"proxy\", \"off\""),
            ));
        }
    };
    let chainload = match f.dhcp.chainload.as_deref() {
        None | Some("loader-first") => Chainload::LoaderFirst,
        Some("script") => Chainload::Script,
        Some(o) => {
            return Err(bad(
                "dhcp.chainload",
                format!("{o:?} is not one of \"loader-first\", \"script\""),
            ));
        }
    };
    let default_lease = duration(
        f.dhcp.lease_time.as_deref().unwrap_or("1h"),
        "dhcp.lease_time",
        file,
    )?;
    let mut subnets = Vec::new();
    for (i, s) in f.dhcp.subnets.into_iter().enumerate() {
        subnets.push(subnet(s, i, default_lease, file)?);
    }
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            if a.network.contains(&b.network.network()) || b.network.contains(&a.network.network())
            {
                return Err(bad(
                    &format!("dhcp.subnets[{}].network", i),
                    format!("{} overlaps {}", a.network, b.network),
                ));
            }
        }
    }
    if mode == DhcpMode::Full && subnets.is_empty() {
        return Err(bad(
            "dhcp.subnets",
            "mode \"full\" needs at least one [[dhcp.subnets]] table".to_string(),
        ));
    }
    let mut reservations: Vec<Reservation> = Vec::new();
    for (i, r) in f.dhcp.reservations.into_iter().enumerate() {
        let key = format!("dhcp.reservations[{i}]");
        let mac = r
            .mac
            .parse()
            .map_err(|e| bad(&format!("{key}.mac"), format!("{e}")))?;
        if !subnets.is_empty() && !subnets.iter().any(|s| s.network.contains(&r.address)) {
            return Err(bad(
                &format!("{key}.address"),
                format!("{} is in no configured subnet", r.address),
            ));
        }
        if let Some(o) = reservations
            .iter()
            .find(|o| o.mac == mac || o.address == r.address)
        {
            return Err(bad(
                &key,
                format!(
                    "conflicts with the reservation of {} for {}",
                    o.address, o.mac
                ),
            ));
        }
        reservations.push(Reservation {
            mac,
            address: r.address,
            hostname: r.hostname,
        });
    }
    let max_blksize = f.tftp.max_blksize.unwrap_or(1468);
    if !(512..=65464).contains(&max_blksize) {
        return Err(bad(
            "tftp.max_blksize",
            format!("{max_blksize} is outside 512..=65464"),
        ));
    }
    let max_windowsize = f.tftp.max_windowsize.unwrap_or(16);
    if !(1..=64).contains(&max_windowsize) {
        return Err(bad(
            "tftp.max_windowsize",
            format!("{max_windowsize} is outside 1..=64"),
        ));
    }
    let tftp = TftpConfig {
        enabled: f.tftp.enabled.unwrap_or(true),
        listen: f
            .tftp
            .listen
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 69))),
        root: f
            .tftp
            .root
            .unwrap_or_else(|| PathBuf::from("/usr/lib/ipxe")),
        max_transfers: f.tftp.max_transfers.unwrap_or(512),
        max_transfers_per_client: match f.tftp.max_transfers_per_client {
            Some(0) => {
                return Err(bad(
                    "tftp.max_transfers_per_client",
                    "must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => 16,
        },
        max_blksize,
        max_windowsize,
        timeout: duration(
            f.tftp.timeout.as_deref().unwrap_or("1s"),
            "tftp.timeout",
            file,
        )?,
        retries: f.tftp.retries.unwrap_or(5),
    };

    let http_listen = f
        .http
        .listen
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)));
    let public_url = match f.http.public_url {
        Some(u) => {
            let trimmed = u.trim_end_matches('/').to_string();
            if !(trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad(
                    "http.public_url",
                    format!("{u:?} must be an http:// or https:// URL without spaces"),
                ));
            }
            trimmed
        }
        None => {
            let host: IpAddr = match (f.server.advertise, http_listen.ip()) {
                (Some(a), _) => a.into(),
                (None, ip) if !ip.is_unspecified() => ip,
                (None, _) => Ipv4Addr::LOCALHOST.into(),
            };
            format!("http://{}", SocketAddr::new(host, http_listen.port()))
        }
    };

    let http_enabled = f.http.enabled.unwrap_or(true);
    let require_lease_match = f.http.require_lease_match.unwrap_or(false);
    if require_lease_match && mode != DhcpMode::Full {
        let m = match mode {
            DhcpMode::Proxy => "proxy",
            _ => "off",
        };
        return Err(bad(
            "http.require_lease_match",
            format!(
                "needs dhcp.mode = \"full\", but dhcp.mode is \"{m}\": in proxy mode or with DHCP off tabula leases no addresses, so there is no lease to match a request against"
            ),
        ));
    }
    let defaults = super::AdmissionConfig::default();
    let a = &f.http.admission;
    let admission = super::AdmissionConfig {
        max_streams: a.max_streams.unwrap_or(defaults.max_streams),
        max_queue: a.max_queue.unwrap_or(defaults.max_queue),
        max_wait: match &a.max_wait {
            Some(t) => duration(t, "http.admission.max_wait", file)?,
            None => defaults.max_wait,
        },
    };
    let api = ApiConfig {
        enabled: f.api.enabled.unwrap_or(true),
        listen: f.api.listen.unwrap_or(DEFAULT_API_LISTEN),
        metrics_token_required: f.api.metrics_token_required.unwrap_or(false),
        tls: match (f.api.tls_cert, f.api.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                for (k, p) in [("api.tls_cert", &cert), ("api.tls_key", &key)] {
                    if p.as_os_str().is_empty() {
                        return Err(bad(k, "an empty path (a PEM file is expected)".into()));
                    }
                }
                Some(super::ApiTls { cert, key })
            }
            (Some(_), None) => {
                return Err(bad(
                    "api.tls_cert",
                    "needs api.tls_key too (the certificate's private key, PEM)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "api.tls_key",
                    "needs api.tls_cert too (the certificate chain, PEM)".into(),
                ));
            }
        },
    };
    if api.enabled && http_enabled && same_port(api.listen, http_listen) {
        return Err(bad(
            "api.listen",
            format!(
                "{} would share a port with http.listen {http_listen}",
                api.listen
            ),
        ));
    }

    let ha = super::ha::validate(f.server.id, &f.ha, file)?;
    let loaders = super::programs::loaders(f.dhcp.loaders, f.dhcp.programs)
        .map_err(|(key, reason)| bad(&key, reason))?;
    Ok(Config {
        source: None,
        data_dir,
        advertise: f.server.advertise,
        user: match f.server.user.as_deref() {
            None => Some(super::DEFAULT_USER.to_string()),
            Some("") => None,
            Some(u) if u.contains(|c: char| c.is_control() || c == ':' || c == '/') => {
                return Err(bad("server.user", format!("{u:?} is not a user name")));
            }
            Some(u) => Some(u.to_string()),
        },
        store_url,
        boot: BootConfig {
            unknown_machines,
            console: f.boot.console,
        },
        dhcp: DhcpConfig {
            mode,
            interfaces: f.dhcp.interfaces,
            listen_port: f.dhcp.listen_port.unwrap_or(67),
            proxy_port: f.dhcp.proxy_port.unwrap_or(4011),
            chainload,
            router_advertisement: f.dhcp.router_advertisement.unwrap_or(true),
            loaders,
            subnets,
            reservations,
        },
        tftp,
        http: HttpConfig {
            enabled: http_enabled,
            listen: http_listen,
            public_url,
            admission,
            idle_timeout: positive(&f.http.idle_timeout, "60s", "http.idle_timeout", file)?,
            head_timeout: positive(&f.http.head_timeout, "10s", "http.head_timeout", file)?,
            body_timeout: positive(&f.http.body_timeout, "10s", "http.body_timeout", file)?,
            send_timeout: positive(&f.http.send_timeout, "60s", "http.send_timeout", file)?,
            max_connections: at_least_one(
                f.http.max_connections,
                1024,
                "http.max_connections",
                file,
            )?,
            max_connections_per_client: at_least_one(
                f.http.max_connections_per_client,
                32,
                "http.max_connections_per_client",
                file,
            )?,
            attribution_window: positive(
                &f.http.attribution_window,
                "30m",
                "http.attribution_window",
                file,
            )?,
            require_lease_match,
        },
        events: EventsConfig {
            retention: match &f.events.retention {
                Some(t) => duration(t, "events.retention", file)?,
                None => DEFAULT_RETENTION,
            },
            queue_events: at_least_one(f.events.queue_events, 65_536, "events.queue_events", file)?,
            queue_bytes: at_least_one(f.events.queue_bytes, 32 << 20, "events.queue_bytes", file)?,
            max_detail_bytes: match f.events.max_detail_bytes {
                Some(n) if n < 256 => {
                    return Err(bad("events.max_detail_bytes", format!("{n} is below 256")));
                }
                Some(n) => n,
                None => 8192,
            },
            per_mac_per_minute: at_least_one(
                f.events.per_mac_per_minute,
                60,
                "events.per_mac_per_minute",
                file,
            )?,
            per_peer_per_minute: at_least_one(
                f.events.per_peer_per_minute,
                600,
                "events.per_peer_per_minute",
                file,
            )?,
            refusals_per_minute: at_least_one(
                f.events.refusals_per_minute,
                120,
                "events.refusals_per_minute",
                file,
            )?,
        },
        api,
        ha,
        health: crate::config::BootHealthConfig {
            max_tries: match f.health.max_tries {
                Some(0) => return Err(bad("health.max_tries", "must be at least 1".into())),
                Some(n) => n,
                None => 3,
            },
            boot_deadline: positive(&f.health.boot_deadline, "30m", "health.boot_deadline", file)?,
            quarantine: f
                .health
                .quarantine
                .unwrap_or(crate::config::Quarantine::Local),
        },
    })
}

/// A duration key that must be more than zero, `default` when unset.
fn positive(
    text: &Option<String>,
    default: &str,
    key: &str,
    file: &str,
) -> Result<Duration, ConfigError> {
    let d = duration(text.as_deref().unwrap_or(default), key, file)?;
    if d.is_zero() {
        return Err(ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason: "must be more than 0s".to_string(),
        });
    }
    Ok(d)
}

/// A count key that must be at least 1, `default` when unset.
fn at_least_one<T: PartialOrd + From<u8> + Copy>(
    v: Option<T>,
    default: T,
    key: &str,
    file: &str,
) -> Result<T, ConfigError> {
    match v {
        Some(n) if n < T::from(1) => Err(ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason: "must be at least 1".to_string(),
        }),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Whether two TCP listeners would want the same port on the same (or every) address.
/// Port 0 picks a free port, so it never collides.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn subnet(
    s: SubnetFile,
    i: usize,
    default_lease: Duration,
    file: &str,
) -> Result<Subnet, ConfigError> {
    let key = format!("dhcp.subnets[{i}]");
    let bad = |k: &str, reason: String| ConfigError::Invalid {
        file: file.to_string(),
        key: format!("{key}.{k}"),
        reason,
    };
    let net = s.network.trunc();
    if net != s.network {
        return Err(bad(
            "network",
            format!("{} has host bits set; did you mean {net}?", s.network),
        ));
    }
    let mut pools = Vec::new();
    for p in &s.pools {
        let (a, b) = p
            .split_once('-')
            .ok_or_else(|| bad("pools", format!("{p:?} is not a range FIRST-LAST")))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("pools", format!("{x:?} in {p:?} is not an IPv4 address")))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(bad(
                "pools",
                format!("{p:?}: first address is after the last"),
            ));
        }
        for ip in [a, b] {
            if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
                return Err(bad(
                    "pools",
                    format!("{ip} in {p:?} is not a host address of {net}"),
                ));
            }
        }
        if let Some((c, d)) = pools
            .iter()
            .find(|(c, d): &&(Ipv4Addr, Ipv4Addr)| a <= *d && *c <= b)
        {
            return Err(bad("pools", format!("{p:?} overlaps {c}-{d}")));
        }
        pools.push((a, b));
    }
    if let Some(r) = s.router
        && !net.contains(&r)
    {
        return Err(bad("router", format!("{r} is outside {net}")));
    }
    if let Some(r) = s.router
        && pools.iter().any(|(a, b)| (*a..=*b).contains(&r))
    {
        return Err(bad("router", format!("{r} is inside a pool")));
    }
    let lease_time = match s.lease_time.as_deref() {
        Some(t) => duration(t, &format!("{key}.lease_time"), file)?,
        None => default_lease,
    };
    Ok(Subnet {
        network: net,
        pools,
        router: s.router,
        dns: s.dns,
        domain: s.domain,
        lease_time,
    })
}

pub(super) fn duration(text: &str, key: &str, file: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        reason: format!("{text:?} is not a duration like \"30s\" or \"12h\": {e}"),
    })?;
    if d.is_zero() {
        return Err(ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason: "must be longer than zero".to_string(),
        });
    }
    Ok(d)
}
