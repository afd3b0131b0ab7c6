//! DHCPv4 for netboot: the pure half. Bytes to a classified [`ClientRequest`]
//! ([`decode`]), a [`ReplySpec`] to reply bytes ([`build`]), where the reply goes
//! ([`reply_destination`]) and the address allocator for `full` mode ([`LeaseTable`]).
//!
//! Nothing in this module opens a socket, reads a clock, or touches the store: the caller
//! passes `now`, persists every [`LeaseChange`] before sending an ACK, and owns the socket.

mod destination;
mod lease;
mod pxe;
mod reply;
mod request;
mod wire;

pub use destination::{CLIENT_PORT, Destination, SERVER_PORT, reply_destination};
pub use lease::{
    Grant, Lease, LeaseChange, LeaseError, LeaseState, LeaseTable, LeaseTimers, NakReason, SubnetId,
};
pub use pxe::{
    BusId, ClientKind, IPXE_NO_PXEDHCP, IpxeInfo, MachineId, MachineUuid, PxeClass, RelayInfo,
    RelayInfoError, VendorClass, ipxe_feature, user_classes,
};
pub use reply::{MIN_REPLY_LEN, ReplyError, ReplyKind, ReplySpec, build};
pub use request::{ClientRequest, code, decode};
pub use wire::{
    BOOTP_HEADER_LEN, DecodeError, MAGIC_COOKIE, MIN_PACKET_LEN, MessageType, Op, Packet,
};
