//! Client-side DHCP as a booting machine sends it: the PXE ROM, iPXE and the initramfs's
//! udhcpc, each with its own options and retransmit schedule, over one shared socket on
//! port 68 (every simulated machine puts its own MAC in `chaddr` and sets the broadcast
//! flag, so replies come back broadcast and are told apart by `xid`).
//!
//! Packet building is pure ([`discover`], [`request`], [`Reply::parse`]); [`Dhcp`] owns
//! the socket and a dispatcher task. Only sends to 255.255.255.255:67 on the interface
//! the socket is bound to.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::boot::Mac;

/// Which program is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asker {
    /// A BIOS PXE ROM: options 60 (`PXEClient:Arch:00000:UNDI:002001`), 93, 94, 97.
    PxeRom,
    /// iPXE (undionly.kpxe): as the ROM, plus user class `iPXE` and option 175.
    Ipxe,
    /// The initramfs's busybox udhcpc (vendor class `tabula-initramfs`).
    Initramfs,
}

impl Asker {
    /// Seconds to wait for an answer after each send; giving up after the last counts
    /// as a failed boot, as the firmware would.
    pub fn schedule(self) -> &'static [u64] {
        match self {
            // PXE spec 2.1: 4, 8, 16, 32 s.
            Asker::PxeRom => &[4, 8, 16, 32],
            // iPXE's DHCP: from 1 s doubling to 10 s.
            Asker::Ipxe => &[1, 2, 4, 8, 10],
            // udhcpc -t 6 -T 2.
            Asker::Initramfs => &[2, 2, 2, 2, 2, 2],
        }
    }
}

/// The client message for `mac`, as `asker` builds it, `secs` seconds after it began
/// (RFC 2131's `secs`, which firmware fills in and servers may balance on).
fn message(asker: Asker, t: MessageType, mac: Mac, xid: u32, secs: u16) -> v4::Message {
    let mut m = v4::Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac.0,
    );
    m.set_flags(v4::Flags::default().set_broadcast());
    m.set_secs(secs);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(t));
    if asker == Asker::Initramfs {
        o.insert(DhcpOption::ClassIdentifier(b"tabula-initramfs".to_vec()));
        return m;
    }
    o.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    o.insert(DhcpOption::ClientSystemArchitecture(
        v4::Architecture::X86_Bios,
    ));
    o.insert(DhcpOption::ClientNetworkInterface(1, 2, 1));
    let mut guid = vec![0u8; 17];
    guid[11..].copy_from_slice(&mac.0);
    o.insert(DhcpOption::ClientMachineIdentifier(guid));
    o.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::ServerIdentifier,
        OptionCode::ClassIdentifier,
        OptionCode::BootfileName,
    ]));
    if asker == Asker::Ipxe {
        o.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        // 175: iPXE encapsulated options; 19 = HTTP supported, 1.
        o.insert(DhcpOption::Unknown(v4::UnknownOption::new(
            OptionCode::Unknown(175),
            vec![19, 1, 1],
        )));
    }
    m
}

fn encode(m: &v4::Message) -> Vec<u8> {
    let mut b = Vec::with_capacity(320);
    // Encoding a message built here cannot fail; an empty packet would just go unanswered.
    let _ = m.encode(&mut Encoder::new(&mut b));
    b
}

/// A DISCOVER, `secs` seconds after the exchange began.
pub fn discover(asker: Asker, mac: Mac, xid: u32, secs: u16) -> Vec<u8> {
    encode(&message(asker, MessageType::Discover, mac, xid, secs))
}

/// A REQUEST for the address `offer` made, naming its server.
pub fn request(asker: Asker, mac: Mac, xid: u32, offer: &Reply, secs: u16) -> Vec<u8> {
    let mut m = message(asker, MessageType::Request, mac, xid, secs);
    m.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.yiaddr));
    if let Some(s) = offer.server {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    encode(&m)
}

/// What a client needs from an OFFER or ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: MessageType,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    /// `siaddr`: where TFTP goes.
    pub next_server: Ipv4Addr,
    pub server: Option<Ipv4Addr>,
    /// Option 67, else the `file` field.
    pub bootfile: Option<String>,
}

impl Reply {
    /// A BOOTREPLY's fields, or `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Reply> {
        let m = v4::Message::decode(&mut Decoder::new(bytes)).ok()?;
        if m.opcode() != v4::Opcode::BootReply {
            return None;
        }
        let server = match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
            _ => None,
        };
        let text = |b: &[u8]| {
            let s = String::from_utf8_lossy(b)
                .trim_end_matches('\0')
                .to_string();
            (!s.is_empty()).then_some(s)
        };
        let bootfile = match m.opts().get(OptionCode::BootfileName) {
            Some(DhcpOption::BootfileName(b)) => text(b),
            _ => m.fname().and_then(text),
        };
        Some(Reply {
            kind: m.opts().msg_type()?,
            xid: m.xid(),
            yiaddr: m.yiaddr(),
            next_server: m.siaddr(),
            server,
            bootfile,
        })
    }
}

/// The shared port-68 socket and the dispatcher that hands replies to waiting machines.
#[derive(Clone, Debug)]
pub struct Dhcp {
    sock: Arc<UdpSocket>,
    waiting: Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Reply>>>>,
}

/// The outcome of one DISCOVER/REQUEST exchange.
#[derive(Debug)]
pub struct Lease {
    pub ack: Reply,
    /// Sends beyond the first of each message.
    pub retransmits: u32,
}

impl Dhcp {
    /// Binds 0.0.0.0:68 on `iface` (broadcast allowed) and starts the dispatcher, which
    /// stops when every clone is dropped... or at process exit (it is a plain task).
    pub fn bind(iface: &str) -> std::io::Result<Dhcp> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.set_recv_buffer_size(4 << 20)?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into())?;
        s.set_nonblocking(true)?;
        let sock = Arc::new(UdpSocket::from_std(s.into())?);
        let waiting: Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Reply>>>> = Arc::default();
        let (rx_sock, rx_waiting) = (Arc::downgrade(&sock), waiting.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Some(sock) = rx_sock.upgrade() {
                let n =
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        Ok(Err(_)) | Err(_) => continue,
                    };
                drop(sock);
                let Some(r) = Reply::parse(&buf[..n]) else {
                    continue;
                };
                let map = rx_waiting.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tx) = map.get(&r.xid) {
                    let _ = tx.send(r);
                }
            }
        });
        Ok(Dhcp { sock, waiting })
    }

    /// DISCOVER then REQUEST on `asker`'s schedule. `None` when it gave up.
    pub async fn lease(&self, asker: Asker, mac: Mac, xid: u32) -> Option<Lease> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(xid, tx);
        let mut retransmits = 0;
        let began = tokio::time::Instant::now();
        let got = async {
            let offer = self
                .exchange(
                    |secs| discover(asker, mac, xid, secs),
                    began,
                    asker,
                    &mut rx,
                    MessageType::Offer,
                    &mut retransmits,
                )
                .await?;
            self.exchange(
                |secs| request(asker, mac, xid, &offer, secs),
                began,
                asker,
                &mut rx,
                MessageType::Ack,
                &mut retransmits,
            )
            .await
        }
        .await;
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&xid);
        got.map(|ack| Lease { ack, retransmits })
    }

    async fn exchange(
        &self,
        packet: impl Fn(u16) -> Vec<u8>,
        began: tokio::time::Instant,
        asker: Asker,
        rx: &mut mpsc::UnboundedReceiver<Reply>,
        want: MessageType,
        retransmits: &mut u32,
    ) -> Option<Reply> {
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        for (i, wait) in asker.schedule().iter().enumerate() {
            if i > 0 {
                *retransmits += 1;
            }
            // A send error (a full socket buffer) is a lost packet, as on a wire.
            let secs = u16::try_from(began.elapsed().as_secs()).unwrap_or(u16::MAX);
            let _ = self.sock.send_to(&packet(secs), to).await;
            let until = tokio::time::Instant::now() + Duration::from_secs(*wait);
            loop {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(r)) if r.kind == want => return Some(r),
                    // A NAK ends this exchange as a failure, as in the firmware.
                    Ok(Some(r)) if r.kind == MessageType::Nak => return None,
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(_) => break,
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::request::decode;

    #[test]
    fn tabula_classifies_each_asker_as_the_firmware_it_imitates() {
        let mac = Mac([2, 0x5a, 0, 0, 0, 7]);
        let rom = decode(&discover(Asker::PxeRom, mac, 1, 4)).unwrap();
        assert_eq!(rom.secs, 4);
        assert_eq!(rom.mac, mac);
        assert!(rom.kind.pxe && !rom.kind.ipxe, "{rom:?}");
        assert!(rom.machine_id.is_some() && rom.network_interface == Some((1, 2, 1)));
        assert_eq!(rom.arch_codes, [0]);
        let ipxe = decode(&discover(Asker::Ipxe, mac, 2, 0)).unwrap();
        assert!(ipxe.kind.pxe && ipxe.kind.ipxe, "{ipxe:?}");
        assert!(ipxe.ipxe.is_some(), "{ipxe:?}");
        let off = Reply {
            kind: MessageType::Offer,
            xid: 3,
            yiaddr: Ipv4Addr::new(10, 0, 0, 9),
            next_server: Ipv4Addr::UNSPECIFIED,
            server: Some(Ipv4Addr::new(10, 0, 0, 1)),
            bootfile: None,
        };
        let r = decode(&request(Asker::Initramfs, mac, 3, &off, 0)).unwrap();
        assert!(!r.kind.pxe, "{r:?}");
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
    }
}
