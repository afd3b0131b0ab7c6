//! Sending a window of DATA packets with UDP generic segmentation offload (`UDP_SEGMENT`,
//! Linux 4.18+): the blocks of a window are laid out back to back in one buffer and handed
//! to the kernel in one `sendmsg`, which cuts them into datagrams of `4 + blksize` bytes
//! (the last may be shorter, as a file's last block is). One system call, one route lookup
//! and one socket buffer charge per window instead of per block.
//!
//! Why by hand: async-tftp and the other TFTP crates send block by block; the QUIC stacks
//! that use GSO (quinn-udp) bring a whole transport's socket layer for one control
//! message. Measured on loopback, 100 clients x 1 MiB at windowsize 16 with the server on
//! one core was CPU-bound in the kernel's per-datagram send path (perf: udp_sendmsg,
//! skb allocation, route checks).
//!
//! The kernel refuses GSO where it cannot do it (no checksum offload on the route's
//! device: `EIO`; a segment larger than the path MTU or too many segments: `EINVAL`). A
//! refused `sendmsg` sends nothing, so the caller falls back to one datagram per block and
//! stops trying GSO on that transfer; nothing is lost or sent twice.

use std::io;
use std::io::IoSlice;
use std::ops::Range;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest UDP payload one GSO send may carry (65,535 minus the IPv6 and UDP headers,
/// rounded down).
pub const MAX_BYTES: usize = 65_000;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 before 6.x).
pub const MAX_SEGMENTS: usize = 64;

/// How `count` segments of `segment` bytes (the last may be shorter) are split into GSO
/// sends: index ranges, each within [`MAX_BYTES`] and [`MAX_SEGMENTS`].
pub fn batches(count: usize, segment: usize) -> Vec<Range<usize>> {
    let per = (MAX_BYTES / segment.max(1)).clamp(1, MAX_SEGMENTS);
    (0..count)
        .step_by(per)
        .map(|start| start..(start + per).min(count))
        .collect()
}

/// Sends `buf` as datagrams of `segment` bytes in one `sendmsg` with `UDP_SEGMENT`.
/// An error means nothing was sent.
pub async fn send(sock: &UdpSocket, buf: &[u8], segment: u16) -> io::Result<()> {
    let iov = [IoSlice::new(buf)];
    sock.async_io(Interest::WRITABLE, || {
        let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
        sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map(|_| ())
            .map_err(io::Error::from)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fit_one_send_or_are_split() {
        // windowsize 16 at blksize 1468: one send.
        assert_eq!(batches(16, 1472), vec![0..16]);
        // 64 KiB of 4096-byte blocks, with headers, exceeds one datagram's payload.
        assert_eq!(batches(16, 4100), vec![0..15, 15..16]);
        // Small blocks are bounded by the segment count.
        assert_eq!(batches(100, 12), vec![0..64, 64..100]);
        assert_eq!(batches(1, 65_468), vec![0..1]);
        assert!(batches(0, 1472).is_empty());
        for (count, seg) in [(16, 1472), (7, 9000), (200, 516), (3, 65_468)] {
            let b = batches(count, seg);
            assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), count);
            assert!(b.iter().all(|r| r.len() <= MAX_SEGMENTS));
            assert!(b.iter().all(|r| r.len() == 1 || r.len() * seg <= MAX_BYTES));
        }
    }

    #[tokio::test]
    async fn one_send_arrives_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        tx.connect(rx.local_addr().unwrap()).await.unwrap();
        // Three 8-byte segments and a 3-byte tail.
        let buf: Vec<u8> = (0u8..27).collect();
        send(&tx, &buf, 8).await.unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 64];
        for _ in 0..4 {
            let n = rx.recv(&mut b).unwrap();
            got.push(b[..n].to_vec());
        }
        assert_eq!(got, buf.chunks(8).map(<[u8]>::to_vec).collect::<Vec<_>>());
    }
}
