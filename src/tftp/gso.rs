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
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest UDP payload one GSO send may carry (65,535 minus the IPv6 and UDP headers,
/// rounded down).
pub(super) const MAX_BYTES: usize = 65_000;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 before 6.x).
pub(super) const MAX_SEGMENTS: usize = 64;

/// How many DATA packets of `segment` bytes one GSO send may carry: within [`MAX_BYTES`]
/// and [`MAX_SEGMENTS`], and at least one.
pub(super) fn segments_per_send(segment: usize) -> usize {
    (MAX_BYTES / segment.max(1)).clamp(1, MAX_SEGMENTS)
}

/// Sends `buf` as datagrams of `segment` bytes in one `sendmsg` with `UDP_SEGMENT`.
/// An error means nothing was sent.
pub(super) async fn send(sock: &UdpSocket, buf: &[u8], segment: u16) -> io::Result<()> {
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
    fn sends_stay_within_one_datagram_and_the_segment_limit() {
        // windowsize 16 at blksize 1468: a whole window in one send.
        assert!(segments_per_send(1472) >= 16);
        // 64 KiB of 4096-byte blocks, with headers, exceeds one datagram's payload.
        assert_eq!(segments_per_send(4100), 15);
        // Small blocks are bounded by the segment count.
        assert_eq!(segments_per_send(12), MAX_SEGMENTS);
        // A block too large to share a datagram still goes out, alone.
        assert_eq!(segments_per_send(65_468), 1);
        for seg in [12, 516, 1472, 4100, 9000] {
            let n = segments_per_send(seg);
            assert!(n <= MAX_SEGMENTS && n * seg <= MAX_BYTES, "{seg}: {n}");
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
