//! A TFTP read as a PXE ROM does it: one RRQ with `blksize` and `tsize`, lockstep ACKs
//! (no windowsize: ROMs do not ask for it), the RRQ resent on the ROM's open schedule
//! (4, 8, 16, 32 s) and the last ACK resent after 4 s without data, at most 4 times.
//! An ERROR packet ends the transfer, as it ends the ROM's boot. Packets come from
//! [`crate::tftp::packet`], the server's own codec.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::tftp::packet::{self, Opcode, Packet};

/// Block size a BIOS PXE ROM asks for.
pub const ROM_BLKSIZE: u16 = 1456;
/// Seconds between RRQs before the first answer.
const OPEN_SCHEDULE: [u64; 4] = [4, 8, 16, 32];
/// Seconds without data before the last ACK is resent.
const DATA_TIMEOUT: Duration = Duration::from_secs(4);
/// Resent ACKs in a row before the ROM gives up.
const DATA_RETRIES: u32 = 4;

/// A finished read.
#[derive(Debug, Default)]
pub struct Fetched {
    pub bytes: u64,
    /// RRQs and ACKs sent again after a timeout.
    pub retransmits: u32,
}

/// Why a read failed (the firmware would stop booting).
#[derive(Debug, thiserror::Error)]
pub enum TftpFailure {
    #[error("no answer to the RRQ after {0} tries")]
    OpenTimeout(usize),
    #[error("no data after {DATA_RETRIES} resent ACKs at block {0}")]
    DataTimeout(u16),
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads `file` from `server` (port 69) with a socket bound to `local` (the leased
/// address, so the server sees one client per machine).
pub async fn fetch(
    local: Ipv4Addr,
    server: Ipv4Addr,
    file: &str,
    retransmits: &mut u32,
) -> Result<Fetched, TftpFailure> {
    let sock = UdpSocket::bind(SocketAddrV4::new(local, 0)).await?;
    let mut rrq = Vec::with_capacity(64);
    packet::encode_request(
        &mut rrq,
        Opcode::Rrq,
        file,
        &[("blksize", u64::from(ROM_BLKSIZE)), ("tsize", 0)],
    );
    let to = SocketAddr::V4(SocketAddrV4::new(server, 69));
    let mut buf = vec![0u8; usize::from(ROM_BLKSIZE) + 64];
    let mut ack = Vec::with_capacity(4);
    let mut tid: Option<SocketAddr> = None;
    let (mut blksize, mut expected, mut bytes) = (512usize, 1u16, 0u64);
    let mut open_try = 0usize;
    let mut stalls = 0u32;
    sock.send_to(&rrq, to).await?;
    loop {
        let wait = match tid {
            None => Duration::from_secs(OPEN_SCHEDULE[open_try]),
            Some(_) => DATA_TIMEOUT,
        };
        let (n, from) = match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => {
                match tid {
                    None => {
                        open_try += 1;
                        if open_try >= OPEN_SCHEDULE.len() {
                            return Err(TftpFailure::OpenTimeout(open_try));
                        }
                        sock.send_to(&rrq, to).await?;
                    }
                    Some(peer) => {
                        stalls += 1;
                        if stalls > DATA_RETRIES {
                            return Err(TftpFailure::DataTimeout(expected));
                        }
                        sock.send_to(&ack, peer).await?;
                    }
                }
                *retransmits += 1;
                continue;
            }
        };
        if from.ip() != to.ip() || tid.is_some_and(|t| t != from) {
            continue;
        }
        let peer = *tid.get_or_insert(from);
        match Packet::parse(&buf[..n]) {
            Ok(Packet::Oack(o)) if expected == 1 && bytes == 0 => {
                blksize = usize::from(o.blksize.unwrap_or(512));
                ack.clear();
                packet::encode_ack(&mut ack, 0);
                sock.send_to(&ack, peer).await?;
            }
            Ok(Packet::Data { block, data }) if block == expected => {
                stalls = 0;
                bytes += data.len() as u64;
                ack.clear();
                packet::encode_ack(&mut ack, block);
                sock.send_to(&ack, peer).await?;
                if data.len() < blksize {
                    return Ok(Fetched {
                        bytes,
                        retransmits: *retransmits,
                    });
                }
                expected = expected.wrapping_add(1);
            }
            // A duplicate of the block already ACKed: the ACK was lost, send it again.
            Ok(Packet::Data { block, .. }) if block == expected.wrapping_sub(1) => {
                sock.send_to(&ack, peer).await?;
            }
            Ok(Packet::Error { code, message }) => {
                return Err(TftpFailure::Server {
                    code: code.as_u16(),
                    message,
                });
            }
            _ => {}
        }
    }
}
