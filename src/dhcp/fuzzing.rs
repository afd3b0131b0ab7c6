//! The parse-and-decide path as one function over untrusted bytes, shared by the
//! `cargo fuzz` target (`fuzz/fuzz_targets/dhcp_decide.rs`) and the bounded deterministic
//! fuzz test (`tests/dhcp_wire/fuzz.rs`). Pure: no sockets, no clock, no store.
//!
//! Checks, beyond "never panics": a proxy reply never carries an address; a full-mode
//! reply's address is in the configured pool or unspecified; every reply that builds is
//! at least 300 bytes and decodes as a BOOTREPLY with the request's xid.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, UNIX_EPOCH};

use crate::boot::Mac;
use crate::config::{Chainload, DhcpMode, Loaders, Reservation, Subnet};
use crate::inventory::Decision;

use super::lease::{LeaseTable, LeaseTimers};
use super::policy::{Action, Context, Port, decide};
use super::reply::{MIN_REPLY_LEN, build};
use super::request::decode;
use super::wire::{MessageType, Op, Packet};

/// Runs `bytes` through decode → decide (full and proxy, both ports, local and ignore
/// decisions, with and without a recent loader) → build, asserting the invariants.
pub fn decode_and_decide(bytes: &[u8]) {
    let Ok(req) = decode(bytes) else { return };
    let subnets = vec![Subnet {
        network: ipnet::Ipv4Net::new(Ipv4Addr::new(10, 9, 0, 0), 24).unwrap_or_default(),
        pools: vec![(Ipv4Addr::new(10, 9, 0, 10), Ipv4Addr::new(10, 9, 0, 20))],
        router: Some(Ipv4Addr::new(10, 9, 0, 1)),
        dns: vec![Ipv4Addr::new(10, 9, 0, 1)],
        domain: Some("lab".into()),
        lease_time: Duration::from_secs(60),
    }];
    let loaders = Loaders {
        bios: "undionly.kpxe".into(),
        efi_ia32: "ipxe-ia32.efi".into(),
        efi_x64: "snponly.efi".into(),
        efi_arm64: "ipxe-arm64.efi".into(),
        ..Loaders::default()
    };
    let reservations = [Reservation {
        mac: Mac([2, 0, 0, 0, 0, 1]),
        address: Ipv4Addr::new(10, 9, 0, 5),
        hostname: None,
    }];
    let mut table = LeaseTable::new(&subnets, &reservations, LeaseTimers::default());
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let decisions = [
        Decision::Local,
        Decision::Ignore {
            reason: crate::boot::IgnoreReason::NoPin,
        },
    ];
    for mode in [DhcpMode::Full, DhcpMode::Proxy] {
        for port in [Port::Server, Port::BootServer] {
            for (i, d) in decisions.iter().enumerate() {
                for recent in [false, true] {
                    let ctx = Context {
                        mode,
                        port,
                        chainload: if recent {
                            Chainload::Script
                        } else {
                            Chainload::LoaderFirst
                        },
                        loaders: &loaders,
                        public_url: "http://10.9.0.1:8080",
                        server_id: Ipv4Addr::new(10, 9, 0, 1),
                        next_server: Ipv4Addr::new(10, 9, 0, 1),
                        subnets: &subnets,
                        link_address: Ipv4Addr::new(10, 9, 0, 1),
                        source: SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 99), 68),
                    };
                    let t = (mode == DhcpMode::Full).then_some(&mut table);
                    // As the server asks: a decision only for messages that can get one.
                    let asks = matches!(
                        req.message_type,
                        MessageType::Discover | MessageType::Request | MessageType::Inform
                    );
                    let o = decide(
                        &req,
                        &ctx,
                        asks.then_some(d),
                        t,
                        recent,
                        now + Duration::from_secs(i as u64),
                    );
                    let Action::Reply(spec, _) = o.action else {
                        continue;
                    };
                    if spec.kind.is_proxy() {
                        assert!(o.changes.is_empty(), "proxy reply changed leases");
                    }
                    let y = u32::from(spec.yiaddr);
                    assert!(
                        spec.yiaddr.is_unspecified()
                            || (0x0a09_000a..=0x0a09_0014).contains(&y)
                            || spec.yiaddr == Ipv4Addr::new(10, 9, 0, 5),
                        "address outside the pool: {}",
                        spec.yiaddr
                    );
                    if let Ok(out) = build(&req, &spec) {
                        assert!(out.len() >= MIN_REPLY_LEN);
                        let p = Packet::parse(&out).expect("our reply parses");
                        assert_eq!(p.op(), Op::BootReply);
                        assert_eq!(p.xid(), req.xid);
                        if spec.kind.is_proxy() {
                            assert!(p.yiaddr().is_unspecified(), "proxy reply with an address");
                        }
                    }
                }
            }
        }
    }
}
