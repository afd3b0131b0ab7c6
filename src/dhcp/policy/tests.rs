//! Policy tests: every message type in full mode, proxy mode on both ports, boot file
//! choice per client kind, and the loader-first rule that makes a chainload loop
//! impossible.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::boot::{Arch, BlobRef, BootPlan, Digest, Mac};
use crate::config::Reservation;
use crate::dhcp::lease::LeaseTimers;
use crate::dhcp::{ClientKind, LeaseState};

const SRV: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 0x42]);

fn subnets() -> Vec<Subnet> {
    vec![Subnet {
        network: "10.99.0.0/24".parse().expect("net"),
        pools: vec![(Ipv4Addr::new(10, 99, 0, 100), Ipv4Addr::new(10, 99, 0, 102))],
        router: None,
        dns: vec![],
        domain: None,
        lease_time: Duration::from_secs(600),
    }]
}

fn loaders() -> Loaders {
    Loaders {
        bios: "undionly.kpxe".into(),
        efi_ia32: "ipxe-ia32.efi".into(),
        efi_x64: "snponly.efi".into(),
        efi_arm64: "ipxe-arm64.efi".into(),
        ..Loaders::default()
    }
}

struct World {
    subnets: Vec<Subnet>,
    loaders: Loaders,
    table: LeaseTable,
    mode: DhcpMode,
    chainload: Chainload,
    link: Ipv4Addr,
}

impl World {
    fn new(mode: DhcpMode) -> World {
        let subnets = subnets();
        let table = LeaseTable::new(
            &subnets,
            &[Reservation {
                mac: Mac([2, 0, 0, 0, 0, 9]),
                address: Ipv4Addr::new(10, 99, 0, 9),
                hostname: None,
            }],
            LeaseTimers::default(),
        );
        World {
            subnets,
            loaders: loaders(),
            table,
            mode,
            chainload: Chainload::LoaderFirst,
            link: SRV,
        }
    }

    fn run(&mut self, r: &ClientRequest, d: &Decision, recent: bool) -> Outcome {
        self.run_on(Port::Server, r, d, recent)
    }

    fn run_on(&mut self, port: Port, r: &ClientRequest, d: &Decision, recent: bool) -> Outcome {
        let ctx = Context {
            mode: self.mode,
            port,
            chainload: self.chainload,
            loaders: &self.loaders,
            public_url: "http://10.99.0.1:8080",
            server_id: SRV,
            next_server: SRV,
            subnets: &self.subnets,
            link_address: self.link,
            source: SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 50), 4011),
        };
        let t = (self.mode == DhcpMode::Full).then_some(&mut self.table);
        let asks = matches!(
            r.message_type,
            MessageType::Discover | MessageType::Request | MessageType::Inform
        );
        decide(r, &ctx, asks.then_some(d), t, recent, now())
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn boot() -> Decision {
    let blob = BlobRef {
        digest: Digest::of(b"k"),
        size: 1,
        name: "vmlinuz".into(),
    };
    Decision::Boot {
        plan: Box::new(BootPlan {
            image: "demo".into(),
            version: "1".into(),
            manifest: Digest::of(b"m"),
            arch: Arch::X86_64,
            kernel: blob,
            initrds: vec![],
            rootfs: None,
            cmdline: String::new(),
        }),
    }
}

fn req(t: MessageType, kind: ClientKind) -> ClientRequest {
    ClientRequest {
        message_type: t,
        xid: 7,
        secs: 0,
        flags: 0,
        hops: 0,
        mac: MAC,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        requested_ip: None,
        server_id: None,
        client_id: None,
        hostname: None,
        parameter_request_list: vec![],
        max_message_size: None,
        arch_codes: vec![],
        network_interface: None,
        vendor_class: None,
        user_classes: vec![],
        ipxe: None,
        machine_id: None,
        relay: None,
        subnet_selection: None,
        kind,
    }
}

fn pxe(fw: Firmware) -> ClientKind {
    ClientKind {
        firmware: Some(fw),
        pxe: true,
        http_boot: false,
        ipxe: false,
    }
}

fn ipxe(fw: Firmware) -> ClientKind {
    ClientKind {
        ipxe: true,
        ..pxe(fw)
    }
}

fn spec(o: &Outcome) -> (&ReplySpec, Destination) {
    match &o.action {
        Action::Reply(s, d) => (s, *d),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// DISCOVER then REQUEST(selecting) for the offered address.
fn dora(w: &mut World, kind: ClientKind, d: &Decision, recent: bool) -> (Outcome, Outcome) {
    let offer = w.run(&req(MessageType::Discover, kind), d, recent);
    let ip = spec(&offer).0.yiaddr;
    let mut r = req(MessageType::Request, kind);
    r.requested_ip = Some(ip);
    r.server_id = Some(SRV);
    let ack = w.run(&r, d, recent);
    (offer, ack)
}

#[test]
fn full_dora_gives_lease_and_loader_per_firmware() {
    for (fw, file) in [
        (Firmware::Bios, "undionly.kpxe"),
        (Firmware::EfiX64, "snponly.efi"),
        (Firmware::EfiArm64, "ipxe-arm64.efi"),
        (Firmware::EfiIa32, "ipxe-ia32.efi"),
    ] {
        let mut w = World::new(DhcpMode::Full);
        let (offer, ack) = dora(&mut w, pxe(fw), &boot(), false);
        let (o, _) = spec(&offer);
        assert_eq!(o.kind, ReplyKind::Offer);
        assert_eq!(o.yiaddr, Ipv4Addr::new(10, 99, 0, 100));
        let want = format!("52-54-00-00-00-42/{file}");
        assert_eq!(o.boot_file.as_deref(), Some(want.as_str()));
        assert!(offer.changes.is_empty(), "offers are not persisted");
        assert!(!offer.loader_handed, "marked on the ACK only");
        let (a, dest) = spec(&ack);
        assert_eq!(a.kind, ReplyKind::Ack);
        assert_eq!(a.boot_file.as_deref(), Some(want.as_str()));
        assert_eq!(a.server_id, SRV);
        assert_eq!(a.next_server, SRV);
        assert_eq!(a.lease_time, Some(Duration::from_secs(600)));
        assert!(ack.loader_handed);
        assert!(matches!(
            ack.changes.as_slice(),
            [LeaseChange::Upsert(l)] if l.state == LeaseState::Bound && l.mac == MAC
        ));
        assert!(matches!(dest, Destination::UnicastToHardware { .. }));
    }
}

#[test]
fn loader_first_rule_cannot_loop() {
    let mut w = World::new(DhcpMode::Full);
    let k = ipxe(Firmware::Bios);
    // NIC ROM is iPXE, nothing delivered yet: the loader, marked on the ACK.
    let (offer, ack) = dora(&mut w, k, &boot(), false);
    assert_eq!(
        spec(&offer).0.boot_file.as_deref(),
        Some("52-54-00-00-00-42/undionly.kpxe")
    );
    assert!(ack.loader_handed);
    // The chainloaded iPXE asks again within the window: the script, not the loader.
    let (_, ack2) = dora(&mut w, k, &boot(), true);
    let file = spec(&ack2).0.boot_file.clone().expect("file");
    assert_eq!(
        file,
        "http://10.99.0.1:8080/boot.ipxe?mac=${mac:hexhyp}&platform=${platform}&buildarch=${buildarch}"
    );
    assert!(!ack2.loader_handed);
    // chainload = script: straight to the script even with nothing delivered.
    w.chainload = Chainload::Script;
    let (_, ack3) = dora(&mut w, k, &boot(), false);
    assert!(
        spec(&ack3)
            .0
            .boot_file
            .as_deref()
            .is_some_and(|f| f.contains("boot.ipxe"))
    );
}

#[test]
fn uefi_pxe_then_ipxe_gets_script() {
    // OVMF firmware PXE gets the loader; the iPXE it loads must get the script even with
    // loader-first (the ledger was marked by the firmware's ACK).
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, pxe(Firmware::EfiX64), &boot(), false);
    assert!(ack.loader_handed);
    let (_, ack2) = dora(&mut w, ipxe(Firmware::EfiX64), &boot(), true);
    assert!(
        spec(&ack2)
            .0
            .boot_file
            .as_deref()
            .is_some_and(|f| f.contains("boot.ipxe"))
    );
    assert_eq!(
        spec(&ack).0.yiaddr,
        spec(&ack2).0.yiaddr,
        "one address per MAC"
    );
}

#[test]
fn http_boot_gets_loader_url() {
    let mut w = World::new(DhcpMode::Full);
    let k = ClientKind {
        firmware: Some(Firmware::EfiX64Http),
        pxe: false,
        http_boot: true,
        ipxe: false,
    };
    let (_, ack) = dora(&mut w, k, &boot(), false);
    assert_eq!(
        spec(&ack).0.boot_file.as_deref(),
        Some("http://10.99.0.1:8080/loaders/snponly.efi")
    );
}

#[test]
fn plain_and_local_clients_get_address_without_file() {
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, ClientKind::default(), &boot(), false);
    assert_eq!(spec(&ack).0.boot_file, None);
    assert!(!ack.loader_handed);
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, pxe(Firmware::Bios), &Decision::Local, false);
    assert_eq!(spec(&ack).0.kind, ReplyKind::Ack);
    assert_eq!(spec(&ack).0.boot_file, None);
    // UEFI firmware PXE + Local: the loader, whose iPXE gets the exiting script (an
    // offer without a file keeps OVMF retrying DHCP for a minute and more).
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, pxe(Firmware::EfiX64), &Decision::Local, false);
    assert!(
        spec(&ack)
            .0
            .boot_file
            .as_deref()
            .is_some_and(|f| f.ends_with("/snponly.efi") || f.ends_with("/ipxe.efi")),
        "{:?}",
        spec(&ack).0.boot_file
    );
    // With a GRUB loader configured (programs still iPXE): GRUB, shim first, which
    // chainloads the disk itself; a boot of the same firmware still gets iPXE; HTTP boot
    // keeps the loader.
    let mut w = World::new(DhcpMode::Full);
    w.loaders.shim_x64 = Some("shimx64.efi".into());
    w.loaders.grub_x64 = Some("grubx64.efi".into());
    let (_, ack) = dora(&mut w, pxe(Firmware::EfiX64), &Decision::Local, false);
    let file = spec(&ack).0.boot_file.clone().unwrap_or_default();
    assert!(file.ends_with("/shimx64.efi"), "{file}");
    let mut w2 = World::new(DhcpMode::Full);
    w2.loaders = w.loaders.clone();
    let (_, ack) = dora(&mut w2, pxe(Firmware::EfiX64), &boot(), false);
    let file = spec(&ack).0.boot_file.clone().unwrap_or_default();
    assert!(file.ends_with("/snponly.efi"), "{file}");
    let mut w3 = World::new(DhcpMode::Full);
    w3.loaders = w.loaders.clone();
    let http = ClientKind {
        http_boot: true,
        pxe: false,
        ..pxe(Firmware::EfiX64Http)
    };
    let (_, ack) = dora(&mut w3, http, &Decision::Local, false);
    let file = spec(&ack).0.boot_file.clone().unwrap_or_default();
    assert!(file.ends_with("/loaders/snponly.efi"), "{file}");
    // iPXE + Local: the script (which exits), never the loader.
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, ipxe(Firmware::Bios), &Decision::Local, false);
    assert!(
        spec(&ack)
            .0
            .boot_file
            .as_deref()
            .is_some_and(|f| f.contains("boot.ipxe"))
    );
}

#[test]
fn ignored_machine_gets_nothing() {
    let mut w = World::new(DhcpMode::Full);
    let none = IgnoreReason::PinnedNone {
        target: "default".into(),
    };
    let d = Decision::Ignore {
        reason: none.clone(),
    };
    let o = w.run(&req(MessageType::Discover, pxe(Firmware::Bios)), &d, false);
    assert_eq!(
        o.action,
        Action::Ignore {
            reason: DhcpIgnore::Inventory(none),
            event: true
        }
    );
    assert!(o.changes.is_empty());
}

#[test]
fn request_for_other_server_frees_offer_silently() {
    let mut w = World::new(DhcpMode::Full);
    let offer = w.run(
        &req(MessageType::Discover, ClientKind::default()),
        &boot(),
        false,
    );
    let ip = spec(&offer).0.yiaddr;
    let mut r = req(MessageType::Request, ClientKind::default());
    r.requested_ip = Some(ip);
    r.server_id = Some(Ipv4Addr::new(10, 99, 0, 2));
    let o = w.run(&r, &boot(), false);
    assert!(matches!(o.action, Action::Done(_)));
    // Another machine now gets that address (it was freed, the oldest free one).
    let mut other = req(MessageType::Discover, ClientKind::default());
    other.mac = Mac([2, 0, 0, 0, 0, 7]);
    other.requested_ip = Some(ip);
    let o2 = w.run(&other, &boot(), false);
    assert_eq!(spec(&o2).0.yiaddr, ip);
}

#[test]
fn init_reboot_renew_nak_release_decline_inform() {
    let mut w = World::new(DhcpMode::Full);
    let (_, ack) = dora(&mut w, ClientKind::default(), &boot(), false);
    let ip = spec(&ack).0.yiaddr;
    // INIT-REBOOT: requested address, no server id.
    let mut r = req(MessageType::Request, ClientKind::default());
    r.requested_ip = Some(ip);
    assert_eq!(spec(&w.run(&r, &boot(), false)).0.kind, ReplyKind::Ack);
    // RENEWING: ciaddr, unicast back.
    let mut r = req(MessageType::Request, ClientKind::default());
    r.ciaddr = ip;
    let o = w.run(&r, &boot(), false);
    assert_eq!(spec(&o).1, Destination::Unicast(SocketAddrV4::new(ip, 68)));
    // Another MAC asking for it: NAK, broadcast.
    let mut r = req(MessageType::Request, ClientKind::default());
    r.mac = Mac([2, 0, 0, 0, 0, 8]);
    r.requested_ip = Some(ip);
    let o = w.run(&r, &boot(), false);
    assert_eq!(spec(&o).0.kind, ReplyKind::Nak);
    assert_eq!(spec(&o).1, Destination::Broadcast);
    assert!(o.changes.is_empty());
    // Off-subnet address: NAK.
    let mut r = req(MessageType::Request, ClientKind::default());
    r.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 5));
    assert_eq!(spec(&w.run(&r, &boot(), false)).0.kind, ReplyKind::Nak);
    // INFORM: ACK without address or lease time, unicast to ciaddr.
    let mut r = req(MessageType::Inform, ClientKind::default());
    r.ciaddr = Ipv4Addr::new(10, 99, 0, 77);
    let o = w.run(&r, &boot(), false);
    let (s, d) = spec(&o);
    assert_eq!(
        (s.kind, s.yiaddr, s.lease_time),
        (ReplyKind::Ack, Ipv4Addr::UNSPECIFIED, None)
    );
    assert_eq!(d, Destination::Unicast(SocketAddrV4::new(r.ciaddr, 68)));
    // RELEASE: persisted, no reply.
    let mut r = req(MessageType::Release, ClientKind::default());
    r.ciaddr = ip;
    r.server_id = Some(SRV);
    let o = w.run(&r, &boot(), false);
    assert!(matches!(o.action, Action::Done(_)));
    assert!(
        matches!(o.changes.as_slice(), [LeaseChange::Upsert(l)] if l.state == LeaseState::Released)
    );
    // DECLINE after a new lease: quarantined, persisted, no reply; the next DISCOVER gets
    // another address.
    let (_, ack) = dora(&mut w, ClientKind::default(), &boot(), false);
    let ip = spec(&ack).0.yiaddr;
    let mut r = req(MessageType::Decline, ClientKind::default());
    r.requested_ip = Some(ip);
    r.server_id = Some(SRV);
    let o = w.run(&r, &boot(), false);
    assert!(
        matches!(o.changes.as_slice(), [LeaseChange::Upsert(l)] if l.state == LeaseState::Declined)
    );
    let o = w.run(
        &req(MessageType::Discover, ClientKind::default()),
        &boot(),
        false,
    );
    assert_ne!(spec(&o).0.yiaddr, ip);
}

#[test]
fn relayed_request_uses_giaddr_subnet_and_relay_destination() {
    let mut w = World::new(DhcpMode::Full);
    let mut r = req(MessageType::Discover, ClientKind::default());
    r.giaddr = Ipv4Addr::new(10, 99, 0, 254);
    w.link = Ipv4Addr::new(192, 0, 2, 1); // ingress is another net
    let o = w.run(&r, &boot(), false);
    let (s, d) = spec(&o);
    assert_eq!(s.yiaddr, Ipv4Addr::new(10, 99, 0, 100));
    assert_eq!(
        d,
        Destination::Relay(SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 254), 67))
    );
    // Unknown link: ignored.
    r.giaddr = Ipv4Addr::new(172, 16, 0, 1);
    let o = w.run(&r, &boot(), false);
    assert!(matches!(o.action, Action::Ignore { .. }));
}

#[test]
fn pool_exhaustion_is_an_ignore_with_reason() {
    let mut w = World::new(DhcpMode::Full);
    for i in 0..3u8 {
        let mut r = req(MessageType::Discover, ClientKind::default());
        r.mac = Mac([2, 0, 0, 0, 1, i]);
        assert!(matches!(
            w.run(&r, &boot(), false).action,
            Action::Reply(..)
        ));
    }
    let o = w.run(
        &req(MessageType::Discover, ClientKind::default()),
        &boot(),
        false,
    );
    assert!(
        matches!(o.action, Action::Ignore { ref reason, .. } if reason.to_string().contains("in use"))
    );
}

#[test]
fn proxy_answers_netboot_clients_only_without_address() {
    let mut w = World::new(DhcpMode::Proxy);
    let o = w.run(
        &req(MessageType::Discover, ClientKind::default()),
        &boot(),
        false,
    );
    assert!(matches!(o.action, Action::Ignore { event: false, .. }));
    let o = w.run(
        &req(MessageType::Discover, pxe(Firmware::EfiX64)),
        &boot(),
        false,
    );
    let (s, d) = spec(&o);
    assert_eq!(s.kind, ReplyKind::ProxyOffer);
    assert_eq!(s.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(s.lease_time, None);
    assert_eq!(
        s.boot_file.as_deref(),
        Some("52-54-00-00-00-42/snponly.efi")
    );
    assert_eq!(d, Destination::Broadcast);
    assert!(!o.loader_handed, "marked on the proxy ACK only");
    // REQUEST on 67 belongs to the other server.
    let o = w.run(
        &req(MessageType::Request, pxe(Firmware::EfiX64)),
        &boot(),
        false,
    );
    assert!(matches!(o.action, Action::Ignore { .. }));
    // REQUEST on 4011: proxy ACK unicast back to the sender.
    let mut r = req(MessageType::Request, pxe(Firmware::EfiX64));
    r.ciaddr = Ipv4Addr::new(10, 99, 0, 50);
    let o = w.run_on(Port::BootServer, &r, &boot(), false);
    let (s, d) = spec(&o);
    assert_eq!(s.kind, ReplyKind::ProxyAck);
    assert_eq!(
        d,
        Destination::Unicast(SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 50), 4011))
    );
    assert!(o.loader_handed);
    // Local in proxy mode: no reply at all (the firmware falls through to disk).
    let o = w.run(
        &req(MessageType::Discover, pxe(Firmware::Bios)),
        &Decision::Local,
        false,
    );
    assert!(matches!(o.action, Action::Ignore { event: true, .. }));
}

/// Regression (proxy-mode BIOS boot in the lab): QEMU's iPXE ROM takes its boot file
/// from the proxy ACK on 4011. Marking the loader at the proxy OFFER made that ACK name
/// the script, so the loader-first chainload never happened. Now OFFER and ACK of one
/// exchange agree on the loader, the ACK marks it, and the loader's own DHCP (undionly,
/// within the ledger window) gets the script.
#[test]
fn proxy_loader_first_offer_and_ack_agree_then_script() {
    let mut w = World::new(DhcpMode::Proxy);
    let rom = ipxe(Firmware::Bios);
    let o = w.run(&req(MessageType::Discover, rom), &boot(), false);
    let (s, _) = spec(&o);
    assert_eq!(s.kind, ReplyKind::ProxyOffer);
    assert_eq!(
        s.boot_file.as_deref(),
        Some("52-54-00-00-00-42/undionly.kpxe")
    );
    assert!(!o.loader_handed);
    // The ledger was not marked, so the ACK on 4011 names the loader too, and marks it.
    let mut r = req(MessageType::Request, rom);
    r.ciaddr = Ipv4Addr::new(10, 99, 0, 50);
    let o = w.run_on(Port::BootServer, &r, &boot(), false);
    let (s, _) = spec(&o);
    assert_eq!(s.kind, ReplyKind::ProxyAck);
    assert_eq!(
        s.boot_file.as_deref(),
        Some("52-54-00-00-00-42/undionly.kpxe")
    );
    assert!(o.loader_handed);
    // undionly's DHCP (ledger: recent) gets the script on both ports.
    let o = w.run(&req(MessageType::Discover, rom), &boot(), true);
    let (s, _) = spec(&o);
    assert!(
        s.boot_file
            .as_deref()
            .is_some_and(|f| f.contains("/boot.ipxe?"))
    );
    let o = w.run_on(Port::BootServer, &r, &boot(), true);
    let (s, _) = spec(&o);
    assert!(
        s.boot_file
            .as_deref()
            .is_some_and(|f| f.contains("/boot.ipxe?"))
    );
    assert!(!o.loader_handed);
}
