//! Parsers for the /proc texts `tabula doctor` reads: the effective capability set in
//! `/proc/self/status` and the socket tables `/proc/net/{tcp,udp}{,6}`. Text in, values
//! out: no file access here, so each format is tested on captured lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Proto, SocketUse};

/// Capability numbers (linux/capability.h) tabula may need.
pub(crate) const CAP_NET_BIND_SERVICE: u32 = 10;
pub(crate) const CAP_NET_ADMIN: u32 = 12;
pub(crate) const CAP_NET_RAW: u32 = 13;

/// The `CapEff:` mask of a /proc/PID/status text.
pub(crate) fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Whether capability `cap` is in `mask`.
pub(crate) fn has_cap(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

/// TCP state `LISTEN` in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// The sockets of one /proc/net table: listening TCP sockets, or every UDP socket.
/// `v6` tables carry 32 hex digits of address. Owners are left for the caller.
pub(crate) fn sockets(table: &str, proto: Proto, v6: bool) -> Vec<SocketUse> {
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
        if f.len() < 10 {
            continue;
        }
        if proto == Proto::Tcp && f[3] != TCP_LISTEN {
            continue;
        }
        let (Some(local), Ok(inode)) = (address(f[1], v6), f[9].parse::<u64>()) else {
            continue;
        };
        out.push(SocketUse {
            proto,
            local,
            inode,
            owner: None,
        });
    }
    out
}

/// `0100007F:1F90` (IPv4, host byte order words) or the 32-digit IPv6 form.
fn address(field: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if v6 {
        if ip.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (w, chunk) in bytes.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(&ip[w * 8..w * 8 + 8], 16).ok()?;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let word = u32::from_str_radix(ip, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(word.to_le_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_come_from_cap_eff() {
        let status = "Name:\ttabula\nCapInh:\t0000000000003400\nCapEff:\t0000000000003400\n";
        let m = cap_eff(status).unwrap();
        assert!(
            has_cap(m, CAP_NET_BIND_SERVICE)
                && has_cap(m, CAP_NET_RAW)
                && has_cap(m, CAP_NET_ADMIN)
        );
        let none = cap_eff("CapEff:\t0000000000000000\n").unwrap();
        assert!(!has_cap(none, CAP_NET_BIND_SERVICE));
        assert_eq!(cap_eff("Name: x\n"), None);
    }

    #[test]
    fn tables_give_listening_tcp_and_bound_udp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   \
            1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n";
        let s = sockets(tcp, Proto::Tcp, false);
        assert_eq!(s.len(), 1, "established connections are not listeners");
        assert_eq!(s[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s[0].inode, 4242);
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  \
            7: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0 0\n";
        let s = sockets(udp, Proto::Udp, false);
        assert_eq!(s[0].local, "0.0.0.0:67".parse().unwrap());
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  \
            1: 00000000000000000000000001000000:0045 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2 0 0\n";
        let s = sockets(udp6, Proto::Udp, true);
        assert_eq!(s[0].local, "[::1]:69".parse().unwrap());
    }
}
