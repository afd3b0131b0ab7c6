//! `server.id` and `[ha]`: how this server names itself to the others on the same store,
//! and the timings of membership and leadership. Pure: the host name default is read by
//! the caller ([`default_id`]) only when no id is configured.

use std::time::Duration;

use super::ConfigError;
use super::file::HaFile;
use super::validate::duration;

/// Membership and leadership settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HaConfig {
    /// This server's id in the fleet (`server.id`, default the host name). Must be unique
    /// among the servers sharing one store: two servers with one id share its leader rows.
    pub server_id: String,
    /// How often the membership row is renewed (`ha.heartbeat`, default 1s). A server is
    /// shown alive while its last beat is younger than three of these.
    pub heartbeat: Duration,
    /// How long a leader row (DHCP allocation authority, singleton jobs) lasts unless
    /// renewed (`ha.leader_ttl`, default 3s). Renewed every third of it; a standby takes
    /// over at most this long after the holder's last renewal.
    pub leader_ttl: Duration,
    /// Whether reserved DHCP clients are split among the live servers (`ha.load_balance`,
    /// default true): each has one owner, which answers at once (`crate::dhcp`
    /// `balance`); `false`: every server answers every reserved client at once.
    pub load_balance: bool,
    /// A non-owner answers a reserved client once its `secs` field reaches this
    /// (`ha.load_balance_max_secs`, default 3).
    pub load_balance_max_secs: u16,
}

/// Longest id accepted (it is a key in the store and a label in logs).
const MAX_ID: usize = 64;

/// The host name (`/proc/sys/kernel/hostname`), or `tabula` if it cannot be read.
pub(super) fn default_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && valid_id(s))
        .unwrap_or_else(|| "tabula".to_string())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn validate(
    id: Option<String>,
    f: &HaFile,
    file: &str,
) -> Result<HaConfig, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        reason,
    };
    let server_id = match id {
        Some(id) if valid_id(&id) => id,
        Some(id) => {
            return Err(bad(
                "server.id",
                format!("{id:?} is not 1-{MAX_ID} letters, digits, '-', '_' or '.'"),
            ));
        }
        None => default_id(),
    };
    let heartbeat = duration(f.heartbeat.as_deref().unwrap_or("1s"), "ha.heartbeat", file)?;
    let leader_ttl = duration(
        f.leader_ttl.as_deref().unwrap_or("3s"),
        "ha.leader_ttl",
        file,
    )?;
    if leader_ttl < Duration::from_millis(300) {
        return Err(bad("ha.leader_ttl", "must be at least 300ms".to_string()));
    }
    Ok(HaConfig {
        server_id,
        heartbeat,
        leader_ttl,
        load_balance: f.load_balance.unwrap_or(true),
        load_balance_max_secs: f.load_balance_max_secs.unwrap_or(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_timings() {
        let f = HaFile::default();
        let c = validate(Some("pxe-1.rack_a".into()), &f, "t").unwrap();
        assert_eq!(c.server_id, "pxe-1.rack_a");
        assert_eq!(c.leader_ttl, Duration::from_secs(3));
        assert_eq!(c.heartbeat, Duration::from_secs(1));
        assert!(c.load_balance);
        assert_eq!(c.load_balance_max_secs, 3);
        assert!(validate(Some("a b".into()), &f, "t").is_err());
        assert!(validate(Some(String::new()), &f, "t").is_err());
        assert!(valid_id(&validate(None, &f, "t").unwrap().server_id));
        let short = HaFile {
            leader_ttl: Some("100ms".into()),
            ..HaFile::default()
        };
        assert!(validate(None, &short, "t").is_err());
    }
}
